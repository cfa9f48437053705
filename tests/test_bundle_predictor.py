"""The quality predictor in the hand-off bundle (issue 17: `sepipe bundle ... --predictor RUN`): a tiny enhancer run
and a tiny predictor run (binary variant, one epoch, compiled for the same target) bundled as one image's two
models; the files and hashes, verify-bundle on it and on a tampered predictor, the options' one-line errors,
and firmware_stub's two-model quality test on the bundle's own files."""

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from sepipe.bundle import make_bundle, verify_bundle
from sepipe.cli import main
from sepipe.errors import ConfigError
from bundle_runs import TARGET, run_to_compile, tiny_config

pytestmark = pytest.mark.slow   # trains and converts two tiny models

FRAMES = 200                    # 199 log-mel frames: three back-to-back windows of the 1 s (61-frame) predictor
STUB = Path(__file__).resolve().parents[1] / "firmware_stub"


@pytest.fixture(scope="module")
def runs(small_dataset, small_data_config, tmp_path_factory):
    from sepipe.quality_predictor.config import predictor_from_dict
    from sepipe.quality_predictor.stages import run_predictor

    root = tmp_path_factory.mktemp("runs")
    enhancer = run_to_compile(tiny_config(small_data_config, root))
    qp = predictor_from_dict({
        "name": "qp_tiny", "runs_dir": str(root),
        "data": {"source": "debian", "size": "small", "cache_dir": small_data_config.cache_dir},
        "clips": {"seconds": 1.0, "per_file": 1, "train_files": 6, "eval_files": 2},
        "predictor": {"mels": 16, "channels": [4, 4, 4, 8], "dense_units": 8, "variants": ["binary"],
                      "targets": ["pesq", "dnsmos_ovrl"]},
        "train": {"epochs": 1, "batch_size": 4},
        "compile": {"targets": [TARGET]},
    }, "tiny")
    run_predictor(qp, until="compile:binary", progress=False)
    return {"enhancer": enhancer.run_dir, "predictor": qp.run_dir}


@pytest.fixture(scope="module")
def bundle(runs, tmp_path_factory):
    return make_bundle(runs["enhancer"], "ptq", TARGET, out_dir=tmp_path_factory.mktemp("bundles"), frames=FRAMES,
                       predictor=(runs["predictor"], "binary"))


def _manifest(folder):
    return json.loads((folder / "model_manifest.json").read_text())


def test_the_bundle_holds_the_predictor_files_all_hashed(bundle):
    name = "qp_tiny_binary"
    expected = {f"predictor/{name}.tflite", f"predictor/{name}_vela_{TARGET}.tflite",
                f"predictor/vela/{name}_vela_{TARGET}_summary.csv", "c/quality_data.c", "c/quality_data.h",
                "c/quality_desc.c", "c/quality_ops.cc", "c/quality_ops.h",
                *(f"predictor/golden/{f}" for f in ("logmel.f32", "in_windows.bin", "out_scores.bin", "scores.f32",
                                                    "quality.json"))}
    files = {p.relative_to(bundle).as_posix() for p in bundle.rglob("*") if p.is_file()}
    assert expected <= files
    sums = dict(reversed(line.split("  ", 1)) for line in (bundle / "SHA256SUMS").read_text().splitlines())
    assert set(sums) == files - {"SHA256SUMS"}
    manifest = _manifest(bundle)
    assert set(manifest["files"]) == files - {"SHA256SUMS", "model_manifest.json"}
    qp = manifest["predictor"]
    assert qp["source"]["variant"] == "binary" and qp["source"]["target"] == TARGET
    assert qp["model"]["c_array"]["holds"] == f"predictor/{name}_vela_{TARGET}.tflite"
    assert qp["features"]["frames"] == 61 and qp["features"]["mels"] == 16 and qp["golden"]["windows"] == 3
    assert qp["scores"]["targets"] == ["pesq", "dnsmos_ovrl"] and len(qp["scores"]["target_std"]) == 2
    arena = qp["tflm_arena"]
    assert arena["cortex_m"]["cmsis_nn"]["derived"] is False          # convolution buffers: stated, not guessed
    shared = arena["shared"]
    enhancer = manifest["tflm_arena"]["reference_kernels"]
    assert shared["derived"] and shared["separate_arenas_bytes"] == (
        enhancer["measured_min_bytes"] + arena["reference_kernels"]["measured_min_bytes"])
    assert shared["shared_head_bytes"] <= shared["separate_arenas_bytes"] and shared["not_known"]
    desc = (bundle / "c" / "quality_desc.c").read_text()
    assert "const se_quality_desc_t se_qp_desc = {" in desc and "se_qp_window[512]" in desc
    assert "quality predictor" in (bundle / "README.md").read_text()
    assert not list(bundle.parent.glob(".tmp-*"))


def test_verify_passes_and_a_tampered_predictor_tflite_fails_in_one_line(bundle, tmp_path, capsys):
    for path in (bundle, bundle.with_suffix(".zip")):
        report = verify_bundle(path)
        assert report.ok, report.problems
        assert report.predictor_windows == 3 and "3 quality-predictor windows" in report.summary()
    copy = shutil.copytree(bundle, tmp_path / bundle.name)
    model = copy / "predictor" / "qp_tiny_binary.tflite"
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0x01
    model.write_bytes(bytes(data))
    assert main(["-q", "verify-bundle", str(copy)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert "predictor/qp_tiny_binary.tflite: sha256 differs from SHA256SUMS" in out
    # the out_scores.bin the golden vectors hold are re-run: a window moved by two steps is caught too
    copy2 = shutil.copytree(bundle, tmp_path / "two")
    windows = copy2 / "predictor" / "golden" / "in_windows.bin"
    raw = bytearray(windows.read_bytes())
    raw[5] = (raw[5] + 2) % 256 if raw[5] < 120 or raw[5] > 128 else (raw[5] - 2) % 256
    windows.write_bytes(bytes(raw))
    problems = verify_bundle(copy2).problems
    assert any(p.startswith("predictor/golden/in_windows.bin: differs from the windows of golden/audio_out.f32")
               for p in problems)


def test_a_bundle_without_the_predictor_is_as_before(runs, bundle, tmp_path):
    plain = make_bundle(runs["enhancer"], "ptq", TARGET, out_dir=tmp_path, frames=FRAMES)
    assert "predictor" not in _manifest(plain) and not (plain / "predictor").exists()
    assert not (plain / "c" / "quality_desc.c").exists()
    report = verify_bundle(plain)
    assert report.ok and report.predictor_windows is None and "predictor" not in report.summary()
    with_qp = {p.relative_to(bundle).as_posix(): p.read_bytes() for p in (bundle / "golden").iterdir()}
    assert with_qp == {p.relative_to(plain).as_posix(): p.read_bytes() for p in (plain / "golden").iterdir()}


@pytest.mark.parametrize("extra, option", [
    (["--predictor", "/no/such/run"], "--predictor"),
    (["--predictor-variant", "float"], "--predictor-variant"),
    (["--frames", "40"], "--frames"),
    (["--predictor-c-prefix", "se_model"], "--predictor-c-prefix"),
    (["--predictor-c-prefix", "9bad"], "--predictor-c-prefix"),
])
def test_bad_predictor_options_are_one_line_exit_2(runs, tmp_path, capsys, extra, option):
    args = ["-q", "bundle", str(runs["enhancer"]), "--target", TARGET, "--out", str(tmp_path),
            "--predictor", str(runs["predictor"]), *extra]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and f"'{option}'" in err, err
    assert not list(tmp_path.glob("*.zip"))


def test_a_target_the_predictor_was_not_compiled_for_is_one_line(runs):
    from sepipe.bundle.predictor_source import find_predictor

    with pytest.raises(ConfigError, match=rf"'--target' = 'ethos-u85-256'.*compiled for: {TARGET}"):
        find_predictor(runs["predictor"], "binary", "ethos-u85-256")


def test_firmware_stub_runs_both_models_of_the_bundle(bundle, tmp_path):
    if not shutil.which("cc"):
        pytest.skip("no C compiler")
    proc = subprocess.run(["make", "-C", str(STUB), "quality-test", f"MODEL_IO={bundle / 'c'}",
                           f"GOLDEN={bundle / 'golden'}", f"QUALITY_GOLDEN={bundle / 'predictor' / 'golden'}",
                           f"BUILD={tmp_path / 'build'}"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "\nPASS\n" in proc.stdout and "QUALITY PASS" in proc.stdout
