"""Small 2D/3D CNNs, the multi-view model and the two-stream model: shapes, stages, fusion, a tiny run."""
import pytest
import torch

import medvid_core.models.multiview  # noqa: F401  (registers the models)
import medvid_core.models.small_cnn  # noqa: F401
import medvid_core.models.two_stream  # noqa: F401
from medvid_core.models import count_parameters, get_model
from tests.helpers import train_losses


def test_shapes_and_parameter_ratio():
    m2, m3 = get_model("cnn2d_small", num_classes=3), get_model("cnn3d_small", num_classes=3)
    assert m2(torch.zeros(2, 1, 32, 32)).shape == (2, 3)
    assert m3(torch.zeros(2, 1, 16, 32, 32)).shape == (2, 3)
    assert 2.5 < count_parameters(m3) / count_parameters(m2) < 3.1  # 27 vs 9 weights per filter (heads alike)
    with pytest.raises(ValueError, match="expects 5D"):
        m3(torch.zeros(2, 1, 32, 32))


def test_3d_cnn_learns_a_toy_task():
    torch.manual_seed(0)
    x = 0.1 * torch.randn(8, 1, 8, 16, 16)
    y = torch.arange(8) % 2
    x[y == 1, :, 2:6, 4:12, 4:12] += 1.0
    losses = train_losses(get_model("cnn3d_small"), x, y, steps=15)
    assert losses[-1] < 0.5 * losses[0]


def test_multiview_stages():
    torch.manual_seed(0)
    m = get_model("multiview_cnn2d_small").eval()
    views = torch.randn(4, 1, 3, 32, 32)
    per_view = m.view_logits(views)
    assert per_view.shape == (4, 3, 2)
    # each view scored on its own: equal to the 2D net on that view alone
    torch.testing.assert_close(per_view[:, 1], m.view_net(views[:, :, 1]))
    # precomputed first-stage outputs give the same answer as the full forward
    torch.testing.assert_close(m(m.view_log_probs(views)), m(views))
    with pytest.raises(ValueError, match="views"):
        m(torch.zeros(1, 1, 4, 32, 32))


def test_two_stream_averages_the_streams_probabilities():
    torch.manual_seed(0)
    m = get_model("two_stream_small", num_classes=3, flow_frames=2).eval()
    frame, flow = torch.randn(2, 3, 32, 32), torch.randn(2, 4, 32, 32)
    expected = (m.spatial(frame).softmax(1) + m.temporal(flow).softmax(1)) / 2
    out = m((frame, flow))
    torch.testing.assert_close(out.exp(), expected)
    torch.testing.assert_close(out.exp().sum(1), torch.ones(2))
