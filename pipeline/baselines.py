"""Classic baselines the trained models are compared with.

RNNoise (Valin 2018) through the C library that PyPI `pyrnnoise` 0.4.5 ships
(`pyrnnoise/librnnoise.so`, the 0.2 API: `rnnoise_create(NULL)`,
`rnnoise_process_frame(state, out, in)` on 480-sample frames at 48 kHz).
The library is called directly through pyrnnoise's ctypes handle instead of
pyrnnoise's `RNNoise` class because that class (a) rounds float input to int16
before processing and the output to int16 after, and (b) resamples with
ffmpeg (audiolab) in its own streaming graph; here resampling is soxr (HQ,
linear phase, zero delay as called) and the samples stay float end to end.
RNNoise expects float samples on the int16 scale (+-32768), so audio in
[-1, 1] is multiplied by 32768 on the way in and divided on the way out.
"""

from __future__ import annotations

import ctypes

import numpy as np
import soxr

RNNOISE_SAMPLE_RATE = 48000
RNNOISE_FRAME = 480              # samples per rnnoise_process_frame call at 48 kHz (10 ms)

# Algorithmic delay of RNNoise: 960 samples at 48 kHz (20 ms, two frames; 320
# samples at 16 kHz, the figure in docs/toolchain.md). Measured, not assumed: real
# speech (fr_CA_f_June prompts decoded from G.722, 6-8 s excerpts) plus white
# noise at 0, 5 and 20 dB SNR and with no noise, upsampled 16 -> 48 kHz with
# soxr, run through rnnoise_process_frame frame by frame from a fresh state;
# the cross-correlation of the output with the clean 48 kHz speech (and with
# the noisy input) peaks at lag 959 or 960 in every case (parabolic
# interpolation: 958.7 to 959.7, the fraction coming from RNNoise's input
# high-pass filter), and at exactly 320 after resampling back to 16 kHz.
# One frame (480) is the overlap-add of RNNoise's 960-sample analysis window,
# the whole delay of the 2017-2019 xiph/rnnoise sources; the 0.2-API build in
# pyrnnoise 0.4.5 adds a second frame (inferred from the measurement, not read
# in its source). tests/test_baselines.py re-measures it on every run.
RNNOISE_DELAY_SAMPLES = 960

_FLOAT_P = ctypes.POINTER(ctypes.c_float)


def _rnnoise_lib():
    from pyrnnoise.rnnoise import FRAME_SIZE, lib

    if FRAME_SIZE != RNNOISE_FRAME:
        raise RuntimeError(f"pyrnnoise's librnnoise reports frame size {FRAME_SIZE}; "
                           f"this module was written for {RNNOISE_FRAME} (pyrnnoise 0.4.5)")
    return lib


def rnnoise_48k(audio_48k: np.ndarray) -> np.ndarray:
    """Raw RNNoise at 48 kHz, fresh state, float in / float out ([-1, 1] scale).

    The output is as long as the input and still carries the algorithmic delay
    (output sample n answers input sample n - RNNOISE_DELAY_SAMPLES); the last
    partial frame is zero-padded.
    """
    lib = _rnnoise_lib()
    x = np.asarray(audio_48k, dtype=np.float32)
    frames = -(-x.size // RNNOISE_FRAME)
    buf = np.zeros(frames * RNNOISE_FRAME, dtype=np.float32)
    buf[:x.size] = x * 32768.0
    out = np.empty_like(buf)
    state = lib.rnnoise_create(None)
    if not state:
        raise RuntimeError("rnnoise_create returned NULL")
    try:
        for start in range(0, buf.size, RNNOISE_FRAME):
            frame_in = buf[start:start + RNNOISE_FRAME]          # contiguous views
            frame_out = out[start:start + RNNOISE_FRAME]
            lib.rnnoise_process_frame(state, frame_out.ctypes.data_as(_FLOAT_P), frame_in.ctypes.data_as(_FLOAT_P))
    finally:
        lib.rnnoise_destroy(state)
    return out[:x.size] / np.float32(32768.0)


def rnnoise_enhance(audio: np.ndarray, sample_rate: int = 16000) -> np.ndarray:
    """RNNoise (pyrnnoise) as the classic baseline, sample-aligned with its input.

    Resample to 48 kHz with soxr, append RNNOISE_DELAY_SAMPLES zeros so the
    tail comes out, denoise, drop the first RNNOISE_DELAY_SAMPLES output
    samples, resample back. Returns float32, same length as `audio`.
    """
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)) \
            or not 8000 <= sample_rate <= 192000:
        raise ValueError(f"rnnoise_enhance: sample_rate = {sample_rate!r} is not valid; "
                         "expected an integer rate in Hz from 8000 to 192000")
    x = np.asarray(audio)
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"rnnoise_enhance: expected non-empty mono audio (1-D array), got shape {x.shape}")
    x = x.astype(np.float32, copy=False)
    if not np.all(np.isfinite(x)):
        raise ValueError("rnnoise_enhance: audio contains NaN or infinite samples")
    sample_rate = int(sample_rate)

    x48 = x if sample_rate == RNNOISE_SAMPLE_RATE else soxr.resample(x, sample_rate, RNNOISE_SAMPLE_RATE)
    padded = np.concatenate([x48, np.zeros(RNNOISE_DELAY_SAMPLES, dtype=np.float32)])
    y48 = rnnoise_48k(padded)[RNNOISE_DELAY_SAMPLES:RNNOISE_DELAY_SAMPLES + x48.size]
    y = y48 if sample_rate == RNNOISE_SAMPLE_RATE else soxr.resample(y48, RNNOISE_SAMPLE_RATE, sample_rate)
    if y.size >= x.size:
        y = y[:x.size]
    else:
        y = np.concatenate([y, np.zeros(x.size - y.size, dtype=np.float32)])
    return np.ascontiguousarray(y, dtype=np.float32)
