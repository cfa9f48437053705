"""Zero counts: per layer in a Keras model, per weight tensor in an int8 .tflite."""

from __future__ import annotations

import numpy as np

from sepipe.compress.tflite_weights import fc_weight_tensors

PRUNABLE_WEIGHTS = ("kernel", "recurrent_kernel")   # biases are never pruned


def weight_arrays(model, layer_names=None) -> dict[str, dict[str, np.ndarray]]:
    """{layer: {'kernel': ..., 'recurrent_kernel': ...}} for the Dense / GRU / LSTM layers of a plain
    (stripped) Keras model, sequence or streaming (a GRU layer and its GRUCell share names)."""
    out: dict[str, dict[str, np.ndarray]] = {}
    for layer in model.layers:
        if layer_names is not None and layer.name not in layer_names:
            continue
        owner = getattr(layer, "cell", layer)
        arrays = {attr: np.asarray(getattr(owner, attr).numpy()) for attr in PRUNABLE_WEIGHTS
                  if getattr(owner, attr, None) is not None and hasattr(getattr(owner, attr), "numpy")}
        if arrays:
            out[layer.name] = arrays
    return out


def keras_sparsity(model, layer_names=None) -> dict:
    """{"weights", "zeros", "sparsity", "per_layer": {layer: {weights, zeros, sparsity, <weight>: {...}}}}."""
    per_layer = {}
    total = zeros = 0
    for name, arrays in weight_arrays(model, layer_names).items():
        entry = {}
        lw = lz = 0
        for attr, array in arrays.items():
            n, z = int(array.size), int(np.count_nonzero(array == 0))
            entry[attr] = {"weights": n, "zeros": z, "sparsity": z / n if n else 0.0}
            lw, lz = lw + n, lz + z
        entry.update(weights=lw, zeros=lz, sparsity=lz / lw if lw else 0.0)
        per_layer[name] = entry
        total, zeros = total + lw, zeros + lz
    return {"weights": total, "zeros": zeros, "sparsity": zeros / total if total else 0.0, "per_layer": per_layer}


def tflite_sparsity(tflite_bytes: bytes) -> dict:
    """Zeros among the int8 weights of every FullyConnected op (a GRU/LSTM cell converts to one FC for its
    kernel and one for its recurrent kernel). An element is zero when it equals its channel's zero point.

    {"weights": total elements, "zeros": ..., "sparsity": ...,
     "per_tensor": {tensor name: {"layer", "weight", "shape", "weights", "zeros", "sparsity"}}}
    """
    per_tensor = {}
    total = zeros = 0
    for tensor in fc_weight_tensors(bytes(tflite_bytes)):
        n = int(tensor.values.size)
        z = int(np.count_nonzero(tensor.values == tensor.zero_value()))
        per_tensor[tensor.name] = {"layer": tensor.layer, "weight": tensor.weight,
                                   "shape": list(tensor.values.shape), "weights": n, "zeros": z,
                                   "sparsity": z / n if n else 0.0}
        total, zeros = total + n, zeros + z
    return {"weights": total, "zeros": zeros, "sparsity": zeros / total if total else 0.0, "per_tensor": per_tensor}


def tflite_zero_masks(tflite_bytes: bytes) -> dict[tuple[str, str], np.ndarray]:
    """{(layer, 'kernel'|'recurrent_kernel'): bool mask of zeros in KERAS layout (in, out)}."""
    return {(t.layer, t.weight): (t.values == t.zero_value()).T.copy()
            for t in fc_weight_tensors(bytes(tflite_bytes)) if t.layer}
