"""The gain a model's mask head gives each frame, and how it is applied: one definition for numpy and
TensorFlow (the firmware's se_apply_gain in firmware_stub/se_dsp.c follows it too).

Two kinds, told apart by the head's width (a mask head has `bins` or `2 * bins` values):

- real: `bins` gains in [0, 1] (sigmoid head); X'[k] = g[k] X[k]. It scales each bin and keeps the
  noisy phase, so even the ideal real mask stays below the clean target on DNSMOS SIG (issue 10's
  oracle: SIG 3.18 against the target's 3.36).
- complex: `2 * bins` values in [-1, 1] (tanh head), every real part then every imaginary part;
  X'[k] = (a[k] + j b[k]) X[k]: magnitude and phase per bin (Williamson's complex ratio mask),
  |gain| <= sqrt(2). The bounded oracle reaches SIG 3.34, next to the target's own 3.36.

Both are one multiply per bin after the model, so the streaming contract (features in, one frame per
call, states fed back) is the same; only the head's width, activation and range differ.
"""

from __future__ import annotations

import numpy as np

KINDS = ("real", "complex")
ACTIVATION = {"real": "sigmoid", "complex": "tanh"}
RANGE = {"real": (0.0, 1.0), "complex": (-1.0, 1.0)}
ROLE = {"real": "mask", "complex": "complex_mask"}


def head_size(kind: str, bins: int) -> int:
    """Values of a `kind` mask head for `bins` frequency bins."""
    return int(bins) * (2 if kind == "complex" else 1)


def kind_of(width: int, bins: int) -> str:
    """'real' or 'complex' from a mask's width; ValueError for any other width."""
    if width == bins:
        return "real"
    if width == 2 * bins:
        return "complex"
    raise ValueError(f"a mask of {width} values per frame for {bins} bins; a real mask has {bins} "
                     f"(one gain per bin), a complex one {2 * bins} (real parts, then imaginary parts)")


def apply(spectrum: np.ndarray, gain: np.ndarray) -> np.ndarray:
    """The spectrum (T, bins) times a real (T, bins) or complex (T, 2 * bins) gain, as complex64."""
    bins = spectrum.shape[-1]
    gain = np.asarray(gain, np.float32)
    if kind_of(gain.shape[-1], bins) == "complex":
        gain = gain[..., :bins] + np.complex64(1j) * gain[..., bins:]
    return (spectrum * gain).astype(np.complex64)


def apply_tf(gain, re, im):
    """(re, im) of the spectrum (..., bins) times a real or complex gain, in TensorFlow (training)."""
    bins = re.shape[-1]
    if kind_of(gain.shape[-1], bins) == "real":
        return gain * re, gain * im
    a, b = gain[..., :bins], gain[..., bins:]
    return a * re - b * im, a * im + b * re
