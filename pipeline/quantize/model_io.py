"""A quantised model's inputs and outputs read from its flatbuffer, checked against a model contract.

`tflite_io(bytes, contract)` reads every input and output (signature name, tensor index, position,
shape, dtype, scale, zero point) through the signature def, BY NAME: the tensors themselves are
called `StatefulPartitionedCall:k` and their order is not Keras'. The state pairs come from the
contract (sepipe.contract); a model from outside the project gets its contract inferred by the
naming rule (`<x>_out` feeds `<x>`). No TensorFlow: the LiteRT interpreter reads the flatbuffer.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sepipe.contract import ModelContract, infer_contract
from sepipe.deploy.tflite_info import read_tflite_bytes
from sepipe.errors import InputFileError, last_line


@dataclass(frozen=True)
class TensorIO:
    """One model input or output.

    name: signature (Keras) name, e.g. 'rnn_1_h'; index: tensor index (TFLite
    set_tensor/get_tensor); position: place in the subgraph's input/output list
    (TFLM set_input/get_output); scale/zero_point: per-tensor quantisation
    (0.0 / 0 for a float tensor).
    """

    name: str
    index: int
    position: int
    shape: tuple[int, ...]
    dtype: str
    scale: float
    zero_point: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class StatePair:
    """A state output fed back to a state input (as the contract pairs them)."""

    output: str
    input: str
    same_quantization: bool   # True: the integers copy straight back; False: requantise


@dataclass(frozen=True)
class ModelIO:
    inputs: tuple[TensorIO, ...]     # in subgraph input order
    outputs: tuple[TensorIO, ...]    # in subgraph output order
    state_pairs: tuple[StatePair, ...]
    contract: ModelContract | None = None   # what the tensors were checked against (None: not checked)

    @property
    def io_type(self) -> str | None:
        """The one integer type of every input and output ('int8', or 'int16' for a 16x8 model), else None."""
        types = {t.dtype for t in self.inputs + self.outputs}
        return types.pop() if len(types) == 1 and types <= set(integer_io_types()) else None

    @property
    def integer_io(self) -> bool:
        """Every input and output int8 or int16 (one type, or a mixed-precision model's mix of both)."""
        return all(t.dtype in integer_io_types() for t in self.inputs + self.outputs)

    @property
    def scheme(self):
        """The registered QuantScheme whose models have this I/O type (None for a float or mixed model)."""
        from sepipe.quantize.schemes import scheme_for_io_dtype
        return scheme_for_io_dtype(self.io_type) if self.io_type else None

    @property
    def feature(self) -> TensorIO:
        """The feature input the contract names."""
        return self.input(self._contract().feature.name)

    @property
    def head(self) -> TensorIO:
        """The primary output head the contract names (the mask)."""
        return self.output(self._contract().head.name)

    def _contract(self) -> ModelContract:
        if self.contract is None:
            raise ValueError("this ModelIO was read without a contract")
        return self.contract

    def input(self, name: str) -> TensorIO:
        return _by_name(self.inputs, name, "input")

    def output(self, name: str) -> TensorIO:
        return _by_name(self.outputs, name, "output")

    def to_dict(self) -> dict[str, Any]:
        scheme = self.scheme
        return {"io_dtype": self.io_type, "scheme": scheme.name if scheme else None,
                "inputs": [t.to_dict() for t in self.inputs], "outputs": [t.to_dict() for t in self.outputs],
                "state_pairs": [asdict(p) for p in self.state_pairs],
                "contract": self.contract.to_dict() if self.contract else None}


def integer_io_types() -> tuple[str, ...]:
    """The I/O dtypes the registered schemes make ('int8', 'int16')."""
    from sepipe.quantize.schemes import SCHEMES
    return tuple(dict.fromkeys(e.target.io_dtype for e in SCHEMES if not getattr(e.target, "mixed", False)))


def _by_name(tensors: tuple[TensorIO, ...], name: str, what: str) -> TensorIO:
    for tensor in tensors:
        if tensor.name == name:
            return tensor
    raise KeyError(f"model has no {what} named '{name}' (has {[t.name for t in tensors]})")


class ModelFormatError(ValueError):
    """The bytes are not a usable TFLite model (no path known here; validate_quantized_model adds it)."""


def _interpreter(tflite_bytes: bytes):
    from ai_edge_litert.interpreter import Interpreter
    try:
        interp = Interpreter(model_content=bytes(tflite_bytes), num_threads=1)
        interp.allocate_tensors()
    except Exception as exc:  # the wrapper raises ValueError / RuntimeError for corrupt flatbuffers
        raise ModelFormatError(f"not a readable TFLite flatbuffer ({last_line(str(exc))})") from None
    return interp


def _tensor_io(detail: dict, name: str, position: int) -> TensorIO:
    scale, zero_point = detail["quantization"]
    return TensorIO(name=name, index=int(detail["index"]), position=position,
                    shape=tuple(int(d) for d in detail["shape"]), dtype=np.dtype(detail["dtype"]).name,
                    scale=float(scale), zero_point=int(zero_point))


def _tensors(interp) -> tuple[tuple[TensorIO, ...], tuple[TensorIO, ...]]:
    signatures = interp._get_full_signature_list()  # {key: {'inputs': {name: tensor index}, 'outputs': {...}}}
    if len(signatures) != 1:
        raise ModelFormatError(f"expected exactly one signature def, found {len(signatures)} "
                               "(names cannot be matched without one)")
    signature = next(iter(signatures.values()))
    in_names = {int(index): name for name, index in signature["inputs"].items()}
    out_names = {int(index): name for name, index in signature["outputs"].items()}
    inputs, outputs = [], []
    for position, detail in enumerate(interp.get_input_details()):
        if detail["index"] not in in_names:
            raise ModelFormatError(f"input tensor {detail['name']} is not in the signature def")
        inputs.append(_tensor_io(detail, in_names[detail["index"]], position))
    for position, detail in enumerate(interp.get_output_details()):
        if detail["index"] not in out_names:
            raise ModelFormatError(f"output tensor {detail['name']} is not in the signature def")
        outputs.append(_tensor_io(detail, out_names[detail["index"]], position))
    return tuple(inputs), tuple(outputs)


def _pairs(inputs, outputs, contract: ModelContract) -> tuple[StatePair, ...]:
    by_in, by_out = {t.name: t for t in inputs}, {t.name: t for t in outputs}
    pairs = [StatePair(output=s.output, input=s.input,
                       same_quantization=(by_out[s.output].scale, by_out[s.output].zero_point)
                       == (by_in[s.input].scale, by_in[s.input].zero_point))
             for s in contract.states if s.input in by_in and s.output in by_out]
    return tuple(sorted(pairs, key=lambda p: p.input))   # by input name: the order headers and manifests use


def _build_io(inputs, outputs, contract: ModelContract | None) -> tuple[ModelIO, str | None]:
    """(ModelIO, problem): the contract given, else one inferred from the names; `problem` is what the
    tensors break of it (None when they match)."""
    if contract is None:
        try:
            contract = infer_contract({t.name: t.shape[1:] for t in inputs}, {t.name: t.shape[1:] for t in outputs})
        except ValueError as exc:
            return ModelIO(inputs, outputs, (), None), str(exc)
    io = ModelIO(inputs, outputs, _pairs(inputs, outputs, contract), contract)
    return io, contract.problem_with(_Sized(io))


class _Sized:
    """A ModelIO seen with batch-free shapes (TFLite tensors are (1, n); contracts count values per frame)."""

    def __init__(self, io: ModelIO):
        self.inputs = [_Shape(t.name, t.shape[1:] if len(t.shape) > 1 else t.shape) for t in io.inputs]
        self.outputs = [_Shape(t.name, t.shape[1:] if len(t.shape) > 1 else t.shape) for t in io.outputs]


@dataclass(frozen=True)
class _Shape:
    name: str
    shape: tuple[int, ...]


def tflite_io(tflite_bytes: bytes, contract: ModelContract | None = None) -> ModelIO:
    """Every input and output matched BY NAME through the signature def, and the state pairs of
    `contract` (inferred from the names when None). Raises ModelFormatError for unreadable bytes
    and for tensors that break the contract."""
    io, problem = _build_io(*_tensors(_interpreter(tflite_bytes)), contract)
    if problem and io.contract is None:
        # no contract could be inferred: still describe the tensors (compile and inspect tools use this)
        return io
    if problem:
        raise ModelFormatError(f"not a streaming model of its contract: {problem}")
    return io


def _scheme(scheme):
    from sepipe.quantize.schemes import get_scheme
    return get_scheme(scheme)


def validate_quantized_model(path: str | Path, contract: ModelContract | None = None, scheme=None) -> ModelIO:
    """Check that `path` is a full-integer streaming model (int8 weights; I/O all int8, or all int16 for a
    16x8 model, or the I/O type of `scheme` when given) whose tensors match `contract` (inferred from the
    names when None); return its ModelIO.

    InputFileError naming the file for: missing or empty, not a TFLite flatbuffer, a float model, a
    dynamic-range model (float I/O with int8 weights), inputs/outputs of mixed or other types, another
    scheme's I/O type, or tensors that break the contract.
    """
    path = Path(path)
    data = read_tflite_bytes(path)
    try:
        interp = _interpreter(data)
        inputs, outputs = _tensors(interp)
    except ModelFormatError as exc:
        raise InputFileError(path, str(exc)) from None
    io, problem = _build_io(inputs, outputs, contract)
    feature_name = io.contract.feature.name if io.contract else "features"
    mixed = scheme is not None and getattr(_scheme(scheme), "mixed", False)
    if io.io_type is None and not (mixed and io.integer_io):
        if all(t.dtype == "float32" for t in io.inputs + io.outputs):
            has_int8 = any(np.dtype(d["dtype"]) == np.int8 for d in interp.get_tensor_details())
            if has_int8:
                raise InputFileError(path, "dynamic-range quantised model (float32 inputs/outputs, int8 weights); "
                                           "a full-integer int8 model is needed: convert with a representative "
                                           "dataset and int8 inference input/output types")
            raise InputFileError(path, "float32 model; a full-integer int8 model is needed")
        # name the first tensor off the type the feature input has (int8 when that is not an integer type)
        features_type = next((t.dtype for t in io.inputs if t.name == feature_name), "int8")
        expected = features_type if features_type in integer_io_types() else "int8"
        others = [t for t in io.inputs + io.outputs if t.dtype != expected]
        bad = others[0]
        kind = "input" if bad in io.inputs else "output"
        raise InputFileError(path, f"{kind} '{bad.name}' is {bad.dtype}; every input and output must be {expected} "
                                   f"like '{feature_name}' (all int8, or all int16 for a 16x8 model; "
                                   f"not {expected}: {[t.name for t in others]})")
    if scheme is not None and not mixed:
        scheme = _scheme(scheme)
        if io.io_type != scheme.io_dtype:
            raise InputFileError(path, f"inputs and outputs are {io.io_type}; scheme '{scheme.name}' makes "
                                       f"{scheme.io_dtype} ones")
    if problem:
        raise InputFileError(path, f"not a streaming mask model: {problem}")
    return io
