"""The command line: ``python -m medvid_core run|batch|collect|findings|tidy|params|data ...``.

Exit codes: 0 ok, 1 a notebook failed, 2 bad parameters or usage (one line on stderr, nothing executed).
"""
from __future__ import annotations

import argparse
import logging
import sys

from .params import OUTPUT_DIR, ParamError, _show, parse_inline_yaml, parse_override, study_spec
from .runner import StudyFailed, prepare, run


class _CellOutput(logging.StreamHandler):
    """Print papermill's log (streamed cell output) as-is, without doubled newlines."""

    def format(self, record: logging.LogRecord) -> str:
        return record.getMessage().rstrip("\n")


def _stream_cell_output() -> None:
    """papermill's ``log_output`` goes to the 'papermill' logger; show it on stderr."""
    pm_log = logging.getLogger("papermill")
    if not any(isinstance(h, _CellOutput) for h in pm_log.handlers):
        pm_log.addHandler(_CellOutput(sys.stderr))
        pm_log.setLevel(logging.INFO)
        pm_log.propagate = False


def _print_params(study: str, notebook_dir: str) -> None:
    rows = [("name", "default", "type", "help")]
    for p in study_spec(study, notebook_dir=notebook_dir).values():
        help_text = "(set by the runner)" if p.name == OUTPUT_DIR else p.help
        rows.append((p.name, repr(p.default), p.type_name, help_text))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r[:3], widths)) + "  " + r[3])


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m medvid_core", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    def dirs(p: argparse.ArgumentParser, *, output: bool = True) -> None:
        if output:
            p.add_argument("--output-root", default="outputs", help="default: %(default)s")
        p.add_argument("--notebook-dir", default="notebooks", help="default: %(default)s")

    p = sub.add_parser("run", help="execute one study notebook")
    p.add_argument("study", help="notebook name without .ipynb")
    p.add_argument("--params", metavar="PATH.yaml", help="params file; its stem names the output folder")
    p.add_argument("-p", dest="overrides", metavar="key=value", action="append", default=[],
                   help="override one parameter (value read as YAML); repeatable")
    p.add_argument("-y", dest="inline_yaml", metavar="YAML", action="append", default=[],
                   help="override parameters with a YAML mapping, e.g. -y 'data_roots: {ppmi: /data/PPMI}'; repeatable")
    p.add_argument("--name", help="output folder name (default: the params file's stem or 'default', "
                                  "plus the overrides)")
    dirs(p)

    p = sub.add_parser("batch", help="run a grid of runs on Dask (default: every study's default)")
    p.add_argument("targets", nargs="*", metavar="GRID.yaml|STUDY",
                   help="a grid file (YAML list of runs: study, params, overrides, name) and/or study names "
                        "(their default run); none: every notebook's default")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="an existing Dask scheduler, e.g. tcp://host:8786 (default: a LocalCluster here)")
    p.add_argument("--workers", type=int, metavar="N",
                   help="LocalCluster workers = runs at once (default: min(runs, cores)); "
                        "torch threads per run = cores // N")
    p.add_argument("--force", action="store_true", help="rerun complete runs too")
    p.add_argument("--summary", metavar="PATH.csv", help="default: OUTPUT_ROOT/batch-summary.csv")
    p.add_argument("--params-dir", metavar="DIR",
                   help="also run every DIR/STUDY/*.yaml of the studies given (or all)")
    dirs(p)

    p = sub.add_parser("collect", help="gather a study's metrics.json into one table and a plot")
    p.add_argument("study")
    p.add_argument("--out", metavar="DIR", help="default: OUTPUT_ROOT/STUDY")
    p.add_argument("--output-root", default="outputs", help="default: %(default)s")

    p = sub.add_parser("findings", help="every run's findings (metrics.json) as one table: claim | paper | mean | "
                                        "min to max | holds in k of n")
    p.add_argument("paths", nargs="*", default=["outputs"], metavar="DIR",
                   help="run folders or folders holding them (default: outputs)")
    p.add_argument("--csv", metavar="PATH.csv", help="also write the table here")

    p = sub.add_parser("tidy", help="keep one final line per progress bar in executed notebooks (in place)")
    p.add_argument("notebooks", nargs="+", metavar="NOTEBOOK.ipynb")

    p = sub.add_parser("params", help="show a study's parameters")
    p.add_argument("study")
    dirs(p, output=False)

    p = sub.add_parser("data", help="real datasets: `import oasis1|oasis2 PATH` writes a manifest.csv; "
                                    "`check STUDY PATH` checks a download before a long run (exit 0: it can run)")
    p.add_argument("action", choices=["import", "check"])
    p.add_argument("dataset", metavar="DATASET|STUDY",
                   help="import: oasis1 or oasis2; check: ich, mura_zoom, viptt_net (CT folder or UCF50) or video4mri")
    p.add_argument("path", help="the download's folder (never written to by check)")
    p.add_argument("--out", metavar="DIR", help="import: where manifest.csv goes (default: PATH)")
    p.add_argument("--converted", choices=["AD", "NC", "exclude"], default="AD",
                   help="OASIS-2's Converted subjects (default: %(default)s, every session)")
    p.add_argument("-p", dest="overrides", metavar="key=value", action="append", default=[],
                   help="check: a study parameter for the estimates (e.g. -p load_size=256); repeatable")
    p.add_argument("--n-jobs", type=int, default=1, metavar="N", help="check: processes reading files (default: 1)")
    dirs(p, output=False)
    return parser


def _data_check(args: argparse.Namespace) -> int:
    from .datacheck import STUDY_LAYOUTS, check

    if args.dataset not in STUDY_LAYOUTS:
        raise ParamError(f"data check: study must be one of {', '.join(STUDY_LAYOUTS)}, not {args.dataset!r}")
    params = {name: p.default for name, p in study_spec(args.dataset, notebook_dir=args.notebook_dir).items()}
    params.update(parse_override(o) for o in args.overrides)
    params["n_jobs"] = args.n_jobs
    result = check(args.dataset, args.path, **params)
    print(result.report(), flush=True)
    return 0 if result.ok else 1


def _data_import(args: argparse.Namespace) -> int:
    from .io.oasis import IMPORTERS, OasisError

    kw = {"converted": args.converted} if args.dataset == "oasis2" else {}
    try:
        res = IMPORTERS[args.dataset](args.path, out=args.out, **kw)
    except OasisError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    m = res.manifest
    counts = ", ".join(f"{n} {label}" for label, n in m["label"].value_counts().sort_index().items())
    print(f"{args.dataset}: {len(m)} scans of {m['subject'].nunique()} subjects ({counts or 'none'}) -> "
          f"{res.manifest_path}", flush=True)
    if len(res.skipped):
        kinds = res.skipped["reason"].str.replace(r"^.*?: ", "", regex=True).str.split(" under ").str[0]
        print(f"{len(res.skipped)} row(s) left out, each named in {res.manifest_path.parent / 'import_skipped.csv'}: "
              + "; ".join(f"{n} x {k}" for k, n in kinds.value_counts().items()), flush=True)
    return 0 if len(m) else 2


def _batch(args: argparse.Namespace) -> int:
    """Validate every run of the grid(s) first (ParamError: nothing starts), then run them on Dask."""
    from pathlib import Path

    from .batch import batch, default_grid, load_grid

    grids = [t for t in args.targets if t.endswith((".yaml", ".yml"))]
    studies = [t for t in args.targets if t not in grids]
    specs = [s for g in grids for s in load_grid(g, notebook_dir=args.notebook_dir)]
    if studies or not grids:
        specs += default_grid(studies, notebook_dir=args.notebook_dir)
    if args.params_dir is not None:
        for study in sorted({s.study for s in specs}):
            specs += [prepare(study, params_file=f, notebook_dir=args.notebook_dir)
                      for f in sorted((Path(args.params_dir) / study).glob("*.y*ml"))]
    labels = [f"{s.study}/{s.name}" for s in specs]
    duplicates = sorted({label for label in labels if labels.count(label) > 1})
    if duplicates:
        raise ParamError(f"output folder {duplicates[0]} appears twice in this batch; give one a 'name'")
    if args.workers is not None and args.workers < 1:
        raise ParamError("--workers must be at least 1")
    return batch(specs, output_root=args.output_root, notebook_dir=args.notebook_dir,
                 scheduler=args.scheduler, workers=args.workers, force=args.force, summary=args.summary)


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; returns 0 ok, 1 notebook failed, 2 bad parameters or usage."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "params":
            _print_params(args.study, args.notebook_dir)
            return 0
        if args.command == "batch":
            return _batch(args)
        if args.command == "data" and args.action == "check":
            return _data_check(args)
        if args.command == "data":
            if args.dataset not in ("oasis1", "oasis2"):
                raise ParamError(f"data import: dataset must be oasis1 or oasis2, not {args.dataset!r}")
            return _data_import(args)
        if args.command == "findings":
            from .findings import read_runs, summarize, to_markdown

            table = summarize(read_runs(args.paths))
            if args.csv:
                table.to_csv(args.csv, index=False)
            print(to_markdown(table) if len(table) else "no complete run with findings under "
                  + ", ".join(args.paths), flush=True)
            return 0
        if args.command == "tidy":
            from .runner import tidy_notebook

            for path in args.notebooks:
                print(f"{path}: {tidy_notebook(path)} output(s) tidied", flush=True)
            return 0
        if args.command == "collect":
            from .collect import collect

            table, plot = collect(args.study, output_root=args.output_root, out_dir=args.out)
            print(f"{args.study}: {_show(table)} and {_show(plot)}", flush=True)
            return 0
        overrides = {}
        for text in args.inline_yaml:
            overrides.update(parse_inline_yaml(text))
        overrides.update(parse_override(o) for o in args.overrides)
        _stream_cell_output()
        out_dir = run(args.study, params_file=args.params, overrides=overrides, name=args.name,
                      output_root=args.output_root, notebook_dir=args.notebook_dir)
        print(f"{args.study}: results in {_show(out_dir)}", flush=True)
        return 0
    except ParamError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except StudyFailed as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
