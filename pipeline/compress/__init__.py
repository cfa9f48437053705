"""Compression variants of the trained float model (weight, block, unit pruning, QAT, offline, ptq).

    finetune_variant(variant, cfg, dataset, base_sequence_weights, out_dir) -> VariantResult
    offline_prune_tflite(tflite_bytes, sparsity) -> bytes
    tflite_sparsity(tflite_bytes) -> {"weights", "zeros", "sparsity", "per_tensor"}
    keras_sparsity(model) -> {"weights", "zeros", "sparsity", "per_layer"}

`offline_prune_tflite` and `tflite_sparsity` do not import TensorFlow.
"""

from sepipe.compress.offline import offline_prune_tflite  # noqa: F401
from sepipe.compress.sparsity import tflite_sparsity  # noqa: F401


def __getattr__(name):  # TF-heavy parts load on first use
    if name in ("finetune_variant", "VariantResult", "default_layers", "layer_targets"):
        from sepipe.compress import variant
        return getattr(variant, name)
    if name == "keras_sparsity":
        from sepipe.compress.sparsity import keras_sparsity
        return keras_sparsity
    raise AttributeError(name)
