"""Where every artifact of one experiment lives, the dataset handle and the variant's float model."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sepipe.compress import compressor_of
from sepipe.config import ExperimentConfig, ModelConfig, VariantConfig
from sepipe.errors import MissingArtifactError
from sepipe.models import family_of, model_config_from_dict


@dataclass(frozen=True)
class RunPaths:
    """Where every artifact of one experiment lives (names say what they are)."""

    cfg: ExperimentConfig

    @property
    def run_dir(self) -> Path:
        return self.cfg.run_dir

    @property
    def train_dir(self) -> Path:
        return self.run_dir / "train"

    @property
    def streaming_weights(self) -> Path:
        """The trained dense float model, one-frame layout: what the 'ptq' variant converts."""
        return self.train_dir / "streaming.weights.h5"

    @property
    def sequence_weights(self) -> Path:
        return self.train_dir / "sequence.weights.h5"

    def variant_dir(self, variant: str) -> Path:
        return self.run_dir / "variants" / variant

    def calibration(self, variant: str | None = None) -> Path:
        """The calibration set of `variant` (default: the dense reference, the variant of kind 'ptq')."""
        return self.run_dir / "convert" / f"{variant or self.cfg.dense_variant.name}_calibration.npz"

    def tflite(self, variant: str | None = None) -> Path:
        """The quantized model of `variant` (default: the dense reference); its scheme and I/O dtype are
        in the convert record, not the name, so the name stays true for int8, 16x8 and what comes next."""
        return self.run_dir / f"{self.cfg.name}_{variant or self.cfg.dense_variant.name}.tflite"

    @property
    def evaluate_dir(self) -> Path:
        return self.run_dir / "evaluate"

    @property
    def compile_dir(self) -> Path:
        return self.run_dir / "compile"

    @property
    def report_dir(self) -> Path:
        return self.run_dir / "report"


class DataHandle:
    """The experiment's dataset, opened on first use (a compile or report stage never opens it)."""

    def __init__(self, cfg: ExperimentConfig, dataset=None):
        self.cfg, self._dataset = cfg, dataset

    @property
    def dataset(self):
        if self._dataset is None:
            from sepipe.data import Dataset

            self._dataset = Dataset.open(self.cfg.data)
        return self._dataset

    @property
    def manifest(self) -> Path:
        """The built dataset's manifest: its hash stands for the data in stage fingerprints."""
        if self._dataset is not None:
            return Path(self._dataset.root) / "manifest.json"
        from sepipe.data import dataset_dir

        return dataset_dir(self.cfg.data) / "manifest.json"


@dataclass(frozen=True)
class VariantModel:
    """The float model a variant converts: its (possibly narrower) config and one-frame weights."""

    model: ModelConfig
    streaming_weights: Path | None   # None: the variant is derived from another int8 model ('offline')
    qat: bool = False

    @property
    def label(self) -> str:
        return family_of(self.model).label(self.model)


def variant_stage(variant: VariantConfig) -> str | None:
    """The fine-tuning stage of `variant`, None when it has none (plain 'ptq', 'offline')."""
    return f"variant:{variant.name}" if compressor_of(variant).trains_float_model else None


def variant_model(cfg: ExperimentConfig, variant: VariantConfig, needs) -> VariantModel:
    """The variant's float model, from its fine-tuning stage's summary when it has one."""
    stage = variant_stage(variant)
    if stage is None:
        # plain 'ptq' converts the trained weights; 'offline' has no float model (it prunes the int8 one)
        derived = compressor_of(variant).derives_from_dense_model
        return VariantModel(cfg.model, None if derived else RunPaths(cfg).streaming_weights)
    summary = needs[stage]
    return VariantModel(model_config_from_dict(summary["model"]), cfg.run_dir / summary["streaming_weights"], summary["qat"])


def find_variant(cfg: ExperimentConfig, name: str) -> VariantConfig:
    for variant in cfg.variants:
        if variant.name == name:
            return variant
    raise MissingArtifactError(name, f"no variant named '{name}' in {cfg.name}; have {[v.name for v in cfg.variants]}")


def load_streaming_model(model: VariantModel, bins: int):
    """The variant's one-frame float model with its weights."""
    if model.streaming_weights is None or not model.streaming_weights.exists():
        raise MissingArtifactError(model.streaming_weights, "train (and fine-tune the variant) first")
    streaming = family_of(model.model).build_streaming(model.model, bins)
    streaming.load_weights(str(model.streaming_weights))
    return streaming


def model_sources(cfg: ExperimentConfig) -> dict[str, Path]:
    """The files outside sepipe that define the architecture (a user family's module), hashed into the
    fingerprints of every stage that builds the model (train, fine-tune, convert): editing the builder retrains
    and reconverts instead of reusing the old model. Built-in families: none, so their fingerprints are unchanged."""
    files = family_of(cfg.model).source_files(cfg.model)
    return {f"model_source_{i}" if i else "model_source": path for i, path in enumerate(files)}
