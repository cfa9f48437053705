"""Microphone and level variation: a device EQ and input clipping drawn per mixture (`data.mic`).

A model trained on one flat capture chain meets, in the field, microphones that lose the lows, ports and
housings that ring, and inputs that clip; this draws such a chain for each mixture from the mixing rng.

Definitions (stated in the dataset manifest when mic is on):
- device EQ: a cascade of RBJ-cookbook biquads (Audio EQ Cookbook, R. Bristow-Johnson): a 2nd-order
  Butterworth high-pass (Q 1/sqrt(2), -3 dB at its cutoff), a low and a high shelf (shelf slope 1: the
  full gain at DC / at Nyquist, half of it in dB at the midpoint frequency) and 0-4 peaking filters (the
  full gain at their centre), applied with scipy.signal.sosfilt from rest to the speech (input and target
  alike) and to the noise before they are mixed: snr_db and level_dbfs are those of the device's output;
- mic_eq (mixtures.csv): the filters of a coloured mixture, e.g. "hp 120Hz; ls 251Hz +3.1dB;
  hs 4012Hz -2.0dB; pk 1500Hz -4.0dB Q1.25", exactly the (rounded) values filtered with; empty: flat;
- clipping: the mixed input driven clip_drive_db dB past the gain where its peak reaches full scale,
  hard-clipped there, and brought back, with the target, by that gain: the input's plateau sits
  clip_drive_db below its unclipped peak, the levels stay in data.level_dbfs, and the target (never
  clipped) fits 16-bit PCM. level_dbfs is the clipped input's level, snr_db the SNR before clipping;
- clip_fraction: the share of the input's samples the clipping changed (0 when not clipped).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sepipe.artifacts import tool_version
from sepipe.mic_config import MAX_PEAKS, MicConfig

SR = 16000
BUTTERWORTH_Q = 2.0 ** -0.5            # high-pass Q; shelves use it too (RBJ shelf slope S = 1)
ROW_COLUMNS = ("mic_eq", "clip_drive_db", "clip_fraction")
KIND_LABEL = {"highpass": "hp", "lowshelf": "ls", "highshelf": "hs", "peak": "pk"}


@dataclass(frozen=True)
class Biquad:
    kind: str                   # 'highpass', 'lowshelf', 'highshelf' or 'peak'
    freq_hz: float              # cutoff, shelf midpoint or peak centre
    gain_db: float = 0.0        # shelves and peaks
    q: float = BUTTERWORTH_Q

    def sos(self, sr: int = SR) -> np.ndarray:
        """The RBJ-cookbook coefficients as one second-order section [b0, b1, b2, 1, a1, a2]."""
        a = 10.0 ** (self.gain_db / 40.0)
        w0 = 2.0 * np.pi * self.freq_hz / sr
        cos, alpha = np.cos(w0), np.sin(w0) / (2.0 * self.q)
        if self.kind == "highpass":
            b, den = [(1 + cos) / 2, -(1 + cos), (1 + cos) / 2], [1 + alpha, -2 * cos, 1 - alpha]
        elif self.kind == "peak":
            b, den = [1 + alpha * a, -2 * cos, 1 - alpha * a], [1 + alpha / a, -2 * cos, 1 - alpha / a]
        elif self.kind in ("lowshelf", "highshelf"):
            s = 1.0 if self.kind == "lowshelf" else -1.0      # the high shelf mirrors the cosine terms
            root = 2.0 * np.sqrt(a) * alpha
            b = [a * ((a + 1) - s * (a - 1) * cos + root), s * 2 * a * ((a - 1) - s * (a + 1) * cos),
                 a * ((a + 1) - s * (a - 1) * cos - root)]
            den = [(a + 1) + s * (a - 1) * cos + root, -s * 2 * ((a - 1) + s * (a + 1) * cos),
                   (a + 1) + s * (a - 1) * cos - root]
        else:
            raise ValueError(f"unknown biquad kind {self.kind!r}")
        return np.array(b + den, np.float64) / den[0]

    def describe(self) -> str:
        text = f"{KIND_LABEL[self.kind]} {self.freq_hz:g}Hz"
        if self.kind != "highpass":
            text += f" {self.gain_db:+.1f}dB"
        return text + (f" Q{self.q:.2f}" if self.kind == "peak" else "")


@dataclass(frozen=True)
class Device:
    """One mixture's capture chain: its EQ (empty: flat) and its clipping drive (None: not clipped)."""

    filters: tuple[Biquad, ...]
    drive_db: float | None

    def sos(self, sr: int = SR) -> np.ndarray:
        return np.stack([f.sos(sr) for f in self.filters])

    def colour(self, speech: np.ndarray, noise: np.ndarray,
               target: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """(speech, noise, target) as the device's microphone hears them; unchanged when flat."""
        if not self.filters:
            return speech, noise, target
        from scipy.signal import sosfilt

        sos = self.sos()
        speech_out, noise_out = (sosfilt(sos, np.asarray(x, np.float64)) for x in (speech, noise))
        if target is None or target is speech:       # the 'reverberant' policy's target is the speech itself
            return speech_out, noise_out, None if target is None else speech_out
        return speech_out, noise_out, sosfilt(sos, np.asarray(target, np.float64))

    def clip(self, noisy: np.ndarray) -> tuple[np.ndarray, float]:
        """(the input hard-clipped `drive_db` below its peak, the share of samples changed); unchanged
        and 0 when not clipped. The target is not passed here: it is never clipped."""
        if self.drive_db is None:
            return noisy, 0.0
        x = np.asarray(noisy, np.float64)
        ceiling = float(np.max(np.abs(x))) * 10.0 ** (-self.drive_db / 20.0)
        fraction = float(np.mean(np.abs(x) > ceiling))
        return np.clip(x, -ceiling, ceiling).astype(np.float32), fraction

    def row(self, clip_fraction: float) -> dict:
        """mixtures.csv columns of a mic-enabled dataset."""
        return {"mic_eq": "; ".join(f.describe() for f in self.filters),
                "clip_drive_db": "" if self.drive_db is None else self.drive_db,
                "clip_fraction": round(clip_fraction, 6)}


def _log_uniform(rng: np.random.Generator, span: tuple[float, float]) -> float:
    """Frequencies and Q spread evenly per octave, as they are heard."""
    return float(np.exp(rng.uniform(np.log(span[0]), np.log(span[1]))))


def draw_device(cfg: MicConfig, rng: np.random.Generator) -> Device:
    """A device from one draw of the mixing rng (its own stream), so the mixing draws that follow do not
    depend on the mic settings. Within that stream every parameter is always drawn, so `probability`,
    `clip_probability` or `peaks` change which filters are used, never the values of the others.
    Values are rounded (1 Hz, 0.1 dB, 0.01 Q and dB of drive) so mixtures.csv states exactly what was applied."""
    sub = np.random.default_rng(int(rng.integers(0, 2**62)))
    coloured = sub.uniform() < cfg.probability
    clipped = sub.uniform() < cfg.clip_probability
    drive = round(float(sub.uniform(*cfg.clip_drive_db)), 2)
    highpass = Biquad("highpass", float(round(_log_uniform(sub, cfg.highpass_hz))))
    shelves = [Biquad(kind, float(round(_log_uniform(sub, span))), round(float(sub.uniform(*cfg.shelf_db)), 1))
               for kind, span in (("lowshelf", cfg.low_shelf_hz), ("highshelf", cfg.high_shelf_hz))]
    count = int(sub.integers(cfg.peaks[0], cfg.peaks[1] + 1))
    peaks = [Biquad("peak", float(round(_log_uniform(sub, cfg.peak_hz))), round(float(sub.uniform(*cfg.peak_db)), 1),
                    round(_log_uniform(sub, cfg.peak_q), 2)) for _ in range(MAX_PEAKS)]
    return Device((highpass, *shelves, *peaks[:count]) if coloured else (), drive if clipped else None)


def manifest_record(cfg: MicConfig, rows: list[dict]) -> dict:
    """The dataset manifest's `mic` section: the ranges, the definitions and what the fixed mixtures drew."""
    splits: dict[str, dict[str, int]] = {}
    for row in rows:
        counts = splits.setdefault(row["split"], {"mixtures": 0, "coloured": 0, "clipped": 0})
        counts["mixtures"] += 1
        counts["coloured"] += bool(row["mic_eq"])
        counts["clipped"] += row["clip_drive_db"] != ""
    return {**cfg.settings(), "filter_design": "RBJ Audio EQ Cookbook biquads, scipy.signal.sosfilt",
            "scipy": tool_version("scipy"),
            "definitions": __doc__.split("Definitions (stated in the dataset manifest when mic is on):\n")[1],
            "fixed_mixtures": splits}


def with_record(cfg: MicConfig, rows: list[dict], manifest: dict) -> dict:
    """A builder's manifest with the `mic` section when mic is on (unchanged when off)."""
    if cfg.enabled:
        manifest["mic"] = manifest_record(cfg, rows)
    return manifest
