"""Executors: how a graph's tasks run. Registered by name; `--executor NAME` picks one.

    local   in this process, one task after another (the default; needs no Ray)
    ray     Ray tasks with declared CPUs, on a local Ray instance or a cluster (`--address`)

Targets are "module:attr" strings, so Ray is imported only when `ray` is chosen. An executor is
a class `Executor(address=None, cpus_per_task=None)` with `run(spec, tasks) -> {task name:
TaskResult | TaskFailure}`: it calls `sepipe.engine.tasks.run_task` for each task once the tasks
it needs finished, reports a failed task (its one-line error), goes on with the others, and
marks the tasks that need a failed one as not run.
"""

from __future__ import annotations

from sepipe.registry import Registry

EXECUTORS = Registry("executor", key="--executor")
EXECUTORS.add("local", "sepipe.engine.executors.local:LocalExecutor",
              help="one task after another in this process (default; needs no Ray)")
EXECUTORS.add("ray", "sepipe.engine.executors.ray:RayExecutor",
              help="Ray tasks: a local Ray instance, or a cluster with --address (pip install 'sepipe[ray]')")


def make_executor(name: str = "local", address: str | None = None, cpus_per_task: int | None = None):
    """The registered executor `name`, configured."""
    return EXECUTORS.get(name, "--executor")(address=address, cpus_per_task=cpus_per_task)
