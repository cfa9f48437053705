"""Deployment on Ethos-U: compile with Vela and keep what it measured.

Modules: `compile` (orchestration: artifacts, CPU fallback, records), `vela` (the subprocess, its command
line and parsing its output), `figures` (VelaFigures and CompileRecord: the typed record and its on-disk
form), `tflite_info` (the flatbuffer checked before Vela sees it), `cache` (Vela results kept per model
bytes, target, Vela version and options, so no model is compiled twice). None imports TensorFlow, matplotlib or
the audio stack: `pip install sepipe` runs `sepipe compile` and `sepipe budget check` with Vela only.
"""
