"""Experiment configuration: YAML loaded into frozen, validated dataclasses.

Unknown keys, wrong types and out-of-range values are errors that name the key,
the value and what is allowed. Nothing downstream indexes raw dicts.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from sepipe import debian_options
from sepipe.artifacts import ADDED_FIELD
from sepipe.compress import COMPRESSORS, VariantConfig, compressor_of  # noqa: F401  (re-exported; no TensorFlow)
from sepipe.errors import ConfigError, InputFileError, check
from sepipe.loss import LossTermConfig, legacy_terms
from sepipe.mic_config import MicConfig
from sepipe.reverb_config import ReverbConfig
from sepipe.registry import Tagged


@dataclass(frozen=True)
class DataConfig:
    source: Literal["debian", "voicebank", "dns"] = "debian"
    size: Literal["small", "full"] = "small"
    root: str | None = None          # user corpus folder (voicebank / dns)
    cache_dir: str = ".cache"        # where Debian packages and built datasets live
    sample_rate: int = 16000
    snr_db: tuple[float, float] = (-5.0, 20.0)
    level_dbfs: tuple[float, float] = (-35.0, -15.0)
    segment_s: float = 4.0           # training segment length (s)
    seed: int = 0                    # mixing seed: fixes the dataset, independent of training
    reverb: ReverbConfig = field(default=ReverbConfig(), metadata=ADDED_FIELD)
    mic: MicConfig = field(default=MicConfig(), metadata=ADDED_FIELD)
    # Debian only (sepipe.debian_options): the noise rules ('v2' adds domestic, machine, street, crowd), the speech
    # ('v2' adds training voices), the speaker rotation (train = the others). Defaults: the bytes of before.
    noise_set: Literal["v1", "v2"] = field(default="v1", metadata=ADDED_FIELD)
    speech_set: Literal["v1", "v2"] = field(default="v1", metadata=ADDED_FIELD)
    test_speaker: str = field(default="June", metadata=ADDED_FIELD)
    valid_speaker: str = field(default="IvrvoiceRU", metadata=ADDED_FIELD)

    def validate(self, src: str) -> None:
        check(src, "data.sample_rate", self.sample_rate, self.sample_rate == 16000, "16000 (Hz)")
        check(src, "data.snr_db", self.snr_db, self.snr_db[0] <= self.snr_db[1], "[low, high] with low <= high (dB)")
        check(src, "data.level_dbfs", self.level_dbfs,
               self.level_dbfs[0] <= self.level_dbfs[1] <= 0, "[low, high] with low <= high <= 0 (dBFS)")
        check(src, "data.segment_s", self.segment_s, 0.5 <= self.segment_s <= 30, "0.5 to 30 (s)")
        check(src, "data.root", self.root, self.source == "debian" or self.root is not None,
               f"a corpus folder when data.source is '{self.source}'")
        for name, section in (("reverb", self.reverb), ("mic", self.mic)):
            section.validate(src)
            check(src, f"data.{name}.enabled", section.enabled, not (section.enabled and self.source == "voicebank"),
                   "false when data.source is 'voicebank' (its pairs come mixed)")
        debian_options.validate(self, src)


@dataclass(frozen=True)
class FeatureConfig:
    fft_size: int = 512
    hop: int = 256
    window: Literal["sqrt_hann"] = "sqrt_hann"
    compression: Literal["log_power"] = "log_power"
    log_floor: float = 1e-7          # added to |X|^2 before the log

    @property
    def bins(self) -> int:
        return self.fft_size // 2 + 1

    def validate(self, src: str) -> None:
        check(src, "features.fft_size", self.fft_size,
               self.fft_size in (128, 256, 512, 1024), "one of 128, 256, 512, 1024")
        check(src, "features.hop", self.hop, self.hop * 2 == self.fft_size,
               f"fft_size / 2 = {self.fft_size // 2} (sqrt-Hann reconstructs exactly at 50% overlap)")
        check(src, "features.log_floor", self.log_floor, 0 < self.log_floor < 1, "between 0 and 1")


@dataclass(frozen=True)
class ModelConfig(Tagged):
    """Base of every model family's config: `family` names the registered family (sepipe.models.FAMILIES),
    whose own dataclass (e.g. MaskRnnConfig for gru / lstm) holds and validates the other keys."""

    TAG = "family"
    family: str = "gru"

    @classmethod
    def registry(cls):
        from sepipe.models import FAMILIES   # lazy: sepipe.models imports this module (no TensorFlow either way)
        return FAMILIES

    def validate(self, src: str) -> None:
        registry = self.registry()
        check(src, "model.family", self.family, self.family in registry,
               "one of " + ", ".join(map(repr, registry.names())))
        check(src, "model.family", self.family, isinstance(self, registry.config_class(self.family)),
               f"a family whose config class is {type(self).__name__}")


def default_model_config() -> ModelConfig:
    """The model of an experiment that names none: the registered default family with its defaults."""
    cls = ModelConfig.registry().config_class(ModelConfig.family) or ModelConfig
    return cls(family=ModelConfig.family)


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 10
    steps_per_epoch: int = 100
    batch_size: int = 16
    learning_rate: float = 1e-3
    patience: int = 3                # early stopping on validation loss (epochs)
    sisdr_weight: float = 0.05       # weight of the negative SI-SDR term (per dB), when `loss` is not given
    valid_files: int = 20            # validation mixtures scored each epoch
    # The objective: weighted registered terms (sepipe.loss). None: compressed magnitude - sisdr_weight x SI-SDR.
    loss: tuple[LossTermConfig, ...] | None = field(default=None, metadata=ADDED_FIELD)
    # 'cosine': decays along a half cosine to learning_rate / 10 over epochs x steps_per_epoch steps
    lr_schedule: Literal["constant", "cosine"] = field(default="constant", metadata=ADDED_FIELD)
    # true: train on per-bin normalised features, folded into the first layer when saved (sepipe.feature_norm)
    feature_norm: bool = field(default=False, metadata=ADDED_FIELD)

    @property
    def loss_terms(self) -> tuple[LossTermConfig, ...]:
        return self.loss if self.loss is not None else legacy_terms(self.sisdr_weight)

    def validate(self, src: str) -> None:
        for key in ("epochs", "steps_per_epoch", "batch_size", "patience", "valid_files"):
            value = getattr(self, key)
            check(src, f"train.{key}", value, value >= 1, "an integer >= 1")
        check(src, "train.learning_rate", self.learning_rate, 0 < self.learning_rate < 1, "between 0 and 1")
        check(src, "train.sisdr_weight", self.sisdr_weight, self.sisdr_weight >= 0, ">= 0")
        if self.loss is not None:
            check(src, "train.sisdr_weight", self.sisdr_weight, self.sisdr_weight == TrainConfig.sisdr_weight,
                  "left out when train.loss is given (give the SI-SDR weight as a 'sisdr' term there)")
            for term in self.loss:
                term.validate(src)
            check(src, "train.loss", [t.weight for t in self.loss], any(t.weight > 0 for t in self.loss),
                  "a list of terms with at least one positive weight")


@dataclass(frozen=True)
class ConvertConfig:
    calibration_files: int = 8       # training mixtures the calibration frames come from
    calibration_frames: int = 400    # frames drawn from them, states included
    # Legacy spelling of the scheme (what runs recorded before schemes were registered): 'int8' is the
    # scheme int8, 'int16' the scheme int16x8. Kept so those YAMLs load and their stages stay current.
    activations: Literal["int8", "int16"] = field(default="int8", metadata=ADDED_FIELD)
    # The quantization scheme (sepipe.quantize.schemes.SCHEMES): 'int8' (int8 activations and I/O) or
    # 'int16x8' (TFLite's 16x8 mode: int16 activations and I/O, int8 weights, for activations that span
    # more than int8 resolves, like the LSTM cell state). None: the one `activations` names.
    scheme: str | None = field(default=None, metadata=ADDED_FIELD)

    @property
    def scheme_name(self) -> str:
        """The registered scheme this config selects (`scheme`, else the one `activations` names)."""
        if self.scheme is not None:
            return self.scheme
        from sepipe.quantize.schemes import scheme_for_activations
        return scheme_for_activations(self.activations).name

    def validate(self, src: str) -> None:
        from sepipe.quantize.schemes import SCHEMES

        check(src, "convert.calibration_files", self.calibration_files, self.calibration_files >= 1, ">= 1")
        check(src, "convert.calibration_frames", self.calibration_frames,
               16 <= self.calibration_frames <= 100000, "16 to 100000")
        if self.scheme is not None:
            check(src, "convert.scheme", self.scheme, self.scheme in SCHEMES,
                   "one of " + ", ".join(map(repr, SCHEMES.names())))
            legacy = SCHEMES.get(self.scheme).activations
            check(src, "convert.activations", self.activations, self.activations in ("int8", legacy),
                   f"'{legacy}' or left out with convert.scheme '{self.scheme}' (scheme replaces activations)")


DEFAULT_TARGETS = ("ethos-u55-64", "ethos-u55-128", "ethos-u55-256", "ethos-u65-256", "ethos-u85-256")


@dataclass(frozen=True)
class CompileConfig:
    targets: tuple[str, ...] = DEFAULT_TARGETS   # names in the targets file
    targets_file: str | None = None  # default: vela_configs/targets.yaml
    require_full_npu: bool = True    # an op left on the CPU is an error, not a footnote

    def validate(self, src: str) -> None:
        check(src, "compile.targets", list(self.targets), len(self.targets) >= 1,
               "a list of at least one target name from vela_configs/targets.yaml")


@dataclass(frozen=True)
class EvaluateConfig:
    test_files: int = 0              # 0: every test mixture
    interpreters: tuple[str, ...] = ("float", "tflite", "tflm")
    baselines: tuple[str, ...] = ("noisy", "rnnoise")
    dnsmos: bool = True
    write_audio: int = 3             # enhanced files written per row, for listening
    workers: int = 0                 # processes scoring audio in parallel (0: one per CPU core)

    def validate(self, src: str) -> None:
        check(src, "evaluate.test_files", self.test_files, self.test_files >= 0, ">= 0 (0 = all)")
        check(src, "evaluate.workers", self.workers, 0 <= self.workers <= 64, "0 (one per core) to 64")
        from sepipe.runtime import RUNNERS   # the registered runners (light: no interpreter is imported)

        bad = set(self.interpreters) - set(RUNNERS.names())
        check(src, "evaluate.interpreters", list(self.interpreters), not bad,
               f"a subset of [{', '.join(RUNNERS.names())}]")
        bad = set(self.baselines) - {"noisy", "rnnoise"}
        check(src, "evaluate.baselines", list(self.baselines), not bad, "a subset of [noisy, rnnoise]")


@dataclass(frozen=True)
class ExperimentConfig:
    name: str
    seed: int = 0                    # training, calibration selection and evaluation draws
    runs_dir: str = "runs"
    data: DataConfig = field(default_factory=DataConfig)
    features: FeatureConfig = field(default_factory=FeatureConfig)
    model: ModelConfig = field(default_factory=default_model_config)
    train: TrainConfig = field(default_factory=TrainConfig)
    convert: ConvertConfig = field(default_factory=ConvertConfig)
    compile: CompileConfig = field(default_factory=CompileConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    # a YAML without `variants` has one: plain post-training int8 of the trained model
    variants: tuple[VariantConfig, ...] = field(default_factory=lambda: (VariantConfig.create(name="ptq"),))

    @property
    def run_dir(self) -> Path:
        return Path(self.runs_dir) / self.name

    @property
    def dense_variant(self) -> VariantConfig:
        """The dense reference: the one variant whose compressor is the dense reference (kind 'ptq'),
        what 'vs dense' figures compare with and what kinds deriving from the dense int8 model start from."""
        return next(v for v in self.variants if compressor_of(v).dense_reference)

    def validate(self, src: str) -> None:
        check(src, "name", self.name, self.name.replace("-", "").replace("_", "").isalnum(),
               "letters, digits, '-' and '_'")
        for section in (self.data, self.features, self.model, self.train, self.convert, self.compile, self.evaluate,
                        *self.variants):
            section.validate(src)
        names = [v.name for v in self.variants]
        check(src, "variants", names, len(set(names)) == len(names) and all(
            n.replace("-", "").replace("_", "").isalnum() for n in names), "unique names of letters, digits, '-', '_'")
        dense = [v for v in self.variants if compressor_of(v).dense_reference]
        reference_kinds = " or ".join(repr(e.name) for e in COMPRESSORS if COMPRESSORS.get(e.name).dense_reference)
        check(src, "variants", [v.kind for v in self.variants], len(dense) == 1,
               f"exactly one variant of kind {reference_kinds} (the dense reference the other variants are "
               f"compared with and 'offline' ones prune); {len(dense)} given")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def load_experiment(path: str | Path, overrides: dict[str, Any] | None = None) -> ExperimentConfig:
    """Load and validate an experiment YAML; `overrides` are dotted keys ('train.epochs': 2)."""
    path = Path(path)
    if not path.exists():
        raise InputFileError(path, "experiment file not found")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise InputFileError(path, f"not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(raw, dict):
        raise InputFileError(path, "must be a YAML mapping of sections")
    raw.setdefault("name", path.stem)
    for dotted, value in (overrides or {}).items():
        _set_dotted(raw, dotted, value)
    return experiment_from_dict(raw, source=str(path))


def experiment_from_dict(raw: dict[str, Any], source: str = "<config>") -> ExperimentConfig:
    config = _build(ExperimentConfig, raw, source, prefix="")
    config.validate(source)
    return config


def _set_dotted(raw: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    node = raw
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value


def _build(cls: type, raw: Any, source: str, prefix: str) -> Any:
    """Build dataclass `cls` from `raw`, checking every key and its type against the annotations."""
    if not isinstance(raw, dict):
        raise ConfigError(source, prefix.rstrip(".") or "<root>", raw, "a mapping")
    cls = _registered_class(cls, raw, source, prefix)
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    raw = _without_unset_foreign_keys(cls, raw, names, source, prefix)
    unknown = sorted(set(raw) - names)
    if unknown:
        raise ConfigError(source, prefix + unknown[0], raw[unknown[0]],
                          f"one of the keys {sorted(names)}")
    kwargs = {}
    for key, value in raw.items():
        kwargs[key] = _coerce(hints[key], value, source, prefix + key)
    missing = [f.name for f in dataclasses.fields(cls)
               if f.name not in kwargs and f.default is dataclasses.MISSING
               and f.default_factory is dataclasses.MISSING]
    if missing:
        raise ConfigError(source, prefix + missing[0], None, "a value (this key is required)")
    return cls(**kwargs)


def _registered_class(cls: type, raw: dict[str, Any], source: str, prefix: str) -> type:
    """For a `Tagged` config base, the registered config class its tag names; else `cls` itself."""
    if not (isinstance(cls, type) and issubclass(cls, Tagged)) or not cls.TAG:
        return cls
    default = next((f.default for f in dataclasses.fields(cls) if f.name == cls.TAG), dataclasses.MISSING)
    name = raw.get(cls.TAG, default)
    registry = cls.registry()
    if name not in registry:
        raise ConfigError(source, prefix + cls.TAG, name, "one of " + ", ".join(map(repr, registry.names())))
    return registry.config_class(name) or cls


def _without_unset_foreign_keys(cls: type, raw: dict[str, Any], names: set[str], source: str,
                                prefix: str) -> dict[str, Any]:
    """In a `Tagged` section, a key that belongs to other registered entries (`block` on a 'weight'
    variant) is dropped at their default value (unset: YAML written when one class held every entry's
    keys still loads) and is an error naming the entries that take it otherwise."""
    if not (isinstance(cls, type) and issubclass(cls, Tagged)) or not cls.TAG:
        return raw
    kept = dict(raw)
    for key in sorted(set(raw) - names):
        owners = [(entry.name, f) for entry in cls.registry() if entry.config is not None
                  for f in dataclasses.fields(entry.config) if f.name == key]
        if not owners:
            continue                       # not any entry's key: the unknown-key error follows
        value = raw[key]
        if any((tuple(value) if isinstance(value, list) else value) == f.default for _, f in owners):
            del kept[key]
            continue
        tag = next((entry.name for entry in cls.registry() if entry.config is cls), raw.get(cls.TAG))
        raise ConfigError(source, prefix + key, value,
                          f"no '{key}' for {cls.TAG} '{tag}': it is a setting of {cls.TAG} "
                          + " and ".join(repr(name) for name, _ in owners) + " only")
    return kept


def _coerce(hint: Any, value: Any, source: str, key: str) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, source, key + ".")
    if origin is Literal:
        if value not in args:
            raise ConfigError(source, key, value, "one of " + ", ".join(map(repr, args)))
        return value
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(inner[0], value, source, key)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(source, key, value, f"a list of {_type_name(args[0])}")
        if args[-1] is not Ellipsis and len(value) != len(args):
            raise ConfigError(source, key, value, f"a list of {len(args)} numbers")
        return tuple(_coerce(args[0], item, source, _item_key(key, i, item)) for i, item in enumerate(value))
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(source, key, value, "true or false")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(source, key, value, "an integer")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(source, key, value, "a number")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(source, key, value, "a string")
        return value
    raise TypeError(f"unsupported config type {hint!r} for {key}")


def _item_key(key: str, index: int, item: Any) -> str:
    """`variants[w50]` for a mapping with a name, `variants[2]` for another mapping; `key` for a plain value."""
    if not isinstance(item, dict):
        return key
    name = item.get("name")
    return f"{key}[{name if isinstance(name, str) else index}]"


def _type_name(hint: Any) -> str:
    return getattr(hint, "__name__", str(hint))
