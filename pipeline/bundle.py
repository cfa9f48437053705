"""The hand-off bundle: everything a firmware engineer needs to run one compiled model.

    make_bundle(run, variant, target)  ->  <out>/<exp>_<variant>_<target>/  and  <out>/<exp>_<variant>_<target>.zip
    verify_bundle(folder or zip)       ->  BundleReport (every hash, golden vectors re-run through TFLite Micro)

Bundle layout (`<name>` is `<exp>_<variant>`):

    model/<name>_int8.tflite               the int8 (or 16x8) model: reference kernels, the golden vectors' source
    model/<name>_vela_<target>.tflite      the Vela-compiled model: what the Ethos-U firmware runs
    c/model_data.c, c/model_data.h         the VELA model as a 16-byte aligned C array in a named section
    c/model_io.h                           tensor positions, shapes, quantisation, state feedback, feature constants
    golden/                                features, states and outputs of consecutive frames of real audio (TFLM)
    vela/                                  Vela's summary CSV, per-layer CSV and operator placement
    model_manifest.json                    the contract: tensors, state pairs, features, arena, Vela figures, hashes
    README.md                              for the firmware engineer
    SHA256SUMS                             `sha256sum -c SHA256SUMS` compatible; covers every other file

The folder is built in a temporary folder beside the final one and renamed into place; inside it the
manifest is written after every file it hashes and SHA256SUMS (which covers the manifest) last; the
zip (sorted entries, fixed timestamps and permissions: equal inputs give equal bytes) after the folder.
Nothing in a bundle depends on the time or the machine's paths, so bundling twice gives the same bytes.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import shutil
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pipeline import artifacts
from pipeline.config import ExperimentConfig, FeatureConfig, experiment_from_dict, load_experiment
from pipeline.errors import InputFileError, MissingArtifactError, PipelineError, ToolError, describe_exit

BUNDLE_FORMAT = "sepipe-bundle/1"
MANIFEST = "model_manifest.json"
SUMS = "SHA256SUMS"
C_SYMBOL = "se_model"
C_SECTION = "nn_model"
C_ALIGNMENT = 16
C_SOURCE, C_HEADER = "model_data.c", "model_data.h"
DEFAULT_FRAMES = 300
ARENA_HEADROOM = 0.10            # +10 %, then rounded up to a whole KiB
ARENA_ROUND = 1024
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)   # the earliest time a zip can hold: no clock in the bytes
REQUANTIZE_FORMULA = ("q_in = clamp(roundf(float32(float32(q_out - zp_out) * s_out) / s_in) + zp_in, QMIN, QMAX)"
                      "; roundf rounds half away from zero; every step float32 (pipeline/interpreters.py)")
QUANTIZE_FORMULA = "q = clamp(roundf(float32(x) / float32(scale)) + zero_point, QMIN, QMAX)"
DEQUANTIZE_FORMULA = "x = float32(q - zero_point) * float32(scale)"


class BundleError(PipelineError):
    """A bundle was asked for something the run does not have (variant, target, a current compile)."""


# --------------------------------------------------------------------------- what to bundle

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
    record: dict[str, Any]       # the compile record (pipeline.compile)
    convert_summary: dict[str, Any]
    model: dict[str, Any]        # the variant's architecture (narrower than the experiment's for unit pruning)
    variant_config: dict[str, Any]

    def vela_copy_name(self, path: Path) -> str:
        """A Vela output's name in the bundle: the target's name in place of its id."""
        return path.name.replace(f"_vela_{self.target_id}", f"_vela_{self.target}", 1)


def resolve_run(run: ExperimentConfig | str | Path) -> tuple[ExperimentConfig, str]:
    """(config, label) of a run given as a config, an experiment YAML or a run folder (runs/<experiment>)."""
    if isinstance(run, ExperimentConfig):
        return run, str(run.run_dir)
    path = Path(run)
    if path.is_file() and path.suffix in (".yaml", ".yml"):
        return load_experiment(path), str(path)
    if path.is_dir():
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
        return dataclasses.replace(cfg, runs_dir=str(path.parent)), str(path)
    if not path.exists():
        raise InputFileError(path, "not found; pass a run folder (runs/<experiment>) or an experiment YAML")
    raise InputFileError(path, "expected a run folder (runs/<experiment>) or an experiment YAML (.yaml)")


def _compile_records(cfg: ExperimentConfig, variant: str) -> list[dict[str, Any]]:
    """Every compile record of `variant`: the run manifest's, plus complete ones on disk it does not list."""
    from pipeline.experiment import RunPaths

    stage = artifacts.read_manifest(cfg.run_dir)["stages"].get(f"compile:{variant}", {})
    records = list(stage.get("summary", {}).get("records", []))
    seen = {r.get("target") for r in records}
    for path in sorted(RunPaths(cfg).compile_dir.glob(f"{cfg.name}_{variant}_vela_*_record.json")):
        try:
            record = json.loads(path.read_text())
        except ValueError:
            continue
        if record.get("model") == f"{cfg.name}_{variant}" and record.get("target") not in seen:
            records.append(record)
            seen.add(record.get("target"))
    return records


def find_source(run: ExperimentConfig | str | Path, variant: str, target: str) -> BundleSource:
    """The files to bundle, or BundleError naming the run, what was asked for and what exists."""
    from pipeline.experiment import RunPaths

    cfg, label = resolve_run(run)
    paths = RunPaths(cfg)
    manifest = artifacts.read_manifest(cfg.run_dir)
    stages = manifest.get("stages", {})
    converted = sorted(name.split(":", 1)[1] for name in stages
                       if name.startswith("convert:") and paths.tflite(name.split(":", 1)[1]).is_file())
    if variant not in converted:
        have = ", ".join(converted) or "none"
        raise BundleError(f"{label}: variant '{variant}' has no converted model; converted variants: {have}"
                          + ("" if converted else f" (run: sepipe convert experiments/{cfg.name}.yaml)"))
    records = _compile_records(cfg, variant)
    record = next((r for r in records if target in (r.get("target"), r.get("target_id"))), None)
    if record is None:
        have = ", ".join(sorted(str(r.get("target")) for r in records)) or "none"
        raise BundleError(f"{label}: variant '{variant}' was never compiled for target '{target}'; compiled targets: "
                          f"{have} (compile with: sepipe compile experiments/{cfg.name}.yaml --target {target})")
    tflite = paths.tflite(variant)
    current = artifacts.sha256_file(tflite)
    if record.get("source_sha256") != current:
        raise BundleError(f"{label}: the compile of variant '{variant}' for target '{record['target']}' is stale: "
                          f"compiled from a .tflite with sha256 {str(record.get('source_sha256'))[:12]}..., "
                          f"{tflite.name} now has {current[:12]}... (recompile: sepipe compile "
                          f"experiments/{cfg.name}.yaml --target {record['target']})")
    stem = f"{cfg.name}_{variant}_vela_{record['target_id']}"   # pipeline.compile.artifact_stem
    compile_dir = paths.compile_dir
    vela, summary = compile_dir / f"{stem}.tflite", compile_dir / f"{stem}_summary.csv"
    for needed in (vela, summary):
        if not needed.is_file():
            raise BundleError(f"{label}: {needed} is missing although variant '{variant}' was compiled for "
                              f"'{record['target']}' (recompile: sepipe compile experiments/{cfg.name}.yaml "
                              f"--target {record['target']})")
    recorded = stages.get(f"compile:{variant}", {}).get("outputs", {})
    for path in (vela, summary):
        rel = str(path.relative_to(cfg.run_dir))
        if rel in recorded and recorded[rel] != artifacts.sha256_file(path):
            raise BundleError(f"{label}: {path} was altered after the compile stage recorded it (recompile: "
                              f"sepipe compile experiments/{cfg.name}.yaml --target {record['target']})")
    extra = tuple(p for p in (compile_dir / f"{stem}_per-layer.csv", compile_dir / f"{stem}_placement.json")
                  if p.is_file())
    variant_cfg = next((v for v in cfg.variants if v.name == variant), None)
    model = stages.get(f"variant:{variant}", {}).get("summary", {}).get("model") or dataclasses.asdict(cfg.model)
    return BundleSource(cfg=cfg, run_label=label, variant=variant, target=str(record["target"]),
                        target_id=str(record["target_id"]), tflite=tflite, vela_tflite=vela,
                        vela_summary_csv=summary, vela_extra=extra, record=record,
                        convert_summary=stages[f"convert:{variant}"].get("summary", {}), model=model,
                        variant_config=dataclasses.asdict(variant_cfg) if variant_cfg else {"name": variant})


# --------------------------------------------------------------------------- TFLite Micro arena

# One process probes arena sizes, printing each before and after trying it: the TFLM Python
# interpreter segfaults (instead of failing cleanly) for arenas a few bytes too small, so a probe
# that never reports back counts as too small and the search goes on in a fresh process.
_ARENA_PROBE = r"""
import sys
from tflite_micro.python.tflite_micro import runtime
data = open(sys.argv[1], "rb").read()
low, high = int(sys.argv[2]), int(sys.argv[3])
def runs(size):
    print("probe", size, flush=True)
    try:
        runtime.Interpreter.from_bytes(data, arena_size=size).invoke()
    except (RuntimeError, ValueError):
        print("fail", size, flush=True)
        return False
    print("ok", size, flush=True)
    return True
for size in map(int, sys.argv[4:]):
    runs(size)
if len(sys.argv) > 4:
    sys.exit(0)
while not high:
    size = max(2 * low, 1 << 16)
    if size > 1 << 28:
        print("toobig", flush=True)
        sys.exit(0)
    if runs(size):
        high = size
    else:
        low = size
while high - low > 1:
    middle = (low + high) // 2
    if runs(middle):
        high = middle
    else:
        low = middle
interpreter = runtime.Interpreter.from_bytes(data, arena_size=high)
interpreter.invoke()
print("done", high, flush=True)
interpreter.print_allocations()
"""


def _probe_process(model: Path, low: int, high: int, sizes: list[int]) -> tuple[list[tuple[str, int]], int, str]:
    import subprocess
    import sys

    try:
        proc = subprocess.run([sys.executable, "-c", _ARENA_PROBE, str(model), str(low), str(high),
                               *map(str, sizes)], capture_output=True, text=True, errors="replace", timeout=600)
    except subprocess.TimeoutExpired:
        raise ToolError("tflite micro", f"probing the tensor arena of {model.name} timed out") from None
    events = []
    for line in proc.stdout.splitlines():
        word, _, value = line.strip().partition(" ")
        events.append((word, int(value) if value.isdigit() else -1))
    return events, proc.returncode, proc.stderr


def probe_tflm_arena(tflite_bytes: bytes, sizes: list[int]) -> dict[int, str]:
    """{size: 'ok' | 'fail' | 'crash'}: whether TFLite Micro's Python interpreter allocates and invokes the
    model with that arena ('crash': it died, e.g. a segfault), each probed in a child process."""
    results: dict[int, str] = {}
    with tempfile.TemporaryDirectory(prefix="sepipe-arena-") as tmp:
        model = Path(tmp) / "model.tflite"
        model.write_bytes(bytes(tflite_bytes))
        todo = list(sizes)
        while todo:
            events, _, _ = _probe_process(model, 0, 0, todo)
            for word, size in events:
                if word in ("ok", "fail"):
                    results[size] = word
            pending = [size for word, size in events if word == "probe" and size not in results]
            if pending:
                results[pending[0]] = "crash"
            todo = [size for size in todo if size not in results]
            if todo and not pending:
                raise ToolError("tflite micro", "arena probe stopped without reporting")
    return results


def measure_tflm_arena(tflite_bytes: bytes) -> dict[str, Any]:
    """The smallest tensor arena with which the TFLite Micro Python interpreter allocates and invokes the
    model (binary search to the byte, in child processes), what its recording allocator reports, and the
    recommended size."""
    low, high, crashed = 0, 0, []
    with tempfile.TemporaryDirectory(prefix="sepipe-arena-") as tmp:
        model = Path(tmp) / "model.tflite"
        model.write_bytes(bytes(tflite_bytes))
        for _ in range(64):
            events, returncode, stderr = _probe_process(model, low, high, [])
            pending = None
            for word, size in events:
                if word == "probe":
                    pending = size
                elif word == "ok":
                    high, pending = size, None
                elif word == "fail":
                    low, pending = size, None
                elif word == "toobig":
                    raise ToolError("tflite micro", "the model does not run with a 256 MiB tensor arena")
            if events and events[-1][0] == "done":
                break
            if pending is None:
                lines = [line for line in stderr.splitlines() if line.strip()]
                raise ToolError("tflite micro", f"arena probe failed ({describe_exit(returncode)}): "
                                                f"{lines[-1] if lines else 'no output'}")
            low = pending            # it died trying this size: too small
            crashed.append(pending)
        else:
            raise ToolError("tflite micro", "arena probe kept crashing (64 attempts)")
    recorded = {}
    for key, pattern in (("recorded_total_bytes", r"Arena allocation total (\d+) bytes"),
                         ("recorded_head_bytes", r"Arena allocation head (\d+) bytes"),
                         ("recorded_tail_bytes", r"Arena allocation tail (\d+) bytes")):
        match = re.search(pattern, stderr)
        if match:
            recorded[key] = int(match.group(1))
    recommended = int(math.ceil(high * (1 + ARENA_HEADROOM) / ARENA_ROUND) * ARENA_ROUND)
    return {"measured_min_bytes": high, **recorded, "recommended_bytes": recommended,
            "headroom": (f"+{ARENA_HEADROOM:.0%} of the measured minimum, rounded up to a multiple of "
                         f"{ARENA_ROUND} bytes"),
            "probes_that_crashed": sorted(crashed)}


def _arena_section(source: BundleSource, measured: dict[str, Any], io_dtype: str) -> dict[str, Any]:
    record = source.record
    sram_bytes = int(round(float(record["sram_memory_used_kib"]) * 1024))
    mode = str(record.get("memory_mode", ""))
    dedicated = "Dedicated" in mode
    if dedicated:
        where = (f"memory mode {mode}: Vela keeps feature maps in {record.get('feature_map_storage_area', 'DRAM')}; "
                 f"its {sram_bytes} bytes of SRAM (sram_memory_used) are the NPU's fast scratch (the arena cache, "
                 f"at most arena_cache_size = {record.get('arena_cache_size')}), which the Ethos-U driver is given "
                 "apart from the tensor arena; the tensor arena holds the feature maps plus TFLM's bookkeeping")
    else:
        where = (f"memory mode {mode}: Vela's scratch (feature maps and NPU scratch) lives in the tensor arena, so "
                 f"the arena for the Vela model must be at least sram_memory_used = {sram_bytes} bytes plus "
                 "TFLite Micro's own bookkeeping (tensor and node structs, the ethos-u op's persistent data)")
    return {
        "reference_kernels": {
            "model": "model/" + _int8_name(source),
            "io_dtype": io_dtype,
            **measured,
            "method": ("smallest arena_size for which tflite_micro's Python interpreter (reference kernels, "
                       "RecordingMicroAllocator, 64-bit host) allocates and invokes the model; binary search "
                       "to the byte; sizes up to 16 bytes short of it crash that interpreter (segfault) instead of "
                       "failing cleanly, and count as too small (probes_that_crashed)"),
            "headroom_why": ("measured on a 64-bit host, where TFLM's tensor and node structs are larger than on a "
                             "32-bit Cortex-M and the recording allocator itself takes arena space, so the measured "
                             "minimum is an upper bound for the same kernels; the margin covers optimised kernels "
                             "(CMSIS-NN) that ask for scratch buffers the reference kernels do not"),
        },
        "vela_model": {
            "model": "model/" + _vela_name(source),
            "measured": False,
            "why_not_measured": ("neither Python interpreter (LiteRT, TFLite Micro) runs the 'ethos-u' custom "
                                 "operator, so the Vela model's arena could not be measured here; measure it on the "
                                 "device with MicroInterpreter::arena_used_bytes() after AllocateTensors()"),
            "sram_memory_used_bytes": sram_bytes,
            "memory_mode": mode,
            "feature_map_storage_area": record.get("feature_map_storage_area"),
            "arena_cache_size": record.get("arena_cache_size"),
            "rule": where,
            "lower_bound_bytes": None if dedicated else sram_bytes,
        },
    }


# --------------------------------------------------------------------------- test audio

def pick_test_audio(cfg: ExperimentConfig, frames: int) -> tuple[np.ndarray, dict[str, Any]]:
    """Real test-set audio for `frames` hops: the first test mixture (by name) long enough, else test
    mixtures joined in name order; returns (noisy float32 audio, a record of where it came from)."""
    from pipeline.audio import read_wav
    from pipeline.data import Dataset

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
    audio = np.concatenate(parts)[:needed].astype(np.float32)
    manifest_sha = artifacts.sha256_file(Path(dataset.root) / "manifest.json")
    record = {"dataset": Path(dataset.root).name, "dataset_manifest_sha256": manifest_sha, "split": "test",
              "files": names, "joined": len(names) > 1, "samples": int(len(audio)), "sample_rate": rate,
              "seconds": round(len(audio) / rate, 3), "what": "noisy test mixture (speech + real noise), float32"}
    return audio, record


# --------------------------------------------------------------------------- the bundle

def _int8_name(source: BundleSource) -> str:
    return f"{source.cfg.name}_{source.variant}_int8.tflite"


def _vela_name(source: BundleSource) -> str:
    return f"{source.cfg.name}_{source.variant}_vela_{source.target}.tflite"


def bundle_name(source: BundleSource) -> str:
    return f"{source.cfg.name}_{source.variant}_{source.target}"


def feature_section(features: FeatureConfig, sample_rate: int) -> dict[str, Any]:
    return {
        "sample_rate": sample_rate, "fft_size": features.fft_size, "hop": features.hop, "bins": features.bins,
        "hop_ms": 1000.0 * features.hop / sample_rate,
        "window": "periodic sqrt-Hann: w[n] = sqrt(0.5 - 0.5 cos(2 pi n / fft_size)), n = 0 .. fft_size-1",
        "compression": "ln(|X|^2 + log_floor)", "log_floor": features.log_floor,
        "frame_alignment": (f"frame t covers input samples [t*hop - hop, t*hop + hop): the stream starts with "
                            f"{features.hop} zeros (hop zeros first), then each frame is windowed and real-FFT'd"),
        "synthesis": "X * mask per bin, inverse real FFT, the same window, overlap-add at 50 % (one hop of latency)",
        "reference": "pipeline/features.py",
    }


def _tensor_entry(tensor) -> dict[str, Any]:
    return {"name": tensor.name, "position": tensor.position, "tensor_index": tensor.index,
            "shape": list(tensor.shape), "dtype": tensor.dtype, "scale": tensor.scale,
            "zero_point": tensor.zero_point}


def _state_pairs(io) -> list[dict[str, Any]]:
    pairs = []
    for pair in io.state_pairs:
        out, inp = io.output(pair.output), io.input(pair.input)
        info = np.iinfo(np.dtype(inp.dtype))
        entry = {"output": out.name, "output_position": out.position, "input": inp.name,
                 "input_position": inp.position, "rule": "copy" if pair.same_quantization else "requantize",
                 "s_out": out.scale, "zp_out": out.zero_point, "s_in": inp.scale, "zp_in": inp.zero_point}
        if not pair.same_quantization:
            entry.update({"formula": REQUANTIZE_FORMULA, "qmin": int(info.min), "qmax": int(info.max)})
        pairs.append(entry)
    return pairs


def _check_vela_io(vela_bytes: bytes, io, vela_path: Path) -> None:
    """The Vela model must keep the int8 model's input/output order, shapes, types and quantisation."""
    from ethosu.vela.tflite.Model import Model
    from ethosu.vela.tflite.TensorType import TensorType

    types = {value: key.lower() for key, value in vars(TensorType).items() if not key.startswith("_")}
    subgraph = Model.GetRootAs(vela_bytes, 0).Subgraphs(0)

    def describe(i: int):
        tensor = subgraph.Tensors(int(i))
        quant = tensor.Quantization()
        scale = float(quant.ScaleAsNumpy()[0]) if quant is not None and quant.ScaleLength() else 0.0
        zero = int(quant.ZeroPointAsNumpy()[0]) if quant is not None and quant.ZeroPointLength() else 0
        return [int(d) for d in tensor.ShapeAsNumpy()], types.get(tensor.Type()), np.float32(scale), zero

    for side, tensors, indices in (("input", io.inputs, subgraph.InputsAsNumpy()),
                                   ("output", io.outputs, subgraph.OutputsAsNumpy())):
        if len(indices) != len(tensors):
            raise BundleError(f"{vela_path}: has {len(indices)} {side}s, the int8 model {len(tensors)}")
        for tensor, index in zip(tensors, indices):
            got = describe(index)
            want = (list(tensor.shape), tensor.dtype, np.float32(tensor.scale), tensor.zero_point)
            if got[0] != want[0] or got[1] != want[1] or got[2] != want[2] or got[3] != want[3]:
                raise BundleError(f"{vela_path}: {side} {tensor.position} ('{tensor.name}') is {got}, the int8 "
                                  f"model's is {want}; firmware could not use the int8 model's contract")


def _vela_figures(record: dict[str, Any]) -> dict[str, Any]:
    keys = ("target", "target_id", "accelerator", "system_config", "memory_mode", "clock_hz", "optimise",
            "arena_cache_size", "cycles_total", "cycles_npu", "inference_time_ms", "inferences_per_second",
            "sram_memory_used_kib", "dram_memory_used_kib", "on_chip_flash_memory_used_kib",
            "off_chip_flash_memory_used_kib", "flash_kib", "weights_storage_area", "feature_map_storage_area",
            "total_original_weights", "total_npu_encoded_weights_bytes", "nn_macs", "mac_utilisation_pct",
            "npu_ops", "cpu_ops", "npu_op_share", "vela_version")
    return {key: record.get(key) for key in keys}


def make_bundle(run_dir_or_cfg: ExperimentConfig | str | Path, variant: str, target: str,
                out_dir: str | Path | None = None, frames: int = DEFAULT_FRAMES) -> Path:
    """Write the hand-off bundle of `variant` compiled for `target`; returns the bundle folder
    (the zip is beside it, `<folder>.zip`). Raises BundleError for a variant or target the run
    does not have, or a compile older than the current .tflite."""
    from pipeline import c_export, golden
    from pipeline.convert import read_tflite_bytes, tflite_io

    if frames < 2:
        raise BundleError(f"--frames must be at least 2 (the enhanced audio lags one hop), got {frames}")
    source = find_source(run_dir_or_cfg, variant, target)
    cfg = source.cfg
    out_dir = Path(out_dir) if out_dir is not None else cfg.run_dir / "bundles"
    name = bundle_name(source)
    int8_bytes = read_tflite_bytes(source.tflite)
    vela_bytes = read_tflite_bytes(source.vela_tflite)
    io = tflite_io(int8_bytes)
    _check_vela_io(vela_bytes, io, source.vela_tflite)
    io_dtype = io.inputs[0].dtype
    audio, audio_record = pick_test_audio(cfg, frames)
    arena = measure_tflm_arena(int8_bytes)

    out_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".tmp-{name}-", dir=out_dir))
    try:
        root = work / name
        (root / "model").mkdir(parents=True)
        (root / "model" / _int8_name(source)).write_bytes(int8_bytes)
        (root / "model" / _vela_name(source)).write_bytes(vela_bytes)
        (root / "c").mkdir()
        c_text, h_text = c_export.model_array_source(vela_bytes, symbol=C_SYMBOL, section=C_SECTION)
        # c_export names the header after the symbol; the bundle's is model_data.h
        c_text = (c_text.replace(f'#include "{C_SYMBOL}.h"', f'#include "{C_HEADER}"')
                  .replace(f"/* {C_SYMBOL}.c:", f"/* {C_SOURCE}:", 1))
        h_text = h_text.replace(f"/* {C_SYMBOL}.h:", f"/* {C_HEADER}:", 1)
        (root / "c" / C_SOURCE).write_text(c_text)
        (root / "c" / C_HEADER).write_text(h_text)
        vela_sha = artifacts.sha256_file(root / "model" / _vela_name(source))
        (root / "c" / "model_io.h").write_text(c_export.model_io_header(io, cfg.features, f"{cfg.name}_{variant}",
                                                                        tflite_sha256=vela_sha))
        (root / "vela").mkdir()
        for path in (source.vela_summary_csv, *source.vela_extra):
            shutil.copyfile(path, root / "vela" / source.vela_copy_name(path))
        golden_info = golden.write_golden_vectors(int8_bytes, audio, cfg.features, frames, root / "golden",
                                                  source=", ".join(audio_record["files"]))
        manifest = {
            "format": BUNDLE_FORMAT,
            "source": {"experiment": cfg.name, "variant": variant, "target": source.target,
                       "target_id": source.target_id, "run": source.run_label,
                       "int8_tflite_sha256": artifacts.sha256_file(source.tflite),
                       "activations": cfg.convert.activations, "model": source.model,
                       "variant_config": source.variant_config,
                       "calibration": {k: v for k, v in source.convert_summary.get("calibration", {}).items()
                                       if k in ("files", "seed", "drawn_frames", "states_from")}},
            "model": {
                "int8_tflite": "model/" + _int8_name(source), "vela_tflite": "model/" + _vela_name(source),
                "io_dtype": io_dtype,
                "c_array": {"source": f"c/{C_SOURCE}", "header": f"c/{C_HEADER}", "symbol": C_SYMBOL,
                            "section": C_SECTION, "alignment": C_ALIGNMENT, "bytes": len(vela_bytes),
                            "holds": "model/" + _vela_name(source)},
                "io_header": "c/model_io.h",
                "vela_io_matches_int8": True,
            },
            "tensors": {"inputs": [_tensor_entry(t) for t in io.inputs],
                        "outputs": [_tensor_entry(t) for t in io.outputs]},
            "state_pairs": _state_pairs(io),
            "call_contract": {
                "invokes": f"one Invoke per hop ({cfg.features.hop} samples, "
                           f"{1000.0 * cfg.features.hop / cfg.data.sample_rate:g} ms)",
                "inputs": "features (quantised) at its position; every state input holds the state from the "
                          "previous Invoke (zero_point, i.e. quantised 0.0, before the first)",
                "outputs": "mask: one gain per bin, dequantised; every state output copied back to its "
                           "input by the state_pairs rule before the next Invoke",
                "quantize": QUANTIZE_FORMULA, "dequantize": DEQUANTIZE_FORMULA,
                "qmin_qmax": list(map(int, (np.iinfo(np.dtype(io_dtype)).min, np.iinfo(np.dtype(io_dtype)).max))),
                "initial_state": "every state input set to its zero_point",
            },
            "features": feature_section(cfg.features, cfg.data.sample_rate),
            "tflm_arena": _arena_section(source, arena, io_dtype),
            "vela": {"summary_csv": f"vela/{source.vela_copy_name(source.vela_summary_csv)}",
                     "figures": _vela_figures(source.record)},
            "golden": {"folder": "golden", "frames": frames, "test_audio": audio_record,
                       "produced_by": "TFLite Micro Python interpreter (reference kernels) on the int8 model",
                       "description": golden_info},
            "tool_versions": artifacts.tool_versions(),
        }
        (root / "README.md").write_text(readme_text(manifest))
        manifest["files"] = _hashes(root, exclude={MANIFEST, SUMS})
        (root / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True, default=_json_default) + "\n")
        sums = _hashes(root, exclude={SUMS})
        (root / SUMS).write_text("".join(f"{digest}  {rel}\n" for rel, digest in sums.items()))
        final = out_dir / name
        _replace_folder(root, final)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    write_zip(final, out_dir / f"{name}.zip")
    return final


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def _hashes(root: Path, exclude: set[str]) -> dict[str, str]:
    return {rel: artifacts.sha256_file(root / rel) for rel in _files(root) if rel not in exclude}


def _replace_folder(new: Path, final: Path) -> None:
    """Rename `new` to `final`; an older bundle there is moved aside first and removed after."""
    old = None
    if final.exists():
        old = final.with_name(f".old-{final.name}-{os.getpid()}")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
    os.replace(new, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def write_zip(folder: Path, zip_path: Path) -> Path:
    """`folder` as a zip of `<folder name>/...` entries: sorted, fixed timestamps and permissions."""
    with artifacts.atomic_path(zip_path) as tmp:
        with zipfile.ZipFile(tmp, "w") as archive:
            for rel in _files(folder):
                info = zipfile.ZipInfo(f"{folder.name}/{rel}", date_time=_ZIP_TIME)
                info.compress_type = zipfile.ZIP_DEFLATED
                info.create_system = 3
                info.external_attr = 0o100644 << 16
                archive.writestr(info, (folder / rel).read_bytes(), compresslevel=9)
    return zip_path


# --------------------------------------------------------------------------- README

def readme_text(m: dict[str, Any]) -> str:
    src, feats, contract = m["source"], m["features"], m["call_contract"]
    ref, vela_arena = m["tflm_arena"]["reference_kernels"], m["tflm_arena"]["vela_model"]
    fig = m["vela"]["figures"]
    dtype = m["model"]["io_dtype"]
    rows = [f"| {side} | {t['position']} | `{t['name']}` | {t['shape']} | {t['dtype']} | {t['scale']:.9g} | "
            f"{t['zero_point']} |" for side in ("inputs", "outputs") for t in m["tensors"][side]]
    pairs = [f"| `{p['output']}` (out {p['output_position']}) | `{p['input']}` (in {p['input_position']}) | "
             f"{p['rule']} |" for p in m["state_pairs"]]
    requant = any(p["rule"] == "requantize" for p in m["state_pairs"])
    lower = vela_arena["lower_bound_bytes"]
    precision = "16x8: int16 activations, int8 weights" if dtype == "int16" else "int8 activations and weights"
    copy_back = (f"as is where the rule is `copy`; where it is `requantize`: `{REQUANTIZE_FORMULA.split(';')[0]}`."
                 if requant else "every pair is a plain copy (same scale and zero point).")
    lines = [
        f"# {src['experiment']} / {src['variant']} on {src['target']}: firmware hand-off",
        "",
        f"A speech-enhancement mask network, {dtype} I/O ({precision}), "
        f"compiled by Vela {fig.get('vela_version')} for {src['target']} ({fig.get('accelerator')}, "
        f"{fig.get('system_config')}, {fig.get('memory_mode')}). Everything below is also in "
        "`model_manifest.json` (the machine-readable contract).",
        "",
        "## Files",
        "",
        f"- `{m['model']['vela_tflite']}`: the Vela-compiled model, what the Ethos-U firmware runs.",
        f"- `c/model_data.c`, `c/model_data.h`: that model as `{m['model']['c_array']['symbol']}[]`, "
        f"{m['model']['c_array']['bytes']} bytes, {m['model']['c_array']['alignment']}-byte aligned, in linker "
        f"section `{m['model']['c_array']['section']}` (place it in your linker script, e.g. flash).",
        "- `c/model_io.h`: tensor positions, shapes, scales and zero points, state feedback, feature constants.",
        f"- `{m['model']['int8_tflite']}`: the same network before Vela (reference kernels, any TFLM build); "
        "the golden vectors come from it.",
        "- `golden/`: features, input states and outputs of every Invoke for consecutive frames of real audio "
        "(`golden/golden.json` describes each file: raw little-endian arrays).",
        "- `vela/`: Vela's summary and per-layer CSVs and where each operator runs.",
        "- `SHA256SUMS`: check with `sha256sum -c SHA256SUMS`; `sepipe verify-bundle <this folder or zip>` "
        "also re-runs the golden vectors through TFLite Micro.",
        "",
        "## Per hop (one Invoke)",
        "",
        f"Every {feats['hop']} samples at {feats['sample_rate']} Hz ({feats['hop_ms']:g} ms):",
        "",
        f"1. Frame: the last {feats['fft_size']} samples (the stream starts with {feats['hop']} zeros), times a "
        f"periodic sqrt-Hann window, real FFT -> {feats['bins']} bins.",
        f"2. Features: `ln(|X|^2 + {feats['log_floor']:g})`, quantised: `{contract['quantize']}` "
        f"(QMIN, QMAX = {contract['qmin_qmax'][0]}, {contract['qmin_qmax'][1]}).",
        "3. Set the features input and every state input (before the first hop: each state's zero point), Invoke.",
        f"4. Mask: `{contract['dequantize']}`, multiply each bin of X, inverse FFT, window, overlap-add.",
        "5. Copy every state output to its input: " + copy_back,
        "",
        "| side | position | name | shape | dtype | scale | zero point |",
        "|---|---|---|---|---|---|---|",
        *rows,
        "",
        "| state output | feeds input | rule |",
        "|---|---|---|",
        *pairs,
        "",
        "## Tensor arena",
        "",
        f"- Reference kernels (the int8 model in TFLite Micro): {ref['measured_min_bytes']} bytes measured "
        f"(smallest arena that allocates and invokes, Python TFLM on a 64-bit host); use "
        f"**{ref['recommended_bytes']} bytes** ({ref['headroom']}).",
        f"- Vela model: not measurable here (no Python interpreter runs the `ethos-u` operator). Vela reports "
        f"{vela_arena['sram_memory_used_bytes']} bytes of SRAM (`sram_memory_used`); "
        + (f"the arena must hold at least that plus TFLM's bookkeeping (lower bound {lower} bytes). "
           if lower is not None else "in this memory mode that is the NPU's fast scratch, given to the driver "
                                     "apart from the tensor arena. ")
        + "Measure it on the device with `MicroInterpreter::arena_used_bytes()` after `AllocateTensors()`.",
        "",
        "## Vela figures",
        "",
        f"{fig.get('cycles_total'):,} cycles, {fig.get('inference_time_ms'):.3f} ms per Invoke at "
        f"{float(fig.get('clock_hz') or 0) / 1e6:g} MHz ({fig.get('inference_time_ms', 0) / feats['hop_ms']:.1%} of "
        f"the hop); SRAM {fig.get('sram_memory_used_kib'):.2f} KiB, flash {fig.get('flash_kib'):.2f} KiB, "
        f"DRAM {fig.get('dram_memory_used_kib'):.2f} KiB; {fig.get('nn_macs'):,} MACs; "
        f"{fig.get('npu_ops')} operators on the NPU, {fig.get('cpu_ops')} on the CPU.",
        "",
        "## Golden vectors",
        "",
        f"{m['golden']['frames']} consecutive frames of {', '.join(m['golden']['test_audio']['files'])} "
        f"({m['golden']['test_audio']['dataset']}, test split), produced by {m['golden']['produced_by']}. "
        "Feed `in_<input>.bin` frame by frame (or compute features from `audio_in.f32` and feed the states back "
        "yourself) and compare every output with `out_<output>.bin`: the reference kernels must match bit for "
        "bit; the Vela model on the NPU may differ by a few LSB. The C frame loop of this repository's "
        "`firmware_stub/` checks itself against this folder: `make -C firmware_stub host-test "
        "GOLDEN=<bundle>/golden MODEL_IO=<bundle>/c`.",
        "",
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------- verification

@dataclass
class BundleReport:
    path: Path
    problems: list[str] = field(default_factory=list)
    files_checked: int = 0
    frames: int = 0
    arena_bytes: int | None = None
    name: str = ""

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        if not self.ok:
            return f"{self.path}: {len(self.problems)} problem(s)"
        return (f"{self.path}: OK: {self.files_checked} file hashes match; {self.frames} golden frames re-run "
                f"through TFLite Micro (arena {self.arena_bytes} bytes) equal bit for bit")


def _read_sums(path: Path) -> dict[str, str]:
    sums = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        match = re.fullmatch(r"([0-9a-f]{64}) [ *](.+)", line.strip())
        if not match:
            raise InputFileError(path, f"line {number} is not '<sha256>  <file>'")
        sums[match.group(2)] = match.group(1)
    return sums


def _unzip(zip_path: Path, into: Path) -> Path:
    try:
        with zipfile.ZipFile(zip_path) as archive:
            names = archive.namelist()
            tops = {n.split("/", 1)[0] for n in names}
            if len(tops) != 1 or any(n.startswith("/") or ".." in n.split("/") for n in names):
                raise InputFileError(zip_path, "not a bundle zip (expected one top folder and relative names)")
            archive.extractall(into)
    except zipfile.BadZipFile as exc:
        raise InputFileError(zip_path, f"not a readable zip ({exc})") from None
    return into / tops.pop()


def verify_bundle(path: str | Path) -> BundleReport:
    """Check every hash (SHA256SUMS and the manifest's list), the C array against the Vela model, and re-run
    the golden vectors through the TFLite Micro interpreter with the manifest's arena: outputs and fed-back
    states must equal the golden files bit for bit. Problems are collected, one line each; unusable input
    (no such path, not a bundle, no SHA256SUMS or manifest) raises InputFileError."""
    path = Path(path)
    if not path.exists():
        raise InputFileError(path, "not found; pass a bundle folder or its .zip")
    if path.is_file():
        if not zipfile.is_zipfile(path):
            raise InputFileError(path, "not a bundle: neither a folder nor a zip")
        with tempfile.TemporaryDirectory(prefix="sepipe-verify-") as tmp:
            report = _verify_folder(_unzip(path, Path(tmp)), label=path)
        return report
    return _verify_folder(path, label=path)


def _verify_folder(root: Path, label: Path) -> BundleReport:
    report = BundleReport(path=label, name=root.name)
    for needed in (SUMS, MANIFEST):
        if not (root / needed).is_file():
            raise InputFileError(root, f"not a bundle: no {needed}")
    sums = _read_sums(root / SUMS)
    present = set(_files(root)) - {SUMS}
    for rel in sorted(set(sums) - present):
        report.problems.append(f"{rel}: listed in {SUMS} but missing")
    for rel in sorted(present - set(sums)):
        report.problems.append(f"{rel}: not listed in {SUMS}")
    bad = set()
    for rel in sorted(set(sums) & present):
        if artifacts.sha256_file(root / rel) != sums[rel]:
            report.problems.append(f"{rel}: sha256 differs from {SUMS}")
            bad.add(rel)
        report.files_checked += 1
    try:
        manifest = json.loads((root / MANIFEST).read_text())
    except ValueError as exc:
        report.problems.append(f"{MANIFEST}: not valid JSON ({exc})")
        return report
    listed = manifest.get("files", {})
    for rel, digest in sorted(listed.items()):
        if rel in sums and sums[rel] != digest and rel not in bad:
            report.problems.append(f"{rel}: {MANIFEST} and {SUMS} disagree on its sha256")
    for rel in sorted(set(sums) - set(listed) - {MANIFEST}):
        report.problems.append(f"{rel}: not listed in {MANIFEST}")
    try:
        _check_c_array(root, manifest, report)
        _rerun_golden(root, manifest, report)
    except (KeyError, TypeError) as exc:
        report.problems.append(f"{MANIFEST}: lacks {exc} (not a bundle of format {BUNDLE_FORMAT}?)")
    return report


def c_array_bytes(c_text: str, symbol: str) -> bytes | None:
    """The bytes of the initialiser of array `symbol` in C source (hex or decimal elements)."""
    match = re.search(rf"\b{re.escape(symbol)}\s*\[[^\]]*\][^=;{{]*=\s*{{(.*?)}}\s*;", c_text, re.S)
    if not match:
        return None
    body = re.sub(r"/\*.*?\*/|//[^\n]*", "", match.group(1), flags=re.S)
    values = [int(v, 0) for v in re.findall(r"0[xX][0-9a-fA-F]+|\d+", body)]
    return bytes(values) if all(0 <= v < 256 for v in values) else None


def _check_c_array(root: Path, manifest: dict[str, Any], report: BundleReport) -> None:
    array = manifest["model"]["c_array"]
    c_path, model_path = root / array["source"], root / array["holds"]
    if not c_path.is_file() or not model_path.is_file():
        return   # already reported as missing
    data = c_array_bytes(c_path.read_text(errors="replace"), array["symbol"])
    if data is None:
        report.problems.append(f"{array['source']}: no array '{array['symbol']}' found")
    elif data != model_path.read_bytes():
        report.problems.append(f"{array['source']}: the array '{array['symbol']}' differs from {array['holds']}")


def _rerun_golden(root: Path, manifest: dict[str, Any], report: BundleReport) -> None:
    from pipeline.interpreters import TFLMStreamingRunner

    model_path = root / manifest["model"]["int8_tflite"]
    golden = root / manifest["golden"]["folder"]
    features_path = golden / "features.f32"
    if not model_path.is_file() or not features_path.is_file():
        report.problems.append(f"{golden.name}/features.f32 or {model_path.name}: missing, golden vectors not re-run")
        return
    arena = int(manifest["tflm_arena"]["reference_kernels"]["recommended_bytes"])
    try:
        runner = TFLMStreamingRunner(model_path.read_bytes(), arena_size=arena)
    except (RuntimeError, ValueError) as exc:
        why = (str(exc).strip().splitlines() or [exc.__class__.__name__])[-1]
        report.problems.append(f"{manifest['model']['int8_tflite']}: TFLite Micro cannot run it with the manifest's "
                               f"arena of {arena} bytes ({why})")
        return
    bins = runner.bins
    raw = np.fromfile(features_path, dtype="<f4")
    if raw.size == 0 or raw.size % bins:
        report.problems.append(f"golden/features.f32: {raw.size} values is not a whole number of {bins}-bin frames")
        return
    features = raw.reshape(-1, bins)
    inputs, outputs = runner.run_recorded(features)
    report.frames = len(features)
    report.arena_bytes = arena
    for side, prefix, tensors in (("input", "in", runner.io.inputs), ("output", "out", runner.io.outputs)):
        produced = inputs if side == "input" else outputs
        for tensor in tensors:
            rel = f"{golden.name}/{prefix}_{tensor.name}.bin"
            file = root / rel
            if not file.is_file():
                report.problems.append(f"{rel}: missing")
                continue
            want = np.ascontiguousarray(produced[tensor.name]).astype(np.dtype(tensor.dtype).newbyteorder("<"))
            got = np.fromfile(file, dtype=np.dtype(tensor.dtype).newbyteorder("<"))
            if got.size != want.size:
                report.problems.append(f"{rel}: {got.size} values, TFLite Micro gives {want.size} "
                                       f"({len(features)} frames of {tensor.shape})")
                continue
            got, want = got.reshape(len(features), -1), want.reshape(len(features), -1)
            differ = got != want
            if differ.any():
                frames = np.flatnonzero(differ.any(axis=1))
                lsb = int(np.abs(got.astype(np.int32) - want.astype(np.int32)).max())
                report.problems.append(f"{rel}: differs from the TFLite Micro re-run in {int(differ.sum())} values "
                                       f"of {len(frames)} frames (first frame {int(frames[0])}, up to {lsb} LSB)")
    _check_float_files(golden, manifest, features, outputs, runner, report)


# float32 DSP may differ in the last bits between FFT builds; far beyond these means different data
_FEATURE_TOLERANCE = 1e-3      # ln power units
_AUDIO_TOLERANCE = 1e-4        # full scale 1.0


def _check_float_files(golden: Path, manifest: dict[str, Any], features: np.ndarray, outputs: dict[str, np.ndarray],
                       runner, report: BundleReport) -> None:
    """features.f32 and audio_out.f32 must follow from audio_in.f32 and the mask (pipeline/features.py)."""
    from pipeline import features as feat
    from pipeline.convert import MASK_OUTPUT
    from pipeline.interpreters import dequantize

    audio_path, out_path = golden / "audio_in.f32", golden / "audio_out.f32"
    if not audio_path.is_file() or not out_path.is_file():
        report.problems.append(f"{golden.name}/audio_in.f32 or audio_out.f32: missing")
        return
    f = manifest["features"]
    cfg = FeatureConfig(fft_size=int(f["fft_size"]), hop=int(f["hop"]), log_floor=float(f["log_floor"]))
    audio = np.fromfile(audio_path, dtype="<f4")
    frames = len(features)
    if len(audio) != frames * cfg.hop:
        report.problems.append(f"{golden.name}/audio_in.f32: {len(audio)} samples, {frames} frames need "
                               f"{frames * cfg.hop}")
        return
    computed, spectrum = feat.features(audio, cfg)
    diff = float(np.abs(computed[:frames] - features).max())
    if not diff <= _FEATURE_TOLERANCE:
        report.problems.append(f"{golden.name}/features.f32: differs from the features of audio_in.f32 by up to "
                               f"{diff:.3g} (tolerance {_FEATURE_TOLERANCE:g})")
    mask_tensor = runner.io.output(MASK_OUTPUT)
    mask = dequantize(outputs[MASK_OUTPUT].reshape(frames, -1), mask_tensor.scale, mask_tensor.zero_point)
    enhanced = feat.enhance_with_mask(spectrum[:frames], mask, cfg, (frames - 1) * cfg.hop)
    got = np.fromfile(out_path, dtype="<f4")
    if got.shape != enhanced.shape:
        report.problems.append(f"{golden.name}/audio_out.f32: {got.size} samples, expected {enhanced.size}")
        return
    diff = float(np.abs(got - enhanced).max())
    if not diff <= _AUDIO_TOLERANCE:
        report.problems.append(f"{golden.name}/audio_out.f32: differs from the resynthesis with the TFLite Micro "
                               f"mask by up to {diff:.3g} (tolerance {_AUDIO_TOLERANCE:g})")
