"""The Debian dataset: Asterisk prompts (speech) and game/music/typing sounds (noise) from Debian packages.

Splits of the Debian data (speakers disjoint, noise files disjoint), by default:
- train = Allison (en_US + es_MX, the same voice actor) + Carlo (it_IT, the only male voice);
- valid = IvrvoiceRU (ru_RU, female);
- test  = June (fr_CA, female).
Why: the test speaker and language are never heard in training or used for model selection;
keeping Carlo in train means the model learns from both genders; Allison cannot be split
across train and test, so both of her languages go to train (the largest pool, ~56 of 80 min).
`data.test_speaker` / `data.valid_speaker` rotate this (train = the other speakers; sepipe.debian_options),
`data.noise_set` picks the noise rules (sepipe.data.noise_sets), and `data.speech_set: v2` adds extra voices to the
training pool only, after a clean-target gate (sepipe.data.speech_sets, sepipe.data.speech_quality): valid and test
stay the Asterisk rotation, built byte for byte as in v1.
Noise files are split per category with the dataset seed (~70/15/15, every category with
at least 3 files present in every split; identical files merged first). Babble is made of
3-6 prompts from the split's own speech pool: for valid/test that is the same (single)
speaker as the target, but never the prompts used in the targets themselves.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from sepipe import debian_options
from sepipe.audio import write_wav
from sepipe.config import DataConfig
from sepipe.data import debian, generator, mic, noise_sets, reverb, sources, speech_quality, speech_sets
from sepipe.data.fixed import DEFINITIONS, minutes, progress_bar, tally, write_csv, write_fixed
from sepipe.data.generator import MixtureMaker
from sepipe.data.layout import SIZES, SR

log = logging.getLogger(__name__)

DEBIAN_PACKAGES = sources.SPEECH_PACKAGES + sources.NOISE_PACKAGES     # noise set v1
DEFAULT_SPEAKER_RULE = ("train = Allison (en_US + es_MX: one voice actor) + Carlo (it_IT); valid = IvrvoiceRU "
                        "(ru_RU); test = June (fr_CA). No speaker is in two splits.")
EXTRA_SPEECH_RULE = (
    "speech set v2: the extra voices (extra_speech.speakers) are training speech only, never valid or test; a "
    "file is kept when its SNR (speech-active power over the median power of its quietest 10% of 20 ms frames) "
    f"is at least {speech_quality.SNR_MIN_DB:g} dB and its band limit (highest frequency within "
    f"{speech_quality.BAND_RANGE_DB:g} dB of the 0.3-3 kHz level) at least {speech_quality.BANDWIDTH_MIN_HZ:g} Hz, "
    f"its rate at least {speech_quality.MIN_RATE_HZ} Hz and it lasts {sources.MIN_SPEECH_S} s after trimming; "
    "band-limited voices and voices with under "
    f"{speech_sets.MIN_SPEAKER_S:g} s kept are dropped whole; training draws a speaker with weight "
    f"min(its seconds, {speech_sets.WEIGHT_CAP_S:g} s) (splits.train.speaker_weights), then one of its prompts")


def debian_packages(cfg: DataConfig) -> tuple[str, ...]:
    """The packages a Debian build of `cfg` is made from: the speech packages, its noise set's and its speech set's."""
    return sources.SPEECH_PACKAGES + noise_sets.packages(cfg.noise_set) + speech_sets.packages(cfg.speech_set)


def _decode_until(files: list[sources.SpeechFile], budget_s: float | None, progress: bool,
                  desc: str) -> list[tuple[sources.SpeechFile, np.ndarray]]:
    """Decode and trim prompts in the given order until `budget_s` seconds of speech (None: all)."""
    out, total = [], 0.0
    for speech in progress_bar(files, progress, desc):
        if budget_s is not None and total >= budget_s:
            break
        audio = sources.load_speech(speech)
        if audio is None:
            continue
        out.append((speech, audio))
        total += len(audio) / SR
    return out


def _flat(speech_id: str) -> str:
    return speech_id.replace("/", "-").replace(":", "_")


def build_debian(cfg: DataConfig, root: Path, progress: bool) -> dict:
    size = SIZES[cfg.size]
    names = debian_packages(cfg)
    speakers = debian_options.split_speakers(cfg)
    log.info("step 1/5: fetching and unpacking %d Debian packages", len(names))
    packages = debian.fetch_packages(names, cfg.cache_dir)
    package_roots = {name: pkg.root for name, pkg in packages.items()}

    log.info("step 2/5: decoding speech (G.722), trimming silence")
    all_speech = sources.list_speech(package_roots)
    prompts: dict[str, list[tuple[sources.SpeechFile, np.ndarray]]] = {}
    for k, split in enumerate(sources.SPLITS):
        files = [f for f in all_speech if f.speaker in speakers[split]]
        order = np.random.default_rng([cfg.seed, 1, k]).permutation(len(files))
        budget = size.train_speech_s if split == "train" else size.eval_speech_s
        prompts[split] = _decode_until([files[i] for i in order], budget, progress, f"speech {split}")
    prompts["train"].sort(key=lambda item: item[0].id)
    extra, extra_record = [], None
    speech_set_v2 = cfg.speech_set != debian_options.DEFAULT_SPEECH_SET
    if speech_set_v2:
        log.info("step 2/5: extra training voices (speech set %s): listing, gating, decoding", cfg.speech_set)
        extra, extra_record = speech_quality.extra_training_speech(package_roots, cfg.speech_set, cfg.size,
                                                                   cfg.seed, progress)

    log.info("step 3/5: listing, splitting and decoding noise")
    rules = noise_sets.rules(cfg.noise_set)
    noise_files, skipped = sources.list_noise(package_roots, rules)
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
    for speech, audio in progress_bar(prompts["train"], progress, "write speech"):
        rel = f"train/clean/{_flat(speech.id)}.wav"
        write_wav(root / rel, audio, SR)
        train_speech.append({"path": rel, "id": speech.id, "speaker": speech.speaker, "frames": len(audio)})
    for extra_file, audio in progress_bar(extra, progress, "write extra speech"):
        rel = f"train/clean/{_flat(extra_file.id)}.wav"
        if (root / rel).exists():
            raise AssertionError(f"two training prompts flatten to {rel}")
        write_wav(root / rel, audio, SR)
        train_speech.append({"path": rel, "id": extra_file.id, "speaker": extra_file.speaker,
                             "language": extra_file.language, "frames": len(audio)})
    train_noise = []
    for item in items["train"]:
        rel = f"train/noise/{item.name}.wav"
        write_wav(root / rel, item.audio, SR)
        train_noise.append({"path": rel, "category": item.category, "parts": item.parts,
                            "frames": len(item.audio)})

    log.info("step 5/5: mixing %d valid and %d test pairs", size.eval_mixtures, size.eval_mixtures)
    banks = reverb.build_banks(cfg.reverb, cfg.seed, root) if cfg.reverb.enabled else None
    rows: list[dict] = []
    splits_info: dict[str, dict] = {"train": {
        "speakers": list(speakers["train"]),
        "voice_folders": sorted({s.id.split("/")[0] for s, _ in prompts["train"]}),
        "speech": train_speech, "speech_files": len(train_speech),
        "speech_minutes": minutes(sum(e["frames"] for e in train_speech)),
        "noise_files": [f.id for f in assignment["train"]],
        "noise_files_by_category": tally(f.category for f in assignment["train"]),
        "noise_pool": train_noise, "noise_minutes": minutes(sum(e["frames"] for e in train_noise)),
        "noise_categories": tally(e["category"] for e in train_noise),
    }}
    if speech_set_v2:
        seconds: dict[str, float] = {}
        for entry in train_speech:
            seconds[entry["speaker"]] = seconds.get(entry["speaker"], 0.0) + entry["frames"] / SR
        splits_info["train"].update({
            "extra_speakers": sorted({f.speaker for f, _ in extra}),
            "speech_minutes_by_speaker": {name: round(s / 60.0, 2) for name, s in sorted(seconds.items())},
            "speaker_weights": speech_sets.speaker_weights(seconds)})
    for k, split in enumerate(("valid", "test")):
        pool = prompts[split]
        maker = MixtureMaker([a for _, a in pool], [s.id for s, _ in pool], [i.audio for i in items[split]],
                             [";".join(i.parts) for i in items[split]], [i.category for i in items[split]],
                             cfg.snr_db, cfg.level_dbfs,
                             reverb=banks[split] if banks else None, mic=cfg.mic if cfg.mic.enabled else None)
        speaker = speakers[split][0]
        names = [f"{speaker}_{i + 1:04d}" for i in range(size.eval_mixtures)]
        pairs, split_rows = write_fixed(root, split, maker, names, [speaker] * len(names),
                                         np.random.default_rng([cfg.seed, 30, k]).permutation(len(pool)),
                                         cfg.seed, progress)
        rows += split_rows
        splits_info[split] = {
            "speakers": list(speakers[split]),
            "voice_folders": sorted({s.id.split("/")[0] for s, _ in pool}),
            "pairs": pairs, "mixtures": len(pairs), "minutes": minutes(sum(p["frames"] for p in pairs)),
            "speech_prompts_decoded": len(pool),
            "noise_files": [f.id for f in assignment[split]],
            "noise_files_by_category": tally(f.category for f in assignment[split]),
            "noise_files_used": sorted({part for i in items[split] for part in i.parts}),
            "noise_categories": tally(r["noise_category"] for r in split_rows),
        }
    write_csv(root / "mixtures.csv", rows)
    return mic.with_record(cfg.mic, rows, reverb.with_record(cfg.reverb, banks, {
        "split_rules": {
            "speakers": DEFAULT_SPEAKER_RULE if debian_options.is_default_rotation(cfg) else
                        f"rotation: train = {' + '.join(speakers['train'])}; valid = {cfg.valid_speaker}; test = "
                        f"{cfg.test_speaker} (data.test_speaker, data.valid_speaker). No speaker is in two splits; "
                        "babble is made of the split's own speakers only.",
            "noise_files": "per category, files (identical files merged) shuffled with the seed: ~15% valid, "
                           "~15% test, rest train; no file is in two splits; synthetic noise (coloured, hum) "
                           "is generated per mixture; babble uses the split's own speech pool, never the "
                           "target's prompts",
            "speech_filter": f"names with tone/beep/silence dropped; silence trimmed (40 dB below the loudest "
                             f"10 ms frame, -60 dBFS floor, 50 ms kept); prompts under {sources.MIN_SPEECH_S} s dropped",
            "sizes": {name: vars(value) for name, value in SIZES.items()},
            **({"extra_speech": EXTRA_SPEECH_RULE} if speech_set_v2 else {}),
        },
        "disjoint": {"speakers": True, "noise_files": True},
        "definitions": DEFINITIONS,
        "mixing": {"snr_db": list(cfg.snr_db), "level_dbfs": list(cfg.level_dbfs),
                   "noise_category_weights": {c: generator.CATEGORY_WEIGHTS[c] for c in
                                              list(noise_sets.categories(cfg.noise_set))
                                              + list(generator.SYNTHETIC_CATEGORIES)},
                   "babble_talkers": list(generator.BABBLE_TALKERS),
                   "utterance_s": list(generator.UTTERANCE_S)},
        "noise_set": cfg.noise_set,
        "speech_set": cfg.speech_set,
        "speakers": {split: list(names) for split, names in speakers.items()},
        "noise_sources": {"rules": [noise_sets.rule_record(r) for r in rules],
                          "skipped": [{"id": i, "reason": r} for i, r in skipped],
                          "files": len(noise_files),
                          "duplicates_merged": {f.id: list(f.aliases) for f in noise_files if f.aliases}},
        "packages": {name: pkg.record() for name, pkg in packages.items()},
        "splits": splits_info,
        **({"extra_speech": extra_record} if speech_set_v2 else {}),
    }))


def _check_disjoint(prompts: dict[str, list], assignment: dict[str, list]) -> None:
    for a, b in (("train", "valid"), ("train", "test"), ("valid", "test")):
        speakers = {s.speaker for s, _ in prompts[a]} & {s.speaker for s, _ in prompts[b]}
        noise = {f.sha256 for f in assignment[a]} & {f.sha256 for f in assignment[b]}
        if speakers or noise:
            raise AssertionError(f"splits {a}/{b} share speakers {speakers} or {len(noise)} noise files")
