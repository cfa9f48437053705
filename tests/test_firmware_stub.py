"""firmware_stub/ (C) against the Python reference, on real models and real noisy speech.

The session's tiny trained models (`tiny_models` fixture, tests/tiny_models.py: trained for a few
seconds on raw log-power features of the small dataset, calibrated on real audio): a GRU in int8 and
an LSTM in 16x8 (int16 activations and I/O). For each, golden vectors (pipeline/golden.py) of 200 frames of
a real noisy test file and model_io.h (pipeline/c_export.py) are written, and the C host
test is built with the system compiler and run: features, quantised features, state
feedback and output audio against Python and TFLite Micro. The Cortex-M55 cross build runs
too (arm-none-eabi-gcc, installed by `make firmware-toolchain`; missing is a failure).
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from sepipe.c_export import c_float_decimal, c_float_hex, model_array_source, model_io_header
from sepipe.config import FeatureConfig
from sepipe.quantize.model_io import tflite_io
from sepipe.features import analysis_window, enhance_with_mask, features as compute_features
from sepipe.golden import write_golden_vectors
from sepipe.runtime.arith import dequantize, quantize, requantize

STUB = Path(__file__).resolve().parents[1] / "firmware_stub"
FEATURES = FeatureConfig()
BINS = FEATURES.bins
FRAMES = 200
MODELS = {"gru-int8": ("gru", "int8"), "lstm-int16": ("lstm", "int16x8")}
FEATURES_INPUT, MASK_OUTPUT = "features", "mask"   # the contract of today's families (models/mask_rnn.py)


def run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, **kwargs)


def compile_and_run(tmp: Path, source: str, includes: list[Path], extra_sources: list[Path] = (),
                    defines: tuple[str, ...] = ()) -> str:
    """Compile a C99 program with the flags of the stub's host build; return its stdout."""
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "prog.c").write_text(source)
    cmd = ["cc", "-std=c99", "-Wall", "-Wextra", "-Werror", "-O2", "-ffp-contract=off",
           *(f"-I{p}" for p in includes), *defines, str(tmp / "prog.c"), *map(str, extra_sources),
           "-o", str(tmp / "prog"), "-lm"]
    built = run(cmd)
    assert built.returncode == 0, built.stderr
    out = run([str(tmp / "prog")])
    assert out.returncode == 0, out.stderr
    return out.stdout


# --------------------------------------------------------------------------- real models, real speech

@pytest.fixture(scope="module")
def noisy_test_file(small_dataset):
    """One real noisy test file of at least FRAMES hops (the models were trained on training mixtures)."""
    tests = [p for p in small_dataset.pairs("test", limit=8) if len(p.noisy) >= FRAMES * FEATURES.hop]
    assert tests, "the small dataset has no test file of 200 hops"
    return tests[0]


@pytest.fixture(scope="module")
def models(tiny_models) -> dict[str, bytes]:
    """{'gru-int8': .tflite bytes, 'lstm-int16': ...} of the session's tiny trained models."""
    out = {}
    for key, (family, scheme) in MODELS.items():
        assert tiny_models[family].scheme == scheme
        out[key] = tiny_models[family].tflite_bytes
    return out


@pytest.fixture(scope="module")
def golden(models, noisy_test_file, tmp_path_factory) -> dict[str, Path]:
    """Golden folder with model_io.h, per model."""
    test_pair = noisy_test_file
    root = tmp_path_factory.mktemp("fw_golden")
    out = {}
    for key, data in models.items():
        folder = root / key
        write_golden_vectors(data, test_pair.noisy, FEATURES, FRAMES, folder, source=f"small_dataset test {test_pair.name}")
        (folder / "model_io.h").write_text(model_io_header(tflite_io(data), FEATURES, f"test {key}",
                                                           hashlib.sha256(data).hexdigest()))
        out[key] = folder
    return out


# --------------------------------------------------------------------------- the host test (C vs Python/TFLM)

def parse_results(text: str, build: str) -> dict[str, float]:
    """RESULT key=value pairs printed by host_test for one build ('float32' or 'double')."""
    section = next(block for block in text.split("== host_test (") if f" fft={build} " in block)
    return {k: float(v) for k, v in re.findall(r"(\w+)=(-?[0-9.]+(?:e[-+]?\d+)?)\b", section)}


@pytest.mark.slow
@pytest.mark.parametrize("key", list(MODELS))
def test_c_host_test_matches_python_and_tflm(key, golden, tmp_path):
    folder = golden[key]
    start = time.monotonic()
    result = run(["make", "-C", str(STUB), "host-test", f"GOLDEN={folder}", f"MODEL_IO={folder}",
                  f"BUILD={tmp_path / 'build'}"])
    elapsed = time.monotonic() - start
    print("\n".join(line for line in result.stdout.splitlines() if line.startswith(("RESULT", "PASS", "FAIL", "=="))))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert result.stdout.count("\nPASS") == 2
    f32, f64 = parse_results(result.stdout, "float32"), parse_results(result.stdout, "double")
    bits = 8 if key.endswith("int8") else 16
    for r in (f32, f64):
        assert r["act_bits"] == bits and r["frames"] == FRAMES
        # state feedback: bit-exact with what TFLite Micro got, standalone and inside the frame loop
        assert r["state_feedback_mismatches"] == 0 and r["state_zero_point_mismatches"] == 0
        assert r["state_feedback_compared"] > 0 and r["loop_state_mismatches"] == 0
        # features within the stated per-value bound; quantised ones at most 1 LSB off, and rarely
        assert r["features_err_over_bound"] <= 1.0 and r["qfeatures_over_bound"] == 0
        assert r["qfeatures_well_max_lsb"] <= 1
        assert r["qfeatures_1lsb_fraction"] < (0.05 if bits == 16 else 0.01)   # int16 steps are 256x finer
        assert r["audio_max_abs_err"] < 1e-5
    assert f64["qfeatures_max_lsb"] <= 1 and f64["features_max_ulp"] <= 4   # only the log rounds differently
    if bits == 8:
        assert f32["qfeatures_max_lsb"] <= 1
    print(f"{key}: make host-test {elapsed:.1f} s; float32 FFT: features max {f32['features_max_abs_err']:.3g} "
          f"(well-conditioned {f32['features_well_max_abs_err']:.3g}), quantised 1-LSB fraction "
          f"{f32['qfeatures_1lsb_fraction']:.3g} (max {f32['qfeatures_max_lsb']:.0f} LSB), audio max "
          f"{f32['audio_max_abs_err']:.3g}; double FFT: features max {f64['features_max_abs_err']:.3g}, "
          f"1-LSB fraction {f64['qfeatures_1lsb_fraction']:.3g}")


@pytest.mark.slow
def test_c_host_test_fails_on_wrong_vectors(golden, tmp_path):
    """The host test is not vacuous: a feedback value and an audio sample changed by one step fail it."""
    broken = tmp_path / "broken"
    shutil.copytree(golden["gru-int8"], broken)
    io = json.loads((broken / "golden.json").read_text())
    pair = io["state_pairs"][0]
    state = np.fromfile(broken / f"in_{pair['input']}.bin", np.int8).reshape(FRAMES, -1)
    state[FRAMES // 2, 3] = state[FRAMES // 2, 3] + (1 if state[FRAMES // 2, 3] < 127 else -1)
    state.tofile(broken / f"in_{pair['input']}.bin")
    audio = np.fromfile(broken / "audio_out.f32", np.float32)
    audio[1000] += 1e-3
    audio.tofile(broken / "audio_out.f32")
    result = run(["make", "-C", str(STUB), "host-test", f"GOLDEN={broken}", f"MODEL_IO={broken}",
                  f"BUILD={tmp_path / 'build'}"])
    assert result.returncode != 0
    assert "state_feedback_mismatches=1 " in result.stdout and "loop_state_mismatches=1\n" in result.stdout
    assert "FAIL output audio differs" in result.stdout


@pytest.mark.slow
def test_c_host_test_applies_a_complex_mask_as_python_does(noisy_test_file, tmp_path):
    """A complex-mask model (model.mask: complex, 2 x SE_BINS tanh outputs; sepipe.gain): model_io.h says
    SE_MASK_ELEMENTS, the frame loop dequantises both halves and multiplies each bin by its complex gain,
    and the output audio matches Python's. Random weights: gains of both signs in both parts."""
    from sepipe.models.mask_rnn import MaskRnnConfig
    from sepipe.quantize.convert import convert_untrained

    cfg = MaskRnnConfig(family="gru", input_units=32, rnn_units=24, dense_units=32, mask="complex")
    data = convert_untrained(cfg, BINS, tmp_path / "complex.tflite", seed=0).read_bytes()
    folder = tmp_path / "golden"
    write_golden_vectors(data, noisy_test_file.noisy, FEATURES, FRAMES, folder, source="complex mask")
    header = model_io_header(tflite_io(data), FEATURES, "complex mask", hashlib.sha256(data).hexdigest())
    assert f"#define SE_MASK_ELEMENTS {2 * BINS}" in header
    (folder / "model_io.h").write_text(header)
    io = tflite_io(data)
    mask = dequantize(np.fromfile(folder / "out_mask.bin", np.int8).reshape(FRAMES, 2 * BINS),
                      io.head.scale, io.head.zero_point)
    assert np.abs(mask[:, BINS:]).max() > 0.1, "the imaginary parts must matter"
    result = run(["make", "-C", str(STUB), "host-test", f"GOLDEN={folder}", f"MODEL_IO={folder}",
                  f"BUILD={tmp_path / 'build'}"])
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert result.stdout.count("\nPASS") == 2
    assert all(r["audio_max_abs_err"] < 1e-5 for r in (parse_results(result.stdout, b) for b in ("float32", "double")))


@pytest.mark.slow
def test_m55_cross_build_and_size_report(golden, tmp_path):
    if shutil.which("arm-none-eabi-gcc") is None:
        pytest.fail("arm-none-eabi-gcc is not installed: run `make firmware-toolchain` (Debian's gcc-arm-none-eabi)")
    for key in MODELS:
        build = tmp_path / key
        result = run(["make", "-C", str(STUB), "m55", f"MODEL_IO={golden[key]}", f"BUILD={build}"])
        print("\n".join(line for line in result.stdout.splitlines() if not line.startswith(("arm-none", "rm ", "mkdir", "make"))))
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        rows = {Path(m.group(5)).name: tuple(int(g) for g in m.groups()[:4]) for m in re.finditer(
            r"^\s*(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+[0-9a-f]+\s+(\S.*)$", result.stdout, re.M)}
        objects = ("se_dsp.o", "se_quant.o", "se_frame.o", "se_early_exit.o", "se_exit_set.o", "se_quality.o")
        for obj in (*objects, "(TOTALS)", "se_stub_size.elf"):
            assert obj in rows, f"{obj} missing from the size report:\n{result.stdout}"
        text, data, bss, dec = rows["(TOTALS)"]
        assert text == sum(rows[o][0] for o in objects) and 1000 < text < 16384
        # the DSP tables are const data (flash): window, twiddles and bit reversal in text, nothing in RAM
        assert rows["se_dsp.o"][0] >= FEATURES.fft_size * 4 + FEATURES.fft_size * 4 + FEATURES.fft_size and bss == 0
        symbols = run(["arm-none-eabi-nm", str(build / "m55" / "se_stub_size.elf")]).stdout
        linked = {line.split()[-1] for line in symbols.splitlines()}
        assert "logf" in linked and not linked & {"cos", "sin", "sqrt"}   # no double-precision libm linked
        assert (build / "m55" / "libse_stub.a").is_file()
        assert "se_model_tflm.o" not in rows                 # the TFLM wrapper needs TFLM_ROOT
        arch = run(["arm-none-eabi-readelf", "-A", str(build / "m55" / "se_stub_size.elf")]).stdout
        assert 'Tag_CPU_name: "cortex-m55"' in arch and "FPv5" in arch, arch


# --------------------------------------------------------------------------- arithmetic: C == numpy, bit for bit

@pytest.mark.slow
@pytest.mark.parametrize("key", list(MODELS))
def test_c_window_and_quantisation_are_bit_exact(key, golden, tmp_path):
    folder = golden[key]
    io = tflite_io_from_golden(folder)
    feat = io["tensors"][FEATURES_INPUT]
    dtype = np.int8 if io["activation_dtype"] == "int8" else np.int16
    rng = np.random.default_rng(3)
    scale = np.float32(feat["scale"])
    # values around every rounding tie, far out of range, and real features
    ties = ((np.arange(-300, 300) + 0.5) * scale).astype(np.float32)
    values = np.concatenate([ties, np.nextafter(ties, np.float32(np.inf)), np.nextafter(ties, np.float32(-np.inf)),
                             rng.normal(0, 20, 2000).astype(np.float32), np.float32([1e30, -1e30, 0.0, -0.0]),
                             np.fromfile(folder / "features.f32", np.float32)[:3000]]).astype(np.float32)
    pairs = io["state_pairs"]
    state = next(p for p in pairs if not p["same_quantization"]) if any(not p["same_quantization"] for p in pairs) else pairs[0]
    s_in, s_out = io["tensors"][state["input"]], io["tensors"][state["output"]]
    q_all = np.arange(np.iinfo(dtype).min, np.iinfo(dtype).max + 1, 1 if dtype == np.int8 else 7).astype(dtype)
    source = f"""
#include <stdio.h>
#include "model_io.h"
#include "se_dsp.h"
#include "se_quant.h"
static const float values[] = {{{", ".join(c_float_hex(v) for v in values)}}};
static const int qs[] = {{{", ".join(str(int(q)) for q in q_all)}}};
int main(void) {{
    unsigned i;
    se_dsp_init();
    for (i = 0; i < SE_FFT_SIZE; ++i) printf("%a\\n", (double)se_window()[i]);
    for (i = 0; i < sizeof(values) / sizeof(values[0]); ++i)
        printf("%d\\n", (int)se_quantize(values[i], SE_FEATURES_SCALE, SE_FEATURES_ZERO_POINT, SE_FEATURES_BITS));
    for (i = 0; i < sizeof(qs) / sizeof(qs[0]); ++i)
        printf("%d %a\\n", (int)se_requantize(qs[i], {c_float_hex(s_out["scale"])}, {s_out["zero_point"]},
                                              {c_float_hex(s_in["scale"])}, {s_in["zero_point"]}, {dtype().itemsize * 8}),
               (double)se_dequantize(qs[i], {c_float_hex(s_out["scale"])}, {s_out["zero_point"]}));
    return 0;
}}
"""
    lines = compile_and_run(tmp_path, source, [STUB, folder], [STUB / "se_dsp.c", STUB / "se_quant.c"]).split("\n")
    n = FEATURES.fft_size
    window = np.array([float.fromhex(x) for x in lines[:n]], np.float32)
    np.testing.assert_array_equal(window.view(np.int32), analysis_window(FEATURES).view(np.int32))
    # the generated const tables (what every Makefile build uses) hold the same window, bit for bit
    made = run(["make", "-s", "-C", str(STUB), "tables", f"MODEL_IO={folder}", f"BUILD={tmp_path / 'build'}"])
    assert made.returncode == 0, made.stdout + made.stderr
    const = compile_and_run(tmp_path / "const", source, [STUB, folder, tmp_path / "build" / "gen"],
                            [STUB / "se_dsp.c", STUB / "se_quant.c"], ("-DSE_DSP_CONST_TABLES=1",)).split("\n")
    assert const == lines
    c_q = np.array([int(x) for x in lines[n:n + len(values)]])
    np.testing.assert_array_equal(c_q, quantize(values, feat["scale"], feat["zero_point"], dtype))
    rest = [line.split() for line in lines[n + len(values):n + len(values) + len(q_all)]]
    np.testing.assert_array_equal([int(a) for a, _ in rest],
                                  requantize(q_all, s_out["scale"], s_out["zero_point"], s_in["scale"],
                                             s_in["zero_point"], dtype))
    np.testing.assert_array_equal(np.array([float.fromhex(b) for _, b in rest], np.float32),
                                  dequantize(q_all, s_out["scale"], s_out["zero_point"]))


def tflite_io_from_golden(folder: Path) -> dict:
    return json.loads((folder / "golden.json").read_text())


# --------------------------------------------------------------------------- c_export

@pytest.mark.slow
def test_model_io_header_scales_round_trip_to_float32(models, tmp_path):
    for key, data in models.items():
        io = tflite_io(data)
        folder = tmp_path / key
        folder.mkdir()
        header = model_io_header(io, FEATURES, f"test {key}", hashlib.sha256(data).hexdigest())
        (folder / "model_io.h").write_text(header)
        assert header == model_io_header(io, FEATURES, f"test {key}", hashlib.sha256(data).hexdigest())
        assert "GENERATED" in header and hashlib.sha256(data).hexdigest() in header and f"test {key}" in header
        assert header.count("#ifndef SE_MODEL_IO_H") == 1 and "#define SE_LOG_FLOOR 1e-07f" in header
        source = """
#include <stdio.h>
#include "model_io.h"
int main(void) {
    int k;
    printf("%d %d %d %d %d %d\\n", SE_SAMPLE_RATE, SE_FFT_SIZE, SE_HOP, SE_BINS, SE_ACT_BITS, (int)sizeof(se_act_t));
    printf("%a %a\\n", (double)SE_LOG_FLOOR, (double)(se_act_t)SE_ACT_MIN);
    printf("features %d %a %d\\n", SE_FEATURES_POSITION, (double)SE_FEATURES_SCALE, SE_FEATURES_ZERO_POINT);
    printf("mask %d %a %d\\n", SE_MASK_POSITION, (double)SE_MASK_SCALE, SE_MASK_ZERO_POINT);
    for (k = 0; k < SE_NUM_STATES; ++k) {
        const se_state_pair_t *p = &se_state_pairs[k];
        printf("%s %s %d %d %d %d %d %d %d %a %d %a %d %d\\n", p->input_name, p->output_name, p->input_position,
               p->output_position, p->size, p->input_bits, p->output_bits, p->input_offset, p->output_offset,
               (double)p->input_scale, (int)p->input_zero_point,
               (double)p->output_scale, (int)p->output_zero_point, p->same_quantization);
    }
    return 0;
}
"""
        lines = compile_and_run(tmp_path / f"{key}_prog", source, [folder]).strip().split("\n")
        bits = 8 if io.input(FEATURES_INPUT).dtype == "int8" else 16
        assert lines[0].split() == ["16000", "512", "256", "257", str(bits), str(bits // 8)]
        floor, qmin = lines[1].split()
        assert np.float32(float.fromhex(floor)) == np.float32(FEATURES.log_floor)
        assert float.fromhex(qmin) == -(2 ** (bits - 1))

        def same_f32(text: str, value: float) -> bool:
            return np.float32(float.fromhex(text)).view(np.int32) == np.float32(value).view(np.int32) \
                and float.fromhex(text) == float(np.float32(value))

        for line, tensor in zip(lines[2:4], (io.input(FEATURES_INPUT), io.output(MASK_OUTPUT))):
            _, pos, scale, zp = line.split()
            assert int(pos) == tensor.position and int(zp) == tensor.zero_point and same_f32(scale, tensor.scale)
        assert len(lines) - 4 == len(io.state_pairs) >= 2
        offset = 0
        for line, pair in zip(lines[4:], io.state_pairs):
            name_in, name_out, pin, pout, size, bin_, bout, off_in, off_out, sin, zin, sout, zout, same = line.split()
            inp, out = io.input(pair.input), io.output(pair.output)
            assert (name_in, name_out) == (pair.input, pair.output)
            assert (int(pin), int(pout), int(size), int(off_in), int(off_out)) == \
                (inp.position, out.position, inp.shape[-1], offset, offset)   # uniform: one buffer per direction
            assert int(bin_) == int(bout) == bits
            assert same_f32(sin, inp.scale) and same_f32(sout, out.scale)
            assert (int(zin), int(zout), bool(int(same))) == (inp.zero_point, out.zero_point, pair.same_quantization)
            offset += int(size)


def test_float_literals_denote_the_same_float32_in_c(tmp_path):
    rng = np.random.default_rng(0)
    values = np.concatenate([np.float32([1e-7, 0.1, 1.0 / 3, 0.00784313772, 3.4e38, 1.2e-38, 1e-45, 0.0, -2.5]),
                             (10 ** rng.uniform(-8, 3, 200)).astype(np.float32)])
    hexes = [c_float_hex(v) for v in values]
    decimals = [c_float_decimal(float(v)) for v in values]
    assert all(h.endswith("f") and h.lstrip("-").startswith("0x") for h in hexes)
    assert c_float_hex(0.5) == "0x1p-1f" and c_float_decimal(1e-7) == "1e-07f" and c_float_decimal(2.0) == "2.0f"
    source = "#include <stdio.h>\nstatic const float v[] = {" + ", ".join(hexes + decimals) + "};\n" \
             "int main(void) { unsigned i; for (i = 0; i < sizeof(v) / sizeof(v[0]); ++i) printf(\"%a\\n\", (double)v[i]); return 0; }\n"
    got = np.array([float.fromhex(x) for x in compile_and_run(tmp_path, source, []).split()], np.float32)
    np.testing.assert_array_equal(got.view(np.int32), np.concatenate([values, values]).astype(np.float32).view(np.int32))
    with pytest.raises(ValueError):
        c_float_hex(float("inf"))


@pytest.mark.slow
def test_model_array_source_round_trips_bytes_aligned_in_its_section(models, tmp_path):
    data = models["gru-int8"]
    source, header = model_array_source(data)
    assert (source, header) == model_array_source(data)           # deterministic
    digest = hashlib.sha256(data).hexdigest()
    assert 'const uint8_t se_model[] __attribute__((aligned(16), section("nn_model")))' in source
    assert f"const unsigned int se_model_len = {len(data)}u;" in source
    assert "extern const uint8_t se_model[];" in header and "extern const unsigned int se_model_len;" in header
    assert digest in header and digest in source and "aligned to 16 bytes" in header and '"nn_model"' in header
    (tmp_path / "se_model.c").write_text(source)
    (tmp_path / "se_model.h").write_text(header)
    program = """
#include <stdint.h>
#include <stdio.h>
#include "se_model.h"
int main(void) {
    if (((uintptr_t)se_model & 15u) != 0) return 3;
    return fwrite(se_model, 1, se_model_len, stdout) == se_model_len ? 0 : 4;
}
"""
    (tmp_path / "main.c").write_text(program)
    built = run(["cc", "-std=c99", "-Wall", "-Wextra", "-Werror", f"-I{tmp_path}", str(tmp_path / "main.c"),
                 str(tmp_path / "se_model.c"), "-o", str(tmp_path / "prog")])
    assert built.returncode == 0, built.stderr
    out = subprocess.run([str(tmp_path / "prog")], capture_output=True, timeout=60)
    assert out.returncode == 0 and out.stdout == data
    obj = run(["cc", "-std=c99", "-c", str(tmp_path / "se_model.c"), f"-I{tmp_path}", "-o", str(tmp_path / "m.o")])
    assert obj.returncode == 0, obj.stderr
    sections = run(["objdump", "-h", str(tmp_path / "m.o")]).stdout
    line = next(line for line in sections.splitlines() if " nn_model " in line)
    assert int(line.split()[2], 16) == len(data) and line.split()[-1] == "2**4"   # size, 16-byte alignment
    other, other_h = model_array_source(b"\x01\x02", symbol="denoiser", section=".rodata.nn")
    assert "const uint8_t denoiser[]" in other and 'section(".rodata.nn")' in other and "DENOISER_H" in other_h
    named, named_h = model_array_source(b"\x01", stem="model_data")    # files named apart from the symbol
    assert '#include "model_data.h"' in named and "MODEL_DATA_H" in named_h and "se_model[]" in named
    for bad in ({"symbol": "2bad"}, {"section": 'a"b'}, {"stem": "model-data"}):
        with pytest.raises(ValueError):
            model_array_source(data, **bad)


# --------------------------------------------------------------------------- golden.py

@pytest.mark.slow
def test_golden_vectors_files_shapes_and_reference(golden, models, noisy_test_file, tmp_path):
    test_pair = noisy_test_file
    folder = golden["lstm-int16"]
    meta = json.loads((folder / "golden.json").read_text())
    hop = FEATURES.hop
    assert meta["format"] == 1 and meta["frames"] == FRAMES and meta["window"] == "sqrt_hann_periodic"
    assert (meta["sample_rate"], meta["fft_size"], meta["hop"], meta["bins"]) == (16000, 512, 256, 257)
    assert meta["log_floor"] == FEATURES.log_floor and meta["activation_dtype"] == "int16"
    io = tflite_io(models["lstm-int16"])
    expected_files = {"golden.json", "audio_in.f32", "features.f32", "audio_out.f32",
                      *(f"in_{t.name}.bin" for t in io.inputs), *(f"out_{t.name}.bin" for t in io.outputs)}
    assert {p.name for p in folder.iterdir()} - {"model_io.h"} == expected_files
    for name, info in meta["files"].items():
        array = np.fromfile(folder / name, np.dtype(info["dtype"]).newbyteorder("<"))
        assert array.size == int(np.prod(info["shape"])) and info["shape"][0] in (FRAMES, FRAMES * hop, (FRAMES - 1) * hop)
        assert info["what"]
    assert meta["files"]["audio_out.f32"]["shape"] == [(FRAMES - 1) * hop]
    assert set(meta["tensors"]) == {t.name for t in io.inputs + io.outputs}
    for tensor in io.inputs + io.outputs:
        entry = meta["tensors"][tensor.name]
        assert (entry["scale"], entry["zero_point"], entry["position"]) == (tensor.scale, tensor.zero_point, tensor.position)
        assert meta["files"][entry["file"]]["dtype"] == "int16"
    assert [(p["input"], p["output"], p["same_quantization"]) for p in meta["state_pairs"]] == \
        [(p.input, p.output, p.same_quantization) for p in io.state_pairs]

    def load(name):
        info = meta["files"][name]
        return np.fromfile(folder / name, np.dtype(info["dtype"]).newbyteorder("<")).reshape(info["shape"])

    audio = test_pair.noisy[:FRAMES * hop]
    np.testing.assert_array_equal(load("audio_in.f32"), audio)
    feats, spectrum = compute_features(audio, FEATURES)
    np.testing.assert_array_equal(load("features.f32"), feats[:FRAMES])
    feat_t = io.input(FEATURES_INPUT)
    np.testing.assert_array_equal(load("in_features.bin"), quantize(feats[:FRAMES], feat_t.scale, feat_t.zero_point, np.int16))
    mask_t = io.output(MASK_OUTPUT)
    mask = dequantize(load("out_mask.bin"), mask_t.scale, mask_t.zero_point)
    assert mask.min() < 0.2 and mask.max() > 0.8                # the trained mask is not a constant
    np.testing.assert_array_equal(load("audio_out.f32"),
                                  enhance_with_mask(spectrum[:FRAMES], mask, FEATURES, (FRAMES - 1) * hop))
    for pair in io.state_pairs:
        state_in = load(f"in_{pair.input}.bin")
        assert (state_in[0] == io.input(pair.input).zero_point).all()
        assert len(np.unique(state_in)) > 20                    # non-trivial states
        inp, out = io.input(pair.input), io.output(pair.output)
        np.testing.assert_array_equal(state_in[1:], requantize(load(f"out_{pair.output}.bin")[:-1], out.scale,
                                                               out.zero_point, inp.scale, inp.zero_point, np.int16))

    # hash-stable: the same inputs write the same bytes
    again = tmp_path / "again"
    returned = write_golden_vectors(models["lstm-int16"], test_pair.noisy, FEATURES, FRAMES, again,
                                    source=f"small_dataset test {test_pair.name}")
    assert returned == meta
    for name in expected_files:
        assert hashlib.sha256((again / name).read_bytes()).digest() == hashlib.sha256((folder / name).read_bytes()).digest(), name
    assert not [p for p in again.iterdir() if p.name.startswith(".tmp-")]

    with pytest.raises(ValueError, match="frames need"):
        write_golden_vectors(models["gru-int8"], test_pair.noisy[:FRAMES * hop - 1], FEATURES, FRAMES, tmp_path / "short")
    with pytest.raises(ValueError, match="at least 2 frames"):
        write_golden_vectors(models["gru-int8"], test_pair.noisy, FEATURES, 1, tmp_path / "one")


def test_model_io_h_and_the_descriptor_header_define_the_same_state_pair_type():
    """model_io.h stays usable alone, so it repeats se_state_pair_t under the same include guard as
    se_model_desc.h; whichever a firmware includes first wins, so the two must be the same struct."""
    from sepipe.c_export import _PAIR_STRUCT

    text = (STUB / "se_model_desc.h").read_text()
    match = re.search(r"#ifndef SE_STATE_PAIR_T_DEFINED\n.*?#endif", text, re.S)
    assert match, "se_model_desc.h lost its se_state_pair_t guard"
    squash = lambda lines: [re.sub(r"\s+", " ", line).strip() for line in lines if line.strip()]
    assert squash(match.group(0).splitlines()) == squash(_PAIR_STRUCT)
