"""ICH loading and training speed: decode once, then never again.

Prints, in one run, on the synthetic cohort (or a real RSNA folder with --data-root):
  * slices/s for the raw pydicom decode (`dcmread` + `pixel_array`), for our reader `read_hu` (the same decode
    plus the RSNA-quirk check and the modality LUT to float32 HU; aim: >= 80 % of raw), for the full preparation
    (HU -> background removal -> three windows -> resize: what the store does once per file), and for the cached
    path (a training batch read lazily from the on-disk slice store, one pread per slice, and cropped: what
    every later epoch and model pays);
  * training s/epoch for each model of the notebook's defaults (one warm-up epoch, then one timed epoch).
Each loading figure is the best of --repeats passes over the same --files files, the readers taken round-robin
so that drift on a shared machine does not favour one; wall clock and process CPU time both printed
(on a busy shared CPU trust the CPU column).

    .venv/bin/python benchmarks/ich_loading.py [--files 200 --threads 2 --n-jobs 2 --num-workers 2]
"""
from __future__ import annotations

import argparse

import pydicom
import torch

from medvid_core.io.dicom import DicomError, read_hu
from medvid_core.studies import ich
from medvid_core.timing import timed


def rate(fn, items, repeats: int) -> tuple[float, float]:
    """(wall slices/s, CPU slices/s): best of `repeats` passes."""
    wall, cpu = [], []
    for _ in range(repeats):
        with timed() as t:
            for it in items:
                fn(it)
        wall.append(t.wall)
        cpu.append(t.cpu)
    return len(items) / min(wall), len(items) / min(cpu)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-root", default="", help="RSNA folder; default: the synthetic small cohort")
    ap.add_argument("--files", type=int, default=200, help="files timed per pass")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2, help="torch threads (the notebook budget: 2 cores)")
    ap.add_argument("--load-size", type=int, default=64)
    ap.add_argument("--image-size", type=int, default=56)
    ap.add_argument("--n-jobs", type=int, default=1, help="processes decoding the slice store when it is built")
    ap.add_argument("--num-workers", type=int, default=0, help="DataLoader workers in the training section")
    ap.add_argument("--no-train", action="store_true", help="skip the training s/epoch section")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    root, slices, store, skip_log, counts = ich.load_cohort(data_root=args.data_root, load_size=args.load_size,
                                                            n_jobs=args.n_jobs)
    files = slices["file"].tolist()[: args.files]
    syntaxes = pd_counts(files)
    print(f"cohort {root}: {counts['usable_slices']} usable slices, {len(skip_log)} skipped; timing {len(files)} files "
          f"({syntaxes}), torch threads {args.threads}")
    print(f"slice store {store.folder}: {store.nbytes() / 2**20:.1f} MiB on disk, "
          f"{'decoded' if store.built else 'reused'} in {store.decode_seconds:.1f} s (n_jobs {args.n_jobs})")

    def raw(f):
        return pydicom.dcmread(f).pixel_array

    def ours(f):
        return read_hu(f)

    def prepared(f):
        return ich.prepare_slice(f, load_size=args.load_size)

    images = slices["image"].tolist()[: args.files]
    batches = [images[i:i + 32] for i in range(0, len(images), 32)]
    ds_mean, ds_std = torch.zeros(3), torch.ones(3)

    def cached(batch):  # what a training batch costs: each slice read lazily from the on-disk store, cropped
        ds = ich.SliceDataset(store, batch, torch.zeros(len(batch), 1), image_size=args.image_size, mean=ds_mean,
                              std=ds_std, train=True)
        return torch.stack([ds[i][0] for i in range(len(ds))])

    results = {k: [] for k in ("raw pydicom", "read_hu", "prepare (decode+window+resize)")}
    fns = {"raw pydicom": raw, "read_hu": ours, "prepare (decode+window+resize)": prepared}
    for _ in range(args.repeats):  # round-robin: one pass of each per round
        for name, fn in fns.items():
            results[name].append(rate(fn, files, 1))
    rows = {name: (max(r[0] for r in rs), max(r[1] for r in rs)) for name, rs in results.items()}
    w, c = rate(cached, batches, args.repeats)
    rows["cached store (batch of 32)"] = (w * len(images) / len(batches), c * len(images) / len(batches))
    print(f"\n{'path':34s} {'slices/s wall':>14s} {'slices/s CPU':>13s}")
    for name, (wall, cpu) in rows.items():
        print(f"{name:34s} {wall:14.0f} {cpu:13.0f}")
    ratio_w = rows["read_hu"][0] / rows["raw pydicom"][0]
    ratio_c = rows["read_hu"][1] / rows["raw pydicom"][1]
    print(f"read_hu / raw: {ratio_w:.0%} wall, {ratio_c:.0%} CPU (aim >= 80%); cached / prepare: "
          f"{rows['cached store (batch of 32)'][1] / rows['prepare (decode+window+resize)'][1]:.0f}x CPU")

    if args.no_train:
        return
    print(f"\ntraining s/epoch at the notebook defaults ({args.image_size} px crops, batch 32, "
          f"{len(slices)} slices, 80% of 85% trained on, {args.num_workers} loader workers)")
    tr, te, _ = ich.split(slices, by="subjects", test_size=0.15, seed=0)
    widths = {"cnn4_width": 16, "vgg_width": 0.125, "resnet_width": 0.125}
    for name, task in (("cnn4", "binary"), ("vgg16", "binary"), ("resnet152", "multilabel")):
        t = ich.run_trial(name, tr, te, store=store, task=task, image_size=args.image_size, epochs=2, lr=1e-3,
                          num_workers=args.num_workers, **widths)
        secs = t.history[-1]["train_seconds"]
        print(f"{name:10s} {task:10s} {t.params_m:6.2f} M params  {secs:6.1f} s/epoch "
              f"({t.train_rows} slices, {t.train_rows / secs:5.0f} slices/s)")


def pd_counts(files) -> str:
    names = {}
    for f in files:
        try:
            ts = pydicom.dcmread(f, stop_before_pixels=True).file_meta.TransferSyntaxUID.name
        except (DicomError, AttributeError):
            ts = "?"
        names[ts] = names.get(ts, 0) + 1
    return ", ".join(f"{k}: {v}" for k, v in sorted(names.items()))


if __name__ == "__main__":
    main()
