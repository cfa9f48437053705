"""The predictor from Keras to int8 TFLite and Vela, and what it occupies on the device.

convert:<v>     the deploy graph (sepipe.quality_predictor.deploy_graph) or, for int8_qat, TFMOT's quantise-aware
                model, converted by the real TFLite converter to a full-integer .tflite (int8 activations,
                int8 per-channel weights, int32 biases, int8 input and output) with a representative
                dataset of training clips; batch fixed to 1 (TFLite Micro and Vela need static shapes).
convert:float32 the float deploy graph unquantised: the float32 reference whose memory the issue compares.
compile:<v>     Vela per target (sepipe.deploy.cache: cached per model bytes, target and Vela version).

Each convert record holds the model's constant bytes (weights and biases as stored in the .tflite) and the
smallest TFLite Micro tensor arena that allocates and invokes it (sepipe.bundle.arena: a binary search in
child processes, 64-bit host; the peak activation memory TFLite Micro plans, plus its bookkeeping).
"""

from __future__ import annotations

import logging

import numpy as np

from sepipe import artifacts
from sepipe.errors import ToolError

log = logging.getLogger(__name__)



def _concrete(model, frames: int, mels: int):
    from sepipe.models.keras_backend import tf

    spec = tf.TensorSpec([1, frames, mels, 1], tf.float32, name="logmel")
    return tf.function(lambda x: model(x, training=False)).get_concrete_function(spec)


def to_tflite(model, frames: int, mels: int, representative: np.ndarray | None) -> bytes:
    """`model` as a .tflite: full int8 with `representative` clips (N, frames, mels, 1), else float32."""
    from sepipe.models.keras_backend import tf

    converter = tf.lite.TFLiteConverter.from_concrete_functions([_concrete(model, frames, mels)], model)
    if representative is not None:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([clip[None]] for clip in representative)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    try:
        return bytes(converter.convert())
    except Exception as exc:      # noqa: BLE001  (the converter raises many kinds; one line names it)
        raise ToolError("tflite converter", f"converting the quality predictor failed: {exc}") from None


def constant_bytes(data: bytes) -> int:
    """Bytes of every constant tensor (weights, biases) stored in the .tflite flatbuffer."""
    from ethosu.vela.tflite.Model import Model

    model = Model.GetRootAsModel(data, 0)
    graph = model.Subgraphs(0)
    return int(sum(model.Buffers(graph.Tensors(i).Buffer()).DataLength() for i in range(graph.TensorsLength())))


def peak_activation_bytes(pcfg, frames: int, binary_maps: bool, element_bits: int) -> dict[str, float]:
    """Analytic peak activation memory of the deploy graph: the largest (input + output) of one layer, in
    bytes, with `element_bits` per value; and with the binary maps stored one bit a value ('bit_packed': no
    TFLite Micro or Vela kernel reads packed bits, so a what-if, not a measurement)."""
    shapes = [(frames * pcfg.mels, "input")]
    t, m = frames, pcfg.mels
    for channels in pcfg.channels:
        shapes.append((t * m * channels, "map"))                 # conv (+ activation) output
        t, m = t // 2, m // 2
        shapes.append((t * m * channels, "map"))                 # pool output
    shapes += [(pcfg.channels[-1], "vector"), (pcfg.dense_units, "vector"), (len(pcfg.targets), "vector")]
    peaks = {}
    for packed in (False, True):
        def size(item):
            count, kind = item
            return count * (1 if packed and binary_maps and kind == "map" else element_bits) / 8
        peaks["bit_packed" if packed else "stored"] = max(size(a) + size(b) for a, b in zip(shapes, shapes[1:]))
    return peaks


def convert_variant(cfg, variant: str, paths, needs) -> dict:
    from sepipe.bundle.arena import measure_tflm_arena
    from sepipe.quality_predictor.clips import frames_per_clip
    from sepipe.quality_predictor.deploy_graph import build_deploy_model
    from sepipe.quality_predictor.model import weight_count
    from sepipe.quality_predictor.train import load_data, trained_model

    frames, mels = frames_per_clip(cfg.clips.seconds), cfg.predictor.mels
    source = "float" if variant == "float32" else variant
    data = load_data(cfg)
    trained = trained_model(cfg, source, paths, data)
    # every training clip: the input's int8 range is then the one the binary variant was trained with
    representative = None if variant == "float32" else data.x["train"]
    model = trained if variant == "int8_qat" else build_deploy_model(cfg.predictor, frames, source, trained,
                                                                                   data.input_range)
    tflite = to_tflite(model, frames, mels, representative)
    artifacts.write_bytes(paths.tflite(variant), tflite)
    arena = measure_tflm_arena(tflite)
    peaks = peak_activation_bytes(cfg.predictor, frames, variant == "binary", 32 if variant == "float32" else 8)
    return {"tflite_bytes": len(tflite), "constant_bytes": constant_bytes(tflite),
            "parameters": weight_count(build_deploy_model(cfg.predictor, frames, "float",
                                                          trained_model(cfg, "float", paths, data), data.input_range))
            if variant == "int8_qat" else weight_count(model),
            "tflm_arena_bytes": arena["measured_min_bytes"], "tflm_arena": arena,
            "peak_activation_bytes": peaks["stored"], "peak_activation_bytes_bit_packed": peaks["bit_packed"],
            "dtype": "float32" if variant == "float32" else "int8",
            "feature_mean": data.feature_mean, "feature_std": data.feature_std}


def compile_variant(cfg, variant: str, paths) -> tuple[dict, list]:
    """Vela for every compile target; ({target: figures}, output files)."""
    from sepipe.deploy.cache import cache_root, compile_cached
    from sepipe.deploy.compile import CompileOptions, resolve_targets

    options = CompileOptions(require_full_npu=cfg.compile.require_full_npu)
    summary, outputs = {}, []
    for target in resolve_targets(cfg.compile.targets):
        done = compile_cached(paths.tflite(variant), target, paths.compile_dir(), f"{cfg.name}_{variant}", options,
                              cache_root(cfg.data.cache_dir))
        keys = ("cycles_total", "inference_time_ms", "sram_memory_used_kib", "flash_kib",
                "total_original_weights", "total_npu_encoded_weights_bytes", "nn_macs", "npu_ops", "cpu_ops")
        summary[target.name] = {k: done.record.get(k) for k in keys}
        outputs += list(done.outputs)
    return summary, outputs
