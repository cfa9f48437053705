"""`sepipe predictor run EXP.yaml`: the tiny speech-quality predictor (sepipe.quality_predictor), a second task
beside enhancement with its own YAML, stages and table."""

from __future__ import annotations

import argparse

from sepipe.cli.common import parse_overrides


def add_parsers(sub, common: argparse.ArgumentParser) -> None:
    predictor = sub.add_parser("predictor", help="the tiny speech-quality predictor (labels, train, convert, "
                                                 "compile, evaluate, table)")
    actions = predictor.add_subparsers(dest="predictor_command", required=True, metavar="ACTION")
    run = actions.add_parser("run", parents=[common],
                             help="every stage of a quality-predictor experiment (current ones are skipped)")
    run.add_argument("--until", default=None, metavar="STAGE",
                     help="run only this stage and those it needs (e.g. labels, train:binary)")
    run.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from sepipe.errors import ConfigError
    from sepipe.quality_predictor.config import load_predictor
    from sepipe.quality_predictor.stages import build_graph, run_predictor

    cfg = load_predictor(args.experiment, parse_overrides(args.overrides))
    graph = build_graph(cfg)
    if args.until is not None and args.until not in graph:
        raise ConfigError("--until", "until", args.until, f"one of the stages {graph.order}")
    done = run_predictor(cfg, args.until, progress=not args.quiet)
    for stage in done:
        print(stage.describe())
    table = cfg.run_dir / "quality_predictor.md"
    if args.until is None and table.is_file():
        print(table.read_text())
    return 0
