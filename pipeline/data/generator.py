"""Drawing mixtures: speech from a pool of prompts, noise by category, SNR and level at random.

Used by the build (fixed valid/test mixtures) and by `Dataset` at training time (fresh
segments every epoch, and the fixed training mixtures used for calibration), so both
follow exactly the same rules.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import soundfile as sf

from sepipe.audio import check_samples, to_int16
from sepipe.data import mixing
from sepipe.data.corpus import check_content
from sepipe.data.mic import draw_device
from sepipe.data.reverb import Reverberator
from sepipe.mic_config import MicConfig

SR = 16000
SYNTHETIC_CATEGORIES = ("babble", "coloured", "hum")
# Relative probability of each noise category when a mixture is drawn at random.
CATEGORY_WEIGHTS = {"ambient": 1.0, "effects": 1.0, "city": 1.0, "music": 1.0, "vehicle": 1.0,
                    "typing": 1.0, "babble": 1.0, "coloured": 1.0, "hum": 0.5, "noise": 1.0,
                    # noise set v2 (sepipe.data.noise_sets)
                    "domestic": 1.0, "machine": 1.0, "street": 1.0, "crowd": 1.0}
BABBLE_TALKERS = (3, 6)
UTTERANCE_S = (2.0, 6.0)            # fixed mixtures: length range
GAP_S = (0.15, 0.5)                 # silence between concatenated prompts
EDGE_S = (0.1, 0.4)                 # silence before the first and after the last prompt
PRELOAD_LIMIT_S = 2 * 3600          # pools up to 2 h are kept in memory (int16)


class AudioPool:
    """A list of 16 kHz mono files, read whole or by window; kept in memory when small.

    What is read is checked (`sepipe.audio.sample_problem`: a file spoilt after its dataset was built is
    one line naming it, not NaN in training). `check`: a corpus role (`corpus.ROLES`): each file is also
    decoded and checked whole on its first read (silent, too short): a build's valid and test pools,
    whose files are only known as the mixtures draw them.
    """

    def __init__(self, paths: Sequence[Path], frames: Sequence[int], ids: Sequence[str] | None = None,
                 check: str | None = None):
        self.paths = [Path(p) for p in paths]
        self.frames = [int(f) for f in frames]
        self.ids = list(ids) if ids is not None else [p.stem for p in self.paths]
        self.check = check
        self._cache: dict[int, np.ndarray] = {}
        self._checked: set[int] = set()
        self.preload = sum(self.frames) <= PRELOAD_LIMIT_S * SR

    def __len__(self) -> int:
        return len(self.paths)

    def read(self, i: int, start: int = 0, frames: int = -1) -> np.ndarray:
        if self.check is not None and i not in self._checked:
            check_content(self.paths[i], self.check, self.frames[i])
            self._checked.add(i)
        if self.preload:
            if i not in self._cache:
                self._cache[i] = _read_int16(self.paths[i])
            stop = None if frames < 0 else start + frames
            return self._cache[i][start:stop].astype(np.float32) / 32768.0
        audio, _ = sf.read(str(self.paths[i]), start=start, frames=frames, dtype="float32", always_2d=True)
        check_samples(self.paths[i], audio[:, 0], SR, offset=start)
        return np.clip(audio[:, 0], -1.0, 1.0)        # a float file over full scale: as the preloaded pool

    def window(self, i: int, n: int, rng: np.random.Generator) -> tuple[np.ndarray, int]:
        """`n` samples of item i from a random offset (looped when the item is shorter)."""
        total = self.frames[i]
        if total >= n:
            offset = int(rng.integers(0, total - n + 1))
            return self.read(i, offset, n), offset
        return mixing.fit_length(self.read(i), n, rng)


def _read_int16(path: Path) -> np.ndarray:
    """The first channel as 16-bit samples. libsndfile scales integer files itself, but reads a float
    file as int16 unscaled (0.2 -> 0): those are read as float and clipped at full scale here."""
    with sf.SoundFile(str(path)) as handle:
        if handle.subtype in ("FLOAT", "DOUBLE"):
            audio = handle.read(dtype="float32", always_2d=True)[:, 0]
            check_samples(path, audio, SR)
            return to_int16(audio)
        audio = handle.read(dtype="int16", always_2d=True)
    return np.ascontiguousarray(audio[:, 0])


@dataclass
class Mixture:
    noisy: np.ndarray
    clean: np.ndarray
    row: dict


class MixtureMaker:
    """Speech pool + noise pool (+ synthetic categories) -> mixtures, all draws from a given rng."""

    def __init__(self, speech: Sequence[np.ndarray] | AudioPool, speech_ids: Sequence[str],
                 noise: Sequence[np.ndarray] | AudioPool, noise_names: Sequence[str],
                 noise_categories: Sequence[str], snr_db: tuple[float, float],
                 level_dbfs: tuple[float, float], synthetic: bool = True, reverb: Reverberator | None = None,
                 mic: MicConfig | None = None, speech_weights: Sequence[float] | None = None):
        self.speech = speech
        # None: prompts drawn uniformly (the stream of before); else each prompt's draw probability (speech set v2:
        # its speaker's weight shared by the speaker's prompts, sepipe.data.speech_sets)
        self._speech_cdf = None if speech_weights is None else np.cumsum(speech_weights) / np.sum(speech_weights)
        self.reverb = reverb          # None: dry mixtures, and no draw for reverb (the rng stream of before)
        self.mic = mic                # None: a flat, unclipped capture chain, and no draw for it (ditto)
        self.speech_ids = list(speech_ids)
        self.noise = noise
        self.noise_names = list(noise_names)
        self.noise_categories = list(noise_categories)
        self.snr_db = snr_db
        self.level_dbfs = level_dbfs
        self.by_category: dict[str, list[int]] = {}
        for i, category in enumerate(self.noise_categories):
            self.by_category.setdefault(category, []).append(i)
        self.categories = sorted(self.by_category)
        if synthetic:
            self.categories += ["coloured", "hum"]
            if len(self.speech_ids) > BABBLE_TALKERS[1] + 1:
                self.categories.append("babble")
        weights = np.array([CATEGORY_WEIGHTS.get(c, 1.0) for c in self.categories])
        self.weights = weights / weights.sum()

    # --- speech ---------------------------------------------------------------------------------

    def draw_speech(self, rng: np.random.Generator) -> int:
        """A random prompt index: uniform, or by `speech_weights`."""
        if self._speech_cdf is None:
            return int(rng.integers(0, len(self.speech_ids)))
        return min(int(np.searchsorted(self._speech_cdf, rng.random(), side="right")), len(self.speech_ids) - 1)

    def _speech(self, i: int) -> np.ndarray:
        return self.speech.read(i) if isinstance(self.speech, AudioPool) else np.asarray(self.speech[i], np.float32)

    def utterance(self, rng: np.random.Generator, next_index: Callable[[], int],
                  length_s: tuple[float, float] = UTTERANCE_S) -> tuple[np.ndarray, list[int], list[float]]:
        """A 2-6 s utterance: prompts from `next_index()` joined by short gaps; (audio, indices, offsets_s)."""
        target = rng.uniform(*length_s) * SR
        lead, tail = (int(rng.uniform(*EDGE_S) * SR) for _ in range(2))
        parts, indices, gaps = [], [], []
        total = lead + tail
        while total < target:
            index = next_index()
            if parts:
                gaps.append(int(rng.uniform(*GAP_S) * SR))
                total += gaps[-1]
            part = self._speech(index)
            if len(part) > length_s[1] * SR:         # a long recording: a random window of it
                start = int(rng.integers(0, len(part) - int(length_s[1] * SR) + 1))
                part = part[start:start + int(length_s[1] * SR)]
            parts.append(part)
            indices.append(index)
            total += len(part)
        audio = mixing.concatenate(parts, gaps, lead=lead, tail=tail)
        offsets, position = [], lead
        for k, part in enumerate(parts):
            offsets.append(round(position / SR, 3))
            position += len(part) + (gaps[k] if k < len(gaps) else 0)
        audio = mixing.cut_at_quiet_point(audio, int(length_s[1] * SR), int(max(length_s[0], 0.75 * length_s[1]) * SR))
        return audio, indices, offsets

    def segment(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, list[int]]:
        """`n` samples of speech: random prompts joined by short gaps, cropped at a random offset."""
        for _ in range(20):
            parts, indices, gaps, total = [], [], [], 0
            while total < n:
                index = self.draw_speech(rng)
                if parts:
                    gaps.append(int(rng.uniform(*GAP_S) * SR))
                    total += gaps[-1]
                part = self._speech_window(index, n, rng)
                parts.append(part)
                indices.append(index)
                total += len(part)
            audio = mixing.concatenate(parts, gaps)
            start = int(rng.integers(0, len(audio) - n + 1))
            audio = audio[start:start + n]
            if mixing.active_power(audio) > 0:
                return audio, indices
        raise RuntimeError("the speech pool yields only silence")

    def _speech_window(self, index: int, n: int, rng: np.random.Generator) -> np.ndarray:
        if isinstance(self.speech, AudioPool):
            if self.speech.frames[index] > n:
                return self.speech.window(index, n, rng)[0]
            return self.speech.read(index)
        return np.asarray(self.speech[index], np.float32)

    # --- noise ----------------------------------------------------------------------------------

    def draw_category(self, rng: np.random.Generator) -> str:
        return str(self.categories[int(rng.choice(len(self.categories), p=self.weights))])

    def balanced_categories(self, rng: np.random.Generator, count: int) -> list[str]:
        """`count` categories, each used equally often (seeded order): fixed sets cover every category."""
        out: list[str] = []
        while len(out) < count:
            out += [self.categories[i] for i in rng.permutation(len(self.categories))]
        return out[:count]

    def noise_for(self, rng: np.random.Generator, category: str, n: int,
                  exclude: Sequence[int] = (), babble_pool: Sequence[int] | None = None) -> tuple[np.ndarray, str, float]:
        """`n` samples of noise of `category`; (audio, source description, offset_s)."""
        if category == "coloured":
            colour = str(rng.choice(mixing.COLOURS))
            return mixing.coloured_noise(n, colour, rng), f"synthetic:{colour}", 0.0
        if category == "hum":
            audio, what = mixing.hum(n, rng)
            return audio, f"synthetic:hum {what}", 0.0
        if category == "babble":
            excluded = set(exclude)
            pool = [i for i in (babble_pool if babble_pool is not None else range(len(self.speech_ids)))
                    if i not in excluded]
            talkers = int(rng.integers(BABBLE_TALKERS[0], BABBLE_TALKERS[1] + 1))
            chosen = [pool[i] for i in rng.choice(len(pool), size=min(talkers, len(pool)), replace=False)]
            audio = mixing.babble([self._speech_window(i, n, rng) for i in chosen], n, rng)
            return audio, "babble:" + ";".join(self.speech_ids[i] for i in chosen), 0.0
        members = self.by_category[category]
        for _ in range(10):
            item = members[int(rng.integers(0, len(members)))]
            if isinstance(self.noise, AudioPool):
                audio, offset = self.noise.window(item, n, rng)
            else:
                audio, offset = mixing.fit_length(self.noise[item], n, rng)
            if np.mean(np.square(audio, dtype=np.float64)) > mixing.SILENT_POWER:
                return audio, self.noise_names[item], round(offset / SR, 3)
        colour = str(rng.choice(mixing.COLOURS))     # every try hit silence: fall back to synthetic
        return mixing.coloured_noise(n, colour, rng), f"synthetic:{colour}", 0.0

    def mixture(self, rng: np.random.Generator, clean: np.ndarray, speech_indices: Sequence[int],
                category: str | None = None, babble_pool: Sequence[int] | None = None) -> Mixture:
        category = category or self.draw_category(rng)
        noise, source, offset = self.noise_for(rng, category, len(clean), exclude=speech_indices,
                                               babble_pool=babble_pool)
        snr = float(rng.uniform(*self.snr_db))
        level = float(rng.uniform(*self.level_dbfs))
        room = self.reverb.draw(rng) if self.reverb is not None else None
        device = draw_device(self.mic, rng) if self.mic is not None else None
        # reverberant mixtures: the SNR is measured on the reverberant speech, the target is the policy's
        speech, target = (clean, None) if room is None else self.reverb.apply(clean, room)
        if device is not None:        # the microphone colours speech and noise before the level is set
            speech, noise, target = device.colour(speech, noise, target)
        noisy, clean_scaled, reached = mixing.mix(speech, noise, snr, level, target=target)
        clip_fraction = 0.0
        if device is not None and device.drive_db is not None:    # the input clips, the target never does
            noisy, clip_fraction = device.clip(noisy)
            reached = float(10.0 * np.log10(np.mean(np.square(noisy, dtype=np.float64))))
        row = {"noise_category": category, "noise_source": source, "noise_offset_s": offset,
               "snr_db": round(snr, 4), "target_level_dbfs": round(level, 4), "level_dbfs": round(reached, 4),
               "clean_sources": ";".join(self.speech_ids[i] for i in speech_indices),
               "duration_s": round(len(clean) / SR, 4)}
        if self.reverb is not None:
            row.update(reverb_row(self.reverb, room))
        if device is not None:
            row.update(device.row(clip_fraction))
        return Mixture(noisy, clean_scaled, row)


def reverb_row(reverb: Reverberator, room: int | None) -> dict:
    """mixtures.csv columns of a reverb-enabled dataset (empty for a dry mixture)."""
    if room is None:
        return {"rt60_s": "", "reverb_room": "", "reverb_target": ""}
    return {"rt60_s": reverb.rooms[room].rt60_measured_s, "reverb_room": room, "reverb_target": reverb.cfg.target}
