"""Verifying a bundle: every hash, the C array, and the golden vectors re-run through TFLite Micro."""

from __future__ import annotations

import json
import re
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sepipe import artifacts
from sepipe.bundle.build import _files
from sepipe.bundle.layout import BUNDLE_FORMAT, MANIFEST, SUMS
from sepipe.config import FeatureConfig
from sepipe.errors import InputFileError

# float32 DSP may differ in the last bits between FFT builds; far beyond these means different data
_FEATURE_TOLERANCE = 1e-3      # ln power units
_AUDIO_TOLERANCE = 1e-4        # full scale 1.0


@dataclass
class BundleReport:
    path: Path
    problems: list[str] = field(default_factory=list)
    files_checked: int = 0
    frames: int = 0
    arena_bytes: int | None = None
    name: str = ""

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        if not self.ok:
            return f"{self.path}: {len(self.problems)} problem(s)"
        return (f"{self.path}: OK: {self.files_checked} file hashes match; {self.frames} golden frames re-run "
                f"through TFLite Micro (arena {self.arena_bytes} bytes) equal bit for bit")


def verify_bundle(path: str | Path) -> BundleReport:
    """Check every hash (SHA256SUMS and the manifest's list), the C array against the Vela model, and re-run
    the golden vectors through the TFLite Micro interpreter with the manifest's arena: outputs and fed-back
    states must equal the golden files bit for bit. Problems are collected, one line each; unusable input
    (no such path, not a bundle, no SHA256SUMS or manifest) raises InputFileError."""
    path = Path(path)
    if not path.exists():
        raise InputFileError(path, "not found; pass a bundle folder or its .zip")
    if path.is_file():
        if not zipfile.is_zipfile(path):
            raise InputFileError(path, "not a bundle: neither a folder nor a zip")
        with tempfile.TemporaryDirectory(prefix="sepipe-verify-") as tmp:
            report = _verify_folder(_unzip(path, Path(tmp)), label=path)
        return report
    return _verify_folder(path, label=path)


def _unzip(zip_path: Path, into: Path) -> Path:
    try:
        with zipfile.ZipFile(zip_path) as archive:
            names = archive.namelist()
            tops = {n.split("/", 1)[0] for n in names}
            if len(tops) != 1 or any(n.startswith("/") or ".." in n.split("/") for n in names):
                raise InputFileError(zip_path, "not a bundle zip (expected one top folder and relative names)")
            archive.extractall(into)
    except zipfile.BadZipFile as exc:
        raise InputFileError(zip_path, f"not a readable zip ({exc})") from None
    return into / tops.pop()


def _verify_folder(root: Path, label: Path) -> BundleReport:
    report = BundleReport(path=label, name=root.name)
    for needed in (SUMS, MANIFEST):
        if not (root / needed).is_file():
            raise InputFileError(root, f"not a bundle: no {needed}")
    sums = _read_sums(root / SUMS)
    bad = _check_sums(root, sums, report)
    try:
        manifest = json.loads((root / MANIFEST).read_text())
    except ValueError as exc:
        report.problems.append(f"{MANIFEST}: not valid JSON ({exc})")
        return report
    _check_manifest_files(manifest, sums, bad, report)
    try:
        _check_c_array(root, manifest, report)
        _rerun_golden(root, manifest, report)
    except (KeyError, TypeError) as exc:
        report.problems.append(f"{MANIFEST}: lacks {exc} (not a bundle of format {BUNDLE_FORMAT}?)")
    return report


# --------------------------------------------------------------------------- hashes

def _read_sums(path: Path) -> dict[str, str]:
    sums = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        match = re.fullmatch(r"([0-9a-f]{64}) [ *](.+)", line.strip())
        if not match:
            raise InputFileError(path, f"line {number} is not '<sha256>  <file>'")
        sums[match.group(2)] = match.group(1)
    return sums


def _check_sums(root: Path, sums: dict[str, str], report: BundleReport) -> set[str]:
    """SHA256SUMS against the folder: files missing, unlisted, or differing; returns those differing."""
    present = set(_files(root)) - {SUMS}
    for rel in sorted(set(sums) - present):
        report.problems.append(f"{rel}: listed in {SUMS} but missing")
    for rel in sorted(present - set(sums)):
        report.problems.append(f"{rel}: not listed in {SUMS}")
    bad = set()
    for rel in sorted(set(sums) & present):
        if artifacts.sha256_file(root / rel) != sums[rel]:
            report.problems.append(f"{rel}: sha256 differs from {SUMS}")
            bad.add(rel)
        report.files_checked += 1
    return bad


def _check_manifest_files(manifest: dict[str, Any], sums: dict[str, str], bad: set[str],
                          report: BundleReport) -> None:
    """The manifest's `files` must agree with SHA256SUMS (a file already found altered is not reported twice)."""
    listed = manifest.get("files", {})
    for rel, digest in sorted(listed.items()):
        if rel in sums and sums[rel] != digest and rel not in bad:
            report.problems.append(f"{rel}: {MANIFEST} and {SUMS} disagree on its sha256")
    for rel in sorted(set(sums) - set(listed) - {MANIFEST}):
        report.problems.append(f"{rel}: not listed in {MANIFEST}")


# --------------------------------------------------------------------------- the C array

def c_array_bytes(c_text: str, symbol: str) -> bytes | None:
    """The bytes of the initialiser of array `symbol` in C source (hex or decimal elements)."""
    match = re.search(rf"\b{re.escape(symbol)}\s*\[[^\]]*\][^=;{{]*=\s*{{(.*?)}}\s*;", c_text, re.S)
    if not match:
        return None
    body = re.sub(r"/\*.*?\*/|//[^\n]*", "", match.group(1), flags=re.S)
    values = [int(v, 0) for v in re.findall(r"0[xX][0-9a-fA-F]+|\d+", body)]
    return bytes(values) if all(0 <= v < 256 for v in values) else None


def _check_c_array(root: Path, manifest: dict[str, Any], report: BundleReport) -> None:
    array = manifest["model"]["c_array"]
    c_path, model_path = root / array["source"], root / array["holds"]
    if not c_path.is_file() or not model_path.is_file():
        return   # already reported as missing
    data = c_array_bytes(c_path.read_text(errors="replace"), array["symbol"])
    if data is None:
        report.problems.append(f"{array['source']}: no array '{array['symbol']}' found")
    elif data != model_path.read_bytes():
        report.problems.append(f"{array['source']}: the array '{array['symbol']}' differs from {array['holds']}")


# --------------------------------------------------------------------------- golden vectors

def _model_rel(manifest: dict[str, Any]) -> str:
    """The quantised model's path in the bundle (`int8_tflite` in bundles of format 1)."""
    return manifest["model"].get("tflite") or manifest["model"]["int8_tflite"]


def _rerun_golden(root: Path, manifest: dict[str, Any], report: BundleReport) -> None:
    from sepipe.contract import ModelContract
    from sepipe.runtime.quantized import TFLMStreamingRunner

    model_rel = _model_rel(manifest)
    model_path = root / model_rel
    golden = root / manifest["golden"]["folder"]
    features_path = golden / "features.f32"
    if not model_path.is_file() or not features_path.is_file():
        report.problems.append(f"{golden.name}/features.f32 or {model_path.name}: missing, golden vectors not re-run")
        return
    arena = int(manifest["tflm_arena"]["reference_kernels"]["recommended_bytes"])
    try:
        contract = ModelContract.from_dict(manifest["contract"]) if manifest.get("contract") else None
        runner = TFLMStreamingRunner(model_path.read_bytes(), arena_size=arena, contract=contract)
    except (RuntimeError, ValueError) as exc:
        why = (str(exc).strip().splitlines() or [exc.__class__.__name__])[-1]
        report.problems.append(f"{model_rel}: TFLite Micro cannot run it with the manifest's "
                               f"arena of {arena} bytes ({why})")
        return
    bins = runner.bins
    raw = np.fromfile(features_path, dtype="<f4")
    if raw.size == 0 or raw.size % bins:
        report.problems.append(f"golden/features.f32: {raw.size} values is not a whole number of {bins}-bin frames")
        return
    features = raw.reshape(-1, bins)
    inputs, outputs = runner.run_recorded(features)
    report.frames = len(features)
    report.arena_bytes = arena
    for side, prefix, tensors in (("input", "in", runner.io.inputs), ("output", "out", runner.io.outputs)):
        produced = inputs if side == "input" else outputs
        for tensor in tensors:
            _compare_tensor_file(root, f"{golden.name}/{prefix}_{tensor.name}.bin", produced, tensor,
                                 len(features), report)
    _check_float_files(golden, manifest, features, outputs, runner, report)


def _compare_tensor_file(root: Path, rel: str, produced: dict[str, np.ndarray], tensor, frames: int,
                         report: BundleReport) -> None:
    """A golden in_/out_ file must equal, bit for bit, what the TFLite Micro re-run fed or returned."""
    file = root / rel
    if not file.is_file():
        report.problems.append(f"{rel}: missing")
        return
    want = np.ascontiguousarray(produced[tensor.name]).astype(np.dtype(tensor.dtype).newbyteorder("<"))
    got = np.fromfile(file, dtype=np.dtype(tensor.dtype).newbyteorder("<"))
    if got.size != want.size:
        report.problems.append(f"{rel}: {got.size} values, TFLite Micro gives {want.size} "
                               f"({frames} frames of {tensor.shape})")
        return
    got, want = got.reshape(frames, -1), want.reshape(frames, -1)
    differ = got != want
    if differ.any():
        differing = np.flatnonzero(differ.any(axis=1))
        lsb = int(np.abs(got.astype(np.int32) - want.astype(np.int32)).max())
        report.problems.append(f"{rel}: differs from the TFLite Micro re-run in {int(differ.sum())} values "
                               f"of {len(differing)} frames (first frame {int(differing[0])}, up to {lsb} LSB)")


def _check_float_files(golden: Path, manifest: dict[str, Any], features: np.ndarray, outputs: dict[str, np.ndarray],
                       runner, report: BundleReport) -> None:
    """features.f32 and audio_out.f32 must follow from audio_in.f32 and the mask (pipeline/features.py)."""
    from sepipe import features as feat
    from sepipe.golden import enhanced_audio

    audio_path, out_path = golden / "audio_in.f32", golden / "audio_out.f32"
    if not audio_path.is_file() or not out_path.is_file():
        report.problems.append(f"{golden.name}/audio_in.f32 or audio_out.f32: missing")
        return
    f = manifest["features"]
    cfg = FeatureConfig(fft_size=int(f["fft_size"]), hop=int(f["hop"]), log_floor=float(f["log_floor"]))
    audio = np.fromfile(audio_path, dtype="<f4")
    frames = len(features)
    if len(audio) != frames * cfg.hop:
        report.problems.append(f"{golden.name}/audio_in.f32: {len(audio)} samples, {frames} frames need "
                               f"{frames * cfg.hop}")
        return
    computed, spectrum = feat.features(audio, cfg)
    diff = float(np.abs(computed[:frames] - features).max())
    if not diff <= _FEATURE_TOLERANCE:
        report.problems.append(f"{golden.name}/features.f32: differs from the features of audio_in.f32 by up to "
                               f"{diff:.3g} (tolerance {_FEATURE_TOLERANCE:g})")
    enhanced = enhanced_audio(spectrum, outputs[runner.contract.head.name], runner.io.head, cfg, frames)
    got = np.fromfile(out_path, dtype="<f4")
    if got.shape != enhanced.shape:
        report.problems.append(f"{golden.name}/audio_out.f32: {got.size} samples, expected {enhanced.size}")
        return
    diff = float(np.abs(got - enhanced).max())
    if not diff <= _AUDIO_TOLERANCE:
        report.problems.append(f"{golden.name}/audio_out.f32: differs from the resynthesis with the TFLite Micro "
                               f"mask by up to {diff:.3g} (tolerance {_AUDIO_TOLERANCE:g})")
