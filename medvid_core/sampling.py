"""Which slices of a volume become the frames of a clip.

A 3D scan read along one axis is a video whose frames are slices. TSN (Wang et al.,
ECCV 2016) cuts it into K equal segments and takes one frame per segment: a random one
while training (a cheap augmentation that still covers the whole volume) and the middle
one while testing (so test results are repeatable).
"""
from __future__ import annotations

import numpy as np


class SegmentSampler:
    """TSN segment sampling of `num_segments` frame indices out of `n_frames`."""

    def __init__(self, num_segments: int, *, train: bool):
        if num_segments < 1:
            raise ValueError(f"num_segments must be >= 1, got {num_segments}")
        self.num_segments, self.train = num_segments, train

    def __call__(self, n_frames: int, rng: np.random.Generator | None = None) -> np.ndarray:
        edges = np.linspace(0, n_frames, self.num_segments + 1)
        if self.train:
            rng = rng if rng is not None else np.random.default_rng()
            pos = edges[:-1] + rng.random(self.num_segments) * np.diff(edges)
        else:
            pos = (edges[:-1] + edges[1:]) / 2
        # with fewer frames than segments, neighbouring segments share (repeat) a frame
        return np.minimum(np.floor(pos).astype(int), n_frames - 1)

    def __repr__(self) -> str:
        return f"SegmentSampler(num_segments={self.num_segments}, train={self.train})"


# slice axis of a canonical RAS volume for each acquisition view
VIEW_AXIS = {"sagittal": 0, "coronal": 1, "axial": 2}


def volume_to_frames(volume: np.ndarray, view: str) -> np.ndarray:
    """(frames, rows, cols) of a canonical RAS volume along the view's slice axis.

    Frames are shown superior (or anterior, for axial) up; coronal and axial columns run from the
    subject's left to right (neurological convention).
    """
    if view not in VIEW_AXIS:
        raise ValueError(f"unknown view {view!r}; choose from: {', '.join(VIEW_AXIS)}")
    frames = np.moveaxis(volume, VIEW_AXIS[view], 0)  # (n, a, b)
    return np.ascontiguousarray(frames.transpose(0, 2, 1)[:, ::-1, :])  # (n, b reversed, a)
