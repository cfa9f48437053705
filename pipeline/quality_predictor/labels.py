"""The teacher labels of every clip, computed once: PESQ-WB (needs the clean reference) and DNSMOS
P.835 OVRL/SIG/BAK (reference-free; sepipe.metrics calls speechmos's bundled ONNX model).

The `labels` stage writes three files into `<run>/labels/`:
  clips.npz     audio (N, samples) int16, split / mixture / window / system per clip
  labels.npz    the scores (N,) float64 per metric in sepipe.quality_predictor.config.TARGETS
  labels.json   the provenance: dataset folder and manifest sha256, each enhancer's .tflite and sha256,
                the clip settings, counts per split and system, the metric tools' versions
The engine's Runner fingerprints the stage (the data and clip settings, the dataset manifest and the
enhancers' files, the metric tools): a rerun with all of them unchanged reuses the files and computes
nothing; a new dataset, enhancer, clip setting or pesq/speechmos version recomputes them.
An interrupted scoring resumes: the scores so far are kept in labels/labels.partial.npz, keyed to the
clips and tools (label_resume), and a rerun scores only the clips after them.

Labels are scored on the int16-rounded audio the clips file keeps (what the predictor is trained on
and what a 16-bit WAV would hold, as DNSMOS's own tool reads).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import time
from pathlib import Path

import numpy as np

from sepipe import artifacts
from sepipe.progress import bar
from sepipe.quality_predictor import label_resume
from sepipe.quality_predictor.clips import SPLITS, Clip, load_enhancers, split_clips
from sepipe.quality_predictor.config import TARGETS

log = logging.getLogger(__name__)

TOOLS = ("pesq", "speechmos", "onnxruntime", "ai-edge-litert", "numpy")


def label_paths(run_dir: Path) -> dict[str, Path]:
    folder = Path(run_dir) / "labels"
    return {"clips": folder / "clips.npz", "labels": folder / "labels.npz", "provenance": folder / "labels.json"}


def to_int16(audio: np.ndarray) -> np.ndarray:
    return np.clip(np.round(np.asarray(audio, dtype=np.float64) * 32767.0), -32768, 32767).astype(np.int16)


def score_clip(audio: np.ndarray, clean: np.ndarray) -> dict[str, float]:
    """The teacher's scores of one clip (float audio, already int16-rounded)."""
    from sepipe import metrics

    row = {"pesq": metrics.pesq_wb(clean, audio)}
    row.update(metrics.dnsmos(audio))
    return {key: row[key] for key in TARGETS}


def compute_labels(cfg, dataset, run_dir: Path, progress: bool = False) -> dict:
    """Every clip of every split and its labels, written atomically (provenance last); returns the summary."""
    start = time.monotonic()
    models = load_enhancers(cfg.clips.enhancers)
    clips: list[Clip] = []
    for split in SPLITS:
        clips += split_clips(dataset, split, cfg, models)
    audio = np.stack([to_int16(c.audio) for c in clips])
    clean = np.stack([to_int16(c.clean) for c in clips])
    meta = {"split": np.array([c.split for c in clips]), "mixture": np.array([c.mixture for c in clips]),
            "window": np.array([c.window for c in clips], dtype=np.int32),
            "system": np.array([c.system for c in clips])}
    partial = label_resume.partial_path(run_dir)
    key = label_resume.scoring_key(meta, audio, clean, TARGETS, TOOLS)
    scores = _score_all(audio, clean, partial, key, progress, cfg.clips.workers)
    paths = label_paths(run_dir)
    _save_npz(paths["clips"], audio=audio, **meta)
    _save_npz(paths["labels"], **scores)
    summary = provenance(cfg, dataset, clips, time.monotonic() - start)
    artifacts.write_json(paths["provenance"], summary)
    partial.unlink(missing_ok=True)      # every score is in labels.npz now
    return {k: summary[k] for k in ("clips", "systems", "per_split")}


def _score_int16(pair: tuple[np.ndarray, np.ndarray]) -> dict[str, float]:
    audio, clean = pair
    return score_clip(audio / 32767.0, clean / 32767.0)


def _scored_in_order(audio: np.ndarray, clean: np.ndarray, start: int, workers: int):
    """Each clip's scores from `start` on, in clip order: in this process (workers 1) or in spawned worker
    processes (they import only sepipe.metrics, no TensorFlow; as sepipe.evaluate.Scorer)."""
    pairs = ((audio[i], clean[i]) for i in range(start, len(audio)))
    workers = workers or os.cpu_count() or 1
    if workers == 1 or len(audio) - start < 2:
        yield from map(_score_int16, pairs)
        return
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        yield from pool.imap(_score_int16, pairs, chunksize=4)


def _score_all(audio: np.ndarray, clean: np.ndarray, partial: Path, key: str, progress: bool,
               workers: int = 1) -> dict:
    """Every clip's scores, in clip order, resuming from the partial file saved under the same key and
    saving it as it goes (label_resume), also when scoring fails, so a rerun scores only the rest."""
    total = len(audio)
    scores = {t: np.empty(total) for t in TARGETS}
    saved = label_resume.load_partial(partial, key, total, TARGETS)
    done = len(saved[TARGETS[0]]) if saved else 0
    for t in saved:
        scores[t][:done] = saved[t]
    if done:
        log.info("labels: resuming from %s, %d of %d clips already scored", partial, done, total)
    last_count, last_time = done, time.monotonic()
    every, seconds = label_resume.SAVE_EVERY, label_resume.SAVE_SECONDS
    try:
        rows = _scored_in_order(audio, clean, done, workers)
        for i, row in bar(zip(range(done, total), rows), progress, total=total, initial=done, desc="labels",
                          unit="clip"):
            for t in TARGETS:
                scores[t][i] = row[t]
            done = i + 1
            if done - last_count >= every or time.monotonic() - last_time >= seconds:
                label_resume.save_partial(partial, key, scores, done)
                last_count, last_time = done, time.monotonic()
                log.info("labels: %d of %d clips scored (saved to %s)", done, total, partial.name)
    except BaseException:      # an error or Ctrl-C: keep what is scored for the rerun
        if done > last_count:
            label_resume.save_partial(partial, key, scores, done)
            log.info("labels: stopped after %d of %d clips; a rerun resumes from %s", done, total, partial)
        raise
    return scores


def _save_npz(path: Path, **arrays) -> None:
    with artifacts.atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, **arrays)


def provenance(cfg, dataset, clips: list[Clip], seconds: float) -> dict:
    per_split = {s: {} for s in SPLITS}
    for c in clips:
        per_split[c.split][c.system] = per_split[c.split].get(c.system, 0) + 1
    manifest = Path(dataset.root) / "manifest.json"
    return {
        "clips": len(clips),
        "systems": ["noisy", "clean", *(e.name for e in cfg.clips.enhancers)],
        "per_split": per_split,
        "dataset": {"folder": str(dataset.root), "manifest_sha256": artifacts.sha256_file(manifest),
                    "test_split": "fixed test mixtures: speakers and noise files disjoint from train"},
        "enhancers": {e.name: {"model": e.model, "sha256": artifacts.sha256_file(e.model),
                               "runtime": "int8/int16 TFLite interpreter (sepipe.enhance)"}
                      for e in cfg.clips.enhancers},
        "clip": {"seconds": cfg.clips.seconds, "per_file": cfg.clips.per_file, "train_files": cfg.clips.train_files,
                 "eval_files": cfg.clips.eval_files, "sample_rate": 16000, "stored_as": "int16"},
        "metrics": {"pesq": "wide band, clean reference of the same window",
                    "dnsmos_*": "DNSMOS P.835 (speechmos's sig_bak_ovr.onnx), clip tiled to 9.01 s"},
        "tools": artifacts.tool_versions(list(TOOLS)),
        "compute_s": round(seconds, 1),
    }


def load_labels(run_dir: Path) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(clips: audio and per-clip metadata, labels: scores per metric) as the labels stage wrote them."""
    paths = label_paths(run_dir)
    with np.load(paths["clips"]) as clips, np.load(paths["labels"]) as labels:
        return {k: clips[k] for k in clips.files}, {k: labels[k] for k in labels.files}
