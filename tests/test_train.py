"""The trainer: schedule, optimizer groups, fit, every recipe's options, seeding, checkpoints/resume, precise BN."""
from __future__ import annotations

import math

import numpy as np

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from medvid_core.losses import class_weights
from medvid_core.metrics import accuracy
from medvid_core.models import get_model
from medvid_core.train import (
    evaluate,
    fit,
    load_checkpoint,
    make_optimizer,
    resolve_device,
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
    """(B, 1, T, H, W) -> (B, 2): conv, BN, pool, and an `fc` head (what `head="fc"` decays alone)."""

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
    history = fit(model, loader(toy_data()), **{"epochs": 6, "lr": 0.05, "metric_fn": accuracy, **kwargs})
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
    opt = make_optimizer(model, lr=1e-3, weight_decay=0.05, head="fc")
    assert isinstance(opt, torch.optim.AdamW)
    decayed, plain = opt.param_groups
    assert decayed["weight_decay"] == 0.05 and plain["weight_decay"] == 0.0
    assert {id(p) for p in decayed["params"]} == {id(p) for p in model.fc.parameters()}
    fc_ids = {id(p) for p in model.fc.parameters()}
    assert {id(p) for p in plain["params"]} == {id(p) for p in model.parameters() if id(p) not in fc_ids}
    assert len(decayed["params"]) + len(plain["params"]) == len(list(model.parameters()))
    assert all(g["lr"] == 1e-3 for g in opt.param_groups)


def test_neutral_defaults():
    """No recipe hides in the defaults: decay (when asked for) on every parameter, mixing in every epoch,
    cross-entropy, AdamW, one cosine decay without warm-up; a study passes its paper's recipe explicitly."""
    import inspect

    model = MultiLabel()  # no `fc`: the default needs none
    opt = make_optimizer(model, lr=0.1, weight_decay=0.01)
    assert isinstance(opt, torch.optim.AdamW)
    assert [len(g["params"]) for g in opt.param_groups] == [len(list(model.parameters())), 0]
    defaults = {k: p.default for k, p in inspect.signature(fit).parameters.items()}
    assert defaults["head"] is None and defaults["mix_fraction"] == 1.0 and defaults["weight_decay"] == 0.0
    assert (defaults["optimizer"], defaults["schedule"], defaults["warmup_epochs"]) == ("adamw", "warmup_cosine", 0)
    assert defaults["loss_fn"] is F.cross_entropy and defaults["early_stopping"] == 0


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
    assert evaluate(model, loader(toy_data(), shuffle=False), metric_fn=accuracy)["accuracy"] == 1.0


def test_fit_with_val_loader():
    _, history = train_toy(epochs=2, val_loader=loader(toy_data(8, seed=1), shuffle=False))
    assert all({"val_loss", "val_accuracy"} <= h.keys() for h in history)


def test_no_metric_fn_no_metric():
    _, history = train_toy(epochs=1, metric_fn=None)
    assert set(history[0]) == {"epoch", "lr", "train_loss", "train_seconds"}


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
    assert out["outputs"].shape == (10, 2)
    with torch.no_grad():
        want = F.cross_entropy(model(toy_data(10).tensors[0]), toy_data(10).tensors[1]).item()
    assert out["loss"] == pytest.approx(want, rel=1e-5) and not model.training


# ------------------------------------------------------------------- checkpoints


def test_fit_checkpoint_round_trip(tmp_path):
    model, history = train_toy(epochs=2, checkpoint_dir=tmp_path / "run")
    path = tmp_path / "run" / "last.pt"
    raw = torch.load(path, map_location="cpu", weights_only=True)  # plain dict: no medvid classes inside
    assert type(raw) is dict and {"model", "optimizer", "epoch", "history", "rng"} <= set(raw)
    assert raw["epoch"] == 2 and raw["history"] == list(history)
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


def test_load_checkpoint_refuses_pickled_code(tmp_path):
    """weights_only=True: a checkpoint that would run code on unpickling is refused, not executed."""
    import pickle

    path = tmp_path / "evil.pt"
    torch.save({"model": Toy().state_dict(), "payload": Toy()}, path)  # a whole module: needs unpickling code
    with pytest.raises(pickle.UnpicklingError):
        load_checkpoint(path, model=Toy())


# ------------------------------------------------------------------- every recipe's options


def test_class_weights_change_the_loss():
    seed_everything(0)
    x, y = toy_data(12).tensors
    y = torch.tensor([0] * 9 + [1] * 3)  # imbalanced
    w = class_weights(y, 2)
    assert w.tolist() == pytest.approx([12 / (2 * 9), 12 / (2 * 3)])
    model = Toy()
    dl = DataLoader(TensorDataset(x, y), batch_size=12)
    plain = evaluate(model, dl)["loss"]
    weighted = evaluate(model, dl, loss_fn=nn.CrossEntropyLoss(weight=w))["loss"]
    with torch.no_grad():
        logp = F.log_softmax(model(x), 1)
    want = -(w[y] * logp[torch.arange(12), y]).sum() / w[y].sum()
    assert weighted == pytest.approx(want.item(), rel=1e-5) and weighted != pytest.approx(plain)


class MultiLabel(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(4 * 8 * 8, 16), nn.ReLU())
        self.head = nn.Linear(16, 3)

    def forward(self, x):
        return self.head(self.body(x))


def test_bce_multilabel_learns_a_separable_toy_set():
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 2, (32, 3), generator=g).float()
    x = 0.2 * torch.randn(32, 1, 4, 8, 8, generator=g)
    for j in range(3):  # label j lights up its own quarter of the image
        x[y[:, j] == 1, :, :, 4 * (j // 2) : 4 * (j // 2) + 4, 4 * (j % 2) : 4 * (j % 2) + 4] += 1.0
    seed_everything(0)
    model = MultiLabel()

    def exact_match(outputs, targets):
        return {"exact": float(((outputs > 0).float() == targets).all(1).float().mean())}

    dl = DataLoader(TensorDataset(x, y), batch_size=8, shuffle=True)
    history = fit(model, dl, epochs=15, lr=0.01, loss_fn=nn.BCEWithLogitsLoss(), metric_fn=exact_match, head="head")
    assert history[-1]["train_loss"] < 0.3 * history[0]["train_loss"]
    assert evaluate(model, DataLoader(TensorDataset(x, y), batch_size=8), loss_fn=nn.BCEWithLogitsLoss(),
                    metric_fn=exact_match)["exact"] == 1.0


def test_loss_over_two_forward_passes():
    """forward(model, x) may run the model twice (full image and a crop); the loss sees both."""
    passes = []

    def two_views(model, x):
        passes.append(len(x))
        return model(x), model(x.flip(-1))

    def both(outputs, y):
        return F.cross_entropy(outputs[0], y) + F.cross_entropy(outputs[1], y)

    seed_everything(0)
    history = fit(Toy(), loader(toy_data()), epochs=2, lr=0.05, forward=two_views, loss_fn=both)
    assert passes == [4] * 8 and len(history) == 2


def test_dict_and_tuple_targets():
    x, y = toy_data(8).tensors

    class Pairs(torch.utils.data.Dataset):
        def __len__(self):
            return 8

        def __getitem__(self, i):
            return x[i], {"label": y[i], "weight": torch.tensor(1.0)}

    def loss(out, t):
        return (F.cross_entropy(out, t["label"], reduction="none") * t["weight"]).mean()

    seed_everything(0)
    model = Toy()
    fit(model, DataLoader(Pairs(), batch_size=4), epochs=1, lr=0.01, loss_fn=loss)
    ev = evaluate(model, DataLoader(Pairs(), batch_size=4), loss_fn=loss)
    assert ev["targets"]["label"].tolist() == y.tolist() and ev["targets"]["weight"].shape == (8,)


def test_sgd_and_head_by_name():
    model = MultiLabel()
    opt = make_optimizer(model, lr=0.1, weight_decay=0.01, optimizer="sgd", momentum=0.9, head="head")
    assert isinstance(opt, torch.optim.SGD) and opt.param_groups[0]["momentum"] == 0.9
    assert {id(p) for p in opt.param_groups[0]["params"]} == {id(p) for p in model.head.parameters()}
    everywhere = make_optimizer(model, lr=0.1, weight_decay=0.01, head=None)
    assert len(everywhere.param_groups[0]["params"]) == len(list(model.parameters()))
    vgg_like = nn.Sequential(nn.Linear(2, 2), nn.Sequential(nn.ReLU(), nn.Linear(2, 2)))
    nested = make_optimizer(vgg_like, lr=0.1, weight_decay=0.01, head="1.1")  # e.g. VGG's classifier.6
    assert {id(p) for p in nested.param_groups[0]["params"]} == {id(p) for p in vgg_like[1][1].parameters()}
    with pytest.raises(ValueError, match="has no submodule 'fc'"):
        make_optimizer(model, lr=0.1, weight_decay=0.01, head="fc")
    with pytest.raises(ValueError, match="optimizer must be one of"):
        make_optimizer(model, lr=0.1, optimizer="adam", head=None)


def test_reduce_on_plateau_lowers_the_lr_by_the_factor():
    seed_everything(0)
    history = fit(Toy(), loader(toy_data()), epochs=5, lr=0.05, schedule="plateau", plateau_patience=1,
                  plateau_factor=0.1, val_loader=loader(toy_data(8, seed=1)), monitor="val_flat",
                  monitor_mode="max", metric_fn=lambda o, t: {"flat": 1.0})
    # a monitored value that never improves after epoch 1: after 2 flat epochs (> patience 1) lr x0.1
    lrs = [h["lr"] for h in history]
    assert lrs[:3] == [0.05] * 3 and lrs[3:] == pytest.approx([0.005, 0.005])


def test_monitor_needs_a_val_loader():
    with pytest.raises(ValueError, match="needs a val_loader"):
        fit(Toy(), loader(toy_data()), epochs=1, lr=0.1, early_stopping=2)


def test_early_stopping_restores_the_best_epochs_weights(tmp_path):
    seed_everything(0)
    val = loader(toy_data(8, seed=5), shuffle=False)
    model = Toy()
    history = fit(model, loader(toy_data()), epochs=30, lr=0.5, val_loader=val, early_stopping=2,
                  schedule="constant", metric_fn=accuracy, checkpoint_dir=tmp_path)
    best = history.best_epoch
    losses = [h["val_loss"] for h in history]
    assert best == 1 + int(np.argmin(losses))
    assert len(history) < 30 and len(history) == best + 2  # stopped 2 epochs after the best
    assert evaluate(model, val)["loss"] == pytest.approx(losses[best - 1], rel=1e-6)  # best weights back
    assert losses[-1] > losses[best - 1]  # the last epoch's weights were worse: restoring mattered


def test_resume_reaches_the_same_weights(tmp_path):
    """A 4-epoch run killed in epoch 3, resumed from its checkpoint, ends with the weights and history
    of the uninterrupted run: schedule, optimizer moments, data order and random draws all restored."""
    calls = []

    def run(*, die_at_call=None, **kw):
        seed_everything(7)
        model = Toy()
        gen = torch.Generator().manual_seed(7)
        dl = DataLoader(toy_data(), batch_size=4, shuffle=True, generator=gen)

        def forward(m, x):
            calls.append(1)
            if die_at_call is not None and len(calls) == die_at_call:
                raise KeyboardInterrupt  # the process dies here
            return m(x)

        history = fit(model, dl, epochs=4, lr=0.05, warmup_epochs=1, forward=forward, mix_fraction=0.5,
                      mix=lambda x, y: (x * (1 + 0.1 * torch.rand(1)), F.one_hot(y, 2).float()), **kw)
        return model, history

    whole, h_whole = run()
    calls.clear()
    with pytest.raises(KeyboardInterrupt):
        run(die_at_call=9, checkpoint_dir=tmp_path)  # first batch of epoch 3 (4 batches an epoch)
    assert torch.load(tmp_path / "last.pt", weights_only=True)["epoch"] == 2
    # the resumed run starts from the epoch-0 RNG states (seed 7): the checkpoint must restore epoch 2's
    resumed, h_resumed = run(resume=tmp_path / "last.pt")
    for k, v in whole.state_dict().items():
        assert torch.equal(v, resumed.state_dict()[k]), k
    assert [h["train_loss"] for h in h_resumed] == [h["train_loss"] for h in h_whole]
    assert [h["lr"] for h in h_resumed] == [h["lr"] for h in h_whole]


def test_device_auto():
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu").type == "cpu"


def test_empty_loader_is_one_clear_error():
    dl = DataLoader(toy_data(3), batch_size=4, drop_last=True)
    with pytest.raises(ValueError, match="gave no batch.*3 samples, batch size 4"):
        fit(Toy(), dl, epochs=1, lr=0.1)
