"""Microphone and level variation (data.mic): the drawn EQ's response, clipping of the input only, seeding,
config errors, the dataset's name, csv and manifest, and plain data unchanged when it is off."""

from __future__ import annotations

import csv
import hashlib
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from scipy.signal import sosfilt, sosfreqz

from sepipe.artifacts import sha256_json
from sepipe.config import DataConfig, MicConfig, experiment_from_dict
from sepipe.data import mic, mixing
from sepipe.data.fixed import write_csv, write_fixed
from sepipe.data.generator import MixtureMaker
from sepipe.data.layout import config_record, dataset_dir
from sepipe.errors import ConfigError
from test_reverb import BEFORE_REVERB, _dry_hashes

SR = 16000
ON = MicConfig(enabled=True, probability=1.0, clip_probability=0.0)


def _maker(mic_cfg: MicConfig | None = None) -> MixtureMaker:
    """tests/test_reverb.py's synthetic maker (its hash there was taken before reverb and mic existed)."""
    rng = np.random.default_rng(123)
    t = np.arange(SR * 3) / SR
    speech = [(rng.standard_normal(len(t)) * (0.1 + 0.1 * np.sin(2 * np.pi * (2 + k) * t) ** 2)).astype(np.float32)
              for k in range(10)]
    noise = [rng.standard_normal(SR * 5).astype(np.float32) * 0.05 for _ in range(3)]
    kwargs = {} if mic_cfg is None else {"mic": mic_cfg}
    return MixtureMaker(speech, [f"s{k}" for k in range(10)], noise, ["n0", "n1", "n2"],
                        ["ambient", "music", "city"], (-5.0, 20.0), (-35.0, -15.0), **kwargs)


def _mixture(mic_cfg: MicConfig | None, seed: int = 3):
    maker = _maker(mic_cfg)
    rng = np.random.default_rng(seed)
    clean, indices = maker.segment(rng, SR)
    return maker.mixture(rng, clean, indices, category="ambient")


def _gain_db(sos: np.ndarray, freq_hz: float) -> float:
    _, h = sosfreqz(np.atleast_2d(sos), worN=[freq_hz], fs=SR)
    return float(20.0 * np.log10(np.abs(h[0])))


# --- the device EQ -----------------------------------------------------------------------------------

@pytest.mark.parametrize("biquad, at_hz, expected_db", [
    (mic.Biquad("highpass", 150.0), 150.0, -3.0103),        # Butterworth: -3 dB at the cutoff
    (mic.Biquad("highpass", 150.0), 15.0, -40.0),           # 12 dB/octave: 40 dB a decade below
    (mic.Biquad("highpass", 150.0), 4000.0, 0.0),
    (mic.Biquad("lowshelf", 250.0, 5.0), 250.0, 2.5),       # shelves: half the gain (dB) at the midpoint
    (mic.Biquad("lowshelf", 250.0, 5.0), 1.0, 5.0),         # and the full gain at DC
    (mic.Biquad("lowshelf", 250.0, 5.0), 7999.0, 0.0),
    (mic.Biquad("highshelf", 3000.0, -4.0), 3000.0, -2.0),
    (mic.Biquad("highshelf", 3000.0, -4.0), 7999.9, -4.0),  # the full gain at Nyquist
    (mic.Biquad("highshelf", 3000.0, -4.0), 20.0, 0.0),
    (mic.Biquad("peak", 1200.0, -7.5, 2.0), 1200.0, -7.5),  # peaks: the full gain at the centre
    (mic.Biquad("peak", 1200.0, 6.0, 2.0), 1200.0, 6.0),
    (mic.Biquad("peak", 1200.0, 6.0, 2.0), 60.0, 0.0),
])
def test_biquad_has_the_drawn_response(biquad, at_hz, expected_db):
    assert _gain_db(biquad.sos(), at_hz) == pytest.approx(expected_db, abs=0.05)


def test_peak_bandwidth_follows_q():
    # a higher Q is a narrower peak: 300 Hz off the centre, the Q 4 peak has fallen further than the Q 0.7 one
    narrow, wide = (mic.Biquad("peak", 1000.0, 10.0, q).sos() for q in (4.0, 0.7))
    assert _gain_db(narrow, 1300.0) < _gain_db(wide, 1300.0) < 10.0


def test_drawn_device_colours_signals_with_its_filters_measured_by_fft():
    device = mic.draw_device(replace(ON, peaks=(2, 2)), np.random.default_rng(4))
    kinds = [f.kind for f in device.filters]
    assert kinds == ["highpass", "lowshelf", "highshelf", "peak", "peak"]
    impulse = np.zeros(SR)
    impulse[0] = 1.0
    response, _, _ = device.colour(impulse, impulse, None)
    spectrum_db = 20.0 * np.log10(np.abs(np.fft.rfft(response)))      # 1 Hz bins: drawn frequencies are whole Hz
    for f in device.filters:
        others = sum(_gain_db(g.sos(), f.freq_hz) for g in device.filters if g is not f)
        own = {"highpass": -3.0103, "lowshelf": f.gain_db / 2, "highshelf": f.gain_db / 2, "peak": f.gain_db}[f.kind]
        assert spectrum_db[int(f.freq_hz)] == pytest.approx(own + others, abs=0.05), f.describe()


def test_draws_stay_in_their_ranges_and_shares():
    cfg = replace(ON, probability=0.5, clip_probability=0.25, peaks=(0, 3))
    rng = np.random.default_rng(0)
    devices = [mic.draw_device(cfg, rng) for _ in range(400)]
    coloured = [d for d in devices if d.filters]
    assert 0.4 < len(coloured) / len(devices) < 0.6
    assert 0.18 < sum(d.drive_db is not None for d in devices) / len(devices) < 0.32
    assert {len(d.filters) - 3 for d in coloured} == {0, 1, 2, 3}
    for d in coloured:
        hp, low, high, *peaks = d.filters
        assert 50 <= hp.freq_hz <= 300 and 100 <= low.freq_hz <= 400 and 2000 <= high.freq_hz <= 6000
        assert all(-6 <= s.gain_db <= 6 for s in (low, high))
        assert all(200 <= p.freq_hz <= 6000 and -8 <= p.gain_db <= 8 and 0.7 <= p.q <= 4 for p in peaks)
    assert all(0 <= d.drive_db <= 12 for d in devices if d.drive_db is not None)


def test_settings_change_which_filters_are_used_never_the_drawn_values():
    base = mic.draw_device(replace(ON, peaks=(2, 2)), np.random.default_rng(8))
    fewer = mic.draw_device(replace(ON, peaks=(1, 1), clip_probability=1.0), np.random.default_rng(8))
    assert fewer.filters == base.filters[:4] and fewer.drive_db is not None


def test_eq_colours_input_and_target_alike():
    plain, coloured = _mixture(None), _mixture(ON)
    assert coloured.row["mic_eq"].startswith("hp ") and coloured.row["clip_drive_db"] == ""
    assert coloured.row["snr_db"] == plain.row["snr_db"] and coloured.row["noise_source"] == plain.row["noise_source"]
    # the target is the coloured clean speech (up to the mixture's gain) ...
    device = mic.draw_device(ON, _rng_after_mixing_draws(3))
    assert coloured.row["mic_eq"] == "; ".join(f.describe() for f in device.filters)
    expected = sosfilt(device.sos(), plain.clean.astype(np.float64))
    ratio = np.dot(coloured.clean, expected) / np.dot(expected, expected)
    assert np.max(np.abs(coloured.clean - ratio * expected)) < 1e-4 * np.max(np.abs(coloured.clean))
    # ... and noisy - clean is the coloured noise at the stated SNR
    assert abs(mixing.measured_snr_db(coloured.clean, coloured.noisy) - coloured.row["snr_db"]) < 0.05
    assert coloured.row["level_dbfs"] <= coloured.row["target_level_dbfs"] + 1e-3   # lowered only by the peak limit


def _rng_after_mixing_draws(seed: int) -> np.random.Generator:
    """The mixing rng of `_mixture(seed)` where the mixture draws its device."""
    maker, rng = _maker(), np.random.default_rng(seed)
    clean, _ = maker.segment(rng, SR)
    maker.noise_for(rng, "ambient", len(clean))
    rng.uniform(), rng.uniform()            # SNR, level
    return rng


# --- clipping ----------------------------------------------------------------------------------------

def test_clip_plateau_and_fraction_of_a_sine():
    t = np.arange(SR) / SR
    sine = (0.5 * np.sin(2 * np.pi * 50 * t)).astype(np.float32)
    clipped, fraction = mic.Device((), 20 * np.log10(2.0)).clip(sine)      # 6.02 dB: the plateau at 0.25
    assert np.max(np.abs(clipped)) == pytest.approx(0.25, rel=1e-6)
    # |sin| > 1/2 for 2/3 of a period, give or take a sample at each of its 4 crossings (320-sample period)
    assert fraction == pytest.approx(2 / 3, abs=4 / 320)
    assert fraction == np.mean(clipped != sine)
    same, none = mic.Device((), None).clip(sine)
    assert same is sine and none == 0.0


def test_clipping_drives_the_input_only():
    flat = replace(ON, probability=0.0)
    unclipped, clipped = _mixture(flat), _mixture(replace(flat, clip_probability=1.0))
    assert clipped.clean.tobytes() == unclipped.clean.tobytes()             # the target is never clipped
    drive = clipped.row["clip_drive_db"]
    assert 0.0 <= drive <= 12.0 and clipped.row["mic_eq"] == "" and unclipped.row["clip_fraction"] == 0.0
    ceiling = np.max(np.abs(unclipped.noisy)) * 10 ** (-drive / 20)
    assert np.allclose(clipped.noisy, np.clip(unclipped.noisy, -ceiling, ceiling), atol=1e-7)
    changed = float(np.mean(clipped.noisy != unclipped.noisy))
    assert clipped.row["clip_fraction"] == pytest.approx(changed, abs=2e-6) and changed > 0
    level = 10 * np.log10(np.mean(np.square(clipped.noisy, dtype=np.float64)))
    assert clipped.row["level_dbfs"] == pytest.approx(level, abs=1e-4) and level < unclipped.row["level_dbfs"]


# --- seeding, and nothing changes when off -----------------------------------------------------------

def test_same_seed_same_bytes():
    cfg = replace(ON, clip_probability=0.5)

    def make(seed: int) -> bytes:
        m = _mixture(cfg, seed)
        return m.noisy.tobytes() + m.clean.tobytes() + repr(m.row).encode()

    assert make(1) == make(1)
    assert make(1) != make(2)


def test_disabled_mic_leaves_data_and_fingerprints_unchanged(tmp_path):
    cfg = DataConfig(cache_dir=".cache", mic=MicConfig())       # the hashes were taken with this cache_dir
    assert cfg == DataConfig(cache_dir=".cache") and "mic" not in config_record(cfg)
    assert sha256_json(cfg) == BEFORE_REVERB["data_config"]
    assert sha256_json(config_record(cfg)) == BEFORE_REVERB["config_record"]
    assert dataset_dir(cfg).name == "debian-small-seed0"
    # test_reverb's byte hash of fixed mixtures, mixtures.csv and training segments, with mic=None passed
    assert _dry_hashes(tmp_path, _maker(None)) == {"synthetic": BEFORE_REVERB["synthetic"]}


def test_mic_draws_one_value_from_the_mixing_stream():
    # what the maker draws after a mixture (the next training segment) is the same with or without mic
    after = []
    for cfg in (None, replace(ON, clip_probability=0.5)):
        maker, rng = _maker(cfg), np.random.default_rng(11)
        clean, indices = maker.segment(rng, SR)
        maker.mixture(rng, clean, indices)
        if cfg is None:
            rng.integers(0, 2**62)          # the device's stream
        after.append(rng.uniform())
    assert after[0] == after[1]


# --- fixed mixtures, dataset name, manifest ------------------------------------------------------------

def test_fixed_mixtures_record_mic_columns_in_csv(tmp_path):
    cfg = replace(ON, probability=0.5, clip_probability=0.5)
    _, rows = write_fixed(tmp_path, "valid", _maker(cfg), [f"v{i}" for i in range(8)], ["x"] * 8,
                          np.arange(10), 0, False)
    write_csv(tmp_path / "mixtures.csv", rows)
    with open(tmp_path / "mixtures.csv", newline="") as handle:
        read = list(csv.DictReader(handle))
    assert list(read[0])[-3:] == ["mic_eq", "clip_drive_db", "clip_fraction"] and "rt60_s" not in read[0]
    assert 0 < sum(bool(r["mic_eq"]) for r in read) < len(read)
    clipped = [r for r in read if r["clip_drive_db"]]
    assert 0 < len(clipped) < len(read)
    assert all(float(r["clip_fraction"]) > 0 for r in clipped if float(r["clip_drive_db"]) > 0.5)
    assert all(float(r["clip_fraction"]) == 0 for r in read if not r["clip_drive_db"])
    record = mic.manifest_record(cfg, rows)
    assert record["fixed_mixtures"]["valid"] == {"mixtures": 8, "coloured": sum(bool(r["mic_eq"]) for r in read),
                                                 "clipped": len(clipped)}


def test_enabled_mic_builds_beside_the_plain_dataset():
    on = DataConfig(mic=ON)
    assert dataset_dir(on) != dataset_dir(DataConfig()) and "-mic" in dataset_dir(on).name
    assert dataset_dir(on) != dataset_dir(DataConfig(mic=replace(ON, peak_db=(-3.0, 3.0))))
    assert config_record(on)["mic"] == ON.settings() and config_record(on)["mic"]["highpass_hz"] == [50.0, 300.0]
    assert "enabled" not in config_record(on)["mic"]


# --- config ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("key, value, valid", [
    ("probability", 1.5, "0 to 1"),
    ("clip_probability", -0.1, "0 to 1"),
    ("highpass_hz", [300, 50], "low <= high"),
    ("high_shelf_hz", [2000, 9000], "high <= 7000"),
    ("shelf_db", [-20, 6], "-15 <= low"),
    ("peaks", [3, 1], "low <= high"),
    ("peak_q", [0.1, 2], "0.3 <= low"),
    ("clip_drive_db", [-1, 6], "0 <= low"),
])
def test_bad_mic_value_is_a_one_line_config_error(key, value, valid):
    with pytest.raises(ConfigError) as err:
        experiment_from_dict({"name": "x", "data": {"mic": {"enabled": True, key: value}}})
    message = str(err.value)
    assert "\n" not in message and f"data.mic.{key}" in message and valid in message


def test_mic_config_from_yaml_dict():
    cfg = experiment_from_dict({"name": "x", "data": {"mic": {"enabled": True, "highpass_hz": [80, 200],
                                                             "peaks": [0, 1], "clip_probability": 0.2}}})
    assert cfg.data.mic == MicConfig(enabled=True, highpass_hz=(80.0, 200.0), peaks=(0, 1), clip_probability=0.2)
    assert experiment_from_dict({"name": "x"}).data.mic == MicConfig()


def test_voicebank_refuses_mic():
    with pytest.raises(ConfigError, match="data.mic.enabled"):
        experiment_from_dict({"name": "x", "data": {"source": "voicebank", "root": "/x", "mic": {"enabled": True}}})


# --- built datasets ------------------------------------------------------------------------------------

def _dns_corpus(root: Path) -> Path:
    import soundfile as sf

    rng = np.random.default_rng(0)
    t = np.arange(2 * SR) / SR
    for i in range(16):
        path = root / "clean" / f"book_{i:05d}_chp_0001_reader_{i % 8:05d}_{i}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        speech = rng.standard_normal(len(t)) * (0.05 + np.sin(2 * np.pi * 3 * t) ** 2) * (0.05 + 0.005 * i)
        sf.write(path, speech.astype(np.float32), SR, subtype="PCM_16")
    for i in range(8):
        path = root / "noise" / f"noise_{i}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, (rng.standard_normal(3 * SR) * 0.05).astype(np.float32), SR, subtype="PCM_16")
    return root


def _csv(root: Path) -> list[dict]:
    with open(root / "mixtures.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def test_mic_dataset_build_and_serve(tmp_path):
    """A DNS-layout corpus built plain and with mic: folders, csv, manifest, and the training maker."""
    from sepipe.data import Dataset, build_dataset

    corpus = _dns_corpus(tmp_path / "dns")
    plain = DataConfig(source="dns", root=str(corpus), cache_dir=str(tmp_path / "cache"), segment_s=1.0)
    cfg = replace(plain, mic=replace(ON, probability=0.5, clip_probability=0.5))
    plain_root, root = build_dataset(plain, progress=False), build_dataset(cfg, progress=False)
    assert root.name.startswith(plain_root.name + "-mic") and (plain_root / "manifest.json").is_file()
    plain_rows, rows = _csv(plain_root), _csv(root)
    assert "mic_eq" not in plain_rows[0] and "mic_eq" in rows[0]
    # the mic draws one value per mixture after the others: the same noise, SNR and target level as plain
    for key in ("name", "noise_source", "noise_offset_s", "snr_db", "target_level_dbfs"):
        assert [r[key] for r in rows] == [r[key] for r in plain_rows], key
    dataset = Dataset.open(cfg)
    record = dataset.manifest["mic"]
    assert record["highpass_hz"] == [50.0, 300.0] and record["clip_probability"] == 0.5
    assert record["scipy"] and "clip_fraction" in record["definitions"]
    assert sum(c["mixtures"] for c in record["fixed_mixtures"].values()) == len(rows)
    assert "scipy" in dataset.manifest["fingerprint"]["tools"] and "mic" not in Dataset.open(plain).manifest
    # training mixtures are drawn with the same capture chain as the fixed ones
    assert dataset._training_maker().mic == cfg.mic and Dataset.open(plain)._training_maker().mic is None
    noisy, clean = next(dataset.training_segments(seed=0))
    assert noisy.shape == clean.shape == (SR,)


def test_mic_debian_build_changes_only_the_fixed_mixtures(tmp_path, small_dataset):
    """The Debian source with mic: the same pools and mixture draws as the plain build, coloured or clipped."""
    import os

    from sepipe.data import Dataset, build_dataset

    cache = tmp_path / "cache"
    cache.mkdir()
    for name in ("debs", "unpacked"):            # the packages the plain build fetched and unpacked
        os.symlink(Path(small_dataset.cfg.cache_dir).resolve() / name, cache / name)
    cfg = replace(small_dataset.cfg, cache_dir=str(cache), mic=replace(ON, probability=0.5, clip_probability=0.3))
    root = build_dataset(cfg, progress=False)
    assert root.name.startswith(small_dataset.root.name + "-mic")
    for path in sorted((root / "train").rglob("*.wav")):
        assert path.read_bytes() == (small_dataset.root / path.relative_to(root)).read_bytes(), path
    plain_rows, rows = _csv(small_dataset.root), _csv(root)
    for key in ("name", "clean_sources", "noise_source", "snr_db", "target_level_dbfs"):
        assert [r[key] for r in rows] == [r[key] for r in plain_rows], key
    assert 0 < sum(bool(r["mic_eq"]) for r in rows) < len(rows)
    assert Dataset.open(cfg).manifest["mic"]["fixed_mixtures"]["test"]["mixtures"] == len(small_dataset.pairs("test"))
