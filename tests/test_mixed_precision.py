"""Mixed precision (scheme 'mixed', variants[].precision): the int8 / 16x8 / float conversions of the tiny
trained models spliced into one .tflite, run by the real TFLite and TFLite Micro interpreters and Vela."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from sepipe.config import load_experiment
from sepipe.errors import ConfigError
from sepipe.models import family_of
from sepipe.quantize.mixed_info import operators, precision_summary
from sepipe.runtime import make_runner

from tiny_models import BINS

MIXES = {
    "gru_io16": ("gru", {"input": "int16x8", "rnn": "int8", "dense": "int16x8", "output": "int16x8"}),
    "lstm_cell16": ("lstm", {"default": "int8", "cell_state": "int16x8"}),
    "lstm_all16": ("lstm", {"default": "int16x8"}),
    "gru_rnn_float": ("gru", {"rnn": "float"}),
}


@pytest.fixture(scope="module")
def mixed(tiny_models, tmp_path_factory):
    """{mix name: .tflite bytes}, converted from the tiny models' weights and calibration."""
    from sepipe.quantize.convert import convert_quantized

    folder, out = tmp_path_factory.mktemp("mixed"), {}
    for name, (family, precision) in MIXES.items():
        case = tiny_models[family]
        path = convert_quantized(case.cfg, BINS, case.streaming_weights, case.calibration, folder / f"{name}.tflite",
                                 scheme="mixed", precision=precision)
        out[name] = path.read_bytes()
    return out


def _contract(case):
    return family_of(case.cfg).contract(case.cfg, BINS)


@pytest.mark.slow
def test_each_tensor_has_the_declared_type(tiny_models, mixed):
    gru, lstm = tiny_models["gru"], tiny_models["lstm"]
    layers = precision_summary(mixed["gru_io16"], MIXES["gru_io16"][1], _contract(gru))["layers"]
    assert layers == {"input_dense": ["int16x8"], "rnn_1": ["int8"], "rnn_2": ["int8"], "dense_1": ["int16x8"],
                      "dense_2": ["int16x8"], "mask": ["int16x8"]}
    io = make_runner("tflite", tflite_bytes=mixed["gru_io16"]).io
    assert {t.name: t.dtype for t in io.inputs + io.outputs} == {
        "features": "int16", "rnn_1_h": "int8", "rnn_2_h": "int8", "mask": "int16",
        "rnn_1_h_out": "int8", "rnn_2_h_out": "int8"}
    # every operator computes in its layer's type; weights stay int8 everywhere
    for op, ins, outs in operators(mixed["gru_io16"]):
        if op not in ("QUANTIZE", "DEQUANTIZE"):
            assert len({dtype for _, dtype in ins + outs if op != "SPLIT"}) <= 1, (op, ins, outs)
    # the LSTM cell-state path alone at 16 bits: c in and out int16, h int8
    io = make_runner("tflite", tflite_bytes=mixed["lstm_cell16"]).io
    types = {t.name: t.dtype for t in io.inputs + io.outputs}
    assert {k: v for k, v in types.items() if "_c" in k} == {
        "rnn_1_c": "int16", "rnn_2_c": "int16", "rnn_1_c_out": "int16", "rnn_2_c_out": "int16"}
    assert {types[k] for k in types if "_h" in k} | {types["features"], types["mask"]} == {"int8"}
    summary = precision_summary(mixed["lstm_cell16"], MIXES["lstm_cell16"][1], _contract(lstm))
    assert summary["layers"]["rnn_1"] == ["int16x8", "int8"] and summary["layers"]["mask"] == ["int8"]
    assert summary["quantize_ops"] > 0


@pytest.mark.slow
@pytest.mark.parametrize("runner", ["tflite", "tflm"])
def test_all_16x8_mix_is_the_uniform_16x8_model_bit_for_bit(tiny_models, mixed, runner):
    """Every operator taken from the 16x8 conversion: the splice reproduces the uniform model exactly."""
    case = tiny_models["lstm"]
    uniform = make_runner(runner, tflite_bytes=case.tflite_bytes)
    spliced = make_runner(runner, tflite_bytes=mixed["lstm_all16"])
    for feats in case.speech.test:
        np.testing.assert_array_equal(spliced.run_quantized(feats), uniform.run_quantized(feats))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["gru_io16", "lstm_cell16", "gru_rnn_float"])
def test_mixed_model_is_close_to_float(tiny_models, mixed, name):
    """Mask against the float model, in int8 mask steps (1/256): TFLite within 5 steps on average (the bound
    of the uniform models, test_interpreters: 0.02); TFLite Micro (what ships) within 1 step of TFLite on
    average and 8 at the 99th percentile."""
    case = tiny_models[MIXES[name][0]]
    reference = make_runner("float", streaming_model=case.streaming)
    tflite = make_runner("tflite", tflite_bytes=mixed[name])
    tflm = make_runner("tflm", tflite_bytes=mixed[name])
    to_float, to_tflm = [], []
    for feats in case.speech.test:
        got = tflite.run(feats)
        to_float.append(np.abs(got - reference.run(feats)) * 256)
        to_tflm.append(np.abs(tflm.run(feats) - got) * 256)
    to_float, to_tflm = np.concatenate(to_float), np.concatenate(to_tflm)
    print(f"\n{name}: vs float mean {to_float.mean():.3f} steps (p99 {np.quantile(to_float, 0.99):.2f}); "
          f"TFLM vs TFLite mean {to_tflm.mean():.3f} (p99 {np.quantile(to_tflm, 0.99):.2f})")
    assert to_float.mean() < 0.02 * 256
    assert to_tflm.mean() < 1.0 and np.quantile(to_tflm, 0.99) <= 8


@pytest.mark.slow
def test_cell_state_at_16_bits_recovers_the_int8_lstm(tiny_models, mixed, tmp_path):
    """The int8 LSTM loses its cell state; the cell-state path alone at 16 bits brings it back."""
    from sepipe.quantize.convert import convert_quantized

    case = tiny_models["lstm"]
    int8 = convert_quantized(case.cfg, BINS, case.streaming_weights, case.calibration, tmp_path / "int8.tflite")
    reference = make_runner("float", streaming_model=case.streaming)
    errors = {}
    for name, data in (("int8", int8.read_bytes()), ("cell16", mixed["lstm_cell16"])):
        runner = make_runner("tflite", tflite_bytes=data)
        errors[name] = np.mean([np.abs(runner.run(f) - reference.run(f)).mean() for f in case.speech.test])
    print(f"\nLSTM mask error vs float: uniform int8 {errors['int8']:.4f}, cell state 16x8 {errors['cell16']:.4f}")
    assert errors["cell16"] < errors["int8"] / 2


@pytest.mark.slow
def test_float_group_is_placed_on_the_cpu_and_said_so(mixed, tmp_path):
    from sepipe.deploy.compile import CompileOptions, CpuFallbackError, compile_model, resolve_targets

    path = tmp_path / "rnn_float.tflite"
    path.write_bytes(mixed["gru_rnn_float"])
    target = resolve_targets(["ethos-u55-128"])[0]
    with pytest.raises(CpuFallbackError):          # never silently: a full-NPU compile refuses it
        compile_model(path, target, tmp_path / "strict", "rnn_float", CompileOptions(require_full_npu=True))
    result = compile_model(path, target, tmp_path / "vela", "rnn_float", CompileOptions(require_full_npu=False))
    cpu = [op for op in result.placement if op.placement == "CPU"]
    assert cpu and result.compiled.figures.cpu_ops == len(cpu)
    npu = make_runner("tflite", tflite_bytes=mixed["gru_io16"])   # the 16x8/int8 mix: all on the NPU
    io16 = tmp_path / "io16.tflite"
    io16.write_bytes(mixed["gru_io16"])
    assert compile_model(io16, target, tmp_path / "vela", "io16").compiled.figures.cpu_ops == 0
    assert npu.io.integer_io


@pytest.mark.parametrize("precision, message", [
    ("{rnn: int4}", "valid; expected a precision: int8, int16x8, float"),
    ("{cell_state: int16x8}", "expected a key naming a layer group, layer or tensor class of the gru family"),
    ("int8", "a mapping of layer group to precision"),
])
def test_a_bad_precision_mapping_is_one_line_exit_2(tmp_path, precision, message):
    path = tmp_path / "mix.yaml"
    path.write_text("name: mix\nmodel: {family: gru, rnn_units: 24}\nvariants:\n  - {name: ptq, kind: ptq}\n"
                    f"  - {{name: mix, kind: ptq, precision: {precision}}}\n")
    with pytest.raises(ConfigError) as info:
        load_experiment(path)
    assert message in str(info.value) and "variants[mix].precision" in str(info.value)
    proc = subprocess.run([sys.executable, "-m", "sepipe.cli", "config", "check", str(path)], capture_output=True, text=True)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_the_mixed_scheme_is_chosen_per_variant_not_for_the_experiment(tmp_path):
    path = tmp_path / "mix.yaml"
    path.write_text("name: mix\nconvert: {scheme: mixed}\n")
    with pytest.raises(ConfigError, match="for mixed precision give a variant `precision"):
        load_experiment(path)


def test_a_mix_is_not_the_dense_reference_and_reads_back(tmp_path):
    path = tmp_path / "mix.yaml"
    path.write_text("name: mix\nmodel: {family: lstm, rnn_units: 24}\nvariants:\n  - {name: ptq, kind: ptq}\n"
                    "  - {name: cell16, kind: ptq, precision: {default: int8, cell_state: int16x8}}\n")
    cfg = load_experiment(path)
    assert cfg.dense_variant.name == "ptq" and cfg.precision_of("ptq") is None
    assert cfg.precision_of("cell16") == {"default": "int8", "cell_state": "int16x8"}
    from sepipe.config import experiment_from_dict
    assert experiment_from_dict(cfg.to_dict()) == cfg


@pytest.mark.slow
def test_golden_vectors_of_a_mixed_model_keep_each_tensor_type_and_rerun_bit_for_bit(tiny_models, mixed, tmp_path):
    from sepipe.config import FeatureConfig
    from sepipe.golden import write_golden_vectors
    from sepipe.runtime.quantized import TFLMStreamingRunner

    data, frames = mixed["lstm_cell16"], 12
    audio = np.random.default_rng(0).standard_normal(frames * FeatureConfig().hop).astype(np.float32) * 0.1
    golden = write_golden_vectors(data, audio, FeatureConfig(), frames, tmp_path)
    assert golden["activation_dtype"] == "mixed"
    types = {name: golden["files"][entry["file"]]["dtype"] for name, entry in golden["tensors"].items()}
    assert types["features"] == "int8" and types["rnn_1_c"] == "int16" and types["rnn_1_h_out"] == "int8"
    runner = TFLMStreamingRunner(data)
    inputs, outputs = runner.run_recorded(np.fromfile(tmp_path / "features.f32", "<f4").reshape(frames, -1))
    for name, entry in golden["tensors"].items():
        got = np.fromfile(tmp_path / entry["file"], dtype=np.dtype(types[name]).newbyteorder("<"))
        want = (inputs.get(name) if name in inputs else outputs[name]).reshape(-1)
        np.testing.assert_array_equal(got, want)
    # the int16 cell state is fed back by the formula: frame t+1's input is frame t's output requantised
    from sepipe.runtime.arith import requantize
    out, inp = runner.io.output("rnn_1_c_out"), runner.io.input("rnn_1_c")
    np.testing.assert_array_equal(inputs["rnn_1_c"][1:].reshape(frames - 1, -1),
                                  requantize(outputs["rnn_1_c_out"][:-1].reshape(frames - 1, -1), out.scale,
                                             out.zero_point, inp.scale, inp.zero_point, dtype=np.int16))
