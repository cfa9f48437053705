"""What to bundle: the run, its converted variant, the compile record for one target, and test audio."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sepipe import artifacts
from sepipe.config import ExperimentConfig, experiment_from_dict, load_experiment
from sepipe.deploy.figures import CompileRecord
from sepipe.engine import records
from sepipe.errors import InputFileError, MissingArtifactError, PipelineError


class BundleError(PipelineError):
    """A bundle was asked for something the run does not have (variant, target, a current compile)."""


@dataclass(frozen=True)
class BundleSource:
    """The run's files for one variant on one target, checked to belong together."""

    cfg: ExperimentConfig
    run_label: str               # how the run was named by the caller (for messages and the manifest)
    variant: str
    target: str                  # target name, e.g. ethos-u55-128
    target_id: str               # e.g. H128
    tflite: Path
    vela_tflite: Path
    vela_summary_csv: Path
    vela_extra: tuple[Path, ...]  # per-layer CSV, placement JSON (those present)
    compiled: CompileRecord      # the compile record: target columns and Vela's figures
    convert_summary: dict[str, Any]
    model: dict[str, Any]        # the variant's architecture (narrower than the experiment's for unit pruning)
    variant_config: dict[str, Any]

    def vela_copy_name(self, path: Path) -> str:
        """A Vela output's name in the bundle: the target's name in place of its id."""
        return path.name.replace(f"_vela_{self.target_id}", f"_vela_{self.target}", 1)


def tflite_name(source: BundleSource) -> str:
    """The quantised model's file name in the bundle, `<exp>_<variant>.tflite` (its dtype is in the manifest)."""
    return f"{source.cfg.name}_{source.variant}.tflite"


def model_contract(source: BundleSource):
    """The contract of the variant's model, declared by its family (None when the recorded model config
    names no registered family: the contract is then inferred from the .tflite's tensor names)."""
    from sepipe.models import FAMILIES, family_of, model_config_from_dict

    if source.model.get("family") not in FAMILIES:
        return None
    model_cfg = model_config_from_dict(source.model)
    return family_of(model_cfg).contract(model_cfg, source.cfg.features.bins)


def vela_name(source: BundleSource) -> str:
    return f"{source.cfg.name}_{source.variant}_vela_{source.target}.tflite"


def bundle_name(source: BundleSource) -> str:
    return f"{source.cfg.name}_{source.variant}_{source.target}"


# --------------------------------------------------------------------------- the run

def resolve_run(run: ExperimentConfig | str | Path) -> tuple[ExperimentConfig, str]:
    """(config, label) of a run given as a config, an experiment YAML or a run folder (runs/<experiment>)."""
    if isinstance(run, ExperimentConfig):
        return run, str(run.run_dir)
    path = Path(run)
    if path.is_file() and path.suffix in (".yaml", ".yml"):
        return load_experiment(path), str(path)
    if path.is_dir():
        return _config_of_run_folder(path), str(path)
    if not path.exists():
        raise InputFileError(path, "not found; pass a run folder (runs/<experiment>) or an experiment YAML")
    raise InputFileError(path, "expected a run folder (runs/<experiment>) or an experiment YAML (.yaml)")


def _config_of_run_folder(path: Path) -> ExperimentConfig:
    """The experiment config recorded in a run folder's manifest, with runs_dir pointing at its parent."""
    manifest_path = path / "manifest.json"
    if not manifest_path.is_file():
        raise InputFileError(path, "not a run folder (no manifest.json); pass runs/<experiment> or the "
                                   "experiment YAML")
    try:
        config = json.loads(manifest_path.read_text())["config"]
    except (ValueError, KeyError, TypeError):
        raise InputFileError(manifest_path, "run manifest has no readable 'config'; rerun the experiment") from None
    cfg = experiment_from_dict(config, source=str(manifest_path))
    if path.resolve().name != cfg.name:
        raise InputFileError(path, f"run folder of experiment '{cfg.name}' was renamed; its files are named "
                                   f"after the experiment, so rename it back to '{cfg.name}'")
    return dataclasses.replace(cfg, runs_dir=str(path.parent))


# --------------------------------------------------------------------------- variant and compile record

def _compile_records(cfg: ExperimentConfig, variant: str) -> list[dict[str, Any]]:
    """Every compile record of `variant`: the run manifest's, plus complete ones on disk it does not list."""
    from sepipe.experiment import RunPaths

    stage = records.read_manifest(cfg.run_dir)["stages"].get(f"compile:{variant}", {})
    found = list(stage.get("summary", {}).get("records", []))
    seen = {r.get("target") for r in found}
    for record in compile_records_on_disk(RunPaths(cfg).compile_dir, f"{cfg.name}_{variant}"):
        if record.get("target") not in seen:
            found.append(record)
            seen.add(record.get("target"))
    return found


def compile_records_on_disk(compile_dir: Path, model: str) -> list[dict[str, Any]]:
    """The readable compile records of `model` (`<model>_vela_<target id>_record.json`) in `compile_dir`."""
    found = []
    for path in sorted(compile_dir.glob(f"{model}_vela_*_record.json")):
        try:
            record = json.loads(path.read_text())
        except ValueError:
            continue
        if isinstance(record, dict) and record.get("model") == model:
            found.append(record)
    return found


def output_problem(run_dir: Path, recorded: dict[str, str], outputs: tuple[Path, ...]) -> tuple[Path, str] | None:
    """(the first of `outputs` missing, else the first not as its stage recorded it; what is wrong) or None."""
    for path in outputs:
        if not path.is_file():
            return path, "missing"
    for path in outputs:
        rel = path.relative_to(run_dir).as_posix()
        if rel in recorded and recorded[rel] != artifacts.sha256_file(path):
            return path, "altered after the compile stage recorded it"
    return None


def _check_converted(cfg: ExperimentConfig, label: str, variant: str, stages: dict[str, Any], paths) -> None:
    converted = sorted(name.split(":", 1)[1] for name in stages
                       if name.startswith("convert:") and paths.tflite(name.split(":", 1)[1]).is_file())
    if variant not in converted:
        have = ", ".join(converted) or "none"
        raise BundleError(f"{label}: variant '{variant}' has no converted model; converted variants: {have}"
                          + ("" if converted else f" (run: sepipe convert experiments/{cfg.name}.yaml)"))


def _current_record(cfg: ExperimentConfig, label: str, variant: str, target: str, tflite: Path) -> dict[str, Any]:
    """The compile record of `variant` for `target` (name or id), compiled from the .tflite as it is now."""
    records = _compile_records(cfg, variant)
    record = next((r for r in records if target in (r.get("target"), r.get("target_id"))), None)
    if record is None:
        have = ", ".join(sorted(str(r.get("target")) for r in records)) or "none"
        raise BundleError(f"{label}: variant '{variant}' was never compiled for target '{target}'; compiled targets: "
                          f"{have} (compile with: sepipe compile experiments/{cfg.name}.yaml --target {target})")
    current = artifacts.sha256_file(tflite)
    if record.get("source_sha256") != current:
        raise BundleError(f"{label}: the compile of variant '{variant}' for target '{record['target']}' is stale: "
                          f"compiled from a .tflite with sha256 {str(record.get('source_sha256'))[:12]}..., "
                          f"{tflite.name} now has {current[:12]}... (recompile: sepipe compile "
                          f"experiments/{cfg.name}.yaml --target {record['target']})")
    return record


def _check_compile_outputs(cfg: ExperimentConfig, label: str, variant: str, record: dict[str, Any],
                           recorded: dict[str, str], outputs: tuple[Path, ...]) -> None:
    """Vela's outputs must exist and be as the compile stage recorded them."""
    problem = output_problem(cfg.run_dir, recorded, outputs)
    if problem is None:
        return
    path, state = problem
    recompile = f"recompile: sepipe compile experiments/{cfg.name}.yaml --target {record['target']}"
    if state == "missing":
        raise BundleError(f"{label}: {path} is missing although variant '{variant}' was compiled for "
                          f"'{record['target']}' ({recompile})")
    raise BundleError(f"{label}: {path} was {state} ({recompile})")


def find_source(run: ExperimentConfig | str | Path, variant: str | None, target: str) -> BundleSource:
    """The files to bundle (variant None: the dense reference, the run's variant of kind 'ptq'), or
    BundleError naming the run, what was asked for and what exists."""
    from sepipe.experiment import RunPaths

    cfg, label = resolve_run(run)
    variant = variant or cfg.dense_variant.name
    paths = RunPaths(cfg)
    stages = records.read_manifest(cfg.run_dir).get("stages", {})
    _check_converted(cfg, label, variant, stages, paths)
    tflite = paths.tflite(variant)
    record = _current_record(cfg, label, variant, target, tflite)
    stem = f"{cfg.name}_{variant}_vela_{record['target_id']}"   # sepipe.deploy.compile.artifact_stem
    compile_dir = paths.compile_dir
    vela, summary = compile_dir / f"{stem}.tflite", compile_dir / f"{stem}_summary.csv"
    _check_compile_outputs(cfg, label, variant, record, stages.get(f"compile:{variant}", {}).get("outputs", {}),
                           (vela, summary))
    extra = tuple(p for p in (compile_dir / f"{stem}_per-layer.csv", compile_dir / f"{stem}_placement.json")
                  if p.is_file())
    variant_cfg = next((v for v in cfg.variants if v.name == variant), None)
    model = stages.get(f"variant:{variant}", {}).get("summary", {}).get("model") or dataclasses.asdict(cfg.model)
    return BundleSource(cfg=cfg, run_label=label, variant=variant, target=str(record["target"]),
                        target_id=str(record["target_id"]), tflite=tflite, vela_tflite=vela,
                        vela_summary_csv=summary, vela_extra=extra,
                        compiled=CompileRecord.from_record(record, f"compile:{variant} for {target}"),
                        convert_summary=stages[f"convert:{variant}"].get("summary", {}), model=model,
                        variant_config=dataclasses.asdict(variant_cfg) if variant_cfg else {"name": variant})


# --------------------------------------------------------------------------- test audio

def pick_test_audio(cfg: ExperimentConfig, frames: int) -> tuple[np.ndarray, dict[str, Any]]:
    """Real test-set audio for `frames` hops: the first test mixture (by name) long enough, else test
    mixtures joined in name order; returns (noisy float32 audio, a record of where it came from)."""
    from sepipe.audio import read_wav
    from sepipe.data import Dataset

    dataset = Dataset.open(cfg.data)
    needed = frames * cfg.features.hop
    entries = sorted(dataset.manifest["splits"]["test"]["pairs"], key=lambda e: e["name"])
    if not entries:
        raise MissingArtifactError(dataset.root, "the dataset has no test mixtures")
    rate = cfg.data.sample_rate
    long_enough = [e for e in entries if int(e.get("frames", 0)) >= needed]
    chosen = long_enough[:1] or entries
    parts, names, total = [], [], 0
    for entry in chosen:
        audio = read_wav(Path(dataset.root) / entry["noisy"], rate)
        parts.append(audio)
        names.append(entry["noisy"])
        total += len(audio)
        if total >= needed:
            break
    if total < needed:
        raise BundleError(f"{dataset.root}: the test split holds {total} samples, fewer than the {needed} of "
                          f"--frames {frames}; pass --frames {total // cfg.features.hop} or fewer")
    audio = np.concatenate(parts)[:needed].astype(np.float32)
    manifest_sha = artifacts.sha256_file(Path(dataset.root) / "manifest.json")
    record = {"dataset": Path(dataset.root).name, "dataset_manifest_sha256": manifest_sha, "split": "test",
              "files": names, "joined": len(names) > 1, "samples": int(len(audio)), "sample_rate": rate,
              "seconds": round(len(audio) / rate, 3), "what": "noisy test mixture (speech + real noise), float32"}
    return audio, record
