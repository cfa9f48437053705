"""The C frame loop's cost on the emulated Cortex-M55, for a bundle being built.

`measure_frame_loop(root)` runs firmware_stub's `make qemu-test` on the bundle's own `golden/` and
`c/model_io.h`: the frame loop (window, FFT, features, quantise, state feedback, mask, inverse FFT,
overlap-add) cross-compiled for the Cortex-M55 and run on QEMU's mps3-an547 under `-icount shift=0`,
where the host test's checks must pass, and the instructions per hop (outside the model's Invoke) are
counted (firmware_stub/qemu_main.c says how). The result is a manifest section. Where it cannot run (no
firmware_stub/ beside the package, as in an installed wheel; arm-none-eabi-gcc or qemu-system-arm
missing) or the checks fail, the section says `measured: false` and why: never a made-up figure.
The count is deterministic for a given compiler and QEMU (instruction counting, no host timing), so
bundling twice still gives the same bytes; both versions are recorded.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

STUB = Path(__file__).resolve().parents[2] / "firmware_stub"   # pipeline/bundle/ -> the source checkout
TOOLS = ("make", "arm-none-eabi-gcc", "qemu-system-arm")
COMMAND = "make -C firmware_stub qemu-test GOLDEN=<bundle>/golden MODEL_IO=<bundle>/c"
TIMEOUT_S = 600
COUNTS = ("QEMU instruction count (not cycles) of firmware_stub's se_process_hop without the model call, "
          "mean over the golden frames, on qemu-system-arm -M mps3-an547 -icount shift=0 (Cortex-M55, "
          "-O2 -mfloat-abi=hard, float32 FFT)")


def not_measured(reason: str) -> dict[str, Any]:
    return {"measured": False, "reason": reason, "command": COMMAND}


def _version(tool: str) -> str:
    proc = subprocess.run([tool, "--version"], capture_output=True, text=True, timeout=60)
    return proc.stdout.splitlines()[0].strip() if proc.returncode == 0 and proc.stdout else "unknown"


def measure_frame_loop(root: Path) -> dict[str, Any]:
    """The `frame_loop` manifest section of the bundle folder `root` (golden/ and c/ written)."""
    if not (STUB / "Makefile").is_file():
        return not_measured("firmware_stub/ is not beside the sepipe package (a source checkout has it)")
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        return not_measured(f"{', '.join(missing)} not found (`make firmware-toolchain` installs them)")
    if " " in str(root.resolve()):
        return not_measured("the bundle's path has a space, which QEMU's semihosting command line cannot pass")
    with tempfile.TemporaryDirectory(prefix="sepipe-qemu-") as build:
        out = Path(build) / "frame_loop.json"
        try:
            proc = subprocess.run(["make", "-s", "-C", str(STUB), "qemu-test", f"GOLDEN={root.resolve() / 'golden'}",
                                   f"MODEL_IO={root.resolve() / 'c'}", f"BUILD={build}", f"QEMU_JSON={out}"],
                                  capture_output=True, text=True, timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            return not_measured(f"qemu-test ran past {TIMEOUT_S} s")
        if proc.returncode != 0 or "\nPASS\n" not in proc.stdout or not out.is_file():
            fails = [line for line in (proc.stdout + proc.stderr).splitlines() if line.startswith(("FAIL", "golden"))]
            return not_measured("qemu-test failed: " + ("; ".join(fails[:3]) or f"exit status {proc.returncode}"))
        figure = json.loads(out.read_text())
    return {
        "measured": True, "check": "PASS (the host test's checks and tolerances, on the emulated M55)",
        "frame_loop_instructions_per_hop": int(figure["frame_loop_instructions_per_hop"]),
        "min": int(figure["min"]), "max": int(figure["max"]), "frames": int(figure["frames"]),
        "counts": COUNTS, "command": COMMAND,
        "tools": {"qemu-system-arm": _version("qemu-system-arm"), "arm-none-eabi-gcc": _version("arm-none-eabi-gcc")},
    }
