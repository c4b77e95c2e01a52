"""MURA zoom study glue: kappa equals scikit-learn's, study-level pooling, zoom training's two losses,
the zoom and attention tables on a tiny archive, the SVM table, the paper's numbers."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import cohen_kappa_score

from medvid_core.studies import mura_zoom as mz
from medvid_core.synth.radiograph import ensure_archive, load_boxes
from medvid_core.io.mura import read_mura


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> mz.Archive:
    root = tmp_path_factory.mktemp("mura")
    ensure_archive(root, "tiny", seed=0, n_jobs=1)
    return mz.Archive(root, read_mura(root, "train"), read_mura(root, "valid"), load_boxes(root))


def test_paper_numbers():
    assert list(mz.TABLE1.paper_kappa) == [0.744, 0.754]
    assert mz.TABLE2.loc["WRIST", "paper_kappa"] == 0.717 and mz.TABLE2.loc["FINGER", "mura_baseline_kappa"] == 0.389
    assert len(mz.TABLE2) == 7


def test_study_level_kappa_is_sklearns_on_study_means():
    df = pd.DataFrame(dict(study=["a/", "a/", "b/", "c/", "c/", "d/"], body_part=["HAND"] * 4 + ["WRIST"] * 2,
                           label=[1, 1, 0, 1, 1, 0], path=list("uvwxyz")))
    probs = np.array([0.9, 0.3, 0.6, 0.2, 0.4, 0.1])  # study means: a 0.6, b 0.6, c 0.3, d 0.1
    studies = mz.study_predictions(df, probs)
    assert list(studies.pred) == [1, 1, 0, 0]
    table = mz.kappa_table(df, probs)
    assert table.loc["ALL", "study_kappa"] == pytest.approx(cohen_kappa_score([1, 0, 1, 0], [1, 1, 0, 0]))
    assert table.loc["ALL", "image_accuracy"] == pytest.approx(2 / 6)  # images right: 0.9 (1) and 0.1 (0)
    assert table.loc["HAND", "studies"] == 3 and np.isnan(table.loc["WRIST", "study_kappa"])  # one class only


def test_intensity_rescale_stretches_percentiles():
    rng = np.random.default_rng(0)
    img = (0.3 + 0.1 * rng.random((50, 50))).astype(np.float32)
    out = mz.intensity_rescale(img)
    assert out.min() == 0 and out.max() == 1 and out.dtype == np.float32
    flat = np.full((4, 4), 0.2, np.float32)
    assert np.array_equal(mz.intensity_rescale(flat), flat)


def test_vgg19_weights_load_all_but_the_head_or_say_which_keys_do_not(tmp_path):
    from medvid_core.models import get_model

    rgb = get_model("vgg19", num_classes=1000, in_channels=3, width=0.0625, batch_norm=True).state_dict()
    good = tmp_path / "vgg19_bn.pth"
    torch.save(rgb, good)
    model = mz.build_vgg19(width=0.0625, weights=str(good))
    assert torch.equal(model.features[0].weight, rgb["features.0.weight"].sum(1, keepdim=True))  # RGB summed to gray
    assert model.classifier[6].out_features == 2  # the 1000-class head left out
    bad = tmp_path / "renamed.pth"
    torch.save({k.replace("classifier.0.", "classifier.fc0."): v for k, v in rgb.items()}, bad)
    with pytest.raises(ValueError, match=r"renamed\.pth: only the head 'classifier\.6' may be missing; missing "
                                         r"classifier\.0\.bias, classifier\.0\.weight; unexpected classifier\.fc0"):
        mz.build_vgg19(width=0.0625, weights=str(bad))


def test_zoom_forward_gives_two_outputs_and_both_losses_train(archive, one_thread):
    torch.manual_seed(0)
    model = mz.build_vgg19(width=0.0625).train()
    full = torch.rand(4, 1, 64, 64)
    forward = mz.make_zoom_forward(image_size=32, entropy_radius=2)
    full_logits, crop_logits = forward(model, full)
    assert full_logits.shape == crop_logits.shape == (4, 2)
    assert model.training  # restored after the eval-mode guided backprop
    loss = mz.two_losses((full_logits, crop_logits), torch.tensor([0, 1, 0, 1]))
    loss.backward()
    assert loss.item() == pytest.approx(torch.nn.functional.cross_entropy(full_logits, torch.tensor([0, 1, 0, 1])).item()
                                        + torch.nn.functional.cross_entropy(crop_logits, torch.tensor([0, 1, 0, 1])).item())
    assert model.features[0].weight.grad.abs().sum() > 0
    with torch.no_grad():  # evaluate() runs the forward under no_grad: guided backprop still works
        assert forward(model.eval(), full)[1].shape == (4, 2)


def test_baseline_zoom_and_attention_tables(archive, one_thread):
    model, history, probs = mz.train_baseline(archive, rescale=True, image_size=32, width=0.0625, epochs=1,
                                              batch_size=16)
    assert len(history) == 1 and probs.shape == (len(archive.valid),)
    side = mz.table1_side_by_side({"VGG19 + intensity rescaling": mz.kappa_table(archive.valid, probs)})
    assert side.loc[1, "paper_kappa"] == 0.754 and np.isnan(side.loc[0, "our_kappa"])
    z = mz.run_zoom(model, archive, rescale=True, image_size=32, zoom_steps=2, entropy_radius=2)
    assert list(z["kappa"].index) == [0, 1, 2] and z["probs"].shape == (3, len(archive.valid))
    crops = z["crops"]
    assert len(crops) == 2 * len(archive.valid)
    assert crops.crop_fraction.between(0, 1).all()
    assert crops[crops.label == 1].contains_abnormality.notna().all()
    assert crops[crops.label == 0].iou.isna().all()  # no abnormality box on normal images
    summary = mz.zoom_crop_summary(crops)
    assert list(summary.index) == [1, 2]
    att = mz.attention_table(model, archive, rescale=True, image_size=32, attention_images=5, entropy_radius=2)
    assert list(att.index) == ["guided backprop", "GBP local entropy", "Grad-CAM", "chance (uniform map)"]
    assert att[["mass_abnormality", "mass_flag"]].stack().dropna().between(0, 1).all()  # NaN: only empty maps
    assert att.empty_maps.iloc[:3].between(0, att.images.iloc[0]).all()


def _fake_split(n: int, rng) -> pd.DataFrame:
    parts = ["ELBOW", "HAND", "WRIST"]
    label = np.arange(n) % 2
    part = [parts[i % 3] for i in range(n)]
    label[np.array(part) == "WRIST"] = 0  # one class only: the table says NaN, not a crash
    return pd.DataFrame(dict(path=[f"p{i}" for i in range(n)], body_part=part, label=label))


def test_svm_table_per_body_part(one_thread):
    rng = np.random.default_rng(0)
    fake = mz.Archive(None, _fake_split(120, rng), _fake_split(60, rng), None)
    ft = rng.normal(size=(120, 4)) + 2 * fake.train.label.to_numpy()[:, None]
    fv = rng.normal(size=(60, 4)) + 2 * fake.valid.label.to_numpy()[:, None]
    table = mz.svm_table(fake, ft, fv, svm_degree=3, svm_estimators=3, svm_max_samples=0.5)
    assert list(table.index) == ["ELBOW", "HAND", "WRIST"]
    assert table.train_samples.sum() == 120 and table.test_samples.sum() == 60
    assert table.loc[["ELBOW", "HAND"], "accuracy"].min() > 75  # separable features are learnt
    assert (table.loc[["ELBOW", "HAND"], "train_s"] > 0).all()
    assert np.isnan(table.loc["WRIST", "accuracy"])
    clf = mz.svm_classifier(svm_degree=5, svm_estimators=10)
    bag = clf[-1].estimator
    assert bag.n_estimators == 10 and bag.estimator.kernel == "poly" and bag.estimator.degree == 5
    side = mz.table2_side_by_side(table)
    assert "paper_kappa" in side and side.loc["ELBOW", "paper_train_samples"] == 4931


def test_feature_extractor_gives_pooled_features(archive, one_thread):
    fe = mz.train_feature_extractor(archive, image_size=32, svm_width=0.0625, svm_backbone_epochs=1, batch_size=32)
    feats = mz.pooled_features(fe, archive.valid.head(5), image_size=32)
    assert feats.shape == (5, fe.num_features) and np.isfinite(feats).all()


def test_paper_params_file_carries_the_papers_settings():
    from medvid_core.params import load_params_file
    from medvid_core.paths import REPO_ROOT
    from medvid_core.synth.radiograph import PRESETS

    p = load_params_file(REPO_ROOT / "params/mura_zoom/paper.yaml")
    assert (p["preset"], p["image_size"], p["width"], p["svm_width"]) == ("paper", 224, 1.0, 1.0)
    assert (p["svm_degree"], p["svm_estimators"]) == (5, 10)
    paper = PRESETS["paper"]  # MURA-v1.1's study counts
    assert sum(paper.train_studies.values()) == 13457 and sum(paper.valid_studies.values()) == 1199


def test_findings_and_words_from_the_attention_table():
    kappa = lambda k: pd.DataFrame({"study_kappa": [k]}, index=pd.Index(["ALL"], name="body_part"))  # noqa: E731
    table1 = {m: {"kappa": kappa(k)} for m, k in zip(mz.TABLE1.method, (0.30, 0.36))}
    attention = pd.DataFrame({"images": [10, 10, 10], "empty_maps": [0.0, 4.0, np.nan],
                              "mass_abnormality": [0.10, 0.04, 0.05], "mass_flag": [0.20, 0.03, 0.05]},
                             index=pd.Index(["guided backprop", "Grad-CAM", "chance (uniform map)"], name="map"))
    zoom = pd.DataFrame({"study_kappa": [0.36, 0.20]})
    f = mz.findings(table1, attention, zoom)
    assert [x["holds"] for x in f] == [True, True, True]
    assert f[1]["ours"] == pytest.approx(2.0)  # (0.20 / 0.05) / (0.10 / 0.05)
    words = mz.attention_words(attention)
    assert "guided backprop puts 4.0x the uniform share of its weight on the flag and 2.0x" in words
    assert "4 of 10 Grad-CAM maps are empty" in words
