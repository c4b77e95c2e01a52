"""ICH study glue: skip log and counts, splits and their leakage, balancing, one tiny training run, paper numbers."""
from __future__ import annotations

import math
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from medvid_core.params import load_params_file
from medvid_core.paths import REPO_ROOT
from medvid_core.studies import ich
from medvid_core.synth.head_ct import generate_cohort


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return generate_cohort(tmp_path_factory.mktemp("ich") / "tiny", preset="tiny", seed=1)


@pytest.fixture(scope="module")
def loaded(tiny, tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:  # the slice store and the header index in a folder of the test's own
        mp.setenv("MEDVID_DATA", str(tmp_path_factory.mktemp("data")))
        return ich.load_cohort(data_root=str(tiny), load_size=32)


@pytest.fixture
def data(tmp_path, monkeypatch):
    """A fresh data_dir() for one test."""
    monkeypatch.setenv("MEDVID_DATA", str(tmp_path / "data"))
    return tmp_path / "data"


@pytest.fixture
def decodes(monkeypatch):
    """Files given to `prepare_slice` (decoding in this process, n_jobs=1), and an optional file at which it dies."""
    calls, real = [], ich.prepare_slice
    state = {"die_at": None}

    def counted(file, **kw):
        calls.append(file)
        if state["die_at"] is not None and len(calls) == state["die_at"]:
            raise KeyboardInterrupt  # a build killed midway (Ctrl-C, a kernel restart)
        return real(file, **kw)

    monkeypatch.setattr(ich, "prepare_slice", counted)
    return calls, state


def test_skip_log_and_counts(loaded, tiny):
    root, slices, store, skip_log, counts = loaded
    truth = pd.read_csv(tiny / "truth.csv")
    corrupt = truth.loc[truth["corrupt"], "image"].iloc[0]
    assert counts["dicom_files"] == len(truth)
    assert counts["unannotated"] == (~truth["annotated"]).sum() > 0  # counted, not trained on
    assert len(skip_log) == 1 and corrupt in skip_log["file"].iloc[0]
    assert "pixel data" in skip_log["reason"].iloc[0]
    # nothing else is dropped: every annotated, readable slice is usable
    assert set(slices["image"]) == set(truth.loc[truth["annotated"] & ~truth["corrupt"], "image"])
    assert store.stack(slices["image"][:3]).shape == (3, 3, 32, 32)
    assert store.stack(slices["image"][:3]).dtype == torch.float16


def test_corrupt_and_truncated_files_land_in_the_skip_log(tiny, tmp_path, data):
    root = shutil.copytree(tiny, tmp_path / "copy")
    truth = pd.read_csv(root / "truth.csv")
    ok = truth[truth["annotated"] & ~truth["corrupt"]]["image"].tolist()
    head_cut, pixel_cut = root / "stage_2_train" / f"{ok[0]}.dcm", root / "stage_2_train" / f"{ok[1]}.dcm"
    head_cut.write_bytes(head_cut.read_bytes()[:200])  # header cut short
    pixel_cut.write_bytes(pixel_cut.read_bytes()[:-500])  # pixel data cut short
    _, slices, _, skip_log, counts = ich.load_cohort(data_root=str(root), load_size=32)
    names = {f.split("/")[-1][:-4] for f in skip_log["file"]}
    assert {ok[0], ok[1]} <= names and len(skip_log) == 3
    assert skip_log["reason"].str.len().gt(0).all()
    assert len(slices) == len(truth[truth["annotated"] & ~truth["corrupt"]]) - 2


def test_subject_split_has_no_overlap_and_slice_split_does(loaded):
    slices = loaded[1]
    tr, te, rep = ich.split(slices, by="subjects", test_size=0.34, seed=0)
    assert rep["n_shared"] == 0 and not set(tr["subject"]) & set(te["subject"])
    tr, te, rep = ich.split(slices, by="slices", test_size=0.15, seed=0)
    assert rep["n_shared"] > 0 and rep["test_fraction_shared"] > 0.5
    assert len(tr) + len(te) == len(slices)
    with pytest.raises(ValueError, match="slices"):
        ich.split(slices, by="patients")


def test_subject_split_takes_pyarrow_backed_subject_ids(loaded):
    pytest.importorskip("pyarrow")  # pandas 3 stores strings in pyarrow when installed; sklearn must get an array
    slices = loaded[1]
    arrow = slices.astype({"subject": "string[pyarrow]"})
    ours = ich.split(arrow, by="subjects", test_size=0.34, seed=0)[1]
    assert set(ours["subject"]) == set(ich.split(slices, by="subjects", test_size=0.34, seed=0)[1]["subject"])


def test_middle_slices():
    df = pd.DataFrame({"position": np.linspace(0, 1, 11)})
    assert len(ich.middle_slices(df, middle_fraction=1.0)) == 11
    mid = ich.middle_slices(df, middle_fraction=0.6)
    assert mid["position"].min() == pytest.approx(0.2) and mid["position"].max() == pytest.approx(0.8)
    with pytest.raises(ValueError):
        ich.middle_slices(df, middle_fraction=0)


def test_balancing():
    y = np.array([1] * 10 + [0] * 90)
    idx = ich.hybrid_resample(y, seed=0)
    assert len(idx) == 100 and y[idx].sum() == 50  # minority up, majority down, to the mean size
    assert len(set(idx[y[idx] == 0])) == 50  # negatives under-sampled without repeats
    w = ich.pos_weight(np.array([[1, 0], [0, 0], [0, 0], [1, 0]]))
    assert w.tolist() == [1.0, 1.0]
    assert ich.pos_weight(np.array([[1], [0], [0], [0]])).tolist() == [3.0]


def test_tiny_multilabel_run_scores_everything(loaded):
    slices, store = loaded[1], loaded[2]
    tr, te, _ = ich.split(slices, by="subjects", test_size=0.34, seed=0)
    t = ich.run_trial("cnn4", tr, te, store=store, task="multilabel", image_size=24, epochs=1, lr=1e-3,
                      optimizer="sgd", balance="hybrid", batch_size=16, cnn4_width=4)
    assert t.model.fc.num_outputs == 5 and len(t.history) == 1
    assert {f"prob_{c}" for c in ich.SUBTYPES} <= set(t.test.columns)
    assert (t.test["prob_any"] >= t.test[[f"prob_{c}" for c in ich.BLEEDS]].max(axis=1) - 1e-6).all()
    assert math.isfinite(t.scores["weighted_log_loss"]) and 0 <= t.scores["mean_accuracy"] <= 1
    assert list(ich.multilabel_table(t).index) == ich.BLEEDS + ["any"]
    with pytest.raises(ValueError, match="task"):
        ich.run_trial("cnn4", tr, te, store=store, task="multiclass", image_size=24, epochs=1, lr=1e-3)


def test_paper_numbers_and_side_by_side():
    p = ich.PAPER_LEAKAGE.set_index(["model", "split"])
    assert p.loc[("vgg16", "slices"), "accuracy"] == 0.968 and p.loc[("cnn4", "subjects"), "auc"] == 0.658
    ours = ich.PAPER_LEAKAGE.assign(shared_subjects=[9, 0, 9, 0], test_slices_of_shared_subjects=[1.0, 0, 1.0, 0])
    side = ich.leakage_side_by_side(ours)
    assert (side["accuracy"] == side["paper_accuracy"]).all()
    assert ich.PAPER_RSNA["unannotated"] == 78546


def test_paper_params_file():
    p = load_params_file(REPO_ROOT / "params/ich/paper.yaml")
    assert (p["load_size"], p["image_size"], p["batch_size"]) == (256, 224, 32)
    assert (p["leakage_epochs"], p["exp2_epochs"], p["exp2_lr"]) == ({"cnn4": 150, "vgg16": 150}, 50, 1e-2)
    assert p["leakage_lr"] == {"cnn4": 1e-3, "vgg16": 1e-3}
    assert p["exp2_model"] == "resnet152" and p["vgg_width"] == p["resnet_width"] == 1.0
    assert (p["n_jobs"], p["num_workers"], p["middle_fraction"]) == (8, 8, 0.145)
    assert round(sum(ich.PAPER_DATASETS["binary"]) / ich.PAPER_RSNA["labelled_images"], 3) == p["middle_fraction"]
    assert "max_slices" not in p  # experiment 1's 10,000 slices would subsample the whole study (issue 23)


def test_leakage_table_and_experiment2_run_end_to_end(loaded):
    slices, store = loaded[1], loaded[2]
    kw = dict(image_size=24, batch_size=16, cnn4_width=4)
    table, trials = ich.leakage_table(slices, store=store, leakage_models=["cnn4"], leakage_epochs=1,
                                      leakage_lr=1e-3, test_size=0.34, **kw)
    assert list(table["split"]) == ["slices", "subjects"] and set(trials) == {("cnn4", "slices"), ("cnn4", "subjects")}
    assert table.set_index("split").loc["subjects", "shared_subjects"] == 0
    assert table.set_index("split").loc["slices", "shared_subjects"] > 0
    side = ich.leakage_side_by_side(table)
    assert side.loc[("cnn4", "subjects"), "paper_accuracy"] == 0.6  # 0.598 rounded, beside ours
    exp2 = ich.experiment2(slices, store=store, exp2_model="cnn4", exp2_tasks=["binary"], exp2_epochs=1,
                           exp2_lr=1e-2, middle_fraction=0.6, test_size=0.34, **kw)
    assert set(exp2) == {"binary"} and exp2["binary"].extra["leakage"]["n_shared"] == 0
    assert exp2["binary"].test["position"].between(0.2 - 1e-9, 0.8 + 1e-9).all()
    assert list(ich.experiment2_table(exp2).index) == ["binary accuracy (any)"]


def test_leakage_lr_per_model(loaded, monkeypatch):
    """A mapping gives each network its own Adam step; a network without one is refused by name, before training."""
    slices, store = loaded[1], loaded[2]
    seen = []

    def fake(name, train, test, *, lr, **kw):
        seen.append((name, lr))
        raise StopIteration  # stop after the first call: only the lr routing is under test

    monkeypatch.setattr(ich, "run_trial", fake)
    with pytest.raises(StopIteration):
        ich.leakage_table(slices, store=store, leakage_models=["vgg16"], leakage_epochs=1,
                          leakage_lr={"cnn4": 1e-3, "vgg16": 1e-4})
    assert seen == [("vgg16", 1e-4)]
    with pytest.raises(ValueError, match="leakage_lr has no value for vgg16"):
        ich.leakage_table(slices, store=store, leakage_models=["cnn4", "vgg16"], leakage_epochs=1,
                          leakage_lr={"cnn4": 1e-3})
    assert seen == [("vgg16", 1e-4)]  # refused before any training


def test_leakage_epochs_per_model(loaded, monkeypatch):
    """Epochs per network too: the laptop run gives CNN4 the epochs to memorise heads and VGG16 fewer."""
    slices, store = loaded[1], loaded[2]
    seen = []

    def fake(name, train, test, *, epochs, **kw):
        seen.append((name, epochs))
        raise StopIteration  # only the epochs routing is under test

    monkeypatch.setattr(ich, "run_trial", fake)
    with pytest.raises(StopIteration):
        ich.leakage_table(slices, store=store, leakage_models=["cnn4", "vgg16"], leakage_epochs={"cnn4": 12, "vgg16": 4},
                          leakage_lr=1e-3)
    assert seen == [("cnn4", 12)]
    with pytest.raises(ValueError, match="leakage_epochs has no value for vgg16"):
        ich.leakage_table(slices, store=store, leakage_models=["cnn4", "vgg16"], leakage_epochs={"cnn4": 12},
                          leakage_lr=1e-3)


def test_findings_judge_the_leak_by_its_rule():
    leak = pd.DataFrame([("cnn4", "slices", 0.80), ("cnn4", "subjects", 0.66), ("vgg16", "slices", 0.70),
                         ("vgg16", "subjects", 0.68)], columns=["model", "split", "auc"])
    found = {f["claim"].split(":")[0]: f for f in ich.findings(leak, {})}
    assert found["CNN4"]["ours"] == pytest.approx(0.14) and found["CNN4"]["holds"] is True
    assert found["VGG16"]["holds"] is False and "0.98 vs 0.66" in found["CNN4"]["paper"]
    assert "CNN4 scores AUC 0.80 on the slice split against 0.66" in ich.leak_words(leak)


# ----------------------------------------------------------------------------- the on-disk slice store (issue 25)
def test_store_gives_the_tensors_prepare_slice_gives(loaded, data):
    """Lazy == in-memory: every slice read back from disk is bit for bit the float16 tensor of `prepare_slice`,
    decoded in this process or on two forked ones."""
    slices, store = loaded[1], loaded[2]
    assert len(store) == len(store.tensors) == len(slices) and store.nbytes() == len(slices) * 3 * 32 * 32 * 2
    for image, file in zip(slices["image"], slices["file"]):
        got, want = store.get(image), ich.prepare_slice(file, load_size=32)
        assert got.dtype == torch.float16 and torch.equal(got, want)
    assert torch.equal(store.stack(slices["image"][:5]), torch.stack([store.tensors[i] for i in slices["image"][:5]]))
    forked = ich.SliceStore(load_size=32, folder=data / "forked")
    assert forked.load(slices, n_jobs=2).equals(slices)
    assert all(torch.equal(forked.get(i), store.get(i)) for i in slices["image"])
    # the dataset reads its slices from the store; the centre crop of a test item is the stored slice's
    ds = ich.SliceDataset(store, slices["image"][:3], torch.zeros(3, 1), image_size=24, mean=[0, 0, 0], std=[1, 1, 1],
                          train=False)
    assert torch.equal(ds[1][0], store.get(slices["image"][1]).float()[:, 4:28, 4:28])


def test_store_rebuilt_when_the_bytes_change_and_reused_otherwise(tiny, data, decodes):
    calls, _ = decodes
    df = ich.index_cohort(tiny)[0]
    first = ich.SliceStore(load_size=32)
    kept = first.load(df)
    assert len(calls) == len(df) and first.folder.parent == data / "ich" and first.built
    corrupt = first.skip_log.copy()
    again = ich.SliceStore(load_size=32)
    assert again.load(df).equals(kept) and len(calls) == len(df) and not again.built  # reused: nothing decoded
    assert again.folder == first.folder and again.skip_log.equals(corrupt)  # the skip log comes back with it
    assert torch.equal(again.get(kept["image"][0]), first.get(kept["image"][0]))
    other = ich.SliceStore(load_size=24)
    other.load(df)
    assert len(calls) == 2 * len(df) and other.get(kept["image"][0]).shape == (3, 24, 24)  # load_size changes the bytes
    os.utime(df["file"][0], ns=(0, 10**18))  # a replaced file changes the listing: rebuilt
    ich.SliceStore(load_size=32).load(df)
    assert len(calls) == 3 * len(df)


def test_a_killed_store_build_leaves_nothing_complete(tiny, data, decodes):
    calls, state = decodes
    df = ich.index_cohort(tiny)[0]
    state["die_at"] = len(df) // 2
    with pytest.raises(KeyboardInterrupt):
        ich.SliceStore(load_size=32).load(df)
    assert not list((data / "ich").glob("slices-*"))  # only hidden leftovers at most, nothing that looks complete
    state["die_at"] = None
    calls.clear()
    store = ich.SliceStore(load_size=32)
    kept = store.load(df)
    assert len(calls) == len(df) and len(kept) == len(df) - 1 and (store.folder / "STAMP.json").exists()


def test_corrupt_slice_is_in_the_store_skip_log(loaded, tiny):
    store = loaded[2]
    truth = pd.read_csv(tiny / "truth.csv")
    corrupt = truth.loc[truth["corrupt"], "image"].iloc[0]
    file = str(tiny / "stage_2_train" / f"{corrupt}.dcm")
    with pytest.raises(ich.DicomError) as exc:
        ich.prepare_slice(file, load_size=32)
    # the row the in-memory store wrote: the file and the reader's message after "<file>: "
    assert store.skip_log.to_dict("records") == [{"file": file, "reason": str(exc.value).split(": ", 1)[-1]}]
    assert "pixel data" in store.skip_log["reason"][0]
    assert corrupt not in store and corrupt not in set(loaded[1]["image"])


def test_max_slices_draws_that_many_before_decoding(tiny, data, decodes):
    calls, _ = decodes
    _, a, store, skip_log, counts = ich.load_cohort(data_root=str(tiny), load_size=32, max_slices=20, seed=3)
    assert counts["sampled_slices"] == 20 and len(calls) == 20 == len(a) + len(store.skip_log)  # only those decoded
    _, b, *_ = ich.load_cohort(data_root=str(tiny), load_size=32, max_slices=20, seed=3)
    assert list(a["image"]) == list(b["image"])  # the same draw for a seed (and the cached store reused)
    assert len(calls) == 20
    c = ich.sample_slices(ich.index_cohort(tiny)[0], max_slices=20, seed=4)
    assert set(c["image"]) != set(a["image"])
    full = ich.index_cohort(tiny)[0]
    assert ich.sample_slices(full, max_slices=0).equals(full)
    assert a["image"].isin(full["image"]).all()
    with pytest.raises(ValueError, match="max_slices"):
        ich.sample_slices(full, max_slices=-1)


def test_mean_std_rows_are_all_rows_when_small_and_bounded_by_bytes():
    assert np.array_equal(ich.mean_std_rows(2730, load_size=64), np.arange(2730))  # a shipped cohort: every row
    k = ich.MEAN_STD_BYTES // (3 * 256 * 256 * 4)
    rows = ich.mean_std_rows(500_000, load_size=256, seed=1)
    assert len(rows) == k == 170 and np.all(np.diff(rows) > 0)
    assert np.array_equal(rows, ich.mean_std_rows(500_000, load_size=256, seed=1))


def test_num_workers_runs_are_deterministic(loaded):
    slices, store = loaded[1], loaded[2]
    tr, te, _ = ich.split(slices, by="subjects", test_size=0.34, seed=0)
    kw = dict(store=store, task="binary", image_size=24, epochs=2, lr=1e-3, batch_size=16, cnn4_width=4, num_workers=2)
    a = ich.run_trial("cnn4", tr, te, **kw)
    b = ich.run_trial("cnn4", tr, te, **kw)
    assert np.array_equal(a.test["prob_any"].to_numpy(), b.test["prob_any"].to_numpy())
    assert [h["train_loss"] for h in a.history] == [h["train_loss"] for h in b.history]
