"""Datasets over a user's corpus, referenced in place: DNS-style (mixed here) and VoiceBank-DEMAND (pre-mixed).

The layouts, the listing checks and the speaker splits are in `sepipe.data.corpus`. A build is planned
first (`plan_dns`, `plan_voicebank`: which files the dataset reads) so that the files read later, in
training or evaluation, are decoded and checked (`check_files`) before an old build is removed; the
DNS valid and test sources are checked as the mixtures are made from them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sepipe.config import DataConfig
from sepipe.data import corpus, generator, mic, reverb
from sepipe.data.fixed import DEFINITIONS, minutes, tally, write_csv, write_fixed
from sepipe.data.generator import AudioPool, MixtureMaker
from sepipe.data.layout import SIZES, SR, resolved_root, spread

log = logging.getLogger(__name__)


def _pick_until(files: list[corpus.AudioFile], budget_s: float | None, rng: np.random.Generator) -> list[corpus.AudioFile]:
    if budget_s is None:
        return files
    chosen, total = [], 0
    for i in rng.permutation(len(files)):
        if total >= budget_s * SR:
            break
        chosen.append(files[i])
        total += files[i].frames
    return sorted(chosen, key=lambda f: f.path)


@dataclass(frozen=True)
class DnsPlan:
    """What a DNS build reads: the seeded splits and the training pool picked from the train split."""
    splits: dict[str, dict[str, list[corpus.AudioFile]]]
    train_clean: list[corpus.AudioFile]
    train_noise: list[corpus.AudioFile]

    def files(self) -> list[tuple[Path, str, int]]:
        """(path, role, frames) of the training pool: read only when training, so checked before the build. The valid
        and test sources are checked as the build's mixtures read them (AudioPool `check`): a split holds
        ~10% of a corpus, of which a build mixes a few dozen files."""
        return [(f.path, "speech", f.frames) for f in self.train_clean] + \
            [(f.path, "noise", f.frames) for f in self.train_noise]


@dataclass(frozen=True)
class VoiceBankPlan:
    """The pairs a VoiceBank build lists: validation speakers held out of the trainset, sizes applied."""
    valid_speakers: list[str]
    train: list[corpus.VoiceBankPair]
    valid: list[corpus.VoiceBankPair]
    test: list[corpus.VoiceBankPair]

    def files(self) -> list[tuple[Path, str, int]]:
        return [(path, role, pair.frames) for pair in (*self.train, *self.valid, *self.test)
                for path, role in ((pair.clean, "speech"), (pair.noisy, "noisy"))]


def check_files(plan: DnsPlan | VoiceBankPlan) -> None:
    """Decode every file the planned dataset reads (corpus.check_content): the first bad one is an InputFileError."""
    files = plan.files()
    log.info("checking the samples of %d corpus files", len(files))
    for path, role, frames in dict.fromkeys(files):   # each (file, role) once
        corpus.check_content(path, role, frames)


def plan_dns(cfg: DataConfig, clean: list[corpus.AudioFile], noise: list[corpus.AudioFile]) -> DnsPlan:
    size = SIZES[cfg.size]
    splits = corpus.split_dns(clean, noise, cfg.seed)
    train_clean = _pick_until(splits["train"]["clean"], size.train_speech_s, np.random.default_rng([cfg.seed, 61]))
    train_noise = _pick_until(splits["train"]["noise"], None if size.train_noise_s is None else 10 * 60,
                              np.random.default_rng([cfg.seed, 62]))
    return DnsPlan(splits, train_clean, train_noise)


def build_dns(cfg: DataConfig, root: Path, progress: bool, plan: DnsPlan) -> dict:
    size = SIZES[cfg.size]
    corpus_root = resolved_root(cfg)
    splits, train_clean, train_noise = plan.splits, plan.train_clean, plan.train_noise
    log.info("step 1/2: training pool: %d clean files, %d noise files (referenced in place)",
             len(train_clean), len(train_noise))
    splits_info: dict[str, dict] = {"train": {
        "speakers": sorted({corpus.dns_group(f.path) for f in splits["train"]["clean"]}),
        "speech": [{"path": str(f.path), "id": f.path.relative_to(corpus_root).as_posix(), "frames": f.frames}
                   for f in train_clean],
        "speech_files": len(train_clean), "speech_minutes": minutes(sum(f.frames for f in train_clean)),
        "noise_files": [f.path.relative_to(corpus_root).as_posix() for f in splits["train"]["noise"]],
        "noise_pool": [{"path": str(f.path), "category": "noise",
                        "parts": [f.path.relative_to(corpus_root).as_posix()], "frames": f.frames}
                       for f in train_noise],
        "noise_minutes": minutes(sum(f.frames for f in train_noise)),
    }}
    log.info("step 2/2: mixing %d valid and %d test pairs", size.eval_mixtures, size.eval_mixtures)
    banks = reverb.build_banks(cfg.reverb, cfg.seed, root) if cfg.reverb.enabled else None
    rows = []
    for k, split in enumerate(("valid", "test")):
        speech_files, noise_files = splits[split]["clean"], splits[split]["noise"]
        ids = [f.path.relative_to(corpus_root).as_posix() for f in speech_files]
        noise_ids = [f.path.relative_to(corpus_root).as_posix() for f in noise_files]
        maker = MixtureMaker(AudioPool([f.path for f in speech_files], [f.frames for f in speech_files], ids,
                                       check="speech"), ids,
                             AudioPool([f.path for f in noise_files], [f.frames for f in noise_files], noise_ids,
                                       check="noise"),
                             noise_ids, ["noise"] * len(noise_files), cfg.snr_db, cfg.level_dbfs, synthetic=False,
                             reverb=banks[split] if banks else None, mic=cfg.mic if cfg.mic.enabled else None)
        queue = np.random.default_rng([cfg.seed, 30, k]).permutation(len(speech_files))
        names = [f"{split}_{i + 1:04d}" for i in range(size.eval_mixtures)]
        speakers = [corpus.dns_group(speech_files[int(queue[i % len(queue)])].path) for i in range(len(names))]
        pairs, split_rows = write_fixed(root, split, maker, names, speakers, queue, cfg.seed, progress)
        rows += split_rows
        splits_info[split] = {
            "speakers": sorted({corpus.dns_group(f.path) for f in speech_files}),
            "pairs": pairs, "mixtures": len(pairs), "minutes": minutes(sum(p["frames"] for p in pairs)),
            "noise_files": noise_ids, "noise_categories": tally(r["noise_category"] for r in split_rows),
        }
    write_csv(root / "mixtures.csv", rows)
    return mic.with_record(cfg.mic, rows, reverb.with_record(cfg.reverb, banks, {
        "split_rules": {
            "speakers": "clean files grouped by reader (reader_<id> / p<id>_ / else per file); groups split "
                        "with the seed: ~10% valid, ~10% test (at least one each), rest train",
            "noise_files": "noise files split with the seed: ~10% valid, ~10% test (at least one each), rest train",
        },
        "disjoint": {"speakers": True, "noise_files": True},
        "definitions": DEFINITIONS,
        "mixing": {"snr_db": list(cfg.snr_db), "level_dbfs": list(cfg.level_dbfs),
                   "noise_category_weights": {"noise": 1.0}, "utterance_s": list(generator.UTTERANCE_S)},
        "corpus_root": str(corpus_root),
        "splits": splits_info,
    }))


def plan_voicebank(cfg: DataConfig, listing: dict[str, list[corpus.VoiceBankPair]]) -> VoiceBankPlan:
    size = SIZES[cfg.size]
    corpus_root = resolved_root(cfg)
    valid_speakers = corpus.pick_valid_speakers([p.speaker for p in listing["train"]], cfg.seed,
                                                corpus_root / corpus.VB_FOLDERS[("clean", "train")])
    train = [p for p in listing["train"] if p.speaker not in valid_speakers]
    valid = [p for p in listing["train"] if p.speaker in valid_speakers]
    test = listing["test"]
    if size.vb_train_pairs is not None and len(train) > size.vb_train_pairs:
        keep = np.random.default_rng([cfg.seed, 71]).choice(len(train), size.vb_train_pairs, replace=False)
        train = [train[i] for i in sorted(keep)]
    valid, test = (spread(pairs, size.eval_mixtures if cfg.size == "small" else 0) for pairs in (valid, test))
    return VoiceBankPlan(valid_speakers, train, valid, test)


def build_voicebank(cfg: DataConfig, plan: VoiceBankPlan) -> dict:
    corpus_root = resolved_root(cfg)
    valid_speakers, train, valid, test = plan.valid_speakers, plan.train, plan.valid, plan.test
    log.info("%d train, %d valid, %d test pairs (referenced in place)", len(train), len(valid), len(test))

    def entries(pairs: list[corpus.VoiceBankPair]) -> list[dict]:
        return [{"name": p.name, "noisy": str(p.noisy), "clean": str(p.clean), "frames": p.frames} for p in pairs]

    def info(pairs: list[corpus.VoiceBankPair]) -> dict:
        return {"speakers": sorted({p.speaker for p in pairs}), "pairs": entries(pairs), "mixtures": len(pairs),
                "minutes": minutes(sum(p.frames for p in pairs))}

    return {
        "split_rules": {
            "speakers": f"train = trainset speakers except {valid_speakers}; valid = {valid_speakers} "
                        "(held out of the trainset); test = the testset (its own speakers)",
            "noise_files": "as mixed by the corpus authors (VoiceBank-DEMAND: train and test noises differ)",
            "sizes": "small: a seeded pick of 300 training pairs and 16 valid / 16 test pairs (evenly spread "
                     "over the sorted names); full: everything",
        },
        "disjoint": {"speakers": True, "noise_files": "as in the corpus"},
        "corpus_root": str(corpus_root),
        "splits": {"train": info(train), "valid": info(valid), "test": info(test)},
    }
