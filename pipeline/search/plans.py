"""Precision plans of a search: each distinct plan converted once, as a 'ptq' variant with a `precision:` mapping.

A plan ({rnn: int16x8}, ...) is the `precision:` of a `ptq` variant named after it (genes.plan_variant). The
search adds those variants to the experiment and converts them through the run's own stages
(sepipe.stages.api.stage_convert): a plan converted before, by this search or `sepipe run`, is skipped by its
stage record. A candidate on a plan is an `offline` variant with `base: <plan variant>`, which `sepipe run`
rebuilds from the same converted bytes.
"""

from __future__ import annotations

from pathlib import Path

from sepipe.search.genes import Genome, plan_variant


def plan_variants(genome: Genome) -> list[dict]:
    """The YAML variants of the genome's plans (the dense int8 model, plan (), has none)."""
    return [{"name": plan_variant(plan), "kind": "ptq", "precision": dict(plan)} for plan in genome.plans if plan]


def with_variants(raw_experiment: dict, cfg, extra: list[dict]) -> dict:
    """`raw_experiment` with `extra` variants appended (replacing same-named ones)."""
    names = {v["name"] for v in extra}
    variants = list(raw_experiment.get("variants") or [{"name": cfg.dense_variant.name, "kind": "ptq"}])
    variants = [v for v in variants if not (isinstance(v, dict) and v.get("name") in names)]
    return {**raw_experiment, "variants": [*variants, *extra]}


def convert_plans(cfg, raw_experiment: dict, genome: Genome, source: str, progress: bool = True) -> dict[str, Path]:
    """{plan variant: its converted .tflite}, each converted once (stage records skip a plan converted before)."""
    extra = plan_variants(genome)
    if not extra:
        return {}
    from sepipe.config import experiment_from_dict
    from sepipe.stages.api import stage_convert, stage_data
    from sepipe.stages.paths import RunPaths, find_variant

    planned = experiment_from_dict(with_variants(raw_experiment, cfg, extra), source)
    dataset = stage_data(planned, build=False)
    paths = {}
    for variant in extra:
        stage_convert(planned, dataset, find_variant(planned, variant["name"]), progress)
        paths[variant["name"]] = RunPaths(planned).tflite(variant["name"])
    return paths
