"""Lecture 5 companion: the lesson's RoI Pool/Align table against its ramp, the lesson's tables and tiny runs."""
import pytest
import torch

from medvid_core.studies import lecture5_3d_video as L5


@pytest.mark.parametrize("box,n", [((1.3, 0.6, 6.1, 4.4), 2), ((0.4, 2.2, 5.9, 6.7), 3), ((2.0, 1.0, 7.0, 6.0), 2)])
def test_roi_snapping_says_which_cells_roi_pool_takes_and_what_align_gives(box, n):
    """The lesson's table against its feature map f = x + 10 y: each RoI Pool bin is the max over exactly the
    cells the table lists, and each RoI Align bin is f at the true bin's centre (the exact mean)."""
    r = L5.roi_snapping(box=box, output_size=n)
    t, fmap = r["table"], r["feature_map"]
    assert len(t) == n * n and torch.equal(fmap, torch.arange(8.0)[None, :] + 10 * torch.arange(8.0)[:, None])
    x1, y1, x2, y2 = box
    for row in t.to_dict("records"):
        xa, xb = map(int, row["RoI Pool cells x"].split(".."))
        ya, yb = map(int, row["RoI Pool cells y"].split(".."))
        assert row["RoI Pool (max)"] == pytest.approx(float(fmap[ya:yb + 1, xa:xb + 1].max()))  # torchvision's pool
        i, j = row["bin (row, col)"]
        centre = (x1 + (j + 0.5) * (x2 - x1) / n) + 10 * (y1 + (i + 0.5) * (y2 - y1) / n)
        assert row["RoI Align (mean)"] == pytest.approx(centre, abs=0.006)  # rounded to 2 decimals
    assert (t["RoI Align error"].abs() <= 0.01).all()


def test_roi_snapping_table():
    t = L5.roi_snapping(box=(1.3, 0.6, 6.1, 4.4), output_size=2)["table"]
    assert (t["RoI Align error"].abs() < 1e-4).all()  # bilinear sampling of a ramp is exact
    assert t["RoI Pool cells x"].tolist() == ["1..3", "4..6", "1..3", "4..6"]  # corners rounded to 1 and 6
    assert (t["RoI Pool (max)"] != t["exact mean"]).all()


def test_conv_cost_table_matches_the_formulas():
    t = L5.conv_cost_table(out_channels=64, kernel=3).set_index(["input", "layer"])
    ct = t.loc["CT 224x224x1x256"]
    assert ct.loc["3D", "params"] == 64 * 27 + 64 and ct.loc["2D, slice by slice", "params"] == 64 * 9 + 64
    assert ct.loc["2D, slices as channels", "params"] == 64 * 256 * 9 + 64
    assert ct.loc["3D", "output shape"] == (1, 64, 256, 224, 224)
    video = t.loc["video 224x224x3x500"]
    assert video.loc["3D", "GFLOPs"] == pytest.approx(2 * 64 * 500 * 224 * 224 * 3 * 27 / 1e9, abs=0.1)


def test_inflation_check_is_exact_only_with_replicate():
    r = L5.inflation_check(image_size=32, frames=4, time_kernel=3)
    t = r["table"].set_index("time padding")
    assert t.loc["replicate", "max |logit 3D - logit 2D|"] < 1e-4
    assert t.loc["zeros", "max |logit 3D - logit 2D|"] > 1e-3
    assert (r["per_frame"]["zeros"] > r["per_frame"]["replicate"]).all()


def test_action_clips_reverse_the_same_kind_of_clip():
    video, y, names = L5.action_clips(actions=("TennisSwing",), clips_per_class=2, frames=4, frame_size=32,
                                      reversed_classes=True)
    assert video.shape == (4, 4, 32, 32, 3) and y.tolist() == [0, 1, 0, 1]
    assert names == ["TennisSwing", "TennisSwing (reversed)"]


def test_instance_ap_runs_and_splitting_helps(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDVID_DATA", str(tmp_path))
    t = L5.run_instance_ap(n_images=2)["table"].set_index("detector")
    assert ((t[["AP", "AP50", "AP75"]] >= 0) & (t[["AP", "AP50", "AP75"]] <= 100)).all().all()
    assert (t["AP50"] >= t["AP75"]).all() and (t["AP50"] >= t["AP"]).all()
    plain, split = t.iloc[0], t.iloc[1]  # without, then with the watershed split of touching nuclei
    assert split.AP > plain.AP and split.AP50 > plain.AP50  # what the name claims (finding 7 of the lesson)
    assert plain.detections < split.detections <= split.nuclei  # merged pairs become two detections


def test_multiview_vs_3d_tiny_run(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDVID_DATA", str(tmp_path))
    r = L5.run_multiview_vs_3d(n_nodules=12, nodule_epochs=1, batch_size=8, test_size=0.5)
    t = r["table"]
    assert len(t) == 5 and t["accuracy"].between(0, 1).all()
    assert t["params"].iloc[4] > t["params"].iloc[0]  # the 3D CNN has more weights than the 2D view net


def test_order_check_flags_frame_averaging_as_order_blind():
    import medvid_core.models.frame_average  # noqa: F401
    from medvid_core.models import get_model

    torch.manual_seed(0)
    clips = L5.action_clips(actions=("Mixing",), clips_per_class=2, frames=4, frame_size=32)
    models = {name: get_model(name, num_classes=2, widths=(8, 16)) for name in ("frame_average_small", "cnn_lstm_small")}
    t = L5.order_check(models, clips).set_index("model")["order-blind"]
    assert t["frame_average_small"] and not t["cnn_lstm_small"]


def test_sparse_unet_batches_carry_no_weight_on_unlabelled_voxels(tmp_path, monkeypatch):
    """How the lesson uses `ignore_index`: the synthetic volume's sparse labels are its dense labels on the
    annotated slices and UNLABELLED elsewhere; a flipped training batch keeps image and labels together; and
    the lesson's loss gives every unlabelled voxel of that (B, C, D, H, W) batch an exactly zero gradient."""
    from medvid_core.losses import SparseDiceCELoss

    monkeypatch.setenv("MEDVID_DATA", str(tmp_path))
    vol = L5.sparse_volumes(slices_per_axis=2, volume_size=24, seed=0)["vol_00"]
    sparse, dense = vol["sparse"], vol["labels"]
    labelled = sparse != L5.UNLABELLED
    assert 0.05 < labelled.float().mean() < 0.5 and torch.equal(sparse[labelled], dense[labelled])
    steps = L5._VolumeSteps(vol["image"], sparse, steps=4, seed=1)
    batch = [steps[i] for i in range(2)]
    image, target = torch.stack([b[0] for b in batch]), torch.stack([b[1] for b in batch])
    subsets = [[a for a in range(3) if k >> a & 1] for k in range(8)]
    for x, y in batch:  # whatever the flip, each label still sits on its own voxel
        axes = next(f for f in subsets if torch.equal(x[0], vol["image"][0].flip(f) if f else vol["image"][0]))
        assert torch.equal(y, sparse.flip(axes) if axes else sparse)
    logits = torch.randn(2, 2, *target.shape[1:], requires_grad=True)
    SparseDiceCELoss(ignore_index=L5.UNLABELLED)(logits, target).backward()
    unlabelled = (target == L5.UNLABELLED).unsqueeze(1).expand_as(logits)
    assert image.shape == (2, 1, 24, 24, 24) and unlabelled.any()
    assert logits.grad[unlabelled].abs().max() == 0 and logits.grad[~unlabelled].abs().sum() > 0
