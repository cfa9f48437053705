"""The quality predictor in the hand-off bundle: the second model of the two-model image (issue 17).

`sepipe bundle RUN --target T --predictor PRUN --predictor-variant V` adds to the enhancer's bundle:

    predictor/<pname>.tflite                  the predictor's int8 model (reference kernels; the golden source)
    predictor/<pname>_vela_<target>.tflite    its Vela model for the enhancer's target: what the image runs
    predictor/vela/                           Vela's summary CSV, per-layer CSV and operator placement
    predictor/golden/                         logmel.f32, in_windows.bin, out_scores.bin, scores.f32, quality.json
                                              (sepipe.quality_predictor.firmware_golden's layout): the predictor's
                                              windows of the enhancer's golden/audio_out.f32, its int8 outputs in
                                              TFLite Micro, and the scores
    c/quality_data.c, c/quality_data.h        the Vela model as a 16-byte aligned C array (`<prefix>[]`)
    c/quality_desc.c                          `const se_quality_desc_t <prefix>_desc` (firmware_stub/se_quality_desc.h:
                                              log-mel framing and filters, input quantisation, score de-normalisation)
    c/quality_ops.cc, c/quality_ops.h         its TFLite Micro op resolvers (Vela model; int8 model on the CPU)

and a `predictor` section to model_manifest.json (every file is hashed with the rest of the bundle). Its golden
folder is the one firmware_stub's quality test reads, so `make -C firmware_stub quality-test MODEL_IO=B/c
GOLDEN=B/golden QUALITY_GOLDEN=B/predictor/golden` runs the enhancer and the predictor of bundle B in one image.

The windows are Python's (clips.log_mel of the enhanced audio, normalised, quantised with C's roundf); the
outputs TFLite Micro's (reference kernels, the predictor's measured arena), so verify-bundle re-runs them bit
for bit; the scores are float32(dequantised) * target_std + target_mean, one float32 operation a step.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np

from sepipe import artifacts
from sepipe.bundle.predictor_source import PredictorSource

FOLDER = "predictor"
C_PREFIX = "se_qp"
OUTPUT_LSB = 0            # verify-bundle: the int8 outputs re-run in TFLite Micro equal the golden ones exactly
_DESC, _DATA, _OPS = "quality_desc.c", "quality_data", "quality_ops"


def min_frames(source: PredictorSource) -> int:
    """Enhancer hops the golden vectors need for one predictor window: frames log-mel frames of 512 samples
    every 256 take frames + 1 hops."""
    return source.meta.frames + 1


def checked_source(predictor: tuple, target: str, frames: int, prefix: str, predictor_prefix: str) -> PredictorSource:
    """The predictor's checked source (sepipe.bundle.predictor_source), before anything is built."""
    from sepipe.bundle.build import _check_prefix
    from sepipe.bundle.predictor_source import find_predictor
    from sepipe.errors import ConfigError

    _check_prefix(predictor_prefix, "--predictor-c-prefix")
    if predictor_prefix == prefix:
        raise ConfigError("command line", "--predictor-c-prefix", predictor_prefix, f"a C prefix other than the "
                                                                                   f"enhancer's ('{prefix}')")
    found = find_predictor(predictor[0], predictor[1], target)
    if frames < min_frames(found):
        raise ConfigError("command line", "--frames", frames, f"at least {min_frames(found)} with --predictor "
                                                              f"(one window of {found.meta.frames} log-mel frames)")
    return found


def write_predictor(root: Path, source: PredictorSource, prefix: str, enhancer_arena: dict[str, Any]) -> dict:
    """Write the predictor's files into the bundle folder `root` (whose golden/audio_out.f32 is already written);
    returns the manifest's `predictor` section."""
    from sepipe.bundle.model_ops import read_model_ops
    from sepipe.deploy.tflite_info import read_tflite_bytes
    from sepipe.quality_predictor.firmware import tensor_io

    model = read_tflite_bytes(source.tflite)
    vela = read_tflite_bytes(source.vela_tflite)
    io = tensor_io(model)
    _check_vela_io(vela, io, source.vela_tflite)
    folder = root / FOLDER
    (folder / "vela").mkdir(parents=True)
    artifacts.write_bytes(folder / f"{source.name}.tflite", model)
    artifacts.write_bytes(folder / source.vela_name, vela)
    for path in (source.vela_summary_csv, *source.vela_extra):
        shutil.copyfile(path, folder / "vela" / source.vela_copy_name(path))
    ops = {"vela": read_model_ops(vela, source.vela_tflite), "cpu": read_model_ops(model, source.tflite)}
    arena = _arena_section(source, ops["cpu"], enhancer_arena)
    _write_c(root, source, model, vela, ops, prefix)
    golden = _write_golden(folder / "golden", source, model, io, root / "golden" / "audio_out.f32",
                           arena["reference_kernels"]["recommended_bytes"])
    return _section(source, io, prefix, ops, arena, golden, len(vela))


def _check_vela_io(vela: bytes, io: dict, path: Path) -> None:
    """The Vela model must keep the int8 model's input and output (shape, type, quantisation)."""
    from ethosu.vela.tflite.Model import Model

    from sepipe.bundle.build import _describe_vela_tensor
    from sepipe.bundle.source import BundleError

    graph = Model.GetRootAs(vela, 0).Subgraphs(0)
    for role, index in (("input", graph.InputsAsNumpy()), ("output", graph.OutputsAsNumpy())):
        want = io[role]
        got = _describe_vela_tensor(graph, index[0]) if len(index) == 1 else None
        if got is None or (got[0], got[1], got[2], got[3]) != (want["shape"], "int8", np.float32(want["scale"]),
                                                               want["zero_point"]):
            raise BundleError(f"{path}: its {role} is {got}, the predictor's int8 model has {want['shape']} int8 "
                              f"(scale {want['scale']}, zero point {want['zero_point']}); firmware could not use it")


def _write_c(root: Path, source: PredictorSource, model: bytes, vela: bytes, ops: dict, prefix: str) -> None:
    from sepipe import c_model_desc
    from sepipe.quality_predictor.firmware import write_quality_c

    arena = source.convert.get("tflm_arena") or {}
    write_quality_c(source.meta, model, root / "c", prefix, arena=arena, model_bytes=vela)
    cc, h = c_model_desc.op_resolver_sources(prefix, [
        ("vela", f"{FOLDER}/{source.vela_name} (the Vela model, {_DATA}.c)", ops["vela"].op_types),
        ("cpu", f"{FOLDER}/{source.name}.tflite (the model before Vela, on the CPU)", ops["cpu"].op_types)],
        stem=_OPS)
    artifacts.write_text(root / "c" / f"{_OPS}.cc", cc)
    artifacts.write_text(root / "c" / f"{_OPS}.h", h)


def tflm_outputs(model: bytes, windows: np.ndarray, arena: int) -> np.ndarray:
    """The int8 outputs of TFLite Micro (reference kernels) for each int8 window, with `arena` bytes."""
    from tflite_micro.python.tflite_micro import runtime

    interp = runtime.Interpreter.from_bytes(bytes(model), arena_size=int(arena))
    shape = [int(v) for v in interp.get_input_details(0)["shape"]]
    rows = []
    for window in windows:
        interp.set_input(np.asarray(window, dtype=np.int8).reshape(shape), 0)
        interp.invoke()
        rows.append(np.asarray(interp.get_output(0)).reshape(-1).copy())
    return np.stack(rows).astype(np.int8)


def _write_golden(folder: Path, source: PredictorSource, model: bytes, io: dict, audio_path: Path,
                  arena: int) -> dict:
    """firmware_golden's quality folder over the bundle's enhanced audio, one window every window, with TFLite
    Micro's outputs (what verify-bundle re-runs)."""
    from sepipe.quality_predictor.firmware_golden import write_quality_golden

    enhanced = np.fromfile(audio_path, dtype="<f4")
    return write_quality_golden(
        folder, source.meta, io, enhanced, source.meta.frames, lambda windows: tflm_outputs(model, windows, arena),
        {"enhancer": "golden/audio_out.f32 (this bundle's enhancer)", "output_lsb_tolerance": OUTPUT_LSB,
         "produced_by": f"TFLite Micro Python interpreter (reference kernels, arena {arena} bytes) on "
                        f"{FOLDER}/{source.name}.tflite"})


def _arena_section(source: PredictorSource, ops, enhancer: dict[str, Any]) -> dict[str, Any]:
    """The predictor's arena (measured when it was converted), per kernel set, and the shared-arena figure."""
    from sepipe.bundle.arena import ARENA_HEADROOM, ARENA_ROUND
    from sepipe.bundle.kernel_arena import kernel_set_arenas

    measured = dict(source.convert.get("tflm_arena") or {})
    reference = {"model": f"{FOLDER}/{source.name}.tflite", **measured,
                 "method": "measured by the predictor's convert stage with sepipe.bundle.arena.measure_tflm_arena "
                           "(the enhancer's method: TFLite Micro's Python interpreter, reference kernels, 64-bit host)"}
    cortex = kernel_set_arenas(measured["measured_min_bytes"], ops, ARENA_HEADROOM, ARENA_ROUND)
    sram = int(round(float(source.compiled.get("sram_memory_used_kib") or 0) * 1024))
    vela = {"model": f"{FOLDER}/{source.vela_name}", "measured": False, "sram_memory_used_bytes": sram,
            "memory_mode": source.compiled.get("memory_mode"),
            "why_not_measured": "no interpreter here runs the 'ethos-u' operator; measure "
                                "MicroInterpreter::arena_used_bytes() on the device"}
    return {"reference_kernels": reference, "cortex_m": cortex, "vela_model": vela,
            "shared": shared_arena(enhancer, measured)}


def shared_arena(enhancer: dict[str, Any], predictor: dict[str, Any]) -> dict[str, Any]:
    """Two arenas against one: the models run one after the other and neither keeps activations across the
    other's invoke, so one buffer can hold both non-persistent heads, each persistent tail apart
    (firmware_stub/README.md, "The quality predictor after the enhancer")."""
    keys = ("recorded_head_bytes", "recorded_tail_bytes")
    known = all(isinstance(m.get(k), int) for m in (enhancer, predictor) for k in keys)
    section = {
        "arrangement": "one non-persistent buffer of max(head) shared by both models, each model's persistent tail "
                       "in its own buffer: TFLite Micro's MicroAllocator::Create(persistent, size, non_persistent, "
                       "size, planner), one allocator per model (not wired in firmware_stub/se_model_tflm.cc)",
        "kernels": "reference kernels, 64-bit host (TFLite Micro's Python interpreter): an upper bound for them "
                   "on a 32-bit Cortex-M",
        "not_known": ["the CMSIS-NN figures: the predictor's CONV_2D / pooling kernels take scratch buffers the "
                      "kernel_arena rule does not model (cortex_m.cmsis_nn.derived is false)",
                      "the Vela models' arenas: Vela's scratch (vela_model.sram_memory_used_bytes) lives in the "
                      "arena in a Shared_Sram memory mode; no interpreter here runs the ethos-u operator",
                      "the split on the device: measure arena_used_bytes() per model there"],
    }
    if not known:
        return {**section, "derived": False, "why_not": "a head / tail split is missing from a measurement"}
    heads = [enhancer["recorded_head_bytes"], predictor["recorded_head_bytes"]]
    tails = [enhancer["recorded_tail_bytes"], predictor["recorded_tail_bytes"]]
    separate = int(enhancer["measured_min_bytes"] + predictor["measured_min_bytes"])
    shared = int(max(heads) + sum(tails))
    return {**section, "derived": True, "enhancer_head_bytes": heads[0], "enhancer_tail_bytes": tails[0],
            "predictor_head_bytes": heads[1], "predictor_tail_bytes": tails[1],
            "separate_arenas_bytes": separate, "shared_head_bytes": shared, "saved_bytes": separate - shared,
            "formula": "shared = max(enhancer head, predictor head) + enhancer tail + predictor tail"}


def _section(source: PredictorSource, io: dict, prefix: str, ops: dict, arena: dict, golden: dict,
             vela_size: int) -> dict[str, Any]:
    from sepipe.bundle.build import _vela_figures
    from sepipe.deploy.figures import CompileRecord

    meta, rel = source.meta, f"{FOLDER}/{source.name}.tflite"
    return {
        "source": {"run": source.run_label, "experiment": source.cfg.name, "variant": source.variant,
                   "target": source.target, "target_id": source.target_id,
                   "tflite_sha256": artifacts.sha256_file(source.tflite)},
        "model": {"tflite": rel, "vela_tflite": f"{FOLDER}/{source.vela_name}", "io_dtype": "int8",
                  "c_array": {"source": f"c/{_DATA}.c", "header": f"c/{_DATA}.h", "symbol": prefix,
                              "section": "nn_model", "alignment": 16, "bytes": vela_size,
                              "holds": f"{FOLDER}/{source.vela_name}"}},
        "firmware": {"descriptor": {"source": f"c/{_DESC}", "symbol": f"{prefix}_desc",
                                    "header": "se_quality_desc.h (firmware_stub/)", "c_prefix": prefix},
                     "op_resolvers": {"source": f"c/{_OPS}.cc", "header": f"c/{_OPS}.h", **{
                         role: {"function": f"{prefix}_{role}_op_resolver", "op_types": list(ops[role].op_types),
                                "operators": ops[role].counts} for role in ("vela", "cpu")}},
                     "runs": "after the enhancer, one se_quality_push per enhanced hop (firmware_stub/se_quality.c)"},
        "tensors": {"input": io["input"], "output": io["output"]},
        "features": {"sample_rate": meta.sample_rate, "fft_size": 512, "hop": 256, "log_floor": 1e-6,
                     "window": "periodic Hann, float32 of numpy's float64 (the descriptor's table)",
                     "mels": meta.mels, "mel_scale": "HTK, 0 Hz to sample_rate / 2, unit-peak triangles",
                     "frames": meta.frames, "window_seconds": round((512 + 256 * (meta.frames - 1)) / meta.sample_rate, 4),
                     "stride_frames": meta.frames, "feature_mean": meta.feature_mean, "feature_std": meta.feature_std,
                     "input": "q = clamp(roundf(((ln_mel - feature_mean) / feature_std) / scale) + zero_point)",
                     "reference": "pipeline/quality_predictor/clips.py (log_mel)"},
        "scores": {"targets": list(meta.targets), "target_mean": list(meta.target_mean),
                   "target_std": list(meta.target_std),
                   "formula": "score = float32(q - zero_point) * scale * target_std + target_mean, each step float32"},
        "tflm_arena": arena,
        "vela": {"summary_csv": f"{FOLDER}/vela/{source.vela_copy_name(source.vela_summary_csv)}",
                 "figures": _vela_figures(CompileRecord.from_record(
                     source.compiled, f"predictor compile:{source.variant} for {source.target}"))},
        "golden": {"folder": f"{FOLDER}/golden", "audio": "golden/audio_out.f32", "windows": golden["windows"],
                   "stride": golden["stride"], "window_lsb_tolerance": golden["window_lsb_tolerance"],
                   "output_lsb_tolerance": OUTPUT_LSB, "scores": "bit for bit from out_scores.bin",
                   "produced_by": golden["produced_by"]},
    }


def readme_section(p: dict[str, Any]) -> str:
    """The README's paragraph on the predictor (the manifest's `predictor` section is the contract)."""
    src, feats, arena, golden = p["source"], p["features"], p["tflm_arena"], p["golden"]
    shared = arena["shared"]
    lines = [
        "", f"## The quality predictor: {src['experiment']} / {src['variant']} (the image's second model)", "",
        f"`{p['model']['vela_tflite']}` (Vela, {src['target']}; C array `{p['model']['c_array']['symbol']}` in "
        f"`{p['model']['c_array']['source']}`) and its descriptor `{p['firmware']['descriptor']['symbol']}` "
        f"(`{p['firmware']['descriptor']['source']}`, firmware_stub/se_quality_desc.h). It runs after the enhancer "
        f"on the enhanced audio: {feats['mels']} log-mels of 512-sample Hann frames every 256 samples, a window of "
        f"{feats['frames']} frames ({feats['window_seconds']} s), int8 in, {len(p['scores']['targets'])} int8 "
        f"scores out ({', '.join(p['scores']['targets'])}): {p['scores']['formula']}.", "",
        f"TFLite Micro arena (reference kernels, 64-bit host): {arena['reference_kernels']['measured_min_bytes']} "
        f"bytes measured, {arena['reference_kernels']['recommended_bytes']} recommended; CMSIS-NN: "
        f"{arena['cortex_m']['cmsis_nn']['recommended_bytes'] or 'not derived (convolution buffers)'}.",
    ]
    if shared.get("derived"):
        lines.append(f"Two arenas: {shared['separate_arenas_bytes']} bytes; one shared non-persistent head: "
                     f"{shared['shared_head_bytes']} bytes ({shared['formula']}).")
    lines += ["", f"Golden vectors: `{golden['folder']}/` ({golden['windows']} windows of `{golden['audio']}`); "
              f"check the two-model image with `make -C firmware_stub quality-test MODEL_IO=$B/c GOLDEN=$B/golden "
              f"QUALITY_GOLDEN=$B/{golden['folder']}` ($B: this folder's absolute path; windows within {golden['window_lsb_tolerance']} step, scores "
              "bit for bit).", ""]
    return "\n".join(lines)
