"""Training the predictor's variants on the cached clips and labels.

Inputs are the clips' log-mel features normalised with one mean and one standard deviation (over every
value of the training split's features: a per-tensor affine the int8 input quantisation absorbs); targets
are each score normalised by its training mean and standard deviation. Loss: mean squared error over the
normalised targets; Adam; the weights of the epoch with the lowest validation loss are kept (the valid
split: its own speaker, disjoint from train and test).

`float` and `binary` train from scratch for train.epochs; `int8_qat` is the trained float model made
quantise-aware by TFMOT (`quantize_model`: fake-quantised weights and activations, batch normalisation
folded into the convolutions) and fine-tuned for train.qat_epochs at a tenth of the learning rate.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

import numpy as np

from sepipe import artifacts
from sepipe.quality_predictor.clips import frames_per_clip, log_mel
from sepipe.quality_predictor.labels import load_labels
from sepipe.quality_predictor.model import build_train_model

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PredictorData:
    x: dict[str, np.ndarray]            # split -> (N, frames, mels, 1) normalised features
    y: dict[str, np.ndarray]            # split -> (N, targets) normalised targets
    scores: dict[str, np.ndarray]       # split -> (N, targets) teacher scores
    system: dict[str, np.ndarray]       # split -> (N,) system of each clip
    feature_mean: float
    feature_std: float
    input_range: tuple[float, float]    # min and max of the normalised training features (int8 input range)
    target_mean: np.ndarray
    target_std: np.ndarray

    def denormalise(self, y: np.ndarray) -> np.ndarray:
        return y * self.target_std + self.target_mean


def target_normalisation(train_scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean, standard deviation + 1e-6) per target over the training split's labels (N, targets)."""
    return train_scores.mean(axis=0), train_scores.std(axis=0) + 1e-6


def load_data(cfg) -> PredictorData:
    """The clips' features and labels per split, normalised with the training split's statistics."""
    clips, labels = load_labels(cfg.run_dir)
    feats = np.stack([log_mel(a / 32767.0, cfg.predictor.mels) for a in clips["audio"]])[..., None]
    scores = np.stack([labels[t] for t in cfg.predictor.targets], axis=1)
    train = clips["split"] == "train"
    f_mean, f_std = float(feats[train].mean()), float(feats[train].std())
    t_mean, t_std = target_normalisation(scores[train])
    x, y, s, system = {}, {}, {}, {}
    for split in ("train", "valid", "test"):
        keep = clips["split"] == split
        x[split] = ((feats[keep] - f_mean) / f_std).astype(np.float32)
        s[split] = scores[keep]
        y[split] = ((scores[keep] - t_mean) / t_std).astype(np.float32)
        system[split] = clips["system"][keep]
    return PredictorData(x, y, s, system, f_mean, f_std, (float(x["train"].min()), float(x["train"].max())),
                         t_mean, t_std)


def _fit(model, data: PredictorData, epochs: int, batch_size: int, learning_rate: float, seed: int) -> dict:
    """Fit with Adam and MSE; keep the weights of the best validation epoch; the per-epoch history."""
    from sepipe.models.keras_backend import keras

    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="mse")
    best, best_weights, history = np.inf, model.get_weights(), []
    rng = np.random.default_rng([seed, 17])
    for epoch in range(epochs):
        order = rng.permutation(len(data.x["train"]))
        fit = model.fit(data.x["train"][order], data.y["train"][order], batch_size=batch_size, epochs=1,
                        shuffle=False, verbose=0)
        valid = float(model.evaluate(data.x["valid"], data.y["valid"], batch_size=256, verbose=0))
        history.append({"epoch": epoch + 1, "loss": float(fit.history["loss"][0]), "valid_loss": valid})
        if valid < best:
            best, best_weights = valid, model.get_weights()
    model.set_weights(best_weights)
    return {"best_valid_loss": best, "best_epoch": int(np.argmin([h["valid_loss"] for h in history])) + 1,
            "history": history}


def qat_model(float_model):
    """TFMOT's quantise-aware copy of the float training model."""
    import tensorflow_model_optimization as tfmot

    return tfmot.quantization.keras.quantize_model(float_model)


def trained_model(cfg, variant: str, paths, data: PredictorData | None = None):
    """The trained Keras model of `variant`, weights loaded from its train stage."""
    frames = frames_per_clip(cfg.clips.seconds)
    data = data or load_data(cfg)
    model = build_train_model(cfg.predictor, frames, "binary" if variant == "binary" else "float", data.input_range)
    if variant == "int8_qat":
        model = qat_model(model)
    model.load_weights(paths.weights(variant))
    return model


def train_variant(cfg, variant: str, paths) -> dict:
    from sepipe.models.keras_backend import keras

    keras.utils.set_random_seed(cfg.seed)
    data = load_data(cfg)
    frames = frames_per_clip(cfg.clips.seconds)
    t = cfg.train
    if variant == "int8_qat":
        float_model = build_train_model(cfg.predictor, frames, "float")
        float_model.load_weights(paths.weights("float"))
        model = qat_model(float_model)
        result = _fit(model, data, t.qat_epochs, t.batch_size, t.learning_rate / 10, cfg.seed)
    else:
        model = build_train_model(cfg.predictor, frames, variant, data.input_range)
        result = _fit(model, data, t.epochs, t.batch_size, t.learning_rate, cfg.seed)
    with artifacts.atomic_path(paths.weights(variant)) as tmp:
        model.save_weights(str(tmp))
    artifacts.write_text(paths.train_log(variant), json.dumps(result, indent=1) + "\n")
    log.info("train:%s: best valid loss %.4f at epoch %d", variant, result["best_valid_loss"], result["best_epoch"])
    return {"best_valid_loss": result["best_valid_loss"], "best_epoch": result["best_epoch"],
            "train_clips": int(len(data.x["train"])), "frames": frames, "mels": cfg.predictor.mels}
