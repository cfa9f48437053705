"""What TFLite Micro needs to know of a model's operators: its op types (the op resolver list) and the shape
and types of every FULLY_CONNECTED layer (the CMSIS-NN arena rule, sepipe.bundle.kernel_arena).

Read from the flatbuffer with Vela's bundled bindings (no TensorFlow), like sepipe.deploy.tflite_info.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sepipe.errors import InputFileError


@dataclass(frozen=True)
class FullyConnected:
    """One FULLY_CONNECTED operator: its output tensor's name, types and output channels."""
    output: str
    input_type: str        # 'int8', 'int16', 'float32', ...
    filter_type: str
    out_channels: int      # the output's last dimension: CMSIS-NN keeps one int32 kernel sum per channel
    const_filter: bool     # weights in the flatbuffer (a filter computed at run time gets a scratch buffer)


@dataclass(frozen=True)
class ModelOps:
    op_types: tuple[str, ...]                 # each op type once, in order of first use ('ethos-u' for Vela's op)
    counts: dict[str, int]                    # operators per type
    fully_connected: tuple[FullyConnected, ...]

    def to_dict(self) -> dict:
        return {"op_types": list(self.op_types), "counts": dict(self.counts),
                "fully_connected": [vars(fc) for fc in self.fully_connected]}


def read_model_ops(data: bytes, path: str | Path = "model") -> ModelOps:
    """The operators of the first subgraph (the one TFLM runs) of a .tflite; InputFileError naming `path` when
    the flatbuffer cannot be walked."""
    try:
        return _walk(bytes(data))
    except Exception as exc:  # flatbuffers raises struct / index errors on garbage
        raise InputFileError(path, f"not a readable TFLite flatbuffer ({exc.__class__.__name__}: {exc})") from None


def _walk(data: bytes) -> ModelOps:
    from ethosu.vela.tflite.BuiltinOperator import BuiltinOperator
    from ethosu.vela.tflite.Model import Model
    from ethosu.vela.tflite.TensorType import TensorType

    op_names = {value: key for key, value in vars(BuiltinOperator).items() if not key.startswith("_")}
    type_names = {value: key.lower() for key, value in vars(TensorType).items() if not key.startswith("_")}
    model = Model.GetRootAs(data, 0)
    codes = []
    for i in range(model.OperatorCodesLength()):
        code = model.OperatorCodes(i)
        custom = code.CustomCode()
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        codes.append(custom.decode(errors="replace") if custom else op_names.get(builtin, f"BUILTIN_{builtin}"))
    subgraph = model.Subgraphs(0)
    order, counts, layers = [], {}, []
    for o in range(subgraph.OperatorsLength()):
        op = subgraph.Operators(o)
        kind = codes[op.OpcodeIndex()]
        if kind not in counts:
            order.append(kind)
        counts[kind] = counts.get(kind, 0) + 1
        if kind == "FULLY_CONNECTED":
            layers.append(_fully_connected(model, subgraph, op, type_names))
    return ModelOps(tuple(order), counts, tuple(layers))


def _fully_connected(model, subgraph, op, type_names) -> FullyConnected:
    inputs, output = op.InputsAsNumpy(), subgraph.Tensors(int(op.OutputsAsNumpy()[0]))
    source, weights = subgraph.Tensors(int(inputs[0])), subgraph.Tensors(int(inputs[1]))
    buffer = model.Buffers(weights.Buffer()) if weights.Buffer() > 0 else None
    const = buffer is not None and (buffer.DataLength() > 0 or buffer.Size() > 0)
    shape = [int(d) for d in output.ShapeAsNumpy()]
    return FullyConnected(output=output.Name().decode(errors="replace"), input_type=type_names.get(source.Type(), "?"),
                          filter_type=type_names.get(weights.Type(), "?"), out_channels=shape[-1] if shape else 0,
                          const_filter=bool(const))
