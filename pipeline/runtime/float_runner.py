"""The float streaming Keras model as a runner, one frame per step (the whole loop is one tf.function)."""

from __future__ import annotations

import numpy as np

from sepipe.contract import ModelContract, infer_contract
from sepipe.runtime.arith import check_features


class KerasStreamingRunner:
    """The float streaming Keras model; states fed back as the contract pairs them."""

    kind = "float"
    needs = "streaming_model"
    system = "float32 Keras"
    tools = ("tensorflow", "tf-keras")     # distributions its results depend on (stage fingerprints)

    @classmethod
    def system_label(cls, io_dtype: str | None = None) -> str:
        return cls.system

    def __init__(self, streaming_model, contract: ModelContract | None = None):
        from sepipe.models.keras_backend import tf

        self._tf = tf
        self.model = streaming_model
        shapes = {t.name.split(":")[0]: tuple(t.shape) for t in streaming_model.inputs}
        if contract is None:
            out_shapes = {n: tuple(t.shape[1:]) for n, t in zip(streaming_model.output_names, streaming_model.outputs)}
            try:
                contract = infer_contract({n: s[1:] for n, s in shapes.items()}, out_shapes)
            except ValueError as exc:
                raise ValueError(f"not a streaming model: {exc}") from None
        missing = [n for n in contract.output_names if n not in streaming_model.output_names]
        if missing or set(shapes) != set(contract.input_names):
            raise ValueError(f"not a streaming model of its contract: outputs {streaming_model.output_names} lack "
                             f"{missing}, or inputs {sorted(shapes)} are not {sorted(contract.input_names)}")
        self.contract = contract
        self.system = self.system_label()
        self._feature, self._head = contract.feature.name, contract.head.name
        self.input_names = list(shapes)
        # Keras' input order (not the contract's): calibration arrays keep the order they always had
        self.state_names = [n for n in shapes if contract.state_for_input(n) is not None]
        self._state_out = {s.input: s.output for s in contract.states}
        self.bins = int(shapes[self._feature][-1])
        self._state_shapes = {n: shapes[n] for n in self.state_names}
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
            out = self.model({self._feature: features[t][None, :], **dict(zip(names, state))}, training=False)
            masks = masks.write(t, out[self._head][0])
            state = tuple(tf.reshape(out[self._state_out[n]], self._state_shapes[n]) for n in names)
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
        features = check_features(features, self.bins)
        masks, seen, final = self._scan(features, self._states)
        self._states = {n: v.numpy() for n, v in final.items()}
        return masks.numpy().reshape(len(features), -1), {n: v.numpy().reshape(len(features), -1)
                                                            for n, v in seen.items()}

    def run(self, features: np.ndarray, reset: bool = True) -> np.ndarray:
        return self.run_with_states(features, reset)[0]
