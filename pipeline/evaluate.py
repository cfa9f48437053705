"""Evaluation stage: stream every test mixture through each model and score it.

For every test file the features are computed once (they are per-frame, so this
equals computing them per hop), then each runner steps through the frames one
at a time, feeding its recurrent states back: the float Keras streaming model,
the int8 model in the TFLite interpreter and in the TFLite Micro interpreter
(what ships). The mask is applied and the audio resynthesised with the
reference DSP, then scored against the clean reference. Reference rows: the
unprocessed input and RNNoise. Every row carries its configuration columns so
CSVs from many runs concatenate into one comparison table.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline import features as feat
from pipeline.audio import write_wav
from pipeline.baselines import rnnoise_enhance
from pipeline.config import ExperimentConfig
from pipeline.metrics import METRICS, mean_scores, score

log = logging.getLogger(__name__)

# Row labels: what a reader sees in the table's `system` column.
SYSTEM_OF_RUNNER = {"float": "float32 Keras", "tflite": "int8 TFLite", "tflm": "int8 TFLite Micro"}
SYSTEM_OF_BASELINE = {"noisy": "unprocessed", "rnnoise": "RNNoise (pyrnnoise)"}


@dataclass(frozen=True)
class EvaluationResult:
    rows: list[dict]          # one per system: mean scores plus configuration columns
    per_file: list[dict]      # one per (system, file)
    interpreter_gap: dict     # TFLM against TFLite: mask LSB and SI-SDR differences
    speed: dict               # real-time factors of each streaming loop


def _runner_factories(cfg: ExperimentConfig, streaming_model, tflite_bytes: bytes | None):
    from pipeline.interpreters import make_runner

    factories = {}
    for kind in cfg.evaluate.interpreters:
        if kind == "float":
            factories[kind] = lambda: make_runner("float", streaming_model=streaming_model)
        elif tflite_bytes is not None:
            factories[kind] = lambda kind=kind: make_runner(kind, tflite_bytes=tflite_bytes)
    return factories


def evaluate(cfg: ExperimentConfig, dataset, streaming_model, tflite_bytes: bytes | None,
             out_dir: Path, variant: str = "ptq", progress: bool = True) -> EvaluationResult:
    """Score the baselines and every runner on the test split; enhanced audio goes to `out_dir/audio`."""
    from tqdm import tqdm

    pairs = dataset.pairs("test", limit=cfg.evaluate.test_files)
    runners = {kind: make() for kind, make in _runner_factories(cfg, streaming_model, tflite_bytes).items()}
    per_file, masks, timing = [], {}, {kind: [0.0, 0.0] for kind in runners}
    audio_seconds = 0.0
    for index, pair in enumerate(tqdm(pairs, desc="evaluate", disable=not progress)):
        audio_seconds += len(pair.noisy) / cfg.data.sample_rate
        outputs = {name: _baseline(name, pair.noisy) for name in cfg.evaluate.baselines}
        for kind, runner in runners.items():
            started = time.perf_counter()
            noisy_features, spectrum = feat.features(pair.noisy, cfg.features)
            network_started = time.perf_counter()
            runner.reset()
            mask = runner.run(noisy_features)
            network_s = time.perf_counter() - network_started
            outputs[kind] = feat.enhance_with_mask(spectrum, mask, cfg.features, len(pair.noisy))
            timing[kind][0] += network_s
            timing[kind][1] += time.perf_counter() - started
            masks.setdefault(kind, []).append(mask)
        for system, enhanced in outputs.items():
            scores = score(pair.clean, enhanced, cfg.data.sample_rate, with_dnsmos=cfg.evaluate.dnsmos)
            per_file.append({"system": system, "file": pair.name, **scores})
            if index < cfg.evaluate.write_audio:
                write_wav(Path(out_dir) / "audio" / system / f"{pair.name}.wav", enhanced, cfg.data.sample_rate)
        if index < cfg.evaluate.write_audio:
            write_wav(Path(out_dir) / "audio" / "clean" / f"{pair.name}.wav", pair.clean, cfg.data.sample_rate)
    speed = {kind: {"network_rtf": audio_seconds / max(net, 1e-9), "loop_rtf": audio_seconds / max(loop, 1e-9)}
             for kind, (net, loop) in timing.items()}
    rows = _summary_rows(cfg, per_file, variant, speed)
    mask_lsb = _mask_lsb(tflite_bytes) if tflite_bytes is not None else float("nan")
    return EvaluationResult(rows, per_file, _interpreter_gap(masks, per_file, mask_lsb), speed)


def _mask_lsb(tflite_bytes: bytes) -> float:
    from pipeline.convert import MASK_OUTPUT, tflite_io

    return tflite_io(tflite_bytes).output(MASK_OUTPUT).scale


def _baseline(name: str, noisy: np.ndarray) -> np.ndarray:
    return noisy if name == "noisy" else rnnoise_enhance(noisy)


def _summary_rows(cfg: ExperimentConfig, per_file: list[dict], variant: str, speed: dict) -> list[dict]:
    systems = list(dict.fromkeys(row["system"] for row in per_file))
    means = {s: mean_scores([{m: r[m] for m in METRICS} for r in per_file if r["system"] == s]) for s in systems}
    noisy, reference = means.get("noisy"), means.get("float")
    rows = []
    for system in systems:
        is_model = system in SYSTEM_OF_RUNNER
        row = {
            "experiment": cfg.name, "variant": variant if is_model else "-",
            "model": f"{cfg.model.family}-{cfg.model.rnn_layers}x{cfg.model.rnn_units}" if is_model else "-",
            "system": SYSTEM_OF_RUNNER.get(system) or SYSTEM_OF_BASELINE[system],
            "files": sum(1 for r in per_file if r["system"] == system),
            **means[system],
            "si_sdr_gain_db": means[system]["si_sdr"] - noisy["si_sdr"] if noisy else float("nan"),
            "si_sdr_vs_float_db": means[system]["si_sdr"] - reference["si_sdr"] if reference and is_model else float("nan"),
            "loop_rtf": speed.get(system, {}).get("loop_rtf", float("nan")),
        }
        rows.append(row)
    return rows


def _interpreter_gap(masks: dict, per_file: list[dict], lsb: float) -> dict:
    """How far TFLite Micro (what ships) is from the TFLite interpreter; `lsb` is the mask's int8 scale."""
    if "tflm" not in masks or "tflite" not in masks:
        return {}
    diffs = [np.abs(a - b) for a, b in zip(masks["tflm"], masks["tflite"])]
    sisdr = {s: np.array([r["si_sdr"] for r in per_file if r["system"] == s]) for s in ("tflm", "tflite")}
    return {
        "mask_max_abs_diff": float(max(d.max() for d in diffs)),
        "mask_max_diff_lsb": float(max(d.max() for d in diffs) / lsb),
        "mask_mean_abs_diff": float(np.mean([d.mean() for d in diffs])),
        "frames_differing_fraction": float(np.mean(np.concatenate([(d > 1e-9).any(axis=1) for d in diffs]))),
        "si_sdr_max_abs_diff_db": float(np.max(np.abs(sisdr["tflm"] - sisdr["tflite"]))),
    }
