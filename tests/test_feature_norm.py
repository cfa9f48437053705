"""train.feature_norm: the network trains on normalised features; what it saves reads raw ones, same masks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sepipe.config import experiment_from_dict

BINS = 257


def _cfg(model: dict, data: dict | None = None) -> object:
    return experiment_from_dict({"name": "norm", "seed": 1, "model": model, "data": data or {},
                                 "train": {"epochs": 1, "steps_per_epoch": 2, "batch_size": 2, "valid_files": 1,
                                           "feature_norm": True}})


def _random_statistics(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.uniform(-12, -4, BINS).astype(np.float32), rng.uniform(0.2, 0.5, BINS).astype(np.float32)


@pytest.mark.parametrize("model", [
    {"family": "gru", "input_units": 8, "rnn_units": 8, "rnn_layers": 1, "dense_units": 8},   # folded into a Dense
    {"family": "gru", "input_units": 0, "rnn_units": 8, "rnn_layers": 2, "dense_units": 0},   # ... a GRU (reset_after)
    {"family": "lstm", "input_units": 0, "rnn_units": 8, "rnn_layers": 1, "dense_units": 8},  # ... an LSTM
], ids=["dense", "gru", "lstm"])
def test_the_folded_model_on_raw_features_equals_the_trained_one_on_normalised_features(model):
    from sepipe import feature_norm
    from sepipe.models import family_of

    cfg = _cfg(model)
    trained = family_of(cfg.model).build_sequence(cfg.model, BINS)
    rng = np.random.default_rng(0)
    trained.set_weights([rng.normal(0, 0.3, w.shape).astype(np.float32) for w in trained.get_weights()])
    mean, inv_std = _random_statistics(2)
    raw = rng.normal(-8, 4, (2, 12, BINS)).astype(np.float32)

    expected = feature_norm.normalised(trained, mean, inv_std)(raw).numpy()
    folded = feature_norm.folded_copy(cfg, trained, mean, inv_std)(raw).numpy()
    np.testing.assert_allclose(folded, expected, atol=2e-5)
    assert np.abs(trained(raw).numpy() - expected).max() > 1e-2     # the normalisation does change the masks


def test_folding_into_a_layer_without_a_kernel_and_bias_names_the_layer():
    from sepipe import feature_norm
    from sepipe.models.keras_backend import keras

    layer = keras.layers.Dense(4, use_bias=False, name="no_bias")
    layer.build((None, BINS))
    with pytest.raises(ValueError, match="'no_bias'"):
        feature_norm.fold_into(layer, *_random_statistics(0))


@pytest.mark.slow
def test_training_with_feature_norm_saves_a_plain_model_that_gives_the_trained_masks(small_dataset, tmp_path):
    from sepipe.models import family_of
    from sepipe.train import Trainer

    cfg = _cfg({"family": "gru", "input_units": 16, "rnn_units": 16, "rnn_layers": 1, "dense_units": 16},
               data={"cache_dir": small_dataset.cfg.cache_dir})
    trainer = Trainer(cfg, small_dataset, Path(tmp_path))
    trainer.run(progress=False)
    mean, inv_std = trainer.norm
    assert mean.shape == inv_std.shape == (BINS,) and np.all(inv_std > 0)
    assert -16 < float(mean.mean()) < 0                      # statistics of real log-power features

    saved = family_of(cfg.model).build_sequence(cfg.model, BINS)
    saved.load_weights(str(trainer.best_path))
    features = trainer.valid[0][0][None]
    np.testing.assert_allclose(saved(features).numpy(), trainer.trained(features).numpy(), atol=2e-5)

