"""Where a built dataset lives, what identifies it, and the sizes it is built to.

Folder `<cache_dir>/datasets/<source>-<size>-seed<seed>[-<root hash>][-noise<set>][-speech<set>][-test<A>-valid<B>]
[-reverb<hash>][-mic<hash>]/`
(the bracketed parts only away from the defaults: a default config names the folder of before):
  train/clean/*.wav        speech pool (Debian: trimmed prompts; speech set v2 adds the extra voices' clips)
  train/noise/*.wav        noise pool (files, or ~15 s tracks assembled from short clips)
  valid|test/noisy/NAME.wav, valid|test/clean/NAME.wav    fixed mixtures (VoiceBank-like)
  mixtures.csv             how each fixed mixture was made
  manifest.json            written last; a build without it is incomplete and is redone
User corpora are referenced in place (absolute paths in the manifest), not copied.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sepipe import debian_options
from sepipe.config import DataConfig
from sepipe.data import noise_sets, speech_sets

FORMAT_VERSION = 1
SR = 16000
BUILD_COMMAND = "sepipe data build <experiment.yaml>"


@dataclass(frozen=True)
class Size:
    train_speech_s: float | None      # training speech pool (None: all)
    eval_mixtures: int                # fixed mixtures in valid and in test
    eval_speech_s: float | None       # prompts decoded per valid/test speaker (targets + babble)
    train_noise_s: float | None       # noise per category in the training pool
    noise_crop_s: float | None        # longer noise files are cropped to a random window this long
    vb_train_pairs: int | None        # VoiceBank: training pairs kept


SIZES = {
    "small": Size(train_speech_s=8 * 60, eval_mixtures=16, eval_speech_s=4 * 60, train_noise_s=90,
                  noise_crop_s=30, vb_train_pairs=300),
    "full": Size(train_speech_s=None, eval_mixtures=100, eval_speech_s=None, train_noise_s=None,
                 noise_crop_s=None, vb_train_pairs=None),
}


@dataclass(frozen=True)
class Pair:
    name: str
    noisy: np.ndarray    # float32, 16 kHz
    clean: np.ndarray    # float32, 16 kHz, same length
    # Test conditions from mixtures.csv, e.g. {"room": "dry", "snr": "0-10 dB"} (sepipe.data.conditions);
    # {} where the dataset records none (pre-mixed corpora, training mixtures).
    conditions: dict[str, str] = field(default_factory=dict, compare=False)
    # The noisy file it was read from ('' for a mixture made in memory): what an error about it names.
    source: str = field(default="", compare=False)


def dataset_dir(cfg: DataConfig) -> Path:
    name = f"{cfg.source}-{cfg.size}-seed{cfg.seed}"
    if cfg.source != "debian":
        name += "-" + hashlib.sha256(str(resolved_root(cfg)).encode()).hexdigest()[:8]
    if cfg.noise_set != debian_options.DEFAULT_NOISE_SET:     # beside the v1 build, never over it
        name += f"-noise{cfg.noise_set}"
    if cfg.speech_set != debian_options.DEFAULT_SPEECH_SET:   # likewise: -speechv2
        name += f"-speech{cfg.speech_set}"
    if not debian_options.is_default_rotation(cfg):          # e.g. -testCarlo-validJune
        name += f"-test{cfg.test_speaker}-valid{cfg.valid_speaker}"
    if cfg.reverb.enabled:        # beside the dry build of the same seed, never over it
        name += "-reverb" + hashlib.sha256(json.dumps(reverb_record(cfg)).encode()).hexdigest()[:8]
    if cfg.mic.enabled:           # likewise beside the flat build
        name += "-mic" + hashlib.sha256(json.dumps(cfg.mic.settings()).encode()).hexdigest()[:8]
    return Path(cfg.cache_dir) / "datasets" / name


def resolved_root(cfg: DataConfig) -> Path | None:
    return Path(cfg.root).expanduser().resolve() if cfg.root else None


def config_record(cfg: DataConfig) -> dict[str, Any]:
    """The config fields the dataset's bytes depend on (not cache_dir, not segment_s); `reverb` and `mic` only
    when on, `noise_set`, `speech_set` and `speakers` only when not the default, so the record of a dataset built before
    they existed (and its reuse) is unchanged."""
    record = {"source": cfg.source, "size": cfg.size, "seed": cfg.seed, "sample_rate": cfg.sample_rate,
              "snr_db": list(cfg.snr_db), "level_dbfs": list(cfg.level_dbfs),
              "root": str(resolved_root(cfg)) if cfg.source != "debian" else None}
    if cfg.reverb.enabled:
        record["reverb"] = reverb_record(cfg)
    if cfg.mic.enabled:
        record["mic"] = cfg.mic.settings()
    if cfg.noise_set != debian_options.DEFAULT_NOISE_SET:
        record["noise_set"] = cfg.noise_set
        record["noise_rules_sha256"] = noise_sets.rules_sha256(cfg.noise_set)
    if cfg.speech_set != debian_options.DEFAULT_SPEECH_SET:
        record["speech_set"] = cfg.speech_set
        record["speech_rules_sha256"] = speech_sets.rules_sha256(cfg.speech_set)
    if not debian_options.is_default_rotation(cfg):
        record["speakers"] = {split: list(names) for split, names in debian_options.split_speakers(cfg).items()}
    return record


def reverb_record(cfg: DataConfig) -> dict[str, Any]:
    r = cfg.reverb
    record = {"probability": r.probability, "rt60_s": list(r.rt60_s), "room_m": list(r.room_m),
              "distance_m": list(r.distance_m), "target": r.target, "rooms": r.rooms}
    if r.rir_dir is not None:     # the files' bytes, not only their folder: new or edited RIRs rebuild
        from sepipe.data.reverb import measured_files_sha256
        record.update(rir_dir=str(Path(r.rir_dir).resolve()), rir_sha256=measured_files_sha256(r.rir_dir))
    return record


def read_manifest(root: Path) -> dict | None:
    try:
        return json.loads((root / "manifest.json").read_text())
    except (OSError, ValueError):
        return None


def spread(items: list, count: int) -> list:
    """`count` items evenly spread over a sorted list (0 or more than there are: all)."""
    if count <= 0 or count >= len(items):
        return list(items)
    return [items[i] for i in np.linspace(0, len(items) - 1, count).round().astype(int)]
