import hashlib
import subprocess
import sys

import numpy as np
import pytest

from sepipe.config import experiment_from_dict
from sepipe.contract import ExportGraph, ModelContract, infer_contract
from sepipe.models import FAMILIES, family_of
from sepipe.models.mask_rnn import MaskRnnConfig

TINY = {"gru": MaskRnnConfig(family="gru", input_units=32, rnn_units=24, dense_units=32),
        "lstm": MaskRnnConfig(family="lstm", input_units=0, rnn_units=24, dense_units=0)}
CONVERT_TINY = {"gru": ("int8", MaskRnnConfig(family="gru", input_units=32, rnn_units=24, dense_units=32)),
                "lstm": ("int16x8", MaskRnnConfig(family="lstm", input_units=32, rnn_units=24, dense_units=32))}
# SHA-256 of convert_untrained(CONVERT_TINY[...], 257, seed=0) made by the code BEFORE families, contracts
# and schemes were registered (TF 2.21, this machine); same config and seed must give the same bytes.
BEFORE_REGISTRIES = {"gru": "14598a7afd739cc82ecf366d25544e07d00a1849f2c00f7d2e9b07ce1de160e3",
                     "lstm": "52ec63c4da18707bb51956cf82e9441671cb79207cfc9fc126c291b8bde982ae"}


@pytest.mark.parametrize("family", ["gru", "lstm"])
def test_streaming_frame_by_frame_equals_sequence_model(family, small_dataset):
    from sepipe.features import FeatureConfig, features

    cfg = TINY[family]
    fam = family_of(cfg)
    sequence, streaming = fam.build_sequence(cfg, 257), fam.build_streaming(cfg, 257)
    fam.copy_weights(sequence, streaming)
    contract = fam.contract(cfg, 257)
    frames = features(small_dataset.pairs("test", limit=1)[0].noisy, FeatureConfig())[0][:60]
    expected = sequence(frames[None]).numpy()[0]
    states = {s.input: np.zeros((1, s.units), np.float32) for s in contract.states}
    for t, frame in enumerate(frames):
        out = streaming({contract.feature.name: frame[None], **states})
        np.testing.assert_allclose(out[contract.head.name].numpy()[0], expected[t], atol=1e-5)
        states = {s.input: out[s.output].numpy() for s in contract.states}


@pytest.mark.parametrize("family, names", [
    ("gru", ["rnn_1_h", "rnn_2_h"]),
    ("lstm", ["rnn_1_h", "rnn_1_c", "rnn_2_h", "rnn_2_c"]),
])
def test_the_streaming_model_has_exactly_the_tensors_its_contract_declares(family, names):
    cfg = TINY[family]
    contract = family_of(cfg).contract(cfg, 257)
    streaming = family_of(cfg).build_streaming(cfg, 257)
    assert [s.input for s in contract.states] == names
    assert [s.kind for s in contract.states] == [n[-1] for n in names]
    assert set(streaming.input_names) == set(contract.input_names) == {"features", *names}
    assert set(streaming.output_names) == set(contract.output_names) == {"mask", *(n + "_out" for n in names)}
    assert contract.head.range == (0.0, 1.0) and contract.head.size == 257
    assert ExportGraph.single(contract).contract is contract == family_of(cfg).export_graph(cfg, 257).contract


def test_tinylstm_configuration_is_about_a_million_parameters():
    cfg = MaskRnnConfig(family="lstm", input_units=0, rnn_units=256, rnn_layers=2, dense_units=0)
    params = family_of(cfg).build_sequence(cfg, 257).count_params()
    assert 0.9e6 < params < 1.2e6


def test_families_are_registered_with_their_config_class_and_answer_the_interface():
    assert FAMILIES.names() == ["gru", "lstm", "nsnet2_exits"]
    cfg = experiment_from_dict({"name": "x", "model": {"family": "lstm", "rnn_units": 16}}).model
    assert type(cfg) is MaskRnnConfig and MaskRnnConfig(family="lstm", rnn_units=16) == cfg
    lstm, gru = FAMILIES.get("lstm"), FAMILIES.get("gru")
    assert lstm.layer_groups(cfg) == {"input": ("input_dense",), "rnn": ("rnn_1", "rnn_2"),
                                      "dense": ("dense_1", "dense_2"), "output": ("mask",)}
    assert lstm.compressible_layers(cfg) == ["input_dense", "rnn_1", "rnn_2", "dense_1", "dense_2"]
    assert lstm.output_layers(cfg) == ["mask"]
    assert (lstm.gates(cfg, "rnn_2"), gru.gates(cfg, "rnn_1"), lstm.gates(cfg, "dense_1")) == (4, 3, 1)
    assert lstm.group_width(cfg, "rnn") == 16 and lstm.group_width(cfg, "dense") == 128
    narrow = lstm.with_group_widths(cfg, {"rnn": 8, "input": 0})
    assert (narrow.rnn_units, narrow.input_units, type(narrow)) == (8, 0, MaskRnnConfig)
    assert "input" not in lstm.layer_groups(narrow)
    assert lstm.label(cfg) == "lstm-2x16"
    with pytest.raises(ValueError, match="output"):
        lstm.group_width(cfg, "output")


def test_loading_a_model_config_imports_no_tensorflow():
    code = ("import sys; from sepipe.config import load_experiment; c = load_experiment('experiments/demo.yaml'); "
            "from sepipe.models import family_of; family_of(c.model).contract(c.model, 257); "
            "import sepipe.runtime, sepipe.quantize.model_io, sepipe.quantize.schemes, sepipe.contract; "
            "assert 'tensorflow' not in sys.modules, 'tensorflow imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_foreign_model_gets_its_contract_from_the_naming_rule():
    contract = infer_contract({"x": (10,), "s_h": (4,)}, {"s_h_out": (4,), "gain": (10,)})
    assert contract.feature.name == "x" and [h.name for h in contract.heads] == ["gain"]
    assert [(s.input, s.output, s.units) for s in contract.states] == [("s_h", "s_h_out", 4)]
    assert ModelContract.from_dict(contract.to_dict()) == contract
    with pytest.raises(ValueError, match="feature input"):
        infer_contract({"a": (1,), "b": (1,)}, {"y": (1,)})


@pytest.mark.parametrize("family", ["gru", "lstm"])
def test_the_family_api_builds_the_keras_model_of_before(family):
    """The converter gets exactly the Keras model it got before families existed: same architecture
    JSON, same weights after the same seed, as the layers built by hand the way models/mask_rnn did."""
    from sepipe.models.keras_backend import keras

    cfg = TINY[family]
    keras.utils.set_random_seed(0)
    new = family_of(cfg).build_streaming(cfg, 257)
    keras.utils.set_random_seed(0)
    old = _streaming_model_of_before(cfg, 257)
    assert new.to_json() == old.to_json()
    for a, b in zip(new.get_weights(), old.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def _streaming_model_of_before(cfg, bins):
    from sepipe.models.keras_backend import keras

    cell_class = keras.layers.LSTMCell if cfg.family == "lstm" else keras.layers.GRUCell
    kinds = ("h", "c") if cfg.family == "lstm" else ("h",)
    layers = [f"rnn_{i + 1}" for i in range(cfg.rnn_layers)]
    features = keras.Input(shape=(bins,), batch_size=1, name="features")
    states = {f"{n}_{k}": keras.Input(shape=(cfg.rnn_units,), batch_size=1, name=f"{n}_{k}") for n in layers for k in kinds}
    before = [keras.layers.Dense(cfg.input_units, activation="relu", name="input_dense")] if cfg.input_units else []
    after = [keras.layers.Dense(cfg.dense_units, activation="relu", name=f"dense_{i + 1}")
             for i in range(2)] if cfg.dense_units else []
    after.append(keras.layers.Dense(bins, activation="sigmoid", name="mask"))
    outputs, x = {}, features
    for layer in before:
        x = layer(x)
    for name in layers:
        x, new = cell_class(cfg.rnn_units, name=name)(x, [states[f"{name}_{k}"] for k in kinds])
        for kind, state in zip(kinds, new):
            outputs[f"{name}_{kind}_out"] = keras.layers.Identity(name=f"{name}_{kind}_out")(state)
    for layer in after:
        x = layer(x)
    outputs["mask"] = x
    return keras.Model({"features": features, **states}, outputs, name=f"{cfg.family}_streaming")


@pytest.mark.slow
@pytest.mark.parametrize("family", ["gru", "lstm"])
def test_same_config_and_seed_give_the_bytes_of_before(family, tmp_path):
    from sepipe.quantize.convert import convert_untrained

    scheme, cfg = CONVERT_TINY[family]
    path = convert_untrained(cfg, 257, tmp_path / f"{family}.tflite", seed=0, scheme=scheme)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == BEFORE_REGISTRIES[family]


def test_the_quantization_scheme_is_registered_and_the_legacy_activations_key_still_loads():
    from sepipe.artifacts import sha256_json
    from sepipe.config import ConvertConfig
    from sepipe.errors import ConfigError
    from sepipe.quantize.schemes import SCHEMES, get_scheme

    assert SCHEMES.names() == ["int8", "int16x8", "mixed"]
    legacy = experiment_from_dict({"name": "x", "convert": {"activations": "int16"}}).convert
    new = experiment_from_dict({"name": "x", "convert": {"scheme": "int16x8"}}).convert
    assert legacy.scheme_name == new.scheme_name == "int16x8" and ConvertConfig().scheme_name == "int8"
    assert get_scheme("int16") is get_scheme("int16x8") and get_scheme("int16x8").io_dtype == "int16"
    # stored configs keep their fingerprints: `scheme` left out is not part of them
    assert sha256_json({"c": ConvertConfig()}) == sha256_json({"c": "ConvertConfig(calibration_files=8, "
                                                                    "calibration_frames=400)"})
    with pytest.raises(ConfigError, match="convert.scheme"):
        experiment_from_dict({"name": "x", "convert": {"scheme": "int4"}})
    with pytest.raises(ConfigError, match="convert.activations"):
        experiment_from_dict({"name": "x", "convert": {"scheme": "int8", "activations": "int16"}})
