"""Two-stream models beyond Simonyan & Zisserman's: the small inflated CNN (I3D's fixed point), the two-stream
I3D (late fusion of two inflated networks) and the 3D-fused two-stream (a 3D conv over both streams' maps)."""
from __future__ import annotations

import pytest
import torch

from medvid_core.models import count_parameters, get_model
from medvid_core.models.inflate import boring_video

WIDTHS = (4, 8, 8)


def test_i3d_small_answers_a_boring_video_as_its_2d_weights_answer_the_frame(tmp_path):
    """Inflated from a saved `cnn2d_small` state dict: on a repeated frame it gives the 2D network's logits."""
    torch.manual_seed(0)
    net2d = get_model("cnn2d_small", in_channels=3, num_classes=4, widths=WIDTHS)
    with torch.no_grad():  # non-trivial BN statistics, so the check covers them
        for m in net2d.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
    torch.save(net2d.state_dict(), tmp_path / "cnn2d.pt")
    net3d = get_model("i3d_small", in_channels=3, num_classes=4, widths=WIDTHS, weights=str(tmp_path / "cnn2d.pt"))
    frame = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        out2d, out3d = net2d.eval()(frame), net3d.eval()(boring_video(frame, 6))
    assert out3d.shape == (2, 4)
    assert (out3d - out2d).abs().max() < 1e-4
    random3d = get_model("i3d_small", in_channels=3, num_classes=4, widths=WIDTHS).eval()
    with torch.no_grad():
        assert (random3d(boring_video(frame, 6)) - out2d).abs().max() > 1e-3  # the weights did matter


def test_two_stream_i3d_averages_the_two_inflated_streams():
    torch.manual_seed(0)
    net = get_model("two_stream_i3d_small", num_classes=3, widths=WIDTHS).eval()
    rgb, flow = torch.randn(2, 3, 8, 32, 32), torch.randn(2, 2, 7, 32, 32)
    with torch.no_grad():
        out = net((rgb, flow))
        mean = (net.spatial(rgb).softmax(1) + net.temporal(flow).softmax(1)) / 2
    assert torch.allclose(out.exp(), mean, atol=1e-6)
    assert count_parameters(net) == count_parameters(net.spatial) + count_parameters(net.temporal)


def test_fused3d_shapes_order_and_gradients():
    torch.manual_seed(0)
    net = get_model("two_stream_fused3d_small", num_classes=3, flow_fields=2, widths=WIDTHS, fused_channels=8)
    frames, flow = torch.randn(2, 3, 5, 32, 32), torch.randn(2, 4, 5, 32, 32)
    out = net((frames, flow))
    assert out.shape == (2, 3)
    out.sum().backward()  # trained end to end: both streams and the fusion get gradients
    for part in (net.spatial, net.temporal, net.fuse, net.fc):
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in part.parameters())
    net.eval()
    with torch.no_grad():  # the 3D conv sees the order of the steps (a late average would not)
        shuffled = net((frames[:, :, [4, 0, 3, 1, 2]], flow[:, :, [4, 0, 3, 1, 2]]))
        assert (net((frames, flow)) - shuffled).abs().max() > 1e-4
    with pytest.raises(ValueError, match="same K"):
        net((frames, flow[:, :, :4]))
