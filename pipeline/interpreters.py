"""Streaming runners: the float Keras model, the int8 model in TFLite (LiteRT) and in TFLite Micro.

Every runner has the same interface:
    runner.reset()                          # zero every recurrent state
    mask = runner.run(features)             # (T, bins) float32 -> (T, bins) float32, one Invoke per frame
    mask = runner.run(features, reset=False)  # continue from the states the last call left

`run` resets first by default, so each file starts from zero states, like the
firmware at power-up. After every frame each state output `<x>_out` is copied
back to its input `<x>` (matched by name, see sepipe.convert.tflite_io).

Integer arithmetic shared with the firmware (firmware_stub mirrors these exactly):
    quantize(x)   = clamp(round_half_away(float32(x) / float32(scale)) + zero_point, QMIN, QMAX)
    dequantize(q) = float32(q - zero_point) * float32(scale)
    requantize(q) = quantize(dequantize(q; in), out)
QMIN/QMAX are -128/127 for int8 models and -32768/32767 for 16x8 models (int16
activations and I/O, int8 weights). Rounding is half AWAY from zero, i.e. C
`roundf()` / TFLite's `TfLiteRound`, NOT numpy's `np.round` (half to even); every
step is float32 like the C code. A "zero" state is the input's zero_point (the
quantised 0.0), not 0. States stay integers between frames: copied as they are
when the output and input scale and zero point are equal, otherwise requantised
(int8: through a 256-entry table built with `requantize`; int16: `requantize`
itself, the same float32 formula the firmware evaluates).
"""

from __future__ import annotations

import numpy as np

from sepipe.convert import FEATURES_INPUT, MASK_OUTPUT, ModelIO, tflite_io

RUNNER_KINDS = ("float", "tflite", "tflm")


# --------------------------------------------------------------------------- int8 helpers

def round_half_away(x: np.ndarray) -> np.ndarray:
    """Round to nearest, ties away from zero (C roundf), exactly for float32 input; returns float64."""
    x = np.asarray(x, dtype=np.float32).astype(np.float64)  # float32 + 0.5 is exact in float64
    return np.copysign(np.floor(np.abs(x) + 0.5), x)


def quantize(x: np.ndarray, scale: float, zero_point: int, dtype=np.int8) -> np.ndarray:
    """float -> int8 (or int16): clamp(roundf(float32(x) / float32(scale)) + zero_point, QMIN, QMAX)."""
    info = np.iinfo(dtype)
    scaled = np.asarray(x, dtype=np.float32) / np.float32(scale)
    q = round_half_away(scaled) + int(zero_point)
    return np.clip(q, info.min, info.max).astype(dtype)


def dequantize(q: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """int8/int16 -> float32: float32(q - zero_point) * float32(scale)."""
    return (np.asarray(q, dtype=np.int32) - int(zero_point)).astype(np.float32) * np.float32(scale)


def requantize(q: np.ndarray, in_scale: float, in_zero_point: int, out_scale: float, out_zero_point: int,
               dtype=np.int8) -> np.ndarray:
    """Integer with (in_scale, in_zero_point) -> `dtype` with (out_scale, out_zero_point), through float32."""
    return quantize(dequantize(q, in_scale, in_zero_point), out_scale, out_zero_point, dtype)


def requantize_table(in_scale: float, in_zero_point: int, out_scale: float, out_zero_point: int) -> np.ndarray:
    """256-entry int8 table: table[q + 128] == requantize(q, ...) for every int8 q."""
    return requantize(np.arange(-128, 128, dtype=np.int32), in_scale, in_zero_point, out_scale, out_zero_point)


# --------------------------------------------------------------------------- float reference

class KerasStreamingRunner:
    """The float streaming Keras model, one frame per step (the whole loop is one tf.function)."""

    kind = "float"

    def __init__(self, streaming_model):
        from sepipe.models.keras_backend import tf

        self._tf = tf
        self.model = streaming_model
        self.input_names = [t.name.split(":")[0] for t in streaming_model.inputs]
        self.state_names = [n for n in self.input_names if n != FEATURES_INPUT]
        shapes = {t.name.split(":")[0]: tuple(t.shape) for t in streaming_model.inputs}
        self.bins = int(shapes[FEATURES_INPUT][-1])
        self._state_shapes = {n: shapes[n] for n in self.state_names}
        missing = [n for n in self.state_names if n + "_out" not in streaming_model.output_names]
        if missing or MASK_OUTPUT not in streaming_model.output_names:
            raise ValueError(f"not a streaming model: outputs {streaming_model.output_names} lack "
                             f"{[MASK_OUTPUT] if MASK_OUTPUT not in streaming_model.output_names else []}"
                             f"{[n + '_out' for n in missing]}")
        state_spec = {n: tf.TensorSpec(s, tf.float32) for n, s in self._state_shapes.items()}
        self._scan = tf.function(self._scan_impl, input_signature=[
            tf.TensorSpec((None, self.bins), tf.float32), state_spec])
        self.reset()

    def _scan_impl(self, features, states):
        tf = self._tf
        names = self.state_names
        frames = tf.shape(features)[0]

        def body(t, masks, seen, state):
            seen = tuple(ta.write(t, s[0]) for ta, s in zip(seen, state))
            out = self.model({FEATURES_INPUT: features[t][None, :], **dict(zip(names, state))}, training=False)
            masks = masks.write(t, out[MASK_OUTPUT][0])
            state = tuple(tf.reshape(out[n + "_out"], self._state_shapes[n]) for n in names)
            return t + 1, masks, seen, state

        _, masks, seen, state = tf.while_loop(
            lambda t, *_: t < frames, body,
            (tf.constant(0), tf.TensorArray(tf.float32, size=frames),
             tuple(tf.TensorArray(tf.float32, size=frames) for _ in names),
             tuple(states[n] for n in names)))
        return masks.stack(), {n: ta.stack() for n, ta in zip(names, seen)}, dict(zip(names, state))

    def reset(self) -> None:
        self._states = {n: np.zeros(s, np.float32) for n, s in self._state_shapes.items()}

    def run_with_states(self, features: np.ndarray, reset: bool = True) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """(mask (T, bins), {state input name: (T, units) the state fed INTO each frame})."""
        if reset:
            self.reset()
        features = _check_features(features, self.bins)
        masks, seen, final = self._scan(features, self._states)
        self._states = {n: v.numpy() for n, v in final.items()}
        return masks.numpy().reshape(-1, self.bins), {n: v.numpy().reshape(len(features), -1) for n, v in seen.items()}

    def run(self, features: np.ndarray, reset: bool = True) -> np.ndarray:
        return self.run_with_states(features, reset)[0]


def _check_features(features: np.ndarray, bins: int) -> np.ndarray:
    features = np.ascontiguousarray(features, dtype=np.float32)
    if features.ndim != 2 or features.shape[1] != bins:
        raise ValueError(f"features must be (frames, {bins}), got {features.shape}")
    return features


# --------------------------------------------------------------------------- int8 runners

class _StateFeedback:
    """Copies a state output back to its input: as is, or requantised where scales differ."""

    def __init__(self, same_quantization: bool, out, inp, dtype):
        self.same = same_quantization
        self._params = (out.scale, out.zero_point, inp.scale, inp.zero_point)
        self._dtype = dtype
        # int8: a 256-entry table is both exact and the fastest form; int16 would need 65536 entries
        self._table = (requantize_table(*self._params) if not self.same and dtype == np.int8 else None)

    def __call__(self, q: np.ndarray) -> np.ndarray:
        if self.same:
            return q
        if self._table is not None:
            return self._table[q.astype(np.int16) + 128]
        return requantize(q, *self._params, dtype=self._dtype)


class _Int8Runner:
    """The shared loop; subclasses bind `_set(slot, array)`, `_invoke()`, `_get(slot)`.

    Runs int8 models and 16x8 ones (int16 activations and I/O): `dtype` is the I/O type."""

    kind = ""

    def __init__(self, tflite_bytes: bytes):
        self.io: ModelIO = tflite_io(tflite_bytes)
        if self.io.io_type is None:
            raise ValueError(f"{self.kind} runner needs a model with all-int8 (or all-int16) I/O; has "
                             f"{ {t.name: t.dtype for t in self.io.inputs + self.io.outputs} }")
        self.dtype = np.dtype(self.io.io_type).type
        feat, mask = self.io.input(FEATURES_INPUT), self.io.output(MASK_OUTPUT)
        self.bins = int(feat.shape[-1])
        self._feat = (feat.scale, feat.zero_point)
        self._mask = (mask.scale, mask.zero_point)
        self._feat_slot = self._input_slot(feat)
        self._mask_slot = self._output_slot(mask)
        # (input slot, output slot, feedback, zero state) per state pair
        self._pairs = []
        for pair in self.io.state_pairs:
            inp, out = self.io.input(pair.input), self.io.output(pair.output)
            zero = np.full(inp.shape, inp.zero_point, dtype=self.dtype)   # quantised 0.0
            feedback = _StateFeedback(pair.same_quantization, out, inp, self.dtype)
            self._pairs.append((self._input_slot(inp), self._output_slot(out), feedback, zero))
        self.reset()

    def reset(self) -> None:
        self._states = [zero.copy() for _, _, _, zero in self._pairs]

    def run_int8(self, features: np.ndarray, reset: bool = True) -> np.ndarray:
        """(T, bins) float features -> (T, bins) integer mask (int8, or int16 for a 16x8 model), as returned."""
        return self._run(features, reset, record=None)

    def run_recorded(self, features: np.ndarray, reset: bool = True) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Run and keep every tensor: ({input name: (T, *shape)}, {output name: (T, *shape)}), integers
        exactly as fed to and returned by each Invoke (the golden vectors of a firmware test)."""
        record = ({t.name: [] for t in self.io.inputs}, {t.name: [] for t in self.io.outputs})
        self._run(features, reset, record)
        return tuple({name: np.stack(frames) for name, frames in side.items()} for side in record)

    def _run(self, features: np.ndarray, reset: bool, record) -> np.ndarray:
        if reset:
            self.reset()
        q_features = quantize(_check_features(features, self.bins), *self._feat, self.dtype)[:, None, :]  # (T, 1, bins)
        q_mask = np.empty((len(q_features), self.bins), self.dtype)
        set_, get, invoke = self._set, self._get, self._invoke
        feat_slot, mask_slot = self._feat_slot, self._mask_slot
        pairs = [(i, o, feedback) for i, o, feedback, _ in self._pairs]
        states = self._states
        for frame in range(len(q_features)):
            set_(feat_slot, q_features[frame])
            for k, (slot_in, _, _) in enumerate(pairs):
                set_(slot_in, states[k])
            invoke()
            q_mask[frame] = get(mask_slot)[0]
            if record is not None:
                self._record_frame(record, q_features[frame], states)
            for k, (_, slot_out, feedback) in enumerate(pairs):
                states[k] = feedback(get(slot_out))
        self._states = states
        return q_mask

    def _record_frame(self, record, q_features: np.ndarray, states: list[np.ndarray]) -> None:
        inputs, outputs = record
        inputs[FEATURES_INPUT].append(q_features.copy())
        for pair, state in zip(self.io.state_pairs, states):
            inputs[pair.input].append(state.copy())
        for tensor in self.io.outputs:
            outputs[tensor.name].append(np.array(self._get(self._output_slot(tensor)), copy=True))

    def run(self, features: np.ndarray, reset: bool = True) -> np.ndarray:
        return dequantize(self.run_int8(features, reset), *self._mask)

    def states(self) -> dict[str, np.ndarray]:
        """Current integer states by input name (after the last frame run)."""
        return {pair.input: state.copy() for pair, state in zip(self.io.state_pairs, self._states)}


class TFLiteStreamingRunner(_Int8Runner):
    """The int8 model in the LiteRT (TFLite) interpreter; tensors addressed by tensor index."""

    kind = "tflite"

    def __init__(self, tflite_bytes: bytes, num_threads: int = 1):
        from ai_edge_litert.interpreter import Interpreter

        self._interpreter = Interpreter(model_content=bytes(tflite_bytes), num_threads=num_threads)
        self._interpreter.allocate_tensors()
        self._set = self._interpreter.set_tensor
        self._get = self._interpreter.get_tensor
        self._invoke = self._interpreter.invoke
        super().__init__(tflite_bytes)

    @staticmethod
    def _input_slot(tensor) -> int:
        return tensor.index

    @staticmethod
    def _output_slot(tensor) -> int:
        return tensor.index


class TFLMStreamingRunner(_Int8Runner):
    """The int8 model in the TFLite Micro Python interpreter (the kernels the firmware runs);
    inputs/outputs addressed by their position in the subgraph's input/output list."""

    kind = "tflm"

    def __init__(self, tflite_bytes: bytes, arena_size: int | None = None):
        from tflite_micro.python.tflite_micro import runtime

        data = bytes(tflite_bytes)
        # The runtime's default arena is 10x the model size; small models need a floor.
        arena = arena_size if arena_size is not None else max(10 * len(data), 1 << 20)
        self._interpreter = runtime.Interpreter.from_bytes(data, arena_size=arena)
        set_input = self._interpreter.set_input        # note: (array, position), not (index, array)
        self._set = lambda slot, value: set_input(value, slot)
        self._get = self._interpreter.get_output
        self._invoke = self._interpreter.invoke
        super().__init__(data)

    @staticmethod
    def _input_slot(tensor) -> int:
        return tensor.position

    @staticmethod
    def _output_slot(tensor) -> int:
        return tensor.position


def make_runner(kind: str, *, streaming_model=None, tflite_bytes: bytes | None = None, **options):
    """A runner of `kind` ('float': needs streaming_model; 'tflite' / 'tflm': need tflite_bytes)."""
    if kind == "float":
        if streaming_model is None:
            raise ValueError("make_runner('float') needs streaming_model")
        return KerasStreamingRunner(streaming_model)
    if kind in ("tflite", "tflm"):
        if tflite_bytes is None:
            raise ValueError(f"make_runner('{kind}') needs tflite_bytes")
        cls = TFLiteStreamingRunner if kind == "tflite" else TFLMStreamingRunner
        return cls(tflite_bytes, **options)
    raise ValueError(f"unknown runner kind {kind!r}; expected one of {list(RUNNER_KINDS)}")
