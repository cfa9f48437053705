"""`sepipe search` on a tiny trained run (a few training steps): the precision gene converts its plan once
through the run's stages, a rerun resumes everything, and a chosen member's YAML run through the stages
`sepipe run` uses (convert, compile) rebuilds the same .tflite with the same Vela and quality figures."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import yaml

from sepipe.cli.main import main

pytestmark = pytest.mark.slow   # trains (3 steps) and converts

SEARCH = {"population": 6, "generations": 1, "valid_files": 1, "sparsity": [0.0, 0.8], "clusters": [0, 4],
          "uniform": [], "chosen": 2, "precision": ["rnn"]}


@pytest.fixture(scope="module")
def searched_run(small_dataset, small_data_config, tmp_path_factory):
    from sepipe.stages import api

    tmp = tmp_path_factory.mktemp("search_run")
    raw = {"name": "tiny", "seed": 3, "runs_dir": str(tmp / "runs"), "data": {"cache_dir": small_data_config.cache_dir},
           "model": {"family": "gru", "input_units": 32, "rnn_units": 24, "dense_units": 32},
           "train": {"epochs": 1, "steps_per_epoch": 3, "batch_size": 4, "valid_files": 1},
           "convert": {"calibration_files": 2, "calibration_frames": 64},
           "compile": {"targets": ["ethos-u55-128"]},
           "evaluate": {"test_files": 1, "dnsmos": False, "write_audio": 0, "baselines": ["noisy"],
                        "interpreters": ["tflite"]},
           "search": SEARCH}
    path = tmp / "tiny.yaml"
    path.write_text(yaml.safe_dump(raw))
    from sepipe.search.config import load_search

    cfg, _, _ = load_search(path)
    api.stage_train(cfg, small_dataset, progress=False)
    api.stage_convert(cfg, small_dataset, cfg.dense_variant, progress=False)
    assert main(["-q", "search", str(path)]) == 0
    return path, cfg


def test_the_precision_plan_is_converted_once_and_a_rerun_resumes(searched_run):
    path, cfg = searched_run
    summary = json.loads((cfg.run_dir / "search" / "search.json").read_text())
    plan = cfg.run_dir / "tiny_p_rnn16.tflite"
    assert plan.is_file() and "dense p_rnn16" in summary["references"]
    assert summary["candidates_scored"] > 0 and summary["genes"]["layers"][-1] == "mask"
    stamp = plan.stat().st_mtime_ns
    assert main(["-q", "search", str(path)]) == 0
    again = json.loads((cfg.run_dir / "search" / "search.json").read_text())
    assert again["candidates_scored"] == 0 and again["front"] == summary["front"]
    assert plan.stat().st_mtime_ns == stamp          # the plan's convert stage was skipped


def test_a_chosen_yaml_run_through_the_stages_rebuilds_the_same_figures(searched_run, small_dataset):
    from sepipe.config import load_experiment
    from sepipe.search.front import chosen_yaml
    from sepipe.search.genes import Genome
    from sepipe.search.config import load_search
    from sepipe.stages import api

    path, cfg = searched_run
    _, search, raw = load_search(path)
    records = [json.loads(p.read_text()) for p in sorted((cfg.run_dir / "search" / "candidates").glob("*.json"))]
    # one member on the 16x8 plan and one on the dense int8 model, whether or not they made the front
    def pick(base):   # an edited member where there is one (the plan's or dense reference otherwise)
        on = sorted((r for r in records if r["base"] == base), key=lambda r: -len(r["sparsity"]) - len(r["levels"]))
        return on[0]

    from sepipe.search.genes import Candidate
    from sepipe.search.scoring import ScoringSpec, score_candidate, state_for

    # a member on the 16x8 plan, scored as the search scores one (the tiny search may not have met one)
    spec = ScoringSpec(cfg, search, str(cfg.run_dir / "tiny_ptq.tflite"), str(path.parent / "work"),
                       (("p_rnn16", str(cfg.run_dir / "tiny_p_rnn16.tflite")),))
    on_plan = score_candidate(state_for(spec), Candidate((("rnn_1", 0.8), ("mask", 0.5)), (("dense_1", 4),),
                                                         base="p_rnn16"))
    picks = [on_plan, pick("")]
    assert picks[1]["sparsity"] or picks[1]["levels"]
    plans = {"p_rnn16": (("rnn", "int16x8"),)}
    assert Genome.for_experiment(cfg, search).plans[1] == plans["p_rnn16"]
    for i, record in enumerate(picks):
        chosen = path.parent / f"chosen_{i}.yaml"
        chosen.write_text(chosen_yaml(raw, cfg, record, f"pick{i}", plans))
        run_cfg = load_experiment(chosen)
        variant = run_cfg.variants[-1]
        api.stage_convert(run_cfg, small_dataset, variant, progress=False)
        tflite = run_cfg.run_dir / f"tiny_pick{i}.tflite"
        assert hashlib.sha256(tflite.read_bytes()).hexdigest() == record["tflite_sha256"]
        compiled = api.stage_compile(run_cfg, variant)["records"][0]
        assert (compiled["flash_kib"], compiled["cycles_total"]) == (record["flash_kib"], record["cycles_total"])


def test_the_front_and_chosen_yamls_are_written(searched_run):
    path, cfg = searched_run
    folder = cfg.run_dir / "search"
    stale = folder / "chosen" / "tiny_s0123abcd.yaml"     # a member of an earlier search's front
    stale.write_text("name: tiny\n")
    assert main(["-q", "search", str(path)]) == 0          # resumes every candidate
    assert not stale.exists()
    for name in ("front.csv", "front.md", "references.md", "front.png", "search.json"):
        assert (folder / name).is_file(), name
    chosen = sorted((folder / "chosen").glob("*.yaml"))
    summary = json.loads((folder / "search.json").read_text())
    assert chosen and [p.name for p in chosen] == sorted(summary["chosen"])   # no YAML of an earlier front
    text = chosen[0].read_text()
    assert "search:" not in text and "kind: offline" in text
    assert not (Path(folder) / "work").exists()
