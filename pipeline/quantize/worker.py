"""Subprocess entry of the quantised conversion: `python -m sepipe.quantize.worker ...`.

Run by `sepipe.quantize.convert.convert_quantized` only; the converter can segfault inside
calibration, and a separate process turns that into an exit status the parent
reports. Any error here ends the process with exit code 1 and ONE last stderr
line `convert_worker: <what went wrong>`, which the parent quotes.

Steps: rebuild the streaming model from the model config (its registered family), load the weights
(a `.weights.h5` saved from the streaming model, or from the sequence model,
which is then copied layer by layer into the streaming model; the file must
hold exactly the model's weight arrays), calibrate with a
representative dataset that yields dicts keyed by input name, write the
full-integer flatbuffer to --out with the converter settings of `--scheme`
(sepipe.quantize.schemes: int8, or int16x8, TFLite's 16x8 mode; or `mixed` with `--precision`: one
conversion per precision, spliced). With `--qat-ranges`, the activation tensors then take the QAT-trained
ranges (sepipe.quantize.qat_ranges); under `mixed`, on the spliced graph, each tensor at its own width.
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


def _weight_shapes_in_file(weights_path: Path) -> list[tuple[int, ...]]:
    """Shapes of every array stored in a Keras weights file (new `.weights.h5` or legacy HDF5 layout)."""
    import h5py

    shapes: list[tuple[int, ...]] = []
    try:
        with h5py.File(weights_path, "r") as handle:
            # new layout: the model's arrays under 'layers/' (an 'optimizer/' group may follow a fit);
            # legacy layout: one group per layer, nothing else
            root = handle["layers"] if "layers" in handle else handle
            root.visititems(lambda _, obj: shapes.append(tuple(obj.shape)) if isinstance(obj, h5py.Dataset) else None)
    except OSError as exc:
        raise WorkerError(f"{weights_path}: not a Keras HDF5 weights file ({' '.join(str(exc).split())})") from None
    return shapes


def load_streaming_weights(model_cfg, bins: int, weights_path: Path):
    """The streaming model with the weights of `weights_path`, saved by `save_weights` from the
    streaming model or from the sequence model of the same config.

    Keras' `.weights.h5` loader matches layers by structure and ignores arrays the model
    does not use (a 2-layer file loads into a 1-layer model without a word), so the file
    must hold exactly the arrays the model has: same count, same shapes.
    """
    from sepipe.models import family_of

    family = family_of(model_cfg)
    streaming = family.build_streaming(model_cfg, bins)
    in_file = sorted(_weight_shapes_in_file(weights_path))
    in_model = sorted(tuple(int(d) for d in w.shape) for w in streaming.weights)
    if in_file != in_model:
        raise WorkerError(f"{weights_path}: holds {len(in_file)} weight arrays {in_file} but the model "
                          f"{model_cfg} has {len(in_model)} {in_model}; weights of another model config?")
    try:
        streaming.load_weights(str(weights_path))
        return streaming, "streaming"
    except (ValueError, OSError) as streaming_exc:
        sequence = family.build_sequence(model_cfg, bins)
        try:
            sequence.load_weights(str(weights_path))
        except (ValueError, OSError) as sequence_exc:
            raise WorkerError(f"{weights_path}: fits neither the streaming model "
                              f"({str(streaming_exc).splitlines()[0]}) nor the sequence model "
                              f"({str(sequence_exc).splitlines()[0]})") from None
        family.copy_weights(sequence, streaming)
        return streaming, "sequence"


def convert(model_cfg_json: str, bins: int, weights_path: Path, calibration_path: Path, out_path: Path,
            scheme_name: str = "int8", precision_json: str = "", qat_ranges_path: Path | None = None) -> dict:
    from sepipe.models import family_of, model_config_from_dict
    from sepipe.models.keras_backend import tf
    from sepipe.quantize.calibration import load_calibration
    from sepipe.quantize.schemes import get_scheme

    scheme = get_scheme(scheme_name)
    cfg = model_config_from_dict(json.loads(model_cfg_json))
    contract = family_of(cfg).contract(cfg, bins)
    model, weights_from = load_streaming_weights(cfg, bins, weights_path)
    names_in = {inp.name.split(":")[0] for inp in model.inputs}
    if names_in != set(contract.input_names) or not set(contract.output_names) <= set(model.output_names):
        raise WorkerError(f"the {cfg.family} family built a model with inputs {sorted(names_in)} and outputs "
                          f"{model.output_names}; its contract says {list(contract.input_names)} and "
                          f"{list(contract.output_names)}")

    cal = load_calibration(calibration_path)
    expected = {inp.name.split(":")[0]: tuple(inp.shape[1:]) for inp in model.inputs}
    got = {name: tuple(value.shape[1:]) for name, value in cal.inputs.items()}
    if expected != got:
        raise WorkerError(f"{calibration_path}: calibration inputs {got} do not match the model inputs {expected}")

    def representative_dataset():
        # Dicts keyed by input name: a list would be matched to TFLite's input order, not Keras'.
        for i in range(cal.frames):
            yield {name: value[i:i + 1] for name, value in cal.inputs.items()}

    start = time.monotonic()
    if getattr(scheme, "mixed", False):
        flatbuffer, extra = _convert_mixed(tf, model, representative_dataset, contract, precision_json)
    else:
        flatbuffer, extra = _convert_once(tf, model, representative_dataset, scheme), {}
    if qat_ranges_path is not None:
        # QAT scope 'full': the trained ranges replace calibration's. A mix is spliced first: its tensors are
        # matched on the graph that ships (an int8 conversion of an LSTM computes c, and so h, wrongly; its
        # values would match nothing), each takes the range at its own width, crossings requantise it
        flatbuffer, extra["qat_ranges"] = _apply_qat_ranges(flatbuffer, model, contract, cal, qat_ranges_path)
    seconds = time.monotonic() - start
    with open(out_path, "wb") as handle:
        handle.write(flatbuffer)
    return {"bytes": len(flatbuffer), "convert_s": round(seconds, 3), "calibration_frames": cal.frames,
            "weights_from": weights_from, **scheme.record(), **extra}


def _convert_once(tf, model, representative_dataset, scheme) -> bytes:
    """The flatbuffer of one scheme (or float: no quantization at all, for float regions)."""
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if scheme is None:
        return converter.convert()
    settings = scheme.converter_settings(tf)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative_dataset
    converter.target_spec.supported_ops = settings["supported_ops"]
    converter.inference_input_type = settings["inference_input_type"]
    converter.inference_output_type = settings["inference_output_type"]
    return converter.convert()


def _convert_mixed(tf, model, representative_dataset, contract, precision_json: str) -> tuple[bytes, dict]:
    """One conversion per precision the plan uses (the int8 one always: the base graph), spliced by the
    precision each operator's layer group declares (sepipe.quantize.precision, sepipe.quantize.splice)."""
    from sepipe.quantize.precision import PRECISIONS, PrecisionPlan, operator_precisions
    from sepipe.quantize.schemes import get_scheme
    from sepipe.quantize.splice import operator_names, signature_tensor_names, splice

    plan = PrecisionPlan(tuple((k, v) for k, v in json.loads(precision_json or "{}").items()))
    if not plan.mapping:
        raise WorkerError("the mixed scheme needs a precision mapping (variants[].precision)")
    needed = [p for p in PRECISIONS if p in plan.precisions() | {"int8"}]
    models = {p: _convert_once(tf, model, representative_dataset, None if p == "float" else get_scheme(p))
              for p in needed}
    operators = operator_names(models["int8"])
    precisions, layers = operator_precisions(operators, plan, contract, signature_tensor_names(models["int8"]))
    flatbuffer = splice(models, precisions)
    per_layer: dict[str, dict[str, int]] = {}
    for layer, precision in zip(layers, precisions):
        per_layer.setdefault(layer, {}).setdefault(precision, 0)
        per_layer[layer][precision] += 1
    return flatbuffer, {"precision": plan.as_dict, "precision_label": plan.label(), "operators_by_layer": per_layer}


QAT_MATCH_ROWS = 64      # calibration rows used to match TFLite tensors with the trained ranges' tensors


def _apply_qat_ranges(flatbuffer: bytes, model, contract, cal, ranges_path: Path) -> tuple[bytes, dict]:
    from sepipe.compress.qat_model import range_key, record_intermediates
    from sepipe.quantize.qat_ranges import apply_trained_ranges, match_tensors

    try:
        ranges = json.loads(Path(ranges_path).read_text())["ranges"]
    except (OSError, ValueError, KeyError) as exc:
        raise WorkerError(f"{ranges_path}: not a QAT ranges file ({exc.__class__.__name__}: {exc})") from None
    rows = {name: value[:QAT_MATCH_ROWS] for name, value in cal.inputs.items()}
    recorded = record_intermediates(model, ranges, rows, contract.states, contract.feature.name)
    matches = match_tensors(flatbuffer, rows, recorded)
    flatbuffer, record = apply_trained_ranges(flatbuffer, ranges, matches, range_key)
    if not record["from_qat"]:
        raise WorkerError(f"{ranges_path}: no tensor of the converted model matched a trained range")
    return flatbuffer, record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="convert_worker", description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="the model config as JSON (dataclasses.asdict)")
    parser.add_argument("--bins", required=True, type=int)
    parser.add_argument("--weights", required=True, type=Path)
    parser.add_argument("--calibration", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--scheme", default="int8", help="a registered quantization scheme (int8, int16x8, mixed)")
    parser.add_argument("--precision", default="", help="mixed scheme: the precision mapping as JSON")
    parser.add_argument("--qat-ranges", type=Path, default=None, help="trained activation ranges (QAT scope full)")
    args = parser.parse_args(argv)
    try:
        summary = convert(args.model, args.bins, args.weights, args.calibration, args.out, args.scheme,
                          args.precision, args.qat_ranges)
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
