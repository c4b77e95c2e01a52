"""Manifests for the OASIS downloads, from their folders and CSVs exactly as OASIS distributes them.

OASIS-1 (cross-sectional): ``disc*/OAS1_xxxx_MRn/PROCESSED/MPRAGE/T88_111/*_t88_gfc.hdr`` (Analyze
7.5 pairs: atlas-registered, gain-field corrected) and ``oasis_cross-sectional.csv`` (``ID``, ``CDR``,
...). CDR > 0 is AD, CDR 0 is NC; rows without a CDR (the young controls) are reported and left out.

OASIS-2 (longitudinal): ``OAS2_xxxx_MRn/RAW/mpr-1.nifti.hdr`` (the first MPRAGE of each visit) and
``oasis_longitudinal.csv`` (``Subject ID``, ``MRI ID``, ``Group``, ...). Nondemented is NC and
Demented is AD. "Converted" subjects were nondemented at their first visit and demented at a later
one; `converted` chooses what they become: ``"AD"`` (default: every session of a subject gets the
subject's label, so the subject-level split stays clean), ``"NC"``, or ``"exclude"``.

Each importer returns the manifest (``subject, session, path, label, view``; paths relative to the
folder the manifest is written to) and a skip table (``id, reason``) naming every CSV row left out,
so nothing is dropped silently. A CSV row whose image is missing or unreadable is a skip with the
file's name; an image folder that the CSV lacks is a skip too.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .nifti import VolumeError, load_volume

OASIS1_CSV = "oasis_cross-sectional.csv"
OASIS2_CSV = "oasis_longitudinal.csv"
CONVERTED_CHOICES = ("AD", "NC", "exclude")


class OasisError(ValueError):
    """The folder is not an OASIS download this importer knows; the message says what is missing."""


@dataclass
class Imported:
    manifest: pd.DataFrame
    skipped: pd.DataFrame  # id, reason
    manifest_path: Path | None = None


def _find_csv(root: Path, name: str) -> Path:
    found = sorted(root.rglob(name))
    if not found:
        raise OasisError(f"{root}: no {name} in this folder or below it (download it beside the images)")
    return found[0]


def _read_csv(path: Path, columns: list[str]) -> pd.DataFrame:
    df = pd.read_csv(path)
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise OasisError(f"{path}: missing column(s) {', '.join(missing)}")
    return df


def _check_readable(path: Path, checked: bool) -> str:
    """'' if the volume loads (when `checked`), else the one-line reason."""
    if not checked:
        return ""
    try:
        load_volume(path)
    except VolumeError as exc:
        return str(exc)
    return ""


def _finish(rows: list[dict], skipped: list[dict], root: Path, out: str | Path | None, write: bool) -> Imported:
    dest = Path(out) if out else root
    manifest = pd.DataFrame(rows, columns=["subject", "session", "path", "label", "view"])
    manifest["path"] = [os.path.relpath(p, dest) for p in manifest["path"]]
    skips = pd.DataFrame(skipped, columns=["id", "reason"])
    path = None
    if write:
        dest.mkdir(parents=True, exist_ok=True)
        path = dest / "manifest.csv"
        manifest.to_csv(path, index=False)
        if len(skips):
            skips.to_csv(dest / "import_skipped.csv", index=False)
    return Imported(manifest, skips, path)


def _match(table: pd.DataFrame, images: dict[str, Path], *, key: str, label_of, subject_of, pattern: str,
           view: str, csv: Path, root: Path, check_images: bool) -> tuple[list[dict], list[dict]]:
    """One manifest row per CSV row with a label and a readable image; a skip row, with its reason, for
    every other CSV row and for every image the CSV does not list."""
    rows, skipped = [], []
    for _, r in table.iterrows():
        sid = str(r[key]).strip()
        img = images.pop(sid, None)
        label, why = label_of(r)
        reason = (f"{csv.name}: {why}" if label is None else f"no {sid}/{pattern} under {root}" if img is None
                  else _check_readable(img, check_images))
        if reason:
            skipped.append({"id": sid, "reason": reason})
            continue
        rows.append({"subject": subject_of(r, sid), "session": sid.rpartition("_")[2], "path": img,
                     "label": label, "view": view})
    skipped += [{"id": sid, "reason": f"{p}: image folder not in {csv.name}"} for sid, p in sorted(images.items())]
    return rows, skipped


def import_oasis1(root: str | Path, *, out: str | Path | None = None, check_images: bool = True,
                  write: bool = True) -> Imported:
    """OASIS-1 cross-sectional -> manifest (axial view: OASIS-1's atlas-registered T88 images)."""
    root = Path(root)
    csv = _find_csv(root, OASIS1_CSV)
    table = _read_csv(csv, ["ID", "CDR"])
    images = {p.parents[3].name: p for p in root.rglob("*_t88_gfc.hdr") if p.parent.name == "T88_111"}

    def label_of(r):
        if pd.isna(r["CDR"]):
            return None, "no CDR (no diagnosis)"
        return ("AD" if float(r["CDR"]) > 0 else "NC"), None

    rows, skipped = _match(table, images, key="ID", label_of=label_of, subject_of=lambda r, sid: sid.rpartition("_")[0],
                           pattern="PROCESSED/MPRAGE/T88_111/*_t88_gfc.hdr", view="axial", csv=csv, root=root,
                           check_images=check_images)
    return _finish(rows, skipped, root, out, write)


def import_oasis2(root: str | Path, *, out: str | Path | None = None, converted: str = "AD",
                  check_images: bool = True, write: bool = True) -> Imported:
    """OASIS-2 longitudinal -> manifest, one row per visit (sagittal view: OASIS-2's raw MPRAGE acquisitions)."""
    if converted not in CONVERTED_CHOICES:
        raise ValueError(f"converted must be one of {CONVERTED_CHOICES}, got {converted!r}")
    root = Path(root)
    csv = _find_csv(root, OASIS2_CSV)
    table = _read_csv(csv, ["Subject ID", "MRI ID", "Group"])
    images = {p.parent.parent.name: p for p in root.rglob("mpr-1.nifti.hdr") if p.parent.name == "RAW"}
    labels = {"Nondemented": "NC", "Demented": "AD", "Converted": converted}

    def label_of(r):
        group = str(r["Group"]).strip()
        label = labels.get(group)
        if label is None:
            return None, f"unknown Group {group!r}"
        if label == "exclude":
            return None, "Group Converted, excluded (converted='exclude')"
        return label, None

    rows, skipped = _match(table, images, key="MRI ID", label_of=label_of,
                           subject_of=lambda r, sid: str(r["Subject ID"]).strip(), pattern="RAW/mpr-1.nifti.hdr",
                           view="sagittal", csv=csv, root=root, check_images=check_images)
    return _finish(rows, skipped, root, out, write)


IMPORTERS = {"oasis1": import_oasis1, "oasis2": import_oasis2}
