"""What the paper-size runs cost: one training step of each study's paper network at the paper's input and
batch, and the compute hours of its `params/<study>/paper.yaml` schedule, on a GPU.

Each step is forward + loss + backward + SGD (momentum 0.9) on a fixed random batch, fp32 as the papers
trained, timed with `medvid_core.metrics.time_calls` (median of `--repeats` round-robin calls after 3
untimed ones, CUDA synchronised). Steps per epoch come from the paper's training-set sizes, so the hours
are compute only: decoding, augmentation and evaluation are not in them.

    .venv/bin/python benchmarks/paper_steps.py               # on CUDA; without it, says so and exits 0
    .venv/bin/python benchmarks/paper_steps.py --device cpu  # force it: minutes per step on a laptop
"""
from __future__ import annotations

import argparse
import json
import math

import torch
import torch.nn as nn

import medvid_core.models.cnn_rnn  # noqa: F401  (registers viptt_net)
from medvid_core.metrics import time_calls
from medvid_core.models import get_model
from medvid_core.studies import ich

# name: (builder, input shape with batch, target maker, loss, paper training items, batch, paper.yaml epochs)
CONFIGS = {
    # ViPTT-Net fine-tuning: 70x224x224 CTs, VGG-16 at full width, batch 2; 917 scans x 0.8 for training
    "viptt_net finetune": (lambda: get_model("viptt_net", num_classes=5, width=1.0), (2, 1, 70, 224, 224),
                           lambda b: torch.randint(0, 5, (b,)), nn.CrossEntropyLoss(), 733, 2, 100),
    # MURA baseline: VGG19-BN, one channel, 224 px, batch 32; MURA-v1.1's 36,808 training images
    "mura vgg19_bn": (lambda: get_model("vgg19", num_classes=2, in_channels=1, width=1.0, batch_norm=True),
                      (32, 1, 224, 224), lambda b: torch.randint(0, 2, (b,)), nn.CrossEntropyLoss(), 36808, 32, 20),
    # ICH experiment 2: ResNet-152 with five sigmoid heads, 224 px, batch 32; the seed's 22,501 multi-label slices
    "ich resnet152 multi-label": (lambda: ich.build_model("resnet152", num_outputs=5), (32, 3, 224, 224),
                                  lambda b: torch.randint(0, 2, (b, 5)).float(), nn.BCEWithLogitsLoss(), 22501, 32, 50),
    # ICH leakage experiment: VGG16 binary, 224 px, batch 32; the seed's experiment 1 size (10,000 random
    # slices, 80% for training); paper.yaml's leakage_epochs
    "ich vgg16 binary": (lambda: ich.build_model("vgg16", num_outputs=1), (32, 3, 224, 224),
                         lambda b: torch.randint(0, 2, (b, 1)).float(), nn.BCEWithLogitsLoss(), 8000, 32, 150),
}


def train_step(build, shape, target, loss_fn, device):
    """A closure running one SGD step of a fresh model on a fixed batch."""
    model = build().to(device).train()
    x, y = torch.rand(shape, device=device), target(shape[0]).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)

    def step():
        opt.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        opt.step()
    return step


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto", help="auto (CUDA when present, else skip), cuda or cpu")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--configs", nargs="*", default=list(CONFIGS), choices=list(CONFIGS))
    ap.add_argument("--json", default="", help="write every figure here too")
    args = ap.parse_args()
    if args.device == "auto":
        if not torch.cuda.is_available():
            print("paper_steps: no CUDA device; paper-size steps are a GPU measurement (--device cpu forces "
                  "them here, minutes per step). Skipped.")
            return
        args.device = "cuda"
    torch.manual_seed(0)
    if args.device == "cuda":
        torch.backends.cudnn.benchmark = True
        print(torch.cuda.get_device_name(0), "torch", torch.__version__)
    rows = {}
    for name in args.configs:  # one model at a time: paper-size networks need not share the memory
        build, shape, target, loss_fn, items, batch, epochs = CONFIGS[name]
        if args.device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        wall, _ = time_calls({name: train_step(build, shape, target, loss_fn, args.device)},
                             repeats=args.repeats, device=args.device)[name]
        steps = math.ceil(items / batch)
        rows[name] = dict(input=list(shape), ms_per_step=1000 * wall, steps_per_epoch=steps,
                          s_per_epoch=wall * steps, epochs=epochs, hours=wall * steps * epochs / 3600,
                          peak_gib=torch.cuda.max_memory_allocated() / 2**30 if args.device == "cuda" else None)
        r = rows[name]
        print(f"{name:26s} {'x'.join(map(str, shape)):>16s}  {r['ms_per_step']:7.1f} ms/step  "
              f"{steps:5d} steps/epoch  {r['s_per_epoch']:6.0f} s/epoch  x{epochs:3d} = {r['hours']:5.2f} h  "
              f"peak {'-' if r['peak_gib'] is None else format(r['peak_gib'], '.1f')} GiB", flush=True)
        if args.device == "cuda":
            torch.cuda.empty_cache()
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
