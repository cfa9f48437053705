"""Budget files and budget checks (no Vela needed: records are built like compile records)."""

from __future__ import annotations

import json

import pytest

from sepipe.budgets import (DEFAULT_BUDGETS_FILE, Budget, Violation, check_budgets, format_violations, load_budgets,
                            load_records)
from sepipe.cli import main
from sepipe.deploy.figures import write_records_csv
from sepipe.errors import ConfigError, InputFileError

PROJECT_BUDGETS = DEFAULT_BUDGETS_FILE


def record(model="demo_ptq", target="ethos-u55-128", **overrides):
    """A compile record with the columns check_budgets reads (figures of the tiny GRU on u55-128)."""
    row = {"model": model, "target": target, "target_id": "H128", "accelerator": "ethos-u55-128",
           "sram_memory_used_kib": 0.515625, "flash_kib": 35.4375, "dram_memory_used_kib": 0.0,
           "inference_time_ms": 0.07016, "npu_op_share": 1.0, "weights_storage_area": "Off-chip Flash"}
    row.update(overrides)
    return row


def write(tmp_path, text, name="budgets.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_project_budget_file_loads():
    budgets = load_budgets(PROJECT_BUDGETS)
    assert budgets["ethos-u55-128"].min_npu_op_share == 1.0
    assert budgets["ethos-u65-256"].max_flash_kib is None and budgets["ethos-u65-256"].max_dram_kib


def test_loose_budget_passes():
    budgets = {"ethos-u55-128": Budget(max_sram_kib=256, max_flash_kib=2048, max_latency_hop_fraction=0.5,
                                       min_npu_op_share=1.0)}
    assert check_budgets([record()], budgets) == []
    assert format_violations([]) == "all budgets met"


def test_tight_budget_fails_with_one_line_per_broken_limit(tmp_path):
    path = write(tmp_path, "budgets:\n  ethos-u55-128:\n    max_sram_kib: 0.25\n    max_flash_kib: 32\n"
                           "    max_latency_ms: 0.05\n    min_npu_op_share: 1.0\n    min_quality: {si_sdr: 8.0}\n")
    violations = check_budgets([record()], load_budgets(path), quality={"demo_ptq": {"si_sdr": 7.5}})
    assert [str(v) for v in violations] == [
        "demo_ptq, ethos-u55-128, sram_memory_used_kib, 0.515625, <= 0.25",
        "demo_ptq, ethos-u55-128, flash_kib, 35.4375, <= 32",
        "demo_ptq, ethos-u55-128, inference_time_ms, 0.07016, <= 0.05",
        "demo_ptq, ethos-u55-128, si_sdr, 7.5, >= 8",
    ]
    assert format_violations(violations).splitlines()[0] == "model, target, metric, value, limit"


def test_latency_is_checked_against_a_fraction_of_the_hop():
    budgets = {"ethos-u55-128": Budget(max_latency_hop_fraction=0.5)}
    assert check_budgets([record(inference_time_ms=7.9)], budgets) == []          # hop 16 ms by default
    (violation,) = check_budgets([record(inference_time_ms=7.9)], budgets, hop_ms=10.0)
    assert str(violation) == "demo_ptq, ethos-u55-128, latency_hop_fraction, 0.79, <= 0.5 (hop 10 ms)"


def test_cpu_fallback_breaks_the_npu_share_budget():
    (violation,) = check_budgets([record(npu_op_share=0.9)], {"ethos-u55-128": Budget(min_npu_op_share=1.0)})
    assert (violation.metric, violation.value) == ("npu_op_share", 0.9)


def test_a_figure_missing_from_the_record_is_a_violation():
    budgets = {"ethos-u55-128": Budget(min_quality=(("pesq", 2.5),))}
    (violation,) = check_budgets([record()], budgets)
    assert str(violation) == "demo_ptq, ethos-u55-128, pesq, missing, >= 2.5"
    assert check_budgets([record(pesq="2.7")], budgets) == []       # CSV strings count as numbers


def test_flash_budget_on_a_dram_target_is_flagged_not_passed():
    budgets = {"ethos-u65-256": Budget(max_flash_kib=1024)}
    rows = [record(target="ethos-u65-256", flash_kib=0.0, weights_storage_area="DRAM")]
    (violation,) = check_budgets(rows, budgets)
    assert "max_dram_kib" in violation.limit


def test_records_without_any_budget_are_an_error_not_a_pass():
    with pytest.raises(ConfigError, match="ethos-u85-512"):
        check_budgets([record(target="ethos-u85-512")], {"ethos-u55-128": Budget(max_sram_kib=1)})
    violations = check_budgets([record(), record(target="ethos-u85-512")],
                               {"ethos-u55-128": Budget(max_sram_kib=1)}, require_budget=True)
    assert [v.metric for v in violations] == ["budget"]


def test_records_round_trip_through_csv_and_json(tmp_path):
    rows = [record(), record(model="demo_qat", sram_memory_used_kib=300.0)]
    csv_path = write_records_csv(rows, tmp_path / "records.csv")
    budgets = {"ethos-u55-128": Budget(max_sram_kib=256)}
    assert [str(v) for v in check_budgets(load_records(csv_path), budgets)] == [
        "demo_qat, ethos-u55-128, sram_memory_used_kib, 300, <= 256"]
    (tmp_path / "run" / "compile").mkdir(parents=True)
    (tmp_path / "run" / "compile" / "demo_qat_vela_H128_record.json").write_text(
        '{"model": "demo_qat", "target": "ethos-u55-128", "sram_memory_used_kib": 300.0}')
    assert len(check_budgets(load_records(tmp_path / "run"), budgets)) == 1
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputFileError, match="no compile records"):
        load_records(tmp_path / "empty")


@pytest.mark.parametrize("text, problem", [
    ("budgets:\n  ethos-u55-128: {max_sram_kib: [1, 2}\n", "not valid YAML"),
    ("- just\n- a list\n", "must be a YAML mapping"),
])
def test_unparsable_budget_file_names_the_file(tmp_path, text, problem):
    path = write(tmp_path, text)
    with pytest.raises(InputFileError) as info:
        load_budgets(path)
    assert str(path) in str(info.value) and problem in str(info.value)


@pytest.mark.parametrize("text, key", [
    ("budgets:\n  ethos-u55-128: {max_sram: 64}\n", "budgets.ethos-u55-128.max_sram"),
    ("budgets:\n  ethos-u55-999: {max_sram_kib: 64}\n", "budgets.ethos-u55-999"),
    ("budgets:\n  ethos-u55-128: {max_sram_kib: -1}\n", "budgets.ethos-u55-128.max_sram_kib"),
    ("budgets:\n  ethos-u55-128: {min_npu_op_share: 1.5}\n", "budgets.ethos-u55-128.min_npu_op_share"),
    ("budgets:\n  ethos-u55-128: {max_sram_kib: lots}\n", "budgets.ethos-u55-128.max_sram_kib"),
    ("budgets:\n  ethos-u55-128: {min_quality: {si_sdr: high}}\n", "budgets.ethos-u55-128.min_quality"),
    ("hop_ms: 16\nbudgets:\n  ethos-u55-128: {max_sram_kib: 1}\n", "hop_ms"),
])
def test_budget_file_with_unknown_keys_or_bad_values_is_a_config_error(tmp_path, text, key):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_budgets(path)
    assert str(path) in str(info.value) and f"'{key}'" in str(info.value)


def test_violation_prints_as_one_line():
    line = str(Violation("demo_ptq", "ethos-u55-128", "sram_memory_used_kib", 72.5, "<= 64"))
    assert line == "demo_ptq, ethos-u55-128, sram_memory_used_kib, 72.5, <= 64"


def test_budget_check_reads_the_packaged_budgets_from_any_folder(tmp_path, monkeypatch, capsys):
    (tmp_path / "records").mkdir()
    (tmp_path / "records" / "demo_ptq_vela_H128_record.json").write_text(json.dumps(record()))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert main(["-q", "budget", "check", str(tmp_path / "records")]) == 0
    assert f"checked against {DEFAULT_BUDGETS_FILE}" in capsys.readouterr().out
    tight = write(tmp_path, "budgets:\n  ethos-u55-128:\n    max_flash_kib: 32\n")
    assert main(["-q", "budget", "check", str(tmp_path / "records"), "--budgets", str(tight)]) == 1
    assert capsys.readouterr().out.splitlines()[1] == "demo_ptq, ethos-u55-128, flash_kib, 35.4375, <= 32"
