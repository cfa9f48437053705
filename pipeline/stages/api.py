"""One function per stage or command (what the CLI, bundle and tests call), and run_experiment.

Each runs its stages through the one runner (skipping those up to date) and then rewrites the
run's derived manifest.json.
"""

from __future__ import annotations

import logging

from sepipe.config import ExperimentConfig, VariantConfig
from sepipe.engine import records
from sepipe.engine.stage import Runner
from sepipe.engine.tasks import run_graph
from sepipe.errors import InputFileError
from sepipe.stages.graph import ExperimentSpec, experiment_graph
from sepipe.stages.paths import VariantModel, variant_model, variant_stage

log = logging.getLogger(__name__)


def _run(cfg: ExperimentConfig, names: list[str], dataset=None, progress: bool = True) -> dict[str, dict]:
    """Run `names` (in their declared order) and write the manifest, even when one fails."""
    graph = experiment_graph(cfg, dataset)
    runner = Runner(graph, cfg.run_dir, progress)
    try:
        return {stage.name: runner.run(stage).summary for stage in graph.ordered(names)}
    finally:
        _write_manifest(cfg)


def _write_manifest(cfg: ExperimentConfig, always: bool = False) -> None:
    """Rewrite the derived manifest.json (when a stage is recorded, or `always`); an unreadable record is
    warned about here, not raised, so the error the command itself met (if any) is the line the user sees."""
    try:
        if always or records.read_records(cfg.run_dir):
            records.write_manifest(cfg.run_dir, cfg.to_dict())
    except InputFileError as exc:
        log.warning("%s; manifest.json not rewritten", exc)


def stage_data(cfg: ExperimentConfig, build: bool, progress: bool = True):
    """Open the experiment's dataset, building it first when `build` (else a missing one is an error)."""
    from sepipe.data import Dataset, build_dataset

    if build:
        build_dataset(cfg.data, progress=progress)
    return Dataset.open(cfg.data)


def stage_train(cfg: ExperimentConfig, dataset, progress: bool = True) -> dict:
    return _run(cfg, ["train"], dataset, progress)["train"]


def _chain(variant: VariantConfig, last: str) -> list[str]:
    return [n for n in (variant_stage(variant), f"{last}:{variant.name}") if n]


def stage_variant(cfg: ExperimentConfig, dataset, variant: VariantConfig, progress: bool = True) -> VariantModel:
    """Fine-tune (prune and/or QAT) the trained float model into `variant`; plain 'ptq' and 'offline' need none."""
    stage = variant_stage(variant)
    needs = _run(cfg, [stage], dataset, progress) if stage else {}
    return variant_model(cfg, variant, needs)


def stage_convert(cfg: ExperimentConfig, dataset, variant: VariantConfig, progress: bool = True) -> dict:
    """The variant's fine-tuning (if any) and its full-integer .tflite."""
    return _run(cfg, _chain(variant, "convert"), dataset, progress)[f"convert:{variant.name}"]


def stage_compile(cfg: ExperimentConfig, variant: VariantConfig) -> dict:
    """Vela for every target of the experiment; one record per target."""
    return _run(cfg, [f"compile:{variant.name}"])[f"compile:{variant.name}"]


def stage_references(cfg: ExperimentConfig, dataset, progress: bool = True) -> dict:
    return _run(cfg, ["evaluate:references"], dataset, progress)["evaluate:references"]


def stage_evaluate(cfg: ExperimentConfig, dataset, variant: VariantConfig, progress: bool = True) -> dict:
    return _run(cfg, _chain(variant, "evaluate"), dataset, progress)[f"evaluate:{variant.name}"]


def evaluate_all(cfg: ExperimentConfig, dataset, progress: bool = True) -> dict:
    """References plus every variant; writes and returns the quality table with its notes."""
    from sepipe.stages.prediction import predict_stages

    names = ["evaluate:references", "quality", *predict_stages(cfg)] + [n for v in cfg.variants
                                                                        for n in _chain(v, "evaluate")]
    return _run(cfg, names, dataset, progress)["quality"]


def stage_report(cfg: ExperimentConfig, dataset=None) -> dict:
    """Join quality (evaluate) with deployment (compile) into CSV, Markdown and HTML."""
    return _run(cfg, ["report"])["report"]


def run_experiment(cfg: ExperimentConfig, progress: bool = True, executor=None) -> dict:
    """All stages of `cfg`, each skipped when up to date; returns the quality and report summaries.

    `executor`: an executor object or a registered name ('local', the default, or 'ray'); the
    variants' chains are its tasks, the shared stages and the report run here.
    """
    from sepipe.engine.executors import make_executor

    executor = make_executor(executor or "local") if executor is None or isinstance(executor, str) else executor
    log.info("experiment %s -> %s (variants: %s; executor: %s)", cfg.name, cfg.run_dir,
             ", ".join(v.name for v in cfg.variants), executor.name)
    stage_data(cfg, build=True, progress=progress)
    spec = ExperimentSpec(cfg, progress=progress and executor.name == "local")
    try:
        runs = run_graph(spec, executor)
    finally:
        _write_manifest(cfg, always=True)
    return {"evaluate": runs["quality"].summary, "report": runs["report"].summary}
