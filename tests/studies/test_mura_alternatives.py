"""MURA alternatives study glue: the six-view fusion input as documented, the notebook's parameters as the
room's keywords, RA-CNN's stages and crop scores on a tiny archive, degenerate results left undefined."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from medvid_core import explain
from medvid_core.io.mura import read_mura
from medvid_core.params import keyword_names, read_parameters
from medvid_core.paths import REPO_ROOT
from medvid_core.studies import mura_alternatives as A
from medvid_core.studies import mura_zoom as mz
from medvid_core.synth.radiograph import load_boxes, make_archive


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> mz.Archive:
    root = tmp_path_factory.mktemp("mura")
    make_archive(root, "tiny", seed=0, n_jobs=1)
    return mz.Archive(root, read_mura(root, "train"), read_mura(root, "valid"), load_boxes(root))


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("medvid_data")


@pytest.fixture(autouse=True)
def data_in_tmp(cache_dir, monkeypatch):
    """The decoded-image caches go to one folder of this module's, never the repository's data/."""
    monkeypatch.setenv("MEDVID_DATA", str(cache_dir))


def _views(n: int, size: int = 20) -> list[np.ndarray]:
    rng = np.random.default_rng(n)
    return [rng.random((size, size)).astype(np.float32) for _ in range(n)]


def _crop(im: np.ndarray, origin) -> np.ndarray:
    size = im.shape[0]
    side = int(round(A.FUSION_CROP * size))
    x0, y0 = (int(round(c * (size - side))) for c in origin)
    return explain.resize(im[y0:y0 + side, x0:x0 + side], size)


def test_the_fusion_input_stacks_and_repeats_views_as_documented():
    v = _views(2)
    plan = A.fusion_plan(2, seed=0, key="valid/XR_HAND/patient1/study1_positive/")
    x = A.stack_views(v, plan)
    assert x.shape == (6, 20, 20) and x.dtype == np.float32
    # v1, v2, mirror(v1), mirror(v2), crop(v1), crop(v2)
    assert [s["view"] for s in plan] == [0, 1, 0, 1, 0, 1]
    assert np.array_equal(x[0], v[0]) and np.array_equal(x[1], v[1])
    assert np.array_equal(x[2], v[0][:, ::-1]) and np.array_equal(x[3], v[1][:, ::-1])
    assert plan[4]["crop"] is not None and not plan[4]["mirror"]
    assert np.array_equal(x[4], _crop(v[0], plan[4]["crop"])) and np.array_equal(x[5], _crop(v[1], plan[5]["crop"]))
    assert not np.array_equal(x[4], v[0])
    one = A.fusion_plan(1, seed=0, key="s")  # one view: as is, mirrored, crop, crop+mirror, crop, crop+mirror
    assert [(s["mirror"], s["crop"] is not None) for s in one] == [(False, False), (True, False), (False, True),
                                                                  (True, True), (False, True), (True, True)]


def test_a_study_with_more_views_drops_to_six_deterministically():
    v = _views(8)
    plan = A.fusion_plan(8, seed=0, key="study9/")
    x = A.stack_views(v, plan)
    assert x.shape == (6, 20, 20)
    kept = [s["view"] for s in plan]
    assert kept == sorted(set(kept)) and len(kept) == 6  # six distinct views, in file order
    assert all(np.array_equal(x[i], v[k]) for i, k in enumerate(kept))  # untouched
    assert A.fusion_plan(8, seed=0, key="study9/") == plan  # same seed, same study: same views
    others = {tuple(s["view"] for s in A.fusion_plan(8, seed=s, key="study9/")) for s in range(10)}
    assert len(others) > 1  # the seed decides which are dropped
    assert A.fusion_plan(2, seed=1, key="k")[4]["crop"] != A.fusion_plan(2, seed=2, key="k")[4]["crop"]


def test_notebook_parameters_are_the_rooms_keywords():
    spec = read_parameters(REPO_ROOT / "notebooks" / "mura_alternatives.ipynb")
    runners = (mz.get_archive, mz.train_baseline, mz.run_zoom, A.train_per_view, A.train_fusion, A.train_racnn,
               A.racnn_crops, A.racnn_predict)
    names = {n for fn in runners for n in keyword_names(fn)}
    assert set(spec) - names == {"output_dir", "num_threads"}
    shared = read_parameters(REPO_ROOT / "notebooks" / "mura_zoom.ipynb")
    for name in ("preset", "data_root", "seed", "image_size", "width", "batch_norm", "epochs", "batch_size", "lr"):
        assert spec[name].default == shared[name].default, name  # one archive, one baseline, for both notebooks


def test_fusion_set_and_racnn_on_a_tiny_archive(archive, one_thread):
    fs = A.FusionSet(archive.valid, size=24, seed=0)
    x, y = fs[0]
    assert len(fs) == archive.valid.study.nunique() and x.shape == (1, 6, 24, 24)
    r = A.train_racnn(archive, racnn_resize=40, racnn_crop=36, racnn_size=32, racnn_epochs=1, apn_epochs=1,
                      racnn_rounds=1, racnn_batch_size=16)
    assert list(r["history"].stage) == ["classifiers", "APN", "classifiers"]
    assert r["history"].val_ranking.notna().all()
    assert r["history"].train_side_scale2.iloc[0] == pytest.approx(0.5)  # stage 1 trains on the initial squares
    pred = A.racnn_predict(r)
    assert pred["logits"].shape == (len(archive.valid), 3, 2) and pred["squares"].shape == (len(archive.valid), 2, 3)
    crops = A.racnn_crops(archive, pred["squares"], racnn_resize=40, racnn_crop=36)
    assert crops.crop_fraction.between(0, 1).all()
    assert set(crops.step) == {"RA-CNN scale 2", "RA-CNN scale 3", "initial square scale 2", "initial square scale 3"}
    init = crops[crops.step == "initial square scale 2"].crop_fraction
    assert init.between(0.15, 0.25).all()  # half the centre crop's side: about (36/40 / 2)^2 of the image
    moved = A.racnn_movement(pred["squares"])
    assert list(moved.index) == [2, 3] and (moved.initial_side == [0.5, 0.25]).all()


def test_a_model_that_predicts_one_class_has_no_kappa_to_compare():
    table = pd.DataFrame(dict(study_kappa=[0.3, 0.0], study_accuracy=[0.7, 0.6], classes_predicted=[2, 1],
                              studies=[10, 10], epochs=[5, 13], steps=[130, 130]),
                         index=["per-view", "fusion"])
    f = A.findings(table, pd.DataFrame(), pd.DataFrame(dict(stage=[], train_loss=[])))[0]
    assert f["holds"] is None and f["ours"] is None
    assert "predicted one class" in A.fusion_words(table)


def test_fusion_epochs_match_the_per_view_steps(archive):
    n_img, n_study = len(archive.train), archive.train.study.nunique()
    e = A.fusion_epochs(archive, epochs=5, batch_size=8, fusion_budget="steps")
    assert e == round(5 * (n_img // 8) / (n_study // 8)) and e > 5
    assert A.fusion_epochs(archive, epochs=5, batch_size=8, fusion_budget="epochs") == 5
    with pytest.raises(ValueError, match="fusion_budget"):
        A.fusion_epochs(archive, fusion_budget="images")


def test_the_attention_stage_holds_the_classifiers_batchnorm_too(one_thread):
    model = A.build_racnn(racnn_size=32, width=0.0625).train()
    before = {k: v.clone() for k, v in model.scales.state_dict().items()}
    A._forward_fixed_classifiers(model, torch.rand(4, 1, 40, 40))
    assert all(torch.equal(before[k], v) for k, v in model.scales.state_dict().items())  # running stats unchanged
    assert model.apns.training and not model.scales.training
    A._forward(model.train(), torch.rand(4, 1, 40, 40))  # the classifier stage's forward does update them
    assert not all(torch.equal(before[k], v) for k, v in model.scales.state_dict().items())
