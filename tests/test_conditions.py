"""Test conditions of a fixed mixture from its mixtures.csv row."""

import pytest

from sepipe.data.conditions import conditions_of, read_conditions, snr_band


@pytest.mark.parametrize("snr_db, band", [(-5.0, "<0 dB"), (-0.01, "<0 dB"), (0.0, "0-10 dB"),
                                          (9.99, "0-10 dB"), (10.0, ">=10 dB"), (20.0, ">=10 dB")])
def test_snr_band_edges(snr_db, band):
    assert snr_band(snr_db) == band


@pytest.mark.parametrize("row, conditions", [
    ({"snr_db": "4.5"}, {"room": "dry", "snr": "0-10 dB"}),                              # built without reverb
    ({"snr_db": "-2", "rt60_s": ""}, {"room": "dry", "snr": "<0 dB"}),                   # reverb on, dry mixture
    ({"snr_db": "12", "rt60_s": "0.61"}, {"room": "reverberant", "snr": ">=10 dB"}),
    ({"snr_db": ""}, {"room": "dry"}),
    ({"snr_db": "5", "mic_eq": "", "clip_drive_db": "", "clip_fraction": "0.0"},          # data.mic on, flat
     {"room": "dry", "snr": "0-10 dB", "device": "flat"}),
    ({"snr_db": "5", "mic_eq": "hp 120 Hz", "clip_drive_db": "", "clip_fraction": "0.0"},
     {"room": "dry", "snr": "0-10 dB", "device": "coloured"}),
    ({"snr_db": "5", "mic_eq": "", "clip_drive_db": "6.0", "clip_fraction": "0.012"},
     {"room": "dry", "snr": "0-10 dB", "device": "clipped"}),
])
def test_conditions_of_a_row(row, conditions):
    assert conditions_of(row) == conditions


def test_read_conditions_keeps_one_split_and_tolerates_no_csv(tmp_path):
    (tmp_path / "mixtures.csv").write_text("split,name,snr_db,rt60_s\nvalid,v1,3,\ntest,t1,-1,0.5\n")
    assert read_conditions(tmp_path / "mixtures.csv", "test") == {"t1": {"room": "reverberant", "snr": "<0 dB"}}
    assert read_conditions(tmp_path / "none.csv", "test") == {}


def test_small_dataset_pairs_carry_their_conditions(small_dataset):
    pairs = small_dataset.pairs("test", limit=2)
    assert all(p.conditions["room"] == "dry" and p.conditions["snr"] for p in pairs)
    assert small_dataset.conditions("test")[pairs[0].name] == pairs[0].conditions
