"""The ``nml`` command: ``nml run``, ``nml assets``, ``nml bench``, ``nml select``, ``nml report``,
``nml diff``, ``nml list``, and ``nml pretrain`` / ``nml finetune`` (one training cell; what torchrun runs)."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from nml._infra.schema import ParamsError
from nml.assets.base import AssetError


def _add_params_source(parser: argparse.ArgumentParser) -> None:
    """``--profile`` or ``--params``, one of them (``nml run``, ``nml select``)."""
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--profile", help="smoke | cpu | paper (default: cpu)")
    source.add_argument("--params", metavar="FILE", help="a params YAML of your own")


def _add_run(sub: argparse._SubParsersAction) -> None:
    run = sub.add_parser("run", help="execute the notebooks in order with papermill")
    _add_params_source(run)
    run.add_argument("--only", metavar="NN,NN", help="run only these notebooks, e.g. 01,02")
    run.add_argument(
        "-p", dest="overrides", action="append", default=[], metavar="section.key=value",
        help="override one params value (YAML syntax); repeatable",
    )
    run.add_argument("--output-dir", metavar="DIR", help="put executed notebooks, figures and tables here")
    run.add_argument("--dry-run", action="store_true", help="validate and list what would run; run nothing")
    run.add_argument("--notebooks-dir", metavar="DIR", help=argparse.SUPPRESS)


def _add_train(sub: argparse._SubParsersAction) -> None:
    for name, what, example in (
        ("pretrain", "train one checkpoint of notebook 01's grid (what torchrun runs on every process)",
         "supervised:0.1:0"),
        ("finetune", "fit one image-level job of notebook 04 (FFT, TURN; what torchrun runs on every process)",
         "backbone=resnet50.a1_in1k,noise=uniform:0.6,method=turn,seed=0"),
    ):
        cmd = sub.add_parser(name, help=what)
        _add_params_source(cmd)
        cmd.add_argument("--cell", required=True, help=f"the grid cell, e.g. {example}")
        cmd.add_argument("-p", dest="overrides", action="append", default=[], metavar="section.key=value",
                         help="override one params value (YAML syntax); repeatable")


def _cmd_train(args: argparse.Namespace) -> int:
    """``nml pretrain`` / ``nml finetune``: one grid cell, in this process (any of torchrun's)."""
    from nml.config import load_params

    params = load_params(args.profile, args.params, args.overrides)
    if args.command == "pretrain":
        from nml.chapters.ch01_pretraining.run import train_cell

        checkpoint = train_cell(params, args.cell)
        print(f"checkpoint {checkpoint.path}: {checkpoint.final}")
    else:
        from nml.chapters.ch04_turn.run import finetune_cell

        result = finetune_cell(params, args.cell)
        print(f"finetune {args.cell}: test accuracy at the best validation epoch {result.get('best')}, last {result.get('last')}")
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from nml.runner import NotebookFailed, describe_plan, plan_run, run_plan

    plan = plan_run(
        profile=args.profile,
        params_file=args.params,
        overrides=args.overrides,
        only=args.only,
        output_dir=args.output_dir,
        notebooks_dir=args.notebooks_dir,
        require_data=not args.dry_run,
    )
    if args.dry_run:
        print(describe_plan(plan))
        return 0
    try:
        executed, report = run_plan(plan)
    except NotebookFailed as err:
        print(f"nml: error: {err}", file=sys.stderr)
        print(f"nml: run status in {plan.figures_dir / 'run_status.json'}; "
              + (f"report in {err.report}" if err.report else "the report could not be written (see the log)"),
              file=sys.stderr)
        return 1
    for path in executed:
        print(f"executed {path}")
    print(f"figures and tables in {plan.figures_dir}")
    if report is None:
        print("nml: error: the notebooks ran but the report could not be written (see the log)", file=sys.stderr)
        return 1
    print(f"report: {report}")
    return 0


def _add_assets(sub: argparse._SubParsersAction) -> None:
    assets = sub.add_parser("assets", help="list, fetch or verify the offline datasets and models")
    verbs = assets.add_subparsers(dest="verb", required=True)
    verbs.add_parser("list", help="every asset with its source and status")
    fetch = verbs.add_parser("fetch", help="fetch assets (default: those the cpu profile needs)")
    fetch.add_argument("names", nargs="*")
    fetch.add_argument("--all", action="store_true", help="every offline asset")
    fetch.add_argument("--force", action="store_true", help="fetch again even if verified")
    verify = verbs.add_parser("verify", help="check sha256 of fetched assets; exit 1 if any is missing or corrupt")
    verify.add_argument("names", nargs="*")


def _cmd_assets(args: argparse.Namespace) -> int:
    from nml import assets

    if args.verb == "list":
        for line in assets.describe_assets():
            print(line)
        return 0
    if args.verb == "fetch":
        names = args.names or assets.default_asset_names(all_assets=args.all)
        for name in names:
            path = assets.fetch(name, force=args.force)
            print(f"{name}: {path}")
        return 0
    # verify: one line per asset; exit 1 if any named (default: every) asset is missing or corrupt
    results = assets.verify_assets(args.names or None)
    for result in results:
        print(f"{result.name}: {result}")
    bad = [r for r in results if not r.ok]
    if bad:
        print(f"nml: error: {len(bad)} of {len(results)} assets not usable: "
              + ", ".join(f"{r.name} is {r.status}" for r in bad)
              + f"; run `nml assets fetch {' '.join(r.name for r in bad)}`", file=sys.stderr)
        return 1
    return 0


def _add_bench(sub: argparse._SubParsersAction) -> None:
    from nml.chapters.ch03_nmtune.bench import BENCH_ENCODERS
    from nml.chapters.ch04_turn.bench import TURN_BENCH_BACKBONES

    bench = sub.add_parser("bench", help="measure speed ratios on this machine")
    what = bench.add_subparsers(dest="what", required=True)
    nm = what.add_parser("nmtune", help="NMTune on cached features vs one extraction pass vs the encoder every batch")
    nm.add_argument("--shape", choices=("cpu", "paper"), default="cpu",
                    help="cpu (default): small encoders, both ratios; paper: ResNet-50 at 224 px, the official "
                         "head at D=2048, 30 epochs, cached path vs the authors' loop (projected from "
                         "--measured-epochs) and the arithmetic limit")
    nm.add_argument("--encoder", action="append", choices=BENCH_ENCODERS, metavar="NAME",
                    help=f"--shape cpu only; repeatable; one of {list(BENCH_ENCODERS)} "
                         "(default: nml_resnet4_half and efficientnet-lite0)")
    nm.add_argument("--n", type=int, default=None,
                    help="training images (MNIST-5k digits), default 1000 (--shape cpu) or 256 (--shape paper)")
    nm.add_argument("--online-epochs", type=int, default=None,
                    help="--shape cpu only: epochs of the equal-epoch comparison, default 10")
    nm.add_argument("--image-size", type=int, default=None,
                    help="input size of efficientnet-lite0 (--shape cpu, default 128) or ResNet-50 (--shape paper, default 224)")
    nm.add_argument("--preset", choices=("official", "paper"), default=None, help="--shape cpu only (default: official)")
    nm.add_argument("--measured-epochs", type=int, default=None,
                    help="--shape paper only: epochs of the authors' loop actually run (of 30), default 2")
    nm.add_argument("--csv", metavar="FILE", help="also write the measured table here")
    fi = what.add_parser("fits", help="the tuners' training rate vs the machine's GEMM rate; heads alone vs trained as one")
    fi.add_argument("--shape", action="append", choices=("cpu", "paper"), metavar="SHAPE",
                    help="repeatable; cpu (256-d, 2,975 rows) and/or paper (2048-d, 1,000 rows); default both")
    fi.add_argument("--heads", type=int, default=8, help="fits trained as one model, default 8")
    fi.add_argument("--epochs", type=int, default=3, help="epochs of MLP / NMTune (the rate is per epoch), default 3")
    fi.add_argument("--csv", metavar="FILE", help="also write the measured table here")
    ar = what.add_parser("arithmetic", help="the floor under chapter 03's cold time: its fits' FLOPs at this machine's GEMM rate")
    ar.add_argument("--profile", default="cpu", help="profile whose chapter 03 tables to count (default: cpu)")
    ar.add_argument("--figures", metavar="DIR", help="folder of the tables (default: figures/<profile>/)")
    ar.add_argument("--csv", metavar="FILE", help="also write the table here")
    dr = what.add_parser("drift", help="how far scores and verdicts move when features change at float32 rounding level")
    dr.add_argument("--profile", default="cpu", help="profile whose cached chapters to perturb (default: cpu)")
    dr.add_argument("--chapters", default="02", help="02 and/or 03, comma-separated (default: 02)")
    dr.add_argument("--eps", type=float, default=1e-6, help="relative perturbation of every feature (default 1e-6)")
    dr.add_argument("--csv", metavar="FILE", help="also write the verdict comparison here")
    tu = what.add_parser("turn", help="TURN vs DivideMix-LP and UNICON-LP at equal epochs, on the same data")
    tu.add_argument("--backbone", action="append", choices=TURN_BENCH_BACKBONES, metavar="NAME",
                    help=f"repeatable; one of {list(TURN_BENCH_BACKBONES)} (the default)")
    tu.add_argument("--n", type=int, default=1000, help="training images (MNIST-5k digits), default 1000")
    tu.add_argument("--epochs", type=int, default=5, help="FFT epochs of TURN = epochs of the LP baselines, default 5")
    tu.add_argument("--image-size", type=int, default=48, help="input size of efficientnet-lite0, default 48")
    tu.add_argument("--csv", metavar="FILE", help="also write the measured table here")
    th = what.add_parser("throughput", help="training and extraction images/s of every image model a profile uses, "
                                            "on this device (what `nml run --dry-run` prices the grids with)")
    th.add_argument("--profile", default="paper", help="profile whose models to measure (default: paper)")
    th.add_argument("--batch", type=int, default=None, help="images per step (default: 4 on CPU, 64 on CUDA)")
    th.add_argument("--steps", type=int, default=3, help="timed steps after 2 warm-up steps (default 3)")
    th.add_argument("--csv", metavar="FILE", help="also write the measured table here "
                                                 "(it always goes to <NML_HOME>/bench/throughput-<device>.csv)")


def _wrote_csv(table, path: str | None) -> int:
    """Write a bench's measured table to ``--csv`` when one was given; the command's exit code."""
    if path:
        from nml._infra.cache import atomic_write_text

        atomic_write_text(path, table.to_csv(index=False))
        print(f"wrote {path}")
    return 0


def _cmd_bench_fits(args: argparse.Namespace) -> int:
    from nml.estimators.frozen.bench import bench_fits, format_fits_report

    for name, value in (("--heads", args.heads), ("--epochs", args.epochs)):
        if value <= 0:
            raise ParamsError(f"{name} must be a positive integer, got {value}")
    table = bench_fits(args.shape, heads=args.heads, epochs=args.epochs)
    print(format_fits_report(table))
    return _wrote_csv(table, args.csv)


def _cmd_bench_arithmetic(args: argparse.Namespace) -> int:
    from nml._infra.paths import project_root
    from nml.chapters.ch03_nmtune.arithmetic import fit_arithmetic, format_arithmetic_report
    from nml.config import load_params

    params = load_params(args.profile)
    figures = Path(args.figures) if args.figures else project_root() / "figures" / params.profile
    if not figures.is_dir():
        raise ParamsError(f"--figures: no folder {figures}")
    table = fit_arithmetic(params, figures)
    print(format_arithmetic_report(table))
    return _wrote_csv(table, args.csv)


def _cmd_bench(args: argparse.Namespace) -> int:
    if args.what == "fits":
        return _cmd_bench_fits(args)
    if args.what == "arithmetic":
        return _cmd_bench_arithmetic(args)
    if args.what == "drift":
        return _cmd_bench_drift(args)
    if args.what == "turn":
        return _cmd_bench_turn(args)
    if args.what == "throughput":
        return _cmd_bench_throughput(args)
    if args.shape == "paper":
        return _cmd_bench_nmtune_paper(args)
    from nml.chapters.ch03_nmtune.bench import bench_nmtune, format_report

    if args.measured_epochs is not None:
        raise ParamsError("--measured-epochs applies to --shape paper only")
    n = 1000 if args.n is None else args.n
    online_epochs = 10 if args.online_epochs is None else args.online_epochs
    image_size = 128 if args.image_size is None else args.image_size
    for name, value in (("--n", n), ("--online-epochs", online_epochs), ("--image-size", image_size)):
        if value <= 0:
            raise ParamsError(f"{name} must be a positive integer, got {value}")
    encoders = args.encoder or ["nml_resnet4_half", "efficientnet-lite0"]
    table = bench_nmtune(encoders, n=n, online_epochs=online_epochs, preset=args.preset or "official",
                         image_size=image_size)
    print(format_report(table))
    return _wrote_csv(table, args.csv)


def _cmd_bench_nmtune_paper(args: argparse.Namespace) -> int:
    from nml.chapters.ch03_nmtune.bench import bench_nmtune_paper_shape, format_paper_shape_report
    from nml.estimators.frozen.nmtune import NMTUNE_PRESETS

    for name, value in (("--encoder", args.encoder), ("--online-epochs", args.online_epochs), ("--preset", args.preset)):
        if value is not None:
            raise ParamsError(f"{name} applies to --shape cpu only")
    epochs = int(NMTUNE_PRESETS["official"]["epochs"])  # the official schedule, 30
    n = 256 if args.n is None else args.n
    measured = 2 if args.measured_epochs is None else args.measured_epochs
    image_size = 224 if args.image_size is None else args.image_size
    for name, value in (("--n", n), ("--measured-epochs", measured), ("--image-size", image_size)):
        if value <= 0:
            raise ParamsError(f"{name} must be a positive integer, got {value}")
    if n < 2:
        raise ParamsError(f"--n must be at least 2 (BatchNorm in the head needs two rows per batch), got {n}")
    if measured > epochs:
        raise ParamsError(f"--measured-epochs must be at most {epochs} (the full schedule), got {measured}")
    table = bench_nmtune_paper_shape(n=n, epochs=epochs, measured_epochs=measured, image_size=image_size)
    print(format_paper_shape_report(table))
    return _wrote_csv(table, args.csv)


def _cmd_bench_turn(args: argparse.Namespace) -> int:
    from nml.chapters.ch04_turn.bench import TURN_BENCH_BACKBONES, bench_turn, format_turn_report

    for name, value in (("--n", args.n), ("--epochs", args.epochs), ("--image-size", args.image_size)):
        if value <= 0:
            raise ParamsError(f"{name} must be a positive integer, got {value}")
    if args.epochs < 2:
        raise ParamsError(f"--epochs must be at least 2 (DivideMix / UNICON: 1 warm-up + 1 semi-supervised epoch), got {args.epochs}")
    if args.n < 20:
        raise ParamsError(f"--n must be at least 20 (two per class), got {args.n}")
    table = bench_turn(args.backbone or list(TURN_BENCH_BACKBONES), n=args.n, epochs=args.epochs,
                       image_size=args.image_size)
    print(format_turn_report(table))
    return _wrote_csv(table, args.csv)


def _cmd_bench_throughput(args: argparse.Namespace) -> int:
    from nml._infra.runtime import resolve_runtime
    from nml.config import load_params
    from nml.models.throughput import (
        bench_device,
        format_throughput_report,
        measure_throughput,
        save_throughput,
    )
    from nml.runner import profile_models

    for name, value in (("--batch", args.batch), ("--steps", args.steps)):
        if value is not None and value <= 0:
            raise ParamsError(f"{name} must be a positive integer, got {value}")
    params = load_params(args.profile, overrides=["data_root=null"], require_data=False)  # no data is read
    runtime = resolve_runtime(getattr(params, "runtime", None), bench_device(params.device))
    table = measure_throughput(profile_models(params), runtime=runtime, batch=args.batch, steps=args.steps)
    print(format_throughput_report(table))
    print(f"wrote {save_throughput(table)}")
    return _wrote_csv(table, args.csv)


def _cmd_bench_drift(args: argparse.Namespace) -> int:
    from nml.config import load_params
    from nml.drift import bench_drift, format_drift_report

    chapters = [c.strip() for c in args.chapters.split(",") if c.strip()]
    bad = [c for c in chapters if c not in ("02", "03")]
    if bad:
        raise ParamsError(f"--chapters: {bad} not in ['02', '03']")
    if not 0 < args.eps < 1e-2:
        raise ParamsError(f"--eps must be in (0, 0.01), got {args.eps}")
    params = load_params(args.profile)
    reports = bench_drift(params, chapters, eps=args.eps)
    print(format_drift_report(reports, args.eps))
    if args.csv:
        import pandas as pd

        pd.concat([r.verdicts.assign(chapter=c) for c, r in reports.items()], ignore_index=True).to_csv(args.csv, index=False)
        print(f"wrote {args.csv}")
    return 0


def _add_select(sub: argparse._SubParsersAction) -> None:
    sel = sub.add_parser("select", help="run the validation sweeps behind the params' chosen values")
    _add_params_source(sel)
    sel.add_argument("--only", metavar="NAME,NAME", help="run only these sweeps (default: all; see --list)")
    sel.add_argument("-p", dest="overrides", action="append", default=[], metavar="section.key=value",
                     help="override one params value (YAML syntax); repeatable")
    sel.add_argument("--output-dir", metavar="DIR", help="where selection_<name>.csv go (default: figures/<profile>/)")
    sel.add_argument("--list", action="store_true", help="list the sweeps and exit")


def _cmd_select(args: argparse.Namespace) -> int:
    from nml._infra.paths import project_root
    from nml.config import load_params
    from nml.selection import SWEEPS, run_sweeps

    if args.list:
        for name, target in SWEEPS.items():
            print(f"{name:24s} {target}")
        return 0
    names = [n.strip() for n in args.only.split(",") if n.strip()] if args.only else None
    unknown = [n for n in names or [] if n not in SWEEPS]
    if unknown:
        raise ParamsError(f"--only: unknown sweeps {unknown}; known: {list(SWEEPS)}")
    params = load_params(profile=args.profile if not args.params else None, path=args.params, overrides=args.overrides)
    out = args.output_dir or project_root() / "figures" / params.profile
    for name, table in run_sweeps(params, names, out).items():
        chosen = table.loc[table["chosen"], "candidate"].tolist()
        print(f"{name}: {len(table)} candidates; chosen {chosen}")
    print(f"selection tables in {out}")
    return 0


def _add_report(sub: argparse._SubParsersAction) -> None:
    rep = sub.add_parser("report", help="write a run's report.html (figures, tables, claims, provenance) "
                                        "and render its executed notebooks; or, with --readme, the README's results")
    where = rep.add_mutually_exclusive_group()
    where.add_argument("--profile", help="whose figures folder to read: figures/<profile>/ (default: cpu)")
    where.add_argument("--figures-dir", metavar="DIR", help="read the figures and tables from here instead")
    rep.add_argument("--executed-dir", metavar="DIR",
                     help="the executed notebooks to render (default: runs/<profile>/, or the figures folder "
                          "when it holds them, as with `nml run --output-dir`)")
    rep.add_argument("--readme", action="store_true",
                     help="only rewrite README.md's generated blocks (results, timings) from the tables")


def _cmd_report(args: argparse.Namespace) -> int:
    from nml._infra.paths import project_root
    from nml.report.readme import update_readme

    profile = args.profile or "cpu"
    figures = Path(args.figures_dir) if args.figures_dir else project_root() / "figures" / profile
    if not figures.is_dir():
        raise FileNotFoundError(f"no figures folder {figures}: run `nml run --profile {profile}` first")
    if not args.readme:
        from nml.report.html import write_report

        if args.executed_dir:
            executed = Path(args.executed_dir)
            if not executed.is_dir():
                raise FileNotFoundError(f"no executed notebooks folder {executed}")
        elif any(figures.glob("[0-9][0-9]_*.ipynb")):
            executed = figures
        else:
            executed = project_root() / "runs" / (profile if not args.figures_dir else figures.name)
        report = write_report(figures, executed if executed.is_dir() else None)
        rendered = sorted((figures / "notebooks").glob("*.html"))
        print(f"{report}: written from {figures}; {len(rendered)} rendered notebooks in {figures / 'notebooks'}"
              + ("" if executed.is_dir() else f" (no executed notebooks in {executed})"))
        return 0
    readme = project_root() / "README.md"
    changed = update_readme(readme, figures)
    print(f"{readme}: {'updated' if changed else 'already up to date'} from {figures}")
    return 0


# What ``nml list`` shows: kind -> (module, its registry); imported only for the kind asked.
_LISTABLE: dict[str, tuple[str, str]] = {
    "models": ("nml.models.backbones", "BACKBONE_REGISTRY"),
    "encoders": ("nml.models.image_encoders", "ENCODER_REGISTRY"),
    "text-encoders": ("nml.models.text_encoders", "TEXT_ENCODER_REGISTRY"),
    "tuners": ("nml.estimators.frozen", "TUNER_REGISTRY"),
    "methods": ("nml.estimators.noisy_labels", "METHOD_REGISTRY"),
    "datasets": ("nml.data.catalog", "DATASET_REGISTRY"),
}


def _add_list(sub: argparse._SubParsersAction) -> None:
    lst = sub.add_parser("list", help="the names a params file may use: models, encoders, methods, datasets...")
    lst.add_argument("kind", choices=list(_LISTABLE),
                     help="models: pre-training backbones; methods: noisy-label methods; tuners: frozen-feature tuners")
    lst.add_argument("pattern", nargs="?", help="only names matching this shell pattern, e.g. 'cifar*'")


def _cmd_list(args: argparse.Namespace) -> int:
    import importlib

    module, registry = _LISTABLE[args.kind]
    rows = getattr(importlib.import_module(module), registry).describe(args.pattern)
    width = max((len(name) for name, _ in rows), default=0)
    for name, description in rows:
        print(f"{name:<{width}}  {description}")
    return 0


def _add_diff(sub: argparse._SubParsersAction) -> None:
    diff = sub.add_parser("diff", help="compare two runs claim by claim: verdicts, effects and their seed spread")
    diff.add_argument("a", metavar="A", help="a figures folder, a profile (figures/<profile>/) or a git commit")
    diff.add_argument("b", metavar="B", help="the same kinds as A")
    diff.add_argument("--profile", default="cpu",
                      help="which figures/<profile>/ to read at a git commit (default: cpu)")
    diff.add_argument("--csv", metavar="FILE", help="also write the claims comparison here")


def _cmd_diff(args: argparse.Namespace) -> int:
    from nml.report.diff import diff_runs

    text, claims = diff_runs(args.a, args.b, profile=args.profile)
    print(text)
    if args.csv:
        claims.to_csv(args.csv, index=False)
        print(f"wrote {args.csv}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nml", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_run(sub)
    _add_assets(sub)
    _add_bench(sub)
    _add_train(sub)
    _add_select(sub)
    _add_report(sub)
    _add_diff(sub)
    _add_list(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    try:
        if args.command == "run":
            return _cmd_run(args)
        if args.command == "bench":
            return _cmd_bench(args)
        if args.command in ("pretrain", "finetune"):
            return _cmd_train(args)
        if args.command == "select":
            return _cmd_select(args)
        if args.command == "report":
            return _cmd_report(args)
        if args.command == "diff":
            return _cmd_diff(args)
        if args.command == "list":
            return _cmd_list(args)
        return _cmd_assets(args)
    except (ParamsError, KeyError, FileNotFoundError, AssetError) as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
        print(f"nml: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
