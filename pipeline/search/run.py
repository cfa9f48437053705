"""`sepipe search` end to end: the dense reference's .tflite of the run, the search, its outputs and summary.

Everything lands in `<run>/search/`: `candidates/` (one record per scored candidate, what a rerun skips),
`front.csv|md`, `references.csv|md`, `front.png`, `chosen/<experiment>_<variant>.yaml`, and `search.json`
(settings, wall time, candidates scored, cache hit rate, the front's ids), written last.
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

from sepipe import artifacts
from sepipe.errors import MissingArtifactError


def search_dir(cfg) -> Path:
    """`<run>/search`, or the folder `search.folder` names."""
    return cfg.run_dir / (cfg.search.folder if cfg.search else "search")


def run_search(cfg, search_cfg, raw_experiment: dict, source: str = "EXP.yaml", executor: str = "local",
               address: str | None = None, progress: bool = True, base_tflite: Path | None = None) -> dict:
    """Search, write the front and the chosen YAMLs; returns the summary written to search.json."""
    from sepipe.search import driver, front
    from sepipe.stages.paths import RunPaths

    base = Path(base_tflite) if base_tflite is not None else RunPaths(cfg).tflite()
    if not base.is_file():
        raise MissingArtifactError(base, f"the search edits the dense reference's int8 model: make it first "
                                         f"with `sepipe convert {source}` (or `sepipe run`)")
    out_dir = search_dir(cfg)
    from sepipe.search.genes import Genome
    from sepipe.search.plans import convert_plans

    plans = convert_plans(cfg, raw_experiment, Genome.for_experiment(cfg, search_cfg), source, progress)
    result = driver.search(cfg, search_cfg, base, out_dir, executor, address, progress, plans, raw_experiment)
    shutil.rmtree(out_dir / "work", ignore_errors=True)    # scratch: candidates' .tflite and Vela outputs
    outputs = front.write_outputs(out_dir, cfg, raw_experiment, result, search_cfg.chosen)
    genome = result["genome"]
    summary = {"experiment": cfg.name, "base_tflite": str(base), "base_tflite_sha256": artifacts.sha256_file(base),
               "search": dataclasses.asdict(search_cfg), "seed": result["seed"], "executor": executor,
               "genes": {"layers": list(genome.layers), "sparsity": list(genome.sparsity),
                         "clusters": list(genome.clusters)},
               **result["stats"], "candidates_met": len({r["id"] for r in result["records"]}),
               "references": {r["label"]: r["id"] for r in result["references"]}, **outputs}
    artifacts.write_json(out_dir / "search.json", summary)
    return summary
