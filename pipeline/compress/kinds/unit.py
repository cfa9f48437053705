"""unit: whole units removed gradually with fine-tuning, ending in a narrower model (sepipe.compress.units).

`sparsity` is the fraction of units removed from every narrowed group; `layers` (bare names) must cover
whole layer groups of the family. With `weight_sparsity`, the narrower model is then weight-pruned too
(the pruning steps are split in half: units, then weights).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from sepipe.artifacts import ADDED_FIELD
from sepipe.compress.base import COMPRESSORS, Compressed, Compressor, VariantConfig, parse_layers
from sepipe.errors import ConfigError, check


@dataclass(frozen=True)
class UnitConfig(VariantConfig):
    sparsity: float = 0.0            # fraction of units removed from each narrowed group
    # after the units are gone, unstructured magnitude pruning of the narrower model's weights to this
    # fraction (fewer MACs AND less weight traffic; half the steps each)
    weight_sparsity: float = field(default=0.0, metadata=ADDED_FIELD)
    # unit ranking: 'activation' (mean |output| x outgoing weight norm, on training features) or 'l2' (weights only)
    criterion: Literal["activation", "l2"] = field(default="activation", metadata=ADDED_FIELD)

    def validate(self, src: str) -> None:
        super().validate(src)
        check(src, self.key("sparsity"), self.sparsity, 0.0 <= self.sparsity < 1.0, "0 <= sparsity < 1")
        check(src, self.key("weight_sparsity"), self.weight_sparsity, 0.0 <= self.weight_sparsity < 1.0,
              "0 <= weight_sparsity < 1, kind 'unit' only")


@COMPRESSORS.register("unit", config=UnitConfig)
class UnitCompressor(Compressor):
    """Structured pruning of whole units into a narrower model, optionally weight-pruned after."""

    @property
    def structure(self) -> str:
        return "unit+weight" if self.config.weight_sparsity > 0 else "unit"

    def layer_targets(self, model_cfg) -> dict[str, float]:
        parse_layers(self.config, model_cfg, self.config.sparsity)    # checks the names; no per-layer targets
        return {}

    def prunes(self, targets: dict[str, float]) -> bool:
        return self.config.sparsity > 0

    def compress(self, model, model_cfg, targets, steps, session) -> Compressed:
        from sepipe.compress import prune, units
        from sepipe.models import family_of

        v = self.config
        try:
            units.selected_groups(model_cfg, v.layers)
        except ValueError as exc:
            raise ConfigError("<variant>", v.key("layers"), list(v.layers), str(exc)) from None
        weight_steps = steps // 2 if v.weight_sparsity > 0 else 0
        model, model_cfg, record = units.prune_units(model, model_cfg, session.cfg.features.bins, session,
                                                     v.sparsity, steps - weight_steps, v.layers, v.criterion)
        stats: dict = {"units": record}
        pruned: list[str] = []
        if v.weight_sparsity > 0:     # every compressible layer of the (already narrower) model
            specs = {name: prune.PruneSpec(v.weight_sparsity, (1, 1), None)
                     for name in family_of(model_cfg).compressible_layers(model_cfg)}
            model, stats["schedule"] = prune.prune_and_finetune(
                model, specs, weight_steps, session, "polynomial (power 3) after unit pruning",
                "one-shot magnitude after unit pruning")
            pruned = sorted(specs)
        return Compressed(model, model_cfg, pruned, stats)
