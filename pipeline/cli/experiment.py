"""Experiment commands: config check, data build, train, convert, evaluate, report, run."""

from __future__ import annotations

import argparse
from pathlib import Path

from sepipe.cli.common import bounded_int, output_folder, parse_overrides, print_conditions, print_table
from sepipe.config import load_experiment
from sepipe.corpus_eval import WRITE_AUDIO
from sepipe.errors import UsageError


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
    add_evaluate_parser(sub)
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


def add_evaluate_parser(sub) -> None:
    """`sepipe evaluate EXP.yaml` (the experiment's variants on its test split) or `sepipe evaluate --model ...`
    (any streaming model on any corpus: sepipe.corpus_eval)."""
    evaluate = sub.add_parser(
        "evaluate", help="score an experiment's variants on its test split, or any streaming model on any corpus",
        description="sepipe evaluate EXP.yaml [--set KEY=VALUE] | sepipe evaluate --model M.tflite|RUN_DIR "
                    "[--variant V] [--runtime tflm|tflite|float] (--noisy DIR --clean DIR | --list CSV | "
                    "--corpus DIR) [--resample] [--baselines noisy,rnnoise] [--write-audio N] [-o OUT_DIR]")
    evaluate.add_argument("experiment", nargs="?", default=None, help="experiment YAML, e.g. experiments/demo.yaml")
    evaluate.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                          help="override a config value of EXP.yaml (repeatable)")
    evaluate.add_argument("--model", type=Path, default=None, metavar="M.tflite|RUN_DIR",
                          help="score this streaming .tflite or run folder (runs/<experiment>) on a corpus")
    evaluate.add_argument("--variant", default=None, metavar="V", help="the run's variant (default: 'ptq')")
    evaluate.add_argument("--runtime", choices=("tflm", "tflite", "float"), default=None,
                          help="tflm (default: what firmware runs), tflite, or float (run folders)")
    evaluate.add_argument("--noisy", type=Path, default=None, metavar="DIR", help="noisy .wav files (16 kHz mono)")
    evaluate.add_argument("--clean", type=Path, default=None, metavar="DIR",
                          help="their clean references, paired by file name")
    evaluate.add_argument("--list", dest="listing", type=Path, default=None, metavar="CSV",
                          help="a CSV of noisy,clean paths (relative to the CSV) instead of two folders")
    evaluate.add_argument("--corpus", type=Path, default=None, metavar="DIR",
                          help="a VoiceBank-DEMAND folder (its testset) or a DNS-Challenge test folder "
                               "(noisy/, clean/, paired by fileid_N)")
    evaluate.add_argument("--resample", action="store_true", default=None,
                          help="accept any sample rate and channel count: average the channels, resample with soxr "
                               "(as sepipe enhance --resample)")
    evaluate.add_argument("--write-audio", type=bounded_int(0, 100_000), default=None, metavar="N",
                          help=f"keep the first N files' audio (noisy, clean, baselines, model) under OUT_DIR/audio/ "
                               f"and play them in report.html (default {WRITE_AUDIO}; 0: none)")
    evaluate.add_argument("--baselines", type=_baselines, default=("noisy", "rnnoise"), metavar="NAMES",
                          help="comma-separated from noisy, rnnoise, or 'none' (default: noisy,rnnoise)")
    evaluate.add_argument("--workers", type=bounded_int(0, 1024), default=0, metavar="N",
                          help="scoring processes (default 0: one per core)")
    evaluate.add_argument("-o", "--out", type=Path, default=None, metavar="OUT_DIR",
                          help="folder for quality.{csv,md}, per_file.{csv,md}, report.html, audio/ "
                               "(default: evaluations/<model>)")
    evaluate.set_defaults(handler=_evaluate)


def _baselines(text: str) -> tuple[str, ...]:
    from sepipe.corpus_eval import BASELINES

    names = tuple(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    if names == ("none",):
        return ()
    unknown = [n for n in names if n not in BASELINES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"{text[:60]!r}: expected a comma-separated list of {', '.join(BASELINES)} "
                                         "(or 'none')")
    return names


MODEL_ONLY = {"variant": "--variant", "runtime": "--runtime", "noisy": "--noisy", "clean": "--clean",
              "listing": "--list", "corpus": "--corpus", "resample": "--resample", "write_audio": "--write-audio",
              "out": "-o"}      # dest -> option


def _evaluate(args: argparse.Namespace) -> int:
    from sepipe import experiment as exp

    if (args.experiment is None) == (args.model is None):
        raise UsageError("sepipe evaluate", "give either EXP.yaml (an experiment's test split) or --model "
                                            "M.tflite|RUN_DIR with a corpus, " +
                         ("not both" if args.model is not None else "neither was given"))
    if args.model is not None:
        return _evaluate_corpus(args)
    given = [option for name, option in MODEL_ONLY.items() if getattr(args, name) is not None]
    if given:
        raise UsageError("sepipe evaluate", f"{', '.join(given)} go(es) with --model, not with EXP.yaml")
    cfg = _config(args)
    summary = exp.evaluate_all(cfg, exp.stage_data(cfg, build=False), progress=not args.quiet)
    print_table(summary)
    print_conditions(summary)
    return 0


def _evaluate_corpus(args: argparse.Namespace) -> int:
    from sepipe.corpus_eval import check_pairs, corpus_pairs, evaluate_corpus, model_names
    from sepipe.enhance import SAMPLE_RATE, load_model

    if args.overrides:
        raise UsageError("sepipe evaluate", "--set goes with EXP.yaml, not with --model")
    pairs = corpus_pairs(args.noisy, args.clean, args.listing, args.corpus)
    # every header before the model loads (the model's rate is checked again)
    check_pairs(pairs, SAMPLE_RATE, bool(args.resample))
    names = model_names(args.model, args.variant, args.noisy or args.listing or args.corpus)
    out_dir = output_folder("-o", args.out or Path("evaluations") / names["stem"])
    model = load_model(args.model, args.variant, args.runtime or "tflm")
    write_audio = WRITE_AUDIO if args.write_audio is None else args.write_audio
    result = evaluate_corpus(model, pairs, out_dir, names, args.baselines, args.workers, progress=not args.quiet,
                             resample=bool(args.resample), write_audio=write_audio)
    print_table({"rows": result.rows})
    wavs = [p for p in result.outputs if p.suffix == ".wav"]
    print("written: " + ", ".join(str(p) for p in result.outputs if p.suffix != ".wav")
          + (f", {len(wavs)} WAV file(s) under {out_dir / 'audio'}" if wavs else ""))
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
