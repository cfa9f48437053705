import json
import math
import re
from pathlib import Path

import pytest

from sepipe.compile import write_records_csv
from sepipe.html_report import render_html
from sepipe.report import (DEPLOYMENT_COLUMNS, DISPLAY_COLUMNS, deployment_rows, headline_figures, headline_lines,
                           markdown_table, write_tables)
from tests import report_inputs as ri

GOLDEN = Path(__file__).parent / "golden" / "report"


def _row(variant, target, params, cycles, flash_kib, loss_db):
    return {"variant": variant, "target": target, "params": params, "cycles_total": cycles,
            "flash_kib": flash_kib, "dram_memory_used_kib": 0.0, "si_sdr_vs_float_db": loss_db}


def test_headlines_pick_the_best_variant_within_each_loss_limit():
    rows = [_row("ptq", "u55", 1000, 1000.0, 1.0, -0.02),
            _row("w80", "u55", 1000, 400.0, 0.25, -0.08),     # 4000 B / 256 B = 15.6x, 2.5x faster
            _row("w95", "u55", 1000, 200.0, 0.1, -0.4),       # too lossy for memory, fine for speed
            _row("w99", "u55", 1000, 100.0, 0.05, -2.0)]      # too lossy for both
    memory, speed = headline_figures(rows)
    assert (memory["variant"], round(memory["value"], 1)) == ("w80", 15.6)
    assert (speed["variant"], speed["value"]) == ("w95", 5.0)
    assert len(headline_lines([memory, speed])) == 3


def test_headlines_say_when_no_variant_keeps_the_quality():
    memory, speed = headline_figures([_row("ptq", "u55", 10, 50.0, 1.0, -1.0)])
    assert memory["variant"] == "-" and math.isnan(memory["value"])
    assert "no variant within 0.1 dB" in headline_lines([memory, speed])[1]


# --------------------------------------------------------------------------- outputs of an existing run

def _sweep_rows(quality):
    rows = []
    for variant, (structure, label, _, _, tflite_bytes, *_) in ri.VARIANTS.items():
        rows += deployment_rows("demo", variant, label, ri.model_stats(variant), tflite_bytes, quality,
                                ri.records(variant), ri.HOP_MS, structure)
    return rows


def _without_images(page: str) -> str:
    return re.sub(r'base64,[A-Za-z0-9+/=]+"', 'base64,PNG"', page)


def test_tables_of_an_existing_run_are_byte_identical(tmp_path):
    """CSV, Markdown and HTML made from fixed records and quality rows equal what the report code wrote
    before its rows were typed (tests/golden/report, captured from hand-made dict rows)."""
    quality = ri.quality_rows()
    write_tables(quality, tmp_path, "demo_quality", ["a quality note"])
    rows = _sweep_rows(quality)
    notes = ["Quality columns: a note.", ""] + headline_lines(headline_figures(rows))
    write_tables(rows, tmp_path, "demo_report", notes, columns=DEPLOYMENT_COLUMNS)
    write_records_csv(ri.records("ptq") + ri.records("w80"), tmp_path / "demo_vela_records.csv")
    per_layer = tmp_path / "demo_ptq_vela_H128_per-layer.csv"
    per_layer.write_text(ri.PER_LAYER_CSV)
    page = render_html(rows, "demo: quality and deployment", per_layer_csv=per_layer,
                       per_layer_label="ptq on ethos-u55-128", notes=notes, quality_rows=quality)
    (tmp_path / "demo_report.html").write_text(_without_images(page))
    (tmp_path / "cli_quality.md").write_text(markdown_table(quality, DISPLAY_COLUMNS))
    for name in ("demo_quality.csv", "demo_quality.md", "demo_report.csv", "demo_report.md",
                 "demo_vela_records.csv", "demo_report.html", "cli_quality.md"):
        assert (tmp_path / name).read_bytes() == (GOLDEN / name).read_bytes(), name
    assert page.count("data:image/png;base64,") == 4
