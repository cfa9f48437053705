"""Same config and seed, same weight bytes on another CPU: two machines emulated on this one (docs/determinism.md).

Each run trains the tiny GRU for two steps in a fresh process and hashes its weights. The two
processes stand for two x86-64 machines that train differently under TensorFlow's defaults:
- "new": a 4-core CPU with AVX-512 VNNI (TensorFlow turns its oneDNN rewrite on; 4 intra-op threads);
- "old": a 1-core CPU with AVX2 only (rewrite off; oneDNN's JIT capped at AVX2; the process may run
  on one CPU, so TensorFlow would size its pool to 1 thread).
`sepipe.models.keras_backend` pins all three, so both must give the bytes this machine gives.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

CHILD = """
import hashlib, json, sys, tempfile
from pathlib import Path
from sepipe.config import DataConfig, experiment_from_dict
from sepipe.data import Dataset
from sepipe.train import Trainer

data = DataConfig(source="debian", size="small", cache_dir=sys.argv[1], seed=0)
cfg = experiment_from_dict({
    "name": "determinism", "seed": 3, "data": {"cache_dir": data.cache_dir},
    "model": {"family": "gru", "input_units": 16, "rnn_units": 16, "rnn_layers": 1, "dense_units": 16},
    "train": {"epochs": 1, "steps_per_epoch": 2, "batch_size": 4, "valid_files": 1},
})
with tempfile.TemporaryDirectory() as tmp:
    trainer = Trainer(cfg, Dataset.open(data), Path(tmp))
    for batch in trainer.batches(1, 2):
        trainer.step(batch)
    digest = hashlib.sha256(b"".join(w.astype("<f4").tobytes() for w in trainer.model.get_weights()))
from sepipe.models.keras_backend import numeric_settings
print(json.dumps({"sha256": digest.hexdigest(), "settings": numeric_settings()}))
"""

# What the machine would be; the variables also set by keras_backend are removed from the inherited environment.
MACHINES = {
    "new": ({"TF_ENABLE_ONEDNN_OPTS": "1", "ONEDNN_MAX_CPU_ISA": "ALL", "TF_NUM_INTRAOP_THREADS": "4"}, False),
    "old": ({"TF_ENABLE_ONEDNN_OPTS": "0", "ONEDNN_MAX_CPU_ISA": "AVX2"}, True),
}
CLEARED = ("TF_ENABLE_ONEDNN_OPTS", "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "TF_NUM_INTRAOP_THREADS",
           "SEPIPE_PORTABLE_KERNELS", "SEPIPE_INTRA_OP_THREADS")


def _train_and_hash(machine: str, cache_dir: str) -> dict:
    env, one_cpu = MACHINES[machine]
    child_env = {k: v for k, v in os.environ.items() if k not in CLEARED}
    child_env.update(env, TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="2")
    cpu = min(os.sched_getaffinity(0))
    done = subprocess.run([sys.executable, "-c", CHILD, cache_dir], env=child_env, capture_output=True, text=True,
                          cwd=REPO, timeout=600, preexec_fn=(lambda: os.sched_setaffinity(0, {cpu})) if one_cpu else None)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="the promise is for x86-64 CPUs")
def test_training_gives_the_same_bytes_on_an_emulated_older_cpu_with_fewer_cores(small_dataset):
    new = _train_and_hash("new", small_dataset.cfg.cache_dir)
    old = _train_and_hash("old", small_dataset.cfg.cache_dir)
    assert new["settings"] == old["settings"]           # the pins won over what each machine would choose
    assert new["sha256"] == old["sha256"]
