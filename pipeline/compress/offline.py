"""Offline compression of an already converted int8 model, no retraining: magnitude pruning and clustering.

Pruning: for every int8 weight tensor of a FullyConnected op (biases excluded), the `round(sparsity * n)`
elements of smallest real magnitude |(q - zero_point) * scale| are set to the zero point (ties broken by
position, so the result is deterministic). Elements already zero count toward the target.

Clustering: every clustered weight tensor keeps at most N distinct int8 codes IN THE WHOLE TENSOR, the same
codes in every output channel (sepipe.compress.clustering.cluster_int8, the codebook the trained `cluster`
kind uses: each channel's +-127 pinned, 0 pinned when the layer was pruned, the rest 1-D k-means). Per
tensor, not per channel, because Vela's weight encoder gives one palette of at most 32 values to a brick of
output channels: per-channel codes shrank the demo GRU's encoded weights by nothing (290 -> 288 KB at 8
levels), a shared codebook by 58% (120 KB).

Edits are made in place in a copy of the bytes: scales, zero points, biases, every other tensor and the
file layout stay byte-identical, so the result is the same size. Per layer: `{layer: sparsity}` and
`{layer: levels}` name Keras layers (read off the converter's tensor names); a layer left out is untouched.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from sepipe.compress.clustering import MAX_CLUSTERS, MIN_CLUSTERS, cluster_int8
from sepipe.compress.tflite_weights import fc_weight_tensors


def offline_prune_tflite(tflite_bytes: bytes, sparsity: float, exclude_layers: tuple[str, ...] = ("mask",)) -> bytes:
    """Magnitude-prune the int8 FullyConnected weight tensors (per tensor) to `sparsity`; all other bytes unchanged.

    exclude_layers: Keras layer names (read from the converter's tensor names) left untouched; by default the
    output `mask` layer, which the trained variants keep dense too (pass () to prune every FC tensor).
    """
    _check_sparsity("sparsity", sparsity)
    data = bytearray(tflite_bytes)
    if sparsity == 0.0:
        return bytes(data)
    for tensor in fc_weight_tensors(data):
        if tensor.layer not in exclude_layers:
            _prune(tensor, sparsity)
    return bytes(data)


def offline_compress_tflite(tflite_bytes: bytes, sparsity: Mapping[str, float] | None = None,
                            levels: Mapping[str, int] | None = None) -> bytes:
    """Per-layer offline compression: prune layer L to `sparsity[L]`, then cluster it to `levels[L]` distinct
    int8 codes shared by the whole tensor (0 or a missing layer: not clustered). Layers in neither mapping keep
    their bytes; so does everything that is not FullyConnected weight data."""
    sparsity, levels = dict(sparsity or {}), dict(levels or {})
    for layer, value in sparsity.items():
        _check_sparsity(f"sparsity of layer {layer!r}", value)
    for layer, value in levels.items():
        if not (value == 0 or MIN_CLUSTERS <= value <= MAX_CLUSTERS):
            raise ValueError(f"levels of layer {layer!r} must be 0 (off) or {MIN_CLUSTERS}..{MAX_CLUSTERS}, got {value}")
    data = bytearray(tflite_bytes)
    for tensor in fc_weight_tensors(data):
        if sparsity.get(tensor.layer, 0.0) > 0.0:
            _prune(tensor, sparsity[tensor.layer])
        if levels.get(tensor.layer, 0):
            # weights are symmetric int8 (zero point 0): a pruned layer keeps its zeros as their own code
            tensor.values[...] = cluster_int8(tensor.values, levels[tensor.layer],
                                              keep_zeros=sparsity.get(tensor.layer, 0.0) > 0.0)
    return bytes(data)


def distinct_per_tensor(tflite_bytes: bytes) -> dict[str, int]:
    """{tensor name: distinct int8 codes in the whole weight tensor} (what shared-codebook clustering bounds)."""
    return {t.name: len(np.unique(t.values)) for t in fc_weight_tensors(tflite_bytes)}


def _check_sparsity(what: str, value: float) -> None:
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{what} must be in [0, 1), got {value}")


def _prune(tensor, sparsity: float) -> None:
    flat = tensor.values.reshape(-1)            # view into the model bytes
    k = int(round(sparsity * flat.size))
    if k == 0:
        return
    order = np.argsort(tensor.magnitudes().reshape(-1), kind="stable")[:k]
    flat[order] = tensor.zero_value().reshape(-1)[order]
