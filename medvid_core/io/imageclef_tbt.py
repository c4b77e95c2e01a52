"""ImageCLEF Tuberculosis - TBT label files: `FileName,TypeOfTB` with TypeOfTB in 1..5.

The same reader serves the challenge's folders and the synthetic cohort (`medvid_core.synth.chest_ct`).
A row with a type outside the five, a missing column or a volume that is not on disk is a one-line
`LabelError` naming the file (and the row), never a silently dropped scan.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

TB_TYPES = ("Infiltrative", "Focal", "Tuberculoma", "Miliary", "Fibro-cavernous")  # TypeOfTB 1..5


class LabelError(ValueError):
    """A label file that cannot be used; the message names the file."""


def read_tbt_labels(csv_path: str | Path, *, images_dir: str | Path | None = None) -> pd.DataFrame:
    """Return FileName, TypeOfTB, `label` (0..4), `type` (its name) and `path` (absolute, when `images_dir`
    is given: every file must exist there)."""
    csv_path = Path(csv_path)
    if not csv_path.exists():
        raise LabelError(f"{csv_path}: file not found")
    try:
        table = pd.read_csv(csv_path)
    except Exception as exc:  # pandas raises several types for unreadable CSVs
        raise LabelError(f"{csv_path}: cannot read CSV ({str(exc).splitlines()[0]})") from None
    missing = [c for c in ("FileName", "TypeOfTB") if c not in table.columns]
    if missing:
        raise LabelError(f"{csv_path}: missing column(s) {', '.join(missing)} (have: {', '.join(map(str, table.columns))})")
    codes = pd.to_numeric(table["TypeOfTB"], errors="coerce")
    bad = ~codes.isin(range(1, len(TB_TYPES) + 1))
    if bad.any():
        row = int(bad.idxmax())
        raise LabelError(f"{csv_path}: row {row + 2} ({table.FileName[row]}): TypeOfTB {str(table.TypeOfTB[row])!r} is not "
                         f"one of the five types 1..5 ({', '.join(TB_TYPES)})")
    table = table.assign(TypeOfTB=codes.astype(int), label=codes.astype(int) - 1)
    table["type"] = [TB_TYPES[k] for k in table.label]
    if images_dir is not None:
        images_dir = Path(images_dir)
        table["path"] = [str(images_dir / name) for name in table.FileName]
        absent = [p for p in table.path if not Path(p).exists()]
        if absent:
            raise LabelError(f"{csv_path}: {len(absent)} listed volume(s) not found, first: {absent[0]}")
    return table
