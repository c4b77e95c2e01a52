"""Read an EchoNet-Dynamic folder (Ouyang et al., Nature 2020): `FileList.csv` and `Videos/<FileName>.avi`.

`FileList.csv` has one row per echocardiogram: FileName (with or without ".avi"), EF, ESV, EDV (%, mL, mL),
FrameHeight, FrameWidth, FPS, NumberOfFrames and Split (TRAIN, VAL or TEST). The videos are 112x112
grey-as-RGB AVI files. The same reader serves the real download and the synthetic tree of
`medvid_core.synth.echo`.

Every problem is one line naming the file (`EchoNetError`): a missing column, an unknown split, an EF
that is not a percentage, a listed video that is missing, a video that decodes to fewer (or more) frames
than FileList.csv's NumberOfFrames (PyAV decodes a truncated file without complaint), or one whose frame
size disagrees with FrameHeight/FrameWidth. Nothing is dropped silently.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .video import VideoError, read_video

FILE_LIST = "FileList.csv"
VIDEOS = "Videos"
COLUMNS = ("FileName", "EF", "ESV", "EDV", "FrameHeight", "FrameWidth", "FPS", "NumberOfFrames", "Split")
SPLITS = ("TRAIN", "VAL", "TEST")


class EchoNetError(ValueError):
    """An EchoNet-Dynamic file that cannot be used; the message names it and the problem."""


def read_filelist(root: str | Path, *, check_videos: bool = True) -> pd.DataFrame:
    """FileList.csv as a table with a `path` column (absolute path of each video) and Split in capitals.

    With `check_videos`, every listed video must exist (the first missing one is named)."""
    root = Path(root)
    csv = root / FILE_LIST
    if not csv.exists():
        raise EchoNetError(f"{csv}: file not found (expected an EchoNet-Dynamic folder at {root})")
    try:
        table = pd.read_csv(csv)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise EchoNetError(f"{csv}: cannot parse ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
    missing = [c for c in COLUMNS if c not in table.columns]
    if missing:
        raise EchoNetError(f"{csv}: missing column(s) {', '.join(missing)}")
    table = table.copy()
    table["Split"] = table["Split"].astype(str).str.upper()
    bad = table[~table["Split"].isin(SPLITS)]
    if len(bad):
        raise EchoNetError(f"{csv}: {bad.FileName.iloc[0]} has split {bad.Split.iloc[0]!r}; "
                           f"expected one of {', '.join(SPLITS)} ({len(bad)} such row(s))")
    ef = pd.to_numeric(table["EF"], errors="coerce")
    bad = table[~ef.between(0, 100)]
    if len(bad):
        raise EchoNetError(f"{csv}: {bad.FileName.iloc[0]} has EF {bad.EF.iloc[0]!r}, not a percentage in 0..100")
    names = table["FileName"].astype(str)
    table["FileName"] = names.where(~names.str.lower().str.endswith(".avi"), names.str[:-4])
    table["path"] = [root / VIDEOS / f"{n}.avi" for n in table["FileName"]]
    if check_videos:
        for p in table["path"]:
            if not p.exists():
                raise EchoNetError(f"{p}: video listed in {csv} not found")
    return table


def load_video(row) -> np.ndarray:
    """One FileList row's video as grey frames (T, H, W) uint8, checked against NumberOfFrames and the
    frame size the row states."""
    path = Path(row["path"])
    try:
        frames = read_video(path)
    except VideoError as exc:
        raise EchoNetError(str(exc)) from None
    stated = int(row["NumberOfFrames"])
    if len(frames) != stated:
        what = "truncated" if len(frames) < stated else "longer than listed"
        raise EchoNetError(f"{path}: {what}, {len(frames)} frames decode but {FILE_LIST} says NumberOfFrames={stated}")
    if frames.shape[1:] != (int(row["FrameHeight"]), int(row["FrameWidth"])):
        raise EchoNetError(f"{path}: frames are {frames.shape[1]}x{frames.shape[2]} but {FILE_LIST} says "
                           f"{int(row['FrameHeight'])}x{int(row['FrameWidth'])}")
    return frames
