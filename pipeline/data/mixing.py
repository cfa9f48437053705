"""Signal-level tools of the data stage: silence trimming, levels, SNR mixing, synthetic noise.

Definitions used everywhere (and stated in the dataset manifest):
- speech-active power: mean square over the 20 ms frames of the clean speech whose
  power is within 40 dB of its loudest frame (pauses and gaps do not count);
- SNR (dB) = 10 log10(speech-active power / mean square of the noise over the whole mixture);
- mixture level (dBFS) = RMS of the whole noisy mixture; when the target level would
  make the mixture, the clean or the noise peak above 0.98, all three are scaled down
  together (the SNR is unchanged; the level actually reached is recorded).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

SR = 16000
ACTIVE_FRAME_S = 0.02
ACTIVE_RANGE_DB = 40.0
PEAK_LIMIT = 0.98
SILENT_POWER = 1e-10     # a noise segment below this mean square (-100 dBFS) is treated as silent


def frame_powers(x: np.ndarray, frame: int) -> np.ndarray:
    """Mean square of consecutive non-overlapping frames (a short tail is its own frame)."""
    x = np.asarray(x, dtype=np.float64)
    if len(x) == 0:
        return np.zeros(0)
    full = len(x) // frame
    powers = np.mean(np.square(x[:full * frame]).reshape(full, frame), axis=1) if full else np.zeros(0)
    if len(x) > full * frame:
        powers = np.append(powers, np.mean(np.square(x[full * frame:])))
    return powers


def active_power(x: np.ndarray, sr: int = SR) -> float:
    """Speech-active power: mean square of the 20 ms frames within 40 dB of the loudest frame."""
    powers = frame_powers(x, max(1, int(round(ACTIVE_FRAME_S * sr))))
    if len(powers) == 0 or powers.max() <= 0:
        return 0.0
    active = powers[powers >= powers.max() * 10.0 ** (-ACTIVE_RANGE_DB / 10.0)]
    return float(np.mean(active))


def measured_snr_db(clean: np.ndarray, noisy: np.ndarray, sr: int = SR) -> float:
    """SNR of a stored pair by the dataset's definition (noise = noisy - clean)."""
    noise = np.asarray(noisy, np.float64) - np.asarray(clean, np.float64)
    return float(10.0 * np.log10(active_power(clean, sr) / max(np.mean(np.square(noise)), 1e-20)))


def trim_silence(x: np.ndarray, sr: int = SR, range_db: float = 40.0, floor_dbfs: float = -60.0,
                 pad_s: float = 0.05) -> np.ndarray:
    """Cut leading and trailing silence.

    A 10 ms frame is speech when its power is within `range_db` of the loudest frame and above
    `floor_dbfs`; `pad_s` of the original signal is kept either side of the first/last speech frame.
    """
    frame = max(1, int(round(0.01 * sr)))
    powers = frame_powers(x, frame)
    if len(powers) == 0 or powers.max() <= 0:
        return x[:0]
    threshold = max(powers.max() * 10.0 ** (-range_db / 10.0), 10.0 ** (floor_dbfs / 10.0))
    speech = np.flatnonzero(powers >= threshold)
    if len(speech) == 0:
        return x[:0]
    pad = int(round(pad_s * sr))
    start = max(0, speech[0] * frame - pad)
    stop = min(len(x), (speech[-1] + 1) * frame + pad)
    return x[start:stop]


def normalise_rms(x: np.ndarray, dbfs: float = -25.0, peak: float = 0.99) -> np.ndarray:
    """Scale to an RMS of `dbfs` (or lower if that would peak above `peak`); float32."""
    x = np.asarray(x, np.float32)
    rms = float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if len(x) else 0.0
    if rms <= 0:
        return x
    gain = 10.0 ** (dbfs / 20.0) / rms
    top = float(np.max(np.abs(x))) * gain
    if top > peak:
        gain *= peak / top
    return (x * gain).astype(np.float32)


def fit_length(noise: np.ndarray, n: int, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """`n` samples of `noise` from a random offset, looping when it is shorter; (segment, offset)."""
    noise = np.asarray(noise, np.float32)
    offset = int(rng.integers(0, len(noise)))
    if len(noise) >= n:
        offset = int(rng.integers(0, len(noise) - n + 1))
        return noise[offset:offset + n].copy(), offset
    reps = int(np.ceil((offset + n) / len(noise)))
    return np.tile(noise, reps)[offset:offset + n].copy(), offset


def mix(clean: np.ndarray, noise: np.ndarray, snr_db: float, level_dbfs: float,
        sr: int = SR, target: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, float]:
    """Mix at `snr_db` and scale the mixture to `level_dbfs`: (noisy, clean_scaled, level_reached_dbfs).

    `noise` must have the length of `clean` and not be silent. `target` (reverberant mixtures: the
    target policy's speech, while `clean` is the reverberant speech the SNR is measured on) is scaled
    with the mixture and returned instead of `clean`; None: `clean` itself.
    """
    clean = np.asarray(clean, np.float64)
    noise = np.asarray(noise, np.float64)
    if len(noise) != len(clean):
        raise ValueError(f"noise has {len(noise)} samples, clean {len(clean)}")
    speech_power = active_power(clean, sr)
    noise_power = float(np.mean(np.square(noise)))
    if speech_power <= 0 or noise_power <= SILENT_POWER:
        raise ValueError("silent speech or noise cannot be mixed at an SNR")
    noise = noise * np.sqrt(speech_power / (noise_power * 10.0 ** (snr_db / 10.0)))
    noisy = clean + noise
    gain = 10.0 ** (level_dbfs / 20.0) / np.sqrt(np.mean(np.square(noisy)))
    peaks = [np.max(np.abs(noisy)), np.max(np.abs(clean)), np.max(np.abs(noise))]
    if target is not None:
        target = np.asarray(target, np.float64)
        peaks.append(np.max(np.abs(target)))
    top = gain * max(peaks)
    if top > PEAK_LIMIT:
        gain *= PEAK_LIMIT / top
    noisy, clean = noisy * gain, (clean if target is None else target) * gain
    level = float(10.0 * np.log10(np.mean(np.square(noisy))))
    return noisy.astype(np.float32), clean.astype(np.float32), level


# --- synthetic noise --------------------------------------------------------------------------

COLOURS = ("white", "pink", "brown")


def coloured_noise(n: int, colour: str, rng: np.random.Generator) -> np.ndarray:
    """Gaussian noise with a 1/f^0 (white), 1/f (pink) or 1/f^2 (brown) power spectrum, unit RMS."""
    exponent = {"white": 0.0, "pink": 1.0, "brown": 2.0}[colour]
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n)
    freqs[0] = freqs[1] if n > 1 else 1.0
    spectrum *= freqs ** (-exponent / 2.0)
    spectrum[0] = 0.0
    out = np.fft.irfft(spectrum, n=n)
    return (out / (np.sqrt(np.mean(np.square(out))) + 1e-12)).astype(np.float32)


def hum(n: int, rng: np.random.Generator, sr: int = SR) -> tuple[np.ndarray, str]:
    """Mains hum: 50 or 60 Hz with 4-12 harmonics of random decaying amplitude and phase, unit RMS."""
    mains = float(rng.choice([50.0, 60.0]))
    mains *= 1.0 + rng.uniform(-0.005, 0.005)          # the grid drifts a little
    harmonics = int(rng.integers(4, 13))
    decay = rng.uniform(0.5, 1.5)
    t = np.arange(n) / sr
    out = np.zeros(n)
    for k in range(1, harmonics + 1):
        if k * mains >= sr / 2:
            break
        amplitude = k ** (-decay) * rng.uniform(0.3, 1.0)
        out += amplitude * np.sin(2 * np.pi * k * mains * t + rng.uniform(0, 2 * np.pi))
    out += 0.01 * rng.standard_normal(n)                  # a little broadband floor
    return (out / np.sqrt(np.mean(np.square(out)))).astype(np.float32), f"{mains:.2f}Hz x{harmonics}"


def babble(utterances: Sequence[np.ndarray], n: int, rng: np.random.Generator) -> np.ndarray:
    """Sum of the given utterances (each looped/cropped to `n`, at equal active power), unit RMS."""
    out = np.zeros(n)
    for utterance in utterances:
        segment, _ = fit_length(utterance, n, rng)
        power = active_power(segment)
        if power > 0:
            out += segment / np.sqrt(power)
    rms = np.sqrt(np.mean(np.square(out)))
    return (out / rms).astype(np.float32) if rms > 0 else out.astype(np.float32)


# --- assembling speech and short clips ---------------------------------------------------------

def concatenate(parts: Sequence[np.ndarray], gaps: Sequence[int], lead: int = 0, tail: int = 0) -> np.ndarray:
    """parts[0] + zeros(gaps[0]) + parts[1] + ..., with `lead`/`tail` zeros around."""
    pieces = [np.zeros(lead, np.float32)]
    for i, part in enumerate(parts):
        if i:
            pieces.append(np.zeros(gaps[i - 1], np.float32))
        pieces.append(np.asarray(part, np.float32))
    pieces.append(np.zeros(tail, np.float32))
    return np.concatenate(pieces)


def cut_at_quiet_point(x: np.ndarray, max_len: int, min_len: int, sr: int = SR) -> np.ndarray:
    """Shorten `x` to at most `max_len` samples, cutting at the quietest 10 ms frame in [min_len, max_len]."""
    if len(x) <= max_len:
        return x
    frame = int(0.01 * sr)
    lo, hi = min_len // frame, max_len // frame
    powers = frame_powers(x[lo * frame:hi * frame], frame)
    cut = (lo + int(np.argmin(powers))) * frame if len(powers) else max_len
    return x[:max(cut, min_len)]


def compose_clips(clips: Sequence[np.ndarray], rng: np.random.Generator, gap_s: tuple[float, float],
                  sr: int = SR) -> np.ndarray:
    """One track of short clips in random order separated by random gaps (e.g. key presses -> typing)."""
    order = rng.permutation(len(clips))
    gaps = [int(rng.uniform(*gap_s) * sr) for _ in range(max(0, len(clips) - 1))]
    return concatenate([clips[i] for i in order], gaps, tail=int(rng.uniform(*gap_s) * sr))
