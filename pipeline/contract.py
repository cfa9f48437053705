"""The model contract: what a streaming model takes and returns, declared once and read by every consumer.

A model family declares it (`family.contract(cfg, bins)`); conversion, calibration, the runners,
golden vectors, the C header, the bundle manifest and evaluation read it instead of hard-coded
tensor names. A model from outside the project (no family) gets one inferred from its tensors by
the naming rule this project has always used: output `<x>_out` is fed back to input `<x>`; the one
input left over is the feature input, the outputs left over are the heads.

No TensorFlow here: configs, the light install and `sepipe compile` import this module.

    contract = family.contract(cfg, bins)
    contract.feature.name, contract.feature.size          # 'features', 257
    contract.heads[0]                                     # OutputHead('mask', 257, (0.0, 1.0))
    [(s.input, s.output, s.units, s.kind) for s in contract.states]
    contract.problem_with(io)                             # None, or what a .tflite's tensors break
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

STATE_OUTPUT_SUFFIX = "_out"     # the naming rule of inferred contracts: `<x>_out` feeds `<x>`


@dataclass(frozen=True)
class FeatureInput:
    """The per-frame feature vector (float before quantisation)."""

    name: str
    size: int


@dataclass(frozen=True)
class OutputHead:
    """One output the caller consumes (today: the mask, one gain per bin in [0, 1])."""

    name: str
    size: int
    range: tuple[float, float] | None = (0.0, 1.0)   # None: unknown (inferred contracts)
    role: str = "mask"                               # what the caller does with it


@dataclass(frozen=True)
class StateSpec:
    """One recurrent state: returned as `output`, fed back as `input` before the next frame."""

    input: str
    output: str
    units: int
    kind: str = "h"          # "h" (hidden) or "c" (LSTM cell); "" when inferred
    layer: str = ""          # the layer that owns it ("" when inferred)

    # the names the old models.StateSpec had (layer, kind, units, input_name, output_name)
    @property
    def input_name(self) -> str:
        return self.input

    @property
    def output_name(self) -> str:
        return self.output


@dataclass(frozen=True)
class ModelContract:
    """Inputs (the feature vector and every state), output heads, state pairs and layer groups of one
    streaming model (one segment of an export graph)."""

    feature: FeatureInput
    heads: tuple[OutputHead, ...]
    states: tuple[StateSpec, ...] = ()
    layer_groups: tuple[tuple[str, tuple[str, ...]], ...] = ()   # ((group, (layer, ...)), ...) in order
    family: str | None = None                                      # None: inferred from a .tflite

    def __post_init__(self) -> None:
        if not self.heads:
            raise ValueError("a model contract needs at least one output head")
        names = self.input_names + self.output_names
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise ValueError(f"tensor names used twice in a model contract: {duplicated}")

    @property
    def head(self) -> OutputHead:
        """The primary head (the first): what the evaluation and the firmware's SE_MASK use."""
        return self.heads[0]

    @property
    def input_names(self) -> tuple[str, ...]:
        return (self.feature.name, *(s.input for s in self.states))

    @property
    def output_names(self) -> tuple[str, ...]:
        return (*(h.name for h in self.heads), *(s.output for s in self.states))

    @property
    def input_sizes(self) -> dict[str, int]:
        return {self.feature.name: self.feature.size, **{s.input: s.units for s in self.states}}

    @property
    def groups(self) -> dict[str, tuple[str, ...]]:
        return dict(self.layer_groups)

    def state_for_input(self, name: str) -> StateSpec | None:
        return next((s for s in self.states if s.input == name), None)

    def problem_with(self, io) -> str | None:
        """What a model's tensors (a ModelIO, or anything with `.inputs`/`.outputs` of named tensors
        with `.shape`) break of this contract; None when they match by name and size."""
        sizes_in = {t.name: _size(t.shape) for t in io.inputs}
        sizes_out = {t.name: _size(t.shape) for t in io.outputs}
        if self.feature.name not in sizes_in:
            return f"no input named '{self.feature.name}' (inputs: {sorted(sizes_in)})"
        for head in self.heads:
            if head.name not in sizes_out:
                return f"no output named '{head.name}' (outputs: {sorted(sizes_out)})"
        for state in self.states:
            if state.input not in sizes_in:
                return f"no state input '{state.input}' (inputs: {sorted(sizes_in)})"
            if state.output not in sizes_out:
                return f"state input '{state.input}' has no output '{state.output}' to feed it back"
        for name in sorted(set(sizes_in) - set(self.input_names)):
            return f"input '{name}' is neither the feature input '{self.feature.name}' nor a state input"
        for name in sorted(set(sizes_out) - set(self.output_names)):
            return (f"output '{name}' is neither a head ({[h.name for h in self.heads]}) nor a state output "
                    f"'<input>{STATE_OUTPUT_SUFFIX}'")
        wanted = {self.feature.name: self.feature.size, **{h.name: h.size for h in self.heads}}
        for name, size in wanted.items():
            got = sizes_in.get(name, sizes_out.get(name))
            if got != size:
                return f"'{name}' has {got} values, the contract {size}"
        for state in self.states:
            if sizes_in[state.input] != sizes_out[state.output]:
                return (f"state '{state.input}' has {sizes_in[state.input]} values in and "
                        f"{sizes_out[state.output]} out")
            if state.units and sizes_in[state.input] != state.units:
                return f"state '{state.input}' has {sizes_in[state.input]} values, the contract {state.units}"
        return None

    def to_dict(self) -> dict[str, Any]:
        return {"family": self.family,
                "feature": {"name": self.feature.name, "size": self.feature.size},
                "heads": [{"name": h.name, "size": h.size, "range": list(h.range) if h.range else None,
                           "role": h.role} for h in self.heads],
                "states": [{"input": s.input, "output": s.output, "units": s.units, "kind": s.kind, "layer": s.layer}
                           for s in self.states],
                "layer_groups": {group: list(layers) for group, layers in self.layer_groups}}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelContract:
        return cls(feature=FeatureInput(**data["feature"]),
                   heads=tuple(OutputHead(h["name"], h["size"], tuple(h["range"]) if h.get("range") else None,
                                          h.get("role", "mask")) for h in data["heads"]),
                   states=tuple(StateSpec(**s) for s in data.get("states", ())),
                   layer_groups=tuple((g, tuple(ls)) for g, ls in data.get("layer_groups", {}).items()),
                   family=data.get("family"))


def _size(shape: Iterable[int]) -> int:
    size = 1
    for dim in shape:
        size *= int(dim)
    return size


def infer_contract(inputs: dict[str, tuple[int, ...]], outputs: dict[str, tuple[int, ...]]) -> ModelContract:
    """The contract of a model from outside the project, from its tensor names and shapes (in the
    model's order): output `<x>_out` feeds input `<x>`; the one input left is the feature input,
    the outputs left are the heads (range unknown). ValueError when no single feature input is left."""
    states = tuple(StateSpec(input=name[: -len(STATE_OUTPUT_SUFFIX)], output=name,
                             units=_size(outputs[name]))
                   for name in outputs
                   if name.endswith(STATE_OUTPUT_SUFFIX) and name[: -len(STATE_OUTPUT_SUFFIX)] in inputs)
    states = tuple(sorted(states, key=lambda s: s.input))
    paired_in, paired_out = {s.input for s in states}, {s.output for s in states}
    features = [n for n in inputs if n not in paired_in]
    heads = [n for n in outputs if n not in paired_out]
    if len(features) != 1:
        raise ValueError(f"cannot tell the feature input: {len(features)} inputs {features} have no output "
                         f"'<input>{STATE_OUTPUT_SUFFIX}' feeding them back (exactly one must be left)")
    if not heads:
        raise ValueError("no output head: every output is a state output '<input>_out'")
    return ModelContract(feature=FeatureInput(features[0], _size(inputs[features[0]])),
                         heads=tuple(OutputHead(n, _size(outputs[n]), None if n != "mask" else (0.0, 1.0),
                                                "mask" if n == "mask" else "output") for n in heads),
                         states=states)


@dataclass(frozen=True)
class Segment:
    """One `.tflite` of an export graph with its own contract."""

    name: str
    contract: ModelContract


@dataclass(frozen=True)
class ExportGraph:
    """What a model exports: one or more segments (several heads, or chained segments).
    Today's models are one-segment graphs (`ExportGraph.single(contract)`)."""

    segments: tuple[Segment, ...]
    links: tuple[tuple[str, str, str, str], ...] = field(default=())  # (from segment, output, to segment, input)

    @classmethod
    def single(cls, contract: ModelContract, name: str = "model") -> ExportGraph:
        return cls((Segment(name, contract),))

    @property
    def is_single(self) -> bool:
        return len(self.segments) == 1

    @property
    def contract(self) -> ModelContract:
        """The contract of a one-segment graph (ValueError for a chained one: ask per segment)."""
        if not self.is_single:
            raise ValueError(f"export graph has {len(self.segments)} segments; take each segment's contract")
        return self.segments[0].contract

    def segment(self, name: str) -> Segment:
        for segment in self.segments:
            if segment.name == name:
                return segment
        raise KeyError(f"export graph has no segment '{name}' (has {[s.name for s in self.segments]})")
