"""The report's plots, drawn with matplotlib's Agg backend (imported when a plot is drawn, not before):
SI-SDR against cost per target with its Pareto front, the per-structure Pareto plot, Vela's cycles per layer.

Plots read rendered rows (dicts, e.g. straight from a CSV: numbers as strings, any value missing or NaN);
a point without both values is left out.
"""

from __future__ import annotations

import base64
import csv
import io
import math
from pathlib import Path
from typing import Iterable, Sequence

from sepipe.errors import InputFileError
from sepipe.report.rows import QualityRow, quality_rows as typed_quality_rows

# The targets of the per-structure plot when present (the three); else the first three.
STRUCTURE_PLOT_TARGETS = ("ethos-u55-128", "ethos-u65-256", "ethos-u85-256")

# Horizontal reference lines on the SI-SDR plots: (system, label, line style, colour).
REFERENCE_SYSTEMS = (
    ("noisy", "unprocessed", "--", "0.45"),
    ("rnnoise", "RNNoise", ":", "tab:orange"),
    ("float", "float32 Keras", "-.", "tab:green"),
)

# Vela 5.2.0 per-layer CSV: 'Op Cycles' is the largest of the compute ('NPU') and memory-access cycles.
PER_LAYER_BOUNDS = (("NPU", "NPU compute", "tab:blue"), ("SRAM AC", "SRAM access", "tab:green"),
                    ("DRAM AC", "DRAM access", "tab:red"), ("OnFlash AC", "on-chip flash access", "tab:purple"),
                    ("OffFlash AC", "off-chip flash access", "tab:orange"))
PER_LAYER_REQUIRED = ("Name", "NNG Operator", "Target", "Op Cycles")
TOP_LAYERS = 25


# --------------------------------------------------------------------------- values

def as_number(value) -> float:
    """A float from a number or a numeric string; NaN for missing, empty or non-numeric values."""
    if value is None or isinstance(value, bool):
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _finite(value, default: float) -> float:
    number = as_number(value)
    return default if math.isnan(number) else number


def value_of(row: dict, keys: Sequence[str]):
    for key in keys:
        if key in row and row[key] not in (None, ""):
            return row[key]
    return None




def target_label(row: dict) -> str:
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
        x, y = as_number(x), as_number(y)
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


def png_base64(fig) -> str:
    buffer = io.BytesIO()
    # no Software/date metadata: the same data gives the same bytes
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    _pyplot().close(fig)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _reference_lines(quality_rows: Iterable[QualityRow | dict]) -> list[tuple[str, float, str, str]]:
    """(label, SI-SDR dB, line style, colour) of the reference systems found once in the quality rows."""
    rows = typed_quality_rows(quality_rows)
    lines = []
    for system, label, style, colour in REFERENCE_SYSTEMS:
        values = {as_number(r.value("si_sdr")) for r in rows if r.system == system}
        values = {v for v in values if not math.isnan(v)}
        if len(values) == 1:   # several float models (one per variant) are no single reference
            lines.append((label, values.pop(), style, colour))
    return lines


def by_target(rows: list[dict]) -> dict[str, list[dict]]:
    """Rows grouped on the target name, in first-seen order."""
    groups: dict[str, list[dict]] = {}
    for row in rows:
        groups.setdefault(str(row.get("target") or "?"), []).append(row)
    return groups


def flash_x(row: dict) -> tuple[float, bool]:
    """(KiB, from DRAM): flash_kib, or dram_kib when the target keeps its weights in DRAM (no flash figure)."""
    flash = as_number(row.get("flash_kib"))
    if flash > 0:
        return flash, False
    return as_number(value_of(row, ("dram_kib", "dram_memory_used_kib"))), True


def tradeoff_figure(rows: list[dict], x_of, x_label_of, title: str, quality_rows: Iterable[dict] = (),
                    thousands: bool = False):
    """SI-SDR (dB) against a cost, one subplot per target with its Pareto front (line, filled markers)
    and the dominated points hollow; `x_of(row)` -> (x, from DRAM) and `x_label_of(any DRAM, all DRAM)`."""
    from matplotlib.lines import Line2D
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    plt = _pyplot()
    groups = {target_label(g[0]): g for g in by_target(rows).values()} or {"no deployment rows": []}
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
        ys = [as_number(r.get("si_sdr")) for r in group]
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
    measures = (("speed-up vs dense int8 (x, cycles)", lambda r: as_number(r.get("cycles_total"))),
                ("weight memory reduction vs dense int8 (x)", lambda r: flash_x(r)[0]))
    for col, target in enumerate(targets):
        group = [r for r in rows if str(r.get("target")) == target]
        dense = next((r for r in group if r.get("structure") == "dense"), None)
        for row_index, (label, cost_of) in enumerate(measures):
            ax = axes[row_index][col]
            base = cost_of(dense) if dense else float("nan")
            plotted = False
            for name in structures:
                members = [r for r in group if r.get("structure") == name]
                pts = [(base / cost_of(r), as_number(r.get("si_sdr_vs_float_db"))) for r in members]
                pts = [(x, y) for x, y in pts if not (math.isnan(x) or math.isnan(y))]
                if not pts:
                    continue
                plotted = True
                ax.plot([x for x, _ in pts], [y for _, y in pts], "o", color=colours[name], markersize=6,
                        zorder=3, label=name)
                # the front maximises gain and quality; the dense row (1x) starts every structure's front
                anchored = pts + ([(1.0, as_number(dense.get("si_sdr_vs_float_db")))] if dense else [])
                front = sorted(pareto_front(anchored, minimise_x=False), key=lambda i: anchored[i][0])
                ax.plot([anchored[i][0] for i in front], [anchored[i][1] for i in front], "-",
                        color=colours[name], linewidth=1.4, zorder=2)
            if dense:
                ax.plot([1.0], [as_number(dense.get("si_sdr_vs_float_db"))], "s", color="black", markersize=6,
                        zorder=4, label="dense int8")
            for variant_row in group:
                x = base / cost_of(variant_row)
                y = as_number(variant_row.get("si_sdr_vs_float_db"))
                if not (math.isnan(x) or math.isnan(y)) and variant_row is not dense:
                    ax.annotate(str(variant_row.get("variant")), (x, y), textcoords="offset points",
                                xytext=(4, 4), fontsize=7, color="0.3")
            ax.axhline(-0.1, linestyle=":", color="tab:green", linewidth=1.0)
            ax.axhline(-0.59, linestyle=":", color="tab:red", linewidth=1.0)
            if plotted:
                ax.set_xscale("log")
                ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}x"))
                ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}x" if round(v) == v and v < 10 else ""))
            else:
                # no SI-SDR vs float without a float runner (evaluate.interpreters): nothing for a log axis
                ax.text(0.5, 0.5, "no quality vs float\n(evaluate.interpreters has no 'float')", ha="center",
                        va="center", transform=ax.transAxes, fontsize=8, color="0.4")
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


def cycles_x_label(_any_dram: bool, _all_dram: bool) -> str:
    return "total cycles per inference (cycles)"


def flash_x_label(any_dram: bool, all_dram: bool) -> str:
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
    cycles = [as_number(r.get("Op Cycles")) for r in layers]
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

