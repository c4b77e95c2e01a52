"""I3D inflation: a boring video reproduces the 2D network's output (exactly with replicate time padding)."""
import pytest
import torch
import torch.nn as nn
from torchvision.models import resnet18

from medvid_core.models import get_model
from medvid_core.models.inflate import InflatedConv3d, boring_video, inflate, inflate_conv


def _resnet(seed=0):
    torch.manual_seed(seed)
    net = resnet18(weights=None, num_classes=5).eval()
    for m in net.modules():  # non-trivial BN statistics, so the test also covers their copy
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    return net


def test_inflated_conv_weights_sum_to_the_2d_filter():
    conv = nn.Conv2d(3, 4, 3, padding=1)
    c3 = inflate_conv(conv, time_kernel=5)
    assert isinstance(c3, InflatedConv3d) and c3.weight.shape == (4, 3, 5, 3, 3)
    torch.testing.assert_close(c3.weight.sum(2), conv.weight)
    torch.testing.assert_close(c3.weight[:, :, 0] * 5, conv.weight)


@torch.no_grad()
def test_boring_video_equals_2d_output_with_replicate_padding():
    net = _resnet()
    frame = torch.randn(2, 3, 64, 64)
    out2d = net(frame)
    net3d = inflate(net, time_kernel=3, time_padding="replicate").eval()
    out3d = net3d(boring_video(frame, 6))
    assert out3d.shape == out2d.shape
    torch.testing.assert_close(out3d, out2d, atol=1e-5, rtol=1e-4)


@torch.no_grad()
def test_zero_padding_breaks_the_equality_at_the_edge_frames():
    net = _resnet()
    frame = torch.randn(2, 3, 64, 64)
    out2d = net(frame)
    out3d = inflate(net, time_kernel=3, time_padding="zeros").eval()(boring_video(frame, 6))
    assert (out3d - out2d).abs().max() > 1e-3
    # one inflated conv: the middle frames still match, the first and last do not
    conv = nn.Conv2d(3, 8, 3, padding=1)
    y2 = conv(frame)
    y3 = inflate_conv(conv, time_kernel=3, time_padding="zeros")(boring_video(frame, 5))
    torch.testing.assert_close(y3[:, :, 2], y2, atol=1e-6, rtol=1e-5)
    assert (y3[:, :, 0] - y2).abs().max() > 1e-3


@torch.no_grad()
def test_time_kernel_one_is_exact_even_with_zero_padding():
    net = _resnet()
    frame = torch.randn(1, 3, 48, 48)
    out3d = inflate(net, time_kernel=1, time_padding="zeros").eval()(boring_video(frame, 4))
    torch.testing.assert_close(out3d, net(frame), atol=1e-5, rtol=1e-4)


def test_registered_model_shape_and_errors():
    net = get_model("i3d_r18", num_classes=3, in_channels=1)
    assert net(torch.zeros(1, 1, 4, 32, 32)).shape == (1, 3)
    with pytest.raises(ValueError, match="time_padding"):
        inflate(nn.Conv2d(1, 1, 3), time_padding="reflect")
    with pytest.raises(ValueError, match="odd"):
        inflate_conv(nn.Conv2d(1, 1, 3), time_kernel=2)
    with pytest.raises(ValueError, match="no 3D version"):
        inflate(nn.Sequential(nn.Dropout2d()))
