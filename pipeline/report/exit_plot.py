"""The per-exit plot of a multi-exit model (issue 16): quality against cycles through the exits in order.

A run whose variants include kind `exit` has deployment rows of structure "exit N". For one target (u55-128
when compiled for it, else the first), one panel per metric (SI-SDR, PESQ, and DNSMOS OVRL where evaluated)
draws a line through exit 1, 2, ... at their Vela cycles, the deepest exit (the full model when every exit is
exported) as a star, the joint model (every head an output, kind ptq) as a hollow square, and the unprocessed
input's score as a dashed horizontal line. Quality is the shipped runner's (TFLite Micro) where evaluated, else
the TFLite interpreter's (the demo evaluates only that one), else the float model's; the axis says which.
"""

from __future__ import annotations

import math
import re
from typing import Iterable

from sepipe.report.plots import _pyplot, as_number
from sepipe.report.rows import DENSE_STRUCTURE, SYSTEM_LABELS, QualityRow, quality_rows as typed_quality_rows

EXIT_STRUCTURE = re.compile(r"^exit (\d+)$")
PREFERRED_TARGET = "ethos-u55-128"
RUNNER_ORDER = ("tflm", "tflite", "float")        # the first with scores is plotted
METRICS = (("si_sdr", "SI-SDR (dB)"), ("pesq", "PESQ (wide band)"), ("dnsmos_ovrl", "DNSMOS OVRL"))


def exit_number(row: dict) -> int | None:
    """N of a deployment row of structure "exit N", else None."""
    match = EXIT_STRUCTURE.match(str(row.get("structure") or ""))
    return int(match.group(1)) if match else None


def has_exits(rows: Iterable[dict]) -> bool:
    return any(exit_number(r) is not None for r in rows)


def exit_target(rows: list[dict]) -> str:
    """The target the plot uses: u55-128 when the exits were compiled for it, else the first exit row's."""
    targets = [str(r.get("target")) for r in rows if exit_number(r) is not None]
    return PREFERRED_TARGET if PREFERRED_TARGET in targets else (targets[0] if targets else "?")


def _quality_of(variant: str, quality: list[QualityRow]) -> tuple[QualityRow | None, str]:
    for runner in RUNNER_ORDER:
        row = next((q for q in quality if q.variant == variant and q.system == runner), None)
        if row is not None and not math.isnan(as_number(row.value("si_sdr"))):
            return row, runner
    return None, ""


def exit_points(rows: list[dict], quality_rows: Iterable, target: str) -> tuple[list[dict], str]:
    """The exits on `target` in exit order, plus the joint (dense) model last when present: dicts of exit
    (None for the joint model), variant, cycles and each metric; and the runner whose scores they are."""
    quality = typed_quality_rows(list(quality_rows))
    points, runners = [], set()
    chosen = [r for r in rows if str(r.get("target")) == target and
              (exit_number(r) is not None or r.get("structure") == DENSE_STRUCTURE)]
    for row in sorted(chosen, key=lambda r: (exit_number(r) is None, exit_number(r) or 0)):
        scored, runner = _quality_of(str(row.get("variant")), quality)
        if scored is not None:
            runners.add(runner)
        points.append({"exit": exit_number(row), "variant": str(row.get("variant")),
                       "cycles": as_number(row.get("cycles_total")),
                       **{m: as_number(scored.value(m)) if scored else math.nan for m, _ in METRICS}})
    runner = next((r for r in RUNNER_ORDER if r in runners), "")
    return points, SYSTEM_LABELS.get(runner, runner) + (" (mixed runners)" if len(runners) > 1 else "")


def _reference(quality_rows: Iterable, metric: str) -> float:
    values = {as_number(q.value(metric)) for q in typed_quality_rows(list(quality_rows)) if q.system == "noisy"}
    values = {v for v in values if not math.isnan(v)}
    return values.pop() if len(values) == 1 else math.nan


def exit_figure(rows: list[dict], quality_rows: Iterable = ()):
    """The figure (see the module docstring); metrics without any score are left out."""
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    quality_rows = list(quality_rows)
    target = exit_target(rows)
    points, runner = exit_points(rows, quality_rows, target)
    exits = [p for p in points if p["exit"] is not None]
    joint = [p for p in points if p["exit"] is None]
    metrics = [(m, label) for m, label in METRICS if any(not math.isnan(p[m]) for p in points)] or list(METRICS[:1])
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.3 * len(metrics) + 0.6, 3.9), squeeze=False)
    for ax, (metric, label) in zip(axes[0], metrics):
        shown = [p for p in exits if not (math.isnan(p["cycles"]) or math.isnan(p[metric]))]
        ax.plot([p["cycles"] for p in shown], [p[metric] for p in shown], "-o", color="tab:blue", markersize=6,
                zorder=3, label="exits, in order")
        for p in shown:
            ax.annotate(f"exit {p['exit']}", (p["cycles"], p[metric]), textcoords="offset points", xytext=(-8, 8),
                        fontsize=8)
        if shown:
            full = shown[-1]
            ax.plot([full["cycles"]], [full[metric]], "*", color="tab:red", markersize=15, zorder=4,
                    label=f"full model (exit {full['exit']})")
        for p in joint:
            if not (math.isnan(p["cycles"]) or math.isnan(p[metric])):
                ax.plot([p["cycles"]], [p[metric]], "s", markerfacecolor="white", markeredgecolor="0.3",
                        markersize=7, zorder=3, label=f"joint model, every head out ({p['variant']})")
        reference = _reference(quality_rows, metric)
        if not math.isnan(reference):
            ax.axhline(reference, linestyle="--", color="0.45", linewidth=1.2, zorder=1, label="unprocessed input")
            ax.annotate(f"unprocessed {reference:.2f}", (0.01, reference), xycoords=("axes fraction", "data"),
                        textcoords="offset points", xytext=(0, 3), fontsize=7, color="0.35")
        if not shown:
            ax.text(0.5, 0.5, "no exit with cycles and this score", transform=ax.transAxes, ha="center",
                    color="0.4", fontsize=8)
        ax.set_xlabel(f"cycles per inference, {target}", fontsize=9)
        ax.set_ylabel(f"{label}, {runner}" if runner else label, fontsize=9)
        ax.xaxis.set_major_locator(MaxNLocator(nbins=5))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v / 1000:,.0f}k"))
        ax.tick_params(labelsize=8)
        ax.margins(x=0.12, y=0.15)
        ax.grid(True, alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(handles), fontsize=8, frameon=False)
    fig.suptitle("Quality against cycles per exit", fontsize=11)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    return fig


def exit_caption(rows: list[dict], quality_rows: Iterable = ()) -> str:
    target = exit_target(rows)
    _, runner = exit_points(rows, quality_rows, target)
    return (f"Each exit is its own deployable model (the trunk up to the exit and its head); Vela's cycles on "
            f"{target}, quality as {runner or 'no runner'} scores it on the test files. The star is the deepest "
            "exit, the square the joint model with every head as an output, the dashed line the unprocessed "
            "input.")
