"""Build the dataset once, then serve it: fixed valid/test pairs, training mixtures drawn on the fly.

Splits of the Debian data (speakers disjoint, noise files disjoint):
- train = Allison (en_US + es_MX, the same voice actor) + Carlo (it_IT, the only male voice);
- valid = IvrvoiceRU (ru_RU, female);
- test  = June (fr_CA, female).
Why: the test speaker and language are never heard in training or used for model selection;
keeping Carlo in train means the model learns from both genders; Allison cannot be split
across train and test, so both of her languages go to train (the largest pool, ~56 of 80 min).
Noise files are split per category with the dataset seed (~70/15/15, every category with
at least 3 files present in every split; identical files merged first). Babble is made of
3-6 prompts from the split's own speech pool: for valid/test that is the same (single)
speaker as the target, but never the prompts used in the targets themselves.

Folder `<cache_dir>/datasets/<source>-<size>-seed<seed>[-<root hash>]/`:
  train/clean/*.wav        speech pool (Debian: trimmed prompts)
  train/noise/*.wav        noise pool (files, or ~15 s tracks assembled from short clips)
  valid|test/noisy/NAME.wav, valid|test/clean/NAME.wav    fixed mixtures (VoiceBank-like)
  mixtures.csv             how each fixed mixture was made
  manifest.json            written last; a build without it is incomplete and is redone
User corpora are referenced in place (absolute paths in the manifest), not copied.
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import hashlib
import io
import json
import logging
import shutil
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from sepipe.artifacts import sha256_json, write_json, write_text
from sepipe.audio import read_wav, write_wav
from sepipe.config import DataConfig
from sepipe.data import corpus, debian, generator, sources
from sepipe.data.generator import AudioPool, MixtureMaker
from sepipe.errors import MissingArtifactError

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
SR = 16000
BUILD_COMMAND = "sepipe data build <experiment.yaml>"
DEBIAN_PACKAGES = sources.SPEECH_PACKAGES + sources.NOISE_PACKAGES
FIXED_TRAIN_MIXTURES = 10000        # the virtual pool training_files() picks from (Debian, DNS)


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

CSV_COLUMNS = ("split", "name", "speaker", "clean_sources", "clean_offsets_s", "noise_category", "noise_source",
               "noise_offset_s", "snr_db", "target_level_dbfs", "level_dbfs", "duration_s")

DEFINITIONS = {
    "snr_db": "10 log10(speech-active power of the clean / mean power of the noise); speech-active = "
              "20 ms frames within 40 dB of the loudest frame; noise = noisy - clean",
    "level_dbfs": "RMS of the whole noisy mixture in dBFS; lowered (SNR unchanged) when a peak of the "
                  "mixture, clean or noise would exceed 0.98; level_dbfs in mixtures.csv is the level reached",
    "noise_length": "noise looped (from a random offset) or cropped (random window) to the speech length",
    "fixed_mixtures": "2-6 s: prompts of one speaker joined by 0.15-0.5 s gaps, 0.1-0.4 s silence at both "
                      "ends, cut at a quiet point when longer than 6 s",
}


@dataclass(frozen=True)
class Pair:
    name: str
    noisy: np.ndarray    # float32, 16 kHz
    clean: np.ndarray    # float32, 16 kHz, same length


# --- where, and is it current ------------------------------------------------------------------

def dataset_dir(cfg: DataConfig) -> Path:
    name = f"{cfg.source}-{cfg.size}-seed{cfg.seed}"
    if cfg.source != "debian":
        name += "-" + hashlib.sha256(str(_resolved_root(cfg)).encode()).hexdigest()[:8]
    return Path(cfg.cache_dir) / "datasets" / name


def _resolved_root(cfg: DataConfig) -> Path | None:
    return Path(cfg.root).expanduser().resolve() if cfg.root else None


def _config_record(cfg: DataConfig) -> dict[str, Any]:
    """The config fields the dataset's bytes depend on (not cache_dir, not segment_s)."""
    return {"source": cfg.source, "size": cfg.size, "seed": cfg.seed, "sample_rate": cfg.sample_rate,
            "snr_db": list(cfg.snr_db), "level_dbfs": list(cfg.level_dbfs),
            "root": str(_resolved_root(cfg)) if cfg.source != "debian" else None}


def _tool_versions() -> dict[str, str]:
    out = {}
    for name in ("numpy", "soxr", "soundfile", "g722"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def _read_manifest(root: Path) -> dict | None:
    try:
        return json.loads((root / "manifest.json").read_text())
    except (OSError, ValueError):
        return None


def _is_current(manifest: dict | None, fingerprint: dict) -> bool:
    if not manifest or manifest.get("format_version") != FORMAT_VERSION:
        return False
    old = manifest.get("fingerprint", {})
    if any(old.get(key) != fingerprint[key] for key in ("format", "config", "tools")):
        return False
    old_sources = old.get("sources", {})
    # A source not in the cache any more (None) does not invalidate a finished build.
    return all(value is None or old_sources.get(key) == value for key, value in fingerprint["sources"].items()) \
        and set(old_sources) == set(fingerprint["sources"])


@contextlib.contextmanager
def _lock(root: Path) -> Iterator[None]:
    root.parent.mkdir(parents=True, exist_ok=True)
    with open(root.parent / f".{root.name}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# --- building ----------------------------------------------------------------------------------

def build_dataset(cfg: DataConfig, progress: bool = True) -> Path:
    """Build (or reuse when its manifest matches cfg + source hashes) the dataset; returns its folder."""
    root = dataset_dir(cfg)
    with _lock(root):
        if cfg.source == "debian":
            source_hashes = debian.cached_hashes(DEBIAN_PACKAGES, cfg.cache_dir)
        else:
            corpus_root = _resolved_root(cfg)
            source_hashes = {"listing": corpus.listing_fingerprint(corpus_root)
                             if corpus_root and corpus_root.is_dir() else "missing"}
        fingerprint = {"format": FORMAT_VERSION, "config": _config_record(cfg), "tools": _tool_versions(),
                       "sources": source_hashes}
        manifest = _read_manifest(root)
        if _is_current(manifest, fingerprint):
            log.info("dataset %s is up to date (manifest matches the config and sources)", root)
            return root
        start = time.monotonic()
        log.info("building dataset %s (source=%s, size=%s, seed=%d)", root, cfg.source, cfg.size, cfg.seed)
        # A user corpus is listed and checked before the old build is removed: a bad corpus
        # raises InputFileError and leaves the previous dataset in place.
        if cfg.source == "dns":
            log.info("listing and checking %s (DNS layout)", _resolved_root(cfg))
            listing = corpus.list_dns(_resolved_root(cfg))
        elif cfg.source == "voicebank":
            log.info("listing and checking %s (VoiceBank-DEMAND layout)", _resolved_root(cfg))
            listing = corpus.list_voicebank(_resolved_root(cfg))
        _clear(root)
        if cfg.source == "debian":
            manifest = _build_debian(cfg, root, progress)
            fingerprint["sources"] = {name: rec["sha256"] for name, rec in manifest["packages"].items()}
        elif cfg.source == "dns":
            manifest = _build_dns(cfg, root, progress, *listing)
        else:
            manifest = _build_voicebank(cfg, listing)
        manifest.update({
            "format_version": FORMAT_VERSION, "fingerprint": fingerprint,
            "fingerprint_sha256": sha256_json(fingerprint), "source": cfg.source, "size": cfg.size,
            "seed": cfg.seed, "sample_rate": SR, "tools": _tool_versions(),
            "built_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "build_seconds": round(time.monotonic() - start, 1),
        })
        write_json(root / "manifest.json", manifest)
        log.info("dataset built in %.1f s: %s", time.monotonic() - start, _summary(manifest))
        return root


def _clear(root: Path) -> None:
    """Remove an outdated or interrupted build (its manifest first, so it can never look complete)."""
    (root / "manifest.json").unlink(missing_ok=True)
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)


def _summary(manifest: dict) -> str:
    parts = []
    for split, info in manifest["splits"].items():
        if "speech_minutes" in info:
            parts.append(f"{split}: {info['speech_files']} speech files, {info['speech_minutes']} min")
        if "mixtures" in info:
            parts.append(f"{split}: {info['mixtures']} pairs, {info['minutes']} min")
    return "; ".join(parts)


def _bar(iterable, progress: bool, desc: str, total: int | None = None):
    if not progress:
        return iterable
    from tqdm import tqdm

    return tqdm(iterable, desc=desc, total=total, unit="file", leave=False)


def _decode_until(files: list[sources.SpeechFile], budget_s: float | None, progress: bool,
                  desc: str) -> list[tuple[sources.SpeechFile, np.ndarray]]:
    """Decode and trim prompts in the given order until `budget_s` seconds of speech (None: all)."""
    out, total = [], 0.0
    for speech in _bar(files, progress, desc):
        if budget_s is not None and total >= budget_s:
            break
        audio = sources.load_speech(speech)
        if audio is None:
            continue
        out.append((speech, audio))
        total += len(audio) / SR
    return out


def _flat(speech_id: str) -> str:
    return speech_id.replace("/", "-")


def _build_debian(cfg: DataConfig, root: Path, progress: bool) -> dict:
    size = SIZES[cfg.size]
    log.info("step 1/5: fetching and unpacking %d Debian packages", len(DEBIAN_PACKAGES))
    packages = debian.fetch_packages(DEBIAN_PACKAGES, cfg.cache_dir)
    package_roots = {name: pkg.root for name, pkg in packages.items()}

    log.info("step 2/5: decoding speech (G.722), trimming silence")
    all_speech = sources.list_speech(package_roots)
    prompts: dict[str, list[tuple[sources.SpeechFile, np.ndarray]]] = {}
    for k, split in enumerate(sources.SPLITS):
        files = [f for f in all_speech if f.speaker in sources.SPLIT_SPEAKERS[split]]
        order = np.random.default_rng([cfg.seed, 1, k]).permutation(len(files))
        budget = size.train_speech_s if split == "train" else size.eval_speech_s
        prompts[split] = _decode_until([files[i] for i in order], budget, progress, f"speech {split}")
    prompts["train"].sort(key=lambda item: item[0].id)

    log.info("step 3/5: listing, splitting and decoding noise")
    noise_files, skipped = sources.list_noise(package_roots)
    assignment = sources.assign_noise_splits(noise_files, cfg.seed)
    items: dict[str, list[sources.NoiseItem]] = {}
    for k, split in enumerate(sources.SPLITS):
        rng = np.random.default_rng([cfg.seed, 3, k])
        budget = size.train_noise_s if split == "train" else None
        items[split] = sources.make_noise_items(assignment[split], rng, budget, size.noise_crop_s)
    _check_disjoint(prompts, assignment)

    log.info("step 4/5: writing the training pools (%d prompts, %d noise items)",
             len(prompts["train"]), len(items["train"]))
    train_speech = []
    for speech, audio in _bar(prompts["train"], progress, "write speech"):
        rel = f"train/clean/{_flat(speech.id)}.wav"
        write_wav(root / rel, audio, SR)
        train_speech.append({"path": rel, "id": speech.id, "speaker": speech.speaker, "frames": len(audio)})
    train_noise = []
    for item in items["train"]:
        rel = f"train/noise/{item.name}.wav"
        write_wav(root / rel, item.audio, SR)
        train_noise.append({"path": rel, "category": item.category, "parts": item.parts,
                            "frames": len(item.audio)})

    log.info("step 5/5: mixing %d valid and %d test pairs", size.eval_mixtures, size.eval_mixtures)
    rows: list[dict] = []
    splits_info: dict[str, dict] = {"train": {
        "speakers": list(sources.SPLIT_SPEAKERS["train"]),
        "voice_folders": sorted({s.id.split("/")[0] for s, _ in prompts["train"]}),
        "speech": train_speech, "speech_files": len(train_speech),
        "speech_minutes": _minutes(sum(e["frames"] for e in train_speech)),
        "noise_files": [f.id for f in assignment["train"]],
        "noise_pool": train_noise, "noise_minutes": _minutes(sum(e["frames"] for e in train_noise)),
        "noise_categories": _count(e["category"] for e in train_noise),
    }}
    for k, split in enumerate(("valid", "test")):
        pool = prompts[split]
        maker = MixtureMaker([a for _, a in pool], [s.id for s, _ in pool], [i.audio for i in items[split]],
                             [";".join(i.parts) for i in items[split]], [i.category for i in items[split]],
                             cfg.snr_db, cfg.level_dbfs)
        speaker = sources.SPLIT_SPEAKERS[split][0]
        names = [f"{speaker}_{i + 1:04d}" for i in range(size.eval_mixtures)]
        pairs, split_rows = _write_fixed(root, split, maker, names, [speaker] * len(names),
                                         np.random.default_rng([cfg.seed, 30, k]).permutation(len(pool)),
                                         cfg.seed, progress)
        rows += split_rows
        splits_info[split] = {
            "speakers": list(sources.SPLIT_SPEAKERS[split]),
            "voice_folders": sorted({s.id.split("/")[0] for s, _ in pool}),
            "pairs": pairs, "mixtures": len(pairs), "minutes": _minutes(sum(p["frames"] for p in pairs)),
            "speech_prompts_decoded": len(pool),
            "noise_files": [f.id for f in assignment[split]],
            "noise_files_used": sorted({part for i in items[split] for part in i.parts}),
            "noise_categories": _count(r["noise_category"] for r in split_rows),
        }
    _write_csv(root / "mixtures.csv", rows)
    return {
        "split_rules": {
            "speakers": "train = Allison (en_US + es_MX: one voice actor) + Carlo (it_IT); valid = IvrvoiceRU "
                        "(ru_RU); test = June (fr_CA). No speaker is in two splits.",
            "noise_files": "per category, files (identical files merged) shuffled with the seed: ~15% valid, "
                           "~15% test, rest train; no file is in two splits; synthetic noise (coloured, hum) "
                           "is generated per mixture; babble uses the split's own speech pool, never the "
                           "target's prompts",
            "speech_filter": f"names with tone/beep/silence dropped; silence trimmed (40 dB below the loudest "
                             f"10 ms frame, -60 dBFS floor, 50 ms kept); prompts under {sources.MIN_SPEECH_S} s dropped",
            "sizes": {name: vars(value) for name, value in SIZES.items()},
        },
        "disjoint": {"speakers": True, "noise_files": True},
        "definitions": DEFINITIONS,
        "mixing": {"snr_db": list(cfg.snr_db), "level_dbfs": list(cfg.level_dbfs),
                   "noise_category_weights": {c: generator.CATEGORY_WEIGHTS[c] for c in
                                              list(sources.FILE_CATEGORIES) + list(generator.SYNTHETIC_CATEGORIES)},
                   "babble_talkers": list(generator.BABBLE_TALKERS),
                   "utterance_s": list(generator.UTTERANCE_S)},
        "noise_sources": {"rules": [vars(r) for r in sources.NOISE_RULES],
                          "skipped": [{"id": i, "reason": r} for i, r in skipped],
                          "files": len(noise_files),
                          "duplicates_merged": {f.id: list(f.aliases) for f in noise_files if f.aliases}},
        "packages": {name: pkg.record() for name, pkg in packages.items()},
        "splits": splits_info,
    }


def _check_disjoint(prompts: dict[str, list], assignment: dict[str, list]) -> None:
    for a, b in (("train", "valid"), ("train", "test"), ("valid", "test")):
        speakers = {s.speaker for s, _ in prompts[a]} & {s.speaker for s, _ in prompts[b]}
        noise = {f.sha256 for f in assignment[a]} & {f.sha256 for f in assignment[b]}
        if speakers or noise:
            raise AssertionError(f"splits {a}/{b} share speakers {speakers} or {len(noise)} noise files")


def _write_fixed(root: Path, split: str, maker: MixtureMaker, names: list[str], speakers: list[str],
                 queue: np.ndarray, seed: int, progress: bool) -> tuple[list[dict], list[dict]]:
    """Write the fixed mixtures of a split: targets consume the prompt queue in order, babble uses the rest."""
    split_index = sources.SPLITS.index(split)
    position = {"next": 0}
    if len(queue) == 0:
        raise AssertionError(f"no speech for the {split} split")

    def next_index() -> int:
        index = int(queue[position["next"] % len(queue)])
        position["next"] += 1
        return index

    utterances = []
    for i in range(len(names)):
        rng = np.random.default_rng([seed, 31, split_index, i])
        utterances.append(maker.utterance(rng, next_index))
    if position["next"] > len(queue):
        log.warning("the %s split reuses prompts: %d needed, %d available", split, position["next"], len(queue))
    used = {int(queue[i % len(queue)]) for i in range(position["next"])}
    babble_pool = [i for i in range(len(maker.speech_ids)) if i not in used]
    categories = maker.balanced_categories(np.random.default_rng([seed, 32, split_index]), len(names))
    if len(babble_pool) <= generator.BABBLE_TALKERS[1]:
        categories = [c if c != "babble" else "coloured" for c in categories]
    pairs, rows = [], []
    for i in _bar(range(len(names)), progress, f"mix {split}"):
        clean, indices, offsets = utterances[i]
        rng = np.random.default_rng([seed, 33, split_index, i])
        mixture = maker.mixture(rng, clean, indices, category=categories[i], babble_pool=babble_pool)
        noisy_rel, clean_rel = f"{split}/noisy/{names[i]}.wav", f"{split}/clean/{names[i]}.wav"
        write_wav(root / noisy_rel, mixture.noisy, SR)
        write_wav(root / clean_rel, mixture.clean, SR)
        pairs.append({"name": names[i], "noisy": noisy_rel, "clean": clean_rel, "frames": len(clean)})
        rows.append({"split": split, "name": names[i], "speaker": speakers[i],
                     "clean_offsets_s": ";".join(str(o) for o in offsets), **mixture.row})
    return pairs, rows


def _write_csv(path: Path, rows: list[dict]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: row.get(key, "") for key in CSV_COLUMNS})
    write_text(path, buffer.getvalue())


def _minutes(frames: int) -> float:
    return round(frames / SR / 60.0, 2)


def _count(values) -> dict[str, int]:
    out: dict[str, int] = {}
    for value in values:
        out[value] = out.get(value, 0) + 1
    return dict(sorted(out.items()))


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


def _build_dns(cfg: DataConfig, root: Path, progress: bool, clean: list[corpus.AudioFile],
               noise: list[corpus.AudioFile]) -> dict:
    size = SIZES[cfg.size]
    corpus_root = _resolved_root(cfg)
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
        "speech_files": len(train_clean), "speech_minutes": _minutes(sum(f.frames for f in train_clean)),
        "noise_files": [f.path.relative_to(corpus_root).as_posix() for f in splits["train"]["noise"]],
        "noise_pool": [{"path": str(f.path), "category": "noise",
                        "parts": [f.path.relative_to(corpus_root).as_posix()], "frames": f.frames}
                       for f in train_noise],
        "noise_minutes": _minutes(sum(f.frames for f in train_noise)),
    }}
    log.info("step 2/2: mixing %d valid and %d test pairs", size.eval_mixtures, size.eval_mixtures)
    rows = []
    for k, split in enumerate(("valid", "test")):
        speech_files, noise_files = splits[split]["clean"], splits[split]["noise"]
        ids = [f.path.relative_to(corpus_root).as_posix() for f in speech_files]
        noise_ids = [f.path.relative_to(corpus_root).as_posix() for f in noise_files]
        maker = MixtureMaker(AudioPool([f.path for f in speech_files], [f.frames for f in speech_files], ids), ids,
                             AudioPool([f.path for f in noise_files], [f.frames for f in noise_files], noise_ids),
                             noise_ids, ["noise"] * len(noise_files), cfg.snr_db, cfg.level_dbfs, synthetic=False)
        queue = np.random.default_rng([cfg.seed, 30, k]).permutation(len(speech_files))
        names = [f"{split}_{i + 1:04d}" for i in range(size.eval_mixtures)]
        speakers = [corpus.dns_group(speech_files[int(queue[i % len(queue)])].path) for i in range(len(names))]
        pairs, split_rows = _write_fixed(root, split, maker, names, speakers, queue, cfg.seed, progress)
        rows += split_rows
        splits_info[split] = {
            "speakers": sorted({corpus.dns_group(f.path) for f in speech_files}),
            "pairs": pairs, "mixtures": len(pairs), "minutes": _minutes(sum(p["frames"] for p in pairs)),
            "noise_files": noise_ids, "noise_categories": _count(r["noise_category"] for r in split_rows),
        }
    _write_csv(root / "mixtures.csv", rows)
    return {
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
    }


def _build_voicebank(cfg: DataConfig, listing: dict[str, list[corpus.VoiceBankPair]]) -> dict:
    size = SIZES[cfg.size]
    corpus_root = _resolved_root(cfg)
    valid_speakers = corpus.pick_valid_speakers([p.speaker for p in listing["train"]], cfg.seed,
                                                corpus_root / corpus.VB_FOLDERS[("clean", "train")])
    train = [p for p in listing["train"] if p.speaker not in valid_speakers]
    valid = [p for p in listing["train"] if p.speaker in valid_speakers]
    test = listing["test"]
    if size.vb_train_pairs is not None and len(train) > size.vb_train_pairs:
        keep = np.random.default_rng([cfg.seed, 71]).choice(len(train), size.vb_train_pairs, replace=False)
        train = [train[i] for i in sorted(keep)]
    valid, test = (_spread(pairs, size.eval_mixtures if cfg.size == "small" else 0) for pairs in (valid, test))
    log.info("%d train, %d valid, %d test pairs (referenced in place)", len(train), len(valid), len(test))

    def entries(pairs: list[corpus.VoiceBankPair]) -> list[dict]:
        return [{"name": p.name, "noisy": str(p.noisy), "clean": str(p.clean), "frames": p.frames} for p in pairs]

    def info(pairs: list[corpus.VoiceBankPair]) -> dict:
        return {"speakers": sorted({p.speaker for p in pairs}), "pairs": entries(pairs), "mixtures": len(pairs),
                "minutes": _minutes(sum(p.frames for p in pairs))}

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


def _spread(items: list, count: int) -> list:
    """`count` items evenly spread over a sorted list (0 or more than there are: all)."""
    if count <= 0 or count >= len(items):
        return list(items)
    return [items[i] for i in np.linspace(0, len(items) - 1, count).round().astype(int)]


# --- serving -----------------------------------------------------------------------------------

class Dataset:
    """A built dataset: fixed valid/test pairs and training data drawn on the fly."""

    def __init__(self, cfg: DataConfig, root: Path, manifest: dict):
        self.cfg = cfg
        self.root = root
        self.manifest = manifest
        self._maker: MixtureMaker | None = None

    @classmethod
    def open(cls, cfg: DataConfig) -> "Dataset":
        root = dataset_dir(cfg)
        manifest = _read_manifest(root)
        if manifest is None:
            raise MissingArtifactError(root, f"the {cfg.source} dataset (size {cfg.size}, seed {cfg.seed}) "
                                       f"is not built; build it with `{BUILD_COMMAND}`")
        built = manifest.get("fingerprint", {}).get("config")
        if manifest.get("format_version") != FORMAT_VERSION or built != _config_record(cfg):
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

    def _load(self, entry: dict) -> Pair:
        return Pair(entry["name"], read_wav(self._path(entry["noisy"]), SR), read_wav(self._path(entry["clean"]), SR))

    def pairs(self, split: str, limit: int = 0) -> list[Pair]:
        """Fixed pairs of 'valid' or 'test', sorted by name; `limit` > 0: that many, evenly spread over the names."""
        if split not in ("valid", "test"):
            raise ValueError(f"pairs() serves 'valid' and 'test', not {split!r}")
        return [self._load(e) for e in _spread(self._entries(split), limit)]

    def training_files(self, count: int, seed: int) -> list[Pair]:
        """`count` whole training mixtures, picked with `seed` from a fixed set (same seed: same pairs)."""
        if self.source == "voicebank":
            entries = self._entries("train")
            picks = np.random.default_rng([seed, 81]).choice(len(entries), min(count, len(entries)), replace=False)
            return [self._load(entries[i]) for i in sorted(picks)]
        maker = self._training_maker()
        picks = sorted(int(i) for i in np.random.default_rng([seed, 22]).choice(FIXED_TRAIN_MIXTURES, count, replace=False))
        out = []
        for k in picks:
            rng = np.random.default_rng([self.cfg.seed, 21, k])
            n_speech = len(maker.speech_ids)
            clean, indices, _ = maker.utterance(rng, lambda: int(rng.integers(0, n_speech)))
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
                                       synthetic=self.source == "debian")
        return self._maker
