"""Vela compilation (real Vela 5.2.0) and target loading.

One tiny streaming GRU (random weights, random calibration) is converted to int8 once per
module with sepipe.quantize.convert.convert_quantized; float and dynamic-range versions come straight
from tf.lite. Exact figures are compared with Vela's own CSV, never with fixed numbers.
"""

from __future__ import annotations

import configparser
import csv
import dataclasses
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from sepipe.deploy.compile import CompileOptions, CpuFallbackError, compile_many, compile_model
from sepipe.deploy.figures import CompileRecord
from sepipe.deploy.tflite_info import inspect_tflite
from sepipe.deploy.vela import read_summary_csv
from sepipe.models.mask_rnn import MaskRnnConfig
from sepipe.errors import ConfigError, InputFileError, ToolError
from sepipe.targets import DEFAULT_TARGETS_FILE, get_target, load_targets

BINS = 257
TINY = MaskRnnConfig(family="gru", input_units=32, rnn_units=24, dense_units=32)
EXPECTED_IDS = {"ethos-u55-64": "H64", "ethos-u55-128": "H128", "ethos-u55-256": "H256",
                "ethos-u65-256": "Y256", "ethos-u65-512": "Y512", "ethos-u85-256": "Z256", "ethos-u85-512": "Z512"}


# --------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def targets():
    return load_targets()


@pytest.fixture(scope="module")
def compiled(untrained_tflites, targets, tmp_path_factory):
    """The int8 model compiled for every target in targets.yaml: (out_dir, {target name: CompileResult})."""
    out = tmp_path_factory.mktemp("compiled")
    results = compile_many(untrained_tflites["int8"], list(targets), out, "demo_ptq")
    return out, {r.target.name: r for r in results}


# --------------------------------------------------------------------------- int8 model on every target

def test_targets_table_has_the_eval_kit_ids(targets):
    for name, target_id in EXPECTED_IDS.items():
        assert targets[name].id == target_id
        assert targets[name].hardware.accelerator == name


@pytest.mark.slow
def test_gru_int8_maps_every_op_to_the_npu_on_every_target(compiled, targets):
    _, results = compiled
    assert set(results) == set(targets)
    for name, result in results.items():
        assert result.record["cpu_ops"] == 0, (name, result.fallback_message)
        assert result.record["npu_ops"] > 0
        assert result.record["npu_op_share"] == 1.0
        assert result.fallback_message is None
        placement = json.loads(result.placement_json.read_text())
        assert placement["operators"] and all(op["placement"] == "NPU" for op in placement["operators"])


@pytest.mark.slow
def test_record_equals_vela_summary_csv(compiled):
    _, results = compiled
    for result in results.values():
        with open(result.summary_csv, newline="") as handle:   # read independently of compile.py
            (row,) = list(csv.DictReader(handle))
        record, hardware = result.record, result.target.hardware
        assert record["cycles_total"] == int(float(row["cycles_total"]))
        assert record["inference_time_ms"] == pytest.approx(float(row["inference_time"]) * 1e3)
        assert record["sram_memory_used_kib"] == float(row["sram_memory_used"])
        assert record["off_chip_flash_memory_used_kib"] == float(row["off_chip_flash_memory_used"])
        assert record["on_chip_flash_memory_used_kib"] == float(row["on_chip_flash_memory_used"])
        assert record["dram_memory_used_kib"] == float(row["dram_memory_used"])
        assert record["total_npu_encoded_weights_bytes"] == int(row["total_npu_encoded_weights"])
        assert record["nn_macs"] == int(row["nn_macs"])
        # the target Vela compiled for is the one the record names (Vela spells it Ethos_U55_128)
        assert row["accelerator_configuration"].lower().replace("_", "-") == record["accelerator"]
        assert row["system_config"] == record["system_config"] == hardware.system_config
        assert row["memory_mode"] == record["memory_mode"] == hardware.memory_mode
        assert float(row["core_clock"]) == record["clock_hz"] == hardware.clock_hz
        expected_util = 100 * record["nn_macs"] / (record["cycles_total"] * hardware.macs_per_cycle)
        assert record["mac_utilisation_pct"] == pytest.approx(expected_util)


@pytest.mark.slow
def test_artifacts_follow_the_eval_kit_naming(compiled, targets):
    out, results = compiled
    for name, result in results.items():
        stem = f"demo_ptq_vela_{targets[name].id}"
        assert result.model == out / f"{stem}.tflite"
        for path, suffix in ((result.summary_csv, "_summary.csv"), (result.per_layer_csv, "_per-layer.csv"),
                             (result.placement_json, "_placement.json"), (result.record_json, "_record.json"),
                             (result.log, "_vela.log")):
            assert path == out / f"{stem}{suffix}" and path.is_file()
        assert json.loads(result.record_json.read_text()) == json.loads(json.dumps(result.record))
        with open(result.per_layer_csv, newline="") as handle:
            rows = list(csv.DictReader(handle))
        assert len(rows) == result.record["npu_ops"] and {r["Target"] for r in rows} == {"NPU"}
        with pytest.raises(InputFileError, match="already compiled by Vela"):
            inspect_tflite(result.model)      # the output holds the ethos-u custom operator
    assert not list(out.glob(".tmp-*")), "temporary Vela folders must be removed"
    with open(out / "demo_ptq_vela_records.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["target"] for r in rows] == list(targets)


@pytest.mark.slow
def test_result_carries_typed_figures_equal_to_its_record(compiled):
    _, results = compiled
    for result in results.values():
        assert result.figures.cycles_total == result.record["cycles_total"]
        assert result.figures.flash_kib == result.record["flash_kib"]
        assert CompileRecord.from_record(json.loads(result.record_json.read_text())) == result.compiled


# The light install (`pip install sepipe`: Vela, numpy, pyyaml) has none of these.
HEAVY = ("tensorflow", "tf_keras", "tensorflow_model_optimization", "matplotlib", "soundfile", "scipy", "pesq",
         "pystoi", "onnxruntime", "tflite_micro", "ai_edge_litert", "sepipe.quantize", "sepipe.runtime", "sepipe.models")


@pytest.mark.slow
def test_compile_runs_without_tensorflow_or_the_audio_stack(untrained_tflites, tmp_path):
    script = textwrap.dedent(f"""
        import sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if any(name == h or name.startswith(h + ".") for h in {HEAVY!r}):
                    raise ImportError("blocked for the light-install test: " + name)
        sys.meta_path.insert(0, Block())
        from sepipe.deploy.compile import compile_many
        import sepipe.budgets, sepipe.deploy.compile, sepipe.report, sepipe.report.page
        (result,) = compile_many(sys.argv[1], ["ethos-u55-128"], sys.argv[2], "light")
        print(result.figures.cycles_total, result.record["target_id"])
    """)
    proc = subprocess.run([sys.executable, "-c", script, str(untrained_tflites["int8"]), str(tmp_path)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split()[1] == "H128" and int(proc.stdout.split()[0]) > 0
    assert (tmp_path / "light_vela_records.csv").is_file()


@pytest.mark.slow
def test_compile_accepts_a_target_name(untrained_tflites, tmp_path):
    result = compile_model(untrained_tflites["int8"], "ethos-u55-128", tmp_path, "exp_variant")
    assert result.model.name == "exp_variant_vela_H128.tflite"
    assert read_summary_csv(result.summary_csv)["system_config"] == "Ethos_U55_High_End_Embedded"


# --------------------------------------------------------------------------- float / dynamic / corrupt input

@pytest.mark.slow
@pytest.mark.parametrize("kind, hint", [("float", "float32 model"), ("dynamic", "dynamic-range model")])
def test_non_int8_model_fails_with_require_full_npu_naming_the_ops(untrained_tflites, tmp_path, kind, hint):
    with pytest.raises(CpuFallbackError) as info:
        compile_model(untrained_tflites[kind], "ethos-u55-128", tmp_path, f"demo_{kind}")
    message = str(info.value)
    assert str(untrained_tflites[kind]) in message and hint in message
    assert "stay on the CPU for ethos-u55-128 (H128)" in message
    assert "unsupported DataType Float32" in message            # Vela's own reason
    assert "FullyConnected 'gru_streaming/" in message           # ops named
    assert info.value.cpu_ops and all(op.reason for op in info.value.cpu_ops)
    assert not (tmp_path / f"demo_{kind}_vela_H128.tflite").exists()
    assert not (tmp_path / f"demo_{kind}_vela_H128_record.json").exists()
    assert (tmp_path / f"demo_{kind}_vela_H128_placement.json").is_file()


@pytest.mark.slow
def test_float_model_compiles_and_reports_cpu_ops_with_reasons(untrained_tflites, tmp_path):
    result = compile_model(untrained_tflites["float"], "ethos-u85-256", tmp_path, "demo_float",
                           CompileOptions(require_full_npu=False))
    assert result.record["npu_op_share"] == 0.0 and result.record["cpu_ops"] == len(result.placement)
    assert all(op.placement == "CPU" and "Float32" in op.reason for op in result.placement)
    assert "FullyConnected" in {op.original_type for op in result.cpu_ops}
    assert result.fallback_message.startswith(f"{len(result.placement)} of {len(result.placement)} operators")
    placement = json.loads(result.placement_json.read_text())
    assert all(op["reason"] for op in placement["operators"])


def test_corrupt_tflite_is_an_input_file_error(tmp_path):
    random_bytes = tmp_path / "random.tflite"
    random_bytes.write_bytes(np.random.default_rng(0).integers(0, 256, 2000, dtype=np.uint8).tobytes())
    with pytest.raises(InputFileError, match="random.tflite: not a TFLite flatbuffer"):
        compile_model(random_bytes, "ethos-u55-128", tmp_path / "out", "bad")
    # right identifier, garbage offsets: Vela's compiler core segfaults on this one
    garbage = tmp_path / "garbage.tflite"
    garbage.write_bytes(b"xxxxTFL3garbagegarbagegarbage")
    with pytest.raises(InputFileError, match="garbage.tflite: not a readable TFLite flatbuffer"):
        compile_model(garbage, "ethos-u55-128", tmp_path / "out", "bad")
    with pytest.raises(InputFileError, match="model file not found"):
        compile_model(tmp_path / "missing.tflite", "ethos-u55-128", tmp_path / "out", "bad")


@pytest.mark.slow
def test_vela_failure_is_a_tool_error_with_velas_line(untrained_tflites, tmp_path, targets):
    target = targets["ethos-u55-128"]
    broken = dataclasses.replace(target, hardware=dataclasses.replace(target.hardware, memory_mode="Nope"))
    with pytest.raises(ToolError) as info:
        compile_model(untrained_tflites["int8"], broken, tmp_path, "demo")
    assert "exit code 1" in str(info.value) and "Section Memory_Mode.Nope not found" in str(info.value)
    assert "\n" not in str(info.value)
    assert not list(tmp_path.glob(".tmp-*"))


# --------------------------------------------------------------------------- targets file

def _write_targets(tmp_path: Path, body: str) -> Path:
    (tmp_path / "vela.ini").write_text((DEFAULT_TARGETS_FILE.parent / "vela.ini").read_text())
    path = tmp_path / "targets.yaml"
    path.write_text("vela_config: vela.ini\ntargets:\n" + body)
    return path


def test_unknown_target_lists_the_valid_ones(targets):
    with pytest.raises(ConfigError) as info:
        get_target("ethos-u55-1024", targets)
    assert "'ethos-u55-1024'" in str(info.value)
    for name in EXPECTED_IDS:
        assert name in str(info.value)


def test_system_config_of_another_npu_family_is_an_error(tmp_path):
    path = _write_targets(tmp_path, "  u55:\n    id: H128\n    hardware: {accelerator: ethos-u55-128, "
                                    "system_config: Ethos_U85_SYS_DRAM_Mid, memory_mode: Shared_Sram}\n")
    with pytest.raises(ConfigError) as info:
        load_targets(path)
    message = str(info.value)
    assert str(path) in message and "targets.u55.hardware.system_config" in message
    assert "Ethos_U85_SYS_DRAM_Mid" in message and "Ethos_U55_High_End_Embedded" in message


def test_memory_mode_the_system_cannot_hold_is_an_error(tmp_path):
    # Dedicated_Sram puts the arena on AXI1, which is read-only flash on a U55 board
    path = _write_targets(tmp_path, "  u55:\n    id: H128\n    hardware: {accelerator: ethos-u55-128, "
                                    "system_config: Ethos_U55_High_End_Embedded, memory_mode: Dedicated_Sram}\n")
    with pytest.raises(ConfigError, match=r"memory_mode.*Dedicated_Sram.*OffChipFlash.*Shared_Sram"):
        load_targets(path)


@pytest.mark.parametrize("body, key", [
    ("  t:\n    id: H128\n    color: red\n    hardware: {accelerator: ethos-u55-128, "
     "system_config: Ethos_U55_High_End_Embedded, memory_mode: Shared_Sram}\n", "targets.t.color"),
    ("  t:\n    id: Z128\n    hardware: {accelerator: ethos-u55-128, "
     "system_config: Ethos_U55_High_End_Embedded, memory_mode: Shared_Sram}\n", "targets.t.id"),
    ("  t:\n    id: H128\n    hardware: {accelerator: ethos-u57-128, "
     "system_config: Ethos_U55_High_End_Embedded, memory_mode: Shared_Sram}\n", "targets.t.hardware.accelerator"),
    ("  t:\n    id: H128\n    hardware: {accelerator: ethos-u55-128, "
     "system_config: Ethos_U55_High_End_Embedded, memory_mode: Shared_Sram}\n"
     "    compiler: {optimise: Fast}\n", "targets.t.compiler.optimise"),
    ("  a:\n    id: H128\n    hardware: {accelerator: ethos-u55-128, "
     "system_config: Ethos_U55_High_End_Embedded, memory_mode: Shared_Sram}\n"
     "  b:\n    id: H128\n    hardware: {accelerator: ethos-u55-128, "
     "system_config: Ethos_U55_Deep_Embedded, memory_mode: Shared_Sram}\n", "targets.b.id"),
])
def test_targets_file_is_loaded_strictly(tmp_path, body, key):
    path = _write_targets(tmp_path, body)
    with pytest.raises(ConfigError) as info:
        load_targets(path)
    assert str(path) in str(info.value) and f"'{key}'" in str(info.value)


def test_project_ini_keeps_velas_bundled_values():
    from ethosu import vela

    def read(path):
        ini = configparser.ConfigParser()
        ini.optionxform = str
        ini.read(path)
        return ini

    ours = read(DEFAULT_TARGETS_FILE.parent / "vela.ini")
    arm = read(Path(vela.__file__).resolve().parents[1] / "config_files" / "Arm" / "vela.ini")
    for required in ("System_Config.Ethos_U55_High_End_Embedded", "System_Config.Ethos_U55_Deep_Embedded",
                     "System_Config.Ethos_U65_High_End", "System_Config.Ethos_U85_SYS_DRAM_Mid",
                     "Memory_Mode.Shared_Sram", "Memory_Mode.Sram_Only", "Memory_Mode.Dedicated_Sram"):
        assert ours.has_section(required), required
    for section in ours.sections():
        assert arm.has_section(section), section
        assert dict(ours[section]) == dict(arm[section]), section
