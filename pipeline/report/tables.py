"""Comparison tables: CSV (for concatenation across runs) and Markdown (for people).

Tables take typed rows (rendered with their `to_dict`) or plain mappings (rows read back from a CSV).
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Iterable

from sepipe.artifacts import write_text
from sepipe.report.rows import Row, as_dicts

# (column, header, format) in display order; the CSV keeps every column of a row.
DISPLAY_COLUMNS = (
    ("system", "system", "{}"),
    ("variant", "variant", "{}"),
    ("model", "model", "{}"),
    ("files", "files", "{}"),
    ("si_sdr", "SI-SDR dB", "{:.2f}"),
    ("si_sdr_gain_db", "gain dB", "{:+.2f}"),
    ("si_sdr_vs_float_db", "vs float dB", "{:+.2f}"),
    ("pesq", "PESQ-WB", "{:.2f}"),
    ("stoi", "STOI", "{:.3f}"),
    ("dnsmos_sig", "SIG", "{:.2f}"),
    ("dnsmos_bak", "BAK", "{:.2f}"),
    ("dnsmos_ovrl", "OVRL", "{:.2f}"),
    ("loop_rtf", "x real time", "{:.0f}"),
)

# The quality table per test condition (sepipe.evaluate.quality_by_condition).
CONDITION_COLUMNS = (
    ("system", "system", "{}"),
    ("variant", "variant", "{}"),
    ("condition", "condition", "{}"),
    ("condition_value", "value", "{}"),
    ("files", "files", "{}"),
    *(c for c in DISPLAY_COLUMNS if c[0] in ("si_sdr", "si_sdr_gain_db", "pesq", "stoi", "dnsmos_sig",
                                             "dnsmos_bak", "dnsmos_ovrl")),
)

# Deployment rows keep Vela's record column names (so `sepipe budget check` reads the CSV as is)
# and add the model's size and the quality of the int8 model as TFLite Micro runs it (what ships).
DEPLOYMENT_COLUMNS = (
    ("variant", "variant", "{}"),
    ("structure", "structure", "{}"),
    ("target", "target", "{}"),
    ("params", "params", "{:,}"),
    ("nonzero_weights", "non-zero", "{:,}"),
    ("tflite_kib", "int8 .tflite KiB", "{:.1f}"),
    ("total_npu_encoded_weights_bytes", "encoded weights B", "{:,.0f}"),
    ("flash_kib", "flash KiB", "{:.1f}"),
    ("dram_memory_used_kib", "DRAM KiB", "{:.1f}"),
    ("sram_memory_used_kib", "SRAM KiB", "{:.1f}"),
    ("cycles_total", "cycles", "{:,.0f}"),
    ("inference_time_ms", "ms", "{:.3f}"),
    ("hop_fraction", "of hop", "{:.1%}"),
    ("nn_macs", "MACs", "{:,.0f}"),
    ("mac_utilisation_pct", "MAC util %", "{:.1f}"),
    ("npu_op_share", "NPU ops", "{:.0%}"),
    ("si_sdr", "SI-SDR dB", "{:.2f}"),
    ("si_sdr_vs_float_db", "vs float dB", "{:+.2f}"),
    ("pesq", "PESQ", "{:.2f}"),
    ("stoi", "STOI", "{:.3f}"),
    ("dnsmos_ovrl", "OVRL", "{:.2f}"),
)

# The quality predictor's scores (evaluate.quality_predictor; sepipe.stages.prediction), in the tables of an
# experiment that names one only (the tables of one without keep their bytes).
PREDICTED_COLUMNS = (
    ("pred_pesq", "pred. PESQ", "{:.2f}"),
    ("pred_dnsmos_ovrl", "pred. OVRL", "{:.2f}"),
)


def with_predicted(columns):
    """`columns` with PREDICTED_COLUMNS after the OVRL column."""
    at = [key for key, _, _ in columns].index("dnsmos_ovrl") + 1
    return (*columns[:at], *PREDICTED_COLUMNS, *columns[at:])


def _cell(value, fmt: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    try:
        return fmt.format(value)
    except (ValueError, TypeError):
        return str(value)


def markdown_table(rows: Iterable[Row], columns=DISPLAY_COLUMNS) -> str:
    rows = as_dicts(rows)
    header = "| " + " | ".join(title for _, title, _ in columns) + " |"
    rule = "|" + "|".join("---" for _ in columns) + "|"
    body = ["| " + " | ".join(_cell(row.get(key), fmt) for key, _, fmt in columns) + " |" for row in rows]
    return "\n".join([header, rule, *body]) + "\n"


def csv_text(rows: Iterable[Row]) -> str:
    rows = as_dicts(rows)
    fields = list(dict.fromkeys(key for row in rows for key in row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def write_tables(rows: Iterable[Row], out_dir: Path, stem: str, notes: list[str] = (),
                 columns=DISPLAY_COLUMNS) -> list[Path]:
    """Write `<stem>.csv` and `<stem>.md` (the table plus notes); returns both paths."""
    rows = as_dicts(rows)
    out_dir = Path(out_dir)
    markdown = f"# {stem}\n\n" + markdown_table(rows, columns) + "".join(f"\n{line}" for line in notes) + "\n"
    return [write_text(out_dir / f"{stem}.csv", csv_text(rows)), write_text(out_dir / f"{stem}.md", markdown)]
