"""One experiment as a self-contained HTML page: tables, quality/cost trade-off plots, per-layer cycles.

Self-contained means one file that opens anywhere, offline and years later: no external script,
stylesheet or font, and every plot an inline base64 PNG drawn with matplotlib's Agg backend.
Rows may come straight from a CSV (numbers as strings) and any value may be missing or NaN: the
tables show '-' and the plots leave that point out.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import math
from pathlib import Path
from typing import Iterable, Sequence

from sepipe.artifacts import write_text
from sepipe.errors import InputFileError
from sepipe.report import DISPLAY_COLUMNS

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
)
TEXT_COLUMNS = {"variant", "structure", "model", "target", "id", "system", "files"}
# The targets of the per-structure plot when present (the three); else the first three.
STRUCTURE_PLOT_TARGETS = ("ethos-u55-128", "ethos-u65-256", "ethos-u85-256")

# Horizontal reference lines on the SI-SDR plots: (system name prefix, label, line style, colour).
REFERENCE_SYSTEMS = (
    ("unprocessed", "unprocessed", "--", "0.45"),
    ("RNNoise", "RNNoise", ":", "tab:orange"),
    ("float32 Keras", "float32 Keras", "-.", "tab:green"),
)

# Vela 5.2.0 per-layer CSV: 'Op Cycles' is the largest of the compute ('NPU') and memory-access cycles.
PER_LAYER_BOUNDS = (("NPU", "NPU compute", "tab:blue"), ("SRAM AC", "SRAM access", "tab:green"),
                    ("DRAM AC", "DRAM access", "tab:red"), ("OnFlash AC", "on-chip flash access", "tab:purple"),
                    ("OffFlash AC", "off-chip flash access", "tab:orange"))
PER_LAYER_REQUIRED = ("Name", "NNG Operator", "Target", "Op Cycles")
TOP_LAYERS = 25

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


# --------------------------------------------------------------------------- values

def _number(value) -> float:
    """A float from a number or a numeric string; NaN for missing, empty or non-numeric values."""
    if value is None or isinstance(value, bool):
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _finite(value, default: float) -> float:
    number = _number(value)
    return default if math.isnan(number) else number


def _value(row: dict, keys: Sequence[str]):
    for key in keys:
        if key in row and row[key] not in (None, ""):
            return row[key]
    return None


def _cell(value, fmt: str) -> str:
    if value is None or value == "" or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if fmt == "{}":
        return str(value)
    number = _number(value)
    if math.isnan(number):
        return "-" if isinstance(value, (int, float)) or str(value).lower() == "nan" else str(value)
    try:
        return fmt.format(number)
    except (ValueError, TypeError):
        return str(value)


def _target_label(row: dict) -> str:
    target, target_id = row.get("target") or "?", row.get("target_id")
    return f"{target} ({target_id})" if target_id else str(target)


# --------------------------------------------------------------------------- Pareto front

def pareto_front(points: list[tuple[float, float]], minimise_x: bool = True, maximise_y: bool = True) -> list[int]:
    """Indices (ascending) of the non-dominated points.

    A point is dominated when another is at least as good on both axes and better on one
    (e.g. x = cycles or flash KiB, lower is better; y = SI-SDR dB, higher is better). Equal points
    do not dominate each other, so both stay on the front. Points with a NaN or None are left out.
    """
    sx, sy = (1.0 if minimise_x else -1.0), (-1.0 if maximise_y else 1.0)
    keyed = []   # both coordinates turned into "lower is better"
    for index, (x, y) in enumerate(points):
        x, y = _number(x), _number(y)
        if not (math.isnan(x) or math.isnan(y)):
            keyed.append((index, sx * x, sy * y))
    front = []
    for index, x, y in keyed:
        if not any(ox <= x and oy <= y and (ox < x or oy < y) for _, ox, oy in keyed):
            front.append(index)
    return front


# --------------------------------------------------------------------------- plots

def _pyplot():
    import matplotlib
    matplotlib.use("Agg", force=False)   # no display needed; a no-op when Agg is already in use
    import matplotlib.pyplot as plt
    return plt


def _png_base64(fig) -> str:
    buffer = io.BytesIO()
    # no Software/date metadata: the same data gives the same bytes
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    _pyplot().close(fig)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _reference_lines(quality_rows: Iterable[dict]) -> list[tuple[str, float, str, str]]:
    """(label, SI-SDR dB, line style, colour) of the reference systems found once in the quality rows."""
    lines = []
    for prefix, label, style, colour in REFERENCE_SYSTEMS:
        values = {_number(r.get("si_sdr")) for r in quality_rows if str(r.get("system", "")).startswith(prefix)}
        values = {v for v in values if not math.isnan(v)}
        if len(values) == 1:   # several float models (one per variant) are no single reference
            lines.append((label, values.pop(), style, colour))
    return lines


def _by_target(rows: list[dict]) -> dict[str, list[dict]]:
    groups: dict[str, list[dict]] = {}
    for row in rows:
        groups.setdefault(_target_label(row), []).append(row)
    return groups


def _flash_x(row: dict) -> tuple[float, bool]:
    """(KiB, from DRAM): flash_kib, or dram_kib when the target keeps its weights in DRAM (no flash figure)."""
    flash = _number(row.get("flash_kib"))
    if flash > 0:
        return flash, False
    return _number(_value(row, ("dram_kib", "dram_memory_used_kib"))), True


def tradeoff_figure(rows: list[dict], x_of, x_label_of, title: str, quality_rows: Iterable[dict] = (),
                    thousands: bool = False):
    """SI-SDR (dB) against a cost, one subplot per target with its Pareto front (line, filled markers)
    and the dominated points hollow; `x_of(row)` -> (x, from DRAM) and `x_label_of(any DRAM, all DRAM)`."""
    from matplotlib.lines import Line2D
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    plt = _pyplot()
    groups = _by_target(rows) or {"no deployment rows": []}
    references = _reference_lines(list(quality_rows))
    n = len(groups)
    ncols = min(n, 3)
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.9 * ncols + 0.8, 3.4 * nrows + 0.9), sharey=True,
                             squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    for ax, (target, group) in zip(axes.flat, groups.items()):
        xs_dram = [x_of(r) for r in group]
        ys = [_number(r.get("si_sdr")) for r in group]
        pts = [(x, y) for (x, _), y in zip(xs_dram, ys)]
        valid = [i for i, (x, y) in enumerate(pts) if not (math.isnan(x) or math.isnan(y))]
        dram = [xs_dram[i][1] for i in valid]
        front = set(pareto_front(pts))
        for label, y, style, colour in references:
            ax.axhline(y, linestyle=style, color=colour, linewidth=1.2, zorder=1)
        if valid:
            ordered = sorted(front, key=lambda i: pts[i][0])
            ax.plot([pts[i][0] for i in ordered], [pts[i][1] for i in ordered], "-o", color="tab:blue",
                    markersize=7, linewidth=1.5, zorder=3)
            dominated = [i for i in valid if i not in front]
            ax.plot([pts[i][0] for i in dominated], [pts[i][1] for i in dominated], "o", markersize=7,
                    markerfacecolor="white", markeredgecolor="tab:blue", zorder=3)
            for i in valid:
                ax.annotate(str(group[i].get("variant") or "?"), pts[i], textcoords="offset points",
                            xytext=(5, 5), fontsize=8)
            ax.margins(x=0.25, y=0.15)
        else:
            ax.text(0.5, 0.5, "no point with both values", transform=ax.transAxes, ha="center",
                    va="center", color="0.4")
        ax.set_title(target, fontsize=10)
        ax.set_xlabel(x_label_of(any(dram), bool(dram) and all(dram)), fontsize=9)
        ax.xaxis.set_major_locator(MaxNLocator(nbins=5))
        if thousands:
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
        ax.tick_params(labelsize=8)
        ax.grid(True, alpha=0.3)
    for row_axes in axes:
        row_axes[0].set_ylabel("SI-SDR (dB), int8 TFLite Micro", fontsize=9)
    handles = [Line2D([], [], color="tab:blue", marker="o", label="Pareto front"),
               Line2D([], [], color="tab:blue", marker="o", linestyle="", markerfacecolor="white",
                      label="dominated")]
    handles += [Line2D([], [], linestyle=style, color=colour, label=f"{label} ({y:.2f} dB)")
                for label, y, style, colour in references]
    fig.suptitle(title, fontsize=11)
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=8, frameon=False,
               bbox_to_anchor=(0.5, 0.0))
    fig.tight_layout(rect=(0, 0.06 if nrows == 1 else 0.04, 1, 1))
    return fig


def _structure_plot_targets(rows: list[dict]) -> list[str]:
    present = list(dict.fromkeys(str(r.get("target")) for r in rows))
    chosen = [t for t in STRUCTURE_PLOT_TARGETS if t in present]
    return chosen or present[:3]


def structure_figure(rows: list[dict]):
    """Which sparsity structure pays where: speed-up and memory reduction against the dense row,
    one colour per structure with that structure's own Pareto front (the dense row starts every front).

    Columns: targets (u55-128, u65-256, u85-256 when present); rows: speed-up (dense cycles / cycles)
    and weight-memory reduction (dense flash or DRAM / variant's), both against SI-SDR vs float (dB)."""
    from matplotlib.lines import Line2D
    from matplotlib.ticker import FuncFormatter

    plt = _pyplot()
    targets = _structure_plot_targets(rows) or ["no deployment rows"]
    structures = sorted({str(r.get("structure") or "?") for r in rows} - {"dense"})
    colours = {name: plt.get_cmap("tab10")(i % 10) for i, name in enumerate(structures)}
    fig, axes = plt.subplots(2, len(targets), figsize=(4.2 * len(targets) + 0.6, 7.4), sharey=True, squeeze=False)
    measures = (("speed-up vs dense int8 (x, cycles)", lambda r: _number(r.get("cycles_total"))),
                ("weight memory reduction vs dense int8 (x)", lambda r: _flash_x(r)[0]))
    for col, target in enumerate(targets):
        group = [r for r in rows if str(r.get("target")) == target]
        dense = next((r for r in group if r.get("structure") == "dense"), None)
        for row_index, (label, cost_of) in enumerate(measures):
            ax = axes[row_index][col]
            base = cost_of(dense) if dense else float("nan")
            for name in structures:
                members = [r for r in group if r.get("structure") == name]
                pts = [(base / cost_of(r), _number(r.get("si_sdr_vs_float_db"))) for r in members]
                pts = [(x, y) for x, y in pts if not (math.isnan(x) or math.isnan(y))]
                if not pts:
                    continue
                ax.plot([x for x, _ in pts], [y for _, y in pts], "o", color=colours[name], markersize=6,
                        zorder=3, label=name)
                # the front maximises gain and quality; the dense row (1x) starts every structure's front
                anchored = pts + ([(1.0, _number(dense.get("si_sdr_vs_float_db")))] if dense else [])
                front = sorted(pareto_front(anchored, minimise_x=False), key=lambda i: anchored[i][0])
                ax.plot([anchored[i][0] for i in front], [anchored[i][1] for i in front], "-",
                        color=colours[name], linewidth=1.4, zorder=2)
            if dense:
                ax.plot([1.0], [_number(dense.get("si_sdr_vs_float_db"))], "s", color="black", markersize=6,
                        zorder=4, label="dense int8")
            for variant_row in group:
                x = base / cost_of(variant_row)
                y = _number(variant_row.get("si_sdr_vs_float_db"))
                if not (math.isnan(x) or math.isnan(y)) and variant_row is not dense:
                    ax.annotate(str(variant_row.get("variant")), (x, y), textcoords="offset points",
                                xytext=(4, 4), fontsize=7, color="0.3")
            ax.axhline(-0.1, linestyle=":", color="tab:green", linewidth=1.0)
            ax.axhline(-0.59, linestyle=":", color="tab:red", linewidth=1.0)
            ax.set_xscale("log")
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}x"))
            ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}x" if round(v) == v and v < 10 else ""))
            ax.set_title(f"{target}", fontsize=10)
            ax.set_xlabel(label, fontsize=9)
            ax.grid(True, which="both", alpha=0.3)
            ax.tick_params(labelsize=8)
        axes[0][col].set_ylabel("SI-SDR vs float (dB)", fontsize=9)
        axes[1][col].set_ylabel("SI-SDR vs float (dB)", fontsize=9)
    handles, _ = axes[0][0].get_legend_handles_labels()
    handles += [Line2D([], [], linestyle=":", color="tab:green", label="-0.1 dB (memory claim)"),
                Line2D([], [], linestyle=":", color="tab:red", label="-0.59 dB (speed claim)")]
    fig.suptitle("Pareto front per sparsity structure", fontsize=11)
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 5), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    return fig


def _cycles_x_label(_any_dram: bool, _all_dram: bool) -> str:
    return "total cycles per inference (cycles)"


def _flash_x_label(any_dram: bool, all_dram: bool) -> str:
    if all_dram:
        return "DRAM used (KiB); no flash figure, weights in DRAM"
    if any_dram:
        return "flash (KiB); DRAM KiB where flash is 0"
    return "flash used (KiB)"


def read_per_layer_csv(path: str | Path) -> list[dict]:
    """Vela's `<net>_per-layer.csv` rows; InputFileError when missing or without the columns used here."""
    path = Path(path)
    if not path.is_file():
        raise InputFileError(path, "Vela per-layer CSV not found (written by `compile` with --verbose-performance)")
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in PER_LAYER_REQUIRED if c not in (reader.fieldnames or [])]
        if missing:
            raise InputFileError(path, f"not a Vela per-layer CSV: no column(s) {missing}; "
                                       f"expected at least {list(PER_LAYER_REQUIRED)}")
        return list(reader)


def _short_name(name: str, limit: int = 48) -> str:
    # Vela joins fused tensor names with ';' (MatMul;Relu): the first names the operator
    name = name.split(";")[0].strip()
    return name if len(name) <= limit else "\u2026" + name[-(limit - 1):]


def per_layer_figure(layers: list[dict], label: str, top: int = TOP_LAYERS):
    """Horizontal bars of Vela's 'Op Cycles' (cycles) for the `top` costliest operators, coloured by what
    bounds each one (compute or a memory's access cycles)."""
    from matplotlib.patches import Patch
    from matplotlib.ticker import FuncFormatter

    plt = _pyplot()
    cycles = [_number(r.get("Op Cycles")) for r in layers]
    total = sum(c for c in cycles if not math.isnan(c))
    ranked = sorted((i for i, c in enumerate(cycles) if c > 0), key=lambda i: -cycles[i])[:top]
    ranked.reverse()   # largest at the top of the chart
    shown = sum(cycles[i] for i in ranked)
    fig, ax = plt.subplots(figsize=(10.5, 0.3 * max(len(ranked), 3) + 1.6))
    used = {}
    for y, i in enumerate(ranked):
        row = layers[i]
        bound = max(PER_LAYER_BOUNDS, key=lambda b: _finite(row.get(b[0]), -1.0))
        colour = bound[2] if row.get("Target", "").strip().upper() == "NPU" else "0.6"
        used[bound[1] if colour != "0.6" else "CPU"] = colour
        ax.barh(y, cycles[i], color=colour, height=0.7)
        ax.text(cycles[i], y, f" {cycles[i]:,.0f}", va="center", fontsize=7)
    ax.set_yticks(range(len(ranked)))
    ax.set_yticklabels([f"{_short_name(layers[i].get('Name', '?'))}  [{layers[i].get('NNG Operator', '?')}]"
                        for i in ranked], fontsize=8, family="monospace")
    ax.set_xlabel("cycles per inference (Vela 'Op Cycles')", fontsize=9)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    ax.margins(x=0.12)
    ax.grid(True, axis="x", alpha=0.3)
    share = f"{100.0 * shown / total:.1f}% of {total:,.0f} cycles" if total else "no cycles"
    with_cycles = sum(c > 0 for c in cycles)
    ax.set_title(f"{label}: top {len(ranked)} of {with_cycles} operators with cycles "
                 f"({len(layers)} in Vela's schedule), {share}".lstrip(": "),
                 fontsize=10)
    if not ranked:
        ax.text(0.5, 0.5, "no operator with cycles", transform=ax.transAxes, ha="center", color="0.4")
    ax.legend(handles=[Patch(color=c, label=f"bound by {name}" if name != "CPU" else "on the CPU")
                       for name, c in used.items()], fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- HTML

def _table(rows: list[dict], columns: Sequence[tuple[str, str, Sequence[str]]], highlight=frozenset()) -> str:
    # columns empty in every row are left out: a narrower table is easier to read
    columns = [c for c in columns if any(_value(r, c[2]) is not None for r in rows)]
    head = "".join(f"<th>{html.escape(h)}</th>" for h, _, _ in columns)
    body = []
    for index, row in enumerate(rows):
        cells = []
        for header, fmt, keys in columns:
            css = "" if header in TEXT_COLUMNS else "num"
            if index in highlight and header == "variant":
                css += " front"
            cells.append(f'<td class="{css.strip()}">{html.escape(_cell(_value(row, keys), fmt))}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f'<div class="scroll"><table>\n<tr>{head}</tr>\n' + "\n".join(body) + "\n</table></div>\n"


def _img(b64: str, alt: str) -> str:
    return f'<img src="data:image/png;base64,{b64}" alt="{html.escape(alt)}">\n'


def render_html(rows: list[dict], title: str, per_layer_csv: Path | None = None, per_layer_label: str = "",
                notes: Sequence[str] = (), quality_rows: Sequence[dict] = ()) -> str:
    """The page as a string; see write_html_report."""
    rows, quality_rows = list(rows), list(quality_rows)
    layers = read_per_layer_csv(per_layer_csv) if per_layer_csv is not None else None   # fail before drawing
    parts = [f"<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
             f"<title>{html.escape(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
             f"<h1>{html.escape(title)}</h1>\n"]
    parts += [f'<p class="note">{html.escape(str(note))}</p>\n' for note in notes]

    parts.append("<h2>Audio quality</h2>\n")
    if quality_rows:
        quality_columns = [(h, f, (k,)) for k, h, f in DISPLAY_COLUMNS]
        parts.append(_table(quality_rows, quality_columns))
        parts.append('<p class="caption">Means over the test files; SI-SDR, gain and "vs float" in dB.</p>\n')
    else:
        parts.append('<p class="note">No evaluation rows.</p>\n')

    # variants on the Pareto front of their target (cycles or flash), shown in bold in the table
    on_front: set[int] = set()
    groups: dict[str, list[int]] = {}
    for index, row in enumerate(rows):
        groups.setdefault(_target_label(row), []).append(index)
    for members in groups.values():
        for x_of in (lambda r: _number(r.get("cycles_total")), lambda r: _flash_x(r)[0]):
            points = [(x_of(rows[i]), _number(rows[i].get("si_sdr"))) for i in members]
            on_front |= {members[j] for j in pareto_front(points)}
    parts.append("<h2>Deployment</h2>\n")
    if rows:
        parts.append(_table(rows, COST_TABLE, highlight=on_front))
        parts.append('<p class="caption">One row per variant and Vela target (cycles per inference; "of hop": '
                     'inference time over the STFT hop). Variants in bold are on the SI-SDR Pareto front of '
                     'their target for cycles or memory.</p>\n')
        per_variant: dict[str, dict] = {}
        for row in rows:
            per_variant.setdefault(str(row.get("variant")), row)
        parts.append(_table(list(per_variant.values()), VARIANT_QUALITY_TABLE))
        parts.append('<p class="caption">Quality of each variant as int8 TFLite Micro runs it (what ships; '
                     'the same on every target).</p>\n')
    else:
        parts.append('<p class="note">No deployment rows.</p>\n')

    parts.append("<h2>SI-SDR against cycles</h2>\n")
    parts.append(_img(_png_base64(tradeoff_figure(rows, lambda r: (_number(r.get("cycles_total")), False),
                                                  _cycles_x_label, "SI-SDR against total cycles, per target",
                                                  quality_rows, thousands=True)), "SI-SDR against cycles"))
    parts.append("<h2>SI-SDR against memory</h2>\n")
    parts.append(_img(_png_base64(tradeoff_figure(rows, _flash_x, _flash_x_label,
                                                  "SI-SDR against flash (or DRAM) used, per target",
                                                  quality_rows)), "SI-SDR against flash KiB"))
    structures = {r.get("structure") or "" for r in rows}
    if "dense" in structures and structures - {"dense", ""}:   # gains need the dense row and something else
        parts.append("<h2>Which sparsity structure pays where</h2>\n")
        parts.append(_img(_png_base64(structure_figure(rows)), "Pareto front per sparsity structure"))
        parts.append('<p class="caption">Each colour is one sparsity structure with its own Pareto front, '
                     'starting from the dense int8 model (black square). Dotted lines: the reference '
                     'claims\' loss limits, -0.1 dB for memory and -0.59 dB for speed.</p>\n')
    if layers is not None:
        parts.append(f"<h2>Cycles per layer{': ' + html.escape(per_layer_label) if per_layer_label else ''}</h2>\n")
        parts.append(_img(_png_base64(per_layer_figure(layers, per_layer_label)), "cycles per layer"))
        cpu = [r for r in layers if r.get("Target", "").strip().upper() == "CPU"]
        caption = (f"From {html.escape(Path(per_layer_csv).name)}. Operators with no cycles of their own "
                   "(fused activations, lookup tables) are not drawn.")
        if cpu:
            caption += f" {len(cpu)} operator(s) run on the CPU; Vela does not count their cycles."
        parts.append(f'<p class="caption">{caption}</p>\n')
    parts.append("</body>\n</html>\n")
    return "".join(parts)


def write_html_report(rows: list[dict], out_path: Path, title: str, per_layer_csv: Path | None = None,
                      per_layer_label: str = "", notes: Sequence[str] = (),
                      quality_rows: Sequence[dict] = ()) -> Path:
    """Write the experiment's page to `out_path` atomically and return it.

    rows: deployment rows, one per (variant, target) (cycles in cycles, memory in KiB, SI-SDR in dB);
    quality_rows: evaluation rows (one per system); per_layer_csv: Vela's per-layer CSV of the variant
    and target named by `per_layer_label`, drawn as cycles per operator; notes: paragraphs under the title.
    Raises InputFileError when `per_layer_csv` is given but missing or not a Vela per-layer CSV.
    """
    return write_text(out_path, render_html(rows, title, per_layer_csv, per_layer_label, notes, quality_rows))
