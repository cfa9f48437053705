"""The NSGA-II loop (pymoo, ask and tell): genes -> candidates -> scores -> the next generation.

Objectives (all minimised): -SI-SDR (proxy, dB), Vela flash (KiB), Vela cycles; one inequality constraint,
the number of the target's budget limits the candidate breaks. pymoo's integer recipe: random integer
sampling, SBX crossover and polynomial mutation rounded back to integers, duplicates eliminated.

Same seed and same recorded figures: the same generations, hence the same front (a rerun after an
interruption replays the stored candidates and scores only the rest). Candidates of a generation are
scored on the executor: `local` (this process with one worker, else `search.workers` spawned processes)
or `ray` (one Ray task per candidate, a local instance or `--address`).
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sepipe import artifacts
from sepipe.progress import bar
from sepipe.search.genes import Candidate, Genome
from sepipe.search.scoring import QUALITY_DECIMALS, ScoringSpec, init_worker, score_candidate, score_in_worker, state_for
from sepipe.search.store import CandidateStore

log = logging.getLogger(__name__)


@dataclass
class SearchStats:
    scored: int = 0            # candidates scored in this run
    resumed: int = 0           # served from the candidate records (an earlier or interrupted run)
    repeated: int = 0          # met again within this run (same bytes as an earlier generation's)
    cache_hits: int = 0        # of the scored ones, Vela results served by the compile cache
    wall_s: float = 0.0
    generations: int = 0
    seen: set = field(default_factory=set)

    def to_dict(self) -> dict:
        scored = max(self.scored, 1)
        return {"candidates_scored": self.scored, "candidates_resumed": self.resumed,
                "candidates_repeated": self.repeated, "vela_cache_hits": self.cache_hits,
                "vela_cache_hit_rate": self.cache_hits / scored if self.scored else None,
                "wall_s": round(self.wall_s, 1), "generations": self.generations}


class CandidateExecutor:
    """Scores a list of candidates, in order: in this process, in spawned processes, or on Ray."""

    def __init__(self, spec: ScoringSpec, workers: int = 1, executor: str = "local", address: str | None = None):
        self.spec, self.kind, self.pool, self.remote = spec, executor, None, None
        if executor == "ray":
            import ray

            ray.init(address=address, ignore_reinit_error=True, log_to_driver=False)
            self.remote = ray.remote(num_cpus=1)(score_in_worker)
        elif workers > 1:
            import multiprocessing

            self.pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                            initializer=init_worker, initargs=(spec,))

    def map(self, candidates: list[Candidate]):
        """Yields each candidate's record, in order, as it is ready."""
        if self.remote is not None:
            import ray

            refs = [self.remote.remote(self.spec, c) for c in candidates]
            yield from (ray.get(ref) for ref in refs)
        elif self.pool is not None:
            futures = [self.pool.submit(score_in_worker, self.spec, c) for c in candidates]
            yield from (f.result() for f in futures)
        else:
            state = state_for(self.spec)
            yield from (score_candidate(state, c) for c in candidates)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown()


def score_all(candidates: list[Candidate], store: CandidateStore, executor: CandidateExecutor, stats: SearchStats,
              progress: bool, desc: str) -> list[dict]:
    """Records of `candidates` (stored ones reused, the rest scored and stored as each finishes), in order."""
    records: dict[str, dict] = {}
    todo = []
    for c in candidates:
        stored = store.get(c.id)
        if stored is not None:
            records[c.id] = stored
            if c.id in stats.seen:
                stats.repeated += 1
            else:
                stats.resumed += 1
        elif c.id not in {t.id for t in todo}:
            todo.append(c)
    for record in bar(executor.map(todo), progress, total=len(todo), desc=desc):
        records[record["id"]] = store.put(record)
        stats.scored += 1
        stats.cache_hits += bool(record["cache_hit"])
    stats.seen.update(c.id for c in candidates)
    return [records[c.id] for c in candidates]


def objectives(records: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    """F (n, 3): -SI-SDR, flash KiB, cycles; G (n, 1): broken budget limits."""
    F = np.array([[-r["si_sdr"], r["flash_kib"], r["cycles_total"]] for r in records], dtype=float)
    G = np.array([[float(len(r["violations"]))] for r in records], dtype=float)
    return F, G


def run_nsga2(genome: Genome, search, seed: int, store: CandidateStore, executor: CandidateExecutor,
              stats: SearchStats, progress: bool = True) -> list[dict]:
    """Every record the search met, generation by generation (with a 'generation' field)."""
    from pymoo.algorithms.moo.nsga2 import NSGA2
    from pymoo.core.evaluator import Evaluator
    from pymoo.core.problem import Problem
    from pymoo.problems.static import StaticProblem
    from pymoo.operators.crossover.sbx import SBX
    from pymoo.operators.mutation.pm import PM
    from pymoo.operators.repair.rounding import RoundingRepair
    from pymoo.operators.sampling.rnd import IntegerRandomSampling

    problem = Problem(n_var=genome.n_var, n_obj=3, n_ieq_constr=1, xl=0, xu=genome.upper, vtype=int)
    sampling = initial_population(genome, search, seed) if search.seed_uniform else IntegerRandomSampling()
    algorithm = NSGA2(pop_size=search.population, sampling=sampling,
                      crossover=SBX(prob=0.9, eta=15, vtype=float, repair=RoundingRepair()),
                      mutation=PM(eta=20, vtype=float, repair=RoundingRepair()), eliminate_duplicates=True)
    algorithm.setup(problem, termination=("n_gen", search.generations), seed=seed, verbose=False)
    met: list[dict] = []
    while algorithm.has_next():
        population = algorithm.ask()
        candidates = [genome.decode(x) for x in population.get("X")]
        gen = stats.generations + 1
        records = score_all(candidates, store, executor, stats, progress, f"search gen {gen}/{search.generations}")
        F, G = objectives(records)
        Evaluator().eval(StaticProblem(problem, F=F, G=G), population)
        algorithm.tell(infills=population)
        stats.generations = gen
        met += [{**r, "generation": gen} for r in records]
    return met


def uniform_points(search) -> list[tuple[float, int]]:
    """(sparsity, levels) of the uniform references: each sparsity with each of `uniform_clusters`."""
    return [(value, levels) for value in search.uniform for levels in search.uniform_clusters]


def initial_population(genome: Genome, search, seed: int) -> np.ndarray:
    """The first generation: the dense model and each uniform reference the genes can express (every searched
    layer but the output at that sparsity and palette), on every precision plan (point by point, plans
    alternating, so a population too small for all keeps the mildest points of each plan), the rest drawn at
    random with `seed`. Starting from the uniform points, the front can only match or beat them: on the LSTM
    the int8 points are poor enhancers (issue 13) and only the 16x8 plan's points are a fair bar."""
    rows = []
    for value, levels in [(0.0, 0), *uniform_points(search)]:
        if value in genome.sparsity and (levels == 0 or levels in genome.clusters):
            for plan in range(len(genome.plans)):
                x = np.zeros(genome.n_var, dtype=int)
                for i, layer in enumerate(genome.layers):
                    if layer not in genome.output_layers:
                        x[2 * i] = genome.sparsity.index(value)
                        x[2 * i + 1] = genome.clusters.index(levels) if levels else 0
                if len(genome.plans) > 1:
                    x[-1] = plan
                rows.append(x)
    rng = np.random.default_rng([seed, 14])
    while len(rows) < search.population:
        rows.append(rng.integers(0, genome.upper + 1))
    unique = list({tuple(r): r for r in rows}.values())[:search.population]
    return np.array(unique, dtype=float)


def search(cfg, search_cfg, base_tflite: Path, out_dir: Path, executor: str = "local", address: str | None = None,
           progress: bool = True, plans: dict[str, Path] | None = None, raw_experiment: dict | None = None) -> dict:
    """Run the search; returns {'records', 'references', 'stats', 'genome'} (the front is front.py's job).
    `plans`: {plan variant: .tflite} of the genome's precision plans (sepipe.search.plans.convert_plans);
    `raw_experiment`: the YAML as written, to which the fine-tuned proxy adds its variants (default: cfg's)."""
    from sepipe.models import family_of

    started = time.perf_counter()
    genome = Genome.for_experiment(cfg, search_cfg)
    plans = tuple((name, str(path)) for name, path in sorted((plans or {}).items()))
    spec = ScoringSpec(cfg, search_cfg, str(base_tflite), str(Path(out_dir) / "work"), plans, raw_experiment)
    store = CandidateStore(Path(out_dir) / "candidates", scoring_context(cfg, search_cfg, base_tflite, plans))
    stats = SearchStats()
    pool = CandidateExecutor(spec, search_cfg.workers, executor, address)
    seed = cfg.seed if search_cfg.seed is None else search_cfg.seed
    try:
        compressible = tuple(family_of(cfg.model).compressible_layers(cfg.model))
        bases = ["", *(name for name, _ in plans)]        # the uniform points on int8 and on each precision plan
        references = [Candidate((), (), "dense int8"), *(Candidate((), (), f"dense {name}", name) for name, _ in plans),
                      *(genome.uniform(s, compressible, c, b) for b in bases for s, c in uniform_points(search_cfg))]
        refs = score_all(references, store, pool, stats, progress, "search references")
        refs = [{**r, "label": c.label} for r, c in zip(refs, references)]
        records = run_nsga2(genome, search_cfg, seed, store, pool, stats, progress)
    finally:
        pool.close()
    stats.wall_s = time.perf_counter() - started
    return {"records": records, "references": refs, "stats": stats.to_dict(), "genome": genome, "seed": seed}


def scoring_context(cfg, search_cfg, base_tflite: Path, plans: tuple = ()) -> dict:
    """What a stored candidate's figures depend on besides its own genes (a change scores it again)."""
    from sepipe.budgets import DEFAULT_BUDGETS_FILE
    from sepipe.deploy.vela import vela_version
    from sepipe.targets import get_target

    budgets = Path(search_cfg.budgets_file or DEFAULT_BUDGETS_FILE)
    target = get_target(search_cfg.target, path=cfg.compile.targets_file)
    return {"base_tflite_sha256": artifacts.sha256_file(base_tflite), "data": repr(cfg.data),
            "features": repr(cfg.features), "valid_files": search_cfg.valid_files, "pesq": search_cfg.pesq,
            "target": target.columns(), "vela_version": vela_version(),
            "budgets_sha256": artifacts.sha256_file(budgets), "require_full_npu": cfg.compile.require_full_npu,
            "quality_decimals": QUALITY_DECIMALS,
            **({"proxy": search_cfg.proxy, "proxy_steps": search_cfg.proxy_steps,
                "train": repr(cfg.train), "model": repr(cfg.model)} if search_cfg.proxy != "offline" else {}),
            **({"plans": {name: artifacts.sha256_file(path) for name, path in plans}} if plans else {})}
