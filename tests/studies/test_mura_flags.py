"""MURA flags study glue: the detector learns a separable toy set, implants taken for flags are counted, the
synthetic annotations go through the COCO reader, a removal writes a readable archive copy, the findings
follow their rules, and the notebook's parameter names are the room's keyword names."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch.utils.data import DataLoader

from medvid_core.io.coco import CocoError, write_coco_boxes
from medvid_core.io.mura import load_radiograph, read_mura
from medvid_core.metrics import box_average_precision
from medvid_core.params import keyword_names, read_parameters
from medvid_core.paths import REPO_ROOT
from medvid_core.studies import mura_flags as mf
from medvid_core.studies import mura_zoom as mz
from medvid_core.synth.radiograph import load_boxes, make_archive
from medvid_core.train import fit, seed_everything


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> mz.Archive:
    root = tmp_path_factory.mktemp("mura")
    make_archive(root, "tiny", seed=0, n_jobs=1)
    return mz.Archive(root, read_mura(root, "train"), read_mura(root, "valid"), load_boxes(root))


@pytest.fixture(autouse=True)
def data_in_tmp(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("MEDVID_DATA", str(tmp_path_factory.getbasetemp() / "medvid_data"))


def _toy(n: int, seed: int):
    """Noisy 48-pixel images, each with one or two bright squares (class 1): easy to separate."""
    rng = np.random.default_rng(seed)
    images, targets = [], []
    for _ in range(n):
        img = rng.normal(0.3, 0.05, (48, 48)).astype(np.float32)
        boxes = []
        for _ in range(int(rng.integers(1, 3))):
            s = int(rng.integers(10, 16))
            x, y = (int(v) for v in rng.integers(0, 48 - s, 2))
            img[y:y + s, x:x + s] = 0.9
            boxes.append((x, y, x + s, y + s))
        images.append(np.clip(img, 0, 1))
        targets.append({"boxes": torch.tensor(boxes, dtype=torch.float32),
                        "labels": torch.ones(len(boxes), dtype=torch.int64)})
    return images, targets


def _flag_ap(model, images, targets) -> float:
    found = mf.detect(model, images)
    gt = [{k: v.numpy() for k, v in t.items()} for t in targets]
    return box_average_precision(gt, found, classes=mf.CLASSES)["flag"]["AP50"]


def test_detector_learns_a_separable_toy_set(one_thread):
    seed_everything(0)
    images, targets = _toy(32, seed=0)
    held_out = _toy(12, seed=1)  # scored on images it never saw
    model = mf.build_detector(detector_width=0.125, detector_size=48)
    before = _flag_ap(model, *held_out)
    data = [(torch.from_numpy(im)[None], t) for im, t in zip(images, targets)]
    loader = DataLoader(data, batch_size=4, shuffle=True, collate_fn=mf.collate_detection)
    fit(model, loader, epochs=6, lr=2e-3, loss_fn=mf._summed_loss, forward=mf._detector_losses, warmup_epochs=1)
    after = _flag_ap(model, *held_out)
    assert before < 0.1 and after > 0.5, (before, after)


def test_implants_taken_for_flags_are_counted():
    flags = np.array([[0, 0, 10, 10]], float)
    implants = np.array([[50, 50, 90, 90], [100, 0, 120, 40]], float)
    removed = np.array([[1, 1, 10, 10],  # the true flag: found, not false
                        [60, 60, 70, 70],  # inside the first implant: taken for a flag
                        [85, 85, 100, 100],  # mostly outside the implant: a false flag, not on an implant
                        [62, 55, 75, 66]])  # a second false flag on the same implant
    c = mf.implants_taken_for_flags(flags, implants, removed)
    assert c == {"implants": 2, "implants_taken": 1, "false_flags": 3, "false_flags_on_implants": 2, "taken": [1, 0]}
    assert mf.implants_taken_for_flags(flags, implants, removed[:1])["implants_taken"] == 0


def test_annotations_detection_scores_and_removal(archive):
    ann = mf.get_annotations(archive, n_jobs=1)
    truth = archive.boxes
    implants = truth[(truth.kind == "abnormality") & truth.type.isin(mf.IMPLANTS)]
    assert (ann.boxes.category == "implant").sum() == len(implants) and "fracture" not in set(ann.boxes.category)
    assert len(ann.images) == len(archive.train) + len(archive.valid) and ann.left_out == {}
    # detections equal to the ground truth, plus one flag detection on an implant of a validation image
    groups = dict(tuple(ann.boxes.groupby("path")))
    detections = {}
    for p in ann.images.path:
        t = mf._target(groups.get(p, ann.boxes.iloc[:0]))
        detections[p] = {"boxes": t["boxes"].numpy(), "labels": t["labels"].numpy(),
                         "scores": np.ones(len(t["labels"]))}
    valid = set(ann.images[ann.images.split == "valid"].path)
    p = next(p for p in ann.boxes.path if p in valid and ann.boxes.category[ann.boxes.path == p].eq("implant").any())
    mine = ann.boxes[(ann.boxes.path == p) & (ann.boxes.category == "implant")]
    imp = mine[["x0", "y0", "x1", "y1"]].to_numpy(float)[0]
    inner = np.array([imp[0] + 1, imp[1] + 1, imp[0] + 4, imp[1] + 4])
    d = detections[p]
    detections[p] = {"boxes": np.vstack([d["boxes"], inner]), "labels": np.append(d["labels"], 1),
                     "scores": np.append(d["scores"], 0.9)}
    scores = mf.score_detector(ann, detections, flag_score=0.5)
    assert scores["ap"].loc["flag", "AP50"] > 0.95 and scores["ap"].loc["implant", "AP"] == pytest.approx(1.0)
    per = scores["per_image"]
    assert per.flags_found.sum() == per.flag_boxes.sum() and per.implants_taken.sum() == 1
    assert scores["implant_taken"].sum() == 1 and len(scores["implant_taken"]) == per.implants.sum()
    assert "1 of" in mf.detector_words(scores) and "happens here too" in mf.detector_words(scores)
    # blank the ground-truth flags: a readable copy of the archive, flags black, everything else kept
    flags = {q: g[g.category == "flag"][["x0", "y0", "x1", "y1"]].to_numpy(float) for q, g in groups.items()}
    copy = mf.removed_archive(archive, flags, method="blank", n_jobs=1)
    assert len(copy.train) == len(archive.train) and list(copy.valid.label) == list(archive.valid.label)
    q = next(q for q in archive.train.path if len(flags.get(str(q), [])))
    new = load_radiograph(copy.root / Path(q).relative_to(archive.root))
    x0, y0, x1, y1 = flags[str(q)][0].astype(int)
    assert (new[y0:y1, x0:x1] == 0).all()
    old = load_radiograph(q)
    keep = np.ones(old.shape, bool)
    keep[y0:y1, x0:x1] = False
    assert np.abs(new[keep] - old[keep]).max() <= 0.5 / 255 + 1e-6  # 8-bit PNG again (RGB files: their mean)
    contrast = pd.read_csv(copy.root / "border_contrast.csv")
    assert len(contrast) == len(archive.train) + len(archive.valid) and (contrast.border_contrast.dropna() > 0).all()
    again = mf.removed_archive(archive, flags, method="blank", n_jobs=1)
    assert again.root == copy.root  # cached: the same boxes and method are not written twice


def test_real_archive_needs_its_annotation_file(archive, tmp_path):
    real = mz.Archive(archive.root, archive.train, archive.valid, None)
    with pytest.raises(CocoError, match="a real MURA archive has no boxes: set coco_json"):
        mf.get_annotations(real)
    stray = tmp_path / "ann.json"
    write_coco_boxes(stray, pd.DataFrame({"file_name": ["MURA-v1.1/train/nope/image1.png"], "width": [9],
                                             "height": [9]}),
                        pd.DataFrame({"file_name": ["MURA-v1.1/train/nope/image1.png"], "category": ["flag"],
                                      "x0": [1], "y0": [1], "x1": [5], "y1": [5]}))
    with pytest.raises(CocoError, match=r"ann\.json: 1 image\(s\) not in the archive .* e\.g\. MURA-v1\.1/train/nope"):
        mf.get_annotations(real, coco_json=str(stray))


def test_findings_and_words_follow_their_rules():
    per = pd.DataFrame({"flag_boxes": [2, 1], "flags_found": [2, 1], "implants": [2, 2], "implants_taken": [1, 0],
                        "false_flags": [1, 0], "false_flags_on_implants": [1, 0]})
    ap = pd.DataFrame({"AP": [0.5, 0.2], "AP50": [0.9, 0.5], "AP75": [0.4, 0.1], "objects": [3, 4]},
                      index=["flag", "implant"])
    scores = {"ap": ap, "per_image": per, "implant_taken": np.array([1, 0, 0, 0])}
    table = pd.DataFrame({"studies": 84, "study_kappa": [0.40, 0.35, 0.45], "kappa_low": [0.2, 0.15, 0.25],
                          "kappa_high": [0.6, 0.55, 0.65], "flag_over_uniform": [4.0, 2.0, 1.0],
                          "border_contrast": [np.nan, 12.0, 1.1]}, index=pd.Index(["original", "blank", "ring mean"]))
    f = mf.findings(scores, table)
    assert [x["holds"] for x in f] == [True, True, True, False]
    assert f[0]["ours"] == pytest.approx(25.0) and f[1]["ours"] == pytest.approx(12.0 / 1.1, rel=1e-3)
    assert f[2]["ours"] == pytest.approx(0.25) and "ring mean" in f[2]["claim"]
    assert f[3]["ours"] == pytest.approx(0.05)
    words = mf.removal_words(table)
    assert "12.0x the surroundings' after blank" in words and "blanking leaves the edges" in words
    assert "4.0x the uniform share" in words and "0.45 (0.25-0.65) after ring mean" in words
    assert "over 84 validation studies" in words


def test_notebook_parameters_are_the_rooms_keywords():
    spec = read_parameters(REPO_ROOT / "notebooks" / "mura_flags.ipynb")
    used = (mz.get_archive, mf.get_annotations, mf.build_detector, mf.train_detector, mf.detect_archive,
            mf.flag_boxes, mf.run_removals, mf.plot_removals)
    names = {n for fn in used for n in keyword_names(fn)}
    assert set(spec) - {"output_dir", "num_threads"} <= names, set(spec) - names
    shared = read_parameters(REPO_ROOT / "notebooks" / "mura_zoom.ipynb")
    for name in ("preset", "data_root", "seed", "n_jobs"):  # one archive for both notebooks
        assert spec[name].default == shared[name].default
    assert spec["removals"].default == list(mf.REMOVALS)
