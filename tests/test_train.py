"""The trainer: schedule, optimizer groups, fit, seeding, checkpoints and precise BN."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from medvid_core.models import get_model
from medvid_core.train import (
    evaluate,
    fit,
    load_checkpoint,
    make_optimizer,
    save_checkpoint,
    seed_everything,
    warmup_cosine,
)


@pytest.fixture(autouse=True)
def restore_determinism():
    """seed_everything switches on deterministic algorithms process-wide; undo it after each test."""
    enabled, warn_only = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    state = torch.get_rng_state()
    yield
    torch.use_deterministic_algorithms(enabled, warn_only=warn_only)
    torch.set_rng_state(state)


class Toy(nn.Module):
    """(B, 1, T, H, W) -> (B, 2): conv, BN, pool, and the `fc` head the trainer decays."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv3d(1, 4, 3, padding=1)
        self.bn = nn.BatchNorm3d(4)
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        return self.fc(F.relu(self.bn(self.conv(x))).mean(dim=(2, 3, 4)))


def toy_data(n=16, seed=0) -> TensorDataset:
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    x = 0.3 * torch.randn(n, 1, 4, 8, 8, generator=g)
    x[y == 1, :, :, 2:6, 2:6] += 1.0
    return TensorDataset(x, y)


def loader(ds, shuffle=True, batch_size=4):
    return DataLoader(ds, batch_size=batch_size, shuffle=shuffle)


def train_toy(seed=0, **kwargs):
    seed_everything(seed)
    model = Toy()
    history = fit(model, loader(toy_data()), **{"epochs": 6, "lr": 0.05, **kwargs})
    return model, history


# ------------------------------------------------------------------- schedule and optimizer


def factors(warmup, total):
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = warmup_cosine(opt, warmup_steps=warmup, total_steps=total)
    return opt, sched, [sched.lr_lambdas[0](s) for s in range(total + 1)]


def test_warmup_cosine_factors():
    opt, sched, f = factors(4, 20)
    assert f[0] == 1 / 4 and f[1] == 2 / 4 and f[2] == 3 / 4
    assert f[3] == 1.0 and f[4] == 1.0  # end of warm-up, start of the cosine
    assert f[19] == pytest.approx(0.5 * (1 + math.cos(math.pi * 15 / 16)))
    assert 0 < f[19] < 0.01 and f[20] == 0.0  # last step ~0, zero after it
    after = f[4:]
    assert all(a > b for a, b in zip(after, after[1:]))  # strictly decreasing after warm-up
    assert f[12] == pytest.approx(0.5)  # half-way through the cosine
    # the optimizer sees those factors as it is stepped
    assert opt.param_groups[0]["lr"] == 0.25
    seen = []
    for _ in range(20):
        opt.step()
        sched.step()
        seen.append(opt.param_groups[0]["lr"])
    assert seen == pytest.approx(f[1:])


def test_warmup_cosine_without_warmup():
    _, _, f = factors(0, 10)
    assert f[0] == 1.0 and f[5] == pytest.approx(0.5) and f[10] == 0.0


@pytest.mark.parametrize("build", [Toy, lambda: get_model("tsn_r18"), lambda: get_model("resnet3d_18")])
def test_weight_decay_on_fc_only(build):
    model = build()
    opt = make_optimizer(model, lr=1e-3, weight_decay=0.05)
    assert isinstance(opt, torch.optim.AdamW)
    decayed, plain = opt.param_groups
    assert decayed["weight_decay"] == 0.05 and plain["weight_decay"] == 0.0
    assert {id(p) for p in decayed["params"]} == {id(p) for p in model.fc.parameters()}
    fc_ids = {id(p) for p in model.fc.parameters()}
    assert {id(p) for p in plain["params"]} == {id(p) for p in model.parameters() if id(p) not in fc_ids}
    assert len(decayed["params"]) + len(plain["params"]) == len(list(model.parameters()))
    assert all(g["lr"] == 1e-3 for g in opt.param_groups)


# ------------------------------------------------------------------- fit


def test_fit_reduces_loss_and_records_history():
    model, history = train_toy(epochs=8, warmup_epochs=1)
    assert [h["epoch"] for h in history] == list(range(1, 9))
    assert history[0]["lr"] == pytest.approx(0.05 / 4)  # 4 warm-up steps, first one
    assert history[1]["lr"] == pytest.approx(0.05)  # warm-up over after epoch 1
    for h in history:
        assert {"train_loss", "train_accuracy", "train_seconds"} <= h.keys()
    assert history[-1]["train_loss"] < 0.5 * history[0]["train_loss"], [h["train_loss"] for h in history]
    assert history[-1]["train_accuracy"] == 1.0
    assert evaluate(model, loader(toy_data(), shuffle=False))["accuracy"] == 1.0


def test_fit_with_eval_loader():
    _, history = train_toy(epochs=2, eval_loader=loader(toy_data(8, seed=1), shuffle=False))
    assert all({"test_loss", "test_accuracy"} <= h.keys() for h in history)


def test_mix_only_in_first_fraction_of_epochs():
    calls = []

    def mix(x, y):
        calls.append(len(y))
        return x, F.one_hot(y, 2).float()

    _, history = train_toy(epochs=5, mix=mix, mix_fraction=0.4)  # epochs 1 and 2 of 5
    assert calls == [4] * 8  # 2 epochs x 4 batches
    assert len(history) == 5


def test_same_seed_same_weights():
    a, ha = train_toy(seed=3, epochs=3)
    b, hb = train_toy(seed=3, epochs=3)
    c, _ = train_toy(seed=4, epochs=3)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert [h["train_loss"] for h in ha] == [h["train_loss"] for h in hb]
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)
    assert torch.are_deterministic_algorithms_enabled()


def test_evaluate():
    seed_everything(0)
    model = Toy()
    out = evaluate(model, loader(toy_data(10), shuffle=False))
    assert out["targets"].tolist() == [0, 1] * 5
    assert out["probabilities"].shape == (10, 2) and out["predictions"].shape == (10,)
    assert (out["predictions"] == out["probabilities"].argmax(1)).all()
    assert out["loss"] > 0 and not model.training


# ------------------------------------------------------------------- checkpoints


def test_fit_checkpoint_round_trip(tmp_path):
    path = tmp_path / "run" / "ckpt.pt"
    model, history = train_toy(epochs=2, checkpoint=path)
    raw = torch.load(path, map_location="cpu", weights_only=True)  # plain dict: no medvid classes inside
    assert type(raw) is dict and set(raw) == {"model", "optimizer", "epoch", "history"}
    assert raw["epoch"] == 2 and raw["history"] == history
    assert set(raw["optimizer"]) == {"state", "param_groups"}

    fresh = Toy()
    opt = make_optimizer(fresh, lr=0.05, weight_decay=0.0)
    ckpt = load_checkpoint(path, model=fresh, optimizer=opt)
    assert ckpt["epoch"] == 2
    ref = model.state_dict()
    assert all(torch.equal(v, ref[k]) for k, v in fresh.state_dict().items())
    assert len(opt.state_dict()["state"]) == len(list(fresh.parameters()))  # Adam moments restored


def test_save_checkpoint_without_optimizer(tmp_path):
    model = Toy()
    save_checkpoint(tmp_path / "a" / "b.pt", model=model)
    ckpt = load_checkpoint(tmp_path / "a" / "b.pt", model=Toy(), optimizer=make_optimizer(Toy(), lr=1, weight_decay=0))
    assert ckpt["optimizer"] is None and ckpt["epoch"] == 0 and ckpt["history"] == []


# ------------------------------------------------------------------- precise BN


def test_bn_loader_recomputes_running_stats():
    data = toy_data()
    plain, _ = train_toy(seed=1, epochs=2)
    precise, _ = train_toy(seed=1, epochs=2, bn_loader=loader(data, shuffle=False))
    # same weights (BN recomputation trains nothing) ...
    for name, p in plain.named_parameters():
        assert torch.equal(p, dict(precise.named_parameters())[name]), name
    # ... different running statistics
    assert not torch.allclose(plain.bn.running_mean, precise.bn.running_mean)
    assert not torch.allclose(plain.bn.running_var, precise.bn.running_var)
    # exactly the mean BN input over the bn_loader clips (equal batches: mean of batch means)
    with torch.no_grad():
        want = precise.conv(data.tensors[0]).mean(dim=(0, 2, 3, 4))
    torch.testing.assert_close(precise.bn.running_mean, want, rtol=1e-5, atol=1e-6)
    assert precise.bn.momentum == 0.1  # restored after the recomputation
    assert precise.bn.num_batches_tracked == 4
