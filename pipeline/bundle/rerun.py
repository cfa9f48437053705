"""The golden vectors re-run through TFLite Micro, in a child process.

The TFLite Micro Python interpreter segfaults (instead of failing cleanly) for an arena a few bytes too
small, and parses the model's flatbuffer in C++: an untrusted model or arena must not take the verifying
process down with it. So `rerun_golden` runs `python -m sepipe.bundle.rerun` on the validated VerifySpec,
with a time limit, and reads back its problems; a child that dies (a signal, an exit code) or runs out
of time is one problem line naming the model, the arena and how it ended. The child's own stderr
(TFLite's log lines) is not passed through.
"""

from __future__ import annotations

import json
import re
import resource
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from sepipe.bundle.spec import VerifySpec
from sepipe.errors import describe_exit, last_line

RERUN_TIMEOUT_S = 600       # MAX_FRAMES frames of a small model take seconds
# The child's address space: Python, numpy and TFLite Micro take under 200 MB, the arena at most
# ARENA_MAX_BYTES; an untrusted model that asks for more fails in the child, which reports it.
CHILD_MEMORY_BYTES = 2 << 30
_RECORDED_BYTES = 512 << 20    # every input and output of every frame, as the re-run records them
# float32 DSP may differ in the last bits between FFT builds; far beyond these means different data
_FEATURE_TOLERANCE = 1e-3      # ln power units
_AUDIO_TOLERANCE = 1e-4        # full scale 1.0
_SAFE_NAME = re.compile(r"[A-Za-z0-9_.:-]{1,128}")
_LINE = 500                    # a problem line is cut there: its text may quote the untrusted model


def rerun_golden(root: Path, spec: VerifySpec, timeout: float = RERUN_TIMEOUT_S) -> tuple[list[str], int]:
    """(problems, frames re-run) of the golden vectors of the bundle at `root`, re-run in a child process."""
    with tempfile.TemporaryDirectory(prefix="sepipe-rerun-") as tmp:
        result = Path(tmp) / "result.json"
        what = (f"{spec.model}: the TFLite Micro re-run of bundle '{root.name}' with the manifest's arena of "
                f"{spec.arena} bytes")
        try:
            proc = subprocess.run([sys.executable, "-m", "sepipe.bundle.rerun", str(root),
                                   json.dumps(spec.to_json()), str(result)],
                                  capture_output=True, text=True, errors="replace", timeout=timeout,
                                  preexec_fn=_bound_memory)
        except subprocess.TimeoutExpired:
            return [f"{what} did not finish in {timeout:g} s"], 0
        if proc.returncode != 0 or not result.is_file():
            return [f"{what} failed ({describe_exit(proc.returncode)}): {last_line(proc.stderr)[:300]}"], 0
        outcome = json.loads(result.read_text())
    return [str(p)[:_LINE] for p in outcome["problems"]], int(outcome["frames"])


def _bound_memory() -> None:
    """In the child, before it runs: at most CHILD_MEMORY_BYTES of address space (or less, if the
    verifying process was given less)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = CHILD_MEMORY_BYTES if hard == resource.RLIM_INFINITY else min(hard, CHILD_MEMORY_BYTES)
    if soft == resource.RLIM_INFINITY or soft > limit:
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


# --------------------------------------------------------------------------- in the child

def _child(root: Path, spec: dict[str, Any]) -> tuple[list[str], int]:
    from sepipe.contract import ModelContract
    from sepipe.runtime.quantized import TFLMStreamingRunner

    problems: list[str] = []
    golden = root / spec["golden"]
    try:
        contract = ModelContract.from_dict(spec["contract"]) if spec["contract"] else None
    except Exception as exc:   # noqa: BLE001  an untrusted dict: any shape it has is a problem, not a bug
        return [f"model_manifest.json: 'contract' is not a model contract ({_why(exc)})"], 0
    try:
        runner = TFLMStreamingRunner((root / spec["model"]).read_bytes(), arena_size=spec["arena"], contract=contract)
    except Exception as exc:   # noqa: BLE001  an untrusted flatbuffer fails in many ways, each a problem
        return [f"{spec['model']}: TFLite Micro cannot run it with the manifest's arena of {spec['arena']} bytes "
                f"({_why(exc)})"], 0
    raw = np.fromfile(golden / "features.f32", dtype="<f4")
    if raw.size % runner.bins or runner.bins != spec["fft_size"] // 2 + 1:
        return [f"{spec['golden']}/features.f32: {raw.size} values is not a whole number of the model's "
                f"{runner.bins}-bin frames, or the manifest's fft_size {spec['fft_size']} does not give "
                f"{runner.bins} bins"], 0
    features = raw.reshape(-1, runner.bins)
    recorded = len(features) * sum(int(np.prod(t.shape)) * np.dtype(t.dtype).itemsize
                                   for t in (*runner.io.inputs, *runner.io.outputs))
    if recorded > _RECORDED_BYTES:   # the model's tensor sizes are untrusted too
        return [f"{spec['model']}: its inputs and outputs over {len(features)} golden frames take {recorded} "
                f"bytes; at most {_RECORDED_BYTES} are re-run"], 0
    inputs, outputs = runner.run_recorded(features)
    for prefix, produced, tensors in (("in", inputs, runner.io.inputs), ("out", outputs, runner.io.outputs)):
        for tensor in tensors:
            _compare_tensor_file(root, f"{spec['golden']}/{prefix}_{tensor.name}.bin", produced, tensor,
                                 len(features), problems)
    _check_float_files(golden, spec, features, outputs, runner, problems)
    return problems, len(features)


def _why(exc: Exception) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {(lines[-1] if lines else '')[:200]}"


def _compare_tensor_file(root: Path, rel: str, produced: dict[str, np.ndarray], tensor, frames: int,
                         problems: list[str]) -> None:
    """A golden in_/out_ file must equal, bit for bit, what the TFLite Micro re-run fed or returned."""
    if not _SAFE_NAME.fullmatch(tensor.name):   # the name comes from the untrusted model: no path tricks
        problems.append(f"{rel[:200]}: the model's tensor name is not usable as a file name")
        return
    file = root / rel
    if not file.is_file():
        problems.append(f"{rel}: missing")
        return
    want = np.ascontiguousarray(produced[tensor.name]).astype(np.dtype(tensor.dtype).newbyteorder("<"))
    if file.stat().st_size != want.nbytes:
        problems.append(f"{rel}: {file.stat().st_size} bytes, TFLite Micro gives {want.size} values "
                        f"({frames} frames of {tensor.shape})")
        return
    got = np.fromfile(file, dtype=np.dtype(tensor.dtype).newbyteorder("<"))
    got, want = got.reshape(frames, -1), want.reshape(frames, -1)
    differ = got != want
    if differ.any():
        differing = np.flatnonzero(differ.any(axis=1))
        lsb = int(np.abs(got.astype(np.int32) - want.astype(np.int32)).max())
        problems.append(f"{rel}: differs from the TFLite Micro re-run in {int(differ.sum())} values "
                        f"of {len(differing)} frames (first frame {int(differing[0])}, up to {lsb} LSB)")


def _check_float_files(golden: Path, spec: dict[str, Any], features: np.ndarray, outputs: dict[str, np.ndarray],
                       runner, problems: list[str]) -> None:
    """features.f32 and audio_out.f32 must follow from audio_in.f32 and the mask (pipeline/features.py)."""
    from sepipe import features as feat
    from sepipe.config import FeatureConfig
    from sepipe.golden import enhanced_audio

    audio_path, out_path = golden / "audio_in.f32", golden / "audio_out.f32"
    if not audio_path.is_file() or not out_path.is_file():
        problems.append(f"{golden.name}/audio_in.f32 or audio_out.f32: missing")
        return
    cfg = FeatureConfig(fft_size=spec["fft_size"], hop=spec["hop"], log_floor=spec["log_floor"])
    frames = len(features)
    if audio_path.stat().st_size != 4 * frames * cfg.hop:
        problems.append(f"{golden.name}/audio_in.f32: {audio_path.stat().st_size // 4} samples, {frames} frames "
                        f"need {frames * cfg.hop}")
        return
    audio = np.fromfile(audio_path, dtype="<f4")
    computed, spectrum = feat.features(audio, cfg)
    diff = float(np.abs(computed[:frames] - features).max())
    if not diff <= _FEATURE_TOLERANCE:
        problems.append(f"{golden.name}/features.f32: differs from the features of audio_in.f32 by up to "
                        f"{diff:.3g} (tolerance {_FEATURE_TOLERANCE:g})")
    enhanced = enhanced_audio(spectrum, outputs[runner.contract.head.name], runner.io.head, cfg, frames)
    if out_path.stat().st_size != enhanced.nbytes:
        problems.append(f"{golden.name}/audio_out.f32: {out_path.stat().st_size // 4} samples, "
                        f"expected {enhanced.size}")
        return
    diff = float(np.abs(np.fromfile(out_path, dtype="<f4") - enhanced).max())
    if not diff <= _AUDIO_TOLERANCE:
        problems.append(f"{golden.name}/audio_out.f32: differs from the resynthesis with the TFLite Micro "
                        f"mask by up to {diff:.3g} (tolerance {_AUDIO_TOLERANCE:g})")


def main(argv: list[str]) -> int:
    root, spec, result = Path(argv[0]), json.loads(argv[1]), Path(argv[2])
    problems, frames = _child(root, spec)
    result.write_text(json.dumps({"problems": problems, "frames": frames}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
