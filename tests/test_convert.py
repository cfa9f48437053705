"""Calibration, int8 / 16x8 conversion (real converter in a subprocess) and quantized model validation.

The tiny trained GRU (int8) and LSTM (16x8) come from the session's `tiny_models` fixture
(tests/conftest.py, built by tests/tiny_models.py); calibration states come from the float model on
real audio.
"""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

from sepipe.models.keras_backend import keras, tf
from sepipe.models import family_of
from sepipe.quantize import convert as convert_mod
from sepipe.models.mask_rnn import MaskRnnConfig
from sepipe.quantize.calibration import CalibrationSet, collect_calibration, load_calibration, save_calibration
from sepipe.quantize.convert import convert_quantized
from sepipe.quantize.model_io import tflite_io, validate_quantized_model
from sepipe.errors import InputFileError, ToolError

from tiny_models import BINS, FAMILIES, IO_DTYPE, SCHEME, tiny_cfg



# --------------------------------------------------------------------------- calibration

@pytest.fixture(scope="module")
def random_gru():
    keras.utils.set_random_seed(1)
    return family_of(tiny_cfg("gru")).build_streaming(tiny_cfg("gru"), BINS)


def test_calibration_selection_is_reproducible_from_seed(random_gru, tiny_speech):
    from sepipe.runtime.float_runner import KerasStreamingRunner

    feats = [x for x, _ in tiny_speech.train[:3]]
    a = collect_calibration(random_gru, feats, frames=50, seed=7)
    b = collect_calibration(random_gru, feats, frames=50, seed=7)
    c = collect_calibration(random_gru, feats, frames=50, seed=8)
    assert a.selection == b.selection and a.selection["picks"] != c.selection["picks"]
    for name in a.inputs:
        np.testing.assert_array_equal(a.inputs[name], b.inputs[name])
    assert set(a.inputs) == {"features", "rnn_1_h", "rnn_2_h"}
    assert a.frames == 50 and a.selection["pool_frames"] == sum(len(x) for x in feats)
    assert all(v.dtype == np.float32 and v.shape[0] == 50 for v in a.inputs.values())
    # each row is the recorded (file, frame): its features, and the states the float model carried into it
    runner = KerasStreamingRunner(random_gru)
    states = [runner.run_with_states(x)[1] for x in feats]
    for row, (f, t) in enumerate(a.selection["picks"]):
        np.testing.assert_array_equal(a.inputs["features"][row], feats[f][t])
        for name in ("rnn_1_h", "rnn_2_h"):
            np.testing.assert_allclose(a.inputs[name][row], states[f][name][t], atol=1e-6)
            if t == 0:
                assert not a.inputs[name][row].any()  # zero initial state
    # asking for more frames than exist takes them all, in order
    everything = collect_calibration(random_gru, feats, frames=10**6, seed=7)
    assert everything.frames == everything.selection["pool_frames"]


def test_calibration_save_load_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    cal = CalibrationSet({"features": rng.standard_normal((20, BINS)).astype(np.float32),
                          "rnn_1_h": rng.standard_normal((20, 8)).astype(np.float32)},
                         {"seed": 3, "picks": [[0, i] for i in range(20)]})
    path = save_calibration(cal, tmp_path / "cal.npz")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cal.npz"]  # no temporary left behind
    back = load_calibration(path)
    assert back.selection == cal.selection
    for name in cal.inputs:
        np.testing.assert_array_equal(back.inputs[name], cal.inputs[name])
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(InputFileError, match="bad.npz"):
        load_calibration(tmp_path / "bad.npz")
    with pytest.raises(InputFileError, match="missing.npz"):
        load_calibration(tmp_path / "missing.npz")


# --------------------------------------------------------------------------- conversion

@pytest.mark.slow
@pytest.mark.parametrize("family", FAMILIES)
def test_int8_model_has_int8_io_and_state_pairs_by_name(tiny_models, family):
    case = tiny_models[family]
    io = validate_quantized_model(case.tflite)
    assert io == tflite_io(case.tflite_bytes)
    assert all(t.dtype == IO_DTYPE[family] for t in io.inputs + io.outputs)
    assert io.input("features").shape == (1, BINS) and io.output("mask").shape == (1, BINS)
    specs = family_of(case.cfg).contract(case.cfg, BINS).states
    assert {p.input: p.output for p in io.state_pairs} == {s.input_name: s.output_name for s in specs}
    assert {t.name for t in io.inputs} == {"features"} | {s.input_name for s in specs}
    for spec in specs:
        assert io.input(spec.input_name).shape == io.output(spec.output_name).shape == (1, spec.units)
    # the sigmoid mask output gets the fixed [0, 1) quantisation: 1/256 with zp -128 in int8, 1/32768 in int16
    fixed = {"int8": (1 / 256, -128), "int16": (1 / 32768, 0)}[IO_DTYPE[family]]
    assert (io.output("mask").scale, io.output("mask").zero_point) == fixed
    # checked against the family's declared contract and the scheme it was converted with
    contract = family_of(case.cfg).contract(case.cfg, BINS)
    checked = validate_quantized_model(case.tflite, contract, SCHEME[family])
    assert checked.state_pairs == io.state_pairs and checked.contract == contract
    assert checked.to_dict()["io_dtype"] == IO_DTYPE[family] and checked.to_dict()["scheme"] == SCHEME[family]
    other = {"gru": "int16x8", "lstm": "int8"}[family]
    with pytest.raises(InputFileError, match=f"scheme '{other}'"):
        validate_quantized_model(case.tflite, contract, other)
    wrong_cfg = tiny_cfg("lstm" if family == "gru" else "gru")
    with pytest.raises(InputFileError, match="not a streaming mask model: "):
        validate_quantized_model(case.tflite, family_of(wrong_cfg).contract(wrong_cfg, BINS))
    print(f"\n{family}: converted in {case.convert_s:.1f} s, {case.tflite.stat().st_size} bytes; speech: "
          f"{case.speech.source}")
    for pair in io.state_pairs:
        i, o = io.input(pair.input), io.output(pair.output)
        print(f"  {pair.input}: in scale {i.scale:.6f} zp {i.zero_point} / out scale {o.scale:.6f} "
              f"zp {o.zero_point} (same: {pair.same_quantization})")


@pytest.mark.slow
def test_conversion_is_deterministic_and_accepts_sequence_weights(tiny_models, tmp_path):
    case = tiny_models["gru"]
    again = convert_quantized(case.cfg, BINS, case.streaming_weights, case.calibration, tmp_path / "again.tflite")
    assert again.read_bytes() == case.tflite_bytes
    from_sequence = convert_quantized(case.cfg, BINS, case.sequence_weights, case.calibration, tmp_path / "seq.tflite")
    assert from_sequence.read_bytes() == case.tflite_bytes
    assert sorted(p.name for p in tmp_path.iterdir()) == ["again.tflite", "seq.tflite"]


@pytest.mark.slow
def test_converter_failures_become_tool_errors(tiny_models, tmp_path, monkeypatch):
    case = tiny_models["gru"]
    out = tmp_path / "model.tflite"
    # weights of another config: would load silently (structure match) without the worker's check
    other_cfg = MaskRnnConfig(family="gru", input_units=32, rnn_units=24, dense_units=32, rnn_layers=3)
    other = family_of(other_cfg).build_streaming(other_cfg, BINS)
    other.save_weights(str(tmp_path / "other.weights.h5"))
    with pytest.raises(ToolError, match=r"exit code 1.*another model config"):
        convert_quantized(case.cfg, BINS, tmp_path / "other.weights.h5", case.calibration, out)
    # corrupt weights file
    (tmp_path / "corrupt.weights.h5").write_bytes(os.urandom(4096))
    with pytest.raises(ToolError, match=r"corrupt\.weights\.h5.*exit code 1.*not a Keras HDF5"):
        convert_quantized(case.cfg, BINS, tmp_path / "corrupt.weights.h5", case.calibration, out)
    # timeout
    with pytest.raises(ToolError, match="timed out after 0.001 s"):
        convert_quantized(case.cfg, BINS, case.streaming_weights, case.calibration, out, timeout_s=0.001)
    # a converter segfault (what a Keras GRU layer or a stateful RNN does inside calibration)
    monkeypatch.setattr(convert_mod, "_worker_command", lambda *a: [
        sys.executable, "-c", "import os, signal, sys; print('calibrating...', file=sys.stderr); "
                              "sys.stderr.flush(); os.kill(os.getpid(), signal.SIGSEGV)"])
    with pytest.raises(ToolError, match=r"killed by signal SIGSEGV\): calibrating\.\.\.") as info:
        convert_quantized(case.cfg, BINS, case.streaming_weights, case.calibration, out)
    assert len(str(info.value).splitlines()) == 1
    # missing inputs are the user's files, named before any subprocess starts
    with pytest.raises(InputFileError, match="nope.weights.h5"):
        convert_quantized(case.cfg, BINS, tmp_path / "nope.weights.h5", case.calibration, out)
    with pytest.raises(InputFileError, match="nope.npz"):
        convert_quantized(case.cfg, BINS, case.streaming_weights, tmp_path / "nope.npz", out)
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.suffix == ".part"]


# --------------------------------------------------------------------------- validation

@pytest.mark.slow
def test_validate_quantized_model_rejects_what_cannot_ship(tiny_models, tmp_path):
    case = tiny_models["gru"]

    def converted(optimize: bool, int8_output: bool = False) -> bytes:
        converter = tf.lite.TFLiteConverter.from_keras_model(case.streaming)
        if optimize:
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if int8_output:
            cal = load_calibration(case.calibration)
            converter.representative_dataset = lambda: (
                {k: v[i:i + 1] for k, v in cal.inputs.items()} for i in range(cal.frames))
            converter.inference_input_type = tf.int8   # int8 in, float out: half done
        return converter.convert()

    bad = {
        "random.tflite": (os.urandom(2048), "not a TFLite flatbuffer"),
        "truncated.tflite": (case.tflite_bytes[: len(case.tflite_bytes) // 2], "not a readable TFLite flatbuffer"),
        "float.tflite": (converted(optimize=False), "float32 model"),
        "dynamic.tflite": (converted(optimize=True), "dynamic-range"),
        "float_out.tflite": (converted(optimize=True, int8_output=True), "is float32; every input and output must be int8"),
    }
    for name, (data, problem) in bad.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(InputFileError) as info:
            validate_quantized_model(tmp_path / name)
        assert str(tmp_path / name) in str(info.value) and problem in str(info.value), str(info.value)
    with pytest.raises(InputFileError, match="missing.tflite: model file not found"):
        validate_quantized_model(tmp_path / "missing.tflite")
