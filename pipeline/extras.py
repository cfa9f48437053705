"""Optional dependency groups (pip extras): which modules each brings and which commands need them.

`pip install sepipe` is the light install a user's CI needs for `sepipe compile` (of a .tflite)
and `sepipe budget check`: Vela, numpy and PyYAML, no TensorFlow and no audio stack. The extras
are named for what they let you run and build on each other, so one extra makes its commands work:

    data    audio I/O, resampling, G.722, room/mic simulation    sepipe data build
    train   data + TensorFlow, tf_keras, TFMOT, LiteRT           sepipe train, convert
    eval    train + PESQ, STOI, DNSMOS, the RNNoise baseline     sepipe evaluate (+ tflm, report with --model)
    tflm    TensorFlow Lite Micro's Python interpreter           bundle, verify-bundle, TFLM evaluation
    report  matplotlib, Pillow                                   sepipe report (the HTML plots, spectrograms)
    ray     Ray                                                  sepipe run --executor ray
    search  pymoo (NSGA-II)                                      sepipe search
    all     every extra above

`sepipe.cli.main` checks a command's declared extras before running it (`check_command`, by module
lookup, nothing imported) and maps a ModuleNotFoundError raised while it runs (`missing_extra`);
either way the user reads one line naming the extra to install. The extras' contents are declared
in pyproject.toml; tests/test_packaging.py keeps the two in step.
"""

from __future__ import annotations

import argparse
from importlib.util import find_spec

from sepipe.errors import MissingExtraError

# top-level import name -> (extra that brings it, distribution name on PyPI)
MODULE_EXTRAS: dict[str, tuple[str, str]] = {
    "soundfile": ("data", "soundfile"),
    "soxr": ("data", "soxr"),
    "G722": ("data", "g722"),        # the module is upper case
    "tqdm": ("data", "tqdm"),
    "pyroomacoustics": ("data", "pyroomacoustics"),
    "scipy": ("data", "scipy"),         # reverb (fftconvolve), the mic's filters; evaluation too
    "tensorflow": ("train", "tensorflow"),
    "tf_keras": ("train", "tf-keras"),
    "tensorboard": ("train", "tensorboard"),
    "tensorflow_model_optimization": ("train", "tensorflow-model-optimization"),
    "ai_edge_litert": ("train", "ai-edge-litert"),
    "pesq": ("eval", "pesq"),
    "pystoi": ("eval", "pystoi"),
    "speechmos": ("eval", "speechmos"),
    "onnxruntime": ("eval", "onnxruntime"),
    "pyrnnoise": ("eval", "pyrnnoise"),
    "tflite_micro": ("tflm", "tflite-micro"),
    "matplotlib": ("report", "matplotlib"),
    "PIL": ("report", "pillow"),        # the Listen section's WebP spectrograms (sepipe.report.listen)
    "ray": ("ray", "ray"),
    "pymoo": ("search", "pymoo"),
}

# extra -> the extras it includes (pyproject: "sepipe[data]" inside train, ...)
EXTRA_INCLUDES: dict[str, tuple[str, ...]] = {
    "train": ("data",),
    "eval": ("train",),
    "all": ("data", "train", "eval", "tflm", "report", "ray", "search"),
}

# command as typed -> extras it always needs (what it needs only for some configs, e.g. the TFLM
# runner of `evaluate`, is caught by missing_extra when it is imported)
COMMAND_EXTRAS: dict[str, tuple[str, ...]] = {
    "sepipe data build": ("data",),
    "sepipe train": ("train",),
    "sepipe convert": ("train",),
    "sepipe evaluate": ("eval",),      # + 'tflm' and 'report' with --model: see command_extras
    "sepipe report": ("report",),
    "sepipe run": ("eval", "report"),
    "sepipe bundle": ("train", "tflm"),
    "sepipe verify-bundle": ("tflm",),
    "sepipe search": ("eval", "search"),
    "sepipe predictor run": ("eval", "tflm"),
    "sepipe predictor firmware": ("train", "tflm"),
    "sepipe enhance": ("train",),      # + 'tflm' for --runtime tflm (the default): see command_extras
}


def extra_modules(extra: str) -> list[str]:
    """Top-level modules `extra` brings: its own first (the line names tensorflow, not soundfile,
    for a missing 'train'), then those of the extras it includes."""
    modules = [m for m, (owner, _) in MODULE_EXTRAS.items() if owner == extra]
    for included in EXTRA_INCLUDES.get(extra, ()):
        modules += [m for m in extra_modules(included) if m not in modules]
    return modules


def command_extras(command: str, args: argparse.Namespace | None = None) -> tuple[str, ...]:
    """The extras `command` needs; `--executor ray` adds 'ray', `--runtime tflm` adds 'tflm'."""
    extras = COMMAND_EXTRAS.get(command, ())
    if args is not None and getattr(args, "executor", None) == "ray":
        extras += ("ray",)
    if args is not None and getattr(args, "runtime", None) == "tflm":
        extras += ("tflm",)
    if command == "sepipe evaluate" and args is not None and getattr(args, "model", None) is not None:
        # any model on a corpus: TFLite Micro by default (`--runtime` left out), and the HTML page's plots
        extras += ("tflm",) * (getattr(args, "runtime", None) is None) + ("report",)
    return extras


def check_command(command: str, args: argparse.Namespace | None = None) -> None:
    """MissingExtraError naming the first extra of `command` with a module that is not installed."""
    for extra in command_extras(command, args):
        for module in extra_modules(extra):
            if find_spec(module) is None:
                raise MissingExtraError(command, extra, MODULE_EXTRAS[module][1])


def missing_extra(exc: ModuleNotFoundError, command: str) -> MissingExtraError | None:
    """The MissingExtraError for `exc` raised while `command` ran, or None when the missing module
    is no optional dependency (then it is a bug or a broken install, and keeps its traceback)."""
    module = (exc.name or "").split(".")[0]
    if module not in MODULE_EXTRAS:
        return None
    extra, distribution = MODULE_EXTRAS[module]
    return MissingExtraError(command, extra, distribution)
