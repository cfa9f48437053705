"""Offline per-layer pruning and clustering (one int8 codebook per tensor) of int8 .tflite bytes (sepipe.compress.offline) and the
`offline` kind's per-layer options (layers: [name=sparsity], clusters, layer_clusters)."""

from __future__ import annotations

import numpy as np
import pytest

from sepipe.compress import compressor_of
from sepipe.compress.clustering import cluster_int8
from sepipe.compress.offline import distinct_per_tensor, offline_compress_tflite
from sepipe.config import experiment_from_dict
from sepipe.errors import ConfigError

MODEL = {"family": "gru", "input_units": 32, "rnn_units": 24, "dense_units": 32}


def _random_tensor(seed=0, shape=(40, 96)):
    rng = np.random.default_rng(seed)
    values = np.clip(np.round(rng.normal(0, 35, shape)), -127, 127).astype(np.int8)
    values[:, : shape[1] // 4] = 0          # a pruned quarter: zeros must stay zeros
    values[:, -1] = 127                     # each channel's extreme sets its scale, as the converter does
    return values


@pytest.mark.parametrize("levels", [4, 8, 16])
def test_offline_clustering_leaves_at_most_n_codes_per_tensor_and_keeps_zeros(levels):
    values = _random_tensor()
    clustered = cluster_int8(values, levels, keep_zeros=True)
    assert len(np.unique(clustered)) <= levels               # one codebook for the whole tensor
    assert np.all(clustered[values == 0] == 0)
    assert np.all(np.abs(clustered).max(axis=1) == 127)      # the channel scales stay valid
    assert np.array_equal(clustered, cluster_int8(values.copy(), levels, keep_zeros=True))   # deterministic


def test_offline_clustering_error_falls_with_more_codes():
    values = _random_tensor()
    error = {n: np.abs(cluster_int8(values, n, keep_zeros=True).astype(int) - values).mean() for n in (4, 8, 16)}
    assert error[16] < error[8] < error[4] < np.abs(values.astype(int)).mean()   # nearest codes, not arbitrary ones


def _offline(**fields):
    cfg = experiment_from_dict({"name": "x", "model": MODEL,
                                "variants": [{"name": "ptq"}, {"name": "o", "kind": "offline", **fields}]})
    return cfg, compressor_of(cfg.variants[1])


def test_offline_kind_reads_per_layer_sparsity_and_clusters():
    cfg, offline = _offline(layers=["rnn_1=0.8", "mask=0.5"], clusters=8, layer_clusters=["dense_1=4"])
    assert offline.layer_targets(cfg.model) == {"rnn_1": 0.8, "mask": 0.5}
    assert offline.layer_levels(cfg.model) == {"rnn_1": 8, "mask": 8, "dense_1": 4}


@pytest.mark.parametrize("fields, option", [({"clusters": 2}, "clusters"), ({"layer_clusters": ["rnn_1=x"]}, "layer_clusters"),
                                            ({"layer_clusters": ["rnn_1=64"]}, "layer_clusters")])
def test_offline_kind_refuses_bad_clusters_in_one_line(fields, option):
    with pytest.raises(ConfigError, match=rf"variants\[o\]\.{option}") as info:
        _offline(**fields)
    assert "\n" not in str(info.value)


def test_offline_compress_rejects_bad_values():
    with pytest.raises(ValueError, match="levels"):
        offline_compress_tflite(b"", levels={"rnn_1": 3})
    with pytest.raises(ValueError, match="sparsity"):
        offline_compress_tflite(b"", sparsity={"rnn_1": 1.0})


@pytest.mark.slow
def test_offline_clustering_bounds_codes_per_tensor_and_shrinks_vela_weights(untrained_tflites, tmp_path):
    from sepipe.compress.tflite_weights import fc_weight_tensors
    from sepipe.deploy.compile import compile_model

    dense = untrained_tflites["int8"].read_bytes()
    layers = ("input_dense", "rnn_1", "rnn_2", "dense_1", "dense_2", "mask")
    encoded = {}
    for levels in (0, 16, 4):
        data = offline_compress_tflite(dense, levels={name: levels for name in layers}) if levels else dense
        assert len(data) == len(dense)
        if levels:
            assert max(distinct_per_tensor(data).values()) <= levels
            only_rnn = offline_compress_tflite(dense, levels={"rnn_1": levels})
            for tensor in fc_weight_tensors(only_rnn):    # a layer left out keeps its bytes
                changed = {t.name: t for t in fc_weight_tensors(dense)}[tensor.name].values != tensor.values
                assert changed.any() == (tensor.layer == "rnn_1" and levels < 100)
        path = tmp_path / f"c{levels}.tflite"
        path.write_bytes(data)
        encoded[levels] = compile_model(path, "ethos-u55-128", tmp_path / "vela", f"c{levels}").record[
            "total_npu_encoded_weights_bytes"]
    assert encoded[4] < encoded[16] < encoded[0]


@pytest.mark.slow
def test_offline_variant_rebuilds_offline_compress_bytes(untrained_tflites):
    dense = untrained_tflites["int8"].read_bytes()
    cfg, offline = _offline(layers=["rnn_1=0.8", "mask=0.5"], layer_clusters=["rnn_1=4", "dense_2=8"])
    expected = offline_compress_tflite(dense, {"rnn_1": 0.8, "mask": 0.5}, {"rnn_1": 4, "dense_2": 8})
    assert offline.apply_to_quantized(dense, cfg.model) == expected
    cfg, uniform = _offline(sparsity=0.6)      # the uniform variant of before: unchanged bytes
    from sepipe.compress.offline import offline_prune_tflite
    assert uniform.apply_to_quantized(dense, cfg.model) == offline_prune_tflite(dense, 0.6)
