"""The quality predictor's scores in the enhancement report (issue 17: `evaluate.quality_predictor`).

Fast tests: the option's one-line errors, the graph and fingerprints of an experiment without it, the tables'
columns and the page section. The slow test trains a tiny predictor (two epochs, float and binary) and names it
in a tiny enhancement experiment: the predict records carry the predictor's sha256, the quality table and the
report hold the columns, the evaluation is not redone, another predictor is scored again, and the same
experiment without the option gives the report bytes it gave before.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json

import numpy as np
import pytest

from sepipe.config import experiment_from_dict
from sepipe.errors import ConfigError

OPTION = "evaluate.quality_predictor"


def _fake_predictor_run(root, variant="binary"):
    """A folder that passes the option's load-time check (the files exist); nothing in it is read."""
    (root / "convert").mkdir(parents=True)
    (root / "records").mkdir()
    (root / "convert" / f"{variant}.tflite").write_bytes(b"")
    (root / "records" / f"convert.{variant}.json").write_text(json.dumps({"stage": f"convert:{variant}", "summary": {}}))
    return root


@pytest.mark.parametrize("value, fragment", [
    ({"run": "/no/such/run"}, f"{OPTION}.run"),
    ({"run": "runs/quality_predictor", "variant": "float32"}, f"{OPTION}.variant"),
    ({"tflite": "runs/quality_predictor/convert/binary.tflite"}, f"{OPTION}.tflite"),
    ("runs/quality_predictor", OPTION),
])
def test_a_bad_predictor_option_is_one_line_naming_it(value, fragment):
    with pytest.raises(ConfigError) as err:
        experiment_from_dict({"name": "x", "evaluate": {"quality_predictor": value}}, source="exp.yaml")
    message = str(err.value)
    assert "\n" not in message and fragment in message and message.startswith("exp.yaml")


def test_a_run_folder_without_that_variant_is_refused_at_load(tmp_path):
    run = _fake_predictor_run(tmp_path / "qp", variant="binary")
    with pytest.raises(ConfigError, match=r"convert/float\.tflite"):
        experiment_from_dict({"name": "x", "evaluate": {"quality_predictor": {"run": str(run), "variant": "float"}}})


def test_a_folder_that_is_not_a_predictor_run_is_one_line_naming_the_file(tmp_path):
    from sepipe.errors import PipelineError
    from sepipe.quality_predictor.reference import PredictorRef
    from sepipe.quality_predictor.scoring import load_predictor

    run = _fake_predictor_run(tmp_path / "qp")
    with pytest.raises(PipelineError) as err:
        load_predictor(PredictorRef(str(run)))
    assert "\n" not in str(err.value) and "manifest.json" in str(err.value)


def test_the_cli_says_a_bad_predictor_path_in_one_line(tmp_path, capsys):
    from sepipe.cli.main import main

    path = tmp_path / "exp.yaml"
    path.write_text(f"name: x\nruns_dir: {tmp_path}\nevaluate: {{quality_predictor: {{run: {tmp_path}/nope}}}}\n")
    assert main(["run", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"{OPTION}.run" in err and "nope" in err


def test_without_the_option_the_graph_and_the_evaluate_fingerprints_are_unchanged(tmp_path):
    from sepipe.stages.evaluation import _evaluate_config
    from sepipe.stages.graph import experiment_graph

    plain = experiment_from_dict({"name": "x", "runs_dir": str(tmp_path)})
    run = _fake_predictor_run(tmp_path / "qp")
    named = experiment_from_dict({"name": "x", "runs_dir": str(tmp_path),
                                  "evaluate": {"quality_predictor": {"run": str(run)}}})
    names = [s.name for s in experiment_graph(plain).ordered()]
    assert not [n for n in names if n.startswith("predict")]
    assert [s.name for s in experiment_graph(named).ordered() if not s.name.startswith("predict:")] == names
    assert experiment_graph(named)["report"].needs[-2:] == ("predict:references", "predict:ptq")
    # naming a predictor redoes no PESQ or DNSMOS: the evaluate stages' config slice is the same
    assert _evaluate_config(named) == _evaluate_config(plain)
    from sepipe.artifacts import sha256_json

    assert sha256_json(plain.evaluate) == sha256_json(dataclasses.replace(plain.evaluate, quality_predictor=None))


def test_predicted_columns_follow_ovrl_and_only_when_asked():
    from sepipe.report import DEPLOYMENT_COLUMNS, DISPLAY_COLUMNS, markdown_table, with_predicted

    keys = [k for k, _, _ in with_predicted(DISPLAY_COLUMNS)]
    assert keys[keys.index("dnsmos_ovrl") + 1:keys.index("dnsmos_ovrl") + 3] == ["pred_pesq", "pred_dnsmos_ovrl"]
    assert [k for k, _, _ in with_predicted(DEPLOYMENT_COLUMNS)][-2:] == ["pred_pesq", "pred_dnsmos_ovrl"]
    row = {"system": "unprocessed", "variant": "-", "pesq": 1.5, "dnsmos_ovrl": 2.1, "pred_pesq": 1.61,
           "pred_dnsmos_ovrl": 2.25}
    assert "pred. PESQ" not in markdown_table([row]) and "1.61" not in markdown_table([row])
    assert "| 2.10 | 1.61 | 2.25 |" in markdown_table([row], with_predicted(DISPLAY_COLUMNS))


def _quality_rows(predicted: bool) -> list[dict]:
    rows = [{"experiment": "e", "variant": "-", "model": "-", "system": "unprocessed", "pesq": 1.4, "dnsmos_ovrl": 2.0},
            {"experiment": "e", "variant": "a", "model": "m", "system": "int8 TFLite Micro", "pesq": 2.0,
             "dnsmos_ovrl": 2.4},
            {"experiment": "e", "variant": "b", "model": "m", "system": "int8 TFLite Micro", "pesq": 2.3,
             "dnsmos_ovrl": 2.6},
            {"experiment": "e", "variant": "c", "model": "m", "system": "int8 TFLite Micro", "pesq": 2.1,
             "dnsmos_ovrl": 2.5}]
    if predicted:
        for row, p, o in zip(rows, (1.5, 2.1, 2.5, 1.9), (2.1, 2.3, 2.7, 2.5)):
            row.update(pred_pesq=p, pred_dnsmos_ovrl=o)
    return rows


def test_the_page_section_shows_the_spearman_over_variants_only_with_predictions():
    from sepipe.report.page import render_html
    from sepipe.report.predicted import render_predicted_section

    assert render_predicted_section(_quality_rows(False)) == ""
    section = render_predicted_section(_quality_rows(True))
    # PESQ of variants a, b, c: measured ranks 1, 3, 2, predicted 2, 3, 1 (sum of d^2 = 2): 1 - 6 * 2 / 24 = 0.5
    assert "PESQ-WB: Spearman 0.50 over the 3 variants" in section and "<img" in section
    assert "DNSMOS OVRL: Spearman 1.00 over the 3 variants" in section
    page = render_html([], "t", quality_rows=_quality_rows(False))
    assert "pred." not in page
    assert "pred. PESQ" in render_html([], "t", quality_rows=_quality_rows(True))


# --------------------------------------------------------------------------- a tiny predictor in a tiny experiment

def _tiny_predictor(small_data_config, runs_dir):
    from sepipe.quality_predictor.config import predictor_from_dict

    return predictor_from_dict({
        "name": "qp_tiny", "runs_dir": str(runs_dir),
        "data": {"source": "debian", "size": "small", "cache_dir": small_data_config.cache_dir},
        "clips": {"seconds": 1.0, "per_file": 1, "train_files": 6, "eval_files": 2},
        "predictor": {"mels": 16, "channels": [4, 4, 4, 8], "dense_units": 8, "variants": ["float", "binary"]},
        "train": {"epochs": 2, "batch_size": 4},
        "compile": {"targets": ["ethos-u55-128"]},
    }, "tiny")


def _experiment(small_data_config, runs_dir, predictor=None):
    evaluate = {"test_files": 2, "dnsmos": False, "write_audio": 0, "baselines": ["noisy"], "interpreters": ["tflm"]}
    if predictor is not None:
        evaluate["quality_predictor"] = predictor
    return experiment_from_dict({
        "name": "tinyqp", "seed": 3, "runs_dir": str(runs_dir),
        "data": {"cache_dir": small_data_config.cache_dir},
        "model": {"family": "gru", "input_units": 16, "rnn_units": 16, "rnn_layers": 1, "dense_units": 16},
        "train": {"epochs": 1, "steps_per_epoch": 2, "batch_size": 4, "valid_files": 1},
        "convert": {"calibration_files": 1, "calibration_frames": 32},
        "compile": {"targets": ["ethos-u55-128"]},
        "evaluate": evaluate,
        "variants": [{"name": "ptq"}, {"name": "off50", "kind": "offline", "sparsity": 0.5}],
    })


def _report_bytes(cfg) -> dict:
    files = [*(cfg.run_dir / "report").glob(f"{cfg.name}_report.*"), *(cfg.run_dir / "evaluate").glob("*_quality*")]
    return {p.name: p.read_bytes() for p in files}


@pytest.fixture(scope="module")
def vela_cache(tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SEPIPE_VELA_CACHE", str(tmp_path_factory.mktemp("vela_cache")))
        yield


@pytest.mark.slow      # trains a tiny predictor (two variants) and a tiny enhancer: a few minutes on a loaded core
def test_the_report_shows_the_predictors_scores_and_nothing_changes_without_it(vela_cache, small_dataset,
                                                                               small_data_config, tmp_path, caplog):
    from sepipe import experiment as exp
    from sepipe.engine import records
    from sepipe.quality_predictor.scoring import load_predictor
    from sepipe.quality_predictor.stages import PredictorPaths, run_predictor

    qp = _tiny_predictor(small_data_config, tmp_path / "qp_runs")
    run_predictor(qp, until="evaluate:binary", progress=False)
    run_predictor(qp, until="convert:float", progress=False)
    binary = {"run": str(qp.run_dir), "variant": "binary"}

    # the scores of the enhancement report are the predictor's own: its TFLite Micro predictions of its test clips
    predictor = load_predictor(experiment_from_dict(
        {"name": "x", "evaluate": {"quality_predictor": binary}}).evaluate.quality_predictor)
    own = np.load(PredictorPaths(qp).predictions("binary"))
    with np.load(qp.run_dir / "labels" / "clips.npz") as clips:
        test = np.flatnonzero(clips["split"] == "test")[:4]
        mine = np.stack([predictor.scores(clips["audio"][i] / 32767.0)[1] for i in test])
    np.testing.assert_allclose(mine, own["tflm"][:4], rtol=0, atol=1e-6)

    plain = _experiment(small_data_config, tmp_path / "runs")
    exp.run_experiment(plain, progress=False)
    before = _report_bytes(plain)

    named = _experiment(small_data_config, tmp_path / "runs", binary)
    with caplog.at_level("INFO"):
        summary = exp.run_experiment(named, progress=False)
    assert "evaluate:ptq: up to date" in caplog.messages and "evaluate:references: up to date" in caplog.messages
    record = records.read_record(named.run_dir, "predict:ptq")
    tflite_sha = hashlib.sha256((qp.run_dir / "convert" / "binary.tflite").read_bytes()).hexdigest()
    assert record["summary"]["predictor"]["tflite_sha256"] == tflite_sha
    rows = {(r["variant"], r["system"]): r for r in summary["evaluate"]["rows"]}
    for key in (("-", "unprocessed"), ("ptq", "int8 TFLite Micro"), ("off50", "int8 TFLite Micro")):
        assert np.isfinite(rows[key]["pred_pesq"]) and np.isfinite(rows[key]["pred_dnsmos_ovrl"])
    report = named.run_dir / "report" / "tinyqp_report"
    for suffix in (".md", ".html"):
        assert "pred. PESQ" in report.with_suffix(suffix).read_text()
    assert "pred_dnsmos_ovrl" in report.with_suffix(".csv").read_text().splitlines()[0]
    assert "Quality predictor against the teacher" in report.with_suffix(".html").read_text()
    assert "pred. OVRL" in (named.run_dir / "evaluate" / "tinyqp_quality.md").read_text()
    per_file = json.loads((named.run_dir / "evaluate" / "ptq_predicted_per_file.json").read_text())
    assert len(per_file) == 2 and all(row["windows"] >= 1 for row in per_file)

    # another predictor: scored again, not reused; the evaluation still is
    caplog.clear()
    other = _experiment(small_data_config, tmp_path / "runs", {**binary, "variant": "float"})
    with caplog.at_level("INFO"):
        exp.run_experiment(other, progress=False)
    assert "predict:ptq: up to date" not in caplog.messages and "evaluate:ptq: up to date" in caplog.messages
    assert records.read_record(other.run_dir, "predict:ptq")["summary"]["predictor"]["tflite_sha256"] != tflite_sha

    exp.run_experiment(plain, progress=False)       # without the option: the report of before, byte for byte
    assert _report_bytes(plain) == before
