"""The report page in a real browser (headless Chromium): every player plays, every image decodes.

Needs Debian's `chromium` and `chromium-driver` (`make browser`, part of `make test`'s set-up) and
selenium (the test extra); skipped, saying which is missing, only when one is not installed.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

import report_inputs as ri
from sepipe.report.listen import render_listen_section
from sepipe.report.page import write_html_report

ROOT = Path(__file__).resolve().parents[1]
FILES = ["mix_0001", "mix_0002"]


def _check_module():
    # benchmarks/ is no package; its script holds the check the benchmark runs on a real run's page
    spec = importlib.util.spec_from_file_location("report_page", ROOT / "benchmarks" / "report_page.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


report_page = _check_module()
BROWSER = report_page.find_browser()
try:
    import selenium  # noqa: F401
    MISSING = None if BROWSER else "chromium or chromedriver not on PATH (make browser installs Debian's packages)"
except ImportError:
    MISSING = "selenium is not installed (pip install -e '.[test]')"

pytestmark = pytest.mark.skipif(MISSING is not None, reason=f"no headless browser: {MISSING}")


def test_players_play_and_images_decode_in_headless_chromium(tmp_path):
    quality = ri.quality_rows()
    rows = ri.deployment_dicts(quality)
    audio_dir = tmp_path / "audio"
    systems = ri.write_kept_audio(audio_dir, FILES, seconds=1.5)
    per_layer = tmp_path / "per-layer.csv"
    per_layer.write_text(ri.PER_LAYER_CSV)
    page = write_html_report(rows, tmp_path / "demo_report.html", "demo", per_layer_csv=per_layer,
                             per_layer_label="ptq on ethos-u55-128", quality_rows=quality,
                             listen_html=render_listen_section(audio_dir, FILES, systems, 16000))
    screenshot = tmp_path / "page.png"

    result = report_page.check_page(page, screenshot, BROWSER)

    assert report_page.failures(result) == []
    assert len(result["audio"]) == len(FILES) * len(systems)
    assert {a["can_play"] for a in result["audio"]} <= {"probably", "maybe"}
    assert all(abs(a["duration"] - 1.5) < 0.01 for a in result["audio"])
    # the spectrograms plus the report's plots (two trade-offs, per-structure, per-layer cycles)
    assert len(result["images"]) == len(FILES) * len(systems) + 4
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_broken_source_is_reported(tmp_path):
    """The check fails loudly on a player the browser cannot play (so a pass above means something)."""
    page = tmp_path / "broken.html"
    page.write_text('<!DOCTYPE html><html><body><audio controls preload="metadata">'
                    '<source src="data:audio/flac;base64,AAAA" type="audio/flac"></audio>'
                    '<img src="data:image/webp;base64,AAAA" alt="bad"></body></html>')
    bad = report_page.failures(report_page.check_page(page, tmp_path / "broken.png", BROWSER))
    assert len(bad) == 2 and bad[0].startswith("audio 0") and bad[1].startswith("image 0 (bad)")
