"""The `search:` section of an experiment YAML (SearchConfig): a field of ExperimentConfig, so `sepipe config
check`, `sepipe run` and `sepipe search` all validate it the same way (one-line ConfigError). No import of
sepipe.config at module level (sepipe.config imports this module).

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
  uniform_clusters: [0, 8]  # each uniform sparsity also with every layer clustered to these levels (0: not clustered)
  precision: [rnn]          # layer groups / tensor classes whose activations are a gene: int8 or int16x8
  finetune_epochs: 4        # chosen YAMLs also fine-tune each member (kind cluster with its per-layer sparsity and palettes)
  proxy: offline            # offline: edit the int8 bytes (seconds); finetune: fine-tune each candidate proxy_steps steps first
  proxy_steps: 50
  folder: search            # under the run folder: another name keeps an earlier search's front (another proxy, genes)
```
"""

from __future__ import annotations

from dataclasses import dataclass

from sepipe.compress.clustering import MAX_CLUSTERS, MIN_CLUSTERS
from sepipe.errors import check

SECTION = "search"
SEED_MAX = 2**32 - 1
PROXIES = ("offline", "finetune")              # how a candidate's quality is measured (sepipe.search.finetune_proxy)


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
    # keys of a variant's `precision:` mapping (layer group, layer or tensor class: rnn, cell_state, ...) whose
    # activation precision is a gene (int8 / int16x8); each distinct plan is converted once (a 'ptq' variant)
    precision: tuple[str, ...] = ()
    uniform: tuple[float, ...] = (0.5, 0.7, 0.8, 0.9)
    # palettes of the uniform references: (0,) is pruning alone; (0, 8) adds 'uniform 0.8 c8' (every layer pruned to
    # 0.8, then clustered to 8 values), the uniform cluster sweep a per-layer search has to beat
    uniform_clusters: tuple[int, ...] = (0,)
    seed_uniform: bool = True                     # the first generation holds the dense and uniform points
    workers: int = 1                              # candidate-scoring processes (local executor)
    chosen: int = 5                               # front members written as experiment YAMLs
    # > 0: each chosen YAML also holds the member fine-tuned (kind 'weight' with its per-layer sparsity and
    # plan, this many epochs), so `sepipe run` scores proxy and fine-tuned side by side
    finetune_epochs: int = 0
    # how a candidate's quality is measured (sepipe.search.finetune_proxy): 'offline' edits the dense int8 bytes;
    # 'finetune' fine-tunes it `proxy_steps` steps first, a fine-tune per candidate, nearer what fine-tuning recovers
    proxy: str = "offline"
    proxy_steps: int = 50
    folder: str = "search"                        # <run>/<folder>: the front, chosen YAMLs and candidate records

    def validate(self, src: str) -> None:
        key = f"{SECTION}."
        check(src, key + "population", self.population, 4 <= self.population <= 10_000, "an integer from 4 to 10,000")
        check(src, key + "generations", self.generations, 1 <= self.generations <= 10_000,
              "an integer from 1 to 10,000")
        check(src, key + "seed", self.seed, self.seed is None or 0 <= self.seed <= SEED_MAX,
              f"an integer from 0 to 2**32 - 1 = {SEED_MAX}, or left out (the experiment's seed)")
        check(src, key + "budgets_file", self.budgets_file, self.budgets_file is None or "\0" not in self.budgets_file,
              "a path (without a NUL character)")
        check(src, key + "valid_files", self.valid_files, 1 <= self.valid_files <= 10_000, "an integer from 1 to 10,000")
        check(src, key + "sparsity", list(self.sparsity), len(self.sparsity) >= 1 and len(set(self.sparsity)) ==
              len(self.sparsity) and all(0.0 <= s < 1.0 for s in self.sparsity), "distinct values in [0, 1)")
        check(src, key + "clusters", list(self.clusters), len(self.clusters) >= 1 and len(set(self.clusters)) ==
              len(self.clusters) and all(c == 0 or MIN_CLUSTERS <= c <= MAX_CLUSTERS for c in self.clusters),
              f"distinct values, each 0 (not clustered) or {MIN_CLUSTERS} to {MAX_CLUSTERS} (int8 values per tensor)")
        check(src, key + "uniform", list(self.uniform), all(0.0 <= s < 1.0 for s in self.uniform),
              "sparsities in [0, 1)")
        check(src, key + "uniform_clusters", list(self.uniform_clusters), len(self.uniform_clusters) >= 1 and
              len(set(self.uniform_clusters)) == len(self.uniform_clusters) and
              all(c == 0 or MIN_CLUSTERS <= c <= MAX_CLUSTERS for c in self.uniform_clusters),
              f"distinct values, each 0 (not clustered) or {MIN_CLUSTERS} to {MAX_CLUSTERS}")
        check(src, key + "workers", self.workers, 1 <= self.workers <= 256, "an integer from 1 to 256")
        check(src, key + "chosen", self.chosen, 1 <= self.chosen <= 1000, "an integer from 1 to 1000")
        check(src, key + "proxy", self.proxy, self.proxy in PROXIES, f"one of {list(PROXIES)}")
        check(src, key + "proxy_steps", self.proxy_steps, 1 <= self.proxy_steps <= 1_000_000,
              "an integer from 1 to 1,000,000 (fine-tuning steps per candidate)")
        check(src, key + "folder", self.folder, isinstance(self.folder, str) and self.folder.strip() == self.folder
              and self.folder not in ("", ".", "..") and not any(c in self.folder for c in "/\\\0"),
              "a folder name inside the run folder (no path separators), e.g. search or search_finetune")
        check(src, key + "finetune_epochs", self.finetune_epochs, 0 <= self.finetune_epochs <= 10_000,
              "an integer from 0 (no fine-tuned variant) to 10,000")

    def check_against(self, cfg, src: str) -> None:
        """What needs the experiment: layer names of its family and a target its targets file knows."""
        from sepipe.models import family_of
        from sepipe.targets import load_targets

        family = family_of(cfg.model)
        valid = [*family.compressible_layers(cfg.model), *family.output_layers(cfg.model)]
        for name in self.layers:
            check(src, f"{SECTION}.layers", name, name in valid, f"layer names among {valid}")
        if self.precision:
            from sepipe.quantize.precision import check_precision

            check(src, f"{SECTION}.precision", list(self.precision), len(set(self.precision)) == len(self.precision)
                  and len(self.precision) <= 4, "at most 4 distinct keys")
            contract = family.contract(cfg.model, cfg.features.bins)
            check_precision(src, f"{SECTION}.precision", {key: "int16x8" for key in self.precision}, contract)
        known = load_targets(cfg.compile.targets_file)
        check(src, f"{SECTION}.target", self.target, self.target in known, f"one of {sorted(known)}")
