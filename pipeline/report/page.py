"""One experiment as a self-contained HTML page: tables, quality/cost trade-off plots, per-layer cycles.

Self-contained means one file that opens anywhere, offline and years later: no external script,
stylesheet or font, every plot an inline base64 PNG (sepipe.report.plots), and the audio players and
spectrograms inline too (sepipe.report.listen).
Rows are typed rows (rendered here with their `to_dict`) or mappings straight from a CSV (numbers as
strings); any value may be missing or NaN: the tables show '-' and the plots leave that point out.
"""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Iterable, Sequence

from sepipe.artifacts import write_text
from sepipe.report.plots import (as_number, by_target, cycles_x_label, flash_x, flash_x_label, pareto_front,
                                 per_layer_figure, png_base64, read_per_layer_csv, structure_figure, tradeoff_figure,
                                 value_of)
from sepipe.report.exit_plot import exit_caption, exit_figure, has_exits
from sepipe.report.rows import Row, as_dicts
from sepipe.report.tables import DISPLAY_COLUMNS, PREDICTED_COLUMNS, with_predicted


# Deployment tables: (header, format, keys). The first key present in a row wins, so rows that keep
# Vela's record names (sram_memory_used_kib, inference_time_ms, ...) and rows with the short names both show.
# Cost is per (variant, target); quality is the int8 model as TFLite Micro runs it, the same on every
# target, so it gets a table of its own with one row per variant (a table narrow enough to read).
COST_TABLE = (
    ("variant", "{}", ("variant",)),
    ("target", "{}", ("target",)),
    ("id", "{}", ("target_id",)),
    ("params", "{:,.0f}", ("params",)),
    ("non-zero weights", "{:,.0f}", ("nonzero_weights",)),
    ("int8 .tflite B", "{:,.0f}", ("tflite_bytes",)),
    ("encoded weights B", "{:,.0f}", ("encoded_weights_bytes", "total_npu_encoded_weights_bytes")),
    ("flash KiB", "{:.1f}", ("flash_kib",)),
    ("SRAM KiB", "{:.1f}", ("sram_kib", "sram_memory_used_kib")),
    ("DRAM KiB", "{:.1f}", ("dram_kib", "dram_memory_used_kib")),
    ("cycles", "{:,.0f}", ("cycles_total",)),
    ("ms", "{:.3f}", ("inference_ms", "inference_time_ms")),
    ("of hop", "{:.1%}", ("hop_fraction",)),
    ("MACs", "{:,.0f}", ("nn_macs",)),
    ("MAC util %", "{:.1f}", ("mac_utilisation_pct",)),
    ("NPU ops", "{:.0%}", ("npu_op_share",)),
    ("SI-SDR dB", "{:.2f}", ("si_sdr",)),
)
VARIANT_QUALITY_TABLE = (
    ("variant", "{}", ("variant",)),
    ("structure", "{}", ("structure",)),
    ("model", "{}", ("model_label", "model")),
    ("SI-SDR dB", "{:.2f}", ("si_sdr",)),
    ("vs float dB", "{:+.2f}", ("si_sdr_vs_float_db",)),
    ("PESQ", "{:.2f}", ("pesq",)),
    ("STOI", "{:.3f}", ("stoi",)),
    ("SIG", "{:.2f}", ("dnsmos_sig",)),
    ("BAK", "{:.2f}", ("dnsmos_bak",)),
    ("OVRL", "{:.2f}", ("dnsmos_ovrl",)),
    *((header, fmt, (key,)) for key, header, fmt in PREDICTED_COLUMNS),    # empty (so left out) without a predictor
)
TEXT_COLUMNS = {"variant", "structure", "model", "target", "id", "system", "files"}

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 1200px; padding: 0 1em; color: #222; line-height: 1.45; }
h1 { font-size: 1.6em; border-bottom: 2px solid #ddd; padding-bottom: .3em; }
h2 { font-size: 1.25em; margin-top: 2em; }
p.note { margin: .4em 0; }
p.caption { color: #555; font-size: .9em; margin-top: .2em; }
div.scroll { overflow-x: auto; }
table { border-collapse: collapse; font-size: .85em; margin: .5em 0; }
th, td { border: 1px solid #ccc; padding: .25em .55em; }
td { white-space: nowrap; }
th { background: #f0f2f5; position: sticky; top: 0; max-width: 7em; vertical-align: bottom; }
tr:nth-child(even) td { background: #fafafa; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.front { font-weight: 600; }
img { max-width: 100%; height: auto; display: block; margin: .5em 0; }
"""
# Only on a page with a listening section (a page without one keeps its bytes).
LISTEN_STYLE = """h3 { font-size: 1.05em; margin: 1.2em 0 .3em; }
div.listen { display: grid; grid-template-columns: repeat(auto-fill, minmax(300px, 1fr)); gap: .4em 1em; }
figure.clip { margin: 0; }
figure.clip figcaption { font-size: .85em; font-weight: 600; }
figure.clip img { margin: .2em 0; }
figure.clip audio { width: 100%; height: 2.2em; }
"""


def _cell(value, fmt: str) -> str:
    if value is None or value == "" or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if fmt == "{}":
        return str(value)
    number = as_number(value)
    if math.isnan(number):
        return "-" if isinstance(value, (int, float)) or str(value).lower() == "nan" else str(value)
    try:
        return fmt.format(number)
    except (ValueError, TypeError):
        return str(value)



# --------------------------------------------------------------------------- HTML

def _table(rows: list[dict], columns: Sequence[tuple[str, str, Sequence[str]]], highlight=frozenset()) -> str:
    # columns empty in every row are left out: a narrower table is easier to read
    columns = [c for c in columns if any(value_of(r, c[2]) is not None for r in rows)]
    head = "".join(f"<th>{html.escape(h)}</th>" for h, _, _ in columns)
    body = []
    for index, row in enumerate(rows):
        cells = []
        for header, fmt, keys in columns:
            css = "" if header in TEXT_COLUMNS else "num"
            if index in highlight and header == "variant":
                css += " front"
            cells.append(f'<td class="{css.strip()}">{html.escape(_cell(value_of(row, keys), fmt))}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f'<div class="scroll"><table>\n<tr>{head}</tr>\n' + "\n".join(body) + "\n</table></div>\n"


def _img(b64: str, alt: str) -> str:
    return f'<img src="data:image/png;base64,{b64}" alt="{html.escape(alt)}">\n'


def _deployment_sections(rows: list[dict], quality_rows: list[dict]) -> str:
    """The deployment table, the quality per variant and the SI-SDR against cost plots (rows not empty)."""
    # variants on the Pareto front of their target (cycles or flash), shown in bold in the table
    on_front: set[int] = set()
    index_of = {id(row): index for index, row in enumerate(rows)}
    for group in by_target(rows).values():
        members = [index_of[id(row)] for row in group]
        for x_of in (lambda r: as_number(r.get("cycles_total")), lambda r: flash_x(r)[0]):
            points = [(x_of(rows[i]), as_number(rows[i].get("si_sdr"))) for i in members]
            on_front |= {members[j] for j in pareto_front(points)}
    parts = ["<h2>Deployment</h2>\n", _table(rows, COST_TABLE, highlight=on_front)]
    parts.append('<p class="caption">One row per variant and Vela target (cycles per inference; "of hop": '
                 'inference time over the STFT hop). Variants in bold are on the SI-SDR Pareto front of '
                 'their target for cycles or memory.</p>\n')
    per_variant: dict[str, dict] = {}
    for row in rows:
        per_variant.setdefault(str(row.get("variant")), row)
    parts.append(_table(list(per_variant.values()), VARIANT_QUALITY_TABLE))
    parts.append('<p class="caption">Quality of each variant as int8 TFLite Micro runs it (what ships; '
                 'the same on every target).</p>\n')

    parts.append("<h2>SI-SDR against cycles</h2>\n")
    parts.append(_img(png_base64(tradeoff_figure(rows, lambda r: (as_number(r.get("cycles_total")), False),
                                                  cycles_x_label, "SI-SDR against total cycles, per target",
                                                  quality_rows, thousands=True)), "SI-SDR against cycles"))
    parts.append("<h2>SI-SDR against memory</h2>\n")
    parts.append(_img(png_base64(tradeoff_figure(rows, flash_x, flash_x_label,
                                                  "SI-SDR against flash (or DRAM) used, per target",
                                                  quality_rows)), "SI-SDR against flash KiB"))
    structures = {r.get("structure") or "" for r in rows}
    if "dense" in structures and structures - {"dense", ""}:   # gains need the dense row and something else
        parts.append("<h2>Which sparsity structure pays where</h2>\n")
        parts.append(_img(png_base64(structure_figure(rows)), "Pareto front per sparsity structure"))
        parts.append('<p class="caption">Each colour is one sparsity structure with its own Pareto front, '
                     'starting from the dense int8 model (black square). Dotted lines: the reference '
                     'claims\' loss limits, -0.1 dB for memory and -0.59 dB for speed.</p>\n')
    if has_exits(rows):     # a multi-exit model's exits (variant kind 'exit')
        parts.append("<h2>Quality against cycles per exit</h2>\n")
        parts.append(_img(png_base64(exit_figure(rows, quality_rows)), "quality against cycles per exit"))
        parts.append(f'<p class="caption">{html.escape(exit_caption(rows, quality_rows))}</p>\n')
    return "".join(parts)


def render_html(rows: Iterable[Row], title: str, per_layer_csv: Path | None = None, per_layer_label: str = "",
                notes: Sequence[str] = (), quality_rows: Iterable[Row] = (), listen_html: str = "",
                predicted_html: str = "") -> str:
    """The page as a string; see write_html_report."""
    rows, quality_rows = as_dicts(rows), as_dicts(quality_rows)   # labels are made here, once
    layers = read_per_layer_csv(per_layer_csv) if per_layer_csv is not None else None   # fail before drawing
    parts = [f"<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
             f"<title>{html.escape(title)}</title>\n<style>{STYLE}{LISTEN_STYLE if listen_html else ''}</style>\n"
             "</head>\n<body>\n"
             f"<h1>{html.escape(title)}</h1>\n"]
    parts += [f'<p class="note">{html.escape(str(note))}</p>\n' for note in notes]

    parts.append("<h2>Audio quality</h2>\n")
    if quality_rows:
        # the predicted columns are left out by _table where no row has them
        quality_columns = [(h, f, (k,)) for k, h, f in with_predicted(DISPLAY_COLUMNS)]
        parts.append(_table(quality_rows, quality_columns))
        parts.append('<p class="caption">Means over the test files; SI-SDR, gain and "vs float" in dB.</p>\n')
    else:
        parts.append('<p class="note">No evaluation rows.</p>\n')
    parts.append(predicted_html)
    parts.append(listen_html)

    if rows:       # a corpus evaluation has no Vela figures: no deployment section, no empty plots
        parts.append(_deployment_sections(rows, quality_rows))
    if layers is not None:
        parts.append(f"<h2>Cycles per layer{': ' + html.escape(per_layer_label) if per_layer_label else ''}</h2>\n")
        parts.append(_img(png_base64(per_layer_figure(layers, per_layer_label)), "cycles per layer"))
        cpu = [r for r in layers if r.get("Target", "").strip().upper() == "CPU"]
        caption = (f"From {html.escape(Path(per_layer_csv).name)}. Operators with no cycles of their own "
                   "(fused activations, lookup tables) are not drawn.")
        if cpu:
            caption += f" {len(cpu)} operator(s) run on the CPU; Vela does not count their cycles."
        parts.append(f'<p class="caption">{caption}</p>\n')
    parts.append("</body>\n</html>\n")
    return "".join(parts)


def write_html_report(rows: Iterable[Row], out_path: Path, title: str, per_layer_csv: Path | None = None,
                      per_layer_label: str = "", notes: Sequence[str] = (),
                      quality_rows: Iterable[Row] = (), listen_html: str = "", predicted_html: str = "") -> Path:
    """Write the experiment's page to `out_path` atomically and return it.

    rows: deployment rows (DeploymentRow, or dicts as rendered or read from a CSV), one per (variant, target)
    (cycles in cycles, memory in KiB, SI-SDR in dB); quality_rows: evaluation rows (QualityRow or dicts, one
    per system); per_layer_csv: Vela's per-layer CSV of the variant and target named by `per_layer_label`,
    drawn as cycles per operator; notes: paragraphs under the title; listen_html: the players and
    spectrograms (sepipe.report.listen.render_listen_section), written with the rest of the page in one
    atomic write, after the quality table; predicted_html: the quality predictor's section
    (sepipe.report.predicted.render_predicted_section), before the listening section.
    Raises InputFileError when `per_layer_csv` is given but missing or not a Vela per-layer CSV.
    """
    return write_text(out_path, render_html(rows, title, per_layer_csv, per_layer_label, notes, quality_rows,
                                            listen_html, predicted_html))
