"""The `search:` section of an experiment YAML, validated like the rest of the config (one-line ConfigError).

```yaml
search:
  population: 16            # candidates per generation
  generations: 8
  target: ethos-u55-128     # Vela target the cycles / flash / SRAM come from; its budgets are constraints
  valid_files: 8            # fixed validation mixtures the proxy SI-SDR is measured on
  sparsity: [0.0, 0.5, 0.7, 0.8, 0.9, 0.95]   # choices of each layer's sparsity gene
  clusters: [0, 16, 8, 4]   # choices of each layer's clustering gene (0: not clustered)
  output_layer: true        # the output layer has genes too (else it stays dense)
  uniform: [0.5, 0.7, 0.8, 0.9]                # uniform offline references scored the same way
```

The experiment itself is the rest of the file (`split_search` hands it to `experiment_from_dict`), so the
search reads the same data, model and trained run as `sepipe run`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sepipe.config import ExperimentConfig, _build, check_path, check_seed, experiment_from_dict, read_yaml_file
from sepipe.errors import ConfigError, InputFileError, check, short_repr

SECTION = "search"


@dataclass(frozen=True)
class SearchConfig:
    population: int = 16
    generations: int = 8
    seed: int | None = None                      # None: the experiment's seed
    target: str = "ethos-u55-128"
    budgets_file: str | None = None               # None: the budgets.yaml shipped in sepipe.vela_configs
    valid_files: int = 8
    pesq: bool = False                            # also record PESQ (slower; not an objective)
    layers: tuple[str, ...] = ()                  # () : the family's compressible layers
    sparsity: tuple[float, ...] = (0.0, 0.5, 0.7, 0.8, 0.9, 0.95)
    clusters: tuple[int, ...] = (0, 16, 8, 4)
    output_layer: bool = True
    uniform: tuple[float, ...] = (0.5, 0.7, 0.8, 0.9)
    workers: int = 1                              # candidate-scoring processes (local executor)
    chosen: int = 5                               # front members written as experiment YAMLs

    def validate(self, src: str) -> None:
        key = f"{SECTION}."
        check(src, key + "population", self.population, 4 <= self.population <= 10_000, "an integer from 4 to 10,000")
        check(src, key + "generations", self.generations, 1 <= self.generations <= 10_000,
              "an integer from 1 to 10,000")
        if self.seed is not None:
            check_seed(src, key + "seed", self.seed)
        check_path(src, key + "budgets_file", self.budgets_file)
        check(src, key + "valid_files", self.valid_files, 1 <= self.valid_files <= 10_000, "an integer from 1 to 10,000")
        check(src, key + "sparsity", list(self.sparsity), len(self.sparsity) >= 1 and len(set(self.sparsity)) ==
              len(self.sparsity) and all(0.0 <= s < 1.0 for s in self.sparsity), "distinct values in [0, 1)")
        check(src, key + "clusters", list(self.clusters), len(self.clusters) >= 1 and len(set(self.clusters)) ==
              len(self.clusters) and all(c == 0 or 2 <= c <= 256 for c in self.clusters),
              "distinct values, each 0 (not clustered) or 2 to 256")
        check(src, key + "uniform", list(self.uniform), all(0.0 <= s < 1.0 for s in self.uniform),
              "sparsities in [0, 1)")
        check(src, key + "workers", self.workers, 1 <= self.workers <= 256, "an integer from 1 to 256")
        check(src, key + "chosen", self.chosen, 1 <= self.chosen <= 1000, "an integer from 1 to 1000")

    def check_against(self, cfg: ExperimentConfig, src: str) -> None:
        """What needs the experiment: layer names of its family and a target its targets file knows."""
        from sepipe.models import family_of
        from sepipe.targets import load_targets

        family = family_of(cfg.model)
        valid = [*family.compressible_layers(cfg.model), *family.output_layers(cfg.model)]
        for name in self.layers:
            check(src, f"{SECTION}.layers", name, name in valid, f"layer names among {valid}")
        known = load_targets(cfg.compile.targets_file)
        check(src, f"{SECTION}.target", self.target, self.target in known, f"one of {sorted(known)}")


def split_search(raw: Any, source: str) -> tuple[dict, dict]:
    """(the experiment mapping, the search mapping) of a YAML mapping; ConfigError without a `search:` section."""
    if not isinstance(raw, dict):
        raise InputFileError(source, f"must be a YAML mapping of sections; it holds {short_repr(raw, 60)}")
    section = raw.get(SECTION)
    if section is None:
        raise ConfigError(source, SECTION, None, "a `search:` section (population, generations, target, ...)")
    return {k: v for k, v in raw.items() if k != SECTION}, section


def search_from_dict(raw: dict, source: str = "<config>") -> tuple[ExperimentConfig, SearchConfig]:
    experiment, section = split_search(raw, source)
    cfg = experiment_from_dict(experiment, source)
    search = _build(SearchConfig, section, source, prefix=f"{SECTION}.")
    search.validate(source)
    search.check_against(cfg, source)
    return cfg, search


def load_search(path: str | Path, overrides: dict[str, Any] | None = None) -> tuple[ExperimentConfig, SearchConfig, dict]:
    """(experiment, search settings, the experiment's raw mapping) of a YAML with a `search:` section;
    `overrides` are dotted keys ('search.population': 8, 'train.epochs': 2)."""
    from sepipe.config import set_dotted

    path = Path(path)
    raw = read_yaml_file(path, "experiment file") or {}
    if isinstance(raw, dict):
        raw.setdefault("name", path.stem)
        for dotted, value in (overrides or {}).items():
            set_dotted(raw, dotted, value)
    cfg, search = search_from_dict(raw, str(path))
    return cfg, search, split_search(raw, str(path))[0]
