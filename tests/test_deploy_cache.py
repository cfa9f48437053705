"""The Vela compile cache: the same model bytes for the same target never start Vela twice."""

from __future__ import annotations

import csv
import subprocess
from pathlib import Path

import pytest

from sepipe.deploy.compile import CompileOptions
from sepipe.models.mask_rnn import MaskRnnConfig
from sepipe.deploy.cache import cache_key, cache_root, compile_cached
from sepipe.targets import DEFAULT_TARGETS_FILE, load_targets

TINY = MaskRnnConfig(family="gru", input_units=16, rnn_units=8, dense_units=16)
OPTIONS = CompileOptions()


@pytest.fixture(scope="module")
def tflite(tmp_path_factory) -> Path:
    from sepipe.quantize.convert import convert_untrained

    return convert_untrained(TINY, 33, tmp_path_factory.mktemp("model") / "tiny_int8.tflite", seed=0)


@pytest.fixture(scope="module")
def target():
    return load_targets()["ethos-u55-128"]


def no_vela(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError(f"Vela was started: {args[0] if args else kwargs}")
    monkeypatch.setattr(subprocess, "run", refuse)


def test_second_compile_of_the_same_bytes_does_not_start_vela(tflite, target, tmp_path, monkeypatch):
    root = tmp_path / "cache"
    first = compile_cached(tflite, target, tmp_path / "a", "tiny_ptq", OPTIONS, root)
    assert not first.cache_hit and len(list(root.iterdir())) == 1
    before = {p.name: p.read_bytes() for p in first.outputs if not p.name.endswith("_vela.log")}
    no_vela(monkeypatch)
    again = compile_cached(tflite, target, tmp_path / "a", "tiny_ptq", OPTIONS, root)
    assert again.cache_hit and again.record == first.record
    assert {p.name: p.read_bytes() for p in again.outputs if not p.name.endswith("_vela.log")} == before


def test_a_hit_under_another_name_renames_the_model_everywhere(tflite, target, tmp_path, monkeypatch):
    root = tmp_path / "cache"
    first = compile_cached(tflite, target, tmp_path / "a", "tiny_ptq", OPTIONS, root)
    copy = tmp_path / "other" / "search_c17_int8.tflite"
    copy.parent.mkdir()
    copy.write_bytes(tflite.read_bytes())
    no_vela(monkeypatch)
    hit = compile_cached(copy, target, tmp_path / "b", "search_c17", OPTIONS, root)
    assert hit.cache_hit
    assert hit.record == {**first.record, "model": "search_c17", "source_tflite": str(copy)}
    names = sorted(p.name for p in hit.outputs)
    assert names == sorted(p.name.replace("tiny_ptq", "search_c17") for p in first.outputs)
    by_suffix = {p.name.split("_vela_H128")[1]: p for p in hit.outputs}
    old = {p.name.split("_vela_H128")[1]: p for p in first.outputs}
    assert by_suffix[".tflite"].read_bytes() == old[".tflite"].read_bytes()
    summary = next(csv.DictReader(by_suffix["_summary.csv"].open()))
    assert summary["network"] == "search_c17"
    assert summary["cycles_total"] == next(csv.DictReader(old["_summary.csv"].open()))["cycles_total"]


def test_key_holds_the_target_spec_and_ini_sections_not_other_sections(tflite, target, tmp_path):
    base = cache_key("abc", target, OPTIONS)
    assert cache_key("abd", target, OPTIONS) != base
    assert cache_key("abc", load_targets()["ethos-u55-256"], OPTIONS) != base
    assert cache_key("abc", target, CompileOptions(require_full_npu=False)) != base
    assert cache_key("abc", target, CompileOptions(timeout_s=5.0)) == base     # does not change the result

    def key_with_ini(old: str, new: str):
        folder = tmp_path / f"ini{len(list(tmp_path.iterdir()))}"
        folder.mkdir()
        text = (DEFAULT_TARGETS_FILE.parent / "vela.ini").read_text()
        assert old in text
        (folder / "vela.ini").write_text(text.replace(old, new, 1))
        (folder / "targets.yaml").write_text(DEFAULT_TARGETS_FILE.read_text())
        return cache_key("abc", load_targets(folder / "targets.yaml")["ethos-u55-128"], OPTIONS)

    assert key_with_ini("[Memory_Mode.Dedicated_Sram]", "[Memory_Mode.Dedicated_Sram]\n; a comment") == base
    section = ("[System_Config.Ethos_U55_High_End_Embedded]\ncore_clock=500e6\naxi0_port=Sram\n"
               "axi1_port=OffChipFlash\nSram_clock_scale=1.0\n")
    assert key_with_ini(section, section.replace("=1.0", "=0.5")) != base     # the target's own section


def test_cache_root_is_the_data_cache_unless_the_environment_says(monkeypatch, tmp_path):
    monkeypatch.delenv("SEPIPE_VELA_CACHE", raising=False)
    assert cache_root(".cache") == Path(".cache") / "vela"
    monkeypatch.setenv("SEPIPE_VELA_CACHE", str(tmp_path))
    assert cache_root(".cache") == tmp_path
    monkeypatch.setenv("SEPIPE_VELA_CACHE", "off")
    assert cache_root(".cache") is None
