"""A mixed-precision model bundles and verifies bit for bit: an LSTM whose cell-state path is 16x8 and the
rest int8 (`precision: {default: int8, cell_state: int16x8}`), so its cell-state input and output are int16
and every other input and output int8. model_io.h gives each tensor its own type; the C frame loop (host,
and the emulated Cortex-M55 when QEMU is there) feeds each state back in its own type and quantisation."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from bundle_runs import TARGET, run_to_compile, tiny_config
from sepipe.bundle import make_bundle, verify_bundle

pytestmark = pytest.mark.slow   # trains and converts a tiny model

STUB = Path(__file__).resolve().parents[1] / "firmware_stub"
FRAMES = 100
LSTM = {"family": "lstm", "input_units": 16, "rnn_units": 16, "rnn_layers": 1, "dense_units": 16}
VARIANTS = [{"name": "ptq", "kind": "ptq"},
            {"name": "cell16", "kind": "ptq", "precision": {"default": "int8", "cell_state": "int16x8"}}]


@pytest.fixture(scope="module")
def mixed_bundle(small_dataset, small_data_config, tmp_path_factory) -> Path:
    cfg = run_to_compile(tiny_config(small_data_config, tmp_path_factory.mktemp("runs"), name="tinymix", model=LSTM,
                                     variants=VARIANTS), variants=["cell16"])
    return make_bundle(cfg.run_dir, "cell16", TARGET, out_dir=tmp_path_factory.mktemp("bundles"), frames=FRAMES)


def _stub(target: str, bundle: Path, build: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["make", "-C", str(STUB), target, f"GOLDEN={bundle / 'golden'}", f"MODEL_IO={bundle / 'c'}",
                           f"BUILD={build}"], capture_output=True, text=True, timeout=600)


def test_mixed_model_bundles_with_a_type_per_tensor_and_verifies_bit_for_bit(mixed_bundle):
    m = json.loads((mixed_bundle / "model_manifest.json").read_text())
    types = {t["name"]: t["dtype"] for side in ("inputs", "outputs") for t in m["tensors"][side]}
    assert types == {"features": "int8", "mask": "int8", "rnn_1_h": "int8", "rnn_1_h_out": "int8",
                     "rnn_1_c": "int16", "rnn_1_c_out": "int16"}
    assert m["model"]["io_dtype"] == "mixed" and m["model"]["scheme"] == "mixed"
    assert isinstance(m["call_contract"]["qmin_qmax"], str) and "per tensor" in m["call_contract"]["qmin_qmax"]
    golden = json.loads((mixed_bundle / "golden" / "golden.json").read_text())
    assert golden["activation_dtype"] == "mixed"
    assert np.fromfile(mixed_bundle / "golden" / "in_rnn_1_c.bin", "<i2").size == FRAMES * 16
    header = (mixed_bundle / "c" / "model_io.h").read_text()
    assert '#define SE_IO_DTYPE "mixed"' in header and "#define SE_ACT_BITS 0" in header
    assert "typedef int8_t se_features_t;" in header and "typedef int8_t se_mask_t;" in header
    assert "#define SE_STATE_IN16_ELEMENTS 16" in header and "#define SE_STATE_IN8_ELEMENTS 16" in header
    assert re.search(r'\{"rnn_1_c", "rnn_1_c_out", \d+, \d+, 16, 16, 16, 0, 0,', header)
    assert re.search(r'\{"rnn_1_h", "rnn_1_h_out", \d+, \d+, 16, 8, 8, 0, 0,', header)
    assert "mixed precision" in (mixed_bundle / "README.md").read_text()
    report = verify_bundle(mixed_bundle.with_suffix(".zip"))
    assert report.ok, report.problems


def test_c_frame_loop_passes_the_mixed_bundles_golden_vectors(mixed_bundle, tmp_path):
    if not (shutil.which("make") and shutil.which("cc")):
        pytest.skip("no make / C compiler")
    proc = _stub("host-test", mixed_bundle, tmp_path / "build")
    assert proc.returncode == 0 and proc.stdout.count("\nPASS") == 2, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "io=mixed act_bits=0 features_bits=8 mask_bits=8" in proc.stdout
    assert re.search(r"state=rnn_1_c<-rnn_1_c_out same_quantization=\d bits=16<-16", proc.stdout)
    assert "state_feedback_mismatches=0" in proc.stdout and "loop_state_mismatches=0" in proc.stdout
    if shutil.which("qemu-system-arm") and shutil.which("arm-none-eabi-gcc"):   # `make firmware-toolchain`
        proc = _stub("qemu-test", mixed_bundle, tmp_path / "build")
        assert proc.returncode == 0 and "\nPASS\n" in proc.stdout, proc.stdout[-3000:] + proc.stderr[-2000:]
        manifest = json.loads((mixed_bundle / "model_manifest.json").read_text())
        assert manifest["frame_loop"]["measured"] is True
