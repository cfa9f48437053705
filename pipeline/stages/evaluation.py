"""Evaluation stages: the references once per experiment, each variant's interpreters, the quality table."""

from __future__ import annotations

import dataclasses
import json

from sepipe import artifacts
from sepipe.compress import compressor_of
from sepipe.config import ExperimentConfig, VariantConfig
from sepipe.models import family_of
from sepipe.engine.stage import Done, Stage, StageContext
from sepipe.stages import tools
from sepipe.stages.paths import DataHandle, RunPaths, load_streaming_model, variant_model, variant_stage


def _evaluate_config(cfg: ExperimentConfig):
    """The evaluate section as the results depend on it: `workers` (how many processes score) is left
    out, so a Ray task that sizes the pool to its CPUs does not redo a finished evaluation; so is
    `quality_predictor` (its own stages score with it: naming one redoes no PESQ or DNSMOS)."""
    return dataclasses.replace(cfg.evaluate, workers=0, quality_predictor=None)


def declare_references(cfg: ExperimentConfig, data: DataHandle) -> Stage:
    """Score the unprocessed input and RNNoise once per experiment."""
    paths = RunPaths(cfg)
    return Stage(
        name="evaluate:references", tools=tools.REFERENCES,
        config={"features": cfg.features, "evaluate": _evaluate_config(cfg)},
        inputs=lambda needs: {"dataset_manifest": data.manifest},
        outputs=[paths.evaluate_dir / "references_per_file.json"],
        run=lambda ctx: _references(cfg, data, ctx),
        hint=f"evaluate first: sepipe evaluate {cfg.name}.yaml")


def _references(cfg: ExperimentConfig, data: DataHandle, ctx: StageContext) -> Done:
    from sepipe.evaluate import evaluate_references

    paths = RunPaths(cfg)
    result = evaluate_references(cfg, data.dataset, paths.evaluate_dir, progress=ctx.progress)
    artifacts.write_json(paths.evaluate_dir / "references_per_file.json", result.per_file)
    # the kept WAVs are outputs: their record hashes them, so an edited or deleted one makes it stale
    # (the report embeds them, and its sources record digests this record)
    return Done({"rows": result.rows}, result.audio)


def _uses_tflite(cfg: ExperimentConfig) -> bool:
    return bool(set(cfg.evaluate.interpreters) - {"float"})


def declare_evaluate(cfg: ExperimentConfig, data: DataHandle, variant: VariantConfig) -> Stage:
    """Stream the test set through the variant's float model (if any), TFLite and TFLite Micro."""
    paths = RunPaths(cfg)
    tflite = paths.tflite(variant.name)
    float_model = None if compressor_of(variant).derives_from_dense_model else "train"
    needs = tuple(n for n in (variant_stage(variant) or float_model,
                              f"convert:{variant.name}" if _uses_tflite(cfg) else None) if n)

    def inputs(needs):
        found = {"dataset_manifest": data.manifest}
        model = variant_model(cfg, variant, needs)
        if model.streaming_weights is not None:
            found["streaming_weights"] = model.streaming_weights
        if _uses_tflite(cfg):
            found["tflite"] = tflite
        return found

    return Stage(
        name=f"evaluate:{variant.name}", needs=needs, group=variant.name,
        tools=tools.evaluate(cfg.evaluate.interpreters),
        config=lambda needs: {"seed": cfg.seed, "features": cfg.features,
                              "model": variant_model(cfg, variant, needs).model, "evaluate": _evaluate_config(cfg)},
        inputs=inputs, outputs=[paths.evaluate_dir / f"{variant.name}_per_file.json"],
        run=lambda ctx: _evaluate(cfg, data, variant, ctx),
        hint=f"evaluate first: sepipe evaluate {cfg.name}.yaml")


def _evaluate(cfg: ExperimentConfig, data: DataHandle, variant: VariantConfig, ctx: StageContext) -> Done:
    from sepipe.evaluate import evaluate_models

    paths = RunPaths(cfg)
    model = variant_model(cfg, variant, ctx.needs)
    tflite = paths.tflite(variant.name)
    streaming = load_streaming_model(model, cfg.features.bins) if model.streaming_weights is not None else None
    result = evaluate_models(cfg, data.dataset, variant.name, model.label, streaming,
                             tflite.read_bytes() if _uses_tflite(cfg) else None, paths.evaluate_dir,
                             progress=ctx.progress,
                             contract=family_of(model.model).contract(model.model, cfg.features.bins))
    artifacts.write_json(paths.evaluate_dir / f"{variant.name}_per_file.json", result.per_file)
    return Done({"rows": result.rows, "interpreter_gap": result.interpreter_gap, "speed": result.speed},
                result.audio)     # the kept WAVs, hashed by the record as in _references


def declare_quality(cfg: ExperimentConfig, data: DataHandle) -> Stage:
    """The quality tables of the references and every variant, on average and per test condition
    (cheap: always rewritten from the stored per-file scores, no record)."""
    from sepipe.stages.prediction import predict_stages

    return Stage(name="quality", needs=("evaluate:references", *(f"evaluate:{v.name}" for v in cfg.variants),
                                        *predict_stages(cfg)),
                 record=False, run=lambda ctx: quality_tables(cfg, ctx.needs, data))


def quality_tables(cfg: ExperimentConfig, needs, data: DataHandle) -> dict:
    from sepipe.evaluate import quality_by_condition, quality_table
    from sepipe.report import CONDITION_COLUMNS, DISPLAY_COLUMNS, with_predicted, write_tables
    from sepipe.stages.prediction import predictor_note, with_predictions

    paths = RunPaths(cfg)
    summaries = {v.name: needs[f"evaluate:{v.name}"] for v in cfg.variants}
    rows = quality_table(needs["evaluate:references"]["rows"], [row for s in summaries.values() for row in s["rows"]],
                         cfg.dense_variant.name)
    rows = with_predictions(cfg, needs, rows)
    notes = evaluation_notes(summaries) + predictor_note(cfg, needs)
    predicted = cfg.evaluate.quality_predictor is not None
    write_tables(rows, paths.evaluate_dir, f"{cfg.name}_quality", notes,
                 columns=with_predicted(DISPLAY_COLUMNS) if predicted else DISPLAY_COLUMNS)
    per_file = [row for stem in ("references", *(v.name for v in cfg.variants))
                for row in json.loads((paths.evaluate_dir / f"{stem}_per_file.json").read_text())]
    by_condition = quality_by_condition(rows, per_file, data.dataset.conditions("test"))
    write_tables(by_condition, paths.evaluate_dir, f"{cfg.name}_quality_by_condition", columns=CONDITION_COLUMNS)
    return {"rows": rows, "notes": notes, "by_condition": by_condition}


def evaluation_notes(summaries: dict) -> list[str]:
    notes = []
    for name, summary in summaries.items():
        gap, speed = summary.get("interpreter_gap"), summary.get("speed", {})
        if gap:
            notes.append(f"{name}: TFLite Micro vs TFLite: mask differs by at most {gap['mask_max_diff_lsb']:.0f} LSB "
                         f"({100 * gap['mask_values_differing_fraction']:.1f}% of values differ); SI-SDR by at most "
                         f"{gap['si_sdr_max_abs_diff_db']:.3f} dB per file.")
        if speed:
            notes.append(f"{name}: streaming speed, x real time on one core (features + network + resynthesis): "
                         + ", ".join(f"{k} {v['loop_rtf']:.0f}x (network alone {v['network_rtf']:.0f}x)"
                                     for k, v in speed.items()))
    return notes
