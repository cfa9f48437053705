"""The engine on toy stages (no TensorFlow): skip when current, redo on a change of THAT stage's
config, inputs or tools, one record file per stage, the derived manifest, the order from `needs`,
and the local executor's failure handling."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from sepipe import artifacts
from sepipe.engine import records
from sepipe.engine.executors import EXECUTORS, make_executor
from sepipe.engine.stage import Done, Graph, Runner, Stage, StageError
from sepipe.engine.tasks import TasksFailed, plan, run_graph
from sepipe.errors import ConfigError, MissingArtifactError, PipelineError


# --------------------------------------------------------------------------- a toy pipeline

@dataclass(frozen=True)
class Toy:
    """source file -> make (tools: numpy) -> double (tools: pesq) -> report; `calls` counts runs."""

    root: Path
    factor: int = 2
    offset: int = 0
    fail: str | None = None            # group whose stage raises a PipelineError
    groups: tuple[str, ...] = ()       # fan-out groups, each a chain needing 'make'
    calls: dict = field(default_factory=dict, compare=False)
    versions: dict = field(default_factory=dict, compare=False)   # tool versions the test sets

    @property
    def run_dir(self) -> Path:
        return self.root / "run"

    def _count(self, name: str) -> None:
        self.calls[name] = self.calls.get(name, 0) + 1

    def make(self, ctx):
        self._count("make")
        value = int((self.root / "source.txt").read_text()) + self.offset
        artifacts.write_text(self.run_dir / "made.txt", str(value))
        return {"value": value}

    def double(self, ctx):
        self._count("double")
        value = int((self.run_dir / "made.txt").read_text()) * self.factor
        artifacts.write_text(self.run_dir / "doubled.txt", str(value))
        return {"value": value, "made": ctx.needs["make"]["value"]}

    def stages(self) -> list[Stage]:
        made, doubled = self.run_dir / "made.txt", self.run_dir / "doubled.txt"
        stages = [
            Stage("double", needs=("make",), config={"factor": self.factor}, inputs={"made": made},
                  outputs=[doubled], tools=("pesq",), run=self.double),
            Stage("make", config={"offset": self.offset}, inputs={"source": self.root / "source.txt"},
                  outputs=[made], tools=("numpy",), run=self.make, hint="make it first"),
        ]
        for group in self.groups:
            stages.append(Stage(f"work:{group}", needs=("make",), group=group, config={"group": group},
                                tools=("numpy",), run=lambda ctx, g=group: self.work(g, ctx)))
        if self.groups:
            stages.append(Stage("report", needs=tuple(f"work:{g}" for g in self.groups), record=False,
                                run=lambda ctx: {"total": sum(s["value"] for s in ctx.needs.values())}))
        return stages

    def work(self, group: str, ctx):
        self._count(f"work:{group}")
        if group == self.fail:
            raise ConfigError("toy.yaml", f"groups.{group}", group, "a group that works")
        path = artifacts.write_text(self.run_dir / f"{group}.txt", group)
        return Done({"value": ctx.needs["make"]["value"] + len(group)}, (path,))

    # GraphSpec
    progress: bool = False
    cwd: str = ""

    def build(self, cpus=None) -> Graph:
        return Graph(self.stages())


@pytest.fixture
def toy(tmp_path, monkeypatch):
    (tmp_path / "source.txt").write_text("5")
    toy = Toy(tmp_path, versions={"numpy": "1.0", "pesq": "0.1"})
    monkeypatch.setattr(artifacts, "tool_version", lambda name: toy.versions.get(name, "9"))
    return toy


def run_all(toy: Toy) -> dict:
    graph = toy.build()
    runner = Runner(graph, toy.run_dir, progress=False)
    return {stage.name: runner.run(stage).status for stage in graph.ordered()}


# --------------------------------------------------------------------------- skip / redo

def test_order_comes_from_needs_not_declaration_order(toy):
    assert [s.name for s in toy.build().ordered()] == ["make", "double"]


def test_undeclared_need_and_cycle_are_errors():
    noop = lambda ctx: {}   # noqa: E731
    with pytest.raises(ValueError, match="undeclared"):
        Graph([Stage("a", needs=("b",), run=noop)])
    with pytest.raises(ValueError, match="cycle"):
        Graph([Stage("a", needs=("b",), run=noop), Stage("b", needs=("a",), run=noop)])


def test_second_run_skips_every_current_stage(toy):
    assert run_all(toy) == {"make": "ran", "double": "ran"}
    assert run_all(toy) == {"make": "current", "double": "current"}
    assert toy.calls == {"make": 1, "double": 1}


def test_config_change_redoes_that_stage_and_those_whose_inputs_change(toy):
    run_all(toy)
    assert run_all(Toy(toy.root, factor=3, calls=toy.calls)) == {"make": "current", "double": "ran"}
    assert run_all(Toy(toy.root, factor=3, offset=1, calls=toy.calls)) == {"make": "ran", "double": "ran"}


def test_input_file_change_redoes_the_stage(toy):
    run_all(toy)
    (toy.root / "source.txt").write_text("6")
    assert run_all(toy) == {"make": "ran", "double": "ran"}
    assert json.loads(records.record_path(toy.run_dir, "double").read_text())["summary"]["value"] == 12


def test_a_tool_redoes_only_the_stages_that_use_it(toy):
    run_all(toy)
    toy.versions["pesq"] = "0.2"          # only 'double' uses pesq
    assert run_all(toy) == {"make": "current", "double": "ran"}
    toy.versions["tensorflow"] = "3.0"    # no stage here uses it
    assert run_all(toy) == {"make": "current", "double": "current"}
    toy.versions["numpy"] = "2.0"
    assert run_all(toy)["make"] == "ran"


def test_altered_output_redoes_the_stage(toy):
    run_all(toy)
    (toy.run_dir / "doubled.txt").write_text("garbage")
    assert run_all(toy) == {"make": "current", "double": "ran"}


def test_missing_need_names_the_stage_and_how_to_make_it(toy):
    with pytest.raises(MissingArtifactError, match="'double' needs the 'make' stage.*make it first"):
        Runner(toy.build(), toy.run_dir).run("double")


def test_undeclared_output_not_written_is_an_error(tmp_path):
    graph = Graph([Stage("lazy", outputs=[tmp_path / "never.txt"], run=lambda ctx: {})])
    with pytest.raises(StageError, match="never.txt"):
        Runner(graph, tmp_path).run("lazy")
    assert records.read_record(tmp_path, "lazy") is None


# --------------------------------------------------------------------------- records and manifest

def test_each_stage_has_its_own_record_and_the_manifest_is_derived(toy):
    run_all(toy)
    files = sorted(p.name for p in (toy.run_dir / "records").glob("*.json"))
    assert files == ["double.json", "make.json"]
    make = records.read_record(toy.run_dir, "make")
    assert make["fingerprint"]["tools"] == {"numpy": "1.0"}
    assert make["outputs"] == {"made.txt": artifacts.sha256_file(toy.run_dir / "made.txt")}
    records.write_manifest(toy.run_dir, {"name": "toy"})
    manifest = json.loads((toy.run_dir / "manifest.json").read_text())
    assert manifest == records.read_manifest(toy.run_dir)
    assert manifest["config"] == {"name": "toy"} and "numpy" in manifest["tools"]
    assert set(manifest["stages"]["make"]) == {"fingerprint", "fingerprint_sha256", "outputs", "summary"}
    assert manifest["stages"]["double"]["summary"] == {"value": 10, "made": 5}


def test_concurrent_record_writes_lose_nothing(tmp_path):
    names = [f"evaluate:v{i}" for i in range(32)]
    start = threading.Barrier(len(names))

    def finish(name: str) -> None:
        out = artifacts.write_text(tmp_path / f"{name.replace(':', '_')}.txt", name)
        start.wait()
        records.write_record(tmp_path, name, {"config": name}, [out], {"name": name})

    threads = [threading.Thread(target=finish, args=(n,)) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stages = records.read_manifest(tmp_path)["stages"]
    assert sorted(stages) == sorted(names)
    assert all(stages[n]["summary"] == {"name": n} for n in names)


# --------------------------------------------------------------------------- tasks and executors

def test_plan_puts_shared_stages_first_groups_in_tasks_and_joins_last(toy):
    steps = plan(Toy(toy.root, groups=("a", "bb")).build())
    assert [s.name for s in steps.before] == ["make", "double"]
    assert [t.name for t in steps.tasks] == ["a", "bb"]
    assert [s.name for s in steps.after] == ["report"]


def test_local_executor_runs_the_graph_and_a_rerun_skips_it(toy):
    spec = Toy(toy.root, groups=("a", "bb"), calls=toy.calls)
    runs = run_graph(spec, make_executor("local"))
    assert runs["report"].summary == {"total": (5 + 1) + (5 + 2)}
    runs = run_graph(spec, make_executor("local"))
    assert {n: r.status for n, r in runs.items() if n != "report"} == dict.fromkeys(
        ["make", "double", "work:a", "work:bb"], "current")
    assert toy.calls["work:a"] == 1


def test_failed_task_is_reported_the_others_finish_and_a_rerun_redoes_only_it(toy, caplog):
    spec = Toy(toy.root, groups=("a", "bb", "ccc"), fail="bb", calls=toy.calls)
    with pytest.raises(TasksFailed) as info, caplog.at_level("ERROR"):
        run_graph(spec, make_executor("local"))
    assert "1 of 3 tasks failed (bb: toy.yaml: option 'groups.bb'" in str(info.value)
    assert info.value.exit_code == 1 and "\n" not in str(info.value)
    assert any(m.startswith("task bb failed: toy.yaml") for m in caplog.messages)
    assert records.read_record(toy.run_dir, "work:ccc") is not None     # the others went on
    fixed = Toy(toy.root, groups=("a", "bb", "ccc"), calls=toy.calls)
    runs = run_graph(fixed, make_executor("local"))
    assert [n for n, r in runs.items() if r.status == "ran"] == ["work:bb", "report"]
    assert toy.calls["work:a"] == toy.calls["work:ccc"] == 1


def test_executors_are_registered_lazily_and_unknown_names_list_them():
    assert EXECUTORS.names() == ["local", "ray"]
    with pytest.raises(ConfigError, match="'local', 'ray'"):
        make_executor("dask")
    with pytest.raises(PipelineError, match="--executor ray"):
        make_executor("local", address="10.0.0.1:6379")


def test_run_command_rejects_an_unknown_executor_in_one_line(capsys):
    from sepipe.cli import main

    assert main(["run", "experiments/demo.yaml", "--executor", "dask"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--executor" in err[0] and "'local', 'ray'" in err[0]
