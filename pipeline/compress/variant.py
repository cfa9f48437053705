"""One compressed variant: from the trained float sequence model to streaming weights ready to convert.

    ptq      the base weights, copied into the streaming model (the starting row)
    weight   unstructured magnitude pruning (TFMOT, polynomial schedule), fine-tuned
    block    block-sparse (`block`) or m-by-n (`m_by_n`) magnitude pruning (TFMOT), fine-tuned
    unit     whole units removed gradually with fine-tuning -> a narrower ModelConfig (sepipe.compress.units);
             with `weight_sparsity`, the narrower model is then weight-pruned too (each phase half the steps)
    offline  nothing to train: the converted ptq model is pruned by `offline_prune_tflite`
  + qat      quantization-aware fine-tuning (sepipe.compress.qat); with a pruning kind, the last third of
             the steps (at least one) is QAT with the sparsity pattern held fixed, the rest is pruning.

Layers: by default every Dense and recurrent layer but the output `mask` (it sets the gains; kept dense).
`variant.layers` restricts the choice; for 'weight' and 'block' an entry may carry its own target as
'name=sparsity' (e.g. ['rnn_1=0.9', 'rnn_2=0.8', 'dense_1']; a bare name takes `variant.sparsity`).
Zero sparsity (and no m_by_n) prunes nothing: without qat the variant is exactly the base model.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sepipe.models.keras_backend import tf  # noqa: F401  (TF_USE_LEGACY_KERAS before TensorFlow)
from sepipe.models.mask_rnn import MASK_OUTPUT, build_sequence_model, build_streaming_model, copy_weights, rnn_layer_names
from sepipe.artifacts import atomic_path, write_json
from sepipe.compress import prune, qat as qat_mod, units as units_mod
from sepipe.compress.finetune import FineTuneSession
from sepipe.compress.sparsity import keras_sparsity
from sepipe.config import ExperimentConfig, ModelConfig, VariantConfig
from sepipe.errors import ConfigError
from sepipe.train import set_determinism

UNIT_CRITERION = "activation"


@dataclass(frozen=True)
class VariantResult:
    model_cfg: ModelConfig          # the experiment's, or narrower for 'unit'
    streaming_weights: Path | None  # .weights.h5 of the STREAMING model for convert_int8 (None for 'offline')
    qat: bool                       # QAT fine-tuned: convert the same way (PTQ calibration on the QAT weights)
    stats: dict                     # params, nonzero weights, per-layer sparsity, fine-tune history, ...


def default_layers(model_cfg: ModelConfig) -> list[str]:
    names = ["input_dense"] if model_cfg.input_units else []
    names += rnn_layer_names(model_cfg)
    names += ["dense_1", "dense_2"] if model_cfg.dense_units else []
    return names


def layer_targets(variant: VariantConfig, model_cfg: ModelConfig) -> dict[str, float]:
    """{layer: sparsity} from `variant.layers` ('name' or 'name=sparsity'), default every layer but the mask."""
    key = f"variants[{variant.name}].layers"
    valid = default_layers(model_cfg) + [MASK_OUTPUT]
    if not variant.layers:
        return {name: variant.sparsity for name in default_layers(model_cfg)}
    targets = {}
    for entry in variant.layers:
        name, _, value = entry.partition("=")
        name = name.strip()
        if name not in valid:
            raise ConfigError("<variant>", key, entry, f"layer names among {valid} (optionally 'name=sparsity')")
        if value:
            if variant.kind not in ("weight", "block"):
                raise ConfigError("<variant>", key, entry, f"a bare layer name for kind '{variant.kind}'")
            try:
                sparsity = float(value)
            except ValueError:
                sparsity = -1.0
            if not 0.0 <= sparsity < 1.0:
                raise ConfigError("<variant>", key, entry, "'name=sparsity' with 0 <= sparsity < 1")
            targets[name] = sparsity
        else:
            targets[name] = variant.sparsity
    return targets


def _save_streaming(model, model_cfg: ModelConfig, bins: int, out_dir: Path) -> tuple[Path, object]:
    streaming = build_streaming_model(model_cfg, bins)
    copy_weights(model, streaming)
    path = out_dir / "streaming.weights.h5"
    with atomic_path(path) as tmp:
        streaming.save_weights(str(tmp))
    with atomic_path(out_dir / "sequence.weights.h5") as tmp:   # for float evaluation of the variant
        model.save_weights(str(tmp))
    return path, streaming


def _prune_weights_after_units(model, model_cfg: ModelConfig, sparsity: float, steps: int, session):
    """Unit + weight: magnitude-prune every layer but the mask of the (already narrower) model."""
    specs = {name: prune.PruneSpec(sparsity, (1, 1), None) for name in default_layers(model_cfg)}
    wrapped = prune.wrap_for_pruning(model, specs, steps)
    if steps == 0:
        prune.one_shot(wrapped, session.feature_batches(1, seed=0)[0])
        schedule = {"kind": "one-shot magnitude after unit pruning"}
    else:
        session.train(wrapped, steps, phase="prune")
        end_step, frequency = prune.schedule_steps(steps)
        schedule = {"kind": "polynomial (power 3) after unit pruning", "begin_step": 0, "end_step": end_step,
                    "frequency": frequency, "steps": steps}
    return prune.finalize(wrapped), sorted(specs), schedule


def finetune_variant(variant: VariantConfig, cfg: ExperimentConfig, dataset, base_sequence_weights: Path,
                     out_dir: Path, progress: bool = True, unit_criterion: str = UNIT_CRITERION) -> VariantResult:
    """Prune (weight / block / unit) and / or QAT fine-tune the trained float model for
    `finetune_epochs * finetune_steps_per_epoch` steps, strip wrappers, copy into the streaming model
    and save its weights atomically to `out_dir/streaming.weights.h5` (plus `sequence.weights.h5`
    and `variant.json` with the stats)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    kind, bins = variant.kind, cfg.features.bins
    stats: dict = {"kind": kind, "variant": dataclasses.asdict(variant)}
    if kind == "offline":
        stats["note"] = "no fine-tuning: offline_prune_tflite prunes the converted ptq model"
        write_json(out_dir / "variant.json", stats)
        return VariantResult(cfg.model, None, False, stats)

    set_determinism(cfg.seed)
    base = build_sequence_model(cfg.model, bins)
    base.load_weights(str(base_sequence_weights))
    targets = layer_targets(variant, cfg.model) if kind != "ptq" else {}
    prunes = kind in ("weight", "block", "unit") and (
        any(s > 0 for s in targets.values()) or (kind == "block" and variant.m_by_n is not None))
    steps = variant.finetune_epochs * variant.finetune_steps_per_epoch
    qat_steps = 0
    if variant.qat and steps > 0:
        qat_steps = max(1, steps // 3) if prunes else steps
    prune_steps = steps - qat_steps if prunes else 0
    session = FineTuneSession(cfg, dataset, variant.finetune_steps_per_epoch, variant.finetune_epochs,
                              variant.learning_rate, progress=progress)
    model, model_cfg = base, cfg.model
    base_params = int(base.count_params())
    pruned_layers: list[str] = []

    if prunes and kind in ("weight", "block"):
        specs = {name: prune.PruneSpec(s, variant.block if kind == "block" else (1, 1),
                                       variant.m_by_n if kind == "block" else None)
                 for name, s in targets.items() if s > 0 or (kind == "block" and variant.m_by_n)}
        wrapped = prune.wrap_for_pruning(base, specs, prune_steps)
        if prune_steps == 0:
            prune.one_shot(wrapped, session.feature_batches(1, seed=0)[0])
        else:
            session.train(wrapped, prune_steps, phase="prune")
        model = prune.finalize(wrapped)
        pruned_layers = sorted(specs)
        if prune_steps:
            end_step, frequency = prune.schedule_steps(prune_steps)
            stats["schedule"] = {"kind": "m_by_n (mask fixed at step 1)" if variant.m_by_n and kind == "block"
                                 else "polynomial (power 3)", "begin_step": 0, "end_step": end_step,
                                 "frequency": frequency, "steps": prune_steps}
        else:
            stats["schedule"] = {"kind": "one-shot magnitude (no fine-tuning steps)"}
    elif prunes and kind == "unit":
        try:
            units_mod.selected_groups(cfg.model, variant.layers)
        except ValueError as exc:
            raise ConfigError("<variant>", f"variants[{variant.name}].layers", list(variant.layers), str(exc)) from None
        weight_steps = prune_steps // 2 if variant.weight_sparsity > 0 else 0
        model, model_cfg, stats["units"] = units_mod.prune_units(
            base, cfg.model, bins, session, variant.sparsity, prune_steps - weight_steps, variant.layers,
            unit_criterion)
        if variant.weight_sparsity > 0:
            model, pruned_layers, stats["schedule"] = _prune_weights_after_units(
                model, model_cfg, variant.weight_sparsity, weight_steps, session)

    if qat_steps:
        masks = prune.zero_masks(model, pruned_layers)
        session.train(model, qat_steps, phase="qat", masks=masks, quantize=qat_mod.quantizable_variables(model))
        stats["qat"] = {"steps": qat_steps, "route": "weight fake-quant (STE), per-channel symmetric int8, "
                                                    "masks re-applied every step", "masked_weights": len(masks)}
    elif not prunes and kind != "ptq" and steps:
        stats["note"] = "zero sparsity: nothing pruned, no fine-tuning (the variant is the base model)"

    path, streaming = _save_streaming(model, model_cfg, bins, out_dir)
    sparsity = keras_sparsity(streaming)
    all_weights = np.concatenate([np.ravel(w) for w in streaming.get_weights()])
    stats.update({
        "model": dataclasses.asdict(model_cfg),
        "params": int(streaming.count_params()), "base_params": base_params,
        "nonzero_params": int(np.count_nonzero(all_weights)),
        "targets": targets if kind in ("weight", "block") else {},
        "pruned_layers": pruned_layers,
        "sparsity": sparsity,
        "steps": {"total": session.step, "prune": prune_steps, "qat": qat_steps},
        "history": session.history,
    })
    write_json(out_dir / "variant.json", stats)
    return VariantResult(model_cfg, path, bool(qat_steps), stats)
