"""The report stage: quality (evaluate) joined with deployment (compile) into CSV, Markdown and HTML."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from sepipe.compress import compressor_of
from sepipe.config import ExperimentConfig
from sepipe.engine.currency import remove_sources, sources_path, write_sources
from sepipe.engine.stage import Stage
from sepipe.stages.paths import RunPaths, VariantModel, load_streaming_model, variant_model, variant_stage

log = logging.getLogger(__name__)


def model_size(cfg: ExperimentConfig, model: VariantModel, tflite: Path) -> dict:
    """Parameters and non-zero weights (biases included) of the variant's float model.

    'offline' has no float model: its parameters are the dense model's, minus the zeros
    the pruning wrote into the int8 weights.
    """
    if model.streaming_weights is not None:
        weights = load_streaming_model(model, cfg.features.bins).get_weights()
        return {"params": int(sum(w.size for w in weights)),
                "nonzero_weights": int(sum(np.count_nonzero(w) for w in weights))}
    from sepipe.compress import tflite_sparsity

    dense = model_size(cfg, VariantModel(cfg.model, RunPaths(cfg).streaming_weights), tflite)
    zeros = tflite_sparsity(tflite.read_bytes())["zeros"]
    return {"params": dense["params"], "nonzero_weights": dense["params"] - int(zeros)}


def declare_report(cfg: ExperimentConfig) -> Stage:
    """Derived from recorded stages only (cheap): always rewritten, no record of its own."""
    from sepipe.stages.prediction import predict_stages

    needs = ["evaluate:references"]
    for v in cfg.variants:
        needs += [n for n in (variant_stage(v), f"evaluate:{v.name}", f"compile:{v.name}") if n]
    needs += predict_stages(cfg)
    stem = RunPaths(cfg).report_dir / f"{cfg.name}_report"
    return Stage(name="report", needs=tuple(needs), record=False, run=lambda ctx: write_report(cfg, ctx.needs),
                 inputs=lambda needs: _listen_inputs(cfg, needs),
                 outputs=[stem.with_suffix(suffix) for suffix in (".csv", ".md", ".html")],
                 writes=[sources_path(stem.with_suffix(".csv"))],
                 hint=f"run: sepipe run experiments/{cfg.name}.yaml")


def write_report(cfg: ExperimentConfig, needs) -> dict:
    """The report tables, then their sources record (what a budget check of the run folder trusts)."""
    paths = RunPaths(cfg)
    csv_path = paths.report_dir / f"{cfg.name}_report.csv"
    remove_sources(csv_path)     # a report that fails half way leaves tables a budget check refuses
    summary = _write_tables(cfg, needs)
    # the page too: its hash lets a reader check it is what this report wrote from these records
    write_sources(cfg.run_dir, [csv_path, csv_path.with_suffix(".html")], needs, f"sepipe report {cfg.name}.yaml")
    return summary


def _quality(cfg: ExperimentConfig, needs) -> list[dict]:
    from sepipe.evaluate import quality_table
    from sepipe.stages.prediction import with_predictions

    return with_predictions(cfg, needs, quality_table(needs["evaluate:references"]["rows"],
                                                      [row for v in cfg.variants
                                                       for row in needs[f"evaluate:{v.name}"]["rows"]],
                                                      cfg.dense_variant.name))


def _listening(cfg: ExperimentConfig, quality: list[dict]) -> tuple[Path, list[str], list[tuple[str, str]]]:
    """The evaluation's audio folder, the test files whose audio it kept and the systems of the quality table."""
    from sepipe.report.listen import kept_files, systems_of

    evaluate_dir = RunPaths(cfg).evaluate_dir
    per_file = evaluate_dir / "references_per_file.json"   # its order is the order audio was kept in
    files = kept_files(json.loads(per_file.read_text()), cfg.evaluate.write_audio) if per_file.is_file() else []
    return evaluate_dir / "audio", files, systems_of(quality)


def _listen_inputs(cfg: ExperimentConfig, needs) -> dict[str, Path]:
    """The WAVs the page embeds: evaluation writes them beside its records, the report reads them."""
    from sepipe.report.listen import input_files

    return input_files(*_listening(cfg, _quality(cfg, needs)))


def _write_tables(cfg: ExperimentConfig, needs) -> dict:
    from sepipe.report import (DEPLOYMENT_COLUMNS, as_dicts, build_deployment_rows, headline_figures, headline_lines,
                               with_predicted, write_tables)
    from sepipe.report.predicted import render_predicted_section
    from sepipe.stages.prediction import predictor_note
    from sepipe.quantize.precision import precision_label
    from sepipe.report.listen import render_listen_section
    from sepipe.report.page import write_html_report

    paths = RunPaths(cfg)
    quality = _quality(cfg, needs)
    hop_ms = 1000.0 * cfg.features.hop / cfg.data.sample_rate
    rows = []
    for variant in cfg.variants:
        model = variant_model(cfg, variant, needs)
        tflite = paths.tflite(variant.name)
        size = model_size(cfg, model, tflite)
        rows += build_deployment_rows(cfg.name, variant.name, compressor_of(variant).structure, model.label,
                                      size["params"], size["nonzero_weights"], tflite.stat().st_size, quality,
                                      needs[f"compile:{variant.name}"]["records"], hop_ms,
                                      precision=precision_label(cfg.precision_of(variant.name)))
    files = quality[0]["files"] if quality else 0
    notes = [f"Quality columns: the int8 model as TFLite Micro runs it, on {files} test files; 'vs float' is against "
             f"the dense float model. Latency as a fraction of the {hop_ms:g} ms hop. On U65/U85 (Dedicated_Sram) "
             "weights live in DRAM, so flash is 0 and the DRAM column holds them."]
    notes += predictor_note(cfg, needs)
    if len(cfg.variants) > 1:
        notes += [""] + headline_lines(headline_figures(rows))
    stem = f"{cfg.name}_report"
    predicted = cfg.evaluate.quality_predictor is not None
    outputs = write_tables(rows, paths.report_dir, stem, notes,
                           columns=with_predicted(DEPLOYMENT_COLUMNS) if predicted else DEPLOYMENT_COLUMNS)
    first = rows[0]
    per_layer = paths.compile_dir / f"{cfg.name}_{first.variant}_vela_{first.compiled.target_id}_per-layer.csv"
    outputs.append(write_html_report(rows, paths.report_dir / f"{stem}.html", f"{cfg.name}: quality and deployment",
                                     per_layer_csv=per_layer if per_layer.exists() else None,
                                     per_layer_label=f"{first.variant} on {first.target}",
                                     notes=notes, quality_rows=quality, predicted_html=render_predicted_section(quality),
                                     listen_html=render_listen_section(*_listening(cfg, quality),
                                                                       cfg.data.sample_rate)))
    log.info("report: %s", ", ".join(str(p) for p in outputs))
    return {"rows": as_dicts(rows), "outputs": [str(p) for p in outputs], "notes": notes}
