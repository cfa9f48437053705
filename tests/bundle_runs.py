"""Tiny real runs to bundle (converter, Vela): shared by tests/test_bundle.py and tests/test_firmware_qemu.py."""

from __future__ import annotations

from sepipe import experiment as exp
from sepipe.config import experiment_from_dict

TARGET = "ethos-u55-128"
GRU = {"family": "gru", "input_units": 16, "rnn_units": 16, "rnn_layers": 1, "dense_units": 16}
# the demo's shape in small: two GRU layers (two state pairs), int8
DEMO_LIKE_GRU = {"family": "gru", "input_units": 16, "rnn_units": 16, "rnn_layers": 2, "dense_units": 16}
LSTM_16X8 = ({"family": "lstm", "input_units": 0, "rnn_units": 8, "rnn_layers": 1, "dense_units": 0},
             {"activations": "int16"})


def tiny_config(small_data_config, runs_dir, name="tinyb", model=None, convert=None, variants=None):
    spec = {
        "name": name, "seed": 5, "runs_dir": str(runs_dir),
        "data": {"cache_dir": small_data_config.cache_dir},
        "model": model or GRU,
        "train": {"epochs": 1, "steps_per_epoch": 2, "batch_size": 4, "valid_files": 1},
        "convert": {"calibration_files": 1, "calibration_frames": 32, **(convert or {})},
        "compile": {"targets": [TARGET]},
    }
    if variants is not None:
        spec["variants"] = variants
    return experiment_from_dict(spec)


def run_to_compile(cfg, variants=None):
    """Data, training, then conversion and compilation of `variants` (names; default: the first variant)."""
    dataset = exp.stage_data(cfg, build=False)
    exp.stage_train(cfg, dataset, progress=False)
    names = variants or [cfg.variants[0].name]
    for variant in (v for v in cfg.variants if v.name in names):
        exp.stage_convert(cfg, dataset, variant, progress=False)
        exp.stage_compile(cfg, variant)
    return cfg
