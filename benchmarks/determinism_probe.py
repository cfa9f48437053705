"""Which run-time settings change the bytes training produces? Simulates other CPUs on this one.

Each setting trains the project's GRU mask model (the demo's size by default) for a few steps on the
small Debian dataset, through `sepipe.train.Trainer` (same seeding, loss, optimizer and tf.function
as a real run), in a fresh subprocess with the setting's environment, and prints the SHA-256 of the
weights after the last step and the steps/s (steps after the first, which traces).

    TF_USE_LEGACY_KERAS=1 .venv/bin/python benchmarks/determinism_probe.py            # the whole matrix
    .venv/bin/python benchmarks/determinism_probe.py --only default isa-avx2 --steps 4
    .venv/bin/python benchmarks/determinism_probe.py --env ONEDNN_MAX_CPU_ISA=AVX --env TF_NUM_INTRAOP_THREADS=1

Since models/keras_backend.py pins these variables (docs/determinism.md), a setting that sets one of them
is overridden unless it also sets SEPIPE_PORTABLE_KERNELS=0 (`--base SEPIPE_PORTABLE_KERNELS=0` gives
TensorFlow's own defaults, the behaviour before the pin); `taskset` is never overridden.

How a setting stands in for another machine:
- `ONEDNN_MAX_CPU_ISA` caps the instruction set oneDNN's JIT kernels use: AVX2 is an x86-64 without
  AVX-512 (e.g. AMD EPYC Milan, older Xeons), SSE41 an old one. oneDNN backs TF's MatMul both through its
  graph rewrite (`TF_ENABLE_ONEDNN_OPTS`) and through Eigen's contraction kernel (oneDNN sgemm).
- `TF_NUM_INTRAOP_THREADS` / `taskset` stand in for a machine with another core count: TF sizes its
  intra-op pool from the CPUs the process may use, and reductions and GEMMs are split by that pool.
The matrix settings (`--only` names) are in SETTINGS; a result line is JSON, one per setting.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# Variables a setting may set; all are removed from the parent's environment first, so `default`
# means this machine with nothing set (what a user gets), whatever the caller's shell exported.
CONTROLLED = ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "TF_ENABLE_ONEDNN_OPTS", "TF_NUM_INTRAOP_THREADS",
              "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS", "TF_DETERMINISTIC_OPS", "SEPIPE_PORTABLE_KERNELS",
              "SEPIPE_INTRA_OP_THREADS")

# name -> (environment, CPUs to pin the process to with taskset or None)
SETTINGS: dict[str, tuple[dict[str, str], str | None]] = {
    "default": ({}, None),
    "isa-avx512": ({"ONEDNN_MAX_CPU_ISA": "AVX512_CORE"}, None),
    "isa-avx2": ({"ONEDNN_MAX_CPU_ISA": "AVX2"}, None),
    "isa-avx": ({"ONEDNN_MAX_CPU_ISA": "AVX"}, None),
    "isa-sse41": ({"ONEDNN_MAX_CPU_ISA": "SSE41"}, None),
    "onednn-off": ({"TF_ENABLE_ONEDNN_OPTS": "0"}, None),
    "onednn-off-isa-avx2": ({"TF_ENABLE_ONEDNN_OPTS": "0", "ONEDNN_MAX_CPU_ISA": "AVX2"}, None),
    "onednn-off-isa-sse41": ({"TF_ENABLE_ONEDNN_OPTS": "0", "ONEDNN_MAX_CPU_ISA": "SSE41"}, None),
    "intra-1": ({"TF_NUM_INTRAOP_THREADS": "1"}, None),
    "intra-4": ({"TF_NUM_INTRAOP_THREADS": "4"}, None),
    "intra-8": ({"TF_NUM_INTRAOP_THREADS": "8"}, None),
    "inter-1": ({"TF_NUM_INTEROP_THREADS": "1"}, None),
    "taskset-1cpu": ({}, "0"),
    "tf-deterministic-ops": ({"TF_DETERMINISTIC_OPS": "1"}, None),
    # sepipe's own switches (models/keras_backend.py)
    "sepipe-threads-1": ({"SEPIPE_INTRA_OP_THREADS": "1"}, None),
    "sepipe-threads-4": ({"SEPIPE_INTRA_OP_THREADS": "4"}, None),
    "sepipe-native": ({"SEPIPE_PORTABLE_KERNELS": "0"}, None),
}


def _tiny_model(size: str) -> dict:
    if size == "tiny":
        return {"family": "gru", "input_units": 16, "rnn_units": 16, "rnn_layers": 1, "dense_units": 16}
    return {"family": "gru", "input_units": 128, "rnn_units": 128, "rnn_layers": 2, "dense_units": 128}


def weights_sha256(model) -> str:
    """SHA-256 of every weight array of `model`, in layer order, as raw little-endian float32."""
    digest = hashlib.sha256()
    for array in model.get_weights():
        digest.update(array.astype("<f4").tobytes())
    return digest.hexdigest()


def train_and_hash(steps: int, size: str, batch_size: int, seed: int = 0) -> dict:
    """Run in the child: `steps` optimizer steps from the seeded initial weights -> hash, speed, settings."""
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from sepipe.config import DataConfig, experiment_from_dict
    from sepipe.data import Dataset
    from sepipe.train import Trainer
    from tensorflow.python.util import _pywrap_util_port

    data = DataConfig(source="debian", size="small", cache_dir=str(REPO / ".cache"), seed=0)
    cfg = experiment_from_dict({
        "name": "probe", "seed": seed, "data": {"cache_dir": data.cache_dir},
        "model": _tiny_model(size),
        "train": {"epochs": 1, "steps_per_epoch": steps, "batch_size": batch_size, "valid_files": 1},
    })
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(cfg, Dataset.open(data), Path(tmp))
        batches = list(trainer.batches(1, steps))   # features outside the timed loop
        started = None
        for i, batch in enumerate(batches):
            float(trainer.step(batch)[0])
            if i == 0:
                started = time.perf_counter()
        elapsed = time.perf_counter() - started
        return {"sha256": weights_sha256(trainer.model), "steps_per_s": round((steps - 1) / elapsed, 3),
                "onednn_on": bool(_pywrap_util_port.IsMklEnabled()),
                **{key: os.environ[key] for key in CONTROLLED if key in os.environ}}


def run_setting(env: dict[str, str], cpus: str | None, steps: int, size: str, batch_size: int,
                seed: int = 0) -> dict:
    """Train in a fresh subprocess under `env` (on top of the cleaned parent environment)."""
    child_env = {k: v for k, v in os.environ.items() if k not in CONTROLLED}
    child_env.update(env, TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="2")
    command = [sys.executable, str(Path(__file__).resolve()), "--child", "--steps", str(steps), "--size", size,
               "--batch-size", str(batch_size), "--seed", str(seed)]
    if cpus is not None:
        command = ["taskset", "-c", cpus] + command
    done = subprocess.run(command, env=child_env, capture_output=True, text=True, cwd=REPO)
    if done.returncode != 0:
        raise RuntimeError(f"probe child failed ({env}, cpus={cpus}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=6, help="optimizer steps (default 6)")
    ap.add_argument("--size", choices=("demo", "tiny"), default="demo", help="model size (default: the demo's GRU)")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", nargs="+", choices=sorted(SETTINGS), help="run these settings of the matrix")
    ap.add_argument("--env", action="append", default=[], metavar="KEY=VALUE", help="one custom setting instead")
    ap.add_argument("--base", action="append", default=[], metavar="KEY=VALUE",
                    help="added to every setting (to try a candidate pin before it is the default)")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(train_and_hash(args.steps, args.size, args.batch_size, args.seed)))
        return 0
    if args.env:
        plan = {"custom": (dict(item.split("=", 1) for item in args.env), None)}
    else:
        plan = {name: SETTINGS[name] for name in (args.only or SETTINGS)}
    base = dict(item.split("=", 1) for item in args.base)
    reference = None
    for name, (env, cpus) in plan.items():
        result = run_setting({**base, **env}, cpus, args.steps, args.size, args.batch_size, args.seed)
        reference = reference or result["sha256"]
        result.update(setting=name, same_as_first=result["sha256"] == reference)
        print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
