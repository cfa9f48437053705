import pytest

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

    for path in sorted(Path(__file__).parents[1].glob("experiments/*.yaml")):
        load_experiment(path)


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
    variants = experiment_from_dict({"name": "x", "variants": [
        {"name": "ptq"}, {"name": "ptq-qat", "qat": True}, {"name": "off", "kind": "offline", "sparsity": 0.5},
        {"name": "u", "kind": "unit", "sparsity": 0.5}]}).variants
    assert [v.is_finetuned for v in variants] == [False, True, False, True]


def test_fields_added_later_leave_old_fingerprints_alone_until_set():
    """ConvertConfig.activations and VariantConfig.weight_sparsity came after runs were recorded: at their
    default they are not part of a stage's fingerprint (old stages stay current); set, they are."""
    from sepipe.artifacts import sha256_json
    from sepipe.config import ConvertConfig, VariantConfig

    old_repr = ("VariantConfig(name='u50', kind='unit', sparsity=0.5, block=(1, 1), m_by_n=None, layers=(), "
                "qat=False, finetune_epochs=4, finetune_steps_per_epoch=100, learning_rate=0.0002)")
    unit = VariantConfig(name="u50", kind="unit", sparsity=0.5)
    assert sha256_json({"variant": unit}) == sha256_json({"variant": old_repr})
    combined = VariantConfig(name="u50", kind="unit", sparsity=0.5, weight_sparsity=0.8)
    assert sha256_json({"variant": combined}) != sha256_json({"variant": unit})
    assert sha256_json({"c": ConvertConfig()}) == sha256_json({"c": "ConvertConfig(calibration_files=8, "
                                                                    "calibration_frames=400)"})
    assert sha256_json({"c": ConvertConfig(activations="int16")}) != sha256_json({"c": ConvertConfig()})


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
    with pytest.raises(ConfigError, match=r"shape.radius.*one of the keys"):
        _build(Shape, {"kind": "box", "radius": 2}, "x.yaml", "shape.")
    with pytest.raises(ConfigError, match=r"shape.kind' = 'cube'.*'circle', 'box'"):
        _build(Shape, {"kind": "cube"}, "x.yaml", "shape.")


def test_a_lazy_registry_target_is_imported_on_first_use():
    from sepipe.registry import Registry

    registry = Registry("thing", key="thing")
    registry.add("json", "json:dumps")
    import json

    assert registry.get("json") is json.dumps
