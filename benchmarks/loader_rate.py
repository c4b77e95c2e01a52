"""Would a GPU wait on the loader? Each study's training loader at the paper's input size, against the
paper network's training-step rate.

For each study: the training dataset as the study builds it (lazy reads from its decode-once cache, the
study's crops, flips and standardisation) at `paper.yaml`'s input size on the small synthetic cohort,
iterated by a DataLoader with `num_workers` 0 and 2 (this machine's cores): samples per second, best of
`--repeats` passes over `--batches` batches after one untimed pass (the cache is built before timing).
Beside it, the samples per second one training step of the paper network consumes on one H200, from
`benchmarks/paper_steps.py` (measured 2026-11-26: docs/benchmarks.md), and what that means: the loader
keeps up, or the GPU waits and about how many loading workers would feed it (loader rate scales with
workers until the cores run out; a worker per core is the most to expect). The cache is warm in the page
cache after the untimed pass: a cold disk adds its own read time; on 2 busy cores, worker processes can be
slower than none (their inter-process copies cost more than they save).

    .venv/bin/python benchmarks/loader_rate.py [--studies ich mura_zoom viptt_net video4mri] [--batches 20]
"""
from __future__ import annotations

import argparse
import math
import os
import tempfile

import torch
from torch.utils.data import DataLoader

from medvid_core.data import worker_options
from medvid_core.timing import timed

# ms per training step on one H200 and the paper's batch (benchmarks/paper_steps.py, 2026-11-26)
PAPER_STEP = {"ich": ("ResNet-152 multi-label", 46.6, 32), "mura_zoom": ("VGG19-BN", 40.2, 32),
              "viptt_net": ("ViPTT-Net VGG-16 fine-tuning", 103.0, 2)}


def ich_dataset():
    """Experiment 2's input: slices prepared at 256 px, random 224 crops (a 500-slice sample of the cohort)."""
    from medvid_core.studies import ich

    _, slices, store, _, _ = ich.load_cohort(load_size=256, n_jobs=2, max_slices=500)
    y = torch.zeros(len(slices), 5)
    return ich.SliceDataset(store, slices["image"], y, image_size=224, mean=[0.5] * 3, std=[0.25] * 3, train=True), 32


def mura_dataset():
    """MURA's training images at 224 px with random flips."""
    from medvid_core.studies import mura_zoom

    archive = mura_zoom.get_archive()
    return mura_zoom.RadiographSet.of(archive.train, size=224, rescale=True, flip=True, n_jobs=2), 32


def video4mri_dataset():
    """Video4MRI's clips: 32 slices of 224 px per scan (paper.yaml), a quarter of the small cohort."""
    from medvid_core.data import VolumeDataset
    from medvid_core.studies import video4mri

    cohort = video4mri.get_cohort("small", image_size=224, cohort_scale=0.25, n_jobs=2)
    return VolumeDataset(cohort.train, store=cohort.store, num_segments=32, train=True), 4


def viptt_dataset():
    """ViPTT-Net's fine-tuning input: CTs after SIZ to 70x224x224, random rotation (PT+CW+AUG)."""
    from medvid_core.studies import viptt_net

    cohort = viptt_net.load_ct(depth=70, height=224, width=224, n_jobs=2)
    return viptt_net.ct_dataset(cohort, "train", augment=True), 2


DATASETS = {"ich": ich_dataset, "mura_zoom": mura_dataset, "viptt_net": viptt_dataset, "video4mri": video4mri_dataset}


def rate(dataset, batch_size: int, num_workers: int, batches: int, repeats: int) -> float:
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, drop_last=True,
                        generator=torch.Generator().manual_seed(0), **worker_options(num_workers))
    n = min(batches, len(loader))
    best = math.inf
    for attempt in range(repeats + 1):
        with timed() as t:
            for k, _ in zip(range(n), loader):
                pass
        if attempt:  # the first pass starts the workers and warms the page cache
            best = min(best, t.wall)
    return n * batch_size / best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--studies", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    ap.add_argument("--batches", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--data", default="", help="MEDVID_DATA for the caches (default: a temporary folder)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="medvid-loader-") as tmp:
        os.environ["MEDVID_DATA"] = args.data or tmp
        for study in args.studies:
            dataset, batch = DATASETS[study]()
            rates = {w: rate(dataset, batch, w, args.batches, args.repeats) for w in (0, 2)}
            line = f"{study:10s} loader {rates[0]:8.1f} samples/s (0 workers)  {rates[2]:8.1f} (2 workers)"
            if study in PAPER_STEP:
                net, ms, paper_batch = PAPER_STEP[study]
                gpu = paper_batch / (ms / 1000)
                best = max(rates.values())
                need = math.ceil(gpu / rates[0])
                line += (f"  | {net} on one H200 consumes {gpu:7.1f} samples/s: "
                         + (f"the loader keeps up ({best / gpu:.1f}x)" if best >= gpu else
                            f"the GPU would wait; about {need} loading workers (cores) would feed it"))
            else:
                line += "  | no paper step measured (benchmarks/paper_steps.py has no Video4MRI network)"
            print(line, flush=True)


if __name__ == "__main__":
    main()
