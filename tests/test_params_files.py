"""Every shipped parameter file parses and validates against its study notebook's parameters cell."""
from pathlib import Path

import pytest

from medvid_core.models import list_models
from medvid_core.paths import REPO_ROOT
from medvid_core.params import ParamError, load_params_file, read_parameters, validate
from medvid_core.studies.video4mri import AUGMENTATIONS, TABLE2

PARAM_FILES = sorted((REPO_ROOT / "params").glob("*/*.yaml"))


@pytest.mark.parametrize("path", PARAM_FILES, ids=[f"{p.parent.name}/{p.name}" for p in PARAM_FILES])
def test_params_file_validates(path: Path):
    spec = read_parameters(REPO_ROOT / "notebooks" / f"{path.parent.name}.ipynb")
    params = validate(load_params_file(path), spec, str(path))
    for key in ("models", "k_models"):
        assert set(params.get(key, [])) <= set(list_models()), f"{path}: unknown model in {key}"
    if "aug_model" in params:
        assert params["aug_model"] in list_models()
    assert set(params.get("aug_ablation", [])) <= set(AUGMENTATIONS)


def test_video4mri_paper_protocol():
    """paper.yaml carries Video4MRI's protocol (Sec. 3.2-3.4) and all seven models of Table 2."""
    p = load_params_file(REPO_ROOT / "params/video4mri/paper.yaml")
    assert (p["num_segments"], p["image_size"], p["batch_size"], p["epochs"], p["warmup_epochs"]) == (32, 224, 4, 100, 5)
    assert (p["lr"], p["weight_decay"], p["dropout"], p["cutmix_p"], p["mixup_p"], p["mix_fraction"]) == (
        5e-5, 1e-4, 0.4, 0.6, 0.4, 0.8)
    assert sorted(p["models"]) == sorted(TABLE2.index)  # all seven models of Table 2
    assert p["k_values"] == [8, 16, 32, 64]


def test_bad_params_are_rejected():
    spec = read_parameters(REPO_ROOT / "notebooks/video4mri.ipynb")
    with pytest.raises(ParamError, match="epoch"):
        validate({"epoch": 3}, spec, "test")
    with pytest.raises(ParamError, match="epochs"):
        validate({"epochs": "ten"}, spec, "test")
