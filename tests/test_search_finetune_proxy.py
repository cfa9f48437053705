"""`search.proxy: finetune` on a tiny trained run: each candidate is fine-tuned a few steps through the run's
own stages before it is scored, a rerun resumes every candidate, and a chosen member's YAML holds that
fine-tuned variant, which rebuilds the same bytes in a fresh run folder."""

from __future__ import annotations

import hashlib
import json
import pytest
import yaml

from sepipe.cli.main import main

pytestmark = pytest.mark.slow   # trains (3 steps), fine-tunes (2 steps per candidate) and converts

SEARCH = {"population": 4, "generations": 1, "valid_files": 1, "sparsity": [0.0, 0.8], "clusters": [0, 4],
          "uniform": [0.8], "uniform_clusters": [0, 4], "chosen": 2, "proxy": "finetune", "proxy_steps": 2}


def experiment(tmp, name="tiny_ft", runs="runs"):
    return {"name": name, "seed": 5, "runs_dir": str(tmp / runs), "data": {"cache_dir": None},
            "model": {"family": "gru", "input_units": 32, "rnn_units": 24, "dense_units": 32},
            "train": {"epochs": 1, "steps_per_epoch": 3, "batch_size": 4, "valid_files": 1},
            "convert": {"calibration_files": 2, "calibration_frames": 64},
            "compile": {"targets": ["ethos-u55-128"]},
            "evaluate": {"test_files": 1, "dnsmos": False, "write_audio": 0, "baselines": ["noisy"],
                         "interpreters": ["tflite"]}}


@pytest.fixture(scope="module")
def searched(small_dataset, small_data_config, tmp_path_factory):
    from sepipe.search.config import load_search
    from sepipe.stages import api

    tmp = tmp_path_factory.mktemp("search_ft")
    raw = experiment(tmp)
    raw["data"]["cache_dir"] = small_data_config.cache_dir
    path = tmp / "tiny_ft.yaml"
    path.write_text(yaml.safe_dump({**raw, "search": SEARCH}))
    cfg, _, _ = load_search(path)
    api.stage_train(cfg, small_dataset, progress=False)
    api.stage_convert(cfg, small_dataset, cfg.dense_variant, progress=False)
    assert main(["-q", "search", str(path)]) == 0
    return path, cfg


def records_of(cfg) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((cfg.run_dir / "search" / "candidates").glob("*.json"))]


def test_each_candidate_is_its_fine_tuned_variant_and_a_rerun_resumes(searched):
    path, cfg = searched
    edited = [r for r in records_of(cfg) if r["sparsity"] or r["levels"]]
    assert edited and any(r["label"] == "uniform 0.8 c4" for r in records_of(cfg))
    for record in edited:
        tflite = cfg.run_dir / f"{cfg.name}_p{record['id'][:8]}.tflite"
        assert hashlib.sha256(tflite.read_bytes()).hexdigest() == record["tflite_sha256"]
        stats = json.loads((cfg.run_dir / "variants" / f"p{record['id'][:8]}" / "variant.json").read_text())
        assert stats["steps"]["total"] == SEARCH["proxy_steps"]
    summary = json.loads((cfg.run_dir / "search" / "search.json").read_text())
    page = (cfg.run_dir / "search" / "search.html").read_text()
    assert "briefly fine-tuned (2 steps" in page and "fine-tuned proxy (2 steps)" in page
    assert main(["-q", "search", str(path)]) == 0
    again = json.loads((cfg.run_dir / "search" / "search.json").read_text())
    assert again["candidates_scored"] == 0 and again["front"] == summary["front"]
    assert "p" + summary["front"][0][:7] not in {v.name for v in cfg.variants}   # scratch variants stay out of cfg


def test_a_chosen_yaml_rebuilds_the_fine_tuned_bytes_in_a_fresh_run(searched, small_dataset, tmp_path):
    from sepipe.config import load_experiment
    from sepipe.stages import api

    _, cfg = searched
    by_id = {r["id"]: r for r in records_of(cfg)}
    chosen = json.loads((cfg.run_dir / "search" / "search.json").read_text())["chosen"]
    name, record_id = next((n, i) for n, i in chosen.items() if by_id[i]["sparsity"] or by_id[i]["levels"])
    raw = yaml.safe_load((cfg.run_dir / "search" / "chosen" / name).read_text())
    scored = next(v for v in raw["variants"] if v["name"] == f"p{record_id[:8]}")
    assert scored["finetune_steps_per_epoch"] == SEARCH["proxy_steps"] and scored["kind"] in ("cluster", "weight")
    # a fresh run folder: the training (same seed, same steps) and the fine-tune run again from scratch
    raw["runs_dir"] = str(tmp_path / "runs")
    fresh = tmp_path / "fresh.yaml"
    fresh.write_text(yaml.safe_dump(raw))
    run_cfg = load_experiment(fresh)
    target = next(v for v in run_cfg.variants if v.name == scored["name"])
    api.stage_train(run_cfg, small_dataset, progress=False)
    api.stage_convert(run_cfg, small_dataset, target, progress=False)
    tflite = run_cfg.run_dir / f"{cfg.name}_{scored['name']}.tflite"
    assert hashlib.sha256(tflite.read_bytes()).hexdigest() == by_id[record_id]["tflite_sha256"]
