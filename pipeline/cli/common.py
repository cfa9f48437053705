"""Helpers shared by the command groups: `--set` overrides, the experiment argument, tables."""

from __future__ import annotations

import argparse

import yaml

from sepipe.errors import ConfigError


def parse_overrides(pairs: list[str]) -> dict:
    """`--set train.epochs=3` pairs as {dotted key: YAML value}."""
    overrides = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError("--set", pair, pair, "KEY=VALUE with a dotted key, e.g. train.epochs=3")
        overrides[key] = yaml.safe_load(value)
    return overrides


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
