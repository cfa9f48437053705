"""A green budget check can be trusted (issue 11): a record is used only while it belongs to the current
model bytes and settings, a stage that starts invalidates its previous record, unreadable records of
other runs are skipped, stale temporary files are cleaned, and a budget file never gives a traceback.

The run here is a toy chain with the experiment's stage names and file layout (convert -> compile /
evaluate -> report), run by the real Runner: no TensorFlow, no Vela, a few milliseconds a run.
"""

from __future__ import annotations

import csv
import io
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import report_inputs as ri
from sepipe import artifacts
from sepipe.cli import main
from sepipe.engine import records
from sepipe.engine.stage import Done, Graph, Runner, Stage
from sepipe.errors import PipelineError, ToolError

TARGET = "ethos-u55-128"


# --------------------------------------------------------------------------- a toy run of one variant

@dataclass
class ToyRun:
    """convert:ptq (a .tflite whose bytes follow `setting`) -> compile:ptq (one compile record whose SRAM
    follows the model) and evaluate:ptq (SI-SDR follows the model) -> report (CSV + its sources)."""

    root: Path
    setting: int = 1
    compile_fails: bool = False
    calls: dict = field(default_factory=dict)

    @property
    def run_dir(self) -> Path:
        return self.root / "runs" / "demo"

    @property
    def tflite(self) -> Path:
        return self.run_dir / "demo_ptq.tflite"

    @property
    def record_json(self) -> Path:
        return self.run_dir / "compile" / "demo_ptq_vela_H128_record.json"

    @property
    def report_csv(self) -> Path:
        return self.run_dir / "report" / "demo_report.csv"

    def _count(self, name):
        self.calls[name] = self.calls.get(name, 0) + 1

    def convert(self, ctx):
        self._count("convert")
        artifacts.write_bytes(self.tflite, f"model {self.setting}".encode())
        return {"tflite_bytes": self.tflite.stat().st_size}

    def compile(self, ctx):
        self._count("compile")
        if self.compile_fails:
            raise ToolError("ethos-u-vela", f"compiling {self.tflite} for {TARGET}: Error: out of SRAM")
        # the new model needs a lot more SRAM: a budget of 64 KiB holds for setting 1, not for setting 2
        record = {**ri.record("ptq", TARGET), "source_tflite": str(self.tflite),
                  "source_sha256": artifacts.sha256_file(self.tflite),
                  "sram_memory_used_kib": 0.5 if self.setting == 1 else 640.0}
        artifacts.write_json(self.record_json, record)
        return Done({"records": [record]}, (self.record_json,))

    def evaluate(self, ctx):
        self._count("evaluate")
        rows = [{"variant": "ptq", "system": "int8 TFLite Micro", "si_sdr": 10.0 if self.setting == 1 else 2.0}]
        path = artifacts.write_json(self.run_dir / "evaluate" / "ptq_per_file.json", rows)
        return Done({"rows": rows}, (path,))

    def report(self, ctx):
        self._count("report")
        row = {**ctx.needs["compile:ptq"]["records"][0], "si_sdr": ctx.needs["evaluate:ptq"]["rows"][0]["si_sdr"]}
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=list(row))
        writer.writeheader(), writer.writerow(row)
        artifacts.write_text(self.report_csv, out.getvalue())
        try:
            from sepipe.engine.currency import write_sources
        except ImportError:     # main before issue 11: no sources record
            return {"rows": [row]}
        write_sources(self.run_dir, [self.report_csv], ctx.needs, "run: sepipe report demo.yaml")
        return {"rows": [row]}

    def stages(self) -> list[Stage]:
        return [
            Stage("convert:ptq", group="ptq", config={"setting": self.setting}, outputs=[self.tflite],
                  run=self.convert, hint="convert first: sepipe convert demo.yaml"),
            Stage("compile:ptq", needs=("convert:ptq",), group="ptq", config={"targets": [TARGET]},
                  inputs={"tflite": self.tflite}, tools=("ethos-u-vela",), run=self.compile,
                  hint="compile first: sepipe compile demo.yaml"),
            Stage("evaluate:ptq", needs=("convert:ptq",), group="ptq", config={"files": 2},
                  inputs={"tflite": self.tflite}, tools=("numpy",), run=self.evaluate,
                  hint="evaluate first: sepipe evaluate demo.yaml"),
            Stage("report", needs=("compile:ptq", "evaluate:ptq"), record=False, run=self.report,
                  outputs=[self.report_csv], hint="run: sepipe run demo.yaml"),
        ]

    def runner(self) -> Runner:
        return Runner(Graph(self.stages()), self.run_dir, progress=False)

    def run(self, *names: str) -> dict:
        """Like sepipe.stages.api: the stages in order, then the derived manifest, even when one fails."""
        runner = self.runner()
        try:
            return {s.name: runner.run(s).summary for s in runner.graph.ordered(list(names) or None)}
        finally:
            records.write_manifest(self.run_dir, {"name": "demo"})


@pytest.fixture
def toy(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return ToyRun(tmp_path)


@pytest.fixture
def budget(tmp_path) -> Path:
    path = tmp_path / "budget.yaml"
    path.write_text(f"budgets:\n  {TARGET}: {{max_sram_kib: 64, min_quality: {{si_sdr: 5.0}}}}\n")
    return path


def check(capsys, *argv) -> tuple[int, str, list[str]]:
    code = main(["-q", "budget", "check", *map(str, argv)])
    out = capsys.readouterr()
    return code, out.out, [line for line in out.err.splitlines() if line.strip()]


# --------------------------------------------------------------------------- case 1: stale records are not joined

def test_a_fresh_run_passes_its_budget(toy, budget, capsys):
    toy.run()
    code, out, err = check(capsys, toy.run_dir, "--budgets", budget)
    assert code == 0 and out.startswith("budgets hold: 1 model/target row(s)"), (out, err)


def test_report_refuses_compile_and_evaluate_records_of_the_previous_model(toy):
    toy.run()
    toy.setting = 2
    toy.run("convert:ptq")                      # `sepipe convert` with a changed setting
    with pytest.raises(PipelineError) as error:
        toy.run("report")                       # `sepipe report`
    message = str(error.value)
    assert error.value.exit_code == 2 and "\n" not in message
    assert "records/compile.ptq.json" in message and "stale" in message
    assert "'tflite'" in message and "sepipe compile demo.yaml" in message
    assert toy.calls["report"] == 1             # the report was not rewritten with the old figures


def test_budget_check_refuses_a_report_of_the_previous_model(toy, budget, capsys):
    toy.run()
    toy.setting = 2
    toy.run("convert:ptq")
    code, out, err = check(capsys, toy.run_dir, "--budgets", budget)
    assert code == 2 and out == "" and len(err) == 1, (code, out, err)
    assert err[0].startswith("sepipe: error: ") and "compile.ptq.json" in err[0] and "stale" in err[0]
    assert "sepipe compile demo.yaml" in err[0]


def test_budget_check_of_the_compile_records_alone_refuses_them_too(toy, budget, capsys):
    toy.run()
    toy.setting = 2
    toy.run("convert:ptq")
    toy.report_csv.unlink()
    for source in (toy.run_dir, toy.record_json):
        code, out, err = check(capsys, source, "--budgets", budget)
        assert code == 2 and len(err) == 1 and "stale" in err[0], (source, code, out, err)


def test_a_report_csv_edited_after_the_report_is_refused(toy, budget, capsys):
    toy.run()
    toy.report_csv.write_text(toy.report_csv.read_text().replace("0.5,", "0.25,", 1))
    code, _, err = check(capsys, toy.run_dir, "--budgets", budget)
    assert code == 2 and "demo_report.csv" in err[0] and "sepipe report demo.yaml" in err[0]


def test_a_changed_setting_of_a_needed_stage_is_stale_for_its_consumer(toy):
    toy.run()
    changed = ToyRun(toy.root, calls=toy.calls)
    stages = changed.stages()
    stages[1] = Stage(**{**stages[1].__dict__, "config": {"targets": ["ethos-u65-256"]}})
    with pytest.raises(PipelineError, match=r"compile\.ptq\.json.*config.*sepipe compile demo.yaml"):
        Runner(Graph(stages), toy.run_dir, progress=False).run("report")


def test_after_a_rerun_the_records_are_current_again(toy, budget, capsys):
    toy.run()
    toy.setting = 2
    toy.run()                                   # `sepipe run`: everything redone
    code, out, err = check(capsys, toy.run_dir, "--budgets", budget)
    assert code == 1 and "sram_memory_used_kib, 640" in out and "si_sdr, 2" in out


# --------------------------------------------------------------------------- case 2: a failed stage leaves no record

def test_failed_recompile_leaves_no_record_that_looks_current(toy, budget, capsys):
    toy.run()
    toy.compile_fails = True
    toy.setting = 2
    toy.run("convert:ptq")
    with pytest.raises(ToolError):
        toy.run("compile:ptq")                  # `sepipe compile` fails
    assert records.read_record(toy.run_dir, "compile:ptq") is None
    code, out, err = check(capsys, toy.run_dir, "--budgets", budget)
    assert code == 2 and len(err) == 1 and "compile.ptq.json" in err[0], (code, out, err)
    assert "sepipe compile demo.yaml" in err[0]


def test_failed_rerun_of_the_same_model_also_invalidates_the_record(toy, budget, capsys):
    toy.run()
    toy.compile_fails = True
    stages = toy.stages()
    stages[1] = Stage(**{**stages[1].__dict__, "config": {"targets": ["bad-target"]}})
    with pytest.raises(ToolError):
        Runner(Graph(stages), toy.run_dir, progress=False).run("compile:ptq")
    assert not records.record_path(toy.run_dir, "compile:ptq").exists()
    code, _, err = check(capsys, toy.run_dir, "--budgets", budget)
    assert code == 2 and "compile.ptq.json" in err[0] and "not found" in err[0]


def test_interrupted_stage_leaves_no_record(toy):
    toy.run()

    def interrupted(ctx):
        raise KeyboardInterrupt

    stages = toy.stages()
    stages[2] = Stage(**{**stages[2].__dict__, "config": {"files": 3}, "run": interrupted})
    with pytest.raises(KeyboardInterrupt):
        Runner(Graph(stages), toy.run_dir, progress=False).run("evaluate:ptq")
    assert records.read_record(toy.run_dir, "evaluate:ptq") is None
    with pytest.raises(PipelineError, match="evaluate.ptq.json: not found"):
        toy.run("report")


# --------------------------------------------------------------------------- case 3: unreadable records

@pytest.mark.parametrize("text", ['{"stage": "compile:ptq", "fing', "", "[1, 2]", "\xff\xfe"])
def test_unreadable_record_of_the_current_run_is_one_line(toy, text, capsys, budget):
    toy.run()
    path = records.record_path(toy.run_dir, "compile:ptq")
    path.write_bytes(text.encode("latin-1"))
    with pytest.raises(PipelineError) as error:
        toy.run("report")
    assert error.value.exit_code == 2 and str(path) in str(error.value) and "\n" not in str(error.value)
    code, _, err = check(capsys, toy.run_dir, "--budgets", budget)
    assert code == 2 and len(err) == 1 and "compile.ptq.json" in err[0]


def test_truncated_records_and_manifests_of_other_runs_do_not_break_training_reuse(tmp_path, caplog):
    from types import SimpleNamespace

    from sepipe.stages.training import reuse_identical_training

    runs = tmp_path / "runs"
    broken = runs / "broken"
    (broken / "records").mkdir(parents=True)
    (broken / "records" / "train.json").write_text('{"stage": "train", "fingerpr')
    (broken / "manifest.json").write_text('{"stages": {')
    cfg = SimpleNamespace(runs_dir=runs, run_dir=runs / "mine")
    with caplog.at_level("WARNING"):
        assert reuse_identical_training(cfg, {"config": "x"}) is None
    assert any("train.json" in m and "skipped" in m for m in caplog.messages)


def test_truncated_manifest_of_the_current_run_is_one_line_for_readers(toy):
    toy.run()
    (toy.run_dir / "manifest.json").write_text('{"config": {"na')
    with pytest.raises(PipelineError, match="manifest.json"):
        records.read_manifest(toy.run_dir)
    records.write_manifest(toy.run_dir, {"name": "demo"})     # the derived file is rewritten, not an error
    assert records.read_manifest(toy.run_dir)["config"] == {"name": "demo"}


# --------------------------------------------------------------------------- case 4: NaN in JSON

def test_json_helper_writes_non_finite_numbers_as_null(tmp_path):
    from sepipe.engine.records import finite_json

    state = {"best_val_loss": math.inf, "history": [{"val_loss": math.nan, "loss": 1.5}]}
    text = finite_json(state)
    assert json.loads(text) == {"best_val_loss": None, "history": [{"val_loss": None, "loss": 1.5}]}
    assert "NaN" not in text and "Infinity" not in text


def test_record_with_nan_summary_is_written_as_valid_json(toy):
    stage = Stage("nan", config={}, run=lambda ctx: {"loss": math.nan, "best": -math.inf})
    Runner(Graph([stage]), toy.run_dir, progress=False).run("nan")
    text = records.record_path(toy.run_dir, "nan").read_text()
    assert "NaN" not in text and json.loads(text)["summary"] == {"loss": None, "best": None}


# --------------------------------------------------------------------------- case 5: unknown quality metric

def test_unknown_min_quality_metric_is_exit_2_naming_the_valid_ones(toy, tmp_path, capsys):
    toy.run()
    budget = tmp_path / "b.yaml"
    budget.write_text(f"budgets:\n  {TARGET}: {{min_quality: {{sisdr: 5.0}}}}\n")
    code, out, err = check(capsys, toy.run_dir, "--budgets", budget)
    assert code == 2 and out == "" and len(err) == 1
    assert "min_quality" in err[0] and "'sisdr'" in err[0] and "si_sdr" in err[0] and "pesq" in err[0]


# --------------------------------------------------------------------------- case 6: stale temporary files

def test_temporary_files_of_a_killed_stage_are_cleaned_when_it_starts(toy):
    toy.run()
    folder = toy.tflite.parent
    stale = [folder / ".tmp-abc123xy-demo_ptq.tflite", toy.record_json.parent / ".tmp-q1w2e3r4-demo_ptq_vela_H128_record.json",
             records.record_path(toy.run_dir, "compile:ptq").parent / ".tmp-zz99yy88-compile.ptq.json"]
    others = [folder / ".tmp-abc123xy-demo_w50.tflite", folder / "notes.tmp-abc123xy-demo_ptq.tflite",
              folder / ".tmp-short-demo_ptq.tflite"]
    for path in stale + others:
        path.write_bytes(b"")
    toy.setting = 2
    toy.run("convert:ptq", "compile:ptq")
    assert not any(p.exists() for p in stale)
    assert all(p.exists() for p in others)    # another stage's, or not the pattern sepipe.artifacts writes


def test_a_stage_that_is_up_to_date_touches_nothing(toy):
    toy.run()
    leftover = toy.tflite.parent / ".tmp-abc123xy-demo_ptq.tflite"
    leftover.write_bytes(b"")
    toy.run("convert:ptq")
    assert leftover.exists() and toy.calls["convert"] == 1


# --------------------------------------------------------------------------- case 7: fuzzed budget files

_KEYS = ["budgets", TARGET, "ethos-u65-256", "nope", "max_sram_kib", "max_flash_kib", "max_dram_kib",
         "max_latency_ms", "max_latency_hop_fraction", "min_npu_op_share", "min_quality", "si_sdr", "pesq", "x"]
_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-10**30, 10**30),
                     st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=8),
                     st.sampled_from(["1e999", "-inf", ".nan", "0x10", "~", "64"]))
_VALUES = st.recursive(_SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.one_of(st.sampled_from(_KEYS), _SCALARS), inner, max_size=4)),
    max_leaves=12)
_DOCUMENTS = st.one_of(
    _VALUES,
    st.fixed_dictionaries({"budgets": st.dictionaries(st.sampled_from(_KEYS), _VALUES, max_size=3)}),
    st.fixed_dictionaries({"budgets": st.fixed_dictionaries({TARGET: st.dictionaries(
        st.sampled_from(_KEYS[4:]), _VALUES, max_size=4)})}),
    # mostly well-formed: real limits with numbers, so results (exit 0 and 1) are exercised too
    st.fixed_dictionaries({"budgets": st.fixed_dictionaries({TARGET: st.dictionaries(
        st.sampled_from(_KEYS[4:10]), st.one_of(st.floats(-1, 1e4), st.integers(-5, 10**6)), min_size=1, max_size=4)
        | st.fixed_dictionaries({"min_quality": st.dictionaries(
            st.sampled_from(["si_sdr", "pesq", "stoi", "sisdr", ""]), st.one_of(st.floats(), st.text(max_size=3)),
            max_size=2)})})}))
_RAW = st.one_of(st.text(max_size=60), st.binary(max_size=40).map(lambda b: b.decode("latin-1")),
                 st.sampled_from(["budgets: &a [*a]", "budgets: {", "\t", "--- !!python/object:os.system {}",
                                  "budgets:\n  ethos-u55-128: {max_sram_kib: 1e400}\n"]))

FUZZ = {"tried": 0, "crashed": 0}


def _dump(document) -> str:
    try:
        return yaml.safe_dump(document, allow_unicode=True)
    except yaml.YAMLError:
        return repr(document)


@pytest.fixture(scope="module")
def fuzz_run(tmp_path_factory):
    run = ToyRun(tmp_path_factory.mktemp("fuzz"))
    run.run()
    yield run
    print(f"\nbudget file fuzz: {FUZZ['tried']} inputs, {FUZZ['crashed']} crashed")


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(text=st.one_of(_DOCUMENTS.map(_dump), _RAW))
def test_any_budget_file_gives_a_result_or_one_line(fuzz_run, tmp_path_factory, text):
    budget = tmp_path_factory.mktemp("b") / "budget.yaml"
    budget.write_bytes(text.encode("utf-8", "surrogatepass"))
    FUZZ["tried"] += 1
    stdout, stderr = io.StringIO(), io.StringIO()
    import contextlib

    start = time.process_time()
    try:
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            code = main(["-q", "budget", "check", str(fuzz_run.run_dir), "--budgets", str(budget)])
    except BaseException:
        FUZZ["crashed"] += 1
        raise
    assert time.process_time() - start < 30       # CPU seconds: no unbounded work (wall time varies with load)
    err = [line for line in stderr.getvalue().splitlines() if line.strip()]
    if code == 0:
        assert stdout.getvalue().startswith("budgets hold") and not err
    elif code == 1:     # a real violation: the table on stdout, one summary line on stderr
        assert stdout.getvalue().startswith("model, target, metric, value, limit") and len(err) == 1
    else:
        assert code == 2 and len(err) == 1 and err[0].startswith("sepipe: error: ") and len(err[0]) < 2000, err


# --------------------------------------------------------------------------- records outside a run folder

def test_a_compile_record_of_a_tflite_converted_again_since_is_refused(tmp_path, budget, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model = tmp_path / "mine.tflite"
    model.write_bytes(b"model 1")
    record = {**ri.record("ptq", TARGET), "source_tflite": "mine.tflite",
              "source_sha256": artifacts.sha256_file(model), "sram_memory_used_kib": 0.5}
    path = artifacts.write_json(tmp_path / "vela" / "mine_vela_H128_record.json", record)
    budget.write_text(f"budgets:\n  {TARGET}: {{max_sram_kib: 64}}\n")
    assert check(capsys, path, "--budgets", budget)[0] == 0
    model.write_bytes(b"model 2")
    code, _, err = check(capsys, "vela", "--budgets", budget)
    assert code == 2 and len(err) == 1 and "mine_vela_H128_record.json" in err[0] and "stale" in err[0]
    assert "sepipe compile mine.tflite --target ethos-u55-128" in err[0]
    model.unlink()                      # the source is gone: nothing to compare, the record is used
    assert check(capsys, path, "--budgets", budget)[0] == 0


def test_a_compile_that_fails_removes_the_record_of_the_last_one(tmp_path):
    from sepipe.deploy.compile import compile_model
    from sepipe.errors import InputFileError

    old = artifacts.write_json(tmp_path / "out" / "demo_ptq_vela_H128_record.json", ri.record("ptq", TARGET))
    (tmp_path / "bad.tflite").write_bytes(b"not a flatbuffer")
    with pytest.raises(InputFileError):
        compile_model(tmp_path / "bad.tflite", TARGET, tmp_path / "out", "demo_ptq")
    assert not old.exists()


def test_training_without_a_finite_validation_loss_is_one_line_not_file_not_found(tmp_path, monkeypatch):
    """sepipe.train (the lead's) keeps no best model when every validation loss is NaN and then fails
    loading it; the train stage turns that into one line naming the state file, on every rerun."""
    from types import SimpleNamespace

    import sepipe.train
    from sepipe.stages import training

    def nan_training(cfg, dataset, out_dir, progress=True):
        artifacts.write_json(out_dir / "train_state.json", {"epoch": 2, "best_val_loss": math.inf, "best_epoch": 0,
                                                            "history": [{"epoch": 1, "val_loss": math.nan}]})
        raise FileNotFoundError(str(out_dir / "sequence.weights.h5"))

    monkeypatch.setattr(sepipe.train, "train", nan_training)
    cfg = SimpleNamespace(runs_dir=tmp_path / "runs", run_dir=tmp_path / "runs" / "nan", name="nan")
    monkeypatch.setattr(training, "RunPaths", lambda c: SimpleNamespace(train_dir=c.run_dir / "train",
                                                                       sequence_weights=c.run_dir / "train" / "s.h5"))
    ctx = SimpleNamespace(fingerprint={"config": "nan"}, progress=False)
    for _ in range(2):
        with pytest.raises(PipelineError) as error:
            training._train(cfg, SimpleNamespace(dataset=None), ctx)
        message = str(error.value)
        assert error.value.exit_code == 2 and "\n" not in message and "train_state.json" in message
        assert "no epoch gave a finite validation loss" in message and "nan" in message.lower()


# --------------------------------------------------------------------------- the experiment's own declared stages

def _experiment(tmp_path, **convert):
    from sepipe.config import experiment_from_dict

    return experiment_from_dict({
        "name": "tiny", "seed": 3, "runs_dir": str(tmp_path / "runs"), "data": {"cache_dir": str(tmp_path / "cache")},
        "model": {"family": "gru", "input_units": 32, "rnn_units": 24, "dense_units": 32},
        "convert": {"calibration_files": 2, "calibration_frames": 64, **convert},
        "compile": {"targets": [TARGET]},
        "evaluate": {"test_files": 2, "dnsmos": False, "baselines": ["noisy"]}})


def _faked_graph(cfg, dataset):
    """The experiment's declared stages (config, inputs, tools, outputs as declared) with each `run`
    writing its outputs from the config instead of training, converting or compiling."""
    import dataclasses

    from sepipe.stages.graph import experiment_graph

    def fake(stage, ctx):
        outputs = stage.outputs(ctx.needs) if callable(stage.outputs) else stage.outputs
        for path in outputs:
            artifacts.write_text(path, f"{stage.name} {cfg.convert.calibration_frames}")
        if stage.name.startswith("compile:"):
            return {"records": [ri.record("ptq", TARGET)]}
        return {"rows": []} if stage.name.startswith("evaluate") else {"best_epoch": 1}

    graph = experiment_graph(cfg, dataset)
    return Graph([dataclasses.replace(s, run=lambda ctx, s=s: fake(s, ctx)) if s.record else s
                  for s in graph.ordered()])


def test_the_experiments_stages_refuse_a_compile_record_of_the_previous_conversion(tmp_path):
    from types import SimpleNamespace

    dataset = SimpleNamespace(root=tmp_path / "dataset")
    artifacts.write_text(dataset.root / "manifest.json", "{}")
    cfg = _experiment(tmp_path)
    graph = _faked_graph(cfg, dataset)
    runner = Runner(graph, cfg.run_dir, progress=False)
    for stage in graph.ordered():
        if stage.record:
            runner.run(stage)
    report = graph["report"]
    assert set(Runner(graph, cfg.run_dir).needs(report)) == set(report.needs)     # all current

    changed = _experiment(tmp_path, calibration_frames=32)      # sepipe convert --set convert.calibration_frames=32
    with pytest.raises(PipelineError, match=r"convert\.ptq\.json: stale: 'convert:ptq' was recorded for another "
                                            r"config \(convert\).*refresh: sepipe convert tiny.yaml"):
        Runner(_faked_graph(changed, dataset), cfg.run_dir).needs(report)       # the YAML changed, not yet run
    Runner(_faked_graph(changed, dataset), cfg.run_dir).run("convert:ptq")
    stale = r"(compile|evaluate)\.ptq\.json: stale: .*'tflite'.*refresh: sepipe (compile|evaluate) tiny.yaml"
    with pytest.raises(PipelineError, match=stale):
        Runner(_faked_graph(changed, dataset), cfg.run_dir).needs(report)
    Runner(_faked_graph(changed, dataset), cfg.run_dir).run("evaluate:ptq")
    with pytest.raises(PipelineError, match=r"compile\.ptq\.json: stale: .*'tflite'.*refresh: sepipe compile tiny"):
        Runner(_faked_graph(changed, dataset), cfg.run_dir).needs(report)
    Runner(_faked_graph(changed, dataset), cfg.run_dir).run("compile:ptq")
    assert set(Runner(_faked_graph(changed, dataset), cfg.run_dir).needs(report)) == set(report.needs)


def test_the_kept_wavs_are_outputs_of_the_evaluate_records_so_an_edit_makes_them_stale(tmp_path, monkeypatch):
    """evaluate:references and evaluate:<V> declare the WAVs evaluation keeps (the report's players): an
    edited or deleted one is a stale record for the report, like any other output."""
    import dataclasses
    from types import SimpleNamespace

    import sepipe.evaluate
    from sepipe.audio import write_wav
    from sepipe.stages import evaluation
    from sepipe.stages.graph import experiment_graph

    def keep(out_dir, *systems):
        return tuple(write_wav(out_dir / "audio" / system / "a.wav", [0.1, -0.1] * 8, 16000) for system in systems)

    monkeypatch.setattr(sepipe.evaluate, "evaluate_references", lambda cfg, dataset, out_dir, progress=True:
                        sepipe.evaluate.EvaluationResult([], [], {}, {}, keep(out_dir, "unprocessed", "clean")))
    monkeypatch.setattr(sepipe.evaluate, "evaluate_models", lambda cfg, dataset, variant, label, streaming, tflite,
                        out_dir, progress=True, contract=None: sepipe.evaluate.EvaluationResult(
                            [], [], {}, {}, keep(out_dir, f"{variant}/int8 TFLite Micro")))
    monkeypatch.setattr(evaluation, "load_streaming_model", lambda model, bins: None)
    monkeypatch.setattr(evaluation, "family_of", lambda model: SimpleNamespace(contract=lambda *a: None))
    dataset = SimpleNamespace(root=tmp_path / "dataset")
    artifacts.write_text(dataset.root / "manifest.json", "{}")
    cfg = _experiment(tmp_path)
    faked = _faked_graph(cfg, dataset)
    real = {s.name: s for s in experiment_graph(cfg, dataset).ordered()}
    graph = Graph([dataclasses.replace(s, run=real[s.name].run) if s.name.startswith("evaluate:") else s
                   for s in faked.ordered()])
    runner = Runner(graph, cfg.run_dir, progress=False)
    for stage in graph.ordered():
        if stage.record:
            runner.run(stage)
    report = graph["report"]
    outputs = {name: set(records.read_record(cfg.run_dir, name)["outputs"])
               for name in ("evaluate:references", "evaluate:ptq")}
    assert {"evaluate/audio/unprocessed/a.wav", "evaluate/audio/clean/a.wav"} <= outputs["evaluate:references"]
    assert "evaluate/audio/ptq/int8 TFLite Micro/a.wav" in outputs["evaluate:ptq"]
    assert set(Runner(graph, cfg.run_dir).needs(report)) == set(report.needs)     # all current

    clean = cfg.run_dir / "evaluate" / "audio" / "clean" / "a.wav"
    clean.write_bytes(clean.read_bytes()[:-2] + b"\x00\x00")                       # an edited WAV
    with pytest.raises(PipelineError, match=r"references\.json: stale: its output evaluate/audio/clean/a\.wav "
                                            r"changed.*refresh: sepipe evaluate tiny.yaml"):
        Runner(graph, cfg.run_dir).needs(report)
    Runner(graph, cfg.run_dir).run("evaluate:references")
    (cfg.run_dir / "evaluate" / "audio" / "ptq" / "int8 TFLite Micro" / "a.wav").unlink()   # a deleted one
    with pytest.raises(PipelineError, match=r"evaluate\.ptq\.json: stale: its output .*a\.wav is gone"):
        Runner(graph, cfg.run_dir).needs(report)
    Runner(graph, cfg.run_dir).run("evaluate:ptq")
    assert set(Runner(graph, cfg.run_dir).needs(report)) == set(report.needs)


def test_evaluation_returns_the_wavs_it_kept_for_the_stage_to_declare(tmp_path):
    """The real evaluate_references: its result lists exactly the WAVs it wrote (first write_audio files)."""
    from types import SimpleNamespace as NS

    import numpy as np

    from sepipe.evaluate import evaluate_references

    rng = np.random.default_rng(0)
    tone = (0.3 * np.sin(np.arange(8000) / 5)).astype(np.float32)
    pairs = [NS(name=n, source=n, clean=tone, noisy=tone + 0.05 * rng.standard_normal(8000).astype(np.float32))
             for n in "abc"]
    cfg = NS(name="t", data=NS(sample_rate=16000),
             evaluate=NS(test_files=3, write_audio=2, baselines=["noisy"], workers=1, dnsmos=False))
    result = evaluate_references(cfg, NS(pairs=lambda split, limit=None: pairs[:limit]), tmp_path, progress=False)
    assert sorted(str(p.relative_to(tmp_path)) for p in result.audio) == sorted(
        f"audio/{system}/{name}.wav" for system in ("unprocessed", "clean") for name in "ab")
    assert sorted(result.audio) == sorted(tmp_path.rglob("*.wav"))


def test_a_budget_file_alias_bomb_is_one_line_in_bounded_time(toy, tmp_path, capsys):
    toy.run()
    levels = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    levels += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("budgets:\n  ethos-u55-128:\n    min_quality:\n      " + "\n      ".join(levels) + "\n")
    assert bomb.stat().st_size < 1024
    start = time.process_time()
    code, _, err = check(capsys, toy.run_dir, "--budgets", bomb)
    assert time.process_time() - start < 30       # CPU seconds: no unbounded work (wall time varies with load)
    assert code == 2 and len(err) == 1 and "bomb.yaml" in err[0] and "aliases" in err[0] and len(err[0]) < 400
