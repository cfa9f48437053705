"""Deployment commands: `compile` (an experiment's models or any .tflite) and `budget check`.

These need only Vela and the light install (`pip install sepipe`), so a user's CI can run them.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from sepipe.cli.common import finite_float, output_folder, parse_overrides
from sepipe.errors import ConfigError


def add_parsers(sub, common: argparse.ArgumentParser) -> None:
    compile_ = sub.add_parser("compile", help="compile with Vela: an experiment's int8 model, or any .tflite",
                              description="sepipe compile EXPERIMENT.yaml  |  sepipe compile MODEL.tflite --target NAME")
    compile_.add_argument("source", type=Path, help="experiment YAML, or an int8 .tflite of your own")
    compile_.add_argument("--target", action="append", default=[], metavar="NAME",
                          help="target name from the targets file (repeatable; default: the experiment's)")
    compile_.add_argument("--out", type=Path, default=Path("build/vela"), help="output folder for a .tflite (default build/vela)")
    compile_.add_argument("--targets-file", type=Path, default=None,
                          help="targets YAML (default: the targets.yaml shipped in sepipe.vela_configs)")
    compile_.add_argument("--allow-cpu-fallback", action="store_true", help="report ops left on the CPU instead of failing")
    compile_.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                          help="override an experiment config value (with a YAML source)")
    compile_.set_defaults(handler=_compile_command)

    budget = sub.add_parser("budget", help="budget commands")
    budget_sub = budget.add_subparsers(dest="budget_command", required=True, metavar="ACTION")
    check = budget_sub.add_parser("check", help="fail (exit 1) when a model breaks its SRAM/flash/latency/quality budget")
    check.add_argument("records", nargs="+", type=Path,
                       help="run folder (runs/<experiment>), report or records CSV, or a *_record.json")
    check.add_argument("--budgets", type=Path, default=None,
                       help="budget YAML (default: the budgets.yaml shipped in sepipe.vela_configs)")
    check.add_argument("--hop-ms", type=finite_float, default=16.0, help="hop length for max_latency_hop_fraction (ms)")
    check.add_argument("--require-budget", action="store_true", help="a target without a budget is a violation")
    check.set_defaults(handler=_budget_command)


def _compile_command(args: argparse.Namespace) -> int:
    from sepipe.deploy.compile import CompileOptions, compile_many
    from sepipe.deploy.figures import CompileRecord

    if args.source.suffix in (".yaml", ".yml"):
        from sepipe import experiment as exp
        from sepipe.config import load_experiment

        cfg = load_experiment(args.source, parse_overrides(args.overrides))
        if args.target:
            cfg = dataclasses.replace(cfg, compile=dataclasses.replace(cfg.compile, targets=tuple(args.target)))
        records = [r for variant in cfg.variants for r in exp.stage_compile(cfg, variant)["records"]]
    else:
        if not args.target:
            raise ConfigError("--target", None, None, "at least one --target NAME with a .tflite source")
        options = CompileOptions(require_full_npu=not args.allow_cpu_fallback)
        results = compile_many(args.source, args.target, output_folder("--out", args.out), args.source.stem, options,
                               targets_file=args.targets_file)
        for result in results:
            if result.fallback_message:
                print(f"sepipe: warning: {result.fallback_message}", file=sys.stderr)
        records = [result.compiled for result in results]
    for record in records:
        c = record if isinstance(record, CompileRecord) else CompileRecord.from_record(record)
        f = c.figures
        print(f"{c.model} on {c.target} ({c.target_id}): {f.cycles_total:,.0f} cycles, {f.inference_time_ms:.3f} ms, "
              f"SRAM {f.sram_memory_used_kib:.1f} KiB, flash {f.flash_kib:.1f} KiB, "
              f"DRAM {f.dram_memory_used_kib:.1f} KiB, NPU ops {f.npu_op_share:.0%}")
    return 0


def _budget_command(args: argparse.Namespace) -> int:
    from sepipe.budgets import DEFAULT_BUDGETS_FILE, check_budgets, format_violations, load_budgets, load_records

    budgets_file = args.budgets if args.budgets is not None else DEFAULT_BUDGETS_FILE
    if not 0 < args.hop_ms <= 1000:
        raise ConfigError("--hop-ms", "hop-ms", args.hop_ms, "a hop length from above 0 to 1000 (ms)")
    records = []
    for path in args.records:
        reports = sorted((path / "report").glob("*_report.csv")) if path.is_dir() else []
        # A run folder's report holds the Vela figures and the quality, so min_quality can be checked too.
        records += [row for report in reports for row in load_records(report)] if reports else load_records(path)
    violations = check_budgets(records, load_budgets(budgets_file), args.hop_ms, require_budget=args.require_budget)
    if violations:
        print(format_violations(violations))
        print(f"sepipe: {len(violations)} budget violation(s) in {len(records)} model/target row(s)", file=sys.stderr)
        return 1
    print(f"budgets hold: {len(records)} model/target row(s) checked against {budgets_file}")
    return 0
