"""The UCF50-shaped action videos: tree and names, deterministic bytes, readable clips, moving actors."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from medvid_core.io.video import read_video
from medvid_core.synth import action_video
from medvid_core.synth.action_video import ACTIONS, PRESETS, Preset, ensure_action_videos, make_action_videos, render_clip

TINY = Preset(groups=2, clips_per_group=(1, 2), frames=(6, 9), width=64, height=48)
NAME = re.compile(r"UCF50/(?P<cls>[A-Za-z]+)/v_(?P=cls)_g\d\d_c\d\d\.avi")


@pytest.fixture(scope="module")
def trees(tmp_path_factory):
    base = tmp_path_factory.mktemp("ucf")
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(PRESETS, "tiny", TINY)
        yield {name: make_action_videos(base / name, "tiny", seed=seed).parent
               for name, seed in (("a", 0), ("b", 0), ("c", 1))}


def files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_tree_is_shaped_like_ucf50(trees):
    root = trees["a"]
    avis = sorted(str(p.relative_to(root)) for p in root.rglob("*.avi"))
    assert all(NAME.fullmatch(a) for a in avis), avis[:3]
    assert {a.split("/")[1] for a in avis} == set(ACTIONS) and len(ACTIONS) == 10
    table = pd.read_csv(root / "clips.csv")
    assert sorted(table.path) == avis
    assert table.frames.between(6, 9).all() and table.frames.nunique() > 1  # varying length


def test_same_seed_same_bytes_other_seed_differs(trees):
    a, b, c = (files(trees[k]) for k in "abc")
    assert a == b
    assert a["clips.csv"] != c["clips.csv"] or any(a[k] != c.get(k) for k in a if k.endswith(".avi"))


def test_clips_decode_to_declared_frames(trees):
    root = trees["a"]
    for row in pd.read_csv(root / "clips.csv").head(6).itertuples():
        video = read_video(root / row.path)
        assert video.shape == (row.frames, 48, 64)


def test_render_clip_is_deterministic_and_shaped():
    a = render_clip("Rowing", seed=3, frames=5, height=40, width=56)
    assert a.shape == (5, 40, 56, 3) and a.dtype == np.uint8
    assert np.array_equal(a, render_clip("Rowing", seed=3, frames=5, height=40, width=56))
    assert not np.array_equal(a, render_clip("Rowing", seed=4, frames=5, height=40, width=56))
    with pytest.raises(ValueError, match="unknown action 'Dancing'"):
        render_clip("Dancing", seed=0)


def test_every_action_moves_and_actions_differ():
    """Frame-to-frame change is larger than noise alone, and two actions' motion energy maps differ."""
    energy = {}
    for a in ACTIONS:
        clip = render_clip(a, seed=0, frames=12, height=60, width=80).astype(float).mean(-1)
        diff = np.abs(np.diff(clip, axis=0))
        assert (diff > 40).mean() > 1e-3, a  # some pixels change by more than the sensor noise can
        energy[a] = (diff > 40).mean(0)
    assert not np.allclose(energy["JumpingJack"], energy["Skijet"])


def test_ensure_reuses_a_finished_tree(tmp_path, monkeypatch):
    monkeypatch.setitem(PRESETS, "tiny", Preset(groups=1, clips_per_group=(1, 1), frames=(3, 3), width=32, height=32))
    calls = []
    real = action_video.make_action_videos
    monkeypatch.setattr(action_video, "make_action_videos", lambda *a, **k: calls.append(1) or real(*a, **k))
    ensure_action_videos(tmp_path, "tiny", seed=0)
    ensure_action_videos(tmp_path, "tiny", seed=0)
    assert len(calls) == 1
    ensure_action_videos(tmp_path, "tiny", seed=1)  # another seed regenerates
    assert len(calls) == 2
