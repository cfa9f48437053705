"""Atomic artifact writing, hashing and tool versions.

Every artifact is written to a temporary file in the same folder and renamed
into place, so an interrupted run never leaves a half-written file under its
final name. Stage records and the run manifest derived from them live in
`sepipe.engine.records`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any, Iterator

# Tools whose version changes model bytes, figures or scores (the manifest lists them all; each
# stage's fingerprint holds only those it uses: sepipe.stages.tools).
TRACKED_TOOLS = (
    "tensorflow", "tf-keras", "tensorflow-model-optimization", "ai-edge-litert", "ethos-u-vela",
    "tflite-micro", "numpy", "pesq", "pystoi", "speechmos", "onnxruntime", "pyrnnoise", "soxr", "g722",
)


@contextlib.contextmanager
def atomic_path(final: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `final`; rename it into place on success only.

    The temporary name ends with the final name, so tools that pick a format
    from the suffix (Keras `.weights.h5`, soundfile `.wav`) write the right one.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=f"-{final.name}", dir=final.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; artifacts are shared like any file
        os.replace(tmp_path, final)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_bytes(path: str | Path, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text(path: str | Path, text: str) -> Path:
    return write_bytes(path, text.encode("utf-8"))


def write_json(path: str | Path, obj: Any) -> Path:
    return write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# Config fields added after runs were recorded carry this metadata: at their default value they are
# left out of stage fingerprints, so adding a field does not invalidate (and re-run) every finished stage.
ADDED_FIELD = {"fingerprint": "omit at default"}


def _json_fallback(obj: Any) -> str:
    """A config dataclass as its repr, without ADDED_FIELD fields at their default; anything else as str."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        shown = [f"{f.name}={getattr(obj, f.name)!r}" for f in dataclasses.fields(obj)
                 if f.repr and not (f.metadata.get("fingerprint") == ADDED_FIELD["fingerprint"]
                                    and getattr(obj, f.name) == f.default)]
        return f"{type(obj).__qualname__}({', '.join(shown)})"
    return str(obj)


def sha256_json(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=_json_fallback).encode()).hexdigest()


def tool_version(name: str) -> str:
    """The installed version of distribution `name`, or 'not installed'."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def tool_versions(names: tuple[str, ...] | list[str] | None = None) -> dict[str, str]:
    """Versions of `names` (default: every tracked tool), by distribution name."""
    return {name: tool_version(name) for name in (TRACKED_TOOLS if names is None else names)}

