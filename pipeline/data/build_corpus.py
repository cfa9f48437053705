"""Datasets over a user's corpus, referenced in place: DNS-style (mixed here) and VoiceBank-DEMAND (pre-mixed).

The layouts, the listing checks and the speaker splits are in `sepipe.data.corpus`.
"""

from __future__ import annotations

import logging
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


def build_dns(cfg: DataConfig, root: Path, progress: bool, clean: list[corpus.AudioFile],
               noise: list[corpus.AudioFile]) -> dict:
    size = SIZES[cfg.size]
    corpus_root = resolved_root(cfg)
    splits = corpus.split_dns(clean, noise, cfg.seed)
    train_clean = _pick_until(splits["train"]["clean"], size.train_speech_s, np.random.default_rng([cfg.seed, 61]))
    train_noise = _pick_until(splits["train"]["noise"], None if size.train_noise_s is None else 10 * 60,
                              np.random.default_rng([cfg.seed, 62]))
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
        maker = MixtureMaker(AudioPool([f.path for f in speech_files], [f.frames for f in speech_files], ids), ids,
                             AudioPool([f.path for f in noise_files], [f.frames for f in noise_files], noise_ids),
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


def build_voicebank(cfg: DataConfig, listing: dict[str, list[corpus.VoiceBankPair]]) -> dict:
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
