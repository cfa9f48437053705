"""Quantization-aware fine-tuning that covers the recurrent weights and keeps a sparsity pattern.

Route: weight fake-quantisation with a straight-through estimator inside the fine-tuning step
(`FineTuneSession.train(quantize=...)`), not TFMOT's `quantize_model` (it refuses GRU/LSTM layers and
cells; see docs/toolchain.md, Keras and TFMOT). Every weight the converter turns into int8 is fake-quantised exactly as the
converter will quantise it: Dense kernels and the GRU/LSTM kernels and recurrent kernels (the mask
layer included), symmetric, per output channel, narrow range [-127, 127]. Each step: swap the float
weights for their quantised values, forward + gradient there, swap the floats back, apply the
gradient to the floats (STE), then multiply the pruned weights by their fixed 0/1 masks. Because
Q(0) = 0 and the masks are re-applied after every step, the sparsity pattern is exactly kept.

Scope 'weights' (`qat: true`, the default scope): activations are not fake-quantised; the converter
calibrates them on real audio with the states the float model carries (sepipe.quantize.calibration), as
for every variant, and the QAT weights are converted like any others.

Scope 'full' (`qat_scope: full`, `full_qat` below): activations and recurrent states are fake-quantised
too (sepipe.compress.qat_graph: the GRU/LSTM cells written out with a fake quantiser per TFLite tensor,
EMA ranges, int8 or int16 per tensor), the sparsity masks held as above; the ranges are saved beside the
weights (`qat_ranges.json`) and the converter puts them into the .tflite (sepipe.quantize.qat_ranges).
"""

from __future__ import annotations

from sepipe.models.keras_backend import tf
from sepipe.quantize.convert import QAT_RANGES_FILE


def quantizable_variables(model) -> list:
    """Kernels of every Dense layer and kernel + recurrent kernel of every GRU/LSTM layer (not biases:
    the converter keeps those in int32)."""
    found = []
    for layer in model.layers:
        owner = getattr(layer, "cell", layer)
        for attr in ("kernel", "recurrent_kernel"):
            var = getattr(owner, attr, None)
            if isinstance(var, tf.Variable):
                found.append(var)
    return found


# --------------------------------------------------------------------------- scope 'full'

BITS = {"int8": 8, "int16x8": 16, "float": 0}       # a plan's precision -> QAT activation bits (0: float)
# the LSTM cell-state path as sepipe.quantize.precision resolves it on the converted graph (the ADD making c,
# the MULs f*c and i*g, the gates f, i, g feeding them, the TANH reading c), in QAT tensor keys
CELL_STATE_TENSORS = ("c", "f_c", "i_g", "f", "i", "g", "tanh_c")


def default_precision(cfg, variant_name: str | None = None, model_cfg=None):
    """The QAT bits of `variant_name`: from its precision plan (`variants[].precision`) when it declares
    one, else every activation at the experiment scheme's width (16 bits under int16x8, else 8)."""
    from sepipe.compress.qat_graph import Precision

    mapping = cfg.precision_of(variant_name) if variant_name else None
    if mapping:
        return plan_precision(mapping, model_cfg or cfg.model, cfg.features.bins)
    return Precision(default=16 if cfg.convert.scheme_name == "int16x8" else 8)


def plan_precision(mapping: dict[str, str], model_cfg, bins: int):
    """A precision plan as QAT bits per tensor key (sepipe.compress.qat_graph.Precision), so that each
    tensor is fake-quantised at the width the spliced .tflite will give it: patterns most specific first,
    as sepipe.quantize.precision resolves operators (cell_state > a layer > its group > default). The
    features input belongs to the feature layer (a graph input takes its consumer's precision)."""
    from sepipe.compress.qat_graph import Precision
    from sepipe.models import family_of

    family = family_of(model_cfg)
    contract = family.contract(model_cfg, bins)
    feature_layer = family.feature_layer(model_cfg)
    overrides: list[tuple[str, int]] = []
    if "cell_state" in mapping:
        for layer in dict.fromkeys(s.layer for s in contract.states if s.kind == "c"):
            overrides += [(f"{layer}/{t}", BITS[mapping["cell_state"]]) for t in CELL_STATE_TENSORS]
    groups = dict(contract.layer_groups)
    by_layer = [(layer, mapping[layer]) for layers in groups.values() for layer in layers if layer in mapping]
    by_group = [(layer, mapping[g]) for g, layers in groups.items() if g in mapping for layer in layers]
    for layer, precision in by_layer + by_group:
        overrides.append((f"{layer}/*", BITS[precision]))
        if layer == feature_layer:
            overrides.append(("features", BITS[precision]))
    return Precision(default=BITS[mapping.get("default", "int8")], overrides=tuple(overrides))


def full_qat(model, model_cfg, bins: int, session, steps: int, pruned_layers, precision, out_dir, variant) -> dict:
    """QAT of weights, activations and states on a fake-quantised copy of `model` (sepipe.compress.qat_graph),
    the pruning masks held fixed; the trained weights go back into `model` and the ranges to
    `out_dir/qat_ranges.json`, which the converter applies (sepipe.quantize.qat_ranges)."""
    from sepipe.artifacts import write_json
    from sepipe.compress import prune
    from sepipe.compress.qat_model import build_qat_sequence, collect_ranges, commit, copy_trainable
    from sepipe.errors import ConfigError
    from sepipe.models import family_of

    try:
        qmodel = build_qat_sequence(model, precision, family_of(model_cfg).feature_layer(model_cfg))
    except ValueError as exc:
        raise ConfigError("<variant>", variant.key("qat_scope"), variant.qat_scope, str(exc)) from None
    masks = prune.zero_masks(qmodel, pruned_layers)
    session.train(qmodel, steps, phase="qat", masks=masks, quantize=quantizable_variables(qmodel),
                  after_step=lambda: commit(qmodel))
    copy_trainable(qmodel, model)
    ranges = collect_ranges(qmodel)
    write_json(out_dir / QAT_RANGES_FILE, {"ranges": ranges, "precision": {
        "default": precision.default, "overrides": [list(o) for o in precision.overrides]}})
    return {"steps": steps, "scope": "full", "masked_weights": len(masks), "tensors": len(ranges),
            "route": "weights (STE, per-channel symmetric int8) + activations and states (EMA ranges, "
                     "fake_quant_with_min_max_vars), masks re-applied every step; ranges carried into the "
                     ".tflite by sepipe.quantize.qat_ranges"}
