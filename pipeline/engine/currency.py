"""Whether a record still belongs to what it describes, from the run folder alone (no experiment YAML).

A record is stale when an output it lists no longer hashes the same, an input file behind its
fingerprint changed (a re-converted .tflite under a compile record), or a needed stage's record was
replaced or removed since (convert ran again, compile failed). The runner also compares a needed
stage's fingerprint with the current config (`Runner.verify`); this module is what `sepipe budget
check` can do with the run folder only. A stale or missing record is one line: the record, what
changed and the command that refreshes it (StaleRecordError, exit code 2).

A report's tables get a sources record beside them (`<stem>.sources.json`): the digest of every
record they join and the hash of each table, so a table is trusted only while all of those hold.

Temporary files: `sepipe.artifacts.atomic_path` writes `.tmp-<8 characters>-<final name>` beside the
final file; a killed run leaves them. `clean_temp_files` removes those of the given final names only
(two stages writing into one folder at once never lose each other's).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any, Iterable, Mapping

from sepipe import artifacts
from sepipe.engine import records
from sepipe.errors import PipelineError

log = logging.getLogger(__name__)

SOURCES_SUFFIX = ".sources.json"
# tempfile.mkstemp's names: 8 characters of this alphabet between the prefix and the suffix.
_TEMP_NAME = re.compile(r"\.tmp-[a-z0-9_]{8}-(?P<final>.+)")


class StaleRecordError(PipelineError):
    """A record that does not belong to the current model bytes or settings, or one that is missing."""

    def __init__(self, path: str | Path, problem: str, refresh: str):
        self.path, self.problem, self.refresh = str(path), problem, refresh
        super().__init__(f"{path}: {problem}; refresh: {refresh}")


def refresh_command(hint: str, fallback: str = "sepipe run EXPERIMENT.yaml") -> str:
    """The command part of a stage hint ('compile first: sepipe compile demo.yaml' -> 'sepipe compile demo.yaml')."""
    at = hint.find("sepipe ")
    return hint[at:] if at >= 0 else fallback


def _short(digest: Any) -> str:
    return str(digest)[:12]


def _resolve(run_dir: Path, where: str) -> Path:
    path = Path(where)
    return path if path.is_absolute() else run_dir / path


def record_problem(run_dir: str | Path, record: Mapping[str, Any],
                   current: Mapping[str, Mapping[str, Any]] | None = None) -> str | None:
    """What makes `record` stale against the files and records of the run now, or None.

    current: the run's records by stage (default: read them). An input outside the run folder that is
    gone (a deleted dataset cache) cannot be compared and is not held against the record."""
    run_dir = Path(run_dir)
    stage = record.get("stage")
    for rel, digest in (record.get("outputs") or {}).items():
        path = run_dir / rel
        if not path.is_file():
            return f"stale: its output {rel} is gone"
        if artifacts.sha256_file(path) != digest:
            return f"stale: its output {rel} changed after '{stage}' wrote it"
    hashes = (record.get("fingerprint") or {}).get("inputs") or {}
    for name, where in (record.get("input_files") or {}).items():
        path = _resolve(run_dir, where)
        if not path.is_file():
            if not Path(where).is_absolute():
                return f"stale: its input '{name}' ({where}) is gone"
            continue
        now = artifacts.sha256_file(path)
        if name in hashes and now != hashes[name]:
            return (f"stale: its input '{name}' ({where}) changed since '{stage}' ran "
                    f"(sha256 {_short(hashes[name])}... then, {_short(now)}... now)")
    if record.get("needs"):
        current = records.read_records(run_dir) if current is None else current
        for name, digest in record["needs"].items():
            need = current.get(name)
            if need is None:
                return f"stale: the '{name}' record it was made from is gone (that stage failed or is running again)"
            if records.record_digest(need) != digest:
                return f"stale: '{name}' ran again since '{stage}' ran, so it describes the previous result"
    return None


def check_record(run_dir: str | Path, record: Mapping[str, Any],
                 current: Mapping[str, Mapping[str, Any]] | None = None) -> None:
    """StaleRecordError when `record` is stale (see record_problem)."""
    problem = record_problem(run_dir, record, current)
    if problem:
        raise StaleRecordError(records.record_path(run_dir, str(record.get("stage"))), problem,
                               refresh_command(str(record.get("refresh", ""))))


def upstream(current: Mapping[str, Mapping[str, Any]], names: Iterable[str]) -> list[str]:
    """`names` and every stage their records were made from (through each record's `needs`), in name order."""
    seen: set[str] = set()
    todo = list(names)
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend((current.get(name) or {}).get("needs") or ())
    return sorted(seen)


# --------------------------------------------------------------------------- a report's sources

def sources_path(table: str | Path) -> Path:
    """`report/demo_report.csv` -> `report/demo_report.sources.json` (one per stem)."""
    table = Path(table)
    return table.with_name(table.stem + SOURCES_SUFFIX)


def write_sources(run_dir: str | Path, tables: list[Path], needs: Iterable[str], refresh: str) -> Path:
    """After the tables: the digest of every record they join (the needs and what those were made from),
    each table's hash, and the command that rewrites them."""
    run_dir = Path(run_dir)
    current = records.read_records(run_dir)
    names = upstream(current, needs)
    stages = {name: {"digest": records.record_digest(current[name]),
                     "refresh": refresh_command(str(current[name].get("refresh", "")))}
              for name in names if name in current}
    return artifacts.write_json(sources_path(tables[0]), {
        "stages": stages, "refresh": refresh_command(refresh),
        "tables": {Path(t).name: artifacts.sha256_file(t) for t in tables}})


def remove_sources(table: str | Path) -> None:
    """Before a report is rewritten: a report that fails half way leaves tables without sources (refused)."""
    sources_path(table).unlink(missing_ok=True)


def check_table(run_dir: str | Path, table: str | Path) -> None:
    """StaleRecordError unless `table` is what its report wrote from records that are all still current."""
    run_dir, table = Path(run_dir), Path(table)
    path = sources_path(table)
    refresh = "sepipe report EXPERIMENT.yaml"
    if not path.is_file():
        raise StaleRecordError(table, f"no {path.name} beside it, so what it joins cannot be checked (the report "
                                      "did not finish, or an older sepipe wrote it)", refresh)
    sources = records._load(path, "report sources record")
    refresh = str(sources.get("refresh") or refresh)
    if (sources.get("tables") or {}).get(table.name) != artifacts.sha256_file(table):
        raise StaleRecordError(table, "changed after the report wrote it", refresh)
    current = records.read_records(run_dir)
    for name, joined in sorted((sources.get("stages") or {}).items()):
        record = current.get(name)
        if record is None:
            raise StaleRecordError(records.record_path(run_dir, name),
                                   f"not found: the report joins '{name}', which has no record now (it failed, "
                                   "was interrupted or is running)", joined.get("refresh") or refresh)
        check_record(run_dir, record, current)
        if records.record_digest(record) != joined.get("digest"):
            raise StaleRecordError(table, f"'{name}' ran again after the report was written", refresh)


def check_run_records(run_dir: str | Path, files: Iterable[Path] = ()) -> None:
    """Every record of the run is current, and each of `files` (e.g. per-target compile records) is an
    output of one of them: a file no current record lists is left over from a failed or earlier run."""
    run_dir = Path(run_dir)
    current = records.read_records(run_dir)
    owner: dict[Path, str] = {}
    for name, record in current.items():
        check_record(run_dir, record, current)
        owner.update({(run_dir / rel).resolve(): name for rel in record.get("outputs") or {}})
    for path in files:
        if Path(path).resolve() not in owner:
            raise StaleRecordError(path, "stale: no current stage record lists it (the stage that wrote it failed, "
                                         "was interrupted or has not run since)", _refresh_for(current, path))


def _refresh_for(current: Mapping[str, Mapping[str, Any]], path: Path) -> str:
    compiles = [r for name, r in current.items() if name.startswith("compile:")]
    hint = next((str(r.get("refresh", "")) for r in compiles if r.get("refresh")), "")
    return refresh_command(hint, "sepipe compile EXPERIMENT.yaml") if "_vela_" in Path(path).name \
        else refresh_command("")


def run_folder_of(path: str | Path) -> Path | None:
    """The run folder holding `path` (the folder itself, or up to two levels up: `compile/x_record.json`,
    `report/x.csv`): one with a `records/` folder and a manifest.json, else None."""
    path = Path(path).resolve()
    folders = [path, path.parent] if path.is_dir() else [path.parent, path.parent.parent]
    for folder in folders:
        if (folder / records.RECORDS).is_dir() and (folder / records.MANIFEST).is_file():
            return folder
    return None


def check_files(paths: Iterable[str | Path]) -> None:
    """For `sepipe budget check`: each file read from a run folder is current (a report table through its
    sources record, any other file as an output of a current stage record); files outside runs pass."""
    by_run: dict[Path, list[Path]] = {}
    for path in paths:
        run = run_folder_of(path)
        if run is not None:
            by_run.setdefault(run, []).append(Path(path))
    for run, files in by_run.items():
        tables = [f for f in files if f.resolve().parent == run / "report"]
        for table in tables:
            check_table(run, table)
        check_run_records(run, [f for f in files if f not in tables])


# --------------------------------------------------------------------------- temporary files

def clean_temp_files(finals: Iterable[str | Path]) -> list[Path]:
    """Remove the leftover temporary files of these final paths (`.tmp-XXXXXXXX-<name>` beside each)."""
    removed = []
    for final in {Path(p) for p in finals}:
        if not final.parent.is_dir():
            continue
        for path in final.parent.glob(f".tmp-*-{glob_escape(final.name)}"):
            match = _TEMP_NAME.fullmatch(path.name)
            if match and match["final"] == final.name and path.is_file():
                path.unlink(missing_ok=True)
                removed.append(path)
    if removed:
        log.info("removed %d temporary file(s) left by an interrupted run: %s", len(removed),
                 ", ".join(str(p) for p in removed[:4]))
    return removed


def glob_escape(name: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", name)
