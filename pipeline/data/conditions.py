"""Test conditions of each fixed mixture, read from mixtures.csv: the room (dry or reverberant), an SNR
band and, in a dataset built with `data.mic`, the capture device (flat, coloured by an EQ, or clipped).

Results are reported per condition as well as on average, so a model that holds up on dry,
high-SNR speech but fails in reverberant rooms or at low SNR shows it.
"""

from __future__ import annotations

import csv
from pathlib import Path

# (upper bound in dB, exclusive; label), in order; the last band has no upper bound.
SNR_BANDS = ((0.0, "<0 dB"), (10.0, "0-10 dB"), (None, ">=10 dB"))
CONDITION_VALUES = {"room": ("dry", "reverberant"), "snr": tuple(label for _, label in SNR_BANDS),
                    "device": ("flat", "coloured", "clipped")}


def snr_band(snr_db: float) -> str:
    """The SNR band label of a mixture's SNR (dB)."""
    for upper, label in SNR_BANDS:
        if upper is None or snr_db < upper:
            return label
    raise AssertionError("the last band is open")


def conditions_of(row: dict) -> dict[str, str]:
    """{"room": ..., "snr": ...} of one mixtures.csv row. A dataset built without reverb has no
    `rt60_s` column: all its mixtures are dry. A row without an SNR (none recorded) has no `snr` key."""
    conditions = {"room": "reverberant" if row.get("rt60_s") else "dry"}
    if row.get("snr_db") not in (None, ""):
        conditions["snr"] = snr_band(float(row["snr_db"]))
    if "mic_eq" in row:              # only a dataset built with data.mic has the device columns
        conditions["device"] = device_of(row)
    return conditions


def device_of(row: dict) -> str:
    """'clipped' (whatever its EQ: clipping is what a model meets worst), else 'coloured' by an EQ, else 'flat'."""
    if float(row.get("clip_fraction") or 0.0) > 0.0:
        return "clipped"
    return "coloured" if row.get("mic_eq") else "flat"


def read_conditions(csv_path: Path, split: str) -> dict[str, dict[str, str]]:
    """{mixture name: conditions} of `split`; {} when the dataset has no mixtures.csv (pre-mixed corpora)."""
    try:
        text = Path(csv_path).read_text()
    except FileNotFoundError:
        return {}
    return {row["name"]: conditions_of(row) for row in csv.DictReader(text.splitlines()) if row["split"] == split}
