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


@torch.no_grad()
def test_grid_keeps_where_things_are_and_sizes_the_features():
    torch.manual_seed(0)
    frame = torch.zeros(1, 1, 1, 16, 16)
    left, right = frame.clone(), frame.clone()
    left[..., :, :4] = 1.0  # a bright bar on the left of the frame, then the same bar on the right
    right[..., :, 12:] = 1.0
    pooled = get_model("cnn_lstm_small", in_channels=1, widths=(4,), grid=1).eval()
    gridded = get_model("cnn_lstm_small", in_channels=1, widths=(4,), grid=2).eval()
    assert gridded.feature_dim == 4 * 2 * 2 and pooled.feature_dim == 4
    assert gridded.frame_features(left).shape == (1, 1, 16)
    # global pooling of a mirrored image gives the same features (the 3x3 conv is not mirror-symmetric,
    # so compare the bar's energy): the 2x2 layout tells left from right, global pooling cannot
    f_left, f_right = gridded.frame_features(left).view(4, 2, 2), gridded.frame_features(right).view(4, 2, 2)
    assert (f_left[:, :, 0].abs().sum() - f_left[:, :, 1].abs().sum()) * (
        f_right[:, :, 0].abs().sum() - f_right[:, :, 1].abs().sum()) < 0
    avg = get_model("frame_average_small", in_channels=1, widths=(4,), grid=3)
    assert avg.fc.in_features == 4 * 9
