"""Compile an int8 .tflite with Vela for a named Ethos-U target; keep the figures and op placement.

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

Artifacts in `out_dir` (prefix `<name>_vela_<id>`, ML eval kit naming, e.g. demo_ptq_vela_H128):
`.tflite` (the compiled model), `_summary.csv` and `_per-layer.csv` (Vela's own),
`_placement.json` (every operator: NPU or CPU and Vela's reason), `_vela.log` (Vela's output)
and `_record.json` (one flat row, written last: its presence means the compile is complete).
"""

from __future__ import annotations

import csv
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Iterable

from sepipe.artifacts import sha256_file, write_json, write_text
from sepipe.errors import ConfigError, InputFileError, ToolError, describe_exit
from sepipe.targets import Target, get_target, load_targets

TOOL = "vela"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_WARNING_RE = re.compile(r"^Warning \(supported operators\) operator: (?P<type>[^,]+), ofm: '(?P<ofm>.*)'\s*$")
_COUNT_RE = re.compile(r"^(?P<where>CPU|NPU) operators = (?P<count>\d+)")


@dataclass(frozen=True)
class CompileOptions:
    """require_full_npu: any operator left to the CPU is an error (CpuFallbackError);
    timeout_s: wall-clock limit of one Vela run (s)."""

    require_full_npu: bool = True
    timeout_s: float = 600.0


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


@dataclass(frozen=True)
class CompileResult:
    target: Target
    model: Path                 # <name>_vela_<id>.tflite
    summary_csv: Path
    per_layer_csv: Path
    placement_json: Path
    log: Path
    record_json: Path
    record: dict[str, Any]      # flat row; see compile_model for its columns and units
    placement: tuple[OpPlacement, ...]
    compile_s: float            # wall time of the Vela run (s)

    @property
    def cpu_ops(self) -> tuple[OpPlacement, ...]:
        return tuple(op for op in self.placement if op.placement == "CPU")

    @property
    def fallback_message(self) -> str | None:
        """The CPU-fallback report (None when every operator runs on the NPU)."""
        cpu = self.cpu_ops
        return fallback_message(self.target, cpu, len(self.placement), "", self.placement_json) if cpu else None

    @property
    def outputs(self) -> list[Path]:
        return [self.model, self.summary_csv, self.per_layer_csv, self.placement_json, self.log, self.record_json]


class CpuFallbackError(InputFileError):
    """Operators of the model stay on the Cortex-M CPU while require_full_npu is set."""

    def __init__(self, path: str | Path, target: Target, cpu_ops: list[OpPlacement], total: int,
                 hint: str, placement_json: Path):
        self.cpu_ops, self.target, self.placement_json = cpu_ops, target, placement_json
        super().__init__(path, fallback_message(target, cpu_ops, total, hint, placement_json))


def fallback_message(target: Target, cpu_ops: list[OpPlacement] | tuple[OpPlacement, ...], total: int,
                     hint: str = "", placement_json: Path | None = None, names_per_reason: int = 4) -> str:
    """One line: how many operators stay on the CPU, grouped by Vela's reason, naming them."""
    groups: dict[str, list[OpPlacement]] = {}
    for op in cpu_ops:
        # the parenthesised tensor name differs per operator; the rest of the reason is shared
        groups.setdefault(re.sub(r" \([^(){}]*\)", "", op.reason or "no reason given"), []).append(op)
    parts = []
    for reason, ops in groups.items():
        names = ", ".join(f"{op.original_type} '{op.name}'" for op in ops[:names_per_reason])
        more = f" and {len(ops) - names_per_reason} more" if len(ops) > names_per_reason else ""
        parts.append(f"{reason} [{len(ops)} ops: {names}{more}]")
    where = f"; every operator in {placement_json}" if placement_json else ""
    return (f"{len(cpu_ops)} of {total} operators stay on the CPU for {target.name} ({target.id}){hint}. "
            f"Vela's reasons: {'; '.join(parts)}{where}")


def vela_version() -> str:
    try:
        return metadata.version("ethos-u-vela")
    except metadata.PackageNotFoundError:
        return "not installed"


def artifact_stem(name: str, target: Target) -> str:
    """`<name>_vela_<id>`: the ML eval kit naming, e.g. 'demo_ptq_vela_H128'."""
    return f"{name}_vela_{target.id}"


def compile_model(tflite_path: str | Path, target: Target | str, out_dir: str | Path, name: str,
                  options: CompileOptions | None = None) -> CompileResult:
    """Compile `tflite_path` with Vela for `target` into `out_dir`; `name` is `<experiment>_<variant>`.

    The record (a flat dict, one self-contained row) holds: model, source_tflite, source_sha256,
    vela_version, the target columns (target, target_id, accelerator, system_config, memory_mode,
    clock_hz, optimise, arena_cache_size [bytes]), cycles_total and cycles_npu [cycles],
    inference_time_ms [ms], inferences_per_second, sram/dram/on_chip_flash/off_chip_flash
    _memory_used_kib [KiB], flash_kib (on + off chip) [KiB], weights_storage_area,
    total_original_weights and total_npu_encoded_weights_bytes [bytes], nn_macs [MACs],
    mac_utilisation_pct [% of accelerator peak over the whole inference], npu_ops, cpu_ops,
    npu_op_share [0..1], compile_s [s].

    Raises InputFileError (missing / not a TFLite flatbuffer / already compiled), ToolError
    (Vela exits non-zero, crashes or times out: its last error line) and, with
    options.require_full_npu, CpuFallbackError naming every operator left to the CPU and why
    (the placement JSON and the log are still written, the compiled model and record are not).
    """
    options = options or CompileOptions()
    if isinstance(target, str):
        target = get_target(target)
    if not _NAME_RE.match(name):
        raise ConfigError("compile", "name", name, "letters, digits, '_', '-' and '.' (e.g. demo_ptq)")
    tflite_path, out_dir = Path(tflite_path), Path(out_dir)
    info = inspect_tflite(tflite_path)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = artifact_stem(name, target)
    final = {
        "model": out_dir / f"{stem}.tflite", "summary_csv": out_dir / f"{stem}_summary.csv",
        "per_layer_csv": out_dir / f"{stem}_per-layer.csv", "placement_json": out_dir / f"{stem}_placement.json",
        "log": out_dir / f"{stem}_vela.log", "record_json": out_dir / f"{stem}_record.json",
    }
    work = Path(tempfile.mkdtemp(prefix=f".tmp-{stem}-", dir=out_dir)).resolve()
    try:
        # Vela names its outputs after the input file, so the input is copied as <name>.tflite.
        staged = work / f"{name}.tflite"
        shutil.copyfile(tflite_path, staged)
        vela_out = work / "out"
        command = [sys.executable, "-m", "ethosu.vela", str(staged), *target.vela_args(),
                   "--output-dir", str(vela_out), "--verbose-performance", "--show-cpu-operations"]
        start = time.monotonic()
        proc = _run_vela(command, work, tflite_path, target, options.timeout_s, final["log"])
        compile_s = time.monotonic() - start
        produced = {
            "model": vela_out / f"{name}_vela.tflite",
            "summary_csv": vela_out / f"{name}_summary_{target.hardware.system_config}.csv",
            "per_layer_csv": vela_out / f"{name}_per-layer.csv",
        }
        for path in produced.values():
            if not path.is_file():
                write_text(final["log"], _log_text(command, proc))
                raise ToolError(TOOL, f"compiling {tflite_path} for {target.name} exited 0 but did not write "
                                      f"{path.name} (log: {final['log']})")
        placement = parse_placement(produced["per_layer_csv"], proc.stdout)
        counts = _vela_op_counts(proc.stdout)
        summary = read_summary_csv(produced["summary_csv"])
        record = _record(name, tflite_path, target, summary, placement, counts, compile_s)

        write_text(final["log"], _log_text(command, proc))
        write_json(final["placement_json"], {
            "model": name, "source_tflite": str(tflite_path), "target": target.name, "target_id": target.id,
            "npu_ops": record["npu_ops"], "cpu_ops": record["cpu_ops"],
            "operators": [asdict(op) for op in placement]})
        cpu = [op for op in placement if op.placement == "CPU"]
        if cpu and options.require_full_npu:
            # Vela's CSVs stay for inspection; no compiled model or record, and none left from an earlier run.
            for key in ("summary_csv", "per_layer_csv"):
                os.replace(produced[key], final[key])
            for key in ("model", "record_json"):
                final[key].unlink(missing_ok=True)
            raise CpuFallbackError(tflite_path, target, cpu, len(placement), _kind_hint(info),
                                   final["placement_json"])
        for key, path in produced.items():   # same folder tree: each rename is atomic
            os.replace(path, final[key])
        write_json(final["record_json"], record)   # last: the compile is complete
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return CompileResult(target=target, record=record, placement=tuple(placement), compile_s=compile_s,
                         **{key: path for key, path in final.items()})


def compile_many(tflite_path: str | Path, targets: Iterable[Target | str], out_dir: str | Path, name: str,
                 options: CompileOptions | None = None, targets_file: str | Path | None = None,
                 records_csv: str | Path | None = None) -> list[CompileResult]:
    """compile_model for each target (names resolved in `targets_file`, default vela_configs/targets.yaml),
    stopping at the first error; writes every record to `records_csv` (default
    `<out_dir>/<name>_vela_records.csv`), one row per target, atomically."""
    targets = list(targets)
    if any(isinstance(t, str) for t in targets):
        known = load_targets(targets_file)
        targets = [get_target(t, known, targets_file) if isinstance(t, str) else t for t in targets]
    if not targets:
        raise ConfigError("compile", "target", [], "at least one target")
    results = [compile_model(tflite_path, target, out_dir, name, options) for target in targets]
    write_records_csv([r.record for r in results], records_csv or Path(out_dir) / f"{name}_vela_records.csv")
    return results


def write_records_csv(records: list[dict[str, Any]], path: str | Path) -> Path:
    """Records as one CSV (columns: union of keys, in first-seen order), written atomically."""
    columns: list[str] = []
    for record in records:
        columns += [key for key in record if key not in columns]
    lines: list[str] = []

    class _Sink:
        def write(self, text: str) -> None:
            lines.append(text)

    writer = csv.DictWriter(_Sink(), fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for record in records:
        writer.writerow({key: "" if record.get(key) is None else record.get(key) for key in columns})
    return write_text(path, "".join(lines))


# --------------------------------------------------------------------------- input checks

@dataclass(frozen=True)
class TfliteInfo:
    operators: int
    op_types: tuple[str, ...]
    float_activations: bool      # some operator reads or writes a float32 tensor that is not a constant
    int8_weights: bool           # some constant tensor is int8


def inspect_tflite(path: str | Path) -> TfliteInfo:
    """Walk the flatbuffer before Vela sees it (regor segfaults on some corrupt files).

    InputFileError naming the file: missing, empty, no 'TFL3' identifier, unreadable structure
    (indices out of range), no operators, or already compiled by Vela (an 'ethos-u' custom op).
    """
    from ethosu.vela.tflite.BuiltinOperator import BuiltinOperator
    from ethosu.vela.tflite.Model import Model
    from ethosu.vela.tflite.TensorType import TensorType

    from sepipe.convert import read_tflite_bytes

    path = Path(path)
    data = read_tflite_bytes(path)
    op_names = {value: key for key, value in vars(BuiltinOperator).items() if not key.startswith("_")}
    try:
        model = Model.GetRootAs(data, 0)
        codes = []
        for i in range(model.OperatorCodesLength()):
            code = model.OperatorCodes(i)
            builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
            custom = code.CustomCode()
            codes.append(custom.decode(errors="replace") if custom else op_names.get(builtin, f"BUILTIN_{builtin}"))
        n_buffers = model.BuffersLength()
        types, operators, float_act, int8_weights = [], 0, False, False
        for s in range(model.SubgraphsLength()):
            subgraph = model.Subgraphs(s)
            n_tensors = subgraph.TensorsLength()
            tensors = [subgraph.Tensors(t) for t in range(n_tensors)]
            const = []
            for tensor in tensors:
                buffer = tensor.Buffer()
                if not 0 <= buffer < max(n_buffers, 1):
                    raise ValueError(f"tensor buffer index {buffer} out of range")
                tensor.Name()
                const.append(buffer > 0 and (model.Buffers(buffer).DataLength() > 0
                                             or model.Buffers(buffer).Size() > 0))
            for o in range(subgraph.OperatorsLength()):
                op = subgraph.Operators(o)
                index = op.OpcodeIndex()
                if not 0 <= index < len(codes):
                    raise ValueError(f"operator code index {index} out of range")
                types.append(codes[index])
                operators += 1
                for t in list(op.InputsAsNumpy()) + list(op.OutputsAsNumpy()):
                    if t < 0:
                        continue   # optional input left out
                    if t >= n_tensors:
                        raise ValueError(f"tensor index {t} out of range")
                    kind = tensors[t].Type()
                    float_act |= kind == TensorType.FLOAT32 and not const[t]
                    int8_weights |= kind == TensorType.INT8 and const[t]
    except InputFileError:
        raise
    except Exception as exc:  # flatbuffers raises struct / index / unicode errors on garbage
        raise InputFileError(path, f"not a readable TFLite flatbuffer ({exc.__class__.__name__}: {exc})") from None
    if operators == 0:
        raise InputFileError(path, "TFLite model has no operators")
    if "ethos-u" in types:
        raise InputFileError(path, "already compiled by Vela (has an 'ethos-u' custom operator); "
                                   "pass the int8 .tflite from the convert stage")
    return TfliteInfo(operators, tuple(types), float_act, int8_weights)


def _kind_hint(info: TfliteInfo) -> str:
    if info.float_activations and info.int8_weights:
        return (" (a dynamic-range model: int8 weights, float32 activations; convert with full-integer "
                "int8 quantisation, sepipe.convert.convert_int8)")
    if info.float_activations:
        return " (a float32 model; convert with full-integer int8 quantisation, sepipe.convert.convert_int8)"
    return ""


# --------------------------------------------------------------------------- running Vela

def _run_vela(command: list[str], cwd: Path, source: Path, target: Target, timeout_s: float,
              log_path: Path) -> subprocess.CompletedProcess:
    try:
        proc = subprocess.run(command, cwd=str(cwd), capture_output=True, text=True, errors="replace",
                              timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise ToolError(TOOL, f"compiling {source} for {target.name} timed out after {timeout_s:g} s") from None
    if proc.returncode != 0:
        write_text(log_path, _log_text(command, proc))
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


def _log_text(command: list[str], proc: subprocess.CompletedProcess) -> str:
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


def _vela_op_counts(stdout: str) -> dict[str, int]:
    counts = {}
    for line in stdout.splitlines():
        match = _COUNT_RE.match(line.strip())
        if match:
            counts[match["where"]] = int(match["count"])
    return counts


def read_summary_csv(path: str | Path) -> dict[str, str]:
    """The single row of Vela's `<net>_summary_<system_config>.csv`, as strings."""
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    if len(rows) != 1:
        raise ToolError(TOOL, f"{path}: expected one summary row, found {len(rows)}")
    return rows[0]


def _record(name: str, source: Path, target: Target, summary: dict[str, str], placement: list[OpPlacement],
            counts: dict[str, int], compile_s: float) -> dict[str, Any]:
    def number(key: str) -> float:
        try:
            return float(summary[key])
        except (KeyError, ValueError):
            raise ToolError(TOOL, f"Vela summary CSV has no numeric '{key}' (got {summary.get(key)!r})") from None

    npu = sum(op.placement == "NPU" for op in placement)
    cpu = sum(op.placement == "CPU" for op in placement)
    if counts and (counts.get("NPU", npu), counts.get("CPU", cpu)) != (npu, cpu):
        raise ToolError(TOOL, f"operator counts disagree: network summary NPU={counts.get('NPU')} "
                              f"CPU={counts.get('CPU')}, per-layer CSV NPU={npu} CPU={cpu}")
    cycles = int(number("cycles_total"))
    macs = int(number("nn_macs"))
    peak = cycles * target.hardware.macs_per_cycle
    return {
        "model": name,
        "source_tflite": str(source),
        "source_sha256": sha256_file(source),
        "vela_version": vela_version(),
        **target.columns(),
        "cycles_total": cycles,
        "cycles_npu": int(number("cycles_npu")),
        "inference_time_ms": number("inference_time") * 1e3,
        "inferences_per_second": number("inferences_per_second"),
        "sram_memory_used_kib": number("sram_memory_used"),
        "dram_memory_used_kib": number("dram_memory_used"),
        "on_chip_flash_memory_used_kib": number("on_chip_flash_memory_used"),
        "off_chip_flash_memory_used_kib": number("off_chip_flash_memory_used"),
        "flash_kib": number("on_chip_flash_memory_used") + number("off_chip_flash_memory_used"),
        "weights_storage_area": summary.get("weights_storage_area", ""),
        "feature_map_storage_area": summary.get("feature_map_storage_area", ""),
        "total_original_weights": int(number("total_original_weights")),
        "total_npu_encoded_weights_bytes": int(number("total_npu_encoded_weights")),
        "nn_macs": macs,
        "mac_utilisation_pct": 100.0 * macs / peak if peak else 0.0,
        "npu_ops": npu,
        "cpu_ops": cpu,
        "npu_op_share": npu / (npu + cpu) if npu + cpu else 0.0,
        "compile_s": round(compile_s, 3),
    }
