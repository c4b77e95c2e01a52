"""`python -m medvid_core data check STUDY PATH`: is a real download ready for a long run?

Before hours of decoding and training, one pass over the folder answers: is it laid out as the study
expects; how many files, studies and labels it holds against the dataset's published counts; which
files do not read (named one per line, with the reader's own one-line reason, the same verdict the
study's loader would reach); which files have no label and which labels have no file; and roughly what
the run will need in disk, memory and time with the given parameters.

Organised by dataset layout (each checker reuses the study's own reader from `medvid_core.io`):
RSNA Intracranial Hemorrhage stage 2 (`stage_2_train.csv` + `stage_2_train/*.dcm`), MURA-v1.1
(`MURA-v1.1/{train,valid}` + its CSVs), the ImageCLEF Tuberculosis arrangement (`train_labels.csv`,
`test_labels.csv`, `train/`, `test/` of NIfTI volumes), UCF50 (`UCF50/<Class>/*.avi`) and a manifest
cohort (`manifest.csv` with subject, session, path, label, view; OASIS downloads become one with
`python -m medvid_core data import`). Nothing is ever written into PATH.

A `Check` is fatal (exit 1) when the study's loader would stop: the layout is missing, or a reader that
raises on bad input (MURA, ImageCLEF, UCF50, manifest) meets one. Where the protocol skips bad files
into a skip log (RSNA's corrupt slices), they are listed but do not stop the run.
"""
from __future__ import annotations

import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from .parallel import progress_map

MB = 1 << 20


@dataclass
class Check:
    """What one pass over a dataset folder found."""

    layout: str
    path: Path
    counts: list[tuple[str, int, int | None]] = field(default_factory=list)  # (what, found, published)
    problems: list[str] = field(default_factory=list)  # one line per file: "<file>: <problem>"
    notes: list[str] = field(default_factory=list)  # counted, not blocking (unannotated files, ...)
    fatal: list[str] = field(default_factory=list)  # why the study cannot run on it
    estimate: dict[str, str] = field(default_factory=dict)  # disk, memory, time
    files_per_second: float = float("nan")

    @property
    def ok(self) -> bool:
        return not self.fatal

    def read_every(self, read: Callable, files: list[str], *, n_jobs: int, what: str, stops: bool) -> list:
        """Read every file once (`read_all`); name each one that fails; `stops`: the study's loader raises on
        the first (fatal), else the protocol skips them into its skip log."""
        results, self.files_per_second = read_all(read, files, n_jobs=n_jobs, desc=what)
        bad = [r for r in results if r]
        self.problems += bad
        self.counts.append((f"unreadable {what}", len(bad), None))
        if bad and stops:
            self.fatal.append(f"{len(bad)} unreadable {what}: the study's loader stops at the first")
        elif bad:
            self.notes.append(f"unreadable {what} go to the study's skip log (the protocol skips them)")
        return results

    def estimate_run(self, files: list[str], *, kind: str, cache_bytes: float, cache_what: str, n_jobs: int) -> None:
        """Disk (the download and the decode-once cache under MEDVID_DATA), memory and time of a run."""
        self.estimate = {
            "disk": f"{_gb(_size(files))} of {kind}, plus {_gb(cache_bytes)} of decoded cache ({cache_what})",
            "memory": "bounded by a batch: the cache is read one item at a time (medvid_core.store)",
            "time": f"{_duration(len(files) / self.files_per_second)} to read every file once with n_jobs={n_jobs} "
                    f"(as fast as this check; decoding into the cache adds the preprocessing)"}

    def report(self) -> str:
        lines = [f"{self.layout} at {self.path}"]
        width = max([len(w) for w, _, _ in self.counts] or [0])
        for what, found, published in self.counts:
            pub = f"   (published: {published:,})" if published is not None else ""
            lines.append(f"  {what.ljust(width)}  {found:>9,}{pub}")
        lines += [f"  note: {n}" for n in self.notes]
        if self.problems:
            lines.append(f"  {len(self.problems)} file(s) with problems:")
            lines += [f"    {p}" for p in self.problems]
        if np.isfinite(self.files_per_second):
            lines.append(f"  read {self.files_per_second:,.0f} files/s")
        lines += [f"  estimate, {k}: {v}" for k, v in self.estimate.items()]
        lines.append("  can run: yes" if self.ok else "  can run: no\n" + "\n".join(f"    - {r}" for r in self.fatal))
        return "\n".join(lines)


# --------------------------------------------------------------------------- reading every file once


def _try(fn: Callable, path: str) -> str | None:
    """None when `fn(path)` reads, else the reader's one-line message (it names the file)."""
    try:
        fn(path)
        return None
    except Exception as exc:  # each reader raises a one-line ValueError subclass; anything else is named too
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return text if path in text else f"{path}: {text}"


def read_all(fn: Callable, paths: list[str], *, n_jobs: int, desc: str) -> tuple[list[str | None], float]:
    """`_try(fn, p)` for every path, on `n_jobs` forked processes, with a progress bar; (results, files/s)."""
    start = time.perf_counter()
    out = progress_map(_Reader(fn), paths, n_jobs=n_jobs, desc=desc, min_items=1000)
    seconds = time.perf_counter() - start
    return out, len(paths) / seconds if seconds > 0 else float("nan")


class _Reader:  # a picklable `partial(_try, fn)` for the pool
    def __init__(self, fn):
        self.fn = fn

    def __call__(self, path):
        return _try(self.fn, path)


def _size(paths) -> int:
    return sum(os.path.getsize(p) for p in paths if os.path.exists(p))


def _gb(n_bytes: float) -> str:
    return f"{n_bytes / 1e9:,.2f} GB" if n_bytes >= 1e8 else f"{n_bytes / MB:,.1f} MB"


def _duration(seconds: float) -> str:
    if not np.isfinite(seconds):
        return "unknown"
    return f"{seconds / 3600:,.1f} h" if seconds >= 3600 else f"{seconds / 60:,.1f} min" if seconds >= 60 else f"{seconds:,.0f} s"


# --------------------------------------------------------------------------- RSNA ICH stage 2 (DICOM slices)

# Kaggle's stage 2 training release, as the ICH seed counts it
RSNA_PUBLISHED = {"dicom_files": 752_803, "labelled_images": 674_257, "unannotated": 78_546}


def check_rsna(path: str | Path, *, load_size: int = 64, windows: int = 3, n_jobs: int = 1, **_) -> Check:
    from .io.dicom import read_hu
    from .io.rsna import LabelError, read_rsna_labels

    root = Path(path)
    check = Check("RSNA Intracranial Hemorrhage, stage 2", root)
    csv, folder = root / "stage_2_train.csv", root / "stage_2_train"
    if not csv.exists() or not folder.is_dir():
        check.fatal.append(f"{root}: expected stage_2_train.csv and stage_2_train/ (the Kaggle stage 2 layout)")
        return check
    try:
        labels = read_rsna_labels(csv)
    except LabelError as exc:
        check.fatal.append(str(exc))
        return check
    files = sorted(str(p) for p in folder.glob("*.dcm"))
    stems = pd.Index([Path(f).stem for f in files])
    annotated = stems.isin(labels.index)
    without_file = labels.index[~labels.index.isin(stems)]
    results = check.read_every(read_hu, files, n_jobs=n_jobs, what="DICOM files", stops=False)
    check.counts[:0] = [("DICOM files", len(files), RSNA_PUBLISHED["dicom_files"]),
                        ("labelled images (CSV)", len(labels), RSNA_PUBLISHED["labelled_images"]),
                        ("files without a label row", int((~annotated).sum()), RSNA_PUBLISHED["unannotated"]),
                        ("label rows without a file", len(without_file), None)]
    if (~annotated).any():
        check.notes.append(f"{int((~annotated).sum())} file(s) have no label row: counted and kept out of training")
    check.notes += [f"{root / 'stage_2_train' / (i + '.dcm')}: label row without a file" for i in without_file[:20]]
    if len(without_file) > 20:
        check.notes.append(f"... and {len(without_file) - 20} more label rows without a file")
    usable = sum(1 for r, a in zip(results, annotated) if a and not r)
    if usable == 0:
        check.fatal.append(f"{root}: no readable, labelled slice")
    check.estimate_run(files, kind="DICOM", cache_bytes=usable * windows * load_size * load_size * 2,
                       cache_what=f"{windows} windows at load_size={load_size}, float16", n_jobs=n_jobs)
    return check


# --------------------------------------------------------------------------- MURA-v1.1 (PNG radiographs)

MURA_PUBLISHED = {"train": (36_808, 13_457), "valid": (3_197, 1_199)}  # images, studies (Stanford's v1.1)


def check_mura(path: str | Path, *, image_size: int = 64, full_size: int = 128, n_jobs: int = 1, **_) -> Check:
    from .io.mura import ARCHIVE, MuraError, load_radiograph, read_mura

    root = Path(path)
    root = root.parent if root.name == ARCHIVE else root
    check = Check("MURA-v1.1", root)
    if not (root / ARCHIVE).is_dir():
        check.fatal.append(f"{root}: expected the folder {ARCHIVE}/ (train/, valid/ and their CSVs) here")
        return check
    frames = []
    for split in ("train", "valid"):
        try:
            with warnings.catch_warnings():  # each skip is a record in df.attrs["skipped"], reported below
                warnings.simplefilter("ignore")
                df = read_mura(root, split, on_mismatch="skip")
        except MuraError as exc:
            check.fatal.append(str(exc))
            continue
        for rec in df.attrs.get("skipped", []):
            where = rec.get("path") or rec.get("study") or rec.get("file") or ""
            check.problems.append(f"{where}: {rec.get('reason', rec)}")
        images, studies = MURA_PUBLISHED[split]
        check.counts += [(f"{split} images", len(df), images), (f"{split} studies", df["study"].nunique()
                          if "study" in df else 0, studies)]
        frames.append(df)
    if check.problems:
        check.fatal.append(f"{len(check.problems)} mismatch(es) between the CSVs and the folders (read_mura raises on them)")
    if not frames:
        return check
    files = [str(p) for df in frames for p in df["path"]]
    results = check.read_every(load_radiograph, files, n_jobs=n_jobs, what="images", stops=True)
    n_ok = sum(1 for r in results if r is None)
    sizes = {image_size, full_size}
    check.estimate_run(files, kind="PNG", cache_bytes=n_ok * 2 * sum(s * s * 4 for s in sizes),
                       cache_what=f"{' and '.join(map(str, sorted(sizes)))} px, rescaled or not, float32", n_jobs=n_jobs)
    return check


# --------------------------------------------------------------------------- ImageCLEF Tuberculosis (NIfTI CT)

IMAGECLEF_TBT_PUBLISHED = {"train": 917, "test": 421}  # ImageCLEF 2021 TBT, as the ViPTT-Net seed counts it


def _volume_header(path: str) -> None:
    from .io.nifti import load_volume

    load_volume(path)


def check_imageclef_tbt(path: str | Path, *, depth: int = 70, height: int = 224, width: int = 224,
                        n_jobs: int = 1, **_) -> Check:
    from .io.imageclef_tbt import LabelError, read_tbt_labels

    root = Path(path)
    check = Check("ImageCLEF Tuberculosis (TBT) CT", root)
    files = []
    for split in ("train", "test"):
        csv, folder = root / f"{split}_labels.csv", root / split
        if not csv.exists() or not folder.is_dir():
            check.fatal.append(f"{root}: expected {split}_labels.csv and {split}/ (the ImageCLEF TBT arrangement)")
            continue
        try:
            df = read_tbt_labels(csv, images_dir=folder)
        except LabelError as exc:
            check.fatal.append(str(exc))
            continue
        listed = set(df["path"].map(lambda p: Path(p).resolve()))
        extra = [p for p in sorted(folder.glob("*.nii*")) if p.resolve() not in listed]
        check.notes += [f"{p}: volume without a label row (not used)" for p in extra]
        check.counts += [(f"{split} scans", len(df), IMAGECLEF_TBT_PUBLISHED[split]),
                         (f"{split} volumes without a label row", len(extra), None)]
        files += [str(p) for p in df["path"]]
    if not files:
        return check
    results = check.read_every(_volume_header, files, n_jobs=n_jobs, what="volumes", stops=True)
    n_ok = sum(1 for r in results if r is None)
    check.estimate_run(files, kind="NIfTI", cache_bytes=n_ok * depth * height * width * 2,
                       cache_what=f"SIZ to {depth}x{height}x{width}, float16", n_jobs=n_jobs)
    return check


# --------------------------------------------------------------------------- UCF50 (AVI action clips)

UCF50_CLASSES = 50


def check_ucf50(path: str | Path, *, depth: int = 70, height: int = 224, width: int = 224, n_jobs: int = 1,
                video_classes: list[str] | None = None, **_) -> Check:
    from .io.video import read_video

    root = Path(path)
    base = root if root.name == "UCF50" else root / "UCF50"
    check = Check("UCF50", base)
    if not base.is_dir():
        check.fatal.append(f"{root}: expected a UCF50/ folder of class folders holding .avi clips")
        return check
    classes = sorted(p.name for p in base.iterdir() if p.is_dir())
    wanted = list(video_classes or classes)
    missing = [c for c in wanted if c not in classes]
    if missing:
        check.fatal.append(f"{base}: class folder(s) missing: {', '.join(missing)}")
    files = [str(p) for c in wanted if c in classes for p in sorted((base / c).glob("*.avi"))]
    check.counts += [("class folders", len(classes), UCF50_CLASSES), ("clips of the classes used", len(files), None)]
    if not files:
        check.fatal.append(f"{base}: no .avi clip in the classes used")
        return check
    results = check.read_every(read_video, files, n_jobs=n_jobs, what="clips", stops=True)
    check.notes.append(f"clips shorter than depth={depth} frames are dropped by the loader and listed then")
    n_ok = sum(1 for r in results if r is None)
    check.estimate_run(files, kind="AVI", cache_bytes=n_ok * depth * height * width,
                       cache_what=f"{depth}x{height}x{width}, uint8", n_jobs=n_jobs)
    return check


# --------------------------------------------------------------------------- a manifest cohort (NIfTI/Analyze MRI)

OASIS_PUBLISHED = {"OASIS-1 sessions": 436, "OASIS-2 sessions": 373}


def _longest_axis(path: str) -> int:
    import nibabel as nib

    return int(max(nib.load(path).shape[:3]))


def check_manifest(path: str | Path, *, image_size: int = 64, n_jobs: int = 1, **_) -> Check:
    from .data import MANIFEST_COLUMNS

    root = Path(path)
    manifest = root / "manifest.csv" if root.is_dir() else root
    check = Check("manifest cohort (MRI volumes)", manifest.parent)
    if not manifest.exists():
        hint = (" (an OASIS download: first `python -m medvid_core data import oasis1|oasis2 PATH`)"
                if any(root.glob("oasis_*.csv")) or any(root.glob("*/oasis_*.csv")) else "")
        check.fatal.append(f"{manifest}: manifest not found{hint}")
        return check
    try:
        df = pd.read_csv(manifest)
    except Exception as exc:
        check.fatal.append(f"{manifest}: cannot read CSV ({str(exc).splitlines()[0]})")
        return check
    missing = [c for c in MANIFEST_COLUMNS if c not in df.columns]
    if missing:
        check.fatal.append(f"{manifest}: missing column(s) {', '.join(missing)}")
        return check
    files = [str(manifest.parent / p) for p in df["path"]]
    absent = [f for f in files if not os.path.exists(f)]
    check.problems += [f"{f}: listed in the manifest, file missing" for f in absent]
    check.counts += [("scans", len(df), None), ("subjects", df["subject"].nunique(), None),
                     ("listed files missing", len(absent), None)]
    check.counts += [(f"label {k}", int(n), None) for k, n in df["label"].value_counts().sort_index().items()]
    if absent:
        check.fatal.append(f"{len(absent)} listed file(s) missing (read_manifest raises)")
    present = [f for f in files if f not in set(absent)]
    results = check.read_every(_volume_header, present, n_jobs=n_jobs, what="volumes", stops=True)
    check.notes.append("published OASIS counts: " + ", ".join(f"{k} {v}" for k, v in OASIS_PUBLISHED.items()))
    frames = sum(_longest_axis(f) for f, r in zip(present, results) if r is None)
    check.estimate_run(present, kind="volumes", cache_bytes=frames * image_size ** 2 * 2,
                       cache_what=f"one frame per slice at {image_size} px, float16", n_jobs=n_jobs)
    return check


# --------------------------------------------------------------------------- which layouts a study reads

LAYOUTS: dict[str, Callable[..., Check]] = {"rsna": check_rsna, "mura": check_mura,
                                           "imageclef_tbt": check_imageclef_tbt, "ucf50": check_ucf50,
                                           "manifest": check_manifest}
STUDY_LAYOUTS = {"ich": ["rsna"], "mura_zoom": ["mura"], "mura_flags": ["mura"], "mura_alternatives": ["mura"],
                 "viptt_net": ["imageclef_tbt", "ucf50"], "video4mri": ["manifest"]}


def detect(study: str, path: str | Path) -> str:
    """The layout of `study` that PATH holds (ViPTT-Net reads two: its CT cohort and its UCF50 clips)."""
    if study not in STUDY_LAYOUTS:
        raise ValueError(f"data check knows the studies {', '.join(STUDY_LAYOUTS)}, not {study!r}")
    options = STUDY_LAYOUTS[study]
    if len(options) == 1:
        return options[0]
    root = Path(path)
    return "ucf50" if root.name == "UCF50" or (root / "UCF50").is_dir() else "imageclef_tbt"


def check(study: str, path: str | Path, **params) -> Check:
    """Run the checker of the layout `study` reads at PATH; `params` are the study's parameters."""
    return LAYOUTS[detect(study, path)](path, **params)
