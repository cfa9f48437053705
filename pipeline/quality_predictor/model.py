"""The predictor network: log-mel in, four conv blocks, a small dense head, the chosen scores out.

Training model (`build_train_model`): per block Conv2D 3x3 'same' (no bias) -> BatchNormalization ->
activation -> MaxPool 2x2; then global average pooling -> Dense(dense_units, ReLU) -> Dense(targets)
(normalised targets). The activation is ReLU (`float`, `int8_qat`) or `Heaviside` (`binary`).

Heaviside: forward H(x) = 1 if x > 0 else 0 (exactly two levels); backward the straight-through
estimator clipped to a window: dH/dx := 1 where |x| <= window, 0 elsewhere (the surrogate of the
reference work's binary activation maps; outside the window a unit is saturated and gets no gradient).

The deploy graph (BN folded, the Heaviside in int8-friendly form) is in deploy_graph.py.
"""

from __future__ import annotations

import numpy as np


def _keras():
    from sepipe.models.keras_backend import keras, tf

    return keras, tf


def heaviside_layer_class():
    """The Heaviside Keras layer class (built on first use: no TensorFlow at import)."""
    global _HEAVISIDE
    if _HEAVISIDE is None:
        keras, tf = _keras()

        class Heaviside(keras.layers.Layer):
            """H(x) = [x > 0]; gradient 1 where |x| <= window, else 0 (straight-through in a window)."""

            def __init__(self, window: float = 1.0, **kwargs):
                super().__init__(**kwargs)
                self.window = float(window)

            def call(self, x):
                # Straight-through: the forward value is the step (surrogate - its stopped copy is exactly
                # 0), the gradient is the surrogate's, clip(x, -w, w)': 1 where |x| <= w, else 0.
                surrogate = tf.clip_by_value(x, -self.window, self.window)
                return tf.cast(x > 0, x.dtype) + (surrogate - tf.stop_gradient(surrogate))

            def get_config(self):
                return {**super().get_config(), "window": self.window}

        _HEAVISIDE = Heaviside
    return _HEAVISIDE


_HEAVISIDE = None
_QUANT_CONV = None


def quant_conv_class():
    """Conv2D whose kernel is fake-quantised to symmetric int8 per output channel (straight-through).

    Per-channel symmetric quantisation commutes with a per-channel scale, so the grid is the one the
    converter gives the batch-norm-folded kernel: a binary unit's threshold is learnt with the weights it
    will have in int8 (the int8 rounding of an unaware kernel flips units whose pre-activation is near 0)."""
    global _QUANT_CONV
    if _QUANT_CONV is None:
        keras, tf = _keras()

        class QuantConv2D(keras.layers.Conv2D):
            def convolution_op(self, inputs, kernel):
                scale = tf.maximum(tf.reduce_max(tf.abs(kernel), axis=(0, 1, 2), keepdims=True), 1e-12) / 127.0
                quantised = tf.clip_by_value(tf.round(kernel / scale), -127.0, 127.0) * scale
                return super().convolution_op(inputs, kernel + tf.stop_gradient(quantised - kernel))

        _QUANT_CONV = QuantConv2D
    return _QUANT_CONV


def build_train_model(pcfg, frames: int, variant: str, input_range: tuple[float, float] | None = None):
    """The Keras training model of `variant` ('float', 'int8_qat' start from the same float graph).

    binary: int8 fake-quantised conv kernels and, with `input_range`, the input fake-quantised to int8 over
    that range (the converter calibrates the same range from the training clips)."""
    keras, tf = _keras()
    x = inputs = keras.Input((frames, pcfg.mels, 1), name="logmel")
    binary = variant == "binary"
    if binary and input_range is not None:
        low, high = (float(v) for v in input_range)
        x = keras.layers.Lambda(lambda v: tf.quantization.fake_quant_with_min_max_args(v, low, high, num_bits=8),
                                name="input_quant")(x)
    for i, channels in enumerate(pcfg.channels):
        conv = quant_conv_class() if binary else keras.layers.Conv2D
        x = conv(channels, 3, padding="same", use_bias=False, name=f"conv{i}")(x)
        x = keras.layers.BatchNormalization(name=f"bn{i}")(x)
        act = (heaviside_layer_class()(pcfg.surrogate_window, name=f"act{i}") if binary
               else keras.layers.ReLU(name=f"act{i}"))
        pool = keras.layers.MaxPool2D(2, name=f"pool{i}")
        # binary_pool_first: max(H(z)) == H(max(z)), the same function (and deploy graph); other gradients
        x = act(pool(x)) if binary and pcfg.binary_pool_first else pool(act(x))
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    x = keras.layers.Dense(pcfg.dense_units, activation="relu", name="dense")(x)
    out = keras.layers.Dense(len(pcfg.targets), name="scores")(x)
    return keras.Model(inputs, out, name=f"quality_{variant}")


def weight_count(model) -> int:
    return int(sum(np.prod(w.shape) for w in model.get_weights()))
