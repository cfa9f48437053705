"""Reading and writing mono audio, with the checks every stage relies on.

The sample checks (`sample_problem`) are shared by every place audio enters the pipeline: a dataset
build decodes each file of a user corpus and of a measured-RIR folder (`sepipe.data.corpus`), every
fixed pair and the bundle's test audio come through `read_wav`, and evaluation checks each output
before it is scored (`sepipe.metrics.score_file`). What is refused, naming the file and the first bad
sample (index and time):

- a sample that is not finite (NaN, +-inf: only float and double files can hold one);
- a sample beyond +-MAX_PEAK. Full scale is +-1.0; a float file may go over it (a mix summed without
  limiting, a resampler's overshoot), so up to MAX_PEAK (8.0, 18 dB over) is accepted: `read_wav`
  passes such samples on, and the dataset's mixing pools, which keep 16-bit samples, clip them at
  full scale. Beyond 8.0 the file is almost surely on another scale (integer values stored as
  float), and scaling or clipping it would hide that.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sepipe.artifacts import atomic_path
from sepipe.errors import InputFileError

MAX_PEAK = 8.0                 # |sample| above this is refused (see the module docstring)
SILENT_PEAK = 2.0 ** -15       # a file whose peak is at most one 16-bit step holds no sound


def sample_problem(audio: np.ndarray, sample_rate: int, offset: int = 0,
                   max_peak: float | None = MAX_PEAK) -> str | None:
    """What is wrong with these samples, naming the first bad one; None when all are usable.

    `offset`: the index of audio[0] in its file (a file checked block by block); `max_peak`: None
    checks finiteness only (an impulse response is normalised to its direct path whatever its scale).
    """
    x = np.asarray(audio)
    # NaN fails every comparison, so one pass finds the first sample that is not finite or out of range
    bad = ~np.isfinite(x) if max_peak is None else ~(np.abs(x) <= max_peak)
    if not bad.any():
        return None
    first = int(np.argmax(bad))
    index = offset + first
    what = ("audio samples must be finite numbers" if not np.isfinite(x[first])
            else f"expected samples within +-{max_peak} (full scale is +-1.0)")
    return f"sample {index} ({index / sample_rate:.3f} s) is {str(x[first])}; {what}"


def check_samples(path: str | Path, audio: np.ndarray, sample_rate: int, offset: int = 0) -> None:
    """InputFileError naming `path` and the first bad sample unless every sample is finite and in range."""
    problem = sample_problem(audio, sample_rate, offset)
    if problem:
        raise InputFileError(path, problem)


def read_wav(path: str | Path, sample_rate: int) -> np.ndarray:
    """Read a mono (or first-channel) audio file as float32, checked (`sample_problem`).

    Raises InputFileError naming the file when it cannot be read, is empty, its sample rate is not
    `sample_rate` (Hz): the models are trained for one rate, and resampling silently would hide a
    mismatched corpus; or a sample is not finite or beyond +-MAX_PEAK.
    """
    import soundfile as sf

    path = Path(path)
    if not path.exists():
        raise InputFileError(path, "file not found")
    if path.is_file() and path.stat().st_size == 0:
        raise InputFileError(path, f"empty file (0 bytes); expected {sample_rate} Hz audio")
    try:
        audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:  # soundfile raises several types for corrupt input
        raise InputFileError(path, f"unreadable audio ({exc.__class__.__name__}: {exc})") from None
    if rate != sample_rate:
        raise InputFileError(path, f"sample rate is {rate} Hz; expected {sample_rate} Hz")
    if audio.shape[0] == 0:
        raise InputFileError(path, "audio file is empty (0 samples)")
    mono = np.ascontiguousarray(audio[:, 0])
    check_samples(path, mono, sample_rate)
    return mono


def write_wav(path: str | Path, audio: np.ndarray, sample_rate: int) -> Path:
    """Write float audio as 16-bit PCM, atomically (clipped to [-1, 1))."""
    import soundfile as sf

    path = Path(path)
    clipped = np.clip(np.asarray(audio, dtype=np.float32), -1.0, 1.0 - 2.0**-15)
    with atomic_path(path) as tmp:
        sf.write(str(tmp), clipped, sample_rate, subtype="PCM_16", format="WAV")
    return path


def to_int16(audio: np.ndarray) -> np.ndarray:
    """Float samples as 16-bit integers, clipped at full scale (what a 16-bit pool keeps)."""
    return np.clip(np.round(np.asarray(audio, np.float64) * 32768.0), -32768, 32767).astype(np.int16)


def rms_dbfs(audio: np.ndarray) -> float:
    """Root-mean-square level in dB relative to full scale."""
    return float(10.0 * np.log10(np.mean(np.square(audio, dtype=np.float64)) + 1e-12))
