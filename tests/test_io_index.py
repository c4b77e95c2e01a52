"""medvid_core.io.index: a folder's records read once, cached on its listing, errors kept as rows."""
from __future__ import annotations

import os

import pytest

from medvid_core.io.index import index_files, listing_key

CALLS = []


def read_uid(path: str) -> dict:
    CALLS.append(path)
    text = open(path).read()
    if text == "bad":
        raise ValueError(f"{path}: not a record")
    return {"uid": text, "size": len(text)}


@pytest.fixture
def folder(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDVID_DATA", str(tmp_path / "data"))
    (tmp_path / "in").mkdir()
    for name, text in [("a", "1.2"), ("b", "1.20"), ("c", "bad")]:
        (tmp_path / "in" / name).write_text(text)
    CALLS.clear()
    return sorted(str(p) for p in (tmp_path / "in").iterdir())


def test_second_call_reads_nothing_and_gives_the_same_table(folder):
    first = index_files(folder, read_uid, name="uid", text_columns=("uid",))
    assert len(CALLS) == 3
    again = index_files(folder, read_uid, name="uid", text_columns=("uid",))
    assert len(CALLS) == 3  # from the cache
    assert again.equals(first)
    assert list(again["uid"][:2]) == ["1.2", "1.20"]  # UIDs stay text, "1.20" is not the number 1.2


def test_a_refused_file_is_a_row_with_its_reason(folder):
    table = index_files(folder, read_uid, name="uid", text_columns=("uid",))
    assert list(table["error"]) == ["", "", "not a record"]


def test_a_changed_file_gives_a_fresh_index(folder):
    index_files(folder, read_uid, name="uid")
    key = listing_key(folder)
    with open(folder[0], "w") as f:
        f.write("1.2.3")
    os.utime(folder[0], ns=(1, 1))
    assert listing_key(folder) != key
    table = index_files(folder, read_uid, name="uid", text_columns=("uid",))
    assert len(CALLS) == 6 and table["uid"][0] == "1.2.3"


def test_parallel_reading_gives_the_same_rows(folder):
    one = index_files(folder, read_uid, name="uid", cache=False)
    two = index_files(folder, read_uid, name="uid", n_jobs=2, cache=False)
    assert one.equals(two)


def test_no_complete_looking_index_before_the_rename(folder, tmp_path, monkeypatch):
    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        index_files(folder, read_uid, name="uid")
    assert not list((tmp_path / "data" / "index").glob("*.csv"))
