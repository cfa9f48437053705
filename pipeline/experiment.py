"""Runs an experiment's stages in order, skipping those whose inputs are unchanged.

    data -> train -> convert -> evaluate -> report

Each stage records in `<run>/manifest.json` a fingerprint of what it depends on
(its config section, the hashes of its input files, tool versions) and the
hashes of its outputs. A stage is redone when that fingerprint changes or an
output is missing or altered, not merely when a file is missing.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sepipe import artifacts
from sepipe.config import ExperimentConfig, ModelConfig, VariantConfig
from sepipe.errors import MissingArtifactError
from sepipe.evaluate import DENSE_VARIANT

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
        """The trained dense float model, one-frame layout: what the 'ptq' variant converts."""
        return self.train_dir / "streaming.weights.h5"

    @property
    def sequence_weights(self) -> Path:
        return self.train_dir / "sequence.weights.h5"

    def variant_dir(self, variant: str) -> Path:
        return self.run_dir / "variants" / variant

    def calibration(self, variant: str = DENSE_VARIANT) -> Path:
        return self.run_dir / "convert" / f"{variant}_calibration.npz"

    def tflite(self, variant: str = DENSE_VARIANT) -> Path:
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
    from sepipe.data import Dataset, build_dataset

    if build:
        build_dataset(cfg.data, progress=progress)
    return Dataset.open(cfg.data)


def stage_train(cfg: ExperimentConfig, dataset, progress: bool = True) -> dict:
    from sepipe.train import train

    paths = RunPaths(cfg)
    config = {"seed": cfg.seed, "data": cfg.data, "features": cfg.features, "model": cfg.model, "train": cfg.train}
    fingerprint = artifacts.stage_fingerprint(config, {"dataset_manifest": _dataset_manifest(dataset)})
    if artifacts.stage_is_current(cfg.run_dir, "train", fingerprint):
        log.info("train: up to date (%s)", paths.streaming_weights)
        return _summary(cfg, "train")
    if _reuse_identical_training(cfg, fingerprint):
        return _summary(cfg, "train")
    _discard_stale_checkpoints(paths.train_dir, fingerprint)
    result = train(cfg, dataset, paths.train_dir, progress=progress)
    history = artifacts.write_json(paths.train_dir / "history.json", result.history)
    best = next(r for r in result.history if r["epoch"] == result.best_epoch)
    summary = {"best_epoch": result.best_epoch, "epochs_run": len(result.history),
               "best_val_sisdr_db": best["val_sisdr_db"], "train_seconds": sum(r["seconds"] for r in result.history)}
    _record(cfg, "train", fingerprint, [result.sequence_weights, result.streaming_weights, history], summary)
    return summary


def _reuse_identical_training(cfg: ExperimentConfig, fingerprint: dict) -> bool:
    """Take the trained model of another experiment whose training had the same fingerprint.

    Same data, features, model, training config, seed and tool versions give the same
    weights (training is deterministic), so a sweep experiment starts from the model its
    baseline trained instead of training it again. The outputs are copied and rehashed.
    """
    for manifest in sorted(Path(cfg.runs_dir).glob("*/manifest.json")):
        other = manifest.parent
        if other.resolve() == cfg.run_dir.resolve() or not artifacts.stage_is_current(other, "train", fingerprint):
            continue
        record = artifacts.read_manifest(other)["stages"]["train"]
        outputs = [artifacts.write_bytes(cfg.run_dir / rel, (other / rel).read_bytes()) for rel in record["outputs"]]
        _record(cfg, "train", fingerprint, outputs, {**record["summary"], "reused_from": str(other)})
        log.info("train: reusing the model trained in %s (same data, model, training config, seed and tools)", other)
        return True
    return False


def _discard_stale_checkpoints(train_dir: Path, fingerprint: dict) -> None:
    """Resume only a run of the same config: checkpoints of another config are removed."""
    marker = train_dir / "fingerprint.json"
    wanted = artifacts.sha256_json(fingerprint)
    if marker.exists() and marker.read_text().strip() != wanted:
        log.info("train: config or data changed since the checkpoints were written; starting afresh")
        shutil.rmtree(train_dir)
    if not marker.exists():
        artifacts.write_text(marker, wanted + "\n")


# ---------------------------------------------------------------- variants
@dataclass(frozen=True)
class VariantModel:
    """The float model a variant converts: its (possibly narrower) config and one-frame weights."""

    model: ModelConfig
    streaming_weights: Path | None   # None: the variant is derived from another int8 model ('offline')
    qat: bool = False

    @property
    def label(self) -> str:
        return f"{self.model.family}-{self.model.rnn_layers}x{self.model.rnn_units}"


def _variant(cfg: ExperimentConfig, name: str) -> VariantConfig:
    for variant in cfg.variants:
        if variant.name == name:
            return variant
    raise MissingArtifactError(name, f"no variant named '{name}' in {cfg.name}; have {[v.name for v in cfg.variants]}")


def stage_variant(cfg: ExperimentConfig, dataset, variant: VariantConfig, progress: bool = True) -> VariantModel:
    """Fine-tune (prune and/or QAT) the trained float model into `variant`; plain 'ptq' and 'offline' need none."""
    paths = RunPaths(cfg)
    if not paths.streaming_weights.exists():
        raise MissingArtifactError(paths.streaming_weights, f"train first: sepipe train {cfg.name}.yaml")
    if not variant.is_finetuned:
        return _untrained_variant_model(cfg, variant)
    from sepipe.compress import finetune_variant

    stage = f"variant:{variant.name}"
    config = {"seed": cfg.seed, "data": cfg.data, "features": cfg.features, "model": cfg.model,
              "train": cfg.train, "variant": variant}
    fingerprint = artifacts.stage_fingerprint(config, {"base_sequence_weights": paths.sequence_weights,
                                                        "dataset_manifest": _dataset_manifest(dataset)})
    if not artifacts.stage_is_current(cfg.run_dir, stage, fingerprint):
        result = finetune_variant(variant, cfg, dataset, paths.sequence_weights, paths.variant_dir(variant.name),
                                  progress=progress)
        summary = {"model": dataclasses.asdict(result.model_cfg), "qat": result.qat, "stats": result.stats,
                   "streaming_weights": str(result.streaming_weights.relative_to(cfg.run_dir))}
        _record(cfg, stage, fingerprint, [result.streaming_weights], summary)
    else:
        log.info("%s: up to date", stage)
    summary = _summary(cfg, stage)
    return VariantModel(ModelConfig(**summary["model"]), cfg.run_dir / summary["streaming_weights"], summary["qat"])


def load_streaming_model(model: VariantModel, bins: int):
    """The variant's one-frame float model with its weights."""
    from sepipe.models import build_streaming_model

    if model.streaming_weights is None or not model.streaming_weights.exists():
        raise MissingArtifactError(model.streaming_weights, "train (and fine-tune the variant) first")
    streaming = build_streaming_model(model.model, bins)
    streaming.load_weights(str(model.streaming_weights))
    return streaming


def stage_convert(cfg: ExperimentConfig, dataset, variant: VariantConfig, progress: bool = True) -> dict:
    """Full-integer .tflite of the variant, int8 weights and `convert.activations` activations
    (or, for 'offline', the dense int8 model pruned in place)."""
    paths = RunPaths(cfg)
    model = stage_variant(cfg, dataset, variant, progress=progress)
    stage, tflite = f"convert:{variant.name}", paths.tflite(variant.name)
    if variant.kind == "offline":
        return _convert_offline(cfg, variant, stage, tflite)
    from sepipe import features as feat
    from sepipe.convert import collect_calibration, convert_int8, save_calibration, validate_int8_model

    config = {"seed": cfg.seed, "features": cfg.features, "model": model.model, "convert": cfg.convert,
              "qat": model.qat}
    fingerprint = artifacts.stage_fingerprint(config, {"streaming_weights": model.streaming_weights,
                                                        "dataset_manifest": _dataset_manifest(dataset)})
    if artifacts.stage_is_current(cfg.run_dir, stage, fingerprint):
        log.info("%s: up to date (%s)", stage, tflite)
        return _summary(cfg, stage)
    streaming = load_streaming_model(model, cfg.features.bins)
    files = dataset.training_files(cfg.convert.calibration_files, seed=cfg.seed)
    frames = [feat.features(pair.noisy, cfg.features)[0] for pair in files]
    calibration = collect_calibration(streaming, frames, cfg.convert.calibration_frames, seed=cfg.seed)
    save_calibration(calibration, paths.calibration(variant.name))
    log.info("%s: calibrating on %d frames from %d training mixtures", stage, calibration.frames, len(files))
    convert_int8(model.model, cfg.features.bins, model.streaming_weights, paths.calibration(variant.name), tflite,
                 activations=cfg.convert.activations)
    model_io = validate_int8_model(tflite)
    check = _check_against_float(streaming, tflite.read_bytes(), frames[:2])
    summary = {"tflite_bytes": tflite.stat().st_size, "calibration": {"files": [p.name for p in files],
               **calibration.selection}, "float_check": check, "io": model_io.to_dict()}
    log.info("%s: %s (%d bytes); int8 vs float mask on 2 calibration files: mean |diff| %.4f",
             stage, tflite.name, summary["tflite_bytes"], check["mask_mean_abs_diff"])
    _record(cfg, stage, fingerprint, [tflite, paths.calibration(variant.name)], summary)
    return summary


def _convert_offline(cfg: ExperimentConfig, variant: VariantConfig, stage: str, tflite: Path) -> dict:
    """Magnitude-prune the dense int8 model's weights without retraining (the reference's baseline)."""
    from sepipe.compress import offline_prune_tflite

    dense = RunPaths(cfg).tflite(DENSE_VARIANT)
    if not dense.exists():
        raise MissingArtifactError(dense, f"the 'offline' variant prunes the '{DENSE_VARIANT}' model: declare it first")
    fingerprint = artifacts.stage_fingerprint({"variant": variant}, {"dense_tflite": dense})
    if artifacts.stage_is_current(cfg.run_dir, stage, fingerprint):
        log.info("%s: up to date (%s)", stage, tflite)
        return _summary(cfg, stage)
    artifacts.write_bytes(tflite, offline_prune_tflite(dense.read_bytes(), variant.sparsity))
    summary = {"tflite_bytes": tflite.stat().st_size, "pruned_from": dense.name}
    _record(cfg, stage, fingerprint, [tflite], summary)
    return summary


def _check_against_float(streaming, tflite_bytes: bytes, frames: list[np.ndarray]) -> dict:
    """Mask difference between the int8 TFLite model and the float model on real frames."""
    from sepipe.interpreters import make_runner

    float_runner = make_runner("float", streaming_model=streaming)
    int8_runner = make_runner("tflite", tflite_bytes=tflite_bytes)
    diffs = []
    for features in frames:
        float_runner.reset(), int8_runner.reset()
        diffs.append(np.abs(float_runner.run(features) - int8_runner.run(features)))
    return {"mask_mean_abs_diff": float(np.mean([d.mean() for d in diffs])),
            "mask_max_abs_diff": float(max(d.max() for d in diffs))}


def stage_compile(cfg: ExperimentConfig, variant: VariantConfig) -> dict:
    """Vela for every target of the experiment; one record per target."""
    from sepipe.compile import CompileOptions, compile_many
    from sepipe.targets import DEFAULT_TARGETS_FILE, load_targets

    paths = RunPaths(cfg)
    tflite = paths.tflite(variant.name)
    if not tflite.exists():
        raise MissingArtifactError(tflite, f"convert first: sepipe convert {cfg.name}.yaml")
    targets_file = Path(cfg.compile.targets_file or DEFAULT_TARGETS_FILE)
    targets = load_targets(targets_file)
    ini_files = {Path(t.vela_config) for t in targets.values()}
    inputs = {"tflite": tflite, "targets_file": targets_file, **{f"vela_ini:{p.name}": p for p in ini_files}}
    fingerprint = artifacts.stage_fingerprint({"compile": cfg.compile}, inputs)
    stage = f"compile:{variant.name}"
    if artifacts.stage_is_current(cfg.run_dir, stage, fingerprint):
        log.info("%s: up to date (%s)", stage, paths.compile_dir)
        return _summary(cfg, stage)
    name = f"{cfg.name}_{variant.name}"
    results = compile_many(tflite, cfg.compile.targets, paths.compile_dir, name,
                           CompileOptions(require_full_npu=cfg.compile.require_full_npu), targets_file=targets_file)
    for result in results:
        log.info("%s: %s on %s: %d cycles, %.3f ms, SRAM %.1f KiB, NPU ops %.0f%%", stage, name,
                 result.record["target"], result.record["cycles_total"], result.record["inference_time_ms"],
                 result.record["sram_memory_used_kib"], 100 * result.record["npu_op_share"])
    outputs = [path for result in results for path in result.outputs]
    outputs.append(paths.compile_dir / f"{name}_vela_records.csv")
    summary = {"records": [result.record for result in results]}
    _record(cfg, stage, fingerprint, outputs, summary)
    return summary


# ---------------------------------------------------------------- evaluation
def stage_references(cfg: ExperimentConfig, dataset, progress: bool = True) -> dict:
    """Score the unprocessed input and RNNoise once per experiment."""
    from sepipe.evaluate import evaluate_references

    stage = "evaluate:references"
    config = {"features": cfg.features, "evaluate": cfg.evaluate}
    fingerprint = artifacts.stage_fingerprint(config, {"dataset_manifest": _dataset_manifest(dataset)})
    if artifacts.stage_is_current(cfg.run_dir, stage, fingerprint):
        log.info("%s: up to date", stage)
        return _summary(cfg, stage)
    result = evaluate_references(cfg, dataset, RunPaths(cfg).evaluate_dir, progress=progress)
    per_file = artifacts.write_json(RunPaths(cfg).evaluate_dir / "references_per_file.json", result.per_file)
    summary = {"rows": result.rows}
    _record(cfg, stage, fingerprint, [per_file], summary)
    return summary


def stage_evaluate(cfg: ExperimentConfig, dataset, variant: VariantConfig, progress: bool = True) -> dict:
    """Stream the test set through the variant's float model (if any), TFLite and TFLite Micro."""
    from sepipe.evaluate import evaluate_models

    paths = RunPaths(cfg)
    model = stage_variant(cfg, dataset, variant, progress=progress)
    tflite = paths.tflite(variant.name)
    if not tflite.exists() and set(cfg.evaluate.interpreters) - {"float"}:
        raise MissingArtifactError(tflite, f"convert first: sepipe convert {cfg.name}.yaml")
    stage = f"evaluate:{variant.name}"
    inputs = {"dataset_manifest": _dataset_manifest(dataset)}
    if model.streaming_weights is not None:
        inputs["streaming_weights"] = model.streaming_weights
    if tflite.exists():
        inputs["tflite"] = tflite
    config = {"seed": cfg.seed, "features": cfg.features, "model": model.model, "evaluate": cfg.evaluate}
    fingerprint = artifacts.stage_fingerprint(config, inputs)
    if artifacts.stage_is_current(cfg.run_dir, stage, fingerprint):
        log.info("%s: up to date", stage)
        return _summary(cfg, stage)
    streaming = load_streaming_model(model, cfg.features.bins) if model.streaming_weights is not None else None
    result = evaluate_models(cfg, dataset, variant.name, model.label, streaming,
                             tflite.read_bytes() if tflite.exists() else None, paths.evaluate_dir, progress=progress)
    per_file = artifacts.write_json(paths.evaluate_dir / f"{variant.name}_per_file.json", result.per_file)
    summary = {"rows": result.rows, "interpreter_gap": result.interpreter_gap, "speed": result.speed}
    _record(cfg, stage, fingerprint, [per_file], summary)
    return summary


def evaluate_all(cfg: ExperimentConfig, dataset, progress: bool = True) -> dict:
    """References plus every variant; writes and returns the quality table with its notes."""
    from sepipe.evaluate import quality_table
    from sepipe.report import write_tables

    references = stage_references(cfg, dataset, progress=progress)
    summaries = {v.name: stage_evaluate(cfg, dataset, v, progress=progress) for v in cfg.variants}
    rows = quality_table(references["rows"], [row for s in summaries.values() for row in s["rows"]])
    notes = _evaluation_notes(summaries)
    write_tables(rows, RunPaths(cfg).evaluate_dir, f"{cfg.name}_quality", notes)
    return {"rows": rows, "notes": notes}


def _evaluation_notes(summaries: dict) -> list[str]:
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


# ---------------------------------------------------------------- report
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


def stage_report(cfg: ExperimentConfig, dataset=None) -> dict:
    """Join quality (evaluate) with deployment (compile) into CSV, Markdown and HTML."""
    from sepipe.evaluate import quality_table
    from sepipe.html_report import write_html_report
    from sepipe.report import DEPLOYMENT_COLUMNS, deployment_rows, headline_figures, headline_lines, write_tables

    paths = RunPaths(cfg)
    stages = artifacts.read_manifest(cfg.run_dir)["stages"]
    needed = ["evaluate:references"] + [f"{kind}:{v.name}" for v in cfg.variants for kind in ("evaluate", "compile")]
    missing = [name for name in needed if name not in stages]
    if missing:
        raise MissingArtifactError(cfg.run_dir / "manifest.json",
                                   f"no '{missing[0]}' stage recorded; run: sepipe run experiments/{cfg.name}.yaml")
    quality = quality_table(stages["evaluate:references"]["summary"]["rows"],
                            [row for v in cfg.variants for row in stages[f"evaluate:{v.name}"]["summary"]["rows"]])
    hop_ms = 1000.0 * cfg.features.hop / cfg.data.sample_rate
    rows = []
    for variant in cfg.variants:
        model = _recorded_variant_model(cfg, variant)
        tflite = paths.tflite(variant.name)
        rows += deployment_rows(cfg.name, variant.name, model.label, model_size(cfg, model, tflite),
                                tflite.stat().st_size, quality,
                                stages[f"compile:{variant.name}"]["summary"]["records"], hop_ms, variant.structure)
    files = quality[0]["files"] if quality else 0
    notes = [f"Quality columns: the int8 model as TFLite Micro runs it, on {files} test files; 'vs float' is against "
             f"the dense float model. Latency as a fraction of the {hop_ms:g} ms hop. On U65/U85 (Dedicated_Sram) "
             "weights live in DRAM, so flash is 0 and the DRAM column holds them."]
    if len(cfg.variants) > 1:
        notes += [""] + headline_lines(headline_figures(rows))
    stem = f"{cfg.name}_report"
    outputs = write_tables(rows, paths.report_dir, stem, notes, columns=DEPLOYMENT_COLUMNS)
    first = rows[0]
    per_layer = paths.compile_dir / f"{cfg.name}_{first['variant']}_vela_{first['target_id']}_per-layer.csv"
    outputs.append(write_html_report(rows, paths.report_dir / f"{stem}.html", f"{cfg.name}: quality and deployment",
                                     per_layer_csv=per_layer if per_layer.exists() else None,
                                     per_layer_label=f"{first['variant']} on {first['target']}",
                                     notes=notes, quality_rows=quality))
    log.info("report: %s", ", ".join(str(p) for p in outputs))
    return {"rows": rows, "outputs": [str(p) for p in outputs], "notes": notes}


def _untrained_variant_model(cfg: ExperimentConfig, variant: VariantConfig) -> VariantModel:
    """Plain 'ptq' converts the trained weights; 'offline' has no float model (it prunes the int8 one)."""
    return VariantModel(cfg.model, None if variant.kind == "offline" else RunPaths(cfg).streaming_weights)


def _recorded_variant_model(cfg: ExperimentConfig, variant: VariantConfig) -> VariantModel:
    if not variant.is_finetuned:
        return _untrained_variant_model(cfg, variant)
    summary = _summary(cfg, f"variant:{variant.name}")
    return VariantModel(ModelConfig(**summary["model"]), cfg.run_dir / summary["streaming_weights"], summary["qat"])


def run_experiment(cfg: ExperimentConfig, progress: bool = True) -> dict:
    """All stages of `cfg`, each skipped when up to date; returns the quality and report summaries."""
    log.info("experiment %s -> %s (variants: %s)", cfg.name, cfg.run_dir, ", ".join(v.name for v in cfg.variants))
    dataset = stage_data(cfg, build=True, progress=progress)
    stage_train(cfg, dataset, progress=progress)
    for variant in cfg.variants:
        stage_convert(cfg, dataset, variant, progress=progress)
        stage_compile(cfg, variant)
    quality = evaluate_all(cfg, dataset, progress=progress)
    return {"evaluate": quality, "report": stage_report(cfg)}
