"""One candidate scored cheaply: offline edit of the dense int8 bytes, proxy quality, Vela figures, budgets.

Quality is the mean SI-SDR (and PESQ when asked) of the edited model in the TFLite interpreter over the
search's fixed validation mixtures (`search.valid_files`, the first of the experiment's `valid` split, spread
by name), the same streaming loop as evaluation. Cycles, flash and SRAM come from Vela for `search.target`
through the platform's compile cache (sepipe.deploy.cache: keyed by the model's bytes), so a candidate met
twice, in this search or an earlier one, is compiled once. The target's budgets (vela_configs/budgets.yaml)
give the constraint: the number of broken limits (0: feasible).

`ScoringState` is what a worker process builds once (`init_worker`) and reuses for every candidate.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sepipe.search.genes import Candidate


@dataclass(frozen=True)
class ScoringSpec:
    """What a worker needs to build its state (picklable: sent to processes and Ray tasks)."""

    cfg: object                  # ExperimentConfig
    search: object               # SearchConfig
    base_tflite: str             # the dense reference's int8 .tflite
    work_dir: str                # candidates' .tflite files and Vela outputs (scratch)
    plans: tuple[tuple[str, str], ...] = ()    # (plan variant, its .tflite): the precision plans' bases
    raw_experiment: dict | None = None         # the experiment as written (the fine-tuned proxy adds variants to it)


class ScoringState:
    def __init__(self, spec: ScoringSpec):
        from sepipe import features as feat
        from sepipe.budgets import DEFAULT_BUDGETS_FILE, load_budgets
        from sepipe.data import Dataset
        from sepipe.deploy.cache import cache_root
        from sepipe.deploy.compile import CompileOptions
        from sepipe.models import family_of
        from sepipe.targets import get_target, load_targets

        cfg, search = spec.cfg, spec.search
        self.spec, self.cfg, self.search = spec, cfg, search
        self.bases = {"": Path(spec.base_tflite).read_bytes(),
                      **{name: Path(path).read_bytes() for name, path in spec.plans}}
        targets = load_targets(cfg.compile.targets_file)
        self.target = get_target(search.target, targets, cfg.compile.targets_file)
        budgets = load_budgets(search.budgets_file or DEFAULT_BUDGETS_FILE, targets)
        self.budgets = {k: v for k, v in budgets.items() if k == self.target.name}
        self.options = CompileOptions(require_full_npu=cfg.compile.require_full_npu)
        self.cache = cache_root(cfg.data.cache_dir)
        self.contract = None if ":" in cfg.model.family else family_of(cfg.model).contract(cfg.model, cfg.features.bins)
        pairs = Dataset.open(cfg.data).pairs("valid", limit=search.valid_files)
        self.files = [(pair, *feat.features(pair.noisy, cfg.features)) for pair in pairs]
        self.work = Path(spec.work_dir)
        self.work.mkdir(parents=True, exist_ok=True)
        self.finetuned = None
        if search.proxy == "finetune":
            from sepipe.search.finetune_proxy import FineTunedCandidates
            from sepipe.search.genes import Genome, plan_variant

            plans = {plan_variant(plan): plan for plan in Genome.for_experiment(cfg, search).plans if plan}
            self.finetuned = FineTunedCandidates(spec.raw_experiment or cfg.to_dict(), cfg, search.proxy_steps, plans)


_STATE: dict[str, ScoringState] = {}


def state_for(spec: ScoringSpec) -> ScoringState:
    """This process's state for `spec`, built on first use (a pool worker, a Ray worker, the driver)."""
    key = hashlib.sha256(repr(spec).encode()).hexdigest()
    if key not in _STATE:
        _STATE.clear()
        _STATE[key] = ScoringState(spec)
    return _STATE[key]


def init_worker(spec: ScoringSpec) -> None:
    import os

    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    state_for(spec)


def score_in_worker(spec: ScoringSpec, candidate: Candidate) -> dict:
    return score_candidate(state_for(spec), candidate)


def candidate_bytes(state: ScoringState, candidate: Candidate) -> bytes:
    """The candidate's .tflite: what the `offline` variant it writes rebuilds (sepipe.compress.kinds.offline)
    from the bytes of its base (the dense reference, or its precision plan's variant); with the fine-tuned
    proxy, its briefly fine-tuned variant's conversion (sepipe.search.finetune_proxy)."""
    from sepipe.compress.offline import offline_compress_tflite

    if state.finetuned is not None and (candidate.sparsity or candidate.levels):
        return state.finetuned.tflite_bytes(candidate)
    return offline_compress_tflite(state.bases[candidate.base], dict(candidate.sparsity), dict(candidate.levels))


def score_candidate(state: ScoringState, candidate: Candidate) -> dict:
    """{figures} of one candidate: quality, Vela's figures, budget violations, whether Vela's cache served it."""
    started = time.perf_counter()
    tflite = candidate_bytes(state, candidate)
    sha = hashlib.sha256(tflite).hexdigest()
    quality = proxy_quality(state, tflite)
    compiled, cache_hit = compile_candidate(state, tflite, candidate.id)
    from sepipe.budgets import check_budgets

    violations = [str(v) for v in check_budgets([compiled], state.budgets)] if state.budgets else []
    return {"id": candidate.id, "key": candidate.key, "label": candidate.label, "tflite_sha256": sha,
            "sparsity": dict(candidate.sparsity), "levels": dict(candidate.levels), "base": candidate.base,
            **quality,
            **{k: compiled.get(k) for k in FIGURES}, "violations": violations, "cache_hit": cache_hit,
            "score_s": round(time.perf_counter() - started, 3)}


QUALITY_DECIMALS = 6
FIGURES = ("flash_kib", "cycles_total", "sram_memory_used_kib", "inference_time_ms",
           "total_npu_encoded_weights_bytes", "npu_op_share")


def proxy_quality(state: ScoringState, tflite: bytes) -> dict:
    """Mean SI-SDR (dB), and PESQ when `search.pesq`, of the model in the TFLite interpreter on the fixed files."""
    from sepipe import features as feat
    from sepipe.metrics import pesq_wb, si_sdr
    from sepipe.runtime import make_runner

    runner = make_runner("tflite", tflite_bytes=tflite, contract=state.contract)
    sisdr, pesq = [], []
    for pair, features, spectrum in state.files:
        runner.reset()
        enhanced = feat.enhance_with_mask(spectrum, runner.run(features), state.cfg.features, len(pair.noisy))
        sisdr.append(si_sdr(pair.clean, enhanced))
        if state.search.pesq:
            pesq.append(pesq_wb(pair.clean, enhanced, state.cfg.data.sample_rate))
    # rounded: numpy's float sums differ in the last bits between processes with other BLAS thread counts
    # (Ray workers), and the search's choices must not
    out = {"si_sdr": round(float(np.mean(sisdr)), QUALITY_DECIMALS)}
    if pesq:
        out["pesq"] = round(float(np.mean(pesq)), QUALITY_DECIMALS)
    return out


def compile_candidate(state: ScoringState, tflite: bytes, name: str) -> tuple[dict, bool]:
    """Vela's record for `tflite` on the search's target, through the compile cache; (record, cache hit)."""
    import shutil
    import tempfile

    from sepipe.deploy.cache import compile_cached

    folder = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=state.work))
    try:
        path = folder / f"{name}.tflite"
        path.write_bytes(tflite)
        outcome = compile_cached(path, state.target, folder / "vela", f"c{name}", state.options, state.cache)
        return dict(outcome.record), outcome.cache_hit
    finally:
        shutil.rmtree(folder, ignore_errors=True)
