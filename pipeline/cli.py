"""`sepipe`: the command line. Each subcommand is a thin caller of a stage function.

Errors a user can cause (PipelineError) become one line on stderr and exit code 2;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")   # before anything imports TensorFlow
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import yaml  # noqa: E402

from pipeline.config import load_experiment  # noqa: E402
from pipeline.errors import ConfigError, PipelineError  # noqa: E402

log = logging.getLogger("sepipe")


def _parse_overrides(pairs: list[str]) -> dict:
    overrides = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError("--set", pair, pair, "KEY=VALUE with a dotted key, e.g. train.epochs=3")
        overrides[key] = yaml.safe_load(value)
    return overrides


def _experiment_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("experiment", help="experiment YAML, e.g. experiments/demo.yaml")
    common.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. --set train.epochs=3 (repeatable)")
    return common


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sepipe", description="Speech-enhancement models from Keras to verified int8 TFLite for Arm Ethos-U.")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars, warnings only")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    common = _experiment_parser()

    data = sub.add_parser("data", help="dataset commands")
    data_sub = data.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    data_sub.add_parser("build", parents=[common], help="build (or reuse) the experiment's dataset")

    sub.add_parser("train", parents=[common], help="train the float model (resumes from checkpoints)")
    sub.add_parser("convert", parents=[common], help="convert the streaming model to full-integer int8 .tflite")
    sub.add_parser("evaluate", parents=[common], help="stream the test set through float/TFLite/TFLM and score it")
    sub.add_parser("run", parents=[common], help="every stage of the experiment, skipping those up to date")
    return parser


def _print_table(summary: dict) -> None:
    from pipeline.report import markdown_table

    print(markdown_table(summary["rows"]))
    for note in summary.get("notes", []):
        print(note)


def dispatch(args: argparse.Namespace) -> None:
    from pipeline import experiment as exp

    cfg = load_experiment(args.experiment, _parse_overrides(args.overrides))
    progress = not args.quiet
    if args.command == "data":
        path = exp.stage_data(cfg, build=True, progress=progress).root
        print(f"dataset ready: {path}")
    elif args.command == "train":
        summary = exp.stage_train(cfg, exp.stage_data(cfg, build=False), progress=progress)
        print(f"trained: best epoch {summary['best_epoch']}, validation SI-SDR {summary['best_val_sisdr_db']:.2f} dB")
    elif args.command == "convert":
        summary = exp.stage_convert(cfg, exp.stage_data(cfg, build=False), progress=progress)
        print(f"converted: {exp.RunPaths(cfg).tflite()} ({summary['tflite_bytes']} bytes)")
    elif args.command == "evaluate":
        _print_table(exp.stage_evaluate(cfg, exp.stage_data(cfg, build=False), progress=progress))
    elif args.command == "run":
        _print_table(exp.run_experiment(cfg, progress=progress))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    level = logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    for noisy in ("absl", "tensorflow", "h5py", "matplotlib"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        dispatch(args)
    except PipelineError as exc:
        print(f"sepipe: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("sepipe: interrupted; finished artifacts are kept and a rerun resumes", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
