"""Quantization-aware fine-tuning that covers the recurrent weights and keeps a sparsity pattern.

Route: weight fake-quantisation with a straight-through estimator inside the fine-tuning step
(`FineTuneSession.train(quantize=...)`), not TFMOT's `quantize_model` (it refuses GRU/LSTM layers and
cells; see docs/toolchain.md, Keras and TFMOT). Every weight the converter turns into int8 is fake-quantised exactly as the
converter will quantise it: Dense kernels and the GRU/LSTM kernels and recurrent kernels (the mask
layer included), symmetric, per output channel, narrow range [-127, 127]. Each step: swap the float
weights for their quantised values, forward + gradient there, swap the floats back, apply the
gradient to the floats (STE), then multiply the pruned weights by their fixed 0/1 masks. Because
Q(0) = 0 and the masks are re-applied after every step, the sparsity pattern is exactly kept.

Activations are not fake-quantised: the int8 converter calibrates them on real audio with the states
the float model carries (sepipe.quantize.calibration), as for every variant.

Conversion of a QAT variant: the QAT-trained float weights (which sit close to the int8 grid the
converter uses) are saved into the plain streaming model and converted by `sepipe.quantize.convert.convert_quantized`
with the usual calibration; no TFMOT quantize layers exist to carry over.
"""

from __future__ import annotations

from sepipe.models.keras_backend import tf


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
