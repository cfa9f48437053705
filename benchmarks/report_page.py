"""The report page in a real browser: its size, and whether every player and image works in headless Chromium.

Builds a run's HTML page from what the run folder already holds (the report CSV, the quality CSV, the
evaluation's kept audio and a Vela per-layer CSV), the way the report stage does, into --out (the run
folder is not touched), or checks an existing page (--page). Then loads it in headless Chromium
(Debian's `chromium` + `chromium-driver`, driven by selenium), takes a full-page screenshot and checks:

- every <audio> has a source the browser can play (canPlayType not empty) and, once loaded, metadata
  (readyState >= 1), a duration > 0 and no error;
- every <img> is decoded (complete, naturalWidth > 0).

    .venv/bin/python benchmarks/report_page.py /work/main/runs/demo_s0 --out /tmp/demo_s0_report.html
    .venv/bin/python benchmarks/report_page.py --page runs/demo/report/demo_report.html

Prints one JSON object (page bytes, listen-section bytes, players, images, failures, screenshot path);
exit 1 when a check fails, 2 when there is no browser. tests/test_report_browser.py uses `check_page`.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import sys
from pathlib import Path

# Waits for every player's metadata (or its error) and every image's decode, then describes them.
CHECK_SCRIPT = """
const done = arguments[arguments.length - 1];
const audios = [...document.querySelectorAll('audio')];
const settle = a => new Promise(resolve => {
  // NETWORK_NO_SOURCE (3): every <source> failed, which sets no a.error and fires no event on <audio>
  if (a.readyState >= 1 || a.error || a.networkState === 3) return resolve();
  a.addEventListener('loadedmetadata', resolve, {once: true});
  a.addEventListener('error', resolve, {once: true});
  a.querySelectorAll('source').forEach(s => s.addEventListener('error', resolve, {once: true}));
  setTimeout(resolve, 10000);
});
const decoded = i => (i.decode ? i.decode() : Promise.resolve()).catch(() => null);
Promise.all([...audios.map(settle), ...[...document.images].map(decoded)]).then(() => done({
  audio: audios.map(a => {
    const type = (a.querySelector('source') || {}).type || '';
    return {type: type, can_play: type ? a.canPlayType(type) : '', ready_state: a.readyState,
            duration: a.duration, error: a.error ? a.error.code : null, network_state: a.networkState,
            src_scheme: (a.currentSrc || '').slice(0, 20)};
  }),
  images: [...document.images].map(i => ({alt: i.alt, complete: i.complete, natural_width: i.naturalWidth})),
  height: document.documentElement.scrollHeight,
}));
"""


def find_browser() -> tuple[str, str] | None:
    """(chromium, chromedriver) paths, or None when either is missing."""
    browser = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)),
                   None)
    driver = shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


def failures(result: dict) -> list[str]:
    """What is wrong with the page, one line per player or image; empty when every check passes."""
    bad = []
    for index, audio in enumerate(result["audio"]):
        duration = audio["duration"]
        if not audio["can_play"] or audio["ready_state"] < 1 or audio["error"] is not None \
                or not isinstance(duration, (int, float)) or not duration > 0:
            bad.append(f"audio {index}: {audio}")
    bad += [f"image {i} ({img['alt']}): not decoded" for i, img in enumerate(result["images"])
            if not (img["complete"] and img["natural_width"] > 0)]
    return bad


def check_page(page: Path, screenshot: Path, browser: tuple[str, str] | None = None) -> dict:
    """Load `page` in headless Chromium, screenshot it whole to `screenshot`, return what CHECK_SCRIPT saw."""
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    chromium, chromedriver = browser or find_browser() or (None, None)
    options = Options()
    options.binary_location = chromium
    # --no-sandbox: the sandbox needs user namespaces, which CI containers (and root) do not have
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--autoplay-policy=no-user-gesture-required", "--window-size=1280,900"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(chromedriver))
    try:
        driver.set_script_timeout(60)
        driver.get(Path(page).resolve().as_uri())
        result = driver.execute_async_script(CHECK_SCRIPT)
        driver.set_window_size(1280, min(int(result["height"]) + 100, 16000))
        driver.save_screenshot(str(screenshot))
    finally:
        driver.quit()
    return result


def build_page(run_dir: Path, out: Path) -> Path:
    """The run's page with its listening section, from the files the run folder holds."""
    import soundfile as sf

    from sepipe.report.listen import kept_files, render_listen_section, systems_of
    from sepipe.report.page import write_html_report

    report_csv = next(iter(sorted((run_dir / "report").glob("*_report.csv"))), None)
    if report_csv is None:
        raise SystemExit(f"{run_dir}: no report/*_report.csv; run the experiment first")
    name = report_csv.name[:-len("_report.csv")]
    rows = list(csv.DictReader(report_csv.open()))
    quality = list(csv.DictReader((run_dir / "evaluate" / f"{name}_quality.csv").open()))
    audio_dir = run_dir / "evaluate" / "audio"
    clean = sorted((audio_dir / "clean").glob("*.wav"))
    per_file = json.loads((run_dir / "evaluate" / "references_per_file.json").read_text())
    files = kept_files(per_file, len(clean))
    rate = sf.info(str(clean[0])).samplerate if clean else 16000
    per_layer = next(iter(sorted((run_dir / "compile").glob("*_per-layer.csv"))), None)
    listen = render_listen_section(audio_dir, files, systems_of(quality), rate)
    return write_html_report(rows, out, f"{name}: quality and deployment", per_layer_csv=per_layer,
                             per_layer_label=per_layer.stem if per_layer else "", quality_rows=quality,
                             listen_html=listen)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", nargs="?", type=Path, help="a run folder whose evaluation kept audio")
    parser.add_argument("--out", type=Path, help="where the built page goes (default /tmp/<run>_report.html)")
    parser.add_argument("--page", type=Path, help="check this page instead of building one")
    parser.add_argument("--screenshot", type=Path, help="PNG of the whole page (default: beside the page)")
    args = parser.parse_args(argv)
    if args.page is None and args.run_dir is None:
        parser.error("give a run folder or --page")
    page = args.page or build_page(args.run_dir, args.out or Path("/tmp") / f"{args.run_dir.name}_report.html")
    browser = find_browser()
    if browser is None:
        print("no headless browser: install Debian's chromium and chromium-driver (make browser)", file=sys.stderr)
        return 2
    text = page.read_text(encoding="utf-8")
    listen = text[text.find("<h2>Listen</h2>"):text.find("<h2>Deployment</h2>")] if "<h2>Listen</h2>" in text else ""
    screenshot = args.screenshot or page.with_suffix(".png")
    result = check_page(page, screenshot, browser)
    bad = failures(result)
    print(json.dumps({"page": str(page), "page_bytes": page.stat().st_size, "listen_bytes": len(listen.encode()),
                      "players": len(result["audio"]), "images": len(result["images"]),
                      "players_ok": len(result["audio"]) - sum(f.startswith("audio") for f in bad),
                      "images_ok": len(result["images"]) - sum(f.startswith("image") for f in bad),
                      "failures": bad, "screenshot": str(screenshot)}, indent=1))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
