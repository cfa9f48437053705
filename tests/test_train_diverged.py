"""A diverged training run stops with one line and leaves state a rerun can read (no NaN in JSON)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from sepipe.config import experiment_from_dict


def test_a_nan_validation_loss_stops_training_with_one_line_and_keeps_the_state_readable(small_dataset, tmp_path,
                                                                                        monkeypatch):
    from sepipe.train import Trainer, TrainingDiverged

    cfg = experiment_from_dict({
        "name": "diverged", "seed": 0, "data": {"cache_dir": small_dataset.cfg.cache_dir},
        "model": {"family": "gru", "input_units": 8, "rnn_units": 8, "rnn_layers": 1, "dense_units": 8},
        "train": {"epochs": 3, "steps_per_epoch": 1, "batch_size": 2, "valid_files": 1, "patience": 3}})
    trainer = Trainer(cfg, small_dataset, Path(tmp_path))
    healthy = trainer.validate
    epochs = iter([healthy, lambda: (float("nan"), float("nan"))])
    monkeypatch.setattr(trainer, "validate", lambda: next(epochs)())

    with pytest.raises(TrainingDiverged, match=r"diverged at epoch 2 .*train\.learning_rate") as caught:
        trainer.run(progress=False)
    assert "\n" not in str(caught.value) and caught.value.exit_code == 2
    state = json.loads((Path(tmp_path) / "train_state.json").read_text(),
                       parse_constant=lambda name: pytest.fail(f"train_state.json holds {name}"))   # not JSON
    assert state["epoch"] == 1 and np.isfinite(state["best_val_loss"])
    assert trainer.best_path.exists()                                          # epoch 1's model is kept
