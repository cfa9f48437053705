"""`sepipe`: the command line. Each subcommand is a thin caller of a stage function.

Errors a user can cause (PipelineError) become one line on stderr and exit code 2;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
from pathlib import Path

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

    compile_ = sub.add_parser("compile", help="compile with Vela: an experiment's int8 model, or any .tflite",
                              description="sepipe compile EXPERIMENT.yaml  |  sepipe compile MODEL.tflite --target NAME")
    compile_.add_argument("source", type=Path, help="experiment YAML, or an int8 .tflite of your own")
    compile_.add_argument("--target", action="append", default=[], metavar="NAME",
                          help="target from vela_configs/targets.yaml (repeatable; default: the experiment's)")
    compile_.add_argument("--out", type=Path, default=Path("build/vela"), help="output folder for a .tflite (default build/vela)")
    compile_.add_argument("--targets-file", type=Path, default=None, help="targets YAML (default vela_configs/targets.yaml)")
    compile_.add_argument("--allow-cpu-fallback", action="store_true", help="report ops left on the CPU instead of failing")
    compile_.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                          help="override an experiment config value (with a YAML source)")

    sub.add_parser("report", parents=[common], help="join quality and Vela figures into CSV, Markdown and HTML")

    budget = sub.add_parser("budget", help="budget commands")
    budget_sub = budget.add_subparsers(dest="budget_command", required=True, metavar="ACTION")
    check = budget_sub.add_parser("check", help="fail (exit 1) when a model breaks its SRAM/flash/latency/quality budget")
    check.add_argument("records", nargs="+", type=Path,
                       help="run folder (runs/<experiment>), report or records CSV, or a *_record.json")
    check.add_argument("--budgets", type=Path, default=Path("vela_configs/budgets.yaml"), help="budget YAML")
    check.add_argument("--hop-ms", type=float, default=16.0, help="hop length for max_latency_hop_fraction (ms)")
    check.add_argument("--require-budget", action="store_true", help="a target without a budget is a violation")

    sub.add_parser("run", parents=[common], help="every stage of the experiment, skipping those up to date")

    bundle = sub.add_parser(
        "bundle", help="write the firmware hand-off bundle (folder + zip) of one variant compiled for one target",
        description="Write <out>/<experiment>_<variant>_<target>/ and its .zip: the int8 and Vela .tflite, the Vela "
                    "model as an aligned C array, model_io.h, model_manifest.json (tensors, state feedback, "
                    "features, measured TFLite Micro arena, Vela figures, hashes, tool versions), golden vectors "
                    "from TFLite Micro on real test audio, a README and SHA256SUMS.")
    bundle.add_argument("run", type=Path, help="run folder (runs/<experiment>) or the experiment YAML")
    bundle.add_argument("--variant", default="ptq", help="a converted variant of the run (default ptq)")
    bundle.add_argument("--target", required=True, metavar="NAME",
                        help="a target the variant was compiled for, e.g. ethos-u55-128 (or its id, e.g. H128)")
    bundle.add_argument("--out", type=Path, default=None, help="output folder (default runs/<experiment>/bundles)")
    bundle.add_argument("--frames", type=int, default=300,
                        help="consecutive frames of test audio in the golden vectors (default 300 = 4.8 s)")
    verify = sub.add_parser(
        "verify-bundle", help="check a bundle: every sha256, and golden vectors re-run bit-exactly through TFLite Micro",
        description="Exit 0 with a one-line summary when every hash matches and the golden vectors re-run through "
                    "the TFLite Micro interpreter equal bit for bit; exit 1 with one line per problem otherwise.")
    verify.add_argument("bundle", type=Path, help="bundle folder or its .zip")
    return parser


def _print_table(summary: dict, columns=None) -> None:
    from pipeline.report import DISPLAY_COLUMNS, markdown_table

    print(markdown_table(summary["rows"], columns or DISPLAY_COLUMNS))
    for note in summary.get("notes", []):
        print(note)
    print()


def _compile_command(args: argparse.Namespace) -> int:
    from pipeline import experiment as exp
    from pipeline.compile import CompileOptions, compile_many

    if args.source.suffix in (".yaml", ".yml"):
        cfg = load_experiment(args.source, _parse_overrides(args.overrides))
        if args.target:
            cfg = dataclasses.replace(cfg, compile=dataclasses.replace(cfg.compile, targets=tuple(args.target)))
        records = [r for variant in cfg.variants for r in exp.stage_compile(cfg, variant)["records"]]
    else:
        if not args.target:
            raise ConfigError("--target", None, None, "at least one --target NAME with a .tflite source")
        options = CompileOptions(require_full_npu=not args.allow_cpu_fallback)
        results = compile_many(args.source, args.target, args.out, args.source.stem, options,
                               targets_file=args.targets_file)
        for result in results:
            if result.fallback_message:
                print(f"sepipe: warning: {result.fallback_message}", file=sys.stderr)
        records = [result.record for result in results]
    for r in records:
        print(f"{r['model']} on {r['target']} ({r['target_id']}): {r['cycles_total']:,.0f} cycles, "
              f"{r['inference_time_ms']:.3f} ms, SRAM {r['sram_memory_used_kib']:.1f} KiB, "
              f"flash {r['flash_kib']:.1f} KiB, DRAM {r['dram_memory_used_kib']:.1f} KiB, NPU ops {r['npu_op_share']:.0%}")
    return 0


def _budget_command(args: argparse.Namespace) -> int:
    from pipeline.budgets import check_budgets, format_violations, load_budgets, load_records

    records = []
    for path in args.records:
        reports = sorted((path / "report").glob("*_report.csv")) if path.is_dir() else []
        # A run folder's report holds the Vela figures and the quality, so min_quality can be checked too.
        records += [row for report in reports for row in load_records(report)] if reports else load_records(path)
    violations = check_budgets(records, load_budgets(args.budgets), args.hop_ms, require_budget=args.require_budget)
    if violations:
        print(format_violations(violations))
        print(f"sepipe: {len(violations)} budget violation(s) in {len(records)} model/target row(s)", file=sys.stderr)
        return 1
    print(f"budgets hold: {len(records)} model/target row(s) checked against {args.budgets}")
    return 0


def _bundle_command(args: argparse.Namespace) -> int:
    import json

    from pipeline.bundle import make_bundle

    folder = make_bundle(args.run, args.variant, args.target, out_dir=args.out, frames=args.frames)
    manifest = json.loads((folder / "model_manifest.json").read_text())
    arena = manifest["tflm_arena"]["reference_kernels"]
    print(f"bundle: {folder} and {folder}.zip ({len(manifest['files']) + 2} files; golden: {args.frames} frames; "
          f"TFLite Micro arena {arena['measured_min_bytes']} bytes measured, {arena['recommended_bytes']} recommended)")
    return 0


def _verify_bundle_command(args: argparse.Namespace) -> int:
    from pipeline.bundle import verify_bundle

    report = verify_bundle(args.bundle)
    for problem in report.problems:
        print(problem)
    print(report.summary(), file=sys.stdout if report.ok else sys.stderr)
    return 0 if report.ok else 1


def dispatch(args: argparse.Namespace) -> int:
    from pipeline import experiment as exp
    from pipeline.report import DEPLOYMENT_COLUMNS

    if args.command == "compile":
        return _compile_command(args)
    if args.command == "budget":
        return _budget_command(args)
    if args.command == "bundle":
        return _bundle_command(args)
    if args.command == "verify-bundle":
        return _verify_bundle_command(args)
    cfg = load_experiment(args.experiment, _parse_overrides(args.overrides))
    progress = not args.quiet
    if args.command == "data":
        path = exp.stage_data(cfg, build=True, progress=progress).root
        print(f"dataset ready: {path}")
    elif args.command == "train":
        summary = exp.stage_train(cfg, exp.stage_data(cfg, build=False), progress=progress)
        print(f"trained: best epoch {summary['best_epoch']}, validation SI-SDR {summary['best_val_sisdr_db']:.2f} dB")
    elif args.command == "convert":
        dataset = exp.stage_data(cfg, build=False)
        for variant in cfg.variants:
            summary = exp.stage_convert(cfg, dataset, variant, progress=progress)
            print(f"converted: {exp.RunPaths(cfg).tflite(variant.name)} ({summary['tflite_bytes']} bytes)")
    elif args.command == "evaluate":
        _print_table(exp.evaluate_all(cfg, exp.stage_data(cfg, build=False), progress=progress))
    elif args.command == "report":
        _print_table(exp.stage_report(cfg), DEPLOYMENT_COLUMNS)
    elif args.command == "run":
        summary = exp.run_experiment(cfg, progress=progress)
        _print_table(summary["evaluate"])
        _print_table(summary["report"], DEPLOYMENT_COLUMNS)
        print("report: " + ", ".join(summary["report"]["outputs"]))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    level = logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    for noisy in ("absl", "tensorflow", "h5py", "matplotlib"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        return dispatch(args)
    except PipelineError as exc:
        print(f"sepipe: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("sepipe: interrupted; finished artifacts are kept and a rerun resumes", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
