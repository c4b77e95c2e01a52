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
