"""The compile stage: Vela for every target of the experiment, each compile served by the cache
when the same model bytes were compiled for the same target before (sepipe.deploy.cache)."""

from __future__ import annotations

import logging
from pathlib import Path

from sepipe.config import ExperimentConfig, VariantConfig
from sepipe.deploy.cache import cache_root, compile_cached
from sepipe.engine.stage import Done, Stage
from sepipe.stages import tools
from sepipe.stages.paths import RunPaths

log = logging.getLogger(__name__)


def _targets_file(cfg: ExperimentConfig) -> Path:
    from sepipe.targets import DEFAULT_TARGETS_FILE

    return Path(cfg.compile.targets_file or DEFAULT_TARGETS_FILE)


def declare_compile(cfg: ExperimentConfig, variant: VariantConfig) -> Stage:
    paths = RunPaths(cfg)
    name = f"{cfg.name}_{variant.name}"

    def inputs(needs) -> dict[str, Path]:
        from sepipe.targets import load_targets

        targets_file = _targets_file(cfg)
        ini_files = {Path(t.vela_config) for t in load_targets(targets_file).values()}
        return {"tflite": paths.tflite(variant.name), "targets_file": targets_file,
                **{f"vela_ini:{p.name}": p for p in ini_files}}

    return Stage(
        name=f"compile:{variant.name}", needs=(f"convert:{variant.name}",), group=variant.name,
        tools=tools.COMPILE, config={"compile": cfg.compile}, inputs=inputs,
        outputs=[paths.compile_dir / f"{name}_vela_records.csv"],
        run=lambda ctx: compile_variant(cfg, variant),
        hint=f"compile first: sepipe compile {cfg.name}.yaml")


def compile_variant(cfg: ExperimentConfig, variant: VariantConfig) -> Done:
    """compile_many's work, one target at a time through the compile cache; one record per target."""
    from sepipe.deploy.compile import CompileOptions, resolve_targets
    from sepipe.deploy.figures import write_records_csv

    paths = RunPaths(cfg)
    tflite = paths.tflite(variant.name)
    name = f"{cfg.name}_{variant.name}"
    # a variant that declares a float group puts it on the Cortex-M on purpose: Vela leaves those operators
    # on the CPU, the records count them (npu_op_share, cpu_ops) and the placement JSON names them
    precision = cfg.precision_of(variant.name) or {}
    declared_cpu = "float" in precision.values()
    options = CompileOptions(require_full_npu=cfg.compile.require_full_npu and not declared_cpu)
    root = cache_root(cfg.data.cache_dir)
    outcomes = [compile_cached(tflite, target, paths.compile_dir, name, options, root)
                for target in resolve_targets(cfg.compile.targets, _targets_file(cfg))]
    for outcome in outcomes:
        r = outcome.record
        log.info("compile:%s: %s on %s: %d cycles, %.3f ms, SRAM %.1f KiB, NPU ops %.0f%%%s", variant.name, name,
                 r["target"], r["cycles_total"], r["inference_time_ms"], r["sram_memory_used_kib"],
                 100 * r["npu_op_share"], " (cached)" if outcome.cache_hit else "")
    records_csv = write_records_csv([o.record for o in outcomes], paths.compile_dir / f"{name}_vela_records.csv")
    summary = {"records": [o.record for o in outcomes]}
    if declared_cpu:
        summary["declared_cpu_groups"] = sorted(k for k, p in precision.items() if p == "float")
    return Done(summary,
                tuple(path for o in outcomes for path in o.outputs) + (records_csv,))
