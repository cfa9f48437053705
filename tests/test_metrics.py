"""Metrics on real speech (the `small_dataset` fixture): published properties of SI-SDR, PESQ, STOI and DNSMOS."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest

from sepipe import metrics
from sepipe.errors import ConfigError

SR = 16000


@pytest.fixture(scope="module")
def clean(small_dataset) -> np.ndarray:
    """4 s of real clean speech (float32, 16 kHz): clean halves of test pairs, joined."""
    speech = np.concatenate([pair.clean for pair in small_dataset.pairs("test", limit=4)])
    assert speech.size >= 4 * SR
    return np.ascontiguousarray(speech[: 4 * SR], dtype=np.float32)


def _with_white_noise(x: np.ndarray, snr_db: float, seed: int = 0) -> np.ndarray:
    """x plus white noise at exactly `snr_db` (energies of the zero-mean signals)."""
    noise = np.random.default_rng(seed).standard_normal(x.size)
    noise -= noise.mean()
    xc = x - x.mean()
    noise *= np.sqrt(np.dot(xc, xc) / np.dot(noise, noise) / 10.0 ** (snr_db / 10.0))
    return (x + noise).astype(np.float32)


# ----------------------------------------------------------------------------- SI-SDR

def test_si_sdr_of_identical_signals_is_very_large(clean):
    assert metrics.si_sdr(clean, clean) > 60.0


def test_si_sdr_is_scale_invariant(clean):
    noisy = _with_white_noise(clean, 7.0)
    base = metrics.si_sdr(clean, noisy)
    for gain in (0.01, 0.5, 3.0, -2.0):
        assert metrics.si_sdr(clean, gain * noisy) == pytest.approx(base, abs=1e-6)
        assert metrics.si_sdr(gain * clean, noisy) == pytest.approx(base, abs=1e-6)


@pytest.mark.parametrize("snr_db", [-5.0, 0.0, 5.0, 10.0, 20.0])
def test_si_sdr_equals_snr_for_added_white_noise(clean, snr_db):
    assert metrics.si_sdr(clean, _with_white_noise(clean, snr_db, seed=int(snr_db) + 10)) == \
        pytest.approx(snr_db, abs=0.2)


def test_si_sdr_matches_correlation_identity(clean):
    # For zero-mean signals SI-SDR = 10 log10(rho^2 / (1 - rho^2)), rho the correlation coefficient.
    noisy = _with_white_noise(clean, 3.0) + 0.01          # a DC offset the zero-mean step must remove
    rho = np.corrcoef(clean.astype(np.float64), noisy.astype(np.float64))[0, 1]
    assert metrics.si_sdr(clean, noisy) == pytest.approx(10 * np.log10(rho**2 / (1 - rho**2)), abs=1e-6)


def test_si_sdr_edge_cases(clean, caplog):
    with caplog.at_level(logging.WARNING, logger="sepipe.metrics"):
        assert math.isnan(metrics.si_sdr(np.zeros_like(clean), clean))
        assert metrics.si_sdr(clean, np.zeros_like(clean)) == -metrics.SI_SDR_LIMIT_DB
    assert "silent" in caplog.text
    with pytest.raises(ValueError, match="length"):
        metrics.si_sdr(clean, clean[:-1])
    with pytest.raises(ValueError, match="mono"):
        metrics.si_sdr(np.stack([clean, clean]), np.stack([clean, clean]))
    with pytest.raises(ValueError, match="NaN"):
        metrics.si_sdr(clean, np.full_like(clean, np.nan))


# ----------------------------------------------------------------------------- PESQ

def test_pesq_of_clean_is_the_wideband_maximum_and_noise_lowers_it(clean):
    assert metrics.pesq_wb(clean, clean) == pytest.approx(4.64, abs=0.01)
    at_20 = metrics.pesq_wb(clean, _with_white_noise(clean, 20.0))
    at_0 = metrics.pesq_wb(clean, _with_white_noise(clean, 0.0))
    assert 1.0 < at_0 < at_20 < 4.0


def test_pesq_silent_reference_is_nan_with_a_warning(clean, caplog):
    with caplog.at_level(logging.WARNING, logger="sepipe.metrics"):
        assert math.isnan(metrics.pesq_wb(np.zeros_like(clean), clean))
    assert "pesq_wb" in caplog.text


def test_pesq_silent_estimate_gets_the_floor_not_nan(clean):
    value = metrics.pesq_wb(clean, np.zeros_like(clean))
    assert 1.0 <= value < 1.2


@pytest.mark.parametrize("rate", [8000, 22050, 48000])
def test_pesq_rejects_other_rates(clean, rate):
    with pytest.raises(ConfigError, match="16000"):
        metrics.pesq_wb(clean, clean, sample_rate=rate)


# ----------------------------------------------------------------------------- STOI

def test_stoi_of_identical_is_one_and_noise_lowers_it(clean):
    assert metrics.stoi(clean, clean) == pytest.approx(1.0, abs=1e-3)
    assert metrics.stoi(clean, _with_white_noise(clean, -5.0)) < metrics.stoi(clean, _with_white_noise(clean, 10.0)) < 0.999


def test_stoi_too_short_is_nan(clean, caplog):
    with caplog.at_level(logging.WARNING, logger="sepipe.metrics"):
        assert math.isnan(metrics.stoi(clean[:2000], clean[:2000]))     # 125 ms < 30 frames
    assert "stoi" in caplog.text


def test_stoi_rejects_other_rates(clean):
    with pytest.raises(ConfigError, match="sample_rate"):
        metrics.stoi(clean, clean, sample_rate=48000)


# ----------------------------------------------------------------------------- DNSMOS

def test_dnsmos_in_range_and_prefers_clean_speech(clean):
    clean_scores = metrics.dnsmos(clean)
    noisy_scores = metrics.dnsmos(_with_white_noise(clean, 0.0))
    for scores in (clean_scores, noisy_scores):
        assert set(scores) == {"dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl"}
        assert all(1.0 <= v <= 5.0 for v in scores.values()), scores
    assert clean_scores["dnsmos_ovrl"] > noisy_scores["dnsmos_ovrl"] + 0.5
    assert clean_scores["dnsmos_bak"] > noisy_scores["dnsmos_bak"] + 0.5


def test_dnsmos_loads_the_bundled_model_once(clean):
    metrics.dnsmos(clean[:SR])
    first = metrics._dnsmos_session()
    metrics.dnsmos(clean[:SR])
    assert metrics._dnsmos_session() is first
    assert first.get_inputs()[0].shape[1] == 144160          # the P.835 raw-waveform model, 9.01 s


def test_dnsmos_windows_follow_the_official_script():
    # 4 s is tiled to 16 s, then 9.01 s windows every second: int(16 - 9.01) + 1 = 7.
    assert metrics._dnsmos_windows(np.zeros(4 * SR), SR).shape == (7, 144160)
    assert metrics._dnsmos_windows(np.zeros(12 * SR), SR).shape == (3, 144160)


def test_dnsmos_rejects_other_rates(clean):
    with pytest.raises(ConfigError, match="16000"):
        metrics.dnsmos(clean, sample_rate=8000)


# ----------------------------------------------------------------------------- score / mean

def test_score_returns_every_metric(clean):
    noisy = _with_white_noise(clean, 5.0)
    row = metrics.score(clean, noisy, with_dnsmos=False)
    assert tuple(row) == metrics.METRICS
    assert all(isinstance(v, float) for v in row.values())
    assert all(math.isnan(row[k]) for k in metrics.DNSMOS_KEYS)
    assert row["si_sdr"] == pytest.approx(5.0, abs=0.2)
    with pytest.raises(ConfigError):
        metrics.score(clean, noisy, sample_rate=8000)


def test_mean_scores_is_nan_aware():
    rows = [
        {"si_sdr": 1.0, "pesq": math.nan, "stoi": 0.5, "dnsmos_sig": math.nan, "dnsmos_bak": math.nan, "dnsmos_ovrl": math.nan},
        {"si_sdr": 3.0, "pesq": 2.0, "stoi": 0.7, "dnsmos_sig": math.nan, "dnsmos_bak": math.nan, "dnsmos_ovrl": math.nan},
    ]
    means = metrics.mean_scores(rows)
    assert tuple(means) == metrics.METRICS
    assert means["si_sdr"] == 2.0 and means["pesq"] == 2.0 and means["stoi"] == pytest.approx(0.6)
    assert math.isnan(means["dnsmos_ovrl"])
    assert all(math.isnan(v) for v in metrics.mean_scores([]).values())
