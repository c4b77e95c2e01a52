"""medvid_core.studies.video4mri: preprocessing, strict table runner, small cohorts, side-by-side tables, figures."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch

from medvid_core.studies import video4mri as v4


@pytest.fixture(scope="module")
def tiny_cohort(tmp_path_factory) -> pd.DataFrame:
    """10 subjects (5 NC, 5 PD): PD volumes carry a bright block, so a few steps can learn it."""
    root = tmp_path_factory.mktemp("tiny")
    rng = np.random.default_rng(0)
    rows = []
    for s in range(10):
        label = ["NC", "PD"][s % 2]
        data = (0.2 + 0.3 * rng.random((12, 16, 16))).astype(np.float32)
        if label == "PD":
            data[:, 4:12, 4:12] += 1.0
        rel = f"sub-{s:02d}.nii.gz"
        nib.save(nib.Nifti1Image(data, np.eye(4)), root / rel)
        rows.append(dict(subject=f"sub-{s:02d}", session=1, path=rel, label=label, view="sagittal"))
    pd.DataFrame(rows).to_csv(root / "manifest.csv", index=False)
    return root


def test_prepare_frames(tiny_cohort):
    frames = v4.prepare_frames(str(tiny_cohort / "sub-00.nii.gz"), "sagittal", 8)
    assert frames.shape == (12, 8, 8) and frames.dtype == torch.float16
    assert frames.min() >= 0 and frames.max() <= 2
    assert frames.float().amax(dim=(1, 2)).min() > 0.1  # no slice was trimmed, none is empty


def test_small_real_cohort_trains_with_what_there_is(tiny_cohort, capsys):
    """10 subjects -> 7 training scans < batch_size 8: one batch of 7, said out loud, no ZeroDivisionError."""
    v4._COHORTS.clear()
    table, trials = v4.run_table(["tsn_r18"], ["mine"], data_roots={"mine": str(tiny_cohort)}, image_size=16,
                                 num_segments=4, batch_size=8, epochs=1, cutmix_p=0.0, mixup_p=0.0, n_bootstrap=10)
    assert "7 training scans < batch_size 8" in capsys.readouterr().out
    assert len(table) == 1 and 0 <= table.loc[0, "accuracy"] <= 1
    assert trials["mine", "tsn_r18"].test["targets"].shape == (3,)


def test_run_table_refuses_an_unknown_keyword():
    with pytest.raises(TypeError, match="unknown parameter.*warmup_epoch"):
        v4.run_table(["tsn_r18"], ["small"], warmup_epoch=5)


def test_run_trial_is_strict():
    with pytest.raises(TypeError):
        v4.run_trial("tsn_r18", None, None, store=None, image_size=8, cohort="small")  # no silent columns


def test_table_keywords_are_the_notebook_parameters():
    from medvid_core.params import read_parameters
    from medvid_core.paths import REPO_ROOT

    spec = read_parameters(REPO_ROOT / "notebooks" / "video4mri.ipynb")
    assert (v4.COHORT_KEYWORDS | v4.TRIAL_KEYWORDS) <= set(spec), "every table keyword is a notebook parameter"


def _ours(cohort="small", models=("tsn_r18", "tsm_r18")):
    return pd.DataFrame([{"cohort": cohort, "model": m, "accuracy": 0.8 + 0.05 * i, "ci_half_width": 0.1,
                          "params_m": 11.171266, "inference_ms": 10.0} for i, m in enumerate(models)])


def test_table2_side_by_side():
    side = v4.table2_side_by_side(_ours())
    assert list(side.columns) == ["cohort", "model", "ours", "paper", "params_m", "paper_params_m"]
    assert side.loc[0, "ours"] == "0.80 (±0.10)" and side.loc[0, "paper"] == "0.83 (±0.11)"  # small -> PPMI
    assert side.loc[1, "paper"] == "0.85 (±0.10)" and side.loc[0, "params_m"] == 11.17
    unknown = v4.table2_side_by_side(_ours(models=("not_in_paper",)))
    assert unknown.loc[0, "paper"] == "n/a" and np.isnan(unknown.loc[0, "paper_params_m"])
    assert v4.table2_side_by_side(_ours(cohort="oasis1")).loc[0, "paper"] == "0.72 (±0.13)"


def test_table3_side_by_side():
    ours = _ours(models=("tsm_r18", "tsm_r18")).assign(augmentation=["none", "rotate+mixup/cutmix"])
    side = v4.table3_side_by_side(ours)
    assert side["paper"].tolist() == ["0.79 (±0.12)", "0.87 (±0.10)"]
    assert v4.table3_side_by_side(ours.assign(cohort="oasis2"))["paper"].tolist() == ["n/a", "n/a"]


def test_augmentation_rows_cover_table3():
    assert list(v4.AUGMENTATIONS) == list(v4.TABLE3.index)
    assert all(set(kw) == {"rotate_degrees", "cutmix_p", "mixup_p"} for kw in v4.AUGMENTATIONS.values())


def test_figures_save(tmp_path):
    v4.accuracy_vs_params(_ours(), path=tmp_path / "fig1.png")
    k = pd.concat([_ours().assign(num_segments=k) for k in (4, 8)])
    v4.accuracy_vs_k(k, path=tmp_path / "fig2.png")
    assert (tmp_path / "fig1.png").stat().st_size > 1000 and (tmp_path / "fig2.png").stat().st_size > 1000


def test_a_run_twice_gives_byte_identical_metrics_json(tmp_path):
    """The whole notebook through the runner, twice, at a tiny size: metrics.json holds no timing, so the
    bytes match (timings go to timings.csv)."""
    from medvid_core.paths import REPO_ROOT
    from medvid_core.runner import run

    tiny = {"models": ["tsn_r18"], "epochs": 1, "image_size": 16, "num_segments": 2, "cohort_scale": 0.2,
            "n_bootstrap": 10}
    outs = [run("video4mri", overrides=tiny, output_root=tmp_path / name, notebook_dir=REPO_ROOT / "notebooks")
            for name in ("a", "b")]
    first, second = ((o / "metrics.json").read_bytes() for o in outs)
    assert first == second and b"inference_ms" not in first
    assert (outs[0] / "timings.csv").exists()


def test_findings_compare_the_video_models_with_the_3d_resnet():
    table = pd.DataFrame({"cohort": ["small"] * 3, "model": ["tsn_r18", "tsm_r18", "resnet3d_18"],
                          "accuracy": [0.70, 0.80, 0.75], "params_m": [11.17, 11.17, 33.16]})
    f = {x["claim"]: x for x in v4.findings(table)}
    assert f["TSN/TSM-R18 match or beat the 3D-ResNet-18"]["ours"] == pytest.approx(0.05)
    assert f["... with about a third of the 3D-ResNet's parameters"]["holds"] is True
    assert f["The temporal shift (TSM) adds accuracy over TSN"]["holds"] is True
    assert v4.findings(table.iloc[:0]) == []


# --------------------------------------------------------------------------- the on-disk frame cache


def _tiny_items(root):
    return [(str(root / f"sub-{s:02d}.nii.gz"), "sagittal") for s in range(10)]


def _frame_folders(data):
    return sorted(p.name for p in (data / "video4mri").glob("frames-*"))


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_lazy_frames_equal_prepare_frames(tiny_cohort, tmp_path, monkeypatch, n_jobs):
    monkeypatch.setenv("MEDVID_DATA", str(tmp_path))
    store = v4.frame_store(8, _tiny_items(tiny_cohort), n_jobs=n_jobs)
    assert len(store.arrays) == 10 and store.arrays.folder.parent == tmp_path / "video4mri"
    for file, view in _tiny_items(tiny_cohort):
        frames, expected = store(file, view), v4.prepare_frames(file, view, 8)
        assert frames.dtype == torch.float16 and torch.equal(frames, expected)


def test_frame_cache_is_rebuilt_when_image_size_changes_and_reused_otherwise(tiny_cohort, tmp_path, monkeypatch):
    monkeypatch.setenv("MEDVID_DATA", str(tmp_path))
    calls = []
    prepare = v4.prepare_frames
    monkeypatch.setattr(v4, "prepare_frames", lambda file, view, image_size: calls.append(image_size)
                        or prepare(file, view, image_size))
    items = _tiny_items(tiny_cohort)
    v4.frame_store(8, items)
    assert calls == [8] * 10
    again = v4.frame_store(8, list(reversed(items)))  # the same cohort in another order: reused
    assert calls == [8] * 10 and torch.equal(again(*items[3]), prepare(*items[3], 8))
    v4.frame_store(12, items)  # another image size: decoded again, beside the first
    assert calls == [8] * 10 + [12] * 10 and len(_frame_folders(tmp_path)) == 2
    v4.frame_store(8, items[:5])  # another cohort (listing): its own cache
    assert calls[20:] == [8] * 5 and len(_frame_folders(tmp_path)) == 3


def _killed_build(root):
    """Build the tiny cohort's frame cache, dying (SIGKILL, as kill -9 or the OOM killer) at the fourth scan."""
    import os
    import signal

    original, seen = v4.prepare_frames, []

    def prepare(file, view, image_size):
        seen.append(file)
        if len(seen) == 4:  # three stacks already written to the partial build
            os.kill(os.getpid(), signal.SIGKILL)
        return original(file, view, image_size)

    v4.prepare_frames = prepare  # in this forked child only
    v4.frame_store(8, _tiny_items(root))


def test_a_killed_frame_cache_build_leaves_nothing_that_looks_complete(tiny_cohort, tmp_path, monkeypatch):
    import multiprocessing

    monkeypatch.setenv("MEDVID_DATA", str(tmp_path))
    child = multiprocessing.get_context("fork").Process(target=_killed_build, args=(tiny_cohort,))
    child.start()
    child.join(120)
    assert child.exitcode == -9
    left = sorted(p.name for p in (tmp_path / "video4mri").iterdir())
    assert _frame_folders(tmp_path) == [] and any(".tmp-" in n for n in left)  # only the hidden partial build
    store = v4.frame_store(8, _tiny_items(tiny_cohort))  # the next run rebuilds it whole
    assert len(store.arrays) == 10 and (store.arrays.folder / "STAMP.json").exists()
    assert not [n for n in (p.name for p in (tmp_path / "video4mri").iterdir()) if ".tmp-" in n]
    file, view = _tiny_items(tiny_cohort)[6]
    assert torch.equal(store(file, view), v4.prepare_frames(file, view, 8))


def test_an_unreadable_scan_is_a_one_line_error_naming_it(tiny_cohort, tmp_path, monkeypatch):
    monkeypatch.setenv("MEDVID_DATA", str(tmp_path))
    bad = tmp_path / "sub-99.nii.gz"
    bad.write_bytes(b"truncated")
    with pytest.raises(ValueError, match=r"sub-99\.nii\.gz: cannot read NIfTI") as info:
        v4.frame_store(8, [*_tiny_items(tiny_cohort)[:3], (str(bad), "sagittal")])
    assert "\n" not in str(info.value)


def test_two_loading_workers_give_identical_reruns(tiny_cohort, tmp_path, monkeypatch):
    monkeypatch.setenv("MEDVID_DATA", str(tmp_path))
    runs = []
    for _ in range(2):
        v4._COHORTS.clear()
        _, trials = v4.run_table(["tsn_r18"], ["mine"], data_roots={"mine": str(tiny_cohort)}, image_size=16,
                                 num_segments=4, batch_size=4, epochs=2, n_bootstrap=10, num_workers=2, n_jobs=2)
        runs.append(trials["mine", "tsn_r18"])
    a, b = runs
    assert [h["train_loss"] for h in a.history] == [h["train_loss"] for h in b.history]
    np.testing.assert_array_equal(a.test["probabilities"], b.test["probabilities"])
    assert all(torch.equal(p, q) for p, q in zip(a.model.state_dict().values(), b.model.state_dict().values()))


@pytest.fixture(autouse=True)
def _tiny_frame_caches_in_tmp(request, tmp_path_factory, monkeypatch):
    """A test on the tiny cohort (a fresh folder each session) keeps its frame cache out of the repository's data/."""
    if "tiny_cohort" in request.fixturenames:
        monkeypatch.setenv("MEDVID_DATA", str(tmp_path_factory.mktemp("data")))
