"""Quality per test condition, from hand-made per-file scores."""

from sepipe.evaluate import quality_by_condition
from sepipe.metrics import METRICS


def _scores(system, file, si_sdr):
    return {"system": system, "file": file, **{m: 1.0 for m in METRICS}, "si_sdr": si_sdr}


def _table_row(variant, system):
    return {"experiment": "x", "variant": variant, "model": "-" if variant == "-" else "gru", "system": system}


CONDITIONS = {"a": {"room": "dry", "snr": "<0 dB"}, "b": {"room": "reverberant", "snr": "<0 dB"},
              "c": {"room": "reverberant", "snr": ">=10 dB"}}
PER_FILE = [_scores("unprocessed", "a", 0.0), _scores("unprocessed", "b", 2.0), _scores("unprocessed", "c", 10.0),
            _scores("dense/int8 TFLite", "a", 3.0), _scores("dense/int8 TFLite", "b", 6.0),
            _scores("dense/int8 TFLite", "c", 13.0)]
TABLE = [_table_row("-", "unprocessed"), _table_row("dense", "int8 TFLite")]


def test_means_counts_and_gain_per_condition_value():
    rows = quality_by_condition(TABLE, PER_FILE, CONDITIONS)
    got = {(r["system"], r["condition"], r["condition_value"]): (r["files"], r["si_sdr"], r["si_sdr_gain_db"])
           for r in rows}
    assert got == {
        ("unprocessed", "room", "dry"): (1, 0.0, 0.0),
        ("unprocessed", "room", "reverberant"): (2, 6.0, 0.0),
        ("unprocessed", "snr", "<0 dB"): (2, 1.0, 0.0),
        ("unprocessed", "snr", ">=10 dB"): (1, 10.0, 0.0),
        ("int8 TFLite", "room", "dry"): (1, 3.0, 3.0),
        ("int8 TFLite", "room", "reverberant"): (2, 9.5, 3.5),
        ("int8 TFLite", "snr", "<0 dB"): (2, 4.5, 3.5),
        ("int8 TFLite", "snr", ">=10 dB"): (1, 13.0, 3.0),
    }


def test_rows_follow_the_table_and_carry_their_configuration():
    rows = quality_by_condition(TABLE, PER_FILE, CONDITIONS)
    assert [r["system"] for r in rows] == ["unprocessed"] * 4 + ["int8 TFLite"] * 4
    model = rows[4]
    assert {k: model[k] for k in ("experiment", "variant", "model", "condition", "condition_value", "files")} == \
        {"experiment": "x", "variant": "dense", "model": "gru", "condition": "room", "condition_value": "dry",
         "files": 1}
    assert model["pesq"] == 1.0


def test_a_condition_value_without_files_is_omitted():
    rows = quality_by_condition(TABLE, [r for r in PER_FILE if r["file"] != "a"], CONDITIONS)
    assert ("room", "dry") not in {(r["condition"], r["condition_value"]) for r in rows}


def test_files_without_conditions_give_no_rows():
    assert quality_by_condition(TABLE, PER_FILE, {}) == []
