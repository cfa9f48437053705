"""Experiment commands: config check, data build, train, convert, evaluate, report, run."""

from __future__ import annotations

import argparse

from sepipe.cli.common import bounded_int, parse_overrides, print_conditions, print_table
from sepipe.config import load_experiment


def add_parsers(sub, common: argparse.ArgumentParser) -> None:
    config = sub.add_parser("config", help="experiment YAML commands")
    config_sub = config.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    config_sub.add_parser("check", parents=[common], help="load and validate the experiment YAML (and --set "
                          "overrides) without running anything; exit 2 with one line naming what is wrong") \
        .set_defaults(handler=_config_check)
    data = sub.add_parser("data", help="dataset commands")
    data_sub = data.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    data_sub.add_parser("build", parents=[common], help="build (or reuse) the experiment's dataset") \
        .set_defaults(handler=_data)
    sub.add_parser("train", parents=[common], help="train the float model (resumes from checkpoints)") \
        .set_defaults(handler=_train)
    sub.add_parser("convert", parents=[common], help="convert the streaming model to full-integer int8 .tflite") \
        .set_defaults(handler=_convert)
    sub.add_parser("evaluate", parents=[common], help="stream the test set through float/TFLite/TFLM and score it") \
        .set_defaults(handler=_evaluate)
    sub.add_parser("report", parents=[common], help="join quality and Vela figures into CSV, Markdown and HTML") \
        .set_defaults(handler=_report)
    run = sub.add_parser("run", parents=[common], help="every stage of the experiment, skipping those up to date")
    run.add_argument("--executor", default="local", metavar="NAME",
                     help="how the variants' chains run: " + ", ".join(_executor_names()) + " (default: local)")
    run.add_argument("--address", default=None, metavar="ADDR",
                     help="join this Ray cluster (host:port or 'auto'); default: start a local Ray instance")
    run.add_argument("--cpus-per-task", type=bounded_int(1, 1024), default=None, metavar="N",
                     help="CPU cores each variant task declares (ray; default 1) and sizes its threads to")
    run.set_defaults(handler=_run)


def _executor_names() -> list[str]:
    from sepipe.engine.executors import EXECUTORS

    return EXECUTORS.names()


def _config(args: argparse.Namespace):
    return load_experiment(args.experiment, parse_overrides(args.overrides))


def _config_check(args: argparse.Namespace) -> int:
    cfg = _config(args)
    print(f"{args.experiment}: valid; experiment '{cfg.name}' (run folder {cfg.run_dir}), {len(cfg.variants)} "
          f"variant(s): {', '.join(v.name for v in cfg.variants)}")
    return 0


def _data(args: argparse.Namespace) -> int:
    from sepipe import experiment as exp

    path = exp.stage_data(_config(args), build=True, progress=not args.quiet).root
    print(f"dataset ready: {path}")
    return 0


def _train(args: argparse.Namespace) -> int:
    from sepipe import experiment as exp

    cfg = _config(args)
    summary = exp.stage_train(cfg, exp.stage_data(cfg, build=False), progress=not args.quiet)
    print(f"trained: best epoch {summary['best_epoch']}, validation SI-SDR {summary['best_val_sisdr_db']:.2f} dB")
    return 0


def _convert(args: argparse.Namespace) -> int:
    from sepipe import experiment as exp

    cfg = _config(args)
    dataset = exp.stage_data(cfg, build=False)
    for variant in cfg.variants:
        summary = exp.stage_convert(cfg, dataset, variant, progress=not args.quiet)
        print(f"converted: {exp.RunPaths(cfg).tflite(variant.name)} ({summary['tflite_bytes']} bytes)")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from sepipe import experiment as exp

    cfg = _config(args)
    summary = exp.evaluate_all(cfg, exp.stage_data(cfg, build=False), progress=not args.quiet)
    print_table(summary)
    print_conditions(summary)
    return 0


def _report(args: argparse.Namespace) -> int:
    from sepipe import experiment as exp
    from sepipe.report import DEPLOYMENT_COLUMNS

    print_table(exp.stage_report(_config(args)), DEPLOYMENT_COLUMNS)
    return 0


def _run(args: argparse.Namespace) -> int:
    from sepipe import experiment as exp
    from sepipe.engine.executors import make_executor
    from sepipe.report import DEPLOYMENT_COLUMNS

    executor = make_executor(args.executor, address=args.address, cpus_per_task=args.cpus_per_task)
    summary = exp.run_experiment(_config(args), progress=not args.quiet, executor=executor)
    print_table(summary["evaluate"])
    print_table(summary["report"], DEPLOYMENT_COLUMNS)
    print_conditions(summary["evaluate"])
    print("report: " + ", ".join(summary["report"]["outputs"]))
    return 0
