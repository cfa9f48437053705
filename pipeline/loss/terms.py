"""TensorFlow implementations of the registered loss terms (see `sepipe.loss`).

Every term takes its config and a `LossInputs` and returns a scalar to minimise. Spectra are
(batch, frames, bins) real/imaginary pairs; audio is resynthesised once per batch, only when a
term asks for it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from sepipe import gain
from sepipe.models.keras_backend import tf

EPS = 1e-10


@dataclass
class LossInputs:
    enhanced_re: tf.Tensor
    enhanced_im: tf.Tensor
    clean_re: tf.Tensor
    clean_im: tf.Tensor
    resynthesise: Callable[[tf.Tensor, tf.Tensor], tf.Tensor]   # (re, im) -> (batch, samples)
    mask: tf.Tensor | None = None       # the gains (enhanced = mask x noisy, sepipe.gain), for terms that split
    noisy_re: tf.Tensor | None = None   # the mixture into its speech and noise parts
    noisy_im: tf.Tensor | None = None
    _audio: dict = field(default_factory=dict)

    def audio(self) -> tuple[tf.Tensor, tf.Tensor]:
        """(enhanced, clean) audio, resynthesised on first use."""
        if not self._audio:
            self._audio["enhanced"] = self.resynthesise(self.enhanced_re, self.enhanced_im)
            self._audio["clean"] = self.resynthesise(self.clean_re, self.clean_im)
        return self._audio["enhanced"], self._audio["clean"]


def _magnitude(re: tf.Tensor, im: tf.Tensor) -> tf.Tensor:
    return tf.sqrt(re * re + im * im + EPS)


def compressed_magnitude(cfg, x: LossInputs) -> tf.Tensor:
    enhanced = _magnitude(x.enhanced_re, x.enhanced_im) ** cfg.exponent
    clean = _magnitude(x.clean_re, x.clean_im) ** cfg.exponent
    return tf.reduce_mean(tf.square(enhanced - clean))


def asymmetric_magnitude(cfg, x: LossInputs) -> tf.Tensor:
    """Wang et al. (2020, VoiceFilter-Lite)'s asymmetric L2 on compressed magnitudes: where the enhanced
    bin falls below the clean one (speech taken away with the noise) the error is scaled by
    `over_suppression_weight` before squaring; where it stays above (residual noise) it counts as is.

    Why: a mask trained on a symmetric error removes speech with the noise at low SNR, which DNSMOS SIG
    punishes (issue 10: the baseline trailed RNNoise on SIG by 0.10, most below 0 dB SNR)."""
    enhanced = _magnitude(x.enhanced_re, x.enhanced_im) ** cfg.exponent
    clean = _magnitude(x.clean_re, x.clean_im) ** cfg.exponent
    error = clean - enhanced                       # > 0: the estimate lost speech energy
    weighted = tf.where(error > 0, cfg.over_suppression_weight * error, error)
    return tf.reduce_mean(tf.square(weighted))


def compressed_complex(cfg, x: LossInputs) -> tf.Tensor:
    """Braun & Tashev (2021)'s phase-aware term: the complex spectra with magnitudes compressed.

    A real mask cannot change the phase, so this term charges a bin whose noisy phase is far from
    the clean one: it teaches the mask to lower noise-dominated bins further than magnitude alone.
    """
    e_scale = _magnitude(x.enhanced_re, x.enhanced_im) ** (cfg.exponent - 1.0)
    c_scale = _magnitude(x.clean_re, x.clean_im) ** (cfg.exponent - 1.0)
    return tf.reduce_mean(tf.square(x.enhanced_re * e_scale - x.clean_re * c_scale)
                          + tf.square(x.enhanced_im * e_scale - x.clean_im * c_scale))


def weighted_distortion(cfg, x: LossInputs) -> tf.Tensor:
    """Xia et al. (2020, nsNet)'s weighted speech-distortion loss, on compressed magnitudes: the mask
    applied to the clean speech alone (speech distortion: |M S|^c vs |S|^c) and to the noise alone
    (residual noise: |M N|^c vs 0), weighted (1 - noise_weight) and noise_weight.

    Why: a mask that scores well on SI-SDR can leave noise that PESQ and DNSMOS BAK punish hard (the
    demo's PESQ with its residual noise alone was 2.04, with its speech distortion alone 3.60); this
    term lets an experiment say how much suppression it buys with how much distortion."""
    noise_re, noise_im = x.noisy_re - x.clean_re, x.noisy_im - x.clean_im
    speech = _magnitude(*gain.apply_tf(x.mask, x.clean_re, x.clean_im)) ** cfg.exponent
    clean = _magnitude(x.clean_re, x.clean_im) ** cfg.exponent
    residual_noise = _magnitude(*gain.apply_tf(x.mask, noise_re, noise_im)) ** cfg.exponent
    floor = EPS ** (cfg.exponent / 2)             # what _magnitude gives a zero bin: no noise costs nothing
    distortion = tf.reduce_mean(tf.square(speech - clean))
    residual = tf.reduce_mean(tf.square(residual_noise - floor))
    return (1.0 - cfg.noise_weight) * distortion + cfg.noise_weight * residual


def si_sdr(reference: tf.Tensor, estimate: tf.Tensor) -> tf.Tensor:
    """Per-example SI-SDR in dB (batch, samples) -> (batch,)."""
    reference = reference - tf.reduce_mean(reference, axis=-1, keepdims=True)
    estimate = estimate - tf.reduce_mean(estimate, axis=-1, keepdims=True)
    scale = tf.reduce_sum(reference * estimate, -1, keepdims=True) / (tf.reduce_sum(reference**2, -1, keepdims=True) + 1e-8)
    target = scale * reference
    ratio = tf.reduce_sum(target**2, -1) / (tf.reduce_sum((estimate - target) ** 2, -1) + 1e-8)
    return 10.0 * tf.math.log(ratio + 1e-8) / tf.math.log(10.0)


def negative_sisdr(cfg, x: LossInputs) -> tf.Tensor:
    enhanced, clean = x.audio()
    return -tf.reduce_mean(si_sdr(clean, enhanced))


def multi_resolution(cfg, x: LossInputs) -> tf.Tensor:
    """Mean over `fft_sizes` of the compressed-magnitude MSE of Hann STFTs (hop fft/4) of the audio:
    resolutions finer and coarser than the model's own frame see what its frame cannot."""
    enhanced, clean = x.audio()
    total = 0.0
    for size in cfg.fft_sizes:
        stfts = [tf.signal.stft(a, size, size // 4, fft_length=size, pad_end=True) for a in (enhanced, clean)]
        e, c = (_magnitude(tf.math.real(s), tf.math.imag(s)) ** cfg.exponent for s in stfts)
        total += tf.reduce_mean(tf.square(e - c))
    return total / len(cfg.fft_sizes)
