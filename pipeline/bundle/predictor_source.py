"""What to bundle of the quality predictor beside an enhancer (`sepipe bundle ... --predictor RUN
--predictor-variant V`): the predictor run, its converted int8 variant and its compile for the enhancer's target,
each checked to belong together; a run, variant or target it does not have is one ConfigError naming the option,
the value and what the run does have.

Checked, as sepipe.bundle.source checks the enhancer's: the .tflite hashes as its convert record wrote it, the
label files (the score normalisation firmware uses) hash as they did when it was converted, the compile for the
target was made from that .tflite, and Vela's outputs are as the compile stage recorded them.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sepipe import artifacts
from sepipe.errors import ConfigError, PipelineError

OPTION, VARIANT_OPTION = "--predictor", "--predictor-variant"
_WHERE = "command line"
_RUN_HINT = "a quality-predictor run folder written by `sepipe predictor run` (e.g. runs/quality_predictor)"


@dataclass(frozen=True)
class PredictorSource:
    cfg: Any                      # sepipe.quality_predictor.config.PredictorExperiment
    run_label: str
    variant: str
    target: str
    target_id: str
    tflite: Path
    vela_tflite: Path
    vela_summary_csv: Path
    vela_extra: tuple[Path, ...]
    compiled: dict[str, Any]      # the Vela compile record of this target
    convert: dict[str, Any]       # the convert record's summary (feature normalisation, TFLM arena)
    meta: Any                     # sepipe.quality_predictor.firmware.PredictorMeta

    @property
    def name(self) -> str:
        return f"{self.cfg.name}_{self.variant}"

    @property
    def vela_name(self) -> str:
        return f"{self.name}_vela_{self.target}.tflite"

    def vela_copy_name(self, path: Path) -> str:
        return path.name.replace(f"_vela_{self.target_id}", f"_vela_{self.target}", 1)


def find_predictor(run: str | Path, variant: str, target: str) -> PredictorSource:
    """The predictor files to bundle for `target` (the enhancer's target name), checked (module docstring)."""
    from sepipe.engine.records import read_record
    from sepipe.quality_predictor.firmware import meta_from_run
    from sepipe.quality_predictor.stages import PredictorPaths

    cfg = _predictor_config(Path(run))
    label = str(run)
    tflite = PredictorPaths(cfg).tflite(variant)
    converted = sorted(v for v in cfg.predictor.variants
                       if PredictorPaths(cfg).tflite(v).is_file() and read_record(cfg.run_dir, f"convert:{v}"))
    if variant not in converted:
        raise ConfigError(_WHERE, VARIANT_OPTION, variant, f"an int8 variant {label} has converted: "
                                                           f"{', '.join(converted) or 'none'}")
    record = read_record(cfg.run_dir, f"convert:{variant}")
    _check_convert_record(cfg, label, variant, record, tflite)
    compiled = _compile_record(cfg, label, variant, target, tflite)
    stem = f"{cfg.name}_{variant}_vela_{compiled['target_id']}"
    folder = PredictorPaths(cfg).compile_dir()
    vela, summary = folder / f"{stem}.tflite", folder / f"{stem}_summary.csv"
    _check_compile_outputs(cfg, label, variant, compiled, (vela, summary))
    extra = tuple(p for p in (folder / f"{stem}_per-layer.csv", folder / f"{stem}_placement.json") if p.is_file())
    return PredictorSource(cfg=cfg, run_label=label, variant=variant, target=str(compiled["target"]),
                           target_id=str(compiled["target_id"]), tflite=tflite, vela_tflite=vela,
                           vela_summary_csv=summary, vela_extra=extra, compiled=compiled,
                           convert=record["summary"], meta=meta_from_run(cfg, variant))


def _predictor_config(path: Path):
    """The predictor experiment recorded in the run folder's manifest, with runs_dir pointing at its parent."""
    from sepipe.quality_predictor.config import predictor_from_dict

    manifest = path / "manifest.json"
    if not path.is_dir() or not manifest.is_file():
        raise ConfigError(_WHERE, OPTION, str(path), f"{_RUN_HINT}; it has no manifest.json")
    try:
        raw = json.loads(manifest.read_text())["config"]
        if not isinstance(raw, dict) or "predictor" not in raw:
            raise ValueError("its config has no 'predictor' section: not a predictor run")
        cfg = predictor_from_dict(raw, source=str(manifest))
    except (OSError, ValueError, KeyError, TypeError, PipelineError) as exc:
        why = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        raise ConfigError(_WHERE, OPTION, str(path), f"{_RUN_HINT}; its manifest.json does not describe one "
                                                     f"({why})") from None
    if path.resolve().name != cfg.name:
        raise ConfigError(_WHERE, OPTION, str(path), f"the folder of predictor run '{cfg.name}' under its own name "
                                                     "(its files are named after it)")
    return dataclasses.replace(cfg, runs_dir=str(path.resolve().parent))


def _check_convert_record(cfg, label: str, variant: str, record: dict, tflite: Path) -> None:
    """The .tflite and the label files must hash as they did when convert:<variant> ran."""
    from sepipe.quality_predictor.labels import label_paths

    hint = f"(rerun: sepipe predictor run <its YAML> --until convert:{variant})"
    rel = tflite.relative_to(cfg.run_dir).as_posix()
    if (record.get("outputs") or {}).get(rel) != artifacts.sha256_file(tflite):
        raise ConfigError(_WHERE, VARIANT_OPTION, variant, f"a variant of {label} whose {rel} is as its convert record "
                                                           f"wrote it; it was altered since {hint}")
    recorded = ((record.get("fingerprint") or {}).get("inputs") or {})
    for key in ("clips", "labels"):
        path = label_paths(cfg.run_dir)[key]
        if key in recorded and (not path.is_file() or recorded[key] != artifacts.sha256_file(path)):
            raise ConfigError(_WHERE, VARIANT_OPTION, variant, f"a variant of {label} converted with its current "
                                                               f"labels; {path.name} changed since {hint}")


def _compile_record(cfg, label: str, variant: str, target: str, tflite: Path) -> dict[str, Any]:
    from sepipe.bundle.source import compile_records_on_disk
    from sepipe.quality_predictor.stages import PredictorPaths

    found = compile_records_on_disk(PredictorPaths(cfg).compile_dir(), f"{cfg.name}_{variant}")
    record = next((r for r in found if target in (r.get("target"), r.get("target_id"))), None)
    if record is None:
        have = ", ".join(sorted(str(r.get("target")) for r in found)) or "none"
        raise ConfigError(_WHERE, "--target", target, f"a target predictor variant '{variant}' of {label} was "
                                                      f"compiled for: {have} (add it to the predictor's "
                                                      "compile.targets and rerun `sepipe predictor run`)")
    if record.get("source_sha256") != artifacts.sha256_file(tflite):
        raise ConfigError(_WHERE, VARIANT_OPTION, variant, f"a variant of {label} compiled for '{record['target']}' "
                                                           f"from its current {tflite.name}; that compile is stale "
                                                           "(rerun: sepipe predictor run <its YAML>)")
    return record


def _check_compile_outputs(cfg, label: str, variant: str, record: dict, outputs: tuple[Path, ...]) -> None:
    from sepipe.bundle.source import output_problem
    from sepipe.engine.records import read_record

    stage = read_record(cfg.run_dir, f"compile:{variant}") or {}
    problem = output_problem(cfg.run_dir, stage.get("outputs") or {}, outputs)
    if problem is not None:
        rel = problem[0].relative_to(cfg.run_dir).as_posix()
        raise ConfigError(_WHERE, VARIANT_OPTION, variant, f"a variant of {label} whose Vela outputs for "
                                                           f"'{record['target']}' are intact; {rel} is {problem[1]} "
                                                           "(rerun: sepipe predictor run <its YAML>)")
