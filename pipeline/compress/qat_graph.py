"""Fake quantisation of activations and recurrent states (QAT scope 'full'), for Dense + GRU/LSTM chains.

TFMOT's `quantize_model` refuses GRU/LSTM layers and cells, so the cells are written here: the same
arithmetic as tf_keras' GRUCell (reset_after) and LSTMCell (implementation 2), op for op, with a fake
quantiser on every tensor that becomes a separate TFLite tensor after conversion: each FC output (the
x and h matmuls with their fused bias), every sum, product and difference, the new state h (and the
LSTM cell state c), the Dense outputs (pre-activation when the activation is a separate op), the
features input and the mask. Sigmoid and tanh outputs get the converter's fixed ranges (int8: 1/256
and 1/128 steps; int16: 1/32768). A state input shares its output's range, so firmware copies the
state back without requantising.

Ranges are EMA-tracked, not learned: each step accumulates the batch min/max of every tensor (inside
the RNN loop too), and after the optimizer step min/max move towards them with decay `EMA_DECAY` (the
first step sets them). Why not learned (LSQ/PACT): the converter's own PTQ statistic is min/max,
so EMA keeps QAT comparable with PTQ and leaves the weights to learn the noise; learned clips need a
range regulariser and more steps than a fine-tuning phase has. Straight-through gradients
(`tf.quantization.fake_quant_with_min_max_vars`) pass inside the range; the ranges get no gradient.

Bits per tensor (8: asymmetric, like TFLite int8 activations; 16: symmetric, zero point 0, like 16x8;
0: float, not fake-quantised but its range still tracked, for where a float region's value is quantised
on entering an integer one) come from a `Precision`: a default plus fnmatch patterns over the tensor keys
(`rnn_1/c`, `dense_*/out`, `features`...), so mixed precision can ask for 16 bits on some tensors only
(sepipe.compress.qat.plan_precision derives them from a variant's precision plan).
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field

import numpy as np

from sepipe.models.keras_backend import keras, tf

EMA_DECAY = 0.99
FLOAT_BITS = 0          # a tensor of a float group: range tracked, value not fake-quantised
# fixed output ranges the converter imposes on LOGISTIC / TANH: {bits: (min, max)}
SIGMOID_RANGE = {8: (0.0, 255.0 / 256.0), 16: (-1.0, 32767.0 / 32768.0)}
TANH_RANGE = {8: (-1.0, 127.0 / 128.0), 16: (-1.0, 32767.0 / 32768.0)}


@dataclass(frozen=True)
class Precision:
    """Activation bits per tensor key: `default` (8 or 16) unless a pattern of `overrides` matches."""

    default: int = 8
    overrides: tuple[tuple[str, int], ...] = field(default_factory=tuple)

    def bits(self, key: str) -> int:
        for pattern, bits in self.overrides:
            if fnmatch.fnmatchcase(key, pattern):
                return int(bits)
        return int(self.default)


class TensorRange:
    """One tensor's fake quantiser: EMA range variables, per-step batch accumulators, its bits."""

    def __init__(self, layer, key: str, bits: int, fixed: tuple[float, float] | None = None):
        self.key, self.bits, self.fixed = key, int(bits), fixed
        zeros = keras.initializers.Zeros()
        make = lambda name, value: layer.add_weight(name=f"{key.split('/')[-1]}_{name}", shape=(),
                                                    initializer=keras.initializers.Constant(value),
                                                    trainable=False)
        self.min, self.max = make("min", 0.0), make("max", 0.0)
        self.batch_min, self.batch_max = make("bmin", np.inf), make("bmax", -np.inf)
        self.seen = layer.add_weight(name=f"{key.split('/')[-1]}_seen", shape=(), initializer=zeros, trainable=False)
        self.recording: dict | None = None     # set by `record_intermediates`: key -> values seen

    def limits(self):
        if self.fixed is not None:
            return tf.constant(self.fixed[0]), tf.constant(self.fixed[1])
        lo, hi = tf.minimum(self.min, 0.0), tf.maximum(self.max, 0.0)   # the converter keeps 0 exact
        if self.bits == 16:
            m = tf.maximum(tf.maximum(-lo, hi), 1e-8)
            return -m, m
        return lo, tf.maximum(hi, lo + 1e-8)

    def __call__(self, x, training=False, name: str | None = None):
        if self.recording is not None:
            self.recording.setdefault(name or self.key.rsplit("/", 1)[-1], []).append(np.asarray(x))
            return x
        if training and self.fixed is None:
            self.batch_min.assign(tf.minimum(self.batch_min, tf.reduce_min(x)))
            self.batch_max.assign(tf.maximum(self.batch_max, tf.reduce_max(x)))
        if self.bits == FLOAT_BITS:         # a float region: the value runs unquantised on the Cortex-M
            return x
        lo, hi = self.limits()
        # before the first step has set a range, pass the float value through
        if self.fixed is None:
            return tf.cond(self.seen > 0, lambda: self._fq(x, lo, hi), lambda: tf.identity(x))
        return self._fq(x, lo, hi)

    def _fq(self, x, lo, hi):
        narrow = self.bits == 16 and self.fixed is None
        return tf.quantization.fake_quant_with_min_max_vars(x, tf.stop_gradient(lo), tf.stop_gradient(hi),
                                                             num_bits=self.bits, narrow_range=narrow)

    def commit(self):
        """EMA update from this step's batch min/max (the first step sets the range), then reset them."""
        if self.fixed is not None:
            return
        first = tf.equal(self.seen, 0.0)
        decay = tf.where(first, 0.0, EMA_DECAY)
        self.min.assign(decay * self.min + (1.0 - decay) * self.batch_min)
        self.max.assign(decay * self.max + (1.0 - decay) * self.batch_max)
        self.seen.assign(1.0)
        self.batch_min.assign(np.inf), self.batch_max.assign(-np.inf)

    def to_dict(self) -> dict:
        lo, hi = (float(v) for v in self.limits())
        return {"min": lo, "max": hi, "bits": self.bits, "fixed": self.fixed is not None,
                "ema_min": float(self.min.numpy()), "ema_max": float(self.max.numpy())}


def _ranges(layer, precision: Precision, specs: dict[str, str | None]) -> dict[str, TensorRange]:
    """{short name: TensorRange} for `layer`; spec 'sigmoid' / 'tanh' fixes the range."""
    out = {}
    for short, kind in specs.items():
        key = f"{layer.name}/{short}"
        bits = precision.bits(key)
        fixed = {"sigmoid": SIGMOID_RANGE, "tanh": TANH_RANGE}.get(kind or "", {}).get(bits)
        out[short] = TensorRange(layer, key, bits, fixed)
    return out


# --------------------------------------------------------------------------- the cells' arithmetic

def gru_step(x, h, kernel, recurrent_kernel, bias, fq, training=False):
    """tf_keras GRUCell (reset_after=True, implementation 2), fake-quantised tensor by tensor."""
    units = int(recurrent_kernel.shape[0])
    h = fq["h"](h, training, "h_in")
    mx = fq["x_mm"](tf.matmul(x, kernel) + bias[0], training)
    mh = fq["h_mm"](tf.matmul(h, recurrent_kernel) + bias[1], training)
    x_z, x_r, x_h = tf.split(mx, 3, axis=-1)
    r_z, r_r, r_h = tf.split(mh, [units, units, -1], axis=-1)
    z = fq["z"](tf.sigmoid(fq["z_pre"](x_z + r_z, training)), training)
    r = fq["r"](tf.sigmoid(fq["r_pre"](x_r + r_r, training)), training)
    rh = fq["r_h"](r * r_h, training)
    hh = fq["hh"](tf.tanh(fq["hh_pre"](x_h + rh, training)), training)
    zh = fq["z_h"](z * h, training)
    one_minus_z = fq["one_minus_z"](1.0 - z, training)
    new_h = fq["h"](zh + fq["cand"](one_minus_z * hh, training), training, "h")
    return new_h, [new_h]


def lstm_step(x, h, c, kernel, recurrent_kernel, bias, fq, training=False):
    """tf_keras LSTMCell (implementation 2): the bias is added after the two matmuls, as its own ADD."""
    h, c = fq["h"](h, training, "h_in"), fq["c"](c, training, "c_in")
    s = fq["sum"](fq["x_mm"](tf.matmul(x, kernel), training) + fq["h_mm"](tf.matmul(h, recurrent_kernel), training),
                  training)
    z = fq["z"](s + bias, training)
    z0, z1, z2, z3 = tf.split(z, 4, axis=-1)
    i = fq["i"](tf.sigmoid(z0), training)
    f = fq["f"](tf.sigmoid(z1), training)
    g = fq["g"](tf.tanh(z2), training)
    o = fq["o"](tf.sigmoid(z3), training)
    new_c = fq["c"](fq["f_c"](f * c, training) + fq["i_g"](i * g, training), training, "c")
    new_h = fq["h"](o * fq["tanh_c"](tf.tanh(new_c), training), training, "h")
    return new_h, [new_h, new_c]


GRU_TENSORS = {"h": None, "x_mm": None, "h_mm": None, "z_pre": None, "z": "sigmoid", "r_pre": None, "r": "sigmoid",
               "r_h": None, "hh_pre": None, "hh": "tanh", "z_h": None, "one_minus_z": None, "cand": None}
LSTM_TENSORS = {"h": None, "c": None, "x_mm": None, "h_mm": None, "sum": None, "z": None, "i": "sigmoid",
                "f": "sigmoid", "g": "tanh", "o": "sigmoid", "f_c": None, "i_g": None, "tanh_c": "tanh"}


class QatCell(keras.layers.Layer):
    """A GRU or LSTM cell with the fake quantisers above; weights laid out as the tf_keras cell's."""

    def __init__(self, kind: str, units: int, precision: Precision, **kwargs):
        super().__init__(**kwargs)
        self.kind, self.units, self.precision = kind, int(units), precision
        self.gates = 3 if kind == "gru" else 4
        self.state_size = [self.units] if kind == "gru" else [self.units, self.units]
        self.output_size = self.units

    def build(self, input_shape):
        g, u = self.gates, self.units
        self.kernel = self.add_weight(name="kernel", shape=(int(input_shape[-1]), g * u))
        self.recurrent_kernel = self.add_weight(name="recurrent_kernel", shape=(u, g * u))
        self.bias = self.add_weight(name="bias", shape=(2, g * u) if self.kind == "gru" else (g * u,))
        self.fq = _ranges(self, self.precision, GRU_TENSORS if self.kind == "gru" else LSTM_TENSORS)
        self.built = True

    def call(self, inputs, states, training=None):
        training = bool(training)
        if self.kind == "gru":
            return gru_step(inputs, states[0], self.kernel, self.recurrent_kernel, self.bias, self.fq, training)
        return lstm_step(inputs, states[0], states[1], self.kernel, self.recurrent_kernel, self.bias, self.fq,
                         training)


class QatDense(keras.layers.Dense):
    """Dense with its output fake-quantised (pre-activation too when the activation is a separate op:
    sigmoid/tanh), and optionally its input (the model's features)."""

    def __init__(self, *args, precision: Precision = Precision(), quantize_input: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.precision, self.quantize_input = precision, quantize_input

    def build(self, input_shape):
        super().build(input_shape)
        act = getattr(self.activation, "__name__", "")
        self.separate_act = act if act in ("sigmoid", "tanh") else None
        specs = {"out": self.separate_act}
        if self.separate_act:
            specs["pre"] = None
        self.fq = _ranges(self, self.precision, specs)
        if self.quantize_input:
            bits = self.precision.bits("features")
            self.fq["in"] = TensorRange(self, "features", bits)

    def call(self, inputs, training=None):
        training = bool(training)
        if self.quantize_input:
            inputs = self.fq["in"](inputs, training, "features")
        y = tf.matmul(inputs, self.kernel) + self.bias if self.use_bias else tf.matmul(inputs, self.kernel)
        if self.separate_act:
            y = self.activation(self.fq["pre"](y, training))
        else:
            y = self.activation(y)
        return self.fq["out"](y, training)
