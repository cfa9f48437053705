"""Read (and edit in place) the int8 weight tensors of a TFLite flatbuffer's FullyConnected ops.

Parsed with the flatbuffer schema shipped by ai_edge_litert (no TensorFlow import). A weight
tensor is the constant second input of a FULLY_CONNECTED op: int8, (out, in) = the Keras kernel
transposed, per-channel scales (one per output row). Biases (int32, third input) are not weights here.

Because `np.frombuffer` over a `bytearray` is a writable view, editing a weight array edits the
model bytes in place: every other byte of the file stays as it was.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

_LAYER_RE = re.compile(r"/([A-Za-z0-9_.-]+)/MatMul(_1)?(?:[;:]|$)")


@dataclass
class WeightTensor:
    name: str               # tensor name, e.g. 'gru_streaming/rnn_1/MatMul_1'
    tensor_index: int
    values: np.ndarray      # int8 (out, in), a view into the model bytes
    scale: np.ndarray       # per-channel (out,) or per-tensor (1,) float32
    zero_point: np.ndarray  # same length as scale

    @property
    def layer(self) -> str | None:
        """Keras layer the tensor comes from ('rnn_1'), from the converter's name, or None."""
        match = _LAYER_RE.search(self.name)
        return match.group(1) if match else None

    @property
    def weight(self) -> str:
        """'recurrent_kernel' for an RNN cell's state matmul (`MatMul_1`), else 'kernel'."""
        match = _LAYER_RE.search(self.name)
        return "recurrent_kernel" if match and match.group(2) else "kernel"

    def magnitudes(self) -> np.ndarray:
        """|real value| of every element: (q - zero_point) * scale of its channel."""
        q = self.values.astype(np.float32)
        zp = self.zero_point.astype(np.float32)
        scale = self.scale.astype(np.float32)
        if scale.size == self.values.shape[0] and self.values.ndim == 2:
            return np.abs((q - zp[:, None]) * scale[:, None])
        return np.abs((q - zp.reshape(-1)[0]) * scale.reshape(-1)[0])

    def zero_value(self) -> np.ndarray:
        """The int8 code of real 0 for every element (the zero point of its channel)."""
        if self.zero_point.size == self.values.shape[0] and self.values.ndim == 2:
            return np.broadcast_to(self.zero_point.astype(np.int8)[:, None], self.values.shape)
        return np.full(self.values.shape, int(self.zero_point.reshape(-1)[0]), np.int8)


def fc_weight_tensors(data: bytearray | bytes) -> list[WeightTensor]:
    """The int8 constant weight tensors of every FULLY_CONNECTED op (each tensor once).

    With a `bytearray`, the returned `values` are writable views into it."""
    from ai_edge_litert import schema_py_generated as schema

    if len(data) < 8 or bytes(data[4:8]) != b"TFL3":
        raise ValueError("not a TFLite flatbuffer (no 'TFL3' identifier)")
    model = schema.Model.GetRootAs(data, 0)
    codes = []
    for i in range(model.OperatorCodesLength()):
        oc = model.OperatorCodes(i)
        codes.append(max(int(oc.BuiltinCode()), int(oc.DeprecatedBuiltinCode())))
    fc = schema.BuiltinOperator.FULLY_CONNECTED
    seen: set[tuple[int, int]] = set()
    found: list[WeightTensor] = []
    for g in range(model.SubgraphsLength()):
        graph = model.Subgraphs(g)
        for o in range(graph.OperatorsLength()):
            op = graph.Operators(o)
            if codes[op.OpcodeIndex()] != fc or op.InputsLength() < 2:
                continue
            t = op.Inputs(1)
            if t < 0 or (g, t) in seen:
                continue
            tensor = graph.Tensors(t)
            if tensor.Type() != schema.TensorType.INT8:
                continue
            buffer = model.Buffers(tensor.Buffer())
            if buffer.DataLength() == 0:
                if buffer.Offset() > 1:
                    raise ValueError("weights stored outside the flatbuffer (models over 2 GB) are not supported")
                continue  # not a constant
            seen.add((g, t))
            shape = tuple(int(d) for d in tensor.ShapeAsNumpy())
            values = buffer.DataAsNumpy().view(np.int8).reshape(shape)
            q = tensor.Quantization()
            scale = q.ScaleAsNumpy() if q is not None and q.ScaleLength() else np.ones(1, np.float32)
            zero_point = q.ZeroPointAsNumpy() if q is not None and q.ZeroPointLength() else np.zeros(1, np.int64)
            found.append(WeightTensor(tensor.Name().decode(errors="replace"), int(t), values,
                                      np.asarray(scale, np.float32), np.asarray(zero_point, np.int64)))
    return found
