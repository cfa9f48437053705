"""The reference feature extraction and resynthesis (numpy, float32).

Training, evaluation and the firmware stub all follow this module exactly:
- analysis: frame t covers input samples [t*hop - hop, t*hop + hop), i.e. the
  signal is preceded by `hop` zeros (the firmware's initially empty buffer);
  each frame is multiplied by a periodic sqrt-Hann window and real-FFT'd;
- features: natural log of the power spectrum plus a floor, per frame;
- enhancement: a gain per bin multiplies the complex spectrum (real, or complex:
  sepipe.gain);
- synthesis: inverse real FFT, the same window, overlap-add at 50%; since
  sqrt-Hann squared sums to one at 50% overlap, a unity mask returns the input
  exactly (up to float32 rounding), one hop late in a streaming device.
Every feature depends on its own frame only, so computing all frames at once
equals computing them one per hop.
"""

from __future__ import annotations

import numpy as np

from sepipe import gain
from sepipe.config import FeatureConfig


def analysis_window(cfg: FeatureConfig) -> np.ndarray:
    """Periodic sqrt-Hann window of `cfg.fft_size` samples (float32)."""
    n = np.arange(cfg.fft_size, dtype=np.float64)
    hann = 0.5 - 0.5 * np.cos(2.0 * np.pi * n / cfg.fft_size)
    return np.sqrt(hann).astype(np.float32)


def num_frames(num_samples: int, cfg: FeatureConfig) -> int:
    """Frames needed so that every input sample is covered by two frames."""
    return int(np.ceil(num_samples / cfg.hop)) + 1


def frame_signal(audio: np.ndarray, cfg: FeatureConfig) -> np.ndarray:
    """Windowed frames (T, fft_size) of `audio`, preceded by `hop` zeros."""
    frames_count = num_frames(len(audio), cfg)
    padded = np.zeros((frames_count + 1) * cfg.hop, dtype=np.float32)
    padded[cfg.hop:cfg.hop + len(audio)] = audio
    index = np.arange(cfg.fft_size)[None, :] + cfg.hop * np.arange(frames_count)[:, None]
    return padded[index] * analysis_window(cfg)


def stft(audio: np.ndarray, cfg: FeatureConfig) -> np.ndarray:
    """Complex spectrum (T, bins) as complex64."""
    return np.fft.rfft(frame_signal(np.asarray(audio, np.float32), cfg), axis=-1).astype(np.complex64)


def log_power(spectrum: np.ndarray, cfg: FeatureConfig) -> np.ndarray:
    """Network input features (T, bins): ln(|X|^2 + log_floor), float32."""
    power = np.square(spectrum.real) + np.square(spectrum.imag)
    return np.log(power + np.float32(cfg.log_floor)).astype(np.float32)


def apply_mask(spectrum: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Multiply each bin by its gain: a real mask (T, bins) or a complex one (T, 2 * bins), sepipe.gain."""
    return gain.apply(spectrum, mask)


def istft(spectrum: np.ndarray, cfg: FeatureConfig, length: int) -> np.ndarray:
    """Overlap-add resynthesis of `length` samples, aligned with the input of `stft`."""
    frames = np.fft.irfft(spectrum, n=cfg.fft_size, axis=-1).astype(np.float32) * analysis_window(cfg)
    out = np.zeros((frames.shape[0] + 1) * cfg.hop, dtype=np.float32)
    for t, frame in enumerate(frames):
        out[t * cfg.hop:t * cfg.hop + cfg.fft_size] += frame
    return out[cfg.hop:cfg.hop + length]


def features(audio: np.ndarray, cfg: FeatureConfig) -> tuple[np.ndarray, np.ndarray]:
    """(log-power features, complex spectrum) of `audio`: what the network and the mask need."""
    spectrum = stft(audio, cfg)
    return log_power(spectrum, cfg), spectrum


def enhance_with_mask(spectrum: np.ndarray, mask: np.ndarray, cfg: FeatureConfig, length: int) -> np.ndarray:
    """Apply a mask (T, bins) and resynthesise `length` samples."""
    return istft(apply_mask(spectrum, mask), cfg, length)
