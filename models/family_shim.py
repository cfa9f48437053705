"""TEMPORARY shim: the model-family interface of FAMILY_INTERFACE.md over today's mask_rnn functions.

The compressors are written against `family_of(cfg)`; the real registry (sepipe.models.FAMILIES) lands
from the model-family work package and replaces this file at merge. Method names and meanings are
exactly the interface's; `contract` is not needed by the compressors and is not provided here.
"""

from __future__ import annotations

import dataclasses

from sepipe.config import ModelConfig
from sepipe.models.mask_rnn import (
    MASK_OUTPUT, build_sequence_model, build_streaming_model, copy_weights, rnn_layer_names,
)

_GROUP_FIELD = {"input": "input_units", "rnn": "rnn_units", "dense": "dense_units"}


class _MaskRnnFamily:
    def build_sequence(self, cfg: ModelConfig, bins: int):
        return build_sequence_model(cfg, bins)

    def build_streaming(self, cfg: ModelConfig, bins: int):
        return build_streaming_model(cfg, bins)

    def copy_weights(self, source, target) -> None:
        copy_weights(source, target)

    def contract(self, cfg: ModelConfig, bins: int):
        raise NotImplementedError("family shim: contract() comes with the model-family registry")

    def layer_groups(self, cfg: ModelConfig) -> dict[str, tuple[str, ...]]:
        groups = {"input": ("input_dense",)} if cfg.input_units else {}
        groups["rnn"] = tuple(rnn_layer_names(cfg))
        if cfg.dense_units:
            groups["dense"] = ("dense_1", "dense_2")
        groups["output"] = (MASK_OUTPUT,)
        return groups

    def compressible_layers(self, cfg: ModelConfig) -> list[str]:
        heads = set(self.output_layers(cfg))
        return [name for names in self.layer_groups(cfg).values() for name in names if name not in heads]

    def output_layers(self, cfg: ModelConfig) -> list[str]:
        return [MASK_OUTPUT]

    def group_width(self, cfg: ModelConfig, group: str) -> int:
        return getattr(cfg, _GROUP_FIELD[group])

    def with_group_widths(self, cfg: ModelConfig, widths: dict[str, int]) -> ModelConfig:
        return dataclasses.replace(cfg, **{_GROUP_FIELD[group]: width for group, width in widths.items()})

    def gates(self, cfg: ModelConfig, layer: str) -> int:
        if layer in self.layer_groups(cfg)["rnn"]:
            return 4 if cfg.family == "lstm" else 3
        return 1

    def label(self, cfg: ModelConfig) -> str:
        return f"{cfg.family}-{cfg.rnn_layers}x{cfg.rnn_units}"


_FAMILY = _MaskRnnFamily()


def family_of(cfg: ModelConfig) -> _MaskRnnFamily:
    return _FAMILY
