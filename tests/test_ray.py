"""The Ray executor: a tiny two-variant experiment on a local Ray instance gives the same report as
the sequential executor; a failed task is reported and not retried, a crashed worker is retried.

Slow (starts Ray twice, trains and converts tiny models); skipped when Ray is not installed.
"""

from __future__ import annotations

import csv
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

from sepipe import experiment as exp  # noqa: E402
from sepipe.config import experiment_from_dict  # noqa: E402
from sepipe.engine import records  # noqa: E402
from sepipe.engine.executors import make_executor  # noqa: E402
from sepipe.engine.stage import Graph, Stage  # noqa: E402
from sepipe.engine.tasks import TasksFailed, run_graph  # noqa: E402
from sepipe.errors import ToolError  # noqa: E402

pytestmark = pytest.mark.slow

# Report columns that differ between two runs of the same config: where the .tflite was (another
# runs folder) and how long Vela took (wall time).
RUN_DEPENDENT = {"source_tflite", "compile_s"}
# Audio scores agree to the last bits only: SI-SDR's dot products go through BLAS, whose threads
# (one per Ray task, one per core in a local scoring process) change the order of the sums (~1e-15).
SCORE_RTOL = 1e-9


def sweep_config(data_cache: str, runs_dir: Path):
    finetune = {"finetune_epochs": 1, "finetune_steps_per_epoch": 3}
    return experiment_from_dict({
        "name": "sweep", "seed": 3, "runs_dir": str(runs_dir),
        "data": {"cache_dir": data_cache},
        "model": {"family": "gru", "input_units": 32, "rnn_units": 24, "dense_units": 32},
        "train": {"epochs": 1, "steps_per_epoch": 3, "batch_size": 4, "valid_files": 2},
        "convert": {"calibration_files": 2, "calibration_frames": 64},
        "compile": {"targets": ["ethos-u55-128"]},
        "evaluate": {"test_files": 2, "dnsmos": False, "write_audio": 0, "baselines": ["noisy"],
                     "interpreters": ["float", "tflm"]},
        "variants": [{"name": "ptq"}, {"name": "w50", "kind": "weight", "sparsity": 0.5, **finetune}],
    })


class Timed:
    """An executor that measures its own run (the variants' tasks; for Ray, starting Ray too)."""

    def __init__(self, inner):
        self.inner, self.name, self.seconds = inner, inner.name, None

    def run(self, spec, tasks):
        start = time.monotonic()
        try:
            return self.inner.run(spec, tasks)
        finally:
            self.seconds = time.monotonic() - start


def report_rows(cfg) -> list[dict]:
    with (exp.RunPaths(cfg).report_dir / "sweep_report.csv").open() as handle:
        return [{k: v for k, v in row.items() if k not in RUN_DEPENDENT} for row in csv.DictReader(handle)]


def same_table(rows: list[dict], expected: list[dict]) -> bool:
    def close(got: str, want: str) -> bool:
        try:
            return float(got) == pytest.approx(float(want), rel=SCORE_RTOL, nan_ok=True)
        except ValueError:
            return got == want
    return [list(r) for r in rows] == [list(r) for r in expected] and all(
        close(row[k], want[k]) for row, want in zip(rows, expected) for k in want)


def test_ray_sweep_gives_the_report_of_the_sequential_executor(small_dataset, small_data_config, tmp_path,
                                                               monkeypatch, capsys):
    local_cfg = sweep_config(small_data_config.cache_dir, tmp_path / "local")
    ray_cfg = sweep_config(small_data_config.cache_dir, tmp_path / "ray")
    monkeypatch.setenv("SEPIPE_VELA_CACHE", str(tmp_path / "vela_local"))   # each run compiles with Vela
    local = Timed(make_executor("local"))
    exp.run_experiment(local_cfg, progress=False, executor=local)

    # The Ray run reuses the trained model (its record and files), as a sweep reuses its baseline's.
    shutil.copytree(local_cfg.run_dir / "train", ray_cfg.run_dir / "train")
    train_record = records.record_path(ray_cfg.run_dir, "train")
    train_record.parent.mkdir(parents=True)
    shutil.copy(records.record_path(local_cfg.run_dir, "train"), train_record)
    monkeypatch.setenv("SEPIPE_VELA_CACHE", str(tmp_path / "vela_ray"))
    assert not ray.is_initialized()
    on_ray = Timed(make_executor("ray", cpus_per_task=1))
    exp.run_experiment(ray_cfg, progress=False, executor=on_ray)
    assert not ray.is_initialized()     # the executor started its own instance and shut it down

    assert same_table(report_rows(ray_cfg), report_rows(local_cfg))
    md = [(cfg.run_dir / "report" / "sweep_report.md").read_text() for cfg in (local_cfg, ray_cfg)]
    assert md[0] == md[1]
    stages = [set(records.read_manifest(cfg.run_dir)["stages"]) for cfg in (local_cfg, ray_cfg)]
    assert stages[0] == stages[1] == {"train", "evaluate:references", "variant:w50", "convert:ptq", "convert:w50",
                                      "compile:ptq", "compile:w50", "evaluate:ptq", "evaluate:w50"}
    for name in ("ptq", "w50"):    # the same model bytes, compiled by Vela in both runs (separate caches)
        assert exp.RunPaths(ray_cfg).tflite(name).read_bytes() == exp.RunPaths(local_cfg).tflite(name).read_bytes()
    assert len(list((tmp_path / "vela_ray").iterdir())) == 2
    with capsys.disabled():
        print(f"\n[timing] two-variant sweep tasks on {os.cpu_count()} cores: sequential {local.seconds:.1f} s, "
              f"ray {on_ray.seconds:.1f} s (of which starting Ray {on_ray.inner.start_seconds:.1f} s)")


# --------------------------------------------------------------------------- failures and retries

@dataclass(frozen=True)
class FlakyGraph:
    """Tasks 'ok', 'bad' (a PipelineError), 'after' (needs 'bad') and 'crash' (its worker dies on the
    first attempt). Each attempt appends a line to <root>/<task>.attempts."""

    root: Path
    broken: bool = True
    progress: bool = False
    cwd: str = ""

    @property
    def run_dir(self) -> Path:
        return self.root / "run"

    def build(self, cpus=None) -> Graph:
        return Graph([self._stage("ok"), self._stage("bad"), self._stage("after", needs=("work:bad",)),
                      self._stage("crash")])

    def _stage(self, name: str, needs=()) -> Stage:
        return Stage(f"work:{name}", needs=needs, group=name, config={"broken": self.broken and name == "bad"},
                     run=lambda ctx: self._work(name))

    def _work(self, name: str) -> dict:
        log = self.root / f"{name}.attempts"
        with log.open("a") as handle:
            handle.write("x\n")
        if name == "bad" and self.broken:
            raise ToolError("vela", "compiling bad.tflite failed (exit code 1): no operators")
        if name == "crash" and len(log.read_text().split()) == 1:
            os._exit(1)    # the worker process dies
        return {"task": name, "env": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "TF_USE_LEGACY_KERAS",
                                                                      "TF_NUM_INTRAOP_THREADS")}}


def attempts(root: Path, name: str) -> int:
    path = root / f"{name}.attempts"
    return len(path.read_text().split()) if path.exists() else 0


def test_ray_reports_a_failed_task_retries_a_dead_worker_and_a_rerun_skips_what_finished(tmp_path, caplog):
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])   # workers cannot import this test module
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=100 * 1024 * 1024)   # one start, two runs
    try:
        check_failures_retries_and_rerun(tmp_path, caplog)
    finally:
        ray.shutdown()


def check_failures_retries_and_rerun(tmp_path, caplog):
    with pytest.raises(TasksFailed) as info, caplog.at_level("INFO"):
        run_graph(FlakyGraph(tmp_path), make_executor("ray", cpus_per_task=1))
    message = str(info.value)
    assert message.startswith("2 of 4 tasks failed (bad: vela: compiling bad.tflite failed (exit code 1)")
    assert "after: not run: needs task 'bad', which failed" in message
    assert attempts(tmp_path, "bad") == 1          # a PipelineError is not retried
    assert attempts(tmp_path, "after") == 0
    assert attempts(tmp_path, "crash") == 2        # the dead worker's task ran again
    ok = records.read_record(tmp_path / "run", "work:ok")["summary"]
    assert ok["env"] == {"OMP_NUM_THREADS": "1", "TF_USE_LEGACY_KERAS": "1", "TF_NUM_INTRAOP_THREADS": "1"}

    runs = run_graph(FlakyGraph(tmp_path, broken=False), make_executor("ray", cpus_per_task=1))
    assert sorted(n for n, r in runs.items() if r.status == "ran") == ["work:after", "work:bad"]
    assert attempts(tmp_path, "ok") == 1 and attempts(tmp_path, "crash") == 2


def test_ray_executor_names_the_extra_when_ray_is_missing(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ToolError, match=r"pip install 'sepipe\[ray\]'"):
        make_executor("ray").run(None, [])
