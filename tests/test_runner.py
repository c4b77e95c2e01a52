"""Tests for medvid_core.params, medvid_core.runner and medvid_core.cli: parameter parsing/validation,
output-folder naming and real papermill runs.

Validation tests are pure Python (milliseconds). The end-to-end tests start a
real kernel on tiny notebooks (a few seconds each): they are the only way to
know that injection, output_dir and the failure path actually work.
"""

import json
from pathlib import Path

import nbformat
import pytest
import yaml
from nbformat.v4 import new_code_cell, new_notebook

from medvid_core.cli import main
from medvid_core.params import (
    ParamError,
    load_params_file,
    notebook_parameters,
    parse_inline_yaml,
    parse_override,
    pick,
    read_parameters,
    validate,
)
from medvid_core.runner import run, run_name

FIXTURES = Path(__file__).parent / "fixtures"

PARAMS_CELL = """\
epochs = 10  # training epochs
lr = 0.001  # learning rate
amp = True
name = "run"  # run label
models = ["tsn_r18", "tsm_r18"]  # models to compare
seeds = []
extra = {"a": 1}
anything = None  # free-form
offset = -1
output_dir = ""
"""


def write_notebook(path: Path, *cells: str, params: str | None = PARAMS_CELL) -> Path:
    """A notebook whose first cell (if ``params``) is tagged ``parameters``."""
    nb_cells = [new_code_cell(params, metadata={"tags": ["parameters"]})] if params is not None else []
    nb_cells += [new_code_cell(src) for src in cells]
    nbformat.write(new_notebook(cells=nb_cells), path)
    return path


@pytest.fixture
def spec(tmp_path):
    return read_parameters(write_notebook(tmp_path / "study.ipynb"))


# ------------------------------------------------------------------- parameters cell


def test_read_parameters_defaults_types_and_help(spec):
    assert list(spec) == [
        "epochs", "lr", "amp", "name", "models", "seeds", "extra", "anything", "offset", "output_dir",
    ]
    assert (spec["epochs"].default, spec["epochs"].type, spec["epochs"].help) == (10, int, "training epochs")
    assert (spec["lr"].type, spec["lr"].help) == (float, "learning rate")
    assert spec["amp"].help == ""
    assert spec["models"].type_name == "list[str]"
    assert spec["offset"].default == -1
    assert spec["anything"].type is type(None)


def test_notebook_without_parameters_cell_is_an_error(tmp_path):
    nb = write_notebook(tmp_path / "bare.ipynb", "x = 1", params=None)
    with pytest.raises(ParamError, match="bare.ipynb has no cell tagged 'parameters'"):
        read_parameters(nb)


def test_non_literal_default_is_an_error(tmp_path):
    nb = write_notebook(tmp_path / "calc.ipynb", params="import os\nx = 1")
    with pytest.raises(ParamError, match="line 1"):
        read_parameters(nb)
    nb = write_notebook(tmp_path / "calc.ipynb", params="x = os.getcwd()")
    with pytest.raises(ParamError, match="x must be a literal"):
        read_parameters(nb)


# ------------------------------------------------------------------------ validation


def test_unknown_key_is_named_with_the_known_ones(spec):
    with pytest.raises(ParamError) as err:
        validate({"epochs": 1, "epoch": 2}, spec, "x.yaml")
    msg = str(err.value)
    assert msg.startswith("unknown parameter 'epoch' for study (known: epochs, lr, amp,")
    assert "\n" not in msg and "output_dir" not in msg


def test_output_dir_cannot_be_set_by_the_user(spec):
    with pytest.raises(ParamError, match="'output_dir' is set by the runner"):
        validate({"output_dir": "/tmp"}, spec, "-p")


@pytest.mark.parametrize(
    "key, value, expected",
    [
        ("epochs", "ten", "parameter 'epochs' must be int, got str ('ten') from params/x.yaml"),
        ("epochs", True, "parameter 'epochs' must be int, got bool (True) from params/x.yaml"),
        ("epochs", 1.5, "must be int, got float (1.5)"),
        ("amp", 1, "must be bool, got int (1)"),
        ("lr", "0.1", "must be float, got str"),
        ("models", "tsn_r18", "must be list[str], got str"),
        ("models", ["tsn_r18", 3], "must be list[str], got list (['tsn_r18', 3])"),
        ("extra", [1], "must be dict, got list[int]"),
    ],
)
def test_wrong_types_are_rejected(spec, key, value, expected):
    with pytest.raises(ParamError) as err:
        validate({key: value}, spec, "params/x.yaml")
    assert expected in str(err.value)


def test_accepted_values_and_int_to_float(spec):
    checked = validate(
        {"lr": 1, "epochs": 3, "amp": False, "models": ["a"], "seeds": [1, "x"],
         "extra": {}, "anything": [1], "offset": 0},
        spec, "-p",
    )
    assert checked["lr"] == 1.0 and isinstance(checked["lr"], float)
    assert checked["models"] == ["a"] and checked["seeds"] == [1, "x"] and checked["anything"] == [1]


# -------------------------------------------------------------------- -p and files


def test_override_values_are_yaml():
    assert parse_override("epochs=3") == ("epochs", 3)
    assert parse_override("models=[tsn_r18,tsm_r18]") == ("models", ["tsn_r18", "tsm_r18"])
    assert parse_override("lr=1e-3") == ("lr", 0.001)  # YAML 1.1 would say '1e-3' (str)
    assert parse_override("name=a=b") == ("name", "a=b")
    assert parse_override("amp=false") == ("amp", False)
    with pytest.raises(ParamError, match="key=value"):
        parse_override("epochs")


def test_params_file_errors_name_the_file(tmp_path):
    with pytest.raises(ParamError, match=r"params file .*missing\.yaml not found"):
        load_params_file(tmp_path / "missing.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n")
    with pytest.raises(ParamError, match=r"list\.yaml must be a mapping"):
        load_params_file(tmp_path / "list.yaml")
    (tmp_path / "broken.yaml").write_text("epochs: [1\n")
    with pytest.raises(ParamError, match=r"broken\.yaml is not valid YAML"):
        load_params_file(tmp_path / "broken.yaml")
    (tmp_path / "empty.yaml").write_text("")
    assert load_params_file(tmp_path / "empty.yaml") == {}


def test_cli_rejects_before_running(tmp_path, capsys):
    argv = ["run", "tiny", "--notebook-dir", str(FIXTURES), "--output-root", str(tmp_path)]
    assert main(argv + ["-p", "y=1"]) == 2
    assert capsys.readouterr().err == "error: unknown parameter 'y' for tiny (known: x)\n"
    assert main(argv + ["--params", str(tmp_path / "nope.yaml")]) == 2
    assert "nope.yaml not found" in capsys.readouterr().err
    assert not (tmp_path / "tiny").exists()  # nothing ran


def test_params_command_prints_table(capsys):
    assert main(["params", "tiny", "--notebook-dir", str(FIXTURES)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["name", "default", "type", "help"]
    assert out[1].split() == ["x", "1", "int", "the", "number", "to", "double"]


# ------------------------------------------------------------------------ end to end


def test_run_tiny_notebook(tmp_path):
    params = tmp_path / "double.yaml"
    params.write_text("x: 4\n")
    out = run("tiny", params_file=params, overrides={"x": 21},
              output_root=tmp_path / "outputs", notebook_dir=FIXTURES)

    assert out == (tmp_path / "outputs" / "tiny" / "double+x=21").resolve()  # overrides get their own folder
    assert json.loads((out / "metrics.json").read_text()) == {"x2": 42}
    assert yaml.safe_load((out / "params.yaml").read_text()) == {"x": 21}
    assert "overrides (-p/-y): {x: 21}" in (out / "params.yaml").read_text()
    executed = nbformat.read(out / "tiny.ipynb", as_version=4)
    injected = [c for c in executed.cells if "injected-parameters" in c.metadata.get("tags", [])]
    # the notebook ran in a staging folder that was then renamed into place (tests/test_runner_batch.py)
    assert "x = 21" in injected[0].source
    assert f'output_dir = "{out.parent / ".incomplete" / out.name}.' in injected[0].source
    assert (out / ".complete.json").is_file() and not list((out.parent / ".incomplete").iterdir())


def test_failing_notebook_exits_1_and_keeps_executed_copy(tmp_path, capsys):
    write_notebook(tmp_path / "boom.ipynb", "print('ok')", "raise ValueError('kaput')",
                   params='output_dir = ""')
    rc = main(["run", "boom", "--notebook-dir", str(tmp_path), "--output-root", str(tmp_path / "out")])

    assert rc == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: ") and "boom.ipynb failed in cell 4 (exec count 4): " in err
    assert "ValueError: kaput; see " in err and err.endswith("out/boom/default/boom.ipynb")
    executed = nbformat.read(tmp_path / "out" / "boom" / "default" / "boom.ipynb", as_version=4)
    assert any(o.get("ename") == "ValueError" for c in executed.cells for o in c.get("outputs", []))


def test_batch_runs_the_others_after_a_failure(tmp_path, capsys):
    """A failed run no longer stops the batch (it did before batches ran on Dask): it is reported."""
    write_notebook(tmp_path / "a_boom.ipynb", "raise RuntimeError('no')", params='output_dir = ""')
    write_notebook(tmp_path / "b_fine.ipynb", "pass", params='output_dir = ""')

    rc = main(["batch", "--notebook-dir", str(tmp_path), "--output-root", str(tmp_path / "out")])

    assert rc == 1
    captured = capsys.readouterr()
    assert "batch: a_boom/default failed" in captured.err and "RuntimeError: no" in captured.err
    assert (tmp_path / "out" / "b_fine" / "default" / ".complete.json").is_file()


# ------------------------------------------------------------------------ output folders, -y, notebook side


def test_run_name_keeps_runs_apart():
    assert run_name() == "default" and run_name("params/video4mri/paper.yaml") == "paper"
    assert run_name(None, {"epochs": 3}) == "default+epochs=3"
    assert run_name("p/paper.yaml", {"models": ["tsm_r18"], "lr": 0.01}) == "paper+models=tsm_r18,lr=0.01"
    assert run_name(None, {"data_roots": {"ppmi": "/data/PPMI"}}) == "default+data_roots=ppmi-data-PPMI"
    long_a = run_name(None, {"models": ["tsn_r18", "tsm_r18", "resnet3d_18", "slowfast_r50", "tsn_r50"], "x": 1})
    long_b = run_name(None, {"models": ["tsn_r18", "tsm_r18", "resnet3d_18", "slowfast_r50", "tsn_r50"], "x": 2})
    assert len(long_a) <= 80 and long_a != long_b  # cut, and a hash keeps them apart


def test_override_run_does_not_touch_the_default_folder(tmp_path):
    default = run("tiny", output_root=tmp_path, notebook_dir=FIXTURES)
    (default / "marker").write_text("default results")
    other = run("tiny", overrides={"x": 5}, output_root=tmp_path, notebook_dir=FIXTURES)
    assert other.name == "default+x=5" and (default / "marker").read_text() == "default results"
    assert json.loads((other / "metrics.json").read_text()) == {"x2": 10}


def test_inline_yaml_option(tmp_path, capsys):
    assert parse_inline_yaml("data_roots: {ppmi: /data/PPMI}") == {"data_roots": {"ppmi": "/data/PPMI"}}
    with pytest.raises(ParamError, match="-y expects a YAML mapping"):
        parse_inline_yaml("[1, 2]")
    argv = ["run", "tiny", "--notebook-dir", str(FIXTURES), "--output-root", str(tmp_path)]
    assert main(argv + ["-y", "{x: 6}", "--name", "six"]) == 0
    assert json.loads((tmp_path / "tiny" / "six" / "metrics.json").read_text()) == {"x2": 12}
    assert main(argv + ["-y", "{y: 6}"]) == 2
    assert "unknown parameter 'y'" in capsys.readouterr().err


def test_every_option_the_readme_shows_exists():
    """Each `python -m medvid_core ...` line in the README parses (argparse exits 2 on an unknown option)."""
    import shlex

    from medvid_core.cli import _parser
    from medvid_core.paths import REPO_ROOT

    lines = [ln.split("#")[0].strip() for ln in (REPO_ROOT / "README.md").read_text().splitlines()
             if ln.strip().startswith("python -m medvid_core ")]
    assert lines
    for line in lines:
        _parser().parse_args(shlex.split(line)[3:])


def test_notebook_parameters_and_pick(tmp_path):
    write_notebook(tmp_path / "study.ipynb")
    namespace = {"epochs": 3, "lr": 0.1, "amp": False, "name": "n", "models": [], "seeds": [], "extra": {},
                 "anything": None, "offset": 0, "output_dir": "/x", "unrelated": 1}
    params = notebook_parameters("study", namespace, notebook_dir=tmp_path)
    assert list(params) == ["epochs", "lr", "amp", "name", "models", "seeds", "extra", "anything", "offset"]

    def train(model, *, epochs, lr=0.1, other=None):
        return epochs, lr

    assert pick(train, params) == {"epochs": 3, "lr": 0.1}
    assert pick([train, lambda *, offset: 0], params, exclude=["lr"]) == {"epochs": 3, "offset": 0}
    with pytest.raises(ParamError, match="not defined yet"):
        notebook_parameters("study", {"epochs": 1}, notebook_dir=tmp_path)


def test_tidy_keeps_one_final_line_per_progress_bar(tmp_path):
    """tqdm under nbconvert/papermill saves every redraw as its own stream output; tidy leaves what the
    console showed at the end, and touches nothing else."""
    import json

    from medvid_core.runner import collapse_progress, tidy_notebook

    assert collapse_progress("\ra 0%\ra 50%\ra 100%\nnext\n") == "a 100%\nnext\n"
    redraws = [{"output_type": "stream", "name": "stderr", "text": f"\rfit: {k}/4"} for k in range(5)]
    nb = {"cells": [{"cell_type": "code", "outputs": [
        {"output_type": "stream", "name": "stdout", "text": ["kept\n"]}, *redraws,
        {"output_type": "stream", "name": "stderr", "text": "\n"},
        {"output_type": "execute_result", "data": {"text/plain": "42"}, "metadata": {}, "execution_count": 1}]}],
        "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    path = tmp_path / "x.ipynb"
    path.write_text(json.dumps(nb))
    assert tidy_notebook(path) == 1 and tidy_notebook(path) == 0
    outs = json.loads(path.read_text())["cells"][0]["outputs"]
    assert [o.get("text") for o in outs] == [["kept\n"], ["fit: 4/4\n"], None]
    assert outs[2]["data"] == {"text/plain": "42"}
