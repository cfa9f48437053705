"""cluster: weight clustering (at most `clusters` distinct int8 values per weight tensor), alone or with pruning.

    variants:
      - {name: c16, kind: cluster, clusters: 16}
      - {name: c8-w80, kind: cluster, clusters: 8, sparsity: 0.8, qat: true}

Per tensor, in int8 codes (sepipe.compress.clustering says why: Vela's palette spans many output channels):
every clustered kernel of the int8 model holds at most `clusters` distinct values, the same in every
channel, zero counted as one of them. Dense kernels and the GRU/LSTM kernels and recurrent kernels are all
clustered by sepipe.compress.clustering (one route for every layer, so the int8 guarantee holds for each).

With `sparsity`, the first half of the kind's steps prune (TFMOT magnitude pruning, as kind 'weight'),
the rest cluster with the zeros held as their own cluster (sparsity-preserving clustering). With zero
fine-tuning steps it is one-shot (pruning, then clustering, no weight update). `qat: true`: the shared
QAT phase runs after, the clusters held by the same constraint. `layers`: bare names, as kind 'unit'.
"""

from __future__ import annotations

from dataclasses import dataclass

from sepipe.compress.base import COMPRESSORS, Compressed, Compressor, VariantConfig, parse_layers
from sepipe.compress.clustering import MAX_CLUSTERS, MIN_CLUSTERS
from sepipe.errors import check



@dataclass(frozen=True)
class ClusterConfig(VariantConfig):
    clusters: int = 16               # distinct int8 values per weight tensor (0 and each channel's +-127 among them)
    sparsity: float = 0.0            # fraction of zero weights (magnitude pruning before clustering)

    def validate(self, src: str) -> None:
        super().validate(src)
        check(src, self.key("clusters"), self.clusters,
              isinstance(self.clusters, int) and MIN_CLUSTERS <= self.clusters <= MAX_CLUSTERS,
              f"an integer from {MIN_CLUSTERS} to {MAX_CLUSTERS} (Vela's palette holds {MAX_CLUSTERS} values; 0 and +-127 take three)")
        check(src, self.key("sparsity"), self.sparsity, 0.0 <= self.sparsity < 1.0, "0 <= sparsity < 1")
        check(src, self.key("qat_scope"), self.qat_scope, self.qat_scope == "weights",
              "'weights' for kind 'cluster' (scope 'full' trains a copy of the model the clusters are not held on)")


@COMPRESSORS.register("cluster", config=ClusterConfig)
class ClusterCompressor(Compressor):
    """Weight clustering to a shared int8 codebook per tensor, optionally after magnitude pruning."""

    noop_note = None

    @property
    def structure(self) -> str:
        return "cluster+weight" if self.config.sparsity > 0 else "cluster"

    def layer_targets(self, model_cfg) -> dict[str, float]:
        return parse_layers(self.config, model_cfg, self.config.sparsity)

    def prunes(self, targets: dict[str, float]) -> bool:
        return bool(targets)          # clustering changes every targeted layer, sparse or not

    def compress(self, model, model_cfg, targets, steps, session) -> Compressed:
        from sepipe.compress import clustering, prune

        sparse = self.config.sparsity > 0
        stats: dict = {}
        pruned: list[str] = []
        if sparse:
            prune_steps = steps // 2
            specs = {name: prune.PruneSpec(s) for name, s in targets.items()}
            model, stats["schedule"] = prune.prune_and_finetune(
                model, specs, prune_steps, session, "polynomial (power 3)", "one-shot magnitude (no fine-tuning steps)")
            pruned, steps = sorted(specs), steps - prune_steps
        codebooks = clustering.attach(model, sorted(targets), self.config.clusters, keep_zeros=sparse)
        session.train(model, steps, phase="cluster")
        stats["clustering"] = {
            "clusters": self.config.clusters, "steps": steps, "codebooks": codebooks,
            "route": "shared int8 codes per tensor (each channel's extreme at +-127, scales unchanged), "
                     "k-means from quantiles; straight-through fine-tuning (float shadow, snapped after "
                     "every optimizer step by the variable's constraint, held through QAT)"
                     + ("; zeros held as their own cluster" if sparse else ""),
        }
        return Compressed(model, model_cfg, pruned, stats)
