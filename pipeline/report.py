"""Comparison tables: CSV (for concatenation across runs) and Markdown (for people)."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

from pipeline.artifacts import write_text

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


def _cell(value, fmt: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    try:
        return fmt.format(value)
    except (ValueError, TypeError):
        return str(value)


def markdown_table(rows: list[dict], columns=DISPLAY_COLUMNS) -> str:
    header = "| " + " | ".join(title for _, title, _ in columns) + " |"
    rule = "|" + "|".join("---" for _ in columns) + "|"
    body = ["| " + " | ".join(_cell(row.get(key), fmt) for key, _, fmt in columns) + " |" for row in rows]
    return "\n".join([header, rule, *body]) + "\n"


def csv_text(rows: list[dict]) -> str:
    fields = list(dict.fromkeys(key for row in rows for key in row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def write_tables(rows: list[dict], out_dir: Path, stem: str, notes: list[str] = ()) -> list[Path]:
    """Write `<stem>.csv` and `<stem>.md` (the table plus notes); returns both paths."""
    out_dir = Path(out_dir)
    markdown = f"# {stem}\n\n" + markdown_table(rows) + "".join(f"\n{line}" for line in notes) + "\n"
    return [write_text(out_dir / f"{stem}.csv", csv_text(rows)), write_text(out_dir / f"{stem}.md", markdown)]
