"""ViPTT-Net study glue: metrics (kappa = scikit-learn's), class weights, train-only weighting, video
reading rules (first D frames, short clips dropped and reported), SIZ'd cohort, pretraining -> checkpoint
-> head swap, a tiny end-to-end table beside the paper's; the decode-once clip stores (lazy clips equal to the
in-memory ones, rebuilt on a changed parameter only, a killed build never complete) and seeded loading workers."""
from __future__ import annotations

import multiprocessing
import os
import signal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import cohen_kappa_score, f1_score

from medvid_core.cache import STAMP
from medvid_core.io.video import read_video
from medvid_core.losses import class_weights
from medvid_core.studies import viptt_net as vn
from medvid_core.synth import action_video, chest_ct

SMALL = dict(depth=6, height=32, width=32)
NET = dict(vgg_width=0.0625, hidden=8, fc_hidden=16)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    base = tmp_path_factory.mktemp("viptt")
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(action_video.PRESETS, "tiny", action_video.Preset(groups=2, clips_per_group=(1, 1), frames=(4, 9),
                                                                     width=48, height=40))
        mp.setitem(chest_ct.PRESETS, "tiny", chest_ct.Preset(train=(5, 5, 5, 5, 5), test=(2, 2, 1, 1, 1), size=40,
                                                             thickness=(10.0,)))
        action_video.make_action_videos(base / "videos", "tiny", seed=0)
        chest_ct.make_cohort(base / "ct", "tiny", seed=0, n_jobs=1)
        mp.setenv("MEDVID_DATA", str(base / "data"))  # the clip stores go here, not into the repository's data/
        videos = vn.load_videos(video_root=str(base / "videos"), n_jobs=1, **SMALL)
        ct = vn.load_ct(ct_root=str(base / "ct"), n_jobs=1, **SMALL)
    return base, videos, ct


def stores(data_root: Path, kind: str) -> list[Path]:
    """The finished clip stores of `kind` under a data folder (hidden names are builds in progress or killed)."""
    folder = data_root / "viptt_net" / "clips"
    return sorted(p for p in folder.glob(f"{kind}-*")) if folder.exists() else []


def in_memory_videos(root: Path, depth: int, height: int, width: int):
    """The arrays `load_videos` held in memory before the clip store: (clips, labels, files, dropped)."""
    classes = list(vn.PAPER_ACTIONS)
    files = [(str(p), k) for k, c in enumerate(classes) for p in sorted((root / "UCF50" / c).glob("*.avi"))]
    read = [vn._read_clip(f, depth, height, width) for f, _ in files]
    keep = [i for i, (clip, _) in enumerate(read) if clip is not None]
    dropped = pd.DataFrame([{"file": Path(files[i][0]).name, "class": classes[files[i][1]], "frames": read[i][1]}
                            for i in range(len(files)) if read[i][0] is None], columns=["file", "class", "frames"])
    return (np.stack([read[i][0] for i in keep]), np.array([files[i][1] for i in keep]), [files[i][0] for i in keep],
            dropped)


def test_kappa_f1_confusion_equal_scikit_learn():
    rng = np.random.default_rng(0)
    logits, y = torch.randn(60, 5), torch.from_numpy(rng.integers(0, 5, 60))
    s = vn.tbt_scores(logits, y)
    pred = logits.argmax(1).numpy()
    assert s["kappa"] == pytest.approx(cohen_kappa_score(y.numpy(), pred))
    assert np.allclose(s["f1"], f1_score(y.numpy(), pred, average=None, labels=range(5)))
    assert np.array(s["confusion"]).sum() == 60 and s["accuracy"] == pytest.approx((pred == y.numpy()).mean())
    assert vn.tbt_scores(torch.eye(5), torch.arange(5))["kappa"] == pytest.approx(1.0)


def test_undefined_kappa_stays_nan_not_chance():
    """One class in both labels and predictions: kappa is undefined, reported as NaN (not 0.0, chance)."""
    logits = torch.zeros(6, 5)
    logits[:, 2] = 1.0  # every scan predicted type 2, and every label is type 2
    with pytest.warns(UserWarning, match="undefined"):
        s = vn.tbt_scores(logits, torch.full((6,), 2))
    assert np.isnan(s["kappa"]) and s["accuracy"] == 1.0
    with pytest.warns(UserWarning, match="undefined"):
        assert np.isnan(vn.epoch_metrics(logits, torch.full((6,), 2))["kappa"])  # what early stopping sees


def test_class_weights_of_the_authors_split():
    """The authors' 732-scan split (335/180/81/80/56): the rarest type weighs most, n / (k * n_c)."""
    labels = np.repeat(np.arange(5), [335, 180, 81, 80, 56])
    w = class_weights(labels, 5)
    assert torch.allclose(w, torch.tensor([732 / (5 * c) for c in (335, 180, 81, 80, 56)]))
    assert w.argmax() == 4 and w.argmin() == 0


def test_weighted_loss_applies_in_training_only():
    out, y = torch.randn(8, 5, requires_grad=True), torch.tensor([0, 0, 0, 0, 1, 2, 3, 4])
    loss = vn.TrainWeightedCE(torch.tensor([0.2, 1.0, 2.0, 3.0, 4.0]))
    plain = torch.nn.functional.cross_entropy(out, y)
    assert not torch.isclose(loss(out, y), plain)
    with torch.no_grad():
        assert torch.isclose(loss(out, y), plain)


def test_videos_first_frames_and_dropped_clips(data):
    base, videos, _ = data
    truth = pd.read_csv(base / "videos" / "clips.csv")
    assert videos.clips.shape[1:] == (6, 32, 32) and videos.clips.dtype == np.uint8
    assert all(len(read_video(base / "videos" / p)) < 6 for p in truth.path[truth.frames < 6])
    assert len(videos.labels) == (truth.frames >= 6).sum()
    assert sorted(videos.dropped.file) == sorted(p.split("/")[-1] for p in truth.path[truth.frames < 6])
    assert len(videos.dropped) > 0  # the tiny preset has clips of 4-9 frames


def test_cohort_siz_and_stratified_split(data):
    _, _, ct = data
    assert len(ct.train) == 20 and len(ct.val) == 5 and len(ct.test) == 7
    assert sorted(ct.val.label) == [0, 1, 2, 3, 4]  # stratified: one of each type in 5 validation scans
    clip = ct.clips[ct.train.FileName[0]]
    assert clip.shape == (6, 32, 32) and 0 <= clip.min() and clip.max() <= 1
    assert not set(ct.train.FileName) & set(ct.val.FileName)


def test_pretrain_checkpoint_head_swap(data, tmp_path):
    _, videos, _ = data
    pre = vn.pretrain(videos, checkpoint=tmp_path / "pt.pt", pretrain_epochs=2, lr=0.01, momentum=0.9, **NET)
    assert pre.checkpoint.exists() and len(pre.history) == 2
    model = vn.pretrained_for_tb(pre.checkpoint, **NET)
    assert model.fc.out_features == 5
    for name, p in pre.model.rnn.named_parameters():
        assert torch.equal(p, dict(model.rnn.named_parameters())[name])
    assert torch.equal(pre.model.backbone[0].weight, model.backbone[0].weight)
    assert all(p.requires_grad for p in model.parameters())  # fine-tuning trains every layer


def test_tiny_table_beside_the_paper(data, tmp_path):
    _, videos, ct = data
    pre = vn.pretrain(videos, checkpoint=tmp_path / "pt.pt", pretrain_epochs=1, **NET)
    table, trials = vn.run_table(ct, ["No PT", "PT+CW+AUG"], checkpoint=pre.checkpoint, epochs=2, lr=0.01,
                                 momentum=0.9, **NET)
    assert list(table.method) == ["No PT", "PT+CW+AUG"] and (table.epochs_run == 2).all()
    side1, side2 = vn.table1_side_by_side(table), vn.table2_side_by_side(table)
    assert side1.loc[1, "paper kappa"] == 0.33 and side1.loc[0, "paper Tuberculoma"] == 0.0
    assert np.isnan(side2.loc[0, "paper kappa"]) and side2.loc[1, "paper accuracy %"] == 42.3
    assert len(trials["No PT"].test["confusion"]) == 5
    with pytest.raises(ValueError, match="needs the pretraining checkpoint"):
        vn.finetune(ct, "PT", epochs=1, **NET)


def test_cpu_recipe_adamw_and_early_stopping_on_kappa(data):
    """The CPU defaults' knobs: VGG-16-BN, frame norm, AdamW, best weights chosen by validation kappa."""
    _, _, ct = data
    t = vn.finetune(ct, "No PT", epochs=4, early_stopping=10, batch_norm=True, frame_norm=True, optimizer="adamw",
                    lr=1e-3, batch_size=4, monitor="val_kappa", **NET)
    kappas = [r["val_kappa"] for r in t.history]
    assert len(kappas) == 4
    assert t.history.best_epoch == t.history[int(np.argmax(kappas))]["epoch"]
    assert t.val["kappa"] == pytest.approx(max(kappas))  # the restored weights are the best epoch's
    with pytest.raises(ValueError, match="optimizer"):
        vn.finetune(ct, "No PT", epochs=1, optimizer="adam", **NET)


def test_findings_take_each_recipe_step_against_the_one_before():
    table = pd.DataFrame({"method": ["No PT", "PT", "PT+CW", "PT+CW+AUG"], "test_kappa": [0.10, 0.19, 0.16, 0.23]})
    f = vn.findings(table)
    assert [x["holds"] for x in f] == [True, False, True]
    assert [x["ours"] for x in f] == pytest.approx([0.09, -0.03, 0.07])
    assert f[0]["paper"] == "validation +0.18" and f[1]["paper"] == "validation -0.05, test +0.01"


# --------------------------------------------------------------------------- the decode-once clip stores


def test_lazy_ct_clips_equal_ct_to_clip_of_each_file(data):
    base, _, ct = data
    train_all = pd.concat([ct.train, ct.val])
    assert len(ct.clips) == len(train_all) + len(ct.test)
    for df in (train_all, ct.test):
        for name, path in zip(df.FileName, df.path):
            clip = ct.clips[name]
            assert clip.dtype == np.float16 and np.array_equal(clip, vn.ct_to_clip(str(path), **SMALL))
    assert ct.clips.store.folder.is_relative_to(base / "data" / "viptt_net" / "clips")


def test_lazy_dataset_gives_the_in_memory_tensors(data):
    """Same transform, same random draws in the same order: the rotation-augmented training set read from the
    store gives the tensors the in-memory list gave."""
    _, _, ct = data
    lazy = vn.ct_dataset(ct, "train", augment=True)
    eager = vn.ClipDataset([vn.ct_to_clip(str(p), **SMALL) for p in ct.train.path], ct.train.label.to_numpy(),
                           transform=vn.RandomVolumeRotation(angles=vn.ROTATION_ANGLES))
    torch.manual_seed(3)
    got = [lazy[i] for i in range(len(lazy))]
    torch.manual_seed(3)
    want = [eager[i] for i in range(len(eager))]
    for (x, y), (u, v) in zip(got, want):
        assert x.dtype == torch.float32 and x.shape == (1, 6, 32, 32) and torch.equal(x, u) and y == v


def test_lazy_videos_equal_the_in_memory_arrays(data, tmp_path, monkeypatch):
    base, videos, ct = data
    clips, labels, files, dropped = in_memory_videos(base / "videos", **SMALL)
    assert videos.clips.shape == clips.shape and videos.clips.dtype == clips.dtype
    assert np.array_equal(np.stack(list(videos.clips)), clips)
    assert np.array_equal(videos.labels, labels) and videos.files == files
    pd.testing.assert_frame_equal(videos.dropped, dropped)
    assert np.array_equal(videos.clips[1:3][1], clips[2])
    monkeypatch.setenv("MEDVID_DATA", str(tmp_path))  # n_jobs decodes in forked processes: the same bytes
    again = vn.load_videos(video_root=str(base / "videos"), n_jobs=2, **SMALL)
    assert again.clips.store.folder.is_relative_to(tmp_path) and np.array_equal(np.stack(list(again.clips)), clips)
    ct2 = vn.load_ct(ct_root=str(base / "ct"), n_jobs=2, **SMALL)
    assert all(np.array_equal(ct2.clips[n], ct.clips[n]) for n in ct.clips)


def test_clip_cache_rebuilt_when_depth_changes_and_reused_otherwise(data, monkeypatch):
    base, _, _ = data
    data_root = base / "data"
    monkeypatch.setenv("MEDVID_DATA", str(data_root))
    calls = []

    def counting(fn):
        def wrapped(*a, **k):
            calls.append(a[0])
            return fn(*a, **k)
        return wrapped

    monkeypatch.setattr(vn, "ct_to_clip", counting(vn.ct_to_clip))
    monkeypatch.setattr(vn, "_video_clip", counting(vn._video_clip))
    [ct_store], [video_store] = stores(data_root, "ct"), stores(data_root, "videos")
    stamps = {p: (p / STAMP).stat().st_mtime_ns for p in (ct_store, video_store)}
    ct = vn.load_ct(ct_root=str(base / "ct"), n_jobs=1, **SMALL)
    videos = vn.load_videos(video_root=str(base / "videos"), n_jobs=1, **SMALL)
    assert calls == [] and ct.clips.store.folder == ct_store and videos.clips.store.folder == video_store
    assert {p: (p / STAMP).stat().st_mtime_ns for p in stamps} == stamps  # reused, not rewritten
    deeper = {**SMALL, "depth": 5}
    ct5 = vn.load_ct(ct_root=str(base / "ct"), n_jobs=1, **deeper)
    assert len(calls) == len(ct5.clips)
    assert len(stores(data_root, "ct")) == 2 and ct5.clips.store.folder != ct_store
    name, path = ct5.train.FileName[0], ct5.train.path[0]
    assert ct5.clips[name].shape == (5, 32, 32) and np.array_equal(ct5.clips[name], vn.ct_to_clip(str(path), **deeper))
    calls.clear()
    videos5 = vn.load_videos(video_root=str(base / "videos"), n_jobs=1, **deeper)
    assert len(calls) == len(videos5.files) + len(videos5.dropped) and len(stores(data_root, "videos")) == 2
    assert len(videos5.dropped) < len(vn.load_videos(video_root=str(base / "videos"), n_jobs=1, **SMALL).dropped)


def test_killed_cache_build_leaves_nothing_that_looks_complete(data, tmp_path, monkeypatch):
    base, _, ct = data
    monkeypatch.setenv("MEDVID_DATA", str(tmp_path))
    real = vn.ct_to_clip

    def build_and_die():
        done = []

        def dies_on_the_third(*a, **k):
            if len(done) == 2:
                os.kill(os.getpid(), signal.SIGKILL)
            done.append(a[0])
            return real(*a, **k)

        vn.ct_to_clip = dies_on_the_third  # in the forked child only
        vn.load_ct(ct_root=str(base / "ct"), n_jobs=1, **SMALL)

    child = multiprocessing.get_context("fork").Process(target=build_and_die)
    child.start()
    child.join(120)
    assert child.exitcode == -signal.SIGKILL
    clips = tmp_path / "viptt_net" / "clips"
    assert [p.name for p in clips.iterdir() if p.is_dir() and not p.name.startswith(".")] == []
    assert list(clips.rglob(STAMP)) == [] and list(clips.rglob("index.csv")) == []
    assert any(p.name.startswith(".ct-") and ".tmp-" in p.name for p in clips.iterdir())  # the killed build's leftovers
    again = vn.load_ct(ct_root=str(base / "ct"), n_jobs=1, **SMALL)  # the next run builds it whole
    assert [p.name for p in clips.iterdir() if ".tmp-" in p.name] == []
    assert all(np.array_equal(again.clips[n], ct.clips[n]) for n in ct.clips)


def test_bad_scan_is_a_one_line_error_naming_the_file(data, tmp_path, monkeypatch):
    base, _, ct = data
    root = tmp_path / "ct"
    (root / "train").mkdir(parents=True)
    (root / "test").mkdir()
    for split in ("train", "test"):
        for f in (base / "ct" / split).iterdir():
            (root / split / f.name).symlink_to(f)
        (root / f"{split}_labels.csv").write_bytes((base / "ct" / f"{split}_labels.csv").read_bytes())
    bad = root / "test" / ct.test.FileName[0]
    bad.unlink()
    bad.write_bytes(b"not a nifti")
    monkeypatch.setenv("MEDVID_DATA", str(tmp_path / "data"))
    with pytest.raises(ValueError, match=f"^{bad}: cannot read NIfTI"):
        vn.load_ct(ct_root=str(root), n_jobs=1, **SMALL)


def test_num_workers_two_gives_identical_reruns(data, tmp_path):
    """Two loading processes per DataLoader: forked, seeded from the loader's generator (or torch's global one),
    so a rerun with the same seed gives the same numbers, the rotation augmentation included."""
    _, videos, ct = data

    def run(k):
        pre = vn.pretrain(videos, checkpoint=tmp_path / f"pt{k}.pt", pretrain_epochs=1, num_workers=2, **NET)
        t = vn.finetune(ct, "PT+CW+AUG", checkpoint=pre.checkpoint, epochs=2, lr=0.01, momentum=0.9, batch_size=4,
                        num_workers=2, **NET)
        drop = lambda h: [{k: v for k, v in r.items() if "seconds" not in k} for r in h]  # noqa: E731
        return drop(pre.history), drop(t.history), t.val, t.test

    first, second = run(0), run(1)
    assert first == second
    assert len(first[1]) == 2 and np.isfinite(first[1][-1]["train_loss"])
