"""Helpers shared by the command groups: `--set` overrides, the experiment argument, option types,
tables."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from sepipe.config_loading import parse_override_value
from sepipe.errors import ConfigError, UsageError


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose errors are a UsageError (one line, exit 2, printed by `sepipe.cli.main`)
    instead of argparse's usage block; subparsers inherit the class."""

    def error(self, message: str):
        raise UsageError(self.prog, message)


def parse_overrides(pairs: list[str]) -> dict:
    """`--set train.epochs=3` pairs as {dotted key: YAML value}."""
    overrides = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError("--set", pair, pair, "KEY=VALUE with a dotted key, e.g. train.epochs=3")
        overrides[key] = parse_override_value(key, value)
    return overrides


def finite_float(text: str) -> float:
    """argparse type: a finite number (`inf` would disable a limit and `nan` pass every comparison)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def bounded_int(low: int, high: int):
    """argparse type: an integer from `low` to `high` (a typo like 100000000 frames is an error, not an allocation)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text[:40]!r} is not an integer") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is not an integer from {low} to {high:,}")
        return value
    parse.__name__ = "integer"      # argparse names the type in its message
    return parse


def output_folder(option: str, path: Path) -> Path:
    """`path` for an option naming a folder to write into: it may be missing, but not an existing file."""
    if path.exists() and not path.is_dir():
        raise ConfigError(option, option.lstrip("-"), str(path), "a folder (it may not exist yet); this is a file")
    for parent in path.parents:        # a file on the way (`--out report.csv/x`) fails as late as mkdir
        if parent.exists() and not parent.is_dir():
            raise ConfigError(option, option.lstrip("-"), str(path), f"a folder; {parent} is a file")
    return path


def experiment_parser() -> argparse.ArgumentParser:
    """The arguments every experiment command takes: the YAML and its `--set` overrides."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("experiment", help="experiment YAML, e.g. experiments/demo.yaml")
    common.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. --set train.epochs=3 (repeatable)")
    return common


def print_table(summary: dict, columns=None) -> None:
    from sepipe.report import DISPLAY_COLUMNS, markdown_table

    print(markdown_table(summary["rows"], columns or DISPLAY_COLUMNS))
    for note in summary.get("notes", []):
        print(note)
    print()


def print_conditions(summary: dict) -> None:
    """The quality table per test condition, when the test set mixes rooms (dry and reverberant) or devices.

    Every built test set spans SNR bands, so they alone do not print: the dry demo's output stays
    as it was, and its per-condition table is in evaluate/<experiment>_quality_by_condition.md.
    """
    from sepipe.report import CONDITION_COLUMNS, markdown_table

    rows = summary.get("by_condition", [])
    values: dict[str, set] = {}
    for row in rows:
        values.setdefault(row["condition"], set()).add(row["condition_value"])
    if any(len(found) > 1 for condition, found in values.items() if condition != "snr"):
        print(markdown_table(rows, CONDITION_COLUMNS))
