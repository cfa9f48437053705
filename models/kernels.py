"""Which float kernels TensorFlow runs, decided before it loads (docs/determinism.md); no TensorFlow here.

`sepipe.models.keras_backend` applies `portable_settings()` before importing TensorFlow; stages that
train put `fingerprint_settings()` into their fingerprints, so a run with other kernel settings is
not mistaken for the same training.
"""

from __future__ import annotations

import os

PORTABLE_SWITCH = "SEPIPE_PORTABLE_KERNELS"          # "0": TensorFlow's CPU-dependent defaults
THREADS_VARIABLE = "SEPIPE_INTRA_OP_THREADS"         # intra-op threads when portable (same value, same bytes)
DEFAULT_INTRA_OP_THREADS = 2
PORTABLE_ISA = "AVX2"
# Every variable that decides which float kernels run and how they split the work.
NUMERIC_VARIABLES = ("TF_ENABLE_ONEDNN_OPTS", "ONEDNN_MAX_CPU_ISA", "TF_NUM_INTRAOP_THREADS")


def portable_settings() -> dict[str, str] | None:
    """The environment the portable kernels need, or None when SEPIPE_PORTABLE_KERNELS=0."""
    if os.environ.get(PORTABLE_SWITCH, "1").strip() == "0":
        return None
    threads = os.environ.get(THREADS_VARIABLE, str(DEFAULT_INTRA_OP_THREADS)).strip()
    if not threads.isdigit() or int(threads) < 1:
        raise ValueError(f"{THREADS_VARIABLE}={threads!r}: expected an integer >= 1 (intra-op threads)")
    return {"TF_ENABLE_ONEDNN_OPTS": "1", "ONEDNN_MAX_CPU_ISA": PORTABLE_ISA, "TF_NUM_INTRAOP_THREADS": threads}


def numeric_settings() -> dict[str, str]:
    """What this process's float kernels run with (for run records): the portable switch and the variables."""
    return {PORTABLE_SWITCH: "0" if portable_settings() is None else "1",
            **{key: os.environ.get(key, "(TensorFlow default)") for key in NUMERIC_VARIABLES}}


def fingerprint_settings() -> dict[str, str] | str:
    """What training results depend on among the kernel settings: the pinned values, or 'machine
    default' when SEPIPE_PORTABLE_KERNELS=0 (then only one machine repeats itself)."""
    return portable_settings() or "machine default"
