"""Hand-off commands: `bundle` (firmware bundle of one compiled variant) and `verify-bundle`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

# sepipe.bundle.layout's DEFAULT_FRAMES, MAX_FRAMES and C_SYMBOL (make_bundle checks them; importing the
# bundle package here would load numpy for every command; tests/test_bundle_hostile.py keeps them equal)
DEFAULT_FRAMES, MAX_FRAMES = 300, 10_000
C_SYMBOL = "se_model"
PREDICTOR_C_SYMBOL = "se_qp"      # sepipe.bundle.predictor.C_PREFIX


def add_parsers(sub, common: argparse.ArgumentParser) -> None:
    bundle = sub.add_parser(
        "bundle", help="write the firmware hand-off bundle (folder + zip) of one variant compiled for one target",
        description="Write <out>/<experiment>_<variant>_<target>/ and its .zip: the int8 and Vela .tflite, the Vela "
                    "model as an aligned C array, model_io.h, model_manifest.json (tensors, state feedback, "
                    "features, measured TFLite Micro arena, Vela figures, hashes, tool versions), golden vectors "
                    "from TFLite Micro on real test audio, a README and SHA256SUMS.")
    bundle.add_argument("run", type=Path, help="run folder (runs/<experiment>) or the experiment YAML")
    bundle.add_argument("--variant", default=None,
                        help="a converted variant of the run (default: the dense reference, its variant of kind ptq)")
    bundle.add_argument("--target", required=True, metavar="NAME",
                        help="a target the variant was compiled for, e.g. ethos-u55-128 (or its id, e.g. H128)")
    bundle.add_argument("--out", type=Path, default=None, help="output folder (default runs/<experiment>/bundles)")
    bundle.add_argument("--frames", type=int, default=DEFAULT_FRAMES,
                        help=f"consecutive frames of test audio in the golden vectors, 2 to {MAX_FRAMES} "
                             f"(default {DEFAULT_FRAMES} = 4.8 s at a 16 ms hop)")
    bundle.add_argument("--c-prefix", default=C_SYMBOL, metavar="NAME",
                        help=f"start of every C symbol of the model (default {C_SYMBOL}); give each model of one "
                             "firmware image its own (an early-exit set, an enhancer and a quality predictor)")
    bundle.add_argument("--exit-set", default=None, metavar="V1,V2,...",
                        help="exit variants of a multi-exit run (kind exit, shallowest first): bundle each with C prefix "
                             "se_<variant> for one image, and write golden vectors of a switching schedule for "
                             "firmware_stub's exit-set-test (instead of --variant)")
    bundle.add_argument("--predictor", type=Path, default=None, metavar="RUN",
                        help="a quality-predictor run folder (runs/quality_predictor): add its variant compiled for "
                             "the same target as the image's second model (Vela .tflite, C array, se_quality_desc_t "
                             "descriptor, golden windows and scores, shared-arena figures) to the bundle")
    bundle.add_argument("--predictor-variant", default="binary", metavar="NAME",
                        help="the predictor's variant with --predictor: float, int8_qat or binary (default binary)")
    bundle.add_argument("--predictor-c-prefix", default=PREDICTOR_C_SYMBOL, metavar="NAME",
                        help=f"start of every C symbol of the predictor (default {PREDICTOR_C_SYMBOL})")
    bundle.set_defaults(handler=_bundle_command)
    verify = sub.add_parser(
        "verify-bundle", help="check a bundle: every sha256, and golden vectors re-run bit-exactly through TFLite Micro",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Check a bundle from anywhere without trusting it: the zip or folder within limits (entries, "
                    "sizes,\ncompression ratio) before anything is extracted, every manifest field before it is "
                    "used, and the\nTFLite Micro re-run in a child process.\n\nexit codes:\n"
                    "  0  every hash matches and the golden vectors re-run through TFLite Micro equal bit for bit\n"
                    "  1  verification failed: one line per problem (a hash, a manifest field missing or out of "
                    "range,\n     the C array, a model TFLite Micro cannot run or that crashes it, a golden file "
                    "that differs),\n     then a summary line\n"
                    "  2  not readable as a bundle: one line (not found, not a folder or zip, an unreadable zip, "
                    "over the\n     limits, a link or special file, no SHA256SUMS or model_manifest.json, a "
                    "SHA256SUMS that is\n     not UTF-8 '<sha256>  <file>' lines)")
    verify.add_argument("bundle", type=Path, help="bundle folder or its .zip")
    verify.set_defaults(handler=_verify_bundle_command)


def _bundle_command(args: argparse.Namespace) -> int:
    import json

    from sepipe.bundle import make_bundle

    if args.exit_set is not None:
        return _exit_set_command(args)

    predictor = None if args.predictor is None else (args.predictor, args.predictor_variant)
    folder = make_bundle(args.run, args.variant, args.target, out_dir=args.out, frames=args.frames,
                         c_prefix=args.c_prefix, predictor=predictor, predictor_prefix=args.predictor_c_prefix)
    manifest = json.loads((folder / "model_manifest.json").read_text())
    host = manifest["tflm_arena"]["reference_kernels"]
    cortex = manifest["tflm_arena"]["cortex_m"]
    cmsis = cortex["cmsis_nn"]["recommended_bytes"]
    print(f"bundle: {folder} and {folder}.zip ({len(manifest['files']) + 2} files; golden: {args.frames} frames; "
          f"TFLite Micro arena {host['measured_min_bytes']} bytes measured on the 64-bit host; Cortex-M: "
          f"{cortex['reference']['recommended_bytes']} reference kernels, "
          f"{cmsis if cmsis is not None else 'not derived'} CMSIS-NN recommended)")
    if "predictor" in manifest:
        qp = manifest["predictor"]
        shared = qp["tflm_arena"]["shared"]
        print(f"predictor: {qp['model']['vela_tflite']} (golden windows: {qp['golden']['windows']}; TFLite Micro arena "
              f"{qp['tflm_arena']['reference_kernels']['measured_min_bytes']} bytes; two models: "
              + (f"{shared['separate_arenas_bytes']} bytes in two arenas, {shared['shared_head_bytes']} with one "
                 "shared head)" if shared.get("derived") else "shared arena not derived)"))
    return 0


def _exit_set_command(args: argparse.Namespace) -> int:
    from sepipe.early_exit_golden import make_exit_set
    from sepipe.errors import ConfigError

    variants = [v.strip() for v in args.exit_set.split(",") if v.strip()]
    if args.predictor is not None:
        raise ConfigError("command line", "--predictor", str(args.predictor),
                          "no predictor with --exit-set (bundle the predictor beside one --variant)")
    if args.variant is not None or not variants:
        raise ConfigError("command line", "--exit-set", args.exit_set,
                          "comma-separated exit variants (exit1,exit2,...), without --variant")
    if args.out is None:
        from sepipe.bundle.source import find_source

        out = find_source(args.run, variants[0], args.target).cfg.run_dir / "bundles" / "exit_set"
    else:
        out = args.out
    made = make_exit_set(args.run, variants, args.target, out, frames=args.frames)
    print(f"exit set: {len(made['bundles'])} bundles and golden vectors in {out}; check them with:\n  {made['command']}")
    return 0


def _verify_bundle_command(args: argparse.Namespace) -> int:
    from sepipe.bundle import verify_bundle

    report = verify_bundle(args.bundle)
    for problem in report.problems:
        print(problem)
    print(report.summary(), file=sys.stdout if report.ok else sys.stderr)
    return 0 if report.ok else 1
