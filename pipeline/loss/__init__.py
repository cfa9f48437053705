"""Training objectives: a weighted sum of registered loss terms, chosen in the YAML.

    train:
      loss:
        - {term: compressed_magnitude, weight: 0.7}
        - {term: compressed_complex, weight: 0.3}
        - {term: sisdr, weight: 0.01}

Each term compares the masked noisy spectrum (what the streaming model produces: a real gain per
bin on the noisy STFT, no lookahead) with the clean one, or their resynthesised audio. Every term
works with the same model contract, so changing the objective never changes the `.tflite`'s I/O.
An experiment without `train.loss` keeps the objective every run before this module had:
compressed-magnitude MSE minus `train.sisdr_weight` x SI-SDR (dB).

This module holds the registry and the terms' config dataclasses (no TensorFlow, so loading a
config stays light); the TensorFlow implementations are in `sepipe.loss.terms`. A new term is
one function there and one `LOSS_TERMS.add` here.
"""

from __future__ import annotations

from dataclasses import dataclass

from sepipe.errors import check
from sepipe.registry import Registry, Tagged

LOSS_TERMS: Registry = Registry("loss term", key="train.loss[].term")


@dataclass(frozen=True)
class LossTermConfig(Tagged):
    """One term of the objective: `term` names it (LOSS_TERMS), `weight` scales it."""

    TAG = "term"
    term: str = "compressed_magnitude"
    weight: float = 1.0

    @classmethod
    def registry(cls) -> Registry:
        return LOSS_TERMS

    def validate(self, src: str) -> None:
        check(src, "train.loss[].term", self.term, self.term in LOSS_TERMS,
              "one of " + ", ".join(map(repr, LOSS_TERMS.names())))
        check(src, f"train.loss[{self.term}].weight", self.weight, self.weight >= 0, ">= 0")


@dataclass(frozen=True)
class CompressedTermConfig(LossTermConfig):
    """Spectral terms on |X|^exponent: 0.3 is the usual perceptual compression (loudness ~ power^0.3)."""

    exponent: float = 0.3

    def validate(self, src: str) -> None:
        super().validate(src)
        check(src, f"train.loss[{self.term}].exponent", self.exponent, 0 < self.exponent <= 1, "0 < exponent <= 1")


@dataclass(frozen=True)
class MultiResolutionTermConfig(CompressedTermConfig):
    """Compressed-magnitude distance of the resynthesised audio at several STFT resolutions."""

    fft_sizes: tuple[int, ...] = (128, 256, 1024)

    def validate(self, src: str) -> None:
        super().validate(src)
        check(src, "train.loss[multi_resolution].fft_sizes", list(self.fft_sizes),
              len(self.fft_sizes) >= 1 and all(n in (64, 128, 256, 512, 1024, 2048) for n in self.fft_sizes),
              "a non-empty list of powers of two from 64 to 2048")


@dataclass(frozen=True)
class WeightedDistortionTermConfig(CompressedTermConfig):
    """Speech distortion and residual noise as two terms; `noise_weight` is the residual noise's share."""

    noise_weight: float = 0.5

    def validate(self, src: str) -> None:
        super().validate(src)
        check(src, "train.loss[weighted_distortion].noise_weight", self.noise_weight, 0 < self.noise_weight < 1,
              "between 0 and 1 (exclusive)")


@dataclass(frozen=True)
class AsymmetricTermConfig(CompressedTermConfig):
    """Compressed-magnitude error where the estimate falls below the clean speech is scaled by
    `over_suppression_weight` (1 is `compressed_magnitude`; VoiceFilter-Lite used 10)."""

    over_suppression_weight: float = 2.0

    def validate(self, src: str) -> None:
        super().validate(src)
        check(src, "train.loss[asymmetric_magnitude].over_suppression_weight", self.over_suppression_weight,
              self.over_suppression_weight >= 1, ">= 1 (1 is the symmetric compressed_magnitude term)")


LOSS_TERMS.add("compressed_magnitude", "sepipe.loss.terms:compressed_magnitude", config=CompressedTermConfig,
               help="MSE of compressed magnitudes |E|^c vs |S|^c (per bin and frame)")
LOSS_TERMS.add("asymmetric_magnitude", "sepipe.loss.terms:asymmetric_magnitude", config=AsymmetricTermConfig,
               help="compressed-magnitude MSE with speech taken away (estimate below clean) weighted more")
LOSS_TERMS.add("compressed_complex", "sepipe.loss.terms:compressed_complex", config=CompressedTermConfig,
               help="MSE of compressed complex spectra |E|^c e^{j<E} vs |S|^c e^{j<S} (phase-aware)")
LOSS_TERMS.add("weighted_distortion", "sepipe.loss.terms:weighted_distortion", config=WeightedDistortionTermConfig,
               help="compressed speech distortion (mask on clean) and residual noise (mask on noise), weighted")
LOSS_TERMS.add("sisdr", "sepipe.loss.terms:negative_sisdr", config=LossTermConfig,
               help="minus the SI-SDR (dB) of the resynthesised audio; weights are per dB")
LOSS_TERMS.add("multi_resolution", "sepipe.loss.terms:multi_resolution", config=MultiResolutionTermConfig,
               help="compressed-magnitude MSE of the resynthesised audio at several STFT sizes")


def legacy_terms(sisdr_weight: float) -> tuple[LossTermConfig, ...]:
    """The objective of a config without `train.loss` (every run before loss terms were registered)."""
    return (CompressedTermConfig(term="compressed_magnitude", weight=1.0),
            LossTermConfig(term="sisdr", weight=sisdr_weight))
