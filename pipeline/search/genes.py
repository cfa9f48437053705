"""The genome: two integer genes per searched layer (an index into the sparsity choices, one into the
clustering choices), decoded into a Candidate, the offline variant it stands for.

The output layer is searched when `search.output_layer` is true: its genes at index 0 (sparsity 0, not
clustered) leave it dense, so "is the output layer compressed too" is part of the same genes.
"""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import dataclass

import numpy as np

from sepipe.search.config import SearchConfig


@dataclass(frozen=True)
class Candidate:
    """Per-layer offline compression: {layer: sparsity} and {layer: levels}, only the layers it changes."""

    sparsity: tuple[tuple[str, float], ...]
    levels: tuple[tuple[str, int], ...]
    label: str = ""                               # references: 'dense int8', 'uniform 0.8'
    base: str = ""                                # the precision plan's 'ptq' variant ('': the dense reference)

    @property
    def key(self) -> str:
        """What identifies the candidate's bytes: the per-layer settings, in layer order (and its plan)."""
        s = ",".join(f"{name}={value!r}" for name, value in self.sparsity)
        c = ",".join(f"{name}={value}" for name, value in self.levels)
        return f"sparsity[{s}] levels[{c}]" + (f" base[{self.base}]" if self.base else "")

    @property
    def id(self) -> str:
        return hashlib.sha256(self.key.encode()).hexdigest()[:12]

    def variant(self, name: str | None = None) -> dict:
        """The `offline` variant of an experiment YAML that rebuilds these bytes (sepipe.compress.kinds.offline)."""
        variant: dict = {"name": name or f"s{self.id[:8]}", "kind": "offline"}
        if self.sparsity:
            variant["layers"] = [f"{layer}={value!r}" for layer, value in self.sparsity]
        if self.levels:
            variant["layer_clusters"] = [f"{layer}={value}" for layer, value in self.levels]
        if self.base:
            variant["base"] = self.base
        return variant


@dataclass(frozen=True)
class Genome:
    layers: tuple[str, ...]
    sparsity: tuple[float, ...]
    clusters: tuple[int, ...]
    plans: tuple[tuple[tuple[str, str], ...], ...] = ((),)    # precision plans; () is the dense int8 model
    output_layers: tuple[str, ...] = ()                         # the family's output layers among `layers`

    @classmethod
    def for_experiment(cls, cfg, search: SearchConfig) -> "Genome":
        from sepipe.models import family_of

        family = family_of(cfg.model)
        layers = list(search.layers) or list(family.compressible_layers(cfg.model))
        if search.output_layer and not search.layers:
            layers += [name for name in family.output_layers(cfg.model) if name not in layers]
        # sorted choices: gene 0 is the mildest (sparsity 0 / not clustered where offered)
        clusters = sorted(search.clusters, key=lambda c: (c != 0, -c))
        plans = tuple(tuple((key, "int16x8") for key, bit in zip(search.precision, bits) if bit)
                      for bits in itertools.product((0, 1), repeat=len(search.precision)))
        outputs = tuple(name for name in family.output_layers(cfg.model) if name in layers)
        return cls(tuple(layers), tuple(sorted(search.sparsity)), tuple(clusters), plans, outputs)

    @property
    def n_var(self) -> int:
        return 2 * len(self.layers) + (len(self.plans) > 1)

    @property
    def upper(self) -> np.ndarray:
        plan = [len(self.plans) - 1] if len(self.plans) > 1 else []
        return np.array([len(self.sparsity) - 1, len(self.clusters) - 1] * len(self.layers) + plan)

    def decode(self, x) -> Candidate:
        x = np.asarray(np.round(x), dtype=int).clip(0, self.upper)
        base = plan_variant(self.plans[x[-1]]) if len(self.plans) > 1 else ""
        sparsity, levels = [], []
        for i, layer in enumerate(self.layers):
            s, c = self.sparsity[x[2 * i]], self.clusters[x[2 * i + 1]]
            if s > 0:
                sparsity.append((layer, float(s)))
            if c > 0:
                levels.append((layer, int(c)))
        return Candidate(tuple(sparsity), tuple(levels), base=base)

    def uniform(self, value: float, layers: tuple[str, ...], levels: int = 0, base: str = "") -> Candidate:
        """A reference: every layer of `layers` at sparsity `value`, clustered to `levels` values (0: not), on
        the dense int8 model or on precision plan `base` ('uniform 0.8 c8 p_rnn16')."""
        label = f"uniform {value:g}" + (f" c{levels}" if levels else "") + (f" {base}" if base else "")
        return Candidate(tuple((layer, float(value)) for layer in layers if value > 0),
                         tuple((layer, int(levels)) for layer in layers if levels), label, base)


def plan_variant(plan: tuple[tuple[str, str], ...]) -> str:
    """The 'ptq' variant name of a precision plan ('' for the dense int8 model): 'p_rnn16', 'p_rnn16_cell_state16'."""
    return "p_" + "_".join(f"{key}16" for key, _ in plan) if plan else ""
