"""A variant's fine-tuning (prune and/or QAT) and its conversion to a full-integer .tflite."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import numpy as np

from sepipe import artifacts
from sepipe.config import ExperimentConfig, VariantConfig
from sepipe.engine.stage import Stage, StageContext
from sepipe.compress import compressor_of
from sepipe.errors import MissingArtifactError, check
from sepipe.models import family_of
from sepipe.models.kernels import fingerprint_settings
from sepipe.stages import tools
from sepipe.stages.paths import (DataHandle, RunPaths, load_streaming_model, model_sources, variant_model,
                                  variant_stage)

log = logging.getLogger(__name__)


def declare_variant(cfg: ExperimentConfig, data: DataHandle, variant: VariantConfig) -> Stage | None:
    """Fine-tune the trained float model into `variant`; plain 'ptq' and 'offline' have no such stage."""
    name = variant_stage(variant)
    if name is None:
        return None
    paths = RunPaths(cfg)
    return Stage(
        name=name, needs=("train",), group=variant.name, tools=tools.FINETUNE,
        config={"seed": cfg.seed, "data": cfg.data, "features": cfg.features, "model": cfg.model,
                "train": cfg.train, "variant": variant, "kernels": fingerprint_settings()},
        inputs=lambda needs: {"base_sequence_weights": paths.sequence_weights, "dataset_manifest": data.manifest,
                              **model_sources(cfg)},
        outputs=[paths.variant_dir(variant.name) / "streaming.weights.h5",
                 *([paths.variant_dir(variant.name) / "qat_ranges.json"] if full_qat(variant) else [])],
        run=lambda ctx: _finetune(cfg, data, variant, ctx),
        hint=f"fine-tune it: sepipe convert {cfg.name}.yaml")


def _finetune(cfg: ExperimentConfig, data: DataHandle, variant: VariantConfig, ctx: StageContext) -> dict:
    from sepipe.compress import finetune_variant

    paths = RunPaths(cfg)
    result = finetune_variant(variant, cfg, data.dataset, paths.sequence_weights, paths.variant_dir(variant.name),
                              progress=ctx.progress)
    return {"model": dataclasses.asdict(result.model_cfg), "qat": result.qat, "stats": result.stats,
            "streaming_weights": str(result.streaming_weights.relative_to(cfg.run_dir))}


def declare_convert(cfg: ExperimentConfig, data: DataHandle, variant: VariantConfig) -> Stage:
    """Full-integer .tflite of the variant by the experiment's quantization scheme (`convert.scheme`),
    or, for a compressor that derives from the dense model ('offline'), the dense model's .tflite
    compressed in place."""
    paths = RunPaths(cfg)
    name, tflite = f"convert:{variant.name}", paths.tflite(variant.name)
    hint = f"convert first: sepipe convert {cfg.name}.yaml"
    if compressor_of(variant).derives_from_dense_model:
        source = derived_from(cfg, variant)
        dense = paths.tflite(source)
        return Stage(
            name=name, needs=(f"convert:{source}",), group=variant.name,
            tools=tools.CONVERT_OFFLINE, config={"variant": variant}, inputs={"dense_tflite": dense}, outputs=[tflite],
            run=lambda ctx: _convert_offline(cfg, variant, dense, tflite), hint=hint)
    stage = variant_stage(variant)

    def config(needs):
        model = variant_model(cfg, variant, needs)
        slice_ = {"seed": cfg.seed, "features": cfg.features, "model": model.model, "convert": cfg.convert,
                  "qat": model.qat}
        precision = cfg.precision_of(variant.name)
        return {**slice_, "precision": precision} if precision is not None else slice_   # others: as before

    return Stage(
        name=name, needs=(stage or "train",), group=variant.name, tools=tools.CONVERT, config=config,
        inputs=lambda needs: {"streaming_weights": variant_model(cfg, variant, needs).streaming_weights,
                              **_qat_ranges_input(cfg, variant, needs),
                              "dataset_manifest": data.manifest, **model_sources(cfg)},
        outputs=[tflite, paths.calibration(variant.name)],
        run=lambda ctx: _convert(cfg, data, variant, ctx), hint=hint)


def derived_from(cfg: ExperimentConfig, variant: VariantConfig) -> str:
    """The variant whose .tflite a derived variant edits: its `base` (a 'ptq' variant), else the dense reference."""
    base = getattr(variant, "base", None)
    if base is None:
        return cfg.dense_variant.name
    ptq = [v.name for v in cfg.variants if v.kind == "ptq"]
    check("<experiment>", variant.key("base"), base, base in ptq, f"a variant of kind 'ptq' of {cfg.name}: {ptq}")
    return base


def full_qat(variant: VariantConfig) -> bool:
    """QAT of scope 'full': the variant stage also writes the trained ranges (qat_ranges.json)."""
    steps = variant.finetune_epochs * variant.finetune_steps_per_epoch
    return bool(variant.qat and variant.qat_scope == "full" and steps)


def _qat_ranges_input(cfg: ExperimentConfig, variant: VariantConfig, needs) -> dict:
    """{'qat_ranges': path} for a QAT variant of scope 'full' (its trained ranges are an input of the
    conversion, fingerprinted like the weights), else nothing (other variants' fingerprints unchanged)."""
    from sepipe.quantize.convert import QAT_RANGES_FILE

    model = variant_model(cfg, variant, needs)
    if not (full_qat(variant) and model.streaming_weights is not None):
        return {}
    return {"qat_ranges": model.streaming_weights.with_name(QAT_RANGES_FILE)}


def _convert(cfg: ExperimentConfig, data: DataHandle, variant: VariantConfig, ctx: StageContext) -> dict:
    from sepipe import features as feat
    from sepipe.quantize.calibration import collect_calibration, save_calibration
    from sepipe.quantize.convert import convert_with_summary
    from sepipe.quantize.model_io import validate_quantized_model
    from sepipe.quantize.qat_ranges import record_summary

    paths = RunPaths(cfg)
    model = variant_model(cfg, variant, ctx.needs)
    tflite = paths.tflite(variant.name)
    streaming = load_streaming_model(model, cfg.features.bins)
    contract = family_of(model.model).contract(model.model, cfg.features.bins)
    files = data.dataset.training_files(cfg.convert.calibration_files, seed=cfg.seed)
    frames = [feat.features(pair.noisy, cfg.features)[0] for pair in files]
    calibration = collect_calibration(streaming, frames, cfg.convert.calibration_frames, seed=cfg.seed,
                                      contract=contract)
    save_calibration(calibration, paths.calibration(variant.name))
    log.info("%s: calibrating on %d frames from %d training mixtures", ctx.name, calibration.frames, len(files))
    precision = cfg.precision_of(variant.name)
    scheme = "mixed" if precision is not None else cfg.convert.scheme_name
    qat_ranges = _qat_ranges_input(cfg, variant, ctx.needs).get("qat_ranges")
    _, worker = convert_with_summary(model.model, cfg.features.bins, model.streaming_weights,
                                     paths.calibration(variant.name), tflite, scheme=scheme, precision=precision,
                                     qat_ranges=qat_ranges)
    model_io = validate_quantized_model(tflite, contract, scheme)
    check = _check_against_float(streaming, tflite.read_bytes(), frames[:2], contract)
    summary = {"tflite_bytes": tflite.stat().st_size, "calibration": {"files": [p.name for p in files],
               **calibration.selection}, "float_check": check, "io": model_io.to_dict()}
    if "qat_ranges" in worker:       # which tensors took trained ranges (QAT scope 'full')
        summary["qat_ranges"] = record_summary(worker["qat_ranges"])
    if precision is not None:
        from sepipe.quantize.mixed_info import precision_summary
        summary["precision"] = precision_summary(tflite.read_bytes(), precision, contract)
    log.info("%s: %s (%d bytes); quantized vs float mask on 2 calibration files: mean |diff| %.4f",
             ctx.name, tflite.name, summary["tflite_bytes"], check["mask_mean_abs_diff"])
    return summary


def _convert_offline(cfg: ExperimentConfig, variant: VariantConfig, dense: Path, tflite: Path) -> dict:
    """Compress the dense reference's quantized model without retraining (offline magnitude pruning:
    the sparsity reference's baseline)."""
    if not dense.exists():
        raise MissingArtifactError(dense, f"variant '{variant.name}' (kind '{variant.kind}') compresses "
                                          f"'{derived_from(cfg, variant)}': convert it first")
    artifacts.write_bytes(tflite, compressor_of(variant).apply_to_quantized(dense.read_bytes(), cfg.model))
    return {"tflite_bytes": tflite.stat().st_size, "pruned_from": dense.name}


def _check_against_float(streaming, tflite_bytes: bytes, frames: list[np.ndarray], contract) -> dict:
    """Mask difference between the quantized TFLite model and the float model on real frames."""
    from sepipe.runtime import make_runner

    float_runner = make_runner("float", streaming_model=streaming, contract=contract)
    int8_runner = make_runner("tflite", tflite_bytes=tflite_bytes, contract=contract)
    diffs = []
    for features in frames:
        float_runner.reset(), int8_runner.reset()
        diffs.append(np.abs(float_runner.run(features) - int8_runner.run(features)))
    return {"mask_mean_abs_diff": float(np.mean([d.mean() for d in diffs])),
            "mask_max_abs_diff": float(max(d.max() for d in diffs))}
