"""Measured impulse responses (`data.reverb.rir_dir`): a user's folder of RIR WAVs instead of simulated rooms."""

from __future__ import annotations

import numpy as np
import pytest

from sepipe.config import DataConfig, experiment_from_dict
from sepipe.data import reverb
from sepipe.data.layout import reverb_record
from sepipe.errors import ConfigError
from sepipe.reverb_config import ReverbConfig

SR = 16000


def _write_rirs(folder, count: int = 7, rate: int = 48000, rt60_s: float = 0.5):
    """Exponentially decaying noise tails after a unit direct path: RIRs of a known RT60, at `rate`."""
    import soundfile as sf

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    n = int(1.2 * rt60_s * rate)
    decay = np.exp(-6.9078 * np.arange(n) / (rt60_s * rate))       # -60 dB of amplitude at rt60_s
    for i in range(count):
        rir = np.zeros(n + 100)
        rir[100:] = 0.1 * rng.standard_normal(n) * decay
        rir[100] = 1.0
        sf.write(folder / f"room_{i}.wav", rir.astype(np.float32), rate, subtype="FLOAT")
    return folder


def test_measured_rirs_are_resampled_measured_and_shared_out_between_splits(tmp_path):
    folder = _write_rirs(tmp_path / "rirs")
    banks = reverb.measured_banks(folder, seed=0)
    names = {split: [room.name for room in rooms] for split, rooms in banks.items()}
    assert sorted(sum(names.values(), [])) == sorted(p.name for p in folder.glob("*.wav"))   # each once
    assert all(len(rooms) >= 1 for rooms in banks.values())
    assert names == {s: [r.name for r in rooms] for s, rooms in reverb.measured_banks(folder, seed=0).items()}
    room = banks["train"][0]
    assert room.rir[room.direct] == pytest.approx(1.0) and room.direct == pytest.approx(100 / 3, abs=2)
    assert room.rt60_measured_s == pytest.approx(0.5, rel=0.1)


def test_a_bank_of_measured_rooms_round_trips_with_its_file_names(tmp_path):
    banks = reverb.measured_banks(_write_rirs(tmp_path / "rirs"), seed=3)
    reverb.save_bank(tmp_path / "bank.npz", banks["test"])
    loaded = reverb.load_bank(tmp_path / "bank.npz")
    assert [r.name for r in loaded] == [r.name for r in banks["test"]]
    assert all(np.array_equal(a.rir, b.rir) for a, b in zip(loaded, banks["test"]))


def test_the_dataset_record_follows_the_rir_files_bytes(tmp_path):
    folder = _write_rirs(tmp_path / "rirs")
    cfg = DataConfig(source="dns", root=str(tmp_path), reverb=ReverbConfig(enabled=True, rir_dir=str(folder)))
    before = reverb_record(cfg)
    (folder / "room_0.wav").write_bytes((folder / "room_1.wav").read_bytes())
    assert reverb_record(cfg)["rir_sha256"] != before["rir_sha256"]
    assert "rir_dir" not in reverb_record(DataConfig(reverb=ReverbConfig(enabled=True)))   # simulated: as before


def test_a_folder_without_enough_rirs_is_a_config_error(tmp_path):
    _write_rirs(tmp_path / "two", count=2)
    for folder in (tmp_path / "two", tmp_path / "missing"):
        with pytest.raises(ConfigError, match=r"data.reverb.rir_dir.*at least 3 .wav"):
            experiment_from_dict({"name": "x", "data": {"source": "dns", "root": str(tmp_path),
                                                        "reverb": {"enabled": True, "rir_dir": str(folder)}}})


def test_a_dns_corpus_builds_with_measured_rirs(tmp_path):
    import soundfile as sf
    from sepipe.data import Dataset, build_dataset

    corpus, rng = tmp_path / "dns", np.random.default_rng(0)
    for i in range(16):
        path = corpus / "clean" / f"book_{i:05d}_chp_0001_reader_{i % 8:05d}_{i}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        t = np.arange(2 * SR) / SR
        sf.write(path, (0.2 * np.sin(2 * np.pi * (150 + 10 * i) * t) * (np.sin(2 * np.pi * 3 * t) > 0)).astype(np.float32),
                 SR, subtype="PCM_16")
    for i in range(8):
        path = corpus / "noise" / f"noise_{i}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, (rng.standard_normal(3 * SR) * 0.05).astype(np.float32), SR, subtype="PCM_16")
    folder = _write_rirs(corpus / "rir")
    cfg = DataConfig(source="dns", root=str(corpus), cache_dir=str(tmp_path / "cache"), segment_s=1.0,
                     reverb=ReverbConfig(enabled=True, probability=1.0, rir_dir=str(folder)))
    build_dataset(cfg, progress=False)
    dataset = Dataset.open(cfg)
    splits = dataset.manifest["reverb"]["splits"]
    used = [room["file"] for split in splits.values() for room in split["list"]]
    assert sorted(used) == sorted(p.name for p in folder.glob("*.wav"))
    assert dataset.manifest["reverb"]["rir_dir"] == str(folder)
    assert all(pair.conditions["room"] == "reverberant" for pair in dataset.pairs("test"))
    noisy, clean = next(dataset.training_segments(seed=0))
    assert noisy.shape == clean.shape == (SR,)
