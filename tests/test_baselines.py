"""RNNoise baseline: length, alignment (re-measured delay) and real improvement at 0-5 dB SNR.

Noisy speech: test pairs of the `small_dataset` fixture, remixed at a chosen SNR
from their own clean and noise (noisy - clean) parts.
"""

from __future__ import annotations

import numpy as np
import pytest
import soxr
from scipy.signal import correlate

from sepipe import baselines, metrics

SR = 16000


def _mix(clean: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    noise = noise - noise.mean()
    gain = np.sqrt(np.mean(np.square(clean, dtype=np.float64)) / np.mean(np.square(noise, dtype=np.float64))
                   / 10.0 ** (snr_db / 10.0))
    return (clean + gain * noise).astype(np.float32)


@pytest.fixture(scope="module")
def speech_and_noise(small_dataset) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """Three (name, clean, noise) triples of real audio, float32 16 kHz, >= 2 s each."""
    pairs = [p for p in small_dataset.pairs("test", limit=12)
             if p.clean.size >= 2 * SR and np.any(p.noisy - p.clean)]
    assert len(pairs) >= 3, "small_dataset has too few usable test pairs"
    return [(p.name, p.clean, p.noisy - p.clean) for p in pairs[:3]]


def _peak_lag(estimate: np.ndarray, reference: np.ndarray, max_lag: int) -> int:
    """Lag L (samples) at which estimate[n] best matches reference[n - L]."""
    corr = correlate(estimate.astype(np.float64), reference.astype(np.float64), mode="full", method="fft")
    lags = np.arange(-reference.size + 1, estimate.size)
    keep = np.abs(lags) <= max_lag
    return int(lags[keep][np.argmax(corr[keep])])


@pytest.mark.parametrize("length", [1, 479, 16001, 48000])
def test_output_has_the_input_length(length):
    audio = (0.1 * np.random.default_rng(length).standard_normal(length)).astype(np.float32)
    out = baselines.rnnoise_enhance(audio)
    assert out.shape == audio.shape and out.dtype == np.float32
    assert np.all(np.isfinite(out))


def test_declared_delay_is_the_measured_delay(speech_and_noise):
    # Raw RNNoise at 48 kHz, no compensation: the output lags the clean speech by RNNOISE_DELAY_SAMPLES.
    _, clean, noise = speech_and_noise[0]
    clean48 = soxr.resample(clean, SR, baselines.RNNOISE_SAMPLE_RATE)
    noisy48 = soxr.resample(_mix(clean, noise, 5.0), SR, baselines.RNNOISE_SAMPLE_RATE)
    lag = _peak_lag(baselines.rnnoise_48k(noisy48), clean48, max_lag=3000)
    assert abs(lag - baselines.RNNOISE_DELAY_SAMPLES) <= 1


@pytest.mark.parametrize("snr_db", [0.0, 5.0])
def test_output_is_aligned_with_the_clean_reference(speech_and_noise, snr_db):
    for _, clean, noise in speech_and_noise:
        enhanced = baselines.rnnoise_enhance(_mix(clean, noise, snr_db), SR)
        assert abs(_peak_lag(enhanced, clean, max_lag=2000)) <= 1


@pytest.mark.parametrize("snr_db", [0.0, 5.0])
def test_rnnoise_improves_on_the_noisy_input(speech_and_noise, snr_db):
    sdr_gains, pesq_gains = [], []
    for _, clean, noise in speech_and_noise:
        noisy = _mix(clean, noise, snr_db)
        enhanced = baselines.rnnoise_enhance(noisy, SR)
        sdr_gains.append(metrics.si_sdr(clean, enhanced) - metrics.si_sdr(clean, noisy))
        pesq_gains.append(metrics.pesq_wb(clean, enhanced) - metrics.pesq_wb(clean, noisy))
    assert np.mean(sdr_gains) > 0.5 or np.mean(pesq_gains) > 0.05, (sdr_gains, pesq_gains)


def test_48k_input_is_processed_without_resampling(speech_and_noise):
    _, clean, noise = speech_and_noise[0]
    noisy48 = soxr.resample(_mix(clean, noise, 5.0), SR, 48000)
    out = baselines.rnnoise_enhance(noisy48, 48000)
    assert out.shape == noisy48.shape
    assert abs(_peak_lag(out, soxr.resample(clean, SR, 48000), max_lag=3000)) <= 1


@pytest.mark.parametrize("bad", [0, 4000, 16000.0, True, 400000])
def test_invalid_sample_rate_is_rejected(bad):
    with pytest.raises(ValueError, match="sample_rate"):
        baselines.rnnoise_enhance(np.zeros(1600, dtype=np.float32), bad)


def test_invalid_audio_is_rejected():
    with pytest.raises(ValueError, match="mono"):
        baselines.rnnoise_enhance(np.zeros((2, 1600), dtype=np.float32))
    with pytest.raises(ValueError, match="NaN"):
        baselines.rnnoise_enhance(np.full(1600, np.nan, dtype=np.float32))
