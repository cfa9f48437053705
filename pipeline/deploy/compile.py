"""Compile an int8 .tflite with Vela for a named Ethos-U target; keep the figures and op placement.

Artifacts in `out_dir` (prefix `<name>_vela_<id>`, ML eval kit naming, e.g. demo_ptq_vela_H128):
`.tflite` (the compiled model), `_summary.csv` and `_per-layer.csv` (Vela's own),
`_placement.json` (every operator: NPU or CPU and Vela's reason), `_vela.log` (Vela's output)
and `_record.json` (one flat row, written last: its presence means the compile is complete).

Imports neither TensorFlow nor the audio stack: the light install runs it.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable

from sepipe.artifacts import sha256_file, write_json, write_text
from sepipe.deploy.figures import CompileRecord, VelaFigures, write_records_csv
from sepipe.deploy.tflite_info import inspect_tflite, kind_hint
from sepipe.deploy.vela import (TOOL, OpPlacement, log_text, op_counts, parse_placement, read_summary_csv,
                                run_vela, vela_command, vela_version)
from sepipe.errors import ConfigError, InputFileError, ToolError
from sepipe.targets import Target, get_target, load_targets

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class CompileOptions:
    """require_full_npu: any operator left to the CPU is an error (CpuFallbackError);
    timeout_s: wall-clock limit of one Vela run (s)."""

    require_full_npu: bool = True
    timeout_s: float = 600.0


@dataclass(frozen=True)
class CompileResult:
    target: Target
    model: Path                 # <name>_vela_<id>.tflite
    summary_csv: Path
    per_layer_csv: Path
    placement_json: Path
    log: Path
    record_json: Path
    compiled: CompileRecord     # the typed record; its VelaFigures under .figures
    placement: tuple[OpPlacement, ...]
    compile_s: float            # wall time of the Vela run (s)

    @property
    def record(self) -> dict[str, Any]:
        """The flat row of `record_json` (see CompileRecord.to_record for its columns and units)."""
        return self.compiled.to_record()

    @property
    def figures(self) -> VelaFigures:
        return self.compiled.figures

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


def artifact_stem(name: str, target: Target) -> str:
    """`<name>_vela_<id>`: the ML eval kit naming, e.g. 'demo_ptq_vela_H128'."""
    return f"{name}_vela_{target.id}"


def compile_record(name: str, source: Path, target: Target, summary: dict[str, str],
                   placement: list[OpPlacement], stdout: str, compile_s: float) -> CompileRecord:
    """The typed record of one compile: Vela's summary row as VelaFigures plus what was compiled for what."""
    npu, cpu = op_counts(placement, stdout)
    figures = VelaFigures.from_summary(summary, target.hardware.macs_per_cycle, npu, cpu)
    return CompileRecord(model=name, source_tflite=str(source), source_sha256=sha256_file(source),
                         vela_version=vela_version(), **target.columns(), figures=figures,
                         compile_s=round(compile_s, 3))


def compile_model(tflite_path: str | Path, target: Target | str, out_dir: str | Path, name: str,
                  options: CompileOptions | None = None) -> CompileResult:
    """Compile `tflite_path` with Vela for `target` into `out_dir`; `name` is `<experiment>_<variant>`.

    The record (CompileRecord; one self-contained flat row on disk) holds: model, source_tflite,
    source_sha256, vela_version, the target columns (target, target_id, accelerator, system_config,
    memory_mode, clock_hz, optimise, arena_cache_size [bytes]), Vela's figures (VelaFigures:
    cycles_total and cycles_npu [cycles], inference_time_ms [ms], inferences_per_second,
    sram/dram/on_chip_flash/off_chip_flash_memory_used_kib [KiB], flash_kib (on + off chip) [KiB],
    weights_storage_area, total_original_weights and total_npu_encoded_weights_bytes [bytes],
    nn_macs [MACs], mac_utilisation_pct [% of accelerator peak over the whole inference], npu_ops,
    cpu_ops, npu_op_share [0..1]) and compile_s [s].

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
    stem = artifact_stem(name, target)
    final = {
        "model": out_dir / f"{stem}.tflite", "summary_csv": out_dir / f"{stem}_summary.csv",
        "per_layer_csv": out_dir / f"{stem}_per-layer.csv", "placement_json": out_dir / f"{stem}_placement.json",
        "log": out_dir / f"{stem}_vela.log", "record_json": out_dir / f"{stem}_record.json",
    }
    # A compile that starts removes the record of the last one under this name first: if this one fails
    # (bad input, Vela error, interrupted), no record of another model is left to pass a budget check.
    final["record_json"].unlink(missing_ok=True)
    info = inspect_tflite(tflite_path)
    out_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".tmp-{stem}-", dir=out_dir)).resolve()
    try:
        # Vela names its outputs after the input file, so the input is copied as <name>.tflite.
        staged = work / f"{name}.tflite"
        shutil.copyfile(tflite_path, staged)
        vela_out = work / "out"
        command = vela_command(staged, target, vela_out)
        start = time.monotonic()
        proc = run_vela(command, work, tflite_path, target, options.timeout_s, final["log"])
        compile_s = time.monotonic() - start
        produced = {
            "model": vela_out / f"{name}_vela.tflite",
            "summary_csv": vela_out / f"{name}_summary_{target.hardware.system_config}.csv",
            "per_layer_csv": vela_out / f"{name}_per-layer.csv",
        }
        for path in produced.values():
            if not path.is_file():
                write_text(final["log"], log_text(command, proc))
                raise ToolError(TOOL, f"compiling {tflite_path} for {target.name} exited 0 but did not write "
                                      f"{path.name} (log: {final['log']})")
        placement = parse_placement(produced["per_layer_csv"], proc.stdout)
        summary = read_summary_csv(produced["summary_csv"])
        compiled = compile_record(name, tflite_path, target, summary, placement, proc.stdout, compile_s)

        write_text(final["log"], log_text(command, proc))
        write_json(final["placement_json"], {
            "model": name, "source_tflite": str(tflite_path), "target": target.name, "target_id": target.id,
            "npu_ops": compiled.figures.npu_ops, "cpu_ops": compiled.figures.cpu_ops,
            "operators": [asdict(op) for op in placement]})
        cpu = [op for op in placement if op.placement == "CPU"]
        if cpu and options.require_full_npu:
            # Vela's CSVs stay for inspection; no compiled model or record, and none left from an earlier run.
            for key in ("summary_csv", "per_layer_csv"):
                os.replace(produced[key], final[key])
            for key in ("model", "record_json"):
                final[key].unlink(missing_ok=True)
            raise CpuFallbackError(tflite_path, target, cpu, len(placement), kind_hint(info),
                                   final["placement_json"])
        for key, path in produced.items():   # same folder tree: each rename is atomic
            os.replace(path, final[key])
        write_json(final["record_json"], compiled.to_record())   # last: the compile is complete
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return CompileResult(target=target, compiled=compiled, placement=tuple(placement), compile_s=compile_s,
                         **{key: path for key, path in final.items()})


def resolve_targets(targets: Iterable[Target | str], targets_file: str | Path | None = None) -> list[Target]:
    """Targets by name (resolved in `targets_file`, default vela_configs/targets.yaml) or as given;
    ConfigError for an unknown name or an empty list."""
    targets = list(targets)
    if any(isinstance(t, str) for t in targets):
        known = load_targets(targets_file)
        targets = [get_target(t, known, targets_file) if isinstance(t, str) else t for t in targets]
    if not targets:
        raise ConfigError("compile", "target", [], "at least one target")
    return targets


def compile_many(tflite_path: str | Path, targets: Iterable[Target | str], out_dir: str | Path, name: str,
                 options: CompileOptions | None = None, targets_file: str | Path | None = None,
                 records_csv: str | Path | None = None) -> list[CompileResult]:
    """compile_model for each target (names resolved in `targets_file`, default vela_configs/targets.yaml),
    stopping at the first error; writes every record to `records_csv` (default
    `<out_dir>/<name>_vela_records.csv`), one row per target, atomically."""
    results = [compile_model(tflite_path, target, out_dir, name, options)
               for target in resolve_targets(targets, targets_file)]
    write_records_csv([r.compiled for r in results], records_csv or Path(out_dir) / f"{name}_vela_records.csv")
    return results
