"""The compressor registry, the variant config base and the compressor interface (no TensorFlow).

`variants[].kind` in the YAML names a registered compressor; its config dataclass (a `VariantConfig`
subclass) is what `sepipe.config` builds from that variant's mapping and validates.

Adding a compressor (weight clustering, say) is one new module and one registration:

  1. `pipeline/compress/kinds/cluster.py`:

         @dataclass(frozen=True)
         class ClusterConfig(VariantConfig):
             clusters: int = 16                      # only the kind's own keys; common ones are inherited
             def validate(self, src): super().validate(src); check(src, self.key("clusters"), ...)

         @COMPRESSORS.register("cluster", config=ClusterConfig)
         class ClusterCompressor(Compressor):
             def compress(self, model, model_cfg, targets, steps, session) -> Compressed: ...

  2. one line in `pipeline/compress/kinds/__init__.py`: `from sepipe.compress.kinds import cluster`.

Nothing else changes: the fine-tuning loop (`sepipe.compress.variant.finetune_variant`), its QAT phase
and saving are shared; the stages ask the compressor (`compressor_of(variant)`) what the kind needs.
Kind modules stay importable without TensorFlow (config loading imports them): they import the
TF-backed helpers (`prune`, `units`, `sepipe.models`) inside their methods.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from sepipe.artifacts import ADDED_FIELD

from sepipe.errors import ConfigError, check
from sepipe.registry import Registry, Tagged

if TYPE_CHECKING:
    from sepipe.config import ModelConfig

COMPRESSORS: Registry = Registry("compressor", key="variants[].kind")


@dataclass(frozen=True)
class VariantConfig(Tagged):
    """One compressed variant of the trained float model: the fields every kind has.

    Each kind's config subclasses this with only its own fields (sepipe.compress.kinds). Build one from
    YAML (sepipe.config) or with `VariantConfig.create(name=..., kind=..., ...)`.
    """

    TAG: ClassVar[str] = "kind"

    name: str
    kind: str = "ptq"                # the compressor (variants[].kind); a variant without `kind` is plain ptq
    layers: tuple[str, ...] = ()     # layers to compress (default: the family's compressible layers)
    qat: bool = False                # quantization-aware fine-tuning, keeping the sparsity pattern
    # what QAT fake-quantises: 'weights' (weights only; the converter calibrates activations, PTQ) or
    # 'full' (weights, activations and recurrent states; the trained ranges go into the .tflite)
    qat_scope: Literal["weights", "full"] = field(default="weights", metadata=ADDED_FIELD)
    finetune_epochs: int = 4
    finetune_steps_per_epoch: int = 100
    learning_rate: float = 2e-4

    @classmethod
    def registry(cls) -> Registry:
        return COMPRESSORS

    @classmethod
    def create(cls, name: str, kind: str = "ptq", **fields: Any) -> "VariantConfig":
        """The config of `kind` (its registered class) with these fields; unvalidated, like a constructor."""
        return COMPRESSORS.config_class(kind, "<variant>")(name=name, kind=kind, **fields)

    def __post_init__(self) -> None:
        registered = COMPRESSORS.config_class(self.kind) if self.kind in COMPRESSORS else None
        if registered is not type(self):
            raise TypeError(f"{type(self).__name__}(kind={self.kind!r}) is not the config class of kind "
                            f"{self.kind!r}; use VariantConfig.create(name=..., kind=..., ...)")

    def key(self, option: str) -> str:
        """The YAML option as errors name it: `variants[<name>].<option>`."""
        return f"variants[{self.name}].{option}"

    def validate(self, src: str) -> None:
        # bounded like train.epochs / train.steps_per_epoch (sepipe.config.INT_BOUNDS): a typo is an error, not weeks
        check(src, self.key("finetune_epochs"), self.finetune_epochs, 0 <= self.finetune_epochs <= 10_000,
              "an integer from 0 to 10,000 (epochs)")
        check(src, self.key("finetune_steps_per_epoch"), self.finetune_steps_per_epoch,
              1 <= self.finetune_steps_per_epoch <= 1_000_000, "an integer from 1 to 1,000,000 (steps)")
        check(src, self.key("qat_scope"), self.qat_scope, self.qat_scope == "weights" or self.qat,
              "'weights' unless qat is true ('full' fake-quantises activations during QAT)")


def compressor_of(variant: VariantConfig) -> "Compressor":
    """The registered compressor of `variant.kind`, bound to `variant`."""
    return COMPRESSORS.get(variant.kind, "<variant>")(variant)


@dataclass
class Compressed:
    """What a kind's own phase hands on to the shared QAT phase and saving."""

    model: Any                       # Keras sequence model (wrappers stripped)
    model_cfg: Any                   # its ModelConfig: the experiment's, or narrower (unit pruning)
    pruned_layers: list[str] = field(default_factory=list)   # their zeros are held fixed through QAT
    stats: dict = field(default_factory=dict)                # kind-specific record ("schedule", "units")


class Compressor:
    """How one variant kind turns the trained float model into a variant (one instance per variant).

    Defaults describe a kind that fine-tunes the float model and prunes nothing; the kinds override.
    """

    dense_reference: ClassVar[bool] = False
    """Its variant is the experiment's dense reference (exactly one per experiment, checked on load):
    the 'vs dense' baseline of the report and what `derives_from_dense_model` kinds start from."""

    derives_from_dense_model: ClassVar[bool] = False
    """No float model of its own: `apply_to_quantized` edits the dense reference's int8 model."""

    untrained_note: ClassVar[str] = "no fine-tuning: derived from the dense reference's int8 model"
    """Recorded as the variant's note when it `derives_from_dense_model`."""

    noop_note: ClassVar[str | None] = "zero sparsity: nothing pruned, no fine-tuning (the variant is the base model)"
    """Recorded when the kind has nothing to prune and no QAT (None: say nothing)."""

    def __init__(self, config: VariantConfig):
        self.config = config

    # ------------------------------------------------------------------ what the stages ask
    @property
    def structure(self) -> str:
        """The sparsity structure: the report's grouping label ("weight", "block 1x8", ...)."""
        return self.config.kind

    @property
    def trains_float_model(self) -> bool:
        """Whether the variant is fine-tuned from the float model (a 'variant' stage runs)."""
        return not self.derives_from_dense_model

    def apply_to_quantized(self, tflite_bytes: bytes, model_cfg: "ModelConfig") -> bytes:
        """The variant's .tflite from the dense reference's (only kinds that `derives_from_dense_model`)."""
        raise NotImplementedError(f"kind '{self.config.kind}' does not derive from the dense int8 model")

    # ------------------------------------------------------------------ what the fine-tuning loop asks
    def layer_targets(self, model_cfg: "ModelConfig") -> dict[str, float]:
        """{layer: target sparsity} the kind prunes (recorded as the variant's "targets"); default none."""
        return {}

    def prunes(self, targets: dict[str, float]) -> bool:
        """Whether the kind's own phase changes anything (else only QAT, if asked, trains)."""
        return any(s > 0 for s in targets.values())

    def compress(self, model, model_cfg: "ModelConfig", targets: dict[str, float], steps: int, session) -> Compressed:
        """The kind's own phase: `steps` fine-tuning steps of `session` (a FineTuneSession) starting from the
        trained float sequence `model`; the shared loop runs QAT after it and saves the result."""
        return Compressed(model, model_cfg)


def parse_layers(variant: VariantConfig, model_cfg: "ModelConfig", sparsity: float,
                 per_layer_sparsity: bool = False) -> dict[str, float]:
    """{layer: sparsity} from `variant.layers` ('name', or 'name=sparsity' where `per_layer_sparsity`);
    default: every compressible layer of the model's family at `sparsity`."""
    from sepipe.models import family_of

    family = family_of(model_cfg)
    compressible = list(family.compressible_layers(model_cfg))
    if not variant.layers:
        return {name: sparsity for name in compressible}
    key, valid = variant.key("layers"), compressible + list(family.output_layers(model_cfg))
    targets = {}
    for entry in variant.layers:
        name, _, value = entry.partition("=")
        name = name.strip()
        if name not in valid:
            raise ConfigError("<variant>", key, entry, f"layer names among {valid} (optionally 'name=sparsity')")
        if value:
            if not per_layer_sparsity:
                raise ConfigError("<variant>", key, entry, f"a bare layer name for kind '{variant.kind}'")
            try:
                own = float(value)
            except ValueError:
                own = -1.0
            if not 0.0 <= own < 1.0:
                raise ConfigError("<variant>", key, entry, "'name=sparsity' with 0 <= sparsity < 1")
            targets[name] = own
        else:
            targets[name] = sparsity
    return targets
