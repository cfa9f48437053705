"""The quality predictor (sepipe.quality_predictor): the binary layer, the YAML, labels reuse, int8 vs Keras.

The pipeline test runs every stage of a tiny experiment on the small dataset (a few clips, no enhancer, a
4/4/4/8-channel network for two epochs): the labels stage is skipped on the second run (nothing computed),
and the int8 .tflite's predictions match the Keras model's within INT8_TOLERANCE (normalised score units).
"""

from __future__ import annotations

import numpy as np
import pytest

from sepipe.errors import ConfigError
from sepipe.quality_predictor.config import predictor_from_dict

# Largest |int8 TFLite - Keras| over the test clips, in normalised target units (1 = one standard deviation
# of the training labels). Measured on this tiny model: float 0.003, binary (trained with int8 fake-quantised
# kernels and input) 0.010; trained without them a few units whose pre-activation is near 0 flip: 0.65.
INT8_TOLERANCE = {"float": 0.05, "binary": 0.05}


def _heaviside(window: float):
    from sepipe.quality_predictor.model import heaviside_layer_class

    return heaviside_layer_class()(window)


def test_heaviside_forward_has_exactly_two_levels():
    from sepipe.models.keras_backend import tf

    x = tf.constant(np.linspace(-3, 3, 601, dtype=np.float32))
    y = _heaviside(1.0)(x).numpy()
    assert sorted(np.unique(y).tolist()) == [0.0, 1.0]
    assert np.array_equal(y, (x.numpy() > 0).astype(np.float32))


@pytest.mark.parametrize("window", [0.5, 1.0])
def test_heaviside_gradient_passes_only_in_the_window(window):
    from sepipe.models.keras_backend import tf

    x = tf.constant(np.linspace(-3, 3, 601, dtype=np.float32))
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = tf.reduce_sum(_heaviside(window)(x) * 2.0)
    grad = tape.gradient(loss, x).numpy()
    inside = np.abs(x.numpy()) <= window
    assert np.all(grad[inside] == 2.0) and np.all(grad[~inside] == 0.0)


@pytest.mark.parametrize("key, value, fragment", [
    ("clips.seconds", 0.2, "clips.seconds"),
    ("predictor.targets", ["pesq", "mos"], "predictor.targets"),
    ("predictor.channels", [8, 8, 8], "predictor.channels"),
    ("predictor.variants", ["float", "ternary"], "predictor.variants"),
    ("predictor.surrogate_window", 0.0, "predictor.surrogate_window"),
    ("compile.targets", ["ethos-u99"], "compile.targets"),
    ("clips.enhancers", [{"name": "clean", "model": "x.tflite"}], "clips.enhancers[0].name"),
    ("clips.enhancers", [{"name": "a", "model": "x.onnx"}], "clips.enhancers[0].model"),
    ("train.epochs", "ten", "train.epochs"),
    ("predictor.mel", 40, "predictor.mel"),
    ("clips.workers", -1, "clips.workers"),
])
def test_bad_yaml_values_are_one_line_errors(key, value, fragment):
    from sepipe.config_loading import set_dotted

    raw = {"name": "qp"}
    set_dotted(raw, key, value)
    with pytest.raises(ConfigError) as err:
        predictor_from_dict(raw, "qp.yaml")
    message = str(err.value)
    assert "\n" not in message and fragment in message and message.startswith("qp.yaml")


def test_the_cli_reports_a_bad_value_in_one_line(tmp_path, capsys):
    from sepipe.cli.main import main

    path = tmp_path / "qp.yaml"
    path.write_text("predictor: {mels: 4}\n")
    assert main(["predictor", "run", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "predictor.mels" in err


def test_a_missing_enhancer_is_a_one_line_error(tmp_path, capsys):
    from sepipe.cli.main import main

    path = tmp_path / "qp.yaml"
    path.write_text(f"runs_dir: {tmp_path / 'runs'}\nclips: {{enhancers: [{{name: gru, model: {tmp_path}/no.tflite}}]}}\n")
    assert main(["predictor", "run", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "no.tflite" in err and "enhancer 'gru'" in err


def test_predictor_run_builds_its_dataset_first(tmp_path, monkeypatch):
    """`sepipe data build` takes enhancement YAMLs only, so a fresh machine's first `predictor run` builds
    the dataset (reused after: build_dataset's own tests), as `sepipe run` does, before any stage."""
    import sepipe.data
    from sepipe.quality_predictor.config import DataConfig
    from sepipe.quality_predictor.stages import run_predictor

    built = []

    def build(data, progress=True):
        built.append(data)
        raise KeyboardInterrupt   # stop before the labels stage

    monkeypatch.setattr(sepipe.data, "build_dataset", build)
    cfg = predictor_from_dict({"runs_dir": str(tmp_path / "runs"), "data": {"source": "debian", "size": "small",
                                                                            "seed": 3}}, "qp")
    with pytest.raises(KeyboardInterrupt):
        run_predictor(cfg, progress=False)
    assert built == [cfg.data] and isinstance(built[0], DataConfig)
    assert not (tmp_path / "runs").exists()


def _tiny(small_data_config, tmp_path):
    return predictor_from_dict({
        "name": "qp_tiny", "runs_dir": str(tmp_path / "runs"),
        "data": {"source": "debian", "size": "small", "cache_dir": small_data_config.cache_dir},
        "clips": {"seconds": 1.0, "per_file": 1, "train_files": 6, "eval_files": 2},
        "predictor": {"mels": 16, "channels": [4, 4, 4, 8], "dense_units": 8, "variants": ["float", "binary"],
                      "targets": ["pesq", "dnsmos_ovrl"]},
        "train": {"epochs": 2, "batch_size": 4},
        "compile": {"targets": ["ethos-u55-128"]},
    }, "tiny")


@pytest.mark.slow      # trains, converts, compiles: about a minute on an idle core
def test_pipeline_reuses_labels_and_int8_matches_keras(small_dataset, small_data_config, tmp_path):
    from sepipe.quality_predictor.labels import label_paths
    from sepipe.quality_predictor.stages import run_predictor

    cfg = _tiny(small_data_config, tmp_path)
    first = {s.name: s for s in run_predictor(cfg, progress=False)}
    assert first["labels"].status == "ran" and first["labels"].summary["clips"] == 20
    stamp = {k: p.stat().st_mtime_ns for k, p in label_paths(cfg.run_dir).items()}
    again = {s.name: s for s in run_predictor(cfg, until="labels", progress=False)}
    assert again["labels"].status == "current"          # nothing computed, nothing rewritten
    assert {k: p.stat().st_mtime_ns for k, p in label_paths(cfg.run_dir).items()} == stamp
    for variant in ("float", "binary"):
        assert first[f"evaluate:{variant}"].summary["int8_vs_keras_max_abs_normalised"] <= INT8_TOLERANCE[variant]
    binary = first["evaluate:binary"].summary["activation_levels"]
    # A Heaviside is a ReLU6 of a scaled pre-activation in int8 TFLite (deploy_graph.py): two codes, except
    # where the accumulator is within 255 / REQUANT_GAIN of 0 (a handful of values in thousands).
    assert len(binary) == 4 and all(level["two_code_share"] >= 0.99 for level in binary.values())
    assert (cfg.run_dir / "quality_predictor.md").is_file()


def test_the_label_workers_are_not_part_of_the_fingerprint():
    from sepipe.artifacts import _json_fallback

    clips = predictor_from_dict({"clips": {"workers": 2}}, "qp.yaml").clips
    assert clips.workers == 2 and "workers" not in _json_fallback(clips)


def test_pool_first_binary_is_the_same_function_with_other_gradients():
    """`predictor.binary_pool_first` trains max-pool -> Heaviside: the forward equals Heaviside -> max-pool with the
    same weights (so the deploy graph is unchanged), the gradients do not (only each window's max learns)."""
    import dataclasses

    from sepipe.models.keras_backend import tf
    from sepipe.quality_predictor.config import PredictorConfig
    from sepipe.quality_predictor.model import build_train_model

    pcfg = PredictorConfig(channels=(4, 4, 4, 8), mels=16)
    act_first = build_train_model(pcfg, 32, "binary", (-3.0, 3.0))
    pool_first = build_train_model(dataclasses.replace(pcfg, binary_pool_first=True), 32, "binary", (-3.0, 3.0))
    pool_first.set_weights(act_first.get_weights())
    x = tf.constant(np.random.default_rng(0).normal(size=(3, 32, 16, 1)).astype(np.float32))
    np.testing.assert_array_equal(act_first(x).numpy(), pool_first(x).numpy())
    grads = []
    for model in (act_first, pool_first):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(model(x, training=False))
        grads.append(tape.gradient(loss, model.get_layer("conv0").trainable_variables[0]).numpy())
    assert not np.allclose(grads[0], grads[1])
    with pytest.raises(ConfigError, match="predictor.binary_pool_first"):
        PredictorConfig(binary_pool_first="yes").validate("qp.yaml")
