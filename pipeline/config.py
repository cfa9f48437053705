"""Experiment configuration: YAML loaded into frozen, validated dataclasses.

Unknown keys, wrong types and out-of-range values are errors that name the key,
the value and what is allowed. Nothing downstream indexes raw dicts.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from sepipe import debian_options
from sepipe.artifacts import ADDED_FIELD
from sepipe.compress import COMPRESSORS, VariantConfig, compressor_of  # noqa: F401  (re-exported; no TensorFlow)
from sepipe.config_loading import (  # noqa: F401  (re-exported: budgets, targets and models build with _build)
    _build, _coerce, _item_key, _registered_class, _set_dotted, _type_name, _without_unset_foreign_keys,
    read_experiment_yaml, read_yaml_file, set_dotted, without_task)
from sepipe.errors import ConfigError, InputFileError, check, short_repr
from sepipe.loss import LossTermConfig, legacy_terms
from sepipe.mic_config import MicConfig
from sepipe.quality_predictor.reference import PredictorRef
from sepipe.reverb_config import ReverbConfig
from sepipe.registry import Tagged
from sepipe.search.settings import SearchConfig

SEED_MAX = 2**32 - 1        # numpy's SeedSequence / legacy seeding takes 0 .. 2**32 - 1

# Upper bounds of the integer options: each far above any real run, low enough that a typo (10**9)
# is an error at load time, not an out-of-memory kill or a run of weeks. (key: (low, high, unit))
INT_BOUNDS = {
    "train.epochs": (1, 10_000, "epochs"),
    "train.steps_per_epoch": (1, 1_000_000, "steps"),
    "train.batch_size": (1, 4096, "mixtures per batch"),
    "train.patience": (1, 10_000, "epochs"),
    "train.valid_files": (1, 100_000, "mixtures"),
    "convert.calibration_files": (1, 100_000, "mixtures"),
    "convert.calibration_frames": (16, 100_000, "frames"),
    "evaluate.test_files": (0, 1_000_000, "mixtures; 0 = all"),
    "evaluate.write_audio": (0, 10_000, "files per row"),
    "evaluate.workers": (0, 64, "processes; 0 = one per core"),
}


def check_int(src: str, key: str, value: int) -> None:
    """The INT_BOUNDS range check of integer option `key`."""
    low, high, unit = INT_BOUNDS[key]
    check(src, key, value, low <= value <= high, f"an integer from {low} to {high:,} ({unit})")


def check_seed(src: str, key: str, value: int) -> None:
    check(src, key, value, 0 <= value <= SEED_MAX, f"an integer from 0 to 2**32 - 1 = {SEED_MAX}")


def check_path(src: str, key: str, value: str | None) -> None:
    """A path option: no NUL character (no file system takes one; os calls would raise ValueError)."""
    check(src, key, value, value is None or "\0" not in value, "a path (without a NUL character)")


def check_run_name(src: str, key: str, value: str) -> None:
    """An experiment name is a folder under runs_dir and the stem of every file of the run: letters,
    digits, '_', '-', '.' and spaces, 1 to 100 characters, not starting with '.' or a space and not
    ending with a space or '.', so it is one path component that cannot be empty, hidden, '.' or '..'."""
    ok = (1 <= len(value) <= 100 and all(c.isalnum() or c in "_-. " for c in value)
          and value[0] not in ". " and value[-1] not in ". ")
    check(src, key, value, ok, "1 to 100 letters, digits, '_', '-', '.' or spaces, not starting with '.' or "
                               "a space and not ending with '.' or a space")


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
        check(src, "data.snr_db", self.snr_db, -50 <= self.snr_db[0] <= self.snr_db[1] <= 100,
               "[low, high] with -50 <= low <= high <= 100 (dB)")
        check(src, "data.level_dbfs", self.level_dbfs, -100 <= self.level_dbfs[0] <= self.level_dbfs[1] <= 0,
               "[low, high] with -100 <= low <= high <= 0 (dBFS)")
        check_seed(src, "data.seed", self.seed)
        check_path(src, "data.root", self.root)
        check_path(src, "data.cache_dir", self.cache_dir)
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
        check(src, "model.family", self.family, self.family in registry, registry.valid())
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
            check_int(src, f"train.{key}", getattr(self, key))
        check(src, "train.learning_rate", self.learning_rate, 0 < self.learning_rate < 1, "between 0 and 1")
        check(src, "train.sisdr_weight", self.sisdr_weight, 0 <= self.sisdr_weight <= 1000, "0 to 1000")
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

        check_int(src, "convert.calibration_files", self.calibration_files)
        check_int(src, "convert.calibration_frames", self.calibration_frames)
        if self.scheme is not None:
            check(src, "convert.scheme", self.scheme, self.scheme in SCHEMES,
                   "one of " + ", ".join(map(repr, SCHEMES.names())))
            # the mixed scheme is per variant: a variant's `precision:` mapping selects it
            check(src, "convert.scheme", self.scheme, not getattr(SCHEMES.get(self.scheme), "mixed", False),
                  "a uniform scheme (int8, int16x8); for mixed precision give a variant "
                  "`precision: {group: int8 | int16x8 | float}`")
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
        check_path(src, "compile.targets_file", self.targets_file)


@dataclass(frozen=True)
class EvaluateConfig:
    test_files: int = 0              # 0: every test mixture
    interpreters: tuple[str, ...] = ("float", "tflite", "tflm")
    baselines: tuple[str, ...] = ("noisy", "rnnoise")
    dnsmos: bool = True
    write_audio: int = 3             # enhanced files written per row, for listening
    workers: int = 0                 # processes scoring audio in parallel (0: one per CPU core)
    quality_predictor: PredictorRef | None = field(default=None, metadata=ADDED_FIELD)   # its scores beside PESQ

    def validate(self, src: str) -> None:
        for key in ("test_files", "write_audio", "workers"):
            check_int(src, f"evaluate.{key}", getattr(self, key))
        if self.quality_predictor is not None:
            self.quality_predictor.validate(src)
        from sepipe.runtime import RUNNERS   # the registered runners (light: no interpreter is imported)

        bad = set(self.interpreters) - set(RUNNERS.names())
        check(src, "evaluate.interpreters", list(self.interpreters), not bad,
               f"a subset of [{', '.join(RUNNERS.names())}]")
        bad = set(self.baselines) - {"noisy", "rnnoise"}
        check(src, "evaluate.baselines", list(self.baselines), not bad, "a subset of [noisy, rnnoise]")


@dataclass(frozen=True)
class VariantPrecision:
    """A variant's `precision:` mapping (sepipe.quantize.precision), kept beside the variants so every
    compressor's config stays as it is: `entries` are 'key=precision' in the declared order."""

    variant: str
    entries: tuple[str, ...] = ()

    @property
    def mapping(self) -> dict[str, str]:
        return dict(entry.split("=", 1) for entry in self.entries)


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
    # per-variant precision (`variants[].precision` in the YAML; the mixed scheme), lifted out on load
    precisions: tuple[VariantPrecision, ...] = field(default=(), metadata=ADDED_FIELD)
    # `sepipe search` settings (sepipe.search.settings); other commands carry them unused
    search: SearchConfig | None = field(default=None, metadata=ADDED_FIELD)

    def precision_of(self, variant: str) -> dict[str, str] | None:
        """The precision mapping variant `variant` declares (None: the experiment's `convert.scheme`)."""
        return next((p.mapping for p in self.precisions if p.variant == variant), None)

    @property
    def run_dir(self) -> Path:
        return Path(self.runs_dir) / self.name

    @property
    def dense_variant(self) -> VariantConfig:
        """The dense reference: the one variant whose compressor is the dense reference (kind 'ptq'),
        what 'vs dense' figures compare with and what kinds deriving from the dense int8 model start from."""
        return next(v for v in self.variants if self._is_dense_reference(v))

    def _is_dense_reference(self, variant: VariantConfig) -> bool:
        # a variant with its own precision mapping is a mix, compared with the reference, not the reference
        return compressor_of(variant).dense_reference and self.precision_of(variant.name) is None

    def validate(self, src: str) -> None:
        check_run_name(src, "name", self.name)
        check_seed(src, "seed", self.seed)
        check_path(src, "runs_dir", self.runs_dir)
        check(src, "variants", [], len(self.variants) >= 1, "a list of at least one variant, e.g. "
              "[{name: ptq, kind: ptq}] (the dense int8 reference); leave 'variants' out for that one")
        for section in (self.data, self.features, self.model, self.train, self.convert, self.compile, self.evaluate,
                        *self.variants):
            section.validate(src)
        self.model.registry().get(self.model.family).check_experiment(self, src)
        names = [v.name for v in self.variants]
        check(src, "variants", names, len(set(names)) == len(names) and all(
            n.replace("-", "").replace("_", "").isalnum() for n in names), "unique names of letters, digits, '-', '_'")
        self._validate_precisions(src, names)
        if self.search is not None:
            self.search.validate(src)
            self.search.check_against(self, src)
        dense = [v for v in self.variants if self._is_dense_reference(v)]
        reference_kinds = " or ".join(repr(e.name) for e in COMPRESSORS if COMPRESSORS.get(e.name).dense_reference)
        check(src, "variants", [v.kind for v in self.variants], len(dense) == 1,
               f"exactly one variant of kind {reference_kinds} without a precision (the dense reference the others are "
               f"compared with and 'offline' ones prune); {len(dense)} given")

    def _validate_precisions(self, src: str, names: list[str]) -> None:
        for entry in self.precisions:
            check(src, "precisions", entry.variant, entry.variant in names, f"a variant name ({', '.join(names)})")
            variant = next(v for v in self.variants if v.name == entry.variant)
            check(src, f"variants[{variant.name}].precision", entry.mapping,
                  not compressor_of(variant).derives_from_dense_model,
                  f"left out for kind '{variant.kind}' (it edits the dense reference's .tflite)")
            if ":" not in self.model.family:     # a builder's contract needs TensorFlow: checked at conversion
                from sepipe.models import family_of
                from sepipe.quantize.precision import check_precision
                contract = family_of(self.model).contract(self.model, self.features.bins)
                check_precision(src, f"variants[{variant.name}].precision", entry.mapping, contract)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def load_experiment(path: str | Path, overrides: dict[str, Any] | None = None) -> ExperimentConfig:
    """Load and validate an experiment YAML; `overrides` are dotted keys ('train.epochs': 2)."""
    raw = read_experiment_yaml(path, overrides)
    if not isinstance(raw, dict):
        raise InputFileError(path, f"must be a YAML mapping of sections; it holds {short_repr(raw, 60)}")
    return experiment_from_dict(raw, source=str(path))


def experiment_from_dict(raw: dict[str, Any], source: str = "<config>") -> ExperimentConfig:
    raw = without_task(raw, source)
    model = raw.get("model") if isinstance(raw, dict) else None
    if isinstance(model, dict):          # a user family ('module:function') is registered before it is built
        from sepipe.models import prepare_family
        prepare_family(model.get("family"), source)
    config = _build(ExperimentConfig, _lift_precisions(raw, source), source, prefix="")
    config.validate(source)
    return config


def _lift_precisions(raw: Any, source: str) -> Any:
    """`variants[].precision` mappings moved to `precisions` (VariantPrecision), the rest untouched."""
    variants = raw.get("variants") if isinstance(raw, dict) else None
    if not isinstance(variants, list) or not any(isinstance(v, dict) and "precision" in v for v in variants):
        return raw
    raw, lifted = dict(raw), list(raw.get("precisions") or [])
    raw["variants"] = []
    for variant in variants:
        if isinstance(variant, dict) and "precision" in variant:
            variant = dict(variant)
            mapping, name = variant.pop("precision"), variant.get("name")
            if not isinstance(mapping, dict) or not mapping or not all(
                    isinstance(k, str) and isinstance(v, str) for k, v in mapping.items()):
                raise ConfigError(source, f"variants[{name}].precision", mapping,
                                  "a mapping of layer group to precision, e.g. {rnn: int8, output: int16x8}")
            lifted.append({"variant": name, "entries": [f"{k}={v}" for k, v in mapping.items()]})
        raw["variants"].append(variant)
    raw["precisions"] = lifted
    return raw
