"""EchoNet-Dynamic reader: round trip, and one-line errors that name the file."""
import shutil

import numpy as np
import pandas as pd
import pytest

from medvid_core.io.echonet import EchoNetError, load_video, read_filelist
from medvid_core.synth.echo import draw_heart, make_echonet, render, volume_curve


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return make_echonet(tmp_path_factory.mktemp("echo"), n_clips=2, seed=0)


def test_round_trip(tree):
    t = read_filelist(tree)
    assert len(t) == 2 and set(t.Split) <= {"TRAIN", "VAL", "TEST"} and t.path.map(lambda p: p.exists()).all()
    rng = np.random.default_rng(np.random.SeedSequence([0, 0]))
    heart = draw_heart(rng)
    vols, _ = volume_curve(int(t.NumberOfFrames[0]), heart.fps, heart.heart_rate, heart.edv, heart.esv, phase=heart.phase)
    drawn = render(heart, vols, rng)["frames"]
    decoded = load_video(t.iloc[0])
    assert decoded.shape == drawn.shape and np.abs(decoded.astype(int) - drawn).mean() < 3  # MJPG, near-lossless


def test_file_names_with_extension_are_read_too(tmp_path, tree):
    shutil.copytree(tree, tmp_path / "t")
    t = pd.read_csv(tmp_path / "t" / "FileList.csv")
    t["FileName"] = t.FileName + ".avi"
    t["Split"] = t.Split.str.lower()
    t.to_csv(tmp_path / "t" / "FileList.csv", index=False)
    got = read_filelist(tmp_path / "t")
    assert got.path.map(lambda p: p.exists()).all() and set(got.Split) <= {"TRAIN", "VAL", "TEST"}


def _copy(tmp_path, tree):
    return shutil.copytree(tree, tmp_path / "t")


def test_missing_video_is_named(tmp_path, tree):
    root = _copy(tmp_path, tree)
    name = pd.read_csv(root / "FileList.csv").FileName[1]
    (root / "Videos" / f"{name}.avi").unlink()
    with pytest.raises(EchoNetError, match=rf"{name}\.avi: video listed in .*FileList.csv not found"):
        read_filelist(root)


def test_truncated_video_is_named(tmp_path, tree):
    root = _copy(tmp_path, tree)
    t = read_filelist(root)
    path = t.path[0]
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(EchoNetError, match=rf"{path.name}: truncated"):
        load_video(t.iloc[0])


def test_frame_count_disagreeing_with_filelist_is_named(tmp_path, tree):
    row = read_filelist(tree).iloc[0].copy()
    row["NumberOfFrames"] = row.NumberOfFrames + 5
    with pytest.raises(EchoNetError, match=rf"{row.path.name}: truncated, \d+ frames decode but FileList.csv says"):
        load_video(row)


def test_unknown_split_and_bad_ef_are_named(tmp_path, tree):
    root = _copy(tmp_path, tree)
    t = pd.read_csv(root / "FileList.csv")
    t.loc[1, "Split"] = "EXTERNAL"
    t.to_csv(root / "FileList.csv", index=False)
    with pytest.raises(EchoNetError, match=rf"FileList.csv: {t.FileName[1]} has split 'EXTERNAL'"):
        read_filelist(root)
    t.loc[1, "Split"] = "TEST"
    t.loc[0, "EF"] = 140
    t.to_csv(root / "FileList.csv", index=False)
    with pytest.raises(EchoNetError, match="not a percentage"):
        read_filelist(root)


def test_missing_filelist_and_column(tmp_path, tree):
    with pytest.raises(EchoNetError, match="FileList.csv: file not found"):
        read_filelist(tmp_path)
    root = _copy(tmp_path, tree)
    pd.read_csv(root / "FileList.csv").drop(columns="FPS").to_csv(root / "FileList.csv", index=False)
    with pytest.raises(EchoNetError, match="missing column.*FPS"):
        read_filelist(root)
