"""Golden vectors of an enhancer + quality predictor pair: what firmware_stub's two-model image must reproduce.

`write_pair_golden` writes one folder:

    c/            the enhancer's model_io.h, model_desc.c, model_data.{c,h} (prefix `se_enh` by default) and the
                  predictor's quality_desc.c, quality_data.{c,h} (`se_qp`): the two models of the image
    enhancer/     sepipe.golden.write_golden_vectors of the enhancer over `frames` hops of `audio`; its
                  audio_out.f32 is the enhanced audio (aligned with the input) the predictor listens to
    quality/
      logmel.f32       float32 (F, mels): clips.log_mel of the enhanced audio, F = its whole frames
      in_windows.bin   int8 (W, frames, mels): the predictor's input at each prediction, window j = frames
                       j*stride .. j*stride + frames - 1 of the log-mel, normalised as in training
                       ((x - feature_mean) / feature_std, float32) and quantised with the input's scale and
                       zero point (sepipe.runtime.arith.quantize: C's roundf)
      out_scores.bin   int8 (W, targets): what the TFLite interpreter returned for each window
      scores.f32       float32 (W, targets): the scores, float32(dequantised) * target_std + target_mean,
                       each step one float32 operation (what se_quality.c computes)
      quality.json     the settings, the files and the tolerance (written last)

The C test (firmware_stub/quality_test.c, `make quality-test`) runs the enhancer's frame loop on the replayed
enhancer outputs, feeds its output to se_quality.c and must reproduce in_windows.bin within WINDOW_LSB
(the float32 FFT, the mel sums' order and the log differ from numpy's by a few ulp: a value next to a
rounding boundary moves by one step) and, replaying out_scores.bin, scores.f32 exactly.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Callable

import numpy as np

from sepipe.artifacts import write_bytes, write_json, write_text
from sepipe.quality_predictor.firmware import PredictorMeta, tensor_io, write_quality_c

FORMAT = 1
WINDOW_LSB = 1          # the C window may differ from Python's by this many steps per value


def _le(array: np.ndarray, dtype) -> bytes:
    return np.ascontiguousarray(array, dtype=np.dtype(dtype).newbyteorder("<")).tobytes()


def quantized_windows(enhanced: np.ndarray, meta: PredictorMeta, io: dict, stride: int) -> tuple[np.ndarray, ...]:
    """(log-mel float32 (F, mels), window starts, int8 windows (W, frames, mels)) of the enhanced audio."""
    from sepipe.quality_predictor.clips import log_mel
    from sepipe.runtime.arith import quantize

    logmel = log_mel(np.asarray(enhanced, dtype=np.float32), meta.mels)
    starts = list(range(0, len(logmel) - meta.frames + 1, stride))
    if not starts:
        raise ValueError(f"the enhanced audio gives {len(logmel)} log-mel frames; one window needs {meta.frames} "
                         f"(give more frames of audio)")
    normalised = (logmel - np.float32(meta.feature_mean)) / np.float32(meta.feature_std)
    q = quantize(normalised, io["input"]["scale"], io["input"]["zero_point"], np.int8)
    return logmel, np.array(starts), np.stack([q[s:s + meta.frames] for s in starts])


def predictor_outputs(tflite_bytes: bytes, windows: np.ndarray, shape: list[int]) -> np.ndarray:
    """The int8 outputs of the TFLite interpreter (its built-in kernels, no delegate) for each int8 window."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interp = Interpreter(model_content=bytes(tflite_bytes), num_threads=1,
                         experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    interp.allocate_tensors()
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    rows = []
    for window in windows:
        interp.set_tensor(inp["index"], window.reshape(shape).astype(np.int8))
        interp.invoke()
        rows.append(interp.get_tensor(out["index"]).reshape(-1).copy())
    return np.stack(rows).astype(np.int8)


def scores_of(q: np.ndarray, meta: PredictorMeta, io: dict) -> np.ndarray:
    """float32(q - zero point) * scale, then * target_std + target_mean: one float32 operation a step."""
    from sepipe.runtime.arith import dequantize

    y = dequantize(q, io["output"]["scale"], io["output"]["zero_point"])
    scaled = y * np.asarray(meta.target_std, dtype=np.float32)
    return (scaled + np.asarray(meta.target_mean, dtype=np.float32)).astype(np.float32)


def write_enhancer_c(enhancer_tflite: bytes, out_dir: Path, prefix: str, arena: dict | None,
                     model_bytes: bytes | None = None, name: str = "enhancer") -> None:
    """The enhancer's model_io.h, model_desc.c and model_data.{c,h} (as a bundle's c/ holds them)."""
    from sepipe import c_export, c_model_desc
    from sepipe.config import FeatureConfig
    from sepipe.metrics import SAMPLE_RATE
    from sepipe.quantize.model_io import tflite_io

    data = bytes(model_bytes if model_bytes is not None else enhancer_tflite)
    sha = hashlib.sha256(data).hexdigest()
    io, features, arena = tflite_io(bytes(enhancer_tflite)), FeatureConfig(), arena or {}
    source, header = c_export.model_array_source(data, symbol=prefix, stem="model_data")
    write_text(out_dir / "model_data.c", source)
    write_text(out_dir / "model_data.h", header)
    write_text(out_dir / "model_io.h", c_export.model_io_header(io, features, name, tflite_sha256=sha))
    best = int(arena.get("recommended_bytes", 0))
    write_text(out_dir / "model_desc.c", c_model_desc.model_descriptor_source(
        io, features, name, prefix, sha, best, best, SAMPLE_RATE))


def write_pair_golden(enhancer_tflite: bytes, predictor_tflite: bytes, meta: PredictorMeta, audio: np.ndarray,
                      frames: int, out_dir: Path, stride: int | None = None, arenas: dict | None = None,
                      prefixes: tuple[str, str] = ("se_enh", "se_qp"), enhancer_name: str = "enhancer") -> dict:
    """Write the pair's folder (module docstring); returns quality.json's dict. `stride`: log-mel frames
    between predictions (default meta.frames, back-to-back windows); `arenas`: {'enhancer': ..., 'predictor':
    ...} TFLM arena measurements for the descriptors."""
    from sepipe.config import FeatureConfig
    from sepipe.golden import write_golden_vectors

    out_dir, stride, arenas = Path(out_dir), int(stride or meta.frames), arenas or {}
    if stride < 1:
        raise ValueError(f"stride must be at least 1 frame, got {stride}")
    write_enhancer_c(enhancer_tflite, out_dir / "c", prefixes[0], arenas.get("enhancer"), name=enhancer_name)
    write_quality_c(meta, predictor_tflite, out_dir / "c", prefixes[1], arenas.get("predictor"))
    write_golden_vectors(enhancer_tflite, audio, FeatureConfig(), frames, out_dir / "enhancer", source=enhancer_name)
    enhanced = np.fromfile(out_dir / "enhancer" / "audio_out.f32", dtype="<f4")
    io = tensor_io(predictor_tflite)
    return write_quality_golden(out_dir / "quality", meta, io, enhanced, stride,
                                lambda windows: predictor_outputs(predictor_tflite, windows, io["input"]["shape"]),
                                {"enhancer": enhancer_name})


def write_quality_golden(folder: Path, meta: PredictorMeta, io: dict, enhanced: np.ndarray, stride: int,
                         outputs: Callable[[np.ndarray], np.ndarray], extra: dict) -> dict:
    """The `quality/` files (module docstring) of the predictor listening to `enhanced`: its windows every
    `stride` log-mel frames, `outputs(windows)` (the int8 outputs of an interpreter), the scores, and
    quality.json (the settings and `extra`, written last); returns quality.json's dict."""
    logmel, starts, windows = quantized_windows(enhanced, meta, io, stride)
    out_q = outputs(windows)
    scores = scores_of(out_q, meta, io)
    write_bytes(folder / "logmel.f32", _le(logmel, "float32"))
    write_bytes(folder / "in_windows.bin", _le(windows, "int8"))
    write_bytes(folder / "out_scores.bin", _le(out_q, "int8"))
    write_bytes(folder / "scores.f32", _le(scores, "float32"))
    golden = {"format": FORMAT, "predictor": meta.name, "frames": meta.frames,
              "mels": meta.mels, "stride": stride, "windows": int(len(starts)), "window_starts": starts.tolist(),
              "logmel_frames": int(len(logmel)), "targets": list(meta.targets), "window_lsb_tolerance": WINDOW_LSB,
              "input": io["input"], "output": io["output"],
              "feature_mean": meta.feature_mean, "feature_std": meta.feature_std,
              "target_mean": list(meta.target_mean), "target_std": list(meta.target_std),
              "scores": scores.tolist(), **extra}
    write_json(folder / "quality.json", golden)
    return golden


def write_pair_from_run(cfg, variant: str, enhancer: Path, audio_path: Path, out_dir: Path,
                        frames: int | None = None, stride: int | None = None, measure_arena: bool = True) -> dict:
    """`sepipe predictor firmware`: the pair's folder for `variant` of the predictor run `cfg` and an enhancer
    .tflite, over a 16 kHz WAV (all its whole hops unless `frames`). User errors are one-line PipelineErrors."""
    from sepipe.audio import read_wav
    from sepipe.errors import ConfigError, InputFileError
    from sepipe.metrics import SAMPLE_RATE
    from sepipe.quality_predictor.firmware import meta_from_run
    from sepipe.quality_predictor.stages import PredictorPaths

    if variant not in cfg.predictor.variants:
        raise ConfigError("--variant", "variant", variant, f"one of the experiment's variants {list(cfg.predictor.variants)}")
    enhancer = Path(enhancer)
    if not enhancer.is_file():
        raise InputFileError(enhancer, "file not found; give the enhancer's int8 .tflite (e.g. runs/<exp>/<exp>_ptq.tflite)")
    meta = meta_from_run(cfg, variant)
    stride = meta.frames if stride is None else int(stride)
    if stride < 1:
        raise ConfigError("--stride", "stride", stride, "a number of log-mel frames of at least 1")
    audio = read_wav(audio_path, SAMPLE_RATE)
    hops, need = len(audio) // 256, meta.frames + 2      # the enhancer's output lags a hop; a frame needs two hops
    frames = hops if frames is None else int(frames)
    if frames < need or frames > hops:
        what = f"{hops} hops ({len(audio) / SAMPLE_RATE:.2f} s)"
        raise (InputFileError(audio_path, f"holds {what}; one predictor window needs {need} hops "
                                          f"({need * 256 / SAMPLE_RATE:.2f} s)") if hops < need else
               ConfigError("--frames", "frames", frames, f"{need} to {hops} (hops of {audio_path})"))
    predictor = PredictorPaths(cfg).tflite(variant).read_bytes()
    arenas = None
    if measure_arena:
        from sepipe.bundle.arena import measure_tflm_arena
        from sepipe.engine.records import read_record

        arenas = {"enhancer": measure_tflm_arena(enhancer.read_bytes()),
                  "predictor": read_record(cfg.run_dir, f"convert:{variant}")["summary"]["tflm_arena"]}
    golden = write_pair_golden(enhancer.read_bytes(), predictor, meta, audio, frames, out_dir, stride, arenas,
                               enhancer_name=enhancer.stem)
    return {**golden, "arenas": arenas}
