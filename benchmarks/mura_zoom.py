"""MURA zoom: milliseconds per image for each zoom stage, and SVM training seconds per body part.

Zoom stages at the network input size (default 224, the paper's), batch 1, on a VGG19 of `--width`
(1.0 = the paper's network), timed round-robin with `medvid_core.metrics.time_calls` (median wall and
process-CPU time after untimed warm-up calls):

* classify: the full image shrunk to the input, normalised, one forward pass;
* guided backprop: captum on the ReLU-safe copy, eq.-(1) input, predicted class;
* entropy + crop: local entropy of the response, the region, the crop box in the full-resolution
  image and the crop shrunk back to the input;
* re-classify: one forward pass of that crop.

Image cache: the synthetic `--cache-preset` archive's training images decoded once into the on-disk cache
(`mura_zoom.image_store`, `--n-jobs` processes, in a temporary MEDVID_DATA), then read back by the lazy
`RadiographSet` (images per second each way).

SVM: for each body part, `svm_classifier` (standardise, bag of 10 SVC(poly, degree 5), one-vs-rest)
fitted on `--features`-dimensional features (2048 = ResNet-152's pooled size at width 1) of
`--fraction` x the paper's training-image count of that part; the features are random with a
linear label rule (timing only: no accuracy is claimed). Printed beside Table II's seconds.

    .venv/bin/python benchmarks/mura_zoom.py [--size 224] [--width 1.0] [--full 512] [--threads 1]
                                             [--features 2048] [--fraction 1.0] [--repeats 3] [--json PATH]
                                             [--cache-preset tiny] [--n-jobs 2]
"""
from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from medvid_core import explain
from medvid_core.metrics import time_calls
from medvid_core.studies import mura_zoom as mz
from medvid_core.timing import timed


def zoom_stage_ms(*, size: int, width: float, full: int, repeats: int) -> dict:
    torch.manual_seed(0)
    model = mz.build_vgg19(width=width, batch_norm=False).eval()
    net = explain.relu_safe_copy(model)
    rng = np.random.default_rng(0)
    image = rng.random((full, int(full * 0.8))).astype(np.float32)  # a full-resolution radiograph's size
    x = torch.from_numpy(explain.resize(image, size))[None, None]
    state = {}

    def classify():
        with torch.no_grad():
            state["target"] = net(mz.normalize(torch.from_numpy(explain.resize(image, size))[None, None])).argmax(1)

    def gbp():
        state["response"] = explain.response_map(explain._gbp(net, explain.gbp_normalize(x), state["target"]))[0]

    def entropy_crop():
        ent = explain.local_entropy(state["response"], 5)
        box = explain.crop_box(explain.entropy_region(ent, 0.9), ent.shape, image.shape, size)
        state["crop"] = torch.from_numpy(explain.resize(explain.crop(image, box), size))[None, None]

    def reclassify():
        with torch.no_grad():
            net(mz.normalize(state["crop"]))

    fns = {"classify": classify, "guided backprop": gbp, "entropy + crop": entropy_crop, "re-classify": reclassify}
    return {k: {"wall_ms": 1000 * w, "cpu_ms": 1000 * c} for k, (w, c) in time_calls(fns, repeats=repeats).items()}


def cache_rates(*, preset: str, size: int, n_jobs: int) -> dict:
    import os
    import tempfile

    from medvid_core.io.mura import read_mura
    from medvid_core.synth.radiograph import make_archive

    with tempfile.TemporaryDirectory() as tmp:
        before = os.environ.get("MEDVID_DATA")
        os.environ["MEDVID_DATA"] = tmp
        try:
            make_archive(f"{tmp}/archive", preset, seed=0, n_jobs=n_jobs)
            df = read_mura(f"{tmp}/archive", "train")
            with timed() as build:
                store = mz.image_store(df, size=size, rescale=True, n_jobs=n_jobs)
            ds = mz.RadiographSet.of(df, size=size, rescale=True)
            with timed() as read:
                for i in range(len(ds)):
                    ds[i]
            return {"images": len(df), "size": size, "build_s": build.wall, "decode_per_s": len(df) / build.wall,
                    "read_per_s": len(df) / read.wall, "mb": store.nbytes() / 2**20}
        finally:
            if before is None:
                os.environ.pop("MEDVID_DATA", None)
            else:
                os.environ["MEDVID_DATA"] = before


def svm_seconds(*, features: int, fraction: float) -> dict:
    rng = np.random.default_rng(0)
    out = {}
    for part, row in mz.TABLE2.iterrows():
        n = max(20, int(round(row.paper_train_samples * fraction)))
        x = rng.normal(size=(n, features)).astype(np.float32)
        y = (x[:, :8].sum(1) + rng.normal(size=n) > 0).astype(int)
        clf = mz.svm_classifier(svm_degree=5, svm_estimators=10, svm_max_samples=0.1)
        with timed() as t:
            clf.fit(x, y)
        out[part] = {"train_samples": n, "train_s": t.wall, "paper_train_s": row.paper_train_s}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--width", type=float, default=1.0)
    ap.add_argument("--full", type=int, default=512, help="full-resolution image height (MURA: up to 512)")
    ap.add_argument("--features", type=int, default=2048)
    ap.add_argument("--fraction", type=float, default=1.0, help="of the paper's training images per body part")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--cache-preset", default="tiny", help="synthetic archive for the image-cache rates ('' = skip)")
    ap.add_argument("--n-jobs", type=int, default=2, help="processes decoding into the image cache")
    ap.add_argument("--json", default="")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"zoom stages: VGG19 width {args.width}, input {args.size}, full image {args.full} px, "
          f"batch 1, {torch.get_num_threads()} thread(s)")
    stages = zoom_stage_ms(size=args.size, width=args.width, full=args.full, repeats=args.repeats)
    for k, v in stages.items():
        print(f"  {k:16s} {v['wall_ms']:9.1f} ms/image (cpu {v['cpu_ms']:.1f})")
    print(f"  {'zoom total':16s} {sum(v['wall_ms'] for v in stages.values()):9.1f} ms/image")
    cache = {}
    if args.cache_preset:
        cache = cache_rates(preset=args.cache_preset, size=args.size, n_jobs=args.n_jobs)
        print(f"image cache: {cache['images']} '{args.cache_preset}' training images at {cache['size']} px, rescaled "
              f"({cache['mb']:.1f} MB): decoded once {cache['decode_per_s']:.0f} images/s ({args.n_jobs} process(es)), "
              f"read back {cache['read_per_s']:.0f} images/s")
    print(f"SVM fit per body part: {args.features} features, {args.fraction:g} x the paper's training images, "
          "bag of 10 SVC(poly, 5), each on a tenth")
    svm = svm_seconds(features=args.features, fraction=args.fraction)
    print(f"  {'body part':10s} {'images':>7s} {'ours s':>8s} {'paper s':>8s}")
    for part, v in svm.items():
        print(f"  {part:10s} {v['train_samples']:7d} {v['train_s']:8.2f} {v['paper_train_s']:8.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "zoom_stages": stages, "cache": cache, "svm": svm}, f, indent=2)


if __name__ == "__main__":
    main()
