"""The family of a user's builder function: contract and layer groups read off the models it builds.

`build(bins, **params)` returns `(sequence, streaming)`, two tf_keras models made from the same layers:

- sequence: (batch, frames, bins) features -> (batch, frames, bins) mask (what training fits);
- streaming: one frame, batch 1, every input and output a flat (1, n) vector: the features input,
  the `mask` output (bins values in [0, 1]) and, for every state, an input `<x>` and an output `<x>_out`
  that firmware copies back to `<x>` before the next frame (the naming rule of docs/model-contract.md).

The contract is inferred from the streaming model by that rule and checked once per config (one
ConfigError line naming model.family otherwise); weights move from the sequence to the streaming model
by layer name, so every layer with weights must be named (`name=`): automatic names change between
builds, which is checked by building twice. Layer groups: one per layer with weights, in the order
data flows; the layer that makes the mask is the group 'output'. Weight and block pruning act on the
Dense and recurrent (GRU, LSTM, SimpleRNN) layers (2-D kernels, what TFMOT prunes blockwise); other
layers (convolutions, normalisation) stay dense. Unit pruning needs widths per group, which only a
ModelFamily subclass declares, so it is refused for builder families when the config is loaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sepipe.contract import FeatureInput, ModelContract, OutputHead, infer_contract
from sepipe.errors import ConfigError
from sepipe.models.base import ModelFamily

MASK = "mask"
PRUNABLE = ("Dense", "GRU", "LSTM", "SimpleRNN", "GRUCell", "LSTMCell", "SimpleRNNCell")
SEQUENCE, STREAMING = 0, 1


class BuilderFamily(ModelFamily):
    """A family whose two models come from one user function (`model.family: 'module:function'`)."""

    def __init__(self, name: str, builder, source_file: Path | None):
        self.name = name
        self.builder = builder
        self.source_file = source_file
        self._checked: dict[Any, tuple[ModelContract, dict[str, str]]] = {}

    # ------------------------------------------------------------------ Keras (TensorFlow) side
    def build_sequence(self, cfg, bins: int):
        return self._build(cfg, bins)[SEQUENCE]

    def build_streaming(self, cfg, bins: int):
        return self._build(cfg, bins)[STREAMING]

    def _build(self, cfg, bins: int):
        models = self._call(cfg, bins)
        if (cfg, bins) not in self._checked:
            self._checked[(cfg, bins)] = self._check(cfg, bins, models)
        return models

    def _call(self, cfg, bins: int):
        from sepipe.models.keras_backend import keras

        try:
            models = self.builder(int(bins), **cfg.params)
        except Exception as exc:   # noqa: BLE001  (the user's code: any error is theirs, said in one line)
            text = (str(exc).strip().splitlines() or ["(no message)"])[0][:200]
            self._refuse(cfg, f"a builder that returns (sequence, streaming) models for bins={bins} and "
                              f"{cfg.params}; it raised {type(exc).__name__}: {text}")
        if not (isinstance(models, (tuple, list)) and len(models) == 2
                and all(isinstance(m, keras.Model) for m in models)):
            self._refuse(cfg, f"a builder that returns two tf_keras models (sequence, streaming), made with "
                              f"`from sepipe.models.keras_backend import keras`; it returned {_what(models)}")
        return tuple(models)

    def _refuse(self, cfg, valid: str):
        raise ConfigError(str(self.source_file or "<builder>"), "model.family", cfg.family, valid)

    def _check(self, cfg, bins: int, models) -> tuple[ModelContract, dict[str, str]]:
        """The contract and {weighted layer: class name} of the models, or a ConfigError saying what breaks."""
        sequence, streaming = models
        try:
            contract = derive_contract(streaming, bins, cfg.family)
            _check_sequence(sequence, bins)
            kinds = _weighted_layers(sequence, streaming)
            again = [layer.name for layer in self._call(cfg, bins)[STREAMING].layers if layer.weights]
        except ValueError as exc:
            self._refuse(cfg, f"models that follow the streaming contract (docs/model-contract.md): {exc}")
        if again != [name for name in kinds]:
            self._refuse(cfg, f"layers with weights named the same in every build (give each `name=`): two "
                              f"builds named them {list(kinds)} and {again}")
        groups = _groups(streaming, kinds)
        return ModelContract(contract.feature, contract.heads, contract.states, tuple(groups.items()),
                             cfg.family), kinds

    def _checked_for(self, cfg, bins: int | None = None) -> tuple[ModelContract, dict[str, str]]:
        """The checked contract of `cfg`. Without `bins` (layer names, asked by the compressors): the
        bins it was last built with in this process, else the default features' (names do not depend on it)."""
        if bins is None:
            built = [key[1] for key in self._checked if key[0] == cfg]
            if built:
                bins = built[-1]
            else:
                from sepipe.config import FeatureConfig
                bins = FeatureConfig().bins
        if (cfg, bins) not in self._checked:
            self._build(cfg, bins)
        return self._checked[(cfg, bins)]

    # ------------------------------------------------------------------ contract and groups
    def contract(self, cfg, bins: int) -> ModelContract:
        return self._checked_for(cfg, bins)[0]

    def layer_groups(self, cfg) -> dict[str, tuple[str, ...]]:
        return self._checked_for(cfg)[0].groups

    def compressible_layers(self, cfg) -> list[str]:
        """Dense and recurrent layers but the head: what weight and block pruning prune."""
        heads = set(self.output_layers(cfg))
        kinds = self._checked_for(cfg)[1]
        return [name for name, kind in kinds.items() if kind in PRUNABLE and name not in heads]

    def group_width(self, cfg, group: str) -> int:
        raise ValueError(f"family {cfg.family!r} is a builder function, whose groups have no declared width; "
                         f"unit pruning needs a ModelFamily subclass (group_width, with_group_widths)")

    def with_group_widths(self, cfg, widths: dict[str, int]):
        return self.group_width(cfg, next(iter(widths), ""))

    def source_files(self, cfg) -> tuple[Path, ...]:
        return (self.source_file,) if self.source_file else ()

    def check_experiment(self, experiment, src: str) -> None:
        for i, variant in enumerate(experiment.variants):
            if variant.kind == "unit":
                raise ConfigError(src, f"variants[{i}].kind", variant.kind,
                                  f"one of ptq, weight, block, offline for model.family {experiment.model.family!r} "
                                  f"(a builder function declares no group widths; unit pruning needs a ModelFamily "
                                  f"subclass)")
        if experiment.train.feature_norm:
            raise ConfigError(src, "train.feature_norm", True, f"false for model.family {experiment.model.family!r} "
                                                              f"(the fold needs a Dense reading the features; "
                                                              f"normalise inside the model instead)")

    def label(self, cfg) -> str:
        return cfg.family.rpartition(".")[2]


def derive_contract(streaming, bins: int, family: str) -> ModelContract:
    """The contract of a one-frame model by the naming rule; ValueError naming what it breaks."""
    inputs = {t.name.split(":")[0]: tuple(t.shape) for t in streaming.inputs}
    outputs = dict(zip(streaming.output_names, (tuple(t.shape) for t in streaming.outputs)))
    for role, tensors in (("input", inputs), ("output", outputs)):
        for name, shape in tensors.items():
            if len(shape) != 2 or shape[0] != 1 or shape[1] is None:
                raise ValueError(f"streaming {role} '{name}' has shape {shape}; every input and output of the "
                                 f"one-frame model is (1, n) (batch_size=1, a flat vector: reshape inside)")
    if MASK not in outputs:
        raise ValueError(f"the streaming model has no output named '{MASK}' (outputs: {sorted(outputs)})")
    unpaired = [n for n in inputs if n != "features" and f"{n}_out" not in outputs]
    if "features" in inputs and unpaired:
        raise ValueError(f"state input '{unpaired[0]}' has no output '{unpaired[0]}_out' feeding it back "
                         f"(outputs: {sorted(outputs)})")
    contract = infer_contract({n: s[1:] for n, s in inputs.items()}, {n: s[1:] for n, s in outputs.items()})
    extra = [h.name for h in contract.heads if h.name != MASK]
    if extra:
        raise ValueError(f"outputs {extra} are neither the mask nor a state output '<input>_out' of an input")
    for name, size in ((contract.feature.name, contract.feature.size), (MASK, contract.head.size)):
        if size != bins:
            raise ValueError(f"'{name}' has {size} values; the features have {bins} bins")
    return ModelContract(FeatureInput(contract.feature.name, bins), (OutputHead(MASK, bins, (0.0, 1.0), "mask"),),
                         contract.states, family=family)


def _check_sequence(sequence, bins: int) -> None:
    if len(sequence.inputs) != 1 or len(sequence.outputs) != 1:
        raise ValueError(f"the sequence model takes one input and gives one output (the mask); it has "
                         f"{len(sequence.inputs)} and {len(sequence.outputs)}")
    for role, shape in (("input", tuple(sequence.inputs[0].shape)), ("output", tuple(sequence.outputs[0].shape))):
        if len(shape) != 3 or shape[-1] != bins:
            raise ValueError(f"the sequence model's {role} has shape {shape}, not (batch, frames, {bins})")


def _weighted_layers(sequence, streaming) -> dict[str, str]:
    """{name: sequence layer class} of every streaming layer with weights, each found by name in the
    sequence model with the same weight shapes (how `copy_weights` moves them)."""
    kinds = {}
    for layer in streaming.layers:
        if not layer.weights:
            continue
        try:
            twin = sequence.get_layer(layer.name)
        except ValueError:
            raise ValueError(f"streaming layer '{layer.name}' has weights but the sequence model has no layer of "
                             f"that name (name both alike, or use the same layer object)") from None
        shapes = [tuple(w.shape) for w in layer.weights]
        if shapes != [tuple(w.shape) for w in twin.weights]:
            raise ValueError(f"layer '{layer.name}' has weights {shapes} in the streaming model and "
                             f"{[tuple(w.shape) for w in twin.weights]} in the sequence model")
        kinds[layer.name] = type(twin).__name__
    if not kinds:
        raise ValueError("the streaming model has no layer with weights")
    return kinds


def _groups(streaming, kinds: dict[str, str]) -> dict[str, tuple[str, ...]]:
    """One group per weighted layer (data-flow order); the one that makes the mask is 'output'."""
    head = _mask_layer(streaming, set(kinds))
    groups = {name: (name,) for name in kinds if name != head}
    groups["output"] = (head,) if head else ()
    return groups


def _mask_layer(streaming, weighted: set[str]) -> str | None:
    """The weighted layer the mask comes from, through weightless one-input layers (an Activation)."""
    tensor = streaming.outputs[list(streaming.output_names).index(MASK)]
    layer = tensor._keras_history.layer
    while layer.name not in weighted:
        inbound = layer._inbound_nodes[0].inbound_layers if layer._inbound_nodes else []
        if isinstance(inbound, list):
            if len(inbound) != 1:
                return None
            inbound = inbound[0]
        layer = inbound
    return layer.name


def _what(value: Any) -> str:
    if isinstance(value, (tuple, list)):
        return f"a {type(value).__name__} of {[type(v).__name__ for v in value]}"
    return f"a {type(value).__name__}"
