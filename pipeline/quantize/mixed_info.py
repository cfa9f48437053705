"""What a mixed-precision .tflite holds, read back from its flatbuffer (no TensorFlow: Vela's reader).

`precision_summary` is what the convert record, the report and tests say of a mixed model: per layer
of the family's groups the activation type its operators actually compute in (int8, int16, float32),
and how many QUANTIZE / DEQUANTIZE operators join the regions. It is read from the file, not from the
declaration, so a layer the splice did not convert as declared shows up.
"""

from __future__ import annotations

from typing import Any

from sepipe.contract import ModelContract
from sepipe.quantize.precision import PrecisionPlan, _layer_of

ACTIVATION_NAME = {"int8": "int8", "int16": "int16x8", "float32": "float"}
BOUNDARY_OPS = ("QUANTIZE", "DEQUANTIZE")


def operators(tflite_bytes: bytes) -> list[tuple[str, list[tuple[str, str]], list[tuple[str, str]]]]:
    """(op name, [(input name, dtype)], [(output name, dtype)]) per operator of the first subgraph,
    constant inputs left out."""
    from ethosu.vela.tflite.BuiltinOperator import BuiltinOperator
    from ethosu.vela.tflite.Model import Model
    from ethosu.vela.tflite.TensorType import TensorType

    model = Model.GetRootAsModel(bytearray(tflite_bytes), 0)
    graph = model.Subgraphs(0)
    op_names = {v: k for k, v in vars(BuiltinOperator).items() if not k.startswith("_")}
    type_names = {v: k.lower() for k, v in vars(TensorType).items() if not k.startswith("_")}

    def tensor(index: int) -> tuple[str, str] | None:
        t = graph.Tensors(index)
        buffer = model.Buffers(t.Buffer())
        if buffer is not None and buffer.DataLength() > 0:
            return None                      # a constant (weights, bias, axis)
        return t.Name().decode(), type_names.get(t.Type(), "?")

    rows = []
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        code = model.OperatorCodes(op.OpcodeIndex())
        name = op_names.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()), "?")
        ins = [t for t in (tensor(op.Inputs(j)) for j in range(op.InputsLength()) if op.Inputs(j) >= 0) if t]
        outs = [t for t in (tensor(op.Outputs(j)) for j in range(op.OutputsLength())) if t]
        rows.append((name, ins, outs))
    return rows


def layer_precisions(tflite_bytes: bytes, contract: ModelContract) -> dict[str, list[str]]:
    """Layer -> the precisions its operators compute in (sorted), boundary operators left out."""
    layers = [layer for _, group in contract.layer_groups for layer in group]
    found: dict[str, set[str]] = {}
    last = None
    for name, ins, outs in operators(tflite_bytes):
        layer = _layer_of([n for n, _ in outs], layers) or _layer_of([n for n, _ in ins], layers) or last
        last = layer
        if name in BOUNDARY_OPS or layer is None:
            continue
        for _, dtype in outs:
            found.setdefault(layer, set()).add(ACTIVATION_NAME.get(dtype, dtype))
    return {layer: sorted(found[layer]) for layer in layers if layer in found}


def precision_summary(tflite_bytes: bytes, mapping: dict[str, str], contract: ModelContract) -> dict[str, Any]:
    ops = operators(tflite_bytes)
    return {"declared": dict(mapping), "label": PrecisionPlan(tuple(mapping.items())).label(),
            "layers": layer_precisions(tflite_bytes, contract),
            "quantize_ops": sum(name == "QUANTIZE" for name, _, _ in ops),
            "dequantize_ops": sum(name == "DEQUANTIZE" for name, _, _ in ops)}
