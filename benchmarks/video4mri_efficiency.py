"""Efficiency of the Video4MRI models (Table 2): parameters, inference and training time.

Measures, on the machine it runs on, for every registered model with a 2-class head and
one input channel:
  * trainable parameters, against the paper's Table 2 (relative difference in %);
  * inference ms/sample: batch 1, eval mode, no_grad, median of repeats;
  * training s per 100 samples: forward + backward + AdamW step on batches of random
    clips, train mode, median of repeats;
each after 3 untimed calls, the models timed round-robin, in wall-clock time and in process CPU time, by the
same timer the notebooks use (`medvid_core.metrics.time_calls`; on a shared CPU run with --threads 1 and trust
the CPU column);
then the ratios the paper's argument rests on (TSM vs TSN cost, 3D-ResNet-18 vs TSM-R18)
and, if pytorchvideo 0.1.5 is importable, our SlowFast-R50 against its `create_slowfast`.
Absolute times are not comparable with the paper's (GPU, other input size); ratios are.

    PYTHONPATH=/tmp/pv .venv/bin/python benchmarks/video4mri_efficiency.py [--frames 8 --size 64]
"""
from __future__ import annotations

import argparse
import json
import warnings

import torch
import torch.nn as nn
import torch.nn.functional as F

from medvid_core.metrics import inference_step, time_calls
from medvid_core.models import count_parameters, get_model
from medvid_core.studies.video4mri import TABLE2 as VIDEO4MRI_TABLE2

MODELS = ["resnet3d_18", "resnet3d_50", "tsn_r18", "tsn_r50", "tsm_r18", "tsm_r50", "slowfast_r50"]


def training_step(model: nn.Module, shape: tuple[int, ...], *, batch: int = 4, device: str = "cpu",
                  wrap=lambda x: x):
    """Forward + cross-entropy + backward + AdamW step on a batch of random clips (train mode)."""
    model.train().to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)  # its state is allocated in the warm-up steps
    x = torch.randn(batch, *shape, device=device)
    y = torch.randint(0, 2, (batch,), device=device)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(wrap(x)), y).backward()
        opt.step()

    return step


def measure(models: dict, shape: tuple[int, ...], *, batch: int = 4, device: str = "cpu", repeats: int = 3) -> dict:
    """`models`: name -> (model, wrap). Inference ms/sample and training s/100 samples, all timed round-robin."""
    kw = dict(repeats=repeats, device=device)
    infer = time_calls({k: inference_step(m, shape, device=device, wrap=w) for k, (m, w) in models.items()}, **kw)
    train = time_calls({k: training_step(m, shape, batch=batch, device=device, wrap=w)
                           for k, (m, w) in models.items()}, **kw)
    return {k: {"inference_ms": 1000 * infer[k][0], "inference_cpu_ms": 1000 * infer[k][1],
                "train_s_per_100": 100 * train[k][0] / batch, "train_cpu_s_per_100": 100 * train[k][1] / batch}
            for k in models}


def _pct(a: float, b: float) -> float:
    return 100 * (a / b - 1)


TIMES = [("inference_ms", "inference_cpu_ms", "inference"), ("train_s_per_100", "train_cpu_s_per_100", "training")]


def _ratios(a: dict, b: dict, name: str, out: dict, *, limit_pct: float | None = None,
            paper: tuple[float, float] | None = None) -> None:
    """Print and store time(a) / time(b), wall clock and CPU, for inference and training."""
    for (wall, cpu, label), ref in zip(TIMES, paper or (None, None)):
        rw, rc = a[wall] / b[wall], a[cpu] / b[cpu]
        out[f"{name}_{label}"] = {"wall": rw, "cpu": rc}
        line = f"{name} {label:9}: wall {rw:.3f} ({_pct(rw, 1):+.1f}%), cpu {rc:.3f} ({_pct(rc, 1):+.1f}%)"
        if limit_pct is not None:
            line += f"; <= {limit_pct:.0f}%: wall {'yes' if _pct(rw, 1) <= limit_pct else 'NO'}," \
                    f" cpu {'yes' if _pct(rc, 1) <= limit_pct else 'NO'}"
        print(line + (f"; paper {ref:.2f}" if ref else ""))


def _row(name: str, r: dict) -> str:
    cols = [("params_m", "9.2f"), ("paper_params_m", "9.2f"), ("params_diff_pct", "+8.2f"), ("inference_ms", "10.1f"),
            ("inference_cpu_ms", "9.1f"), ("paper_inference_ms", "10.1f"), ("train_s_per_100", "10.2f"),
            ("train_cpu_s_per_100", "9.2f"), ("paper_train_s", "9.0f")]
    return name.ljust(14) + "".join(  # blank where there is no figure (the paper has none for pytorchvideo)
        format(r[key], spec) if key in r else " " * int(spec.strip("+").split(".")[0]) for key, spec in cols)


HEADER = (f"{'model':14}{'params M':>9}{'paper M':>9}{'diff %':>8}{'infer ms':>10}{'cpu ms':>9}{'paper ms':>10}"
          f"{'train s':>10}{'cpu s':>9}{'paper s':>9}")


def _slowfast_vs_pytorchvideo(args, frames: int) -> dict | None:
    try:
        with warnings.catch_warnings():  # its import calls the deprecated torch.jit.script
            warnings.simplefilter("ignore", FutureWarning)
            from pytorchvideo.models.slowfast import create_slowfast
    except ImportError:
        print("\nSlowFast vs pytorchvideo: skipped (pytorchvideo not importable); get it with `.venv/bin/python -m pip"
              " install --target /tmp/pv --no-deps pytorchvideo==0.1.5 fvcore iopath yacs tabulate termcolor"
              " portalocker` and run with PYTHONPATH=/tmp/pv")
        return None
    shape = (1, frames, args.size, args.size)
    torch.manual_seed(0)
    pv = create_slowfast(input_channels=(1, 1), model_num_class=2, dropout_rate=0.4,
                         head_pool=nn.AdaptiveAvgPool3d, head_output_size=(1, 1, 1),
                         slowfast_fusion_conv_kernel_size=(5, 1, 1), slowfast_fusion_conv_stride=(8, 1, 1))
    models = {"ours": (get_model("slowfast_r50", num_classes=2, in_channels=1), lambda x: x),
              "pytorchvideo": (pv, lambda x: [x[:, :, ::8], x])}  # (slow, fast) pathways
    print(f"\nSlowFast-R50, ours vs pytorchvideo 0.1.5 create_slowfast, input (C, K, H, W) = {shape}"
          f"{'' if frames == args.frames else f' (K raised to {frames}: the fast path needs >= 8 frames)'}")
    print(HEADER)
    res = {"frames": frames}
    times = measure(models, shape, batch=args.batch, device=args.device, repeats=args.repeats)
    for name, (model, _) in models.items():
        res[name] = {"params_m": count_parameters(model) / 1e6, **times[name]}
        print(_row(name, res[name]), flush=True)
    print(f"params differ by {_pct(res['ours']['params_m'], res['pytorchvideo']['params_m']):+.2f}%; "
          f"time ours / pytorchvideo (throughput ratio = 1 / this):")
    _ratios(res["ours"], res["pytorchvideo"], "ours/pytorchvideo", res)
    return res


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--frames", type=int, default=8, help="K, slices per clip")
    p.add_argument("--size", type=int, default=64, help="slice height = width")
    p.add_argument("--batch", type=int, default=4, help="training batch size")
    p.add_argument("--repeats", type=int, default=3, help="timed repeats (median is reported)")
    p.add_argument("--models", nargs="+", default=MODELS, choices=MODELS)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch intra-op threads")
    p.add_argument("--json", help="also write the figures to this JSON file")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    shape = (1, args.frames, args.size, args.size)
    print(f"Video4MRI efficiency | input (C, K, H, W) = {shape} | torch {torch.__version__} | device {args.device}"
          f" | {torch.get_num_threads()} threads | training batch {args.batch} | median of {args.repeats} repeats")
    print("infer: ms/sample at batch 1; train: s per 100 samples (fwd + bwd + AdamW); cpu: process CPU time;"
          " paper: Video4MRI Table 2 (GPU, its own input size)")
    print(HEADER)
    models = {}
    for name in args.models:
        torch.manual_seed(0)
        models[name] = (get_model(name, num_classes=2, in_channels=1), lambda x: x)
    times = measure(models, shape, batch=args.batch, device=args.device, repeats=args.repeats)
    rows = {}
    for name, (model, _) in models.items():
        paper = VIDEO4MRI_TABLE2.loc[name]
        r = {"params_m": count_parameters(model) / 1e6, "paper_params_m": float(paper["params_m"]),
             **times[name], "paper_inference_ms": float(paper["inference_ms"]), "paper_train_s": float(paper["train_s"])}
        r["params_diff_pct"] = _pct(r["params_m"], r["paper_params_m"])
        rows[name] = r
        print(_row(name, r), flush=True)
    del models

    ratios = {}
    print("\nRatios, time of A / time of B")
    for depth in ("r18", "r50"):
        if f"tsm_{depth}" in rows and f"tsn_{depth}" in rows:
            _ratios(rows[f"tsm_{depth}"], rows[f"tsn_{depth}"], f"TSM/TSN-{depth.upper()}", ratios, limit_pct=5)
    if "resnet3d_18" in rows and "tsm_r18" in rows:
        t2 = VIDEO4MRI_TABLE2  # paper: 38.4 / 28.9 ms = 1.33 and 36 / 20 s = 1.8
        paper = tuple(t2.loc["resnet3d_18", k] / t2.loc["tsm_r18", k] for k in ("inference_ms", "train_s"))
        _ratios(rows["resnet3d_18"], rows["tsm_r18"], "3D-ResNet-18/TSM-R18", ratios, paper=paper)

    slowfast = _slowfast_vs_pytorchvideo(args, args.frames if args.frames >= 8 else 8)
    out = {"meta": {"input": list(shape), "torch": torch.__version__, "device": args.device,
                    "threads": torch.get_num_threads(), "batch": args.batch, "repeats": args.repeats},
           "models": rows, "ratios": ratios, "slowfast_vs_pytorchvideo": slowfast}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)
    return out


if __name__ == "__main__":
    main()
