"""The `sepipe` entry point: parser assembly, logging, and the one place errors become exit codes.

Errors a user can cause (PipelineError, a command line that does not parse included) become one
line on stderr (newlines folded, length bounded) and exit code 2, and so does
a command that needs an optional dependency the install lacks (sepipe.extras: checked before the
command runs, and a ModuleNotFoundError of an optional module while it runs; the line names the
extra to install); anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")   # before anything imports TensorFlow
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from sepipe.cli import bundle, deploy, enhance, experiment, predictor, search  # noqa: E402
from sepipe.cli.common import OneLineParser, experiment_parser  # noqa: E402
from sepipe.errors import PipelineError, one_line  # noqa: E402
from sepipe.extras import check_command, missing_extra  # noqa: E402

# Each group: add_parsers(subparsers, common_experiment_parser); handlers via set_defaults(handler=...).
COMMAND_GROUPS = (experiment, deploy, bundle, enhance, search, predictor)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="sepipe", description="Speech-enhancement models from Keras to verified int8 TFLite for Arm Ethos-U.")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars, warnings only")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    common = experiment_parser()
    for group in COMMAND_GROUPS:
        group.add_parsers(sub, common)
    return parser


def command_name(args: argparse.Namespace) -> str:
    """'sepipe train', 'sepipe budget check': the command as the user typed it."""
    action = getattr(args, f"{args.command.replace('-', '_')}_command", None)
    return " ".join(["sepipe", args.command] + ([action] if action else []))


def _dispatch(args: argparse.Namespace) -> int:
    command = command_name(args)
    check_command(command, args)    # before any work: a missing extra should not cost a training run
    try:
        return args.handler(args)
    except ModuleNotFoundError as exc:
        error = missing_extra(exc, command)
        if error is None:   # not an optional dependency: a bug, keep the traceback
            raise
        raise error from exc


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except PipelineError as exc:
        return _report_error(exc)
    level = logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    for noisy in ("absl", "tensorflow", "h5py", "matplotlib"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        return _dispatch(args)
    except PipelineError as exc:
        return _report_error(exc)
    except KeyboardInterrupt:
        print("sepipe: interrupted; finished artifacts are kept and a rerun resumes", file=sys.stderr)
        return 130


def _report_error(exc: PipelineError) -> int:
    print(f"sepipe: error: {one_line(str(exc))}", file=sys.stderr)
    return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
