"""Read a video file as grayscale frames with PyAV, refusing files that do not decode in full.

PyAV decodes a truncated file without complaint, just fewer frames; so the number of decoded
frames is compared with the count the container declares (AVI and MP4 headers carry it).
Errors name the file and the problem in one line (`VideoError`).
"""
from __future__ import annotations

from pathlib import Path

import av
import numpy as np


class VideoError(ValueError):
    """A video that cannot be used; the message names the file."""


def read_video(path: str | Path) -> np.ndarray:
    """Every frame of the first video stream as uint8 grayscale, shaped (frames, height, width).

    Raises `VideoError` when the file is missing, does not decode, has no video stream,
    decodes to no frame, or decodes to fewer frames than its container declares.
    """
    path = Path(path)
    if not path.exists():
        raise VideoError(f"{path}: file not found")
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise VideoError(f"{path}: no video stream")
            stream = container.streams.video[0]
            declared = int(stream.frames or 0)  # 0 when the container does not say
            frames = [f.to_ndarray(format="gray") for f in container.decode(stream)]
    except VideoError:
        raise
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or (str(exc).splitlines() or [type(exc).__name__])[0]
        raise VideoError(f"{path}: cannot decode video ({reason})") from None
    if not frames:
        raise VideoError(f"{path}: no frame decodes")
    if declared and len(frames) < declared:
        raise VideoError(f"{path}: truncated, {len(frames)} of {declared} declared frames decode")
    return np.stack(frames).astype(np.uint8, copy=False)
