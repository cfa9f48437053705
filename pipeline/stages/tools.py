"""The tools (distribution names) each stage's result depends on: only these enter its fingerprint.

A tool listed here that changes redoes that stage and those whose inputs then change; a new
`pesq` re-scores, it does not retrain. The run manifest still lists every tracked tool.
"""

from __future__ import annotations

KERAS = ("tensorflow", "tf-keras", "numpy")
METRICS = ("numpy", "pesq", "pystoi", "speechmos", "onnxruntime")

TRAIN = KERAS
FINETUNE = KERAS + ("tensorflow-model-optimization",)
CONVERT = ("tensorflow", "tf-keras", "ai-edge-litert", "numpy")
CONVERT_OFFLINE = ("ai-edge-litert", "numpy")      # prunes the int8 flatbuffer in place (no TF)
COMPILE = ("ethos-u-vela",)
REFERENCES = METRICS + ("pyrnnoise", "soxr")
INTERPRETER = {"float": ("tensorflow", "tf-keras"), "tflite": ("ai-edge-litert",), "tflm": ("tflite-micro",)}


def evaluate(interpreters: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """The interpreters a variant is streamed through, plus the audio metrics."""
    tools = [tool for kind in interpreters for tool in INTERPRETER[kind]] + list(METRICS)
    return tuple(dict.fromkeys(tools))
