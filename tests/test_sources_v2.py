"""Noise set v2 (more recorded noise from Debian packages, with licences) and the speaker rotation
(data.test_speaker / data.valid_speaker): defaults unchanged, splits disjoint, babble within its split.

Tests that read the v2 packages download them into <repo>/.cache the first time (as `small_dataset` does)."""

from __future__ import annotations

import csv
import io
import os
import re
import wave
import zipfile
from pathlib import Path

import numpy as np
import pytest

from sepipe import debian_options
from sepipe.artifacts import sha256_json
from sepipe.config import DataConfig, experiment_from_dict
from sepipe.data import Dataset, build_dataset, debian, generator, noise_sets, sources
from sepipe.data.layout import config_record, dataset_dir
from sepipe.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
# Names of what v2 must not contain: speech, vocal, UI, weapons, music (checked on every listed file).
UNWANTED = re.compile(r"die(?!sel)|hurt|scream|death|voice|talk|speech|news|radio|codriver|laugh|ouch|taunt|"
                      r"beep|click|menu|music|gun|weapon|laser|alien|growl|snarl", re.IGNORECASE)


@pytest.fixture(scope="module")
def v2_packages() -> dict[str, debian.Package]:
    return debian.fetch_packages(noise_sets.packages("v2"), REPO / ".cache")


@pytest.fixture(scope="module")
def v2_roots(v2_packages) -> dict[str, Path]:
    return {name: package.root for name, package in v2_packages.items()}


# --- the defaults are the data of before ----------------------------------------------------------

def test_tables_agree_and_v1_is_the_old_rule_set():
    assert set(debian_options.SPEAKER_NAMES) == {s.name for s in sources.SPEAKERS}
    assert debian_options.split_speakers(DataConfig()) == sources.SPLIT_SPEAKERS
    assert tuple(noise_sets.NOISE_SETS) == debian_options.NOISE_SETS
    assert noise_sets.rules("v1") is sources.NOISE_RULES
    assert noise_sets.packages("v1") == sources.NOISE_PACKAGES
    assert noise_sets.categories("v1") == sources.FILE_CATEGORIES
    assert [noise_sets.rule_record(r) for r in sources.NOISE_RULES] == [
        {k: v for k, v in vars(r).items() if k != "archive"} for r in sources.NOISE_RULES]
    for category in noise_sets.categories("v2"):
        assert category in generator.CATEGORY_WEIGHTS and category in sources.CLIP_GAPS_S, category


def test_defaults_keep_the_folder_record_and_fingerprint():
    default = DataConfig(cache_dir="c")
    spelled = DataConfig(cache_dir="c", noise_set="v1", test_speaker="June", valid_speaker="IvrvoiceRU")
    assert dataset_dir(default) == dataset_dir(spelled) == Path("c/datasets/debian-small-seed0")
    assert set(config_record(default)) == {"source", "size", "seed", "sample_rate", "snr_db", "level_dbfs", "root"}
    assert sha256_json({"data": default}) == sha256_json({"data": spelled})
    names = {dataset_dir(DataConfig(cache_dir="c", **kw)).name for kw in (
        {}, {"noise_set": "v2"}, {"test_speaker": "Carlo", "valid_speaker": "June"},
        {"noise_set": "v2", "test_speaker": "Carlo", "valid_speaker": "June"},
        {"test_speaker": "Allison"}, {"valid_speaker": "Carlo"})}
    assert len(names) == 6 and "debian-small-seed0-noisev2-testCarlo-validJune" in names
    # a v2 record carries its rules' hash: editing V2_RULES makes a v2 build outdated, never silently reused
    record = config_record(DataConfig(noise_set="v2"))
    assert record["noise_set"] == "v2" and record["noise_rules_sha256"] == noise_sets.rules_sha256("v2")
    assert noise_sets.rules_sha256("v2") != noise_sets.rules_sha256("v1")


def test_v1_listing_is_the_built_datasets(small_dataset):
    roots = {p: Path(small_dataset.cfg.cache_dir) / "unpacked" / p for p in sources.NOISE_PACKAGES}
    files, skipped = sources.list_noise(roots, noise_sets.rules("v1"))
    manifest = small_dataset.manifest
    assert len(files) == manifest["noise_sources"]["files"]
    assert [{"id": i, "reason": r} for i, r in skipped] == manifest["noise_sources"]["skipped"]
    assignment = sources.assign_noise_splits(files, small_dataset.cfg.seed)
    for split in sources.SPLITS:
        assert [f.id for f in assignment[split]] == manifest["splits"][split]["noise_files"], split
    assert manifest["splits"]["train"]["speakers"] == ["Allison", "Carlo"]


# --- config errors --------------------------------------------------------------------------------

@pytest.mark.parametrize("data, key, words", [
    ({"test_speaker": "Bob"}, "data.test_speaker", ["'Bob'", "Allison, Carlo, IvrvoiceRU, June"]),
    ({"valid_speaker": "june"}, "data.valid_speaker", ["'june'", "Allison, Carlo, IvrvoiceRU, June"]),
    ({"test_speaker": "IvrvoiceRU"}, "data.valid_speaker", ["IvrvoiceRU", "Allison, Carlo, June"]),
    ({"noise_set": "v3"}, "data.noise_set", ["'v3'", "'v1', 'v2'"]),
    ({"source": "dns", "root": "/x", "noise_set": "v2"}, "data.noise_set", ["'v2'", "'dns'"]),
    ({"source": "dns", "root": "/x", "test_speaker": "Carlo", "valid_speaker": "June"}, "data.test_speaker",
     ["Carlo", "Debian speakers"]),
])
def test_rotation_and_noise_set_errors_are_one_line(data, key, words):
    with pytest.raises(ConfigError) as caught:
        experiment_from_dict({"name": "x", "data": data}, source="exp.yaml")
    message = str(caught.value)
    assert "\n" not in message and key in message, message
    assert all(word in message for word in words), message


def test_every_speaker_can_be_the_test_speaker():
    for test in debian_options.SPEAKER_NAMES:
        valid = next(n for n in debian_options.SPEAKER_NAMES if n != test)
        cfg = experiment_from_dict({"name": "x", "data": {"test_speaker": test, "valid_speaker": valid}}).data
        split = debian_options.split_speakers(cfg)
        assert split["test"] == (test,) and split["valid"] == (valid,)
        assert set(split["train"]) == set(debian_options.SPEAKER_NAMES) - {test, valid} and split["train"]


# --- licences -------------------------------------------------------------------------------------

def test_free_text_licences():
    free = debian.free_text_licences
    assert free("under the terms of the GNU General Public License version 3 as published by the FSF") == ["GPL-3"]
    assert free("GNU General Public License as published by the Free Software Foundation; either version 2 "
                "of the License, or (at your option) any later version.") == ["GPL-2+"]
    assert free("You are free to distribute this software under the terms of\nthe GNU General Public License.") \
        == ["GPL"]
    assert free("distributed under the Creative Commons Attribution-ShareAlike\n3.0 license") == ["CC-BY-SA-3.0"]
    assert free("Creative Commons Attribution 3.0 Unported; and some public domain files") == \
        ["CC-BY-3.0", "public-domain"]
    assert free("no licence named here") == []


def test_v2_packages_record_a_licence(v2_packages):
    for name, package in v2_packages.items():
        licence = package.record()["licence"]
        assert licence and not licence.startswith("unknown") and len(licence) < 300, (name, licence)
    assert v2_packages["stormbaancoureur-data"].licence == "GPL-3"      # a free-text copyright file
    assert "CC-BY-SA-3.0" in v2_packages["minetest-data"].licence


# --- the v2 rules on the real packages -------------------------------------------------------------

def test_every_v2_rule_finds_files(v2_roots):
    for rule in noise_sets.V2_RULES:
        files, skipped = sources.list_noise(v2_roots, (rule,))
        assert files, f"no file for {rule}"
        assert not skipped, skipped


def test_v2_listing_splits_disjoint_and_clean(v2_roots, small_dataset):
    roots = {**{p: Path(small_dataset.cfg.cache_dir) / "unpacked" / p for p in sources.NOISE_PACKAGES}, **v2_roots}
    files, _ = sources.list_noise(roots, noise_sets.rules("v2"))
    v1_files, _ = sources.list_noise(roots, noise_sets.rules("v1"))
    assert {f.id for f in v1_files} <= {f.id for f in files}
    counts = {c: sum(f.category == c for f in files) for c in noise_sets.categories("v2")}
    assert all(counts[c] >= 3 for c in ("domestic", "machine", "street", "crowd")), counts
    for f in files:
        if f.package not in sources.NOISE_PACKAGES:
            assert not UNWANTED.search(f.id.split(":", 1)[1]), f.id
    assert any(f.member and f.package == "ufoai-sound" for f in files)
    for seed in (0, 1, 7):
        assignment = sources.assign_noise_splits(files, seed)
        assert sorted(f.id for split in assignment.values() for f in split) == sorted(f.id for f in files)
        for a, b in (("train", "valid"), ("train", "test"), ("valid", "test")):
            assert not {f.sha256 for f in assignment[a]} & {f.sha256 for f in assignment[b]}, (seed, a, b)
        for category, n in counts.items():
            assert all(any(f.category == category for f in assignment[s]) for s in sources.SPLITS), category
    member = next(f for f in files if f.member)
    audio = sources.load_noise(member)
    assert audio.dtype == np.float32 and audio.ndim == 1 and len(audio) > 0.05 * sources.SR


def test_v2_has_no_near_copies(v2_roots):
    """Files of the new packages: no two of about the same length are the same recording (re-encoded or
    re-levelled copies have a normalised cross-correlation near 1; distinct footsteps stay below 0.9)."""
    from scipy.signal import correlate

    files, _ = sources.list_noise(v2_roots, noise_sets.V2_RULES)
    audio = sorted(((len(a), f.id, a) for f in files for a in [sources.load_noise(f)[:20 * sources.SR]]),
                   key=lambda item: item[:2])
    copies = []
    for i, (n, name, a) in enumerate(audio):
        for m, other, b in audio[i + 1:]:
            if m > n * 1.01 + 10:
                break
            peak = np.max(np.abs(correlate(a, b, mode="full", method="fft")))
            if peak / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12) > 0.95:
                copies.append((name, other))
    assert not copies, copies


# --- zip members, on a tiny archive ------------------------------------------------------------------

def _wav_bytes(seconds: float, rate: int = 16000, value: int = 1000) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as handle:
        handle.setnchannels(1), handle.setsampwidth(2), handle.setframerate(rate)
        handle.writeframes(np.full(int(seconds * rate), value, np.int16).tobytes())
    return buffer.getvalue()


def test_zip_members_are_listed_loaded_and_merged(tmp_path):
    root = tmp_path / "pkg"
    (root / "usr/share/games/g/sounds").mkdir(parents=True)
    same = _wav_bytes(0.5)
    (root / "usr/share/games/g/sounds/a.wav").write_bytes(same)
    with zipfile.ZipFile(root / "usr/share/games/g/data.pk3", "w") as archive:
        archive.writestr("sound/door.wav", _wav_bytes(0.3, rate=8000, value=2000))
        archive.writestr("sound/copy.wav", same)
        archive.writestr("sound/voice.wav", _wav_bytes(0.3))
        archive.writestr("sound/readme.txt", "not audio")
        archive.writestr("sound/tiny.wav", _wav_bytes(0.01))
    rules = (sources.NoiseRule("domestic", "pkg", "usr/share/games/g/sounds/*.wav"),
             sources.NoiseRule("domestic", "pkg", "sound/*", exclude=r"voice", archive="usr/share/games/g/*.pk3"))
    files, skipped = sources.list_noise({"pkg": root}, rules)
    assert [f.id for f in files] == ["pkg:g/data.pk3/sound/door.wav", "pkg:g/sounds/a.wav"]
    assert files[1].aliases == ("pkg:g/data.pk3/sound/copy.wav",)
    assert skipped == [("pkg:g/data.pk3/sound/tiny.wav", "shorter than 0.05 s")]
    door = sources.load_noise(files[0])
    assert len(door) == int(0.3 * 16000) and abs(float(np.median(door)) - 2000 / 32768) < 1e-3


# --- a rotated build: speakers and babble stay within their split ------------------------------------

def test_rotated_build_keeps_speakers_and_babble_disjoint(tmp_path, small_dataset, package_cache):
    cfg = DataConfig(cache_dir=str(package_cache), test_speaker="Carlo",
                     valid_speaker="June")
    root = build_dataset(cfg, progress=False)
    assert root.name == "debian-small-seed0-testCarlo-validJune"
    dataset = Dataset.open(cfg)
    manifest = dataset.manifest
    assert manifest["speakers"] == {"train": ["Allison", "IvrvoiceRU"], "valid": ["June"], "test": ["Carlo"]}
    assert manifest["fingerprint"]["config"]["speakers"] == manifest["speakers"]
    folders = {split: tuple(s.folder for s in sources.SPEAKERS if s.name in names)
               for split, names in manifest["speakers"].items()}
    assert {e["speaker"] for e in manifest["splits"]["train"]["speech"]} == {"Allison", "IvrvoiceRU"}
    with open(root / "mixtures.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert {r["split"] for r in rows} == {"valid", "test"}
    babble = 0
    for row in rows:
        assert all(s.startswith(folders[row["split"]]) for s in row["clean_sources"].split(";")), row
        if row["noise_category"] == "babble":
            babble += 1
            talkers = row["noise_source"].removeprefix("babble:").split(";")
            assert all(t.startswith(folders[row["split"]]) for t in talkers), row
    assert babble >= 2
    # training mixtures draw babble from the training pool only (never the valid or test speaker)
    maker = dataset._training_maker()
    rng = np.random.default_rng(0)
    for _ in range(5):
        _, source, _ = maker.noise_for(rng, "babble", 16000)
        assert all(t.startswith(folders["train"]) for t in source.removeprefix("babble:").split(";")), source
    # the noise files are still those of the default build (the rotation moves speakers only)
    for split in sources.SPLITS:
        assert manifest["splits"][split]["noise_files"] == small_dataset.manifest["splits"][split]["noise_files"]
