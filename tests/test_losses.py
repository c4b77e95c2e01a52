"""Sparse-annotation loss: unlabelled voxels carry no weight (zero gradient, no effect on the value)."""
import pytest
import torch
from monai.losses import DiceCELoss

from medvid_core.losses import SparseDiceCELoss, class_weights


def _case(seed=0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(2, 3, 6, 7, 5, generator=g, requires_grad=True)
    target = torch.randint(0, 3, (2, 6, 7, 5), generator=g)
    sparse = torch.full_like(target, 255)
    sparse[:, 2] = target[:, 2]  # one labelled xy slice
    sparse[:, :, 4] = target[:, :, 4]  # one labelled xz slice
    return logits, target, sparse


def test_gradient_is_exactly_zero_on_unlabelled_voxels():
    logits, _, sparse = _case()
    SparseDiceCELoss()(logits, sparse).backward()
    unlabelled = (sparse == 255).unsqueeze(1).expand_as(logits)
    assert torch.equal(logits.grad[unlabelled], torch.zeros_like(logits.grad[unlabelled]))
    assert logits.grad[~unlabelled].abs().sum() > 0


def test_value_ignores_what_is_predicted_on_unlabelled_voxels():
    logits, _, sparse = _case(1)
    loss = SparseDiceCELoss()
    changed = logits.detach().clone()
    changed[(sparse == 255).unsqueeze(1).expand_as(changed)] = 50.0
    assert loss(logits, sparse).item() == pytest.approx(loss(changed, sparse).item(), abs=1e-6)


def test_dense_labels_match_monai_dicece():
    """With every voxel labelled it is MONAI's DiceCELoss (batch Dice, no background, same smoothing)."""
    logits, target, _ = _case(2)
    ours = SparseDiceCELoss()(logits, target)
    ref = DiceCELoss(to_onehot_y=True, softmax=True, include_background=False, batch=True,
                     smooth_nr=1e-5, smooth_dr=1e-5)(logits, target.unsqueeze(1))
    assert ours.item() == pytest.approx(ref.item(), abs=1e-5)


def test_nothing_labelled_gives_zero_loss_and_gradient():
    logits, _, sparse = _case(3)
    loss = SparseDiceCELoss()(logits, torch.full_like(sparse, 255))
    loss.backward()
    assert loss.item() == 0 and logits.grad.abs().sum() == 0


def test_class_weights_still_there():
    assert class_weights([0, 0, 1], 2).tolist() == pytest.approx([0.75, 1.5])
