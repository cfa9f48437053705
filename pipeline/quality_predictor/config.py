"""The quality predictor's experiment YAML as frozen, validated dataclasses (no TensorFlow).

```yaml
name: quality_predictor
seed: 0
data: {source: debian, size: small}      # the enhancement dataset (sepipe.config.DataConfig)
clips:
  seconds: 2.5          # one clip = a fixed window of this length
  per_file: 2           # non-overlapping windows taken from each mixture, from its start
  train_files: 80       # training mixtures (train speakers and noises); valid and test are the fixed splits
  eval_files: 0         # valid / test mixtures used (0: all)
  workers: 0            # processes scoring the labels (0: one per core; not part of the fingerprint)
  enhancers:            # enhancement models (.tflite) whose outputs are clips too
    - {name: demo_s0, model: runs/demo_s0/demo_s0_ptq.tflite}
predictor:
  targets: [pesq, dnsmos_ovrl, dnsmos_sig, dnsmos_bak]
  mels: 40
  channels: [32, 32, 32, 64]
  dense_units: 32
  variants: [float, int8_qat, binary]
  surrogate_window: 1.0   # the Heaviside's gradient passes where |x| <= this
  binary_pool_first: false  # binary: train max-pool -> Heaviside (the same function, other gradients)
train: {epochs: 40, batch_size: 32, learning_rate: 0.002, qat_epochs: 10}
compile: {targets: [ethos-u55-128]}
```
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sepipe.artifacts import ADDED_FIELD
from sepipe.config import DataConfig, check_run_name, check_seed
from sepipe.config_loading import _build, read_experiment_yaml
from sepipe.errors import ConfigError, InputFileError, check, short_repr

TARGETS = ("pesq", "dnsmos_ovrl", "dnsmos_sig", "dnsmos_bak")
VARIANTS = ("float", "int8_qat", "binary")
SYSTEMS_FIXED = ("noisy", "clean")      # every mixture gives these clips, plus one per enhancer


@dataclass(frozen=True)
class Enhancer:
    name: str
    model: str          # a streaming enhancement .tflite (sepipe.enhance reads it)


@dataclass(frozen=True)
class ClipsConfig:
    seconds: float = 2.5
    per_file: int = 2
    train_files: int = 80
    eval_files: int = 0         # valid and test mixtures used (0: all; > 0: that many, spread over the names)
    enhancers: tuple[Enhancer, ...] = ()
    # processes scoring the labels (0: one per CPU core). How, not what: the scores are the same for any
    # count, so it is left out of the labels' fingerprint (repr=False) and a finished stage is reused.
    workers: int = field(default=0, repr=False)

    def validate(self, src: str) -> None:
        check(src, "clips.seconds", self.seconds, 1.0 <= self.seconds <= 8.0, "1 to 8 (s)")
        check(src, "clips.per_file", self.per_file, 1 <= self.per_file <= 8, "an integer from 1 to 8")
        check(src, "clips.train_files", self.train_files, 2 <= self.train_files <= 5000, "an integer from 2 to 5000")
        check(src, "clips.eval_files", self.eval_files, 0 <= self.eval_files <= 5000, "an integer from 0 to 5000")
        check(src, "clips.workers", self.workers, 0 <= self.workers <= 256, "0 (one per CPU core) to 256 processes")
        names = [e.name for e in self.enhancers]
        for i, e in enumerate(self.enhancers):
            key = f"clips.enhancers[{i}]"
            check(src, key + ".name", e.name, e.name.isidentifier() and e.name not in SYSTEMS_FIXED
                  and names.count(e.name) == 1, f"a unique name of letters, digits and '_', not {SYSTEMS_FIXED}")
            check(src, key + ".model", e.model, e.model.endswith(".tflite") and "\0" not in e.model,
                  "the path of an enhancement model's .tflite")


@dataclass(frozen=True)
class PredictorConfig:
    targets: tuple[str, ...] = TARGETS
    mels: int = 40
    channels: tuple[int, ...] = (32, 32, 32, 64)
    dense_units: int = 32
    variants: tuple[str, ...] = VARIANTS
    surrogate_window: float = 1.0
    # binary only: max-pool the real pre-activations, then the Heaviside (BNN practice), instead of the
    # Heaviside, then the max-pool. The function is the same (a max commutes with a step), so the deploy graph
    # is too; the gradient reaches only each window's largest pre-activation, not every unit inside the
    # surrogate's window. Issue 17's screen: test Pearson +0.09 (mean of four targets, 200 training files).
    binary_pool_first: bool = field(default=False, metadata=ADDED_FIELD)

    def validate(self, src: str) -> None:
        key = "predictor."
        check(src, key + "targets", self.targets, bool(self.targets) and set(self.targets) <= set(TARGETS)
              and len(set(self.targets)) == len(self.targets), f"a list of distinct names from {list(TARGETS)}")
        check(src, key + "mels", self.mels, 16 <= self.mels <= 128, "an integer from 16 to 128")
        check(src, key + "channels", self.channels, len(self.channels) == 4 and all(1 <= c <= 256 for c in self.channels),
              "four integers from 1 to 256 (the four conv blocks)")
        check(src, key + "dense_units", self.dense_units, 1 <= self.dense_units <= 1024, "an integer from 1 to 1024")
        check(src, key + "variants", self.variants, bool(self.variants) and set(self.variants) <= set(VARIANTS)
              and len(set(self.variants)) == len(self.variants), f"a list of distinct names from {list(VARIANTS)}")
        check(src, key + "surrogate_window", self.surrogate_window, 0.01 <= self.surrogate_window <= 10,
              "0.01 to 10 (the |x| below which the Heaviside's gradient passes)")
        check(src, key + "binary_pool_first", self.binary_pool_first, isinstance(self.binary_pool_first, bool),
              "true or false")


@dataclass(frozen=True)
class PredictorTrainConfig:
    epochs: int = 40
    batch_size: int = 32
    learning_rate: float = 0.002
    qat_epochs: int = 10        # int8_qat: fine-tuning epochs of the quantise-aware copy of the float model

    def validate(self, src: str) -> None:
        check(src, "train.epochs", self.epochs, 1 <= self.epochs <= 10_000, "an integer from 1 to 10,000")
        check(src, "train.batch_size", self.batch_size, 1 <= self.batch_size <= 4096, "an integer from 1 to 4096")
        check(src, "train.learning_rate", self.learning_rate, 0 < self.learning_rate <= 1, "a number in (0, 1]")
        check(src, "train.qat_epochs", self.qat_epochs, 1 <= self.qat_epochs <= 10_000, "an integer from 1 to 10,000")


@dataclass(frozen=True)
class PredictorCompileConfig:
    targets: tuple[str, ...] = ("ethos-u55-128",)
    require_full_npu: bool = True

    def validate(self, src: str) -> None:
        from sepipe.targets import load_targets

        known = load_targets()
        for name in self.targets:
            check(src, "compile.targets", name, name in known, f"names from {sorted(known)}")
        check(src, "compile.targets", self.targets, bool(self.targets), "at least one target")


@dataclass(frozen=True)
class PredictorExperiment:
    task: str = "quality_predictor"        # what keeps `sepipe run` from reading this YAML as an enhancement one
    name: str = "quality_predictor"
    seed: int = 0
    runs_dir: str = "runs"
    data: DataConfig = field(default_factory=DataConfig)
    clips: ClipsConfig = field(default_factory=ClipsConfig)
    predictor: PredictorConfig = field(default_factory=PredictorConfig)
    train: PredictorTrainConfig = field(default_factory=PredictorTrainConfig)
    compile: PredictorCompileConfig = field(default_factory=PredictorCompileConfig)

    @property
    def run_dir(self) -> Path:
        return Path(self.runs_dir) / self.name

    def validate(self, src: str) -> None:
        check(src, "task", self.task, self.task == "quality_predictor", "'quality_predictor' for `sepipe predictor run`")
        check_run_name(src, "name", self.name)
        check_seed(src, "seed", self.seed)
        for section in (self.data, self.data.reverb, self.data.mic, self.clips, self.predictor, self.train,
                        self.compile):
            section.validate(src)


def predictor_from_dict(raw: Any, source: str = "<config>") -> PredictorExperiment:
    """The validated experiment of a YAML mapping: ConfigError (one line) for any wrong key or value."""
    if not isinstance(raw, dict):
        raise InputFileError(source, f"must be a YAML mapping of sections; it holds {short_repr(raw, 60)}")
    cfg = _build(PredictorExperiment, raw, source, "")
    cfg.validate(source)
    return cfg


def load_predictor(path: str | Path, overrides: dict[str, Any] | None = None) -> PredictorExperiment:
    """The experiment of a YAML file (`name` defaults to the file's stem); `overrides`: dotted keys."""
    return predictor_from_dict(read_experiment_yaml(path, overrides), str(path))


__all__ = ["ConfigError", "PredictorExperiment", "load_predictor", "predictor_from_dict", "TARGETS", "VARIANTS"]
