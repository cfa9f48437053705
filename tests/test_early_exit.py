"""Early-exit nsNet2 (issue 16): the family's contract, each exit's streaming model cut from the joint
weights, the int8 exits against the joint int8 model, layer-wise training's frozen layers, the run-time
policy in Python and C, and one-line refusals of bad exits."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from sepipe.config import experiment_from_dict, load_experiment
from sepipe.early_exit import alternating_schedule, budget_schedule, golden_cases, pick_exit, write_golden
from sepipe.errors import ConfigError
from sepipe.models import family_of
from sepipe.models.nsnet2_exits import Nsnet2ExitsConfig

BINS = 257
STUB = Path(__file__).resolve().parents[1] / "firmware_stub"
EXPERIMENT = Path(__file__).resolve().parents[1] / "experiments" / "early_exit_demo.yaml"


def tiny(**fields) -> Nsnet2ExitsConfig:
    return Nsnet2ExitsConfig(family="nsnet2_exits", fc_units=16, rnn_units=12, dense_units=20, **fields)


def joint_and_exits(cfg):
    """The sequence model (seeded), the joint streaming model and each exit's, weights moved by name."""
    from sepipe.models.keras_backend import keras

    keras.utils.set_random_seed(0)
    family = family_of(cfg)
    sequence = family.build_sequence(cfg, BINS)
    joint = family.build_streaming(cfg, BINS)
    family.copy_weights(sequence, joint)
    exits = {}
    for n in range(1, len(cfg.exits) + 2):
        exits[n] = family.build_streaming(family.truncate(cfg, n, "exit"), BINS)
        family.copy_weights(sequence, exits[n])
    return sequence, joint, exits


def stream(model, contract, features: np.ndarray) -> dict[str, np.ndarray]:
    """Every output of a Keras streaming model over (T, bins) features, states fed back."""
    states = {s.input: np.zeros((1, s.units), np.float32) for s in contract.states}
    frames = []
    for t in range(len(features)):
        out = model({contract.feature.name: features[t:t + 1], **states})
        frames.append({k: v.numpy()[0] for k, v in out.items()})
        states = {s.input: out[s.output].numpy() for s in contract.states}
    return {k: np.stack([f[k] for f in frames]) for k in frames[0]}


@pytest.mark.parametrize("split_flow", [True, False])
def test_contract_matches_streaming_model_and_each_exit_holds_only_its_layers_and_states(split_flow):
    cfg = tiny(split_flow=split_flow)
    family = family_of(cfg)
    _, joint, exits = joint_and_exits(cfg)
    contract = family.contract(cfg, BINS)
    assert contract.head.name == "mask" and [h.name for h in contract.heads[1:]] == ["mask_exit1", "mask_exit2",
                                                                                      "mask_exit3"]
    assert set(joint.output_names) == set(contract.output_names)
    assert set(joint.input_names) == set(contract.input_names)
    expected_states = {1: ["rnn_1_h"], 2: ["rnn_1_h", "rnn_2_h"], 3: ["rnn_1_h", "rnn_2_h"], 4: ["rnn_1_h", "rnn_2_h"]}
    for n, model in exits.items():
        exit_cfg = family.truncate(cfg, n, "exit")
        own = family.contract(exit_cfg, BINS)
        assert [h.name for h in own.heads] == ["mask"]
        assert [s.input for s in own.states] == expected_states[n]
        assert set(model.input_names) == set(own.input_names) and set(model.output_names) == set(own.output_names)
        weighted = {layer.name for layer in model.layers if layer.get_weights()}
        assert weighted == set(family.exit_layers(cfg, n)), n


@pytest.mark.parametrize("split_flow", [True, False])
def test_each_exit_model_equals_the_joint_model_at_that_exit_frame_by_frame(split_flow):
    cfg = tiny(split_flow=split_flow)
    family = family_of(cfg)
    sequence, joint, exits = joint_and_exits(cfg)
    features = np.random.default_rng(1).normal(-6, 3, (12, BINS)).astype(np.float32)
    joint_out = stream(joint, family.contract(cfg, BINS), features)
    whole = sequence(features[None])
    for n, model in exits.items():
        head = family.head_name(cfg, n)
        own = stream(model, family.contract(family.truncate(cfg, n, "exit"), BINS), features)
        np.testing.assert_array_equal(own["mask"], joint_out[head])          # the same float ops: exact
        np.testing.assert_allclose(own["mask"], whole[head].numpy()[0], atol=1e-5)   # GRU vs GRUCell order


def test_int8_exit_model_matches_the_joint_int8_model_within_one_lsb(tmp_path):
    """Each converted separately, calibrated on the same frames: exit 1's int8 mask against the joint
    int8 model's mask_exit1, and exit 4's against its mask, at most 1 LSB (1/256) apart."""
    from sepipe.quantize.calibration import CalibrationSet, save_calibration
    from sepipe.quantize.convert import convert_quantized
    from sepipe.runtime import make_runner

    cfg = tiny()
    family = family_of(cfg)
    sequence, joint, exits = joint_and_exits(cfg)
    rng = np.random.default_rng(2)
    features = rng.normal(-6, 3, (80, BINS)).astype(np.float32)
    recorded = stream(joint, family.contract(cfg, BINS), features)
    calibration = {"features": features,
                   "rnn_1_h": np.concatenate([np.zeros((1, 12)), recorded["rnn_1_h_out"][:-1]]).astype(np.float32),
                   "rnn_2_h": np.concatenate([np.zeros((1, 12)), recorded["rnn_2_h_out"][:-1]]).astype(np.float32)}
    ints = {}
    for label, model_cfg, model in (("joint", cfg, joint), (1, family.truncate(cfg, 1, "e"), exits[1]),
                                    (4, family.truncate(cfg, 4, "e"), exits[4])):
        folder = tmp_path / str(label)
        folder.mkdir()
        model.save_weights(str(folder / "streaming.weights.h5"))
        inputs = {s.input: calibration[s.input] for s in family.contract(model_cfg, BINS).states}
        save_calibration(CalibrationSet({"features": features, **inputs}, {"source": "test"}), folder / "cal.npz")
        tflite = convert_quantized(model_cfg, BINS, folder / "streaming.weights.h5", folder / "cal.npz",
                                   folder / "model.tflite")
        ints[label] = make_runner("tflite", tflite_bytes=tflite.read_bytes()).run_recorded(features)[1]
    for n, head in ((1, "mask_exit1"), (4, "mask")):
        gap = np.abs(ints[n]["mask"].astype(int) - ints["joint"][head].astype(int)).max()
        assert gap <= 1, (n, gap)


def test_layerwise_training_freezes_each_exit_once_trained(small_dataset, tmp_path, monkeypatch):
    from sepipe.train import Trainer

    cfg = experiment_from_dict({
        "name": "layerwise", "seed": 0, "data": {"cache_dir": small_dataset.cfg.cache_dir},
        "model": {"family": "nsnet2_exits", "fc_units": 8, "rnn_units": 8, "dense_units": 8,
                  "exit_training": "layerwise"},
        "train": {"epochs": 4, "steps_per_epoch": 1, "batch_size": 2, "valid_files": 1, "patience": 4}})
    trainer = Trainer(cfg, small_dataset, Path(tmp_path))
    snapshots, validate = [], trainer.validate

    def snapshot():
        snapshots.append({layer.name: [w.copy() for w in layer.get_weights()] for layer in trainer.model.layers
                          if layer.get_weights()})
        return validate()

    monkeypatch.setattr(trainer, "validate", snapshot)
    before = {layer.name: [w.copy() for w in layer.get_weights()] for layer in trainer.model.layers if layer.get_weights()}
    trainer.run(progress=False)
    assert len(snapshots) == 4
    phases = family_of(cfg.model).training_phases(cfg.model, BINS)
    history = [before] + snapshots
    for epoch, phase in enumerate(phases):
        for name in before:
            same = all(np.array_equal(a, b) for a, b in zip(history[epoch][name], history[epoch + 1][name]))
            assert same == (name not in phase.layers), (epoch, name)


def test_policy_picks_the_deepest_exit_that_fits():
    cycles = [10_000, 20_000, 30_000, 45_000]
    assert [pick_exit(cycles, b) for b in (0, 9_999, 10_000, 29_999, 30_000, 10**9)] == [0, 0, 1, 2, 3, 4]
    assert pick_exit([5, 50, 7], 10) == 3                   # from the deepest: cycles need not rise
    assert list(budget_schedule(cycles, [50_000, 15_000])) == [4, 1]
    assert list(alternating_schedule(5, [1, 4], 2)) == [1, 1, 4, 4, 1]


def test_c_policy_matches_python_on_golden_vectors(tmp_path):
    if shutil.which("cc") is None:
        pytest.fail("no C compiler (cc): run `make firmware-toolchain`")
    cases = write_golden(tmp_path / "cases.txt", golden_cases())
    result = subprocess.run(["make", "-s", "-C", str(STUB), "early-exit-test", f"CASES={cases}",
                             f"BUILD={tmp_path / 'build'}"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(golden_cases())} cases, 0 wrong" in result.stdout
    broken = tmp_path / "broken.txt"
    broken.write_text("2 10 20 15 2\n")                     # Python says 1: the C test must fail
    result = subprocess.run(["make", "-s", "-C", str(STUB), "early-exit-test", f"CASES={broken}",
                             f"BUILD={tmp_path / 'build'}"], capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and "exit 1, Python 2" in result.stderr


@pytest.mark.parametrize("variant, model, message", [
    ({"name": "e", "kind": "exit", "exit": 5}, {}, r"variants\[e\]\.exit' = 5 .*an exit from 1 to 4"),
    ({"name": "e", "kind": "exit", "exit": 0}, {}, r"variants\[e\]\.exit' = 0"),
    ({"name": "e", "kind": "exit", "exit": "two"}, {}, r"variants\[e\]\.exit"),
    ({"name": "e", "kind": "exit", "exit": 3}, {"model.exits": ["rnn_1"], "model.exit_weights": []},
     r"an exit from 1 to 2"),
    ({"name": "e", "kind": "exit", "exit": 1}, {"model.family": "gru"}, r"family with exits"),
    ({"name": "e", "kind": "exit", "exit": 1, "finetune_epochs": 2}, {}, r"finetune_epochs' = 2 .*0 for kind 'exit'"),
    ({"name": "e", "kind": "exit", "exit": 1, "qat": True}, {}, r"qat' = True .*false for kind 'exit'"),
])
def test_bad_exit_values_are_one_line_errors(variant, model, message):
    overrides = {"variants": [{"name": "ptq", "kind": "ptq"}, variant], **model}
    if model.get("model.family") == "gru":
        overrides = {"variants": overrides["variants"], "model": {"family": "gru"}}
    with pytest.raises(ConfigError, match=message) as caught:
        load_experiment(EXPERIMENT, overrides)
    assert "\n" not in str(caught.value) and caught.value.exit_code == 2


@pytest.mark.parametrize("model, message", [
    ({"model.exits": ["rnn_2", "rnn_1"]}, r"model\.exits"),
    ({"model.exits": ["dense_2"]}, r"model\.exits"),
    ({"model.exit_weights": [1, 1]}, r"model\.exit_weights"),
    ({"model.exit_weights": [0, 0, 0, 0]}, r"model\.exit_weights"),
    ({"model.deploy_exit": 9}, r"model\.deploy_exit"),
])
def test_bad_exit_model_keys_are_one_line_errors(model, message):
    with pytest.raises(ConfigError, match=message) as caught:
        load_experiment(EXPERIMENT, model)
    assert "\n" not in str(caught.value)


def test_the_experiment_files_load():
    root = EXPERIMENT.parent
    demo = load_experiment(EXPERIMENT)
    assert [v.kind for v in demo.variants] == ["ptq", "exit", "exit", "exit", "exit"]
    full = load_experiment(root / "early_exit.yaml")
    assert (full.model.fc_units, full.model.rnn_units, full.model.dense_units) == (400, 400, 600)
    for n in range(1, 5):
        separate = load_experiment(root / f"early_exit_separate{n}.yaml")
        weights = family_of(separate.model).exit_weights(separate.model)
        assert [w > 0 for w in weights] == [i == n - 1 for i in range(4)]
        assert dataclasses.replace(separate.model, exit_weights=()) == dataclasses.replace(full.model, exit_weights=())


@pytest.mark.slow
def test_an_experiment_with_exit_variants_runs_every_stage(small_data_config, tmp_path, monkeypatch, capsys):
    """Train a tiny joint model a few steps, then every exit as its own variant: converted, compiled by Vela,
    evaluated; each exit's .tflite holds only its states, and its Vela cycles rise with depth."""
    import json

    import yaml

    from sepipe.cli.main import main
    from sepipe.early_exit import exit_cycles
    from sepipe.quantize.model_io import tflite_io

    monkeypatch.setenv("SEPIPE_VELA_CACHE", str(tmp_path / "vela_cache"))
    raw = yaml.safe_load(EXPERIMENT.read_text())
    raw.update({"name": "ee", "runs_dir": str(tmp_path / "runs"), "data": {"cache_dir": small_data_config.cache_dir},
                "model": {**raw["model"], "fc_units": 16, "rnn_units": 12, "dense_units": 20},
                "train": {"epochs": 1, "steps_per_epoch": 2, "batch_size": 4, "valid_files": 1},
                "convert": {"calibration_files": 2, "calibration_frames": 64},
                "compile": {"targets": ["ethos-u55-128"]},
                "evaluate": {"test_files": 1, "dnsmos": False, "write_audio": 0, "baselines": ["noisy"],
                             "interpreters": ["tflite"]}})
    path = tmp_path / "ee.yaml"
    path.write_text(yaml.safe_dump(raw))
    assert main(["-q", "run", str(path)]) == 0, capsys.readouterr().err
    run = tmp_path / "runs" / "ee"
    states = {n: sorted(s.input for s in tflite_io((run / f"ee_exit{n}.tflite").read_bytes()).contract.states)
              for n in range(1, 5)}
    assert states == {1: ["rnn_1_h"], 2: ["rnn_1_h", "rnn_2_h"], 3: ["rnn_1_h", "rnn_2_h"], 4: ["rnn_1_h", "rnn_2_h"]}
    joint = tflite_io((run / "ee_ptq.tflite").read_bytes()).contract
    assert {h.name for h in joint.heads} == {"mask", "mask_exit1", "mask_exit2", "mask_exit3"}
    cycles = exit_cycles(run, "ee", ["exit1", "exit2", "exit3", "exit4", "ptq"], "ethos-u55-128")
    assert cycles[:4] == sorted(cycles[:4]) and cycles[4] > cycles[3]
    manifest = json.loads((run / "manifest.json").read_text())["stages"]
    assert all(f"evaluate:exit{n}" in manifest for n in range(1, 5))


def test_a_pruned_variant_of_a_multi_exit_model_fine_tunes_every_head(small_dataset, tmp_path):
    """Fine-tuning (the shared loop of weight/block/unit/QAT) trains on every exit's weighted loss: a
    weight-pruned variant of the joint model keeps all heads, and its exit cut holds the pruned weights."""
    from sepipe.compress import VariantConfig, finetune_variant
    from sepipe.models.keras_backend import keras

    cfg = experiment_from_dict({
        "name": "pruned", "seed": 0, "data": {"cache_dir": small_dataset.cfg.cache_dir},
        "model": {"family": "nsnet2_exits", "fc_units": 8, "rnn_units": 8, "dense_units": 8},
        "train": {"epochs": 1, "steps_per_epoch": 1, "batch_size": 2, "valid_files": 1}})
    keras.utils.set_random_seed(0)
    base = family_of(cfg.model).build_sequence(cfg.model, BINS)
    base.save_weights(str(tmp_path / "sequence.weights.h5"))
    variant = VariantConfig.create("w50", "weight", sparsity=0.5, finetune_epochs=1, finetune_steps_per_epoch=2)
    result = finetune_variant(variant, cfg, small_dataset, tmp_path / "sequence.weights.h5", tmp_path / "w50",
                              progress=False)
    assert result.stats["steps"]["total"] == 2 and result.stats["nonzero_params"] < result.stats["params"]
    tuned = family_of(cfg.model).build_sequence(cfg.model, BINS)
    tuned.load_weights(str(tmp_path / "w50" / "sequence.weights.h5"))
    for head in ("mask_exit1", "mask_exit2", "mask_exit3", "mask"):      # every exit's loss reached its head
        assert not np.array_equal(tuned.get_layer(head).get_weights()[0], base.get_layer(head).get_weights()[0]), head
