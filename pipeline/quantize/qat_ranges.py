"""Carry QAT-trained activation ranges into a converted .tflite (QAT scope 'full').

Route, and why: the converter's QAT path (FakeQuant ops read as ranges) needs every tensor fake-quantised
in the graph it converts and its 16x8 mode is not on that path (the MLIR quantizer fails on the
GRU's `1 - z` at int16: 'tfl.sub op operands have same element type'); the production 16x8 route is the
older quantizer, which overwrites any range in the model with the statistics it logs. So the model is
converted exactly as PTQ (same graph, same ops, same converter settings: Vela and the runners see
nothing new), then the activation tensors' scale and zero point are set from the trained ranges:

  1. match: the PTQ model runs on calibration rows (features + float states), every activation tensor
     is dequantised and compared with each fake-quantised Keras tensor of the same width on the same
     rows (sepipe.compress.qat_model.record_intermediates); the closest within `MATCH_TOLERANCE` of
     that tensor's range is it. Matching by value, not by name, survives the converter's renaming and
     fusions (FC + bias + ReLU is one tensor; split outputs get joined names);
  2. set: int8 tensors get scale (max - min) / 255 and zero point round(-128 - min / scale) (0 kept
     exact), int16 tensors scale max(|min|, |max|) / 32767 and zero point 0, as the converter derives
     them from calibration; LOGISTIC / TANH outputs keep their fixed scales;
  3. propagate: SPLIT / SPLIT_V / RESHAPE / SQUEEZE outputs take their input's parameters (their kernels
     copy raw values; they are left out of step 1, where a gate's pre-activation slice can match another
     tensor's values by coincidence); in a mixed model, a QUANTIZE at a crossing gives its output the
     input's range at the output's width;
  4. re-derive each FULLY_CONNECTED bias whose input scale changed: float bias = q * old scale,
     requantised at input scale x weight scale (per channel), int32 (int64 for 16x8).

What is left on calibration ranges (unmatched tensors) is listed in the record.
"""

from __future__ import annotations

import numpy as np

MATCH_TOLERANCE = 0.1      # mean |dequantised - float| / float range, over the rows
SPAN_RATIO = 0.5           # and the dequantised span within [0.5, 2] x the float span
FIXED_OUTPUT_OPS = {"LOGISTIC", "TANH"}
SAME_SCALE_OPS = {"SPLIT": 1, "SPLIT_V": 0, "RESHAPE": 0, "SQUEEZE": 0}   # op -> index of its data input


def _op_names():
    from tensorflow.lite.python import schema_py_generated as schema

    return {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}


def quant_params(lo: float, hi: float, dtype: str) -> tuple[float, int]:
    """(scale, zero point) the converter gives a tensor whose float range is [lo, hi]."""
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    if dtype == "int16":
        return max(-lo, hi, 1e-12) / 32767.0, 0
    scale = max(hi - lo, 1e-12) / 255.0
    return scale, int(np.clip(np.round(-128.0 - lo / scale), -128, 127))


def _activation_values(tflite_bytes: bytes, inputs: dict[str, np.ndarray]) -> dict[int, np.ndarray]:
    """{tensor index: (N, size) dequantised values} of every quantised non-constant tensor, one invoke per row."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_content=bytes(tflite_bytes), experimental_preserve_all_tensors=True)
    runner = interp.get_signature_runner()
    details = runner.get_input_details()
    tensors = [t for t in interp.get_tensor_details()
               if t["quantization"][0] and t["dtype"] in (np.int8, np.int16)]
    rows = next(iter(inputs.values())).shape[0]
    values: dict[int, list] = {t["index"]: [] for t in tensors}
    for i in range(rows):
        feed = {}
        for name, d in details.items():
            scale, zp = d["quantization"]
            info = np.iinfo(d["dtype"])
            feed[name] = np.clip(np.round(inputs[name][i:i + 1] / scale) + zp, info.min, info.max).astype(d["dtype"])
        runner(**feed)
        for t in tensors:
            try:
                raw = interp.get_tensor(t["index"])
            except ValueError:          # constants and tensors without data
                continue
            scale, zp = t["quantization"]
            values[t["index"]].append((raw.astype(np.float64).ravel() - zp) * scale)
    return {k: np.stack(v) for k, v in values.items() if len(v) == rows}


def match_tensors(tflite_bytes: bytes, inputs: dict[str, np.ndarray],
                  recorded: dict[str, np.ndarray]) -> dict[int, tuple[str, float]]:
    """{tensor index: (record key, relative error)} for the tensors that match a recorded Keras tensor."""
    values = _activation_values(tflite_bytes, inputs)
    found = {}
    for index, got in values.items():
        best = None
        for key, want in recorded.items():
            if want.shape != got.shape:
                continue
            span = float(want.max() - want.min()) or 1.0
            got_span = float(got.max() - got.min())
            err = float(np.mean(np.abs(got - want))) / span
            # the same value has about the same span: a wide tensor (an LSTM's c, +-250) would otherwise be
            # within tolerance of any small one (an int8 graph's h)
            if err < MATCH_TOLERANCE and SPAN_RATIO <= got_span / span <= 1 / SPAN_RATIO \
                    and (best is None or err < best[1]):
                best = (key, err)
        if best is not None:
            found[index] = best
    return found


def apply_trained_ranges(tflite_bytes: bytes, ranges: dict[str, dict], matches: dict[int, tuple[str, float]],
                         range_key) -> tuple[bytes, dict]:
    """The model with the matched tensors' quantisation set from `ranges` (steps 2-4 above) and a record."""
    from tensorflow.lite.tools import flatbuffer_utils as fu

    model = fu.convert_bytearray_to_object(bytearray(tflite_bytes))
    graph, names = model.subgraphs[0], _op_names()
    op_code = lambda op: names.get(max(model.operatorCodes[op.opcodeIndex].builtinCode,
                                       model.operatorCodes[op.opcodeIndex].deprecatedBuiltinCode), "?")
    dtype_of = {2: "int32", 9: "int8", 7: "int16", 4: "int64"}
    produced_by = {int(o): op_code(op) for op in graph.operators for o in op.outputs}
    old = {i: (float(t.quantization.scale[0]), int(t.quantization.zeroPoint[0]))
           for i, t in enumerate(graph.tensors) if t.quantization is not None and t.quantization.scale is not None
           and len(t.quantization.scale) == 1}
    record = {"from_qat": {}, "fixed": [], "bits_differ": [], "propagated": []}

    def set_params(index, scale, zp):
        q = graph.tensors[index].quantization
        q.scale, q.zeroPoint = np.array([scale], np.float32), np.array([zp], np.int64)

    for index, (key, err) in sorted(matches.items()):
        name = graph.tensors[index].name.decode()
        if produced_by.get(index) in FIXED_OUTPUT_OPS:
            record["fixed"].append(name)
            continue
        if produced_by.get(index) in SAME_SCALE_OPS or produced_by.get(index) == "QUANTIZE":
            continue        # step 3 sets it; a value match here is a coincidence (or another version of one)
        r = ranges[range_key(key)]
        dtype = dtype_of.get(graph.tensors[index].type, "?")
        # bits 0: a float group's value, quantised here only where an integer region reads it (its EMA range)
        if r["bits"] and {"int8": 8, "int16": 16}.get(dtype) != r["bits"]:
            record["bits_differ"].append(f"{name}: {dtype} tensor, {r['bits']}-bit range")
        set_params(index, *quant_params(r["min"], r["max"], dtype))
        record["from_qat"][name] = {"key": range_key(key), "match_error": round(err, 4)}
    for op in graph.operators:                      # topological order: a chain of splits follows
        data = SAME_SCALE_OPS.get(op_code(op))
        if data is not None and _quantized(graph.tensors[op.inputs[data]]):    # not in a float region
            src = graph.tensors[op.inputs[data]].quantization
            for o in op.outputs:
                set_params(o, float(src.scale[0]), int(src.zeroPoint[0]))
                record["propagated"].append(graph.tensors[o].name.decode())
        elif op_code(op) == "QUANTIZE" and dtype_of.get(graph.tensors[op.inputs[0]].type) in ("int8", "int16"):
            # a mixed model's requantisation at a crossing: the same value's range at the other width
            src, out = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
            lo, hi = _float_range(src, dtype_of[src.type])
            set_params(op.outputs[0], *quant_params(lo, hi, dtype_of.get(out.type, "?")))
            record["propagated"].append(out.name.decode())
    record["biases_rederived"] = _rederive_biases(model, graph, op_code, old)
    changed = {graph.tensors[i].name.decode() for i in old
               if (float(graph.tensors[i].quantization.scale[0]), int(graph.tensors[i].quantization.zeroPoint[0]))
               != old[i]}
    all_acts = {graph.tensors[i].name.decode() for i in old if _is_activation(model, graph.tensors[i])}
    record["from_calibration"] = sorted(all_acts - set(record["from_qat"]) - set(record["fixed"])
                                       - set(record["propagated"]) - changed)
    return bytes(fu.convert_object_to_bytearray(model)), record


def _quantized(tensor) -> bool:
    q = tensor.quantization
    return q is not None and q.scale is not None and len(q.scale) > 0


def _float_range(tensor, dtype: str) -> tuple[float, float]:
    """The float range an int8 / int16 tensor's scale and zero point represent."""
    info = np.iinfo(np.int16 if dtype == "int16" else np.int8)
    scale, zp = float(tensor.quantization.scale[0]), int(tensor.quantization.zeroPoint[0])
    return (info.min - zp) * scale, (info.max - zp) * scale


def _is_activation(model, tensor) -> bool:
    data = model.buffers[tensor.buffer].data if tensor.buffer < len(model.buffers) else None
    return data is None or len(data) == 0


def _rederive_biases(model, graph, op_code, old: dict) -> int:
    count = 0
    for op in graph.operators:
        if op_code(op) != "FULLY_CONNECTED" or len(op.inputs) < 3 or op.inputs[2] < 0:
            continue
        x, w, b = (graph.tensors[i] for i in op.inputs[:3])
        if not _quantized(x):           # a float region's FC: float bias
            continue
        new_in = float(x.quantization.scale[0])
        old_in = old.get(int(op.inputs[0]), (new_in, 0))[0]
        if new_in == old_in:
            continue
        buf = model.buffers[b.buffer]
        dtype = np.int64 if b.type == 4 else np.int32
        q = np.frombuffer(np.asarray(buf.data, np.uint8).tobytes(), dtype)
        old_scale = np.asarray(b.quantization.scale, np.float64)
        new_scale = new_in * np.asarray(w.quantization.scale, np.float64)
        info = np.iinfo(dtype)
        requant = np.clip(np.round(q * old_scale / new_scale), info.min, info.max).astype(dtype)
        buf.data = np.frombuffer(requant.tobytes(), np.uint8)
        b.quantization.scale = new_scale.astype(np.float32)
        count += 1
    return count


def record_summary(record: dict) -> dict:
    """What the convert record keeps of the worker's `qat_ranges` record: counts, and the lists that flag a
    problem (tensors left on calibration, widths that differ from the trained range's)."""
    return {"from_qat": len(record["from_qat"]), "fixed": len(record["fixed"]),
            "propagated": len(record.get("propagated", [])), "biases_rederived": record["biases_rederived"],
            "from_calibration": record["from_calibration"], "bits_differ": record["bits_differ"]}
