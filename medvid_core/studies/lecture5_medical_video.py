"""Lecture 5, part two ("Medical Images: 3D and Video", the clinic): what the lecture's video methods are for.

Four sections, each with its generator, runner, figure, words written from the numbers and the published
figures shown beside ours: ejection fraction from echocardiograms (Ouyang et al., Nature 2020), patient
mobilisation activities in the ICU (Yeung, Salipur et al., npj Digital Medicine 2019), the Quo Vadis line-up
(Carreira and Zisserman, CVPR 2017) and a brain-lesion 3D U-Net on PET (Blanc-Durand et al., PLoS One 2018).
Defaults are sized for a laptop: the whole notebook runs in at most 4 minutes on 2 cores.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from sklearn.model_selection import train_test_split
from torch.utils.data import DataLoader, Dataset, TensorDataset

from medvid_core.findings import finding
from medvid_core.io.echonet import load_video, read_filelist
from medvid_core.io.nifti import load_volume
from medvid_core.io.video import read_video
from medvid_core.metrics import (Measure, bootstrap_measure, dice, f1_from_counts, inference_step, label_segments,
                                 segment_counts, time_calls)
from medvid_core.models import count_parameters, get_model
from medvid_core.models.two_stream import TwoStream
from medvid_core.paths import data_dir
from medvid_core.plots import finish
from medvid_core.studies import lecture5_3d_video as L5
from medvid_core.synth.echo import REDUCED_EF, ensure_echonet, render_beats
from medvid_core.synth.icu_activity import ACTIVITIES, FPS, HEIGHT, WIDTH, ensure_icu_clips, frame_labels
from medvid_core.synth.pet_brain import ensure_pet_cohort, voxel_mm
from medvid_core.timing import timed
from medvid_core.train import evaluate, fit, seed_everything
from medvid_core.transforms import flow_stack

STUDY = "lecture5_medical_video"

# == echocardiography: ejection fraction (section 1) ==

#: Ouyang et al. (Nature 2020), abstract: EchoNet-Dynamic's EF on its held-out test set (predictions averaged
#: over every beat of a video), MAE and RMSE in EF points (%), and R^2.
ECHONET_PAPER = {"MAE": 4.1, "RMSE": 5.3, "R2": 0.81}
#: the beat-to-beat demonstration: one long clip whose EF changes from beat to beat (%, one value per beat)
ECHO_BEATS = (62.0, 58.0, 45.0, 33.0, 38.0, 52.0, 64.0)
ECHO_MODELS = {"r2plus1d_small": "R(2+1)D (spatiotemporal)", "frame_average_small": "2D CNN, frame features averaged"}


def echo_root(*, echo_clips: int = 96, seed: int = 0, echonet_root: str = "") -> Path:
    """A real EchoNet-Dynamic folder (`echonet_root`), else the synthetic one generated once under data/."""
    if echonet_root:
        return Path(echonet_root)
    return ensure_echonet(data_dir() / STUDY / f"echo_n{echo_clips}_s{seed}", n_clips=echo_clips, seed=seed)


def _echo_resize(frames: np.ndarray, size: int) -> np.ndarray:
    """(T, H, W) uint8 -> (T, size, size), area-averaged (OpenCV)."""
    import cv2

    return np.stack([cv2.resize(f, (size, size), interpolation=cv2.INTER_AREA) for f in frames])


def echo_data(*, echo_clips: int = 96, echo_size: int = 32, seed: int = 0, echonet_root: str = "") -> dict:
    """FileList.csv (`medvid_core.io.echonet`) and every video decoded and shrunk to `echo_size` pixels."""
    root = echo_root(echo_clips=echo_clips, seed=seed, echonet_root=echonet_root)
    table = read_filelist(root)
    videos = [_echo_resize(load_video(row), echo_size) for _, row in table.iterrows()]
    return {"table": table, "videos": videos, "root": root}


def echo_window_starts(n_frames: int, *, echo_frames: int, echo_period: int, stride: int | None = None) -> list[int]:
    """Start frames of the windows (`echo_frames` frames, every `echo_period`-th) that cover a video of
    `n_frames`: every `stride` frames (default: half a window), plus one that ends on the last frame."""
    span = (echo_frames - 1) * echo_period + 1
    if n_frames < span:
        raise ValueError(f"a video of {n_frames} frames is shorter than one window ({echo_frames} x {echo_period})")
    stride = stride or max(1, span // 2)
    starts = list(range(0, n_frames - span + 1, stride))
    return starts if starts[-1] == n_frames - span else starts + [n_frames - span]


class _EchoWindows(Dataset):
    """One window per video (a random start each time with `augment`, else the first) as (1, T, S, S) in [0, 1],
    and the EF target standardised with the training set's mean and SD."""

    def __init__(self, videos, ef, *, frames: int, period: int, mean: float, sd: float, augment: bool, seed: int = 0):
        self.videos, self.frames, self.period, self.augment = videos, frames, period, augment
        self.y = torch.tensor((np.asarray(ef, float) - mean) / sd, dtype=torch.float32)[:, None]
        self.rng = np.random.default_rng(seed)

    def __len__(self):
        return len(self.videos)

    def __getitem__(self, i):
        v = self.videos[i]
        span = (self.frames - 1) * self.period + 1
        start = int(self.rng.integers(0, len(v) - span + 1)) if self.augment else 0
        return _echo_clip(v, start, self.frames, self.period), self.y[i]


def _echo_clip(video: np.ndarray, start: int, frames: int, period: int) -> torch.Tensor:
    return torch.from_numpy(video[start : start + (frames - 1) * period + 1 : period].astype(np.float32) / 255)[None]


@torch.no_grad()
def _echo_predict(net, video: np.ndarray, starts, *, frames: int, period: int, mean: float, sd: float) -> np.ndarray:
    """EF (%) of each window of one video."""
    net.eval()
    x = torch.stack([_echo_clip(video, s, frames, period) for s in starts])
    return (net(x)[:, 0] * sd + mean).numpy()


def _ef_scores(y, p) -> dict:
    y, p = np.asarray(y, float), np.asarray(p, float)
    return {"MAE": float(np.abs(p - y).mean()), "RMSE": float(np.sqrt(((p - y) ** 2).mean())),
            "R2": float(1 - ((p - y) ** 2).sum() / ((y - y.mean()) ** 2).sum())}


def run_echo(*, echo_clips: int = 96, echo_frames: int = 8, echo_size: int = 32, echo_period: int = 8,
             echo_epochs: int = 8, echo_lr: float = 3e-3, echo_widths: tuple = (8, 16, 32, 64),
             echo_batch_size: int = 8, seed: int = 0, device: str = "auto", echonet_root: str = "") -> dict:
    """EF regression (MSE on the standardised EF) by a small R(2+1)D and by a frame-averaged 2D CNN, trained
    on the TRAIN videos (one random window per video and epoch). A test video's EF is the mean over windows
    covering it, as EchoNet-Dynamic averages over beats. Also scored: predicting the training mean."""
    data = echo_data(echo_clips=echo_clips, echo_size=echo_size, seed=seed, echonet_root=echonet_root)
    t, videos = data["table"], data["videos"]
    tr, te = np.flatnonzero(t.Split == "TRAIN"), np.flatnonzero(t.Split == "TEST")
    mean, sd = float(t.EF.iloc[tr].mean()), float(t.EF.iloc[tr].std())
    kw = dict(frames=echo_frames, period=echo_period, mean=mean, sd=sd)
    builders = {"r2plus1d_small": dict(widths=tuple(echo_widths)),
                "frame_average_small": dict(in_channels=1, num_classes=1, widths=tuple(echo_widths[:3]))}
    y = t.EF.to_numpy()[te]
    rows = [{"model": "predict the training mean", **_ef_scores(y, np.full(len(te), mean)), "params": 0}]
    models, histories, predictions = {}, {}, {"predict the training mean": (y, np.full(len(te), mean))}
    for name, label in ECHO_MODELS.items():
        seed_everything(seed)
        net = get_model(name, **builders[name])
        train = _EchoWindows([videos[i] for i in tr], t.EF.to_numpy()[tr], augment=True, seed=seed, **kw)
        histories[label] = fit(net, DataLoader(train, batch_size=echo_batch_size, shuffle=True,
                                               generator=torch.Generator().manual_seed(seed)),
                               epochs=echo_epochs, lr=echo_lr, loss_fn=F.mse_loss, weight_decay=1e-4, desc="",
                               device=device)
        net.cpu()
        p = np.array([_echo_predict(net, videos[i], echo_window_starts(len(videos[i]), echo_frames=echo_frames,
                                                                         echo_period=echo_period), **kw).mean()
                      for i in te])
        rows.append({"model": label, **_ef_scores(y, p), "params": count_parameters(net)})
        models[label], predictions[label] = net, (y, p)
    return {"table": pd.DataFrame(rows), "models": models, "histories": histories, "predictions": predictions,
            "files": t.FileName.to_numpy()[te], "n_train": len(tr), "n_test": len(te), "ef_mean": mean, "ef_sd": sd,
            "settings": kw, "size": echo_size, "root": data["root"]}


def echo_table(result: dict) -> pd.DataFrame:
    """Ours beside the paper's (Ouyang et al. 2020, on 1,277 real test videos)."""
    ours = result["table"].assign(data=f"synthetic, {result['n_test']} test clips (this run)")
    paper = pd.DataFrame([{"model": "EchoNet-Dynamic, R(2+1)D (Ouyang et al. 2020)", **ECHONET_PAPER,
                           "data": "EchoNet-Dynamic, 1,277 test videos"}])
    return pd.concat([ours, paper], ignore_index=True).round(2)


def beat_to_beat(result: dict, *, beat_ef=ECHO_BEATS, seed: int = 0, stride: int = 4) -> dict:
    """One long synthetic clip whose EF changes beat by beat (`synth.echo.render_beats`); R(2+1)D's EF for
    sliding windows along it (every `stride` frames), each against the EF of the beats it spans."""
    clip = render_beats(seed, beat_ef=beat_ef)
    video = _echo_resize(clip["frames"], result["size"])
    kw = result["settings"]
    starts = echo_window_starts(len(video), echo_frames=kw["frames"], echo_period=kw["period"], stride=stride)
    net = result["models"][ECHO_MODELS["r2plus1d_small"]]
    pred = _echo_predict(net, video, starts, **kw)
    span = (kw["frames"] - 1) * kw["period"] + 1
    truth = np.array([clip["frame_ef"][s : s + span].mean() for s in starts])
    return {"starts": np.array(starts), "span": span, "predicted": pred, "drawn": truth, "clip": clip,
            "fps": clip["heart"].fps, "n_frames": len(video)}


def echo_figure(result: dict, *, path=None):
    """Predicted against true EF on the test clips, one panel per model; the 40% line marks reduced EF."""
    labels = list(ECHO_MODELS.values())
    fig, axes = plt.subplots(1, len(labels), figsize=(4.2 * len(labels), 3.8), squeeze=False)
    for ax, label in zip(axes[0], labels):
        y, p = result["predictions"][label]
        ax.scatter(y, p, s=14)
        ax.plot([10, 80], [10, 80], "k--", lw=0.8)
        ax.axvline(REDUCED_EF, color="tab:red", lw=0.6)
        ax.axhline(REDUCED_EF, color="tab:red", lw=0.6)
        s = _ef_scores(y, p)
        ax.set(xlabel="true EF (%)", ylabel="predicted EF (%)", xlim=(10, 80), ylim=(10, 80),
               title=f"{label}\nMAE {s['MAE']:.1f}, R² {s['R2']:.2f}")
        ax.title.set_fontsize(9)
    return finish(fig, path, dpi=100)


def echo_frames_figure(data: dict, *, n: int = 3, path=None):
    """End diastole and end systole of a few clips, found from the pixels alone (a real video has no drawn
    volume): the darkest frame (largest blood pool) and the brightest (smallest pool, thickest wall)."""
    t = data["table"]
    picks = list(t.sort_values("EF").index[[0, len(t) // 2, len(t) - 1]])[:n]
    fig, axes = plt.subplots(2, len(picks), figsize=(2.6 * len(picks), 5.2), squeeze=False)
    for j, i in enumerate(picks):
        v = data["videos"][i]
        level = v.reshape(len(v), -1).mean(1)
        for row, (k, phase) in enumerate(((int(level.argmin()), "end diastole"), (int(level.argmax()), "end systole"))):
            axes[row, j].imshow(v[k], cmap="gray", vmin=0, vmax=255)
            axes[row, j].set_title(f"EF {t.EF[i]:.0f}%: {phase}", fontsize=8)
            axes[row, j].set_axis_off()
    return finish(fig, path, dpi=100)


def beat_to_beat_figure(b2b: dict, *, path=None):
    """The long clip's drawn volume, and each window's predicted EF against the drawn EF of the beats it spans."""
    clip, fps = b2b["clip"], b2b["fps"]
    centre = (b2b["starts"] + b2b["span"] / 2) / fps
    fig, (a, b) = plt.subplots(2, 1, figsize=(8, 4.6), sharex=True)
    a.plot(np.arange(len(clip["volumes"])) / fps, clip["volumes"], color="0.3")
    a.set(ylabel="LV volume (mL)", title="drawn left-ventricular volume")
    b.step(np.arange(len(clip["frame_ef"])) / fps, clip["frame_ef"], where="post", color="0.3",
           label="drawn EF of the beat")
    b.plot(centre, b2b["drawn"], "s", ms=3, color="tab:green", label="drawn EF under the window")
    b.plot(centre, b2b["predicted"], "o", ms=3, color="tab:blue", label="R(2+1)D, window at its centre")
    b.set(xlabel="time (s)", ylabel="EF (%)")
    b.legend(fontsize=7)
    return finish(fig, path, dpi=100)


def echo_words(result: dict, b2b: dict | None = None) -> str:
    """Section 1's result in words, from the table (and the beat-to-beat run)."""
    t = result["table"].set_index("model")
    r21, avg = t.loc[ECHO_MODELS["r2plus1d_small"]], t.loc[ECHO_MODELS["frame_average_small"]]
    base = t.loc["predict the training mean", "MAE"]
    def verdict(row):
        if row.R2 > 0:
            return f"MAE {row.MAE:.1f} EF points and R² {row.R2:.2f}: better than the mean's MAE of {base:.1f}"
        return f"MAE {row.MAE:.1f} EF points and R² {row.R2:.2f}: no better than predicting the mean (MAE {base:.1f})"
    text = (f"On {result['n_test']} test clips the R(2+1)D reaches {verdict(r21)}; the frame-averaged 2D CNN "
            f"reaches {verdict(avg)}. ")
    better = "R(2+1)D" if r21.MAE < avg.MAE else "the frame-averaged CNN"
    text += (f"In this run {better} has the lower error. EchoNet-Dynamic reached MAE {ECHONET_PAPER['MAE']} and R² "
             f"{ECHONET_PAPER['R2']} on 1,277 real test videos after training on 7,465; our model saw "
             f"{result['n_train']} synthetic clips.")
    if b2b is not None:
        r = float(np.corrcoef(b2b["predicted"], b2b["drawn"])[0, 1])
        text += (f" Along the long clip the windows' predictions correlate with the drawn EF of their beats at r = "
                 f"{r:.2f} (range of the predictions {b2b['predicted'].min():.0f}-{b2b['predicted'].max():.0f}%, "
                 f"drawn {b2b['drawn'].min():.0f}-{b2b['drawn'].max():.0f}%).")
    return text


def _mae_of(y, p) -> float:
    return float(np.abs(np.asarray(p) - np.asarray(y)).mean())


def _r2_of(y, p) -> float:
    return _ef_scores(y, p)["R2"]


def echo_measures(result: dict) -> dict[str, Measure]:
    """MAE and R² of each model, with 95% bootstrap intervals over the test clips."""
    out = {}
    for label, (y, p) in result["predictions"].items():
        if label == "predict the training mean":
            continue
        out[f"echo: {label} MAE"] = bootstrap_measure(_mae_of, y, p)
        out[f"echo: {label} R2"] = bootstrap_measure(_r2_of, y, p, chance=0.0)
    return out


def echo_findings(result: dict, b2b: dict | None = None) -> list[dict]:
    """Section 1's claims against this run's numbers."""
    t = result["table"].set_index("model")
    r21, avg = t.loc[ECHO_MODELS["r2plus1d_small"]], t.loc[ECHO_MODELS["frame_average_small"]]
    out = [finding("1. A video network reads EF from the echocardiogram (Ouyang et al.)",
                   paper=f"R(2+1)D: MAE {ECHONET_PAPER['MAE']}%, R² {ECHONET_PAPER['R2']}", ours=r21.R2, unit="R²",
                   holds=r21.R2 > 0, rule="R(2+1)D's test R² > 0 (beats predicting the training mean)"),
           finding("1. Spatiotemporal convolutions beat frame features averaged over time",
                   paper="EF is a change over the cycle; EchoNet-Dynamic uses (2+1)D convolutions",
                   ours=avg.MAE - r21.MAE, unit="EF points", holds=r21.MAE < avg.MAE,
                   rule="frame-averaged MAE - R(2+1)D MAE > 0")]
    if b2b is not None:
        r = float(np.corrcoef(b2b["predicted"], b2b["drawn"])[0, 1])
        out.append(finding("1. Window by window, predictions follow EF changing from beat to beat",
                           paper="beat-to-beat assessment: one prediction per beat, averaged over the video",
                           ours=r, unit="r", holds=r > 0.5,
                           rule="correlation of window predictions with the drawn EF under each window > 0.5"))
    return out

# == ICU mobilisation activities (section 2) ==

#: Yeung, Salipur et al. (npj Digital Medicine 2019) as the lecture shows them: the four activities, and one
#: figure, a 25-second stretch of a room's timeline (03:10 to 03:35) with the predictions above the ground truth.
#: The slides give no accuracy figure, so none is quoted here.
ICU_PAPER = {
    "timeline": "predictions 'get out of bed', 'get in bed', 'get out of bed' follow the ground truth's same three "
                "segments over 03:10-03:35 (the lecture's slide of the paper's figure)",
}
ICU_COLOURS = {"none": "#e8e8e8", "get out of bed": "tab:red", "get in bed": "tab:blue", "sit in chair": "tab:green",
               "get out of chair": "tab:orange"}


def icu_data(*, icu_clips: int = 12, icu_seconds: float = 60.0, seed: int = 0) -> dict:
    """The synthetic depth clips (`synth.icu_activity`, generated once under data/<study>/icu_*), read back
    from their files: grey videos (T, H, W), per-frame activity indices, the manifest and the segments."""
    root = ensure_icu_clips(data_dir() / STUDY / f"icu_n{icu_clips}_t{icu_seconds:g}_s{seed}", n_clips=icu_clips,
                            seconds=icu_seconds, seed=seed)
    manifest, segments = pd.read_csv(root / "clips.csv"), pd.read_csv(root / "segments.csv")
    videos = [read_video(root / p) for p in manifest.path]
    labels = [frame_labels(segments[segments["clip"] == c], len(v)) for c, v in zip(manifest["clip"], videos)]
    return {"root": root, "manifest": manifest, "segments": segments, "videos": videos, "labels": labels}


def icu_summary(data: dict) -> pd.DataFrame:
    """Per activity: segments, frames, share of all frames and mean duration in seconds."""
    seg = data["segments"].assign(seconds=lambda d: (d.end - d.start) / FPS)
    out = seg.groupby("label").agg(segments=("clip", "size"), frames=("seconds", lambda s: int(round(s.sum() * FPS))),
                                   mean_seconds=("seconds", "mean")).reindex(list(ACTIVITIES))
    out["share of frames"] = out.frames / out.frames.sum()
    return out.round(2)


def icu_frames_figure(data: dict, *, clip: int = 0, path=None):
    """One clip: the middle frame of each of its first segments, titled with the segment's label."""
    segs = data["segments"][data["segments"]["clip"] == data["manifest"]["clip"][clip]].head(8)
    fig, axes = plt.subplots(1, len(segs), figsize=(2.1 * len(segs), 1.9))
    for ax, s in zip(np.atleast_1d(axes), segs.itertuples()):
        t = (s.start + s.end) // 2
        ax.imshow(data["videos"][clip][t], cmap="gray", vmin=0, vmax=255)
        ax.set_title(f"{s.label}\n{t / FPS:.0f} s", fontsize=8, color=ICU_COLOURS[s.label] if s.label != "none" else "k")
        ax.set_axis_off()
    return finish(fig, path, dpi=100)


def _icu_frames(video: np.ndarray, scale: int) -> np.ndarray:
    """(T, H, W) uint8 -> (T, H/scale, W/scale) float32 in [0, 1] (block means: depth frames need no detail)."""
    x = torch.from_numpy(video).float()[:, None] / 255.0
    return (F.avg_pool2d(x, scale) if scale > 1 else x)[:, 0].numpy()


def _icu_offsets(window: int, step: int) -> np.ndarray:
    """Frame offsets of a window of `window` frames every `step`-th frame, centred on frame 0."""
    return step * (np.arange(window) - window // 2)


class _IcuWindows(Dataset):
    """Windows (1, window, h, w) centred on the listed (clip, frame) pairs, edge frames repeated past the
    ends; the target is the centre frame's activity."""

    def __init__(self, videos: list, labels: list, centres: list[tuple[int, int]], offsets: np.ndarray):
        self.videos, self.labels, self.centres, self.offsets = videos, labels, centres, offsets

    def __len__(self):
        return len(self.centres)

    def __getitem__(self, i):
        c, t = self.centres[i]
        v = self.videos[c]
        idx = np.clip(t + self.offsets, 0, len(v) - 1)
        return torch.from_numpy(v[idx][None]), int(self.labels[c][t])


def icu_network(icu_model: str = "cnn3d_small"):
    """The window classifier from the registry: one depth channel in, the five labels out."""
    kw = dict(in_channels=1, num_classes=len(ACTIVITIES), widths=L5.WIDTHS)
    per_frame = icu_model in ("cnn_lstm_small", "frame_average_small")  # keep a 2x2 layout per frame (lecture5_3d_video)
    return get_model(icu_model, **kw, grid=2) if per_frame else get_model(icu_model, **kw)


def run_icu(*, icu_clips: int = 12, icu_seconds: float = 60.0, icu_test_clips: int = 4, icu_model: str = "cnn3d_small",
            icu_window: int = 8, icu_frame_step: int = 2, icu_scale: int = 3, icu_stride: int = 2,
            icu_epochs: int = 6, icu_lr: float = 3e-3, icu_batch_size: int = 32, seed: int = 0,
            device: str = "auto") -> dict:
    """Train a small video model on windows of the training clips (target: the centre frame's activity),
    then label every frame of the held-out clips by the window centred on it.

    Scores per frame (accuracy, F1 of each activity) and per segment (F1 of the four activities' segments
    at IoU 0.1, 0.25 and 0.5, `metrics.segment_counts` summed over the held-out clips)."""
    data = icu_data(icu_clips=icu_clips, icu_seconds=icu_seconds, seed=seed)
    if not 0 < icu_test_clips < icu_clips:
        raise ValueError(f"run_icu: icu_test_clips must be between 1 and icu_clips - 1, got {icu_test_clips}")
    videos = [_icu_frames(v, icu_scale) for v in data["videos"]]
    labels, offsets = data["labels"], _icu_offsets(icu_window, icu_frame_step)
    train = list(range(icu_clips - icu_test_clips))
    test = list(range(icu_clips - icu_test_clips, icu_clips))
    centres = [(c, t) for c in train for t in range(0, len(videos[c]), icu_stride)]
    seed_everything(seed)
    model = icu_network(icu_model)
    loader = DataLoader(_IcuWindows(videos, labels, centres, offsets), batch_size=icu_batch_size, shuffle=True,
                        generator=torch.Generator().manual_seed(seed))
    history = fit(model, loader, epochs=icu_epochs, lr=icu_lr, head="fc", warmup_epochs=1, desc="", device=device)
    model.cpu().eval()
    preds, probs = [], []
    for c in test:
        every = DataLoader(_IcuWindows(videos, labels, [(c, t) for t in range(len(videos[c]))], offsets),
                           batch_size=256)
        p = evaluate(model, every)["outputs"].softmax(1).numpy()
        probs.append(p)
        preds.append(p.argmax(1))
    result = {"data": data, "model": model, "history": history, "test": test, "predictions": preds,
              "probabilities": probs, "targets": [labels[c] for c in test], "n_train_windows": len(centres),
              "test_names": data["manifest"]["clip"][test].tolist()}
    result.update(icu_scores(result))
    return result


def icu_scores(result: dict) -> dict:
    """Per-frame accuracy and F1 per activity; per-segment F1 at three IoU thresholds (the four activities)."""
    from sklearn.metrics import f1_score

    y, p = np.concatenate(result["targets"]), np.concatenate(result["predictions"])
    f1 = f1_score(y, p, labels=list(range(len(ACTIVITIES))), average=None, zero_division=np.nan)
    table = pd.DataFrame({"activity": ACTIVITIES, "frames": [int((y == k).sum()) for k in range(len(ACTIVITIES))],
                          "predicted frames": [int((p == k).sum()) for k in range(len(ACTIVITIES))],
                          "frame F1": f1})
    seg_rows = []
    for iou in (0.1, 0.25, 0.5):
        counts = [segment_counts(pc, tc, iou=iou, ignore=(0,)) for pc, tc in zip(result["predictions"], result["targets"])]
        tp, fp, fn = (sum(c[k] for c in counts) for k in ("tp", "fp", "fn"))
        seg_rows.append({"IoU threshold": iou, "segment F1": f1_from_counts(tp, fp, fn), "true segments": tp + fn,
                         "found": tp, "spurious": fp})
    summary = {"frame accuracy": float((y == p).mean()), "majority baseline (all none)": float((y == 0).mean()),
               "frame F1, mean of the 4 activities": float(np.nanmean(f1[1:]))}
    return {"table": table, "segment_table": pd.DataFrame(seg_rows), "summary": summary}


def icu_timeline_figure(result: dict, *, clips: int = 2, path=None):
    """The paper's figure for our held-out clips: predictions above the ground truth, along time, every frame."""
    n = min(clips, len(result["test"]))
    fig, axes = plt.subplots(n, 1, figsize=(11, 1.5 * n + 0.6), squeeze=False)
    for ax, pred, truth, name in zip(axes[:, 0], result["predictions"], result["targets"], result["test_names"]):
        for row, labels in ((1, pred), (0, truth)):
            for start, end, k in label_segments(labels):
                ax.broken_barh([(start / FPS, (end - start) / FPS)], (row + 0.1, 0.8), color=ICU_COLOURS[ACTIVITIES[k]])
        ax.set(yticks=[0.5, 1.5], yticklabels=["ground truth", "predictions"], xlim=(0, len(truth) / FPS), ylim=(0, 2))
        ax.set_title(f"held-out clip {name}", fontsize=9, loc="left")
        ax.xaxis.set_major_formatter(plt.FuncFormatter(lambda s, _: f"{int(s) // 60:02d}:{int(s) % 60:02d}"))
    axes[-1, 0].set_xlabel("time (mm:ss)")
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in ICU_COLOURS.values()]
    axes[0, 0].legend(handles, ACTIVITIES, loc="lower right", bbox_to_anchor=(1.0, 1.0), ncol=len(ACTIVITIES),
                      fontsize=7, frameon=False)
    return finish(fig, path, dpi=100)


def icu_paper_table(result: dict) -> pd.DataFrame:
    """Our scores with the paper's figure (in words: the slides quote no number) beside them."""
    seg = result["segment_table"].set_index("IoU threshold")["segment F1"]
    rows = [("frame accuracy (all 5 labels)", result["summary"]["frame accuracy"], "not on the slides"),
            ("frame F1, mean of the 4 activities", result["summary"]["frame F1, mean of the 4 activities"],
             "not on the slides"),
            ("segment F1 @ IoU 0.5 (4 activities)", seg.loc[0.5], ICU_PAPER["timeline"])]
    return pd.DataFrame(rows, columns=["measure", "ours (synthetic depth clips)", "Yeung, Salipur et al. (slide)"])


def _icu_confusion(result: dict, true: str, predicted: str) -> float:
    y, p = np.concatenate(result["targets"]), np.concatenate(result["predictions"])
    frames = y == ACTIVITIES.index(true)
    return float((p[frames] == ACTIVITIES.index(predicted)).mean()) if frames.any() else float("nan")


def icu_words(result: dict) -> str:
    """The section's result in words, from the scores: frames, then segments, then the reversed pairs."""
    s, t = result["summary"], result["table"].set_index("activity")
    seg = result["segment_table"].set_index("IoU threshold")
    n_frames = sum(len(y) for y in result["targets"])
    text = (f"On {len(result['test'])} held-out clips ({n_frames} frames) the model labels {s['frame accuracy']:.0%} of "
            f"the frames right; calling every frame 'none' would score {s['majority baseline (all none)']:.0%}. ")
    never = [a for a in ACTIVITIES[1:] if t.loc[a, "predicted frames"] == 0]
    f1s = t["frame F1"].iloc[1:]
    if never:
        text += f"It never predicts {', '.join(never)}: their F1 is undefined, and this run does not detect them. "
    else:
        text += (f"Per frame, the activities' F1 ranges from {f1s.min():.2f} ({f1s.idxmin()}) to {f1s.max():.2f} "
                 f"({f1s.idxmax()}). ")
    r = seg.loc[0.5]
    text += (f"Per segment, {int(r.found)} of {int(r['true segments'])} activity segments are found with at least half "
             f"their frames overlapping, next to {int(r.spurious)} spurious ones: F1@0.5 = {r['segment F1']:.2f}")
    lenient = seg.loc[0.1, "segment F1"]
    text += (f" (F1@0.1 = {lenient:.2f}). " if np.isfinite(lenient) else ". ")
    if np.isfinite(r["segment F1"]) and r["segment F1"] < s["frame F1, mean of the 4 activities"]:
        text += (f"The segment score is below the frame score: each of the {int(r.spurious)} spurious segments counts "
                 "as a whole wrong segment, however few frames it spans. ")
    swaps = [(a, b, _icu_confusion(result, a, b)) for a, b in (("get out of bed", "get in bed"),
                                                               ("get in bed", "get out of bed"),
                                                               ("sit in chair", "get out of chair"),
                                                               ("get out of chair", "sit in chair"))]
    swaps = [(a, b, v) for a, b, v in swaps if np.isfinite(v)]
    if swaps:
        worst = max(swaps, key=lambda x: x[2])
        text += (f"The same poses in opposite order are rarely swapped: at most {worst[2]:.0%} of '{worst[0]}' frames "
                 f"are called '{worst[1]}'." if worst[2] < 0.1 else
                 f"Direction is the hard part: {worst[2]:.0%} of '{worst[0]}' frames are called '{worst[1]}', the same "
                 f"poses in the opposite order.")
    return text


def _icu_accuracy(y, p) -> float:
    return float(np.mean(np.asarray(y) == np.asarray(p)))


def icu_measures(result: dict) -> dict[str, Measure]:
    """Frame accuracy (bootstrap over ground-truth segments of the held-out clips: frames of one segment are
    not independent) and segment F1@0.5 (bootstrap over held-out clips, counts summed)."""
    y, p = np.concatenate(result["targets"]), np.concatenate(result["predictions"])
    groups = np.concatenate([np.repeat([f"{c}:{i}" for i in range(len(segs))], [e - s for s, e, _ in segs])
                             for c, segs in enumerate(label_segments(t) for t in result["targets"])])
    counts = pd.DataFrame([segment_counts(pc, tc, iou=0.5, ignore=(0,))
                           for pc, tc in zip(result["predictions"], result["targets"])])
    return {"icu: frame accuracy": bootstrap_measure(_icu_accuracy, y, p, groups=groups),
            "icu: segment F1@0.5": bootstrap_measure(f1_from_counts, counts.tp, counts.fp, counts.fn)}


def icu_findings(result: dict) -> list[dict]:
    """The paper's claim (its timeline figure) against this run: activity segments found along time."""
    f1 = result["segment_table"].set_index("IoU threshold").loc[0.5, "segment F1"]
    reverse = max(_icu_confusion(result, "get out of bed", "get in bed"), _icu_confusion(result, "get in bed", "get out of bed"))
    return [finding("2. The detector's timeline follows the ground truth's activity segments (Yeung, Salipur et al.)",
                    paper=ICU_PAPER["timeline"], ours=f1, unit="F1@0.5", holds=f1 >= 0.5,
                    rule="segment F1 at IoU 0.5 over the four activities >= 0.5"),
            finding("2. Getting out of bed is told apart from getting in (the same poses reversed)",
                    paper="both appear, in turn, in the slide's timeline and are told apart", ours=reverse,
                    unit="share of frames swapped", holds=reverse < 0.2,
                    rule="at most 20% of either's frames called the other")]


# == the Quo Vadis line-up (section 3) ==

#: The slide's five architectures, in its order (Carreira & Zisserman, CVPR 2017, Fig. 2 / Table 2)
QUO_VADIS_ARCHITECTURES = ("(a) LSTM", "(b) 3D-ConvNet", "(c) Two-Stream", "(d) 3D-Fused", "(e) Two-Stream I3D")
#: Their Table 2 (accuracy %, split 1, ImageNet-pretrained except the 3D-ConvNet; "-" not reported), in the paper's
#: column order, and the parameters of their Table 1 (millions). The lecture's slides show the architectures only.
QUO_VADIS_TABLE2 = pd.DataFrame(
    [("(a) LSTM", 81.0, None, None, 36.0, None, None, 9),
     ("(b) 3D-ConvNet", 51.6, None, None, 24.3, None, None, 79),
     ("(c) Two-Stream", 83.6, 85.6, 91.2, 43.2, 56.3, 58.3, 12),
     ("(d) 3D-Fused", 83.2, 85.8, 89.3, 49.2, 55.5, 56.8, 39),
     ("(e) Two-Stream I3D", 84.5, 90.6, 93.4, 49.8, 61.9, 66.4, 25)],
    columns=["architecture", "UCF-101 RGB", "UCF-101 Flow", "UCF-101 RGB+Flow", "HMDB-51 RGB", "HMDB-51 Flow",
             "HMDB-51 RGB+Flow", "params (M)"])
QUO_VADIS_SOURCE = ("Carreira & Zisserman, CVPR 2017, Table 2 (accuracy) and Table 1 (parameters); the lecture's "
                    "slides show the five architectures without numbers")


class _QvPairs(Dataset):
    def __init__(self, a, b, y):
        self.a, self.b, self.y = a, b, y

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return (self.a[i], self.b[i]), self.y[i]


def quo_vadis_inputs(*, qv_actions=("Mixing", "JumpingJack", "HorseRiding"), qv_clips_per_class: int = 96,
                     qv_frames: int = 8, qv_frame_size: int = 32, seed: int = 0) -> dict:
    """The synthetic action clips (`lecture5_3d_video.action_clips`: `synth.action_video`, every 2nd frame) and
    every input the five architectures take: `rgb` (N, 3, T, H, W), `frame` the middle frame (N, 3, H, W),
    `flow_stack` (N, 2(T-1), H, W) the stacked mean-subtracted Farneback fields (`transforms.flow_stack`),
    `flow_clip` the same fields as a clip (N, 2, T-1, H, W); and the flow's cost in ms per clip here."""
    video, y, names = L5.action_clips(actions=tuple(qv_actions), clips_per_class=qv_clips_per_class,
                                      frames=qv_frames, frame_size=qv_frame_size, seed=seed)
    rgb = torch.from_numpy(video).permute(0, 4, 1, 2, 3).float() / 255.0
    grey = video.astype(np.float32).mean(-1)
    with timed() as clock:
        stack = np.stack([flow_stack(c, subtract_mean=True) for c in grey])
    n, t = video.shape[:2]
    stack = torch.from_numpy(stack)
    clip = stack.view(n, t - 1, 2, *stack.shape[2:]).transpose(1, 2).contiguous()
    return {"video": video, "rgb": rgb, "frame": rgb[:, :, t // 2], "flow_stack": stack, "flow_clip": clip, "y": y,
            "classes": names, "flow_ms": 1000 * clock.wall / n}


def quo_vadis_shapes(inputs: dict) -> pd.DataFrame:
    """Each architecture's input and output shapes for one clip, and its parameters (untrained models)."""
    models = quo_vadis_models(n_classes=len(inputs["classes"]), frames=inputs["rgb"].shape[2])
    rows = []
    for name, feed in _qv_feeds(inputs).items():
        one = tuple(x[:1] for x in feed) if isinstance(feed, tuple) else feed[:1]
        shapes = " + ".join(str(tuple(x.shape[1:])) for x in (one if isinstance(one, tuple) else (one,)))
        with torch.no_grad():
            out = models[name].eval()(one)
        rows.append({"architecture": name, "input (one clip)": shapes, "output": tuple(out.shape),
                     "params": count_parameters(models[name])})
    return pd.DataFrame(rows)


def quo_vadis_models(*, n_classes: int, frames: int) -> dict:
    """The five, small and from the registry: (a) `cnn_lstm_small`, (b) `cnn3d_small`, (c) `two_stream_small`,
    (d) `two_stream_fused3d_small`, (e) `two_stream_i3d_small`; all with the lecture's widths."""
    kw = dict(num_classes=n_classes, widths=L5.WIDTHS)
    return dict(zip(QUO_VADIS_ARCHITECTURES, (
        get_model("cnn_lstm_small", **kw, grid=2),
        get_model("cnn3d_small", in_channels=3, **kw),
        get_model("two_stream_small", flow_frames=frames - 1, **kw),
        get_model("two_stream_fused3d_small", flow_fields=1, fused_channels=L5.WIDTHS[-1], **kw),
        get_model("two_stream_i3d_small", **kw))))


def _qv_feeds(x: dict) -> dict:
    """What each architecture's forward takes: a clip, or a pair (RGB input, flow input)."""
    t = x["rgb"].shape[2]
    return {"(a) LSTM": x["rgb"], "(b) 3D-ConvNet": x["rgb"], "(c) Two-Stream": (x["frame"], x["flow_stack"]),
            "(d) 3D-Fused": (x["rgb"][:, :, : t - 1], x["flow_clip"]),  # frame t with the flow from t to t+1
            "(e) Two-Stream I3D": (x["rgb"], x["flow_clip"])}


def run_quo_vadis(*, inputs: dict | None = None, qv_actions=("Mixing", "JumpingJack", "HorseRiding"),
                  qv_clips_per_class: int = 96, qv_frames: int = 8, qv_frame_size: int = 32, qv_epochs: int = 12,
                  qv_lr: float = 3e-3, qv_batch_size: int = 16, qv_test_size: float = 0.3, seed: int = 0,
                  device: str = "auto") -> dict:
    """The slide's five architectures on the same synthetic action clips (`synth.action_video`, as sections
    5-6 of lecture5_3d_video use them), the same split and the same number of epochs, all from scratch.

    Two-stream models (c, e) train their streams apart and average the softmax scores (as both papers);
    (a), (b) and (d) train end to end. Returns the flat table (accuracy per input, params, ms per clip),
    the test predictions, histories and models. `inputs`: `quo_vadis_inputs`' result, else built here."""
    x = inputs if inputs is not None else quo_vadis_inputs(
        qv_actions=qv_actions, qv_clips_per_class=qv_clips_per_class, qv_frames=qv_frames,
        qv_frame_size=qv_frame_size, seed=seed)
    y = x["y"]
    tr, te = train_test_split(np.arange(len(y)), test_size=qv_test_size, stratify=y.numpy(), random_state=seed)
    seed_everything(seed)  # the initial weights too: not whatever the caller's random state holds
    models = quo_vadis_models(n_classes=len(x["classes"]), frames=x["rgb"].shape[2])
    kw = dict(epochs=qv_epochs, lr=qv_lr, head="fc", warmup_epochs=1, desc="", device=device)

    def train(net, inputs):
        seed_everything(seed)
        data = TensorDataset(inputs[tr], y[tr]) if torch.is_tensor(inputs) else _QvPairs(inputs[0][tr], inputs[1][tr], y[tr])
        return fit(net, DataLoader(data, batch_size=qv_batch_size, shuffle=True,
                                   generator=torch.Generator().manual_seed(seed)), **kw)

    def test(net, inputs, **ev):
        data = TensorDataset(inputs[te], y[te]) if torch.is_tensor(inputs) else _QvPairs(inputs[0][te], inputs[1][te], y[te])
        out = evaluate(net.cpu(), DataLoader(data, batch_size=64), **ev)
        return out["targets"].numpy(), out["outputs"].softmax(1).numpy()

    rows, keep, histories = [], {}, {}
    for name, feed in _qv_feeds(x).items():
        net, pair = models[name], isinstance(feed, tuple)
        row = {"architecture": name, "RGB": np.nan, "Flow": np.nan, "RGB+Flow": np.nan}
        if isinstance(net, TwoStream):  # streams trained apart, fused by averaging (the model's forward)
            for col, stream, part in (("RGB", net.spatial, feed[0]), ("Flow", net.temporal, feed[1])):
                histories[f"{name} {col}"] = train(stream, part)
                keep[f"{name} {col}"] = test(stream, part)
                row[col] = _qv_acc(*keep[f"{name} {col}"])
            keep[name] = test(net, feed, loss_fn=F.nll_loss)
        else:  # one network trained end to end: (a), (b) on the RGB clip, (d) on the pair
            histories[name] = train(net, feed)
            keep[name] = test(net, feed)
        row["RGB+Flow" if pair else "RGB"] = row["accuracy"] = _qv_acc(*keep[name])
        row["params"] = count_parameters(net)
        row["train s"] = sum(e["train_seconds"] for k, h in histories.items() if k.startswith(name) for e in h)
        one = tuple(f[:1] for f in feed) if pair else feed[:1]
        step = inference_step(net, (1,), wrap=lambda _, one=one: one)  # a real clip, batch 1
        row["ms/clip (network)"] = 1000 * time_calls({"m": step}, repeats=5)["m"][0]
        row["ms/clip (with flow)"] = row["ms/clip (network)"] + (x["flow_ms"] if pair else 0.0)
        rows.append(row)
    return {"table": pd.DataFrame(rows), "predictions": keep, "histories": histories, "models": models,
            "classes": x["classes"], "n_train": len(tr), "n_test": len(te), "flow_ms": x["flow_ms"], "inputs": x}


def _qv_acc(targets, probs) -> float:
    return float((np.asarray(probs).argmax(1) == np.asarray(targets)).mean())


def quo_vadis_table(result: dict) -> pd.DataFrame:
    """Ours (accuracy on the synthetic clips, params, ms per clip) beside the paper's Table 2 and Table 1, in
    the paper's column order; "-" where an architecture has no such input or the paper reports none."""
    ours = result["table"].set_index("architecture")
    paper = QUO_VADIS_TABLE2.set_index("architecture")
    cols = {}
    for c in ("RGB", "Flow", "RGB+Flow"):
        cols["synthetic actions (ours)", c] = (100 * ours[c]).round(1)
    for data in ("UCF-101", "HMDB-51"):
        for c in ("RGB", "Flow", "RGB+Flow"):
            cols[f"{data} (paper)", c] = paper[f"{data} {c}"]
    cols["params", "ours"] = ours["params"]
    cols["params", "paper"] = [f"{m}M" for m in paper["params (M)"]]
    cols["ms per clip (ours)", "network"] = ours["ms/clip (network)"].round(1)
    cols["ms per clip (ours)", "with flow"] = ours["ms/clip (with flow)"].round(1)
    cols["training (ours)", "seconds"] = ours["train s"].round(1)
    out = pd.DataFrame(cols).reindex(list(QUO_VADIS_ARCHITECTURES))
    out.columns = pd.MultiIndex.from_tuples(out.columns)
    return out.astype(object).where(out.notna(), "-")


def quo_vadis_figure(result: dict, *, path=None):
    """Accuracy against parameters and against ms per clip (the flow's cost included), one point per architecture."""
    t = result["table"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4), sharey=True)
    for ax, col, label in ((axes[0], "params", "trainable parameters"),
                           (axes[1], "ms/clip (with flow)", "ms per clip on this machine, flow included")):
        ax.scatter(t[col], 100 * t["accuracy"])
        for x_, acc, name in zip(t[col], t["accuracy"], t["architecture"]):
            ax.annotate(name, (x_, 100 * acc), fontsize=7, xytext=(3, 3), textcoords="offset points")
        ax.axhline(100 / len(result["classes"]), color="0.6", ls=":", lw=1, label="chance")
        ax.set(xlabel=label)
    axes[0].set_ylabel("test accuracy (%)")
    axes[0].legend(fontsize=7)
    return finish(fig, path, dpi=100)


def quo_vadis_words(result: dict) -> str:
    """The line-up in words: the ranking, the gap from the best to the rest in test clips, what flow adds, and
    how that compares with the paper's ranking (UCF-101, the architecture's full input)."""
    t, n = result["table"].set_index("architecture"), result["n_test"]
    acc = t["accuracy"].sort_values(ascending=False)
    ranking = ", ".join(f"{k} {v:.2f}" for k, v in acc.items())
    text = (f"Chance is {1 / len(result['classes']):.2f}. On {n} test clips, trained from scratch for the same "
            f"epochs on the same {result['n_train']} clips: {ranking}. ")
    gap = int(round((acc.iloc[0] - acc.iloc[1]) * n))
    text += (f"{acc.index[0]} leads by {gap} test clip{'s' if gap != 1 else ''}"
             f"{', within the noise of a test set this small' if gap <= 2 else ''}. " if gap > 0 else
             f"{acc.index[0]} and {acc.index[1]} tie. ")
    chance = 1 / len(result["classes"])
    near = [k for k, v in acc.items() if v * n <= chance * n + 2]
    if near:
        text += (f"{', '.join(near)} stay{'s' if len(near) == 1 else ''} within two test clips of chance or below: "
                 "with this budget they learnt nothing that carries to new clips. ")
    for name in ("(c) Two-Stream", "(e) Two-Stream I3D"):
        r = t.loc[name]
        best = max(r.RGB, r.Flow)
        text += (f"{name}: RGB {r.RGB:.2f}, flow {r.Flow:.2f}, fused {r['RGB+Flow']:.2f} "
                 f"({'fusion beats both streams' if r['RGB+Flow'] > best else 'fusion does not beat the better stream'}). ")
    paper = QUO_VADIS_TABLE2.set_index("architecture")
    headline = paper["UCF-101 RGB+Flow"].fillna(paper["UCF-101 RGB"]).sort_values(ascending=False)
    text += f"The paper's UCF-101 order is {', '.join(headline.index)}; " + (
        "our best is theirs too. " if acc.index[0] == headline.index[0] else
        f"our best is {acc.index[0]}, theirs {headline.index[0]}. ")
    slowest = t["ms/clip (network)"].max()
    text += f"Computing the flow costs {result['flow_ms']:.0f} ms per clip here" + (
        f", more than running the slowest network ({slowest:.0f} ms)." if result["flow_ms"] > slowest else
        f"; the slowest network takes {slowest:.0f} ms.")
    return text


def quo_vadis_measures(result: dict) -> dict[str, Measure]:
    """Each architecture's test accuracy (and each stream's), 95% bootstrap interval over test clips."""
    return {f"quo vadis: {label} accuracy": bootstrap_measure(_qv_acc, y, p)
            for label, (y, p) in result["predictions"].items()}


def quo_vadis_findings(result: dict) -> list[dict]:
    """The paper's Table 2 claims against this run's numbers."""
    acc = result["table"].set_index("architecture")
    e, others = acc.loc["(e) Two-Stream I3D", "accuracy"], acc.accuracy.drop("(e) Two-Stream I3D")
    b = acc.loc["(b) 3D-ConvNet", "accuracy"]
    out = [finding("3. Two-stream I3D is the best of the five (Carreira & Zisserman, Table 2)",
                   paper="UCF-101 93.4% against 91.2% for the next best (two-stream)", ours=e - others.max(),
                   unit="accuracy", holds=e >= others.max(), rule="I3D - best other accuracy >= 0"),
           finding("3. A 3D ConvNet trained from scratch is the weakest of the five",
                   paper="UCF-101 51.6% against 81.0% or more for the others", ours=b - acc.accuracy.drop("(b) 3D-ConvNet").min(),
                   unit="accuracy", holds=b <= acc.accuracy.min(), rule="3D-ConvNet - worst other accuracy <= 0")]
    for name, paper in (("(c) Two-Stream", "UCF-101 91.2% fused against 85.6% flow, 83.6% RGB"),
                        ("(e) Two-Stream I3D", "UCF-101 93.4% fused against 90.6% flow, 84.5% RGB")):
        r = acc.loc[name]
        gain = r["RGB+Flow"] - max(r.RGB, r.Flow)
        out.append(finding(f"3. {name}: fusing RGB and flow beats either stream", paper=paper, ours=gain,
                           unit="accuracy", holds=gain > 0, rule="fused - best stream accuracy > 0"))
    return out


# == PET lesion 3D U-Net (section 4) ==

#: Blanc-Durand et al. (PLoS One 2018), abstract: Dice after 150 epochs on the evaluation and the training scans,
#: and on the evaluation scans after dilating and thresholding the U-Net's mask; 11 of 11 lesions detected,
#: no false positive.
PET_PAPER = {"Dice (evaluation)": 0.7911, "Dice (training)": 0.7924, "Dice, mask dilated + thresholded": 0.8231,
             "lesions detected": "11 of 11", "false-positive volumes": 0}


def pet_data(*, pet_train: int = 37, pet_eval: int = 11, seed: int = 0) -> dict:
    """The synthetic FET-PET cohort (generated once under data/), each volume divided by its own brain
    uptake level (the median of the voxels above 30% of its maximum), masks as 0/1."""
    manifest = ensure_pet_cohort(data_dir() / STUDY / f"pet_t{pet_train}_e{pet_eval}_s{seed}", n_train=pet_train,
                                 n_eval=pet_eval, seed=seed)
    m = pd.read_csv(manifest)
    images, masks = [], []
    for _, r in m.iterrows():
        pet = load_volume(manifest.parent / r.pet)[0]
        images.append(pet / np.median(pet[pet > 0.3 * pet.max()]))
        masks.append(load_volume(manifest.parent / r["mask"])[0].astype(np.int64))
    return {"manifest": m, "images": torch.from_numpy(np.stack(images))[:, None],
            "masks": torch.from_numpy(np.stack(masks))[:, None]}


class _PetPatches(Dataset):
    """Training patches: `crop` x `crop` voxels in x and y (all 40 slices), centred on a lesion voxel half the
    time and anywhere the other half (MONAI's positive/negative sampling), with a random left-right flip (the
    template is nearly symmetric; a glioma can sit on either side). The U-Net is convolutional: it is
    evaluated on whole volumes."""

    def __init__(self, images, masks, *, crop: int, seed: int = 0):
        self.images, self.masks, self.crop, self.rng = images, masks, crop, np.random.default_rng(seed)
        self.lesion_voxels = [torch.nonzero(m[0]).numpy() for m in masks]

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        img, mask = self.images[i], self.masks[i]
        size = np.array(img.shape[1:3])
        crop = np.minimum(self.crop, size)
        voxels = self.lesion_voxels[i]
        if len(voxels) and self.rng.random() < 0.5:
            centre = voxels[self.rng.integers(len(voxels))][:2]
        else:
            centre = self.rng.integers(0, size)
        lo = np.clip(centre - crop // 2, 0, size - crop)
        img, mask = (v[:, lo[0] : lo[0] + crop[0], lo[1] : lo[1] + crop[1]] for v in (img, mask))
        if self.rng.random() < 0.5:
            return img.flip(1), mask.flip(1)
        return img, mask


def _pet_detection(pred: np.ndarray, truth: np.ndarray) -> tuple[int, int, int]:
    """(true lesions, those the prediction touches, predicted components touching no lesion)."""
    from scipy import ndimage

    lab, n = ndimage.label(truth)
    found = sum(bool(pred[lab == k].any()) for k in range(1, n + 1))
    plab, pn = ndimage.label(pred)
    false = sum(not truth[plab == k].any() for k in range(1, pn + 1))
    return n, found, false


def run_pet_unet(*, pet_train: int = 37, pet_eval: int = 11, pet_epochs: int = 6, pet_lr: float = 1e-2,
                 pet_channels: tuple = (4, 8, 16, 32), pet_res_units: int = 1, pet_crop: int = 32,
                 pet_batch_size: int = 2, seed: int = 0, device: str = "auto") -> dict:
    """MONAI's 3D U-Net trained with MONAI's DiceCELoss on patches of the training volumes (`train.fit`); Dice of the
    lesion class per evaluation volume, and lesion detection (a lesion counts as found when the predicted
    mask touches it; a predicted component touching no lesion is a false positive). The training Dice is
    measured on the first `pet_eval` training volumes (a whole-volume pass costs more than a training step)."""
    from monai.losses import DiceCELoss
    from monai.networks.nets import UNet

    data = pet_data(pet_train=pet_train, pet_eval=pet_eval, seed=seed)
    m = data["manifest"]
    tr, ev = np.flatnonzero(m.split == "train"), np.flatnonzero(m.split == "eval")
    seed_everything(seed)
    net = UNet(spatial_dims=3, in_channels=1, out_channels=2, channels=tuple(pet_channels),
               strides=(2,) * (len(pet_channels) - 1), num_res_units=pet_res_units)
    patches = _PetPatches(data["images"][tr], data["masks"][tr], crop=pet_crop, seed=seed)
    loader = DataLoader(patches, batch_size=pet_batch_size,
                        shuffle=True, generator=torch.Generator().manual_seed(seed))
    history = fit(net, loader, epochs=pet_epochs, lr=pet_lr, loss_fn=DiceCELoss(to_onehot_y=True, softmax=True),
                  desc="", device=device)
    net.cpu().eval()
    rows, preds = [], {}
    voxel_ml = float(np.prod(voxel_mm())) / 1000
    with torch.no_grad():
        for split, idx in (("train", tr[: len(ev)]), ("eval", ev)):  # as many training volumes as evaluation ones
            for i in idx:
                pred = net(data["images"][i : i + 1]).argmax(1)[0].numpy()
                truth = data["masks"][i, 0].numpy()
                n, found, false = _pet_detection(pred, truth)
                rows.append({"volume": m.name[i], "split": split, "Dice": dice(pred, truth, num_classes=2)[1],
                             "lesion mL": m.lesion_ml[i], "peak TBR": m.tbr_max[i], "lesions": n, "found": found,
                             "false-positive components": false,
                             "predicted mL": pred.sum() * voxel_ml})
                preds[m.name[i]] = pred
    return {"per_volume": pd.DataFrame(rows), "predictions": preds, "history": history, "model": net, "data": data,
            "n_train": len(tr), "n_eval": len(ev), "params": count_parameters(net)}


def pet_table(result: dict) -> pd.DataFrame:
    """Ours beside the paper's (Blanc-Durand et al. 2018, real 18F-FET PET)."""
    v = result["per_volume"]
    e, t = v[v.split == "eval"], v[v.split == "train"]
    ours = {"Dice (evaluation)": e.Dice.mean(), "Dice (training)": t.Dice.mean(),
            "Dice, mask dilated + thresholded": None, "lesions detected": f"{e.found.sum()} of {e.lesions.sum()}",
            "false-positive volumes": int((e["false-positive components"] > 0).sum())}
    ours = {k: round(v, 3) if isinstance(v, float) else v for k, v in ours.items()}
    return pd.DataFrame({"this run (synthetic)": ours, "Blanc-Durand et al. 2018": PET_PAPER}).rename_axis("measure")


def pet_cases_figure(data: dict, *, n: int = 3, path=None):
    """Training volumes: axial, coronal and sagittal slices through each lesion's centre, mask in green."""
    m = data["manifest"]
    fig, axes = plt.subplots(n, 3, figsize=(8, 2.7 * n), squeeze=False)
    for row, i in zip(axes, range(n)):
        img, truth = data["images"][i, 0].numpy(), data["masks"][i, 0].numpy()
        c = [int(round(a.mean())) for a in np.nonzero(truth)]
        for ax, axis, name in zip(row, (2, 1, 0), ("axial", "coronal", "sagittal")):
            ax.imshow(np.take(img, c[axis], axis).T, origin="lower", cmap="hot", aspect="auto")
            ax.contour(np.take(truth, c[axis], axis).T, levels=[0.5], colors="lime", linewidths=1)
            ax.set_title(f"{m.name[i]}: {name}, TBR {m.tbr_max[i]:.1f}, {m.lesion_ml[i]:.1f} mL", fontsize=7)
            ax.set_axis_off()
    return finish(fig, path, dpi=100)


def pet_figure(result: dict, *, n: int = 3, path=None):
    """Evaluation volumes: the PET slice through each lesion's centre, the drawn mask (green) and the
    U-Net's (blue contour)."""
    m, data = result["data"]["manifest"], result["data"]
    picks = list(np.flatnonzero(m.split == "eval")[:n])
    fig, axes = plt.subplots(1, len(picks), figsize=(3.4 * len(picks), 3.6), squeeze=False)
    for ax, i in zip(axes[0], picks):
        truth, img = data["masks"][i, 0].numpy(), data["images"][i, 0].numpy()
        z = int(truth.sum((0, 1)).argmax())
        ax.imshow(img[:, :, z].T, origin="lower", cmap="hot")
        ax.contour(truth[:, :, z].T, levels=[0.5], colors="lime", linewidths=1)
        pred = result["predictions"][m.name[i]][:, :, z].T
        if pred.any():
            ax.contour(pred, levels=[0.5], colors="cyan", linewidths=1, linestyles="--")
        d = result["per_volume"].set_index("volume").Dice[m.name[i]]
        ax.set_title(f"{m.name[i]}, slice {z}: Dice {d:.2f}", fontsize=8)
        ax.set_axis_off()
    return finish(fig, path, dpi=100)


def pet_words(result: dict) -> str:
    """Section 4's result in words, from the per-volume table."""
    v = result["per_volume"]
    e = v[v.split == "eval"]
    dice_eval, dice_train = e.Dice.mean(), v[v.split == "train"].Dice.mean()
    text = (f"After {len(result['history'])} epochs on {result['n_train']} volumes, the U-Net's mean Dice is "
            f"{dice_eval:.2f} on the {result['n_eval']} evaluation volumes ({dice_train:.2f} on "
            f"{int((v.split == 'train').sum())} of the training ones; "
            f"the paper: {PET_PAPER['Dice (evaluation)']:.2f} and {PET_PAPER['Dice (training)']:.2f} after 150 "
            f"epochs). It touches {e.found.sum()} of {e.lesions.sum()} evaluation lesions; evaluation volumes with "
            f"a false-positive component: {int((e['false-positive components'] > 0).sum())} of {len(e)}.")
    worst = e.sort_values("Dice").iloc[0]
    text += (f" The lowest Dice, {worst.Dice:.2f}, is {worst.volume}'s lesion of {worst['lesion mL']:.1f} mL "
             f"(peak {worst['peak TBR']:.1f} x background; the evaluation lesions' median is "
             f"{e['lesion mL'].median():.1f} mL).")
    if dice_eval > PET_PAPER["Dice (evaluation)"]:
        text += (" Scoring above the paper says nothing about real scans: our lesions follow a known rule on one "
                 "clean template, real gliomas and their delineations do not.")
    return text


def _mean_of(x) -> float:
    return float(np.mean(x))


def _share_of(found, lesions) -> float:
    return float(np.sum(found) / np.sum(lesions))


def pet_measures(result: dict) -> dict[str, Measure]:
    """Mean Dice over the evaluation volumes and the share of lesions found, with 95% bootstrap intervals."""
    e = result["per_volume"][result["per_volume"].split == "eval"]
    return {"pet: U-Net Dice (evaluation volumes)": bootstrap_measure(_mean_of, e.Dice.to_numpy()),
            "pet: lesions found (evaluation volumes)": bootstrap_measure(_share_of, e.found.to_numpy(),
                                                                         e.lesions.to_numpy())}


def pet_findings(result: dict) -> list[dict]:
    """Section 4's claims against this run's numbers."""
    e = result["per_volume"][result["per_volume"].split == "eval"]
    paper = PET_PAPER["Dice (evaluation)"]
    found, fp = e.found.sum() / e.lesions.sum(), int((e["false-positive components"] > 0).sum())
    return [finding("4. A 3D U-Net segments brain PET lesions (Blanc-Durand et al.)", paper=f"Dice {paper}",
                    ours=e.Dice.mean(), unit="Dice", holds=e.Dice.mean() >= paper - 0.1,
                    rule=f"mean evaluation Dice >= {paper - 0.1:.2f} (the paper's minus 0.1)"),
            finding("4. Every lesion is detected, with no false positive", paper="11 of 11 lesions, no false positive",
                    ours=found, unit="of lesions", holds=bool(found == 1 and fp == 0),
                    rule="every evaluation lesion touched and no false-positive component")]

# == measures and findings of the whole notebook ==

#: where the findings that a laptop run does not show can be seen (named by the notebook's findings cell)
LONGER_RUNS = ("The test sets here are small (a dozen echo videos, a few ICU clips, under a hundred action clips, 11 PET volumes), so "
               "each number moves with the seed. `params/lecture5_medical_video/longer.yaml` trains every section longer "
               "on more data.")


def measures(*, echo: dict, icu: dict, quo_vadis: dict, pet: dict) -> dict[str, Measure]:
    """Every trained result of the four sections with its 95% bootstrap interval (over test videos, held-out
    clips, test action clips, evaluation volumes), for `medvid_core.reference.check`."""
    return {**echo_measures(echo), **icu_measures(icu), **quo_vadis_measures(quo_vadis), **pet_measures(pet)}


def findings(*, echo: dict, b2b: dict, icu: dict, quo_vadis: dict, pet: dict) -> list[dict]:
    """The four papers' claims against this run, in the notebook's section order."""
    return [*echo_findings(echo, b2b), *icu_findings(icu), *quo_vadis_findings(quo_vadis), *pet_findings(pet)]
