"""Shared test fixtures: the small dataset, and the tiny trained GRU (int8) and LSTM (16x8) of
tests/tiny_models.py, built once per session. `make test-fast` (-m "not slow") must neither train nor
convert: a test that needs `tiny_models`, directly or through another fixture, is marked slow here
even where its module forgot; `tiny_speech` is features only."""

from __future__ import annotations

import os
import tempfile

os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
# One Vela compile cache per test session (sepipe.deploy.cache): shared by the tests of a
# session, never by two sessions, and never the user's .cache/vela.
os.environ.setdefault("SEPIPE_VELA_CACHE", tempfile.mkdtemp(prefix="sepipe-test-vela-cache-"))

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def small_data_config():
    """The DataConfig of the small Debian dataset, cached under <repo>/.cache."""
    from sepipe.config import DataConfig

    return DataConfig(source="debian", size="small", cache_dir=str(REPO / ".cache"), seed=0)


@pytest.fixture(scope="session")
def small_dataset(small_data_config):
    """The small Debian dataset, built once (or reused) and opened."""
    from sepipe.data import Dataset, build_dataset

    build_dataset(small_data_config, progress=False)
    return Dataset.open(small_data_config)


@pytest.fixture(scope="session")
def tiny_speech(small_dataset):
    """tiny_models.Speech: training mixtures (features, target mask) and test features. No training."""
    from tiny_models import load_speech

    return load_speech(small_dataset)


@pytest.fixture(scope="session")
def tiny_models(tiny_speech, tmp_path_factory):
    """{'gru': TinyModel (int8), 'lstm': TinyModel (int16x8)}: trained, calibrated, converted once.

    Shared: a test copies an artifact before writing; teardown fails if any file or weight changed.
    """
    from tiny_models import build_tiny_models

    models = build_tiny_models(tiny_speech, tmp_path_factory.mktemp("tiny_models"))
    before = {family: model.fingerprint() for family, model in models.items()}
    yield models
    changed = [family for family, model in models.items() if model.fingerprint() != before[family]]
    assert not changed, f"a test changed the shared tiny models' artifacts or weights: {changed}"


@pytest.fixture(scope="session")
def untrained_tflites(tmp_path_factory) -> dict[str, Path]:
    """{'int8', 'float', 'dynamic'}: .tflite files of one untrained tiny streaming GRU (Vela's inputs;
    float and dynamic-range are what `sepipe compile` must refuse or report), converted once."""
    from sepipe.models.mask_rnn import MaskRnnConfig
    from sepipe.models import family_of
    from sepipe.models.keras_backend import tf
    from sepipe.quantize.convert import convert_untrained

    cfg, bins = MaskRnnConfig(family="gru", input_units=32, rnn_units=24, dense_units=32), 257
    folder = tmp_path_factory.mktemp("untrained_tflites")
    paths = {"int8": convert_untrained(cfg, bins, folder / "tiny_int8.tflite", seed=0)}
    tf.keras.utils.set_random_seed(0)
    model = family_of(cfg).build_streaming(cfg, bins)
    paths["float"] = folder / "tiny_float.tflite"
    paths["float"].write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]   # no representative data: dynamic range
    paths["dynamic"] = folder / "tiny_dynamic.tflite"
    paths["dynamic"].write_bytes(converter.convert())
    return paths


# Fixtures that train or convert: a test using one (even through another fixture) is in the slow tier.
SLOW_FIXTURES = ("tiny_models", "untrained_tflites")


@pytest.hookimpl(tryfirst=True)   # before -m deselects
def pytest_collection_modifyitems(items):
    for item in items:
        slow = any(name in getattr(item, "fixturenames", ()) for name in SLOW_FIXTURES)
        if slow and item.get_closest_marker("slow") is None:
            item.add_marker(pytest.mark.slow)


@pytest.fixture
def package_cache(tmp_path, small_dataset) -> Path:
    """A fresh cache_dir that reuses the session's downloaded and unpacked Debian packages."""
    cache = tmp_path / "cache"
    cache.mkdir()
    for name in ("debs", "unpacked"):
        os.symlink(Path(small_dataset.cfg.cache_dir).resolve() / name, cache / name)
    return cache
