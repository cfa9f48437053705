"""Reading and writing mono audio, with the checks every stage relies on."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from sepipe.artifacts import atomic_path
from sepipe.errors import InputFileError


def read_wav(path: str | Path, sample_rate: int) -> np.ndarray:
    """Read a mono (or first-channel) audio file as float32 in [-1, 1].

    Raises InputFileError naming the file when it cannot be read, is empty, or
    its sample rate is not `sample_rate` (Hz): the models are trained for one
    rate, and resampling silently would hide a mismatched corpus.
    """
    path = Path(path)
    if not path.exists():
        raise InputFileError(path, "file not found")
    try:
        audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:  # soundfile raises several types for corrupt input
        raise InputFileError(path, f"unreadable audio ({exc.__class__.__name__}: {exc})") from None
    if rate != sample_rate:
        raise InputFileError(path, f"sample rate is {rate} Hz; expected {sample_rate} Hz")
    if audio.shape[0] == 0:
        raise InputFileError(path, "audio file is empty (0 samples)")
    return np.ascontiguousarray(audio[:, 0])


def write_wav(path: str | Path, audio: np.ndarray, sample_rate: int) -> Path:
    """Write float audio as 16-bit PCM, atomically (clipped to [-1, 1))."""
    path = Path(path)
    clipped = np.clip(np.asarray(audio, dtype=np.float32), -1.0, 1.0 - 2.0**-15)
    with atomic_path(path) as tmp:
        sf.write(str(tmp), clipped, sample_rate, subtype="PCM_16", format="WAV")
    return path


def rms_dbfs(audio: np.ndarray) -> float:
    """Root-mean-square level in dB relative to full scale."""
    return float(10.0 * np.log10(np.mean(np.square(audio, dtype=np.float64)) + 1e-12))
