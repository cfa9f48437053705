"""The Python API of an experiment: one function per stage or command, and where its artifacts live.

    data -> train -> [fine-tune] -> convert -> compile -> evaluate -> report

The stages are declared in `sepipe.stages` and run by `sepipe.engine` (fingerprint, skip when
current, run, record in `<run>/records/<stage>.json`; `manifest.json` is derived from the records).
The CLI, the bundle and the tests call these; so can a notebook or another tool.
"""

from sepipe.stages.api import (evaluate_all, run_experiment, stage_compile, stage_convert, stage_data,
                               stage_evaluate, stage_references, stage_report, stage_train, stage_variant)
from sepipe.stages.paths import RunPaths, VariantModel, load_streaming_model
from sepipe.stages.reporting import model_size
from sepipe.stages.training import reuse_identical_training

__all__ = ["RunPaths", "VariantModel", "evaluate_all", "load_streaming_model", "model_size", "reuse_identical_training",
           "run_experiment", "stage_compile", "stage_convert", "stage_data", "stage_evaluate", "stage_references",
           "stage_report", "stage_train", "stage_variant"]
