"""Running Vela and reading what it wrote: the command line, the subprocess, the log, operator placement
and the summary CSV.

Vela runs as a subprocess (`python -m ethosu.vela` with an argument list): its compiler core
(regor, C++) segfaults on some malformed flatbuffers, prints to stdout and keeps global state,
so a separate process turns a crash into a ToolError and leaves the pipeline alive.

Facts of Vela 5.2.0 this module relies on (checked on this machine):
- cycles and inference time are only in `<net>_summary_<system_config>.csv`;
  `--verbose-performance` writes `<net>_per-layer.csv`, one row per operator Vela scheduled
  (after graph optimisation: fused activations and LUTs are rows of their own, SPLITs that
  became memory views are gone) with its Target (NPU / CPU);
- the reason an operator stays on the CPU is printed on STDOUT as
  `Warning (supported operators) operator: <TFLITE_OP>, ofm: '<name>'` then `Reason: ...`
  (plus constraint lines); `--show-cpu-operations` adds the op lists and the
  `CPU operators = N` / `NPU operators = N` lines to the network summary;
- a float model compiles with exit code 0, every operator left to the CPU.
"""

from __future__ import annotations

import csv
import re
import subprocess
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from sepipe.artifacts import write_text
from sepipe.errors import ToolError, describe_exit
from sepipe.targets import Target

TOOL = "vela"
_WARNING_RE = re.compile(r"^Warning \(supported operators\) operator: (?P<type>[^,]+), ofm: '(?P<ofm>.*)'\s*$")
_COUNT_RE = re.compile(r"^(?P<where>CPU|NPU) operators = (?P<count>\d+)")


@dataclass(frozen=True)
class OpPlacement:
    """One operator as Vela scheduled it.

    name: its output tensor; original_type: the TFLite operator (per-layer CSV 'Original Operator');
    vela_type: the operator after Vela's graph optimisation ('NNG Operator', 'Passthrough' on the CPU);
    placement: 'NPU' or 'CPU'; reason: Vela's reason for the CPU (None on the NPU).
    """

    name: str
    original_type: str
    vela_type: str
    placement: str
    reason: str | None = None

    def describe(self) -> str:
        return f"{self.original_type} '{self.name}'" + (f": {self.reason}" if self.reason else "")


def vela_version() -> str:
    try:
        return metadata.version("ethos-u-vela")
    except metadata.PackageNotFoundError:
        return "not installed"


def vela_command(staged: Path, target: Target, out_dir: Path) -> list[str]:
    """Vela's argument list: the target's explicit config, per-layer figures and the CPU operator lists."""
    return [sys.executable, "-m", "ethosu.vela", str(staged), *target.vela_args(),
            "--output-dir", str(out_dir), "--verbose-performance", "--show-cpu-operations"]


def run_vela(command: list[str], cwd: Path, source: Path, target: Target, timeout_s: float,
             log_path: Path) -> subprocess.CompletedProcess:
    """Run `command`; ToolError with Vela's last error line (the log written) on a non-zero exit or timeout."""
    try:
        proc = subprocess.run(command, cwd=str(cwd), capture_output=True, text=True, errors="replace",
                              timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise ToolError(TOOL, f"compiling {source} for {target.name} timed out after {timeout_s:g} s") from None
    if proc.returncode != 0:
        write_text(log_path, log_text(command, proc))
        how = describe_exit(proc.returncode)
        raise ToolError(TOOL, f"compiling {source} for {target.name} failed ({how}): "
                              f"{_last_error_line(proc)} (log: {log_path})")
    return proc


def _last_error_line(proc: subprocess.CompletedProcess) -> str:
    for text in (proc.stderr, proc.stdout):
        lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
        if lines:
            return re.sub(r"^ethosu\.vela\.errors\.\w+: ", "", lines[-1]).strip("'\"")
    return "(no output)"


def log_text(command: list[str], proc: subprocess.CompletedProcess) -> str:
    return (f"$ {' '.join(command)}\n# exit code {proc.returncode}\n\n# stdout\n{proc.stdout}\n"
            f"# stderr\n{proc.stderr}\n")


# --------------------------------------------------------------------------- parsing Vela's output

def parse_cpu_reasons(stdout: str) -> dict[str, str]:
    """Output tensor name -> Vela's reason for leaving that operator on the CPU (from stdout warnings)."""
    reasons: dict[str, str] = {}
    lines = stdout.splitlines()
    for i, line in enumerate(lines):
        match = _WARNING_RE.match(line.strip())
        if not match:
            continue
        parts = []
        for follow in lines[i + 1:]:
            if not follow.strip() or _WARNING_RE.match(follow.strip()):
                break
            parts.append(follow.strip())
        text = " ".join(parts)
        text = text[len("Reason: "):] if text.startswith("Reason: ") else text
        previous = reasons.get(match["ofm"])
        reasons[match["ofm"]] = f"{previous}; {text}" if previous and text not in previous else (previous or text)
    return reasons


def parse_placement(per_layer_csv: str | Path, stdout: str) -> list[OpPlacement]:
    """Every operator of Vela's per-layer CSV with its target, plus Vela's CPU reason from stdout."""
    reasons = parse_cpu_reasons(stdout)
    with open(per_layer_csv, newline="") as handle:
        rows = list(csv.DictReader(handle))
    placement = []
    for row in rows:
        where = row["Target"].strip().upper()
        name = row["Name"].strip()
        reason = None
        if where == "CPU":
            reason = reasons.get(name, "no reason printed by Vela (operator not supported on this target)")
        placement.append(OpPlacement(name=name, original_type=row["Original Operator"].strip(),
                                     vela_type=row["NNG Operator"].strip(), placement=where, reason=reason))
    return placement


def op_counts(placement: list[OpPlacement], stdout: str) -> tuple[int, int]:
    """(NPU, CPU) operator counts of the per-layer CSV; ToolError when Vela's network summary disagrees."""
    counts = {}
    for line in stdout.splitlines():
        match = _COUNT_RE.match(line.strip())
        if match:
            counts[match["where"]] = int(match["count"])
    npu = sum(op.placement == "NPU" for op in placement)
    cpu = sum(op.placement == "CPU" for op in placement)
    if counts and (counts.get("NPU", npu), counts.get("CPU", cpu)) != (npu, cpu):
        raise ToolError(TOOL, f"operator counts disagree: network summary NPU={counts.get('NPU')} "
                              f"CPU={counts.get('CPU')}, per-layer CSV NPU={npu} CPU={cpu}")
    return npu, cpu


def read_summary_csv(path: str | Path) -> dict[str, str]:
    """The single row of Vela's `<net>_summary_<system_config>.csv`, as strings."""
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    if len(rows) != 1:
        raise ToolError(TOOL, f"{path}: expected one summary row, found {len(rows)}")
    return rows[0]
