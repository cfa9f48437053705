"""The quality predictor as one model of a firmware image, after the enhancer (firmware_stub/se_quality.c).

`quality_descriptor_source` writes `quality_desc.c`: a `const se_quality_desc_t <prefix>_desc`
(firmware_stub/se_quality_desc.h) holding what the C feature stage and the model call need: the framing
(512-point periodic Hann every 256 samples), the mel filters as sparse const tables (clips.mel_filters'
float32 weights, written as hex floats: exactly Python's), the feature normalisation of training
(train.load_data), the input and output quantisation, the window (frames x mels), the targets in the
config's order with the label normalisation that turns the int8 outputs back into scores, and the TFLite
Micro arena of the model split into its non-persistent head and persistent tail (how an image shares one
arena between the enhancer and the predictor: firmware_stub/README.md, "The quality predictor").

The window table is written by Python too (float32 of numpy's float64 Hann, as clips.log_mel computes it),
so the C features differ from Python's only by the float32 FFT, the summation order of the mel sums and the
log (quality_golden.py states the tolerance).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sepipe.c_export import c_float_hex, c_int, c_string
from sepipe.errors import MissingArtifactError

FORMAT = 1
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class PredictorMeta:
    """What firmware needs of a trained predictor beyond its .tflite."""

    name: str
    targets: tuple[str, ...]
    mels: int
    frames: int
    feature_mean: float
    feature_std: float
    target_mean: tuple[float, ...]
    target_std: tuple[float, ...]
    sample_rate: int = 16000


def meta_from_run(cfg, variant: str) -> PredictorMeta:
    """The meta of `variant` of a predictor run: the feature normalisation its convert record holds and the
    label normalisation of the training split (train.load_data's, recomputed from the cached labels)."""
    from sepipe.engine.records import read_record
    from sepipe.quality_predictor.clips import frames_per_clip
    from sepipe.quality_predictor.labels import label_paths

    record = read_record(cfg.run_dir, f"convert:{variant}")
    paths = label_paths(cfg.run_dir)
    if record is None or not paths["labels"].is_file():
        raise MissingArtifactError(cfg.run_dir / "records" / f"convert.{variant}.json",
                                   f"make it with: sepipe predictor run <experiment.yaml> --until convert:{variant}")
    with np.load(paths["clips"]) as clips, np.load(paths["labels"]) as labels:
        train = clips["split"] == "train"
        scores = np.stack([labels[t] for t in cfg.predictor.targets], axis=1)[train]
    summary = record["summary"]
    return PredictorMeta(f"{cfg.name}_{variant}", tuple(cfg.predictor.targets), cfg.predictor.mels,
                         frames_per_clip(cfg.clips.seconds), float(summary["feature_mean"]),
                         float(summary["feature_std"]), tuple(float(v) for v in scores.mean(axis=0)),
                         tuple(float(v) for v in scores.std(axis=0) + 1e-6))


def hann_window(fft_size: int = 512) -> np.ndarray:
    """The predictor's analysis window exactly as clips.log_mel computes it (float32)."""
    return (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(fft_size) / fft_size)).astype(np.float32)


def mel_bands(mels: int) -> tuple[list[tuple[int, int, int]], np.ndarray]:
    """([(first_bin, count, offset)] per filter, the concatenated non-zero weights): clips.mel_filters in
    sparse form (a triangle is non-zero on one run of bins; the zeros add nothing to the sum)."""
    from sepipe.quality_predictor.clips import mel_filters

    filters = mel_filters(mels)
    bands, weights = [], []
    for m in range(mels):
        nonzero = np.flatnonzero(filters[:, m])
        first, last = (int(nonzero[0]), int(nonzero[-1])) if nonzero.size else (0, -1)
        bands.append((first, last - first + 1, sum(len(w) for w in weights)))
        weights.append(filters[first:last + 1, m])
    return bands, np.concatenate(weights).astype(np.float32)


def tensor_io(tflite_bytes: bytes) -> dict[str, dict]:
    """{'input': ..., 'output': ...}: name, elements, scale, zero point of the predictor's one input and one
    output (an int8 model, as convert:<v> writes)."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interp = Interpreter(model_content=bytes(tflite_bytes),   # details only: no XNNPACK delegate (nor its log line)
                         experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    out = {}
    for role, details in (("input", interp.get_input_details()), ("output", interp.get_output_details())):
        if len(details) != 1 or details[0]["dtype"] != np.int8:
            raise ValueError(f"the quality predictor must have one int8 {role}; it has "
                             f"{[str(d['dtype']) for d in details]}")
        d = details[0]
        scale, zero_point = d["quantization"]
        out[role] = {"name": d["name"], "elements": int(np.prod(d["shape"])), "scale": float(scale),
                     "zero_point": int(zero_point), "shape": [int(v) for v in d["shape"]]}
    return out


def _float_rows(values, per_row: int = 6) -> list[str]:
    literals = [c_float_hex(v) for v in np.asarray(values, dtype=np.float32).ravel()]
    return ["    " + ", ".join(literals[i:i + per_row]) + "," for i in range(0, len(literals), per_row)]


def quality_descriptor_source(meta: PredictorMeta, tflite_bytes: bytes, prefix: str,
                              arena: dict | None = None, model_bytes: bytes | None = None) -> str:
    """`quality_desc.c` (see the module docstring). `model_bytes`: what the image holds (`<prefix>[]`, e.g. the
    Vela model; default the .tflite); `arena`: the TFLM arena measurement (sepipe.bundle.arena's dict)."""
    if not _IDENTIFIER.match(prefix):
        raise ValueError(f"C prefix {prefix!r} is not a C identifier")
    io = tensor_io(tflite_bytes)
    if io["input"]["elements"] != meta.frames * meta.mels or io["output"]["elements"] != len(meta.targets):
        raise ValueError(f"the predictor .tflite takes {io['input']['shape']} and returns {io['output']['shape']}; "
                         f"the meta says {meta.frames} x {meta.mels} and {len(meta.targets)} targets")
    bands, weights = mel_bands(meta.mels)
    arena = arena or {}
    sha = hashlib.sha256(bytes(model_bytes if model_bytes is not None else tflite_bytes)).hexdigest()
    up = prefix.upper()

    def tensor(t):
        return (f"{{{c_string(t['name'])}, 0, 8, {t['elements']}, {c_float_hex(t['scale'])}, "
                f"{c_int(t['zero_point'])}}}")

    return "\n".join([
        "/* quality_desc.c: GENERATED by pipeline/quality_predictor/firmware.py; do not edit by hand.",
        f" * The quality predictor {meta.name.replace('*/', '* /')} (se_quality_desc.h): `{prefix}_desc`. */",
        "#include <stddef.h>",
        '#include "se_quality_desc.h"', "",
        f"extern const uint8_t {prefix}[];",
        f"extern const unsigned int {prefix}_len;",
        "#ifdef SE_WITH_TFLM",
        f"const void *{prefix}_vela_op_resolver(void);",
        f"const void *{prefix}_cpu_op_resolver(void);",
        f"#define {up}_VELA_OPS_FN {prefix}_vela_op_resolver",
        f"#define {up}_CPU_OPS_FN {prefix}_cpu_op_resolver",
        "#else",
        f"#define {up}_VELA_OPS_FN NULL",
        f"#define {up}_CPU_OPS_FN NULL",
        "#endif", "",
        "/* periodic Hann, float32 of numpy's float64 (clips.log_mel) */",
        f"static const float {prefix}_window[512] = {{", *_float_rows(hann_window()), "};", "",
        f"/* {meta.mels} HTK mel filters, unit peak (clips.mel_filters): first bin, count, offset */",
        f"static const se_mel_band_t {prefix}_bands[{meta.mels}] = {{",
        *(f"    {{{first}, {count}, {offset}}}," for first, count, offset in bands), "};",
        f"static const float {prefix}_mel_weights[{len(weights)}] = {{", *_float_rows(weights), "};", "",
        f"static const char *const {prefix}_targets[{len(meta.targets)}] = "
        f"{{{', '.join(c_string(t) for t in meta.targets)}}};",
        f"static const float {prefix}_target_mean[{len(meta.targets)}] = {{",
        *_float_rows(meta.target_mean), "};",
        f"static const float {prefix}_target_std[{len(meta.targets)}] = {{", *_float_rows(meta.target_std), "};", "",
        f"const se_quality_desc_t {prefix}_desc = {{",
        "    SE_QUALITY_DESC_FORMAT,",
        f"    {c_string(meta.name)}, {c_string(sha)},",
        f"    {prefix}, &{prefix}_len,",
        f"    {up}_VELA_OPS_FN, {up}_CPU_OPS_FN,",
        f"    {int(arena.get('measured_min_bytes', 0))}u, {int(arena.get('recorded_head_bytes', 0))}u, "
        f"{int(arena.get('recorded_tail_bytes', 0))}u,",
        f"    {int(meta.sample_rate)}u, 512, 256, {c_float_hex(1e-6)},",
        f"    {meta.frames}, {meta.mels},",
        f"    {prefix}_window, {prefix}_bands, {prefix}_mel_weights,",
        f"    {c_float_hex(meta.feature_mean)}, {c_float_hex(meta.feature_std)},",
        f"    {tensor(io['input'])},",
        f"    {tensor(io['output'])},",
        f"    {len(meta.targets)}, {prefix}_targets, {prefix}_target_mean, {prefix}_target_std,",
        "};", ""])


def write_quality_c(meta: PredictorMeta, tflite_bytes: bytes, out_dir: Path, prefix: str = "se_qp",
                    arena: dict | None = None, model_bytes: bytes | None = None) -> dict:
    """quality_desc.c and quality_data.c (+ .h) into `out_dir`; returns what was written."""
    from sepipe.artifacts import write_text
    from sepipe.c_export import model_array_source

    out_dir = Path(out_dir)
    data = bytes(model_bytes if model_bytes is not None else tflite_bytes)
    source, header = model_array_source(data, symbol=prefix, stem="quality_data")
    write_text(out_dir / "quality_data.c", source)
    write_text(out_dir / "quality_data.h", header)
    write_text(out_dir / "quality_desc.c", quality_descriptor_source(meta, tflite_bytes, prefix, arena, data))
    return {"descriptor": f"{prefix}_desc", "model_bytes": len(data), "meta": json.loads(json.dumps(meta.__dict__))}
