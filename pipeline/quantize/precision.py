"""Per-layer-group precision of a mixed-precision variant, and which precision each operator runs at.

A variant declares it (`variants[].precision`, a mapping); keys, most specific first:

    a tensor class   cell_state (the LSTM cell-state path: c in, f*c, i*g, c out), for families with c states
    a layer          a layer the family names in its groups (rnn_1, input_dense, mask, ...)
    a layer group    the family's `layer_groups` (input, rnn, dense, output for gru / lstm)
    default          everything else (int8 when left out)

Values: int8, int16x8 (16-bit activations, 8-bit weights: Ethos-U's higher precision), float (left on
the Cortex-M: Vela places it on the CPU and the compile record says so).

No TensorFlow: config loading validates a mapping with `check_precision`; the conversion worker
resolves each operator with `operator_precisions` from the tensor names the converter gave it
(`<model>/<layer>/...`: the Keras layer names the family's groups list).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from sepipe.contract import ModelContract
from sepipe.errors import ConfigError

PRECISIONS = ("int8", "int16x8", "float")
TENSOR_CLASSES = {"cell_state": "c"}       # class -> the state kind whose path it is
DEFAULT = "default"


@dataclass(frozen=True)
class PrecisionPlan:
    """A validated precision mapping, resolved against one model contract."""

    mapping: tuple[tuple[str, str], ...]     # (key, precision), as declared

    @property
    def as_dict(self) -> dict[str, str]:
        return dict(self.mapping)

    def precisions(self) -> set[str]:
        return {p for _, p in self.mapping} | {self.as_dict.get(DEFAULT, "int8")}

    def label(self) -> str:
        """How reports name it: 'input 16x8, rnn int8, ...' (declared order; the default last as 'rest';
        'all 16x8' when only a default is given)."""
        short = {"int8": "int8", "int16x8": "16x8", "float": "float"}
        items = [(k, p) for k, p in self.mapping if k != DEFAULT]
        if not items:
            return f"all {short[self.as_dict.get(DEFAULT, 'int8')]}"
        if DEFAULT in self.as_dict:
            items.append(("rest", self.as_dict.get(DEFAULT, "int8")))
        return ", ".join(f"{k} {short[p]}" for k, p in items)


def precision_label(mapping: Mapping[str, str] | None) -> str | None:
    """The report's label of a precision mapping (None for a uniform variant)."""
    return PrecisionPlan(tuple(mapping.items())).label() if mapping else None


def valid_keys(contract: ModelContract) -> list[str]:
    kinds = {s.kind for s in contract.states}
    classes = [c for c, kind in TENSOR_CLASSES.items() if kind in kinds]
    layers = [layer for _, group in contract.layer_groups for layer in group]
    return [DEFAULT, *[g for g, _ in contract.layer_groups], *layers, *classes]


def check_precision(src: str, option: str, mapping: Mapping, contract: ModelContract) -> PrecisionPlan:
    """The mapping as a PrecisionPlan; ConfigError (one line) for a key the family does not have or a
    precision that does not exist."""
    if not isinstance(mapping, Mapping) or not mapping:
        raise ConfigError(src, option, mapping, "a mapping of layer group to precision, e.g. {rnn: int8, output: int16x8}")
    keys = valid_keys(contract)
    for key, value in mapping.items():
        if key not in keys:
            raise ConfigError(src, f"{option}.{key}", value, f"a key naming a layer group, layer or tensor class of "
                                                            f"the {contract.family or 'model'} family: {', '.join(keys)}")
        if value not in PRECISIONS:
            raise ConfigError(src, f"{option}.{key}", value, f"a precision: {', '.join(PRECISIONS)}")
    return PrecisionPlan(tuple((str(k), str(v)) for k, v in mapping.items()))


def _layer_of(names: list[str], layers: list[str]) -> str | None:
    """The first layer named as `/<layer>/` in the first tensor name that names one."""
    for name in names:
        hits = [(name.find(f"/{layer}/"), layer) for layer in layers if f"/{layer}/" in name]
        if hits:
            return min(hits)[1]
    return None


def operator_precisions(operators: list[tuple[str, list[str], list[str]]], plan: PrecisionPlan,
                        contract: ModelContract, tensor_names: Mapping[str, str] | None = None
                        ) -> tuple[list[str], list[str]]:
    """(precisions, layers): one per operator, from its output names then its input names; an operator
    naming no layer (a state output `StatefulPartitionedCall:k`) belongs to its inputs' layer.
    `tensor_names`: signature name -> tensor name (how the cell-state outputs are found)."""
    mapping = plan.as_dict
    group_of = {layer: group for group, layers in contract.layer_groups for layer in layers}
    layers = list(group_of)
    cell_path = _cell_state_ops(operators, contract, tensor_names or {}) if "cell_state" in mapping else set()
    precisions, owners, last = [], [], None
    for i, (_, ins, outs) in enumerate(operators):
        layer = _layer_of(outs, layers) or _layer_of(ins, layers) or last
        last = layer
        owners.append(layer or "")
        if i in cell_path:
            precisions.append(mapping["cell_state"])
            continue
        for key in (layer, group_of.get(layer), DEFAULT):
            if key in mapping:
                precisions.append(mapping[key])
                break
        else:
            precisions.append("int8")
    return precisions, owners


def _cell_state_ops(operators, contract: ModelContract, tensor_names: Mapping[str, str]) -> set[int]:
    """The LSTM cell-state path: the operator producing each `c` state output (the ADD of f*c and i*g),
    the two MULs feeding it and the gates feeding those (forget f, input i, candidate g). The gates belong
    to it: with |c| in the hundreds, an int8 forget gate (step 1/256) moves c by ~1 per frame, which is
    the int8 LSTM's error; a 16-bit c alone does not remove it (measured: tests/test_mixed_precision.py).
    And the TANH reading c (its int8 input step would be |c|max/128)."""
    wanted = [tensor_names.get(s.output, s.output) for s in contract.states if s.kind == "c"]
    producer = {name: i for i, (_, _, outs) in enumerate(operators) for name in outs}
    path = set()
    for name in wanted:
        if name in producer:
            add = producer[name]
            muls = {producer[x] for x in operators[add][1] if x in producer}
            gates = {producer[x] for m in muls for x in operators[m][1] if x in producer}
            # tanh(c) too: in int8 its input step is |c|max/128 (~2), which flattens tanh for small c
            readers = {i for i, (_, ins, _) in enumerate(operators) if name in ins and operators[i][0] == "TANH"}
            path |= {add} | muls | gates | readers
    return path
