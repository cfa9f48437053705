"""Deployment budgets per target: SRAM, flash/DRAM, latency, NPU op share and quality floors.

`vela_configs/budgets.yaml` (shipped as package data: DEFAULT_BUDGETS_FILE) maps target names (from targets.yaml) to limits. `check_budgets`
compares compile records (sepipe.deploy records, or rows of a records CSV) with them and
returns one Violation per broken limit; each prints as one line `model, target, metric, value, limit`.
A limit whose value is missing from a record is a violation too ("missing"): a budget never
passes because nothing was measured. Records read from a run folder are used only while they are
current (sepipe.engine.currency): a report or compile record of a model that was converted again
since, or left by a compile that failed, is one line naming it and the command that refreshes it.
A budget file is any user's input: whatever it holds gives the budgets or one ConfigError /
InputFileError line, in bounded size (the limits of sepipe.config_loading.read_yaml_file).
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Iterable, Mapping


from sepipe.config import _build
from sepipe.artifacts import sha256_file
from sepipe.engine.currency import StaleRecordError, check_files
from sepipe.config_loading import read_yaml_file
from sepipe.errors import ConfigError, InputFileError
from sepipe.report.rows import QUALITY_COLUMNS
from sepipe.targets import CONFIG_DIR, Target, load_targets

DEFAULT_BUDGETS_FILE = CONFIG_DIR / "budgets.yaml"
DEFAULT_HOP_MS = 16.0   # 256-sample hop at 16 kHz: the real-time deadline of one Invoke
QUALITY_METRICS = QUALITY_COLUMNS   # what min_quality may name: the report's quality columns


@dataclass(frozen=True)
class Budget:
    """Limits for one target; None = not checked.

    max_sram_kib, max_flash_kib (on- + off-chip flash), max_dram_kib: KiB as Vela reports them;
    max_latency_ms: ms per inference; max_latency_hop_fraction: inference time / hop (0..1];
    min_npu_op_share: NPU operators / all operators (0..1];
    min_quality: metric -> floor (e.g. {si_sdr: 8.0} in dB), checked against the quality given
    to check_budgets or the record's own column of that name.
    """

    max_sram_kib: float | None = None
    max_flash_kib: float | None = None
    max_dram_kib: float | None = None
    max_latency_ms: float | None = None
    max_latency_hop_fraction: float | None = None
    min_npu_op_share: float | None = None
    min_quality: tuple[tuple[str, float], ...] = field(default=())


@dataclass(frozen=True)
class Violation:
    model: str
    target: str
    metric: str
    value: float | None     # None: the record does not have it
    limit: str              # e.g. '<= 64' or '>= 8.0'

    def __str__(self) -> str:
        value = "missing" if self.value is None else f"{self.value:.6g}"
        return f"{self.model}, {self.target}, {self.metric}, {value}, {self.limit}"


# metric checked -> (record column, budget field, comparison)
_LIMITS = (
    ("sram_memory_used_kib", "sram_memory_used_kib", "max_sram_kib", "<="),
    ("flash_kib", "flash_kib", "max_flash_kib", "<="),
    ("dram_memory_used_kib", "dram_memory_used_kib", "max_dram_kib", "<="),
    ("inference_time_ms", "inference_time_ms", "max_latency_ms", "<="),
    ("npu_op_share", "npu_op_share", "min_npu_op_share", ">="),
)


def load_budgets(path: str | Path, targets: Mapping[str, Target] | None = None) -> dict[str, Budget]:
    """Load `path` ({budgets: {target name: {limit: value}}}); target names must exist in `targets`
    (default: vela_configs/targets.yaml), so a misspelt name cannot silently skip its budget."""
    path = Path(path)
    raw = _read_budget_file(path)
    src = str(path)
    unknown = sorted((k for k in raw if k != "budgets"), key=str)
    if unknown:
        raise ConfigError(src, str(unknown[0]), raw[unknown[0]], "the single top-level key 'budgets'")
    entries = raw.get("budgets")
    if not isinstance(entries, dict) or not entries:
        raise ConfigError(src, "budgets", entries, "a mapping of target name -> limits")
    known = targets if targets is not None else load_targets()
    limits = ", ".join(f.name for f in fields(Budget))
    budgets = {}
    for name, entry in entries.items():
        key = f"budgets.{name}"
        if not isinstance(name, str) or name not in known:
            raise ConfigError(src, key, name, "a target name: one of " + ", ".join(known))
        if not isinstance(entry, dict) or not all(isinstance(k, str) for k in entry):
            raise ConfigError(src, key, entry, "a mapping of limits: " + limits)
        entry = dict(entry)
        quality = _min_quality(src, f"{key}.min_quality", entry.pop("min_quality", None) or {})
        for limit, value in entry.items():
            if isinstance(value, float) and not math.isfinite(value):
                raise ConfigError(src, f"{key}.{limit}", value, "a finite number")
        budget = _build(Budget, entry, src, prefix=key + ".")
        budget = Budget(**{**{f.name: getattr(budget, f.name) for f in fields(Budget)},
                           "min_quality": quality})
        _validate(src, key, budget)
        budgets[name] = budget
    return budgets


def _min_quality(src: str, key: str, quality: Any) -> tuple[tuple[str, float], ...]:
    """min_quality as (metric, floor) pairs: metrics the report has, finite numbers (a NaN floor fails
    every model, which would read as a budget violation: exit 1 for what is an input error)."""
    if not isinstance(quality, dict):
        raise ConfigError(src, key, quality, "a mapping of metric -> number, e.g. {si_sdr: 8.0}")
    for metric, floor in quality.items():
        if metric not in QUALITY_METRICS:
            raise ConfigError(src, key, metric, "a quality metric: one of " + ", ".join(QUALITY_METRICS))
        if isinstance(floor, bool) or not isinstance(floor, (int, float)) or not math.isfinite(floor):
            raise ConfigError(src, key, {metric: floor}, "a mapping of metric -> finite number, "
                              "e.g. {si_sdr: 8.0}")
    return tuple((k, float(v)) for k, v in quality.items())


def _read_budget_file(path: Path) -> dict:
    """The budget YAML as a mapping, read with the bounded YAML reader every input file uses
    (sepipe.config_loading: size, UTF-8, aliases expanded, depth); InputFileError otherwise."""
    raw = read_yaml_file(path, "budget file")
    if not isinstance(raw, dict):
        raise InputFileError(path, f"budget file must be a YAML mapping, not {type(raw).__name__}")
    return raw


def _validate(src: str, key: str, budget: Budget) -> None:
    for name in ("max_sram_kib", "max_flash_kib", "max_dram_kib", "max_latency_ms"):
        value = getattr(budget, name)
        if value is not None and not value > 0:
            raise ConfigError(src, f"{key}.{name}", value, "a number > 0")
    for name in ("max_latency_hop_fraction", "min_npu_op_share"):
        value = getattr(budget, name)
        if value is not None and not 0 < value <= 1:
            raise ConfigError(src, f"{key}.{name}", value, "a fraction in (0, 1]")
    if all(getattr(budget, f.name) in (None, ()) for f in fields(Budget)):
        raise ConfigError(src, key, {}, "at least one limit: " + ", ".join(f.name for f in fields(Budget)))


def check_budgets(records: Iterable[Mapping[str, Any]], budgets: Mapping[str, Budget], hop_ms: float = DEFAULT_HOP_MS,
                  quality: Mapping[str, Mapping[str, float]] | None = None,
                  require_budget: bool = False) -> list[Violation]:
    """Every broken limit, in record order.

    records: rows with at least 'model' and 'target' plus the compile record columns (numbers or
    numeric strings, as read from a CSV); hop_ms: the hop (ms) max_latency_hop_fraction refers to;
    quality: model -> {metric: value} for min_quality (else the record's own column);
    require_budget: a record whose target has no budget is a violation (metric 'budget').
    ConfigError when no record has a budget at all (the check would pass having checked nothing).
    """
    if hop_ms <= 0:
        raise ConfigError("budget check", "hop_ms", hop_ms, "a hop length > 0 (ms)")
    records = list(records)
    violations: list[Violation] = []
    checked = 0
    for record in records:
        model, target = str(record.get("model", "?")), str(record.get("target", "?"))
        budget = budgets.get(target)
        if budget is None:
            if require_budget:
                violations.append(Violation(model, target, "budget", None, "a budget for this target"))
            continue
        checked += 1
        for metric, column, limit_name, op in _LIMITS:
            limit = getattr(budget, limit_name)
            if limit is not None:
                _compare(violations, model, target, metric, _number(record.get(column)), op, limit)
        if budget.max_latency_hop_fraction is not None:
            latency = _number(record.get("inference_time_ms"))
            _compare(violations, model, target, "latency_hop_fraction",
                     None if latency is None else latency / hop_ms, "<=", budget.max_latency_hop_fraction,
                     f" (hop {hop_ms:g} ms)")
        if budget.max_flash_kib is not None and str(record.get("weights_storage_area", "")).upper() == "DRAM":
            # weights in DRAM: flash_kib is 0 and would pass without measuring anything
            violations.append(Violation(model, target, "flash_kib", None,
                                        "weights are in DRAM on this target: budget max_dram_kib, not max_flash_kib"))
        for metric, floor in budget.min_quality:
            value = (quality or {}).get(model, {}).get(metric, record.get(metric))
            _compare(violations, model, target, metric, _number(value), ">=", floor)
    if records and not checked and not require_budget:
        raise ConfigError("budget check", "target", sorted({str(r.get("target")) for r in records}),
                          "at least one record for a budgeted target: " + ", ".join(budgets))
    return violations


def format_violations(violations: list[Violation]) -> str:
    """A header line and one line per violation, or 'all budgets met'."""
    if not violations:
        return "all budgets met"
    return "\n".join(["model, target, metric, value, limit", *map(str, violations)])


def load_records(path: str | Path) -> list[dict[str, Any]]:
    """Compile records from a records CSV, one `*_record.json`, or a folder (every `*_record.json` under it).

    A file inside a run folder is used only while it is current (StaleRecordError otherwise: exit code 2)."""
    path = Path(path)
    if path.is_dir():
        files = sorted(path.rglob("*_vela_*_record.json"))
        if not files:
            raise InputFileError(path, "no compile records (*_vela_<id>_record.json) in this folder; run sepipe compile")
        check_files(files)
        return [_read_record_json(f) for f in files]
    if not path.is_file():
        raise InputFileError(path, "records file or run folder not found")
    check_files([path])     # a file inside a run folder is used only while current
    if path.suffix == ".json":
        return [_read_record_json(path)]
    try:
        with open(path, newline="") as handle:
            rows = list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputFileError(path, f"not a readable CSV ({exc})") from None
    if not rows or not {"model", "target"} <= set(rows[0]):
        raise InputFileError(path, "not a compile records CSV (needs at least the columns model and target)")
    return rows


def _read_record_json(path: Path) -> dict[str, Any]:
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InputFileError(path, f"not a readable compile record ({exc})") from None
    if not isinstance(record, dict) or not {"model", "target"} <= set(record):
        raise InputFileError(path, "not a compile record (needs model and target)")
    _check_source(path, record)
    return record


def _check_source(path: Path, record: dict[str, Any]) -> None:
    """StaleRecordError when the .tflite the record was compiled from is still there with other bytes
    (converted again since): its figures are not the current model's. A source that is gone passes."""
    source, digest = record.get("source_tflite"), record.get("source_sha256")
    if not isinstance(source, str) or not isinstance(digest, str) or not Path(source).is_file():
        return
    now = sha256_file(source)
    if now != digest:
        raise StaleRecordError(path, f"stale: compiled from {source} with sha256 {digest[:12]}..., which now has "
                                     f"{now[:12]}... (the model changed since)",
                               f"sepipe compile {source} --target {record.get('target')}")


def _number(value: Any) -> float | None:
    if value is None or value == "":
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def _compare(out: list[Violation], model: str, target: str, metric: str, value: float | None, op: str,
             limit: float, note: str = "") -> None:
    ok = value is not None and (value <= limit if op == "<=" else value >= limit)
    if not ok:
        out.append(Violation(model, target, metric, value, f"{op} {limit:g}{note}"))
