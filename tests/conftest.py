"""Shared test fixtures. Kept minimal: other test modules rely on `small_dataset`."""

from __future__ import annotations

import os
import tempfile

os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
# One Vela compile cache per test session (sepipe.engine.compile_cache): shared by the tests of a
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
