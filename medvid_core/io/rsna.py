"""Read the RSNA Intracranial Hemorrhage label CSV: long `ID,Label` rows -> one row per image.

The file has a header `ID,Label` and rows `ID_<hex>_<subtype>,0|1`, six per image. The real
file repeats some rows; identical repeats are dropped, but an image whose subtype is given
both 0 and 1 is an error naming the image, as is an image with a subtype missing.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

SUBTYPES = ("epidural", "intraparenchymal", "intraventricular", "subarachnoid", "subdural", "any")


class LabelError(ValueError):
    """A label CSV that cannot be used; the message names the file and the offending IDs."""


def read_rsna_labels(path: str | Path) -> pd.DataFrame:
    """DataFrame indexed by image ID (`ID_<hex>`, the DICOM file stem), columns SUBTYPES, int 0/1."""
    path = Path(path)
    if not path.exists():
        raise LabelError(f"{path}: label CSV not found")
    try:
        df = pd.read_csv(path, dtype={"ID": str, "Label": str})
    except Exception as exc:
        raise LabelError(f"{path}: cannot parse CSV ({str(exc).splitlines()[0]})") from None
    if list(df.columns[:2]) != ["ID", "Label"]:
        raise LabelError(f"{path}: expected header 'ID,Label', got {','.join(map(str, df.columns))}")
    df = df[["ID", "Label"]].dropna(subset=["ID"])
    parts = df["ID"].str.rsplit("_", n=1, expand=True)
    if parts.shape[1] != 2 or parts[1].isna().any():
        bad = df["ID"][parts[1].isna()].iloc[0] if parts.shape[1] == 2 else df["ID"].iloc[0]
        raise LabelError(f"{path}: ID {bad!r} is not of the form ID_<hex>_<subtype>")
    df = df.assign(image=parts[0], subtype=parts[1])
    unknown = sorted(set(df["subtype"]) - set(SUBTYPES))
    if unknown:
        raise LabelError(f"{path}: unknown subtype(s) {unknown[:3]}; expected {', '.join(SUBTYPES)}")
    bad_label = df[~df["Label"].isin(["0", "1"])]
    if len(bad_label):
        raise LabelError(f"{path}: {len(bad_label)} row(s) with a label other than 0/1, "
                         f"first {bad_label['ID'].iloc[0]}={bad_label['Label'].iloc[0]!r}")
    df = df.drop_duplicates(["image", "subtype", "Label"])
    conflict = df[df.duplicated(["image", "subtype"], keep=False)]
    if len(conflict):
        ids = sorted(set(conflict["ID"]))
        raise LabelError(f"{path}: {len(ids)} ID(s) labelled both 0 and 1, e.g. {', '.join(ids[:3])}")
    wide = df.pivot(index="image", columns="subtype", values="Label")
    wide = wide.reindex(columns=list(SUBTYPES))
    incomplete = wide.index[wide.isna().any(axis=1)]
    if len(incomplete):
        raise LabelError(f"{path}: {len(incomplete)} image(s) lack some of the six subtype rows, "
                         f"e.g. {', '.join(incomplete[:3])}")
    wide = wide.astype(int)
    wide.columns.name = None
    wide.index.name = "image"
    return wide
