"""The experiment's HTML page: Pareto fronts, self-containment, missing values, a real Vela per-layer CSV."""

from __future__ import annotations

import base64
import math
import re
from pathlib import Path

import pytest

from sepipe.errors import InputFileError
from sepipe.report.page import render_html, write_html_report
from sepipe.report.plots import pareto_front, read_per_layer_csv

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
TARGETS = (("ethos-u55-128", "H128", 35.4, 0.0), ("ethos-u65-256", "Y256", 0.0, 35.9))
QUALITY = [
    {"system": "unprocessed", "variant": "-", "files": 8, "si_sdr": 5.1, "pesq": 1.4, "stoi": 0.78},
    {"system": "RNNoise (pyrnnoise)", "variant": "-", "files": 8, "si_sdr": 7.3, "pesq": 1.7, "stoi": 0.80},
    {"system": "float32 Keras", "variant": "ptq", "files": 8, "si_sdr": 10.1, "si_sdr_gain_db": 5.0},
    {"system": "int8 TFLite Micro", "variant": "ptq", "files": 8, "si_sdr": 9.8, "si_sdr_vs_float_db": -0.3},
]


def deployment_row(variant: str, target: str, target_id: str, flash_kib: float, dram_kib: float,
                   cycles: float = 35048, si_sdr: float = 9.8, **extra) -> dict:
    return {"experiment": "demo", "variant": variant, "model": "gru-2x24", "target": target,
            "target_id": target_id, "accelerator": target, "params": 25728, "nonzero_weights": 25728,
            "tflite_bytes": 41000, "encoded_weights_bytes": 28032, "flash_kib": flash_kib, "sram_kib": 0.5,
            "dram_kib": dram_kib, "cycles_total": cycles, "inference_ms": cycles / 5e5, "hop_fraction": 0.007,
            "nn_macs": 25728, "mac_utilisation_pct": 0.57, "npu_op_share": 1.0, "si_sdr": si_sdr,
            "si_sdr_vs_float_db": -0.3, "pesq": 2.1, "stoi": 0.86, "dnsmos_sig": 3.1, "dnsmos_bak": 3.5,
            "dnsmos_ovrl": 2.7, **extra}


def sweep_rows() -> list[dict]:
    variants = {"ptq": (1.0, 9.8), "prune50": (0.6, 9.5), "prune75": (0.35, 8.7)}
    return [deployment_row(v, t, i, flash * scale, dram * scale, cycles=35048 * scale, si_sdr=sd)
            for v, (scale, sd) in variants.items() for t, i, flash, dram in TARGETS]


def images(page: str) -> list[bytes]:
    return [base64.b64decode(b) for b in re.findall(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)]


# --------------------------------------------------------------------------- Pareto front

@pytest.mark.parametrize("points, front", [
    ([(10.0, 5.0)], [0]),                                            # a single point is its own front
    ([(10.0, 5.0), (20.0, 4.0)], [0]),                               # dearer and worse: dominated
    ([(10.0, 5.0), (20.0, 6.0), (15.0, 5.5)], [0, 1, 2]),            # a real trade-off
    ([(10.0, 5.0), (10.0, 6.0)], [1]),                               # same cost, better quality wins
    ([(10.0, 5.0), (12.0, 5.0)], [0]),                               # same quality, cheaper wins
    ([(10.0, 5.0), (10.0, 5.0), (20.0, 4.0)], [0, 1]),               # equal points both stay
    ([(10.0, math.nan), (20.0, 4.0), (None, 9.0)], [1]),             # missing values are no points
    ([], []),
])
def test_pareto_front_keeps_the_non_dominated_points(points, front):
    assert pareto_front(points) == front


def test_pareto_front_follows_the_directions_asked_for():
    points = [(1.0, 1.0), (2.0, 2.0)]
    assert pareto_front(points) == [0, 1]
    assert pareto_front(points, minimise_x=False) == [1]
    assert pareto_front(points, maximise_y=False) == [0]


# --------------------------------------------------------------------------- the page

def test_page_is_self_contained_with_one_png_per_plot(tmp_path):
    out = write_html_report(sweep_rows(), tmp_path / "report.html", "demo <sweep>",
                            notes=["first note", "a <b>note</b> with markup"], quality_rows=QUALITY)
    page = out.read_text()
    assert out == tmp_path / "report.html"
    assert not re.search(r'(src|href)\s*=\s*["\']?\s*(https?:)?//', page, re.IGNORECASE)
    assert "<script" not in page and "<link" not in page and "@import" not in page
    pngs = images(page)
    assert len(pngs) == 2                       # cycles and memory; no per-layer CSV given
    assert all(png.startswith(PNG_SIGNATURE) for png in pngs)
    assert "demo &lt;sweep&gt;" in page and "a &lt;b&gt;note&lt;/b&gt; with markup" in page
    assert not list(tmp_path.glob(".tmp-*"))   # written atomically, nothing left beside it


def test_page_names_every_variant_target_and_system(tmp_path):
    page = render_html(sweep_rows(), "demo", quality_rows=QUALITY)
    for name in ("ptq", "prune50", "prune75", "ethos-u55-128", "ethos-u65-256", "H128", "Y256",
                 "unprocessed", "RNNoise (pyrnnoise)", "float32 Keras", "int8 TFLite Micro"):
        assert name in page


def test_single_variant_is_the_front_of_each_target():
    rows = [deployment_row("ptq", t, i, flash, dram) for t, i, flash, dram in TARGETS]
    page = render_html(rows, "one variant", quality_rows=QUALITY)
    assert len(images(page)) == 2
    assert page.count('<td class="front">ptq</td>') == len(TARGETS)


def test_missing_and_nan_values_show_a_dash_and_leave_the_plots_alone():
    rows = sweep_rows()
    rows[0].update(si_sdr=math.nan, pesq=None, flash_kib="")    # as read back from a CSV
    del rows[1]["cycles_total"]
    rows.append({"variant": "bare", "target": "ethos-u85-256"})  # nothing to plot at all
    rows.append({"variant": "strings", "target": "ethos-u55-128", "target_id": "H128",
                 "cycles_total": "20000", "flash_kib": "12.5", "si_sdr": "nan"})
    page = render_html(rows, "gaps", quality_rows=[{"system": "unprocessed", "si_sdr": math.nan}])
    assert len(images(page)) == 2
    assert ">-</td>" in page and ">nan<" not in page.lower()
    assert "bare" in page and "ethos-u85-256" in page


def test_page_without_any_rows_still_renders():
    page = render_html([], "empty")
    assert "No evaluation rows" in page and "Deployment" not in page
    assert len(images(page)) == 0


def test_a_page_without_deployment_rows_has_no_deployment_section_and_no_empty_plots():
    """A corpus evaluation (sepipe evaluate --model) has quality rows but no Vela figures."""
    page = render_html([], "corpus", quality_rows=[{"system": "unprocessed", "si_sdr": 3.0},
                                                   {"variant": "ptq", "system": "int8 TFLite Micro", "si_sdr": 9.0}])
    assert "<h2>Audio quality</h2>" in page and "int8 TFLite Micro" in page
    for heading in ("Deployment", "SI-SDR against cycles", "SI-SDR against memory", "sparsity structure"):
        assert heading not in page
    assert images(page) == [] and "No deployment rows" not in page


# --------------------------------------------------------------------------- per-layer cycles (real Vela)

@pytest.fixture(scope="module")
def per_layer_csv(untrained_tflites, tmp_path_factory) -> Path:
    """Vela's per-layer CSV of the tiny int8 GRU of test_compile, compiled for ethos-u55-128."""
    from sepipe.deploy.compile import compile_model

    result = compile_model(untrained_tflites["int8"], "ethos-u55-128", tmp_path_factory.mktemp("vela"), "demo_ptq")
    return result.per_layer_csv


@pytest.mark.slow
def test_per_layer_plot_from_a_real_vela_csv(tmp_path, per_layer_csv):
    layers = read_per_layer_csv(per_layer_csv)
    out = write_html_report(sweep_rows(), tmp_path / "report.html", "demo", per_layer_csv=per_layer_csv,
                            per_layer_label="ptq on ethos-u55-128 (H128)", quality_rows=QUALITY)
    page = out.read_text()
    pngs = images(page)
    assert len(pngs) == 3 and all(png.startswith(PNG_SIGNATURE) for png in pngs)
    assert "Cycles per layer: ptq on ethos-u55-128 (H128)" in page
    assert per_layer_csv.name in page
    assert any(float(row["Op Cycles"]) > 0 for row in layers)


def test_per_layer_csv_that_is_missing_or_foreign_is_an_input_error(tmp_path):
    with pytest.raises(InputFileError, match="not found"):
        render_html(sweep_rows(), "demo", per_layer_csv=tmp_path / "absent.csv")
    foreign = tmp_path / "foreign.csv"
    foreign.write_text("a,b\n1,2\n")
    with pytest.raises(InputFileError, match="Op Cycles"):
        render_html(sweep_rows(), "demo", per_layer_csv=foreign)


def test_sweep_with_structures_gets_the_per_structure_pareto_plot(tmp_path):
    structure = {"ptq": "dense", "prune50": "weight", "prune75": "unit"}
    rows = [dict(row, structure=structure[row["variant"]]) for row in sweep_rows()]
    page = render_html(rows, "sweep", quality_rows=QUALITY)
    assert "Which sparsity structure pays where" in page
    assert len(images(page)) == 3               # cycles, memory, and one figure per structure
    assert ">weight<" in page and ">unit<" in page  # the structure column in the tables
    # without a dense row (nothing to measure the gains against) there is no structure plot
    no_dense = [row for row in rows if row["structure"] != "dense"]
    assert "Which sparsity structure pays where" not in render_html(no_dense, "sweep", quality_rows=QUALITY)


def test_a_sweep_without_a_float_runner_still_renders_its_structure_plot():
    # evaluate.interpreters: [tflite] gives no SI-SDR vs float: no point to place on the log axes
    structure = {"ptq": "dense", "prune50": "weight", "prune75": "unit"}
    rows = [dict(row, structure=structure[row["variant"]], si_sdr_vs_float_db=float("nan")) for row in sweep_rows()]
    page = render_html(rows, "sweep", quality_rows=QUALITY)
    assert "Which sparsity structure pays where" in page and len(images(page)) == 3
