"""Simulated reverberation (data.reverb): RT60 accuracy, target policies, seeding, config errors, and
dry data unchanged when it is off."""

from __future__ import annotations

import csv
import hashlib
import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from sepipe.artifacts import sha256_json
from sepipe.config import DataConfig, ReverbConfig, experiment_from_dict
from sepipe.data import mixing, reverb
from sepipe.data.fixed import write_csv, write_fixed
from sepipe.data.generator import MixtureMaker
from sepipe.data.layout import config_record, dataset_dir
from sepipe.errors import ConfigError

SR = 16000
SMALL = ReverbConfig(enabled=True, probability=1.0, rt60_s=(0.3, 0.5), room_m=(4.0, 6.0),
                     distance_m=(0.8, 1.5), rooms=2)

# Computed with the code before data.reverb existed (commit 9eebb6b) by `_dry_hashes`: the same bytes
# prove that with reverb off, mixtures, segments, mixtures.csv and fingerprints are unchanged.
BEFORE_REVERB = {
    "synthetic": "ffb72ade881a635e123c350cb2438e18e584fb9143253509479361f3b60f6a59",
    "data_config": "5693931e4d3d9d52104a5e519aeec015ef2baa0d012390c4d575d662f8f166f2",
    "config_record": "23d5bdbe86f56fd2ec8fb29fff27f25872e3a711304eeef182493e6448c6e846",
}


def _maker(reverb_bank: reverb.Reverberator | None = None) -> MixtureMaker:
    rng = np.random.default_rng(123)
    t = np.arange(SR * 3) / SR
    speech = [(rng.standard_normal(len(t)) * (0.1 + 0.1 * np.sin(2 * np.pi * (2 + k) * t) ** 2)).astype(np.float32)
              for k in range(10)]
    noise = [rng.standard_normal(SR * 5).astype(np.float32) * 0.05 for _ in range(3)]
    kwargs = {} if reverb_bank is None else {"reverb": reverb_bank}
    return MixtureMaker(speech, [f"s{k}" for k in range(10)], noise, ["n0", "n1", "n2"],
                        ["ambient", "music", "city"], (-5.0, 20.0), (-35.0, -15.0), **kwargs)


def _dry_hashes(tmp: Path, maker: MixtureMaker | None = None) -> dict:
    """The bytes of 4 fixed mixtures, their mixtures.csv and 3 training mixtures of `maker` (a dry one)."""
    digest = hashlib.sha256()
    maker = maker or _maker()
    pairs, rows = write_fixed(tmp, "test", maker, [f"t{i}" for i in range(4)], ["x"] * 4, np.arange(10), 0, False)
    write_csv(tmp / "mixtures.csv", rows)
    for p in pairs:
        digest.update((tmp / p["noisy"]).read_bytes())
        digest.update((tmp / p["clean"]).read_bytes())
    digest.update((tmp / "mixtures.csv").read_bytes())
    rng = np.random.default_rng([0, 91, 0])
    for _ in range(3):
        clean, idx = maker.segment(rng, SR)
        m = maker.mixture(rng, clean, idx)
        digest.update(m.noisy.tobytes())
        digest.update(m.clean.tobytes())
    return {"synthetic": digest.hexdigest()}


@pytest.fixture(scope="module")
def room() -> reverb.Room:
    return reverb.draw_room(replace(SMALL, rt60_s=(0.4, 0.4)), np.random.default_rng(5))


@pytest.fixture(scope="module")
def bank() -> reverb.Reverberator:
    return reverb.Reverberator(SMALL, reverb.make_bank(SMALL, seed=0, split="train"))


def _speech(n: int = SR) -> np.ndarray:
    rng = np.random.default_rng(9)
    t = np.arange(n) / SR
    return (rng.standard_normal(n) * (0.05 + np.sin(2 * np.pi * 3 * t) ** 2)).astype(np.float32)


# --- the room impulse responses --------------------------------------------------------------------

def test_rir_measured_rt60_matches_requested(room):
    # an independent measure (pyroomacoustics' own Schroeder T30) of the stored RIR
    import pyroomacoustics as pra

    measured = pra.experimental.measure_rt60(room.rir, fs=SR, decay_db=30)
    assert abs(measured - 0.4) <= 0.1 * 0.4
    assert abs(reverb.measure_rt60(room.rir) - measured) <= 0.02
    assert room.rt60_measured_s == pytest.approx(reverb.measure_rt60(room.rir), abs=1e-3)


def test_rooms_seeded_and_disjoint_between_splits(bank):
    again = reverb.make_bank(SMALL, seed=0, split="train")
    assert all(a.rir.tobytes() == b.rir.tobytes() for a, b in zip(bank.rooms, again))
    test = reverb.make_bank(SMALL, seed=0, split="test")
    assert {r.dims_m for r in bank.rooms}.isdisjoint({r.dims_m for r in test})


def test_bank_round_trips(tmp_path, bank):
    path = reverb.save_bank(tmp_path / "rirs" / "train.npz", bank.rooms)
    loaded = reverb.load_bank(path)
    assert [(r.rt60_s, r.direct, r.dims_m) for r in loaded] == [(r.rt60_s, r.direct, r.dims_m) for r in bank.rooms]
    assert all(np.array_equal(a.rir, b.rir) for a, b in zip(loaded, bank.rooms))


# --- target policies ---------------------------------------------------------------------------------

def test_dry_target_is_the_dry_speech_aligned_with_the_direct_path(room):
    speech = _speech()
    reverberant, dry = reverb.apply(speech, room, "dry")
    assert np.allclose(dry / np.max(np.abs(dry)), speech / np.max(np.abs(speech)), atol=1e-6)
    lags = np.arange(-200, 201)
    corr = [np.dot(reverberant[max(0, k):len(speech) + min(0, k)], speech[max(0, -k):len(speech) - max(0, k)])
            for k in lags]
    assert lags[int(np.argmax(corr))] == 0      # the input's direct path lines up with the target


def test_early_target_energy_between_dry_and_reverberant(room):
    speech = _speech()
    energy = {policy: float(np.sum(np.square(reverb.apply(speech, room, policy)[1], dtype=np.float64)))
              for policy in ("dry", "early", "reverberant")}
    assert energy["dry"] < energy["early"] < energy["reverberant"]


def test_reverberant_mixture_snr_measured_on_the_reverberant_speech(bank):
    maker = _maker(bank)
    rng = np.random.default_rng(3)
    clean, indices = maker.segment(rng, SR)
    mixture = maker.mixture(rng, clean, indices)
    assert mixture.row["rt60_s"] == bank.rooms[mixture.row["reverb_room"]].rt60_measured_s
    assert mixture.row["reverb_target"] == "reverberant"
    # the target is the reverberant speech here, so noisy - clean is exactly the scaled noise
    assert abs(mixing.measured_snr_db(mixture.clean, mixture.noisy) - mixture.row["snr_db"]) < 0.05


def test_reverb_seeded_same_seed_same_bytes(bank):
    def make(seed: int) -> bytes:
        maker = _maker(reverb.Reverberator(SMALL, bank.rooms))
        rng = np.random.default_rng(seed)
        clean, indices = maker.segment(rng, SR)
        m = maker.mixture(rng, clean, indices)
        return m.noisy.tobytes() + m.clean.tobytes()

    assert make(1) == make(1)
    assert make(1) != make(2)


def test_fixed_mixtures_record_rt60_in_csv(tmp_path, bank):
    half = reverb.Reverberator(replace(SMALL, probability=0.5), bank.rooms)
    _, rows = write_fixed(tmp_path, "valid", _maker(half), [f"v{i}" for i in range(6)], ["x"] * 6,
                          np.arange(10), 0, False)
    write_csv(tmp_path / "mixtures.csv", rows)
    with open(tmp_path / "mixtures.csv", newline="") as handle:
        read = list(csv.DictReader(handle))
    assert {"rt60_s", "reverb_room", "reverb_target"} <= set(read[0])
    wet = [r for r in read if r["rt60_s"]]
    assert 0 < len(wet) < len(read)                    # both conditions present
    assert all(0.2 < float(r["rt60_s"]) < 0.7 for r in wet)


# --- off by default: nothing changes ----------------------------------------------------------------

def test_disabled_reverb_leaves_data_and_fingerprints_unchanged(tmp_path):
    # Hashes taken before reverb existed. Only inputs this file makes itself: the Debian-built dataset's
    # bytes depend on the archive's package versions, which this test must not pin.
    cfg = DataConfig(cache_dir=".cache")        # the values below were taken with this cache_dir
    assert "reverb" not in config_record(cfg)
    assert sha256_json(cfg) == BEFORE_REVERB["data_config"]
    assert sha256_json(config_record(cfg)) == BEFORE_REVERB["config_record"]
    assert dataset_dir(cfg).name == "debian-small-seed0"
    assert _dry_hashes(tmp_path) == {"synthetic": BEFORE_REVERB["synthetic"]}


def test_enabled_reverb_builds_beside_the_dry_dataset():
    on = DataConfig(reverb=replace(SMALL))
    assert dataset_dir(on) != dataset_dir(DataConfig())
    assert config_record(on)["reverb"]["target"] == "reverberant"


# --- config ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("key, value, valid", [
    ("probability", 1.5, "0 to 1"),
    ("rt60_s", [0.9, 0.3], "low <= high"),
    ("target", "wet", "'dry', 'early', 'reverberant'"),
    ("distance_m", [0.5, 9.0], "room_m low - 1"),
    ("rooms", 0, "1 to 1000"),
])
def test_bad_reverb_value_is_a_one_line_config_error(key, value, valid):
    with pytest.raises(ConfigError) as err:
        experiment_from_dict({"name": "x", "data": {"reverb": {"enabled": True, key: value}}})
    message = str(err.value)
    assert "\n" not in message and f"data.reverb.{key}" in message and \
        str(tuple(value) if isinstance(value, list) else value) in message.replace("'", "")
    assert valid in message


def test_reverb_config_from_yaml_dict():
    cfg = experiment_from_dict({"name": "x", "data": {"reverb": {"enabled": True, "target": "early",
                                                                "rt60_s": [0.3, 0.6]}}})
    assert cfg.data.reverb == ReverbConfig(enabled=True, target="early", rt60_s=(0.3, 0.6))
    assert experiment_from_dict({"name": "x"}).data.reverb == ReverbConfig()


def test_voicebank_refuses_reverb():
    with pytest.raises(ConfigError, match="data.reverb.enabled"):
        experiment_from_dict({"name": "x", "data": {"source": "voicebank", "root": "/x",
                                                    "reverb": {"enabled": True}}})


def test_reverb_dataset_build_and_serve(tmp_path, small_dataset):
    """A DNS-layout corpus built with reverb: banks, manifest, csv and served segments."""
    import soundfile as sf

    corpus = tmp_path / "dns"
    rng = np.random.default_rng(0)
    for i in range(16):
        path = corpus / "clean" / f"book_{i:05d}_chp_0001_reader_{i % 8:05d}_{i}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, _speech(2 * SR) * (0.5 + 0.05 * i), SR, subtype="PCM_16")
    for i in range(8):
        path = corpus / "noise" / f"noise_{i}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, (rng.standard_normal(3 * SR) * 0.05).astype(np.float32), SR, subtype="PCM_16")
    from sepipe.data import Dataset, build_dataset

    cfg = DataConfig(source="dns", root=str(corpus), cache_dir=str(tmp_path / "cache"), segment_s=1.0,
                     reverb=replace(SMALL, probability=0.5, target="early"))
    root = build_dataset(cfg, progress=False)
    dataset = Dataset.open(cfg)
    record = dataset.manifest["reverb"]
    assert record["target"] == "early" and record["pyroomacoustics"] == "0.10.1"
    assert all((root / record["splits"][s]["file"]).is_file() for s in ("train", "valid", "test"))
    assert "pyroomacoustics" in dataset.manifest["fingerprint"]["tools"]
    noisy, clean = next(dataset.training_segments(seed=0))
    assert noisy.shape == clean.shape == (SR,)
    assert os.path.basename(root).startswith("dns-small-seed0-") and "-reverb" in os.path.basename(root)
