"""What verification reads from an untrusted model_manifest.json, checked for type and range before it is
used: every path a relative path to a file of the bundle, the C symbol an identifier, the feature
settings the pipeline's own, the arena an integer within ARENA_MIN_BYTES..ARENA_MAX_BYTES and the golden
frames within 1..MAX_FRAMES. A manifest that fails is a verification failure (one problem line each)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from sepipe.bundle.layout import ARENA_MAX_BYTES, ARENA_MIN_BYTES, MANIFEST, MAX_FRAMES
from sepipe.config import FeatureConfig
from sepipe.errors import PipelineError

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")


def shown(value: Any, limit: int = 60) -> str:
    """repr(value), cut to `limit` characters: a hostile manifest must not make a megabyte line."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class ManifestProblem(Exception):
    """One field of the manifest is missing or not valid (a problem line, not an error of the command)."""


@dataclass(frozen=True)
class VerifySpec:
    """The manifest's fields verification uses, validated."""

    model: str                  # the quantised model (reference kernels), relative to the bundle root
    c_source: str
    c_holds: str
    c_symbol: str
    golden: str                 # the golden folder
    arena: int
    contract: dict[str, Any] | None
    fft_size: int
    hop: int
    log_floor: float
    files: dict[str, str]       # the manifest's own list of hashes

    @property
    def bins(self) -> int:
        return self.fft_size // 2 + 1

    def to_json(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "files"}


def lookup(section: Any, path: str, missing: str) -> Any:
    """The value at dotted `path` in a manifest section; ManifestProblem(`missing`) where a key is absent."""
    value = section
    for key in path.split("."):
        if not isinstance(value, dict) or key not in value:
            raise ManifestProblem(missing)
        value = value[key]
    return value


def _get(manifest: Any, path: str) -> Any:
    return lookup(manifest, path, f"{MANIFEST}: lacks '{path}'")


def _integer(manifest: Any, path: str, low: int, high: int, what: str) -> int:
    value = _get(manifest, path)
    if type(value) is not int or not low <= value <= high:
        raise ManifestProblem(f"{MANIFEST}: '{path}' = {shown(value)} is not valid; expected {what} from "
                              f"{low} to {high}")
    return value


def _file(manifest: Any, path: str, present: set[str], folder: bool = False) -> str:
    """A path of the manifest: relative, inside the bundle, and a file (or folder) the bundle has."""
    value = _get(manifest, path)
    parts = PurePosixPath(value).parts if isinstance(value, str) else ()
    inside = bool(parts) and not value.startswith("/") and ".." not in parts and "\\" not in value
    if inside:
        rel = "/".join(parts)
        if (rel in present) if not folder else any(p.startswith(rel + "/") for p in present):
            return rel
    kind = "folder" if folder else "file"
    raise ManifestProblem(f"{MANIFEST}: '{path}' = {shown(value)} is not valid; expected the relative path of "
                          f"a {kind} in the bundle")


def _model_path(manifest: Any, present: set[str]) -> str:
    """The quantised model's path (`int8_tflite` in bundles of format 1)."""
    model = _get(manifest, "model")
    key = "model.tflite" if isinstance(model, dict) and "tflite" in model else "model.int8_tflite"
    return _file(manifest, key, present)


def _features(manifest: Any) -> tuple[int, int, float]:
    fft_size, hop = _get(manifest, "features.fft_size"), _get(manifest, "features.hop")
    log_floor = _get(manifest, "features.log_floor")
    try:
        if type(fft_size) is not int or type(hop) is not int or type(log_floor) not in (int, float):
            raise TypeError
        FeatureConfig(fft_size=fft_size, hop=hop, log_floor=float(log_floor)).validate(f"{MANIFEST}: features")
    except TypeError:
        raise ManifestProblem(f"{MANIFEST}: 'features' has fft_size {shown(fft_size)}, hop {shown(hop)}, "
                              f"log_floor {shown(log_floor)}; expected numbers") from None
    except PipelineError as exc:
        raise ManifestProblem(str(exc)) from None
    return fft_size, hop, float(log_floor)


def read_spec(manifest: Any, present: set[str]) -> VerifySpec:
    """The VerifySpec of `manifest` (any JSON value), or ManifestProblem naming the first field that is not
    valid. `present`: the bundle's files (relative paths)."""
    if not isinstance(manifest, dict):
        raise ManifestProblem(f"{MANIFEST}: is a JSON {type(manifest).__name__}, not an object")
    files = _get(manifest, "files")
    if not isinstance(files, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in files.items()):
        raise ManifestProblem(f"{MANIFEST}: 'files' = {shown(files)} is not valid; expected an object of "
                              "file: sha256")
    symbol = _get(manifest, "model.c_array.symbol")
    if not isinstance(symbol, str) or not _IDENTIFIER.fullmatch(symbol):
        raise ManifestProblem(f"{MANIFEST}: 'model.c_array.symbol' = {shown(symbol)} is not valid; expected a C "
                              "identifier")
    contract = manifest.get("contract")
    if contract is not None and not isinstance(contract, dict):
        raise ManifestProblem(f"{MANIFEST}: 'contract' = {shown(contract)} is not valid; expected an object")
    fft_size, hop, log_floor = _features(manifest)
    arena = _integer(manifest, "tflm_arena.reference_kernels.recommended_bytes", ARENA_MIN_BYTES, ARENA_MAX_BYTES,
                     "a whole number of bytes")
    return VerifySpec(model=_model_path(manifest, present), c_source=_file(manifest, "model.c_array.source", present),
                      c_holds=_file(manifest, "model.c_array.holds", present), c_symbol=symbol,
                      golden=_file(manifest, "golden.folder", present, folder=True), arena=arena,
                      contract=contract or None, fft_size=fft_size, hop=hop, log_floor=log_floor, files=files)


def golden_frames(size: int, spec: VerifySpec) -> int:
    """Frames in a features.f32 of `size` bytes, checked against MAX_FRAMES before it is read."""
    frame_bytes = 4 * spec.bins
    if size == 0 or size % frame_bytes:
        raise ManifestProblem(f"{spec.golden}/features.f32: {size} bytes is not a whole number of "
                              f"{spec.bins}-bin float32 frames")
    frames = size // frame_bytes
    if frames > MAX_FRAMES:
        raise ManifestProblem(f"{spec.golden}/features.f32: {frames} frames; a bundle has at most {MAX_FRAMES}")
    return frames
