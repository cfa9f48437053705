"""Compression variants (sepipe.compress): weight / block / m-by-n / unit pruning, QAT, offline, ptq.

Tiny GRU and LSTM models (input 32, 2 x 24 recurrent units, dense 32, 257 bins), 1-second segments,
batch 4, 3-4 fine-tuning steps; each variant is fine-tuned once per module and converted once.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from sepipe.models.keras_backend import tf
from sepipe.models import family_of
from sepipe.compress import compressor_of, finetune_variant, offline_prune_tflite, tflite_sparsity
from sepipe.compress import units as units_mod
from sepipe.compress.finetune import FineTuneSession, fake_quantize
from sepipe.compress.qat import quantizable_variables
from sepipe.compress.sparsity import keras_sparsity, tflite_zero_masks
from sepipe.compress.tflite_weights import fc_weight_tensors
from sepipe.config import DataConfig, ModelConfig, VariantConfig, experiment_from_dict
from sepipe.quantize.calibration import collect_calibration, save_calibration
from sepipe.quantize.convert import convert_quantized
from sepipe.quantize.model_io import tflite_io, validate_quantized_model
from sepipe.errors import ConfigError
from sepipe.features import features as compute_features
from sepipe.train import set_determinism

REPO = Path(__file__).resolve().parents[1]
PRUNED = ["input_dense", "rnn_1", "rnn_2", "dense_1", "dense_2"]


def experiment(family: str):
    return experiment_from_dict({
        "name": "compress", "seed": 0,
        "data": {"cache_dir": str(REPO / ".cache"), "segment_s": 1.0},
        "model": {"family": family, "input_units": 32, "rnn_units": 24, "dense_units": 32},
        "train": {"batch_size": 4, "valid_files": 1},
        "convert": {"calibration_files": 2, "calibration_frames": 64},
    })


def variant(name: str, kind: str, **kw) -> VariantConfig:
    kw.setdefault("finetune_epochs", 1)
    kw.setdefault("finetune_steps_per_epoch", 3)
    return VariantConfig.create(name=name, kind=kind, **kw)


class Env:
    """A family's config, 1-s-segment dataset, base weights (a few training steps) and a calibration helper."""

    def __init__(self, family, small_dataset, root: Path):
        from sepipe.data import Dataset

        self.cfg = experiment(family)
        self.root = root
        set_determinism(self.cfg.seed)        # the base's random init, whatever ran before in this process
        # the shared fixture builds the dataset; open it again with 1-second training segments
        self.dataset = Dataset.open(dataclasses.replace(small_dataset.cfg, segment_s=1.0))
        self.bins = self.cfg.features.bins
        self.family = family_of(self.cfg.model)
        model = self.family.build_sequence(self.cfg.model, self.bins)
        session = FineTuneSession(self.cfg, self.dataset, steps_per_epoch=4, epochs=1, learning_rate=3e-3)
        session.train(model, 4, phase="base")     # a base that is not just its random init
        self.base = root / "base" / "sequence.weights.h5"
        self.base.parent.mkdir(parents=True)
        model.save_weights(str(self.base))
        self.features = [compute_features(p.noisy[:16000 * 2], self.cfg.features)[0]
                         for p in small_dataset.pairs("test", limit=2)]
        self._results = {}

    def run(self, v: VariantConfig):
        if v.name not in self._results:
            self._results[v.name] = finetune_variant(v, self.cfg, self.dataset, self.base, self.root / v.name,
                                                     progress=False)
        return self._results[v.name]

    def streaming(self, model_cfg: ModelConfig, weights: Path):
        model = self.family.build_streaming(model_cfg, self.bins)
        model.load_weights(str(weights))
        return model

    def convert(self, name: str, model_cfg: ModelConfig, weights: Path) -> bytes:
        cal = collect_calibration(self.streaming(model_cfg, weights), self.features, frames=64, seed=0)
        cal_path = save_calibration(cal, self.root / name / "calibration.npz")
        out = convert_quantized(model_cfg, self.bins, weights, cal_path, self.root / name / "model.tflite")
        return out.read_bytes()


@pytest.fixture(scope="module")
def gru(small_dataset, tmp_path_factory):
    return Env("gru", small_dataset, tmp_path_factory.mktemp("gru"))


@pytest.fixture(scope="module")
def lstm(small_dataset, tmp_path_factory):
    return Env("lstm", small_dataset, tmp_path_factory.mktemp("lstm"))


@pytest.fixture(scope="module")
def ptq_tflite(gru):
    result = gru.run(variant("ptq", "ptq"))
    return gru.convert("ptq", result.model_cfg, result.streaming_weights)


def kernels(streaming, layer):
    owner = getattr(streaming.get_layer(layer), "cell", streaming.get_layer(layer))
    recurrent = getattr(owner, "recurrent_kernel", None)
    return {"kernel": owner.kernel.numpy(), "recurrent_kernel": None if recurrent is None else recurrent.numpy()}


# ------------------------------------------------------------------------------------ ptq / zero sparsity
@pytest.mark.slow
def test_ptq_and_zero_sparsity_are_the_base_weights(gru):
    base = gru.family.build_sequence(gru.cfg.model, gru.bins)
    base.load_weights(str(gru.base))
    expected = gru.family.build_streaming(gru.cfg.model, gru.bins)
    gru.family.copy_weights(base, expected)
    for v in (variant("ptq", "ptq"), variant("w0", "weight", sparsity=0.0),
              variant("b0", "block", sparsity=0.0, block=(1, 8)), variant("u0", "unit", sparsity=0.0)):
        result = gru.run(v)
        assert result.model_cfg == gru.cfg.model and not result.qat
        got = gru.streaming(result.model_cfg, result.streaming_weights)
        for a, b in zip(got.get_weights(), expected.get_weights()):
            np.testing.assert_array_equal(a, b)
        assert result.stats["steps"]["total"] == 0


# ------------------------------------------------------------------------------------ weight pruning
@pytest.mark.slow
def test_weight_pruning_reaches_target_and_survives_conversion(gru):
    result = gru.run(variant("w50", "weight", sparsity=0.5, finetune_steps_per_epoch=4))
    streaming = gru.streaming(result.model_cfg, result.streaming_weights)
    per_layer = keras_sparsity(streaming)["per_layer"]
    for layer in PRUNED:
        for weight in ("kernel", "recurrent_kernel"):
            if weight in per_layer[layer]:
                assert per_layer[layer][weight]["sparsity"] == pytest.approx(0.5, abs=0.01), (layer, weight)
    assert per_layer["mask"]["zeros"] == 0                 # the output layer stays dense
    assert result.stats["history"][-1]["phase"] == "prune"

    tflite = gru.convert("w50", result.model_cfg, result.streaming_weights)
    zero_masks = tflite_zero_masks(tflite)
    counted = tflite_sparsity(tflite)
    for layer in PRUNED:
        for weight, array in kernels(streaming, layer).items():
            if array is None:
                continue
            in_tflite = zero_masks[(layer, weight)]
            assert in_tflite.shape == array.shape
            # every Keras zero is an int8 zero, and the counts match (docs/toolchain.md: zero count survives conversion)
            assert np.all(in_tflite[array == 0]), (layer, weight)
            assert int(in_tflite.sum()) == int(np.sum(array == 0)), (layer, weight)
    assert counted["zeros"] >= keras_sparsity(streaming)["zeros"]


@pytest.mark.slow
def test_per_layer_targets(gru):
    v = variant("pl", "weight", sparsity=0.3, layers=("rnn_1=0.8", "dense_1"))
    assert compressor_of(v).layer_targets(gru.cfg.model) == {"rnn_1": 0.8, "dense_1": 0.3}
    with pytest.raises(ConfigError, match=r"variants\[bad\].layers"):
        compressor_of(variant("bad", "weight", layers=("nope",))).layer_targets(gru.cfg.model)
    with pytest.raises(ConfigError, match="a bare layer name for kind 'unit'"):
        compressor_of(variant("u", "unit", layers=("rnn_1=0.5",))).layer_targets(gru.cfg.model)
    result = gru.run(dataclasses.replace(v, finetune_epochs=0))      # one-shot
    per_layer = result.stats["sparsity"]["per_layer"]
    assert per_layer["rnn_1"]["sparsity"] == pytest.approx(0.8, abs=0.01)
    assert per_layer["dense_1"]["sparsity"] == pytest.approx(0.3, abs=0.01)
    assert per_layer["rnn_2"]["zeros"] == per_layer["input_dense"]["zeros"] == 0


# ------------------------------------------------------------------------------------ block / m-by-n
@pytest.mark.slow
@pytest.mark.parametrize("block", [(1, 8), (4, 4)])
def test_block_pruned_kernels_are_zero_in_whole_blocks(gru, block):
    result = gru.run(variant(f"b{block[0]}x{block[1]}", "block", sparsity=0.5, block=block))
    streaming = gru.streaming(result.model_cfg, result.streaming_weights)
    rows, cols = block
    for layer in PRUNED:
        for weight, array in kernels(streaming, layer).items():
            if array is None:
                continue
            r, c = (array.shape[0] // rows) * rows, (array.shape[1] // cols) * cols
            array = array[:r, :c]                     # whole blocks (input_dense has 257 rows)
            zeros_per_block = (array == 0).reshape(r // rows, rows, c // cols, cols).sum(axis=(1, 3))
            assert set(np.unique(zeros_per_block)) <= {0, rows * cols}, (layer, weight)
            assert (array == 0).mean() == pytest.approx(0.5, abs=0.05), (layer, weight)


@pytest.mark.slow
def test_two_of_four(gru):
    result = gru.run(variant("m24", "block", m_by_n=(2, 4)))
    streaming = gru.streaming(result.model_cfg, result.streaming_weights)
    for layer in PRUNED:
        for weight, array in kernels(streaming, layer).items():
            if array is None:
                continue
            # TFMOT's m-by-n groups run along the input axis (Keras kernel rows) of every output column
            rows = array.shape[0] // 4 * 4
            groups = (array[:rows] == 0).T.reshape(array.shape[1], -1, 4).sum(axis=-1)
            assert np.all(groups >= 2), (layer, weight)
            assert (array == 0).mean() == pytest.approx(0.5, abs=0.01)


# ------------------------------------------------------------------------------------ QAT
def test_fake_quantize_matches_int8_grid_and_keeps_zeros():
    w = np.random.default_rng(0).normal(size=(16, 8)).astype(np.float32)
    w[::3] = 0.0
    q = fake_quantize(tf.constant(w)).numpy()
    scale = np.abs(w).max(axis=0) / 127
    np.testing.assert_allclose(q / scale, np.round(q / scale), atol=1e-3)
    assert np.all(q[w == 0] == 0) and np.abs(q - w).max() <= scale.max() / 2 + 1e-6


@pytest.mark.slow
def test_qat_keeps_the_sparsity_pattern(gru):
    """Block pruning, then QAT with the masks held: the pattern and the exact zero count are unchanged, the
    weights that are not pruned still move, and the int8 model has the same zeros."""
    result = gru.run(variant("bq", "block", sparsity=0.5, block=(1, 8), qat=True, finetune_steps_per_epoch=4))
    assert result.qat and result.stats["steps"] == {"total": 4, "prune": 3, "qat": 1}
    assert [h["phase"] for h in result.stats["history"]] == ["qat"]
    streaming = gru.streaming(result.model_cfg, result.streaming_weights)
    tflite = gru.convert("bq", result.model_cfg, result.streaming_weights)
    zero_masks = tflite_zero_masks(tflite)
    for layer in PRUNED:
        for weight, array in kernels(streaming, layer).items():
            if array is None:
                continue
            zeros = (array == 0).reshape(array.shape[0], -1, 8).sum(axis=-1)
            assert set(np.unique(zeros)) <= {0, 8}, (layer, weight)
            assert (array == 0).mean() == pytest.approx(0.5, abs=0.05)
            in_tflite = zero_masks[(layer, weight)]
            assert np.all(in_tflite[array == 0]), (layer, weight)            # the mask survives conversion
            # int8 rounding may add a few zeros (|w| < scale / 2 of its channel), never remove one
            assert 0 <= int(in_tflite.sum()) - int(np.sum(array == 0)) <= 0.005 * array.size, (layer, weight)


@pytest.mark.slow
def test_qat_step_holds_masks_and_regrows_without_them(gru):
    model = gru.family.build_sequence(gru.cfg.model, gru.bins)
    model.load_weights(str(gru.base))
    kernel = model.get_layer("rnn_1").cell.recurrent_kernel
    keep = (np.random.default_rng(1).random(kernel.shape) > 0.6).astype(np.float32)
    kernel.assign(kernel.numpy() * keep)
    before = kernel.numpy().copy()
    session = FineTuneSession(gru.cfg, gru.dataset, steps_per_epoch=10, epochs=1, learning_rate=1e-3)
    session.train(model, 2, phase="qat", masks=[(kernel, keep)], quantize=quantizable_variables(model))
    after = kernel.numpy()
    np.testing.assert_array_equal(after == 0, before == 0)
    assert not np.allclose(after[keep == 1], before[keep == 1])           # trained, in float
    assert len(quantizable_variables(model)) == 4 + 2 * 2          # 4 Dense kernels + 2 RNN kernel pairs
    session.train(model, 1, phase="qat", quantize=quantizable_variables(model))    # no masks: regrows
    assert np.count_nonzero(kernel.numpy() == 0) < np.count_nonzero(before == 0)


# ------------------------------------------------------------------------------------ unit pruning
@pytest.mark.parametrize("family", ["gru", "lstm"])
def test_unit_surgery_is_exact_for_dead_units(family):
    """Units whose incoming weights and biases are zero output exactly 0: removing them changes nothing."""
    cfg = experiment_from_dict({"name": "x", "model": {"family": family, "input_units": 12, "rnn_units": 8,
                                                        "dense_units": 10}}).model
    model = family_of(cfg).build_sequence(cfg, 257)
    rng = np.random.default_rng(0)
    for w in model.weights:
        w.assign(rng.normal(scale=0.3, size=w.shape).astype(np.float32))
    drop = {"input_dense": [1, 5], "rnn_1": [0, 7, 3], "rnn_2": [2, 4, 6], "dense_1": [9, 0], "dense_2": [3, 4]}
    for name, idx in drop.items():
        layer = model.get_layer(name)
        n_gates = family_of(cfg).gates(cfg, name)
        units = units_mod.width(cfg, name)
        cols = np.concatenate([g * units + np.array(idx) for g in range(n_gates)])
        arrays = layer.get_weights()
        arrays[0][:, cols] = 0
        arrays[-1][..., cols] = 0                                # bias (GRU: (2, 3u))
        if n_gates > 1:
            arrays[1][:, cols] = 0                               # recurrent inputs of the dropped units
        layer.set_weights(arrays)
    keep = {n: np.setdiff1d(np.arange(units_mod.width(cfg, n)), idx) for n, idx in drop.items()}
    new_cfg, weights = units_mod.narrow(cfg, units_mod.model_weights(model, cfg), keep)
    assert (new_cfg.input_units, new_cfg.rnn_units, new_cfg.dense_units) == (10, 5, 8)
    narrow_model = units_mod.build_with_weights(new_cfg, 257, weights)
    x = rng.normal(size=(2, 20, 257)).astype(np.float32)
    np.testing.assert_allclose(narrow_model(x).numpy(), model(x).numpy(), atol=1e-5)
    with pytest.raises(ValueError, match="equally wide"):
        units_mod.narrow(cfg, units_mod.model_weights(model, cfg), {"rnn_1": keep["rnn_1"]})


@pytest.mark.slow
@pytest.mark.parametrize("family", ["gru", "lstm"])
def test_unit_pruning_narrows_the_model_cuts_macs_and_shrinks_states(request, family, tmp_path):
    from sepipe.deploy.compile import compile_model

    env = request.getfixturevalue(family)
    result = env.run(variant("u50", "unit", sparsity=0.5, finetune_steps_per_epoch=4))
    narrow = result.model_cfg
    assert (narrow.input_units, narrow.rnn_units, narrow.dense_units) == (16, 12, 16)
    assert result.stats["params"] < result.stats["base_params"] / 2
    assert result.stats["units"]["stages"] and result.stats["units"]["criterion"] == "activation"

    base = env.run(variant("ptq", "ptq"))
    macs = {}
    for name, res in (("ptq", base), ("u50", result)):
        tflite = env.convert(name, res.model_cfg, res.streaming_weights)
        io = tflite_io(tflite)
        states = [t for t in io.inputs if t.name != "features"]
        assert {t.shape[-1] for t in states} == {res.model_cfg.rnn_units}
        assert len(io.state_pairs) == len(states) == (4 if family == "lstm" else 2)
        record = compile_model(env.root / name / "model.tflite", "ethos-u55-128", tmp_path / name,
                               f"{family}_{name}").record
        macs[name] = record["nn_macs"]
    assert macs["u50"] < 0.6 * macs["ptq"], macs


@pytest.mark.slow
def test_unit_plus_weight_pruning_narrows_then_sparsifies_and_the_zeros_reach_the_tflite(gru):
    result = gru.run(variant("u50w80", "unit", sparsity=0.5, weight_sparsity=0.8, finetune_epochs=4,
                                 finetune_steps_per_epoch=4))
    narrow = result.model_cfg
    assert (narrow.input_units, narrow.rnn_units, narrow.dense_units) == (16, 12, 16)
    assert result.stats["steps"]["total"] == 16 and result.stats["schedule"]["steps"] == 8
    per_layer = result.stats["sparsity"]["per_layer"]
    for name in result.stats["pruned_layers"]:
        assert per_layer[name]["sparsity"] == pytest.approx(0.8, abs=0.02), (name, per_layer[name])
    assert per_layer["mask"]["sparsity"] < 0.1          # the mask layer stays dense
    tflite = gru.convert("u50w80", narrow, result.streaming_weights)
    assert tflite_sparsity(tflite)["zeros"] >= result.stats["sparsity"]["zeros"] - per_layer["mask"]["zeros"]


def test_weight_sparsity_is_only_for_unit_variants():
    with pytest.raises(ConfigError, match="weight_sparsity"):
        experiment_from_dict({"name": "x", "variants": [{"name": "w", "kind": "weight", "weight_sparsity": 0.5}]})


@pytest.mark.slow
def test_unit_layers_must_cover_a_group(gru):
    with pytest.raises(ConfigError, match="whole groups"):
        gru.run(variant("u_bad", "unit", sparsity=0.5, layers=("rnn_1",)))


# ------------------------------------------------------------------------------------ offline
@pytest.mark.slow
def test_offline_pruning_touches_only_the_smallest_fc_weights(ptq_tflite, tmp_path):
    assert offline_prune_tflite(ptq_tflite, 0.0) == ptq_tflite
    pruned = offline_prune_tflite(ptq_tflite, 0.6)
    assert len(pruned) == len(ptq_tflite)
    before = {t.name: t for t in fc_weight_tensors(ptq_tflite)}
    after = {t.name: t for t in fc_weight_tensors(pruned)}
    assert before.keys() == after.keys()
    weight_bytes = np.zeros(len(ptq_tflite), bool)
    for name, t in before.items():
        old, new = t.values, after[name].values
        changed = old != new
        if t.layer == "mask":
            assert not changed.any()                           # the output layer is left dense
        else:
            assert (new == 0).mean() == pytest.approx(0.6, abs=0.5 / new.size)
            assert np.all(new[changed] == 0)
            mags = t.magnitudes()
            assert mags[changed].max(initial=0) <= mags[new != 0].min()   # the smallest went first
        start = t.values.ctypes.data - np.frombuffer(ptq_tflite, np.uint8).ctypes.data
        weight_bytes[start:start + old.size] = True
    diff = np.frombuffer(ptq_tflite, np.uint8) != np.frombuffer(pruned, np.uint8)
    assert diff.any() and not (diff & ~weight_bytes).any()     # nothing outside weight data changed
    path = tmp_path / "offline.tflite"
    path.write_bytes(pruned)
    validate_quantized_model(path)
    stats = tflite_sparsity(pruned)
    assert stats["zeros"] > tflite_sparsity(ptq_tflite)["zeros"]
    assert set(stats["per_tensor"]) == set(before)


@pytest.mark.slow
def test_offline_variant_has_nothing_to_train_and_prunes_the_dense_int8_model(gru, ptq_tflite):
    off = variant("off", "offline", sparsity=0.5)
    result = gru.run(off)
    assert result.streaming_weights is None and result.model_cfg == gru.cfg.model
    compressor = compressor_of(off)
    assert compressor.derives_from_dense_model and not compressor.trains_float_model
    # the family's output head (mask) is left dense, as offline_prune_tflite's default does
    assert compressor.apply_to_quantized(ptq_tflite, gru.cfg.model) == offline_prune_tflite(ptq_tflite, 0.5)


# ------------------------------------------------------------------------------------ the compressor interface
@pytest.mark.parametrize("kind, fields, structure, trains", [
    ("ptq", {}, "dense", False),
    ("ptq", {"qat": True}, "dense", True),
    ("weight", {"sparsity": 0.8}, "weight", True),
    ("block", {"sparsity": 0.8, "block": (4, 4)}, "block 4x4", True),
    ("block", {"m_by_n": (2, 4)}, "block 2:4", True),
    ("unit", {"sparsity": 0.5}, "unit", True),
    ("unit", {"sparsity": 0.5, "weight_sparsity": 0.8}, "unit+weight", True),
    ("offline", {"sparsity": 0.5}, "offline", False),
])
def test_each_kind_says_its_structure_and_whether_it_trains(kind, fields, structure, trains):
    compressor = compressor_of(variant("v", kind, **fields))
    assert compressor.structure == structure
    assert compressor.trains_float_model is trains
    assert compressor.dense_reference is (kind == "ptq")
    assert compressor.derives_from_dense_model is (kind == "offline")


def test_a_kind_prunes_only_what_it_targets(gru):
    """Weight/block targets are per layer; unit targets none (it narrows groups); ptq prunes nothing."""
    model = gru.cfg.model
    assert compressor_of(variant("p", "ptq")).layer_targets(model) == {}
    assert compressor_of(variant("u", "unit", sparsity=0.5)).layer_targets(model) == {}
    assert compressor_of(variant("u", "unit", sparsity=0.5)).prunes({})
    assert not compressor_of(variant("u", "unit")).prunes({})
    assert compressor_of(variant("w", "weight", sparsity=0.5)).layer_targets(model) == dict.fromkeys(PRUNED, 0.5)
    assert compressor_of(variant("m", "block", m_by_n=(2, 4))).prunes(dict.fromkeys(PRUNED, 0.0))
    assert not compressor_of(variant("b", "block", block=(1, 8))).prunes(dict.fromkeys(PRUNED, 0.0))

