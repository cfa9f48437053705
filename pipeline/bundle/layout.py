"""Names and formulas fixed by the bundle format, shared by building, the README and verification."""

from __future__ import annotations

BUNDLE_FORMAT = "sepipe-bundle/2"   # 2: model.tflite (was int8_tflite), scheme, contract
MANIFEST = "model_manifest.json"
SUMS = "SHA256SUMS"
C_SYMBOL = "se_model"
C_SECTION = "nn_model"
C_ALIGNMENT = 16
C_STEM = "model_data"
C_SOURCE, C_HEADER = f"{C_STEM}.c", f"{C_STEM}.h"
DEFAULT_FRAMES = 300
REQUANTIZE_FORMULA = ("q_in = clamp(roundf(float32(float32(q_out - zp_out) * s_out) / s_in) + zp_in, QMIN, QMAX)"
                      "; roundf rounds half away from zero; every step float32 (pipeline/interpreters.py)")
QUANTIZE_FORMULA = "q = clamp(roundf(float32(x) / float32(scale)) + zero_point, QMIN, QMAX)"
DEQUANTIZE_FORMULA = "x = float32(q - zero_point) * float32(scale)"
