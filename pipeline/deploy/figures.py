"""What one Vela compile measured, typed: `VelaFigures` (Vela's estimates) inside a `CompileRecord`
(which model, which target, which Vela).

Built from Vela's summary CSV in one place (`VelaFigures.from_summary`); every reader takes a record
dict back with `from_record` (numbers or numeric strings, as JSON or a CSV gives them). `to_record`
writes the flat row of `<stem>_record.json` and the records CSV with the keys and key order they have
always had, so existing runs, `sepipe budget check`, the bundle and users' CI read them unchanged.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Iterable, Mapping

from sepipe.artifacts import write_text
from sepipe.errors import PipelineError, ToolError

TOOL = "vela"


class RecordError(PipelineError):
    """A compile record (JSON, records CSV or report CSV row) lacks a column or has a non-numeric value."""

    def __init__(self, source: str, key: str, value: object):
        self.source, self.key, self.value = source, key, value
        super().__init__(f"{source}: compile record has no numeric '{key}' (got {value!r}); "
                         "recompile with: sepipe compile")


def _parse(kind: type, value: Any, key: str, source: str) -> Any:
    if kind is str:
        return "" if value is None else str(value)
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise RecordError(source, key, value) from None
    return int(number) if kind is int else number


@dataclass(frozen=True)
class VelaFigures:
    """Vela's estimates for one network on one target (Vela 5.2.0 `<net>_summary_<system_config>.csv`).

    Field names are the record's column names and carry the unit: cycles per inference, ms, KiB
    (Vela's `*_memory_used`, 1 KiB = 1024 B), bytes, MACs per inference, % of the accelerator's peak;
    npu_ops / cpu_ops count the operators of Vela's per-layer CSV.
    """

    cycles_total: int                       # cycles per inference (all passes)
    cycles_npu: int                         # cycles the NPU computes
    inference_time_ms: float                # cycles_total / core clock (ms)
    inferences_per_second: float
    sram_memory_used_kib: float
    dram_memory_used_kib: float
    on_chip_flash_memory_used_kib: float
    off_chip_flash_memory_used_kib: float
    weights_storage_area: str               # Vela's memory name: 'Off-chip Flash', 'DRAM', ...
    feature_map_storage_area: str
    total_original_weights: int             # bytes of the int8 weights before encoding
    total_npu_encoded_weights_bytes: int    # bytes Vela stores the weights in (zeros and palettes compressed)
    nn_macs: int                            # MACs per inference
    mac_utilisation_pct: float              # nn_macs / (cycles_total x MACs per cycle of the target), %
    npu_ops: int
    cpu_ops: int

    @property
    def flash_kib(self) -> float:
        """On- plus off-chip flash (KiB): where U55 (Shared_Sram) keeps the weights; 0 when they are in DRAM."""
        return self.on_chip_flash_memory_used_kib + self.off_chip_flash_memory_used_kib

    @property
    def npu_op_share(self) -> float:
        """Fraction (0..1) of the operators Vela placed on the NPU."""
        total = self.npu_ops + self.cpu_ops
        return self.npu_ops / total if total else 0.0

    @property
    def weight_storage_kib(self) -> float:
        """Where the weights live (KiB): flash, or DRAM on U65/U85 (Dedicated_Sram) where flash is 0."""
        return self.flash_kib if self.flash_kib > 0 else self.dram_memory_used_kib

    @classmethod
    def from_summary(cls, summary: Mapping[str, str], macs_per_cycle: int, npu_ops: int, cpu_ops: int
                     ) -> "VelaFigures":
        """From the single row of Vela's summary CSV (strings); `macs_per_cycle` of the target's accelerator.

        ToolError naming the column when Vela left a figure out or wrote a non-number."""
        def number(key: str) -> float:
            try:
                return float(summary[key])
            except (KeyError, ValueError):
                raise ToolError(TOOL, f"Vela summary CSV has no numeric '{key}' (got {summary.get(key)!r})") from None

        cycles, macs = int(number("cycles_total")), int(number("nn_macs"))
        peak = cycles * macs_per_cycle
        return cls(
            cycles_total=cycles, cycles_npu=int(number("cycles_npu")),
            inference_time_ms=number("inference_time") * 1e3,
            inferences_per_second=number("inferences_per_second"),
            sram_memory_used_kib=number("sram_memory_used"), dram_memory_used_kib=number("dram_memory_used"),
            on_chip_flash_memory_used_kib=number("on_chip_flash_memory_used"),
            off_chip_flash_memory_used_kib=number("off_chip_flash_memory_used"),
            weights_storage_area=summary.get("weights_storage_area", ""),
            feature_map_storage_area=summary.get("feature_map_storage_area", ""),
            total_original_weights=int(number("total_original_weights")),
            total_npu_encoded_weights_bytes=int(number("total_npu_encoded_weights")),
            nn_macs=macs, mac_utilisation_pct=100.0 * macs / peak if peak else 0.0,
            npu_ops=npu_ops, cpu_ops=cpu_ops)

    @classmethod
    def from_record(cls, record: Mapping[str, Any], source: str = "record") -> "VelaFigures":
        """From a compile record or any row that carries its columns (a report CSV row); extra keys are ignored."""
        return cls(**{f.name: _parse(_KINDS[f.name], record.get(f.name), f.name, source) for f in fields(cls)})

    def to_record(self) -> dict[str, Any]:
        """The figure columns of the record, in the record's order (derived flash_kib and npu_op_share included)."""
        return {
            "cycles_total": self.cycles_total, "cycles_npu": self.cycles_npu,
            "inference_time_ms": self.inference_time_ms, "inferences_per_second": self.inferences_per_second,
            "sram_memory_used_kib": self.sram_memory_used_kib, "dram_memory_used_kib": self.dram_memory_used_kib,
            "on_chip_flash_memory_used_kib": self.on_chip_flash_memory_used_kib,
            "off_chip_flash_memory_used_kib": self.off_chip_flash_memory_used_kib,
            "flash_kib": self.flash_kib,
            "weights_storage_area": self.weights_storage_area,
            "feature_map_storage_area": self.feature_map_storage_area,
            "total_original_weights": self.total_original_weights,
            "total_npu_encoded_weights_bytes": self.total_npu_encoded_weights_bytes,
            "nn_macs": self.nn_macs, "mac_utilisation_pct": self.mac_utilisation_pct,
            "npu_ops": self.npu_ops, "cpu_ops": self.cpu_ops, "npu_op_share": self.npu_op_share,
        }


_KINDS = {"weights_storage_area": str, "feature_map_storage_area": str,
          **{name: int for name in ("cycles_total", "cycles_npu", "total_original_weights",
                                    "total_npu_encoded_weights_bytes", "nn_macs", "npu_ops", "cpu_ops")}}
_KINDS.update({f.name: float for f in fields(VelaFigures) if f.name not in _KINDS})
FIGURE_KEYS = tuple(VelaFigures(**{f.name: _KINDS[f.name]() for f in fields(VelaFigures)}).to_record())


@dataclass(frozen=True)
class CompileRecord:
    """One compile, as `<stem>_record.json` and one row of the records CSV hold it.

    The target columns are those of `Target.columns()` (hardware kept apart from compiler options):
    clock_hz in Hz, arena_cache_size in bytes (None: Vela's default for the memory mode).
    """

    model: str                  # <experiment>_<variant>, or the .tflite's stem
    source_tflite: str
    source_sha256: str
    vela_version: str
    target: str
    target_id: str              # ML eval kit id, e.g. H128
    accelerator: str
    system_config: str
    memory_mode: str
    clock_hz: float
    optimise: str
    arena_cache_size: int | None
    figures: VelaFigures
    compile_s: float            # wall time of the Vela run (s)

    @classmethod
    def from_record(cls, record: Mapping[str, Any], source: str = "record") -> "CompileRecord":
        """From a record dict (JSON or CSV row); RecordError naming the column when one is missing."""
        def text(key: str) -> str:
            if record.get(key) in (None, ""):
                raise RecordError(source, key, record.get(key))
            return str(record[key])

        cache = record.get("arena_cache_size")
        return cls(model=text("model"), source_tflite=str(record.get("source_tflite", "")),
                   source_sha256=str(record.get("source_sha256", "")), vela_version=str(record.get("vela_version", "")),
                   target=text("target"), target_id=text("target_id"), accelerator=str(record.get("accelerator", "")),
                   system_config=str(record.get("system_config", "")), memory_mode=str(record.get("memory_mode", "")),
                   clock_hz=_parse(float, record.get("clock_hz"), "clock_hz", source),
                   optimise=str(record.get("optimise", "")),
                   arena_cache_size=None if cache in (None, "") else _parse(int, cache, "arena_cache_size", source),
                   figures=VelaFigures.from_record(record, source),
                   compile_s=_parse(float, record.get("compile_s", 0.0), "compile_s", source))

    @property
    def target_columns(self) -> dict[str, Any]:
        """The target's configuration columns, as `Target.columns()` names them."""
        return {"target": self.target, "target_id": self.target_id, "accelerator": self.accelerator,
                "system_config": self.system_config, "memory_mode": self.memory_mode, "clock_hz": self.clock_hz,
                "optimise": self.optimise, "arena_cache_size": self.arena_cache_size}

    def to_record(self) -> dict[str, Any]:
        """The flat row, keys in the order compile has always written them."""
        return {"model": self.model, "source_tflite": self.source_tflite, "source_sha256": self.source_sha256,
                "vela_version": self.vela_version, **self.target_columns, **self.figures.to_record(),
                "compile_s": self.compile_s}


RECORD_KEYS = tuple(CompileRecord("", "", "", "", "", "", "", "", "", 0.0, "", None,
                                  VelaFigures.from_record(dict.fromkeys(FIGURE_KEYS, 0)), 0.0).to_record())


def write_records_csv(records: Iterable[CompileRecord | Mapping[str, Any]], path: str | Path) -> Path:
    """Records as one CSV (columns: union of keys, in first-seen order; None as empty), written atomically."""
    rows = [r.to_record() if isinstance(r, CompileRecord) else dict(r) for r in records]
    columns: list[str] = []
    for row in rows:
        columns += [key for key in row if key not in columns]
    lines: list[str] = []

    class _Sink:
        def write(self, text: str) -> None:
            lines.append(text)

    writer = csv.DictWriter(_Sink(), fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: "" if row.get(key) is None else row.get(key) for key in columns})
    return write_text(path, "".join(lines))

