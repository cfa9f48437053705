"""A variant's fine-tuning (prune and/or QAT) and its conversion to a full-integer .tflite."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import numpy as np

from sepipe import artifacts
from sepipe.config import ExperimentConfig, VariantConfig
from sepipe.engine.stage import Stage, StageContext
from sepipe.errors import MissingArtifactError
from sepipe.evaluate import DENSE_VARIANT
from sepipe.stages import tools
from sepipe.stages.paths import DataHandle, RunPaths, load_streaming_model, variant_model, variant_stage

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
                "train": cfg.train, "variant": variant},
        inputs=lambda needs: {"base_sequence_weights": paths.sequence_weights, "dataset_manifest": data.manifest},
        outputs=[paths.variant_dir(variant.name) / "streaming.weights.h5"],
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
    """Full-integer .tflite of the variant, int8 weights and `convert.activations` activations
    (or, for 'offline', the dense int8 model pruned in place)."""
    paths = RunPaths(cfg)
    name, tflite = f"convert:{variant.name}", paths.tflite(variant.name)
    hint = f"convert first: sepipe convert {cfg.name}.yaml"
    if variant.kind == "offline":
        if DENSE_VARIANT not in [v.name for v in cfg.variants]:
            raise MissingArtifactError(paths.tflite(DENSE_VARIANT), f"the 'offline' variant prunes the "
                                                                    f"'{DENSE_VARIANT}' model: declare it first")
        dense = paths.tflite(DENSE_VARIANT)
        return Stage(
            name=name, needs=(f"convert:{DENSE_VARIANT}",), group=variant.name, tools=tools.CONVERT_OFFLINE,
            config={"variant": variant}, inputs={"dense_tflite": dense}, outputs=[tflite],
            run=lambda ctx: _convert_offline(variant, dense, tflite), hint=hint)
    stage = variant_stage(variant)

    def config(needs):
        model = variant_model(cfg, variant, needs)
        return {"seed": cfg.seed, "features": cfg.features, "model": model.model, "convert": cfg.convert,
                "qat": model.qat}

    return Stage(
        name=name, needs=(stage or "train",), group=variant.name, tools=tools.CONVERT, config=config,
        inputs=lambda needs: {"streaming_weights": variant_model(cfg, variant, needs).streaming_weights,
                              "dataset_manifest": data.manifest},
        outputs=[tflite, paths.calibration(variant.name)],
        run=lambda ctx: _convert(cfg, data, variant, ctx), hint=hint)


def _convert(cfg: ExperimentConfig, data: DataHandle, variant: VariantConfig, ctx: StageContext) -> dict:
    from sepipe import features as feat
    from sepipe.convert import collect_calibration, convert_int8, save_calibration, validate_int8_model

    paths = RunPaths(cfg)
    model = variant_model(cfg, variant, ctx.needs)
    tflite = paths.tflite(variant.name)
    streaming = load_streaming_model(model, cfg.features.bins)
    files = data.dataset.training_files(cfg.convert.calibration_files, seed=cfg.seed)
    frames = [feat.features(pair.noisy, cfg.features)[0] for pair in files]
    calibration = collect_calibration(streaming, frames, cfg.convert.calibration_frames, seed=cfg.seed)
    save_calibration(calibration, paths.calibration(variant.name))
    log.info("%s: calibrating on %d frames from %d training mixtures", ctx.name, calibration.frames, len(files))
    convert_int8(model.model, cfg.features.bins, model.streaming_weights, paths.calibration(variant.name), tflite,
                 activations=cfg.convert.activations)
    model_io = validate_int8_model(tflite)
    check = _check_against_float(streaming, tflite.read_bytes(), frames[:2])
    summary = {"tflite_bytes": tflite.stat().st_size, "calibration": {"files": [p.name for p in files],
               **calibration.selection}, "float_check": check, "io": model_io.to_dict()}
    log.info("%s: %s (%d bytes); int8 vs float mask on 2 calibration files: mean |diff| %.4f",
             ctx.name, tflite.name, summary["tflite_bytes"], check["mask_mean_abs_diff"])
    return summary


def _convert_offline(variant: VariantConfig, dense: Path, tflite: Path) -> dict:
    """Magnitude-prune the dense int8 model's weights without retraining (the reference's baseline)."""
    from sepipe.compress import offline_prune_tflite

    if not dense.exists():
        raise MissingArtifactError(dense, f"the 'offline' variant prunes the '{DENSE_VARIANT}' model: convert it first")
    artifacts.write_bytes(tflite, offline_prune_tflite(dense.read_bytes(), variant.sparsity))
    return {"tflite_bytes": tflite.stat().st_size, "pruned_from": dense.name}


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
