"""offline: magnitude pruning (and clustering) of the dense reference's int8 model, no retraining.

Nothing is trained: `apply_to_quantized` prunes the converted dense model's FullyConnected weights
(sepipe.compress.offline), leaving the family's output layers dense unless `layers` names them.
Per layer (what `sepipe search` writes): `layers: [rnn_1=0.8, mask=0.5]` prunes each named layer to its
own sparsity; `clusters: 16` leaves at most 16 distinct int8 codes (one codebook per tensor) in every pruned
layer, `layer_clusters: [rnn_1=8]` sets it per layer (0: not clustered). `base: <ptq variant>` edits that variant's .tflite (a mixed-precision plan's)
instead of the dense reference's.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sepipe.artifacts import ADDED_FIELD

from sepipe.compress.base import COMPRESSORS, Compressor, VariantConfig, parse_layers
from sepipe.compress.clustering import MAX_CLUSTERS, MIN_CLUSTERS
from sepipe.errors import check


def _levels_ok(levels) -> bool:
    return isinstance(levels, int) and MIN_CLUSTERS <= levels <= MAX_CLUSTERS


def check_layer_levels(variant: VariantConfig, src: str) -> None:
    """`layer_clusters` entries are 'layer=levels' with levels 0 (not clustered) or a palette size."""
    for entry in variant.layer_clusters:
        name, _, value = entry.partition("=")
        check(src, variant.key("layer_clusters"), entry, name.strip() != "" and value.strip().isdigit()
              and (int(value) == 0 or _levels_ok(int(value))),
              f"'layer=levels' with levels 0 or {MIN_CLUSTERS} to {MAX_CLUSTERS}")


def layer_levels(variant: VariantConfig, levels: dict[str, int]) -> dict[str, int]:
    """`levels` ({layer: distinct codes}) with the variant's `layer_clusters` entries applied over it."""
    levels = dict(levels)
    for entry in variant.layer_clusters:
        name, _, value = entry.partition("=")
        levels[name.strip()] = int(value)
    return levels


@dataclass(frozen=True)
class OfflineConfig(VariantConfig):
    sparsity: float = 0.0            # fraction of each int8 FullyConnected weight tensor set to zero
    # at most this many distinct int8 codes per output channel in every compressed layer (0: no clustering)
    clusters: int = field(default=0, metadata=ADDED_FIELD)
    layer_clusters: tuple[str, ...] = field(default=(), metadata=ADDED_FIELD)    # 'layer=levels' overrides
    # the variant whose .tflite is edited: a 'ptq' variant (e.g. one with a `precision:` plan); None: the
    # dense reference
    base: str | None = field(default=None, metadata=ADDED_FIELD)

    def validate(self, src: str) -> None:
        super().validate(src)
        check(src, self.key("sparsity"), self.sparsity, 0.0 <= self.sparsity < 1.0, "0 <= sparsity < 1")
        check(src, self.key("clusters"), self.clusters, self.clusters == 0 or _levels_ok(self.clusters),
              f"0 (no clustering) or {MIN_CLUSTERS} to {MAX_CLUSTERS} (distinct int8 values per weight tensor)")
        check_layer_levels(self, src)
        check(src, self.key("qat"), self.qat, not self.qat, "false for kind 'offline' (it is not trained)")


@COMPRESSORS.register("offline", config=OfflineConfig)
class OfflineCompressor(Compressor):
    """Magnitude pruning of the dense int8 model, no retraining."""

    derives_from_dense_model = True
    noop_note = None
    untrained_note = "no fine-tuning: apply_to_quantized prunes the dense reference's int8 model"

    def layer_targets(self, model_cfg) -> dict[str, float]:
        """{layer: sparsity}: `layers` ('name' or 'name=sparsity'), default the compressible layers."""
        return parse_layers(self.config, model_cfg, self.config.sparsity, per_layer_sparsity=True)

    def layer_levels(self, model_cfg) -> dict[str, int]:
        """{layer: distinct codes per channel} (0: not clustered): `clusters` on every compressed layer,
        `layer_clusters` per layer (a layer named there is compressed even if `layers` leaves it out)."""
        return layer_levels(self.config, {name: self.config.clusters for name in self.layer_targets(model_cfg)})

    def apply_to_quantized(self, tflite_bytes: bytes, model_cfg) -> bytes:
        from sepipe.compress.offline import offline_compress_tflite, offline_prune_tflite
        from sepipe.models import family_of

        if not self.config.layers and not self.config.clusters and not self.config.layer_clusters:
            # the uniform variant of before, byte for byte
            return offline_prune_tflite(tflite_bytes, self.config.sparsity,
                                        exclude_layers=tuple(family_of(model_cfg).output_layers(model_cfg)))
        return offline_compress_tflite(tflite_bytes, self.layer_targets(model_cfg), self.layer_levels(model_cfg))
