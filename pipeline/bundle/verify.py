"""Verifying a bundle: every hash, the C array, and the golden vectors re-run through TFLite Micro.

A bundle comes from another team, so nothing in it is trusted before it is checked: the zip's directory
and the folder's files against the limits of sepipe.bundle.limits before a byte is extracted or hashed,
the manifest's fields for type and range before they are used (sepipe.bundle.spec), and the TFLite Micro
re-run happens in a child process (sepipe.bundle.rerun), so a model or arena that crashes the interpreter
is one problem line.

What `sepipe verify-bundle` answers:
    exit 0   every hash matches and the golden vectors re-run equal bit for bit
    exit 1   a verification failure: the bundle was read and a check failed (a hash, a manifest field
             missing or out of range, the C array, a model TFLite Micro cannot run or that crashes it,
             a golden file that differs); one line per problem, then a summary line
    exit 2   the input cannot be read as a bundle (InputFileError, one line): not found, neither a folder
             nor a zip, an unreadable zip, a zip or folder beyond the limits, a link or special file in
             it, no SHA256SUMS or manifest, or a SHA256SUMS that is not UTF-8 `<sha256>  <file>` lines
             (it is the root of every other check)
"""

from __future__ import annotations

import json
import re
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sepipe import artifacts
from sepipe.bundle.build import _files
from sepipe.bundle.layout import MANIFEST, SUMS
from sepipe.bundle.limits import LIMITS, Limits, check_folder, extract
from sepipe.bundle.spec import ManifestProblem, VerifySpec, golden_frames, read_spec
from sepipe.errors import InputFileError

_C_SLACK = 64 * 1024    # a C array's source beyond 8 characters a byte: its header, comments, line ends


@dataclass
class BundleReport:
    path: Path
    problems: list[str] = field(default_factory=list)
    files_checked: int = 0
    frames: int = 0
    arena_bytes: int | None = None
    name: str = ""
    predictor_windows: int | None = None    # re-run when the bundle holds a quality predictor (bundle.predictor)

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        if not self.ok:
            return f"{self.path}: {len(self.problems)} problem(s)"
        predictor = ("" if self.predictor_windows is None else
                     f"; {self.predictor_windows} quality-predictor windows re-run through TFLite Micro equal bit "
                     "for bit")
        return (f"{self.path}: OK: {self.files_checked} file hashes match; {self.frames} golden frames re-run "
                f"through TFLite Micro (arena {self.arena_bytes} bytes) equal bit for bit{predictor}")


def verify_bundle(path: str | Path, limits: Limits = LIMITS) -> BundleReport:
    """Check every hash (SHA256SUMS and the manifest's list), the C array against the Vela model, and re-run
    the golden vectors through the TFLite Micro interpreter (in a child process) with the manifest's arena:
    outputs and fed-back states must equal the golden files bit for bit. Problems are collected, one line
    each; input that cannot be read as a bundle raises InputFileError (see the module's exit codes). A zip is
    extracted, within `limits`, into a temporary folder that is removed whatever happens."""
    path = Path(path)
    if not path.exists():
        raise InputFileError(path, "not found; pass a bundle folder or its .zip")
    if path.is_file():
        if not zipfile.is_zipfile(path):
            raise InputFileError(path, "not a bundle: neither a folder nor a zip")
        with tempfile.TemporaryDirectory(prefix="sepipe-verify-") as tmp:
            return _verify_folder(extract(path, Path(tmp), limits), label=path, limits=limits)
    if not path.is_dir():
        raise InputFileError(path, "not a bundle: neither a folder nor a zip")
    return _verify_folder(path, label=path, limits=limits)


def _verify_folder(root: Path, label: Path, limits: Limits) -> BundleReport:
    from sepipe.bundle.rerun import rerun_golden

    report = BundleReport(path=label, name=root.name)
    check_folder(root, limits)
    for needed in (SUMS, MANIFEST):
        if not (root / needed).is_file():
            raise InputFileError(root, f"not a bundle: no {needed}")
    sums = _read_sums(root / SUMS)
    bad = _check_sums(root, sums, report)
    manifest = _read_manifest(root / MANIFEST, report)
    if manifest is None:
        return report
    try:
        spec = read_spec(manifest, set(_files(root)))
        _check_manifest_files(spec.files, sums, bad, report)
        _check_c_array(root, spec, report)
        features = root / spec.golden / "features.f32"
        if not features.is_file():
            raise ManifestProblem(f"{spec.golden}/features.f32: missing, golden vectors not re-run")
        golden_frames(features.stat().st_size, spec)
    except ManifestProblem as exc:
        report.problems.append(str(exc))
        return report
    problems, report.frames = rerun_golden(root, spec)
    report.problems.extend(problems)
    report.arena_bytes = spec.arena
    if "predictor" in manifest:     # the image's second model (sepipe.bundle.predictor); absent: as before
        from sepipe.bundle.predictor_verify import verify_predictor

        report.predictor_windows = verify_predictor(root, manifest["predictor"], set(_files(root)), report.problems)
    return report


def _read_manifest(path: Path, report: BundleReport) -> Any:
    """The manifest as JSON (any value: read_spec checks its shape), or None with the problem reported."""
    try:
        return json.loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        report.problems.append(f"{MANIFEST}: not valid JSON ({type(exc).__name__}: {str(exc)[:200]})")
        return None


# --------------------------------------------------------------------------- hashes

def _read_sums(path: Path) -> dict[str, str]:
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputFileError(path, f"not UTF-8 text (byte {exc.start}); expected '<sha256>  <file>' lines") from None
    sums = {}
    for number, line in enumerate(text.splitlines(), 1):
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


def _check_manifest_files(listed: dict[str, str], sums: dict[str, str], bad: set[str], report: BundleReport) -> None:
    """The manifest's `files` must agree with SHA256SUMS (a file already found altered is not reported twice)."""
    for rel, digest in sorted(listed.items()):
        if rel in sums and sums[rel] != digest and rel not in bad:
            report.problems.append(f"{rel}: {MANIFEST} and {SUMS} disagree on its sha256")
    for rel in sorted(set(sums) - set(listed) - {MANIFEST}):
        report.problems.append(f"{rel}: not listed in {MANIFEST}")


# --------------------------------------------------------------------------- the C array

_C_COMMENT = re.compile(r"/\*.*?(?:\*/|\Z)|//[^\n]*", re.S)   # an unclosed comment runs to the end: linear
_C_VALUE = re.compile(r"0[xX][0-9a-fA-F]+|\d+")
_C_END = re.compile(r"\s*;")


def c_array_bytes(c_text: str, symbol: str) -> bytes | None:
    """The bytes of the initialiser of array `symbol` in C source (hex or decimal elements). The source may
    be hostile: every pattern is bounded or always matches, so the time is linear in its length."""
    declaration = re.search(rf"\b{re.escape(symbol)}\s{{0,64}}\[[^\]]{{0,64}}\][^=;{{]{{0,512}}=\s{{0,64}}{{",
                            c_text)
    if not declaration:
        return None
    close = c_text.find("}", declaration.end())
    while close >= 0 and not _C_END.match(c_text, close + 1):
        close = c_text.find("}", close + 1)
    if close < 0:
        return None
    values = bytearray()
    for token in _C_VALUE.finditer(_C_COMMENT.sub("", c_text[declaration.end():close])):
        text = token.group()
        if len(text) > 6:           # 0x00ff at most; a long digit string is no byte (and int() refuses huge ones)
            return None
        value = int(text, 16) if text[:2] in ("0x", "0X") else int(text)
        if value > 255:
            return None
        values.append(value)
    return bytes(values)


def _check_c_array(root: Path, spec: VerifySpec, report: BundleReport) -> None:
    c_path, model_path = root / spec.c_source, root / spec.c_holds
    if c_path.stat().st_size > 8 * model_path.stat().st_size + _C_SLACK:
        report.problems.append(f"{spec.c_source}: {c_path.stat().st_size} bytes, too large to hold the "
                               f"{model_path.stat().st_size} bytes of {spec.c_holds}")
        return
    data = c_array_bytes(c_path.read_text(errors="replace"), spec.c_symbol)
    if data is None:
        report.problems.append(f"{spec.c_source}: no array '{spec.c_symbol}' found")
    elif data != model_path.read_bytes():
        report.problems.append(f"{spec.c_source}: the array '{spec.c_symbol}' differs from {spec.c_holds}")
