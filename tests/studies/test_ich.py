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

from medvid_core.params import keyword_names, load_params_file, read_parameters
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
    assert "max_slices" not in p  # experiment 1's 10,000 slices are its own draw, not the whole study's (issue 23)
    assert (p["exp1_slices"], p["exp1_test_size"], p["exp1_epochs"], p["exp1_lr"]) == (10000, 0.2, 50, 1e-3)
    assert [(r["epochs"], r["lr"]) for r in p["exp2_sgd_runs"]] == list(zip(ich.PAPER_SGD_RUNS["epochs"],
                                                                         ich.PAPER_SGD_RUNS["lr"]))
    assert p["exp2_tasks"] == ["binary", "multilabel"]


def test_notebook_defaults_run_both_heads_and_leave_the_sweep_off():
    spec = read_parameters(REPO_ROOT / "notebooks/ich.ipynb")
    assert spec["exp2_tasks"].default == ["binary", "multilabel"]  # the heading promises both heads
    assert spec["exp2_sgd_runs"].default == []  # three ResNet-152 runs are a GPU job
    assert 0 < spec["exp1_slices"].default < ich.PAPER_EXP1_SLICES and spec["exp1_test_size"].default == 0.2
    names = set(spec)
    assert {"exp1_slices", "exp1_epochs", "exp1_lr", "exp1_model", "exp1_balance", "exp1_test_size"} <= names
    assert names >= set(keyword_names(ich.experiment1)) - {"df", "store"}  # every keyword is a parameter
    assert names >= set(keyword_names(ich.sgd_sweep)) - {"df", "store"}


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
    assert list(ich.experiment2_table(exp2).index) == ["binary accuracy (any)", "binary recall (any)", "binary AUC (any)"]
    e1 = ich.experiment1(slices, store=store, exp1_slices=80, exp1_epochs=1, **kw)
    assert ich.experiment1_table(e1)["paper"].to_dict() == {"accuracy": 0.636, "recall": 0.67, "f1": 0.71, "auc": 0.761}
    assert (e1.extra["split"], e1.extra["width"], e1.extra["image_size"], len(e1.test)) == ("slices", 4, 24, 16)
    assert "the same network scores AUC" in ich.exp1_words(e1, table)  # CNN4 is in the leakage table


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


# ----------------------------------------------------------------------------- experiment 1, the SGD sweep, Table 4 (issue 23)
def _fake_trial(name, train, test, *, task, **kw):
    """Stands in for `run_trial`: records what it was given, scores nothing."""
    t = ich.Trial(name, task, None, [], test.assign(prob_any=0.5), {"any": {"auc": 0.5}, "mean_accuracy": 0.9,
                  "weighted_log_loss": 0.3}, 0.1, len(train), 0.0, {"best_epoch": 1, "train": train, **kw})
    return t


def test_experiment1_draws_per_seed_and_splits_by_slice(loaded, monkeypatch):
    """Experiment 1 draws `exp1_slices` slices, the same ones for one seed, and splits them 80/20 by slice:
    no slice on both sides, but heads on both sides (the leaky protocol), trained with Adam on `any`."""
    slices, store = loaded[1], loaded[2]
    monkeypatch.setattr(ich, "run_trial", _fake_trial)
    kw = dict(store=store, exp1_slices=60, exp1_epochs=3, exp1_lr=2e-3)
    a, b, c = (ich.experiment1(slices, seed=s, **kw) for s in (3, 3, 4))
    drawn = set(a.test["image"]) | set(a.extra["train"]["image"])
    assert len(drawn) == a.extra["drawn"] == 60 and a.extra["available"] == len(slices)
    assert not set(a.test["image"]) & set(a.extra["train"]["image"])
    assert len(a.test) == 12  # 20 % of 60
    shared = set(a.test["subject"]) & set(a.extra["train"]["subject"])
    assert shared and a.extra["leakage"]["n_shared"] == len(shared)  # one head on both sides
    assert list(a.test["image"]) == list(b.test["image"])  # the same draw and split for one seed
    assert drawn != set(c.test["image"]) | set(c.extra["train"]["image"])  # another seed, another draw
    assert (a.task, a.extra["optimizer"], a.extra["lr"], a.extra["epochs"]) == ("binary", "adam", 2e-3, 3)
    everything = ich.experiment1(slices, store=store, exp1_slices=0, exp1_epochs=1)
    assert everything.extra["drawn"] == len(slices)  # 0 keeps every slice
    words = ich.exp1_words(ich.Trial("cnn4", "binary", None, [], a.test, {"any": dict(
        accuracy=0.7, recall=0.0, f1=0.0, auc=0.8)}, 0.1, 48, 0.0, {**a.extra, "width": 8, "image_size": 24}))
    assert f"{a.extra['leakage']['n_shared']} of the {a.extra['leakage']['n_test']} test heads" in words
    assert "**by slice**" in words and "never predicts a bleed" in words and "AUC 0.80 (above the seed's 0.761)" in words


def test_sgd_sweep_trains_one_multilabel_run_per_entry(loaded, monkeypatch):
    slices, store = loaded[1], loaded[2]
    monkeypatch.setattr(ich, "run_trial", _fake_trial)
    runs = [{"run": "first", "epochs": 3, "lr": 1e-4}, {"epochs": 2, "lr": 1e-2}, {"epochs": 1, "lr": 5e-2}]
    sweep, trials = ich.sgd_sweep(slices, store=store, exp2_model="cnn4", exp2_sgd_runs=runs, middle_fraction=0.6,
                                  test_size=0.34)
    assert list(sweep["run"]) == ["first", "lr=0.01", "lr=0.05"] and list(sweep["lr"]) == [1e-4, 1e-2, 5e-2]
    assert list(sweep["epochs"]) == [3, 2, 1] and set(trials) == set(sweep["run"])
    assert all(t.task == "multilabel" and t.extra["optimizer"] == "sgd" for t in trials.values())
    assert [t.extra["lr"] for t in trials.values()] == [1e-4, 1e-2, 5e-2]
    assert not set(trials["first"].test["subject"]) & set(trials["first"].extra["train"]["subject"])
    side = ich.sgd_side_by_side(sweep)
    assert side.loc[1e-4, "paper_epochs"] == 150 and side.loc[1e-4, "epochs"] == 3
    assert side.loc[1e-3, "paper_run"] == "second" and math.isnan(side.loc[1e-3, "epochs"])  # not run: empty
    assert math.isnan(side.loc[5e-2, "paper_epochs"]) and len(side) == 4  # not the seed's: a row of its own
    assert "lr 0.0001 for 3 epochs" in ich.sgd_words(sweep) and "the best is" not in ich.sgd_words(sweep)  # a tie
    better = sweep.assign(auc_any=[0.6, 0.7, 0.65])
    assert ich.sgd_words(better).endswith("By AUC of `any` the best is lr 0.01.")
    empty, none = ich.sgd_sweep(slices, store=store, exp2_model="cnn4", exp2_sgd_runs=[])
    assert empty.empty and none == {} and len(ich.sgd_side_by_side(empty)) == 3
    assert "Not run here" in ich.sgd_words(empty) and "lr 0.0001 for 150 epochs" in ich.sgd_words(empty)
    with pytest.raises(ValueError, match=r"exp2_sgd_runs\[0\]"):
        ich.sgd_sweep(slices, store=store, exp2_model="cnn4", exp2_sgd_runs=[{"lr": 1e-3}])


def test_dataset_sizes_beside_table4(loaded):
    slices = loaded[1]
    sizes = ich.dataset_sizes(slices, middle_fraction=0.6, test_size=0.34, exp1_slices=60, exp1_test_size=0.2, seed=0)
    assert sizes.equals(ich.dataset_sizes(slices, middle_fraction=0.6, test_size=0.34, exp1_slices=60,
                                          exp1_test_size=0.2, seed=0))  # deterministic: an NBVAL_CHECK_OUTPUT cell
    binary, multi = sizes.iloc[1], sizes.iloc[2]
    assert (binary["paper_train"], binary["paper_test"]) == ich.PAPER_DATASETS["binary"] == (78116, 19529)
    assert (multi["paper_train"], multi["paper_test"]) == ich.PAPER_DATASETS["multilabel"] == (22501, 5756)
    assert binary["train"] + binary["test"] == len(ich.middle_slices(slices, middle_fraction=0.6)) < len(slices)
    e1 = sizes.iloc[0]
    assert (e1["train"], e1["test"], e1["paper_train"], e1["paper_test"]) == (48, 12, 8000, 2000)
    assert binary["paper_test_share"] == 0.2


def _trial(task, test, scores=None):
    return ich.Trial("resnet152", task, None, [], test, scores or ich.score(test, task), 0.9, 100, 0.0,
                     {"best_epoch": 1, "width": 0.125, "image_size": 56, "epochs": 5})


def test_findings_and_measures_for_experiment1_and_the_binary_head():
    rng = np.random.default_rng(0)
    y = np.tile([1, 0, 0, 0], 30)
    test = pd.DataFrame({"subject": np.repeat([f"s{k}" for k in range(12)], 10), "any": y})
    good = _trial("binary", test.assign(prob_any=np.where(y == 1, 0.9, 0.1) + rng.uniform(-0.05, 0.05, len(y))))
    flat = _trial("binary", test.assign(prob_any=0.2))
    leak = pd.DataFrame([("cnn4", "slices", 0.8), ("cnn4", "subjects", 0.6)], columns=["model", "split", "auc"])
    rows = {f["claim"].split(":")[0]: f for f in ich.findings(leak, {"binary": good}, good)}
    assert rows["Experiment 1"]["holds"] is True and rows["Experiment 1"]["ours"] == pytest.approx(0.5)
    assert rows["Binary ResNet-152"]["holds"] is True and rows["Binary ResNet-152"]["ours"] == pytest.approx(0.25)
    rows = {f["claim"].split(":")[0]: f for f in ich.findings(leak, {"binary": flat}, flat)}
    assert rows["Experiment 1"]["holds"] is False and rows["Binary ResNet-152"]["holds"] is False  # 0.75 = the answer
    m = ich.measures({}, {"binary": good}, good)
    assert {"exp1 auc", "exp1 accuracy", "exp2 binary any auc", "exp2 binary accuracy"} <= set(m)
    assert m["exp1 accuracy"].n == 12 and m["exp1 auc"].chance == 0.5  # resampled over heads
    table = ich.experiment2_table({"binary": flat})
    assert table.loc["binary accuracy (any)", "no_bleed_answer"] == 0.75 and table.loc["binary accuracy (any)", "paper"] == 0.84
    words = ich.exp2_words({"binary": flat}, {})
    assert "width 0.125 (0.90 M parameters) on 56-pixel crops for 5 epochs" in words and "equal to that answer" in words
