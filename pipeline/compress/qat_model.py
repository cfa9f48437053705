"""The QAT copy of a Dense + GRU/LSTM model (sepipe.compress.qat_graph), its ranges, and what the
converter needs to carry them over.

    qmodel = build_qat_sequence(model, precision, feature_layer)   # same weights, fake quantisers added
    session.train(qmodel, ..., after_step=lambda: commit(qmodel))
    copy_trainable(qmodel, model)                                  # the trained weights back
    ranges = collect_ranges(qmodel)                                # {tensor key: {min, max, bits, ...}}
    record_intermediates(streaming, ranges_model, inputs)          # per tensor key: values on given frames

A chain model is needed (each layer reads the previous one: the gru/lstm families); anything else
raises ValueError naming the layer, which the variant turns into a one-line ConfigError.
"""

from __future__ import annotations

import numpy as np

from sepipe.compress.qat_graph import Precision, QatCell, QatDense, TensorRange
from sepipe.models.keras_backend import keras, tf

RNN_KINDS = {"GRU": "gru", "LSTM": "lstm", "GRUCell": "gru", "LSTMCell": "lstm"}


def _check_gru(layer) -> None:
    cell = getattr(layer, "cell", layer)
    if type(cell).__name__ == "GRUCell" and not cell.reset_after:
        raise ValueError(f"layer '{layer.name}': QAT scope 'full' needs GRU reset_after=True (the Keras default)")


def build_qat_sequence(model, precision: Precision, feature_layer: str):
    """A functional copy of the sequence `model` with QatDense / RNN(QatCell) layers, weights copied."""
    def clone(layer):
        kind = type(layer).__name__
        if kind == "Dense":
            cfg = layer.get_config()
            return QatDense.from_config({**cfg, "precision": precision,
                                         "quantize_input": layer.name == feature_layer})
        if kind in ("GRU", "LSTM"):
            _check_gru(layer)
            cell = QatCell(RNN_KINDS[kind], layer.units, precision, name=layer.name)
            return keras.layers.RNN(cell, return_sequences=layer.return_sequences, name=layer.name)
        if kind == "InputLayer":
            return layer.__class__.from_config(layer.get_config())
        raise ValueError(f"layer '{layer.name}' ({kind}): QAT scope 'full' covers Dense, GRU and LSTM layers only")

    qmodel = keras.models.clone_model(model, clone_function=clone)
    copy_trainable(model, qmodel)
    return qmodel


def copy_trainable(source, target) -> None:
    """Copy kernels and biases layer by layer (by name, in creation order; range variables are not trainable)."""
    for layer in target.layers:
        weights = layer.trainable_weights
        if weights:
            src = source.get_layer(layer.name).trainable_weights
            if [tuple(w.shape) for w in src] != [tuple(w.shape) for w in weights]:
                raise ValueError(f"layer '{layer.name}': weights {[w.shape for w in src]} do not fit "
                                 f"{[w.shape for w in weights]}")
            for s, t in zip(src, weights):
                t.assign(s)


def tensor_ranges(qmodel) -> list[TensorRange]:
    found = []
    for layer in qmodel.layers:
        owner = getattr(layer, "cell", layer)
        found.extend(getattr(owner, "fq", {}).values())
    return found


def commit(qmodel) -> None:
    """After an optimizer step (inside the step's tf.function): EMA update of every range."""
    for r in tensor_ranges(qmodel):
        r.commit()


def collect_ranges(qmodel) -> dict[str, dict]:
    return {r.key: r.to_dict() for r in tensor_ranges(qmodel)}


# --------------------------------------------------------------------------- the streaming side

def record_intermediates(streaming, ranges: dict[str, dict], inputs: dict[str, np.ndarray], state_specs,
                         feature_name: str) -> dict[str, np.ndarray]:
    """Float values of every fake-quantised tensor of the streaming model on `inputs` (N rows each):
    {record key: (N, width)}. Keys are the range keys, with `<layer>/h_in` (`c_in`) for a state input.

    Walks the streaming model's layers in order (a chain): Dense layers and GRU/LSTM cells are
    recomputed with the QAT arithmetic (no quantisation), their tensors recorded.
    """
    precision = Precision(default=8)
    x = tf.constant(inputs[feature_name])
    found: dict[str, np.ndarray] = {}
    for layer in streaming.layers:
        kind = type(layer).__name__
        if kind in ("InputLayer", "Identity", "TensorFlowOpLayer"):
            continue
        if kind == "Dense":
            q = QatDense.from_config({**layer.get_config(), "precision": precision,
                                      "quantize_input": "features" in ranges and not found})
        elif kind in ("GRUCell", "LSTMCell"):
            _check_gru(layer)
            q = QatCell(RNN_KINDS[kind], layer.units, precision, name=layer.name)
        else:
            raise ValueError(f"layer '{layer.name}' ({kind}): QAT scope 'full' covers Dense, GRU and LSTM layers only")
        q.build(tuple(x.shape))
        for t, s in zip(q.trainable_weights, layer.trainable_weights):
            t.assign(s)
        for r in getattr(q, "fq", {}).values():
            r.recording = {}
        if kind == "Dense":
            x = q(x)
        else:
            states = [tf.constant(inputs[s.input]) for s in state_specs if s.layer == layer.name]
            x, _ = q.call(x, states)
        for r in q.fq.values():
            for name, values in r.recording.items():
                key = name if name == "features" else f"{layer.name}/{name}"
                found[key] = np.reshape(values[-1], (values[-1].shape[0], -1))
    return found


def range_key(record_key: str) -> str:
    """The range a recorded tensor is quantised with: a state input shares its state's range."""
    return record_key[:-3] if record_key.endswith(("/h_in", "/c_in")) else record_key


def load_ranges(qmodel, ranges: dict[str, dict]) -> None:
    """Set a QAT model's ranges from `collect_ranges` output (to run the fake-quantised model again)."""
    for r in tensor_ranges(qmodel):
        if r.key in ranges and r.fixed is None:
            r.min.assign(ranges[r.key]["min"]), r.max.assign(ranges[r.key]["max"]), r.seen.assign(1.0)
