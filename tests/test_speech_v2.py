"""Speech set v2 (extra training voices from Debian packages behind a clean-target gate): v1 unchanged, the extra
voices in the training split only, the gate on tiny synthetic recordings, per-speaker draws, config errors.

Tests that read the v2 speech packages download them into <repo>/.cache the first time (as `small_dataset` does)."""

from __future__ import annotations

import collections
import csv
import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from sepipe import debian_options
from sepipe.artifacts import sha256_json
from sepipe.config import DataConfig, experiment_from_dict
from sepipe.data import Dataset, build_dataset, debian, sources, speech_quality, speech_sets
from sepipe.data.build_debian import DEBIAN_PACKAGES, debian_packages
from sepipe.data.dataset import prompt_weights
from sepipe.data.generator import MixtureMaker
from sepipe.data.layout import config_record, dataset_dir
from sepipe.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
RATE = 44100


@pytest.fixture(scope="module")
def speech_packages() -> dict[str, debian.Package]:
    return debian.fetch_packages(speech_sets.packages("v2"), REPO / ".cache")


# --- v1 is the data of before -----------------------------------------------------------------------

def test_v1_is_the_old_speech_and_package_list():
    assert tuple(speech_sets.SPEECH_SETS) == debian_options.SPEECH_SETS
    assert speech_sets.rules("v1") == () and speech_sets.packages("v1") == ()
    assert debian_packages(DataConfig()) == DEBIAN_PACKAGES
    assert set(debian_packages(DataConfig(speech_set="v2"))) - set(DEBIAN_PACKAGES) == set(speech_sets.packages("v2"))


def test_v1_keeps_the_folder_record_and_fingerprint():
    default, spelled = DataConfig(cache_dir="c"), DataConfig(cache_dir="c", speech_set="v1")
    assert dataset_dir(default) == dataset_dir(spelled) == Path("c/datasets/debian-small-seed0")
    assert config_record(default) == config_record(spelled) and "speech_set" not in config_record(default)
    assert sha256_json({"data": default}) == sha256_json({"data": spelled})
    combined = DataConfig(cache_dir="c", speech_set="v2", noise_set="v2", test_speaker="Carlo", valid_speaker="June")
    assert dataset_dir(combined).name == "debian-small-seed0-noisev2-speechv2-testCarlo-validJune"
    assert dataset_dir(DataConfig(cache_dir="c", speech_set="v2")).name == "debian-small-seed0-speechv2"
    record = config_record(combined)
    assert record["speech_set"] == "v2" and record["speech_rules_sha256"] == speech_sets.rules_sha256("v2")
    assert record["noise_set"] == "v2" and record["speakers"]["test"] == ["Carlo"]


def test_editing_the_rules_or_the_gate_changes_the_hash(monkeypatch):
    before = speech_sets.rules_sha256("v2")
    edited = (replace(speech_sets.V2_RULES[0], pattern="**/*_desc_fr.ogg"),) + speech_sets.V2_RULES[1:]
    monkeypatch.setitem(speech_sets.SPEECH_SETS, "v2", edited)
    assert speech_sets.rules_sha256("v2") != before
    monkeypatch.setitem(speech_sets.SPEECH_SETS, "v2", speech_sets.V2_RULES)
    assert speech_sets.rules_sha256("v2") == before
    monkeypatch.setattr(speech_quality, "SNR_MIN_DB", 25.0)
    assert speech_sets.rules_sha256("v2") != before


# --- config errors ---------------------------------------------------------------------------------

@pytest.mark.parametrize("data, words", [
    ({"speech_set": "v3"}, ["'v3'", "'v1', 'v2'"]),
    ({"source": "dns", "root": "/x", "speech_set": "v2"}, ["'v2'", "'dns'", "'v1'"]),
    ({"source": "voicebank", "root": "/x", "speech_set": "v2"}, ["'v2'", "'voicebank'"]),
])
def test_speech_set_errors_are_one_line(data, words):
    with pytest.raises(ConfigError) as caught:
        experiment_from_dict({"name": "x", "data": data}, source="exp.yaml")
    message = str(caught.value)
    assert "\n" not in message and "data.speech_set" in message, message
    assert all(word in message for word in words), message


def test_speech_set_combines_with_noise_set_and_rotation():
    cfg = experiment_from_dict({"name": "x", "data": {"speech_set": "v2", "noise_set": "v2", "test_speaker": "Allison",
                                                      "valid_speaker": "Carlo"}}).data
    assert (cfg.speech_set, cfg.noise_set) == ("v2", "v2")
    assert debian_options.split_speakers(cfg)["train"] == ("IvrvoiceRU", "June")


# --- the gate, on tiny synthetic recordings -----------------------------------------------------------

def _speech_like(seconds: float = 1.2, rate: int = RATE, top_hz: float = 10000.0, noise_db: float = -90.0,
                 seed: int = 0) -> np.ndarray:
    """A voiced 'word' (harmonics of 140 Hz up to top_hz, syllabic envelope) with 0.25 s of pause either side, over
    white noise `noise_db` below the word's level."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    voiced = sum(np.sin(2 * np.pi * 140 * k * t + rng.uniform(0, 6.3)) / k ** 0.6 for k in range(1, int(top_hz / 140)))
    word = voiced * (0.6 + 0.4 * np.sin(2 * np.pi * 4 * t)) * np.hanning(len(t)) ** 0.2
    word = 0.3 * word / np.max(np.abs(word))
    pause = np.zeros(int(0.25 * rate))
    x = np.concatenate([pause, word, pause])
    power = np.mean(np.square(word))
    return (x + rng.standard_normal(len(x)) * np.sqrt(power * 10 ** (noise_db / 10))).astype(np.float32)


def test_measures_on_synthetic_words():
    clean = _speech_like()
    assert speech_quality.snr_db(clean, RATE) > 60
    assert speech_quality.bandwidth_hz(clean, RATE) > 9000
    noisy = _speech_like(noise_db=-20)
    assert 15 < speech_quality.snr_db(noisy, RATE) < 28
    assert 3000 < speech_quality.bandwidth_hz(_speech_like(top_hz=4000), RATE) < 4500
    assert speech_quality.snr_db(np.zeros(RATE, np.float32), RATE) == float("-inf")


def _write(root: Path, rel: str, audio: np.ndarray, rate: int = RATE, **kw) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), audio, rate, **kw)
    return path


@pytest.fixture
def tiny_package(tmp_path) -> tuple[Path, tuple[speech_sets.SpeechRule, ...]]:
    """A package of 'voices' (a/, b/, c/), one rule naming the voice by folder."""
    root = tmp_path / "pkg"
    base = "usr/share/game/voices"
    for k in range(3):                                     # a: clean, in the three formats the packages use
        _write(root, f"{base}/a/w{k}.ogg", _speech_like(seed=k), format="OGG", subtype="VORBIS")
    _write(root, f"{base}/a/w3.opus", _speech_like(seed=3), rate=48000, format="OGG", subtype="OPUS")
    _write(root, f"{base}/a/w4.wav", _speech_like(seed=4))
    (root / f"{base}/a/zcopy.ogg").write_bytes((root / f"{base}/a/w0.ogg").read_bytes())   # identical bytes
    _write(root, f"{base}/a/noisy.wav", _speech_like(noise_db=-20, seed=5))
    _write(root, f"{base}/a/dull.wav", _speech_like(top_hz=4000, seed=6))
    _write(root, f"{base}/a/phone.wav", _speech_like(rate=8000, top_hz=3500, seed=7), rate=8000)
    _write(root, f"{base}/a/tick.wav", _speech_like(seconds=0.2, seed=8))
    _write(root, f"{base}/a/song.wav", np.stack([_speech_like(seed=9)] * 2, axis=1))
    (root / f"{base}/a/broken.ogg").write_bytes(b"OggS not really")
    for k in range(4):                                     # b: a band-limited voice (one file of it full-band)
        _write(root, f"{base}/b/w{k}.wav", _speech_like(top_hz=10000 if k == 0 else 4000, seed=20 + k))
    _write(root, f"{base}/c/w0.wav", _speech_like(seed=30))   # c: clean but too little of it
    _write(root, f"{base}/readme-x.ogg", _speech_like(seed=40))   # not in a voice folder: left out by name
    rule = speech_sets.SpeechRule("game", "pkg", base, "**/*", r"^(?P<lang>[a-c])/[^/]+$", language="xx",
                                  exclude_format=(RATE, 2))
    return root, (rule,)


def test_listing_names_speakers_merges_copies_and_leaves_out_unnamed(tiny_package):
    root, rules = tiny_package
    files, left_out = speech_sets.list_extra({"pkg": root}, rules)
    ids = [f.id for f in files]
    assert "game:a/w0" in ids and "game:a/zcopy" not in ids and "game:readme-x" not in ids
    assert next(f for f in files if f.id == "game:a/w0").aliases == ("game:a/zcopy",)
    assert {f.speaker for f in files} == {"game:a", "game:b", "game:c"} and {f.language for f in files} == {"a", "b", "c"}
    assert left_out == [{"rule": "game", "reason": left_out[0]["reason"], "files": 1, "examples": ["readme-x.ogg"]}]


def test_gate_keeps_clean_files_and_drops_noisy_dull_and_band_limited_voices(tiny_package, monkeypatch):
    root, rules = tiny_package
    monkeypatch.setattr(speech_sets, "MIN_SPEAKER_S", 3.0)
    files, _ = speech_sets.list_extra({"pkg": root}, rules)
    kept, record = speech_quality.gate_speaker([f for f in files if f.speaker == "game:a"])
    assert sorted(a.file.id for a in kept) == ["game:a/w0", "game:a/w1", "game:a/w2", "game:a/w3", "game:a/w4"]
    assert record["status"] == "kept" and record["passed_files"] == 5 and record["duplicates_merged"] == 1
    assert record["dropped"] == {"SNR under 30 dB": 1, "band limit under 7 kHz": 1, "sample rate under 16 kHz": 1,
                                 "shorter than 0.6 s after trimming": 1, "unreadable": 1,
                                 f"format left out ({RATE} Hz, 2 channels: songs)": 1}
    for item in kept:             # mono float32 at 16 kHz, trimmed of the pauses
        assert item.audio.dtype == np.float32 and item.audio.ndim == 1
        assert abs(len(item.audio) / sources.SR - 1.2) < 0.15
    kept_b, record_b = speech_quality.gate_speaker([f for f in files if f.speaker == "game:b"])
    assert kept_b == [] and record_b["status"].startswith("dropped: a band-limited voice")
    kept_c, record_c = speech_quality.gate_speaker([f for f in files if f.speaker == "game:c"])
    assert kept_c == [] and record_c["status"].startswith("dropped: under 3 s")


def test_extra_training_speech_budget_and_record(tiny_package, monkeypatch):
    root, rules = tiny_package
    monkeypatch.setitem(speech_sets.SPEECH_SETS, "v2", rules)
    monkeypatch.setattr(speech_sets, "MIN_SPEAKER_S", 3.0)
    monkeypatch.setitem(speech_sets.EXTRA_PER_SPEAKER_S, "small", 2.0)
    chosen, record = speech_quality.extra_training_speech({"pkg": root}, "v2", "small", 0, False)
    assert record["speakers_kept"] == ["game:a"] and set(record["speakers"]) == {"game:a", "game:b", "game:c"}
    assert len(chosen) == 2 and all(f.speaker == "game:a" for f, _ in chosen)      # 2 s: two 1.2 s words
    assert record["speakers"]["game:a"]["used_files"] == 2
    again, _ = speech_quality.extra_training_speech({"pkg": root}, "v2", "small", 0, False)
    assert [f.id for f, _ in again] == [f.id for f, _ in chosen]
    full, _ = speech_quality.extra_training_speech({"pkg": root}, "v2", "full", 0, False)
    assert len(full) == 5


# --- training draws: per speaker, capped by duration -------------------------------------------------

def test_speaker_weights_cap_large_speakers():
    weights = speech_sets.speaker_weights({"big": 3600.0, "mid": 300.0, "small": 30.0, "none": 0.0})
    assert set(weights) == {"big", "mid", "small"} and weights["big"] == weights["mid"]
    assert abs(weights["small"] - weights["mid"] / 10) < 1e-5 and abs(sum(weights.values()) - 1) < 1e-5


def test_draws_follow_speaker_weights_and_v1_draws_are_unchanged():
    speech = [{"speaker": "A"}] * 8 + [{"speaker": "B"}] * 2
    assert prompt_weights(speech, None) is None
    clips = [np.ones(1600, np.float32)] * 10
    maker = MixtureMaker(clips, [str(i) for i in range(10)], [], [], [], (0.0, 0.0), (-20.0, -20.0))
    a, b = np.random.default_rng(3), np.random.default_rng(3)
    assert [maker.draw_speech(a) for _ in range(50)] == [int(b.integers(0, 10)) for _ in range(50)]
    weighted = MixtureMaker(clips, [str(i) for i in range(10)], [], [], [], (0.0, 0.0), (-20.0, -20.0),
                            speech_weights=prompt_weights(speech, {"A": 0.5, "B": 0.5}))
    rng = np.random.default_rng(0)
    counts = collections.Counter(speech[weighted.draw_speech(rng)]["speaker"] for _ in range(20000))
    assert abs(counts["B"] / 20000 - 0.5) < 0.02


# --- the real packages ---------------------------------------------------------------------------------

def test_speech_packages_record_a_licence(speech_packages):
    for name, package in speech_packages.items():
        licence = package.record()["licence"]
        assert licence and not licence.startswith("unknown") and "GPL-2" in licence, (name, licence)


def test_every_rule_finds_voices(speech_packages):
    roots = {name: package.root for name, package in speech_packages.items()}
    for rule in speech_sets.V2_RULES:
        files, _ = speech_sets.list_extra(roots, (rule,))
        speakers = collections.Counter(f.speaker for f in files)
        assert len(files) >= 300 and len(speakers) >= 2, (rule.name, speakers)
        assert all(name.startswith(rule.name + ":") for name in speakers)
    files, _ = speech_sets.list_extra(roots, speech_sets.V2_RULES)
    speakers = {f.speaker for f in files}
    assert {"tuxpaint:en", "tuxpaint:fr", "klettres:de", "klettres:nds", "ktuberling:nn", "fillets-cs:m",
            "fillets-nl:v"} <= speakers
    assert not any(f.speaker.startswith("fillets") and f.speaker[-1] not in "mv" for f in files)
    assert len({f.sha256 for f in files}) == len(files)


def test_v2_build_adds_training_voices_only(tmp_path, small_dataset, speech_packages, package_cache):
    cfg = DataConfig(cache_dir=str(package_cache), speech_set="v2")
    root = build_dataset(cfg, progress=False)
    assert root.name == "debian-small-seed0-speechv2"
    dataset = Dataset.open(cfg)
    manifest, old = dataset.manifest, small_dataset.root
    # valid, test and the v1 training prompts are the v1 bytes: test sets stay comparable
    for rel in ["mixtures.csv"] + [p.relative_to(old).as_posix() for p in old.rglob("*.wav")]:
        assert (root / rel).read_bytes() == (old / rel).read_bytes(), rel
    extra = set(manifest["extra_speech"]["speakers_kept"])
    train = manifest["splits"]["train"]
    assert len(extra) >= 15 and set(train["extra_speakers"]) == extra
    assert {e["speaker"] for e in train["speech"]} == extra | {"Allison", "Carlo"}
    assert set(train["speaker_weights"]) == extra | {"Allison", "Carlo"}
    assert manifest["speakers"] == {"train": ["Allison", "Carlo"], "valid": ["IvrvoiceRU"], "test": ["June"]}
    with open(root / "mixtures.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            assert ":" not in row["clean_sources"], row          # Asterisk prompts only (extra ids have a ':')
    for name, record in manifest["extra_speech"]["speakers"].items():
        assert record["files"] == record["passed_files"] + sum(record["dropped"].values()), name
        assert record["status"] == "kept" or not record["used_files"], name
    for name in speech_sets.packages("v2"):
        assert manifest["packages"][name]["licence"], name
    # training mixtures draw every extra voice, and babble from the training pool only
    maker, rng = dataset._training_maker(), np.random.default_rng(0)
    drawn = {train["speech"][maker.draw_speech(rng)]["speaker"] for _ in range(3000)}
    assert drawn == extra | {"Allison", "Carlo"}
    for _ in range(5):
        _, source, _ = maker.noise_for(rng, "babble", 16000)
        assert not any(t.startswith(("ru_RU", "fr_CA")) for t in source.removeprefix("babble:").split(";")), source
