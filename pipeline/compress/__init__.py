"""Compression variants of the trained float model: one registered compressor per variant kind.

    COMPRESSORS                     the registry (`variants[].kind`): ptq, weight, block, unit, offline, cluster
    VariantConfig                   the common fields; each kind's config subclasses it (sepipe.compress.kinds)
    compressor_of(variant)          the variant's Compressor: structure, trains_float_model,
                                    derives_from_dense_model, apply_to_quantized, ... (sepipe.compress.base)
    finetune_variant(variant, cfg, dataset, base_sequence_weights, out_dir) -> VariantResult
    offline_prune_tflite(tflite_bytes, sparsity) -> bytes
    tflite_sparsity(tflite_bytes) -> {"weights", "zeros", "sparsity", "per_tensor"}
    keras_sparsity(model) -> {"weights", "zeros", "sparsity", "per_layer"}

Importing this package registers the kinds and imports no TensorFlow (config loading does it);
the TF-backed parts load on first use.
"""

from sepipe.compress.base import COMPRESSORS, Compressor, VariantConfig, compressor_of  # noqa: F401
from sepipe.compress import kinds  # noqa: F401  (registers every kind)

_LAZY = {"finetune_variant": "variant", "VariantResult": "variant", "keras_sparsity": "sparsity",
         "tflite_sparsity": "sparsity", "offline_prune_tflite": "offline"}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"sepipe.compress.{_LAZY[name]}"), name)
    raise AttributeError(name)
