"""Early-exit nsNet2 (the `nsnet2_exits` family): one model, a mask head at several depths.

    features -> input_dense (fc_units) -> rnn_1 (GRU) -> rnn_2 (GRU) -> dense_1 -> dense_2 -> mask (sigmoid)
                                            |              |              |
                                         exit 1         exit 2         exit 3          (default `exits`)

Every exit is a full enhancer: a sigmoid mask over the same bins, so a device that stops after exit n
still enhances. The final head `mask` is the last exit (n = len(exits) + 1). With `split_flow` (the
Dynamic nsNet2 arrangement) an early head reads its own ancillary Dense (`exit<k>_dense`, relu) before its
sigmoid, so the loss at an early exit does not force the trunk's features themselves to be a mask;
without it the head is a Dense(bins, sigmoid) straight on the trunk (plain multi-exit).

`deploy_exit: n` (set by the `exit` variant kind, sepipe.compress.kinds.exit) makes the streaming
model and contract those of exit n alone: the trunk up to its position, its head renamed `mask`, and
only the states of the recurrent layers it holds. The sequence model is always the whole joint model,
so the joint weights load into it and move to the truncated streaming model by layer name.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

from sepipe.config import ModelConfig
from sepipe.contract import FeatureInput, ModelContract, OutputHead, StateSpec
from sepipe.errors import ConfigError, check
from sepipe.models.base import ModelFamily, TrainingPhase

FEATURES_INPUT, MASK_OUTPUT = "features", "mask"
TRUNK = ("input_dense", "rnn_1", "rnn_2", "dense_1", "dense_2")
RECURRENT = ("rnn_1", "rnn_2")
EXIT_POSITIONS = TRUNK[:-1]          # an exit after dense_2 is the final head
GROUP_FIELDS = {"input": "fc_units", "rnn": "rnn_units", "dense": "dense_units"}


@dataclass(frozen=True)
class Nsnet2ExitsConfig(ModelConfig):
    """nsNet2's own sizes by default (FC 400, GRU 400 x 2, FC 600 x 2)."""

    fc_units: int = 400
    rnn_units: int = 400
    dense_units: int = 600
    exits: tuple[str, ...] = ("rnn_1", "rnn_2", "dense_1")   # trunk layers an early head reads, in order
    split_flow: bool = True
    exit_units: int = 0                  # a split-flow head's ancillary Dense (0: the width of what it reads)
    # loss weight per exit, earliest first, the final head last (empty: 1 each). Here, not in `train:`,
    # because how many there are is the model's business: checked against `exits` when the YAML loads
    exit_weights: tuple[float, ...] = ()
    exit_training: Literal["joint", "layerwise"] = "joint"
    deploy_exit: int = 0                 # 0: every exit an output; n: exit n alone (the `exit` variant kind)

    def validate(self, src: str) -> None:
        super().validate(src)
        for key in ("fc_units", "rnn_units", "dense_units"):
            check(src, f"model.{key}", getattr(self, key), 1 <= getattr(self, key) <= 2048, "1 to 2048")
        check(src, "model.exit_units", self.exit_units, 0 <= self.exit_units <= 2048, "0 to 2048")
        check(src, "model.exits", list(self.exits),
              all(e in EXIT_POSITIONS for e in self.exits) and list(self.exits) == sorted(
                  set(self.exits), key=TRUNK.index), f"distinct layers of {list(EXIT_POSITIONS)}, in that order")
        count = len(self.exits) + 1
        check(src, "model.exit_weights", list(self.exit_weights),
              not self.exit_weights or (len(self.exit_weights) == count and all(w >= 0 for w in self.exit_weights)
                                        and sum(self.exit_weights) > 0),
              f"empty (1 each) or {count} weights >= 0 (one per exit, the final head last), not all 0")
        check(src, "model.deploy_exit", self.deploy_exit, 0 <= self.deploy_exit <= count,
              f"0 (every exit) or an exit from 1 to {count}")


def exit_count(cfg: Nsnet2ExitsConfig) -> int:
    return len(cfg.exits) + 1


def check_exit(cfg: Nsnet2ExitsConfig, exit_number, key: str, src: str) -> int:
    """`exit_number` as a valid exit of `cfg` (1 .. exits + 1), else a one-line ConfigError naming `key`."""
    valid = isinstance(exit_number, int) and not isinstance(exit_number, bool) and 1 <= exit_number <= exit_count(cfg)
    if not valid:
        raise ConfigError(src, key, exit_number, f"an exit from 1 to {exit_count(cfg)} (model.exits "
                                                 f"{list(cfg.exits)}, then the final head)")
    return exit_number


class Nsnet2ExitsFamily(ModelFamily):
    name = "nsnet2_exits"
    config_class = Nsnet2ExitsConfig
    group_fields = GROUP_FIELDS

    # ------------------------------------------------------------------ exits (no TensorFlow)
    def position(self, cfg: Nsnet2ExitsConfig, n: int) -> str:
        """The trunk layer exit n reads."""
        return cfg.exits[n - 1] if n <= len(cfg.exits) else TRUNK[-1]

    def head_name(self, cfg: Nsnet2ExitsConfig, n: int) -> str:
        return MASK_OUTPUT if n == exit_count(cfg) else f"mask_exit{n}"

    def head_layers(self, cfg: Nsnet2ExitsConfig, n: int) -> tuple[str, ...]:
        if n == exit_count(cfg):
            return (MASK_OUTPUT,)
        return (f"exit{n}_dense", f"mask_exit{n}") if cfg.split_flow else (f"mask_exit{n}",)

    def exit_layers(self, cfg: Nsnet2ExitsConfig, n: int) -> tuple[str, ...]:
        """Every layer exit n needs: the trunk up to its position, then its head."""
        return TRUNK[:TRUNK.index(self.position(cfg, n)) + 1] + self.head_layers(cfg, n)

    def _exits(self, cfg: Nsnet2ExitsConfig) -> list[int]:
        return [cfg.deploy_exit] if cfg.deploy_exit else list(range(1, exit_count(cfg) + 1))

    def _trunk(self, cfg: Nsnet2ExitsConfig) -> tuple[str, ...]:
        deepest = max(TRUNK.index(self.position(cfg, n)) for n in self._exits(cfg))
        return TRUNK[:deepest + 1]

    def exit_weights(self, cfg: Nsnet2ExitsConfig) -> tuple[float, ...]:
        return tuple(cfg.exit_weights) or (1.0,) * exit_count(cfg)

    # ------------------------------------------------------------------ contract and groups
    def state_specs(self, cfg: Nsnet2ExitsConfig) -> list[StateSpec]:
        return [StateSpec(input=f"{layer}_h", output=f"{layer}_h_out", units=cfg.rnn_units, kind="h", layer=layer)
                for layer in RECURRENT if layer in self._trunk(cfg)]

    def contract(self, cfg: Nsnet2ExitsConfig, bins: int) -> ModelContract:
        """Heads: the final `mask` first (what evaluation and SE_MASK take), then the early exits in order;
        a deployed exit has one head, `mask`."""
        exits = self._exits(cfg)
        names = [MASK_OUTPUT] if cfg.deploy_exit else [self.head_name(cfg, n) for n in exits[-1:] + exits[:-1]]
        return ModelContract(feature=FeatureInput(FEATURES_INPUT, int(bins)),
                             heads=tuple(OutputHead(name, int(bins), (0.0, 1.0), "mask") for name in names),
                             states=tuple(self.state_specs(cfg)),
                             layer_groups=tuple(self.layer_groups(cfg).items()), family=cfg.family)

    def layer_groups(self, cfg: Nsnet2ExitsConfig) -> dict[str, tuple[str, ...]]:
        trunk = self._trunk(cfg)
        groups = {"input": ("input_dense",), "rnn": tuple(x for x in RECURRENT if x in trunk),
                  "dense": tuple(x for x in ("dense_1", "dense_2") if x in trunk)}
        heads = [self.head_layers(cfg, n) for n in self._exits(cfg)]
        groups["exit"] = tuple(layer for h in heads for layer in h[:-1])
        groups["output"] = tuple(h[-1] for h in heads)
        return {group: layers for group, layers in groups.items() if layers}

    def gates(self, cfg: Nsnet2ExitsConfig, layer: str) -> int:
        return 3 if layer in RECURRENT else 1      # Keras GRU kernel columns [z | r | h]

    def label(self, cfg: Nsnet2ExitsConfig) -> str:
        flow = "split" if cfg.split_flow else "plain"
        return f"nsnet2-{flow}-exit{cfg.deploy_exit}" if cfg.deploy_exit else f"nsnet2-{flow}-{exit_count(cfg)}exits"

    def truncate(self, cfg: Nsnet2ExitsConfig, exit_number: int, key: str, src: str = "<variant>") -> Nsnet2ExitsConfig:
        return dataclasses.replace(cfg, deploy_exit=check_exit(cfg, exit_number, key, src))

    def training_phases(self, cfg: Nsnet2ExitsConfig, bins: int) -> tuple[TrainingPhase, ...]:
        """joint: one phase, every head weighted. layerwise: exit 1's layers with exit 1's loss, then each
        next exit's new layers only (the earlier ones frozen), with that exit's loss."""
        weights = self.exit_weights(cfg)
        names = [self.head_name(cfg, n) for n in range(1, exit_count(cfg) + 1)]
        if cfg.exit_training == "joint":
            return (TrainingPhase({name: w for name, w in zip(names, weights) if w}),)
        phases, seen = [], set()
        for n, name in enumerate(names, start=1):
            layers = tuple(x for x in self.exit_layers(cfg, n) if x not in seen)
            seen.update(layers)
            phases.append(TrainingPhase({name: 1.0}, layers))
        return tuple(phases)

    # ------------------------------------------------------------------ Keras
    def _layers(self, cfg: Nsnet2ExitsConfig, bins: int, streaming: bool) -> dict:
        from sepipe.models.keras_backend import keras

        dense, rnn = keras.layers.Dense, (keras.layers.GRUCell if streaming else keras.layers.GRU)
        widths = {"input_dense": cfg.fc_units, "dense_1": cfg.dense_units, "dense_2": cfg.dense_units}
        layers = {name: dense(widths[name], activation="relu", name=name) for name in widths}
        layers.update({name: rnn(cfg.rnn_units, name=name, **({} if streaming else {"return_sequences": True}))
                       for name in RECURRENT})
        for n in range(1, exit_count(cfg) + 1):
            *ancillary, head = self.head_layers(cfg, n)
            for name in ancillary:
                read = self.position(cfg, n)
                width = cfg.exit_units or (cfg.rnn_units if read in RECURRENT else widths[read])
                layers[name] = dense(width, activation="relu", name=name)
            layers[head] = dense(bins, activation="sigmoid", name=head)
        return layers

    def _heads(self, cfg, layers, trunk_out: dict) -> dict:
        heads = {}
        for n in self._exits(cfg):
            x = trunk_out[self.position(cfg, n)]
            for name in self.head_layers(cfg, n):
                x = layers[name](x)
            heads[self.head_name(cfg, n)] = x
        return heads

    def build_sequence(self, cfg: Nsnet2ExitsConfig, bins: int):
        """(batch, frames, bins) -> {head name: (batch, frames, bins) mask}, every exit (whatever deploy_exit)."""
        from sepipe.models.keras_backend import keras

        full = dataclasses.replace(cfg, deploy_exit=0)
        layers = self._layers(full, bins, streaming=False)
        features = keras.Input(shape=(None, bins), name=FEATURES_INPUT)
        x, trunk_out = features, {}
        for name in TRUNK:
            x = trunk_out[name] = layers[name](x)
        return keras.Model(features, self._heads(full, layers, trunk_out), name="nsnet2_exits_sequence")

    def build_streaming(self, cfg: Nsnet2ExitsConfig, bins: int):
        """One frame, batch 1: {features, states} -> {heads, new states}; a deployed exit's head is `mask`."""
        from sepipe.models.keras_backend import keras

        layers = self._layers(cfg, bins, streaming=True)
        features = keras.Input(shape=(bins,), batch_size=1, name=FEATURES_INPUT)
        specs = {s.layer: s for s in self.state_specs(cfg)}
        state_inputs = {s.input: keras.Input(shape=(s.units,), batch_size=1, name=s.input) for s in specs.values()}
        x, trunk_out, outputs = features, {}, {}
        for name in self._trunk(cfg):
            if name in specs:
                x, (new,) = layers[name](x, [state_inputs[specs[name].input]])
                outputs[specs[name].output] = keras.layers.Identity(name=specs[name].output)(new)
            else:
                x = layers[name](x)
            trunk_out[name] = x
        heads = self._heads(cfg, layers, trunk_out)
        if cfg.deploy_exit and MASK_OUTPUT not in heads:       # exit n's head under the contract's one head name
            heads = {MASK_OUTPUT: keras.layers.Identity(name=MASK_OUTPUT)(next(iter(heads.values())))}
        outputs.update(heads)
        return keras.Model({FEATURES_INPUT: features, **state_inputs}, outputs, name="nsnet2_exits_streaming")


NSNET2_EXITS = Nsnet2ExitsFamily()
