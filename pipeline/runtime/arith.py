"""Integer arithmetic shared with the firmware (firmware_stub/se_quant.c mirrors these exactly):

    quantize(x)   = clamp(round_half_away(float32(x) / float32(scale)) + zero_point, QMIN, QMAX)
    dequantize(q) = float32(q - zero_point) * float32(scale)
    requantize(q) = quantize(dequantize(q; in), out)

QMIN/QMAX are -128/127 for int8 models and -32768/32767 for 16x8 models (int16 activations and
I/O, int8 weights). Rounding is half AWAY from zero, i.e. C `roundf()` / TFLite's `TfLiteRound`,
NOT numpy's `np.round` (half to even); every step is float32 like the C code.
"""

from __future__ import annotations

import numpy as np


def round_half_away(x: np.ndarray) -> np.ndarray:
    """Round to nearest, ties away from zero (C roundf), exactly for float32 input; returns float64."""
    x = np.asarray(x, dtype=np.float32).astype(np.float64)  # float32 + 0.5 is exact in float64
    return np.copysign(np.floor(np.abs(x) + 0.5), x)


def quantize(x: np.ndarray, scale: float, zero_point: int, dtype=np.int8) -> np.ndarray:
    """float -> int8 (or int16): clamp(roundf(float32(x) / float32(scale)) + zero_point, QMIN, QMAX)."""
    info = np.iinfo(dtype)
    scaled = np.asarray(x, dtype=np.float32) / np.float32(scale)
    q = round_half_away(scaled) + int(zero_point)
    return np.clip(q, info.min, info.max).astype(dtype)


def dequantize(q: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """int8/int16 -> float32: float32(q - zero_point) * float32(scale)."""
    return (np.asarray(q, dtype=np.int32) - int(zero_point)).astype(np.float32) * np.float32(scale)


def requantize(q: np.ndarray, in_scale: float, in_zero_point: int, out_scale: float, out_zero_point: int,
               dtype=np.int8) -> np.ndarray:
    """Integer with (in_scale, in_zero_point) -> `dtype` with (out_scale, out_zero_point), through float32."""
    return quantize(dequantize(q, in_scale, in_zero_point), out_scale, out_zero_point, dtype)


def requantize_table(in_scale: float, in_zero_point: int, out_scale: float, out_zero_point: int) -> np.ndarray:
    """256-entry int8 table: table[q + 128] == requantize(q, ...) for every int8 q."""
    return requantize(np.arange(-128, 128, dtype=np.int32), in_scale, in_zero_point, out_scale, out_zero_point)


def check_features(features: np.ndarray, bins: int) -> np.ndarray:
    features = np.ascontiguousarray(features, dtype=np.float32)
    if features.ndim != 2 or features.shape[1] != bins:
        raise ValueError(f"features must be (frames, {bins}), got {features.shape}")
    return features
