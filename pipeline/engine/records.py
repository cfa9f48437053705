"""Per-stage record files and the run manifest derived from them.

Each finished stage writes `<run>/records/<stage>.json` (':' in a stage name becomes '.'),
atomically and after its outputs, so a stage is complete exactly when its record exists, and two
stages finishing at once (two Ray tasks) write two files instead of racing on one manifest:

    {"stage": "convert:ptq", "fingerprint": {"config", "inputs", "tools"}, "fingerprint_sha256",
     "outputs": {relative path: sha256}, "summary": {...}, "seconds": wall time of the run}

`manifest.json` is derived from the records (plus the resolved config and the tool versions) and
rewritten at the end of a run or of a single-stage command; `read_manifest` composes the same
shape from the records at any time, so readers never see a manifest older than the records.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

from sepipe import artifacts
from sepipe.errors import MissingArtifactError

RECORDS = "records"
MANIFEST = "manifest.json"
MANIFEST_KEYS = ("fingerprint", "fingerprint_sha256", "outputs", "summary")


def record_path(run_dir: str | Path, stage: str) -> Path:
    return Path(run_dir) / RECORDS / (stage.replace(":", ".") + ".json")


def fingerprint(config: Any, inputs: Mapping[str, str | Path], tools: tuple[str, ...] | list[str],
                hint: str = "") -> dict[str, Any]:
    """What a stage's result depends on: its config slice, its input files' hashes and the versions
    of the tools it uses (only those: a new `pesq` does not retrain the model)."""
    hashes = {}
    for name, path in sorted(inputs.items()):
        if not Path(path).is_file():
            raise MissingArtifactError(path, hint or f"the input '{name}' has not been made")
        hashes[name] = artifacts.sha256_file(path)
    return {"config": config, "inputs": hashes, "tools": artifacts.tool_versions(sorted(tools))}


def read_record(run_dir: str | Path, stage: str) -> dict[str, Any] | None:
    path = record_path(run_dir, stage)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None


def read_records(run_dir: str | Path) -> dict[str, dict[str, Any]]:
    """Every stage record of the run, by stage name (in name order)."""
    folder = Path(run_dir) / RECORDS
    records = {}
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else ():
        record = json.loads(path.read_text())
        records[record["stage"]] = record
    return records


def is_current(run_dir: str | Path, stage: str, fp: dict[str, Any]) -> bool:
    """True when `stage` is recorded with this fingerprint and its outputs still hash the same."""
    record = read_record(run_dir, stage)
    if not record or record.get("fingerprint_sha256") != artifacts.sha256_json(fp):
        return False
    for rel, digest in record.get("outputs", {}).items():
        path = Path(run_dir) / rel
        if not path.is_file() or artifacts.sha256_file(path) != digest:
            return False
    return True


def write_record(run_dir: str | Path, stage: str, fp: dict[str, Any], outputs: list[str | Path],
                 summary: dict[str, Any] | None = None, seconds: float | None = None) -> dict[str, Any]:
    """Record a finished stage in its own file (atomically; call it after every output is written)."""
    run_dir = Path(run_dir)
    record = {
        "stage": stage,
        "fingerprint": fp,
        "fingerprint_sha256": artifacts.sha256_json(fp),
        "outputs": {str(Path(p).relative_to(run_dir)): artifacts.sha256_file(p) for p in outputs},
        "summary": summary or {},
        "seconds": None if seconds is None else round(seconds, 3),
    }
    # Through JSON once, so a record read back equals the one returned (tuples become lists).
    record = json.loads(json.dumps(record, sort_keys=True, default=artifacts._json_fallback))
    artifacts.write_json(record_path(run_dir, stage), record)
    return record


def read_manifest(run_dir: str | Path) -> dict[str, Any]:
    """{"stages": {name: {fingerprint, fingerprint_sha256, outputs, summary}}, "config", "tools"}:
    the stages from the record files, the config and tools from the last written manifest.json."""
    run_dir = Path(run_dir)
    manifest: dict[str, Any] = {}
    path = run_dir / MANIFEST
    if path.is_file():
        try:
            manifest = json.loads(path.read_text())
        except ValueError:
            manifest = {}
    manifest["stages"] = {name: {key: record[key] for key in MANIFEST_KEYS}
                          for name, record in read_records(run_dir).items()}
    return manifest


def write_manifest(run_dir: str | Path, config: dict[str, Any]) -> Path:
    """Derive `manifest.json` from the records: resolved config, tool versions, every stage."""
    manifest = read_manifest(run_dir)
    manifest["config"] = config
    manifest["tools"] = artifacts.tool_versions()
    return artifacts.write_json(Path(run_dir) / MANIFEST, manifest)
