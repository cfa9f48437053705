"""Subprocess entry of the int8 conversion: `python -m pipeline.convert_worker ...`.

Run by `pipeline.convert.convert_int8` only; the converter can segfault inside
calibration, and a separate process turns that into an exit status the parent
reports. Any error here ends the process with exit code 1 and ONE last stderr
line `convert_worker: <what went wrong>`, which the parent quotes.

Steps: rebuild the streaming model from the ModelConfig, load the weights by
layer name (from a sequence- or streaming-model `.weights.h5`; every weighted
layer of the streaming model must be in the file), calibrate with a
representative dataset that yields dicts keyed by input name, write the
full-integer int8 flatbuffer (int8 inputs and outputs) to --out.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


class WorkerError(Exception):
    pass


def _check_weights_file(model, weights_path: Path) -> None:
    """Refuse a weights file that lacks a weighted layer of `model` (by-name loading would skip it silently)."""
    import h5py

    try:
        with h5py.File(weights_path, "r") as handle:
            group = handle["model_weights"] if "model_weights" in handle else handle
            names = [n.decode() if isinstance(n, bytes) else str(n) for n in group.attrs.get("layer_names", [])]
            counts = {name: len(group[name].attrs.get("weight_names", [])) for name in names if name in group}
    except OSError as exc:
        raise WorkerError(f"{weights_path}: not a Keras HDF5 weights file ({exc})") from None
    if not names:
        raise WorkerError(f"{weights_path}: not a Keras HDF5 weights file (no 'layer_names'); "
                          "save it with model.save_weights('<name>.weights.h5')")
    for layer in model.layers:
        if not layer.weights:
            continue
        if layer.name not in counts:
            raise WorkerError(f"{weights_path}: has no weights for layer '{layer.name}' "
                              f"(file layers: {[n for n in names if counts.get(n)]}); wrong model config?")
        if counts[layer.name] != len(layer.weights):
            raise WorkerError(f"{weights_path}: layer '{layer.name}' has {counts[layer.name]} weights in the file, "
                              f"{len(layer.weights)} in the model; wrong model config?")


def convert(model_cfg_json: str, bins: int, weights_path: Path, calibration_path: Path, out_path: Path) -> dict:
    from models.keras_backend import tf
    from models.mask_rnn import build_streaming_model
    from pipeline.config import ModelConfig
    from pipeline.convert import load_calibration

    cfg = ModelConfig(**json.loads(model_cfg_json))
    model = build_streaming_model(cfg, bins)
    _check_weights_file(model, weights_path)
    try:
        model.load_weights(str(weights_path), by_name=True)
    except (ValueError, OSError) as exc:
        raise WorkerError(f"{weights_path}: weights do not fit the model ({str(exc).splitlines()[0]})") from None

    cal = load_calibration(calibration_path)
    expected = {inp.name.split(":")[0]: tuple(inp.shape[1:]) for inp in model.inputs}
    got = {name: tuple(value.shape[1:]) for name, value in cal.inputs.items()}
    if expected != got:
        raise WorkerError(f"{calibration_path}: calibration inputs {got} do not match the model inputs {expected}")

    def representative_dataset():
        # Dicts keyed by input name: a list would be matched to TFLite's input order, not Keras'.
        for i in range(cal.frames):
            yield {name: value[i:i + 1] for name, value in cal.inputs.items()}

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative_dataset
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    start = time.monotonic()
    flatbuffer = converter.convert()
    seconds = time.monotonic() - start
    with open(out_path, "wb") as handle:
        handle.write(flatbuffer)
    return {"bytes": len(flatbuffer), "convert_s": round(seconds, 3), "calibration_frames": cal.frames}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="convert_worker", description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="ModelConfig as JSON")
    parser.add_argument("--bins", required=True, type=int)
    parser.add_argument("--weights", required=True, type=Path)
    parser.add_argument("--calibration", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args(argv)
    try:
        summary = convert(args.model, args.bins, args.weights, args.calibration, args.out)
    except Exception as exc:  # noqa: BLE001 - report every failure as one line for the parent
        message = " ".join(str(exc).split()) or exc.__class__.__name__
        if not isinstance(exc, WorkerError):
            message = f"{exc.__class__.__name__}: {message}"
        sys.stderr.flush()
        print(f"convert_worker: {message}", file=sys.stderr, flush=True)
        return 1
    print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
