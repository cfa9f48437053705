"""Per-stage record files and the run manifest derived from them.

Each finished stage writes `<run>/records/<stage>.json` (':' in a stage name becomes '.'),
atomically and after its outputs, so a stage is complete exactly when its record exists, and two
stages finishing at once (two Ray tasks) write two files instead of racing on one manifest:

    {"stage": "convert:ptq", "fingerprint": {"config", "inputs", "tools"}, "fingerprint_sha256",
     "outputs": {relative path: sha256}, "summary": {...}, "seconds": wall time of the run,
     "input_files": {input name: path}, "needs": {needed stage: its record's digest}, "refresh": hint}

`input_files`, `needs` and `refresh` are outside the fingerprint (records written before them stay
current): they let a reader without the experiment YAML (`sepipe budget check`) tell whether a
record still belongs to the files and records it was made from (sepipe.engine.currency). A stage
that starts removes its record first (`invalidate`), so a failed or interrupted stage leaves none.
Non-finite numbers are written as null (`finite_json`): NaN is not JSON.

`manifest.json` is derived from the records (plus the resolved config and the tool versions) and
rewritten at the end of a run or of a single-stage command; `read_manifest` composes the same
shape from the records at any time, so readers never see a manifest older than the records.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any, Mapping

from sepipe import artifacts
from sepipe.errors import InputFileError, MissingArtifactError

log = logging.getLogger(__name__)

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


def _load(path: Path, what: str) -> dict[str, Any]:
    """A JSON object from `path`; InputFileError naming the file when it is truncated or not an object."""
    try:
        value = json.loads(path.read_bytes().decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputFileError(path, f"not a readable {what} ({type(exc).__name__}: {str(exc)[:120]}); it was cut "
                                   "short or edited: remove it and rerun the stage that writes it") from None
    if not isinstance(value, dict):
        raise InputFileError(path, f"not a {what} (a JSON {type(value).__name__}, expected an object); remove it "
                                   "and rerun the stage that writes it")
    return value


def read_record(run_dir: str | Path, stage: str) -> dict[str, Any] | None:
    """The stage's record, None when it has none; InputFileError (one line) when it cannot be read."""
    path = record_path(run_dir, stage)
    if not path.is_file():
        return None
    record = _load(path, "stage record")
    if record.get("stage") != stage or not isinstance(record.get("summary"), dict):
        raise InputFileError(path, f"not the record of stage '{stage}' (stage {str(record.get('stage'))[:60]!r}); "
                                   "remove it and rerun the stage")
    return record


def read_records(run_dir: str | Path) -> dict[str, dict[str, Any]]:
    """Every stage record of the run, by stage name (in name order); InputFileError for an unreadable one."""
    folder = Path(run_dir) / RECORDS
    records = {}
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else ():
        record = _load(path, "stage record")
        if not isinstance(record.get("stage"), str):
            raise InputFileError(path, "not a stage record (no 'stage'); remove it and rerun the stage")
        records[record["stage"]] = record
    return records


def read_record_of_other_run(run_dir: Path, stage: str) -> dict[str, Any] | None:
    """Another run's record, or None with a warning when it cannot be read: one broken run folder must not
    stop every other experiment (the training reuse scans them all)."""
    try:
        return read_record(run_dir, stage)
    except InputFileError as exc:
        log.warning("%s; skipped", exc)
        return None


def record_digest(record: Mapping[str, Any]) -> str:
    """What a stage produced, in one hash (fingerprint and output hashes): a reader compares it with the
    digest it recorded to tell that a record it used has not been replaced since."""
    return artifacts.sha256_json({"fingerprint_sha256": record.get("fingerprint_sha256"),
                                  "outputs": record.get("outputs")})


def invalidate(run_dir: str | Path, stage: str) -> dict[str, Any] | None:
    """Remove the stage's record before it runs again (an unlink is atomic), returning what it held: a
    failed or interrupted run then leaves no record that looks current, only a missing one."""
    path = record_path(run_dir, stage)
    try:
        previous = read_record(run_dir, stage)
    except InputFileError:
        previous = None      # unreadable: removed all the same, the run replaces it
    path.unlink(missing_ok=True)
    return previous


def is_current(run_dir: str | Path, stage: str, fp: dict[str, Any], record: dict | None = None) -> bool:
    """True when `stage` is recorded with this fingerprint and its outputs still hash the same."""
    record = read_record(run_dir, stage) if record is None else record
    if not record or record.get("fingerprint_sha256") != artifacts.sha256_json(fp):
        return False
    for rel, digest in record.get("outputs", {}).items():
        path = Path(run_dir) / rel
        if not path.is_file() or artifacts.sha256_file(path) != digest:
            return False
    return True


def write_record(run_dir: str | Path, stage: str, fp: dict[str, Any], outputs: list[str | Path],
                 summary: dict[str, Any] | None = None, seconds: float | None = None,
                 input_files: Mapping[str, str | Path] | None = None, needs: Mapping[str, dict] | None = None,
                 refresh: str = "") -> dict[str, Any]:
    """Record a finished stage in its own file (atomically; call it after every output is written).

    input_files: the files behind fp's input hashes; needs: the needed stages' records it was made from."""
    run_dir = Path(run_dir)
    record = {
        "stage": stage,
        "fingerprint": fp,
        "fingerprint_sha256": artifacts.sha256_json(fp),
        "outputs": {str(Path(p).relative_to(run_dir)): artifacts.sha256_file(p) for p in outputs},
        "summary": summary or {},
        "seconds": None if seconds is None else round(seconds, 3),
        "input_files": {name: _where(run_dir, path) for name, path in sorted((input_files or {}).items())},
        "needs": {name: record_digest(need) for name, need in sorted((needs or {}).items())},
        "refresh": refresh,
    }
    # Through JSON once, so a record read back equals the one returned (tuples become lists, NaN null).
    record = json.loads(finite_json(record))
    artifacts.write_text(record_path(run_dir, stage), json.dumps(record, indent=2, sort_keys=True) + "\n")
    return record


def _where(run_dir: Path, path: str | Path) -> str:
    """A path relative to the run folder when inside it (a copied run keeps its meaning), else absolute."""
    path = Path(path).resolve()
    try:
        return str(path.relative_to(run_dir.resolve()))
    except ValueError:
        return str(path)


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    return value


def finite_json(obj: Any, **kwargs: Any) -> str:
    """JSON text of `obj` with NaN and infinities written as null: `json.dumps` writes `NaN`, which is not
    JSON (a strict reader, or the next run of the same code after an edit, cannot read it back)."""
    plain = json.loads(json.dumps(obj, sort_keys=True, default=artifacts._json_fallback))
    return json.dumps(_finite(plain), sort_keys=True, allow_nan=False, **kwargs)


def read_manifest(run_dir: str | Path, strict: bool = True) -> dict[str, Any]:
    """{"stages": {name: {fingerprint, fingerprint_sha256, outputs, summary}}, "config", "tools"}:
    the stages from the record files, the config and tools from the last written manifest.json.

    strict: an unreadable manifest.json is an InputFileError (one line), else it is ignored (it is
    derived: `write_manifest` rewrites it)."""
    run_dir = Path(run_dir)
    manifest: dict[str, Any] = {}
    path = run_dir / MANIFEST
    if path.is_file():
        try:
            manifest = _load(path, "run manifest")
        except InputFileError:
            if strict:
                raise
            log.warning("%s: unreadable; rewritten from the stage records", path)
    manifest["stages"] = {name: {key: record.get(key) for key in MANIFEST_KEYS}
                          for name, record in read_records(run_dir).items()}
    return manifest


def write_manifest(run_dir: str | Path, config: dict[str, Any]) -> Path:
    """Derive `manifest.json` from the records: resolved config, tool versions, every stage."""
    manifest = read_manifest(run_dir, strict=False)
    manifest["config"] = config
    manifest["tools"] = artifacts.tool_versions()
    return artifacts.write_json(Path(run_dir) / MANIFEST, manifest)
