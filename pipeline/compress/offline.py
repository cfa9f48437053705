"""Offline baseline: magnitude pruning of an already converted int8 model, no retraining.

For every int8 weight tensor of a FullyConnected op (biases excluded), the `round(sparsity * n)`
elements of smallest real magnitude |(q - zero_point) * scale| are set to the zero point
(ties broken by position, so the result is deterministic). Elements already zero count toward the
target. Edits are made in place in a copy of the bytes: scales, zero points, biases, every other
tensor and the file layout stay byte-identical, so the result is the same size.
"""

from __future__ import annotations

import numpy as np

from sepipe.compress.tflite_weights import fc_weight_tensors


def offline_prune_tflite(tflite_bytes: bytes, sparsity: float, exclude_layers: tuple[str, ...] = ("mask",)) -> bytes:
    """Magnitude-prune the int8 FullyConnected weight tensors (per tensor) to `sparsity`; all other bytes unchanged.

    exclude_layers: Keras layer names (read from the converter's tensor names) left untouched; by default the
    output `mask` layer, which the trained variants keep dense too (pass () to prune every FC tensor).
    """
    if not 0.0 <= sparsity < 1.0:
        raise ValueError(f"sparsity must be in [0, 1), got {sparsity}")
    data = bytearray(tflite_bytes)
    if sparsity == 0.0:
        return bytes(data)
    for tensor in fc_weight_tensors(data):
        if tensor.layer in exclude_layers:
            continue
        flat = tensor.values.reshape(-1)            # view into `data`
        k = int(round(sparsity * flat.size))
        if k == 0:
            continue
        order = np.argsort(tensor.magnitudes().reshape(-1), kind="stable")[:k]
        flat[order] = tensor.zero_value().reshape(-1)[order]
    return bytes(data)
