"""weight: unstructured magnitude pruning (TFMOT, polynomial schedule: sepipe.compress.prune), fine-tuned.

`layers` entries may carry their own target as 'name=sparsity' (e.g. ['rnn_1=0.9', 'dense_1']; a bare
name takes `sparsity`). With zero fine-tuning steps it is one-shot magnitude pruning.
"""

from __future__ import annotations

from dataclasses import dataclass

from sepipe.compress.base import COMPRESSORS, Compressed, Compressor, VariantConfig, parse_layers
from sepipe.errors import check


@dataclass(frozen=True)
class WeightConfig(VariantConfig):
    sparsity: float = 0.0            # final fraction of zero weights of every targeted layer

    def validate(self, src: str) -> None:
        super().validate(src)
        check(src, self.key("sparsity"), self.sparsity, 0.0 <= self.sparsity < 1.0, "0 <= sparsity < 1")


@COMPRESSORS.register("weight", config=WeightConfig)
class WeightCompressor(Compressor):
    """Unstructured magnitude pruning with fine-tuning."""

    schedule_label = "polynomial (power 3)"

    def layer_targets(self, model_cfg) -> dict[str, float]:
        return parse_layers(self.config, model_cfg, self.config.sparsity, per_layer_sparsity=True)

    def prune_spec(self, sparsity: float):
        from sepipe.compress.prune import PruneSpec

        return PruneSpec(sparsity, (1, 1), None)

    def compress(self, model, model_cfg, targets, steps, session) -> Compressed:
        from sepipe.compress import prune

        specs = {name: self.prune_spec(s) for name, s in targets.items() if s > 0 or self.prunes_at_zero}
        model, schedule = prune.prune_and_finetune(model, specs, steps, session, self.schedule_label,
                                                   "one-shot magnitude (no fine-tuning steps)")
        return Compressed(model, model_cfg, sorted(specs), {"schedule": schedule})

    @property
    def prunes_at_zero(self) -> bool:
        """A layer with target 0 is still wrapped (m-by-n sparsity ignores the target)."""
        return False
