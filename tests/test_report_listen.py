"""The report's Listen section: a lossless player and a spectrogram per (kept file, system), embedded, bounded."""

from __future__ import annotations

import base64
import io
import re

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

import report_inputs as ri
from sepipe.audio import read_wav, to_int16, write_wav
from sepipe.errors import InputFileError
from sepipe.report import listen
from sepipe.report.listen import (AUDIO_SECONDS_BUDGET, MAX_SECONDS, MIN_SECONDS, SPECTROGRAM_PX, input_files,
                                  kept_files, plan, render_listen_section, systems_of)
from sepipe.report.page import render_html, write_html_report

FILES = ["mix_0001", "mix_0002"]
AUDIO = re.compile(r'<source src="data:audio/flac;base64,([A-Za-z0-9+/=]+)" type="audio/flac">')
IMAGE = re.compile(r'<img src="data:image/webp;base64,([A-Za-z0-9+/=]+)"')


@pytest.fixture()
def kept(tmp_path):
    audio_dir = tmp_path / "evaluate" / "audio"
    return audio_dir, ri.write_kept_audio(audio_dir, FILES)


def test_systems_are_labelled_as_the_quality_table_does_clean_after_the_input():
    systems = systems_of(ri.quality_rows())
    assert systems[:3] == [("unprocessed", "unprocessed"), ("clean", "clean (target)"),
                           ("RNNoise (pyrnnoise)", "RNNoise (pyrnnoise)")]
    assert ("ptq/int8 TFLite Micro", "ptq · int8 TFLite Micro") in systems
    assert len(systems) == len(ri.quality_rows()) + 1
    # `sepipe evaluate` of a model alone (no 'unprocessed' row) still gets the clean target, first
    assert systems_of([{"variant": "m", "system": "int8 TFLite Micro"}])[0] == listen.CLEAN


def test_kept_files_are_the_first_in_evaluation_order():
    per_file = [{"system": s, "file": f} for f in ("c", "a", "b") for s in ("unprocessed", "RNNoise (pyrnnoise)")]
    assert kept_files(per_file, 2) == ["c", "a"]
    assert kept_files(per_file, 0) == []


def test_one_lossless_player_and_one_spectrogram_per_file_and_system(kept):
    audio_dir, systems = kept
    section = render_listen_section(audio_dir, FILES, systems, 16000)
    players, images = AUDIO.findall(section), IMAGE.findall(section)
    assert len(players) == len(images) == len(FILES) * len(systems)
    assert section.count("<audio controls") == len(players)
    # player k of file f is system k, bit-exact: what the reader hears is what was scored
    for index, encoded in enumerate(players):
        name, (folder, label) = FILES[index // len(systems)], systems[index % len(systems)]
        samples, rate = sf.read(io.BytesIO(base64.b64decode(encoded)), dtype="int16")
        assert rate == 16000
        np.testing.assert_array_equal(samples, to_int16(read_wav(audio_dir / folder / f"{name}.wav", 16000)))
    for encoded in images:
        image = Image.open(io.BytesIO(base64.b64decode(encoded)))
        assert (image.format, image.size) == ("WEBP", SPECTROGRAM_PX)
    for _, label in systems:
        assert f"<figcaption>{label}</figcaption>" in section
    assert "http" not in section     # nothing fetched: the page stays one file


def test_same_wavs_give_the_same_bytes(kept):
    audio_dir, systems = kept
    assert render_listen_section(audio_dir, FILES, systems, 16000) == render_listen_section(audio_dir, FILES, systems,
                                                                                             16000)


def test_one_colour_scale_per_file(kept):
    """A quieter system looks darker than a louder one on the same file (no per-image normalisation)."""
    audio_dir, _ = kept
    systems = [("loud", "loud"), ("quiet", "quiet")]
    noise = np.random.RandomState(0).standard_normal(16000)
    for folder, gain in (("loud", 0.3), ("quiet", 0.003)):     # 40 dB apart
        write_wav(audio_dir / folder / "x.wav", gain * noise, 16000)
    images = IMAGE.findall(render_listen_section(audio_dir, ["x"], systems, 16000))
    loud, quiet = (np.asarray(Image.open(io.BytesIO(base64.b64decode(b))).convert("L"), float) for b in images)
    assert loud.mean() > quiet.mean() + 30


def test_the_budget_shortens_clips_then_drops_files():
    demo = plan(3, 6)                                             # the demo: 3 files, 2 references, clean, 3 runners
    assert demo.files == 3 and 6 <= demo.seconds <= min(MAX_SECONDS, AUDIO_SECONDS_BUDGET / 18)
    assert demo.seconds == round(demo.seconds, 1)
    many = plan(3, 40)                                            # a sweep of 13 variants x 3 runners
    assert many.files * 40 * many.seconds <= AUDIO_SECONDS_BUDGET
    assert many.seconds >= MIN_SECONDS and many.files >= 1
    assert plan(3, 1000).files == 1                              # never nothing while there is audio
    assert plan(0, 6) == listen.Plan(0, 0.0)


def test_clips_are_cut_to_the_planned_excerpt(tmp_path):
    audio_dir = tmp_path / "audio"
    systems = [("unprocessed", "unprocessed"), listen.CLEAN]
    for folder, _ in systems:
        write_wav(audio_dir / folder / "long.wav", 0.1 * np.ones(16000 * 12), 16000)
    section = render_listen_section(audio_dir, ["long"], systems, 16000)
    for encoded in AUDIO.findall(section):
        assert sf.info(io.BytesIO(base64.b64decode(encoded))).frames == int(MAX_SECONDS * 16000)
    assert f"at most the first {MAX_SECONDS:g} s" in section


def test_a_missing_wav_is_named_in_place_of_its_player(kept):
    audio_dir, systems = kept
    (audio_dir / "ptq" / "int8 TFLite" / "mix_0001.wav").unlink()
    section = render_listen_section(audio_dir, FILES[:1], systems, 16000)
    assert len(AUDIO.findall(section)) == len(systems) - 1
    assert "int8 TFLite/mix_0001.wav is not there" in section


def test_a_wav_at_another_rate_is_refused_naming_it(kept):
    audio_dir, systems = kept
    bad = audio_dir / "clean" / "mix_0001.wav"
    write_wav(bad, np.zeros(8000), 8000)
    with pytest.raises(InputFileError, match=re.escape(str(bad)) + ".*8000 Hz; expected 16000 Hz"):
        render_listen_section(audio_dir, FILES, systems, 16000)


def test_no_kept_audio_says_so():
    section = render_listen_section(ri.Path("/nonexistent"), [], systems_of(ri.quality_rows()), 16000)
    assert "No audio kept" in section and "<audio" not in section


def test_the_report_stage_inputs_are_the_embedded_wavs(kept):
    audio_dir, systems = kept
    inputs = input_files(audio_dir, FILES, systems)
    assert len(inputs) == len(FILES) * len(systems)
    assert inputs["audio:clean:mix_0002"] == audio_dir / "clean" / "mix_0002.wav"
    assert all(path.is_file() for path in inputs.values())


def test_the_page_holds_the_section_after_the_quality_table_in_one_write(kept, tmp_path):
    audio_dir, systems = kept
    section = render_listen_section(audio_dir, FILES, systems, 16000)
    page = write_html_report([], tmp_path / "page.html", "t", quality_rows=ri.quality_rows(), listen_html=section)
    text = page.read_text()
    assert text.index("Means over the test files") < text.index("<h2>Listen</h2>")
    assert "div.listen" in text and "<h2>Deployment" not in text     # no deployment rows: no such section
    with_rows = render_html([ri.record("ptq", "ethos-u55-128")], "t", quality_rows=ri.quality_rows(),
                            listen_html=section)
    assert with_rows.index("<h2>Listen</h2>") < with_rows.index("<h2>Deployment")
    assert not list(tmp_path.glob("*.tmp*"))
    # a page without the section keeps its bytes (no listening style either)
    assert "div.listen" not in render_html([], "t", quality_rows=ri.quality_rows())


def test_the_report_stage_declares_the_kept_wavs_of_every_system(tmp_path):
    """The stage's inputs follow the experiment: its test files in evaluation order, its quality table's systems."""
    import json

    from sepipe.config import load_experiment
    from sepipe.stages.reporting import declare_report

    cfg = load_experiment(ri.Path(__file__).parents[1] / "experiments" / "demo.yaml",
                          {"runs_dir": str(tmp_path), "evaluate.write_audio": 2})
    evaluate_dir = cfg.run_dir / "evaluate"
    evaluate_dir.mkdir(parents=True)
    names = ["c_0003", "a_0001", "b_0002"]
    (evaluate_dir / "references_per_file.json").write_text(json.dumps([{"system": "unprocessed", "file": n}
                                                                       for n in names]))
    quality = [r for r in ri.quality_rows() if r["variant"] in ("-", "ptq")]
    needs = {"evaluate:references": {"rows": [r for r in quality if r["variant"] == "-"]},
             **{f"evaluate:{v.name}": {"rows": [r for r in quality if r["variant"] == v.name]} for v in cfg.variants}}
    inputs = declare_report(cfg).inputs(needs)
    assert sorted({path.stem for path in inputs.values()}) == ["a_0001", "c_0003"]
    assert {path.parent.relative_to(evaluate_dir / "audio").as_posix() for path in inputs.values()} == {
        "unprocessed", "clean", "RNNoise (pyrnnoise)", "ptq/float32 Keras", "ptq/int8 TFLite", "ptq/int8 TFLite Micro"}
