"""Report rows and tables: typed rows, joins on typed keys, headline figures, and the outputs of an
existing run byte for byte (tests/golden/report, captured before the rows became typed)."""

import dataclasses
import json
import math
import re
from pathlib import Path

import pytest

from sepipe.deploy.compile import compile_record
from sepipe.deploy.figures import RECORD_KEYS, CompileRecord, RecordError, VelaFigures, write_records_csv
from sepipe.deploy.vela import OpPlacement
from sepipe.report import (DEPLOYMENT_COLUMNS, DISPLAY_COLUMNS, QualityRow, build_deployment_rows,
                           headline_figures, headline_lines, markdown_table, write_tables)
from sepipe.report.page import render_html
from sepipe.targets import get_target
import report_inputs as ri

GOLDEN = Path(__file__).parent / "golden" / "report"


def sweep(quality, variants=ri.VARIANTS, names=None):
    """Typed deployment rows of the hand-made sweep; `names` renames variants (the records stay)."""
    rows = []
    for variant, (structure, label, params, nonzero, tflite_bytes, *_) in variants.items():
        name = (names or {}).get(variant, variant)
        rows += build_deployment_rows("demo", name, structure, label, params, nonzero, tflite_bytes, quality,
                                      ri.records(variant), ri.HOP_MS)
    return rows


def _without_images(page: str) -> str:
    return re.sub(r'base64,[A-Za-z0-9+/=]+"', 'base64,PNG"', page)


# --------------------------------------------------------------------------- outputs of an existing run

def test_tables_of_an_existing_run_are_byte_identical(tmp_path):
    """CSV, Markdown and HTML made from fixed records and quality rows equal what the report code wrote
    before its rows were typed."""
    quality = [QualityRow.from_dict(row) for row in ri.quality_rows()]
    write_tables(quality, tmp_path, "demo_quality", ["a quality note"])
    rows = sweep(quality)
    notes = ["Quality columns: a note.", ""] + headline_lines(headline_figures(rows))
    write_tables(rows, tmp_path, "demo_report", notes, columns=DEPLOYMENT_COLUMNS)
    write_records_csv([CompileRecord.from_record(r) for v in ("ptq", "w80") for r in ri.records(v)],
                      tmp_path / "demo_vela_records.csv")
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


def test_dict_rows_as_the_experiment_stage_passes_them_render_the_same(tmp_path):
    """Rows rendered as dicts (as a report CSV reads back) and dict quality rows give the same bytes as typed rows."""
    quality = ri.quality_rows()
    rows = ri.deployment_dicts(quality)
    assert rows == [row.to_dict() for row in sweep(quality)]
    notes = ["Quality columns: a note.", ""] + headline_lines(headline_figures(rows))
    write_tables(rows, tmp_path, "demo_report", notes, columns=DEPLOYMENT_COLUMNS)
    write_tables(quality, tmp_path, "demo_quality", ["a quality note"])
    for name in ("demo_report.csv", "demo_report.md", "demo_quality.csv", "demo_quality.md"):
        assert (tmp_path / name).read_bytes() == (GOLDEN / name).read_bytes(), name


@pytest.mark.parametrize("target", list(ri.TARGET_COLUMNS))
def test_compile_record_from_the_summary_csv_is_the_record_compile_wrote(tmp_path, target):
    source = tmp_path / "demo_ptq.tflite"
    source.write_bytes(b"TFL3 stand-in bytes")
    placement = [OpPlacement(f"op{i}", "FullyConnected", "FullyConnected", "NPU") for i in range(14)]
    compiled = compile_record("demo_ptq", source, get_target(target), ri.summary_csv_row(target, 1.0), placement,
                              "NPU operators = 14", 1.23449)
    record = compiled.to_record()
    record["source_tflite"] = "SOURCE"
    golden = GOLDEN / f"record_{get_target(target).id}.json"
    assert json.dumps(record, indent=1) + "\n" == golden.read_text()
    assert tuple(record) == RECORD_KEYS


# --------------------------------------------------------------------------- VelaFigures and CompileRecord

def test_compile_record_round_trips_through_json_and_csv_strings():
    record = ri.record("w80", "ethos-u65-256")
    assert CompileRecord.from_record(record).to_record() == record
    as_csv = {key: "" if value is None else str(value) for key, value in record.items()}
    parsed = CompileRecord.from_record(as_csv)
    assert parsed.to_record() == record and parsed.arena_cache_size == 393216
    figures = parsed.figures
    assert figures.flash_kib == 0.0 and figures.weight_storage_kib == record["dram_memory_used_kib"]
    assert figures.npu_op_share == 1.0 and isinstance(figures.cycles_total, int)


def test_figures_read_from_a_report_row_ignore_its_other_columns():
    (row,) = [r for r in sweep(ri.quality_rows()) if r.key == ("ptq", "ethos-u55-128")]
    assert VelaFigures.from_record(row.to_dict()) == row.figures


def test_record_without_a_figure_names_the_column():
    record = ri.record("ptq", "ethos-u55-128")
    del record["cycles_total"]
    with pytest.raises(RecordError, match=r"demo_ptq_record.json: compile record has no numeric 'cycles_total'"):
        CompileRecord.from_record(record, "demo_ptq_record.json")


def test_record_keys_match_the_target_columns():
    assert list(get_target("ethos-u55-128").columns()) == list(RECORD_KEYS[4:12])


# --------------------------------------------------------------------------- typed rows and joins

def test_quality_rows_keep_keys_and_make_labels_only_when_rendered():
    rows = [QualityRow.from_dict(row) for row in ri.quality_rows()]
    assert [r.system for r in rows[:5]] == ["noisy", "rnnoise", "float", "tflite", "tflm"]
    assert rows[0].variant is None and rows[2].variant == "ptq"
    # NaN != NaN, so compare the JSON text (keys in order, NaN spelled out)
    assert json.dumps([r.to_dict() for r in rows]) == json.dumps(ri.quality_rows())


def test_system_labels_are_the_ones_evaluation_writes():
    from sepipe.evaluate import SYSTEM_OF_REFERENCE, SYSTEM_OF_RUNNER
    from sepipe.report import SYSTEM_LABELS

    assert SYSTEM_LABELS == {**SYSTEM_OF_RUNNER, **SYSTEM_OF_REFERENCE}


def test_deployment_rows_join_quality_on_the_variant_and_the_shipped_runner():
    quality = [QualityRow.from_dict(row) for row in ri.quality_rows()]
    rows = sweep(quality)
    assert [r.key for r in rows][:2] == [("ptq", "ethos-u55-128"), ("ptq", "ethos-u65-256")]
    for row in rows:
        assert row.quality.system == "tflm" and row.quality.variant == row.variant
    # a row whose label reads like the shipped one but whose runner is another does not join
    impostor = [dataclasses.replace(q, system="tflite") if q.system == "tflm" and q.variant == "u50" else q
                for q in quality]
    assert all(r.quality is None for r in sweep(impostor) if r.variant == "u50")
    # no shipped row for a variant: its quality columns are NaN, not another runner's
    no_tflm = [q for q in quality if not (q.variant == "w80" and q.system == "tflm")]
    w80 = [r for r in sweep(no_tflm) if r.variant == "w80"]
    assert all(r.quality is None and math.isnan(r.to_dict()["si_sdr"]) for r in w80)


# --------------------------------------------------------------------------- headline figures

def _row(variant, target, params, cycles, flash_kib, loss_db, structure="weight"):
    return {"variant": variant, "target": target, "structure": structure, "params": params, "cycles_total": cycles,
            "flash_kib": flash_kib, "dram_memory_used_kib": 0.0, "si_sdr_vs_float_db": loss_db}


def test_headlines_pick_the_best_variant_within_each_loss_limit():
    rows = [_row("ptq", "u55", 1000, 1000.0, 1.0, -0.02, "dense"),
            _row("w80", "u55", 1000, 400.0, 0.25, -0.08),     # 4000 B / 256 B = 15.6x, 2.5x faster
            _row("w95", "u55", 1000, 200.0, 0.1, -0.4),       # too lossy for memory, fine for speed
            _row("w99", "u55", 1000, 100.0, 0.05, -2.0)]      # too lossy for both
    memory, speed = headline_figures(rows)
    assert (memory["variant"], round(memory["value"], 1)) == ("w80", 15.6)
    assert (speed["variant"], speed["value"]) == ("w95", 5.0)
    assert len(headline_lines([memory, speed])) == 3


def test_headlines_say_when_no_variant_keeps_the_quality():
    memory, speed = headline_figures([_row("ptq", "u55", 10, 50.0, 1.0, -1.0, "dense")])
    assert memory["variant"] == "-" and math.isnan(memory["value"])
    assert "no variant within 0.1 dB" in headline_lines([memory, speed])[1]


def test_dense_reference_is_the_dense_row_whatever_its_name():
    quality = ri.quality_rows()
    names = {"ptq": "baseline", "w80": "ptq"}       # a sparse variant *named* ptq must not be the reference
    renamed = [{**q, "variant": names.get(q["variant"], q["variant"])} for q in quality]
    expected = [dict(h, variant=names.get(h["variant"], h["variant"])) for h in headline_figures(sweep(quality))]
    got = headline_figures(sweep(renamed, names=names))
    assert got == expected and {h["variant"] for h in got} == {"ptq"}   # w80, renamed
    assert got == headline_figures([row.to_dict() for row in sweep(renamed, names=names)])
