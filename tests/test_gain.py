"""The complex mask (sepipe.gain, model.mask: complex): one definition of how a gain is applied, in numpy
and TensorFlow alike; the family's head, contract and one-frame model follow it."""

import numpy as np
import pytest

from sepipe import features as feat
from sepipe import gain
from sepipe.config import FeatureConfig
from sepipe.errors import ConfigError
from sepipe.models import family_of
from sepipe.models.mask_rnn import MaskRnnConfig

BINS = 257
COMPLEX = MaskRnnConfig(family="gru", input_units=32, rnn_units=24, dense_units=32, mask="complex")


def _spectrum(rng, frames=5):
    return (rng.normal(size=(frames, BINS)) + 1j * rng.normal(size=(frames, BINS))).astype(np.complex64)


def test_a_complex_gain_is_a_complex_product_per_bin_and_a_real_one_a_scale():
    rng = np.random.default_rng(0)
    spectrum, a, b = _spectrum(rng), rng.uniform(-1, 1, (5, BINS)), rng.uniform(-1, 1, (5, BINS))
    np.testing.assert_allclose(gain.apply(spectrum, np.concatenate([a, b], -1)), spectrum * (a + 1j * b), rtol=1e-5)
    np.testing.assert_allclose(gain.apply(spectrum, np.abs(a)), spectrum * np.abs(a).astype(np.float32), rtol=1e-6)
    # a complex gain with no imaginary part is the real gain; the unit gain 1 + 0j returns the spectrum
    np.testing.assert_array_equal(gain.apply(spectrum, np.concatenate([np.abs(a), 0 * b], -1)),
                                  gain.apply(spectrum, np.abs(a)))
    np.testing.assert_array_equal(feat.apply_mask(spectrum, np.concatenate([np.ones((5, BINS)), np.zeros((5, BINS))], -1)),
                                  spectrum)


def test_a_mask_of_another_width_is_refused_in_one_line():
    with pytest.raises(ValueError, match=f"a mask of 300 values per frame for {BINS} bins; a real mask has {BINS}"):
        gain.apply(_spectrum(np.random.default_rng(1)), np.ones((5, 300)))


def test_training_applies_the_gain_as_the_reference_does():
    from sepipe.models.keras_backend import tf

    rng = np.random.default_rng(2)
    spectrum = _spectrum(rng)
    for mask in (rng.uniform(0, 1, (5, BINS)), rng.uniform(-1, 1, (5, 2 * BINS))):
        re, im = gain.apply_tf(tf.constant(mask, tf.float32), tf.constant(spectrum.real), tf.constant(spectrum.imag))
        np.testing.assert_allclose(re.numpy() + 1j * im.numpy(), gain.apply(spectrum, mask), rtol=1e-5, atol=1e-6)


def test_the_complex_head_is_twice_as_wide_bounded_by_tanh_and_says_so_in_its_contract():
    family = family_of(COMPLEX)
    head = family.contract(COMPLEX, BINS).head
    assert (head.name, head.size, head.range, head.role) == ("mask", 2 * BINS, (-1.0, 1.0), "complex_mask")
    sequence, streaming = family.build_sequence(COMPLEX, BINS), family.build_streaming(COMPLEX, BINS)
    assert sequence.get_layer("mask").get_config()["activation"] == "tanh"
    assert streaming.output_shape["mask"] == (1, 2 * BINS)
    real = MaskRnnConfig(family="gru", input_units=32, rnn_units=24, dense_units=32)
    assert family.contract(real, BINS).head.size == BINS and family.label(COMPLEX) == "gru-2x24-cm"


def test_the_mask_key_is_checked_and_left_out_of_fingerprints_at_its_default():
    from sepipe.artifacts import _json_fallback, sha256_json

    with pytest.raises(ConfigError, match="model.mask.*one of real, complex"):
        MaskRnnConfig(family="gru", mask="polar").validate("exp.yaml")
    # runs recorded before the key existed stay current: the default is not in the hashed text
    real = MaskRnnConfig(family="gru")
    assert "mask=" not in _json_fallback(real) and "mask='complex'" in _json_fallback(COMPLEX)
    assert sha256_json(real) != sha256_json(MaskRnnConfig(family="gru", mask="complex"))


def test_a_complex_mask_model_enhances_end_to_end_through_the_tflite_interpreters(tmp_path, small_dataset):
    """Converted to int8 and run by TFLite and TFLite Micro, the complex head's output enhances a file."""
    from sepipe.enhance import load_model
    from sepipe.quantize.convert import convert_untrained

    tflite = convert_untrained(COMPLEX, BINS, tmp_path / "complex.tflite", seed=0)
    audio = small_dataset.pairs("test", limit=1)[0].noisy[:8000]
    for runtime in ("tflite", "tflm"):
        model = load_model(tflite, None, runtime)
        logpow, spectrum = feat.features(audio, FeatureConfig())
        mask = model.runner.run(logpow)
        assert mask.shape == (len(logpow), 2 * BINS) and np.abs(mask).max() <= 1.0
        assert np.isfinite(feat.enhance_with_mask(spectrum, mask, FeatureConfig(), len(audio))).all()
