"""Serving a built dataset: fixed valid/test pairs, training mixtures drawn on the fly."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np

from sepipe.audio import read_wav
from sepipe.config import DataConfig
from sepipe.data.conditions import read_conditions
from sepipe.data.generator import AudioPool, MixtureMaker
from sepipe.data.layout import (BUILD_COMMAND, FORMAT_VERSION, SR, Pair, config_record, dataset_dir,
                                read_manifest, spread)
from sepipe.data.reverb import open_bank
from sepipe.errors import MissingArtifactError

FIXED_TRAIN_MIXTURES = 10000        # the virtual pool training_files() picks from (Debian, DNS)


class Dataset:
    """A built dataset: fixed valid/test pairs and training data drawn on the fly."""

    def __init__(self, cfg: DataConfig, root: Path, manifest: dict):
        self.cfg = cfg
        self.root = root
        self.manifest = manifest
        self._maker: MixtureMaker | None = None
        self._conditions: dict[str, dict[str, dict[str, str]]] = {}

    @classmethod
    def open(cls, cfg: DataConfig) -> "Dataset":
        root = dataset_dir(cfg)
        manifest = read_manifest(root)
        if manifest is None:
            raise MissingArtifactError(root, f"the {cfg.source} dataset (size {cfg.size}, seed {cfg.seed}) "
                                       f"is not built; build it with `{BUILD_COMMAND}`")
        built = manifest.get("fingerprint", {}).get("config")
        if manifest.get("format_version") != FORMAT_VERSION or built != config_record(cfg):
            raise MissingArtifactError(root, f"was built for another data config ({built}); rebuild it with "
                                       f"`{BUILD_COMMAND}`")
        return cls(cfg, root, manifest)

    @property
    def source(self) -> str:
        return self.manifest["source"]

    def _path(self, rel: str) -> Path:
        return self.root / rel          # absolute paths (user corpora) stay absolute

    def _entries(self, split: str) -> list[dict]:
        if split not in self.manifest["splits"]:
            raise ValueError(f"unknown split {split!r}; expected one of {sorted(self.manifest['splits'])}")
        return sorted(self.manifest["splits"][split]["pairs"], key=lambda e: e["name"])

    def _load(self, entry: dict, conditions: dict[str, str]) -> Pair:
        noisy = self._path(entry["noisy"])
        return Pair(entry["name"], read_wav(noisy, SR), read_wav(self._path(entry["clean"]), SR), dict(conditions),
                    source=str(noisy))

    def pairs(self, split: str, limit: int = 0) -> list[Pair]:
        """Fixed pairs of 'valid' or 'test', sorted by name; `limit` > 0: that many, evenly spread over the names."""
        if split not in ("valid", "test"):
            raise ValueError(f"pairs() serves 'valid' and 'test', not {split!r}")
        conditions = self.conditions(split)
        return [self._load(e, conditions.get(e["name"], {})) for e in spread(self._entries(split), limit)]

    def conditions(self, split: str) -> dict[str, dict[str, str]]:
        """{pair name: its conditions} of a fixed split (all its pairs), read from mixtures.csv without
        loading audio; {} for a dataset without mixtures.csv."""
        if split not in self._conditions:
            self._conditions[split] = read_conditions(self.root / "mixtures.csv", split)
        return self._conditions[split]

    def training_files(self, count: int, seed: int) -> list[Pair]:
        """`count` whole training mixtures, picked with `seed` from a fixed set (same seed: same pairs)."""
        if self.source == "voicebank":
            entries = self._entries("train")
            picks = np.random.default_rng([seed, 81]).choice(len(entries), min(count, len(entries)), replace=False)
            return [self._load(entries[i], {}) for i in sorted(picks)]
        maker = self._training_maker()
        picks = sorted(int(i) for i in np.random.default_rng([seed, 22]).choice(FIXED_TRAIN_MIXTURES, count, replace=False))
        out = []
        for k in picks:
            rng = np.random.default_rng([self.cfg.seed, 21, k])
            clean, indices, _ = maker.utterance(rng, lambda: maker.draw_speech(rng))
            mixture = maker.mixture(rng, clean, indices)
            out.append(Pair(f"train_{k:05d}", mixture.noisy, mixture.clean))
        return out

    def training_segments(self, seed: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Endless (noisy, clean) float32 pairs of `segment_s` seconds: fresh mixtures for Debian/DNS,
        random crops of the fixed pairs for VoiceBank."""
        n = int(round(self.cfg.segment_s * SR))
        rng = np.random.default_rng([self.cfg.seed, 91, seed])
        if self.source == "voicebank":
            yield from self._voicebank_segments(rng, n)
            return
        maker = self._training_maker()
        while True:
            clean, indices = maker.segment(rng, n)
            mixture = maker.mixture(rng, clean, indices)
            yield mixture.noisy, mixture.clean

    def _voicebank_segments(self, rng: np.random.Generator, n: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        entries = self._entries("train")
        noisy_pool = AudioPool([self._path(e["noisy"]) for e in entries], [e["frames"] for e in entries])
        clean_pool = AudioPool([self._path(e["clean"]) for e in entries], [e["frames"] for e in entries])
        while True:
            i = int(rng.integers(0, len(entries)))
            frames = entries[i]["frames"]
            start = int(rng.integers(0, frames - n + 1)) if frames > n else 0
            noisy, clean = noisy_pool.read(i, start, min(n, frames)), clean_pool.read(i, start, min(n, frames))
            if len(noisy) < n:
                noisy, clean = (np.pad(x, (0, n - len(x))) for x in (noisy, clean))
            yield noisy.astype(np.float32), clean.astype(np.float32)

    def _training_maker(self) -> MixtureMaker:
        if self._maker is None:
            train = self.manifest["splits"]["train"]
            speech, noise = train["speech"], train["noise_pool"]
            speech_pool = AudioPool([self._path(e["path"]) for e in speech], [e["frames"] for e in speech],
                                    [e["id"] for e in speech])
            noise_names = [Path(e["path"]).name if len(e["parts"]) > 1 else e["parts"][0] for e in noise]
            noise_pool = AudioPool([self._path(e["path"]) for e in noise], [e["frames"] for e in noise], noise_names)
            self._maker = MixtureMaker(speech_pool, speech_pool.ids, noise_pool, noise_names,
                                       [e["category"] for e in noise], self.cfg.snr_db, self.cfg.level_dbfs,
                                       synthetic=self.source == "debian",
                                       reverb=open_bank(self.cfg.reverb, self.root, "train")
                                       if self.cfg.reverb.enabled else None,
                                       mic=self.cfg.mic if self.cfg.mic.enabled else None,
                                       speech_weights=prompt_weights(speech, train.get("speaker_weights")))
        return self._maker


def prompt_weights(speech: list[dict], speaker_weights: dict[str, float] | None) -> list[float] | None:
    """Each prompt's draw probability: its speaker's weight shared by the speaker's prompts (speech set v2);
    None where the manifest has no weights (prompts uniformly, as before)."""
    if not speaker_weights:
        return None
    counts: dict[str, int] = {}
    for entry in speech:
        counts[entry["speaker"]] = counts.get(entry["speaker"], 0) + 1
    return [speaker_weights[e["speaker"]] / counts[e["speaker"]] for e in speech]
