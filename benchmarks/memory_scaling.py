"""Peak memory against cohort size: each study's loading and one training epoch at N and 10 N subjects.

A real download is 10 to 1,000 times the shipped synthetic cohorts, so what must hold is that memory does
not grow with the cohort: the decoded arrays live on disk (`medvid_core.store.DiskArrays`) and a dataset
reads one item at a time. For each study, the benchmark makes two folders in the study's real on-disk
layout (RSNA stage 2, MURA-v1.1, the ImageCLEF TB arrangement, a manifest cohort) by replicating the small
synthetic cohort's files under new names (hard links: no extra disk for the sources), N and 10 N items,
then runs, each in a fresh process, the study's own loading (header index, decode-once cache) and one
training epoch of its network over the whole cohort, and reads that process's peak RSS (`ru_maxrss`).
Sizes are chosen so that holding the decoded 10 N cohort in memory would add at least as much as the
process's baseline, so a loader that held it would show a ratio of 2 or more.

Each run builds its caches (decoding streamed to disk: the heavier case for memory) and trains. Printed: per
study and size, the items, the peak RSS, the seconds and, where the study indexes file headers (ICH), the
files per second of the first index pass and of the cached one; then the 10 N / N peak-RSS ratio per study,
all on the last line (aim: at most 1.3).

    .venv/bin/python benchmarks/memory_scaling.py [--studies ich mura_zoom viptt_net video4mri] [--factor 10]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd

STUDIES = ("ich", "mura_zoom", "viptt_net", "video4mri")


def _link(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:  # another filesystem
        shutil.copyfile(src, dst)


# --------------------------------------------------------------------------- cohorts in the real layouts


def replicate_rsna(src: Path, dst: Path, copies: int, keep: int) -> int:
    """stage_2_train/ + stage_2_train.csv: the first `keep` DICOMs, `copies` times under new image IDs."""
    labels = pd.read_csv(src / "stage_2_train.csv")
    files = sorted((src / "stage_2_train").glob("*.dcm"))[:keep]
    stems = {f.stem for f in files}
    labels = labels[labels["ID"].str.rsplit("_", n=1).str[0].isin(stems)].drop_duplicates()
    rows = []
    for k in range(copies):
        for f in files:
            _link(f, dst / "stage_2_train" / f"{f.stem}{k:03x}.dcm")
        image, subtype = labels["ID"].str.rsplit("_", n=1).str[0], labels["ID"].str.rsplit("_", n=1).str[1]
        rows.append(pd.DataFrame({"ID": image + f"{k:03x}_" + subtype, "Label": labels["Label"]}))
    pd.concat(rows).to_csv(dst / "stage_2_train.csv", index=False)
    return copies * len(files)


def replicate_mura(src: Path, dst: Path, copies: int) -> int:
    """MURA-v1.1/: every patient folder `copies` times under new patient numbers, both CSVs rewritten."""
    base = src / "MURA-v1.1"
    n = 0
    for split in ("train", "valid"):
        paths = [ln.strip() for ln in (base / f"{split}_image_paths.csv").read_text().splitlines() if ln.strip()]
        studies = [ln.strip() for ln in (base / f"{split}_labeled_studies.csv").read_text().splitlines() if ln.strip()]
        out_paths, out_studies = [], []
        for k in range(copies):
            def rename(p: str) -> str:
                parts = p.split("/")
                parts[3] = f"patient{k:02d}{parts[3][len('patient'):]}"
                return "/".join(parts)

            for p in paths:
                _link(src / p, dst / rename(p))
            out_paths += [rename(p) for p in paths]
            out_studies += [rename(s) for s in studies]
        (dst / "MURA-v1.1").mkdir(parents=True, exist_ok=True)
        (dst / "MURA-v1.1" / f"{split}_image_paths.csv").write_text("\n".join(out_paths) + "\n")
        (dst / "MURA-v1.1" / f"{split}_labeled_studies.csv").write_text("\n".join(out_studies) + "\n")
        n += len(out_paths)
    return n


def replicate_tbt(src: Path, dst: Path, copies: int) -> int:
    """train/, test/ and their label CSVs: every volume `copies` times under new file names."""
    n = 0
    for split in ("train", "test"):
        labels = pd.read_csv(src / f"{split}_labels.csv")
        rows = []
        for k in range(copies):
            for name in labels["FileName"]:
                _link(src / split / name, dst / split / f"c{k:02d}_{name}")
            rows.append(labels.assign(FileName=[f"c{k:02d}_{x}" for x in labels["FileName"]]))
        pd.concat(rows).to_csv(dst / f"{split}_labels.csv", index=False)
        n += copies * len(labels)
    return n


def replicate_manifest(src: Path, dst: Path, copies: int, keep: int) -> int:
    """manifest.csv: the first `keep` scans, `copies` times as new subjects."""
    m = pd.read_csv(src / "manifest.csv").head(keep)
    rows = []
    for k in range(copies):
        for p in m["path"]:
            _link(src / p, dst / f"c{k:02d}" / p)
        rows.append(m.assign(subject=[f"c{k:02d}-{s}" for s in m["subject"]], path=[f"c{k:02d}/{p}" for p in m["path"]]))
    pd.concat(rows).to_csv(dst / "manifest.csv", index=False)
    return copies * len(m)


# --------------------------------------------------------------------------- one run, in a fresh process


def child(study: str, root: str, cache: str) -> dict:
    """Load the cohort at `root` the study's way and train one epoch; returns what the parent prints."""
    os.environ["MEDVID_DATA"] = cache
    import torch

    from medvid_core.timing import timed

    torch.set_num_threads(2)
    with timed() as t:
        info = RUNS[study](root)
    info.update(seconds=round(t.wall, 1), peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))
    return info


RUNS: dict = {}  # study -> run(root) -> dict, filled below


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--studies", nargs="+", default=list(STUDIES), choices=STUDIES)
    ap.add_argument("--factor", type=int, default=10)
    ap.add_argument("--child", nargs=3, metavar=("STUDY", "ROOT", "CACHE"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(*args.child)))
        return
    ratios = {}
    with tempfile.TemporaryDirectory(prefix="medvid-mem-") as tmp:
        for study in args.studies:
            peaks = {}
            for scale in (1, args.factor):
                root = Path(tmp) / f"{study}-x{scale}"
                n = SOURCES[study](root, scale)
                out = subprocess.run([sys.executable, __file__, "--child", study, str(root), str(Path(tmp) / "cache")],
                                     capture_output=True, text=True)
                if out.returncode:
                    raise SystemExit(f"{study} x{scale}: child failed\n{out.stderr[-3000:]}")
                info = json.loads(out.stdout.strip().splitlines()[-1])
                print(f"{study:10s} x{scale:<3d} {n:6d} items  peak RSS {info['peak_rss_mb']:6d} MB  {info['seconds']:7.1f} s  "
                      + "  ".join(f"{k} {v}" for k, v in info.items() if k not in ("seconds", "peak_rss_mb")), flush=True)
                peaks[scale] = info["peak_rss_mb"]
            ratios[study] = peaks[args.factor] / peaks[1]
            shutil.rmtree(Path(tmp) / "cache", ignore_errors=True)
    print("peak RSS 10N/N (aim <= 1.3): " + ", ".join(f"{s} {r:.2f}" for s, r in ratios.items()))


SOURCES: dict = {}  # study -> make(root, scale) -> items, filled below


def _synthetic(study: str) -> Path:
    """The small synthetic cohort the replicas are made of (generated on first use, under data_dir())."""
    if study == "ich":
        from medvid_core.studies import ich

        return ich.cohort_root()
    if study == "mura_zoom":
        from medvid_core.studies import mura_zoom

        return mura_zoom.get_archive().root
    if study == "viptt_net":
        from medvid_core.studies import viptt_net

        return viptt_net.load_ct().root
    from medvid_core.studies import video4mri

    return Path(video4mri.load_cohort(cohort="small")[0]["file"].iloc[0]).parents[3]


def run_mura(root: str) -> dict:
    """The archive's tables, then one epoch of the default VGG19 over every training image (64 px cache)."""
    from medvid_core.studies import mura_zoom

    archive = mura_zoom.get_archive(data_root=root)
    mura_zoom.train_baseline(archive, rescale=False, epochs=1, device="cpu")
    return {"images": len(archive.train) + len(archive.valid)}


def run_ich(root: str) -> dict:
    """The header index (first pass, then cached), the decode-once store at 64 px, one epoch of CNN4 over
    every labelled slice (slice split, as the leaky protocol)."""
    from medvid_core.studies import ich
    from medvid_core.timing import timed

    with timed() as first:
        files = ich.index_cohort(root, n_jobs=2)[2]["dicom_files"]
    with timed() as cached:
        ich.index_cohort(root, n_jobs=2)
    _, slices, store, _, _ = ich.load_cohort(data_root=root, load_size=64, n_jobs=2)
    train, test, _ = ich.split(slices, by="slices")
    ich.run_trial("cnn4", train, test, store=store, task="binary", image_size=56, epochs=1, lr=1e-3,
                  cnn4_width=8, device="cpu")
    return {"slices": len(slices), "index files/s first": round(files / first.wall),
            "cached": round(files / cached.wall)}


SOURCES["ich"] = lambda root, scale: replicate_rsna(_synthetic("ich"), root, scale, keep=1000)
RUNS["ich"] = run_ich

def run_viptt(root: str) -> dict:
    """SIZ of every CT to 32x96x96 into the clip store, one fine-tuning epoch of the CNN + LSTM (width 1/8)."""
    from medvid_core.studies import viptt_net

    cohort = viptt_net.load_ct(ct_root=root, depth=32, height=96, width=96, n_jobs=2)
    viptt_net.finetune(cohort, "No PT", vgg_width=0.125, epochs=1, batch_size=4, optimizer="adamw",
                       monitor="val_kappa", device="cpu")
    return {"scans": len(cohort.train) + len(cohort.val) + len(cohort.test)}


SOURCES["viptt_net"] = lambda root, scale: replicate_tbt(_synthetic("viptt_net"), root, scale)
RUNS["viptt_net"] = run_viptt

SOURCES["mura_zoom"] = lambda root, scale: replicate_mura(_synthetic("mura_zoom"), root, scale)
RUNS["mura_zoom"] = run_mura


def run_video4mri(root: str) -> dict:
    """The manifest, the frame cache at 128 px (so that holding it would weigh), one epoch of TSN-R18."""
    from medvid_core.studies import video4mri

    cohort = video4mri.get_cohort("bench", data_roots={"bench": root}, image_size=128, n_jobs=2)
    video4mri.run_trial("tsn_r18", cohort.train, cohort.test, store=cohort.store, image_size=128, epochs=1,
                        warmup_epochs=0, n_bootstrap=10, device="cpu")
    return {"scans": len(cohort.train) + len(cohort.test)}


SOURCES["video4mri"] = lambda root, scale: replicate_manifest(_synthetic("video4mri"), root, scale, keep=24)
RUNS["video4mri"] = run_video4mri

if __name__ == "__main__":
    main()
