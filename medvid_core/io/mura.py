"""Read a MURA-v1.1 archive (Stanford's musculoskeletal radiographs) as one table of images.

MURA ships a folder tree ``MURA-v1.1/{train,valid}/XR_<PART>/patientNNNNN/studyN_<positive|negative>/imageK.png``
and, per split, two CSVs without a header line: ``<split>_image_paths.csv`` (one image path per line)
and ``<split>_labeled_studies.csv`` (study folder with its trailing slash, then 0 or 1). The label
comes from the labelled-studies CSV; the folder name says the same thing, and a disagreement is
reported. Tree and CSVs are checked against each other: a study folder the CSV lacks, a CSV row
whose folder is missing, an image on disk that the paths CSV does not list, a listed image that is
missing -- each is reported by name (`MuraError`, or with ``on_mismatch="skip"`` a warning plus one
record in ``df.attrs["skipped"]``); nothing is dropped silently.

The same code reads the synthetic archive of `medvid_core.synth.radiograph` and the real download.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

ARCHIVE = "MURA-v1.1"
SPLITS = ("train", "valid")
COLUMNS = ["path", "body_part", "patient", "study", "label", "image"]


class MuraError(ValueError):
    """An archive whose tree and CSVs disagree, or a file that cannot be used; the message names it."""


def _base(root: str | Path) -> Path:
    """The folder the CSV paths are relative to (the one holding ``MURA-v1.1/``)."""
    root = Path(root)
    if (root / ARCHIVE).is_dir():
        return root
    if root.name == ARCHIVE and root.is_dir():
        return root.parent
    raise MuraError(f"{root}: no {ARCHIVE}/ folder here (expected {root / ARCHIVE})")


def _read_lines(csv: Path) -> list[list[str]]:
    if not csv.exists():
        raise MuraError(f"{csv}: file not found")
    rows = [line.strip().split(",") for line in csv.read_text().splitlines() if line.strip()]
    return rows


def read_mura(root: str | Path, split: str = "train", *, on_mismatch: str = "raise") -> pd.DataFrame:
    """One row per image: path (absolute), body_part (e.g. "WRIST"), patient, study (the study folder
    as the CSV writes it, unique across the archive), label (0/1, from the labelled-studies CSV),
    image (file name).

    `on_mismatch`: "raise" (default) stops at the first kind of disagreement with a `MuraError`
    naming the offending folders/files; "skip" warns and leaves them out, listing each in
    ``df.attrs["skipped"]`` (a list of {path, reason} records: the skip log).
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if on_mismatch not in ("raise", "skip"):
        raise ValueError(f"on_mismatch must be 'raise' or 'skip', got {on_mismatch!r}")
    base = _base(root)
    archive = base / ARCHIVE
    skipped: list[dict] = []

    def report(problem: str, names: list[str], csv: Path) -> None:
        if not names:
            return
        shown = ", ".join(names[:3]) + (f" (+{len(names) - 3} more)" if len(names) > 3 else "")
        if on_mismatch == "raise":
            raise MuraError(f"{csv}: {len(names)} {problem}: {shown}")
        warnings.warn(f"{csv}: skipping {len(names)} {problem}: {shown}", stacklevel=3)
        skipped.extend(dict(path=n, reason=problem) for n in names)

    studies_csv = archive / f"{split}_labeled_studies.csv"
    labels: dict[str, int] = {}
    bad_rows = []
    for row in _read_lines(studies_csv):
        if len(row) != 2 or row[1].strip() not in ("0", "1"):
            bad_rows.append(",".join(row))
            continue
        labels[row[0].strip().rstrip("/") + "/"] = int(row[1])
    report("rows that are not '<study folder>/,<0|1>'", bad_rows, studies_csv)

    on_disk = {p.relative_to(base).as_posix() + "/" for p in (archive / split).glob("XR_*/*/study*") if p.is_dir()}
    report("study folders on disk missing from the labelled-studies CSV", sorted(on_disk - set(labels)), studies_csv)
    report("CSV studies whose folder is missing", sorted(set(labels) - on_disk), studies_csv)
    disagree = [s for s, y in labels.items()
                if s.rstrip("/").endswith(("_positive", "_negative")) and s.rstrip("/").endswith("_positive") != bool(y)]
    report("studies whose CSV label disagrees with the folder name", sorted(disagree), studies_csv)

    paths_csv = archive / f"{split}_image_paths.csv"
    listed = [row[0].strip() for row in _read_lines(paths_csv)]
    images_on_disk = {p.relative_to(base).as_posix() for p in (archive / split).glob("XR_*/*/study*/*.png")}
    report("listed images that are missing on disk", sorted(set(listed) - images_on_disk), paths_csv)
    report("images on disk missing from the image-paths CSV", sorted(images_on_disk - set(listed)), paths_csv)
    unlabelled = sorted(p for p in set(listed) & images_on_disk if p.rsplit("/", 1)[0] + "/" not in labels)
    report("images whose study is not in the labelled-studies CSV", unlabelled, paths_csv)

    skip = {s["path"] for s in skipped}
    rows = []
    for p in listed:
        study = p.rsplit("/", 1)[0] + "/"
        if p in skip or study in skip or p not in images_on_disk or study not in labels:
            continue
        parts = p.split("/")  # MURA-v1.1 / split / XR_PART / patient / study / image
        rows.append(dict(path=str(base / p), body_part=parts[-4].removeprefix("XR_"), patient=parts[-3],
                         study=study, label=labels[study], image=parts[-1]))
    df = pd.DataFrame(rows, columns=COLUMNS)
    df.attrs["skipped"] = skipped  # plain records: pandas compares attrs on concat, a DataFrame there breaks it
    return df


def load_radiograph(path: str | Path) -> np.ndarray:
    """A MURA PNG as float32 grayscale in [0, 1], shape (H, W); RGB and 16-bit files are converted.

    A missing, truncated or undecodable file raises `MuraError` naming it, in one line.
    """
    path = Path(path)
    if not path.exists():
        raise MuraError(f"{path}: file not found")
    try:
        with Image.open(path) as im:
            im.load()
            mode = im.mode
            arr = np.asarray(im)
    except Exception as exc:  # PIL raises OSError, SyntaxError, ValueError... for broken files
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise MuraError(f"{path}: cannot read PNG ({reason})") from None
    if arr.ndim == 3:  # RGB(A): luminance of the colour channels
        arr = arr[..., :3].astype(np.float32).mean(axis=2)
    scale = 65535.0 if mode.startswith("I") else 255.0
    out = arr.astype(np.float32) / scale
    if out.ndim != 2 or min(out.shape) < 2:
        raise MuraError(f"{path}: expected a 2D image, got shape {arr.shape}")
    return out
