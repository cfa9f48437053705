"""Deprecated import point (kept so callers migrate at their pace): the runners moved to sepipe.runtime.

    sepipe.runtime               RUNNERS (float, tflite, tflm), make_runner, system_label
    sepipe.runtime.arith         round_half_away, quantize, dequantize, requantize, requantize_table
    sepipe.runtime.float_runner  KerasStreamingRunner
    sepipe.runtime.quantized     QuantizedRunner (was _Int8Runner), TFLiteStreamingRunner, TFLMStreamingRunner
"""

from __future__ import annotations

from sepipe.runtime import RUNNERS, make_runner  # noqa: F401
from sepipe.runtime.arith import (dequantize, quantize, requantize, requantize_table,  # noqa: F401
                                  round_half_away)


def __getattr__(name: str):
    # the runner classes import their interpreters' modules lazily; so does this facade
    if name == "KerasStreamingRunner":
        from sepipe.runtime.float_runner import KerasStreamingRunner
        return KerasStreamingRunner
    if name in ("QuantizedRunner", "TFLiteStreamingRunner", "TFLMStreamingRunner", "StateFeedback"):
        from sepipe.runtime import quantized
        return getattr(quantized, name)
    if name == "RUNNER_KINDS":
        return tuple(RUNNERS.names())
    raise AttributeError(f"module 'sepipe.interpreters' has no attribute '{name}'")
