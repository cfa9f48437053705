"""The report's quality-predictor section (issue 17): per variant, the predictor's score against the teacher's.

Only on the page of an experiment that names a predictor (`evaluate.quality_predictor`): rows without
`pred_*` columns give no section, so other pages keep their bytes. One point per variant as it ships (its TFLite
Micro row), measured (PESQ-WB, DNSMOS OVRL over the test files) on x and predicted on y; the references
(unprocessed, RNNoise) drawn apart. The caption gives the Spearman correlation over the variants (does the
predictor rank them as the teacher does?) and with the references added.
"""

from __future__ import annotations

import html
import math
from typing import Iterable

from sepipe.report.plots import _pyplot, as_number, png_base64
from sepipe.report.rows import SHIPPED_RUNNER, Row, as_dicts, quality_rows

METRICS = (("pesq", "PESQ-WB"), ("dnsmos_ovrl", "DNSMOS OVRL"))


def _points(rows: list[dict], key: str) -> list[tuple[str, float, float]]:
    """(name, measured, predicted) of each row with both values."""
    points = []
    for row in rows:
        measured, predicted = as_number(row.get(key)), as_number(row.get(f"pred_{key}"))
        if not (math.isnan(measured) or math.isnan(predicted)):
            points.append((str(row["name"]), measured, predicted))
    return points


def split_rows(rows: Iterable[Row]) -> tuple[list[dict], list[dict]]:
    """(the variants' shipped rows, the references' rows), each a rendered row with a `name`."""
    rendered = as_dicts(rows)
    variants, references = [], []
    for row, typed in zip(rendered, quality_rows(rendered)):
        if typed.variant is None:
            references.append({**row, "name": typed.system_label})
        elif typed.system == SHIPPED_RUNNER:
            variants.append({**row, "name": typed.variant})
    return variants, references


def rank_agreement(points: list[tuple[str, float, float]]) -> float:
    """Spearman correlation of predicted against measured over the points (NaN under two points or a constant)."""
    from sepipe.quality_predictor.evaluate import spearman

    return spearman([p[2] for p in points], [p[1] for p in points])


def _figure(variants: list[dict], references: list[dict]):
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(METRICS), figsize=(4.2 * len(METRICS), 3.8))
    for ax, (key, label) in zip(axes, METRICS):
        shown = [(p, "tab:blue", "o") for p in _points(variants, key)] + \
                [(p, "0.45", "s") for p in _points(references, key)]
        for (name, x, y), colour, marker in shown:
            ax.scatter([x], [y], color=colour, marker=marker, s=28, zorder=3)
            ax.annotate(name, (x, y), textcoords="offset points", xytext=(4, 3), fontsize=7)
        values = [v for (_, x, y), _, _ in shown for v in (x, y)]
        if values:
            low, high = min(values), max(values)
            pad = 0.05 * (high - low or 1.0)
            ax.plot([low - pad, high + pad], [low - pad, high + pad], ls="--", color="0.7", lw=1, zorder=1)
        ax.set_xlabel(f"measured {label} (teacher)")
        ax.set_ylabel(f"predicted {label}")
        ax.grid(True, alpha=0.3)
    fig.tight_layout()
    return fig


def _spearman_text(points: list) -> str:
    value = rank_agreement(points)
    return f"{value:.2f}" if not math.isnan(value) else "undefined"


def render_predicted_section(rows: Iterable[Row]) -> str:
    """The section's HTML ('' when no row holds a predicted score)."""
    variants, references = split_rows(rows)
    if not any(_points(variants + references, key) for key, _ in METRICS):
        return ""
    figure = png_base64(_figure(variants, references))
    parts = []
    for key, label in METRICS:
        ranked = _points(variants, key)
        parts.append(f"{label}: Spearman {_spearman_text(ranked)} over the {len(ranked)} variants, "
                     f"{_spearman_text(ranked + _points(references, key))} with the references")
    caption = ("Predicted against measured, per variant as int8 TFLite Micro runs it (blue) and for the references "
               "(grey squares); dashed: predicted = measured. " + "; ".join(parts) + ".")
    return ("<h2>Quality predictor against the teacher</h2>\n"
            f'<img src="data:image/png;base64,{figure}" alt="predicted against measured PESQ and OVRL">\n'
            f'<p class="caption">{html.escape(caption)}</p>\n')
