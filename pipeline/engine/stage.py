"""Declared stages and the one runner that fingerprints, skips, runs and records them.

A stage declares what it is (DVC's `dvc.yaml` stage, Kedro's node): its name, the stages it
needs, the slice of the config it depends on, its input files, the tools it uses and its
outputs. The runner alone decides whether it runs:

    Stage(name="compile:ptq", needs=("convert:ptq",), group="ptq",
          config={"compile": cfg.compile},
          inputs=lambda needs: {"tflite": paths.tflite("ptq")},
          tools=("ethos-u-vela",),
          run=lambda ctx: compile_variant(cfg, "ptq"))

`config`, `inputs` and `outputs` are values or functions of `needs` (the recorded summaries of
the needed stages, by name), for what is only known once those ran (a pruned variant's narrower
model). A stage reads a needed stage's record only while it is current: recorded for the config,
input files and tools the experiment has now, with every stage upstream current too (a compile
record of the model before a re-conversion is refused, naming the command that refreshes it). A
stage that starts removes its previous record and the temporary files a killed run left. `run(ctx)` writes the outputs and returns the summary (a dict), or `Done(summary,
outputs)` when some outputs are known only after the run (one set per Vela target).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence, Union

from sepipe import artifacts
from sepipe.engine import currency, records
from sepipe.errors import MissingArtifactError, PipelineError

log = logging.getLogger(__name__)

Needs = Mapping[str, dict]          # needed stage name -> its recorded summary


@dataclass(frozen=True)
class Done:
    """What a stage's run returns when it has outputs beyond the declared ones."""

    summary: dict
    outputs: tuple[Path, ...] = ()


@dataclass(frozen=True)
class StageContext:
    """What a running stage gets: the needed stages' summaries and its own fingerprint."""

    name: str
    run_dir: Path
    needs: Needs
    fingerprint: dict | None
    progress: bool = True


@dataclass(frozen=True)
class Stage:
    """One declared unit of work; see the module docstring.

    group: the fan-out unit the stage belongs to (a variant's chain), None for the stages run in
    the driver (shared ones such as train, and those that join every group, such as the report);
    record: False for cheap derived stages that always run and leave no record (the report);
    hint: how a user makes this stage's outputs, for the error when a later stage needs them;
    writes: files it writes atomically besides its outputs (state, markers), whose temporary files a
    killed run leaves and the next run removes.
    """

    name: str
    run: Callable[[StageContext], Union[dict, Done]]
    needs: tuple[str, ...] = ()
    config: Any = None
    inputs: Union[Mapping[str, Path], Callable[[Needs], Mapping[str, Path]]] = field(default_factory=dict)
    outputs: Union[Sequence[Path], Callable[[Needs], Sequence[Path]]] = ()
    tools: tuple[str, ...] = ()
    group: str | None = None
    record: bool = True
    hint: str = ""
    writes: Sequence[Path] = ()


@dataclass(frozen=True)
class StageRun:
    """How one stage went: 'ran' or 'current' (skipped, up to date), its summary and wall time (s)."""

    name: str
    status: str
    summary: dict
    seconds: float = 0.0

    def describe(self) -> str:
        return f"{self.name} {'up to date' if self.status == 'current' else f'ran in {self.seconds:.1f} s'}"


def _resolve(value: Any, needs: Needs) -> Any:
    return value(needs) if callable(value) else value


class Graph:
    """Stages by name; the order comes from the declared `needs`, not from declaration order."""

    def __init__(self, stages: Sequence[Stage]):
        self.stages: dict[str, Stage] = {}
        for stage in stages:
            if stage.name in self.stages:
                raise ValueError(f"stage '{stage.name}' is declared twice")
            self.stages[stage.name] = stage
        for stage in stages:
            unknown = [n for n in stage.needs if n not in self.stages]
            if unknown:
                raise ValueError(f"stage '{stage.name}' needs undeclared stage(s) {unknown}")
        self.order = self._topological()

    def _topological(self) -> list[str]:
        order: list[str] = []
        state: dict[str, str] = {}

        def visit(name: str, path: tuple[str, ...]) -> None:
            if state.get(name) == "done":
                return
            if state.get(name) == "visiting":
                raise ValueError(f"stages form a cycle: {' -> '.join(path + (name,))}")
            state[name] = "visiting"
            for need in self.stages[name].needs:
                visit(need, path + (name,))
            state[name] = "done"
            order.append(name)

        for name in self.stages:
            visit(name, ())
        return order

    def __getitem__(self, name: str) -> Stage:
        return self.stages[name]

    def __contains__(self, name: object) -> bool:
        return name in self.stages

    def ordered(self, names: Sequence[str] | None = None) -> list[Stage]:
        """`names` (default all) in an order where every stage comes after the stages it needs."""
        wanted = set(self.stages if names is None else names)
        return [self.stages[n] for n in self.order if n in wanted]

    def groups(self) -> list[str]:
        """The fan-out groups, in the order their first stage appears."""
        seen: list[str] = []
        for stage in self.ordered():
            if stage.group is not None and stage.group not in seen:
                seen.append(stage.group)
        return seen

    def in_group(self, group: str | None) -> list[Stage]:
        return [s for s in self.ordered() if s.group == group]

    def upstream(self, name: str) -> set[str]:
        """Every stage `name` needs, directly or not."""
        seen: set[str] = set()
        todo = list(self.stages[name].needs)
        while todo:
            need = todo.pop()
            if need not in seen:
                seen.add(need)
                todo.extend(self.stages[need].needs)
        return seen


class Runner:
    """The one place a stage is fingerprinted, skipped when current, run and recorded."""

    def __init__(self, graph: Graph, run_dir: str | Path, progress: bool = True):
        self.graph, self.run_dir, self.progress = graph, Path(run_dir), progress
        self._current: dict[str, dict] = {}    # stage -> its record, checked current in this runner

    def needs(self, stage: Stage) -> dict[str, dict]:
        """The recorded summaries of the stages `stage` needs: MissingArtifactError if one never ran,
        StaleRecordError if one (or a stage upstream of it) is not current."""
        return {name: self.verify(name, stage.name)["summary"] for name in stage.needs}

    def verify(self, name: str, consumer: str) -> dict:
        """The record of stage `name`, checked current (itself and everything upstream, once per runner)."""
        if name in self._current:
            return self._current[name]
        stage = self.graph[name]
        record = records.read_record(self.run_dir, name)
        if record is None:
            hint = stage.hint or "run the experiment first"
            raise MissingArtifactError(records.record_path(self.run_dir, name),
                                       f"'{consumer}' needs the '{name}' stage, which has not run "
                                       f"(or failed or was interrupted); {hint}")
        needs = {need: self.verify(need, consumer)["summary"] for need in stage.needs}
        currency.check_record(self.run_dir, {**record, "refresh": record.get("refresh") or stage.hint})
        if stage.record:
            problem = _changed(self.run_dir, record, _resolve(stage.config, needs), _resolve(stage.inputs, needs),
                               stage.tools)
            if problem:
                raise currency.StaleRecordError(records.record_path(self.run_dir, name),
                                                f"stale: '{name}' was recorded for {problem}; '{consumer}' does "
                                                "not use it", currency.refresh_command(stage.hint))
        self._current[name] = record
        return record

    def run(self, stage: Stage | str) -> StageRun:
        stage = self.graph[stage] if isinstance(stage, str) else stage
        needs = self.needs(stage)
        fp, inputs = None, {}
        if stage.record:
            inputs = _resolve(stage.inputs, needs)
            fp = records.fingerprint(_resolve(stage.config, needs), inputs, stage.tools,
                                     hint=f"'{stage.name}' cannot start; {stage.hint or 'run the experiment'}")
            try:
                record = records.read_record(self.run_dir, stage.name)
            except PipelineError:
                record = None      # unreadable: the stage runs again and replaces it
            if record and records.is_current(self.run_dir, stage.name, fp, record):
                log.info("%s: up to date", stage.name)
                self._current[stage.name] = record
                return StageRun(stage.name, "current", record["summary"])
        self._start(stage, needs)
        start = time.monotonic()
        result = stage.run(StageContext(stage.name, self.run_dir, needs, fp, self.progress))
        seconds = time.monotonic() - start
        done = result if isinstance(result, Done) else Done(result)
        if not stage.record:
            return StageRun(stage.name, "ran", done.summary, seconds)
        outputs = [Path(p) for p in _resolve(stage.outputs, needs)] + [Path(p) for p in done.outputs]
        missing = [str(p) for p in outputs if not p.is_file()]
        if missing:
            raise StageError(stage.name, f"finished without writing {', '.join(missing)}")
        record = records.write_record(self.run_dir, stage.name, fp, list(dict.fromkeys(outputs)), done.summary,
                                      seconds, input_files=inputs, needs={n: self._current[n] for n in stage.needs},
                                      refresh=stage.hint)
        self._current[stage.name] = record
        return StageRun(stage.name, "ran", record["summary"], seconds)

    def _start(self, stage: Stage, needs: Needs) -> None:
        """Before a stage runs: its previous record goes (so a failure leaves none that looks current),
        then the temporary files a killed run left beside its outputs, its other files and its record."""
        self._current.pop(stage.name, None)
        previous = records.invalidate(self.run_dir, stage.name) if stage.record else None
        finals = [*_resolve(stage.outputs, needs), *stage.writes, records.record_path(self.run_dir, stage.name),
                  *(self.run_dir / rel for rel in (previous or {}).get("outputs", {}))]
        currency.clean_temp_files(finals)


def _changed(run_dir: Path, record: dict, config: Any, inputs: Mapping[str, Path], tools: Sequence[str]) -> str | None:
    """How the current config, input files and tools differ from what `record` was made with, or None.

    An input file outside the run folder that is gone (a deleted dataset cache) is not compared."""
    fp = record.get("fingerprint") or {}
    changed = []
    if isinstance(config, dict) and isinstance(fp.get("config"), dict):
        keys = sorted(set(config) | set(fp["config"]), key=str)
        differs = [str(k) for k in keys if artifacts.sha256_json(config.get(k)) != artifacts.sha256_json(fp["config"].get(k))]
        if differs:
            changed.append(f"another config ({', '.join(differs)})")
    elif artifacts.sha256_json(config) != artifacts.sha256_json(fp.get("config")):
        changed.append("another config")
    recorded = fp.get("inputs") or {}
    for name, path in sorted(inputs.items()):
        path = Path(path)
        if not path.is_file():
            if _inside(run_dir, path):
                changed.append(f"input '{name}' ({path}), which is gone")
            continue
        if recorded.get(name) != artifacts.sha256_file(path):
            changed.append(f"another input '{name}' ({path}: sha256 {str(recorded.get(name))[:12]}... then, "
                           f"{artifacts.sha256_file(path)[:12]}... now)")
    changed += [f"input '{name}', no longer used" for name in sorted(set(recorded) - set(inputs))]
    now = artifacts.tool_versions(sorted(tools))
    tools_changed = [f"{t} {(fp.get('tools') or {}).get(t)} -> {v}" for t, v in now.items()
                     if (fp.get("tools") or {}).get(t) != v]
    if tools_changed:
        changed.append("other tools (" + ", ".join(tools_changed) + ")")
    return "; ".join(changed) or None


def _inside(run_dir: Path, path: Path) -> bool:
    try:
        path.resolve().relative_to(run_dir.resolve())
        return True
    except ValueError:
        return False


class StageError(PipelineError):
    """A stage broke its declaration (an output it declares was not written)."""

    def __init__(self, stage: str, problem: str):
        self.stage = stage
        super().__init__(f"stage '{stage}': {problem}")
