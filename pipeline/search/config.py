"""Reading an experiment YAML for `sepipe search`: the experiment (with its validated `search:` section,
sepipe.search.settings.SearchConfig) and the raw experiment mapping the chosen members' YAMLs are written from.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sepipe.config import ExperimentConfig, experiment_from_dict, read_experiment_yaml
from sepipe.errors import ConfigError, InputFileError, short_repr
from sepipe.search.settings import SECTION, SearchConfig

__all__ = ["SearchConfig", "load_search", "search_from_dict", "split_search"]


def split_search(raw: Any, source: str) -> tuple[dict, dict]:
    """(the experiment mapping, the search mapping) of a YAML mapping; ConfigError without a `search:` section."""
    if not isinstance(raw, dict):
        raise InputFileError(source, f"must be a YAML mapping of sections; it holds {short_repr(raw, 60)}")
    section = raw.get(SECTION)
    if section is None:
        raise ConfigError(source, SECTION, None, "a `search:` section (population, generations, target, ...)")
    return {k: v for k, v in raw.items() if k != SECTION}, section


def search_from_dict(raw: dict, source: str = "<config>") -> tuple[ExperimentConfig, SearchConfig]:
    split_search(raw, source)                       # a `search:` section is required here
    cfg = experiment_from_dict(raw, source)         # validates it (ExperimentConfig.search)
    return cfg, cfg.search


def load_search(path: str | Path, overrides: dict[str, Any] | None = None) -> tuple[ExperimentConfig, SearchConfig, dict]:
    """(experiment, search settings, the experiment's raw mapping) of a YAML with a `search:` section;
    `overrides` are dotted keys ('search.population': 8, 'train.epochs': 2)."""
    raw = read_experiment_yaml(path, overrides)
    cfg, search = search_from_dict(raw, str(path))
    return cfg, search, split_search(raw, str(path))[0]
