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


def evaluate(interpreters: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """The tools of the runners a variant is streamed through (each registered runner declares its
    own: sepipe.runtime), plus the audio metrics."""
    from sepipe.runtime import RUNNERS

    tools = [tool for kind in interpreters for tool in RUNNERS.get(kind).tools] + list(METRICS)
    return tuple(dict.fromkeys(tools))
