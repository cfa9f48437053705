"""The trained ranges of a full-QAT variant are a declared output of its variant stage and an input of its
convert stage (fingerprinted like the weights); other variants' stages are declared as before."""

from __future__ import annotations

from sepipe.config import experiment_from_dict
from sepipe.stages.paths import DataHandle, RunPaths
from sepipe.stages.quantize import declare_convert, declare_variant


def _cfg(tmp_path):
    return experiment_from_dict({
        "name": "qs", "runs_dir": str(tmp_path), "model": {"family": "lstm"},
        "variants": [{"name": "ptq", "kind": "ptq"},
                     {"name": "qw", "kind": "weight", "sparsity": 0.0, "qat": True},
                     {"name": "qf", "kind": "weight", "sparsity": 0.0, "qat": True, "qat_scope": "full",
                      "precision": {"default": "int8", "cell_state": "int16x8"}}]})


def _needs(cfg, name):
    weights = RunPaths(cfg).variant_dir(name) / "streaming.weights.h5"
    return {f"variant:{name}": {"model": {"family": "lstm"}, "qat": True,
                                "streaming_weights": str(weights.relative_to(cfg.run_dir))}}


def test_full_qat_ranges_are_an_output_of_the_variant_and_an_input_of_the_conversion(tmp_path):
    cfg = _cfg(tmp_path)
    data = DataHandle(cfg)
    by_name = {v.name: v for v in cfg.variants}
    full, weights_only = by_name["qf"], by_name["qw"]
    ranges = RunPaths(cfg).variant_dir("qf") / "qat_ranges.json"
    assert ranges in declare_variant(cfg, data, full).outputs
    assert declare_convert(cfg, data, full).inputs(_needs(cfg, "qf"))["qat_ranges"] == ranges
    assert not any(p.name == "qat_ranges.json" for p in declare_variant(cfg, data, weights_only).outputs)
    assert "qat_ranges" not in declare_convert(cfg, data, weights_only).inputs(_needs(cfg, "qw"))
    assert "qat_ranges" not in declare_convert(cfg, data, by_name["ptq"]).inputs({})
