"""Quantization schemes, registered: what a full-integer conversion makes and how its states feed back.

A scheme owns the converter settings (supported op set, inference input/output type), the I/O dtype
and its range, the state requantisation rule, and the names it goes by in configs and records.

    int8      int8 weights, int8 activations and I/O; a state whose output and input quantisation differ
              is requantised through a 256-entry table (exact, and the fastest form)
    int16x8   TFLite's 16x8 mode: int8 weights, int16 activations and I/O; requantised with the float32
              formula itself (a table would need 65536 entries)

    mixed     per-layer-group precision (int8, int16x8 or float per group, `variants[].precision`): the
              int8 and 16x8 (and float) conversions spliced into one graph with QUANTIZE/DEQUANTIZE
              operators at the boundaries (sepipe.quantize.splice); each input and output has its own
              type, each state is fed back by the rule of its own type

Adding a scheme: a `QuantScheme` instance (or subclass for another converter
setup / state rule) and one `SCHEMES.add(...)`. No TensorFlow at import: `converter_settings` takes
the `tf` module from the conversion worker.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sepipe.registry import Registry

SCHEMES: Registry = Registry("quantization scheme", key="convert.scheme")


@dataclass(frozen=True)
class QuantScheme:
    name: str                 # registry and record name: 'int8', 'int16x8'
    activations: str          # the legacy `convert.activations` value: 'int8', 'int16'
    io_dtype: str             # every input and output: 'int8', 'int16'
    op_set: str               # tf.lite.OpsSet member the converter is restricted to
    state_rule: str           # 'table' (256 entries) or 'formula' (float32 requantize per value)
    label: str                # how reports and READMEs say it: 'int8', '16x8'
    description: str = ""

    @property
    def qmin(self) -> int:
        return int(np.iinfo(np.dtype(self.io_dtype)).min)

    @property
    def qmax(self) -> int:
        return int(np.iinfo(np.dtype(self.io_dtype)).max)

    def converter_settings(self, tf) -> dict:
        """{'supported_ops': [...], 'inference_input_type': ..., 'inference_output_type': ...}."""
        io_type = getattr(tf, self.io_dtype)
        return {"supported_ops": [getattr(tf.lite.OpsSet, self.op_set)],
                "inference_input_type": io_type, "inference_output_type": io_type}

    def record(self) -> dict:
        """What convert summaries and manifests say of the scheme."""
        return {"scheme": self.name, "io_dtype": self.io_dtype, "weights": "int8", "activations": self.io_dtype}


@dataclass(frozen=True)
class MixedScheme(QuantScheme):
    """Per-operator precision: no single converter setting or I/O type (`parts` are the schemes spliced)."""

    mixed: bool = True
    parts: tuple[str, ...] = ("int8", "int16x8")

    def converter_settings(self, tf) -> dict:
        raise TypeError("the mixed scheme converts once per precision (sepipe.quantize.worker)")

    def record(self) -> dict:
        return {"scheme": self.name, "io_dtype": self.io_dtype, "weights": "int8", "activations": "per layer group"}


INT8 = QuantScheme("int8", "int8", "int8", "TFLITE_BUILTINS_INT8", "table", "int8",
                   "int8 weights, int8 activations and I/O")
INT16X8 = QuantScheme("int16x8", "int16", "int16", "EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8",
                      "formula", "16x8", "int8 weights, int16 activations and I/O (TFLite's 16x8 mode)")
SCHEMES.add(INT8.name, INT8, help=INT8.description)
SCHEMES.add(INT16X8.name, INT16X8, help=INT16X8.description)
MIXED = MixedScheme("mixed", "mixed", "mixed", "", "per tensor", "mixed",
                    "per-layer-group int8 / 16x8 / float (variants[].precision), one graph")
SCHEMES.add(MIXED.name, MIXED, help=MIXED.description)


def get_scheme(name_or_scheme: str | QuantScheme) -> QuantScheme:
    """A scheme by its registered name; the legacy `activations` values ('int16') are accepted too."""
    if isinstance(name_or_scheme, QuantScheme):
        return name_or_scheme
    if name_or_scheme in SCHEMES:
        return SCHEMES.get(name_or_scheme)
    return scheme_for_activations(name_or_scheme)


def scheme_for_activations(activations: str) -> QuantScheme:
    for entry in SCHEMES:
        if entry.target.activations == activations:
            return entry.target
    return SCHEMES.get(activations)   # ConfigError listing the registered names


def scheme_for_io_dtype(io_dtype: str) -> QuantScheme | None:
    """The scheme whose models have this I/O dtype (None for a type no scheme makes)."""
    return next((e.target for e in SCHEMES if e.target.io_dtype == io_dtype), None)


def is_mixed(scheme) -> bool:
    return bool(getattr(scheme, "mixed", False))


INTEGER_IO_TYPES = tuple(dict.fromkeys(e.target.io_dtype for e in SCHEMES if not is_mixed(e.target)))   # int8, int16
