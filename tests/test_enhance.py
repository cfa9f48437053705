"""`sepipe enhance`: block streaming equals the one-shot evaluation path, the output file, and every
refused input as one line, exit 2 and no output file left behind."""

from __future__ import annotations

import types

import numpy as np
import pytest
import soundfile as sf

from sepipe.cli.main import main
from sepipe.config import FeatureConfig
from sepipe.enhance import enhance_array

RATE = 16000


def _evaluate_path(runner, cfg: FeatureConfig, audio: np.ndarray) -> np.ndarray:
    """The file enhanced as `sepipe.evaluate` streams a test mixture (all features at once, one run)."""
    from sepipe.evaluate import _stream_all

    run_cfg = types.SimpleNamespace(features=cfg, data=types.SimpleNamespace(sample_rate=RATE))
    enhanced, _, _ = _stream_all(run_cfg, {"model": runner}, [types.SimpleNamespace(noisy=audio)], "x", False)
    return enhanced[0][2]


def _noise(seconds: float, seed: int = 0, channels: int = 1, rate: int = RATE) -> np.ndarray:
    rng = np.random.default_rng(seed)
    shape = (int(seconds * rate),) if channels == 1 else (int(seconds * rate), channels)
    return (0.1 * rng.standard_normal(shape)).astype(np.float32)


def _wav(path, audio, rate=RATE, subtype="PCM_16"):
    sf.write(str(path), audio, rate, subtype=subtype, format="WAV")
    return path


def _enhance(capture, *argv):
    """(exit code, stdout, stderr) of `sepipe -q enhance ARGV`; stderr without the LiteRT interpreter's own
    C++ notice ('INFO: Created TensorFlow Lite XNNPACK delegate for CPU.', printed once per process when
    sepipe.quantize.model_io reads a .tflite), which no Python setting turns off."""
    code = main(["-q", "enhance", *map(str, argv)])
    out, err = capture.readouterr()
    return code, out, "".join(line for line in err.splitlines(keepends=True) if not line.startswith("INFO: Created"))


@pytest.fixture(scope="module")
def int8_tflite(untrained_tflites):
    return untrained_tflites["int8"]


@pytest.mark.parametrize("kind", ["tflite", "tflm"])
@pytest.mark.parametrize("block", [1, 100, 256, 1000, 10 ** 6])
def test_blocks_equal_the_one_shot_evaluation_path(int8_tflite, kind, block):
    from sepipe.runtime import make_runner

    runner, cfg = make_runner(kind, tflite_bytes=int8_tflite.read_bytes()), FeatureConfig()
    audio = _noise(0.9, seed=block)[: 14123 if block > 1 else 3000]
    whole = _evaluate_path(runner, cfg, audio)
    streamed = enhance_array(runner, cfg, audio, block)
    assert streamed.shape == audio.shape
    np.testing.assert_allclose(streamed, whole, atol=1e-6)


def test_float_runner_blocks_equal_the_one_shot_path():
    from sepipe.models import family_of
    from sepipe.models.keras_backend import tf
    from sepipe.models.mask_rnn import MaskRnnConfig
    from sepipe.runtime import make_runner

    model_cfg, cfg = MaskRnnConfig(family="gru", input_units=16, rnn_units=8, dense_units=16), FeatureConfig()
    tf.keras.utils.set_random_seed(0)
    runner = make_runner("float", streaming_model=family_of(model_cfg).build_streaming(model_cfg, cfg.bins))
    audio = _noise(0.5, seed=3)
    np.testing.assert_allclose(enhance_array(runner, cfg, audio, 777), _evaluate_path(runner, cfg, audio), atol=1e-6)


def test_enhance_writes_each_file_with_the_input_length_and_rate(int8_tflite, tmp_path, capsys):
    a = _wav(tmp_path / "a.wav", _noise(1.3, seed=1))
    b = _wav(tmp_path / "b.wav", _noise(0.2, seed=2), subtype="FLOAT")
    code, out, err = _enhance(capsys, a, b, "-o", tmp_path / "out", "--model", int8_tflite, "--runtime", "tflite")
    assert code == 0, err
    for src in (a, b):
        info = sf.info(str(tmp_path / "out" / src.name))
        assert (info.samplerate, info.channels, info.frames, info.subtype) == (RATE, 1, sf.info(str(src)).frames,
                                                                              "PCM_16")
    lines = out.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith(f"{a} -> {tmp_path / 'out' / 'a.wav'}: 1.30 s")
    assert "real-time factor" in lines[0] and lines[0].endswith("dBFS")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.wav", "b.wav"]   # no temporary file left


def test_the_written_file_is_the_streamed_audio(int8_tflite, tmp_path, capsys):
    """The default runtime (TFLite Micro) through the CLI equals the evaluation path, up to 16-bit output."""
    from sepipe.runtime import make_runner

    audio = _noise(1.1, seed=5)
    code, _, err = _enhance(capsys, _wav(tmp_path / "in.wav", audio, subtype="FLOAT"), "-o", tmp_path / "out",
                            "--model", int8_tflite)
    assert code == 0, err
    written, _ = sf.read(str(tmp_path / "out" / "in.wav"), dtype="float32")
    expected = _evaluate_path(make_runner("tflm", tflite_bytes=int8_tflite.read_bytes()), FeatureConfig(), audio)
    np.testing.assert_allclose(written, expected, atol=2.0 ** -15)


def _nan_wav(path):
    audio = _noise(2.5, seed=4)
    audio[20000] = np.nan              # in the second block: the first is already written when it is found
    return _wav(path, audio, subtype="FLOAT")


BAD_INPUTS = {
    "wrong rate": (lambda p: _wav(p, _noise(0.5, rate=48000), rate=48000), "48000 Hz, 1 channel(s); expected 16000 Hz mono"),
    "stereo": (lambda p: _wav(p, _noise(0.5, channels=2)), "16000 Hz, 2 channel(s); expected 16000 Hz mono"),
    "empty file": (lambda p: p.write_bytes(b"") and p, "empty file (0 bytes)"),
    "no samples": (lambda p: _wav(p, np.zeros(0, np.float32)), "audio file is empty (0 samples)"),
    "unreadable": (lambda p: p.write_bytes(b"RIFF not really a wave file" * 10) and p, "unreadable audio"),
    "NaN sample": (_nan_wav, "sample 20000 (1.250 s) is nan"),
    "missing": (lambda p: p, "file not found"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_a_bad_input_is_one_line_exit_2_and_no_output(int8_tflite, tmp_path, capfd, case):
    """One line on the process's stderr (capfd: the interpreters' own logging included)."""
    make, expected = BAD_INPUTS[case]
    good = _wav(tmp_path / "good.wav", _noise(0.3))
    bad = make(tmp_path / "bad.wav") or tmp_path / "bad.wav"
    out_dir = tmp_path / "out"
    code, out, err = _enhance(capfd, bad, good, "-o", out_dir, "--model", int8_tflite)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith(f"sepipe: error: {bad}: ") and expected in err, err
    assert not out_dir.exists() or not any(out_dir.iterdir())       # nothing, not even a temporary file
    if case != "NaN sample":      # refused from its header, before any file was written: the good one after it too
        code, _, err = _enhance(capfd, good, bad, "-o", out_dir, "--model", int8_tflite)
        assert code == 2 and (not out_dir.exists() or not any(out_dir.iterdir())), err


def test_resample_takes_a_48k_stereo_file_and_says_so(int8_tflite, tmp_path, capsys, caplog):
    src = _wav(tmp_path / "st.wav", _noise(1.5, channels=2, rate=48000), rate=48000)
    with caplog.at_level("INFO"):
        code = main(["enhance", str(src), "-o", str(tmp_path / "out"), "--model", str(int8_tflite), "--resample"])
    assert code == 0, capsys.readouterr().err
    info = sf.info(str(tmp_path / "out" / "st.wav"))
    assert (info.samplerate, info.channels) == (RATE, 1) and abs(info.frames - 24000) <= 1
    assert "48000 Hz, 2 channel(s) -> 16000 Hz mono (channels averaged, resampled with soxr)" in caplog.text


def _unpaired_int8(path, inputs=("a", "b"), size=8, output="mask"):
    """A full-integer .tflite whose inputs are not `<x>` fed by `<x>_out`: no streaming contract."""
    from sepipe.models.keras_backend import tf

    keras = tf.keras
    tensors = [keras.Input((size,), name=name) for name in inputs]
    joined = tensors[0] if len(tensors) == 1 else keras.layers.Concatenate()(tensors)
    model = keras.Model(tensors, {output: keras.layers.Dense(size, activation="sigmoid", name=output)(joined)})
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    rng = np.random.default_rng(0)
    converter.representative_dataset = lambda: ([rng.standard_normal((1, size)).astype(np.float32) for _ in inputs]
                                                for _ in range(8))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = converter.inference_output_type = tf.int8
    path.write_bytes(converter.convert())
    return path


@pytest.mark.parametrize("case", ["two feature inputs", "bins", "float model", "dynamic-range model"])
def test_a_tflite_off_the_streaming_contract_is_refused(untrained_tflites, tmp_path, capsys, case):
    model, expected = {
        "two feature inputs": (lambda: _unpaired_int8(tmp_path / "m.tflite"), "cannot tell the feature input"),
        "bins": (lambda: _unpaired_int8(tmp_path / "m.tflite", ("features",), 100), "feature input has 100 values"),
        "float model": (lambda: untrained_tflites["float"], "float32 model"),
        "dynamic-range model": (lambda: untrained_tflites["dynamic"], "dynamic-range quantised model"),
    }[case]
    model = model()
    code, _, err = _enhance(capsys, _wav(tmp_path / "in.wav", _noise(0.3)), "-o", tmp_path / "out", "--model", model)
    assert code == 2 and err.count("\n") == 1 and err.startswith(f"sepipe: error: {model}: "), err
    assert expected in err and not (tmp_path / "out").exists()


@pytest.mark.parametrize("argv, expected", [
    (["--runtime", "float"], "the float runtime needs a run folder"),
    (["--variant", "ptq"], "no --variant with a .tflite"),
])
def test_options_that_do_not_apply_to_a_tflite_are_refused(int8_tflite, tmp_path, capsys, argv, expected):
    code, _, err = _enhance(capsys, _wav(tmp_path / "in.wav", _noise(0.3)), "-o", tmp_path / "out",
                            "--model", int8_tflite, *argv)
    assert code == 2 and err.count("\n") == 1 and expected in err, err


def test_two_inputs_of_one_name_and_an_input_overwritten_are_refused(tmp_path, capsys):
    (tmp_path / "x").mkdir()
    a, b = _wav(tmp_path / "in.wav", _noise(0.2)), _wav(tmp_path / "x" / "in.wav", _noise(0.2))
    code, _, err = _enhance(capsys, a, b, "-o", tmp_path / "out", "--model", tmp_path / "m.tflite")
    assert code == 2 and "would both be written to" in err, err
    code, _, err = _enhance(capsys, a, "-o", tmp_path, "--model", tmp_path / "m.tflite")
    assert code == 2 and "overwritten by its own enhanced version" in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.wav", "x"]
