"""CNN+RNN and ViPTT-Net: shapes, head swap keeps the rest, cached features equal the full pass, frozen encoder."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

import medvid_core.models.cnn_rnn  # noqa: F401  (registers viptt_net)
from medvid_core.models import count_parameters, get_model
from medvid_core.models.cnn_rnn import CNNRNN, load_vgg16_features, precompute_features
from medvid_core.models.vgg import vgg_features


def tiny(**kw):
    return get_model("viptt_net", width=0.0625, hidden=16, fc_hidden=32, **kw)


def test_viptt_shapes_and_paper_layers():
    model = tiny(num_classes=10)
    x = torch.rand(2, 1, 5, 32, 32)
    assert model(x).shape == (2, 10)
    assert model.frame_features(x).shape == (2, 5, 32)  # 512 * width per slice
    assert isinstance(model.stem, nn.Conv3d) and model.stem.kernel_size == (1, 1, 1) and model.stem.out_channels == 3
    assert sum(isinstance(m, nn.Conv2d) for m in model.backbone.modules()) == 13  # VGG-16's 13 convolutions


def test_head_swap_keeps_backbone_and_lstm():
    model = tiny(num_classes=10)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.replace_head(5)
    after = model.state_dict()
    assert model(torch.rand(1, 1, 4, 32, 32)).shape == (1, 5)
    for k, v in before.items():
        if k.startswith("fc."):
            assert after[k].shape[0] == 5
        else:
            assert torch.equal(after[k], v), k


def test_cached_features_give_the_same_outputs_and_gradients():
    torch.manual_seed(0)
    model = tiny(num_classes=3).freeze_encoder()
    x, y = torch.rand(4, 1, 6, 32, 32), torch.tensor([0, 1, 2, 1])
    feats, targets = precompute_features(model, DataLoader(TensorDataset(x, y), batch_size=2))
    assert feats.shape == (4, 6, 32) and torch.equal(targets, y)
    full = F.cross_entropy(model(x), y)
    full.backward()
    grads = [p.grad.clone() for p in model.rnn.parameters()]
    model.zero_grad()
    cached = F.cross_entropy(model(feats), y)
    cached.backward()
    assert torch.allclose(full, cached, atol=1e-6)
    for g, p in zip(grads, model.rnn.parameters()):
        assert torch.allclose(g, p.grad, atol=1e-6)
    assert all(p.grad is None for p in model.encoder_parameters())  # frozen: no gradient reaches the VGG


def test_stem_starts_as_gray_to_rgb_copy():
    model = tiny()
    x = torch.rand(1, 1, 2, 8, 8)
    assert torch.equal(model.stem(x), x.repeat(1, 3, 1, 1, 1))


def test_generic_backbone_small_cnn_lstm():
    cnn = nn.Sequential(nn.Conv2d(2, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 16, 3, stride=2))
    model = CNNRNN(cnn, feature_dim=16, num_classes=4, hidden=8, fc_hidden=12)
    assert model(torch.rand(3, 2, 7, 20, 20)).shape == (3, 4)
    flat = CNNRNN(nn.Sequential(nn.Flatten(), nn.Linear(2 * 10 * 10, 6)), feature_dim=6, num_classes=2)
    assert flat(torch.rand(2, 2, 3, 10, 10)).shape == (2, 2)  # a backbone that already returns (N, F)
    assert count_parameters(model) > 0


def test_paper_width_and_local_vgg16_weights(tmp_path):
    """A torchvision-style VGG-16 state dict (its `features.*` keys) loads into the paper-width backbone."""
    ref = vgg_features(16)  # the layout of torchvision's vgg16().features, without its 120M-weight classifier
    path = tmp_path / "vgg16.pth"
    torch.save({f"features.{k}": v for k, v in ref.state_dict().items()} | {"classifier.0.bias": torch.zeros(1)}, path)
    model = get_model("viptt_net", num_classes=5, weights=str(path))
    assert model.rnn.hidden_size == 256 and model.hidden[0].out_features == 1024 and model.feature_dim == 512
    assert torch.equal(model.backbone[28].weight, ref[28].weight)
    try:
        load_vgg16_features(tiny(), path)
    except ValueError as exc:
        assert "vgg16.pth" in str(exc) and "width" in str(exc)
    else:
        raise AssertionError("a width-1 state dict must not load into a thinner backbone")


def test_frame_norm_is_off_by_default_and_rescales_tiny_random_features():
    assert tiny().frame_norm is None and not any(k.startswith("frame_norm") for k in tiny().state_dict())
    model = tiny(num_classes=10, frame_norm=True).eval()
    assert isinstance(model.frame_norm, nn.BatchNorm1d) and model.frame_norm.num_features == model.feature_dim
    x = torch.rand(3, 1, 4, 32, 32)
    assert torch.allclose(model(model.frame_features(x)), model(x), atol=1e-6)  # cached features: same logits
    model.train()
    seen = []
    model.rnn.register_forward_hook(lambda m, args, out: seen.append(args[0].detach()))
    model(x)
    f = seen[0].reshape(-1, model.feature_dim)
    assert torch.allclose(f.mean(0), torch.zeros(model.feature_dim), atol=1e-4)  # what the LSTM reads is standardized


def test_batch_norm_backbone_is_vgg16_bn_and_off_by_default(tmp_path):
    """`batch_norm=True` gives torchvision's VGG-16-BN layout, so a local `vgg16_bn` state dict loads."""
    from torchvision.models.vgg import cfgs, make_layers

    assert not any(isinstance(m, nn.BatchNorm2d) for m in tiny().backbone.modules())  # the paper's plain VGG-16
    ref = make_layers(cfgs["D"], batch_norm=True)  # torchvision's vgg16_bn().features
    path = tmp_path / "vgg16_bn.pth"
    torch.save({f"features.{k}": v for k, v in ref.state_dict().items()}, path)
    model = get_model("viptt_net", num_classes=5, batch_norm=True, weights=str(path))
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.backbone.modules()) == 13
    assert model.backbone.state_dict().keys() == ref.state_dict().keys()
    assert torch.equal(model.backbone[1].running_var, ref[1].running_var)
    assert tiny(batch_norm=True)(torch.rand(2, 1, 3, 32, 32)).shape == (2, 5)
