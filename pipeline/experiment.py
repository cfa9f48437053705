"""An experiment's stages, as the bundle, benchmarks, CLI and tests import them.

    data -> train -> [fine-tune] -> convert -> compile -> evaluate -> report

The stages are declared in `sepipe.stages` and run by `sepipe.engine` (fingerprint, skip when
current, run, record in `<run>/records/<stage>.json`; `manifest.json` is derived from the records).
"""

from sepipe.stages.api import (evaluate_all, run_experiment, stage_compile, stage_convert, stage_data,
                               stage_evaluate, stage_references, stage_report, stage_train, stage_variant)
from sepipe.stages.evaluation import evaluation_notes as _evaluation_notes
from sepipe.stages.paths import RunPaths, VariantModel, find_variant as _variant, load_streaming_model
from sepipe.stages.reporting import model_size
from sepipe.stages.training import reuse_identical_training

__all__ = ["RunPaths", "VariantModel", "evaluate_all", "load_streaming_model", "model_size", "reuse_identical_training",
           "run_experiment", "stage_compile", "stage_convert", "stage_data", "stage_evaluate", "stage_references",
           "stage_report", "stage_train", "stage_variant", "_evaluation_notes", "_variant"]
