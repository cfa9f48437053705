"""Full-integer conversion of the streaming model by a registered scheme, in a subprocess.

The exported model is the family's one-frame streaming model: its inputs, heads and state pairs
are the family's contract (sepipe.contract). Traps handled here (see docs/toolchain.md, Conversion):
- the representative dataset yields DICTS keyed by input name: a list is silently
  mis-ordered (TFLite input order is not Keras order);
- outputs are mapped by the signature def's names, never by tensor order;
- the converter can segfault inside calibration, so it runs in a subprocess
  (`python -m sepipe.quantize.worker`); a crash, a non-zero exit or a timeout
  becomes one `ToolError` line;
- states are calibrated with states the float model produced on real audio (calibration.py).

Weights: `convert_quantized` takes the Keras `.weights.h5` that training writes from the
STREAMING model. A file saved from the SEQUENCE model of the same config is accepted too: the
worker loads it into the sequence model and copies the weights by layer name. Keras' loader
matches layers by structure and silently ignores arrays the model does not use, so the worker
first checks that the file holds exactly the model's weight arrays (count and shapes).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from sepipe.artifacts import atomic_path
from sepipe.config import ModelConfig
from sepipe.errors import InputFileError, ToolError, describe_exit, last_line
from sepipe.quantize.calibration import CalibrationSet, save_calibration
from sepipe.quantize.model_io import ModelIO, validate_quantized_model
from sepipe.quantize.schemes import QuantScheme, get_scheme

TOOL = "tflite converter"
QAT_RANGES_FILE = "qat_ranges.json"      # written beside streaming.weights.h5 by a QAT variant of scope 'full'
PROJECT_ROOT = Path(__file__).resolve().parents[2]


def _worker_command(model_cfg: ModelConfig, bins: int, weights_path: Path, calibration_path: Path,
                    out_path: Path, scheme: str = "int8", precision: dict | None = None,
                    qat_ranges: Path | None = None) -> list[str]:
    """The converter subprocess command line (a function so tests can swap it for a crashing one)."""
    extra = ["--qat-ranges", str(qat_ranges)] if qat_ranges is not None else []
    return [sys.executable, "-m", "sepipe.quantize.worker",
            "--model", json.dumps(dataclasses.asdict(model_cfg), sort_keys=True),
            "--bins", str(int(bins)),
            "--weights", str(weights_path),
            "--calibration", str(calibration_path),
            "--out", str(out_path),
            "--scheme", scheme, "--precision", json.dumps(precision or {})] + extra


def convert_quantized(model_cfg: ModelConfig, bins: int, weights_path: Path, calibration_path: Path, out_path: Path,
                      scheme: str | QuantScheme = "int8", timeout_s: float = 600,
                      precision: dict | None = None, qat_ranges: Path | None = None) -> Path:
    """`convert_with_summary` without the worker's summary: the written path."""
    return convert_with_summary(model_cfg, bins, weights_path, calibration_path, out_path, scheme, timeout_s,
                                precision, qat_ranges)[0]


def convert_with_summary(model_cfg: ModelConfig, bins: int, weights_path: Path, calibration_path: Path,
                         out_path: Path, scheme: str | QuantScheme = "int8", timeout_s: float = 600,
                         precision: dict | None = None, qat_ranges: Path | None = None) -> tuple[Path, dict]:
    """Full-integer .tflite of the streaming model by `scheme` (sepipe.quantize.schemes: 'int8', or
    'int16x8', TFLite's 16x8 mode: int16 activations and I/O, int8 weights, so flash and Vela's weight
    traffic do not change; the legacy names 'int16' is accepted; or 'mixed' with `precision`, a mapping
    of layer group / layer / tensor class to int8, int16x8 or float: sepipe.quantize.precision), written
    atomically.

    Converted in a subprocess; a crash (signal), non-zero exit or timeout raises ToolError
    with the exit code / signal and the last stderr line. The result is checked with
    `validate_quantized_model` against the family's contract and the scheme before it is renamed into place.

    qat_ranges: trained activation ranges (`qat_ranges.json`, QAT scope 'full'); by default the file of that
    name beside the weights, when a QAT variant wrote one. The model is converted as PTQ, then its
    activation tensors take those ranges (sepipe.quantize.qat_ranges).
    """
    from sepipe.models import family_of

    scheme = get_scheme(scheme)
    contract = family_of(model_cfg).contract(model_cfg, bins)
    if precision is not None:       # one-line ConfigError for a key the family lacks or a bad precision
        from sepipe.quantize.precision import check_precision
        check_precision("convert", "precision", precision, contract)
    weights_path, calibration_path, out_path = Path(weights_path), Path(calibration_path), Path(out_path)
    if not weights_path.is_file():
        raise InputFileError(weights_path, "weights file not found (a Keras .weights.h5 from training)")
    if not calibration_path.is_file():
        raise InputFileError(calibration_path, "calibration file not found")
    if qat_ranges is None and weights_path.with_name(QAT_RANGES_FILE).is_file():
        qat_ranges = weights_path.with_name(QAT_RANGES_FILE)
    env = dict(os.environ, TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL=os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"))
    env["PYTHONPATH"] = os.pathsep.join([str(PROJECT_ROOT)] + [p for p in [os.environ.get("PYTHONPATH")] if p])
    with atomic_path(out_path) as tmp:
        command = _worker_command(model_cfg, bins, weights_path.resolve(), calibration_path.resolve(), tmp.resolve(),
                                  scheme.name, precision,
                                  Path(qat_ranges).resolve() if qat_ranges is not None else None)
        try:
            proc = subprocess.run(command, env=env, cwd=str(PROJECT_ROOT), capture_output=True, text=True,
                                  errors="replace", timeout=timeout_s)
        except subprocess.TimeoutExpired as exc:
            stderr = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else (exc.stderr or "")
            raise ToolError(TOOL, f"timed out after {timeout_s:g} s converting {weights_path} "
                                  f"(last stderr line: {last_line(stderr)})") from None
        if proc.returncode != 0:
            how = describe_exit(proc.returncode)
            raise ToolError(TOOL, f"conversion of {weights_path} failed ({how}): {last_line(proc.stderr)}")
        if not tmp.is_file() or tmp.stat().st_size == 0:
            raise ToolError(TOOL, f"conversion of {weights_path} exited 0 but wrote no model")
        try:
            validate_quantized_model(tmp, contract, scheme)
        except InputFileError as exc:
            raise ToolError(TOOL, f"conversion of {weights_path} produced an unusable model: {exc.problem}") from None
    return out_path, _worker_summary(proc.stdout)


def _worker_summary(stdout: str) -> dict:
    """The JSON line the worker prints last ({} if it printed none: the model was checked already)."""
    for line in reversed(stdout.strip().splitlines()):
        try:
            found = json.loads(line)
        except ValueError:
            continue
        if isinstance(found, dict):
            return found
    return {}


def convert_untrained(model_cfg: ModelConfig, bins: int, out_path: Path, seed: int = 0, frames: int = 64,
                      scheme: str | QuantScheme = "int8", precision: dict | None = None) -> Path:
    """Quantised .tflite of an UNTRAINED architecture: random weights, random calibration (features
    ~ N(0, 1), states uniform in (-1, 1)).

    What it is for: Vela's cycles, KiB and MACs depend on the shapes, not on trained values,
    so this tells what an architecture costs on the NPU before any training (and gives tests
    and benchmarks a real quantised model in seconds). Its audio quality means nothing.
    """
    from sepipe.models import family_of
    from sepipe.models.keras_backend import keras

    family = family_of(model_cfg)
    feature_name = family.contract(model_cfg, bins).feature.name
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".untrained-", dir=out_path.parent))
    try:
        keras.utils.set_random_seed(seed)
        model = family.build_streaming(model_cfg, bins)
        model.save_weights(str(work / "streaming.weights.h5"))
        rng = np.random.default_rng(seed)
        inputs = {name: (rng.standard_normal((frames, int(t.shape[-1]))) if name == feature_name
                         else rng.uniform(-1, 1, (frames, int(t.shape[-1])))).astype(np.float32)
                  for name, t in ((t.name.split(":")[0], t) for t in model.inputs)}
        save_calibration(CalibrationSet(inputs, {"seed": seed, "source": "random (untrained model)"}), work / "cal.npz")
        return convert_quantized(model_cfg, bins, work / "streaming.weights.h5", work / "cal.npz", out_path,
                                 scheme=scheme, precision=precision)
    finally:
        shutil.rmtree(work, ignore_errors=True)


__all__ = ["convert_quantized", "convert_with_summary", "convert_untrained", "ModelIO", "TOOL"]
