"""The TFLite Micro tensor arena: probing and measuring it, and the manifest's `tflm_arena` section."""

from __future__ import annotations

import math
import re
import tempfile
from pathlib import Path
from typing import Any

from sepipe.bundle.kernel_arena import kernel_set_arenas
from sepipe.bundle.layout import ARENA_MAX_BYTES
from sepipe.bundle.model_ops import ModelOps
from sepipe.bundle.source import BundleSource, tflite_name, vela_name
from sepipe.errors import ToolError, describe_exit

ARENA_HEADROOM = 0.10            # +10 %, then rounded up to a whole KiB
ARENA_ROUND = 1024

# One process probes arena sizes, printing each before and after trying it: the TFLM Python
# interpreter segfaults (instead of failing cleanly) for arenas a few bytes too small, so a probe
# that never reports back counts as too small and the search goes on in a fresh process.
_ARENA_PROBE = r"""
import sys
from tflite_micro.python.tflite_micro import runtime
data = open(sys.argv[1], "rb").read()
low, high = int(sys.argv[2]), int(sys.argv[3])
def runs(size):
    print("probe", size, flush=True)
    try:
        runtime.Interpreter.from_bytes(data, arena_size=size).invoke()
    except (RuntimeError, ValueError):
        print("fail", size, flush=True)
        return False
    print("ok", size, flush=True)
    return True
for size in map(int, sys.argv[4:]):
    runs(size)
if len(sys.argv) > 4:
    sys.exit(0)
while not high:
    size = max(2 * low, 1 << 16)
    if size > ARENA_MAX:
        print("toobig", flush=True)
        sys.exit(0)
    if runs(size):
        high = size
    else:
        low = size
while high - low > 1:
    middle = (low + high) // 2
    if runs(middle):
        high = middle
    else:
        low = middle
interpreter = runtime.Interpreter.from_bytes(data, arena_size=high)
interpreter.invoke()
print("done", high, flush=True)
interpreter.print_allocations()
""".replace("ARENA_MAX", str(ARENA_MAX_BYTES))


def _probe_process(model: Path, low: int, high: int, sizes: list[int]) -> tuple[list[tuple[str, int]], int, str]:
    import subprocess
    import sys

    try:
        proc = subprocess.run([sys.executable, "-c", _ARENA_PROBE, str(model), str(low), str(high),
                               *map(str, sizes)], capture_output=True, text=True, errors="replace", timeout=600)
    except subprocess.TimeoutExpired:
        raise ToolError("tflite micro", f"probing the tensor arena of {model.name} timed out") from None
    events = []
    for line in proc.stdout.splitlines():
        word, _, value = line.strip().partition(" ")
        events.append((word, int(value) if value.isdigit() else -1))
    return events, proc.returncode, proc.stderr


def probe_tflm_arena(tflite_bytes: bytes, sizes: list[int]) -> dict[int, str]:
    """{size: 'ok' | 'fail' | 'crash'}: whether TFLite Micro's Python interpreter allocates and invokes the
    model with that arena ('crash': it died, e.g. a segfault), each probed in a child process."""
    results: dict[int, str] = {}
    with tempfile.TemporaryDirectory(prefix="sepipe-arena-") as tmp:
        model = Path(tmp) / "model.tflite"
        model.write_bytes(bytes(tflite_bytes))
        todo = list(sizes)
        while todo:
            events, _, _ = _probe_process(model, 0, 0, todo)
            for word, size in events:
                if word in ("ok", "fail"):
                    results[size] = word
            pending = [size for word, size in events if word == "probe" and size not in results]
            if pending:
                results[pending[0]] = "crash"
            todo = [size for size in todo if size not in results]
            if todo and not pending:
                raise ToolError("tflite micro", "arena probe stopped without reporting")
    return results


def measure_tflm_arena(tflite_bytes: bytes) -> dict[str, Any]:
    """The smallest tensor arena with which the TFLite Micro Python interpreter allocates and invokes the
    model (binary search to the byte, in child processes), what its recording allocator reports, and the
    recommended size."""
    with tempfile.TemporaryDirectory(prefix="sepipe-arena-") as tmp:
        model = Path(tmp) / "model.tflite"
        model.write_bytes(bytes(tflite_bytes))
        high, crashed, stderr = _search_smallest_arena(model)
    recommended = int(math.ceil(high * (1 + ARENA_HEADROOM) / ARENA_ROUND) * ARENA_ROUND)
    return {"measured_min_bytes": high, **_recorded_allocations(stderr), "recommended_bytes": recommended,
            "headroom": (f"+{ARENA_HEADROOM:.0%} of the measured minimum, rounded up to a multiple of "
                         f"{ARENA_ROUND} bytes"),
            "probes_that_crashed": sorted(crashed)}


def _search_smallest_arena(model: Path) -> tuple[int, list[int], str]:
    """(smallest arena that runs, sizes whose probe crashed, stderr of the final probe process); a probe
    process that dies resumes the search in a fresh one, with the size it died on as too small."""
    low, high, crashed = 0, 0, []
    for _ in range(64):
        events, returncode, stderr = _probe_process(model, low, high, [])
        pending = None
        for word, size in events:
            if word == "probe":
                pending = size
            elif word == "ok":
                high, pending = size, None
            elif word == "fail":
                low, pending = size, None
            elif word == "toobig":
                raise ToolError("tflite micro",
                                f"the model does not run with a {ARENA_MAX_BYTES >> 20} MiB tensor arena")
        if events and events[-1][0] == "done":
            return high, crashed, stderr
        if pending is None:
            lines = [line for line in stderr.splitlines() if line.strip()]
            raise ToolError("tflite micro", f"arena probe failed ({describe_exit(returncode)}): "
                                            f"{lines[-1] if lines else 'no output'}")
        low = pending            # it died trying this size: too small
        crashed.append(pending)
    raise ToolError("tflite micro", "arena probe kept crashing (64 attempts)")


def _recorded_allocations(stderr: str) -> dict[str, int]:
    """What TFLM's recording allocator printed (print_allocations) for the smallest arena."""
    recorded = {}
    for key, pattern in (("recorded_total_bytes", r"Arena allocation total (\d+) bytes"),
                         ("recorded_head_bytes", r"Arena allocation head (\d+) bytes"),
                         ("recorded_tail_bytes", r"Arena allocation tail (\d+) bytes")):
        match = re.search(pattern, stderr)
        if match:
            recorded[key] = int(match.group(1))
    return recorded


def arena_section(source: BundleSource, measured: dict[str, Any], io_dtype: str, ops: ModelOps) -> dict[str, Any]:
    """The manifest's `tflm_arena`: the quantised model's measured arena (64-bit host, reference kernels), the
    figures per kernel set for a 32-bit Cortex-M derived from it and the model's layers (kernel_arena), and what
    Vela's figures say of the Vela model's (which no Python interpreter here can run)."""
    return {"reference_kernels": _reference_kernels(source, measured, io_dtype),
            "cortex_m": kernel_set_arenas(measured["measured_min_bytes"], ops, ARENA_HEADROOM, ARENA_ROUND),
            "vela_model": _vela_model(source)}


def _reference_kernels(source: BundleSource, measured: dict[str, Any], io_dtype: str) -> dict[str, Any]:
    return {
        "model": "model/" + tflite_name(source),
        "io_dtype": io_dtype,
        **measured,
        "method": ("smallest arena_size for which tflite_micro's Python interpreter (reference kernels, "
                   "RecordingMicroAllocator, 64-bit host) allocates and invokes the model; binary search "
                   "to the byte; sizes up to 16 bytes short of it crash that interpreter (segfault) instead of "
                   "failing cleanly, and count as too small (probes_that_crashed)"),
        "headroom_why": ("measured on a 64-bit host, where TFLM's tensor and node structs are larger than on a "
                         "32-bit Cortex-M and the recording allocator itself takes arena space, so the measured "
                         "minimum is an upper bound for the same kernels on a 32-bit target; the margin is headroom for "
                         "these kernels only: CMSIS-NN (what Cortex-M builds link by default) needs more, see "
                         "cortex_m.cmsis_nn"),
    }


def _vela_model(source: BundleSource) -> dict[str, Any]:
    compiled = source.compiled
    sram_bytes = int(round(compiled.figures.sram_memory_used_kib * 1024))
    mode = compiled.memory_mode
    dedicated = "Dedicated" in mode
    if dedicated:
        where = (f"memory mode {mode}: Vela keeps feature maps in {compiled.figures.feature_map_storage_area or 'DRAM'}; "
                 f"its {sram_bytes} bytes of SRAM (sram_memory_used) are the NPU's fast scratch (the arena cache, "
                 f"at most arena_cache_size = {compiled.arena_cache_size}), which the Ethos-U driver is given "
                 "apart from the tensor arena; the tensor arena holds the feature maps plus TFLM's bookkeeping")
    else:
        where = (f"memory mode {mode}: Vela's scratch (feature maps and NPU scratch) lives in the tensor arena, so "
                 f"the arena for the Vela model must be at least sram_memory_used = {sram_bytes} bytes plus "
                 "TFLite Micro's own bookkeeping (tensor and node structs, the ethos-u op's persistent data)")
    return {
        "model": "model/" + vela_name(source),
        "measured": False,
        "why_not_measured": ("neither Python interpreter (LiteRT, TFLite Micro) runs the 'ethos-u' custom "
                             "operator, so the Vela model's arena could not be measured here; measure it on the "
                             "device with MicroInterpreter::arena_used_bytes() after AllocateTensors()"),
        "sram_memory_used_bytes": sram_bytes,
        "memory_mode": mode,
        "feature_map_storage_area": compiled.figures.feature_map_storage_area,
        "arena_cache_size": compiled.arena_cache_size,
        "rule": where,
        "lower_bound_bytes": None if dedicated else sram_bytes,
    }
