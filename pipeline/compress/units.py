"""Structured (unit) pruning: remove whole Dense neurons and whole GRU/LSTM units, ending in a
physically narrower model (a smaller ModelConfig), so MACs, weights and recurrent states all shrink.

Units of a recurrent layer: unit j owns column j of every gate block of the kernel and the recurrent
kernel (Keras layout: GRU [z | r | h], LSTM [i | f | c | o], each `units` wide), the same columns of the
bias (GRU reset_after bias is (2, 3*units)), row j of the recurrent kernel (its state feeding every
gate) and row j of the next layer's kernel. A Dense neuron owns its kernel column and bias entry and
the next layer's kernel row.

Layers and widths come from the model family (`family_of(cfg)`): its `layer_groups`, in order, form a
chain (each layer feeds the next); a model config has one width per group (`group_width`,
`with_group_widths`), so units are removed group-wise, the same number from every layer of a group
(mask_rnn: 'input', 'rnn' (every recurrent layer), 'dense'). The output heads (`output_layers`, the
`mask`) are never narrowed: their units are the frequency bins. A layer with three weight arrays
(kernel, recurrent kernel, bias) is recurrent, its kernel columns in `gates(cfg, layer)` blocks.

Criterion ('activation', default): score_j = mean |a_j| x ||w_out_j||_2, where a_j is the unit's output
(hidden state h for RNNs) over batches of training features and w_out_j is every weight that carries it
onward (the next layer's kernel row, plus the own recurrent-kernel row for RNNs): a first-order estimate
of how much signal the unit passes on. 'l2' ranks by the L2 norm of all the unit's weights (in + out),
data-free. Lowest scores go first; ranking is within each layer and is redone at every stage.

Removal is gradual: K = min(4, steps) stages at steps floor((k-1) * E / K), E = ceil(0.7 * steps); after
stage k the fraction removed is sparsity * (1 - (1 - k/K)^3) (TFMOT's cubic ramp), and each stage
rebuilds the narrower model (weight surgery) and fine-tuning continues on it with a fresh optimizer.
"""

from __future__ import annotations

import math

import numpy as np

from sepipe.models.keras_backend import keras
from sepipe.models import family_of
from sepipe.config import ModelConfig


def layer_order(cfg: ModelConfig) -> list[str]:
    """Every layer of the family's layer groups, in order: each feeds the next (a chain)."""
    return [name for names in family_of(cfg).layer_groups(cfg).values() for name in names]


def groups(cfg: ModelConfig) -> dict[str, list[str]]:
    """The groups unit pruning can narrow: every layer group but the output heads'."""
    family = family_of(cfg)
    heads = set(family.output_layers(cfg))
    return {group: list(names) for group, names in family.layer_groups(cfg).items() if not heads & set(names)}


def group_of(cfg: ModelConfig, layer: str) -> str | None:
    for group, names in groups(cfg).items():
        if layer in names:
            return group
    return None


def width(cfg: ModelConfig, layer: str) -> int:
    """Units of a narrowable layer (its group's width); 0 for an output head."""
    group = group_of(cfg, layer)
    return family_of(cfg).group_width(cfg, group) if group else 0


def widths(cfg: ModelConfig) -> dict[str, int]:
    """{group: width} of every narrowable group."""
    return {group: family_of(cfg).group_width(cfg, group) for group in groups(cfg)}


def _recurrent(arrays) -> bool:
    return len(arrays) == 3     # kernel, recurrent kernel, bias (a Dense layer: kernel, bias)


# ------------------------------------------------------------------------------------ surgery
def narrow(cfg: ModelConfig, weights: dict[str, list[np.ndarray]], keep: dict[str, np.ndarray]
           ) -> tuple[ModelConfig, dict[str, list[np.ndarray]]]:
    """Remove every unit not in `keep[layer]` (sorted kept indices; a layer absent from `keep` keeps all).

    weights: {layer: layer.get_weights()} of the sequence (or streaming) model of `cfg`.
    Returns the narrower ModelConfig and its weights, same layout.
    """
    family = family_of(cfg)
    new_widths = {}
    for group, names in groups(cfg).items():
        counts = {len(keep[n]) if n in keep else width(cfg, n) for n in names}
        if len(counts) != 1:
            raise ValueError(f"unit pruning must leave every layer of group '{group}' ({names}) equally wide "
                             f"(the model config has one width per group), got {sorted(counts)}")
        new_widths[group] = counts.pop()
    new_cfg = family.with_group_widths(cfg, new_widths)
    out: dict[str, list[np.ndarray]] = {}
    prev_keep = None   # kept input features of the current layer (None: all)
    for name in layer_order(cfg):
        arrays = [np.asarray(a) for a in weights[name]]
        n_gates = family.gates(cfg, name)
        narrowable = group_of(cfg, name) is not None
        units = width(cfg, name) if narrowable else arrays[0].shape[-1] // n_gates
        kept = np.asarray(keep.get(name, np.arange(units)), np.int64)
        cols = np.concatenate([g * units + kept for g in range(n_gates)])
        kernel = arrays[0] if prev_keep is None else arrays[0][prev_keep]
        new = [kernel[:, cols]]
        if _recurrent(arrays):   # recurrent kernel (units, gates*units), then bias
            new.append(arrays[1][kept][:, cols])
            new.append(arrays[2][..., cols])
        else:
            new.append(arrays[1][cols])
        out[name] = [np.ascontiguousarray(a) for a in new]
        prev_keep = kept if narrowable else None
    return new_cfg, out


def model_weights(model, cfg: ModelConfig) -> dict[str, list[np.ndarray]]:
    return {name: model.get_layer(name).get_weights() for name in layer_order(cfg)}


def build_with_weights(cfg: ModelConfig, bins: int, weights: dict[str, list[np.ndarray]]):
    model = family_of(cfg).build_sequence(cfg, bins)
    for name, arrays in weights.items():
        model.get_layer(name).set_weights(arrays)
    return model


# ------------------------------------------------------------------------------------ criterion
def _outgoing_norms(cfg: ModelConfig, weights: dict[str, list[np.ndarray]], name: str) -> np.ndarray:
    order = layer_order(cfg)
    nxt = order[order.index(name) + 1]
    parts = [weights[nxt][0]]                       # next layer's kernel: rows are this layer's units
    if _recurrent(weights[name]):
        parts.append(weights[name][1])              # own recurrent kernel rows
    return np.sqrt(sum(np.sum(p.astype(np.float64) ** 2, axis=1) for p in parts))


def _all_weight_norms(cfg: ModelConfig, weights: dict[str, list[np.ndarray]], name: str) -> np.ndarray:
    units, n_gates = width(cfg, name), family_of(cfg).gates(cfg, name)
    arrays = weights[name]
    incoming = sum(np.sum(a.reshape(-1, n_gates, units).astype(np.float64) ** 2, axis=(0, 1))
                   for a in arrays[:2 if _recurrent(arrays) else 1])
    return np.sqrt(incoming + _outgoing_norms(cfg, weights, name) ** 2)


def unit_scores(model, cfg: ModelConfig, layers: list[str], feature_batches: list[np.ndarray],
                criterion: str = "activation") -> dict[str, np.ndarray]:
    """Importance of every unit of each layer in `layers` (higher = keep)."""
    weights = model_weights(model, cfg)
    if criterion == "l2":
        return {name: _all_weight_norms(cfg, weights, name) for name in layers}
    if criterion != "activation":
        raise ValueError(f"unknown unit criterion {criterion!r} (allowed: 'activation', 'l2')")
    probe = keras.Model(model.inputs, [model.get_layer(name).output for name in layers])
    sums = {name: 0.0 for name in layers}
    count = 0
    for batch in feature_batches:
        outputs = probe(batch, training=False)
        outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
        for name, out in zip(layers, outputs):
            sums[name] = sums[name] + np.abs(np.asarray(out)).reshape(-1, out.shape[-1]).sum(axis=0)
        count += int(np.prod(batch.shape[:-1]))
    return {name: (sums[name] / max(count, 1)) * _outgoing_norms(cfg, weights, name) for name in layers}


def choose_keep(scores: dict[str, np.ndarray], remove: int) -> dict[str, np.ndarray]:
    """Per layer, the sorted indices of all but the `remove` lowest-scoring units (ties: lower index goes)."""
    keep = {}
    for name, score in scores.items():
        order = np.argsort(score, kind="stable")
        keep[name] = np.sort(order[remove:])
    return keep


# ------------------------------------------------------------------------------------ schedule
def stages(steps: int, sparsity: float, units: int) -> list[tuple[int, int]]:
    """[(step, total units removed per layer after this stage)], monotone, never all units."""
    if steps <= 0:
        return [(0, min(units - 1, int(round(sparsity * units))))]
    count = min(4, steps)
    end = math.ceil(0.7 * steps)
    out = []
    for k in range(1, count + 1):
        removed = min(units - 1, int(round(sparsity * (1 - (1 - k / count) ** 3) * units)))
        out.append(((k - 1) * end // count, removed))
    return out


def selected_groups(cfg: ModelConfig, layers: tuple[str, ...]) -> list[str]:
    """Groups to narrow: every group by default; named layers must cover whole groups."""
    all_groups = groups(cfg)
    if not layers:
        return list(all_groups)
    chosen = []
    for group, names in all_groups.items():
        named = [n for n in names if n in layers]
        if named and len(named) != len(names):
            raise ValueError(f"unit pruning narrows whole groups (one width per group in ModelConfig): "
                             f"name all of {names} or none of them, not {named}")
        if named:
            chosen.append(group)
    unknown = [n for n in layers if group_of(cfg, n) is None]
    if unknown:
        raise ValueError(f"unit pruning cannot narrow {unknown}: layers that can be narrowed are "
                         f"{[n for ns in all_groups.values() for n in ns]} (the output "
                         f"{family_of(cfg).output_layers(cfg)} never)")
    return chosen


def prune_units(model, cfg: ModelConfig, bins: int, session, sparsity: float, steps: int,
                layers: tuple[str, ...] = (), criterion: str = "activation", ranking_batches: int = 2):
    """Gradual unit pruning with fine-tuning (`steps` steps of `session`); returns (model, cfg, record)."""
    chosen = selected_groups(cfg, layers)
    plans = {group: stages(steps, sparsity, widths(cfg)[group]) for group in chosen}
    stage_steps = sorted({step for plan in plans.values() for step, _ in plan})
    removed = {group: 0 for group in chosen}
    record = {"criterion": criterion, "groups": chosen, "stages": [],
              "widths_before": widths(cfg)}
    done = 0
    for i, at in enumerate(stage_steps):
        session.train(model, at - done, phase="unit")
        done = at
        targets = {g: max([r for s, r in plans[g] if s <= at], default=0) for g in chosen}
        extra = {g: targets[g] - removed[g] for g in chosen if targets[g] > removed[g]}
        if extra:
            names = [n for g in extra for n in groups(cfg)[g]]
            scores = unit_scores(model, cfg, names, session.feature_batches(ranking_batches, seed=i), criterion)
            keep = {}
            for g, count in extra.items():
                keep.update(choose_keep({n: scores[n] for n in groups(cfg)[g]}, count))
            cfg, new_weights = narrow(cfg, model_weights(model, cfg), keep)
            model = build_with_weights(cfg, bins, new_weights)
            removed.update({g: targets[g] for g in extra})
            record["stages"].append({"step": at, "removed": dict(extra),
                                     "widths": widths(cfg)})
    session.train(model, steps - done, phase="unit")
    record["widths_after"] = widths(cfg)
    return model, cfg, record
