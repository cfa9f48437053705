"""The train stage: the dense float model, reused from another run whose training was identical."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

from sepipe import artifacts
from sepipe.config import ExperimentConfig
from sepipe.engine import records
from sepipe.engine.stage import Done, Stage, StageContext
from sepipe.errors import InputFileError
from sepipe.models.kernels import fingerprint_settings
from sepipe.stages import tools
from sepipe.stages.paths import DataHandle, RunPaths, model_sources

log = logging.getLogger(__name__)


def declare_train(cfg: ExperimentConfig, data: DataHandle) -> Stage:
    paths = RunPaths(cfg)
    return Stage(
        name="train", tools=tools.TRAIN,
        config={"seed": cfg.seed, "data": cfg.data, "features": cfg.features, "model": cfg.model,
                "train": cfg.train, "kernels": fingerprint_settings()},
        inputs=lambda needs: {"dataset_manifest": data.manifest, **model_sources(cfg)},
        outputs=[paths.sequence_weights, paths.streaming_weights, paths.train_dir / "history.json"],
        writes=[paths.train_dir / "train_state.json", paths.train_dir / "fingerprint.json"],
        run=lambda ctx: _train(cfg, data, ctx),
        hint=f"train first: sepipe train {cfg.name}.yaml")


def _train(cfg: ExperimentConfig, data: DataHandle, ctx: StageContext) -> dict | Done:
    from sepipe.train import train

    paths = RunPaths(cfg)
    reused = reuse_identical_training(cfg, ctx.fingerprint)
    if reused is not None:
        return reused
    _set_aside_stale_checkpoints(paths.train_dir, ctx.fingerprint)
    try:
        result = train(cfg, data.dataset, paths.train_dir, progress=ctx.progress)
    except FileNotFoundError:
        if paths.sequence_weights.exists():
            raise
        raise NoBestModelError(paths.train_dir / "train_state.json") from None
    history = artifacts.write_text(paths.train_dir / "history.json", records.finite_json(result.history, indent=2) + "\n")
    best = next((r for r in result.history if r["epoch"] == result.best_epoch), None)
    if best is None:
        raise NoBestModelError(paths.train_dir / "train_state.json")
    summary = {"best_epoch": result.best_epoch, "epochs_run": len(result.history),
               "best_val_sisdr_db": best["val_sisdr_db"], "train_seconds": sum(r["seconds"] for r in result.history)}
    return Done(summary, (result.sequence_weights, result.streaming_weights, history))


class NoBestModelError(InputFileError):
    """Training ended without a best model: no epoch gave a finite validation loss (NaN or infinite
    samples in the data, or a diverging run), so nothing can be exported, now or on a rerun."""

    def __init__(self, state: Path):
        super().__init__(state, _no_best_problem(state))


def _no_best_problem(state: Path) -> str:
    losses = []
    try:
        losses = [r.get("val_loss") for r in json.loads(state.read_text()).get("history", [])]
    except (OSError, ValueError, AttributeError):
        pass
    seen = f" (validation loss per epoch: {', '.join(str(v) for v in losses[:8])})" if losses else ""
    return (f"training saved no best model: no epoch gave a finite validation loss{seen}; check the dataset for "
            "NaN or infinite samples, or lower train.learning_rate, then remove the train folder and rerun")


def reuse_identical_training(cfg: ExperimentConfig, fingerprint: dict) -> Done | None:
    """The trained model of another experiment whose training had the same fingerprint, copied here.

    Same data, features, model, training config, seed and tool versions give the same
    weights (training is deterministic), so a sweep experiment starts from the model its
    baseline trained instead of training it again. The outputs are copied and rehashed.
    """
    for record_file in sorted(Path(cfg.runs_dir).glob(f"*/{records.record_path('.', 'train')}")):
        other = record_file.parent.parent
        if other.resolve() == Path(cfg.run_dir).resolve():
            continue
        # another run's unreadable record is skipped with a warning: it must not stop this experiment
        record = records.read_record_of_other_run(other, "train")
        if record is None or not records.is_current(other, "train", fingerprint, record):
            continue
        outputs = [artifacts.write_bytes(cfg.run_dir / rel, (other / rel).read_bytes()) for rel in record["outputs"]]
        log.info("train: reusing the model trained in %s (same data, model, training config, seed and tools)", other)
        return Done({**record["summary"], "reused_from": str(other)}, tuple(outputs))
    return None


SUPERSEDED_DIR = "train.superseded"


def _set_aside_stale_checkpoints(train_dir: Path, fingerprint: dict) -> None:
    """Resume only a run of the same config; checkpoints of another config are moved aside, never deleted.

    A changed kernel setting (SEPIPE_INTRA_OP_THREADS, say) changes the fingerprint as much as a
    changed config does, and hours of training must not vanish because of an environment variable:
    the old folder goes to train.superseded/<its fingerprint>, and a later run with the old settings
    takes it back and resumes (or finds it finished).
    """
    marker = train_dir / "fingerprint.json"
    wanted = artifacts.sha256_json(fingerprint)
    if marker.exists() and (old := marker.read_text().strip()) != wanted:
        aside = train_dir.parent / SUPERSEDED_DIR / old[:16]
        if aside.exists():
            shutil.rmtree(aside)        # an older copy of the very same training
        aside.parent.mkdir(parents=True, exist_ok=True)
        train_dir.rename(aside)
        log.warning("train: the config, data or kernel settings (now %s) changed since the checkpoints were written; they are "
                    "kept in %s (a run with the old settings resumes from them); training starts "
                    "afresh", ", ".join(f"{k}={v}" for k, v in _kernel_items(fingerprint)), aside)
    kept = train_dir.parent / SUPERSEDED_DIR / wanted[:16]
    if not marker.exists() and kept.is_dir():
        if train_dir.exists():
            shutil.rmtree(train_dir)    # holds no checkpoint of its own (no fingerprint marker)
        kept.rename(train_dir)
        log.info("train: resuming the checkpoints of these settings, kept in %s", kept)
    if not marker.exists():
        artifacts.write_text(marker, wanted + "\n")


def _kernel_items(fingerprint: dict) -> list[tuple[str, str]]:
    kernels = fingerprint.get("config", {}).get("kernels", fingerprint.get("kernels"))
    return sorted(kernels.items()) if isinstance(kernels, dict) else [("kernels", str(kernels))]
