"""Clips: fixed windows of noisy, enhanced and clean speech, and the predictor's log-mel features.

A clip is `clips.seconds` of audio starting at k * seconds (k < clips.per_file) in a mixture of the
project's dataset; mixtures shorter than a window give none (no padding: a padded tail would be a
quality cue of its own). Every mixture window gives one clip per system: `noisy`, `clean` and one per
enhancer (the enhancer runs over the whole mixture, then the same window is cut, so its start-up
transient is inside the clip exactly as on the device). Splits: `train` = training mixtures drawn from
the train speakers and noises (`Dataset.training_files`), `valid` and `test` = the fixed splits, whose
speakers and noise files are disjoint from train (the dataset's manifest records it): `test` is the
held-out set every figure is measured on.

Features (outside the network, as the enhancer's are): 512-point frames every 256 samples (32 ms / 16 ms
at 16 kHz), periodic Hann window, power spectrum, `mels` triangular mel filters (HTK scale, 0-8 kHz,
unit peak), natural log with a 1e-6 floor: (frames, mels) float32.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sepipe.data.layout import SR

log = logging.getLogger(__name__)

FFT = 512
HOP = 256
LOG_FLOOR = 1e-6
SPLITS = ("train", "valid", "test")


@dataclass(frozen=True)
class Clip:
    split: str
    mixture: str         # the mixture's name in its split
    window: int          # k: the clip starts at k * seconds
    system: str          # 'noisy', 'clean' or an enhancer's name
    audio: np.ndarray    # float32, 16 kHz
    clean: np.ndarray    # the clean reference of the same window


def frames_per_clip(seconds: float) -> int:
    return 1 + (int(round(seconds * SR)) - FFT) // HOP


def mel_filters(mels: int) -> np.ndarray:
    """(FFT // 2 + 1, mels) triangular filters on the HTK mel scale from 0 Hz to SR / 2, unit peak."""
    def to_mel(hz):
        return 2595.0 * np.log10(1.0 + np.asarray(hz, dtype=np.float64) / 700.0)

    edges_hz = 700.0 * (10 ** (np.linspace(0.0, to_mel(SR / 2), mels + 2) / 2595.0) - 1.0)
    bins_hz = np.arange(FFT // 2 + 1) * SR / FFT
    low, centre, high = edges_hz[:-2, None], edges_hz[1:-1, None], edges_hz[2:, None]
    rising = (bins_hz[None, :] - low) / (centre - low)
    falling = (high - bins_hz[None, :]) / (high - centre)
    return np.maximum(0.0, np.minimum(rising, falling)).T.astype(np.float32)


def log_mel(audio: np.ndarray, mels: int) -> np.ndarray:
    """(frames, mels) float32 log-mel features of `audio` (see the module docstring)."""
    audio = np.asarray(audio, dtype=np.float32)
    count = 1 + (len(audio) - FFT) // HOP
    index = np.arange(FFT)[None, :] + HOP * np.arange(count)[:, None]
    window = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(FFT) / FFT)).astype(np.float32)
    power = np.abs(np.fft.rfft(audio[index] * window, axis=1)) ** 2
    return np.log(power.astype(np.float32) @ mel_filters(mels) + LOG_FLOOR).astype(np.float32)


def windows(noisy: np.ndarray, seconds: float, per_file: int) -> list[int]:
    """Start samples of the whole windows taken from a mixture of len(noisy) samples."""
    n = int(round(seconds * SR))
    return [k * n for k in range(per_file) if (k + 1) * n <= len(noisy)]


def load_enhancers(enhancers) -> dict[str, object]:
    """{name: sepipe.enhance.EnhanceModel} in the TFLite interpreter (bit-stable, fast on the host)."""
    from sepipe.enhance import load_model

    return {e.name: load_model(Path(e.model), None, "tflite") for e in enhancers}


def enhance(model, noisy: np.ndarray) -> np.ndarray:
    """`noisy` through an enhancer, streamed as `sepipe enhance` does, trimmed to the input's length."""
    from sepipe.enhance import enhance_array

    model.runner.reset()
    out = enhance_array(model.runner, model.features, noisy, 4 * SR)
    return np.pad(out, (0, max(0, len(noisy) - len(out))))[:len(noisy)].astype(np.float32)


def mixtures(dataset, split: str, clips_cfg, seed: int) -> list:
    """The mixtures (sepipe.data.layout.Pair) of one split."""
    if split == "train":
        return dataset.training_files(clips_cfg.train_files, seed)
    return dataset.pairs(split, clips_cfg.eval_files)


def split_clips(dataset, split: str, cfg, models: dict[str, object]) -> list[Clip]:
    """Every clip of `split`, in a fixed order (mixture, window, system)."""
    clips = []
    n = int(round(cfg.clips.seconds * SR))
    for pair in mixtures(dataset, split, cfg.clips, cfg.seed):
        starts = windows(pair.noisy, cfg.clips.seconds, cfg.clips.per_file)
        if not starts:
            continue
        outputs = {"noisy": pair.noisy, "clean": pair.clean}
        outputs.update({name: enhance(model, pair.noisy) for name, model in models.items()})
        for k, start in enumerate(starts):
            clean = pair.clean[start:start + n].astype(np.float32)
            for system, audio in outputs.items():
                clips.append(Clip(split, pair.name, k, system, audio[start:start + n].astype(np.float32), clean))
    return clips
