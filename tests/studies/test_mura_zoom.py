"""MURA zoom study glue: kappa equals scikit-learn's, study-level pooling, zoom training's two losses,
the zoom and attention tables on a tiny archive, the SVM table, the paper's numbers."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import cohen_kappa_score

from medvid_core.studies import mura_zoom as mz
from medvid_core import explain
from medvid_core.io.mura import MuraError, load_radiograph, read_mura
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
    assert (p["n_jobs"], p["num_workers"]) == (8, 8)  # decoding processes, DataLoader workers
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



# --------------------------------------------------------------------------- the decode-once cache (issue 25)


def _in_memory(df: pd.DataFrame, *, rescale: bool) -> list[np.ndarray]:
    """How the study read a split before the cache: every image, full resolution, into one list."""
    images = [load_radiograph(p) for p in df.path]
    return [mz.intensity_rescale(im) for im in images] if rescale else images


class _InMemorySet(torch.utils.data.Dataset):
    """The RadiographSet before the cache, verbatim: every image resized and stacked into one tensor."""

    def __init__(self, images, labels, *, size: int, flip: bool = False):
        self.x = torch.from_numpy(np.stack([explain.resize(im, size) for im in images]))[:, None]
        self.y = torch.tensor(np.asarray(labels), dtype=torch.long)
        self.flip = flip

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        x = self.x[i]
        if self.flip and torch.rand(()) < 0.5:
            x = x.flip(-1)
        return x, self.y[i]


def _batches(ds, seed: int = 0) -> list:
    torch.manual_seed(seed)  # the loader's shuffle and the flips both draw from the global stream
    return list(torch.utils.data.DataLoader(ds, batch_size=5, shuffle=True, drop_last=True))


@pytest.mark.parametrize("rescale", [False, True])
def test_lazy_set_gives_the_in_memory_tensors_flips_and_order(archive, rescale):
    df = archive.train
    old = _InMemorySet(_in_memory(df, rescale=rescale), df.label, size=24, flip=True)
    new = mz.RadiographSet.of(df, size=24, rescale=rescale, flip=True)
    assert len(new) == len(old)
    plain = mz.RadiographSet.of(df, size=24, rescale=rescale)
    assert torch.equal(torch.stack([plain[i][0] for i in range(len(plain))]), old.x)  # bit for bit, (N, 1, s, s)
    for (xo, yo), (xn, yn) in zip(_batches(old), _batches(new), strict=True):  # same shuffle, same flips
        assert xn.dtype == xo.dtype == torch.float32 and torch.equal(xn, xo) and torch.equal(yn, yo)
    full = mz.Radiographs(archive.valid, rescale=rescale)  # the zoom's full-resolution originals
    want = _in_memory(archive.valid, rescale=rescale)
    assert len(full) == len(want) and all(np.array_equal(a, b) and a.dtype == b.dtype for a, b in zip(full, want))
    assert full.shapes == [im.shape for im in want]


def test_zoom_in_chunks_over_the_cache_is_the_zoom_over_the_list(archive, monkeypatch, one_thread):
    torch.manual_seed(0)
    model = mz.build_vgg19(width=0.0625).eval()
    monkeypatch.setattr(mz, "ZOOM_BATCH", 4)
    monkeypatch.setattr(mz, "ZOOM_CHUNK", 8)  # several explain.zoom calls, each on whole batches of 4
    assert len(archive.valid) > 8
    got = mz.run_zoom(model, archive, rescale=True, image_size=32, zoom_steps=2, entropy_radius=2)
    want4 = explain.zoom(model, _in_memory(archive.valid, rescale=True), input_size=32, steps=2,
                         normalize=mz.normalize, entropy_radius=2, quantile=0.9, batch_size=4)
    assert np.array_equal(got["boxes"], want4["boxes"]) and np.array_equal(got["probs"], want4["probs"][..., 1])


def _counting(monkeypatch) -> list:
    calls, decode = [], mz._decode

    def counted(path, **kw):
        calls.append(path)
        return decode(path, **kw)

    monkeypatch.setattr(mz, "_decode", counted)
    return calls


def test_cache_rebuilt_when_size_or_rescale_or_a_file_changes_reused_otherwise(archive, monkeypatch, tmp_path):
    monkeypatch.setenv("MEDVID_DATA", str(tmp_path))
    calls = _counting(monkeypatch)
    df = archive.valid
    n = len(df)
    first = mz.RadiographSet.of(df, size=16, rescale=False, n_jobs=1)
    assert len(calls) == n and first[0][0].shape == (1, 16, 16)
    mz.RadiographSet.of(df, size=16, rescale=False, n_jobs=1)
    assert len(calls) == n  # reused: nothing decoded again
    assert mz.RadiographSet.of(df, size=20, rescale=False, n_jobs=1)[0][0].shape == (1, 20, 20)
    assert len(calls) == 2 * n  # another image_size: decoded again
    mz.RadiographSet.of(df, size=16, rescale=True, n_jobs=1)
    assert len(calls) == 3 * n  # rescaling changes the bytes: decoded again
    mz.RadiographSet.of(df, size=16, rescale=False, n_jobs=2)
    mz.RadiographSet.of(df, size=20, rescale=False, n_jobs=1)
    assert len(calls) == 3 * n  # n_jobs is not in the key; each (size, rescale) keeps its own folder
    import os

    st = os.stat(df.path.iloc[0])
    os.utime(df.path.iloc[0], ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # the listing changes
    mz.RadiographSet.of(df, size=16, rescale=False, n_jobs=1)
    assert len(calls) == 4 * n
    folders = sorted(p.name for p in (tmp_path / "mura_zoom" / "decoded").iterdir() if not p.name.startswith("."))
    assert len(folders) == 3 and {f.split("_", 1)[1] for f in folders} == {"16px_raw", "20px_raw", "16px_rescaled"}


def test_killed_cache_build_leaves_nothing_that_looks_complete(archive, monkeypatch, tmp_path):
    import multiprocessing
    import os
    import signal

    from medvid_core.cache import STAMP

    monkeypatch.setenv("MEDVID_DATA", str(tmp_path))
    df = archive.valid
    victim = df.path.iloc[3]

    def build_and_die():
        decode = mz._decode

        def dies(path, **kw):
            if path == victim:
                os.kill(os.getpid(), signal.SIGKILL)  # killed mid-build, as by the OOM killer or a kill -9
            return decode(path, **kw)

        mz._decode = dies
        mz.RadiographSet.of(df, size=16, rescale=True, n_jobs=1)

    child = multiprocessing.get_context("fork").Process(target=build_and_die)
    child.start()
    child.join(60)
    assert child.exitcode == -signal.SIGKILL
    decoded = tmp_path / "mura_zoom" / "decoded"
    complete = [p for p in decoded.iterdir() if (p / STAMP).exists()]
    assert complete == [] and all(p.name.startswith(".") for p in decoded.iterdir())  # a hidden tmp sibling at most
    calls = _counting(monkeypatch)
    ds = mz.RadiographSet.of(df, size=16, rescale=True, n_jobs=1)  # rebuilt from scratch, whole
    assert len(calls) == len(df) == len(ds) and len(ds.store) == len(df)
    assert [p.name for p in decoded.iterdir() if p.name.startswith(".") and "tmp" in p.name] == []


def test_unreadable_png_is_a_one_line_error_naming_it(archive, tmp_path, monkeypatch):
    monkeypatch.setenv("MEDVID_DATA", str(tmp_path / "data"))
    broken = tmp_path / "image1.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\nnot really a png")
    df = pd.concat([archive.valid.head(2), archive.valid.head(1).assign(path=str(broken))], ignore_index=True)
    with pytest.raises(MuraError) as err:
        load_radiograph(broken)  # what the in-memory loading raised
    before = str(err.value)
    for build in (lambda: mz.RadiographSet.of(df, size=16, rescale=True, n_jobs=1),
                  lambda: mz.Radiographs(df, rescale=False, n_jobs=2)):
        with pytest.raises(MuraError) as err:
            build()
        assert str(err.value) == before and "\n" not in before and before.startswith(f"{broken}: cannot read PNG")
    with pytest.raises(MuraError, match="cannot read PNG"):  # still refused on the next run (the build is cached)
        mz.RadiographSet.of(df, size=16, rescale=True, n_jobs=1)


def test_num_workers_2_gives_the_same_training_twice(archive, monkeypatch, one_thread):
    workers, loader = [], mz.DataLoader

    def spy(*args, **kw):
        workers.append(kw.get("num_workers", 0))
        return loader(*args, **kw)

    monkeypatch.setattr(mz, "DataLoader", spy)
    kw = dict(rescale=False, image_size=32, width=0.0625, epochs=1, batch_size=8, num_workers=2)
    m1, h1, p1 = mz.train_baseline(archive, **kw)
    assert workers == [2, 2, 2]  # training, validation and prediction loaders
    m2, h2, p2 = mz.train_baseline(archive, **kw)
    assert np.array_equal(p1, p2)
    untimed = lambda h: [{k: v for k, v in row.items() if "seconds" not in k} for row in h]  # noqa: E731
    assert untimed(h1) == untimed(h2)
    assert all(torch.equal(a, b) for a, b in zip(m1.state_dict().values(), m2.state_dict().values()))
