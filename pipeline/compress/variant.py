"""One compressed variant: from the trained float sequence model to streaming weights ready to convert.

The loop every kind shares; what a kind does on its own is its compressor's (sepipe.compress.kinds):

    1. the compressor's `layer_targets` and `prunes` say what its phase changes;
    2. its `compress` phase (pruning of some structure, unit removal, ...) runs the pruning steps;
  + 3. qat: quantization-aware fine-tuning (sepipe.compress.qat); after a pruning phase, the last third
       of the steps (at least one) is QAT with the sparsity pattern held fixed, else all of them;
    4. the result is copied into the streaming model and saved with its stats.

Kinds that derive from the dense int8 model (offline) train nothing here. Layers: by default the
family's compressible layers (every layer but the output heads, which set the gains and stay dense).
Zero sparsity prunes nothing: without qat the variant is exactly the base model.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sepipe.models.keras_backend import tf  # noqa: F401  (TF_USE_LEGACY_KERAS before TensorFlow)
from sepipe.models import family_of
from sepipe.artifacts import atomic_path, write_json
from sepipe.compress import prune, qat as qat_mod
from sepipe.compress.base import Compressed, VariantConfig, compressor_of
from sepipe.compress.finetune import FineTuneSession
from sepipe.compress.sparsity import keras_sparsity
from sepipe.config import ExperimentConfig, ModelConfig
from sepipe.train import set_determinism


@dataclass(frozen=True)
class VariantResult:
    model_cfg: ModelConfig          # the experiment's, or narrower for 'unit'
    streaming_weights: Path | None  # .weights.h5 of the STREAMING model for convert_quantized (None: derives from dense)
    qat: bool                       # QAT fine-tuned: convert the same way (PTQ calibration on the QAT weights)
    stats: dict                     # params, nonzero weights, per-layer sparsity, fine-tune history, ...


def _save_streaming(model, model_cfg: ModelConfig, bins: int, out_dir: Path) -> tuple[Path, object]:
    family = family_of(model_cfg)
    streaming = family.build_streaming(model_cfg, bins)
    family.copy_weights(model, streaming)
    path = out_dir / "streaming.weights.h5"
    with atomic_path(path) as tmp:
        streaming.save_weights(str(tmp))
    with atomic_path(out_dir / "sequence.weights.h5") as tmp:   # for float evaluation of the variant
        model.save_weights(str(tmp))
    return path, streaming


def finetune_variant(variant: VariantConfig, cfg: ExperimentConfig, dataset, base_sequence_weights: Path,
                     out_dir: Path, progress: bool = True, precision=None) -> VariantResult:
    """Run the variant's compressor and / or QAT on the trained float model for
    `finetune_epochs * finetune_steps_per_epoch` steps, strip wrappers, copy into the streaming model
    and save its weights atomically to `out_dir/streaming.weights.h5` (plus `sequence.weights.h5`
    and `variant.json` with the stats).

    precision: activation bits per tensor for QAT scope 'full' (sepipe.compress.qat_graph.Precision);
    default: the variant's precision plan (`variants[].precision`), else 16 for every tensor under
    scheme int16x8, else 8."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    compressor, bins = compressor_of(variant), cfg.features.bins
    stats: dict = {"kind": variant.kind, "variant": dataclasses.asdict(variant)}
    if compressor.derives_from_dense_model:
        stats["note"] = compressor.untrained_note
        write_json(out_dir / "variant.json", stats)
        return VariantResult(cfg.model, None, False, stats)

    set_determinism(cfg.seed)
    family = family_of(cfg.model)
    base = family.build_sequence(cfg.model, bins)
    base.load_weights(str(base_sequence_weights))
    targets = compressor.layer_targets(cfg.model)
    prunes = compressor.prunes(targets)
    steps = variant.finetune_epochs * variant.finetune_steps_per_epoch
    qat_steps = 0
    if variant.qat and steps > 0:
        qat_steps = max(1, steps // 3) if prunes else steps
    prune_steps = steps - qat_steps if prunes else 0
    session = FineTuneSession(cfg, dataset, variant.finetune_steps_per_epoch, variant.finetune_epochs,
                              variant.learning_rate, progress=progress)
    base_params = int(base.count_params())
    done = (compressor.compress(base, cfg.model, targets, prune_steps, session) if prunes
            else Compressed(base, cfg.model))
    model, model_cfg = done.model, done.model_cfg
    stats.update(done.stats)

    stale = out_dir / qat_mod.QAT_RANGES_FILE     # an earlier full-QAT run's ranges must not reach this conversion
    if stale.exists() and not (qat_steps and variant.qat_scope == "full"):
        stale.unlink()
    if qat_steps and variant.qat_scope == "full":
        stats["qat"] = qat_mod.full_qat(model, model_cfg, bins, session, qat_steps, done.pruned_layers,
                                        precision or qat_mod.default_precision(cfg, variant.name, model_cfg),
                                        out_dir, variant)
    elif qat_steps:
        masks = prune.zero_masks(model, done.pruned_layers)
        session.train(model, qat_steps, phase="qat", masks=masks, quantize=qat_mod.quantizable_variables(model))
        stats["qat"] = {"steps": qat_steps, "route": "weight fake-quant (STE), per-channel symmetric int8, "
                                                    "masks re-applied every step", "masked_weights": len(masks)}
    elif not prunes and compressor.noop_note and steps:
        stats["note"] = compressor.noop_note

    path, streaming = _save_streaming(model, model_cfg, bins, out_dir)
    sparsity = keras_sparsity(streaming)
    all_weights = np.concatenate([np.ravel(w) for w in streaming.get_weights()])
    stats.update({
        "model": dataclasses.asdict(model_cfg),
        "params": int(streaming.count_params()), "base_params": base_params,
        "nonzero_params": int(np.count_nonzero(all_weights)),
        "targets": targets,
        "pruned_layers": done.pruned_layers,
        "sparsity": sparsity,
        "steps": {"total": session.step, "prune": prune_steps, "qat": qat_steps},
        "history": session.history,
    })
    write_json(out_dir / "variant.json", stats)
    return VariantResult(model_cfg, path, bool(qat_steps), stats)
