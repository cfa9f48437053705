"""Weight clustering (kind 'cluster', sepipe.compress.clustering): the codebook and snapping, the config's
one-line errors, and on a briefly fine-tuned tiny GRU: at most N distinct int8 values per weight tensor in
the converted .tflite (so per channel too), zeros kept through clustering, and Vela's encoded weights
shrinking with fewer clusters."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from sepipe.models.keras_backend import tf
from sepipe.compress import compressor_of, finetune_variant, tflite_sparsity
from sepipe.compress.clustering import cluster_int8, distinct_int8_codes, init_codebook, snap
from sepipe.compress.finetune import FineTuneSession, fake_quantize
from sepipe.config import VariantConfig, experiment_from_dict
from sepipe.errors import ConfigError, one_line
from sepipe.features import features as compute_features
from sepipe.models import family_of
from sepipe.train import set_determinism

REPO = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------------ codebook and snapping
def random_kernel(seed: int = 0, zeros: float = 0.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    w = (rng.standard_normal((40, 24)) * rng.uniform(0.05, 0.5, 24)).astype(np.float32)
    w[rng.random(w.shape) < zeros] = 0.0
    return w


@pytest.mark.parametrize("clusters, zeros", [(4, 0.0), (8, 0.0), (16, 0.0), (8, 0.6)])
def test_snapped_weights_are_at_most_n_int8_codes_shared_by_every_channel(clusters, zeros):
    w = random_kernel(zeros=zeros)
    codes = init_codebook(w, clusters, keep_zeros=zeros > 0)
    assert len(codes) <= clusters and np.all(codes == np.round(codes)) and codes.max() == 127
    snapped = snap(tf.constant(w), tf.constant(codes)).numpy()
    # the converter's per-channel scale is unchanged, and quantising with it gives the codes exactly
    np.testing.assert_allclose(np.abs(snapped).max(0), np.abs(w).max(0), rtol=1e-6)
    q = np.round(snapped / (np.abs(snapped).max(0) / 127))
    assert set(np.unique(q)) <= set(codes)
    np.testing.assert_allclose(fake_quantize(tf.constant(snapped)).numpy(), snapped, rtol=1e-5, atol=1e-7)
    if zeros:
        assert np.all(snapped[w == 0] == 0) and 0 in codes


def test_an_all_zero_channel_stays_zero():
    w = random_kernel()
    w[:, 3] = 0.0
    codes = init_codebook(w, 4, keep_zeros=False)
    assert np.all(snap(tf.constant(w), tf.constant(codes)).numpy()[:, 3] == 0)


@pytest.mark.parametrize("clusters, keep_zeros", [(4, False), (16, False), (8, True)])
def test_the_offline_counterpart_clusters_int8_codes_and_keeps_every_channel_scale(clusters, keep_zeros):
    rng = np.random.default_rng(0)
    q = np.clip(np.round(rng.normal(0, 30, (24, 40))), -126, 126)
    q[rng.random(q.shape) < (0.5 if keep_zeros else 0.0)] = 0
    q[:, 0] = np.where(np.arange(24) % 2, 127, -127)      # as converted: every channel's max |q| is 127
    q = q.astype(np.int8)
    out = cluster_int8(q, clusters, keep_zeros)
    assert len(np.unique(out)) <= clusters and np.all(np.abs(out).max(1) == 127)
    assert np.all(out[q == 0] == 0) if keep_zeros else len(np.unique(q)) > clusters


# ------------------------------------------------------------------------------------ config
@pytest.mark.parametrize("fields, key", [
    ({"clusters": 2}, "clusters"), ({"clusters": 64}, "clusters"), ({"clusters": 8.5}, "clusters"),
    ({"clusters": 8, "sparsity": 1.0}, "sparsity"),
    ({"clusters": 8, "qat": True, "qat_scope": "full"}, "qat_scope"),
])
def test_bad_cluster_settings_are_one_line_errors(fields, key):
    with pytest.raises(ConfigError) as info:
        experiment_from_dict({"name": "x", "variants": [{"name": "ptq"}, {"name": "c", "kind": "cluster", **fields}]})
    assert f"variants[c].{key}" in str(info.value) and one_line(str(info.value)) == str(info.value)


def test_the_kind_says_its_structure_and_targets_the_compressible_layers():
    cfg = experiment_from_dict({"name": "x", "model": {"family": "gru"}}).model
    alone = compressor_of(VariantConfig.create(name="c", kind="cluster", clusters=8))
    sparse = compressor_of(VariantConfig.create(name="c", kind="cluster", clusters=8, sparsity=0.8))
    assert (alone.structure, sparse.structure) == ("cluster", "cluster+weight")
    assert alone.trains_float_model and not alone.derives_from_dense_model
    assert sorted(alone.layer_targets(cfg)) == sorted(family_of(cfg).compressible_layers(cfg))
    assert alone.prunes(alone.layer_targets(cfg))
    per_layer = compressor_of(VariantConfig.create(name="c", kind="cluster", layers=("rnn_1=0.5", "dense_2"),
                                                   layer_clusters=("rnn_1=4", "mask=8")))
    assert per_layer.layer_targets(cfg) == {"rnn_1": 0.5, "dense_2": 0.0, "mask": 0.0}
    assert per_layer.structure == "cluster+weight"
    with pytest.raises(ConfigError, match="layer_clusters"):
        compressor_of(VariantConfig.create(name="c", kind="cluster", layer_clusters=("rnn_9=4",))).layer_targets(cfg)


def test_bad_layer_clusters_are_one_line_errors():
    with pytest.raises(ConfigError) as info:
        experiment_from_dict({"name": "x", "variants": [
            {"name": "ptq"}, {"name": "c", "kind": "cluster", "layer_clusters": ["rnn_1=3"]}]})
    assert "variants[c].layer_clusters" in str(info.value) and one_line(str(info.value)) == str(info.value)


# ------------------------------------------------------------------------------------ fine-tuned tiny GRU
class Env:
    """The tiny GRU of tests/test_compress.py: a few base steps, 1-s segments, converted with the real converter."""

    def __init__(self, small_dataset, root: Path):
        from sepipe.data import Dataset

        self.cfg = experiment_from_dict({
            "name": "cluster", "seed": 0,
            "data": {"cache_dir": str(REPO / ".cache"), "segment_s": 1.0},
            "model": {"family": "gru", "input_units": 32, "rnn_units": 24, "dense_units": 32},
            "train": {"batch_size": 4, "valid_files": 1},
        })
        self.root, self.bins = root, self.cfg.features.bins
        set_determinism(self.cfg.seed)
        self.dataset = Dataset.open(dataclasses.replace(small_dataset.cfg, segment_s=1.0))
        self.family = family_of(self.cfg.model)
        model = self.family.build_sequence(self.cfg.model, self.bins)
        FineTuneSession(self.cfg, self.dataset, 4, 1, 3e-3).train(model, 4, phase="base")
        self.base = root / "base" / "sequence.weights.h5"
        self.base.parent.mkdir(parents=True)
        model.save_weights(str(self.base))
        self.features = [compute_features(p.noisy[:32000], self.cfg.features)[0]
                         for p in small_dataset.pairs("test", limit=2)]

    def tflite(self, name: str, kind: str = "ptq", **fields) -> tuple[bytes, dict]:
        from sepipe.quantize.calibration import collect_calibration, save_calibration
        from sepipe.quantize.convert import convert_quantized

        v = VariantConfig.create(name=name, kind=kind, finetune_epochs=1, finetune_steps_per_epoch=4, **fields)
        result = finetune_variant(v, self.cfg, self.dataset, self.base, self.root / name, progress=False)
        streaming = self.family.build_streaming(result.model_cfg, self.bins)
        streaming.load_weights(str(result.streaming_weights))
        cal = save_calibration(collect_calibration(streaming, self.features, frames=64, seed=0),
                               self.root / name / "calibration.npz")
        path = convert_quantized(result.model_cfg, self.bins, result.streaming_weights, cal,
                                 self.root / name / "model.tflite")
        return path.read_bytes(), result.stats


@pytest.fixture(scope="module")
def gru(small_dataset, tmp_path_factory):
    return Env(small_dataset, tmp_path_factory.mktemp("cluster_gru"))


@pytest.fixture(scope="module")
def converted(gru):
    return {"ptq": gru.tflite("ptq"),
            "c16": gru.tflite("c16", "cluster", clusters=16),
            "c4": gru.tflite("c4", "cluster", clusters=4, qat=True),
            "c8w50": gru.tflite("c8w50", "cluster", clusters=8, sparsity=0.5),
            # what `sepipe search` fine-tunes: each layer its own sparsity and palette
            "mixed": gru.tflite("mixed", "cluster", layers=("rnn_1=0.5", "dense_1=0.5", "dense_2"),
                                layer_clusters=("rnn_1=4", "dense_1=0", "mask=8"))}


@pytest.mark.slow
@pytest.mark.parametrize("name, clusters", [("c16", 16), ("c4", 4), ("c8w50", 8)])
def test_the_int8_model_has_at_most_n_values_per_clustered_tensor(converted, name, clusters):
    counts = distinct_int8_codes(converted[name][0])
    clustered = {t: c for t, c in counts.items() if c["layer"] != "mask"}
    assert len(clustered) == 7      # input_dense, dense_1, dense_2; rnn_1 and rnn_2: kernel and recurrent kernel
    assert all(c["per_tensor"] <= clusters for c in clustered.values()), clustered
    assert all(c["per_channel_max"] <= clusters for c in clustered.values())
    dense = distinct_int8_codes(converted["ptq"][0])
    assert max(c["per_tensor"] for c in dense.values()) > 32                  # the dense model is not clustered
    assert max(c["per_tensor"] for t, c in counts.items() if c["layer"] == "mask") > 32   # the mask layer stays dense


@pytest.mark.slow
def test_pruned_zeros_survive_clustering_and_qat_keeps_the_clusters(converted):
    tflite, stats = converted["c8w50"]
    per_tensor = tflite_sparsity(tflite)["per_tensor"]
    clustered = [s for s in per_tensor.values() if s["layer"] != "mask"]
    assert all(s["sparsity"] == pytest.approx(0.5, abs=0.02) for s in clustered), clustered
    assert stats["clustering"]["clusters"] == 8 and stats["steps"] == {"total": 4, "prune": 4, "qat": 0}
    c4 = converted["c4"][1]
    assert c4["qat"]["steps"] == 1 and c4["clustering"]["steps"] == 3   # the QAT step kept the 4 codes (test above)


@pytest.mark.slow
def test_per_layer_sparsity_and_palettes_reach_the_int8_model(converted):
    tflite, stats = converted["mixed"]
    counts, per_tensor = distinct_int8_codes(tflite), tflite_sparsity(tflite)["per_tensor"]
    by_layer: dict = {}
    for name, c in counts.items():
        by_layer.setdefault(c["layer"], []).append((c["per_tensor"], per_tensor[name]["sparsity"]))
    # at least the pruned half is zero (with 4 codes, one centroid may land on zero and take more)
    assert all(n <= 4 and s >= 0.48 for n, s in by_layer["rnn_1"]), by_layer
    assert all(n <= 8 and s < 0.1 for n, s in by_layer["mask"]) and all(n <= 16 for n, _ in by_layer["dense_2"])
    assert all(n > 32 for layer in ("input_dense", "dense_1", "rnn_2") for n, _ in by_layer[layer]), by_layer
    # pruned, not clustered: its zeros are held through the clustering phase (they grew back once)
    assert all(s == pytest.approx(0.5, abs=0.02) for _, s in by_layer["dense_1"]), by_layer
    assert stats["clustering"]["layer_clusters"] == {"rnn_1": 4, "dense_1": 0, "dense_2": 16, "mask": 8}
    assert stats["clustering"]["zeros_held"] == ["dense_1/kernel"]


@pytest.mark.slow
def test_vela_encoded_weights_shrink_with_fewer_clusters(converted, tmp_path):
    from sepipe.deploy.compile import compile_model

    encoded = {}
    for name in ("ptq", "c16", "c4"):
        path = tmp_path / f"{name}.tflite"
        path.write_bytes(converted[name][0])
        encoded[name] = compile_model(path, "ethos-u55-128", tmp_path / "vela", name).figures.total_npu_encoded_weights_bytes
    assert encoded["ptq"] > encoded["c16"] > encoded["c4"], encoded


def test_small_updates_accumulate_in_the_shadow_until_a_weight_changes_cluster():
    """Straight-through: the optimizer's updates go to the float shadow; the variable is always snapped."""
    from sepipe.compress.clustering import ClusterConstraint

    w = random_kernel()
    codes = init_codebook(w, 8, keep_zeros=False)
    snapped = snap(tf.constant(w), tf.constant(codes)).numpy()
    var = tf.Variable(snapped)                                    # the shadow starts exactly on a code
    constraint = ClusterConstraint(var, codes, None)
    scale = np.abs(snapped[:, 0]).max() / 127
    row = int(np.argmin(np.abs(snapped[:, 0])))                   # a weight on an inner code of channel 0
    k = int(np.argmin(np.abs(codes - snapped[row, 0] / scale)))
    half_gap = (codes[k + 1] - codes[k]) / 2 * scale
    step = np.zeros_like(w)
    step[row, 0] = half_gap / 4
    for _ in range(3):                                            # 3/4 of the way: no visible change
        var.assign(constraint(var + step))
    np.testing.assert_array_equal(var.numpy(), snapped)
    for _ in range(2):                                            # 5/4: the weight moves to the next code
        var.assign(constraint(var + step))
    assert var.numpy()[row, 0] == pytest.approx(codes[k + 1] * scale)
    np.testing.assert_array_equal(np.delete(var.numpy().ravel(), row * w.shape[1]),
                                  np.delete(snapped.ravel(), row * w.shape[1]))
