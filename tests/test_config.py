import pytest
import yaml

from sepipe.config import ExperimentConfig, experiment_from_dict, load_experiment
from sepipe.errors import ConfigError, InputFileError


def test_defaults_build_and_validate():
    cfg = experiment_from_dict({"name": "x"})
    assert isinstance(cfg, ExperimentConfig)
    assert cfg.features.bins == 257


@pytest.mark.parametrize("raw, key", [
    ({"name": "x", "trian": {}}, "trian"),
    ({"name": "x", "train": {"epoch": 3}}, "train.epoch"),
    ({"name": "x", "train": {"epochs": "3"}}, "train.epochs"),
    ({"name": "x", "train": {"epochs": 0}}, "train.epochs"),
    ({"name": "x", "model": {"family": "cnn"}}, "model.family"),
    ({"name": "x", "data": {"snr_db": [20, -5]}}, "data.snr_db"),
    ({"name": "x", "data": {"sample_rate": 8000}}, "data.sample_rate"),
    ({"name": "x", "features": {"hop": 128}}, "features.hop"),
    ({"name": "x", "evaluate": {"interpreters": ["float", "onnx"]}}, "evaluate.interpreters"),
    ({"name": "x", "data": {"source": "voicebank"}}, "data.root"),
])
def test_bad_values_name_the_key_and_what_is_valid(raw, key):
    with pytest.raises(ConfigError) as info:
        experiment_from_dict(raw, source="exp.yaml")
    assert info.value.key == key
    assert "exp.yaml" in str(info.value) and "expected" in str(info.value)


def test_yaml_file_name_defaults_to_stem_and_overrides_apply(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text("train:\n  epochs: 2\n")
    cfg = load_experiment(path, {"train.batch_size": 4})
    assert (cfg.name, cfg.train.epochs, cfg.train.batch_size) == ("tiny", 2, 4)


def test_unparsable_yaml_and_missing_file_are_input_errors(tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("train: [epochs: 2\n")
    with pytest.raises(InputFileError, match="broken.yaml: not valid YAML"):
        load_experiment(broken)
    with pytest.raises(InputFileError, match="not found"):
        load_experiment(tmp_path / "absent.yaml")


def test_shipped_experiments_are_valid():
    from pathlib import Path

    from sepipe.quality_predictor.config import load_predictor

    for path in sorted(Path(__file__).parents[1].glob("experiments/*.yaml")):
        task = yaml.safe_load(path.read_text()).get("task", "enhancement")
        {"enhancement": load_experiment, "quality_predictor": load_predictor}[task](path)


def test_an_experiment_of_another_task_names_its_command():
    with pytest.raises(ConfigError) as info:
        experiment_from_dict({"task": "quality_predictor", "name": "qp"}, source="qp.yaml")
    assert "sepipe predictor run qp.yaml" in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(ConfigError, match="enhancement"):
        experiment_from_dict({"task": "karaoke", "name": "x"})
    assert experiment_from_dict({"task": "enhancement", "name": "x"}).name == "x"


@pytest.mark.parametrize("variant, key", [
    ({"name": "w", "kind": "weight", "sparsity": 0.5, "block": [1, 8]}, "variants[w].block"),
    ({"name": "m", "kind": "block", "m_by_n": [4, 2]}, "variants[m].m_by_n"),
    ({"name": "o", "kind": "offline", "sparsity": 0.5, "qat": True}, "variants[o].qat"),
    ({"name": "p", "kind": "ptq", "sparsity": 0.5}, "variants[p].sparsity"),
])
def test_variant_settings_that_would_be_ignored_are_errors(variant, key):
    with pytest.raises(ConfigError) as info:
        experiment_from_dict({"name": "x", "variants": [variant]})
    assert info.value.key == key


def test_only_plain_ptq_and_offline_variants_skip_fine_tuning():
    from sepipe.compress import VariantConfig, compressor_of

    variants = [VariantConfig.create(name="ptq"), VariantConfig.create(name="ptq-qat", qat=True),
                VariantConfig.create(name="off", kind="offline", sparsity=0.5),
                VariantConfig.create(name="u", kind="unit", sparsity=0.5)]
    assert [compressor_of(v).trains_float_model for v in variants] == [False, True, False, True]


def test_each_variant_is_built_as_its_kinds_config_with_only_its_own_keys():
    from sepipe.compress.kinds.block import BlockConfig
    from sepipe.compress.kinds.ptq import PtqConfig
    from sepipe.compress.kinds.unit import UnitConfig

    variants = experiment_from_dict({"name": "x", "variants": [
        {"name": "dense"}, {"name": "b", "kind": "block", "block": [1, 8], "sparsity": 0.8},
        {"name": "u", "kind": "unit", "sparsity": 0.5, "weight_sparsity": 0.8}]}).variants
    assert [type(v) for v in variants] == [PtqConfig, BlockConfig, UnitConfig]
    assert variants[1].block == (1, 8) and not hasattr(variants[2], "block")


@pytest.mark.parametrize("variant", [
    {"name": "w", "kind": "weight", "sparsity": 0.5, "block": [1, 1], "m_by_n": None, "weight_sparsity": 0},
    {"name": "o", "kind": "offline", "sparsity": 0.5, "weight_sparsity": 0.0, "block": [1, 1]},
])
def test_another_kinds_key_at_its_default_still_loads(variant):
    """YAML written when one VariantConfig held every kind's keys set them to their defaults: still valid."""
    loaded = experiment_from_dict({"name": "x", "variants": [{"name": "ptq"}, variant]}).variants[1]
    assert loaded.sparsity == 0.5 and not hasattr(loaded, "m_by_n")


def test_another_kinds_key_set_names_the_kind_that_takes_it():
    with pytest.raises(ConfigError, match=r"'variants\[w\].m_by_n' = \[2, 4\].*kind 'block' only"):
        experiment_from_dict({"name": "x", "variants": [{"name": "ptq"},
                                                         {"name": "w", "kind": "weight", "m_by_n": [2, 4]}]},
                             source="exp.yaml")


@pytest.mark.parametrize("kinds", [["weight"], ["ptq", "weight", "ptq"], ["offline", "unit"]])
def test_exactly_one_dense_reference_variant(kinds):
    raw = {"name": "x", "variants": [{"name": f"v{i}", "kind": kind} for i, kind in enumerate(kinds)]}
    with pytest.raises(ConfigError) as info:
        experiment_from_dict(raw, source="exp.yaml")
    assert info.value.key == "variants" and info.value.value == kinds
    assert "exp.yaml" in str(info.value) and "exactly one variant of kind 'ptq'" in str(info.value)


def test_the_dense_variant_is_found_by_kind_not_by_name():
    cfg = experiment_from_dict({"name": "x", "variants": [
        {"name": "w50", "kind": "weight", "sparsity": 0.5}, {"name": "dense-int8"}]})
    assert cfg.dense_variant is cfg.variants[1]
    assert experiment_from_dict({"name": "x"}).dense_variant.name == "ptq"      # the default experiment's


def test_fields_added_later_leave_old_fingerprints_alone_until_set():
    """ConvertConfig.activations and UnitConfig.weight_sparsity / criterion came after runs were recorded:
    at their default they are not part of a stage's fingerprint (old stages stay current); set, they are.
    (The per-kind variant classes of issue 9 changed every variant's repr once.)"""
    from sepipe.artifacts import sha256_json
    from sepipe.compress import VariantConfig
    from sepipe.config import ConvertConfig

    old_repr = ("UnitConfig(name='u50', kind='unit', layers=(), qat=False, finetune_epochs=4, "
                "finetune_steps_per_epoch=100, learning_rate=0.0002, sparsity=0.5)")
    unit = VariantConfig.create(name="u50", kind="unit", sparsity=0.5)
    assert sha256_json({"variant": unit}) == sha256_json({"variant": old_repr})
    combined = VariantConfig.create(name="u50", kind="unit", sparsity=0.5, weight_sparsity=0.8)
    assert sha256_json({"variant": combined}) != sha256_json({"variant": unit})
    assert sha256_json({"c": ConvertConfig()}) == sha256_json({"c": "ConvertConfig(calibration_files=8, "
                                                                    "calibration_frames=400)"})
    assert sha256_json({"c": ConvertConfig(activations="int16")}) != sha256_json({"c": ConvertConfig()})


def test_adding_a_compressor_is_one_config_class_and_one_registration(monkeypatch):
    import dataclasses

    from sepipe.compress import COMPRESSORS, Compressor, VariantConfig, compressor_of

    monkeypatch.setattr(COMPRESSORS, "_entries", dict(COMPRESSORS._entries))   # leave the real registry as is

    @dataclasses.dataclass(frozen=True)
    class ClusterConfig(VariantConfig):
        clusters: int = 16

    @COMPRESSORS.register("toy", config=ClusterConfig)
    class ClusterCompressor(Compressor):
        """Weight clustering."""

    cfg = experiment_from_dict({"name": "x", "variants": [{"name": "ptq"},
                                                          {"name": "c8", "kind": "toy", "clusters": 8}]})
    assert cfg.variants[1] == ClusterConfig(name="c8", kind="toy", clusters=8)
    assert compressor_of(cfg.variants[1]).structure == "toy"
    assert compressor_of(cfg.variants[1]).trains_float_model


def test_a_variant_config_is_its_kinds_class():
    from sepipe.compress import VariantConfig
    from sepipe.compress.kinds.weight import WeightConfig

    with pytest.raises(TypeError, match="VariantConfig.create"):
        VariantConfig(name="w", kind="weight")
    with pytest.raises(TypeError):
        WeightConfig(name="b", kind="block")
    with pytest.raises(ConfigError, match="'variants\\[\\].kind' = 'nope'"):
        VariantConfig.create(name="n", kind="nope")


def test_a_tagged_section_is_built_as_the_class_its_tag_registers():
    import dataclasses

    from sepipe.config import _build
    from sepipe.errors import ConfigError
    from sepipe.registry import Registry, Tagged

    shapes = Registry("shape", key="shape.kind")

    @dataclasses.dataclass(frozen=True)
    class Shape(Tagged):
        TAG = "kind"
        kind: str = "circle"

        @classmethod
        def registry(cls):
            return shapes

    @dataclasses.dataclass(frozen=True)
    class Circle(Shape):
        radius: float = 1.0

    @dataclasses.dataclass(frozen=True)
    class Box(Shape):
        width: int = 1

    shapes.add("circle", object(), config=Circle)
    shapes.add("box", object(), config=Box)
    assert _build(Shape, {"kind": "box", "width": 3}, "x.yaml", "shape.") == Box(kind="box", width=3)
    assert _build(Shape, {}, "x.yaml", "shape.") == Circle()
    with pytest.raises(ConfigError, match=r"shape.depth.*one of the keys"):
        _build(Shape, {"kind": "box", "depth": 2}, "x.yaml", "shape.")
    # another entry's key: an error naming that entry when set, dropped at its default (unset)
    with pytest.raises(ConfigError, match=r"shape.radius' = 2 .*no 'radius' for kind 'box'.*kind 'circle' only"):
        _build(Shape, {"kind": "box", "radius": 2}, "x.yaml", "shape.")
    assert _build(Shape, {"kind": "box", "radius": 1.0}, "x.yaml", "shape.") == Box(kind="box")
    with pytest.raises(ConfigError, match=r"shape.kind' = 'cube'.*'circle', 'box'"):
        _build(Shape, {"kind": "cube"}, "x.yaml", "shape.")


def test_a_lazy_registry_target_is_imported_on_first_use():
    from sepipe.registry import Registry

    registry = Registry("thing", key="thing")
    registry.add("json", "json:dumps")
    import json

    assert registry.get("json") is json.dumps
