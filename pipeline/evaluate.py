"""Evaluation stage: stream every test mixture through each model and score it.

For every test file the features are computed once (they are per-frame, so this
equals computing them per hop), then each runner steps through the frames one
at a time, feeding its recurrent states back: the float Keras streaming model,
the int8 model in the TFLite interpreter and in the TFLite Micro interpreter
(what ships). The mask is applied and the audio resynthesised with the
reference DSP, then scored against the clean reference.

References (the unprocessed input, RNNoise) are scored once per experiment;
models once per variant. `quality_table` then adds the derived columns (gain
over the input, change against the dense float model) so each row stands alone.
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import os
import time
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sepipe import features as feat
from sepipe.audio import write_wav
from sepipe.config import ExperimentConfig
from sepipe.data.conditions import CONDITION_VALUES
from sepipe.metrics import METRICS, mean_scores, score_file
from sepipe.progress import bar
from sepipe.runtime import RUNNERS, system_label

log = logging.getLogger(__name__)

# Row labels: what a reader sees in the table's `system` column. A runner's label comes from its
# class and the model's I/O type ('int8 TFLite', 'int16 TFLite Micro'); this table holds the int8 ones.
SYSTEM_OF_RUNNER = {kind: system_label(kind, "int8") for kind in RUNNERS.names()}
SYSTEM_OF_REFERENCE = {"noisy": "unprocessed", "rnnoise": "RNNoise (pyrnnoise)"}


@dataclass(frozen=True)
class EvaluationResult:
    rows: list[dict]          # one per system: mean scores plus configuration columns
    per_file: list[dict]      # one per (system, file)
    interpreter_gap: dict     # TFLM against TFLite: mask LSB and SI-SDR differences
    speed: dict               # real-time factors of each streaming loop
    audio: tuple = ()         # the WAVs kept (evaluate.write_audio): the stage declares them as its outputs


def evaluation_pairs(cfg: ExperimentConfig, dataset):
    """The test files evaluation streams (evaluate.test_files of them; all when 0); the predict stages stream the same."""
    return dataset.pairs("test", limit=cfg.evaluate.test_files)


class Scorer:
    """Scores enhanced audio in worker processes while the caller streams the next file.

    The metrics dominate evaluation time (DNSMOS alone is about 1 s per file and system)
    and need no TensorFlow, so spawned workers import only `sepipe.metrics`. Spawning
    re-imports the caller's main module: a script that calls the pipeline needs the usual
    `if __name__ == "__main__":` guard (the `sepipe` CLI and pytest have it).
    """

    def __init__(self, sample_rate: int, workers: int = 0, dnsmos: bool = True):
        self.sample_rate, self.dnsmos = sample_rate, dnsmos
        workers = workers or os.cpu_count() or 1
        self.pool = (ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
                     if workers > 1 else None)
        self.jobs: list[tuple[str, str, Future | dict]] = []

    @classmethod
    def for_experiment(cls, cfg: ExperimentConfig) -> "Scorer":
        return cls(cfg.data.sample_rate, cfg.evaluate.workers, cfg.evaluate.dnsmos)

    def submit(self, system: str, pair, enhanced: np.ndarray) -> None:
        # A bad sample is reported naming the test file (its noisy source, else its name) and the system.
        args = (pair.source or pair.name, system, pair.clean, enhanced, self.sample_rate, self.dnsmos)
        job = self.pool.submit(score_file, *args) if self.pool else score_file(*args)
        self.jobs.append((system, pair.name, job))

    def results(self) -> list[dict]:
        """One row per submitted (system, file), in submission order."""
        rows = [{"system": system, "file": name, **(job.result() if isinstance(job, Future) else job)}
                for system, name, job in self.jobs]
        if self.pool:
            self.pool.shutdown()
        return rows


def _score_and_keep(cfg, scorer: Scorer, pair, index, system, enhanced, out_dir) -> tuple[Path, ...]:
    """Submit `enhanced` for scoring; the WAV kept for one of the first write_audio files, if any."""
    scorer.submit(system, pair, enhanced)
    if index < cfg.evaluate.write_audio:
        return (write_wav(Path(out_dir) / "audio" / system / f"{pair.name}.wav", enhanced, cfg.data.sample_rate),)
    return ()


def evaluate_references(cfg: ExperimentConfig, dataset, out_dir: Path, progress: bool = True) -> EvaluationResult:
    """Score the unprocessed input and RNNoise on the test split (independent of any model)."""
    from sepipe.baselines import rnnoise_enhance

    scorer, pairs, kept = Scorer.for_experiment(cfg), evaluation_pairs(cfg, dataset), []
    log.info("references: %s on %d test files", ", ".join(cfg.evaluate.baselines), len(pairs))
    for index, pair in enumerate(bar(pairs, progress, desc="references")):
        for name in cfg.evaluate.baselines:
            enhanced = pair.noisy if name == "noisy" else rnnoise_enhance(pair.noisy, cfg.data.sample_rate)
            kept += _score_and_keep(cfg, scorer, pair, index, SYSTEM_OF_REFERENCE[name], enhanced, out_dir)
        if index < cfg.evaluate.write_audio:
            kept.append(write_wav(Path(out_dir) / "audio" / "clean" / f"{pair.name}.wav", pair.clean,
                                  cfg.data.sample_rate))
    per_file = scorer.results()
    rows = [{"experiment": cfg.name, "variant": "-", "model": "-", "system": system, **stats}
            for system, stats in mean_by_system(per_file).items()]
    return EvaluationResult(rows, per_file, {}, {}, tuple(kept))


def evaluate_models(cfg: ExperimentConfig, dataset, variant: str, model_label: str, streaming_model,
                    tflite_bytes: bytes | None, out_dir: Path, progress: bool = True,
                    contract=None) -> EvaluationResult:
    """Score one variant's runners (those built from a streaming model if `streaming_model`, those
    built from a .tflite if `tflite_bytes`); `contract`: the model's (inferred from names when None)."""
    runners = variant_runners(cfg, streaming_model, tflite_bytes, contract)
    # Stream every file first and score afterwards, so the speed figures are not taken
    # while scoring workers compete for the cores.
    pairs = evaluation_pairs(cfg, dataset)
    log.info("evaluate %s: streaming %d test files through %s", variant, len(pairs), ", ".join(runners))
    enhanced, masks, speed = _stream_all(cfg, runners, pairs, f"stream {variant}", progress)
    log.info("evaluate %s: scoring %d outputs", variant, len(enhanced))
    scorer = Scorer.for_experiment(cfg)
    index_of = {pair.name: index for index, pair in enumerate(pairs)}
    systems = {kind: runner.system for kind, runner in runners.items()}
    kept = []
    for pair, kind, audio in bar(enhanced, progress, desc=f"score {variant}"):
        kept += _score_and_keep(cfg, scorer, pair, index_of[pair.name], f"{variant}/{systems[kind]}", audio, out_dir)
    per_file = scorer.results()
    rows = []
    for kind in runners:
        system = systems[kind]
        stats = mean_by_system([r for r in per_file if r["system"] == f"{variant}/{system}"])[f"{variant}/{system}"]
        rows.append({"experiment": cfg.name, "variant": variant, "model": model_label, "system": system, **stats,
                     "loop_rtf": speed[kind]["loop_rtf"]})
    quantized = next((r for r in runners.values() if hasattr(r, "io")), None)
    mask_lsb = quantized.io.head.scale if quantized is not None else float("nan")
    return EvaluationResult(rows, per_file, _interpreter_gap(masks, per_file, variant, mask_lsb, systems), speed,
                            tuple(kept))


def variant_runners(cfg: ExperimentConfig, streaming_model, tflite_bytes: bytes | None, contract=None) -> dict:
    """{runner kind: runner} of `cfg.evaluate.interpreters` that the variant's sources can build."""
    from sepipe.runtime import make_runner

    runners = {}
    sources = {"streaming_model": streaming_model, "tflite_bytes": tflite_bytes}
    for kind in cfg.evaluate.interpreters:
        if sources[RUNNERS.get(kind).needs] is not None:
            runners[kind] = make_runner(kind, contract=contract, **sources)
    return runners


def stream_all(cfg: ExperimentConfig, runners: dict, pairs: list, desc: str, progress: bool) -> list:
    """[(pair, runner kind, enhanced audio)]: what evaluation scores, made the same way (for other scorers)."""
    return _stream_all(cfg, runners, pairs, desc, progress)[0]


def _stream_all(cfg: ExperimentConfig, runners: dict, pairs: list, desc: str, progress: bool):
    """Enhance every pair with every runner, frame by frame.

    Returns [(pair, kind, enhanced audio)], {kind: [mask per file]} and {kind: real-time factors}
    of the network alone and of the whole loop (features + network + resynthesis), one core.
    """
    enhanced, masks, audio_seconds = [], {}, 0.0
    timing = {kind: [0.0, 0.0] for kind in runners}
    for pair in bar(pairs, progress, desc=desc):
        audio_seconds += len(pair.noisy) / cfg.data.sample_rate
        for kind, runner in runners.items():
            started = time.perf_counter()
            noisy_features, spectrum = feat.features(pair.noisy, cfg.features)
            network_started = time.perf_counter()
            runner.reset()
            mask = runner.run(noisy_features)
            timing[kind][0] += time.perf_counter() - network_started
            enhanced.append((pair, kind, feat.enhance_with_mask(spectrum, mask, cfg.features, len(pair.noisy))))
            timing[kind][1] += time.perf_counter() - started
            masks.setdefault(kind, []).append(mask)
    speed = {kind: {"network_rtf": audio_seconds / max(net, 1e-9), "loop_rtf": audio_seconds / max(loop, 1e-9)}
             for kind, (net, loop) in timing.items()}
    return enhanced, masks, speed


def mean_by_system(per_file: list[dict]) -> dict[str, dict]:
    """{system: {'files': n, mean of each metric}} of per-file rows, systems in their first-seen order."""
    systems = list(dict.fromkeys(row["system"] for row in per_file))
    return {s: {"files": sum(1 for r in per_file if r["system"] == s),
                **mean_scores([{m: r[m] for m in METRICS} for r in per_file if r["system"] == s])} for s in systems}


def quality_table(reference_rows: list[dict], variant_rows: list[dict], dense_variant: str) -> list[dict]:
    """All quality rows with `si_sdr_gain_db` (over the input) and `si_sdr_vs_float_db` (over the dense float model)."""
    noisy = next((r["si_sdr"] for r in reference_rows if r["system"] == SYSTEM_OF_REFERENCE["noisy"]), math.nan)
    dense_float = next((r["si_sdr"] for r in variant_rows if r["variant"] == dense_variant
                        and r["system"] == SYSTEM_OF_RUNNER["float"]), math.nan)
    table = []
    for row in [*reference_rows, *variant_rows]:
        is_model = row["variant"] != "-"
        table.append({**row, "si_sdr_gain_db": row["si_sdr"] - noisy,
                      "si_sdr_vs_float_db": row["si_sdr"] - dense_float if is_model else math.nan})
    return table


def _interpreter_gap(masks: dict, per_file: list[dict], variant: str, lsb: float, systems: dict) -> dict:
    """How far TFLite Micro (what ships) is from the TFLite interpreter; `lsb` is the mask's quantisation scale."""
    if "tflm" not in masks or "tflite" not in masks:
        return {}
    diffs = [np.abs(a - b) for a, b in zip(masks["tflm"], masks["tflite"])]
    sisdr = {kind: np.array([r["si_sdr"] for r in per_file if r["system"] == f"{variant}/{systems[kind]}"])
             for kind in ("tflm", "tflite")}
    return {
        "mask_max_abs_diff": float(max(d.max() for d in diffs)),
        "mask_max_diff_lsb": float(max(d.max() for d in diffs) / lsb),
        "mask_values_differing_fraction": float(np.mean(np.concatenate([(d > 1e-9).ravel() for d in diffs]))),
        "si_sdr_max_abs_diff_db": float(np.max(np.abs(sisdr["tflm"] - sisdr["tflite"]))),
    }


def per_file_key(row: dict) -> str:
    """The `system` a quality-table row's files carry in the per-file scores ('<variant>/<system>' for models)."""
    return row["system"] if row["variant"] == "-" else f"{row['variant']}/{row['system']}"


def quality_by_condition(table: list[dict], per_file: list[dict], conditions: dict[str, dict[str, str]]) -> list[dict]:
    """Mean scores of each quality-table row per test condition, from the per-file scores already stored.

    `table`: the quality table's rows (they give the order and the configuration columns); `per_file`:
    the references' and variants' per-file rows; `conditions`: {file: {condition: value}}. One row per
    (system row, condition, value) with files > 0, carrying `files`, the metric means and
    `si_sdr_gain_db` over the unprocessed input on the same files (dB).
    """
    by_system: dict[str, list[dict]] = {}
    for row in per_file:
        by_system.setdefault(row["system"], []).append(row)
    keys = list(dict.fromkeys(key for c in conditions.values() for key in c))
    present = {key: {c[key] for c in conditions.values() if key in c} for key in keys}
    values = {key: [v for v in CONDITION_VALUES.get(key, sorted(present[key])) if v in present[key]] for key in keys}
    noisy = by_system.get(SYSTEM_OF_REFERENCE["noisy"], [])
    out = []
    for row in table:
        files = by_system.get(per_file_key(row), [])
        for key in keys:
            for value in values[key]:
                group = [r for r in files if conditions.get(r["file"], {}).get(key) == value]
                if not group:
                    continue
                means = mean_scores([{m: r[m] for m in METRICS} for r in group])
                names = {r["file"] for r in group}
                noisy_si_sdr = mean_scores([{"si_sdr": r["si_sdr"]} for r in noisy if r["file"] in names])["si_sdr"]
                out.append({"experiment": row["experiment"], "variant": row["variant"], "model": row["model"],
                            "system": row["system"], "condition": key, "condition_value": value,
                            "files": len(group), **means, "si_sdr_gain_db": means["si_sdr"] - noisy_si_sdr})
    return out
