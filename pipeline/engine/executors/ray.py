"""The Ray executor: each task a Ray task with declared CPUs, on a local instance or a cluster.

    sepipe run EXP.yaml --executor ray                 # starts a local Ray instance (no dashboard)
    sepipe run EXP.yaml --executor ray --address HOST:6379   # joins a running cluster

Each task runs `sepipe.engine.tasks.run_task` (the function the local executor calls) with
`num_cpus=cpus_per_task`; its environment (`runtime_env.env_vars`) sets the legacy Keras flag
and sizes every thread pool to those CPUs, and the task passes its CPU count to the stages (the
audio scorer's process pool). Results come back as values; artifacts land in the run folder, so
on a cluster the runs and data cache folders must be on a filesystem every node mounts at the
same path (the workers change to the driver's working directory).

Retry policy (RETRY): a task whose worker process died (a crash, the OOM killer, a lost node) is
retried once (`max_retries=1`); an exception raised by a stage is not retried
(`retry_exceptions=False`): a PipelineError is the user's input or a tool's verdict and would fail
again the same way, and any other exception is a bug. A failed task is reported with its
one-line error, the other tasks go on, and the tasks that need it are not started.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass

from sepipe.engine.tasks import (GraphSpec, Task, TaskError, TaskFailure, TaskResult, blocked, describe_error,
                                 run_task, task_env)
from sepipe.errors import ToolError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 1             # reruns of a task whose worker died
    retry_exceptions: bool = False   # exceptions raised by a stage are never retried


RETRY = RetryPolicy()
LOCAL_OBJECT_STORE_BYTES = 256 * 1024 * 1024   # results are small summaries; do not reserve 30% of RAM


class RayExecutor:
    name = "ray"

    def __init__(self, address: str | None = None, cpus_per_task: int | None = None,
                 num_cpus: int | None = None, retry: RetryPolicy = RETRY):
        self.address = address
        self.cpus_per_task = cpus_per_task or 1
        self.num_cpus = num_cpus         # of a local instance (default: every core of this machine)
        self.retry = retry
        self.start_seconds: float | None = None   # how long the last start (or join) of Ray took

    def _ray(self):
        try:
            import ray
        except ImportError:
            raise ToolError("ray", "is not installed; the ray executor needs it: pip install 'sepipe[ray]'") from None
        return ray

    def _start(self, ray) -> bool:
        """Start or join Ray unless this process already did; True when this call started it."""
        if ray.is_initialized():
            return False
        start = time.monotonic()
        if self.address:
            ray.init(address=self.address, log_to_driver=True)
        else:
            ray.init(num_cpus=self.num_cpus or os.cpu_count() or 1, include_dashboard=False,
                     object_store_memory=LOCAL_OBJECT_STORE_BYTES, log_to_driver=True)
        self.start_seconds = time.monotonic() - start
        log.info("ray: %s in %.1f s", f"joined {self.address}" if self.address else "started a local instance",
                 self.start_seconds)
        return True

    def run(self, spec: GraphSpec, tasks: list[Task]) -> dict[str, TaskResult | TaskFailure]:
        ray = self._ray()
        started = self._start(ray)
        try:
            return self._run(ray, spec, tasks)
        finally:
            if started:
                ray.shutdown()

    def _run(self, ray, spec: GraphSpec, tasks: list[Task]) -> dict[str, TaskResult | TaskFailure]:
        remote = ray.remote(run_task)
        options = {"num_cpus": self.cpus_per_task, "max_retries": self.retry.max_retries,
                   "retry_exceptions": self.retry.retry_exceptions,
                   "runtime_env": {"env_vars": task_env(self.cpus_per_task)}}
        outcomes: dict[str, TaskResult | TaskFailure] = {}
        running: dict = {}                 # ObjectRef -> task name
        waiting = list(tasks)
        while waiting or running:
            for task in list(waiting):
                failure = blocked(task, outcomes)
                if failure is not None:
                    outcomes[task.name] = failure
                    log.error("task %s: %s", task.name, failure.error)
                    waiting.remove(task)
                elif all(isinstance(outcomes.get(n), TaskResult) for n in task.needs):
                    ref = remote.options(name=f"sepipe:{task.name}", **options).remote(
                        spec, task.name, self.cpus_per_task)
                    running[ref] = task.name
                    waiting.remove(task)
            if not running:
                continue
            (ref,), _ = ray.wait(list(running), num_returns=1)
            name = running.pop(ref)
            try:
                outcomes[name] = result = ray.get(ref)
                log.info("task %s: %s", name, result.describe())
            except Exception as exc:   # noqa: BLE001 - every failure is reported, the others go on
                outcomes[name] = TaskFailure(name, _one_line(ray, exc, self.retry))
                log.error("task %s failed: %s", name, outcomes[name].error)
        return outcomes


def _one_line(ray, exc: BaseException, retry: RetryPolicy) -> str:
    """The stage's own error for a RayTaskError; Ray's for a worker that died (after its retries)."""
    cause = getattr(exc, "cause", None) if isinstance(exc, ray.exceptions.RayTaskError) else None
    if isinstance(cause, TaskError):
        return str(cause)
    if cause is not None:
        return describe_error(cause)
    if isinstance(exc, ray.exceptions.WorkerCrashedError):
        return f"the worker died (retried {retry.max_retries}x): {describe_error(exc)}"
    return describe_error(exc)
