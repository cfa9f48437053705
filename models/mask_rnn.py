"""nsNet2-like (GRU) and TinyLSTM-like (LSTM) mask estimators, built twice from the same layers.

    features (bins) -> [Dense input_units] -> RNN x rnn_layers -> [Dense dense_units x 2] -> Dense bins, sigmoid

`build_sequence_model` takes (batch, frames, bins) for training.
`build_streaming_model` runs one frame per call, batch 1: inputs are the features
and every recurrent state; outputs are the mask and every new state. Firmware
copies each `<layer>_<h|c>_out` back to `<layer>_<h|c>` before the next frame.
Both models name their layers alike, so `copy_weights` moves weights by name.
"""

from __future__ import annotations

from dataclasses import dataclass

from sepipe.models.keras_backend import keras
from sepipe.config import ModelConfig

FEATURES_INPUT = "features"
MASK_OUTPUT = "mask"


@dataclass(frozen=True)
class StateSpec:
    """One recurrent state: fed in as `input_name`, returned as `output_name`."""

    layer: str
    kind: str  # "h" (hidden) or "c" (LSTM cell)
    units: int

    @property
    def input_name(self) -> str:
        return f"{self.layer}_{self.kind}"

    @property
    def output_name(self) -> str:
        return f"{self.layer}_{self.kind}_out"


def rnn_layer_names(cfg: ModelConfig) -> list[str]:
    return [f"rnn_{i + 1}" for i in range(cfg.rnn_layers)]


def state_specs(cfg: ModelConfig) -> list[StateSpec]:
    kinds = ("h", "c") if cfg.family == "lstm" else ("h",)
    return [StateSpec(name, kind, cfg.rnn_units) for name in rnn_layer_names(cfg) for kind in kinds]


def _dense_stack(cfg: ModelConfig, bins: int) -> tuple[list[keras.layers.Layer], list[keras.layers.Layer]]:
    """The Dense layers before and after the recurrent part (shared by both builds)."""
    before = [keras.layers.Dense(cfg.input_units, activation="relu", name="input_dense")] if cfg.input_units else []
    after = [keras.layers.Dense(cfg.dense_units, activation="relu", name=f"dense_{i + 1}")
             for i in range(2)] if cfg.dense_units else []
    after.append(keras.layers.Dense(bins, activation="sigmoid", name=MASK_OUTPUT))
    return before, after


def build_sequence_model(cfg: ModelConfig, bins: int) -> keras.Model:
    """Training model: (batch, frames, bins) log-power features -> (batch, frames, bins) mask in [0, 1]."""
    rnn_class = keras.layers.LSTM if cfg.family == "lstm" else keras.layers.GRU
    features = keras.Input(shape=(None, bins), name=FEATURES_INPUT)
    before, after = _dense_stack(cfg, bins)
    x = features
    for layer in before:
        x = layer(x)
    for name in rnn_layer_names(cfg):
        x = rnn_class(cfg.rnn_units, return_sequences=True, name=name)(x)
    for layer in after:
        x = layer(x)
    return keras.Model(features, x, name=f"{cfg.family}_sequence")


def build_streaming_model(cfg: ModelConfig, bins: int) -> keras.Model:
    """One-frame model: inputs {features, states}, outputs {mask, new states}, batch size 1."""
    cell_class = keras.layers.LSTMCell if cfg.family == "lstm" else keras.layers.GRUCell
    features = keras.Input(shape=(bins,), batch_size=1, name=FEATURES_INPUT)
    specs = state_specs(cfg)
    state_inputs = {s.input_name: keras.Input(shape=(s.units,), batch_size=1, name=s.input_name) for s in specs}
    before, after = _dense_stack(cfg, bins)
    outputs = {}
    x = features
    for layer in before:
        x = layer(x)
    for name in rnn_layer_names(cfg):
        cell = cell_class(cfg.rnn_units, name=name)
        layer_states = [state_inputs[s.input_name] for s in specs if s.layer == name]
        x, new_states = cell(x, layer_states)
        for spec, new in zip([s for s in specs if s.layer == name], new_states):
            outputs[spec.output_name] = keras.layers.Identity(name=spec.output_name)(new)
    for layer in after:
        x = layer(x)
    outputs[MASK_OUTPUT] = x
    return keras.Model({FEATURES_INPUT: features, **state_inputs}, outputs, name=f"{cfg.family}_streaming")


def copy_weights(source: keras.Model, target: keras.Model) -> None:
    """Copy weights layer by layer, matched by name (a GRU layer and its GRUCell share a layout)."""
    for layer in target.layers:
        weights = layer.get_weights()
        if weights:
            layer.set_weights(source.get_layer(layer.name).get_weights())
