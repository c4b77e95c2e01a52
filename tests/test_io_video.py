"""The PyAV video reader: grayscale frames of short and long clips; truncated and garbage files refused by name."""
from __future__ import annotations

import numpy as np
import pytest

from medvid_core.io.video import VideoError, read_video
from medvid_core.synth.action_video import render_clip, write_avi


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """name -> (path, rendered RGB frames): a 3-frame clip and a 90-frame clip, 64x48."""
    root = tmp_path_factory.mktemp("video")
    out = {}
    for name, frames in (("short", 3), ("long", 90)):
        rgb = render_clip("JumpingJack", seed=1, frames=frames, height=48, width=64)
        write_avi(root / f"{name}.avi", rgb)
        out[name] = (root / f"{name}.avi", rgb)
    return out


@pytest.mark.parametrize("name,frames", [("short", 3), ("long", 90)])
def test_reads_every_frame_as_gray_uint8(clips, name, frames):
    path, rgb = clips[name]
    video = read_video(path)
    assert video.shape == (frames, 48, 64)
    assert video.dtype == np.uint8
    luma = rgb.astype(float) @ [0.299, 0.587, 0.114]  # what a gray conversion should give, up to MPEG-4 loss
    assert np.abs(video.astype(float) - luma).mean() < 12
    assert np.abs(video.astype(float) - luma[::-1]).mean() > np.abs(video.astype(float) - luma).mean()


def test_truncated_file_is_refused_by_name(clips, tmp_path):
    data = clips["long"][0].read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(VideoError, match=r"cut\.avi: truncated, \d+ of 90 declared frames"):
        read_video(cut)


@pytest.mark.parametrize("content", [b"", b"not a video at all" * 50, b"RIFF\x00\x00\x00\x00AVI LIST" + bytes(300)])
def test_garbage_is_refused_by_name(tmp_path, content):
    bad = tmp_path / "garbage.avi"
    bad.write_bytes(content)
    with pytest.raises(VideoError, match=r"garbage\.avi: ") as info:
        read_video(bad)
    assert "\n" not in str(info.value)
    assert isinstance(info.value, ValueError)


def test_missing_file(tmp_path):
    with pytest.raises(VideoError, match=r"nope\.avi: file not found"):
        read_video(tmp_path / "nope.avi")
