"""Runs an experiment's stages in order, skipping those whose inputs are unchanged.

    data -> train -> convert -> evaluate -> report

Each stage records in `<run>/manifest.json` a fingerprint of what it depends on
(its config section, the hashes of its input files, tool versions) and the
hashes of its outputs. A stage is redone when that fingerprint changes or an
output is missing or altered, not merely when a file is missing.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline import artifacts
from pipeline.config import ExperimentConfig
from pipeline.errors import MissingArtifactError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunPaths:
    """Where every artifact of one experiment lives (names say what they are)."""

    cfg: ExperimentConfig

    @property
    def run_dir(self) -> Path:
        return self.cfg.run_dir

    @property
    def train_dir(self) -> Path:
        return self.run_dir / "train"

    @property
    def streaming_weights(self) -> Path:
        return self.train_dir / "streaming.weights.h5"

    @property
    def calibration(self) -> Path:
        return self.run_dir / "convert" / "calibration.npz"

    def tflite(self, variant: str = "ptq") -> Path:
        return self.run_dir / f"{self.cfg.name}_{variant}_int8.tflite"

    @property
    def evaluate_dir(self) -> Path:
        return self.run_dir / "evaluate"

    @property
    def compile_dir(self) -> Path:
        return self.run_dir / "compile"

    @property
    def report_dir(self) -> Path:
        return self.run_dir / "report"


def _dataset_manifest(dataset) -> Path:
    return Path(dataset.root) / "manifest.json"


def _record(cfg: ExperimentConfig, stage: str, fingerprint: dict, outputs: list[Path], summary: dict) -> None:
    artifacts.record_stage(cfg.run_dir, stage, fingerprint, outputs, summary)
    manifest = artifacts.read_manifest(cfg.run_dir)
    manifest["config"] = cfg.to_dict()
    artifacts.write_json(cfg.run_dir / "manifest.json", manifest)


def _summary(cfg: ExperimentConfig, stage: str) -> dict:
    return artifacts.read_manifest(cfg.run_dir)["stages"][stage]["summary"]


# ---------------------------------------------------------------- stages
def stage_data(cfg: ExperimentConfig, build: bool, progress: bool = True):
    """Open the experiment's dataset, building it first when `build` (else a missing one is an error)."""
    from pipeline.data import Dataset, build_dataset

    if build:
        build_dataset(cfg.data, progress=progress)
    return Dataset.open(cfg.data)


def stage_train(cfg: ExperimentConfig, dataset, progress: bool = True) -> dict:
    from pipeline.train import train

    paths = RunPaths(cfg)
    config = {"seed": cfg.seed, "data": cfg.data, "features": cfg.features, "model": cfg.model, "train": cfg.train}
    fingerprint = artifacts.stage_fingerprint(config, {"dataset_manifest": _dataset_manifest(dataset)})
    if artifacts.stage_is_current(cfg.run_dir, "train", fingerprint):
        log.info("train: up to date (%s)", paths.streaming_weights)
        return _summary(cfg, "train")
    _discard_stale_checkpoints(paths.train_dir, fingerprint)
    result = train(cfg, dataset, paths.train_dir, progress=progress)
    history = artifacts.write_json(paths.train_dir / "history.json", result.history)
    best = next(r for r in result.history if r["epoch"] == result.best_epoch)
    summary = {"best_epoch": result.best_epoch, "epochs_run": len(result.history),
               "best_val_sisdr_db": best["val_sisdr_db"], "train_seconds": sum(r["seconds"] for r in result.history)}
    _record(cfg, "train", fingerprint, [result.sequence_weights, result.streaming_weights, history], summary)
    return summary


def _discard_stale_checkpoints(train_dir: Path, fingerprint: dict) -> None:
    """Resume only a run of the same config: checkpoints of another config are removed."""
    marker = train_dir / "fingerprint.json"
    wanted = artifacts.sha256_json(fingerprint)
    if marker.exists() and marker.read_text().strip() != wanted:
        log.info("train: config or data changed since the checkpoints were written; starting afresh")
        shutil.rmtree(train_dir)
    if not marker.exists():
        artifacts.write_text(marker, wanted + "\n")


def load_streaming_model(cfg: ExperimentConfig):
    from models import build_streaming_model

    paths = RunPaths(cfg)
    if not paths.streaming_weights.exists():
        raise MissingArtifactError(paths.streaming_weights, f"train first: sepipe train {cfg.name}.yaml")
    model = build_streaming_model(cfg.model, cfg.features.bins)
    model.load_weights(str(paths.streaming_weights))
    return model


def stage_convert(cfg: ExperimentConfig, dataset, progress: bool = True) -> dict:
    from pipeline import features as feat
    from pipeline.convert import collect_calibration, convert_int8, save_calibration, validate_int8_model

    paths = RunPaths(cfg)
    config = {"seed": cfg.seed, "features": cfg.features, "model": cfg.model, "convert": cfg.convert}
    streaming = load_streaming_model(cfg)
    fingerprint = artifacts.stage_fingerprint(config, {"streaming_weights": paths.streaming_weights,
                                                        "dataset_manifest": _dataset_manifest(dataset)})
    if artifacts.stage_is_current(cfg.run_dir, "convert", fingerprint):
        log.info("convert: up to date (%s)", paths.tflite())
        return _summary(cfg, "convert")
    files = dataset.training_files(cfg.convert.calibration_files, seed=cfg.seed)
    frames = [feat.features(pair.noisy, cfg.features)[0] for pair in files]
    calibration = collect_calibration(streaming, frames, cfg.convert.calibration_frames, seed=cfg.seed)
    save_calibration(calibration, paths.calibration)
    log.info("convert: calibrating on %d frames from %d training mixtures", cfg.convert.calibration_frames, len(files))
    tflite = convert_int8(cfg.model, cfg.features.bins, paths.streaming_weights, paths.calibration, paths.tflite())
    model_io = validate_int8_model(tflite)
    check = _check_against_float(cfg, streaming, tflite.read_bytes(), frames[:2])
    summary = {"tflite_bytes": tflite.stat().st_size, "calibration": {"files": [p.name for p in files],
               **calibration.selection}, "float_check": check, "io": _io_summary(model_io)}
    log.info("convert: %s (%d bytes); int8 vs float mask on 2 calibration files: mean |diff| %.4f",
             tflite.name, summary["tflite_bytes"], check["mask_mean_abs_diff"])
    _record(cfg, "convert", fingerprint, [tflite, paths.calibration], summary)
    return summary


def _io_summary(model_io) -> dict:
    return {kind: [{"name": t.name, "shape": list(t.shape), "scale": float(t.scale), "zero_point": int(t.zero_point)}
                   for t in tensors] for kind, tensors in (("inputs", model_io.inputs), ("outputs", model_io.outputs))}


def _check_against_float(cfg: ExperimentConfig, streaming, tflite_bytes: bytes, frames: list[np.ndarray]) -> dict:
    """Mask difference between the int8 TFLite model and the float model on real frames."""
    from pipeline.interpreters import make_runner

    float_runner = make_runner("float", streaming_model=streaming)
    int8_runner = make_runner("tflite", tflite_bytes=tflite_bytes)
    diffs = []
    for features in frames:
        float_runner.reset(), int8_runner.reset()
        diffs.append(np.abs(float_runner.run(features) - int8_runner.run(features)))
    return {"mask_mean_abs_diff": float(np.mean([d.mean() for d in diffs])),
            "mask_max_abs_diff": float(max(d.max() for d in diffs))}


def stage_evaluate(cfg: ExperimentConfig, dataset, progress: bool = True) -> dict:
    from pipeline.evaluate import evaluate
    from pipeline.report import write_tables

    paths = RunPaths(cfg)
    tflite = paths.tflite()
    if not tflite.exists() and set(cfg.evaluate.interpreters) - {"float"}:
        raise MissingArtifactError(tflite, f"convert first: sepipe convert {cfg.name}.yaml")
    config = {"seed": cfg.seed, "features": cfg.features, "model": cfg.model, "evaluate": cfg.evaluate}
    inputs = {"streaming_weights": paths.streaming_weights, "dataset_manifest": _dataset_manifest(dataset)}
    if tflite.exists():
        inputs["tflite"] = tflite
    fingerprint = artifacts.stage_fingerprint(config, inputs)
    if artifacts.stage_is_current(cfg.run_dir, "evaluate", fingerprint):
        log.info("evaluate: up to date (%s)", paths.evaluate_dir)
        return _summary(cfg, "evaluate")
    result = evaluate(cfg, dataset, load_streaming_model(cfg), tflite.read_bytes() if tflite.exists() else None,
                      paths.evaluate_dir, progress=progress)
    notes = [f"TFLite Micro vs TFLite: {_describe_gap(result.interpreter_gap)}",
             "Streaming speed (x real time, features + network + resynthesis, one core of the CI machine): "
             + ", ".join(f"{k} {v['loop_rtf']:.0f}x (network alone {v['network_rtf']:.0f}x)" for k, v in result.speed.items())]
    outputs = write_tables(result.rows, paths.evaluate_dir, f"{cfg.name}_quality", notes)
    outputs.append(artifacts.write_json(paths.evaluate_dir / "per_file.json", result.per_file))
    summary = {"rows": result.rows, "interpreter_gap": result.interpreter_gap, "speed": result.speed, "notes": notes}
    _record(cfg, "evaluate", fingerprint, outputs, summary)
    return summary


def _describe_gap(gap: dict) -> str:
    if not gap:
        return "not measured (both interpreters are needed)"
    return (f"mask differs by at most {gap['mask_max_diff_lsb']:.0f} LSB on {100 * gap['frames_differing_fraction']:.1f}% "
            f"of frames; SI-SDR differs by at most {gap['si_sdr_max_abs_diff_db']:.3f} dB per file")


def stage_compile(cfg: ExperimentConfig, variant: str = "ptq") -> dict:
    """Vela for every target of the experiment; one record per target."""
    from pipeline.compile import CompileOptions, compile_many
    from pipeline.targets import DEFAULT_TARGETS_FILE, load_targets

    paths = RunPaths(cfg)
    tflite = paths.tflite(variant)
    if not tflite.exists():
        raise MissingArtifactError(tflite, f"convert first: sepipe convert {cfg.name}.yaml")
    targets_file = Path(cfg.compile.targets_file or DEFAULT_TARGETS_FILE)
    targets = load_targets(targets_file)
    ini_files = {Path(t.vela_config) for t in targets.values()}
    inputs = {"tflite": tflite, "targets_file": targets_file, **{f"vela_ini:{p.name}": p for p in ini_files}}
    fingerprint = artifacts.stage_fingerprint({"compile": cfg.compile}, inputs)
    stage = f"compile:{variant}"
    if artifacts.stage_is_current(cfg.run_dir, stage, fingerprint):
        log.info("compile: up to date (%s)", paths.compile_dir)
        return _summary(cfg, stage)
    name = f"{cfg.name}_{variant}"
    results = compile_many(tflite, cfg.compile.targets, paths.compile_dir, name,
                           CompileOptions(require_full_npu=cfg.compile.require_full_npu), targets_file=targets_file)
    for result in results:
        log.info("compile: %s on %s: %d cycles, %.3f ms, SRAM %.1f KiB, NPU ops %.0f%%", name, result.record["target"],
                 result.record["cycles_total"], result.record["inference_time_ms"],
                 result.record["sram_memory_used_kib"], 100 * result.record["npu_op_share"])
    outputs = [path for result in results for path in result.outputs]
    outputs.append(paths.compile_dir / f"{name}_vela_records.csv")
    summary = {"records": [result.record for result in results]}
    _record(cfg, stage, fingerprint, outputs, summary)
    return summary


def model_size(cfg: ExperimentConfig) -> dict:
    """Parameters and non-zero weights of the trained model (biases included)."""
    weights = load_streaming_model(cfg).get_weights()
    return {"params": int(sum(w.size for w in weights)), "nonzero_weights": int(sum(np.count_nonzero(w) for w in weights))}


def stage_report(cfg: ExperimentConfig, variant: str = "ptq") -> dict:
    """Join quality (evaluate) with deployment (compile) into CSV, Markdown and HTML."""
    from pipeline.html_report import write_html_report
    from pipeline.report import DEPLOYMENT_COLUMNS, deployment_rows, write_tables

    paths = RunPaths(cfg)
    stages = artifacts.read_manifest(cfg.run_dir)["stages"]
    for needed in ("evaluate", f"compile:{variant}"):
        if needed not in stages:
            raise MissingArtifactError(cfg.run_dir / "manifest.json",
                                       f"no '{needed}' stage recorded; run: sepipe run {cfg.name}.yaml")
    quality = stages["evaluate"]["summary"]["rows"]
    records = stages[f"compile:{variant}"]["summary"]["records"]
    hop_ms = 1000.0 * cfg.features.hop / cfg.data.sample_rate
    label = f"{cfg.model.family}-{cfg.model.rnn_layers}x{cfg.model.rnn_units}"
    rows = deployment_rows(cfg.name, variant, label, model_size(cfg), paths.tflite(variant).stat().st_size,
                           quality, records, hop_ms)
    notes = [f"Quality columns: the int8 model as TFLite Micro runs it, on {quality[0]['files']} test files. "
             f"Latency as a fraction of the {hop_ms:g} ms hop. On U65/U85 (Dedicated_Sram) weights live in DRAM, "
             "so flash is 0 and the DRAM column holds them."]
    stem = f"{cfg.name}_report"
    outputs = write_tables(rows, paths.report_dir, stem, notes, columns=DEPLOYMENT_COLUMNS)
    first = records[0]
    per_layer = paths.compile_dir / f"{cfg.name}_{variant}_vela_{first['target_id']}_per-layer.csv"
    outputs.append(write_html_report(rows, paths.report_dir / f"{stem}.html", f"{cfg.name}: quality and deployment",
                                     per_layer_csv=per_layer if per_layer.exists() else None,
                                     per_layer_label=f"{variant} on {first['target']}",
                                     notes=notes + stages["evaluate"]["summary"].get("notes", []),
                                     quality_rows=quality))
    log.info("report: %s", ", ".join(str(p) for p in outputs))
    return {"rows": rows, "outputs": [str(p) for p in outputs], "notes": notes}


def run_experiment(cfg: ExperimentConfig, progress: bool = True) -> dict:
    """All stages of `cfg`, each skipped when up to date; returns the evaluation and report summaries."""
    log.info("experiment %s -> %s", cfg.name, cfg.run_dir)
    dataset = stage_data(cfg, build=True, progress=progress)
    stage_train(cfg, dataset, progress=progress)
    stage_convert(cfg, dataset, progress=progress)
    stage_compile(cfg)
    evaluation = stage_evaluate(cfg, dataset, progress=progress)
    return {"evaluate": evaluation, "report": stage_report(cfg)}
