"""The data stage: splits, mixing, determinism, user corpora, errors (real Debian data, small build)."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import pytest

from sepipe.audio import read_wav, rms_dbfs, write_wav
from sepipe.config import DataConfig
from sepipe.data import Dataset, build_dataset
from sepipe.data import mixing
from sepipe.errors import InputFileError, MissingArtifactError

SR = 16000


def _rows(dataset: Dataset) -> list[dict]:
    with open(dataset.root / "mixtures.csv", newline="") as handle:
        return list(csv.DictReader(handle))


# --- Debian dataset --------------------------------------------------------------------------------

def test_speakers_and_noise_files_disjoint(small_dataset):
    splits = small_dataset.manifest["splits"]
    for a, b in (("train", "valid"), ("train", "test"), ("valid", "test")):
        assert not set(splits[a]["speakers"]) & set(splits[b]["speakers"]), (a, b)
        assert not set(splits[a]["noise_files"]) & set(splits[b]["noise_files"]), (a, b)
    assert splits["train"]["speakers"] == ["Allison", "Carlo"]
    # what was actually used follows the rules too
    train_speakers = {e["speaker"] for e in splits["train"]["speech"]}
    assert train_speakers <= {"Allison", "Carlo"}
    for row in _rows(small_dataset):
        folder = {"valid": "ru_RU_f_IvrvoiceRU", "test": "fr_CA_f_June"}[row["split"]]
        assert all(s.startswith(folder) for s in row["clean_sources"].split(";"))
        if row["noise_category"] in ("coloured", "hum"):
            continue
        if row["noise_category"] == "babble":
            used = set(row["clean_sources"].split(";"))
            talkers = row["noise_source"].removeprefix("babble:").split(";")
            assert all(t.startswith(folder) and t not in used for t in talkers)
            continue
        for part in row["noise_source"].split(";"):
            assert part in splits[row["split"]]["noise_files"]
    # every file noise category is present in every split
    categories = {split: {e["category"] for e in splits["train"]["noise_pool"]} if split == "train"
                  else set(splits[split]["noise_categories"]) for split in splits}
    for category in ("ambient", "effects", "city", "music", "vehicle", "typing"):
        assert all(category in found for found in categories.values()), category


def test_mixtures_have_stated_snr_level_and_length(small_dataset):
    cfg = small_dataset.cfg
    rows = _rows(small_dataset)
    assert len(rows) == 32
    for row in rows:
        pair = next(p for p in small_dataset.pairs(row["split"]) if p.name == row["name"])
        assert pair.noisy.dtype == np.float32 and pair.noisy.shape == pair.clean.shape
        assert 2.0 <= len(pair.clean) / SR <= 6.0
        assert abs(mixing.measured_snr_db(pair.clean, pair.noisy) - float(row["snr_db"])) < 0.5, row["name"]
        assert cfg.snr_db[0] <= float(row["snr_db"]) <= cfg.snr_db[1]
        assert abs(rms_dbfs(pair.noisy) - float(row["level_dbfs"])) < 0.1
        assert cfg.level_dbfs[0] - 20 <= float(row["level_dbfs"]) <= cfg.level_dbfs[1] + 0.01
        assert np.max(np.abs(pair.noisy)) < 0.99


def test_pairs_sorted_and_limited(small_dataset):
    names = [p.name for p in small_dataset.pairs("test")]
    assert names == sorted(names) and len(names) == 16
    limited = small_dataset.pairs("test", limit=4)
    assert len(limited) == 4 and [p.name for p in limited] == sorted(p.name for p in limited)
    assert set(p.name for p in limited) <= set(names)
    with pytest.raises(ValueError):
        small_dataset.pairs("train")


def test_same_seed_gives_same_bytes(tmp_path, small_dataset, package_cache):
    cfg = DataConfig(source="debian", size="small", seed=0, cache_dir=str(package_cache))
    root = build_dataset(cfg, progress=False)
    ours, theirs = small_dataset.root, root
    files = sorted(p.relative_to(ours) for p in ours.rglob("*") if p.is_file() and p.name != "manifest.json")
    assert files == sorted(p.relative_to(theirs) for p in theirs.rglob("*")
                           if p.is_file() and p.name != "manifest.json")
    for rel in files:
        assert (ours / rel).read_bytes() == (theirs / rel).read_bytes(), rel
    stamp = (root / "manifest.json").stat().st_mtime_ns
    build_dataset(cfg, progress=False)                      # a rerun reuses the build
    assert (root / "manifest.json").stat().st_mtime_ns == stamp


def test_training_segments_fresh_and_deterministic(small_dataset):
    n = int(round(small_dataset.cfg.segment_s * SR))
    stream = small_dataset.training_segments(seed=3)
    draws = [next(stream) for _ in range(6)]
    for noisy, clean in draws:
        assert noisy.shape == clean.shape == (n,)
        assert noisy.dtype == clean.dtype == np.float32
        assert np.max(np.abs(noisy)) <= 1.0 and mixing.active_power(clean) > 0
        assert not np.allclose(noisy, clean)
    assert not any(np.array_equal(draws[0][1], d[1]) for d in draws[1:])      # fresh speech each draw
    again = small_dataset.training_segments(seed=3)
    assert all(np.array_equal(next(again)[0], d[0]) for d in draws)
    other = next(small_dataset.training_segments(seed=4))
    assert not np.array_equal(other[0], draws[0][0])


def test_training_files_fixed(small_dataset):
    first = small_dataset.training_files(3, seed=1)
    assert len(first) == 3 and len({p.name for p in first}) == 3
    for pair in first:
        assert pair.noisy.shape == pair.clean.shape and 2.0 <= len(pair.clean) / SR <= 6.0
    again = small_dataset.training_files(3, seed=1)
    assert all(a.name == b.name and np.array_equal(a.noisy, b.noisy) for a, b in zip(first, again))


def test_manifest_records_sources_and_rules(small_dataset):
    manifest = small_dataset.manifest
    assert set(manifest["splits"]) == {"train", "valid", "test"}
    for name, record in manifest["packages"].items():
        assert record["version"] and len(record["sha256"]) == 64 and record["licence"], name
    assert "CC-BY-SA-3.0" in manifest["packages"]["asterisk-core-sounds-en-g722"]["licence"]
    assert any("splash01" in s["id"] for s in manifest["noise_sources"]["skipped"])
    assert 7 <= manifest["splits"]["train"]["speech_minutes"] <= 10
    assert "speakers" in manifest["split_rules"] and "noise_files" in manifest["split_rules"]


def test_missing_dataset_and_other_config(tmp_path, small_dataset):
    with pytest.raises(MissingArtifactError, match="sepipe data build"):
        Dataset.open(DataConfig(cache_dir=str(tmp_path)))
    other = DataConfig(cache_dir=small_dataset.cfg.cache_dir, snr_db=(0.0, 5.0))
    with pytest.raises(MissingArtifactError, match="sepipe data build"):
        Dataset.open(other)


# --- user corpora ----------------------------------------------------------------------------------

def _speech_clips(dataset: Dataset, count: int) -> list[np.ndarray]:
    entries = dataset.manifest["splits"]["train"]["speech"]
    return [read_wav(dataset.root / e["path"], SR) for e in entries[:count]]


def _noise_clips(dataset: Dataset, count: int) -> list[np.ndarray]:
    entries = dataset.manifest["splits"]["train"]["noise_pool"]
    return [read_wav(dataset.root / e["path"], SR)[:3 * SR] for e in entries[:count]]


def _make_voicebank(root: Path, dataset: Dataset, rate: int = SR) -> None:
    speech = _speech_clips(dataset, 12)
    noise = _noise_clips(dataset, 3)
    layout = {"train": ["p226", "p287", "p250", "p251"], "test": ["p232"]}
    k = 0
    for split, speakers in layout.items():
        for speaker in speakers:
            for utterance in (1, 2):
                clean = speech[k % len(speech)]
                noisy = clean + 0.3 * np.resize(noise[k % len(noise)], len(clean))
                name = f"{speaker}_{utterance:03d}.wav"
                write_wav(root / f"clean_{split}set_wav" / name, clean, rate if k == 0 else SR)
                write_wav(root / f"noisy_{split}set_wav" / name, noisy, rate if k == 0 else SR)
                k += 1


def test_voicebank_layout(tmp_path, small_dataset):
    corpus = tmp_path / "vb"
    _make_voicebank(corpus, small_dataset)
    cfg = DataConfig(source="voicebank", root=str(corpus), cache_dir=str(tmp_path / "cache"), segment_s=1.0)
    root = build_dataset(cfg, progress=False)
    assert root.name.startswith("voicebank-small-seed0-")
    dataset = Dataset.open(cfg)
    assert [p.name for p in dataset.pairs("valid")] == ["p226_001", "p226_002", "p287_001", "p287_002"]
    assert [p.name for p in dataset.pairs("test")] == ["p232_001", "p232_002"]
    assert dataset.manifest["splits"]["train"]["speakers"] == ["p250", "p251"]
    pair = dataset.pairs("test")[0]
    assert pair.noisy.shape == pair.clean.shape and pair.noisy.dtype == np.float32
    noisy, clean = next(dataset.training_segments(seed=0))
    assert noisy.shape == clean.shape == (SR,)
    files = dataset.training_files(2, seed=0)
    assert len(files) == 2 and all(f.name.startswith(("p250", "p251")) for f in files)


def test_voicebank_wrong_rate_is_an_input_error(tmp_path, small_dataset):
    corpus = tmp_path / "vb8k"
    _make_voicebank(corpus, small_dataset, rate=8000)
    cfg = DataConfig(source="voicebank", root=str(corpus), cache_dir=str(tmp_path / "cache"))
    with pytest.raises(InputFileError) as info:
        build_dataset(cfg, progress=False)
    message = str(info.value)
    assert "p226_001.wav" in message and "8000" in message and "16000" in message


def test_missing_corpus_folder_is_an_input_error(tmp_path, small_dataset):
    corpus = tmp_path / "vb"
    _make_voicebank(corpus, small_dataset)
    for wav in (corpus / "noisy_testset_wav").iterdir():
        wav.unlink()
    (corpus / "noisy_testset_wav").rmdir()
    with pytest.raises(InputFileError, match="noisy_testset_wav.*clean,noisy"):
        build_dataset(DataConfig(source="voicebank", root=str(corpus), cache_dir=str(tmp_path / "c")),
                      progress=False)
    (tmp_path / "dns").mkdir()
    with pytest.raises(InputFileError, match="clean.*DNS layout"):
        build_dataset(DataConfig(source="dns", root=str(tmp_path / "dns"), cache_dir=str(tmp_path / "c")),
                      progress=False)


def test_dns_layout(tmp_path, small_dataset):
    corpus = tmp_path / "dns"
    speech = _speech_clips(small_dataset, 16)
    for i, clip in enumerate(speech):
        write_wav(corpus / "clean" / f"book_{i:05d}_chp_0001_reader_{i % 8:05d}_{i}.wav", clip, SR)
    for i, clip in enumerate(_noise_clips(small_dataset, 8)):
        write_wav(corpus / "noise" / f"noise_{i}.wav", clip, SR)
    cfg = DataConfig(source="dns", root=str(corpus), cache_dir=str(tmp_path / "cache"), segment_s=2.0)
    build_dataset(cfg, progress=False)
    dataset = Dataset.open(cfg)
    splits = dataset.manifest["splits"]
    for a, b in (("train", "valid"), ("train", "test"), ("valid", "test")):
        assert not set(splits[a]["speakers"]) & set(splits[b]["speakers"])
        assert not set(splits[a]["noise_files"]) & set(splits[b]["noise_files"])
    rows = {r["name"]: r for r in _rows(dataset) if r["split"] == "test"}
    pairs = dataset.pairs("test")
    assert len(pairs) == 16
    for pair in pairs:
        assert abs(mixing.measured_snr_db(pair.clean, pair.noisy) - float(rows[pair.name]["snr_db"])) < 0.5
    noisy, clean = next(dataset.training_segments(seed=0))
    assert noisy.shape == clean.shape == (2 * SR,)
    assert len(dataset.training_files(2, seed=0)) == 2
    # an interrupted build (no manifest) is redone, identically
    first = pairs[0]
    (dataset.root / "manifest.json").unlink()
    (dataset.root / "test" / "noisy" / f"{first.name}.wav").unlink()
    with pytest.raises(MissingArtifactError):
        Dataset.open(cfg)
    build_dataset(cfg, progress=False)
    assert np.array_equal(Dataset.open(cfg).pairs("test")[0].noisy, first.noisy)


# --- mixing primitives -----------------------------------------------------------------------------

def test_mix_trim_and_loop():
    rng = np.random.default_rng(0)
    t = np.arange(SR) / SR
    speech = np.concatenate([np.zeros(SR // 2), 0.3 * np.sin(2 * np.pi * 220 * t), np.zeros(SR // 2)])
    trimmed = mixing.trim_silence(speech.astype(np.float32))
    assert SR <= len(trimmed) <= SR + int(0.1 * SR) + 2 * 160
    noise = mixing.coloured_noise(len(speech), "pink", rng)
    noisy, clean, level = mixing.mix(speech, noise, snr_db=5.0, level_dbfs=-20.0)
    assert abs(mixing.measured_snr_db(clean, noisy) - 5.0) < 1e-3
    assert abs(level - (-20.0)) < 1e-3 and abs(rms_dbfs(noisy) + 20.0) < 1e-3
    loud_noisy, _, loud_level = mixing.mix(speech, noise, snr_db=-5.0, level_dbfs=0.0)
    assert np.max(np.abs(loud_noisy)) <= mixing.PEAK_LIMIT + 1e-6 and loud_level < 0.0
    looped, offset = mixing.fit_length(np.arange(10, dtype=np.float32), 25, rng)
    assert len(looped) == 25 and looped[0] == offset and looped[10] == offset
    hum, what = mixing.hum(SR, rng)
    assert abs(np.sqrt(np.mean(hum.astype(np.float64) ** 2)) - 1.0) < 1e-3 and "Hz" in what
