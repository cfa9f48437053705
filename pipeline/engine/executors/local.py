"""The sequential executor: every task in this process, in dependency order."""

from __future__ import annotations

import logging

from sepipe.engine.tasks import GraphSpec, Task, TaskError, TaskFailure, TaskResult, blocked, run_task
from sepipe.errors import ConfigError

log = logging.getLogger(__name__)


class LocalExecutor:
    """Runs `run_task` for each task in turn. Retry policy: none (a failure here is the code's or the
    input's, and runs again the same way); a failed task is reported and the others go on."""

    name = "local"

    def __init__(self, address: str | None = None, cpus_per_task: int | None = None):
        if address:
            raise ConfigError("--address", "address", address, "no address with --executor local "
                                                                "(an address joins a Ray cluster: --executor ray)")
        self.cpus_per_task = cpus_per_task   # None: a task may use the whole machine (as before executors)

    def run(self, spec: GraphSpec, tasks: list[Task]) -> dict[str, TaskResult | TaskFailure]:
        outcomes: dict[str, TaskResult | TaskFailure] = {}
        for task in tasks:
            failure = blocked(task, outcomes)
            if failure is not None:
                outcomes[task.name] = failure
                log.error("task %s: %s", task.name, failure.error)
                continue
            try:
                outcomes[task.name] = result = run_task(spec, task.name, self.cpus_per_task)
                log.info("task %s: %s", task.name, result.describe())
            except TaskError as exc:
                outcomes[task.name] = TaskFailure(task.name, str(exc))
                log.error("task %s failed: %s", task.name, exc)   # run_task logged a bug's traceback
        return outcomes
