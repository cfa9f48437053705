"""cluster: weight clustering (at most `clusters` distinct int8 values per weight tensor), alone or with pruning.

    variants:
      - {name: c16, kind: cluster, clusters: 16}
      - {name: c8-w80, kind: cluster, clusters: 8, sparsity: 0.8, qat: true}
      - {name: mixed, kind: cluster, layers: [rnn_1=0.5, dense_2], layer_clusters: [rnn_1=4, mask=8]}

Per tensor, in int8 codes (sepipe.compress.clustering says why: Vela's palette spans many output channels):
every clustered kernel of the int8 model holds at most `clusters` distinct values, the same in every
channel, zero counted as one of them. Dense kernels and the GRU/LSTM kernels and recurrent kernels are all
clustered by sepipe.compress.clustering (one route for every layer, so the int8 guarantee holds for each).

With `sparsity`, the first half of the kind's steps prune (TFMOT magnitude pruning, as kind 'weight'),
the rest cluster with the zeros held as their own cluster (sparsity-preserving clustering). With zero
fine-tuning steps it is one-shot (pruning, then clustering, no weight update). `qat: true`: the shared
QAT phase runs after, the clusters held by the same constraint.

Per layer (what `sepipe search` writes for a front member it fine-tunes): `layers: [rnn_1=0.5, dense_2]`
gives each named layer its own sparsity (a bare name takes `sparsity`), `layer_clusters: [rnn_1=4]` its own
number of values (0: pruned only, not clustered); a layer named only in `layer_clusters` is clustered dense.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sepipe.artifacts import ADDED_FIELD
from sepipe.compress.base import COMPRESSORS, Compressed, Compressor, VariantConfig, parse_layers
from sepipe.compress.clustering import MAX_CLUSTERS, MIN_CLUSTERS
from sepipe.compress.kinds.offline import check_layer_levels, layer_levels
from sepipe.errors import ConfigError, check


@dataclass(frozen=True)
class ClusterConfig(VariantConfig):
    clusters: int = 16               # distinct int8 values per weight tensor (0 and each channel's +-127 among them)
    sparsity: float = 0.0            # fraction of zero weights (magnitude pruning before clustering)
    layer_clusters: tuple[str, ...] = field(default=(), metadata=ADDED_FIELD)    # 'layer=levels' overrides

    def validate(self, src: str) -> None:
        super().validate(src)
        check(src, self.key("clusters"), self.clusters,
              isinstance(self.clusters, int) and MIN_CLUSTERS <= self.clusters <= MAX_CLUSTERS,
              f"an integer from {MIN_CLUSTERS} to {MAX_CLUSTERS} (Vela's palette holds {MAX_CLUSTERS} values; 0 and +-127 take three)")
        check(src, self.key("sparsity"), self.sparsity, 0.0 <= self.sparsity < 1.0, "0 <= sparsity < 1")
        check_layer_levels(self, src)
        check(src, self.key("qat_scope"), self.qat_scope, self.qat_scope == "weights",
              "'weights' for kind 'cluster' (scope 'full' trains a copy of the model the clusters are not held on)")


@COMPRESSORS.register("cluster", config=ClusterConfig)
class ClusterCompressor(Compressor):
    """Weight clustering to a shared int8 codebook per tensor, optionally after magnitude pruning."""

    noop_note = None

    @property
    def structure(self) -> str:
        sparse = self.config.sparsity > 0 or any("=" in entry for entry in self.config.layers)
        return "cluster+weight" if sparse else "cluster"

    def layer_targets(self, model_cfg) -> dict[str, float]:
        """{layer: sparsity}: `layers` ('name' or 'name=sparsity'), default the compressible layers, plus the
        layers `layer_clusters` names (dense unless `layers` prunes them)."""
        from sepipe.models import family_of

        targets = parse_layers(self.config, model_cfg, self.config.sparsity, per_layer_sparsity=True)
        family = family_of(model_cfg)
        valid = list(family.compressible_layers(model_cfg)) + list(family.output_layers(model_cfg))
        for name in layer_levels(self.config, {}):
            if name not in valid:
                raise ConfigError("<variant>", self.config.key("layer_clusters"), name, f"layer names among {valid}")
        return {**{name: 0.0 for name in layer_levels(self.config, {}) if name not in targets}, **targets}

    def prunes(self, targets: dict[str, float]) -> bool:
        return bool(targets)          # clustering changes every targeted layer, sparse or not

    def compress(self, model, model_cfg, targets, steps, session) -> Compressed:
        from sepipe.compress import clustering, prune

        stats: dict = {}
        pruned: list[str] = []
        specs = {name: prune.PruneSpec(s) for name, s in targets.items() if s > 0}
        if specs:
            prune_steps = steps // 2
            model, stats["schedule"] = prune.prune_and_finetune(
                model, specs, prune_steps, session, "polynomial (power 3)", "one-shot magnitude (no fine-tuning steps)")
            pruned, steps = sorted(specs), steps - prune_steps
        levels = layer_levels(self.config, {name: self.config.clusters for name in targets})
        codebooks: dict = {}
        # one attach per (levels, sparse) group; each tensor's codebook is its own, so grouping changes no byte
        for group in sorted({(n, name in specs) for name, n in levels.items() if n}):
            names = sorted(name for name, n in levels.items() if (n, name in specs) == group)
            codebooks.update(clustering.attach(model, names, group[0], keep_zeros=group[1]))
        # pruned but not clustered: without this the cluster phase would let their zeros grow back
        held = clustering.hold_zeros(model, sorted(name for name in specs if not levels.get(name)))
        session.train(model, steps, phase="cluster")
        stats["clustering"] = {
            "clusters": self.config.clusters, "steps": steps, "codebooks": codebooks,
            **({"layer_clusters": dict(sorted(levels.items()))} if self.config.layer_clusters else {}),
            **({"zeros_held": held} if held else {}),
            "route": "shared int8 codes per tensor (each channel's extreme at +-127, scales unchanged), "
                     "k-means from quantiles; straight-through fine-tuning (float shadow, snapped after "
                     "every optimizer step by the variable's constraint, held through QAT)"
                     + ("; zeros held as their own cluster" if specs else ""),
        }
        return Compressed(model, model_cfg, pruned, stats)
