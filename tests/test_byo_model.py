"""Bring your own architecture: `model.family: "module:function"` (sepipe.models.custom, models/builder.py).

Fast: the one-line refusals (import, attribute, signature, keys, what the builder returns or raises, the
streaming contract, unit pruning), the fingerprint following the builder's source, pickling.
Slow: examples/tiny_crn.py through `sepipe run` (train, ptq, a weight-pruned variant, convert, Vela,
TFLite Micro evaluation, report), then `sepipe bundle` and `sepipe verify-bundle`.
"""

from __future__ import annotations

import itertools
import json
import os
import pickle
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from sepipe.cli import main
from sepipe.config import load_experiment
from sepipe.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "tiny_crn.py"
_names = itertools.count()

GOOD = '''
def build(bins, units: int = 4):
    from sepipe.models.keras_backend import keras
    dense, mask = keras.layers.Dense(units, name="dense"), keras.layers.Dense(bins, "sigmoid", name="mask")
    x = keras.Input((None, bins), name="features")
    sequence = keras.Model(x, mask(dense(x)))
    f = keras.Input((bins,), batch_size=1, name="features")
    h = keras.Input((units,), batch_size=1, name="h")
    y = dense(f)
    return sequence, keras.Model({"features": f, "h": h}, {"mask": mask(y), "h_out": keras.layers.Add(name="h_out")([y, h])})
'''


@pytest.fixture(autouse=True)
def families_restored():
    """The families a test registers are removed after it (other modules list the built-in ones)."""
    from sepipe.models import FAMILIES

    before = dict(FAMILIES._entries)
    yield
    FAMILIES._entries.clear()
    FAMILIES._entries.update(before)


def experiment(tmp_path: Path, source: str, model: dict | None = None, **sections) -> Path:
    """An experiment YAML next to a fresh module holding `source` (unique name: modules are cached)."""
    module = f"byo_model_{next(_names)}"
    (tmp_path / f"{module}.py").write_text(textwrap.dedent(source))
    raw = {"name": "byo", "runs_dir": str(tmp_path / "runs"),
           "model": {"family": f"{module}:build", **(model or {})}, **sections}
    path = tmp_path / "byo.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def refused(path: Path, capsys) -> str:
    """The one stderr line of `sepipe config check` on `path`, which must exit 2."""
    assert main(["-q", "config", "check", str(path)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


# --------------------------------------------------------------------------- loading the config (no TensorFlow)

def test_the_builders_keyword_parameters_are_the_model_keys(tmp_path):
    cfg = load_experiment(experiment(tmp_path, GOOD, {"units": 8}))
    assert cfg.model.family.endswith(":build") and cfg.model.params == {"units": 8}
    assert pickle.loads(pickle.dumps(cfg.model)) == cfg.model     # Ray workers get the config by value


@pytest.mark.parametrize("source, model, wanted", [
    ("", {"family": "no_such_module_here:build"}, "module 'no_such_module_here': not found"),
    ("raise RuntimeError('broken at import')\n", {}, "its import raised RuntimeError: broken at import"),
    ("def other(bins): pass\n", {}, "it has no 'build'"),
    ("build = 3\n", {}, "it names a int"),
    ("def build(units=4): pass\n", {}, "first parameter is `bins`"),
    ("def build(bins, units): pass\n", {}, "defaults of type int, float, bool or str"),
    ("def build(bins, shape=(1, 2)): pass\n", {}, "defaults of type int, float, bool or str"),
    ("def build(bins, units=4): pass\n", {"unit": 3}, "option 'model.unit' = 3"),
    ("def build(bins, units=4): pass\n", {"units": "8"}, "option 'model.units' = '8'"),
    ("def build(bins, units=4): pass\n", {"family": "not a name:x"}, "'package.module:function'"),
])
def test_a_family_that_cannot_be_used_is_one_line_and_exit_2(tmp_path, capsys, source, model, wanted):
    path = experiment(tmp_path, source, model)
    line = refused(path, capsys)
    assert line.startswith("sepipe: error:") and str(path) in line and wanted in line, line


def test_a_model_family_subclass_gets_the_whole_interface(tmp_path):
    from sepipe.models import family_of

    source = "from sepipe.models.mask_rnn import GruFamily\n\n\nclass build(GruFamily):\n    pass\n"
    path = experiment(tmp_path, source, {"rnn_units": 16}, variants=[{"name": "ptq"}, {"name": "u", "kind": "unit"}])
    cfg = load_experiment(path)
    family = family_of(cfg.model)
    assert type(family).__name__ == "build" and cfg.model.rnn_units == 16
    assert family.group_width(cfg.model, "rnn") == 16                  # unit pruning: declared widths
    module = cfg.model.family.split(":")[0]
    assert family.source_files(cfg.model) == ((path.parent / f"{module}.py").resolve(),)


def test_unit_pruning_and_feature_norm_are_refused_for_a_builder(tmp_path, capsys):
    unit = experiment(tmp_path, GOOD, variants=[{"name": "ptq"}, {"name": "u", "kind": "unit", "sparsity": 0.5}])
    assert "option 'variants[1].kind' = 'unit'" in refused(unit, capsys)
    norm = experiment(tmp_path, GOOD, train={"feature_norm": True})
    assert "option 'train.feature_norm' = True" in refused(norm, capsys)


def test_the_train_fingerprint_follows_the_builders_source(tmp_path):
    from sepipe.engine import records
    from sepipe.stages.paths import model_sources

    cfg = load_experiment(experiment(tmp_path, GOOD))
    inputs = model_sources(cfg)
    assert list(inputs) == ["model_source"] and inputs["model_source"].read_text() == textwrap.dedent(GOOD)
    before = records.fingerprint({}, inputs, ())
    inputs["model_source"].write_text(textwrap.dedent(GOOD).replace("units: int = 4", "units: int = 5"))
    assert records.fingerprint({}, inputs, ()) != before
    assert model_sources(load_experiment(REPO / "experiments" / "demo.yaml")) == {}   # built-ins: unchanged


def test_a_run_folder_finds_the_module_the_train_stage_imported(tmp_path):
    from sepipe.engine import records
    from sepipe.models.custom import _recorded_import_root

    run = tmp_path / "runs" / "byo"
    record = records.record_path(run, "train")
    record.parent.mkdir(parents=True)
    record.write_text(json.dumps({"input_files": {"model_source": str(tmp_path / "proj" / "pkg" / "mod.py")}}))
    assert _recorded_import_root(run, "pkg.mod") == [tmp_path / "proj"]
    assert _recorded_import_root(run, "mod") == [tmp_path / "proj" / "pkg"]
    assert _recorded_import_root(tmp_path, "mod") == []          # no train record: nothing added


# --------------------------------------------------------------------------- building (TensorFlow, no training)

def test_the_contract_and_layer_groups_are_read_off_the_streaming_model(tmp_path):
    from sepipe.models import family_of

    cfg = load_experiment(experiment(tmp_path, GOOD)).model
    family = family_of(cfg)
    contract = family.contract(cfg, 9)
    assert (contract.feature.name, contract.feature.size, contract.head.name) == ("features", 9, "mask")
    assert [(s.input, s.output, s.units) for s in contract.states] == [("h", "h_out", 4)]
    assert family.layer_groups(cfg) == {"dense": ("dense",), "output": ("mask",)}
    assert family.compressible_layers(cfg) == ["dense"]


BROKEN = {
    "no mask": (GOOD.replace('name="mask")', 'name="gain")'), "no output named 'mask'"),
    "state without output": (GOOD.replace('"h_out": keras.layers.Add(name="h_out")([y, h])',
                                          '"x": keras.layers.Add(name="x")([y, h])'),
                             "state input 'h' has no output 'h_out' feeding it back"),
    "2-D state": (GOOD.replace('h = keras.Input((units,), batch_size=1, name="h")',
                               'h = keras.Input((1, units), batch_size=1, name="h")')
                      .replace('keras.layers.Add(name="h_out")([y, h])',
                               'keras.layers.Reshape((1, units), name="h_out")(y)'),
                  "streaming input 'h' has shape (1, 1, 4)"),
    "extra output": (GOOD.replace('"h_out": keras.layers.Add(name="h_out")([y, h])',
                                  '"h_out": keras.layers.Add(name="h_out")([y, h]), "x": keras.layers.Identity(name="x")(y)'),
                     "outputs ['x'] are neither the mask nor a state output"),
    "unnamed layer": (GOOD.replace('keras.layers.Dense(units, name="dense")', 'keras.layers.Dense(units)'),
                      "named the same in every build"),
    "raises": (GOOD.replace("    from sepipe", "    assert units < 4, 'units must be under 4'\n    from sepipe"),
               "it raised AssertionError: units must be under 4"),
    "one model": (GOOD.replace("return sequence, keras.Model", "return keras.Model"),
                  "returns two tf_keras models"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_builder_that_breaks_the_contract_is_one_config_error(tmp_path, case):
    from sepipe.models import family_of

    source, wanted = BROKEN[case]
    cfg = load_experiment(experiment(tmp_path, source)).model
    with pytest.raises(ConfigError) as error:
        family_of(cfg).build_sequence(cfg, 9)
    assert "option 'model.family'" in str(error.value) and wanted in str(error.value), str(error.value)
    assert "\n" not in str(error.value)


# --------------------------------------------------------------------------- the example, end to end

@pytest.mark.slow
def test_the_example_runs_every_stage_and_its_bundle_verifies(small_dataset, small_data_config, tmp_path,
                                                             monkeypatch, capsys):
    monkeypatch.setenv("SEPIPE_VELA_CACHE", str(tmp_path / "vela_cache"))
    project = tmp_path / "project"               # the user's folder: their module next to their experiment
    project.mkdir()
    shutil.copy(EXAMPLE, project / "tiny_crn.py")
    raw = yaml.safe_load((REPO / "examples" / "tiny_crn.yaml").read_text())
    raw.update({"runs_dir": str(tmp_path / "runs"), "data": {"cache_dir": small_data_config.cache_dir},
                "model": {**raw["model"], "channels": 8, "gru_units": 8},
                "train": {"epochs": 1, "steps_per_epoch": 3, "batch_size": 4, "valid_files": 2},
                "convert": {"calibration_files": 2, "calibration_frames": 64},
                "compile": {"targets": ["ethos-u55-128"]},
                "evaluate": {"test_files": 2, "dnsmos": False, "write_audio": 0, "baselines": ["noisy"]},
                "variants": [{"name": "ptq"}, {"name": "w50", "kind": "weight", "sparsity": 0.5,
                                                "finetune_epochs": 1, "finetune_steps_per_epoch": 2}]})
    path = project / "tiny_crn.yaml"
    path.write_text(yaml.safe_dump(raw))
    assert main(["-q", "run", str(path)]) == 0, capsys.readouterr().err
    run = tmp_path / "runs" / "tiny_crn"
    rows = {(r["variant"], r["system"]) for r in json.loads((run / "manifest.json").read_text())["stages"]
            ["evaluate:ptq"]["summary"]["rows"]}
    assert ("ptq", "int8 TFLite Micro") in rows
    from sepipe.engine import records
    train = json.loads(records.record_path(run, "train").read_text())
    assert train["input_files"]["model_source"] == str((project / "tiny_crn.py").resolve())
    assert "model_source" in train["fingerprint"]["inputs"]
    variant = json.loads((run / "variants" / "w50" / "variant.json").read_text())
    assert sorted(variant["pruned_layers"]) == ["conv", "gru"] and variant["nonzero_params"] < variant["params"]
    # a later command in a fresh process, from another folder, given only the run folder
    out = tmp_path / "bundles"
    bundled = subprocess.run([sys.executable, "-m", "sepipe.cli.main", "-q", "bundle", str(run), "--variant", "w50",
                              "--target", "ethos-u55-128", "--out", str(out), "--frames", "20"],
                             cwd=tmp_path, capture_output=True, text=True,
                             env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert bundled.returncode == 0, bundled.stderr[-2000:]
    bundle = next(p for p in out.iterdir() if p.is_dir())
    manifest = json.loads((bundle / "model_manifest.json").read_text())
    assert manifest["contract"]["family"] == "tiny_crn:build"
    assert main(["-q", "verify-bundle", str(bundle.with_suffix(".zip"))]) == 0, capsys.readouterr().err
