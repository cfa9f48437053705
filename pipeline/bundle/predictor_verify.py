"""Verifying the quality predictor of a bundle (its manifest's `predictor` section, sepipe.bundle.predictor).
A bundle without that section is verified exactly as before: nothing here runs.

Untrusted like the rest of the bundle: the section's fields are checked for type and range before use (one
ManifestProblem line each), the C array must hold the predictor's Vela model, and the golden folder is re-run in
a child process (TFLite Micro parses the model in C++ and may crash on a hostile one):
- in_windows.bin must follow from the bundle's golden/audio_out.f32 (clips.log_mel, normalised, quantised with
  the model's input scale and zero point) within WINDOW_LSB steps per value, and logmel.f32 within
  LOGMEL_TOLERANCE (the float32 FFT may differ in its last bits between numpy builds);
- each window re-run through TFLite Micro with the manifest's arena must give out_scores.bin bit for bit
  (predictor.OUTPUT_LSB = 0);
- scores.f32 must equal, bit for bit, those outputs dequantised with the model's own output quantisation, then
  * target_std + target_mean (float32, the manifest's normalisation).
The tolerances are this module's, not the bundle's (a bundle cannot loosen its own check).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sepipe.bundle.layout import ARENA_MAX_BYTES, ARENA_MIN_BYTES
from sepipe.bundle.spec import ManifestProblem, lookup, shown
from sepipe.errors import describe_exit, last_line

WINDOW_LSB = 1              # sepipe.quality_predictor.firmware_golden.WINDOW_LSB
LOGMEL_TOLERANCE = 1e-3     # ln units
MAX_WINDOWS = 4096
_SECTION = "model_manifest.json: 'predictor"


@dataclass(frozen=True)
class PredictorSpec:
    model: str
    c_source: str
    c_holds: str
    c_symbol: str
    golden: str
    audio: str
    arena: int
    mels: int
    frames: int
    stride: int
    feature_mean: float
    feature_std: float
    target_mean: list[float]
    target_std: list[float]

    def to_json(self) -> dict[str, Any]:
        return dict(vars(self))


def _get(section: Any, path: str) -> Any:
    return lookup(section, path, f"{_SECTION}.{path}' is missing")


def _number(section: Any, path: str, low: float, high: float, integer: bool = False) -> Any:
    value = _get(section, path)
    kinds = (int,) if integer else (int, float)
    if type(value) not in kinds or not low <= value <= high:
        raise ManifestProblem(f"{_SECTION}.{path}' = {shown(value)} is not valid; expected "
                              f"{'a whole number' if integer else 'a number'} from {low} to {high}")
    return value


def _floats(section: Any, path: str, count: int) -> list[float]:
    value = _get(section, path)
    if (not isinstance(value, list) or len(value) != count
            or not all(type(v) in (int, float) and abs(v) < 1e6 for v in value)):
        raise ManifestProblem(f"{_SECTION}.{path}' = {shown(value)} is not valid; expected {count} numbers")
    return [float(v) for v in value]


def _path(section: Any, path: str, present: set[str], folder: bool = False) -> str:
    from sepipe.bundle.spec import _file

    try:
        return _file({"p": _get(section, path)}, "p", present, folder)
    except ManifestProblem:
        raise ManifestProblem(f"{_SECTION}.{path}' = {shown(_get(section, path))} is not valid; expected the "
                              f"relative path of a {'folder' if folder else 'file'} in the bundle") from None


def read_predictor_spec(section: Any, present: set[str]) -> PredictorSpec:
    """The PredictorSpec of the manifest's `predictor` section, or ManifestProblem naming the first bad field."""
    from sepipe.bundle.spec import _IDENTIFIER

    symbol = _get(section, "model.c_array.symbol")
    if not isinstance(symbol, str) or not _IDENTIFIER.fullmatch(symbol):
        raise ManifestProblem(f"{_SECTION}.model.c_array.symbol' = {shown(symbol)} is not valid; expected a C "
                              "identifier")
    targets = _get(section, "scores.targets")
    if not isinstance(targets, list) or not 1 <= len(targets) <= 8:
        raise ManifestProblem(f"{_SECTION}.scores.targets' = {shown(targets)} is not valid; expected 1 to 8 names")
    return PredictorSpec(
        model=_path(section, "model.tflite", present), c_source=_path(section, "model.c_array.source", present),
        c_holds=_path(section, "model.c_array.holds", present), c_symbol=symbol,
        golden=_path(section, "golden.folder", present, folder=True), audio=_path(section, "golden.audio", present),
        arena=_number(section, "tflm_arena.reference_kernels.recommended_bytes", ARENA_MIN_BYTES, ARENA_MAX_BYTES,
                      integer=True),
        mels=_number(section, "features.mels", 1, 128, integer=True),
        frames=_number(section, "features.frames", 1, 100_000, integer=True),
        stride=_number(section, "features.stride_frames", 1, 100_000, integer=True),
        feature_mean=float(_number(section, "features.feature_mean", -1e6, 1e6)),
        feature_std=float(_number(section, "features.feature_std", 1e-9, 1e6)),
        target_mean=_floats(section, "scores.target_mean", len(targets)),
        target_std=_floats(section, "scores.target_std", len(targets)))


def verify_predictor(root: Path, section: Any, present: set[str], problems: list[str],
                     timeout: float = 600) -> int | None:
    """Check the predictor part of the bundle at `root`; appends problem lines; returns the windows re-run
    (None when the section could not be used)."""
    from sepipe.bundle.rerun import _bound_memory
    from sepipe.bundle.verify import _check_c_array

    try:
        spec = read_predictor_spec(section, present)
    except ManifestProblem as exc:
        problems.append(str(exc))
        return None
    c_problems = _CProblems()
    _check_c_array(root, spec, c_problems)
    problems.extend(c_problems.problems)
    with tempfile.TemporaryDirectory(prefix="sepipe-rerun-qp-") as tmp:
        result = Path(tmp) / "result.json"
        what = f"{spec.model}: the TFLite Micro re-run of the predictor with the manifest's arena of {spec.arena} bytes"
        try:
            proc = subprocess.run([sys.executable, "-m", "sepipe.bundle.predictor_verify", str(root),
                                   json.dumps(spec.to_json()), str(result)], capture_output=True, text=True,
                                  errors="replace", timeout=timeout, preexec_fn=_bound_memory)
        except subprocess.TimeoutExpired:
            problems.append(f"{what} did not finish in {timeout:g} s")
            return None
        if proc.returncode != 0 or not result.is_file():
            problems.append(f"{what} failed ({describe_exit(proc.returncode)}): {last_line(proc.stderr)[:300]}")
            return None
        outcome = json.loads(result.read_text())
    problems.extend(str(p)[:500] for p in outcome["problems"])
    return int(outcome["windows"])


class _CProblems:
    """What verify._check_c_array reports into (a BundleReport's `problems`)."""

    def __init__(self):
        self.problems: list[str] = []


# --------------------------------------------------------------------------- in the child

def _child(root: Path, spec: dict[str, Any]) -> tuple[list[str], int]:
    from tflite_micro.python.tflite_micro import runtime

    from sepipe.quality_predictor.firmware_golden import scores_of

    golden = f"{spec['golden']}"
    try:
        interp = runtime.Interpreter.from_bytes((root / spec["model"]).read_bytes(), arena_size=spec["arena"])
        inp, out = interp.get_input_details(0), interp.get_output_details(0)
    except Exception as exc:   # noqa: BLE001  an untrusted flatbuffer fails in many ways, each a problem
        return [f"{spec['model']}: TFLite Micro cannot run it with the manifest's arena of {spec['arena']} bytes "
                f"({type(exc).__name__}: {str(exc).strip()[-200:]})"], 0
    shape, values = [int(v) for v in inp["shape"]], int(np.prod(inp["shape"]))
    targets = int(np.prod(out["shape"]))
    if (values != spec["frames"] * spec["mels"] or targets != len(spec["target_mean"])
            or inp["dtype"] != np.int8 or out["dtype"] != np.int8):
        return [f"{spec['model']}: takes {shape} {np.dtype(inp['dtype']).name} and returns {targets} values; the "
                f"manifest says int8 {spec['frames']} x {spec['mels']} and {len(spec['target_mean'])} targets"], 0
    windows = _read(root, f"{golden}/in_windows.bin", np.int8, values)
    if isinstance(windows, str):
        return [windows], 0
    problems = _check_windows(root, spec, windows, inp)
    outputs = []
    for window in windows:
        interp.set_input(window.reshape(shape), 0)
        interp.invoke()
        outputs.append(np.asarray(interp.get_output(0), dtype=np.int8).reshape(-1).copy())
    produced = np.stack(outputs)
    want = _read(root, f"{golden}/out_scores.bin", np.int8, targets)
    if isinstance(want, str) or len(want) != len(windows):
        problems.append(want if isinstance(want, str) else
                        f"{golden}/out_scores.bin: {len(want)} windows, in_windows.bin {len(windows)}")
    elif not np.array_equal(want, produced):
        lsb = int(np.abs(want.astype(np.int32) - produced.astype(np.int32)).max())
        problems.append(f"{golden}/out_scores.bin: differs from the TFLite Micro re-run in "
                        f"{int((want != produced).sum())} values (up to {lsb} LSB; tolerance 0)")
    scale, zero = _quantization(out)
    scores = scores_of(produced, _meta(spec), {"output": {"scale": scale, "zero_point": zero}})
    got = _read(root, f"{golden}/scores.f32", np.float32, targets)
    if isinstance(got, str) or got.shape != scores.shape or not np.array_equal(got.view(np.int32),
                                                                              scores.view(np.int32)):
        problems.append(got if isinstance(got, str) else
                        f"{golden}/scores.f32: not the re-run outputs dequantised and de-normalised bit for bit")
    return problems, len(windows)


def _quantization(details: dict) -> tuple[float, int]:
    params = details.get("quantization_parameters") or {}
    return float(np.asarray(params["scales"]).reshape(-1)[0]), int(np.asarray(params["zero_points"]).reshape(-1)[0])


def _read(root: Path, rel: str, dtype, row: int) -> np.ndarray | str:
    """(rows, row) values of a golden file, or the problem line."""
    path = root / rel
    if not path.is_file():
        return f"{rel}: missing"
    size, item = path.stat().st_size, np.dtype(dtype).itemsize
    if size == 0 or size % (item * row) or size // (item * row) > MAX_WINDOWS:
        return f"{rel}: {size} bytes is not 1 to {MAX_WINDOWS} windows of {row} {np.dtype(dtype).name} values"
    return np.fromfile(path, dtype=np.dtype(dtype).newbyteorder("<")).astype(dtype).reshape(-1, row)


def _meta(spec: dict[str, Any]):
    """The manifest's feature and score settings as the PredictorMeta firmware_golden computes with."""
    from sepipe.quality_predictor.firmware import PredictorMeta

    return PredictorMeta(name="", targets=(), mels=spec["mels"], frames=spec["frames"],
                         feature_mean=spec["feature_mean"], feature_std=spec["feature_std"],
                         target_mean=tuple(spec["target_mean"]), target_std=tuple(spec["target_std"]))


def _check_windows(root: Path, spec: dict[str, Any], windows: np.ndarray, inp: dict) -> list[str]:
    """in_windows.bin and logmel.f32 against the log-mel of the bundle's enhanced audio (firmware_golden's
    windows, recomputed)."""
    from sepipe.quality_predictor.firmware_golden import quantized_windows

    audio = np.fromfile(root / spec["audio"], dtype="<f4")
    scale, zero = _quantization(inp)
    golden, problems = spec["golden"], []
    try:
        if len(audio) < 512:
            raise ValueError("shorter than one log-mel frame")
        logmel, starts, expected = quantized_windows(audio, _meta(spec), {"input": {"scale": scale, "zero_point": zero}},
                                                     spec["stride"])
    except ValueError:
        logmel, starts, expected = np.zeros((0, spec["mels"]), np.float32), [], None
    if len(starts) != len(windows):
        return [f"{golden}/in_windows.bin: {len(windows)} windows; {spec['audio']} gives {len(starts)} of "
                f"{spec['frames']} frames every {spec['stride']}"]
    stored = _read(root, f"{golden}/logmel.f32", np.float32, spec["mels"])
    if isinstance(stored, str) or stored.shape != logmel.shape:
        problems.append(stored if isinstance(stored, str) else f"{golden}/logmel.f32: {len(stored)} frames, "
                                                               f"{spec['audio']} gives {len(logmel)}")
    elif not float(np.abs(stored - logmel).max(initial=0.0)) <= LOGMEL_TOLERANCE:
        problems.append(f"{golden}/logmel.f32: differs from the log-mel of {spec['audio']} by up to "
                        f"{float(np.abs(stored - logmel).max()):.3g} (tolerance {LOGMEL_TOLERANCE:g})")
    lsb = int(np.abs(expected.reshape(len(starts), -1).astype(np.int32) - windows.astype(np.int32)).max())
    if lsb > WINDOW_LSB:
        problems.append(f"{golden}/in_windows.bin: differs from the windows of {spec['audio']} by up to {lsb} "
                        f"steps (tolerance {WINDOW_LSB})")
    return problems


def main(argv: list[str]) -> int:
    root, spec, result = Path(argv[0]), json.loads(argv[1]), Path(argv[2])
    problems, windows = _child(root, spec)
    result.write_text(json.dumps({"problems": problems, "windows": windows}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
