"""firmware_stub's frame loop on the emulated Cortex-M55: `make -C firmware_stub qemu-test` on real bundles.

Three tiny real runs are bundled (converter, Vela, TFLite Micro golden vectors): a demo-like GRU (two layers,
int8), a 16x8 LSTM (int16 activations, the cell state requantised) and the GRU with a complex mask. For each, the frame loop and the host
test's checks are cross-compiled for the Cortex-M55 and run on QEMU's mps3-an547 with semihosting; QEMU's
exit status is the verdict, and a tampered golden file must fail it. Needs arm-none-eabi-gcc, newlib and
qemu-system-arm: installed by `make firmware-toolchain` when missing; skipped only when that fails.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from bundle_runs import DEMO_LIKE_GRU, LSTM_16X8, TARGET, run_to_compile, tiny_config
from sepipe.bundle import make_bundle

pytestmark = pytest.mark.slow   # trains and converts three tiny models

ROOT = Path(__file__).resolve().parents[1]
STUB = ROOT / "firmware_stub"
FRAMES = 100
QEMU_STATUS = {"PASS": 0, "FAIL": 1}


def _toolchain() -> None:
    """arm-none-eabi-gcc, newlib and qemu-system-arm, installed by the top Makefile when missing."""
    if shutil.which("arm-none-eabi-gcc") and shutil.which("qemu-system-arm"):
        return
    subprocess.run(["make", "-s", "-C", str(ROOT), "firmware-toolchain"], capture_output=True, text=True,
                   timeout=900)
    missing = [tool for tool in ("arm-none-eabi-gcc", "qemu-system-arm") if not shutil.which(tool)]
    if missing:
        pytest.skip(f"{', '.join(missing)} missing and `make firmware-toolchain` could not install it (apt-get)")


@pytest.fixture(scope="module")
def bundles(small_dataset, small_data_config, tmp_path_factory) -> dict[str, Path]:
    _toolchain()
    runs, out = tmp_path_factory.mktemp("runs"), tmp_path_factory.mktemp("bundles")
    made = {}
    complex_gru = {**DEMO_LIKE_GRU, "mask": "complex"}     # 2 x SE_BINS gains: se_apply_complex_mask
    for key, model, convert in (("gru-int8", DEMO_LIKE_GRU, None), ("lstm-16x8", *LSTM_16X8),
                                ("gru-complex-int8", complex_gru, None)):
        cfg = run_to_compile(tiny_config(small_data_config, runs, name=key.replace("-", "_"), model=model,
                                         convert=convert))
        made[key] = make_bundle(cfg.run_dir, "ptq", TARGET, out_dir=out, frames=FRAMES)
    return made


def qemu_test(bundle: Path, build: Path, golden: Path | None = None) -> subprocess.CompletedProcess:
    golden = golden or bundle / "golden"
    return subprocess.run(["make", "-C", str(STUB), "qemu-test", f"GOLDEN={golden}", f"MODEL_IO={bundle / 'c'}",
                           f"BUILD={build}", f"QEMU_JSON={build / 'frame_loop.json'}"],
                          capture_output=True, text=True, timeout=600)


def _results(stdout: str) -> dict[str, str]:
    return dict(pair.split("=", 1) for line in stdout.splitlines() if line.startswith("RESULT ")
                for pair in line.split()[1:] if "=" in pair)


def _qemu_status(proc: subprocess.CompletedProcess) -> int:
    """QEMU's exit status, from make's report of the failed recipe (0 when make succeeded)."""
    if proc.returncode == 0:
        return 0
    return int(proc.stderr.rsplit("Error ", 1)[1].split()[0])


@pytest.mark.parametrize("key", ["gru-int8", "lstm-16x8", "gru-complex-int8"])
def test_frame_loop_passes_the_golden_vectors_on_the_emulated_m55(bundles, key, tmp_path):
    proc = qemu_test(bundles[key], tmp_path / "build")
    print("\n".join(line for line in proc.stdout.splitlines() if line.startswith(("RESULT", "PASS", "FAIL"))))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "== qemu_test (Cortex-M55, mps3-an547, float32 FFT)" in proc.stdout and "\nPASS\n" in proc.stdout
    r = _results(proc.stdout)
    assert int(r["act_bits"]) == (16 if key == "lstm-16x8" else 8) and int(r["frames"]) == FRAMES
    assert int(r["state_feedback_mismatches"]) == 0 and int(r["loop_state_mismatches"]) == 0
    assert int(r["state_feedback_compared"]) > 0 and int(r["qfeatures_over_bound"]) == 0
    assert float(r["audio_max_abs_err"]) < 1e-5
    if key == "lstm-16x8":   # the cell state's scales differ: fed back through the requantisation
        assert "same_quantization=0" in proc.stdout
    if key == "gru-complex-int8":   # both halves of the mask reach the frame loop, and the manifest says so
        assert "#define SE_MASK_ELEMENTS 514" in (bundles[key] / "c" / "model_io.h").read_text()
        manifest = json.loads((bundles[key] / "model_manifest.json").read_text())
        assert "a complex gain per bin" in manifest["call_contract"]["outputs"]
    # the frame loop's cost, counted by QEMU (-icount shift=0): instructions, not cycles
    figure = json.loads((tmp_path / "build" / "frame_loop.json").read_text())
    assert figure["frames"] == FRAMES and figure["cpu"] == "cortex-m55"
    assert 10_000 < figure["frame_loop_instructions_per_hop"] < 1_000_000
    assert figure["min"] <= figure["frame_loop_instructions_per_hop"] <= figure["max"]
    assert figure["instructions_per_tick"] == pytest.approx(31.25, rel=1e-3)   # SysTick: 32 MHz of 1 GHz
    elf = tmp_path / "build" / "m55" / "qemu_test.elf"
    arch = subprocess.run(["arm-none-eabi-readelf", "-A", str(elf)], capture_output=True, text=True).stdout
    assert 'Tag_CPU_name: "cortex-m55"' in arch and "MVE" in arch and "FPv5" in arch


def test_a_tampered_golden_file_fails_on_the_emulated_m55(bundles, tmp_path):
    bundle = bundles["lstm-16x8"]
    golden = shutil.copytree(bundle / "golden", tmp_path / "golden")
    info = json.loads((golden / "golden.json").read_text())
    pair = next(p for p in info["state_pairs"] if not p["same_quantization"])
    path = golden / f"in_{pair['input']}.bin"
    state = np.fromfile(path, "<i2").reshape(FRAMES, -1)
    state[FRAMES // 2, 1] += 1 if state[FRAMES // 2, 1] < 32767 else -1   # one requantised state value, one LSB
    state.tofile(path)
    proc = qemu_test(bundle, tmp_path / "build", golden)
    assert proc.returncode != 0 and _qemu_status(proc) == QEMU_STATUS["FAIL"], proc.stdout[-3000:] + proc.stderr
    assert "FAIL state feedback is not bit-exact" in proc.stdout and "FAIL (" in proc.stdout
    r = _results(proc.stdout)
    assert r["state_feedback_mismatches"] == "1" and r["loop_state_mismatches"] == "1"


@pytest.mark.parametrize("key", ["gru-int8", "lstm-16x8"])
def test_bundle_manifest_and_readme_carry_the_measured_frame_loop(bundles, key, tmp_path):
    manifest = json.loads((bundles[key] / "model_manifest.json").read_text())
    loop = manifest["frame_loop"]
    assert loop["measured"] is True and loop["frames"] == FRAMES and "not cycles" in loop["counts"]
    assert "QEMU" in loop["tools"]["qemu-system-arm"] and "arm-none-eabi-gcc" in loop["tools"]["arm-none-eabi-gcc"]
    # instruction counting is deterministic: qemu-test on the bundle gives the recorded figure again
    proc = qemu_test(bundles[key], tmp_path / "build")
    assert proc.returncode == 0, proc.stdout[-2000:]
    again = json.loads((tmp_path / "build" / "frame_loop.json").read_text())
    assert again["frame_loop_instructions_per_hop"] == loop["frame_loop_instructions_per_hop"]
    readme = (bundles[key] / "README.md").read_text()
    assert f"**{loop['frame_loop_instructions_per_hop']:,} instructions per hop**" in readme
    assert manifest["vela"]["figures"]["cycles_total"] > 0   # beside Vela's NPU cycles


def test_frame_loop_is_recorded_as_not_measured_without_the_stub_or_qemu(tmp_path, monkeypatch):
    from sepipe.bundle import frame_loop

    monkeypatch.setattr(frame_loop, "STUB", tmp_path / "no_stub")
    assert frame_loop.measure_frame_loop(tmp_path) == {
        "measured": False, "reason": "firmware_stub/ is not beside the sepipe package (a source checkout has it)",
        "command": frame_loop.COMMAND}
    monkeypatch.setattr(frame_loop, "STUB", STUB)
    monkeypatch.setattr(frame_loop, "TOOLS", ("make", "no-such-qemu-system-arm"))
    missing = frame_loop.measure_frame_loop(tmp_path)
    assert missing["measured"] is False and "no-such-qemu-system-arm not found" in missing["reason"]
    assert "frame_loop_instructions_per_hop" not in missing
