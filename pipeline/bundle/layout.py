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
DESC_SOURCE = "model_desc.c"          # the model's const se_model_desc_t (firmware_stub/se_model_desc.h)
OPS_SOURCE, OPS_HEADER = "model_ops.cc", "model_ops.h"   # its TFLite Micro op resolvers
DEFAULT_FRAMES = 300
REQUANTIZE_FORMULA = ("q_in = clamp(roundf(float32(float32(q_out - zp_out) * s_out) / s_in) + zp_in, QMIN, QMAX)"
                      "; roundf rounds half away from zero; every step float32 (pipeline/interpreters.py)")
QUANTIZE_FORMULA = "q = clamp(roundf(float32(x) / float32(scale)) + zero_point, QMIN, QMAX)"
DEQUANTIZE_FORMULA = "x = float32(q - zero_point) * float32(scale)"

# Bounds an untrusted bundle is checked against before anything is allocated (sepipe.bundle.spec), and
# that `sepipe bundle --frames` accepts. The arena ceiling is the arena search's own (sepipe.bundle.arena):
# a model that needs more is refused when bundled, so a manifest asking for more was not written by it.
ARENA_MIN_BYTES = 1024
ARENA_MAX_BYTES = 1 << 28
MAX_FRAMES = 10_000             # golden frames: 160 s at a 16 ms hop; 10 MB of features at 257 bins
