"""The tiny trained models the slow tests share (a helper module, not a test module).

One GRU converted with scheme int8 and one LSTM converted with scheme int16x8 (the LSTM's cell state
integrates to hundreds, which int8 cannot resolve; see experiments/sparsity_lstm.yaml). Each is
trained for a few seconds on real noisy speech from the small dataset so its mask spans [0, 1], then
calibrated on the float streaming model's states over that speech and converted by the real converter
(in its subprocess). tests/conftest.py builds them once per session (`tiny_models` fixture, which
fails at teardown if a test changed them); tests read the artifacts and copy them before writing.

Features are the pipeline's raw log power, as training, the golden vectors and the firmware stub all
compute them: the firmware feeds these features straight to the model, so a model trained on
normalised features would see its calibrated input range clipped there.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sepipe.config import FeatureConfig, ModelConfig
from sepipe.models.mask_rnn import MaskRnnConfig

BINS = FeatureConfig().bins
FAMILIES = ("gru", "lstm")
SCHEME = {"gru": "int8", "lstm": "int16x8"}
IO_DTYPE = {"gru": "int8", "lstm": "int16"}
TRAIN_FILES, TEST_FILES = 6, 2
# 120 steps (about 5 s a model): at 80 the LSTM's mask on the firmware golden file bottoms out at 0.17,
# too close to test_firmware_stub's "not a constant mask" bound (min < 0.2); at 120 it reaches 0.08.
TRAIN_STEPS, CALIBRATION_FRAMES, SEED = 120, 300, 0


def tiny_cfg(family: str) -> ModelConfig:
    """Input 32, two recurrent layers of 24 units, dense 32 (about 60 k parameters at 257 bins)."""
    return MaskRnnConfig(family=family, input_units=32, rnn_units=24, dense_units=32)


# --------------------------------------------------------------------------- real speech

@dataclass(frozen=True)
class Speech:
    train: list[tuple[np.ndarray, np.ndarray]]   # (noisy features, target mask) per training mixture
    test: list[np.ndarray]                       # noisy features per test file
    source: str


def pair_features(noisy: np.ndarray, clean: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(noisy log-power features, ideal ratio mask clipped to [0, 1]), both (frames, bins) float32."""
    cfg = FeatureConfig()
    noisy_feats, noisy_spec = _features(noisy, cfg)
    _, clean_spec = _features(clean, cfg)
    target = np.clip(np.abs(clean_spec) / (np.abs(noisy_spec) + 1e-6), 0.0, 1.0).astype(np.float32)
    return noisy_feats, target


def _features(audio, cfg):
    from sepipe.features import features

    return features(audio, cfg)


def load_speech(dataset) -> Speech:
    """Training mixtures and test files of the opened small dataset, as features (no training)."""
    train = [pair_features(p.noisy, p.clean) for p in dataset.training_files(TRAIN_FILES, seed=SEED)]
    test = [pair_features(p.noisy, p.clean)[0] for p in dataset.pairs("test", limit=TEST_FILES)]
    return Speech(train, test, "small_dataset fixture")


# --------------------------------------------------------------------------- trained and converted

def train_tiny(cfg: ModelConfig, speech: Speech, steps: int = TRAIN_STEPS, seed: int = SEED):
    """A few seconds of training (random 64-frame crops, batch 8, MSE on the mask): the sequence model."""
    from sepipe.models import family_of
    from sepipe.models.keras_backend import keras

    keras.utils.set_random_seed(seed)
    model = family_of(cfg).build_sequence(cfg, BINS)
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="mse")
    rng = np.random.default_rng(seed)
    crop = 64
    usable = [(x, y) for x, y in speech.train if len(x) >= crop]
    xs, ys = [], []
    for _ in range(steps * 8):
        x, y = usable[rng.integers(len(usable))]
        start = rng.integers(len(x) - crop + 1)
        xs.append(x[start:start + crop])
        ys.append(y[start:start + crop])
    model.fit(np.stack(xs), np.stack(ys), batch_size=8, epochs=1, verbose=0, shuffle=False)
    return model


@dataclass(frozen=True)
class TinyModel:
    """One family's trained model and its artifacts, shared by every test of the session: copy before
    writing, never train or load weights into the Keras models (`fingerprint` is checked at teardown)."""

    family: str
    scheme: str               # conversion scheme: 'int8' or 'int16x8'
    io_dtype: str             # dtype of every model input and output: 'int8' or 'int16'
    cfg: ModelConfig
    sequence: object          # keras.Model, whole sequences
    streaming: object         # keras.Model, one frame with states as inputs and outputs
    sequence_weights: Path
    streaming_weights: Path
    calibration: Path
    tflite: Path
    convert_s: float          # seconds convert_quantized took
    speech: Speech            # what it was trained and calibrated on (and test files)

    @property
    def tflite_bytes(self) -> bytes:
        return self.tflite.read_bytes()

    def fingerprint(self) -> str:
        """SHA-256 over the artifact files and both Keras models' weights."""
        digest = hashlib.sha256()
        for path in (self.sequence_weights, self.streaming_weights, self.calibration, self.tflite):
            digest.update(path.read_bytes())
        for model in (self.sequence, self.streaming):
            for array in model.get_weights():
                digest.update(np.ascontiguousarray(array).tobytes())
        return digest.hexdigest()


def build_tiny_model(family: str, folder: Path, speech: Speech) -> TinyModel:
    """Train, copy into the streaming model, calibrate and convert one family into `folder`."""
    from sepipe.models import family_of
    from sepipe.quantize.calibration import collect_calibration, save_calibration
    from sepipe.quantize.convert import convert_quantized

    cfg = tiny_cfg(family)
    sequence = train_tiny(cfg, speech)
    streaming = family_of(cfg).build_streaming(cfg, BINS)
    family_of(cfg).copy_weights(sequence, streaming)
    folder.mkdir(parents=True, exist_ok=True)
    streaming.save_weights(str(folder / "streaming.weights.h5"))
    sequence.save_weights(str(folder / "sequence.weights.h5"))
    cal = collect_calibration(streaming, [x for x, _ in speech.train], frames=CALIBRATION_FRAMES, seed=SEED)
    save_calibration(cal, folder / "calibration.npz")
    start = time.monotonic()
    convert_quantized(cfg, BINS, folder / "streaming.weights.h5", folder / "calibration.npz",
                      folder / "model.tflite", scheme=SCHEME[family])
    convert_s = time.monotonic() - start
    return TinyModel(family, SCHEME[family], IO_DTYPE[family], cfg, sequence, streaming,
                     folder / "sequence.weights.h5", folder / "streaming.weights.h5", folder / "calibration.npz",
                     folder / "model.tflite", convert_s, speech)


def build_tiny_models(speech: Speech, root: Path) -> dict[str, TinyModel]:
    """{'gru': int8 TinyModel, 'lstm': int16x8 TinyModel} under root/<family>/."""
    return {family: build_tiny_model(family, root / family, speech) for family in FAMILIES}
