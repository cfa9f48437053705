"""What a .tflite is, read from its flatbuffer before Vela sees it (regor segfaults on some corrupt files).

Needs only Vela's bundled flatbuffer bindings: no TensorFlow, so `sepipe compile` works from the light install.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sepipe.errors import InputFileError


@dataclass(frozen=True)
class TfliteInfo:
    operators: int
    op_types: tuple[str, ...]
    float_activations: bool      # some operator reads or writes a float32 tensor that is not a constant
    int8_weights: bool           # some constant tensor is int8


def read_tflite_bytes(path: str | Path) -> bytes:
    """The bytes of a .tflite file; InputFileError naming it when missing or not a TFLite flatbuffer."""
    path = Path(path)
    if not path.is_file():
        raise InputFileError(path, "model file not found")
    data = path.read_bytes()
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise InputFileError(path, "not a TFLite flatbuffer (no 'TFL3' identifier); corrupt or wrong file")
    return data


def inspect_tflite(path: str | Path) -> TfliteInfo:
    """Walk the flatbuffer: operator types, float activations, int8 weights.

    InputFileError naming the file: missing, empty, no 'TFL3' identifier, unreadable structure
    (indices out of range), no operators, or already compiled by Vela (an 'ethos-u' custom op).
    """
    from ethosu.vela.tflite.BuiltinOperator import BuiltinOperator
    from ethosu.vela.tflite.Model import Model
    from ethosu.vela.tflite.TensorType import TensorType

    path = Path(path)
    data = read_tflite_bytes(path)
    op_names = {value: key for key, value in vars(BuiltinOperator).items() if not key.startswith("_")}
    try:
        model = Model.GetRootAs(data, 0)
        codes = []
        for i in range(model.OperatorCodesLength()):
            code = model.OperatorCodes(i)
            builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
            custom = code.CustomCode()
            codes.append(custom.decode(errors="replace") if custom else op_names.get(builtin, f"BUILTIN_{builtin}"))
        n_buffers = model.BuffersLength()
        types, operators, float_act, int8_weights = [], 0, False, False
        for s in range(model.SubgraphsLength()):
            subgraph = model.Subgraphs(s)
            n_tensors = subgraph.TensorsLength()
            tensors = [subgraph.Tensors(t) for t in range(n_tensors)]
            const = []
            for tensor in tensors:
                buffer = tensor.Buffer()
                if not 0 <= buffer < max(n_buffers, 1):
                    raise ValueError(f"tensor buffer index {buffer} out of range")
                tensor.Name()
                const.append(buffer > 0 and (model.Buffers(buffer).DataLength() > 0
                                             or model.Buffers(buffer).Size() > 0))
            for o in range(subgraph.OperatorsLength()):
                op = subgraph.Operators(o)
                index = op.OpcodeIndex()
                if not 0 <= index < len(codes):
                    raise ValueError(f"operator code index {index} out of range")
                types.append(codes[index])
                operators += 1
                for t in list(op.InputsAsNumpy()) + list(op.OutputsAsNumpy()):
                    if t < 0:
                        continue   # optional input left out
                    if t >= n_tensors:
                        raise ValueError(f"tensor index {t} out of range")
                    kind = tensors[t].Type()
                    float_act |= kind == TensorType.FLOAT32 and not const[t]
                    int8_weights |= kind == TensorType.INT8 and const[t]
    except InputFileError:
        raise
    except Exception as exc:  # flatbuffers raises struct / index / unicode errors on garbage
        raise InputFileError(path, f"not a readable TFLite flatbuffer ({exc.__class__.__name__}: {exc})") from None
    if operators == 0:
        raise InputFileError(path, "TFLite model has no operators")
    if "ethos-u" in types:
        raise InputFileError(path, "already compiled by Vela (has an 'ethos-u' custom operator); "
                                   "pass the int8 .tflite from the convert stage")
    return TfliteInfo(operators, tuple(types), float_act, int8_weights)


def kind_hint(info: TfliteInfo) -> str:
    """Why a model has float operators, and what to do about it ('' for a full-integer model)."""
    if info.float_activations and info.int8_weights:
        return (" (a dynamic-range model: int8 weights, float32 activations; convert with full-integer "
                "int8 quantisation, sepipe.quantize.convert.convert_quantized)")
    if info.float_activations:
        return " (a float32 model; convert with full-integer int8 quantisation, sepipe.quantize.convert.convert_quantized)"
    return ""
