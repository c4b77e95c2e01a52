"""medvid_core.findings: claims with a stated rule, words from the numbers, the table over seeds."""
import json
from pathlib import Path

import pandas as pd
import pytest

from medvid_core import findings
from medvid_core.cli import main
from medvid_core.runner import COMPLETE


def test_a_finding_says_what_it_was_judged_by():
    f = findings.finding("A beats B", paper="+0.04", ours=0.12, unit="AUC", holds=True, rule="A - B >= 0.10")
    assert f == {"claim": "A beats B", "paper": "+0.04", "ours": 0.12, "unit": "AUC", "spread": None,
                 "holds": True, "rule": "A - B >= 0.10"}


def test_an_undefined_number_is_reported_not_judged():
    f = findings.finding("A beats B", paper="-", ours=float("nan"), holds=False, rule="> 0")
    assert f["ours"] is None and f["holds"] is None
    assert findings.table([f]).iloc[0].tolist()[2:4] == ["undefined", "undefined"]


def test_markdown_is_written_from_the_numbers():
    rows = [findings.finding("Leak", paper="+0.32", ours=0.15, unit="AUC", holds=True, rule=">= 0.10"),
            findings.finding("Fusion helps", paper="+3.2", ours=-0.01, unit="accuracy", holds=False, rule="> 0")]
    text = findings.markdown(rows, longer="`longer.yaml` shows more.")
    assert "**Shown by this run:** Leak (+0.15 AUC; paper: +0.32)" in text
    assert "**Not shown by this run:** Fusion helps (-0.01 accuracy, rule: > 0" in text
    assert text.endswith("`longer.yaml` shows more.")
    assert "longer" not in findings.markdown(rows[:1], longer="`longer.yaml` shows more.")


def _run(root, study, name, ours, holds):
    run = root / study / name
    run.mkdir(parents=True)
    (run / "metrics.json").write_text(json.dumps({"findings": [findings.finding(
        "Leak", paper="+0.32", ours=ours, unit="AUC", holds=holds, rule=">= 0.10")]}))
    (run / COMPLETE).write_text(json.dumps({"study": study, "name": name}))
    return run


def test_summary_over_seeds_and_the_command(tmp_path, capsys):
    for k, (ours, holds) in enumerate([(0.15, True), (0.05, False), (0.25, True)]):
        _run(tmp_path, "ich", f"seed{k}", ours, holds)
    (tmp_path / "ich" / "broken").mkdir()  # no marker: an unfinished run is not counted
    (tmp_path / "ich" / "broken" / "metrics.json").write_text(json.dumps({"findings": [{"claim": "x"}]}))
    table = findings.summarize(findings.read_runs([tmp_path]))
    assert table.iloc[0][["study", "claim", "paper", "mean", "min to max", "holds"]].tolist() == \
        ["ich", "Leak", "+0.32", "+0.15", "+0.05 to +0.25", "2 of 3"]
    assert main(["findings", str(tmp_path), "--csv", str(tmp_path / "f.csv")]) == 0
    out = capsys.readouterr().out
    assert "| ich | Leak | +0.32 | +0.15 | +0.05 to +0.25 | 2 of 3 | 3 |" in out
    assert pd.read_csv(tmp_path / "f.csv").holds.tolist() == ["2 of 3"]


def test_no_runs_is_said(tmp_path, capsys):
    assert main(["findings", str(tmp_path)]) == 0
    assert "no complete run with findings" in capsys.readouterr().out


@pytest.mark.parametrize("study", sorted(p.stem for p in (Path(__file__).parents[1] / "notebooks").glob("*.ipynb")))
def test_every_committed_notebook_prints_its_findings(study):
    """The executed notebook shows a findings table, and its cells write `findings` into metrics.json."""
    from medvid_core.paths import REPO_ROOT

    nb = json.loads((REPO_ROOT / "notebooks" / f"{study}.ipynb").read_text())
    code = ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]
    assert any("findings.table(found)" in c for c in code)
    assert any('metrics["findings"] = found' in c for c in code)
    shown = [c for c in nb["cells"] if c["cell_type"] == "code" and "findings.table(found)" in "".join(c["source"])][0]
    html = "".join("".join(o["data"].get("text/plain", "")) for o in shown["outputs"] if "data" in o)
    assert "claim" in html and "holds" in html
