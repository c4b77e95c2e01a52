"""R(2+1)D: torchvision's network as it is, and the laptop-width one built from the same (2+1)D blocks."""
import pytest
import torch
from torchvision.models.video.resnet import Conv2Plus1D

from medvid_core.models import count_parameters, get_model, list_models


def test_both_are_registered_and_regress_one_number():
    assert {"r2plus1d_18", "r2plus1d_small"} <= set(list_models())
    net = get_model("r2plus1d_small").eval()
    with torch.no_grad():
        assert net(torch.zeros(2, 1, 8, 32, 32)).shape == (2, 1)


def test_small_uses_factorised_convolutions_and_sees_time():
    net = get_model("r2plus1d_small", widths=(8, 16, 32, 32)).eval()
    convs = [m for m in net.modules() if isinstance(m, Conv2Plus1D)]
    assert len(convs) == 8  # four stages of one basic block, two (2+1)D convolutions each
    assert all(c[0].kernel_size == (1, 3, 3) and c[3].kernel_size == (3, 1, 1) for c in convs)
    torch.manual_seed(0)
    x = torch.rand(1, 1, 8, 32, 32)
    with torch.no_grad():  # unlike frame averaging, the order of the frames changes the output
        assert (net(x) - net(x.flip(2))).abs().max() > 1e-6


def test_r2plus1d_18_is_torchvisions_and_loads_local_weights(tmp_path):
    from torchvision.models.video import r2plus1d_18

    net = get_model("r2plus1d_18", num_classes=400)
    assert count_parameters(net) == count_parameters(r2plus1d_18(weights=None)) == 31_505_325
    torch.manual_seed(1)
    ref = r2plus1d_18(weights=None)
    torch.save(ref.state_dict(), tmp_path / "w.pt")
    loaded = get_model("r2plus1d_18", num_classes=400, weights=str(tmp_path / "w.pt"))
    assert torch.equal(loaded.stem[0].weight, ref.stem[0].weight)
    grey = get_model("r2plus1d_18", in_channels=1)
    assert grey.stem[0].in_channels == 1 and grey.fc.out_features == 1


def test_a_frame_instead_of_a_clip_is_refused():
    with pytest.raises(ValueError, match="expects clips"):
        get_model("r2plus1d_small")(torch.zeros(1, 1, 32, 32))
