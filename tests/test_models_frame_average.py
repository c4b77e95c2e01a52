"""Frame averaging ignores frame order; the CNN+LSTM over the same frames does not."""
import torch

import medvid_core.models.frame_average  # noqa: F401
from medvid_core.models import get_model


@torch.no_grad()
def test_frame_average_cannot_see_order_but_the_lstm_can():
    torch.manual_seed(0)
    clip = torch.randn(2, 3, 5, 24, 24)
    backwards = clip.flip(2)
    avg = get_model("frame_average_small", num_classes=4, widths=(8, 16)).eval()
    torch.testing.assert_close(avg(clip), avg(backwards), atol=1e-5, rtol=1e-5)
    lstm = get_model("cnn_lstm_small", num_classes=4, widths=(8, 16)).eval()
    assert lstm(clip).shape == (2, 4)
    assert (lstm(clip) - lstm(backwards)).abs().max() > 1e-4
