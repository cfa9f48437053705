"""`sepipe enhance`: run a model on your own recordings, streaming each file hop by hop as firmware does."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from sepipe.cli.common import output_folder

log = logging.getLogger(__name__)

RUNTIMES = ("tflm", "tflite", "float")


def add_parsers(sub, common: argparse.ArgumentParser) -> None:
    enhance = sub.add_parser(
        "enhance", help="enhance WAV files with a streaming model (a .tflite or a run's variant)",
        description="sepipe enhance IN.wav [IN2.wav ...] -o OUT_DIR --model M.tflite|RUN_DIR [--variant V] "
                    "[--runtime tflm|tflite|float] [--resample]")
    enhance.add_argument("inputs", nargs="+", type=Path, metavar="IN.wav", help="16 kHz mono recordings")
    enhance.add_argument("-o", "--out", type=Path, required=True, metavar="OUT_DIR",
                         help="folder for the enhanced files (OUT_DIR/<input name>.wav)")
    enhance.add_argument("--model", type=Path, required=True, metavar="M.tflite|RUN_DIR",
                         help="a streaming .tflite (features in, mask out, states as inputs and outputs) or a run "
                              "folder (runs/<experiment>)")
    enhance.add_argument("--variant", default=None, metavar="V",
                         help="the run's variant (default: its dense 'ptq' reference); run folders only")
    enhance.add_argument("--runtime", choices=RUNTIMES, default="tflm",
                         help="tflm: TFLite Micro, what firmware runs (default); tflite: the LiteRT interpreter; "
                              "float: the run's trained float Keras model")
    enhance.add_argument("--resample", action="store_true",
                         help="accept any sample rate and channel count: average the channels, resample with soxr")
    enhance.set_defaults(handler=_enhance_command)


def _enhance_command(args: argparse.Namespace) -> int:
    from sepipe.enhance import SAMPLE_RATE, enhance_file, load_model, output_paths, probe_input

    out_dir = output_folder("-o", args.out)
    outputs = output_paths(args.inputs, out_dir)
    # every header first, before the model loads (seconds, and interpreter noise on stderr): a wrong rate
    # in the last file should not come after the first ones are written
    sources = [probe_input(path, SAMPLE_RATE, args.resample) for path in args.inputs]
    model = load_model(args.model, args.variant, args.runtime)
    if model.sample_rate != SAMPLE_RATE:      # a run trained at another rate (none today: data.sample_rate)
        sources = [probe_input(path, model.sample_rate, args.resample) for path in args.inputs]
    log.info("enhance: %d file(s) with %s", len(sources), model.label)
    for src, output in zip(sources, outputs):
        print(enhance_file(model, src, output, progress=not args.quiet).line(), flush=True)
    return 0
