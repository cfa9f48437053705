"""Real-time factor of the streaming int8 loop (TFLite and TFLite Micro), on 1 and on N processes.

    .venv/bin/python benchmarks/streaming_speed.py runs/demo/demo_ptq.tflite [--workers 2] [--seconds 60]

The loop is what evaluation runs per file: features of a 16 kHz signal, one Invoke per
hop with the states fed back, mask applied, overlap-add. The audio is real test speech
from the small dataset. A real-time factor of 100 means 100 s of audio per second.
Files are independent streams, so N processes give N streams at once (the throughput
of a batch evaluation); one stream's factor is the latency-bound figure.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _audio(seconds: float):
    import numpy as np

    from sepipe.config import DataConfig
    from sepipe.data import Dataset, build_dataset

    cfg = DataConfig(size="small", cache_dir=str(REPO / ".cache"))
    build_dataset(cfg, progress=False)
    speech = np.concatenate([p.noisy for p in Dataset.open(cfg).pairs("test")])
    return np.resize(speech, int(seconds * 16000)).astype(np.float32)


def stream(args: tuple[str, bytes, "np.ndarray"]) -> float:
    """Seconds taken to enhance `audio` frame by frame with runner `kind`."""
    from sepipe import features as feat
    from sepipe.config import FeatureConfig
    from sepipe.runtime import make_runner

    kind, model, audio = args
    runner, cfg = make_runner(kind, tflite_bytes=model), FeatureConfig()
    started = time.perf_counter()
    logpow, spectrum = feat.features(audio, cfg)
    feat.enhance_with_mask(spectrum, runner.run(logpow), cfg, len(audio))
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="int8 streaming .tflite")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--seconds", type=float, default=60.0, help="audio per stream (s)")
    args = parser.parse_args(argv)
    model, audio = args.model.read_bytes(), _audio(args.seconds)
    print(f"| runner | streams | audio per stream (s) | wall (s) | x real time (all streams) |")
    print("|---|---|---|---|---|")
    for kind in ("tflite", "tflm"):
        for workers in sorted({1, args.workers}):
            with ProcessPoolExecutor(workers) as pool:
                list(pool.map(stream, [(kind, model, audio[:16000])] * workers))   # warm up each process
                started = time.perf_counter()
                list(pool.map(stream, [(kind, model, audio)] * workers))
                wall = time.perf_counter() - started
            print(f"| {kind} | {workers} | {args.seconds:g} | {wall:.2f} | {workers * args.seconds / wall:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
