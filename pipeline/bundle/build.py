"""Building a bundle: the files, the manifest, SHA256SUMS, the atomic folder replace and the zip."""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from sepipe import artifacts, gain
from sepipe.bundle.arena import arena_section, measure_tflm_arena
from sepipe.bundle.frame_loop import measure_frame_loop
from sepipe.bundle.layout import (BUNDLE_FORMAT, C_ALIGNMENT, C_HEADER, C_SECTION, C_SOURCE, C_STEM, C_SYMBOL,
                                    DEFAULT_FRAMES, DEQUANTIZE_FORMULA, DESC_SOURCE, MANIFEST, MAX_FRAMES,
                                    OPS_HEADER, OPS_SOURCE, QUANTIZE_FORMULA, REQUANTIZE_FORMULA, SUMS)
from sepipe.bundle.model_ops import read_model_ops
from sepipe.bundle.readme import readme_text
from sepipe.bundle.source import (BundleError, BundleSource, bundle_name, find_source, model_contract,
                                    pick_test_audio, tflite_name, vela_name)
from sepipe.config import ExperimentConfig, FeatureConfig
from sepipe.deploy.figures import CompileRecord

_ZIP_TIME = (1980, 1, 1, 0, 0, 0)
_C_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,39}")   # the earliest time a zip can hold: no clock in the bytes


def make_bundle(run_dir_or_cfg: ExperimentConfig | str | Path, variant: str | None, target: str,
                out_dir: str | Path | None = None, frames: int = DEFAULT_FRAMES, c_prefix: str = C_SYMBOL,
                predictor: tuple[str | Path, str] | None = None, predictor_prefix: str = "se_qp") -> Path:
    """Write the hand-off bundle of `variant` compiled for `target`; returns the bundle folder
    (the zip is beside it, `<folder>.zip`). `c_prefix` starts every C symbol of the model (its bytes, its
    descriptor `<c_prefix>_desc`, its op resolvers): give each model of one firmware image its own.
    `predictor`: (quality-predictor run folder, its variant) to add as the image's second model, compiled for
    the same target, with C prefix `predictor_prefix` (sepipe.bundle.predictor).
    Raises BundleError for a variant or target the run does not have, or a compile older than the current
    .tflite."""
    from sepipe.deploy.tflite_info import read_tflite_bytes
    from sepipe.quantize.model_io import tflite_io

    _check_frames(frames)
    _check_prefix(c_prefix)
    source = find_source(run_dir_or_cfg, variant, target)
    predictor_source = None
    if predictor is not None:          # checked before anything is built
        from sepipe.bundle.predictor import checked_source

        predictor_source = checked_source(predictor, source.target, frames, c_prefix, predictor_prefix)
    cfg = source.cfg
    out_dir = Path(out_dir) if out_dir is not None else cfg.run_dir / "bundles"
    name = bundle_name(source)
    model_bytes = read_tflite_bytes(source.tflite)
    vela_bytes = read_tflite_bytes(source.vela_tflite)
    io = tflite_io(model_bytes, model_contract(source))
    if not io.integer_io:
        # model_io.h (sepipe.c_export) and the firmware stub give every tensor its own int8 or int16 type
        types = sorted({t.dtype for t in io.inputs + io.outputs})
        raise BundleError(f"{source.tflite}: inputs and outputs of types {types}; a bundle needs every input and "
                          "output int8 or int16 (a float one stays on the CPU outside the firmware contract); "
                          "bundle a variant with integer I/O")
    _check_vela_io(vela_bytes, io, source.vela_tflite)
    audio, audio_record = pick_test_audio(cfg, frames)
    arena = measure_tflm_arena(model_bytes)
    ops = {"vela": read_model_ops(vela_bytes, source.vela_tflite), "cpu": read_model_ops(model_bytes, source.tflite)}
    arena = arena_section(source, arena, io.io_type or "mixed", ops["cpu"])

    out_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".tmp-{name}-", dir=out_dir))
    try:
        root = work / name
        _write_models(root, source, model_bytes, vela_bytes)
        _write_c_sources(root, source, io, vela_bytes, ops, arena, c_prefix)
        _copy_vela_reports(root, source)
        golden_info = _write_golden(root, model_bytes, io, audio, audio_record, cfg, frames)
        manifest = _manifest(source, io, len(vela_bytes), arena, frames, audio_record, golden_info, ops, c_prefix)
        manifest["frame_loop"] = measure_frame_loop(root)   # the C frame loop on the emulated Cortex-M55
        if predictor_source is not None:    # only then: a bundle without it has the bytes of before
            from sepipe.bundle.predictor import write_predictor

            manifest["predictor"] = write_predictor(root, predictor_source, predictor_prefix,
                                                    arena["reference_kernels"])
        _write_readme_manifest_and_sums(root, manifest)
        write_zip(root, work / f"{name}.zip")
        _publish(root, work / f"{name}.zip", out_dir / name, out_dir / f"{name}.zip", work)
    finally:
        shutil.rmtree(work, ignore_errors=True)   # the build, and an old bundle moved aside
    return out_dir / name


def _check_frames(frames: int) -> None:
    if isinstance(frames, bool) or not isinstance(frames, int) or not 2 <= frames <= MAX_FRAMES:
        raise BundleError(f"option '--frames' = {str(frames)[:40]} is not valid; expected a whole number of "
                          f"frames from 2 (the enhanced audio lags one hop) to {MAX_FRAMES}")


def _publish(folder: Path, zip_path: Path, final: Path, final_zip: Path, work: Path) -> None:
    """Move a complete bundle folder and its zip into place. The old zip goes first and the new zip comes
    last, so whichever step is interrupted, the folder and zip present never come from two builds (an old
    zip beside a new folder would both verify). An old folder is moved into `work`, which the caller
    removes."""
    final_zip.unlink(missing_ok=True)
    if final.exists():
        os.replace(final, work / f".old-{final.name}")
    os.replace(folder, final)
    os.replace(zip_path, final_zip)


# --------------------------------------------------------------------------- the files

def _write_models(root: Path, source: BundleSource, model_bytes: bytes, vela_bytes: bytes) -> None:
    (root / "model").mkdir(parents=True)
    (root / "model" / tflite_name(source)).write_bytes(model_bytes)
    (root / "model" / vela_name(source)).write_bytes(vela_bytes)


def _check_prefix(prefix: str, option: str = "--c-prefix") -> None:
    if not isinstance(prefix, str) or not _C_IDENTIFIER.fullmatch(prefix):
        raise BundleError(f"option '{option}' = {str(prefix)[:40]!r} is not valid; expected a C identifier of at "
                          "most 40 characters (letters, digits and _, not starting with a digit)")


def _write_c_sources(root: Path, source: BundleSource, io, vela_bytes: bytes, ops: dict, arena: dict[str, Any],
                     prefix: str) -> None:
    """c/model_data.{c,h} (the Vela model as a C array), c/model_io.h (the I/O contract, compile-time),
    c/model_desc.c (the same as a const descriptor) and c/model_ops.{cc,h} (each model's op resolver)."""
    from sepipe import c_export, c_model_desc

    cfg = source.cfg
    (root / "c").mkdir()
    c_text, h_text = c_export.model_array_source(vela_bytes, symbol=prefix, section=C_SECTION, stem=C_STEM)
    (root / "c" / C_SOURCE).write_text(c_text)
    (root / "c" / C_HEADER).write_text(h_text)
    vela_sha = artifacts.sha256_file(root / "model" / vela_name(source))
    name = f"{cfg.name}_{source.variant}"
    (root / "c" / "model_io.h").write_text(c_export.model_io_header(io, cfg.features, name, tflite_sha256=vela_sha))
    cortex = arena["cortex_m"]
    best = cortex["cmsis_nn"]["recommended_bytes"] or cortex["reference"]["recommended_bytes"]
    (root / "c" / DESC_SOURCE).write_text(c_model_desc.model_descriptor_source(
        io, cfg.features, name, prefix, vela_sha, best, cortex["reference"]["recommended_bytes"],
        cfg.data.sample_rate))
    cc, h = c_model_desc.op_resolver_sources(prefix, [
        ("vela", f"model/{vela_name(source)} (the Vela model, model_data.c)", ops["vela"].op_types),
        ("cpu", f"model/{tflite_name(source)} (the model before Vela, on the CPU)", ops["cpu"].op_types)])
    (root / "c" / OPS_SOURCE).write_text(cc)
    (root / "c" / OPS_HEADER).write_text(h)


def _copy_vela_reports(root: Path, source: BundleSource) -> None:
    (root / "vela").mkdir()
    for path in (source.vela_summary_csv, *source.vela_extra):
        shutil.copyfile(path, root / "vela" / source.vela_copy_name(path))


def _write_golden(root: Path, model_bytes: bytes, io, audio: np.ndarray, audio_record: dict[str, Any],
                  cfg: ExperimentConfig, frames: int) -> dict[str, Any]:
    from sepipe import golden

    return golden.write_golden_vectors(model_bytes, audio, cfg.features, frames, root / "golden",
                                       source=", ".join(audio_record["files"]), contract=io.contract)


def _write_readme_manifest_and_sums(root: Path, manifest: dict[str, Any]) -> None:
    """README, then the manifest (hashing every file but itself and SHA256SUMS), then SHA256SUMS, which
    covers the manifest: each is written after every file it hashes."""
    text = readme_text(manifest)
    if "predictor" in manifest:
        from sepipe.bundle.predictor import readme_section

        text += readme_section(manifest["predictor"])
    (root / "README.md").write_text(text)
    manifest["files"] = _hashes(root, exclude={MANIFEST, SUMS})
    (root / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True, default=_json_default) + "\n")
    sums = _hashes(root, exclude={SUMS})
    artifacts.write_text(root / SUMS, "".join(f"{digest}  {rel}\n" for rel, digest in sums.items()))


# --------------------------------------------------------------------------- the manifest

def _manifest(source: BundleSource, io, vela_size: int, arena: dict[str, Any], frames: int,
              audio_record: dict[str, Any], golden_info: dict[str, Any], ops: dict, prefix: str) -> dict[str, Any]:
    """model_manifest.json, all but its `files` (the hashes are added once every file is written)."""
    cfg = source.cfg
    io_dtype = io.io_type or "mixed"   # 'mixed': each tensor its own type (tensors[].dtype)
    return {
        "format": BUNDLE_FORMAT,
        "source": _source_section(source),
        "model": _model_section(source, io_dtype, vela_size, prefix),
        "firmware": _firmware_section(source, ops, prefix),
        "tensors": {"inputs": [_tensor_entry(t) for t in io.inputs],
                    "outputs": [_tensor_entry(t) for t in io.outputs]},
        "state_pairs": _state_pairs(io),
        "contract": io.contract.to_dict(),
        "call_contract": _call_contract(cfg, io_dtype, io.contract.head.size),
        "features": feature_section(cfg.features, cfg.data.sample_rate),
        "tflm_arena": arena,
        "vela": {"summary_csv": f"vela/{source.vela_copy_name(source.vela_summary_csv)}",
                 "figures": _vela_figures(source.compiled)},
        "golden": {"folder": "golden", "frames": frames, "test_audio": audio_record,
                   "produced_by": "TFLite Micro Python interpreter (reference kernels) on the quantised model",
                   "description": golden_info},
        "tool_versions": artifacts.tool_versions(),
    }


def _source_section(source: BundleSource) -> dict[str, Any]:
    cfg = source.cfg
    return {"experiment": cfg.name, "variant": source.variant, "target": source.target,
            "target_id": source.target_id, "run": source.run_label,
            "tflite_sha256": artifacts.sha256_file(source.tflite),
            "scheme": _scheme_name(source), "model": source.model,
            "variant_config": source.variant_config,
            "calibration": {k: v for k, v in source.convert_summary.get("calibration", {}).items()
                            if k in ("files", "seed", "drawn_frames", "states_from")}}


def _scheme_name(source: BundleSource) -> str:
    """'mixed' for a variant with a precision mapping, else the experiment's scheme."""
    return "mixed" if source.cfg.precision_of(source.variant) is not None else source.cfg.convert.scheme_name


def _firmware_section(source: BundleSource, ops: dict, prefix: str) -> dict[str, Any]:
    """The model as one entry of a firmware image: its descriptor and op resolvers (sepipe.c_model_desc)."""
    return {
        "descriptor": {"source": f"c/{DESC_SOURCE}", "symbol": f"{prefix}_desc",
                       "header": "se_model_desc.h (firmware_stub/)", "c_prefix": prefix},
        "op_resolvers": {"source": f"c/{OPS_SOURCE}", "header": f"c/{OPS_HEADER}", **{
            role: {"function": f"{prefix}_{role}_op_resolver", "model": "model/" + name,
                   "op_types": list(ops[role].op_types), "operators": ops[role].counts}
            for role, name in (("vela", vela_name(source)), ("cpu", tflite_name(source)))}},
    }


def _model_section(source: BundleSource, io_dtype: str, vela_size: int, prefix: str) -> dict[str, Any]:
    return {
        "tflite": "model/" + tflite_name(source), "vela_tflite": "model/" + vela_name(source),
        "io_dtype": io_dtype, "scheme": _scheme_name(source),
        "c_array": {"source": f"c/{C_SOURCE}", "header": f"c/{C_HEADER}", "symbol": prefix,
                    "section": C_SECTION, "alignment": C_ALIGNMENT, "bytes": vela_size,
                    "holds": "model/" + vela_name(source)},
        "io_header": "c/model_io.h",
        "vela_io_matches_tflite": True,
    }


def _call_contract(cfg: ExperimentConfig, io_dtype: str, mask_values: int) -> dict[str, Any]:
    mask = ("mask: one gain per bin, dequantised" if gain.kind_of(mask_values, cfg.features.bins) == "real" else
            f"mask: a complex gain per bin, dequantised: values 0..{cfg.features.bins - 1} the real parts, "
            f"{cfg.features.bins}..{2 * cfg.features.bins - 1} the imaginary parts (SE_MASK_ELEMENTS)")
    return {
        "invokes": f"one Invoke per hop ({cfg.features.hop} samples, "
                   f"{1000.0 * cfg.features.hop / cfg.data.sample_rate:g} ms)",
        "inputs": "features (quantised) at its position; every state input holds the state from the "
                  "previous Invoke (zero_point, i.e. quantised 0.0, before the first)",
        "outputs": f"{mask}; every state output copied back to its input by the state_pairs rule before the "
                   "next Invoke",
        "quantize": QUANTIZE_FORMULA, "dequantize": DEQUANTIZE_FORMULA,
        "qmin_qmax": (_qmin_qmax(io_dtype) if io_dtype != "mixed" else
                      "per tensor: its dtype's range (int8 -128..127, int16 -32768..32767)"),
        "initial_state": "every state input set to its zero_point",
    }


def _qmin_qmax(dtype: str) -> list[int]:
    info = np.iinfo(np.dtype(dtype))
    return [int(info.min), int(info.max)]


def feature_section(features: FeatureConfig, sample_rate: int) -> dict[str, Any]:
    return {
        "sample_rate": sample_rate, "fft_size": features.fft_size, "hop": features.hop, "bins": features.bins,
        "hop_ms": 1000.0 * features.hop / sample_rate,
        "window": "periodic sqrt-Hann: w[n] = sqrt(0.5 - 0.5 cos(2 pi n / fft_size)), n = 0 .. fft_size-1",
        "compression": "ln(|X|^2 + log_floor)", "log_floor": features.log_floor,
        "frame_alignment": (f"frame t covers input samples [t*hop - hop, t*hop + hop): the stream starts with "
                            f"{features.hop} zeros (hop zeros first), then each frame is windowed and real-FFT'd"),
        "synthesis": ("X * mask per bin (a real or complex gain: sepipe.gain), inverse real FFT, the same window, "
                      "overlap-add at 50 % (one hop of latency)"),
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


def _vela_figures(compiled: CompileRecord) -> dict[str, Any]:
    """The target's columns, Vela's figures and the Vela version (no run-specific paths or timings)."""
    return {**compiled.target_columns, **compiled.figures.to_record(), "vela_version": compiled.vela_version}


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


# --------------------------------------------------------------------------- Vela I/O check

def _check_vela_io(vela_bytes: bytes, io, vela_path: Path) -> None:
    """The Vela model must keep the quantised model's input/output order, shapes, types and quantisation."""
    from ethosu.vela.tflite.Model import Model

    subgraph = Model.GetRootAs(vela_bytes, 0).Subgraphs(0)
    for side, tensors, indices in (("input", io.inputs, subgraph.InputsAsNumpy()),
                                   ("output", io.outputs, subgraph.OutputsAsNumpy())):
        if len(indices) != len(tensors):
            raise BundleError(f"{vela_path}: has {len(indices)} {side}s, the model before Vela {len(tensors)}")
        for tensor, index in zip(tensors, indices):
            got = _describe_vela_tensor(subgraph, index)
            want = (list(tensor.shape), tensor.dtype, np.float32(tensor.scale), tensor.zero_point)
            if got[0] != want[0] or got[1] != want[1] or got[2] != want[2] or got[3] != want[3]:
                raise BundleError(f"{vela_path}: {side} {tensor.position} ('{tensor.name}') is {got}, the "
                                  f"model before Vela has {want}; firmware could not use that model's contract")


def _describe_vela_tensor(subgraph, index) -> tuple:
    """(shape, dtype name, scale (float32), zero point) of tensor `index` of a Vela model's subgraph."""
    from ethosu.vela.tflite.TensorType import TensorType

    types = {value: key.lower() for key, value in vars(TensorType).items() if not key.startswith("_")}
    tensor = subgraph.Tensors(int(index))
    quant = tensor.Quantization()
    scale = float(quant.ScaleAsNumpy()[0]) if quant is not None and quant.ScaleLength() else 0.0
    zero = int(quant.ZeroPointAsNumpy()[0]) if quant is not None and quant.ZeroPointLength() else 0
    return [int(d) for d in tensor.ShapeAsNumpy()], types.get(tensor.Type()), np.float32(scale), zero


# --------------------------------------------------------------------------- hashes, folder, zip

def _files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def _hashes(root: Path, exclude: set[str]) -> dict[str, str]:
    return {rel: artifacts.sha256_file(root / rel) for rel in _files(root) if rel not in exclude}


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
