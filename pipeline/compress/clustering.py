"""Weight clustering to a shared int8 codebook per weight tensor, trained through the shared fine-tuning loop.

What the int8 model holds: every clustered weight tensor (a Dense kernel, a GRU/LSTM kernel or recurrent
kernel) has at most N distinct int8 values IN THE WHOLE TENSOR, the same N codes in every output channel,
and its per-channel scales are unchanged. Why per tensor and in int8 codes, not TFMOT's float centroids:
the converter quantises FC weights per output channel (scale = the channel's max |w| / 127), so one float
centroid lands on a different int8 code in every channel; Vela encodes a brick of output channels as one
stream with one palette of at most 32 values (mlw codec), which then sees about N x channels values. On the
demo GRU (128 units, u55-128, mask layer dense), encoded weights: dense 290 KB; per-channel codes 16/8/4:
290/288/286 KB (no gain); float centroids per tensor (TFMOT's way) 16/8/4: 233/147/102 KB; shared int8 codes
per tensor 16/8/4: 164/120/87 KB (each applied to the converted int8 model, no retraining).

The codebook (`init_codebook`): each channel's extreme weight sits at +-127 after the converter's scaling
(it sets the scale), so the codes +-127 that occur are pinned, 0 is pinned when zeros are kept (pruning:
zeros are their own cluster and stay exactly where they are), and the other codes are 1-D k-means over
the tensor's scaled weights (w / channel scale), initialised at quantiles (deterministic) and rounded to
integers, so the converter's rounding keeps them exactly.

Training (`attach`): straight-through estimation with float shadow weights, installed as each variable's
Keras constraint (the optimizer applies it after every update, so it also holds through the shared QAT
phase): the forward pass sees the snapped weights (every weight at its nearest code x its channel's
scale); the optimizer's update is added to the shadow, which is snapped again. Assignments move between
clusters as the shadow moves; the codes are fixed at the start (no gradient through centroids). Because
the snapped weights lie on the int8 grid already, weight QAT's fake quantiser leaves them unchanged.

Untrained (`cluster_int8`): the same codebook applied to a converted int8 tensor, for a cheap proxy (the
search's offline candidates). The module imports TensorFlow only inside the functions that need it.
"""

from __future__ import annotations

import numpy as np

PINNED = 127.0                      # the int8 code of each channel's extreme weight (narrow range)
MIN_CLUSTERS = 4                    # +-127 and 0 are pinned codes: fewer leaves k-means nothing to place
MAX_CLUSTERS = 32                   # Vela's weight palette holds at most 32 values per stream (mlw codec): more buys nothing
KMEANS_ITERATIONS = 30


def channel_scale(w: np.ndarray) -> np.ndarray:
    """The converter's per-output-channel scale of a Keras kernel (in, out): max |w| / 127 (1 where all zero)."""
    max_abs = np.abs(w).max(axis=0, keepdims=True)
    return np.where(max_abs > 0, max_abs / PINNED, 1.0)


def kmeans_1d(values: np.ndarray, k: int) -> np.ndarray:
    """k sorted centroids of 1-D `values` by Lloyd's algorithm from quantiles (deterministic, no random init)."""
    x = np.sort(values.astype(np.float64))
    if k <= 0 or x.size == 0:
        return np.zeros(0)
    centres = np.quantile(x, (np.arange(k) + 0.5) / k)
    for _ in range(KMEANS_ITERATIONS):
        bounds = np.searchsorted(x, (centres[1:] + centres[:-1]) / 2)
        parts = np.split(x, bounds)
        updated = np.array([p.mean() if p.size else c for p, c in zip(parts, centres)])
        if np.allclose(updated, centres):
            break
        centres = updated
    return np.sort(centres)


def init_codebook(w: np.ndarray, clusters: int, keep_zeros: bool) -> np.ndarray:
    """At most `clusters` sorted integer int8 codes for Keras kernel `w` (in, out), see the module docstring."""
    u = w / channel_scale(w)
    columns = np.arange(w.shape[1])
    extremes = u[np.abs(u).argmax(axis=0), columns]
    live = np.abs(w).max(axis=0) > 0
    pinned = {float(np.sign(e) * PINNED) for e in extremes[live]}
    if keep_zeros or not live.all():
        pinned.add(0.0)
    pool = u[(np.abs(u) < PINNED - 0.5) & ((u != 0) if keep_zeros else True)]
    learned = np.round(kmeans_1d(pool, clusters - len(pinned)))
    codes = np.unique(np.concatenate([sorted(pinned), np.clip(learned, -PINNED, PINNED)]))
    return codes.astype(np.float32)


def cluster_int8(values: np.ndarray, clusters: int, keep_zeros: bool) -> np.ndarray:
    """The untrained counterpart on a converted int8 weight tensor (out, in) (the search's offline proxy):
    every value at its nearest of at most `clusters` shared codes. Each channel's max |q| is 127 already,
    so the scales stay valid and only the int8 values change."""
    w = values.T.astype(np.float64)
    codes = init_codebook(w, clusters, keep_zeros)
    nearest = np.abs(w[..., None] - codes).argmin(axis=-1)
    clustered = np.where(np.abs(w).max(axis=0) > 0, codes[nearest], 0.0)
    if keep_zeros:
        clustered[w == 0] = 0.0
    return clustered.T.astype(np.int8)


def snap(w, codes):
    """`w` (in, out) with every weight at its nearest code x its channel's scale; an all-zero channel stays zero."""
    from sepipe.models.keras_backend import tf

    max_abs = tf.reduce_max(tf.abs(w), axis=0, keepdims=True)
    scale = tf.where(max_abs > 0, max_abs / PINNED, tf.ones_like(max_abs))
    u = w / scale
    nearest = tf.argmin(tf.abs(u[..., None] - codes), axis=-1)
    return tf.where(max_abs > 0, tf.gather(codes, nearest) * scale, tf.zeros_like(w))


class ClusterConstraint:
    """A variable's Keras constraint: straight-through clustering with a float shadow (module docstring)."""

    def __init__(self, var, codes: np.ndarray, keep: np.ndarray | None):
        from sepipe.models.keras_backend import tf

        self.codes = tf.constant(codes, tf.float32)
        self.keep = None if keep is None else tf.constant(keep, tf.float32)
        start = self._masked(var.read_value())
        self.shadow = tf.Variable(start, trainable=False, name=var.name.split(":")[0] + "_cluster_shadow")
        self.last = tf.Variable(snap(start, self.codes), trainable=False)
        var.assign(self.last)

    def _masked(self, value):
        return value if self.keep is None else value * self.keep

    def __call__(self, value):
        from sepipe.models.keras_backend import tf

        self.shadow.assign(self._masked(self.shadow + (value - self.last)))
        self.last.assign(self._masked(snap(self.shadow, self.codes)))
        return tf.identity(self.last)


class ZeroMaskConstraint:
    """A pruned, unclustered variable's Keras constraint: its zeros stay zero through every later update
    (the clustering phase after pruning, QAT), as the clustered tensors' zeros do by their own constraint."""

    def __init__(self, keep: np.ndarray):
        from sepipe.models.keras_backend import tf

        self.keep = tf.constant(keep, tf.float32)

    def __call__(self, value):
        return value * self.keep


def hold_zeros(model, layer_names) -> list[str]:
    """Keep the zeros of the named layers' kernels and recurrent kernels (pruned, not clustered) for good."""
    labels = []
    for label, var in clustered_variables(model, layer_names):
        var._constraint = ZeroMaskConstraint((var.numpy() != 0).astype(np.float32))
        labels.append(label)
    return labels


def clustered_variables(model, layer_names) -> list[tuple[str, object]]:
    """(label 'layer/kernel', variable) for the kernel and recurrent kernel of each named layer."""
    from sepipe.models.keras_backend import tf

    found = []
    for name in layer_names:
        owner = getattr(model.get_layer(name), "cell", model.get_layer(name))
        for attr in ("kernel", "recurrent_kernel"):
            var = getattr(owner, attr, None)
            if isinstance(var, tf.Variable):
                found.append((f"{name}/{attr}", var))
    return found


def attach(model, layer_names, clusters: int, keep_zeros: bool) -> dict[str, list[int]]:
    """Cluster the named layers' weights of `model` now (snapped in place) and keep them clustered through
    every later optimizer step (the constraint). Returns {'layer/weight': codes} for the record."""
    codebooks = {}
    for label, var in clustered_variables(model, layer_names):
        value = var.numpy()
        keep = (value != 0).astype(np.float32) if keep_zeros else None
        codes = init_codebook(value, clusters, keep_zeros)
        var._constraint = ClusterConstraint(var, codes, keep)   # Adam applies it after each update
        codebooks[label] = [int(c) for c in codes]
    return codebooks


def distinct_int8_codes(tflite_bytes: bytes) -> dict[str, dict[str, int]]:
    """{tensor name: {"layer", "weight", "per_tensor": distinct int8 values, "per_channel_max": ...}} of every
    int8 FullyConnected weight tensor of a converted model: what clustering promises, counted in the file."""
    from sepipe.compress.tflite_weights import fc_weight_tensors

    found = {}
    for t in fc_weight_tensors(bytes(tflite_bytes)):
        per_channel = max(len(np.unique(row)) for row in t.values) if t.values.ndim == 2 else len(np.unique(t.values))
        found[t.name] = {"layer": t.layer, "weight": t.weight, "per_tensor": int(len(np.unique(t.values))),
                         "per_channel_max": int(per_channel)}
    return found
