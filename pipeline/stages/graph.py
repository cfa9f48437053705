"""The stages of one experiment: shared (train, references), one chain per variant, the joins.

`ExperimentSpec` is what an executor ships to a worker (a frozen config, picklable); the worker
rebuilds the same graph from it, sized to its task's CPUs.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path

from sepipe.config import ExperimentConfig
from sepipe.engine.stage import Graph, Stage
from sepipe.stages.compiling import declare_compile
from sepipe.stages.evaluation import declare_evaluate, declare_quality, declare_references
from sepipe.stages.paths import DataHandle
from sepipe.stages.prediction import declare_predict, declare_predict_references
from sepipe.stages.quantize import declare_convert, declare_variant
from sepipe.stages.reporting import declare_report
from sepipe.stages.training import declare_train


def experiment_graph(cfg: ExperimentConfig, dataset=None) -> Graph:
    """Every stage of `cfg`: variants x (fine-tune, convert, compile, evaluate), plus the shared ones."""
    data = DataHandle(cfg, dataset)
    stages: list[Stage | None] = [declare_train(cfg, data), declare_references(cfg, data),
                                  declare_predict_references(cfg, data)]
    for variant in cfg.variants:
        stages += [declare_variant(cfg, data, variant), declare_convert(cfg, data, variant),
                   declare_compile(cfg, variant), declare_evaluate(cfg, data, variant),
                   declare_predict(cfg, data, variant)]
    stages += [declare_quality(cfg, data), declare_report(cfg)]
    return Graph([s for s in stages if s is not None])


def task_config(cfg: ExperimentConfig, cpus: int | None) -> ExperimentConfig:
    """`cfg` for a task given `cpus` cores: the audio scorer's process pool uses those cores, no more
    (`evaluate.workers: 0` would start one per core of the machine). Not part of any fingerprint."""
    if cpus is None:
        return cfg
    return dataclasses.replace(cfg, evaluate=dataclasses.replace(cfg.evaluate, workers=max(1, int(cpus))))


@dataclass(frozen=True)
class ExperimentSpec:
    """The recipe of an experiment's graph (sepipe.engine.tasks.GraphSpec)."""

    cfg: ExperimentConfig
    progress: bool = True
    cwd: str = field(default_factory=os.getcwd)

    @property
    def run_dir(self) -> Path:
        return self.cfg.run_dir

    def build(self, cpus: int | None = None, dataset=None) -> Graph:
        return experiment_graph(task_config(self.cfg, cpus), dataset)
