"""Vela results cached per (model bytes, target, Vela version, options): no model is compiled twice.

A compile is a pure function of the .tflite bytes, the target (accelerator, system config and
memory mode with the contents of their vela.ini sections, optimise strategy, arena cache), the Vela
version and the compile options, so its outputs are kept under

    <cache root>/<sha256 of that key>/   out.tflite, out_summary.csv, out_per-layer.csv,
                                         out_placement.json, out_vela.log, out_record.json, entry.json

(`out` stands for the artifact stem; entry.json holds the key and the name first compiled).
A hit copies them into the run layout under the run's names (`<name>_vela_<id>...`), rewriting
the three places Vela or the record name the model (the summary CSV's `network`, the record's and
placement's `model` and `source_tflite`), and returns the same record, without starting Vela. The
compiled model and per-layer CSV do not depend on the name (checked with Vela 5.2.0). A compile
that fails (Vela error, CPU fallback with require_full_npu) is not cached.

The cache root is `$SEPIPE_VELA_CACHE` when set ('off' disables caching), else `vela/` under the
experiment's data cache dir (`.cache/vela`), shared by every run that uses that cache.
"""

from __future__ import annotations

import configparser
import csv
import io
import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sepipe import artifacts

log = logging.getLogger(__name__)

CACHE_ENV = "SEPIPE_VELA_CACHE"
CACHE_FORMAT = 1          # bump when the entry layout or the key changes meaning
_STEM = "out"


@dataclass(frozen=True)
class CompileOutcome:
    """One target's compile: the record (compile_model's columns), the files in the run layout."""

    record: dict[str, Any]
    outputs: tuple[Path, ...]
    cache_hit: bool
    cache_dir: Path | None


def cache_root(data_cache_dir: str | Path) -> Path | None:
    """Where compiles are cached: $SEPIPE_VELA_CACHE ('off': nowhere), else <data cache>/vela."""
    value = os.environ.get(CACHE_ENV)
    if value is not None:
        return None if value.strip().lower() in ("", "off", "0", "none") else Path(value)
    return Path(data_cache_dir) / "vela"


def _ini_sections(target) -> dict[str, dict[str, str]]:
    """The vela.ini sections the target selects (with the sections they inherit), by name."""
    ini = configparser.ConfigParser(interpolation=None)
    ini.optionxform = str
    ini.read(target.vela_config)
    wanted = [f"System_Config.{target.hardware.system_config}", f"Memory_Mode.{target.hardware.memory_mode}"]
    sections: dict[str, dict[str, str]] = {}
    while wanted:
        name = wanted.pop()
        if name in sections or not ini.has_section(name):
            continue
        sections[name] = dict(ini.items(name, raw=True))
        if "inherit" in sections[name]:
            wanted.append(sections[name]["inherit"])
    return sections


def cache_key(tflite_sha256: str, target, options) -> dict[str, Any]:
    """Everything a Vela result depends on (the ini by content, not by path)."""
    from sepipe.deploy.vela import vela_version

    args = list(target.vela_args())
    if "--config" in args:
        args[args.index("--config") + 1] = "<vela.ini sections below>"
    return {"format": CACHE_FORMAT, "model_sha256": tflite_sha256, "vela_version": vela_version(),
            "target": target.columns(), "vela_args": args, "ini_sections": _ini_sections(target),
            "require_full_npu": bool(options.require_full_npu)}


def compile_cached(tflite_path: str | Path, target, out_dir: str | Path, name: str, options,
                   root: Path | None) -> CompileOutcome:
    """`sepipe.deploy.compile.compile_model`, served from the cache at `root` when this compile was done before."""
    from sepipe.deploy.compile import artifact_stem, compile_model

    tflite_path, out_dir = Path(tflite_path), Path(out_dir)
    if root is None:
        result = compile_model(tflite_path, target, out_dir, name, options)
        return CompileOutcome(result.record, tuple(result.outputs), False, None)
    key = cache_key(artifacts.sha256_file(tflite_path), target, options)
    entry = Path(root) / artifacts.sha256_json(key)
    stem = artifact_stem(name, target)
    if (entry / f"{_STEM}_record.json").is_file():
        outcome = _materialise(entry, tflite_path, out_dir, name, stem)
        log.info("compile %s for %s: Vela result from the cache (%s)", name, target.name, entry)
        return outcome
    result = compile_model(tflite_path, target, out_dir, name, options)
    _store(entry, key, name, stem, list(result.outputs))
    return CompileOutcome(result.record, tuple(result.outputs), False, entry)


def _store(entry: Path, key: dict[str, Any], name: str, stem: str, outputs: list[Path]) -> None:
    """Copy a finished compile into the cache: built in a temporary folder, renamed into place whole."""
    entry.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".tmp-{entry.name[:12]}-", dir=entry.parent))
    try:
        for path in outputs:
            if not path.name.startswith(stem):
                continue
            shutil.copyfile(path, work / (_STEM + path.name[len(stem):]))
        artifacts.write_json(work / "entry.json", {"key": key, "name": name, "stem": stem})
        try:
            os.rename(work, entry)
        except OSError:
            pass   # another process stored the same compile first: same content, keep theirs
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _materialise(entry: Path, tflite_path: Path, out_dir: Path, name: str, stem: str) -> CompileOutcome:
    """Copy a cached compile into `out_dir` under `stem`, naming the model `name` (record written last)."""
    first = json.loads((entry / "entry.json").read_text())
    record = json.loads((entry / f"{_STEM}_record.json").read_text())
    record.update({"model": name, "source_tflite": str(tflite_path)})
    outputs, record_path = [], None
    for cached in sorted(entry.glob(f"{_STEM}*")):
        suffix = cached.name[len(_STEM):]
        final = out_dir / f"{stem}{suffix}"
        if suffix == "_record.json":
            record_path = final
            continue
        data = cached.read_bytes()
        if suffix == "_summary.csv" and first["name"] != name:
            data = _rename_network(data, name)
        elif suffix == "_placement.json":
            placement = json.loads(data)
            placement.update({"model": name, "source_tflite": str(tflite_path)})
            data = (json.dumps(placement, indent=2, sort_keys=True, default=str) + "\n").encode()
        elif suffix == "_vela.log":
            data = (f"# sepipe: Vela result from the compile cache {entry} (first compiled as "
                    f"'{first['name']}')\n").encode() + data
        artifacts.write_bytes(final, data)
        outputs.append(final)
    artifacts.write_json(record_path, record)
    outputs.append(record_path)
    return CompileOutcome(record, tuple(outputs), True, entry)


def _rename_network(data: bytes, name: str) -> bytes:
    """Vela's summary CSV with its `network` column (the input file's stem) set to `name`."""
    rows = list(csv.reader(io.StringIO(data.decode(), newline="")))
    column = rows[0].index("network")
    for row in rows[1:]:
        row[column] = name
    out = io.StringIO(newline="")
    csv.writer(out, lineterminator="\r\n").writerows(rows)
    return out.getvalue().encode()
