"""Broken and hostile audio (issue 11): a user's corpus, a test file or a model's output that is not finite,
out of range, silent, too short, not audio, empty, at another rate or multi-channel gives either the result
or one line naming the file (and the first bad sample), exit code 2. Tiny synthetic corpora: seconds each."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sepipe.audio import MAX_PEAK, read_wav
from sepipe.cli import main
from sepipe.config import DataConfig, experiment_from_dict
from sepipe.data import Dataset, build_dataset
from sepipe.data.generator import AudioPool
from sepipe.errors import InputFileError

SR = 16000


def _tone(seconds: float = 1.0, hz: float = 200.0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (0.2 * np.sin(2 * np.pi * hz * t) * (np.sin(2 * np.pi * 3 * t) > -0.5)).astype(np.float32)


def _write(path, audio, subtype="PCM_16", rate=SR):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, audio, rate, subtype=subtype)
    return path


def _dns(root, subtype="PCM_16"):
    """The smallest DNS corpus the build takes: 8 readers, 3 noise files (one per split)."""
    for i in range(8):
        _write(root / "clean" / f"reader_{i:05d}_{i}.wav", _tone(1.0, 150 + 20 * i), subtype)
    rng = np.random.default_rng(0)
    for i in range(3):
        _write(root / "noise" / f"noise_{i}.wav", (0.05 * rng.standard_normal(SR)).astype(np.float32), subtype)
    return root


def _run(capsys, tmp_path, data_yaml: str):
    path = tmp_path / "exp.yaml"
    path.write_text(f"data:\n  cache_dir: {tmp_path / 'cache'}\n  segment_s: 1.0\n{data_yaml}")
    code = main(["-q", "data", "build", str(path)])
    return code, capsys.readouterr().err.strip().splitlines()


def _with_bad_sample(value: float, at: int, subtype: str = "FLOAT") -> tuple[np.ndarray, str]:
    audio = _tone()
    audio[at] = value
    return audio, subtype


# (folder, file, how it is damaged, what the one line must say)
DAMAGE = {
    "nan": ("clean", "reader_00003_3.wav", lambda: _with_bad_sample(np.nan, 1234), "sample 1234 (0.077 s) is nan"),
    "inf": ("clean", "reader_00005_5.wav", lambda: _with_bad_sample(-np.inf, 4000), "sample 4000 (0.250 s) is -inf"),
    "double-nan": ("noise", "noise_1.wav", lambda: _with_bad_sample(np.nan, 16, "DOUBLE"), "sample 16 (0.001 s) is nan"),
    "loud": ("clean", "reader_00001_1.wav", lambda: _with_bad_sample(20.0, 800), "sample 800 (0.050 s) is 20.0"),
    "silent": ("clean", "reader_00002_2.wav", lambda: (np.zeros(SR, np.float32), "PCM_16"), "silent"),
    "silent-noise": ("noise", "noise_2.wav", lambda: (np.zeros(SR, np.float32), "PCM_16"), "silent"),
    "short": ("clean", "reader_00004_4.wav", lambda: (_tone(0.05), "PCM_16"), "800 samples (0.050 s)"),
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_a_bad_file_in_a_dns_corpus_is_one_line_naming_it_and_the_first_bad_sample(tmp_path, capsys, damage):
    folder, name, make, fragment = DAMAGE[damage]
    corpus = _dns(tmp_path / "dns")
    audio, subtype = make()
    _write(corpus / folder / name, audio, subtype)
    code, err = _run(capsys, tmp_path, f"  source: dns\n  root: {corpus}\n")
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith(f"sepipe: error: {corpus / folder / name}: ") and fragment in err[0], err
    assert not list((tmp_path / "cache").rglob("manifest.json"))


@pytest.mark.parametrize("damage, fragment", [
    ("garbage", "unreadable audio"), ("empty", "empty file (0 bytes)"), ("no-samples", "empty (0 samples)"),
    ("rate", "8000 Hz; expected 16000 Hz"), ("truncated-flac", "unreadable audio")])
def test_a_file_that_is_no_16khz_audio_is_one_line(tmp_path, capsys, damage, fragment):
    corpus = _dns(tmp_path / "dns")
    bad = corpus / "clean" / "reader_00006_6.wav"
    if damage == "truncated-flac":
        bad.unlink()
        bad = _write(bad.with_suffix(".flac"), _tone(2.0))
        bad.write_bytes(bad.read_bytes()[:bad.stat().st_size // 2])
    elif damage == "garbage":
        bad.write_bytes(b"RIFF\x10\x00\x00\x00WAVEfmt garbage, not audio" + bytes(range(256)))
    elif damage == "empty":
        bad.write_bytes(b"")
    elif damage == "no-samples":
        _write(bad, np.zeros(0, np.float32))
    else:
        _write(bad, _tone(), rate=8000)
    code, err = _run(capsys, tmp_path, f"  source: dns\n  root: {corpus}\n")
    assert code == 2 and len(err) == 1 and str(bad) in err[0] and fragment in err[0], err


def test_a_bad_training_file_keeps_the_previous_dataset_and_is_named_when_training_reads_it(tmp_path):
    corpus = _dns(tmp_path / "dns")
    cfg = DataConfig(source="dns", root=str(corpus), cache_dir=str(tmp_path / "cache"), segment_s=1.0)
    build_dataset(cfg, progress=False)
    speech = Dataset.open(cfg).manifest["splits"]["train"]["speech"]
    bad = speech[0]["path"]
    audio, subtype = _with_bad_sample(np.nan, 10)
    _write(corpus / bad, audio, subtype)
    with pytest.raises(InputFileError, match=rf"^{bad}: sample 10 \(0.001 s\) is nan; "):
        build_dataset(cfg, progress=False)
    dataset = Dataset.open(cfg)                                      # the dataset of before is still there
    assert len(dataset.pairs("test", limit=2)) == 2
    # training reads the spoilt file of that dataset: one line naming it, not NaN in the loss
    with pytest.raises(InputFileError, match=rf"^{bad}: sample 10 "):
        segments = dataset.training_segments(seed=0)
        for _ in range(50):
            next(segments)


def test_a_bad_test_source_is_named_when_the_build_mixes_it(tmp_path, capsys):
    corpus = _dns(tmp_path / "dns")
    cfg = DataConfig(source="dns", root=str(corpus), cache_dir=str(tmp_path / "cache"), segment_s=1.0)
    build_dataset(cfg, progress=False)
    test_speaker = Dataset.open(cfg).manifest["splits"]["test"]["speakers"][0]
    bad = next((corpus / "clean").glob(f"{test_speaker}_*.wav"))
    _write(bad, np.zeros(SR, np.float32))
    code, err = _run(capsys, tmp_path, f"  source: dns\n  root: {corpus}\n")
    assert code == 2 and err == [f"sepipe: error: {bad}: is silent (peak 0, at most one 16-bit step); "
                                 "a clean speech file must hold speech"], err


def test_float_wavs_are_read_at_their_level_and_clipped_at_full_scale_in_the_pools(tmp_path):
    """libsndfile reads a float WAV as int16 without scaling (0.2 -> 0): the pools must scale it."""
    audio = _tone()
    audio[100:110] = 3.0                                             # over full scale, under MAX_PEAK
    path = _write(tmp_path / "f.wav", audio, "FLOAT")
    read = AudioPool([path], [len(audio)]).read(0)
    assert np.allclose(read[:100], audio[:100], atol=1 / 32768) and read[100:110].max() == pytest.approx(1.0, abs=1e-4)
    pcm = _write(tmp_path / "p.wav", _tone())
    assert np.array_equal(AudioPool([pcm], [SR]).read(0), sf.read(pcm, dtype="float32")[0])   # PCM: as before


def test_a_file_that_decodes_to_another_length_than_listed_is_named(tmp_path):
    from sepipe.data.corpus import check_content

    path = _write(tmp_path / "n.wav", _tone())
    check_content(path, "noise", SR)
    with pytest.raises(InputFileError, match=r"n.wav: decodes to 16000 samples but its header says 16005"):
        check_content(path, "noise", SR + 5)


def test_a_pool_too_large_to_preload_checks_each_window_it_reads(tmp_path):
    audio, subtype = _with_bad_sample(np.inf, 1234)
    path = _write(tmp_path / "big.wav", audio, subtype)
    pool = AudioPool([path], [len(audio)])
    pool.preload = False                                             # as for a pool over 2 hours
    assert np.all(np.isfinite(pool.read(0, 0, 1000)))
    with pytest.raises(InputFileError, match=r"big.wav: sample 1234 \(0.077 s\) is inf"):
        pool.read(0, 1000, 500)


def test_a_float_corpus_with_a_file_over_full_scale_builds_and_trains_on_sound(tmp_path, capsys):
    corpus = _dns(tmp_path / "dns", subtype="FLOAT")
    audio = _tone()
    audio[500] = MAX_PEAK                                            # at the bound: accepted
    _write(corpus / "clean" / "reader_00007_7.wav", audio, "FLOAT")
    _write(corpus / "clean" / "reader_00006_6.wav", np.stack([_tone(), np.full(SR, np.nan, np.float32)], 1), "FLOAT")
    code, err = _run(capsys, tmp_path, f"  source: dns\n  root: {corpus}\n")
    assert code == 0 and not err, err
    dataset = Dataset.open(DataConfig(source="dns", root=str(corpus), cache_dir=str(tmp_path / "cache"),
                                      segment_s=1.0))
    noisy, clean = next(dataset.training_segments(seed=0))
    assert np.all(np.isfinite(noisy)) and np.sqrt(np.mean(np.square(clean))) > 1e-3


def _rirs(folder, count=4):
    for i in range(count):
        rir = np.zeros(4000, np.float32)
        rir[50] = 1.0
        rir[51:] = 0.05 * np.random.default_rng(i).standard_normal(3949) * np.exp(-np.arange(3949) / 800)
        _write(folder / f"room_{i}.wav", rir, "FLOAT")
    return folder


@pytest.mark.parametrize("damage, fragment", [("nan", "sample 60 (0.004 s) is nan"), ("garbage", "unreadable audio"),
                                              ("silent", "silent")])
def test_a_bad_measured_rir_is_one_line_naming_it(tmp_path, capsys, damage, fragment):
    corpus = _dns(tmp_path / "dns")
    rirs = _rirs(tmp_path / "rirs")
    bad = rirs / "room_2.wav"
    if damage == "nan":
        rir = sf.read(bad, dtype="float32")[0]
        rir[60] = np.nan
        _write(bad, rir, "FLOAT")
    elif damage == "silent":
        _write(bad, np.zeros(4000, np.float32), "FLOAT")
    else:
        bad.write_bytes(b"not a wave file")
    code, err = _run(capsys, tmp_path, f"  source: dns\n  root: {corpus}\n"
                                       f"  reverb:\n    enabled: true\n    rir_dir: {rirs}\n")
    assert code == 2 and len(err) == 1 and str(bad) in err[0] and fragment in err[0], err


def _voicebank(root, speakers=("p226", "p227", "p228", "p229")):
    for split in ("train", "test"):
        for kind in ("clean", "noisy"):
            for k, speaker in enumerate(speakers):
                _write(root / f"{kind}_{split}set_wav" / f"{speaker}_00{k}.wav", _tone(1.0, 180 + 30 * k), "FLOAT")
    return root


def test_a_voicebank_file_with_nan_is_refused_by_the_build(tmp_path, capsys):
    corpus = _voicebank(tmp_path / "vb")
    audio, subtype = _with_bad_sample(np.inf, 321)
    bad = _write(corpus / "noisy_testset_wav" / "p227_001.wav", audio, subtype)
    code, err = _run(capsys, tmp_path, f"  source: voicebank\n  root: {corpus}\n")
    assert code == 2 and len(err) == 1 and err[0].startswith(f"sepipe: error: {bad}: "), err
    assert "sample 321 (0.020 s) is inf" in err[0]


def test_nan_in_a_test_file_fails_evaluation_naming_the_file(tmp_path):
    """A test file spoilt after the build (VoiceBank files are read in place) is named when it is read."""
    from sepipe.evaluate import evaluate_references

    corpus = _voicebank(tmp_path / "vb")
    cfg = experiment_from_dict({"name": "x", "data": {"source": "voicebank", "root": str(corpus),
                                                      "cache_dir": str(tmp_path / "cache")},
                                "evaluate": {"baselines": ["noisy"], "dnsmos": False, "workers": 1,
                                             "write_audio": 0}})
    build_dataset(cfg.data, progress=False)
    bad = corpus / "clean_testset_wav" / "p228_002.wav"
    audio = sf.read(bad, dtype="float32")[0]
    audio[7] = np.nan
    _write(bad, audio, "FLOAT")
    with pytest.raises(InputFileError) as info:
        evaluate_references(cfg, Dataset.open(cfg.data), tmp_path / "out", progress=False)
    assert str(info.value) == f"{bad}: sample 7 (0.000 s) is nan; " + str(info.value).split("; ", 1)[1]


def test_a_model_output_that_is_not_finite_is_named_with_its_file_and_system(tmp_path):
    from sepipe.data.layout import Pair
    from sepipe.evaluate import Scorer

    cfg = experiment_from_dict({"name": "x", "evaluate": {"dnsmos": False, "workers": 1}})
    pair = Pair("test_0001", _tone(), _tone(), source="/data/test/noisy/test_0001.wav")
    enhanced = _tone()
    enhanced[99] = np.inf
    scorer = Scorer.for_experiment(cfg)
    with pytest.raises(InputFileError, match=r"^/data/test/noisy/test_0001.wav: the gru/int8 TFLite output: "
                                             r"sample 99 \(0.006 s\) is inf"):
        scorer.submit("gru/int8 TFLite", pair, enhanced)
        scorer.results()


# --- read_wav: every dataset pair, the bundle's test audio ----------------------------------------------

@pytest.mark.parametrize("audio, subtype, fragment", [
    (np.array([0.1, np.nan, 0.2], np.float32), "FLOAT", "sample 1 (0.000 s) is nan"),
    (np.array([0.1, 0.2, -9.5], np.float32), "FLOAT", "sample 2 (0.000 s) is -9.5"),
    (np.zeros(0, np.float32), "FLOAT", "empty (0 samples)"),
])
def test_read_wav_names_the_file_and_the_first_bad_sample(tmp_path, audio, subtype, fragment):
    path = _write(tmp_path / "x.wav", audio, subtype)
    with pytest.raises(InputFileError, match=r"x\.wav: ") as info:
        read_wav(path, SR)
    assert fragment in str(info.value)


def test_read_wav_takes_the_first_channel_and_refuses_another_rate(tmp_path):
    stereo = np.stack([_tone(), -_tone()], 1)
    assert np.array_equal(read_wav(_write(tmp_path / "s.wav", stereo, "FLOAT"), SR), stereo[:, 0])
    with pytest.raises(InputFileError, match=r"r\.wav: sample rate is 44100 Hz; expected 16000 Hz"):
        read_wav(_write(tmp_path / "r.wav", _tone(), rate=44100), SR)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(header=st.sampled_from([b"", b"RIFF\x24\x00\x00\x00WAVEfmt ", b"fLaC", b"OggS"]),
       body=st.binary(max_size=300))
def test_fuzz_any_bytes_named_wav_are_audio_or_one_error(tmp_path, header, body):
    path = tmp_path / "fuzz.wav"
    path.write_bytes(header + body)
    try:
        audio = read_wav(path, SR)
    except InputFileError as error:
        assert str(error).startswith(f"{path}: ") and "\n" not in str(error)
    else:
        assert audio.dtype == np.float32 and audio.ndim == 1 and np.all(np.abs(audio) <= MAX_PEAK)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=st.lists(st.floats(width=32, allow_nan=True, allow_infinity=True), min_size=1, max_size=64))
def test_fuzz_float_samples_are_audio_or_the_first_bad_one_is_named(tmp_path, values):
    path = _write(tmp_path / "v.wav", np.array(values, np.float32), "FLOAT")
    x = np.array(values, np.float32)
    bad = ~np.isfinite(x) | (np.abs(np.nan_to_num(x)) > MAX_PEAK)
    try:
        audio = read_wav(path, SR)
    except InputFileError as error:
        first = int(np.argmax(bad))
        assert bad.any() and f"sample {first} " in str(error)
    else:
        assert not bad.any() and np.array_equal(audio, x)
