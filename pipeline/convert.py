"""Deprecated import point (kept so callers migrate at their pace): conversion moved to sepipe.quantize.

    sepipe.quantize.convert      convert_quantized (was convert_int8), convert_untrained
    sepipe.quantize.calibration  CalibrationSet, collect_calibration, save_calibration, load_calibration
    sepipe.quantize.model_io     TensorIO, StatePair, ModelIO, tflite_io, read_tflite_bytes,
                                 validate_quantized_model (was validate_int8_model), ModelFormatError
    sepipe.quantize.schemes      SCHEMES (int8, int16x8): the `activations` argument's replacement
"""

from __future__ import annotations

from pathlib import Path

from sepipe.quantize.calibration import (CalibrationSet, collect_calibration, load_calibration,  # noqa: F401
                                         save_calibration)
from sepipe.quantize.convert import TOOL, convert_quantized, convert_untrained as _convert_untrained  # noqa: F401
from sepipe.quantize.model_io import (ModelFormatError, ModelIO, StatePair, TensorIO, read_tflite_bytes,  # noqa: F401
                                      tflite_io, validate_quantized_model)

FEATURES_INPUT = "features"      # today's families' names; new code reads them from the model contract
MASK_OUTPUT = "mask"
INTEGER_IO_TYPES = ("int8", "int16")


def convert_int8(model_cfg, bins: int, weights_path: Path, calibration_path: Path, out_path: Path,
                 timeout_s: float = 600, activations: str = "int8") -> Path:
    """Deprecated: `convert_quantized(..., scheme=...)` ('int16' activations are the scheme 'int16x8')."""
    return convert_quantized(model_cfg, bins, weights_path, calibration_path, out_path, scheme=activations,
                             timeout_s=timeout_s)


def convert_untrained(model_cfg, bins: int, out_path: Path, seed: int = 0, frames: int = 64,
                      activations: str = "int8", scheme: str | None = None) -> Path:
    """`sepipe.quantize.convert.convert_untrained`, also taking the legacy `activations` argument."""
    return _convert_untrained(model_cfg, bins, out_path, seed=seed, frames=frames, scheme=scheme or activations)


validate_int8_model = validate_quantized_model
