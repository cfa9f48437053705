"""The fine-tuned proxy (`search.proxy: finetune`): each candidate is briefly fine-tuned before it is scored.

Why: the offline proxy (prune and cluster the int8 model, no retraining) ranks members of similar size well
but misjudges what fine-tuning recovers: at demo size uniform 0.8 sparsity loses 4.7 dB offline and 0.9 dB
fine-tuned, so the offline front crowds where little is pruned and its small members fine-tune worse than the
uniform cluster sweep (issue 14's three-seed front). A few fine-tuning steps per candidate put that recovery
into the objective, at the price of a fine-tune per candidate instead of an edit of bytes.

A candidate is the member as `sepipe run` fine-tunes it (kind 'cluster' or 'weight' with its per-layer
sparsity and palettes; sepipe.search.front.finetuned_variant), `search.proxy_steps` steps, named `p<id>`,
run through the experiment's own stages (fine-tune, convert) in the run folder: its stage records make a
rerun resume, and a chosen YAML that holds the same variant rebuilds the same bytes. The run's manifest is
not rewritten for these scratch variants (they are not the experiment's variants).
"""

from __future__ import annotations

from pathlib import Path

from sepipe.search.genes import Candidate


def proxy_variant(candidate: Candidate, plans: dict, steps: int, candidate_id: str | None = None) -> dict | None:
    """The YAML variant the fine-tuned proxy scores (and a chosen YAML reproduces): one epoch of `steps` steps,
    named after the candidate's id (a candidate rebuilt from a stored record, whose layers are in another
    order, passes the record's); None for a candidate that changes nothing (it is its base model)."""
    from sepipe.search.front import finetuned_variant

    if not (candidate.sparsity or candidate.levels):
        return None
    ordered = Candidate(tuple(sorted(candidate.sparsity)), tuple(sorted(candidate.levels)), base=candidate.base)
    variant = finetuned_variant(ordered, f"p{(candidate_id or candidate.id)[:8]}", plans, epochs=1)[0]
    variant["finetune_steps_per_epoch"] = steps
    return variant


class FineTunedCandidates:
    """Builds a candidate's fine-tuned int8 bytes through the run's stages (one per worker process)."""

    def __init__(self, raw_experiment: dict, cfg, steps: int, plans: dict):
        from sepipe.stages.api import stage_data

        self.raw, self.cfg, self.steps, self.plans = raw_experiment, cfg, steps, plans
        self.dataset = stage_data(cfg, build=False)

    def tflite_bytes(self, candidate: Candidate, progress: bool = False) -> bytes:
        from sepipe.config import experiment_from_dict
        from sepipe.engine.stage import Runner
        from sepipe.search.plans import with_variants
        from sepipe.stages.graph import experiment_graph
        from sepipe.stages.paths import RunPaths, find_variant, variant_stage

        raw = {k: v for k, v in self.raw.items() if k != "search"}
        variant = proxy_variant(candidate, self.plans, self.steps)
        cfg = experiment_from_dict(with_variants(raw, self.cfg, [variant]), "search proxy")
        graph = experiment_graph(cfg, self.dataset)
        runner = Runner(graph, cfg.run_dir, progress)
        chain = [variant_stage(find_variant(cfg, variant["name"])), f"convert:{variant['name']}"]
        for stage in graph.ordered([name for name in chain if name]):
            runner.run(stage)
        return Path(RunPaths(cfg).tflite(variant["name"])).read_bytes()
