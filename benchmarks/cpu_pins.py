"""The price of exact replay: training steps per second with the CPU kernels pinned to AVX2 against native.

`MEDVID_REPLAY=1` pins oneDNN, ATen, MKL, OpenBLAS and NumPy to AVX2 on x86-64 so that the committed
notebooks replay digit for digit (medvid_core.CPU_KERNEL_ENV). On a machine with AVX-512 that costs
speed. Each case runs in two fresh processes, one pinned and one not (the pins must be in place before
torch's first operation), timing training steps (forward, cross-entropy, backward, AdamW) as the median
of `--repeats` after 3 untimed ones. The last line gives the ratios native / pinned in steps per second.

    .venv/bin/python benchmarks/cpu_pins.py               # ResNet-18 2D (16x3x64x64) and MONAI 3D ResNet-18 (2x1x16x48x48)
    .venv/bin/python benchmarks/cpu_pins.py --repeats 20 --threads 2
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys

from medvid_core import CPU_KERNEL_ENV, REPLAY_ENV, cpu_kernel_env

CASES = {
    "resnet18_2d": "torchvision.models.resnet18(num_classes=2), (16, 3, 64, 64)",
    "resnet18_3d": "monai.networks.nets.resnet18(spatial_dims=3, n_input_channels=1, num_classes=2), (2, 1, 16, 48, 48)",
}

CHILD = r"""
import json, statistics, sys
import medvid_core
from medvid_core.timing import timed
if {pin}:
    medvid_core.pin_cpu_kernels()
import torch, torchvision, monai
torch.set_num_threads({threads})
torch.manual_seed(0)
net, shape = {case}
x, y = torch.randn(*shape), torch.randint(0, 2, (shape[0],))
opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
def step():
    opt.zero_grad()
    torch.nn.functional.cross_entropy(net(x), y).backward()
    opt.step()
for _ in range(3):
    step()
times = []
for _ in range({repeats}):
    with timed() as t:
        step()
    times.append(t.wall)
print(json.dumps({{"steps_per_s": 1 / statistics.median(times), "isa": torch.backends.cpu.get_cpu_capability()}}))
"""


def run(case: str, *, pin: bool, threads: int, repeats: int) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in CPU_KERNEL_ENV and k != REPLAY_ENV}
    code = CHILD.format(pin=pin, case=CASES[case], threads=threads, repeats=repeats)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    if not cpu_kernel_env():
        print(f"no pins on {platform.machine()}: MEDVID_REPLAY changes nothing here, so it costs nothing")
        return
    ratios = {}
    for case in CASES:
        native = run(case, pin=False, threads=args.threads, repeats=args.repeats)
        pinned = run(case, pin=True, threads=args.threads, repeats=args.repeats)
        ratios[case] = native["steps_per_s"] / pinned["steps_per_s"]
        print(f"{case}: native {native['steps_per_s']:.2f} steps/s (ATen {native['isa']}), "
              f"pinned {pinned['steps_per_s']:.2f} steps/s (ATen {pinned['isa']})")
    print("native / pinned steps per second: " + ", ".join(f"{k} {v:.2f}x" for k, v in ratios.items()))


if __name__ == "__main__":
    main()
