"""The MONAI 3D-ResNet family as registered: head dropout, `fc` convention, it trains."""
import torch

from helpers import train_losses

from medvid_core.models import get_model


def test_head_is_dropout_then_linear():
    net = get_model("resnet3d_18", num_classes=3, dropout=0.25)
    assert isinstance(net.fc[0], torch.nn.Dropout) and net.fc[0].p == 0.25
    assert net.fc[1].out_features == 3
    assert net(torch.zeros(2, 1, 5, 24, 24)).shape == (2, 3)


def test_tiny_training_run_lowers_the_loss():
    torch.manual_seed(0)
    x = torch.rand(8, 1, 4, 16, 16)
    y = torch.tensor([0, 1] * 4)
    x[y == 1, :, :, 4:12, 4:12] += 1.0  # class 1: a bright block through every slice
    net = get_model("resnet3d_18", dropout=0.0)
    losses = train_losses(net, x, y, steps=4)
    assert losses[-1] < losses[0]
