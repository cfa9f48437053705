"""The quality predictor's scores of every evaluated system (`evaluate.quality_predictor`; issue 17).

Declared only when the experiment names a predictor, so an experiment without one has the graph, the records
and the report bytes of before:

    predict:references   the unprocessed input and RNNoise (evaluate.baselines), once per experiment
    predict:<variant>    each runner of the variant (evaluate.interpreters), in the variant's task

Each streams the same test files the evaluate stages stream, made the same way (sepipe.evaluate.stream_all:
the runners are deterministic, so the audio is the audio evaluation scored), and scores them with the
predictor's int8 .tflite in TFLite Micro (sepipe.quality_predictor.scoring). They are stages of their own,
beside evaluation rather than inside it: naming, changing or removing a predictor re-runs these only, never
the PESQ / DNSMOS scoring. The fingerprint holds the predictor's .tflite and its convert record (bytes and
normalisation), so another predictor is scored again, not reused; each record's summary names it (run,
variant, sha256). The quality table and the report join the scores on (variant, system) as `pred_<target>`.
"""

from __future__ import annotations

from sepipe import artifacts
from sepipe.config import ExperimentConfig, VariantConfig
from sepipe.engine.stage import Stage, StageContext
from sepipe.quality_predictor.reference import PREDICTED_PREFIX
from sepipe.stages import tools
from sepipe.stages.evaluation import declare_evaluate
from sepipe.stages.paths import DataHandle, RunPaths, load_streaming_model, variant_model

REFERENCES = "predict:references"
PREDICTOR_TOOLS = ("ai-edge-litert", "tflite-micro", "numpy")


def predict_stages(cfg: ExperimentConfig) -> tuple[str, ...]:
    """The names of the predict stages of `cfg` (none without a predictor)."""
    if cfg.evaluate.quality_predictor is None:
        return ()
    return (REFERENCES, *(f"predict:{v.name}" for v in cfg.variants))


def _scope(cfg: ExperimentConfig) -> dict:
    """What the predicted scores depend on besides the audio's sources: the test files, the predictor."""
    return {"test_files": cfg.evaluate.test_files, "quality_predictor": cfg.evaluate.quality_predictor}


def _predictor_inputs(cfg: ExperimentConfig) -> dict:
    from sepipe.quality_predictor.scoring import predictor_files

    return predictor_files(cfg.evaluate.quality_predictor)


def declare_predict_references(cfg: ExperimentConfig, data: DataHandle) -> Stage | None:
    if cfg.evaluate.quality_predictor is None:
        return None
    out = RunPaths(cfg).evaluate_dir / "references_predicted_per_file.json"
    return Stage(name=REFERENCES, tools=tuple(dict.fromkeys(("pyrnnoise", "soxr") + PREDICTOR_TOOLS)),
                 config={**_scope(cfg), "features": cfg.features, "baselines": cfg.evaluate.baselines},
                 inputs=lambda needs: {"dataset_manifest": data.manifest, **_predictor_inputs(cfg)},
                 outputs=[out], run=lambda ctx: _references(cfg, data, out),
                 hint=f"evaluate first: sepipe evaluate {cfg.name}.yaml")


def declare_predict(cfg: ExperimentConfig, data: DataHandle, variant: VariantConfig) -> Stage | None:
    """Needs, inputs and model slice as the variant's evaluate stage (the same runners over the same files)."""
    if cfg.evaluate.quality_predictor is None:
        return None
    evaluate = declare_evaluate(cfg, data, variant)
    runner_tools = tuple(t for t in evaluate.tools if t not in tools.METRICS or t == "numpy")
    out = RunPaths(cfg).evaluate_dir / f"{variant.name}_predicted_per_file.json"
    return Stage(name=f"predict:{variant.name}", needs=evaluate.needs, group=variant.name,
                 tools=tuple(dict.fromkeys(runner_tools + PREDICTOR_TOOLS)),
                 config=lambda needs: {**_scope(cfg), "seed": cfg.seed, "features": cfg.features,
                                       "interpreters": cfg.evaluate.interpreters,
                                       "model": variant_model(cfg, variant, needs).model},
                 inputs=lambda needs: {**evaluate.inputs(needs), **_predictor_inputs(cfg)},
                 outputs=[out], run=lambda ctx: _variant(cfg, data, variant, ctx, out),
                 hint=f"evaluate first: sepipe evaluate {cfg.name}.yaml")


def _references(cfg: ExperimentConfig, data: DataHandle, out) -> dict:
    from sepipe.baselines import rnnoise_enhance
    from sepipe.evaluate import SYSTEM_OF_REFERENCE, evaluation_pairs

    enhanced = []
    for pair in evaluation_pairs(cfg, data.dataset):
        for name in cfg.evaluate.baselines:
            audio = pair.noisy if name == "noisy" else rnnoise_enhance(pair.noisy, cfg.data.sample_rate)
            enhanced.append((SYSTEM_OF_REFERENCE[name], pair.name, audio))
    return _score(cfg, enhanced, out, {"variant": "-", "model": "-"})


def _variant(cfg: ExperimentConfig, data: DataHandle, variant: VariantConfig, ctx: StageContext, out) -> dict:
    from sepipe.evaluate import evaluation_pairs, stream_all, variant_runners
    from sepipe.models import family_of
    from sepipe.stages.evaluation import _uses_tflite

    model = variant_model(cfg, variant, ctx.needs)
    streaming = load_streaming_model(model, cfg.features.bins) if model.streaming_weights is not None else None
    tflite = RunPaths(cfg).tflite(variant.name).read_bytes() if _uses_tflite(cfg) else None
    runners = variant_runners(cfg, streaming, tflite, family_of(model.model).contract(model.model, cfg.features.bins))
    streamed = stream_all(cfg, runners, evaluation_pairs(cfg, data.dataset), f"predict {variant.name}", ctx.progress)
    enhanced = [(runners[kind].system, pair.name, audio) for pair, kind, audio in streamed]
    return _score(cfg, enhanced, out, {"variant": variant.name, "model": model.label}, prefix=f"{variant.name}/")


def _score(cfg: ExperimentConfig, enhanced: list, out, columns: dict, prefix: str = "") -> dict:
    """Per-file predicted scores written to `out`; the summary: one row per system and the predictor's provenance.
    enhanced: [(system label, file name, audio)]; per-file systems are named as evaluation's ('<variant>/<system>')."""
    from sepipe.quality_predictor.scoring import load_predictor, predicted_key

    predictor = load_predictor(cfg.evaluate.quality_predictor)
    keys = [predicted_key(t) for t in predictor.targets]
    per_file, rows = [], {}
    for system, name, audio in enhanced:
        windows, scores = predictor.scores(audio)
        values = [None] * len(keys) if scores is None else [float(v) for v in scores]
        per_file.append({"system": prefix + system, "file": name, "windows": windows, **dict(zip(keys, values))})
        rows.setdefault(system, []).append(per_file[-1])
    artifacts.write_json(out, per_file)
    return {"predictor": predictor.provenance,
            "rows": [{"experiment": cfg.name, **columns, "system": system, **_means(files, keys)}
                     for system, files in rows.items()]}


def _means(files: list[dict], keys: list[str]) -> dict:
    """Mean over the files that held a window (`files`: how many); None when none did."""
    scored = [f for f in files if f["windows"]]
    means = {k: (sum(f[k] for f in scored) / len(scored) if scored else None) for k in keys}
    return {"files": len(scored), "windows": sum(f["windows"] for f in scored), **means}


def with_predictions(cfg: ExperimentConfig, needs, rows: list[dict]) -> list[dict]:
    """Quality-table rows with the predicted scores of their (variant, system) joined as `pred_<target>` columns;
    `rows` as they are without a predictor."""
    names = predict_stages(cfg)
    if not names:
        return rows
    predicted = {(r["variant"], r["system"]): r for name in names for r in needs[name]["rows"]}
    return [{**row, **{k: v for k, v in predicted.get((row["variant"], row["system"]), {}).items()
                       if k.startswith(PREDICTED_PREFIX)}} for row in rows]


def predictor_note(cfg: ExperimentConfig, needs) -> list[str]:
    """The line naming the predictor whose scores the tables show (none without one)."""
    names = predict_stages(cfg)
    if not names:
        return []
    p = needs[names[0]]["predictor"]
    return [f"pred. columns: the quality predictor {p['variant']} of {p['run']} (int8 .tflite sha256 "
            f"{p['tflite_sha256'][:12]}..., TFLite Micro), mean over {p['seconds']:g} s windows per file, then "
            "over files: no clean reference, so not PESQ or DNSMOS itself."]
