"""The fixed valid/test mixtures every builder writes, and the record of how each was made (mixtures.csv)."""

from __future__ import annotations

import csv
import io
import logging
from pathlib import Path

import numpy as np

from sepipe.artifacts import write_text
from sepipe.audio import write_wav
from sepipe.data import generator, sources
from sepipe.data.generator import MixtureMaker
from sepipe.data.layout import SR
from sepipe.data.mic import ROW_COLUMNS as MIC_COLUMNS

log = logging.getLogger(__name__)

CSV_COLUMNS = ("split", "name", "speaker", "clean_sources", "clean_offsets_s", "noise_category", "noise_source",
               "noise_offset_s", "snr_db", "target_level_dbfs", "level_dbfs", "duration_s")
REVERB_COLUMNS = ("rt60_s", "reverb_room", "reverb_target")   # rt60_s: the room's measured RT60; empty: dry
# MIC_COLUMNS (data.mic): mic_eq (the device's filters; empty: flat), clip_drive_db (empty: not clipped), clip_fraction

DEFINITIONS = {
    "snr_db": "10 log10(speech-active power of the clean / mean power of the noise); speech-active = "
              "20 ms frames within 40 dB of the loudest frame; noise = noisy - clean",
    "level_dbfs": "RMS of the whole noisy mixture in dBFS; lowered (SNR unchanged) when a peak of the "
                  "mixture, clean or noise would exceed 0.98; level_dbfs in mixtures.csv is the level reached",
    "noise_length": "noise looped (from a random offset) or cropped (random window) to the speech length",
    "fixed_mixtures": "2-6 s: prompts of one speaker joined by 0.15-0.5 s gaps, 0.1-0.4 s silence at both "
                      "ends, cut at a quiet point when longer than 6 s",
}


def progress_bar(iterable, progress: bool, desc: str, total: int | None = None):
    if not progress:
        return iterable
    from tqdm import tqdm

    return tqdm(iterable, desc=desc, total=total, unit="file", leave=False)


def write_fixed(root: Path, split: str, maker: MixtureMaker, names: list[str], speakers: list[str],
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
    for i in progress_bar(range(len(names)), progress, f"mix {split}"):
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


def write_csv(path: Path, rows: list[dict]) -> None:
    """mixtures.csv; the reverb and mic columns only when a row has them (a plain build's file is unchanged)."""
    columns = CSV_COLUMNS + (REVERB_COLUMNS if any("rt60_s" in row for row in rows) else ()) \
        + (MIC_COLUMNS if any("mic_eq" in row for row in rows) else ())
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: row.get(key, "") for key in columns})
    write_text(path, buffer.getvalue())


def minutes(frames: int) -> float:
    return round(frames / SR / 60.0, 2)


def tally(values) -> dict[str, int]:
    out: dict[str, int] = {}
    for value in values:
        out[value] = out.get(value, 0) + 1
    return dict(sorted(out.items()))
