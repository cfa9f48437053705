"""Import point for TensorFlow and Keras 2 (tf_keras): what must be chosen before TensorFlow loads is chosen here.

- `TF_USE_LEGACY_KERAS=1`: TFMOT needs Keras 2.
- Portable float kernels (docs/determinism.md): by default TensorFlow's CPU kernels depend on the CPU
  they run on, so the same config and seed train different weights on two x86-64 machines. Three
  things differ, and each is pinned here (measured with benchmarks/determinism_probe.py):
    * TensorFlow turns its oneDNN graph rewrite on by default only on CPUs with AVX512_VNNI,
      AVX512_BF16, AVX_VNNI or AMX (`IsMklEnabled`): pinned on (`TF_ENABLE_ONEDNN_OPTS=1`; off
      measured ~20% slower here and no more portable);
    * oneDNN's JIT kernels (behind MatMul even with the rewrite off: Eigen's contraction calls
      oneDNN's sgemm) pick the widest instruction set the CPU has: capped at AVX2, which every
      x86-64 server CPU since 2013-2015 has (`ONEDNN_MAX_CPU_ISA=AVX2`);
    * the intra-op thread pool is sized by the CPUs the process may use, and GEMMs and reductions
      are split by it: pinned to SEPIPE_INTRA_OP_THREADS (default 2) whatever the core count.
  These override the same variables set by the caller: the promise holds only if every machine
  runs the same values. `SEPIPE_PORTABLE_KERNELS=0` leaves all three to TensorFlow and the user
  (faster on big or AVX-512 machines; same bytes on one machine only).
"""

from __future__ import annotations

import logging
import os
import sys

from sepipe.models.kernels import (  # noqa: F401
    NUMERIC_VARIABLES, PORTABLE_SWITCH, numeric_settings, portable_settings,
)

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
_portable = portable_settings()
if _portable is not None:
    if "tensorflow" in sys.modules and any(os.environ.get(k) != v for k, v in _portable.items()):
        # oneDNN and the thread pool read these on first use, not at import: usually still in time
        logging.getLogger(__name__).warning(
            "TensorFlow was imported before sepipe set its portable-kernel settings; if it has run ops "
            "already, training may not give the same bytes as on other machines (import sepipe first)")
    os.environ.update(_portable)

import tensorflow as tf  # noqa: E402
import tf_keras as keras  # noqa: E402

__all__ = ["tf", "keras", "numeric_settings", "portable_settings"]
