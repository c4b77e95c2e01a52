"""SHA-256 of what each synthetic generator writes, at a size a test can afford.

Each entry generates a small cohort of one generator into a temporary folder (a reduced copy of a
preset: the same code paths, fewer subjects) and hashes every file it wrote, in path order. The
checksums are recorded in `tests/test_synth_checksums.py`, so a change of bytes, by an edit or by the
CPU's floating-point kernels, is seen. Compare CPU kinds with
``python -m medvid_core.synth.checksums`` on each machine.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import tempfile
from pathlib import Path

import numpy as np

from ..cache import STAMP

STAMPS = {STAMP}  # medvid_core.cache's build stamp: text, not data


def tree_sha256(root: str | Path) -> str:
    """One digest of every file under `root` (relative path and bytes), in sorted path order."""
    root, h = Path(root), hashlib.sha256()
    for p in sorted(q for q in root.rglob("*") if q.is_file() and q.name not in STAMPS):
        h.update(str(p.relative_to(root)).encode() + b"\0" + p.read_bytes())
    return h.hexdigest()


def _brain_mri(root: Path) -> None:
    from . import brain_mri

    brain_mri.PRESETS["_checksum"] = dataclasses.replace(brain_mri.PRESETS["small"], n_patient=1, n_control=1)
    try:
        brain_mri.make_cohort(root, "_checksum", seed=0, n_jobs=1)
    finally:
        del brain_mri.PRESETS["_checksum"]


def _chest_ct(root: Path) -> None:
    from . import chest_ct

    chest_ct.PRESETS["_checksum"] = dataclasses.replace(chest_ct.PRESETS["small"], train=(1, 1, 1, 1, 1),
                                                        test=(0, 0, 0, 0, 1))
    try:
        chest_ct.make_cohort(root, "_checksum", seed=0, n_jobs=1)
    finally:
        del chest_ct.PRESETS["_checksum"]


def _head_ct(root: Path) -> None:
    from .head_ct import make_cohort

    make_cohort(root, preset="tiny", seed=0, n_jobs=1)


def _radiograph(root: Path) -> None:
    from .radiograph import make_archive

    make_archive(root, "tiny", seed=0, n_jobs=1)


def _action_video(root: Path) -> None:
    from . import action_video

    action_video.PRESETS["_checksum"] = dataclasses.replace(action_video.PRESETS["small"], groups=1,
                                                            clips_per_group=(1, 1), frames=(20, 20))
    try:
        action_video.make_action_videos(root, "_checksum", seed=0)
    finally:
        del action_video.PRESETS["_checksum"]


def _action_frames(root: Path) -> None:  # clips rendered in memory, without a video codec in between
    from .action_video import ACTIONS, render_clip

    np.save(root / "clips.npy", np.stack([render_clip(a, seed=0, frames=4, height=48, width=48) for a in ACTIONS]))


def _lung_nodule(root: Path) -> None:
    from .lung_nodule import make_nodule_cubes, make_sparse_volumes

    make_nodule_cubes(root / "cubes", n_nodules=6, seed=0)
    make_sparse_volumes(root / "sparse", n_volumes=1, shape=(40, 40, 40), seed=0)


def _nuclei(root: Path) -> None:
    from .nuclei import make_nuclei_images

    make_nuclei_images(root, n_images=2, seed=0)


def _echo(root: Path) -> None:
    from .echo import make_echonet

    make_echonet(root, n_clips=2, seed=0)


def _icu_activity(root: Path) -> None:
    from .icu_activity import make_icu_clips

    make_icu_clips(root, n_clips=2, seconds=10.0, seed=0)


def _pet_brain(root: Path) -> None:
    from .pet_brain import make_pet_cohort

    make_pet_cohort(root, n_train=1, n_eval=1, seed=0)


GENERATORS = {"brain_mri": _brain_mri, "chest_ct": _chest_ct, "head_ct": _head_ct, "radiograph": _radiograph,
              "action_video": _action_video, "action_frames": _action_frames, "lung_nodule": _lung_nodule,
              "nuclei": _nuclei, "echo": _echo, "icu_activity": _icu_activity, "pet_brain": _pet_brain}


def checksum(name: str) -> str:
    """Generate `name`'s small cohort in a temporary folder and return its `tree_sha256`."""
    with tempfile.TemporaryDirectory(prefix=f"medvid-{name}-") as tmp:
        GENERATORS[name](Path(tmp))
        return tree_sha256(tmp)


if __name__ == "__main__":
    print(json.dumps({name: checksum(name) for name in GENERATORS}, indent=1))
