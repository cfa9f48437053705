"""Calibration, full-integer int8 conversion and the int8 model's I/O contract.

The exported model is the one-frame streaming model (see models/mask_rnn.py):
inputs `features` + every recurrent state, outputs `mask` + every new state
(`<layer>_<h|c>_out`, fed back to `<layer>_<h|c>` by the caller).

Traps handled here (see DESIGN.md, "Facts checked here"):
- the representative dataset yields DICTS keyed by input name: a list is silently
  mis-ordered (TFLite input order is not Keras order);
- outputs are mapped by the signature def's names, never by tensor order (the
  tensors themselves are called `StatefulPartitionedCall:k`);
- the converter can segfault inside calibration, so it runs in a subprocess
  (`python -m sepipe.convert_worker`); a crash, a non-zero exit or a timeout
  becomes one `ToolError` line;
- states are calibrated with states the float model produced on real audio.

Weights: `convert_int8` takes the Keras `.weights.h5` that training writes from the
STREAMING model (`streaming.weights.h5`, what sepipe.train saves). A file saved
from the SEQUENCE model of the same ModelConfig is accepted too: the worker loads it
into the sequence model and copies the weights by layer name (models.copy_weights).
Keras' `.weights.h5` loader matches layers by structure and silently ignores arrays
the model does not use (a 2-layer file loads into a 1-layer model), so the worker
first checks that the file holds exactly the model's weight arrays (count and shapes).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sepipe.artifacts import atomic_path
from sepipe.config import ModelConfig
from sepipe.errors import InputFileError, ToolError, describe_exit

FEATURES_INPUT = "features"      # mirrors sepipe.models.mask_rnn (kept here so this module does not import TF)
INTEGER_IO_TYPES = ("int8", "int16")   # int16: 16x8 models (int16 activations, int8 weights)
MASK_OUTPUT = "mask"
STATE_OUTPUT_SUFFIX = "_out"     # state output `<x>_out` is fed back to input `<x>`
TOOL = "tflite converter"
PROJECT_ROOT = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------- calibration

@dataclass(frozen=True, eq=False)
class CalibrationSet:
    """Calibration tuples for the streaming model.

    inputs: input name -> (N, dim) float32, row i of every array is one frame
            (features and the states the float model carried INTO that frame).
    selection: JSON-able record of how the rows were drawn (seed, pool size,
            [file index, frame index] of every row), for the manifest.
    """

    inputs: dict[str, np.ndarray]
    selection: dict[str, Any]

    @property
    def frames(self) -> int:
        return int(next(iter(self.inputs.values())).shape[0])


def collect_calibration(streaming_model, feature_frames: list[np.ndarray], frames: int, seed: int) -> CalibrationSet:
    """Run the FLOAT streaming model over each file's features (T, bins) from zero states,
    keep every (features, states-in) tuple, then draw `frames` of them without replacement
    with `np.random.default_rng(seed)` (all of them, in order, when fewer exist).

    Rows are kept in (file, frame) order; `selection["picks"]` lists [file, frame] of each.
    """
    from sepipe.interpreters import KerasStreamingRunner  # lazy: interpreters imports this module

    if not feature_frames:
        raise ValueError("collect_calibration needs at least one file of features")
    if frames < 1:
        raise ValueError(f"frames must be >= 1, got {frames}")
    runner = KerasStreamingRunner(streaming_model)
    per_file: list[dict[str, np.ndarray]] = []
    index: list[tuple[int, int]] = []
    for file_i, feats in enumerate(feature_frames):
        feats = np.asarray(feats, np.float32)
        _, states_in = runner.run_with_states(feats)
        per_file.append({FEATURES_INPUT: feats, **states_in})
        index.extend((file_i, t) for t in range(feats.shape[0]))
    pool = len(index)
    rng = np.random.default_rng(seed)
    if frames >= pool:
        picks = np.arange(pool)
    else:
        picks = np.sort(rng.choice(pool, size=frames, replace=False))
    chosen = [index[p] for p in picks]
    names = list(per_file[0])
    inputs = {name: np.ascontiguousarray(np.stack([per_file[f][name][t] for f, t in chosen]).astype(np.float32))
              for name in names}
    selection = {
        "seed": int(seed),
        "requested_frames": int(frames),
        "drawn_frames": len(chosen),
        "pool_frames": pool,
        "files": len(feature_frames),
        "frames_per_file": [int(np.asarray(f).shape[0]) for f in feature_frames],
        "picks": [[int(f), int(t)] for f, t in chosen],
        "states_from": "float streaming model, zero initial state per file",
    }
    return CalibrationSet(inputs, selection)


def save_calibration(cal: CalibrationSet, path: str | Path) -> Path:
    """Write `cal` as .npz (arrays `input:<name>`, JSON string `selection`), atomically."""
    arrays = {f"input:{name}": np.asarray(value, np.float32) for name, value in cal.inputs.items()}
    arrays["selection"] = np.array(json.dumps(cal.selection, sort_keys=True))
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:   # a file handle: np.savez would append '.npz' to a path
            np.savez(handle, **arrays)
    return Path(path)


def load_calibration(path: str | Path) -> CalibrationSet:
    path = Path(path)
    if not path.is_file():
        raise InputFileError(path, "calibration file not found")
    try:
        with np.load(path, allow_pickle=False) as data:
            inputs = {key.split(":", 1)[1]: data[key].astype(np.float32) for key in data.files
                      if key.startswith("input:")}
            selection = json.loads(str(data["selection"]))
    except Exception as exc:  # zipfile / numpy / json raise several types for a corrupt file
        raise InputFileError(path, f"not a calibration .npz ({exc.__class__.__name__}: {exc})") from None
    if FEATURES_INPUT not in inputs:
        raise InputFileError(path, f"calibration file has no '{FEATURES_INPUT}' array")
    rows = {value.shape[0] for value in inputs.values()}
    if len(rows) != 1 or any(value.ndim != 2 for value in inputs.values()):
        raise InputFileError(path, "calibration arrays must all be (N, dim) with the same N")
    return CalibrationSet(inputs, selection)


# --------------------------------------------------------------------------- conversion

def _worker_command(model_cfg: ModelConfig, bins: int, weights_path: Path, calibration_path: Path,
                    out_path: Path, activations: str = "int8") -> list[str]:
    """The converter subprocess command line (a function so tests can swap it for a crashing one)."""
    return [sys.executable, "-m", "sepipe.convert_worker",
            "--model", json.dumps(asdict(model_cfg), sort_keys=True),
            "--bins", str(int(bins)),
            "--weights", str(weights_path),
            "--calibration", str(calibration_path),
            "--out", str(out_path),
            "--activations", activations]


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "(no output on stderr)"


def convert_int8(model_cfg: ModelConfig, bins: int, weights_path: Path, calibration_path: Path, out_path: Path,
                 timeout_s: float = 600, activations: str = "int8") -> Path:
    """Full-integer .tflite of the streaming model with int8 weights, written atomically.

    activations 'int8': int8 activations, inputs and outputs (the default); 'int16': TFLite's
    16x8 mode, int16 activations, inputs and outputs (weights stay int8, so flash and Vela's
    weight traffic do not change; only feature maps double).

    Converted in a subprocess; a crash (signal), non-zero exit or timeout raises ToolError
    with the exit code / signal and the last stderr line. The result is checked with
    `validate_int8_model` before it is renamed into place.
    """
    weights_path, calibration_path, out_path = Path(weights_path), Path(calibration_path), Path(out_path)
    if not weights_path.is_file():
        raise InputFileError(weights_path, "weights file not found (a Keras .weights.h5 from training)")
    if not calibration_path.is_file():
        raise InputFileError(calibration_path, "calibration file not found")
    env = dict(os.environ, TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL=os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"))
    env["PYTHONPATH"] = os.pathsep.join([str(PROJECT_ROOT)] + [p for p in [os.environ.get("PYTHONPATH")] if p])
    with atomic_path(out_path) as tmp:
        command = _worker_command(model_cfg, bins, weights_path.resolve(), calibration_path.resolve(), tmp.resolve(),
                                  activations)
        try:
            proc = subprocess.run(command, env=env, cwd=str(PROJECT_ROOT), capture_output=True, text=True,
                                  errors="replace", timeout=timeout_s)
        except subprocess.TimeoutExpired as exc:
            stderr = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else (exc.stderr or "")
            raise ToolError(TOOL, f"timed out after {timeout_s:g} s converting {weights_path} "
                                  f"(last stderr line: {_last_line(stderr)})") from None
        if proc.returncode != 0:
            how = describe_exit(proc.returncode)
            raise ToolError(TOOL, f"conversion of {weights_path} failed ({how}): {_last_line(proc.stderr)}")
        if not tmp.is_file() or tmp.stat().st_size == 0:
            raise ToolError(TOOL, f"conversion of {weights_path} exited 0 but wrote no model")
        try:
            validate_int8_model(tmp)
        except InputFileError as exc:
            raise ToolError(TOOL, f"conversion of {weights_path} produced an unusable model: {exc.problem}") from None
    return out_path


def convert_untrained(model_cfg: ModelConfig, bins: int, out_path: Path, seed: int = 0, frames: int = 64,
                      activations: str = "int8") -> Path:
    """Int8 .tflite of an UNTRAINED architecture: random weights, random calibration (features
    ~ N(0, 1), states uniform in (-1, 1)).

    What it is for: Vela's cycles, KiB and MACs depend on the shapes, not on trained values,
    so this tells what an architecture costs on the NPU before any training (and gives tests
    and benchmarks a real int8 model in seconds). Its audio quality means nothing.
    """
    import shutil
    import tempfile

    from sepipe.models.keras_backend import keras
    from sepipe.models.mask_rnn import build_streaming_model

    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".untrained-", dir=out_path.parent))
    try:
        keras.utils.set_random_seed(seed)
        model = build_streaming_model(model_cfg, bins)
        model.save_weights(str(work / "streaming.weights.h5"))
        rng = np.random.default_rng(seed)
        inputs = {name: (rng.standard_normal((frames, int(t.shape[-1]))) if name == FEATURES_INPUT
                         else rng.uniform(-1, 1, (frames, int(t.shape[-1])))).astype(np.float32)
                  for name, t in ((t.name.split(":")[0], t) for t in model.inputs)}
        save_calibration(CalibrationSet(inputs, {"seed": seed, "source": "random (untrained model)"}), work / "cal.npz")
        return convert_int8(model_cfg, bins, work / "streaming.weights.h5", work / "cal.npz", out_path,
                            activations=activations)
    finally:
        shutil.rmtree(work, ignore_errors=True)


# --------------------------------------------------------------------------- I/O contract

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
    """A state output fed back to a state input (matched by name: `<input>_out` -> `<input>`)."""

    output: str
    input: str
    same_quantization: bool   # True: int8 copies straight back; False: requantise


@dataclass(frozen=True)
class ModelIO:
    inputs: tuple[TensorIO, ...]     # in subgraph input order
    outputs: tuple[TensorIO, ...]    # in subgraph output order
    state_pairs: tuple[StatePair, ...]

    @property
    def io_type(self) -> str | None:
        """'int8' or 'int16' when every input and output has that one type (an int8 or 16x8 model), else None."""
        types = {t.dtype for t in self.inputs + self.outputs}
        return types.pop() if len(types) == 1 and types <= set(INTEGER_IO_TYPES) else None

    def input(self, name: str) -> TensorIO:
        return _by_name(self.inputs, name, "input")

    def output(self, name: str) -> TensorIO:
        return _by_name(self.outputs, name, "output")

    def to_dict(self) -> dict[str, Any]:
        return {"inputs": [t.to_dict() for t in self.inputs], "outputs": [t.to_dict() for t in self.outputs],
                "state_pairs": [asdict(p) for p in self.state_pairs]}


def _by_name(tensors: tuple[TensorIO, ...], name: str, what: str) -> TensorIO:
    for tensor in tensors:
        if tensor.name == name:
            return tensor
    raise KeyError(f"model has no {what} named '{name}' (has {[t.name for t in tensors]})")


class ModelFormatError(ValueError):
    """The bytes are not a usable TFLite model (no path known here; validate_int8_model adds it)."""


def _interpreter(tflite_bytes: bytes):
    from ai_edge_litert.interpreter import Interpreter
    try:
        interp = Interpreter(model_content=bytes(tflite_bytes), num_threads=1)
        interp.allocate_tensors()
    except Exception as exc:  # the wrapper raises ValueError / RuntimeError for corrupt flatbuffers
        raise ModelFormatError(f"not a readable TFLite flatbuffer ({_last_line(str(exc))})") from None
    return interp


def _tensor_io(detail: dict, name: str, position: int) -> TensorIO:
    scale, zero_point = detail["quantization"]
    return TensorIO(name=name, index=int(detail["index"]), position=position,
                    shape=tuple(int(d) for d in detail["shape"]), dtype=np.dtype(detail["dtype"]).name,
                    scale=float(scale), zero_point=int(zero_point))


def _model_io(interp) -> ModelIO:
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
    by_input = {t.name: t for t in inputs}
    pairs = []
    for out in outputs:
        if out.name.endswith(STATE_OUTPUT_SUFFIX) and out.name[: -len(STATE_OUTPUT_SUFFIX)] in by_input:
            inp = by_input[out.name[: -len(STATE_OUTPUT_SUFFIX)]]
            pairs.append(StatePair(output=out.name, input=inp.name,
                                   same_quantization=(out.scale, out.zero_point) == (inp.scale, inp.zero_point)))
    return ModelIO(tuple(inputs), tuple(outputs), tuple(sorted(pairs, key=lambda p: p.input)))


def tflite_io(tflite_bytes: bytes) -> ModelIO:
    """Every input and output (signature name, tensor index, position, shape, dtype, scale, zero point)
    and the state pairs, matched BY NAME through the signature def. Raises ModelFormatError."""
    return _model_io(_interpreter(tflite_bytes))


def _check_streaming_contract(io: ModelIO) -> str | None:
    names_in = {t.name for t in io.inputs}
    names_out = {t.name for t in io.outputs}
    if FEATURES_INPUT not in names_in:
        return f"no input named '{FEATURES_INPUT}' (inputs: {sorted(names_in)})"
    if MASK_OUTPUT not in names_out:
        return f"no output named '{MASK_OUTPUT}' (outputs: {sorted(names_out)})"
    paired_in = {p.input for p in io.state_pairs}
    paired_out = {p.output for p in io.state_pairs}
    for name in sorted(names_in - {FEATURES_INPUT} - paired_in):
        return f"state input '{name}' has no output '{name}{STATE_OUTPUT_SUFFIX}' to feed it back"
    for name in sorted(names_out - {MASK_OUTPUT} - paired_out):
        return f"output '{name}' is neither '{MASK_OUTPUT}' nor a state output '<input>{STATE_OUTPUT_SUFFIX}'"
    for pair in io.state_pairs:
        if io.input(pair.input).shape != io.output(pair.output).shape:
            return (f"state '{pair.input}' has shape {io.input(pair.input).shape} in and "
                    f"{io.output(pair.output).shape} out")
    return None


def read_tflite_bytes(path: str | Path) -> bytes:
    """The bytes of a .tflite file; InputFileError naming it when missing or not a TFLite flatbuffer."""
    path = Path(path)
    if not path.is_file():
        raise InputFileError(path, "model file not found")
    data = path.read_bytes()
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise InputFileError(path, "not a TFLite flatbuffer (no 'TFL3' identifier); corrupt or wrong file")
    return data


def validate_int8_model(path: str | Path) -> ModelIO:
    """Check that `path` is a full-integer streaming model with int8 weights; return its ModelIO.

    Inputs and outputs must be all int8, or all int16 (a 16x8 model). InputFileError naming
    the file for: missing or empty, not a TFLite flatbuffer, a float model, a dynamic-range
    model (float I/O with int8 weights), inputs/outputs of mixed or other types, or names that
    break the streaming contract.
    """
    path = Path(path)
    data = read_tflite_bytes(path)
    try:
        interp = _interpreter(data)
        io = _model_io(interp)
    except ModelFormatError as exc:
        raise InputFileError(path, str(exc)) from None
    if io.io_type is None:
        if all(t.dtype == "float32" for t in io.inputs + io.outputs):
            has_int8 = any(np.dtype(d["dtype"]) == np.int8 for d in interp.get_tensor_details())
            if has_int8:
                raise InputFileError(path, "dynamic-range quantised model (float32 inputs/outputs, int8 weights); "
                                           "a full-integer int8 model is needed: convert with a representative "
                                           "dataset and int8 inference input/output types")
            raise InputFileError(path, "float32 model; a full-integer int8 model is needed")
        # name the first tensor off the type the features input has (int8 when that is not an integer type)
        features_type = next((t.dtype for t in io.inputs if t.name == FEATURES_INPUT), "int8")
        expected = features_type if features_type in INTEGER_IO_TYPES else "int8"
        others = [t for t in io.inputs + io.outputs if t.dtype != expected]
        bad = others[0]
        kind = "input" if bad in io.inputs else "output"
        raise InputFileError(path, f"{kind} '{bad.name}' is {bad.dtype}; every input and output must be {expected} "
                                   f"like '{FEATURES_INPUT}' (all int8, or all int16 for a 16x8 model; "
                                   f"not {expected}: {[t.name for t in others]})")
    problem = _check_streaming_contract(io)
    if problem:
        raise InputFileError(path, f"not a streaming mask model: {problem}")
    return io
