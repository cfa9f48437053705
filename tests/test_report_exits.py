"""The report's per-exit plot (issue 16): quality against cycles through a multi-exit model's exits, only on a
page whose variants include kind `exit`."""

from __future__ import annotations

import math

import pytest

from sepipe.report.exit_plot import exit_figure, exit_points, exit_target, has_exits
from sepipe.report.page import render_html

from test_html_report import QUALITY, deployment_row, images, sweep_rows

CYCLES = {"exit1": 71_648, "exit2": 178_000, "exit3": 284_288, "exit4": 366_368, "ptq": 473_744}
SI_SDR = {"exit1": 13.29, "exit2": 14.10, "exit3": 14.26, "exit4": 14.30, "ptq": 14.30}


def exit_rows(targets=(("ethos-u65-256", "Y256"), ("ethos-u55-128", "H128"))) -> list[dict]:
    """Exit variants listed out of order (exit 3 first), on two targets; the u55-128 cycles are CYCLES."""
    rows = []
    for target, target_id in targets:
        scale = 1.0 if target == "ethos-u55-128" else 0.3
        for variant in ("ptq", "exit3", "exit1", "exit4", "exit2"):
            structure = "dense" if variant == "ptq" else f"exit {variant[4:]}"
            rows.append(deployment_row(variant, target, target_id, 100.0, 0.0, cycles=CYCLES[variant] * scale,
                                       si_sdr=math.nan, structure=structure, pesq=math.nan))
    return rows


def exit_quality() -> list[dict]:
    """Only the TFLite interpreter evaluated (as the demo runs do), exit 2 also in TFLite Micro."""
    rows = [{"system": "unprocessed", "variant": "-", "files": 16, "si_sdr": 9.93, "pesq": 1.54, "dnsmos_ovrl": 1.99}]
    for variant, value in SI_SDR.items():
        rows.append({"system": "int8 TFLite", "variant": variant, "files": 16, "si_sdr": value, "pesq": 2.0,
                     "dnsmos_ovrl": 2.3})
    rows.append({"system": "int8 TFLite Micro", "variant": "exit2", "files": 16, "si_sdr": 14.05, "pesq": 2.1,
                 "dnsmos_ovrl": 2.35})
    return rows


def test_points_follow_the_exits_in_order_on_u55_128_with_the_joint_model_last():
    rows = exit_rows()
    assert has_exits(rows) and not has_exits(sweep_rows())
    assert exit_target(rows) == "ethos-u55-128"
    points, runner = exit_points(rows, exit_quality(), "ethos-u55-128")
    assert [p["exit"] for p in points] == [1, 2, 3, 4, None] and points[-1]["variant"] == "ptq"
    assert [p["cycles"] for p in points] == [CYCLES[f"exit{n}"] for n in range(1, 5)] + [CYCLES["ptq"]]
    # TFLite Micro where evaluated (exit 2), the TFLite interpreter elsewhere: the label says both were used
    assert [p["si_sdr"] for p in points] == [13.29, 14.05, 14.26, 14.30, 14.30]
    assert runner == "int8 TFLite Micro (mixed runners)"


def test_the_figure_draws_a_line_through_the_exits_the_full_model_and_the_unprocessed_reference():
    fig = exit_figure(exit_rows(), exit_quality())
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_ylabel().split(",")[0] for ax in axes] == ["SI-SDR (dB)", "PESQ (wide band)", "DNSMOS OVRL"]
    si_sdr = axes[0]
    line = next(l for l in si_sdr.lines if l.get_label() == "exits, in order")
    assert list(line.get_xdata()) == [CYCLES[f"exit{n}"] for n in range(1, 5)]
    star = next(l for l in si_sdr.lines if l.get_label().startswith("full model"))
    assert star.get_label() == "full model (exit 4)" and list(star.get_xdata()) == [CYCLES["exit4"]]
    reference = next(l for l in si_sdr.lines if l.get_label() == "unprocessed input")
    assert list(reference.get_ydata()) == [9.93, 9.93]
    assert "ethos-u55-128" in si_sdr.get_xlabel()


def test_dnsmos_is_left_out_when_not_evaluated():
    quality = [{k: v for k, v in row.items() if k != "dnsmos_ovrl"} for row in exit_quality()]
    fig = exit_figure(exit_rows(), quality)
    assert [ax.get_ylabel().split(",")[0] for ax in fig.axes] == ["SI-SDR (dB)", "PESQ (wide band)"]


def test_the_page_has_the_exit_plot_only_for_a_run_with_exits():
    with_exits = render_html(exit_rows(), "ee", quality_rows=exit_quality())
    without = render_html(sweep_rows(), "sweep", quality_rows=QUALITY)
    assert "<h2>Quality against cycles per exit</h2>" in with_exits
    assert "Quality against cycles per exit" not in without
    section = with_exits.split("<h2>Quality against cycles per exit</h2>", 1)[1]
    assert len(images(section)) == 1 and "cycles on ethos-u55-128" in section


def test_exits_compiled_for_another_target_only_use_that_target():
    rows = exit_rows(targets=(("ethos-u85-256", "Z256"),))
    assert exit_target(rows) == "ethos-u85-256"
    assert "ethos-u85-256" in exit_figure(rows, exit_quality()).axes[0].get_xlabel()


def test_the_exit_page_renders_in_headless_chromium(tmp_path):
    """Every image of a page with exits decodes in a real browser (skipped without one, as the browser test)."""
    from sepipe.report.page import write_html_report
    from test_report_browser import BROWSER, MISSING, report_page

    if MISSING is not None:
        pytest.skip(f"no headless browser: {MISSING}")
    page = write_html_report(exit_rows(), tmp_path / "ee_report.html", "ee", quality_rows=exit_quality())
    result = report_page.check_page(page, tmp_path / "page.png", BROWSER)
    assert report_page.failures(result) == []
    # SI-SDR against cycles and memory, the per-structure plot (dense + exits), the per-exit plot
    assert len(result["images"]) == 4
