"""Headline figures of a compression sweep: the reference work's two claims, recomputed from this
project's own rows.

Memory reduction (float32 dense bytes / bytes Vela stores the weights in) at an SI-SDR loss of at most
0.1 dB, and speed-up (dense int8 cycles / variant cycles) at a loss of at most 0.59 dB, against the
dense float model. The dense reference is the row of structure 'dense' (the variant of kind 'ptq'),
whatever the variant is named.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from sepipe.report.rows import DENSE_STRUCTURE, DeploymentRow

MEMORY_LOSS_LIMIT_DB = 0.1
SPEED_LOSS_LIMIT_DB = 0.59


@dataclass(frozen=True)
class _Point:
    """What the headline figures read of one deployment row (units: cycles, KiB, dB)."""

    variant: str
    target: str
    dense: bool
    params: float
    cycles_total: float
    weight_storage_kib: float     # flash, or DRAM where the target keeps its weights there
    si_sdr_vs_float_db: float


def _point(row: DeploymentRow | Mapping[str, Any]) -> _Point:
    if isinstance(row, DeploymentRow):
        return _Point(row.variant, row.target, row.is_dense, row.params, row.figures.cycles_total,
                      row.figures.weight_storage_kib, row.quality_value("si_sdr_vs_float_db"))
    # a rendered row (e.g. read back from a report CSV)
    return _Point(str(row["variant"]), str(row["target"]), row.get("structure") == DENSE_STRUCTURE,
                  float(row.get("params") or math.nan), float(row["cycles_total"]),
                  float(row.get("flash_kib") or row.get("dram_memory_used_kib") or math.nan),
                  float(row["si_sdr_vs_float_db"]))


def headline_figures(rows: Iterable[DeploymentRow | Mapping[str, Any]]) -> list[dict]:
    """Per target: the best memory reduction and speed-up whose SI-SDR loss stays within the limits."""
    points = [_point(row) for row in rows]
    dense = {p.target: p for p in points if p.dense}
    headlines = []
    for target, base in dense.items():
        float32_bytes = 4.0 * base.params
        candidates = [p for p in points if p.target == target and not math.isnan(p.si_sdr_vs_float_db)]
        for metric, limit, value_of in (
                ("memory reduction", MEMORY_LOSS_LIMIT_DB,
                 lambda p: float32_bytes / (1024.0 * p.weight_storage_kib) if p.weight_storage_kib else math.nan),
                ("speed-up", SPEED_LOSS_LIMIT_DB, lambda p: base.cycles_total / p.cycles_total)):
            allowed = [p for p in candidates if -p.si_sdr_vs_float_db <= limit]
            best = max(allowed, key=value_of, default=None)
            headlines.append({"target": target, "metric": metric, "loss_limit_db": limit,
                              "variant": best.variant if best else "-",
                              "value": value_of(best) if best else float("nan"),
                              "si_sdr_vs_float_db": best.si_sdr_vs_float_db if best else float("nan")})
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
