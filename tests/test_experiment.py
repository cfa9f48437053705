"""A whole tiny experiment through every stage, with the real converter, Vela and interpreters."""

import csv
import dataclasses
import json

import pytest

from sepipe import artifacts
from sepipe.engine import records
from sepipe import experiment as exp
from sepipe.cli import main
from sepipe.config import experiment_from_dict

pytestmark = pytest.mark.slow   # every test here trains or converts a model

TARGETS = ["ethos-u55-128", "ethos-u65-256"]


def tiny_config(small_data_config, runs_dir, name="tiny", **sections):
    raw = {
        "name": name, "seed": 3, "runs_dir": str(runs_dir),
        "data": {"cache_dir": small_data_config.cache_dir},
        "model": {"family": "gru", "input_units": 32, "rnn_units": 24, "dense_units": 32},
        "train": {"epochs": 1, "steps_per_epoch": 3, "batch_size": 4, "valid_files": 2},
        "convert": {"calibration_files": 2, "calibration_frames": 64},
        "compile": {"targets": TARGETS},
        "evaluate": {"test_files": 2, "dnsmos": False, "write_audio": 1, "baselines": ["noisy"]},
    }
    for section, values in sections.items():
        raw[section].update(values)
    return experiment_from_dict(raw)


@pytest.fixture(scope="module", autouse=True)
def vela_cache(tmp_path_factory):
    """Compiles are cached in a folder of this module, not in the shared data cache."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SEPIPE_VELA_CACHE", str(tmp_path_factory.mktemp("vela_cache")))
        yield


@pytest.fixture(scope="module")
def finished_run(vela_cache, small_dataset, small_data_config, tmp_path_factory):
    cfg = tiny_config(small_data_config, tmp_path_factory.mktemp("runs"))
    summary = exp.run_experiment(cfg, progress=False)
    return cfg, summary


def test_every_stage_is_recorded_with_hashes_and_tool_versions(finished_run):
    cfg, _ = finished_run
    manifest = records.read_manifest(cfg.run_dir)
    stages = {"train", "convert:ptq", "compile:ptq", "evaluate:references", "evaluate:ptq"}
    assert set(manifest["stages"]) == stages
    assert manifest["config"]["name"] == "tiny"
    assert manifest["tools"]["ethos-u-vela"] == "5.2.0"
    for stage in manifest["stages"].values():
        for rel, digest in stage["outputs"].items():
            assert artifacts.sha256_file(cfg.run_dir / rel) == digest
    # one record file per stage; manifest.json on disk is derived from them
    assert sorted(p.name for p in (cfg.run_dir / "records").glob("*.json")) == sorted(
        s.replace(":", ".") + ".json" for s in stages)
    assert json.loads((cfg.run_dir / "manifest.json").read_text()) == manifest


def test_each_stage_fingerprints_only_the_tools_it_uses(finished_run):
    cfg, _ = finished_run
    tools = {name: set(stage["fingerprint"]["tools"])
             for name, stage in records.read_manifest(cfg.run_dir)["stages"].items()}
    assert tools["train"] == {"tensorflow", "tf-keras", "numpy"}
    assert tools["compile:ptq"] == {"ethos-u-vela"}
    assert "pesq" in tools["evaluate:ptq"] and "pesq" not in tools["train"] | tools["convert:ptq"]
    assert "ethos-u-vela" not in tools["convert:ptq"] and "tflite-micro" in tools["evaluate:ptq"]


def test_quality_table_has_baseline_and_every_interpreter(finished_run):
    _, summary = finished_run
    systems = [row["system"] for row in summary["evaluate"]["rows"]]
    assert systems == ["unprocessed", "float32 Keras", "int8 TFLite", "int8 TFLite Micro"]
    int8 = summary["evaluate"]["rows"][3]
    assert abs(int8["si_sdr_vs_float_db"]) < 1.0


def test_quality_is_also_written_per_test_condition(finished_run):
    cfg, summary = finished_run
    stem = exp.RunPaths(cfg).evaluate_dir / f"{cfg.name}_quality_by_condition"
    assert stem.with_suffix(".csv").is_file() and stem.with_suffix(".md").is_file()
    rows = summary["evaluate"]["by_condition"]
    room = {r["system"]: r["files"] for r in rows if r["condition"] == "room"}
    assert room == {r["system"]: r["files"] for r in summary["evaluate"]["rows"]}     # the dry data: all files


def test_report_cycles_and_kib_equal_velas_own_summary_csv(finished_run):
    cfg, summary = finished_run
    rows = {row["target"]: row for row in summary["report"]["rows"]}
    assert sorted(rows) == sorted(TARGETS)
    for row in rows.values():
        vela_csv = exp.RunPaths(cfg).compile_dir / f"tiny_ptq_vela_{row['target_id']}_summary.csv"
        vela = next(csv.DictReader(vela_csv.open()))
        assert row["cycles_total"] == pytest.approx(float(vela["cycles_total"]))
        assert row["sram_memory_used_kib"] == pytest.approx(float(vela["sram_memory_used"]))
        assert row["inference_time_ms"] == pytest.approx(1000 * float(vela["inference_time"]))
    report_csv = exp.RunPaths(cfg).report_dir / "tiny_report.csv"
    assert len(list(csv.DictReader(report_csv.open()))) == len(TARGETS)
    assert (exp.RunPaths(cfg).report_dir / "tiny_report.html").exists()


def test_rerun_skips_up_to_date_stages_and_redoes_a_changed_one(finished_run, caplog):
    cfg, _ = finished_run
    before = records.read_manifest(cfg.run_dir)["stages"]
    with caplog.at_level("INFO"):
        exp.run_experiment(cfg, progress=False)
    stages = ("train", "convert", "compile", "evaluate")
    assert sum(m.split(":")[0] in stages and "up to date" in m for m in caplog.messages) == 5
    changed = dataclasses.replace(cfg, evaluate=dataclasses.replace(cfg.evaluate, test_files=1))
    caplog.clear()
    with caplog.at_level("INFO"):
        exp.run_experiment(changed, progress=False)
    assert not any(m.startswith("evaluate:ptq: up to date") for m in caplog.messages)
    after = records.read_manifest(cfg.run_dir)["stages"]
    assert after["convert:ptq"] == before["convert:ptq"]
    assert after["evaluate:ptq"]["summary"]["rows"][0]["files"] == 1


def test_same_config_and_seed_give_the_same_int8_bytes(finished_run, small_data_config, tmp_path):
    cfg, _ = finished_run
    again = tiny_config(small_data_config, tmp_path / "runs")
    dataset = exp.stage_data(again, build=False)
    exp.stage_train(again, dataset, progress=False)
    exp.stage_convert(again, dataset, again.variants[0], progress=False)
    assert exp.RunPaths(again).tflite().read_bytes() == exp.RunPaths(cfg).tflite().read_bytes()


def test_budget_check_passes_a_loose_budget_and_names_each_broken_limit(finished_run, tmp_path, capsys):
    cfg, _ = finished_run
    loose, tight = tmp_path / "loose.yaml", tmp_path / "tight.yaml"
    loose.write_text("budgets:\n  ethos-u55-128: {max_sram_kib: 4096, max_flash_kib: 4096, min_npu_op_share: 1.0}\n")
    tight.write_text("budgets:\n  ethos-u55-128: {max_sram_kib: 0.01, max_latency_ms: 0.0001,"
                     " min_quality: {si_sdr: 99.0}}\n")
    assert main(["-q", "budget", "check", str(cfg.run_dir), "--budgets", str(loose)]) == 0
    capsys.readouterr()
    assert main(["-q", "budget", "check", str(cfg.run_dir), "--budgets", str(tight)]) == 1
    header, *lines = capsys.readouterr().out.strip().splitlines()
    assert header == "model, target, metric, value, limit"
    assert len(lines) == 3
    assert all(line.startswith("tiny_ptq, ethos-u55-128, ") for line in lines)
    assert {line.split(", ")[2] for line in lines} == {"sram_memory_used_kib", "inference_time_ms", "si_sdr"}


def test_budget_file_that_does_not_parse_is_one_line_and_exit_2(finished_run, tmp_path, capsys):
    cfg, _ = finished_run
    broken = tmp_path / "broken.yaml"
    broken.write_text("budgets: {ethos-u55-128: [max_sram_kib: 1\n")
    assert main(["-q", "budget", "check", str(cfg.run_dir), "--budgets", str(broken)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "broken.yaml" in err[0]


@pytest.mark.slow
def test_variants_flow_through_every_stage_into_one_report(small_dataset, small_data_config, tmp_path):
    finetune = {"finetune_epochs": 1, "finetune_steps_per_epoch": 3}
    cfg = dataclasses.replace(
        tiny_config(small_data_config, tmp_path / "runs", name="sweep", compile={"targets": ["ethos-u55-128"]}),
        variants=experiment_from_dict({"name": "x", "variants": [
            {"name": "ptq"},
            {"name": "w50", "kind": "weight", "sparsity": 0.5, **finetune},
            {"name": "u50", "kind": "unit", "sparsity": 0.5, **finetune},
            {"name": "off50", "kind": "offline", "sparsity": 0.5},
        ]}).variants)
    summary = exp.run_experiment(cfg, progress=False)
    rows = {row["variant"]: row for row in summary["report"]["rows"]}
    assert sorted(rows) == ["off50", "ptq", "u50", "w50"]
    # Pruned weights are encoded smaller by Vela; only removing units cuts the MACs.
    assert rows["w50"]["total_npu_encoded_weights_bytes"] < rows["ptq"]["total_npu_encoded_weights_bytes"]
    assert rows["off50"]["total_npu_encoded_weights_bytes"] < rows["ptq"]["total_npu_encoded_weights_bytes"]
    assert rows["u50"]["nn_macs"] < rows["ptq"]["nn_macs"] == rows["w50"]["nn_macs"]
    assert rows["w50"]["nonzero_weights"] < rows["ptq"]["nonzero_weights"]
    assert rows["off50"]["params"] == rows["ptq"]["params"] > rows["off50"]["nonzero_weights"]
    systems = {(r["variant"], r["system"]) for r in summary["evaluate"]["rows"]}
    assert ("off50", "int8 TFLite Micro") in systems and ("off50", "float32 Keras") not in systems


def test_a_model_trained_by_another_experiment_with_the_same_training_is_reused(finished_run, small_data_config,
                                                                                  caplog):
    cfg, _ = finished_run
    sweep = tiny_config(small_data_config, cfg.runs_dir, name="tiny_sweep", evaluate={"test_files": 1})
    with caplog.at_level("INFO"):
        exp.stage_train(sweep, exp.stage_data(sweep, build=False), progress=False)
    assert any("reusing the model trained in" in m for m in caplog.messages)
    assert exp.RunPaths(sweep).streaming_weights.read_bytes() == exp.RunPaths(cfg).streaming_weights.read_bytes()
    changed = dataclasses.replace(sweep, name="tiny_other", seed=4)
    assert exp.reuse_identical_training(changed, {"config": "another training"}) is None
