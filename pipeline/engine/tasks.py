"""Fan-out: the graph split into driver stages and per-group tasks, and the one task function.

    before (driver)   stages that need no group stage: data-derived shared work (train, references)
    tasks             one per group (an experiment's variant chain: fine-tune -> convert -> compile
                      -> evaluate); a task needs another when one of its stages needs one of that
                      task's stages (an 'offline' variant prunes the 'ptq' variant's model)
    after (driver)    stages that join the groups (the report), run once every task finished

Every executor calls `run_task` for a task, in-process (local) or on a worker (Ray), so a
stage runs the same way whichever executor ran it; results come back as values.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from sepipe.engine.stage import Graph, Runner, Stage, StageRun
from sepipe.errors import PipelineError

log = logging.getLogger(__name__)


class GraphSpec(Protocol):
    """A picklable recipe for a graph: a worker rebuilds the graph from it.

    `build(cpus)` declares the stages for a task given `cpus` CPU cores (None: the whole machine),
    so a task can fit its own thread and process pools to them. `cwd`: the directory relative
    paths of the spec are resolved against (the driver's)."""

    run_dir: Path
    progress: bool
    cwd: str

    def build(self, cpus: int | None = None) -> Graph: ...


@dataclass(frozen=True)
class Task:
    name: str                    # the group
    needs: tuple[str, ...] = ()  # tasks that must finish first


@dataclass(frozen=True)
class TaskResult:
    task: str
    runs: tuple[StageRun, ...]

    def describe(self) -> str:
        return "; ".join(run.describe() for run in self.runs)


@dataclass(frozen=True)
class TaskFailure:
    task: str
    error: str                   # one line
    ran: bool = True             # False: not started because a task it needs failed


@dataclass(frozen=True)
class Plan:
    before: list[Stage]
    tasks: list[Task]
    after: list[Stage]


def plan(graph: Graph) -> Plan:
    """Split `graph` into driver stages before the tasks, the tasks, and driver stages after them."""
    group_of = {s.name: s.group for s in graph.ordered()}
    before, after, tasks = [], [], {}
    for stage in graph.ordered():
        upstream_groups = {group_of[n] for n in graph.upstream(stage.name)} - {None}
        if stage.group is None:
            (after if upstream_groups else before).append(stage)
            continue
        task = tasks.setdefault(stage.group, set())
        task.update(upstream_groups - {stage.group})
    after_names = {s.name for s in after}
    for stage in graph.ordered():
        if stage.group is not None and graph.upstream(stage.name) & after_names:
            raise ValueError(f"stage '{stage.name}' of group '{stage.group}' needs a stage that joins the groups")
    order = graph.groups()
    return Plan(before, [Task(g, tuple(sorted(tasks[g], key=order.index))) for g in order], after)


class TaskError(PipelineError):
    """A stage's error as one line, whatever raised it (a bug's exception need not pickle), so it crosses
    from a worker to the driver intact."""

    def __init__(self, message: str, error_type: str = "", user_error: bool = True):
        super().__init__(message)
        self.error_type, self.user_error = error_type, user_error


def blocked(task: Task, outcomes: dict[str, "TaskResult | TaskFailure"]) -> "TaskFailure | None":
    """A 'not run' failure when a task that `task` needs failed (every executor asks this first)."""
    failed = [n for n in task.needs if isinstance(outcomes.get(n), TaskFailure)]
    if not failed:
        return None
    return TaskFailure(task.name, f"not run: needs task '{failed[0]}', which failed", ran=False)


def run_task(spec: GraphSpec, task: str, cpus: int | None = None) -> TaskResult:
    """Run the stages of group `task` in their declared order (each skipped when current).

    Raises TaskError (chained to the original) for any exception a stage raises."""
    if spec.cwd and os.getcwd() != spec.cwd:
        os.chdir(spec.cwd)   # a Ray worker starts elsewhere; the spec's relative paths are the driver's
    try:
        graph = spec.build(cpus)
        runner = Runner(graph, spec.run_dir, spec.progress)
        return TaskResult(task, tuple(runner.run(stage) for stage in graph.in_group(task)))
    except Exception as exc:
        user_error = isinstance(exc, PipelineError)
        if not user_error:   # a bug: its traceback goes to the log where it happened (a worker's reaches the driver)
            log.error("task %s: %s", task, describe_error(exc), exc_info=True)
        raise TaskError(describe_error(exc), type(exc).__name__, user_error) from exc


def describe_error(exc: BaseException) -> str:
    """One line for a failed task: a PipelineError's own message, else the exception type and its first line."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if isinstance(exc, PipelineError):
        return text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def task_env(cpus: int) -> dict[str, str]:
    """Environment of a worker running a task on `cpus` cores: legacy Keras for TFMOT, quiet TF and
    every thread pool (OpenMP, BLAS, TensorFlow's intra- and inter-op) sized to the task's cores."""
    threads = str(max(1, int(cpus)))
    env = {"TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"),
           "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads, "OPENBLAS_NUM_THREADS": threads,
           "TF_NUM_INTRAOP_THREADS": threads, "TF_NUM_INTEROP_THREADS": threads}
    # (where the portable-kernel pin is on, sepipe.models.kernels sets TensorFlow's intra-op count
    # itself when TensorFlow loads: the same bytes on every machine come before a pool fitted to the task)
    # The driver's own settings go along: every SEPIPE_* (the compile cache, and the kernel settings
    # training results depend on: a worker must train as the driver would) and TensorFlow's switches.
    env.update({name: value for name, value in os.environ.items()
                if name.startswith("SEPIPE_") or name in ("TF_ENABLE_ONEDNN_OPTS", "TF_DETERMINISTIC_OPS")})
    return env


class TasksFailed(PipelineError):
    """Some tasks failed after the others finished; their finished stages are recorded."""

    exit_code = 1

    def __init__(self, failures: list[TaskFailure], total: int):
        self.failures = failures
        parts = "; ".join(f"{f.task}: {f.error}" for f in failures)
        super().__init__(f"{len(failures)} of {total} tasks failed ({parts}); the others finished and are "
                         "recorded: fix the cause and rerun to redo only what did not finish")


def run_graph(spec: GraphSpec, executor) -> dict[str, StageRun]:
    """Every stage of the graph: driver stages, the tasks on `executor`, then the joining stages."""
    graph = spec.build(None)
    steps = plan(graph)
    runner = Runner(graph, spec.run_dir, spec.progress)
    runs = {stage.name: runner.run(stage) for stage in steps.before}
    outcomes = executor.run(spec, steps.tasks) if steps.tasks else {}
    failures = [o for o in outcomes.values() if isinstance(o, TaskFailure)]
    for outcome in outcomes.values():
        if isinstance(outcome, TaskResult):
            runs.update({run.name: run for run in outcome.runs})
    if failures:
        raise TasksFailed(failures, len(steps.tasks))
    runs.update({stage.name: runner.run(stage) for stage in steps.after})
    return runs
