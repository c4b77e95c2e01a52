"""ViPTT-Net study glue: metrics (kappa = scikit-learn's), class weights, train-only weighting, video
reading rules (first D frames, short clips dropped and reported), SIZ'd cohort, pretraining -> checkpoint
-> head swap, a tiny end-to-end table beside the paper's."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import cohen_kappa_score, f1_score

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
    videos = vn.load_videos(video_root=str(base / "videos"), n_jobs=1, **SMALL)
    ct = vn.load_ct(ct_root=str(base / "ct"), n_jobs=1, **SMALL)
    return base, videos, ct


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
