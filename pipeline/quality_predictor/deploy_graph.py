"""The graph that is converted: the trained model with batch normalisation folded into each convolution,
and for `binary` the Heaviside written with ops every int8 toolchain runs.

Folding: kernel' = kernel * gamma / sqrt(var + eps), bias' = beta - mean * gamma / sqrt(var + eps).

Binary: H(z) = [z > 0] becomes ReLU6(z * g_c) fused into CONV_2D, with each output channel's folded kernel and
bias scaled by g_c > 0 (a positive scale keeps the sign of z, so the step is the same) so that in int8 its
requantisation multiplier M = s_in * s_w / s_out is REQUANT_GAIN, just over 255: an accumulator of 1 or
more then saturates to code 127 (6.0), one of 0 or less to code -128 (0.0), a step on the integer
accumulator. (Where the converter's input scale differs from the one assumed here, M moves by a fraction
of a percent and an accumulator of exactly 1 may land a code or two below 127.) A larger M is not closer to
a step and costs headroom: kernels apply M > 1 as a left shift of the int32 accumulator, and XNNPACK
refused to prepare the model when M was about 1e5 (measured; LiteRT's built-in kernels, TFLite Micro and
Vela took it). The maps hold 0 / 6 instead of 0 / 1: the 6 is divided out of the next layer's weights.
So in int8 TFLite a binary activation map is an ordinary int8 tensor, range [0, 6], of which two codes occur.
"""

from __future__ import annotations

import numpy as np

BINARY_LEVEL = 6.0            # the deploy model's "one" (ReLU6's ceiling)
REQUANT_GAIN = 255.5          # M of a binary block's convolution in int8 (see the module docstring)
OUT_SCALE = BINARY_LEVEL / 255.0


def folded_conv(model, i: int) -> tuple[np.ndarray, np.ndarray]:
    """(kernel, bias) of block i's convolution with its batch normalisation folded in (inference form)."""
    kernel = model.get_layer(f"conv{i}").get_weights()[0]
    gamma, beta, mean, var = model.get_layer(f"bn{i}").get_weights()
    eps = model.get_layer(f"bn{i}").epsilon
    scale = gamma / np.sqrt(var + eps)
    return (kernel * scale).astype(np.float32), (beta - mean * scale).astype(np.float32)


def input_scale(input_range: tuple[float, float]) -> float:
    """The int8 scale the converter gives the input calibrated over `input_range` (widened to hold 0)."""
    low, high = min(input_range[0], 0.0), max(input_range[1], 0.0)
    return (high - low) / 255.0


def binary_gain(kernel: np.ndarray, in_scale: float) -> np.ndarray:
    """Per output channel g_c such that the scaled kernel's int8 requantisation multiplier is REQUANT_GAIN."""
    peak = np.maximum(np.abs(kernel).max(axis=(0, 1, 2)), 1e-12)
    return (REQUANT_GAIN * 127.0 * OUT_SCALE / in_scale / peak).astype(np.float32)


def build_deploy_model(pcfg, frames: int, variant: str, trained, input_range: tuple[float, float]):
    """The deploy graph of `variant` ('float' or 'binary') with the trained weights (see the module docstring)."""
    from sepipe.models.keras_backend import keras

    binary = variant == "binary"
    x = inputs = keras.Input((frames, pcfg.mels, 1), name="logmel", batch_size=1)
    weights = []
    for i, channels in enumerate(pcfg.channels):
        kernel, bias = folded_conv(trained, i)
        if binary:
            if i > 0:       # the previous maps hold 0 / 6: the kernel sees 6x its trained input, the bias does not
                kernel = kernel / BINARY_LEVEL
            gain = binary_gain(kernel, input_scale(input_range) if i == 0 else OUT_SCALE)
            kernel, bias = kernel * gain, bias * gain
        x = keras.layers.Conv2D(channels, 3, padding="same", activation="relu6" if binary else "relu",
                                name=f"conv{i}")(x)
        weights.append((f"conv{i}", [kernel, bias]))
        x = keras.layers.MaxPool2D(2, name=f"pool{i}")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    x = keras.layers.Dense(pcfg.dense_units, activation="relu", name="dense")(x)
    out = keras.layers.Dense(len(pcfg.targets), name="scores")(x)
    model = keras.Model(inputs, out, name=f"quality_{variant}_deploy")
    dense_kernel, dense_bias = trained.get_layer("dense").get_weights()
    if binary:
        dense_kernel = dense_kernel / BINARY_LEVEL
    weights += [("dense", [dense_kernel, dense_bias]), ("scores", trained.get_layer("scores").get_weights())]
    for name, values in weights:
        model.get_layer(name).set_weights(values)
    return model
