import numpy as np
import pytest

from sepipe import features as feat
from sepipe.config import FeatureConfig


@pytest.fixture(params=[FeatureConfig(), FeatureConfig(fft_size=256, hop=128)], ids=["512-256", "256-128"])
def cfg(request):
    return request.param


def test_unity_mask_returns_the_input(cfg, small_dataset):
    audio = small_dataset.pairs("test", limit=1)[0].noisy
    logpow, spectrum = feat.features(audio, cfg)
    restored = feat.enhance_with_mask(spectrum, np.ones_like(logpow), cfg, len(audio))
    # Holds at the edges too: the leading `hop` zeros make every sample covered by two frames.
    assert np.max(np.abs(restored - audio)) < 1e-4


def test_features_are_per_frame_so_streaming_equals_batch(cfg, small_dataset):
    """The firmware computes one frame per hop from a sliding buffer; so must the reference."""
    audio = small_dataset.pairs("test", limit=1)[0].noisy[:40 * cfg.hop]
    batch, _ = feat.features(audio, cfg)
    buffer = np.zeros(cfg.fft_size, np.float32)
    padded = np.concatenate([audio, np.zeros(2 * cfg.hop, np.float32)])
    for t in range(batch.shape[0]):
        buffer = np.concatenate([buffer[cfg.hop:], padded[t * cfg.hop:(t + 1) * cfg.hop]])
        frame_spectrum = np.fft.rfft(buffer * feat.analysis_window(cfg))[None]
        np.testing.assert_allclose(feat.log_power(frame_spectrum, cfg)[0], batch[t], atol=1e-4)


def test_sqrt_hann_squared_sums_to_one_at_half_overlap(cfg):
    window = feat.analysis_window(cfg).astype(np.float64)
    overlap = window[:cfg.hop] ** 2 + window[cfg.hop:] ** 2
    np.testing.assert_allclose(overlap, 1.0, atol=1e-6)


def test_zero_mask_silences_and_log_floor_bounds_features(cfg):
    audio = np.zeros(4000, np.float32)
    logpow, spectrum = feat.features(audio, cfg)
    assert np.allclose(logpow, np.log(np.float32(cfg.log_floor)))
    assert not np.any(feat.enhance_with_mask(spectrum, np.zeros_like(logpow), cfg, len(audio)))


def test_tensorflow_resynthesis_mirrors_the_reference(cfg, small_dataset):
    from sepipe.train import tf_istft

    audio = small_dataset.pairs("test", limit=1)[0].noisy
    spectrum = feat.stft(audio, cfg)
    mirrored = tf_istft(spectrum.real[None], spectrum.imag[None], cfg, len(audio)).numpy()[0]
    np.testing.assert_allclose(mirrored, feat.istft(spectrum, cfg, len(audio)), atol=1e-5)
