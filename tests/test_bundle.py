"""The firmware hand-off bundle: built from a tiny real run (converter, Vela, TFLite Micro), verified,
tampered with, refused where it must be, reproducible to the byte."""

import csv
import hashlib
import json
import re
import shutil
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest

from sepipe import artifacts
from sepipe import experiment as exp
from sepipe.bundle import BundleError, c_array_bytes, make_bundle, probe_tflm_arena, verify_bundle
from sepipe.cli import main
from sepipe.quantize.model_io import tflite_io
from bundle_runs import TARGET, run_to_compile as _run_to_compile, tiny_config

pytestmark = pytest.mark.slow   # every test here trains or converts a model

FRAMES = 200


@pytest.fixture(scope="module")
def tiny_run(small_dataset, small_data_config, tmp_path_factory):
    return _run_to_compile(tiny_config(small_data_config, tmp_path_factory.mktemp("runs")))


@pytest.fixture(scope="module")
def bundle(tiny_run, tmp_path_factory):
    return make_bundle(tiny_run.run_dir, "ptq", TARGET, out_dir=tmp_path_factory.mktemp("bundles"), frames=FRAMES)


def _manifest(folder):
    return json.loads((folder / "model_manifest.json").read_text())


def _copy(folder, tmp_path):
    return shutil.copytree(folder, tmp_path / folder.name)


def _flip(path, offset):
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def test_bundle_has_every_file_and_sha256sums_covers_them(bundle):
    name = "tinyb_ptq"
    expected = {f"model/{name}.tflite", f"model/{name}_vela_{TARGET}.tflite", "c/model_data.c",
                "c/model_data.h", "c/model_io.h", "model_manifest.json", "README.md", "SHA256SUMS",
                "golden/golden.json", "golden/audio_in.f32", "golden/features.f32", "golden/audio_out.f32",
                "golden/in_features.bin", "golden/in_rnn_1_h.bin", "golden/out_mask.bin", "golden/out_rnn_1_h_out.bin",
                f"vela/{name}_vela_{TARGET}_summary.csv", f"vela/{name}_vela_{TARGET}_per-layer.csv"}
    files = {p.relative_to(bundle).as_posix() for p in bundle.rglob("*") if p.is_file()}
    assert expected <= files
    assert bundle.name == f"tinyb_ptq_{TARGET}" and bundle.with_suffix(".zip").is_file()
    sums = dict(reversed(line.split("  ", 1)) for line in (bundle / "SHA256SUMS").read_text().splitlines())
    assert set(sums) == files - {"SHA256SUMS"}
    assert set(_manifest(bundle)["files"]) == files - {"SHA256SUMS", "model_manifest.json"}
    if shutil.which("sha256sum"):
        subprocess.run(["sha256sum", "--quiet", "-c", "SHA256SUMS"], cwd=bundle, check=True)
    assert not list(bundle.parent.glob(".tmp-*"))


def test_verify_passes_for_the_folder_and_the_zip(bundle, capsys):
    for path in (bundle, bundle.with_suffix(".zip")):
        report = verify_bundle(path)
        assert report.ok, report.problems
        assert report.frames == FRAMES and report.files_checked == len(_manifest(bundle)["files"]) + 1
    assert main(["-q", "verify-bundle", str(bundle.with_suffix(".zip"))]) == 0
    assert "equal bit for bit" in capsys.readouterr().out


@pytest.mark.parametrize("rel, offset", [("golden/out_mask.bin", 7), ("model/tinyb_ptq_vela_ethos-u55-128.tflite", 200)])
def test_a_flipped_byte_fails_verification_naming_the_file(bundle, tmp_path, capsys, rel, offset):
    copy = _copy(bundle, tmp_path)
    _flip(copy / rel, offset)
    report = verify_bundle(copy)
    assert not report.ok
    assert any(p.startswith(f"{rel}: sha256 differs") for p in report.problems)
    if rel.startswith("golden/"):        # the TFLite Micro re-run catches it too
        assert any(p.startswith(f"{rel}: differs from the TFLite Micro re-run") for p in report.problems)
    else:                                # and the C array no longer equals the Vela model
        assert any(p.startswith("c/model_data.c: the array") for p in report.problems)
    assert main(["-q", "verify-bundle", str(copy)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out == report.problems


def test_zip_is_byte_identical_when_bundled_twice(tiny_run, bundle, tmp_path):
    again = make_bundle(tiny_run.run_dir, "ptq", TARGET, out_dir=tmp_path, frames=FRAMES)
    zip_bytes = bundle.with_suffix(".zip").read_bytes()
    assert again.with_suffix(".zip").read_bytes() == zip_bytes
    with zipfile.ZipFile(bundle.with_suffix(".zip")) as archive:
        names = archive.namelist()
        assert names == sorted(names) and all(n.startswith(bundle.name + "/") for n in names)
        assert {i.date_time for i in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}


def test_refuses_an_unknown_variant_a_target_never_compiled_and_a_stale_compile(tiny_run, tmp_path, capsys):
    with pytest.raises(BundleError, match=r"variant 'w90' has no converted model; converted variants: ptq"):
        make_bundle(tiny_run.run_dir, "w90", TARGET, out_dir=tmp_path)
    with pytest.raises(BundleError, match=rf"never compiled for target 'ethos-u85-256'; compiled targets: {TARGET}"):
        make_bundle(tiny_run.run_dir, "ptq", "ethos-u85-256", out_dir=tmp_path)
    code = main(["-q", "bundle", str(tiny_run.run_dir), "--variant", "ptq", "--target", "ethos-u65-256",
                 "--out", str(tmp_path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and str(tiny_run.run_dir) in err[0] and "ethos-u65-256" in err[0]
    stale = shutil.copytree(tiny_run.run_dir, tmp_path / "runs" / tiny_run.name)
    tflite = stale / exp.RunPaths(tiny_run).tflite("ptq").relative_to(tiny_run.run_dir)
    tflite.write_bytes(tflite.read_bytes() + b"\0" * 16)   # a reconverted model, not compiled since
    with pytest.raises(BundleError, match=r"compile of variant 'ptq' for target 'ethos-u55-128' is stale"):
        make_bundle(stale, "ptq", TARGET, out_dir=tmp_path)
    assert not list(tmp_path.glob("*.zip"))


def test_c_array_is_the_vela_model_16_byte_aligned_in_its_section(bundle, tmp_path):
    text = (bundle / "c" / "model_data.c").read_text()
    vela = (bundle / f"model/tinyb_ptq_vela_{TARGET}.tflite").read_bytes()
    assert re.search(r'se_model\[\]\s*__attribute__\(\(aligned\(16\), section\("nn_model"\)\)\)', text)
    assert '#include "model_data.h"' in text and "se_model" in (bundle / "c" / "model_data.h").read_text()
    assert c_array_bytes(text, "se_model") == vela
    if not shutil.which("cc"):
        pytest.skip("no C compiler")
    obj = tmp_path / "model_data.o"
    subprocess.run(["cc", "-c", "-I", str(bundle / "c"), str(bundle / "c" / "model_data.c"), "-o", str(obj)],
                   check=True)
    if shutil.which("objdump"):
        sections = subprocess.run(["objdump", "-h", str(obj)], capture_output=True, text=True, check=True).stdout
        row = next(line.split() for line in sections.splitlines() if " nn_model " in f" {line} ")
        assert int(row[2], 16) == len(vela) and row[-1] == "2**4"
    if shutil.which("nm"):
        symbols = subprocess.run(["nm", str(obj)], capture_output=True, text=True, check=True).stdout
        assert re.search(r"^0+ R se_model$", symbols, re.M)


def test_manifest_arena_is_at_least_the_measured_minimum_and_tflm_runs_with_it(bundle):
    arena = _manifest(bundle)["tflm_arena"]
    ref = arena["reference_kernels"]
    low = ref["measured_min_bytes"]
    assert ref["recommended_bytes"] >= low * 1.1 and ref["recommended_bytes"] % 1024 == 0
    model = (bundle / ref["model"]).read_bytes()
    # the minimum and the recommended size run; one byte short fails (or crashes the Python interpreter)
    results = probe_tflm_arena(model, [low - 1, low, ref["recommended_bytes"]])
    assert results[low] == results[ref["recommended_bytes"]] == "ok"
    assert results[low - 1] in ("fail", "crash")
    assert arena["vela_model"]["measured"] is False and arena["vela_model"]["sram_memory_used_bytes"] > 0


def test_manifest_arena_per_kernel_set_is_derived_from_the_models_own_layers(bundle):
    cortex = _manifest(bundle)["tflm_arena"]["cortex_m"]
    ref, cmsis = cortex["reference"], cortex["cmsis_nn"]
    assert ref["bytes"] == _manifest(bundle)["tflm_arena"]["reference_kernels"]["measured_min_bytes"]
    # tiny GRU: input FC 16, rnn_1 two FCs of 3 x 16 gates, dense_1 and dense_2 16, mask 257: kernel sums + 32 B each
    assert [fc["out_channels"] for fc in cmsis["fully_connected"]] == [16, 48, 48, 16, 16, 257]
    assert cmsis["cmsis_nn_extra_bytes"] == sum(-(-4 * c // 16) * 16 + 32 for c in (16, 48, 48, 16, 16, 257))
    assert cmsis["bytes"] == ref["bytes"] + cmsis["cmsis_nn_extra_bytes"]
    assert cmsis["recommended_bytes"] >= cmsis["bytes"] * 1.1 and cmsis["recommended_bytes"] % 1024 == 0
    readme = (bundle / "README.md").read_text()
    assert f"| CMSIS-NN (Cortex-M default) | {cmsis['bytes']} | **{cmsis['recommended_bytes']}** |" in readme


def test_manifest_describes_tensors_states_features_vela_and_tools(tiny_run, bundle):
    m = _manifest(bundle)
    io = tflite_io((bundle / m["model"]["tflite"]).read_bytes())
    assert [t["name"] for t in m["tensors"]["inputs"]] == [t.name for t in io.inputs]
    assert all(t["dtype"] == "int8" and "scale" in t and "zero_point" in t and "position" in t
               for side in ("inputs", "outputs") for t in m["tensors"][side])
    pairs = {p["input"]: p for p in m["state_pairs"]}
    assert set(pairs) == {"rnn_1_h"} and pairs["rnn_1_h"]["output"] == "rnn_1_h_out"
    for pair in io.state_pairs:
        assert pairs[pair.input]["rule"] == ("copy" if pair.same_quantization else "requantize")
    assert m["features"]["fft_size"] == 512 and m["features"]["hop"] == 256 and m["features"]["sample_rate"] == 16000
    assert "sqrt-Hann" in m["features"]["window"] and m["features"]["log_floor"] == pytest.approx(1e-7)
    summary = next(csv.DictReader((bundle / m["vela"]["summary_csv"]).open()))
    assert m["vela"]["figures"]["cycles_total"] == int(float(summary["cycles_total"]))
    assert m["vela"]["figures"]["sram_memory_used_kib"] == pytest.approx(float(summary["sram_memory_used"]))
    assert m["tool_versions"]["ethos-u-vela"] == "5.2.0" and "tflite-micro" in m["tool_versions"]
    audio = m["golden"]["test_audio"]
    assert audio["split"] == "test" and audio["samples"] == FRAMES * 256 and audio["files"][0].startswith("test/noisy/")
    assert m["source"]["tflite_sha256"] == artifacts.sha256_file(exp.RunPaths(tiny_run).tflite("ptq"))
    assert m["model"]["io_dtype"] == "int8" and m["model"]["scheme"] == m["source"]["scheme"] == "int8"
    assert m["contract"]["family"] == "gru" and m["contract"]["heads"][0]["name"] == "mask"
    assert [s["input"] for s in m["contract"]["states"]] == ["rnn_1_h"]
    assert "tinyb / ptq on ethos-u55-128" in (bundle / "README.md").read_text()


def test_bundle_cli_accepts_the_run_folder_and_has_help(tiny_run, tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main(["bundle", "--help"])
    help_text = capsys.readouterr().out
    assert info.value.code == 0 and "--frames" in help_text and "--c-prefix" in help_text
    assert main(["-q", "bundle", str(tiny_run.run_dir), "--target", "H128", "--out", str(tmp_path),
                 "--frames", "20", "--c-prefix", "enhancer"]) == 0
    out = capsys.readouterr().out
    assert f"tinyb_ptq_{TARGET}" in out and "CMSIS-NN recommended" in out
    assert verify_bundle(tmp_path / f"tinyb_ptq_{TARGET}.zip").ok
    assert "enhancer_desc" in (tmp_path / f"tinyb_ptq_{TARGET}" / "c" / "model_desc.c").read_text()
    assert main(["-q", "bundle", str(tiny_run.run_dir), "--target", "H128", "--out", str(tmp_path / "bad"),
                 "--c-prefix", "9lives"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "'--c-prefix' = '9lives'" in err[0]


def _firmware_host_test(folder, build):
    """firmware_stub's C frame loop against the bundle's golden vectors, built with the bundle's model_io.h."""
    if not (shutil.which("make") and shutil.which("cc")):
        pytest.skip("no make / C compiler")
    stub = Path(__file__).resolve().parents[1] / "firmware_stub"
    proc = subprocess.run(["make", "-s", "-C", str(stub), "host-test", f"GOLDEN={folder / 'golden'}",
                           f"MODEL_IO={folder / 'c'}", f"BUILD={build}"], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.count("PASS") == 2, proc.stdout[-2000:] + proc.stderr[-2000:]


def test_firmware_stub_passes_the_bundles_golden_vectors_with_its_model_io_h(bundle, tmp_path):
    _firmware_host_test(bundle, tmp_path / "build")


@pytest.mark.slow
def test_a_16x8_lstm_model_bundles_and_verifies(small_dataset, small_data_config, tmp_path):
    cfg = _run_to_compile(tiny_config(small_data_config, tmp_path / "runs", name="tiny16",
                                      model={"family": "lstm", "input_units": 0, "rnn_units": 8, "rnn_layers": 1,
                                             "dense_units": 0},
                                      convert={"activations": "int16"}))
    frames = 400   # longer than any one small test mixture: mixtures are joined
    folder = make_bundle(cfg.run_dir, "ptq", TARGET, out_dir=tmp_path / "out", frames=frames)
    m = _manifest(folder)
    assert m["model"]["io_dtype"] == "int16" and m["call_contract"]["qmin_qmax"] == [-32768, 32767]
    assert m["model"]["scheme"] == "int16x8" and m["model"]["tflite"] == "model/tiny16_ptq.tflite"
    assert {p["input"] for p in m["state_pairs"]} == {"rnn_1_h", "rnn_1_c"}
    assert m["golden"]["test_audio"]["joined"] and m["golden"]["test_audio"]["samples"] == frames * 256
    states = np.fromfile(folder / "golden" / "in_rnn_1_c.bin", dtype="<i2")
    assert states.size == frames * 8
    report = verify_bundle(folder.with_suffix(".zip"))
    assert report.ok, report.problems
    _firmware_host_test(folder, tmp_path / "build")
    digest = hashlib.sha256(folder.with_suffix(".zip").read_bytes()).hexdigest()
    assert digest == hashlib.sha256(
        make_bundle(cfg.run_dir, "ptq", TARGET, out_dir=tmp_path / "again", frames=frames)
        .with_suffix(".zip").read_bytes()).hexdigest()
