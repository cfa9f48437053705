"""Streaming runners, registered: `float` (Keras), `tflite` (LiteRT) and `tflm` (TFLite Micro).

Every runner has the same interface:
    runner.reset()                            # zero every recurrent state
    mask = runner.run(features)               # (T, bins) float32 -> (T, bins) float32, one Invoke per frame
    mask = runner.run(features, reset=False)  # continue from the states the last call left
    runner.kind, runner.system                # 'tflite', 'int8 TFLite' (the row label evaluation shows)

`run` resets first by default, so each file starts from zero states, like the firmware at
power-up. After every frame each state output is copied back to its input as the model
contract pairs them (sepipe.contract; `<x>_out` -> `<x>` for today's models).

Adding a runner (e.g. a chained runner walking an export graph, or an FVP): a class with that
interface and one `RUNNERS.add(kind, "module:Class")`; targets are imported on first use, so
listing them imports neither TensorFlow nor the interpreters.
"""

from __future__ import annotations

from sepipe.registry import Registry
from sepipe.runtime.arith import dequantize, quantize, requantize, requantize_table, round_half_away  # noqa: F401

RUNNERS: Registry = Registry("runner", key="evaluate.interpreters")
RUNNERS.add("float", "sepipe.runtime.float_runner:KerasStreamingRunner",
            help="the float streaming Keras model (needs streaming_model)")
RUNNERS.add("tflite", "sepipe.runtime.quantized:TFLiteStreamingRunner",
            help="the quantised model in the LiteRT (TFLite) interpreter (needs tflite_bytes)")
RUNNERS.add("tflm", "sepipe.runtime.quantized:TFLMStreamingRunner",
            help="the quantised model in the TFLite Micro interpreter, what firmware ships (needs tflite_bytes)")


def make_runner(kind: str, *, streaming_model=None, tflite_bytes: bytes | None = None, contract=None, **options):
    """A runner of a registered `kind`: each runner class says what it is built from (`needs`:
    'streaming_model' or 'tflite_bytes'); `contract` (sepipe.contract.ModelContract) is passed on."""
    cls = RUNNERS.get(kind)
    source = {"streaming_model": streaming_model, "tflite_bytes": tflite_bytes}[cls.needs]
    if source is None:
        raise ValueError(f"make_runner('{kind}') needs {cls.needs}")
    return cls(source, contract=contract, **options)


def system_label(kind: str, io_dtype: str | None = None) -> str:
    """The label of runner `kind` in evaluation rows ('float32 Keras', 'int8 TFLite', 'int16 TFLite Micro')."""
    return RUNNERS.get(kind).system_label(io_dtype)
