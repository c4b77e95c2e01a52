"""The synthetic ICU depth clips: segments tile every clip, files are deterministic and decode, and each
activity's motion is what its label says (out of bed: up and towards the chair; in bed: the reverse...)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from medvid_core.io.video import read_video
from medvid_core.synth.icu_activity import (ACTIVITIES, HEIGHT, WIDTH, ensure_icu_clips, frame_labels,
                                             make_icu_clips, render_icu_clip)


@pytest.fixture(scope="module")
def trees(tmp_path_factory):
    base = tmp_path_factory.mktemp("icu")
    return {name: make_icu_clips(base / name, n_clips=3, seconds=30, seed=seed)
            for name, seed in (("a", 0), ("b", 0), ("c", 1))}


def files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_segments_tile_every_clip(trees):
    root = trees["a"]
    clips, segs = pd.read_csv(root / "clips.csv"), pd.read_csv(root / "segments.csv")
    assert set(segs.label) <= set(ACTIVITIES) and len(clips) == 3
    for c in clips.itertuples():
        s = segs[segs["clip"] == c.clip]
        assert s.start.iloc[0] == 0 and s.end.iloc[-1] == c.frames == 150
        assert (s.start.to_numpy()[1:] == s.end.to_numpy()[:-1]).all()  # no gap, no overlap
        assert (s.end > s.start).all()
        assert (s.label.to_numpy()[1:] != s.label.to_numpy()[:-1]).all()  # none and activities alternate
        assert len(frame_labels(s, c.frames)) == c.frames


def test_same_seed_same_bytes_other_seed_differs(trees):
    a, b, c = (files(trees[k]) for k in "abc")
    assert a == b
    assert a["segments.csv"] != c["segments.csv"]


def test_clips_decode_to_the_frames_rendered(trees):
    root = trees["a"]
    clips = pd.read_csv(root / "clips.csv")
    video = read_video(root / clips.path[0])
    assert video.shape == (clips.frames[0], HEIGHT, WIDTH)
    assert np.array_equal(video, render_icu_clip(0, seconds=30)[0])  # lossless: the file holds the exact frames


def test_ensure_reuses_and_frame_labels_refuse_gaps(tmp_path):
    root = ensure_icu_clips(tmp_path / "icu", n_clips=1, seconds=4)
    stamp = (root / "STAMP.json").stat().st_mtime_ns
    assert ensure_icu_clips(tmp_path / "icu", n_clips=1, seconds=4) == root
    assert (root / "STAMP.json").stat().st_mtime_ns == stamp
    with pytest.raises(ValueError, match="have no segment"):
        frame_labels(pd.DataFrame({"start": [0], "end": [3], "label": ["none"]}), 5)


def _patient(frame: np.ndarray, bed_side: str) -> tuple[float, float]:
    """(top row, mean column) of the patient, the nearest thing in the room, in the bed-on-the-left view."""
    f = frame[:, ::-1] if bed_side == "right" else frame
    rows, cols = np.nonzero(f >= 158)
    return float(np.percentile(rows, 3)), float(cols.mean())


# activity -> (sign of the change of the top row (negative: rises), least |change|, sign of the x move, least |move|)
EXPECTED = {"get out of bed": (-1, 6, +1, 8), "get in bed": (+1, 6, -1, 8),
            "sit in chair": (+1, 1, +1, 3), "get out of chair": (-1, 1, -1, 3)}


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_each_activity_moves_as_its_label_says(seed):
    frames, segs, look = render_icu_clip(seed, seconds=80)
    checked = 0
    for s in segs.itertuples():
        if s.end == len(frames) or s.start == 0:  # cut by the clip's ends
            continue
        (top0, x0), (top1, x1) = (_patient(frames[i], look["bed_side"]) for i in (s.start, s.end - 1))
        if s.label in EXPECTED:
            dy_sign, dy_min, dx_sign, dx_min = EXPECTED[s.label]
            assert dy_sign * (top1 - top0) >= dy_min, (s, top0, top1)
            assert dx_sign * (x1 - x0) >= dx_min, (s, x0, x1)
            checked += 1
        elif s.kind == "walk":
            assert abs(x1 - x0) >= 8 and abs(top1 - top0) <= 2
        else:  # rest or stand: the patient stays put
            assert abs(x1 - x0) <= 1.5 and abs(top1 - top0) <= 1.5, s
    assert checked >= 4
