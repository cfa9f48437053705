"""The model-family interface: what the pipeline asks of a family of architectures.

A family (registered in `sepipe.models.FAMILIES` with its config dataclass) builds the training
(sequence) model and the one-frame streaming model from the same layers, declares the streaming
model's contract (sepipe.contract.ModelContract) and tells the compressors its layer groups.
No TensorFlow at import: the builders import Keras when called, so loading a config stays light.

    from sepipe.models import family_of
    family = family_of(model_cfg)
    family.build_sequence(cfg, bins) / family.build_streaming(cfg, bins) / family.copy_weights(src, dst)
    family.contract(cfg, bins) -> ModelContract     family.export_graph(cfg, bins) -> ExportGraph
    family.layer_groups(cfg) / compressible_layers / output_layers / feature_layer / group_width / with_group_widths
    family.gates(cfg, layer) / family.label(cfg) / family.source_files(cfg) / family.check_experiment(exp, src)
"""

from __future__ import annotations

import dataclasses

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sepipe.config import ModelConfig
from sepipe.contract import ExportGraph, ModelContract
from sepipe.errors import ConfigError


@dataclass(frozen=True)
class TrainingPhase:
    """One phase of training: the loss weight of each head it trains on (by head name) and the layers it
    trains (None: every layer). A family with one head trains in one phase on that head."""

    head_weights: dict[str, float]
    layers: tuple[str, ...] | None = None


class ModelFamily:
    """Base of every family; subclasses implement the builders, `contract` and `layer_groups`."""

    name: str = ""
    config_class: type[ModelConfig] = ModelConfig
    # {layer group: the config field holding its units} for unit pruning; a family with a width per
    # group declares it and gets group_width / with_group_widths from here
    group_fields: dict[str, str] = {}

    # ------------------------------------------------------------------ Keras (TensorFlow) side
    def build_sequence(self, cfg: ModelConfig, bins: int) -> Any:
        """Training model: (batch, frames, bins) -> the heads per frame."""
        raise NotImplementedError

    def build_streaming(self, cfg: ModelConfig, bins: int) -> Any:
        """One frame per call, batch 1: inputs and outputs named as `contract(cfg, bins)` says."""
        raise NotImplementedError

    def copy_weights(self, source: Any, target: Any) -> None:
        """Copy weights layer by layer, matched by name (sequence and streaming models name layers alike)."""
        for layer in target.layers:
            if layer.get_weights():
                layer.set_weights(source.get_layer(layer.name).get_weights())

    # ------------------------------------------------------------------ no TensorFlow
    def contract(self, cfg: ModelConfig, bins: int) -> ModelContract:
        raise NotImplementedError

    def export_graph(self, cfg: ModelConfig, bins: int) -> ExportGraph:
        """The .tflite files the model exports; one segment unless a family says otherwise."""
        return ExportGraph.single(self.contract(cfg, bins))

    def layer_groups(self, cfg: ModelConfig) -> dict[str, tuple[str, ...]]:
        """{group: layer names}, in the order data flows; the heads are the group 'output'."""
        raise NotImplementedError

    def feature_layer(self, cfg: ModelConfig) -> str:
        """The layer that reads the features (where `train.feature_norm` is folded): the first of the first group."""
        return next(iter(self.layer_groups(cfg).values()))[0]

    def output_layers(self, cfg: ModelConfig) -> list[str]:
        """The head layers (kept dense by default)."""
        return list(self.layer_groups(cfg).get("output", ()))

    def compressible_layers(self, cfg: ModelConfig) -> list[str]:
        """Default compression targets: every layer but the output head(s)."""
        heads = set(self.output_layers(cfg))
        return [layer for layers in self.layer_groups(cfg).values() for layer in layers if layer not in heads]

    def group_width(self, cfg: ModelConfig, group: str) -> int:
        """Units of every layer in `group` (one width per group, the config field `group_fields` names)."""
        if group not in self.group_fields:
            raise ValueError(f"group '{group}' has no width in {type(cfg).__name__} (groups with one: "
                             f"{list(self.group_fields)}; the output's width is the number of bins)")
        return int(getattr(cfg, self.group_fields[group]))

    def with_group_widths(self, cfg: ModelConfig, widths: dict[str, int]) -> ModelConfig:
        """A copy of `cfg` with the given groups narrowed (unit pruning)."""
        unknown = sorted(set(widths) - set(self.group_fields))
        if unknown:
            raise ValueError(f"cannot set the width of group(s) {unknown}; groups with a width: "
                             f"{list(self.group_fields)}")
        return dataclasses.replace(cfg, **{self.group_fields[g]: int(w) for g, w in widths.items()})

    def gates(self, cfg: ModelConfig, layer: str) -> int:
        """Gate blocks in a layer's kernel columns (1 for Dense)."""
        return 1

    def label(self, cfg: ModelConfig) -> str:
        """Short architecture label shown in reports."""
        return self.name

    def source_files(self, cfg: ModelConfig) -> tuple[Path, ...]:
        """Files whose text defines the architecture outside sepipe (a user family's module): the train
        stage hashes them, so editing the architecture retrains. Built-in families: none (sepipe's version)."""
        source = getattr(self, "source_file", None)
        return (Path(source),) if source else ()

    def training_phases(self, cfg: ModelConfig, bins: int) -> tuple[TrainingPhase, ...]:
        """How training weights the heads (and, per phase, which layers it trains); default: the
        primary head alone, every layer, one phase."""
        return (TrainingPhase({self.contract(cfg, bins).head.name: 1.0}),)

    def truncate(self, cfg: ModelConfig, exit_number: int, key: str, src: str = "<variant>") -> ModelConfig:
        """The config of the streaming model of exit `exit_number` alone (the `exit` variant kind); families
        without exits refuse it with one line naming `key`."""
        raise ConfigError(src, key, exit_number, f"a model family with exits (nsnet2_exits); "
                                                         f"'{cfg.family}' has none")

    def check_experiment(self, experiment: Any, src: str) -> None:
        """Refuse, as a ConfigError, what the rest of an experiment asks that this family cannot do; by
        default an `exit` variant whose exit the model lacks (`truncate`)."""
        for variant in experiment.variants:
            if variant.kind == "exit":
                self.truncate(experiment.model, variant.exit, variant.key("exit"), src)
