"""Several models in one firmware image: model descriptors (c/model_desc.c, firmware_stub/se_model_desc.h) and
the generated op resolvers (c/model_ops.cc).

Two tiny real runs are bundled with their own C prefixes: a demo-like int8 GRU (`se_gru`) and a 16x8 LSTM
(`se_lstm`). `make -C firmware_stub multi-test` links both descriptors (and both models' bytes) into one host
program, and each model runs its own golden checks there, one frame loop each; `qemu-multi-test` runs the same
image on QEMU's Cortex-M55.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from bundle_runs import DEMO_LIKE_GRU, LSTM_16X8, TARGET, run_to_compile, tiny_config
from sepipe.bundle import BundleError, make_bundle

pytestmark = pytest.mark.slow   # trains and converts two tiny models

ROOT = Path(__file__).resolve().parents[1]
STUB = ROOT / "firmware_stub"
FRAMES = 40


@pytest.fixture(scope="module")
def bundles(small_dataset, small_data_config, tmp_path_factory) -> dict[str, Path]:
    runs, out = tmp_path_factory.mktemp("runs"), tmp_path_factory.mktemp("bundles")
    made = {}
    for prefix, model, convert in (("se_gru", DEMO_LIKE_GRU, None), ("se_lstm", *LSTM_16X8)):
        cfg = run_to_compile(tiny_config(small_data_config, runs, name=prefix[3:] + "m", model=model, convert=convert))
        made[prefix] = make_bundle(cfg.run_dir, "ptq", TARGET, out_dir=out, frames=FRAMES, c_prefix=prefix)
    return made


def _manifest(bundle: Path) -> dict:
    return json.loads((bundle / "model_manifest.json").read_text())


def test_two_models_run_their_golden_checks_in_one_image(bundles, tmp_path):
    gru, lstm = bundles["se_gru"], bundles["se_lstm"]
    proc = subprocess.run(["make", "-C", str(STUB), "multi-test", f"MODELS={gru / 'c'} {lstm / 'c'}",
                           f"GOLDENS={gru / 'golden'} {lstm / 'golden'}", f"BUILD={tmp_path / 'build'}"],
                          capture_output=True, text=True, timeout=600)
    print("\n".join(line for line in proc.stdout.splitlines() if line.startswith(("==", "PASS", "FAIL", "MODELS"))))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "MODELS 2 PASSED 2" in proc.stdout and proc.stdout.count("\nPASS\n") == 2
    assert "model 1 of 2: gru" in proc.stdout and "(int8)" in proc.stdout
    assert "model 2 of 2: lstm" in proc.stdout and "(int16)" in proc.stdout
    symbols = subprocess.run(["nm", str(tmp_path / "build" / "multi" / "multi_test")], capture_output=True,
                             text=True).stdout
    for name in ("se_gru_desc", "se_lstm_desc", "se_gru", "se_lstm"):
        assert re.search(rf"^\S+ [RD] {name}$", symbols, re.M), name   # each model's descriptor and bytes


def test_the_same_two_model_image_passes_on_the_emulated_m55(bundles, tmp_path):
    if not (shutil.which("arm-none-eabi-gcc") and shutil.which("qemu-system-arm")):
        pytest.skip("arm-none-eabi-gcc / qemu-system-arm missing (make firmware-toolchain; test_firmware_qemu installs them)")
    gru, lstm = bundles["se_gru"], bundles["se_lstm"]
    proc = subprocess.run(["make", "-C", str(STUB), "qemu-multi-test", f"MODELS={gru / 'c'} {lstm / 'c'}",
                           f"GOLDENS={gru / 'golden'} {lstm / 'golden'}", f"BUILD={tmp_path / 'build'}"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    on_m55 = proc.stdout.split("== multi_test on QEMU's Cortex-M55 (2 models in one image)", 1)[1]
    assert "MODELS 2 PASSED 2" in on_m55 and on_m55.count("\nPASS\n") == 2


def test_one_models_golden_vectors_fail_the_other_models_descriptor(bundles, tmp_path):
    gru, lstm = bundles["se_gru"], bundles["se_lstm"]
    proc = subprocess.run(["make", "-C", str(STUB), "multi-test", f"MODELS={gru / 'c'} {lstm / 'c'}",
                           f"GOLDENS={lstm / 'golden'} {gru / 'golden'}", f"BUILD={tmp_path / 'build'}"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode != 0
    assert "golden vectors and the model descriptor do not match" in proc.stderr


def test_descriptor_and_op_resolvers_follow_each_model(bundles):
    for prefix, bundle in bundles.items():
        m = _manifest(bundle)
        firmware, c = m["firmware"], bundle / "c"
        assert firmware["descriptor"]["symbol"] == f"{prefix}_desc" and m["model"]["c_array"]["symbol"] == prefix
        desc = (c / "model_desc.c").read_text()
        assert f"const se_model_desc_t {prefix}_desc = {{" in desc and f"extern const uint8_t {prefix}[];" in desc
        cortex = m["tflm_arena"]["cortex_m"]
        assert f"    {cortex['cmsis_nn']['recommended_bytes']}u, {cortex['reference']['recommended_bytes']}u," in desc
        ops = (c / "model_ops.cc").read_text()
        vela, cpu = ops.split(f"extern \"C\" const void *{prefix}_cpu_op_resolver(void)")
        # the Vela model: only the Ethos-U op; the CPU model: exactly its op types, N = their count
        assert firmware["op_resolvers"]["vela"]["op_types"] == ["ethos-u"]
        assert "MicroMutableOpResolver<1>" in vela and vela.count("r->Add") == 1 and "r->AddEthosU()" in vela
        cpu_types = firmware["op_resolvers"]["cpu"]["op_types"]
        assert f"MicroMutableOpResolver<{len(cpu_types)}>" in cpu and cpu.count("r->Add") == len(cpu_types)
        assert "FULLY_CONNECTED" in cpu_types and "r->AddFullyConnected()" in cpu


def test_a_c_prefix_that_is_not_an_identifier_is_refused(bundles):
    with pytest.raises(BundleError, match="'--c-prefix' = '9lives'"):
        make_bundle(bundles["se_gru"], "ptq", TARGET, c_prefix="9lives")
