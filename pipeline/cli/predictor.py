"""`sepipe predictor run EXP.yaml`: the tiny speech-quality predictor (sepipe.quality_predictor), a second task
beside enhancement with its own YAML, stages and table."""

from __future__ import annotations

import argparse
from pathlib import Path

from sepipe.cli.common import bounded_int, parse_overrides


def add_parsers(sub, common: argparse.ArgumentParser) -> None:
    predictor = sub.add_parser("predictor", help="the tiny speech-quality predictor (labels, train, convert, "
                                                 "compile, evaluate, table)")
    actions = predictor.add_subparsers(dest="predictor_command", required=True, metavar="ACTION")
    run = actions.add_parser("run", parents=[common],
                             help="every stage of a quality-predictor experiment (current ones are skipped)")
    run.add_argument("--until", default=None, metavar="STAGE",
                     help="run only this stage and those it needs (e.g. labels, train:binary)")
    run.set_defaults(handler=_run)
    firmware = actions.add_parser("firmware", parents=[common],
                                  help="the golden folder of an enhancer + this predictor in one firmware image "
                                       "(make -C firmware_stub quality-test)")
    firmware.add_argument("--variant", required=True, help="the predictor variant (e.g. binary)")
    firmware.add_argument("--enhancer", required=True, type=Path, help="the enhancer's int8 .tflite")
    firmware.add_argument("--audio", required=True, type=Path, help="a 16 kHz WAV the image runs on")
    firmware.add_argument("--out", required=True, type=Path, help="the folder to write (c/, enhancer/, quality/)")
    firmware.add_argument("--frames", type=bounded_int(2, 1_000_000), default=None,
                          help="hops of the WAV to use (default: all)")
    firmware.add_argument("--stride", type=bounded_int(1, 100_000), default=None,
                          help="log-mel frames between predictions (default: the window, back to back)")
    firmware.set_defaults(handler=_firmware)


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


def _firmware(args: argparse.Namespace) -> int:
    from sepipe.bundle.predictor import shared_arena
    from sepipe.cli.common import output_folder
    from sepipe.quality_predictor.config import load_predictor
    from sepipe.quality_predictor.firmware_golden import write_pair_from_run

    cfg = load_predictor(args.experiment, parse_overrides(args.overrides))
    out = output_folder("--out", args.out)
    done = write_pair_from_run(cfg, args.variant, args.enhancer, args.audio, out, args.frames, args.stride)
    e, p = done["arenas"]["enhancer"], done["arenas"]["predictor"]
    shared = shared_arena(e, p)
    print(f"{out}: {done['windows']} predictor windows of {done['frames']} x {done['mels']} (stride {done['stride']})")
    print(f"TFLM arena (64-bit host): enhancer {e['measured_min_bytes']} B, predictor {p['measured_min_bytes']} B; "
          f"two arenas {e['measured_min_bytes'] + p['measured_min_bytes']} B, one shared non-persistent part "
          + (f"{shared['shared_head_bytes']} B" if shared["derived"] else f"not derived ({shared['why_not']})"))
    print(f"check: make -C firmware_stub quality-test MODEL_IO={out / 'c'} GOLDEN={out / 'enhancer'} "
          f"QUALITY_GOLDEN={out / 'quality'}")
    return 0
