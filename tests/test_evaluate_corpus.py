"""`sepipe evaluate --model`: any streaming model on any corpus. Pairing (folders, a CSV list, VoiceBank-DEMAND
and DNS test folders), every refused input as one line, exit 2 and nothing written, and the figures equal to
the experiment's own evaluation of the same files."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import soundfile as sf

from sepipe.cli.main import main
from sepipe.corpus_eval import corpus_pairs
from sepipe.data.corpus import dns_test_files, pair_by_name, voicebank_files
from sepipe.errors import ConfigError, InputFileError
from sepipe.metrics import METRICS

RATE = 16000


def _noise(seconds: float, seed: int = 0, channels: int = 1, rate: int = RATE) -> np.ndarray:
    rng = np.random.default_rng(seed)
    shape = (int(seconds * rate),) if channels == 1 else (int(seconds * rate), channels)
    return (0.1 * rng.standard_normal(shape)).astype(np.float32)


def _wav(path, audio, rate=RATE, subtype="PCM_16"):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), audio, rate, subtype=subtype, format="WAV")
    return path


def _corpus(root, names=("a", "b"), seconds=0.4):
    for k, name in enumerate(names):
        clean = 0.5 * np.sin(2 * np.pi * 220 * np.arange(int(seconds * RATE)) / RATE).astype(np.float32)
        _wav(root / "clean" / f"{name}.wav", clean)
        _wav(root / "noisy" / f"{name}.wav", clean + _noise(seconds, seed=k))
    return root / "noisy", root / "clean"


def _evaluate(capture, *argv):
    """(exit code, stdout, stderr without the LiteRT interpreter's own C++ notice) of `sepipe -q evaluate ARGV`."""
    code = main(["-q", "evaluate", *map(str, argv)])
    out, err = capture.readouterr()
    return code, out, "".join(line for line in err.splitlines(keepends=True) if not line.startswith("INFO: Created"))


# --------------------------------------------------------------------------- pairing (fast: no model)

def test_folders_pair_by_name_and_a_file_without_its_pair_is_named(tmp_path):
    noisy, clean = _corpus(tmp_path, ("b", "a"))
    assert [(p.name, p.noisy.name, p.clean.name) for p in corpus_pairs(noisy, clean, None, None)] == \
        [("a", "a.wav", "a.wav"), ("b", "b.wav", "b.wav")]
    _wav(noisy / "c.wav", _noise(0.1))
    with pytest.raises(InputFileError, match="c.wav: missing: .* has no clean reference"):
        corpus_pairs(noisy, clean, None, None)
    (noisy / "c.wav").unlink()
    _wav(clean / "d.wav", _noise(0.1))
    with pytest.raises(InputFileError, match="d.wav: missing: .* has no noisy counterpart"):
        pair_by_name(noisy, clean, "layout")


def test_a_csv_list_pairs_paths_relative_to_it(tmp_path):
    _corpus(tmp_path / "c")
    listing = tmp_path / "pairs.csv"
    listing.write_text("noisy,clean\nc/noisy/a.wav,c/clean/a.wav\n\n" + f"{tmp_path}/c/noisy/b.wav,c/clean/b.wav\n")
    pairs = corpus_pairs(None, None, listing, None)
    assert [(p.name, p.noisy, p.clean) for p in pairs] == [
        ("a", tmp_path / "c/noisy/a.wav", tmp_path / "c/clean/a.wav"),
        ("b", tmp_path / "c/noisy/b.wav", tmp_path / "c/clean/b.wav")]
    listing.write_text("c/noisy/a.wav,c/clean/a.wav\nc/noisy/b.wav\n")
    with pytest.raises(InputFileError, match="line 2 has 1 field"):
        corpus_pairs(None, None, listing, None)
    listing.write_text("c/noisy/a.wav,c/clean/a.wav\nc/clean/a.wav,c/clean/b.wav\n")
    with pytest.raises(InputFileError, match="line 2: .* has the name 'a' of line 1"):
        corpus_pairs(None, None, listing, None)


def test_voicebank_and_dns_test_folders_are_read_as_the_builders_pair_them(tmp_path):
    vb = tmp_path / "vb"
    for name in ("p232_001", "p232_002"):
        for kind in ("clean", "noisy"):
            _wav(vb / f"{kind}_testset_wav" / f"{name}.wav", _noise(0.2))
    assert [p.name for p in corpus_pairs(None, None, None, vb)] == ["p232_001", "p232_002"]
    assert [n for n, _, _ in voicebank_files(vb, "test")] == ["p232_001", "p232_002"]
    dns = tmp_path / "dns"
    for k in (10, 2):
        _wav(dns / "noisy" / f"clnsp1_train_69005_1_snr15_tl-21_fileid_{k}.wav", _noise(0.2))
        _wav(dns / "clean" / f"clean_fileid_{k}.wav", _noise(0.2))
    pairs = corpus_pairs(None, None, None, dns)
    assert [(p.name, p.clean.name) for p in pairs] == [("fileid_2", "clean_fileid_2.wav"),
                                                      ("fileid_10", "clean_fileid_10.wav")]
    _wav(dns / "noisy" / "x_fileid_3.wav", _noise(0.2))
    with pytest.raises(InputFileError, match="x_fileid_3.wav: missing: no clean reference with fileid_3"):
        dns_test_files(dns)
    with pytest.raises(InputFileError, match="neither a VoiceBank-DEMAND nor a DNS test folder"):
        corpus_pairs(None, None, None, tmp_path)


def test_exactly_one_corpus_is_named(tmp_path):
    noisy, clean = _corpus(tmp_path)
    with pytest.raises(ConfigError, match="exactly one of"):
        corpus_pairs(noisy, clean, tmp_path / "x.csv", None)
    with pytest.raises(ConfigError, match="exactly one of"):
        corpus_pairs(None, None, None, None)
    with pytest.raises(ConfigError, match="--clean"):
        corpus_pairs(noisy, None, None, None)


@pytest.mark.parametrize("argv, expected", [
    ([], "give either EXP.yaml"),
    (["x.yaml", "--model", "m.tflite"], "not both"),
    (["x.yaml", "--noisy", "n"], "--noisy go(es) with --model"),
    (["x.yaml", "--list", "l.csv", "--resample", "--write-audio", "2"], "--list, --resample, --write-audio go(es)"),
    (["--model", "m.tflite", "--noisy", "n", "--clean", "c", "--write-audio", "-1"], "-1 is not an integer from 0"),
    (["--model", "m.tflite", "--noisy", "n", "--clean", "c", "--baselines", "noisy,wiener"], "'noisy,wiener'"),
])
def test_the_command_line_takes_an_experiment_or_a_model(tmp_path, capsys, argv, expected):
    code, _, err = _evaluate(capsys, *argv)
    assert code == 2 and err.count("\n") == 1 and expected in err, err


def test_a_corpus_evaluation_needs_tflm_by_default_and_the_report_extra():
    from argparse import Namespace

    from sepipe.extras import command_extras

    assert command_extras("sepipe evaluate", Namespace(experiment="x.yaml", model=None, runtime=None)) == ("eval",)
    assert command_extras("sepipe evaluate", Namespace(model="m.tflite", runtime=None)) == ("eval", "tflm", "report")
    assert command_extras("sepipe evaluate", Namespace(model="m.tflite", runtime="tflite")) == ("eval", "report")


# --------------------------------------------------------------------------- refused input (a real model)

@pytest.fixture(scope="module")
def int8_tflite(untrained_tflites):
    return untrained_tflites["int8"]


def _nan_wav(path):
    audio = _noise(0.4, seed=4)
    audio[3000] = np.nan
    return _wav(path, audio, subtype="FLOAT")


BAD_FILES = {      # case: (what to do to noisy/b.wav, the line's end)
    "wrong rate": (lambda p: _wav(p, _noise(0.4, rate=48000), rate=48000), "48000 Hz, 1 channel(s); expected 16000"),
    "stereo": (lambda p: _wav(p, _noise(0.4, channels=2)), "16000 Hz, 2 channel(s); expected 16000 Hz mono"),
    "empty": (lambda p: p.write_bytes(b""), "empty file (0 bytes)"),
    "no samples": (lambda p: _wav(p, np.zeros(0, np.float32)), "audio file is empty (0 samples)"),
    "unreadable": (lambda p: p.write_bytes(b"RIFF not really a wave file" * 10), "unreadable audio"),
    "NaN samples": (_nan_wav, "sample 3000 (0.188 s) is nan"),
    "shorter than its clean": (lambda p: _wav(p, _noise(0.3)), "has 4800 samples but its clean reference"),
    "missing pair": (lambda p: p.unlink(), "missing: "),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_a_bad_file_is_one_line_exit_2_and_nothing_written(int8_tflite, tmp_path, capfd, case):
    noisy, clean = _corpus(tmp_path / "c")
    make, expected = BAD_FILES[case]
    make(noisy / "b.wav")
    out = tmp_path / "out"
    code, _, err = _evaluate(capfd, "--model", int8_tflite, "--noisy", noisy, "--clean", clean, "-o", out,
                             "--baselines", "noisy", "--workers", "1")
    named = noisy / "b.wav"      # a missing noisy file is named where it should be
    assert code == 2 and err.count("\n") == 1 and err.startswith(f"sepipe: error: {named}: "), err
    assert expected in err, err
    assert not out.exists()


@pytest.mark.parametrize("case", ["no such folder", "empty folder", "not a folder"])
def test_a_bad_folder_is_one_line_exit_2(int8_tflite, tmp_path, capfd, case):
    noisy, clean = _corpus(tmp_path / "c")
    bad = {"no such folder": tmp_path / "nowhere", "empty folder": tmp_path / "empty",
           "not a folder": noisy / "a.wav"}[case]
    if case == "empty folder":
        bad.mkdir()
    code, _, err = _evaluate(capfd, "--model", int8_tflite, "--noisy", bad, "--clean", clean, "-o", tmp_path / "o")
    expected = {"no such folder": "folder not found", "empty folder": "no .wav files",
                "not a folder": "not a folder"}[case]
    assert code == 2 and err.count("\n") == 1 and err.startswith(f"sepipe: error: {bad}: ") and expected in err, err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("case", ["float model", "dynamic-range model", "not a tflite", "missing"])
def test_a_model_off_the_streaming_contract_is_refused_in_one_line(untrained_tflites, tmp_path, capfd, case):
    noisy, clean = _corpus(tmp_path / "c")
    garbage = tmp_path / "garbage.tflite"
    garbage.write_bytes(b"\0" * 64)
    model, expected = {"float model": (untrained_tflites["float"], "float32 model"),
                       "dynamic-range model": (untrained_tflites["dynamic"], "dynamic-range quantised model"),
                       "not a tflite": (garbage, ""), "missing": (tmp_path / "none.tflite", "not found")}[case]
    code, _, err = _evaluate(capfd, "--model", model, "--noisy", noisy, "--clean", clean, "-o", tmp_path / "o")
    assert code == 2 and err.count("\n") == 1 and err.startswith(f"sepipe: error: {model}: ") and expected in err, err
    assert not (tmp_path / "o").exists()


def test_a_tflite_on_two_folders_writes_every_table(int8_tflite, tmp_path, capsys):
    noisy, clean = _corpus(tmp_path / "c")
    out = tmp_path / "out"
    code, stdout, err = _evaluate(capsys, "--model", int8_tflite, "--noisy", noisy, "--clean", clean, "-o", out,
                                  "--workers", "1")
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == ["audio", "per_file.csv", "per_file.md", "quality.csv",
                                                     "quality.md", "report.html"]
    rows = list(csv.DictReader((out / "quality.csv").open()))
    assert [r["system"] for r in rows] == ["unprocessed", "RNNoise (pyrnnoise)", "int8 TFLite Micro"]
    assert all(r["files"] == "2" for r in rows) and float(rows[0]["si_sdr_gain_db"]) == 0.0
    per_file = list(csv.DictReader((out / "per_file.csv").open()))
    assert len(per_file) == 6 and {r["file"] for r in per_file} == {"a", "b"}
    page = (out / "report.html").read_text()
    assert "int8 TFLite Micro" in page and "RNNoise (pyrnnoise)" in page
    assert "int8 TFLite Micro" in stdout and "8 WAV file(s) under" in stdout
    assert "<h2>Deployment" not in page          # a corpus has no Vela figures: no empty section or plots


def _players(page: str) -> list[bytes]:
    import base64
    import re

    return [base64.b64decode(b) for b in re.findall(r'src="data:audio/flac;base64,([A-Za-z0-9+/=]+)"', page)]


def test_the_first_files_audio_is_kept_and_played_in_the_page(int8_tflite, tmp_path, capsys):
    """--write-audio N (default 3): the first N files' noisy, clean, baselines' and model's audio under
    OUT_DIR/audio/<system>/ (the experiment's layout), one player per file and system in report.html."""
    import io

    noisy, clean = _corpus(tmp_path / "c", ("a", "b", "c", "d"))
    out = tmp_path / "out"
    code, _, err = _evaluate(capsys, "--model", int8_tflite, "--noisy", noisy, "--clean", clean, "-o", out,
                             "--workers", "1")
    assert code == 0, err
    model = f"{int8_tflite.stem}/int8 TFLite Micro"
    folders = ["unprocessed", "clean", "RNNoise (pyrnnoise)", model]
    assert sorted(str(p.relative_to(out / "audio")) for p in (out / "audio").rglob("*.wav")) == sorted(
        f"{folder}/{name}.wav" for folder in folders for name in "abc")
    page = (out / "report.html").read_text()
    players = _players(page)
    assert "<h2>Listen</h2>" in page and len(players) == 3 * 4 and "(--write-audio)" in page
    assert page.index("<h3>a</h3>") < page.index("<h3>b</h3>") < page.index("<h3>c</h3>") and "<h3>d</h3>" not in page
    for k, folder in enumerate(folders):        # player k of file a is system k, the kept WAV bit-exact
        kept, _ = sf.read(str(out / "audio" / folder / "a.wav"), dtype="int16")
        played, rate = sf.read(io.BytesIO(players[k]), dtype="int16")
        assert rate == RATE and np.array_equal(played, kept), folder
    assert sf.read(str(out / "audio" / "clean" / "b.wav"), dtype="float32")[0] == pytest.approx(
        sf.read(str(clean / "b.wav"), dtype="float32")[0], abs=1e-4)

    code, _, err = _evaluate(capsys, "--model", int8_tflite, "--noisy", noisy, "--clean", clean, "-o",
                             tmp_path / "one", "--workers", "1", "--baselines", "none", "--write-audio", "1")
    assert code == 0, err
    assert sorted(p.parent.name for p in (tmp_path / "one" / "audio").rglob("a.wav")) == [
        "clean", "int8 TFLite Micro", "unprocessed"]       # the input is kept even when it is no baseline
    assert len(_players((tmp_path / "one" / "report.html").read_text())) == 3
    code, _, err = _evaluate(capsys, "--model", int8_tflite, "--noisy", noisy, "--clean", clean, "-o",
                             tmp_path / "none", "--workers", "1", "--baselines", "noisy", "--write-audio", "0")
    assert code == 0, err
    assert not (tmp_path / "none" / "audio").exists()
    assert "Listen" not in (tmp_path / "none" / "report.html").read_text()


def _resampled(folder, rate, channels=1):
    """The 16 kHz corpus in `folder` at `rate` Hz (soxr), with `channels` equal channels."""
    import soxr

    out = folder.parent / f"{folder.name}_{rate}_{channels}"
    for path in sorted(folder.glob("*.wav")):
        audio = soxr.resample(sf.read(str(path), dtype="float32")[0], RATE, rate, quality="VHQ")
        _wav(out / path.name, np.repeat(audio[:, None], channels, axis=1) if channels > 1 else audio, rate)
    return out


def test_a_48_khz_corpus_needs_resample_and_scores_as_its_16_khz_original(int8_tflite, tmp_path, capsys, caplog):
    """Users' corpora are often 48 kHz: without --resample the line names the option (which evaluate has);
    with it the files are averaged to mono, resampled with soxr (said in the log) and score as the original."""
    import logging

    noisy, clean = _corpus(tmp_path / "c", seconds=1.0)
    noisy48, clean48 = _resampled(noisy, 48000, channels=2), _resampled(clean, 48000)
    code, _, err = _evaluate(capsys, "--model", int8_tflite, "--noisy", noisy48, "--clean", clean48, "-o",
                             tmp_path / "refused")
    assert code == 2 and err.count("\n") == 1 and "48000 Hz, 2 channel(s); expected 16000 Hz mono" in err, err
    assert "--resample" in err and not (tmp_path / "refused").exists()

    runs, said = {}, {}
    for name, folders in (("16k", (noisy, clean)), ("48k", (noisy48, clean48)), ("mixed", (noisy48, clean))):
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="sepipe.corpus_eval"):
            code, _, err = _evaluate(capsys, "--model", int8_tflite, "--noisy", folders[0], "--clean", folders[1],
                                     "-o", tmp_path / name, "--workers", "1", "--baselines", "noisy",
                                     "--write-audio", "1", *(["--resample"] if name != "16k" else []))
        assert code == 0, (name, err)
        runs[name] = {r["system"]: r for r in csv.DictReader((tmp_path / name / "quality.csv").open())}
        said[name] = [r.getMessage() for r in caplog.records if "resampled with soxr" in r.getMessage()]
    assert said["16k"] == []
    assert "4 of 4 file(s) are not 16000 Hz mono (e.g. " in said["48k"][0] and "2 of 4" in said["mixed"][0]
    assert "48000 Hz, 2 channel(s)): channels averaged, resampled with soxr to 16000 Hz" in said["48k"][0]
    for name in ("48k", "mixed"):      # the round trip through 48 kHz cuts the white noise above ~7.3 kHz
        for system, row in runs["16k"].items():
            assert float(runs[name][system]["si_sdr"]) == pytest.approx(float(row["si_sdr"]), abs=0.5), (name, system)
        assert sf.info(str(tmp_path / name / "audio" / "clean" / "a.wav")).samplerate == RATE


def test_with_resample_a_pair_must_still_last_as_long(tmp_path):
    from sepipe.corpus_eval import check_pairs

    noisy, clean = _corpus(tmp_path / "c", ("a",), seconds=0.5)
    _wav(noisy / "a.wav", _noise(0.4, rate=48000), rate=48000)
    with pytest.raises(InputFileError, match=r"a.wav: lasts 0.4000 s \(19200 samples at 48000 Hz\) but its clean "
                                             r"reference .* lasts 0.5000 s \(8000 at 16000 Hz\)"):
        check_pairs(corpus_pairs(noisy, clean, None, None), RATE, resample=True)
    _wav(noisy / "a.wav", _noise(0.5, rate=48000), rate=48000)
    assert len(check_pairs(corpus_pairs(noisy, clean, None, None), RATE, resample=True)) == 1


# --------------------------------------------------------------------------- the same figures as the experiment

def tiny_config(small_data_config, runs_dir):
    from sepipe.config import experiment_from_dict

    return experiment_from_dict({
        "name": "tinyeval", "seed": 3, "runs_dir": str(runs_dir),
        "data": {"cache_dir": small_data_config.cache_dir},
        "model": {"family": "gru", "input_units": 16, "rnn_units": 16, "rnn_layers": 1, "dense_units": 16},
        "train": {"epochs": 1, "steps_per_epoch": 2, "batch_size": 4, "valid_files": 1},
        "convert": {"calibration_files": 1, "calibration_frames": 32},
        "compile": {"targets": ["ethos-u55-128"]},
        "evaluate": {"test_files": 3, "dnsmos": True, "write_audio": 0, "baselines": ["noisy", "rnnoise"],
                     "interpreters": ["float", "tflite", "tflm"], "workers": 1},
    })


TOLERANCE = {"si_sdr": 1e-3, "pesq": 1e-3, "stoi": 1e-4, "dnsmos_sig": 1e-3, "dnsmos_bak": 1e-3, "dnsmos_ovrl": 1e-3}


@pytest.fixture(scope="module")
def evaluated_run(small_dataset, small_data_config, tmp_path_factory):
    """A tiny experiment trained, converted and evaluated by its own stages; its test pairs as two WAV folders."""
    from sepipe import experiment as exp

    cfg = tiny_config(small_data_config, tmp_path_factory.mktemp("runs"))
    dataset = exp.stage_data(cfg, build=False)
    exp.stage_train(cfg, dataset, progress=False)
    exp.stage_convert(cfg, dataset, cfg.variants[0], progress=False)
    summary = exp.evaluate_all(cfg, dataset, progress=False)
    folders = tmp_path_factory.mktemp("test_split")
    for pair in dataset.pairs("test", limit=cfg.evaluate.test_files):
        _wav(folders / "noisy" / f"{pair.name}.wav", pair.noisy)
        _wav(folders / "clean" / f"{pair.name}.wav", pair.clean)
    return cfg, summary, folders


@pytest.mark.slow
@pytest.mark.parametrize("runtime", ["tflm", "tflite", "float"])
def test_the_figures_equal_the_experiments_own_evaluation(evaluated_run, tmp_path, capsys, runtime):
    """Score the run's model on its exported test split: every per-file score and every mean agrees with
    the experiment's own evaluation to float tolerance."""
    from sepipe import experiment as exp

    cfg, summary, folders = evaluated_run
    out = tmp_path / "out"
    code, _, err = _evaluate(capsys, "--model", cfg.run_dir, "--runtime", runtime, "--noisy", folders / "noisy",
                             "--clean", folders / "clean", "-o", out, "--workers", "1")
    assert code == 0, err

    evaluate_dir = exp.RunPaths(cfg).evaluate_dir
    theirs = [*json.loads((evaluate_dir / "references_per_file.json").read_text()),
              *json.loads((evaluate_dir / "ptq_per_file.json").read_text())]
    system = {"tflm": "ptq/int8 TFLite Micro", "tflite": "ptq/int8 TFLite", "float": "ptq/float32 Keras"}[runtime]
    theirs = {(r["system"], r["file"]): r for r in theirs
              if r["system"] in (system, "unprocessed", "RNNoise (pyrnnoise)")}
    ours = {(r["system"], r["file"]): r for r in csv.DictReader((out / "per_file.csv").open())}
    assert sorted(ours) == sorted(theirs) and len(ours) == 3 * cfg.evaluate.test_files
    for key, row in theirs.items():
        for metric in METRICS:
            assert float(ours[key][metric]) == pytest.approx(row[metric], abs=TOLERANCE[metric]), (key, metric)

    label = system.split("/")[1]
    their_means = {r["system"]: r for r in summary["rows"] if r["variant"] in ("-", "ptq")}
    for row in csv.DictReader((out / "quality.csv").open()):
        for metric in (*METRICS, "si_sdr_gain_db"):
            assert float(row[metric]) == pytest.approx(their_means[row["system"]][metric], abs=TOLERANCE.get(
                metric, 1e-3)), (row["system"], metric)
    assert label in their_means
