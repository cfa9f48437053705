"""The quantised (int8 or 16x8) model as a runner: in LiteRT (TFLite) and in TFLite Micro.

Both share `QuantizedRunner`: quantise the features, set every input, Invoke, read the head and
feed every state output back to its input as the model contract pairs them. A "zero" state is
the input's zero_point (the quantised 0.0), not 0. States stay integers between frames: copied as
they are when the output and input scale and zero point are equal, otherwise requantised by the
scheme's rule (int8: a 256-entry table built with `requantize`; int16x8: `requantize` itself, the
same float32 formula the firmware evaluates). Arithmetic: sepipe.runtime.arith.
"""

from __future__ import annotations

import numpy as np

from sepipe.contract import ModelContract
from sepipe.quantize.model_io import ModelIO, tflite_io
from sepipe.runtime.arith import check_features, dequantize, quantize, requantize, requantize_table


class StateFeedback:
    """Copies a state output back to its input: as is, or requantised where scales differ (by `rule`)."""

    def __init__(self, same_quantization: bool, out, inp, dtype, rule: str = "table"):
        self.same = same_quantization
        self._params = (out.scale, out.zero_point, inp.scale, inp.zero_point)
        self._dtype = dtype
        # a 256-entry table is both exact and the fastest form; only int8 states have one
        self._table = (requantize_table(*self._params)
                       if not self.same and rule == "table" and np.dtype(dtype) == np.int8 else None)

    def __call__(self, q: np.ndarray) -> np.ndarray:
        if self.same:
            return q
        if self._table is not None:
            return self._table[q.astype(np.int16) + 128]
        return requantize(q, *self._params, dtype=self._dtype)


class QuantizedRunner:
    """The shared loop; subclasses bind `_set(slot, array)`, `_invoke()`, `_get(slot)` and the slots.

    Runs every registered scheme's models (int8, 16x8) and mixed-precision ones (each input and output
    its own type): `dtype` is the feature input's type, `scheme` the scheme (None when mixed)."""

    kind = ""
    needs = "tflite_bytes"
    system = ""              # 'TFLite', 'TFLite Micro'; the row label adds the I/O type
    tools: tuple[str, ...] = ()   # distributions its results depend on (stage fingerprints)

    @classmethod
    def system_label(cls, io_dtype: str | None = None) -> str:
        return f"{io_dtype or 'int8'} {cls.system}"

    def __init__(self, tflite_bytes: bytes, contract: ModelContract | None = None):
        self.io: ModelIO = tflite_io(tflite_bytes, contract)
        if not self.io.integer_io or self.io.contract is None:
            raise ValueError(f"{self.kind} runner needs a model with integer (int8 / int16) I/O and a readable "
                             f"contract; has { {t.name: t.dtype for t in self.io.inputs + self.io.outputs} }")
        self.contract = self.io.contract
        self.scheme = self.io.scheme          # None for a mixed-precision model (I/O of both types)
        feat, mask = self.io.feature, self.io.head
        # each tensor keeps its own type: a mixed-precision model's feature input, head and states may differ
        self.dtype = np.dtype(feat.dtype).type
        self._mask_dtype = np.dtype(mask.dtype).type
        self.system = self.system_label(self.io.io_type or "mixed")
        self.bins = int(feat.shape[-1])
        self._feat = (feat.scale, feat.zero_point)
        self._mask = (mask.scale, mask.zero_point)
        self._feat_slot = self._input_slot(feat)
        self._mask_slot = self._output_slot(mask)
        # (input slot, output slot, feedback, zero state) per state pair
        self._pairs = []
        for pair in self.io.state_pairs:
            inp, out = self.io.input(pair.input), self.io.output(pair.output)
            dtype = np.dtype(inp.dtype).type
            zero = np.full(inp.shape, inp.zero_point, dtype=dtype)   # quantised 0.0
            # int8 states: a 256-entry table; int16: the formula (the rule of the scheme of that type)
            rule = "table" if dtype == np.int8 else "formula"
            feedback = StateFeedback(pair.same_quantization, out, inp, dtype, rule)
            self._pairs.append((self._input_slot(inp), self._output_slot(out), feedback, zero))
        self.reset()

    def reset(self) -> None:
        self._states = [zero.copy() for _, _, _, zero in self._pairs]

    def run_quantized(self, features: np.ndarray, reset: bool = True) -> np.ndarray:
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
        q_features = quantize(check_features(features, self.bins), *self._feat, self.dtype)[:, None, :]  # (T, 1, bins)
        q_mask = np.empty((len(q_features), int(np.prod(self.io.head.shape[1:]))), self._mask_dtype)
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
        inputs[self.contract.feature.name].append(q_features.copy())
        for pair, state in zip(self.io.state_pairs, states):
            inputs[pair.input].append(state.copy())
        for tensor in self.io.outputs:
            outputs[tensor.name].append(np.array(self._get(self._output_slot(tensor)), copy=True))

    def run(self, features: np.ndarray, reset: bool = True) -> np.ndarray:
        return dequantize(self.run_quantized(features, reset), *self._mask)

    def states(self) -> dict[str, np.ndarray]:
        """Current integer states by input name (after the last frame run)."""
        return {pair.input: state.copy() for pair, state in zip(self.io.state_pairs, self._states)}


class TFLiteStreamingRunner(QuantizedRunner):
    """The quantised model in the LiteRT (TFLite) interpreter; tensors addressed by tensor index."""

    kind = "tflite"
    system = "TFLite"
    tools = ("ai-edge-litert",)

    def __init__(self, tflite_bytes: bytes, num_threads: int = 1, contract: ModelContract | None = None):
        from ai_edge_litert.interpreter import Interpreter

        self._interpreter = Interpreter(model_content=bytes(tflite_bytes), num_threads=num_threads)
        self._interpreter.allocate_tensors()
        self._set = self._interpreter.set_tensor
        self._get = self._interpreter.get_tensor
        self._invoke = self._interpreter.invoke
        super().__init__(tflite_bytes, contract)

    @staticmethod
    def _input_slot(tensor) -> int:
        return tensor.index

    @staticmethod
    def _output_slot(tensor) -> int:
        return tensor.index


class TFLMStreamingRunner(QuantizedRunner):
    """The quantised model in the TFLite Micro Python interpreter (the kernels the firmware runs);
    inputs/outputs addressed by their position in the subgraph's input/output list."""

    kind = "tflm"
    system = "TFLite Micro"
    tools = ("tflite-micro",)

    def __init__(self, tflite_bytes: bytes, arena_size: int | None = None, contract: ModelContract | None = None):
        from tflite_micro.python.tflite_micro import runtime

        data = bytes(tflite_bytes)
        # The runtime's default arena is 10x the model size; small models need a floor.
        arena = arena_size if arena_size is not None else max(10 * len(data), 1 << 20)
        self._interpreter = runtime.Interpreter.from_bytes(data, arena_size=arena)
        set_input = self._interpreter.set_input        # note: (array, position), not (index, array)
        self._set = lambda slot, value: set_input(value, slot)
        self._get = self._interpreter.get_output
        self._invoke = self._interpreter.invoke
        super().__init__(data, contract)

    @staticmethod
    def _input_slot(tensor) -> int:
        return tensor.position

    @staticmethod
    def _output_slot(tensor) -> int:
        return tensor.position
