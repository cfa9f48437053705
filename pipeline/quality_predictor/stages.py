"""The quality predictor's stages on the engine (sepipe.engine.stage: fingerprinted, resumable, recorded):

    labels -> train:<v> -> convert:<v> -> compile:<v> -> evaluate:<v> -> table      (v in predictor.variants)

plus `convert:float32` (the float model as a float32 .tflite, the memory reference the issue compares with)
beside `convert:float`. Each stage's config slice holds only what changes its outputs: a new compile target
recompiles without retraining, a new clip setting recomputes the labels and everything after them.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

from sepipe.engine import records
from sepipe.engine.stage import Done, Graph, Runner, Stage, StageRun
from sepipe.quality_predictor.config import PredictorExperiment
from sepipe.quality_predictor.label_resume import partial_path
from sepipe.quality_predictor.labels import TOOLS as LABEL_TOOLS
from sepipe.quality_predictor.labels import label_paths

log = logging.getLogger(__name__)

TF_TOOLS = ("tensorflow", "tf-keras", "tensorflow-model-optimization", "numpy")
CONVERT_TOOLS = TF_TOOLS + ("ai-edge-litert",)


class PredictorPaths:
    """Where each stage writes, under runs/<name>/."""

    def __init__(self, cfg: PredictorExperiment):
        self.root = cfg.run_dir

    def weights(self, variant: str) -> Path:
        return self.root / "train" / f"{variant}.weights.h5"

    def train_log(self, variant: str) -> Path:
        return self.root / "train" / f"{variant}_history.json"

    def tflite(self, variant: str) -> Path:
        return self.root / "convert" / f"{variant}.tflite"

    def compile_dir(self) -> Path:
        return self.root / "compile"

    def predictions(self, variant: str) -> Path:
        return self.root / "evaluate" / f"{variant}_predictions.npz"

    def table(self, suffix: str) -> Path:
        return self.root / f"quality_predictor.{suffix}"


def _slice(cfg: PredictorExperiment, *sections: str) -> dict:
    return {name: getattr(cfg, name) for name in sections}


def build_graph(cfg: PredictorExperiment, progress: bool = True) -> Graph:
    paths, labels = PredictorPaths(cfg), label_paths(cfg.run_dir)
    hint = f"sepipe predictor run <experiment.yaml> (experiment '{cfg.name}')"
    stages = [Stage(name="labels", run=lambda ctx: _labels(cfg, ctx.progress), hint=hint,
                    config={**_slice(cfg, "data", "clips"), "seed": cfg.seed},
                    inputs=_label_inputs(cfg), outputs=list(labels.values()), tools=LABEL_TOOLS,
                    writes=[partial_path(cfg.run_dir)])]    # scoring resumes from it
    label_inputs = {"clips": labels["clips"], "labels": labels["labels"]}
    model_cfg = {"predictor": dataclasses.replace(cfg.predictor, variants=()), "seed": cfg.seed}
    for v in cfg.predictor.variants:
        stages += _variant_stages(cfg, v, paths, label_inputs, model_cfg, hint)
    if "float" in cfg.predictor.variants:
        stages.append(Stage(name="convert:float32", needs=("train:float",), group="float", hint=hint,
                            config=model_cfg, inputs={"weights": paths.weights("float"), **label_inputs,
                                                      **_sources("model", "deploy", "deploy_graph")},
                            outputs=[paths.tflite("float32")], tools=CONVERT_TOOLS,
                            run=lambda ctx: _convert(cfg, "float32", ctx)))
    joined = tuple(f"{kind}:{v}" for v in cfg.predictor.variants for kind in ("convert", "compile", "evaluate"))
    if "float" in cfg.predictor.variants:
        joined += ("convert:float32",)
    stages.append(Stage(name="table", needs=joined, record=False, hint=hint, run=lambda ctx: _table(cfg, ctx)))
    return Graph(stages)


def _sources(*modules: str) -> dict[str, Path]:
    """This package's source files a stage's outputs depend on: an edit of the network or its training
    reruns the stage instead of reusing weights made by other code."""
    folder = Path(__file__).resolve().parent
    return {f"source_{m}": folder / f"{m}.py" for m in modules}


def _variant_stages(cfg, v: str, paths: PredictorPaths, label_inputs: dict, model_cfg: dict, hint: str) -> list:
    train_needs = ("labels", "train:float") if v == "int8_qat" else ("labels",)
    train_inputs = {**label_inputs, **_sources("model", "train", "clips")}
    if v == "int8_qat":
        train_inputs["float_weights"] = paths.weights("float")
    return [
        Stage(name=f"train:{v}", needs=train_needs, group=v, hint=hint, config={**model_cfg, "train": cfg.train},
              inputs=train_inputs, outputs=[paths.weights(v), paths.train_log(v)], tools=TF_TOOLS,
              run=lambda ctx: _train(cfg, v, ctx)),
        Stage(name=f"convert:{v}", needs=(f"train:{v}",), group=v, hint=hint, config=model_cfg,
              inputs={"weights": paths.weights(v), **label_inputs, **_sources("model", "deploy", "deploy_graph")},
              outputs=[paths.tflite(v)], tools=CONVERT_TOOLS,
              run=lambda ctx: _convert(cfg, v, ctx)),
        Stage(name=f"compile:{v}", needs=(f"convert:{v}",), group=v, hint=hint, config={"compile": cfg.compile},
              inputs={"tflite": paths.tflite(v)}, tools=("ethos-u-vela",),
              run=lambda ctx: _compile(cfg, v)),
        Stage(name=f"evaluate:{v}", needs=(f"train:{v}", f"convert:{v}"), group=v, hint=hint, config=model_cfg,
              inputs={"weights": paths.weights(v), "tflite": paths.tflite(v), **label_inputs,
                      **_sources("evaluate")},
              outputs=[paths.predictions(v)], tools=CONVERT_TOOLS + ("tflite-micro",),
              run=lambda ctx: _evaluate(cfg, v, ctx)),
    ]


def _label_inputs(cfg: PredictorExperiment) -> dict[str, Path]:
    from sepipe.data.layout import dataset_dir

    inputs = {"dataset_manifest": dataset_dir(cfg.data) / "manifest.json"}
    inputs.update({f"enhancer_{e.name}": Path(e.model) for e in cfg.clips.enhancers})
    return inputs


def _labels(cfg: PredictorExperiment, progress: bool) -> dict:
    from sepipe.data.dataset import Dataset
    from sepipe.quality_predictor.labels import compute_labels

    return compute_labels(cfg, Dataset.open(cfg.data), cfg.run_dir, progress)


def _train(cfg, variant: str, ctx) -> dict:
    from sepipe.quality_predictor.train import train_variant

    return train_variant(cfg, variant, PredictorPaths(cfg))


def _convert(cfg, variant: str, ctx) -> dict:
    from sepipe.quality_predictor.deploy import convert_variant

    return convert_variant(cfg, variant, PredictorPaths(cfg), ctx.needs)


def _compile(cfg, variant: str) -> Done:
    from sepipe.quality_predictor.deploy import compile_variant

    summary, outputs = compile_variant(cfg, variant, PredictorPaths(cfg))
    return Done(summary, tuple(outputs))


def _evaluate(cfg, variant: str, ctx) -> dict:
    from sepipe.quality_predictor.evaluate import evaluate_variant

    return evaluate_variant(cfg, variant, PredictorPaths(cfg), ctx.needs)


def _table(cfg, ctx) -> dict:
    from sepipe.quality_predictor.table import write_table

    return write_table(cfg, PredictorPaths(cfg), ctx.needs)


def run_predictor(cfg: PredictorExperiment, until: str | None = None, progress: bool = True) -> list[StageRun]:
    """Run (or skip when current) every stage, or `until` and the stages it needs; the manifest last."""
    from sepipe.data import build_dataset
    from sepipe.errors import InputFileError

    for e in cfg.clips.enhancers:     # before any stage: the labels need every enhancer's output
        if not Path(e.model).is_file():
            raise InputFileError(e.model, f"enhancer '{e.name}' (clips.enhancers) not found; make it first, e.g. "
                                          f"`sepipe run experiments/<its experiment>.yaml` writes runs/<name>/*.tflite")
    # As `sepipe run` does: build the dataset on a fresh machine (`sepipe data build` takes enhancement YAMLs
    # only), reuse it after; the labels stage fingerprints its manifest.
    build_dataset(cfg.data, progress=progress)
    graph = build_graph(cfg, progress)
    wanted = None if until is None else sorted(graph.upstream(until) | {until})
    runner = Runner(graph, cfg.run_dir, progress=progress)
    done = []
    for stage in graph.ordered(wanted):
        done.append(runner.run(stage))
        log.info("%s", done[-1].describe())
    records.write_manifest(cfg.run_dir, dataclasses.asdict(cfg))
    return done
