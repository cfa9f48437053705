"""nsNet2-like (GRU) and TinyLSTM-like (LSTM) mask estimators: the `gru` and `lstm` families.

    features (bins) -> [Dense input_units] -> RNN x rnn_layers -> [Dense dense_units x 2] -> mask head

The mask head (`model.mask`, sepipe.gain): `real`, Dense bins with a sigmoid, one gain per bin; or
`complex`, Dense 2 x bins with a tanh, a complex gain per bin (real parts, then imaginary parts).

`build_sequence` takes (batch, frames, bins) for training. `build_streaming` runs one frame per
call, batch 1: inputs are the features and every recurrent state; outputs are the mask and every
new state. Firmware copies each `<layer>_<h|c>_out` back to `<layer>_<h|c>` before the next frame.
Both models name their layers alike, so `copy_weights` moves weights by name. The two families
differ only in their recurrent layer (GRU / LSTM), its cell, its states (h / h, c) and gate count.
No TensorFlow at import (the builders import Keras when called).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from sepipe import gain
from sepipe.artifacts import ADDED_FIELD
from sepipe.config import ModelConfig
from sepipe.contract import FeatureInput, ModelContract, OutputHead, StateSpec
from sepipe.errors import check
from sepipe.models.base import ModelFamily

FEATURES_INPUT = "features"
MASK_OUTPUT = "mask"
GROUP_FIELDS = {"input": "input_units", "rnn": "rnn_units", "dense": "dense_units"}


@dataclass(frozen=True)
class MaskRnnConfig(ModelConfig):
    """Config of the `gru` and `lstm` families."""

    input_units: int = 128           # Dense before the recurrent layers (0: none)
    rnn_units: int = 128
    rnn_layers: int = 2
    dense_units: int = 128           # the two Dense layers after the recurrent layers (0: none)
    # real: a gain in [0, 1] per bin; complex: a complex gain per bin (phase too), twice the head's width
    mask: Literal["real", "complex"] = field(default="real", metadata=ADDED_FIELD)

    def validate(self, src: str) -> None:
        super().validate(src)
        for key in ("input_units", "dense_units"):
            value = getattr(self, key)
            check(src, f"model.{key}", value, 0 <= value <= 2048, "0 to 2048")
        check(src, "model.rnn_units", self.rnn_units, 1 <= self.rnn_units <= 1024, "1 to 1024")
        check(src, "model.rnn_layers", self.rnn_layers, 1 <= self.rnn_layers <= 4, "1 to 4")
        check(src, "model.mask", self.mask, self.mask in gain.KINDS, f"one of {', '.join(gain.KINDS)}")


class MaskRnnFamily(ModelFamily):
    """Dense -> RNN stack -> Dense x 2 -> sigmoid mask; subclasses name the recurrent layer."""

    config_class = MaskRnnConfig
    group_fields = GROUP_FIELDS
    rnn_layer = ""             # tf_keras.layers class of the sequence model's recurrent layers
    rnn_cell = ""              # ... and of the streaming model's cells
    state_kinds: tuple[str, ...] = ("h",)
    rnn_gates = 1

    def rnn_layer_names(self, cfg: MaskRnnConfig) -> list[str]:
        return [f"rnn_{i + 1}" for i in range(cfg.rnn_layers)]

    def state_specs(self, cfg: MaskRnnConfig) -> list[StateSpec]:
        return [StateSpec(input=f"{layer}_{kind}", output=f"{layer}_{kind}_out", units=cfg.rnn_units,
                          kind=kind, layer=layer)
                for layer in self.rnn_layer_names(cfg) for kind in self.state_kinds]

    # ------------------------------------------------------------------ contract and groups
    def contract(self, cfg: MaskRnnConfig, bins: int) -> ModelContract:
        return ModelContract(feature=FeatureInput(FEATURES_INPUT, int(bins)),
                             heads=(OutputHead(MASK_OUTPUT, gain.head_size(cfg.mask, bins), gain.RANGE[cfg.mask],
                                               gain.ROLE[cfg.mask]),),
                             states=tuple(self.state_specs(cfg)),
                             layer_groups=tuple(self.layer_groups(cfg).items()), family=cfg.family)

    def layer_groups(self, cfg: MaskRnnConfig) -> dict[str, tuple[str, ...]]:
        groups: dict[str, tuple[str, ...]] = {}
        if cfg.input_units:
            groups["input"] = ("input_dense",)
        groups["rnn"] = tuple(self.rnn_layer_names(cfg))
        if cfg.dense_units:
            groups["dense"] = ("dense_1", "dense_2")
        groups["output"] = (MASK_OUTPUT,)
        return groups

    def gates(self, cfg: MaskRnnConfig, layer: str) -> int:
        return self.rnn_gates if layer in self.rnn_layer_names(cfg) else 1

    def label(self, cfg: MaskRnnConfig) -> str:
        return f"{cfg.family}-{cfg.rnn_layers}x{cfg.rnn_units}" + ("-cm" if cfg.mask == "complex" else "")

    # ------------------------------------------------------------------ Keras
    def _dense_stack(self, cfg: MaskRnnConfig, bins: int):
        """The Dense layers before and after the recurrent part (shared by both builds)."""
        from sepipe.models.keras_backend import keras

        before = [keras.layers.Dense(cfg.input_units, activation="relu", name="input_dense")] if cfg.input_units else []
        after = [keras.layers.Dense(cfg.dense_units, activation="relu", name=f"dense_{i + 1}")
                 for i in range(2)] if cfg.dense_units else []
        after.append(keras.layers.Dense(gain.head_size(cfg.mask, bins), activation=gain.ACTIVATION[cfg.mask],
                                        name=MASK_OUTPUT))
        return before, after

    def build_sequence(self, cfg: MaskRnnConfig, bins: int):
        """Training model: (batch, frames, bins) log-power features -> (batch, frames, mask head) gains."""
        from sepipe.models.keras_backend import keras

        rnn_class = getattr(keras.layers, self.rnn_layer)
        features = keras.Input(shape=(None, bins), name=FEATURES_INPUT)
        before, after = self._dense_stack(cfg, bins)
        x = features
        for layer in before:
            x = layer(x)
        for name in self.rnn_layer_names(cfg):
            x = rnn_class(cfg.rnn_units, return_sequences=True, name=name)(x)
        for layer in after:
            x = layer(x)
        return keras.Model(features, x, name=f"{cfg.family}_sequence")

    def build_streaming(self, cfg: MaskRnnConfig, bins: int):
        """One-frame model: inputs {features, states}, outputs {mask, new states}, batch size 1."""
        from sepipe.models.keras_backend import keras

        cell_class = getattr(keras.layers, self.rnn_cell)
        features = keras.Input(shape=(bins,), batch_size=1, name=FEATURES_INPUT)
        specs = self.state_specs(cfg)
        state_inputs = {s.input: keras.Input(shape=(s.units,), batch_size=1, name=s.input) for s in specs}
        before, after = self._dense_stack(cfg, bins)
        outputs = {}
        x = features
        for layer in before:
            x = layer(x)
        for name in self.rnn_layer_names(cfg):
            cell = cell_class(cfg.rnn_units, name=name)
            layer_specs = [s for s in specs if s.layer == name]
            x, new_states = cell(x, [state_inputs[s.input] for s in layer_specs])
            for spec, new in zip(layer_specs, new_states):
                outputs[spec.output] = keras.layers.Identity(name=spec.output)(new)
        for layer in after:
            x = layer(x)
        outputs[MASK_OUTPUT] = x
        return keras.Model({FEATURES_INPUT: features, **state_inputs}, outputs, name=f"{cfg.family}_streaming")


class GruFamily(MaskRnnFamily):
    """nsNet2-like: GRU layers, one state (h) each."""

    name = "gru"
    rnn_layer, rnn_cell = "GRU", "GRUCell"
    state_kinds = ("h",)
    rnn_gates = 3              # Keras kernel columns [z | r | h]


class LstmFamily(MaskRnnFamily):
    """TinyLSTM-like: LSTM layers, two states (h, c) each."""

    name = "lstm"
    rnn_layer, rnn_cell = "LSTM", "LSTMCell"
    state_kinds = ("h", "c")
    rnn_gates = 4              # Keras kernel columns [i | f | c | o]


GRU = GruFamily()
LSTM = LstmFamily()
