"""Offline compression of an already converted int8 model, no retraining: magnitude pruning and clustering.

Pruning: for every int8 weight tensor of a FullyConnected op (biases excluded), the `round(sparsity * n)`
elements of smallest real magnitude |(q - zero_point) * scale| are set to the zero point (ties broken by
position, so the result is deterministic). Elements already zero count toward the target.

Clustering: every output channel (row) of a tensor keeps at most N distinct int8 codes. The codes of a row
share one scale, so clustering the codes is clustering the real values: a 1-D k-means over the row's code
histogram (quantile start, a fixed number of Lloyd steps, no randomness), centroids rounded to int8, each
code moved to its nearest centroid. The zero point is kept as its own value when the row has zeros, so
pruned weights stay zero and the palette Vela's weight encoder builds has at most N entries per channel.

Edits are made in place in a copy of the bytes: scales, zero points, biases, every other tensor and the
file layout stay byte-identical, so the result is the same size. Per layer: `{layer: sparsity}` and
`{layer: levels}` name Keras layers (read off the converter's tensor names); a layer left out is untouched.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from sepipe.compress.tflite_weights import fc_weight_tensors

CLUSTER_STEPS = 30          # Lloyd iterations: enough for 256 histogram bins to settle (fixed: deterministic)


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
    int8 codes per output channel (0 or a missing layer: not clustered). Layers in neither mapping keep
    their bytes; so does everything that is not FullyConnected weight data."""
    sparsity, levels = dict(sparsity or {}), dict(levels or {})
    for layer, value in sparsity.items():
        _check_sparsity(f"sparsity of layer {layer!r}", value)
    for layer, value in levels.items():
        if not (value == 0 or 2 <= value <= 256):
            raise ValueError(f"levels of layer {layer!r} must be 0 (off) or 2..256, got {value}")
    data = bytearray(tflite_bytes)
    for tensor in fc_weight_tensors(data):
        if sparsity.get(tensor.layer, 0.0) > 0.0:
            _prune(tensor, sparsity[tensor.layer])
        if levels.get(tensor.layer, 0):
            cluster_rows(tensor.values, tensor.zero_value(), levels[tensor.layer])
    return bytes(data)


def distinct_per_channel(tflite_bytes: bytes) -> dict[str, int]:
    """{tensor name: the most distinct int8 codes any of its output channels holds} (what clustering bounds)."""
    return {t.name: max(len(np.unique(row)) for row in t.values.reshape(t.values.shape[0], -1))
            for t in fc_weight_tensors(tflite_bytes)}


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


def cluster_rows(values: np.ndarray, zero: np.ndarray, levels: int) -> None:
    """Leave at most `levels` distinct codes in each row of the int8 (out, in) array `values`, in place.

    `zero`: the zero code of every element (broadcast like `values`); a row holding it keeps it as one of
    its levels. Vectorised over rows: histograms (rows, 256), centroids (rows, levels)."""
    rows = values.reshape(values.shape[0], -1)
    zero_code = np.asarray(zero).reshape(rows.shape[0], -1)[:, 0].astype(np.int64)
    codes = np.arange(-128, 128, dtype=np.float64)
    hist = np.zeros((rows.shape[0], 256), np.float64)
    np.add.at(hist, (np.repeat(np.arange(rows.shape[0]), rows.shape[1]), rows.reshape(-1).astype(np.int64) + 128), 1)
    crowded = (hist > 0).sum(axis=1) > levels
    if not crowded.any():
        return
    hist, zero_code, index = hist[crowded], zero_code[crowded], np.flatnonzero(crowded)
    has_zero = hist[np.arange(len(hist)), zero_code + 128] > 0
    free = hist.copy()
    free[has_zero, zero_code[has_zero] + 128] = 0              # the zero level is fixed, not fitted
    centroids = _kmeans_1d(free, codes, levels - has_zero.astype(int), levels)
    centroids = np.clip(np.round(centroids), -128, 127)
    centroids[has_zero, -1] = zero_code[has_zero]              # the reserved slot (see _kmeans_1d)
    table = _nearest(codes, centroids)                          # (rows, 256): new code of each old code
    for k, row_i in enumerate(index):
        rows[row_i] = table[k, rows[row_i].astype(np.int64) + 128].astype(np.int8)


def _kmeans_1d(hist: np.ndarray, codes: np.ndarray, k: np.ndarray, width: int) -> np.ndarray:
    """Weighted 1-D k-means per row: `k[r]` centroids over `codes` weighted by `hist[r]`, in a (rows, width)
    array whose unused slots (width - k[r], at the end) hold NaN; started at the weighted quantiles.

    In one dimension a cluster is the run of codes between two midpoints, so each Lloyd step is two lookups
    in the prefix sums of the histogram (rows x width work, not rows x 256 x width)."""
    rows = hist.shape[0]
    cdf = np.cumsum(hist, axis=1) / np.maximum(hist.sum(axis=1, keepdims=True), 1)
    slots = np.arange(width)[None, :]
    active = slots < k[:, None]
    quantiles = (slots + 0.5) / np.maximum(k[:, None], 1)
    start = np.array([np.searchsorted(cdf[r], quantiles[r]) for r in range(rows)]).clip(0, 255)
    centroids = np.where(active, codes[start], np.inf)           # sorted; unused slots at +inf
    zero = np.zeros((rows, 1))
    cum_w = np.concatenate([zero, np.cumsum(hist, axis=1)], axis=1)             # (rows, 257)
    cum_x = np.concatenate([zero, np.cumsum(hist * codes[None, :], axis=1)], axis=1)
    for _ in range(CLUSTER_STEPS):
        with np.errstate(invalid="ignore"):
            mid = (centroids[:, :-1] + centroids[:, 1:]) / 2                      # inf beyond the active slots
        # codes <= mid go to the lower cluster: how many of the 256 codes lie at or below each midpoint
        upto = np.clip(np.floor(np.nan_to_num(mid, nan=np.inf, posinf=1e9)) - codes[0] + 1, 0, 256).astype(int)
        edges = np.concatenate([np.zeros((rows, 1), int), upto, np.full((rows, 1), 256)], axis=1)
        weight = np.diff(np.take_along_axis(cum_w, edges, axis=1), axis=1)
        total = np.diff(np.take_along_axis(cum_x, edges, axis=1), axis=1)
        centroids = np.where(active & (weight > 0), total / np.maximum(weight, 1e-12), centroids)
    return np.where(active, centroids, np.nan)


def _assign(codes: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Index of the nearest centroid (NaN slots never win; ties to the lower slot) for each code, per row."""
    distance = np.abs(codes[None, :, None] - centroids[:, None, :])
    return np.argmin(np.where(np.isnan(distance), np.inf, distance), axis=2)


def _nearest(codes: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """(rows, 256): the centroid value nearest to each code."""
    assign = _assign(codes, centroids)
    return np.take_along_axis(np.nan_to_num(centroids), assign, axis=1)
