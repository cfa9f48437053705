"""Training objectives: the registered loss terms, their config, and the legacy objective kept intact."""

from __future__ import annotations

import numpy as np
import pytest

from sepipe.config import FeatureConfig, experiment_from_dict
from sepipe.errors import ConfigError
from sepipe.loss import LOSS_TERMS, CompressedTermConfig, LossTermConfig, MultiResolutionTermConfig

SAMPLES = 4096


def _config(**train):
    return experiment_from_dict({"name": "t", "train": train})


def _spectra(seed: int = 0):
    from sepipe import features as feat

    rng = np.random.default_rng(seed)
    clean = (0.1 * rng.standard_normal(SAMPLES)).astype(np.float32)
    noise = (0.05 * rng.standard_normal(SAMPLES)).astype(np.float32)
    cfg = FeatureConfig()
    return feat.stft(clean + noise, cfg)[None], feat.stft(clean, cfg)[None]


def _inputs(enhanced: np.ndarray, clean: np.ndarray, noisy: np.ndarray | None = None):
    """Loss inputs for an estimate `enhanced` of `clean`; the real mask that makes it from `noisy`
    (default: the estimate itself, mask 1) is |enhanced| / |noisy|, as a real mask cannot turn phase."""
    from sepipe.loss.terms import LossInputs
    from sepipe.models.keras_backend import tf
    from sepipe.train import tf_istft

    noisy = enhanced if noisy is None else noisy
    mask = np.abs(enhanced) / np.maximum(np.abs(noisy), 1e-12)
    c = lambda x: tf.constant(x, tf.float32)   # noqa: E731
    return LossInputs(c(enhanced.real), c(enhanced.imag), c(clean.real), c(clean.imag),
                      resynthesise=lambda re, im: tf_istft(re, im, FeatureConfig(), SAMPLES),
                      mask=c(mask), noisy_re=c(noisy.real), noisy_im=c(noisy.imag))


# ------------------------------------------------------------------ config
def test_without_loss_the_objective_is_the_legacy_one():
    terms = _config(sisdr_weight=0.1).train.loss_terms
    assert [(t.term, t.weight) for t in terms] == [("compressed_magnitude", 1.0), ("sisdr", 0.1)]


def test_loss_terms_build_their_own_config_class():
    cfg = _config(loss=[{"term": "compressed_complex", "weight": 0.3, "exponent": 0.5},
                        {"term": "multi_resolution", "weight": 1.0, "fft_sizes": [256, 512]},
                        {"term": "sisdr", "weight": 0.01}])
    complex_term, multires, sisdr = cfg.train.loss_terms
    assert isinstance(complex_term, CompressedTermConfig) and complex_term.exponent == 0.5
    assert isinstance(multires, MultiResolutionTermConfig) and multires.fft_sizes == (256, 512)
    assert type(sisdr) is LossTermConfig


@pytest.mark.parametrize("train, key", [
    ({"loss": [{"term": "mel", "weight": 1.0}]}, "term"),
    ({"loss": [{"term": "sisdr", "weight": -1.0}]}, "train.loss[sisdr].weight"),
    ({"loss": [{"term": "sisdr", "weight": 0.0}]}, "train.loss"),
    ({"loss": [{"term": "sisdr", "exponent": 0.5}]}, "exponent"),
    ({"loss": [{"term": "compressed_magnitude", "exponent": 0.0}]}, "train.loss[compressed_magnitude].exponent"),
    ({"loss": [{"term": "multi_resolution", "fft_sizes": [300]}]}, "fft_sizes"),
    ({"loss": [{"term": "sisdr", "weight": 0.1}], "sisdr_weight": 0.2}, "train.sisdr_weight"),
])
def test_bad_loss_config_names_the_key(train, key):
    with pytest.raises(ConfigError) as err:
        _config(**train)
    assert key in str(err.value)


def test_a_config_without_loss_keeps_its_fingerprint():
    from sepipe.artifacts import sha256_json

    before = "TrainConfig(epochs=10, steps_per_epoch=100, batch_size=16, learning_rate=0.001, patience=3, " \
             "sisdr_weight=0.05, valid_files=20)"      # the fingerprint text of every run before train.loss
    assert sha256_json(_config().train) == sha256_json(before)


# ------------------------------------------------------------------ terms
def test_every_term_is_zero_for_a_perfect_estimate():
    _, clean = _spectra()
    inputs = _inputs(clean, clean)
    for entry in LOSS_TERMS:
        if entry.name == "sisdr":
            continue
        value = float(LOSS_TERMS.get(entry.name)(entry.config(term=entry.name), inputs))
        assert value == pytest.approx(0.0, abs=1e-6), entry.name


def test_the_complex_term_charges_a_wrong_phase_the_magnitude_term_does_not_see():
    _, clean = _spectra()
    flipped = _inputs(-clean, clean)            # same magnitudes, phase off by pi
    magnitude = float(LOSS_TERMS.get("compressed_magnitude")(CompressedTermConfig(), flipped))
    complex_ = float(LOSS_TERMS.get("compressed_complex")(CompressedTermConfig(term="compressed_complex"), flipped))
    assert magnitude == pytest.approx(0.0, abs=1e-6) and complex_ > 0.01


def test_noisier_estimates_cost_more_under_every_term():
    noisy, clean = _spectra()
    half_way = clean + 0.5 * (noisy - clean)
    for entry in LOSS_TERMS:
        cfg = entry.config(term=entry.name)
        worse, better = (float(LOSS_TERMS.get(entry.name)(cfg, _inputs(x, clean))) for x in (noisy, half_way))
        assert worse > better, entry.name


def test_weighted_distortion_splits_residual_noise_from_speech_distortion():
    from sepipe.loss import WeightedDistortionTermConfig

    noisy, clean = _spectra()
    term = LOSS_TERMS.get("weighted_distortion")
    passthrough = _inputs(noisy, clean, noisy)          # mask 1: no distortion, all the noise
    muted = _inputs(0 * noisy, clean, noisy)            # mask 0: no noise, all the speech lost
    noise_heavy, speech_heavy = (WeightedDistortionTermConfig(term="weighted_distortion", noise_weight=w)
                                 for w in (0.9, 0.1))
    assert float(term(noise_heavy, passthrough)) > float(term(noise_heavy, muted))
    assert float(term(speech_heavy, passthrough)) < float(term(speech_heavy, muted))


def test_asymmetric_magnitude_charges_lost_speech_more_than_residual_noise():
    from sepipe.loss import AsymmetricTermConfig

    _, clean = _spectra()
    term = LOSS_TERMS.get("asymmetric_magnitude")
    # the same compressed-magnitude error either side: |S|^0.3 -+ d, so only its sign differs
    d = 0.05
    compressed = np.abs(clean) ** 0.3
    phase = np.exp(1j * np.angle(clean))
    too_quiet = np.maximum(compressed - d, 0) ** (1 / 0.3) * phase
    too_loud = (compressed + d) ** (1 / 0.3) * phase
    symmetric = AsymmetricTermConfig(term="asymmetric_magnitude", over_suppression_weight=1.0)
    asymmetric = AsymmetricTermConfig(term="asymmetric_magnitude", over_suppression_weight=3.0)
    plain = LOSS_TERMS.get("compressed_magnitude")(CompressedTermConfig(), _inputs(too_quiet, clean))
    assert float(term(symmetric, _inputs(too_quiet, clean))) == pytest.approx(float(plain), rel=1e-5)
    quiet, loud = (float(term(asymmetric, _inputs(x, clean))) for x in (too_quiet, too_loud))
    assert loud == pytest.approx(d * d, rel=0.02)            # residual noise: the plain squared error
    assert quiet > 5 * loud                                    # lost speech: up to 3^2 = 9 times as much


def test_asymmetric_weight_below_one_is_one_line():
    with pytest.raises(ConfigError, match=r"over_suppression_weight.*0\.5.*>= 1"):
        _config(loss=[{"term": "asymmetric_magnitude", "over_suppression_weight": 0.5}])


def test_legacy_objective_matches_its_formula():
    from sepipe.models.keras_backend import tf
    from sepipe.train import enhancement_loss, tf_istft, tf_si_sdr

    noisy, clean = _spectra(1)
    cfg = _config(sisdr_weight=0.05)
    mask = tf.constant(np.full(noisy.shape, 0.7, np.float32))
    c = lambda x: tf.constant(x, tf.float32)   # noqa: E731
    total, sisdr = enhancement_loss(mask, c(noisy.real), c(noisy.imag), c(clean.real), c(clean.imag), cfg, SAMPLES)
    enhanced = 0.7 * noisy
    magnitude = np.mean((np.abs(enhanced) ** 0.3 - np.abs(clean) ** 0.3) ** 2)
    expected_sisdr = float(tf_si_sdr(tf_istft(c(clean.real), c(clean.imag), cfg.features, SAMPLES),
                                     tf_istft(c(enhanced.real), c(enhanced.imag), cfg.features, SAMPLES))[0])
    assert float(sisdr) == pytest.approx(expected_sisdr, rel=1e-5)
    assert float(total) == pytest.approx(magnitude - 0.05 * expected_sisdr, rel=1e-4, abs=1e-5)


# ------------------------------------------------------------------ schedule and batch prefetch
def test_cosine_schedule_decays_to_a_tenth_by_the_last_step():
    from sepipe.train import learning_rate

    assert learning_rate(_config(learning_rate=0.002)) == 0.002
    schedule = learning_rate(_config(learning_rate=0.002, lr_schedule="cosine", epochs=3, steps_per_epoch=10))
    assert float(schedule(0)) == pytest.approx(0.002)
    assert float(schedule(15)) == pytest.approx(0.0011, rel=1e-3)
    assert float(schedule(30)) == pytest.approx(0.0002, rel=1e-3)


def test_prefetched_batches_keep_their_order_and_raise_the_producers_error():
    from sepipe.train import prefetched

    assert list(prefetched(iter(range(50)), depth=3)) == list(range(50))

    def failing():
        yield 1
        raise ValueError("mixture 2 is broken")

    out = prefetched(failing())
    assert next(out) == 1
    with pytest.raises(ValueError, match="mixture 2"):
        next(out)
