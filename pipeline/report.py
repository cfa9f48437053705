"""Comparison tables: CSV (for concatenation across runs) and Markdown (for people)."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

from sepipe.artifacts import write_text

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


def write_tables(rows: list[dict], out_dir: Path, stem: str, notes: list[str] = (),
                 columns=DISPLAY_COLUMNS) -> list[Path]:
    """Write `<stem>.csv` and `<stem>.md` (the table plus notes); returns both paths."""
    out_dir = Path(out_dir)
    markdown = f"# {stem}\n\n" + markdown_table(rows, columns) + "".join(f"\n{line}" for line in notes) + "\n"
    return [write_text(out_dir / f"{stem}.csv", csv_text(rows)), write_text(out_dir / f"{stem}.md", markdown)]


# ---------------------------------------------------------------- quality joined with deployment
# Deployment rows keep Vela's record column names (so `sepipe budget check` reads the CSV as is)
# and add the model's size and the quality of the int8 model as TFLite Micro runs it (what ships).
QUALITY_COLUMNS = ("si_sdr", "si_sdr_vs_float_db", "pesq", "stoi", "dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl")
SHIPPED_SYSTEM = "int8 TFLite Micro"

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


def deployment_rows(experiment: str, variant: str, model_label: str, model_stats: dict, tflite_bytes: int,
                    quality_rows: list[dict], records: list[dict], hop_ms: float, structure: str = "") -> list[dict]:
    """One row per compile target: Vela's figures, the model's size and the shipped model's quality."""
    shipped = next((r for r in quality_rows if r.get("system") == SHIPPED_SYSTEM and r.get("variant") == variant), {})
    rows = []
    for record in records:
        row = {"experiment": experiment, "variant": variant, "structure": structure, "model_label": model_label,
               **model_stats,
               "tflite_bytes": tflite_bytes, "tflite_kib": tflite_bytes / 1024.0, **record,
               "hop_fraction": record["inference_time_ms"] / hop_ms}
        row.update({key: shipped.get(key, float("nan")) for key in QUALITY_COLUMNS})
        rows.append(row)
    return rows


# ---------------------------------------------------------------- headline figures of a compression sweep
# The reference work's two claims, recomputed from this project's own rows: memory reduction
# (float32 dense bytes / bytes Vela stores the weights in) at an SI-SDR loss of at most 0.1 dB,
# and speed-up (dense int8 cycles / variant cycles) at a loss of at most 0.59 dB, against the
# dense float model.
MEMORY_LOSS_LIMIT_DB = 0.1
SPEED_LOSS_LIMIT_DB = 0.59


def _weight_storage_bytes(row: dict) -> float:
    """Where Vela keeps the weights: flash on U55 (Shared_Sram), DRAM on U65/U85 (Dedicated_Sram)."""
    kib = row.get("flash_kib") or row.get("dram_memory_used_kib") or float("nan")
    return 1024.0 * kib


def headline_figures(rows: list[dict], dense_variant: str = "ptq") -> list[dict]:
    """Per target: the best memory reduction and speed-up whose SI-SDR loss stays within the limits."""
    dense = {row["target"]: row for row in rows if row["variant"] == dense_variant}
    headlines = []
    for target, base in dense.items():
        float32_bytes = 4.0 * base["params"]
        candidates = [row for row in rows if row["target"] == target and not math.isnan(row["si_sdr_vs_float_db"])]
        for metric, limit, value_of in (
                ("memory reduction", MEMORY_LOSS_LIMIT_DB, lambda r: float32_bytes / _weight_storage_bytes(r)),
                ("speed-up", SPEED_LOSS_LIMIT_DB, lambda r: base["cycles_total"] / r["cycles_total"])):
            allowed = [row for row in candidates if -row["si_sdr_vs_float_db"] <= limit]
            best = max(allowed, key=value_of, default=None)
            headlines.append({"target": target, "metric": metric, "loss_limit_db": limit,
                              "variant": best["variant"] if best else "-",
                              "value": value_of(best) if best else float("nan"),
                              "si_sdr_vs_float_db": best["si_sdr_vs_float_db"] if best else float("nan")})
    return headlines


def headline_lines(headlines: list[dict]) -> list[str]:
    """One sentence per figure (reads the same in Markdown and in the HTML page's notes)."""
    lines = ["Headline figures, against the dense float model:"]
    for h in headlines:
        if h["variant"] == "-":
            lines.append(f"- {h['target']}: {h['metric']}: no variant within {h['loss_limit_db']:g} dB")
        else:
            lines.append(f"- {h['target']}: {h['metric']} {h['value']:.1f}x with {h['variant']} "
                         f"(SI-SDR {h['si_sdr_vs_float_db']:+.2f} dB; at most -{h['loss_limit_db']:g} dB allowed)")
    return lines
