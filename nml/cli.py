"""The ``nml`` command: ``nml run``, ``nml assets list|fetch|verify``, ``nml bench nmtune``."""

from __future__ import annotations

import argparse
import logging
import sys

from nml.assets.base import AssetError
from nml.params import ParamsError


def _add_run(sub: argparse._SubParsersAction) -> None:
    run = sub.add_parser("run", help="execute the notebooks in order with papermill")
    source = run.add_mutually_exclusive_group()
    source.add_argument("--profile", help="smoke | cpu | paper (default: cpu)")
    source.add_argument("--params", metavar="FILE", help="a params YAML of your own")
    run.add_argument("--only", metavar="NN,NN", help="run only these notebooks, e.g. 01,02")
    run.add_argument(
        "-p", dest="overrides", action="append", default=[], metavar="section.key=value",
        help="override one params value (YAML syntax); repeatable",
    )
    run.add_argument("--output-dir", metavar="DIR", help="put executed notebooks, figures and tables here")
    run.add_argument("--dry-run", action="store_true", help="validate and list what would run; run nothing")
    run.add_argument("--notebooks-dir", metavar="DIR", help=argparse.SUPPRESS)


def _cmd_run(args: argparse.Namespace) -> int:
    from nml.runner import describe_plan, execute_plan, plan_run

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
    for path in execute_plan(plan):
        print(f"executed {path}")
    print(f"figures and tables in {plan.figures_dir}")
    return 0


def _add_assets(sub: argparse._SubParsersAction) -> None:
    assets = sub.add_parser("assets", help="list, fetch or verify the offline datasets and models")
    verbs = assets.add_subparsers(dest="verb", required=True)
    verbs.add_parser("list", help="every asset with its source and status")
    fetch = verbs.add_parser("fetch", help="fetch assets (default: those the cpu profile needs)")
    fetch.add_argument("names", nargs="*")
    fetch.add_argument("--all", action="store_true", help="every offline asset")
    fetch.add_argument("--force", action="store_true", help="fetch again even if verified")
    verify = verbs.add_parser("verify", help="check sha256 of fetched assets")
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
    names = args.names or [a.name for a in assets.list_assets()]
    bad = 0
    for name in names:
        result = assets.verify(name)
        print(f"{name}: {result}")
        bad += not result.ok
    return 1 if bad and args.names else 0


def _add_bench(sub: argparse._SubParsersAction) -> None:
    from nml.bench import BENCH_ENCODERS, TURN_BENCH_BACKBONES

    bench = sub.add_parser("bench", help="measure speed ratios on this machine")
    what = bench.add_subparsers(dest="what", required=True)
    nm = what.add_parser("nmtune", help="NMTune on cached features vs one extraction pass vs the encoder every batch")
    nm.add_argument("--encoder", action="append", choices=BENCH_ENCODERS, metavar="NAME",
                    help=f"repeatable; one of {list(BENCH_ENCODERS)} (default: nml_resnet4_half and efficientnet-lite0)")
    nm.add_argument("--n", type=int, default=1000, help="training images (MNIST-5k digits), default 1000")
    nm.add_argument("--online-epochs", type=int, default=10, help="epochs of the equal-epoch comparison, default 10")
    nm.add_argument("--image-size", type=int, default=128, help="input size of efficientnet-lite0, default 128")
    nm.add_argument("--preset", choices=("official", "paper"), default="official")
    nm.add_argument("--csv", metavar="FILE", help="also write the measured table here")
    tu = what.add_parser("turn", help="TURN vs DivideMix-LP and UNICON-LP at equal epochs, on the same data")
    tu.add_argument("--backbone", action="append", choices=TURN_BENCH_BACKBONES, metavar="NAME",
                    help=f"repeatable; one of {list(TURN_BENCH_BACKBONES)} (the default)")
    tu.add_argument("--n", type=int, default=1000, help="training images (MNIST-5k digits), default 1000")
    tu.add_argument("--epochs", type=int, default=5, help="FFT epochs of TURN = epochs of the LP baselines, default 5")
    tu.add_argument("--image-size", type=int, default=48, help="input size of efficientnet-lite0, default 48")
    tu.add_argument("--csv", metavar="FILE", help="also write the measured table here")


def _cmd_bench(args: argparse.Namespace) -> int:
    if args.what == "turn":
        return _cmd_bench_turn(args)
    from nml.bench import bench_nmtune, format_report

    for name, value in (("--n", args.n), ("--online-epochs", args.online_epochs), ("--image-size", args.image_size)):
        if value <= 0:
            raise ParamsError(f"{name} must be a positive integer, got {value}")
    encoders = args.encoder or ["nml_resnet4_half", "efficientnet-lite0"]
    table = bench_nmtune(encoders, n=args.n, online_epochs=args.online_epochs, preset=args.preset,
                         image_size=args.image_size)
    print(format_report(table))
    if args.csv:
        table.to_csv(args.csv, index=False)
        print(f"wrote {args.csv}")
    return 0


def _cmd_bench_turn(args: argparse.Namespace) -> int:
    from nml.bench import TURN_BENCH_BACKBONES, bench_turn, format_turn_report

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
    if args.csv:
        table.to_csv(args.csv, index=False)
        print(f"wrote {args.csv}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nml", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_run(sub)
    _add_assets(sub)
    _add_bench(sub)
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
        return _cmd_assets(args)
    except (ParamsError, KeyError, FileNotFoundError, AssetError) as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
        print(f"nml: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
