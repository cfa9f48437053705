"""Golden vectors: what the firmware's frame loop must reproduce, frame by frame, for one model.

`write_golden_vectors` runs the reference DSP (pipeline/features.py) and the int8 (or 16x8)
model in TFLite Micro (the runtime firmware ships) over `frames` hops of real audio and
writes, into one folder:

    golden.json          the settings, every file's dtype / shape / meaning, each tensor's
                         file, scale, zero point and position, and the state pairs
    audio_in.f32         float32, frames*hop samples; frame t consumes [t*hop, (t+1)*hop)
    features.f32         float32 (frames, bins): the Python features of each frame
    in_<input>.bin       int8 / int16 (frames, size): exactly what TFLM got at each Invoke
                         (states: the values fed INTO frame t, zero points at t = 0)
    out_<output>.bin     int8 / int16 (frames, size): exactly what TFLM returned
    audio_out.f32        float32, (frames-1)*hop samples: the enhanced audio (Python
                         resynthesis with the dequantised TFLM mask), aligned with
                         audio_in; a streaming device emits block k, samples
                         [k*hop, (k+1)*hop), right after frame k+1 (one hop of latency)

All binary files are raw little-endian arrays, C order. Every file is written atomically
and golden.json last, so a folder with a golden.json is complete. firmware_stub/host_test.c
reads this folder (see firmware_stub/README.md).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sepipe.artifacts import write_bytes, write_json
from sepipe.config import FeatureConfig
from sepipe.contract import ModelContract
from sepipe.metrics import SAMPLE_RATE

FORMAT = 1
WINDOW = "sqrt_hann_periodic"


def _le(array: np.ndarray, dtype) -> bytes:
    """Raw little-endian bytes of `array` as `dtype`, C order."""
    return np.ascontiguousarray(array, dtype=np.dtype(dtype).newbyteorder("<")).tobytes()


def enhanced_audio(spectrum: np.ndarray, quantized_mask: np.ndarray, mask_tensor, feature_cfg: FeatureConfig,
                   frames: int) -> np.ndarray:
    """audio_out.f32: the first `frames` frames of `spectrum` times the dequantised mask the model
    returned, resynthesised; (frames - 1) * hop samples aligned with the input (the last hop is
    still missing its second overlapping frame)."""
    from sepipe.features import enhance_with_mask
    from sepipe.runtime.arith import dequantize

    mask = dequantize(np.asarray(quantized_mask).reshape(frames, -1), mask_tensor.scale, mask_tensor.zero_point)
    return enhance_with_mask(spectrum[:frames], mask, feature_cfg, (frames - 1) * feature_cfg.hop)


def write_golden_vectors(tflite_bytes: bytes, audio: np.ndarray, feature_cfg: FeatureConfig, frames: int,
                         out_dir: Path, source: str = "", contract: ModelContract | None = None) -> dict:
    """Write the golden vectors of `frames` frames of `audio` (float32 mono at the model's
    sample rate) into `out_dir`; return the golden.json dict. ValueError when the audio is
    shorter than `frames` hops or the model is not an int8 / 16x8 streaming model of `contract`
    (inferred from its tensor names when None)."""
    from sepipe.features import features
    from sepipe.runtime.quantized import TFLMStreamingRunner

    frames = int(frames)
    if frames < 2:
        raise ValueError(f"golden vectors need at least 2 frames (the output lags one hop), got {frames}")
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 1:
        raise ValueError(f"audio must be mono (1-D), got shape {audio.shape}")
    hop = feature_cfg.hop
    if len(audio) < frames * hop:
        raise ValueError(f"audio has {len(audio)} samples ({len(audio) // hop} frames of {hop}); "
                         f"{frames} frames need {frames * hop} samples")
    audio = audio[:frames * hop]
    feats, spectrum = features(audio, feature_cfg)   # frame t < frames depends on samples < frames*hop only
    feats = feats[:frames]

    runner = TFLMStreamingRunner(tflite_bytes, contract=contract)
    io, contract = runner.io, runner.contract
    feature_name, head_name = contract.feature.name, contract.head.name
    act = io.io_type or "mixed"                      # 'int8', 'int16' (16x8), or 'mixed': each tensor its own
    if int(io.feature.shape[-1]) != feature_cfg.bins:
        raise ValueError(f"model takes {io.feature.shape[-1]} feature bins; the feature "
                         f"config (fft_size {feature_cfg.fft_size}) gives {feature_cfg.bins}")
    recorded_in, recorded_out = runner.run_recorded(feats)
    enhanced = enhanced_audio(spectrum, recorded_out[head_name], io.head, feature_cfg, frames)

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files: dict[str, dict] = {}

    def put(name: str, array: np.ndarray, dtype: str, what: str) -> None:
        array = np.asarray(array)
        write_bytes(out_dir / name, _le(array, dtype))
        files[name] = {"dtype": dtype, "shape": [int(d) for d in array.shape], "what": what}

    put("audio_in.f32", audio, "float32",
        f"input audio, {frames}*{hop} samples; frame t consumes samples [t*hop, (t+1)*hop)")
    put("features.f32", feats, "float32",
        "Python features per frame: ln(|rfft(sqrt-Hann * frame)|^2 + log_floor), sepipe.features")
    tensors: dict[str, dict] = {}
    pair_of_input = {p.input: p for p in io.state_pairs}
    for tensor in io.inputs:
        name = f"in_{tensor.name}.bin"
        what = ("quantised features TFLM got at each frame" if tensor.name == feature_name else
                f"state TFLM got at each frame (zero point at t=0, then '{pair_of_input[tensor.name].output}' "
                f"of frame t-1" + (", requantised)" if not pair_of_input[tensor.name].same_quantization else ")")
                if tensor.name in pair_of_input else "input TFLM got at each frame")
        put(name, recorded_in[tensor.name].reshape(frames, -1), tensor.dtype, what)
        tensors[tensor.name] = {"file": name, "scale": tensor.scale, "zero_point": tensor.zero_point,
                                "position": tensor.position}
    for tensor in io.outputs:
        name = f"out_{tensor.name}.bin"
        what = ("quantised mask TFLM returned at each frame" if tensor.name == head_name else
                "new state TFLM returned at each frame" if any(s.output == tensor.name for s in contract.states) else
                f"head '{tensor.name}' TFLM returned at each frame")
        put(name, recorded_out[tensor.name].reshape(frames, -1), tensor.dtype, what)
        tensors[tensor.name] = {"file": name, "scale": tensor.scale, "zero_point": tensor.zero_point,
                                "position": tensor.position}
    put("audio_out.f32", enhanced, "float32",
        f"enhanced audio, ({frames}-1)*{hop} samples aligned with audio_in: Python resynthesis with the "
        "dequantised TFLM mask; a device emits block k right after frame k+1")

    golden = {
        "format": FORMAT,
        "frames": frames,
        "sample_rate": SAMPLE_RATE,
        "fft_size": feature_cfg.fft_size,
        "hop": hop,
        "bins": feature_cfg.bins,
        "log_floor": feature_cfg.log_floor,
        "window": WINDOW,
        "activation_dtype": act,
        "source": source,
        "files": files,
        "tensors": tensors,
        "state_pairs": [{"output": p.output, "input": p.input, "same_quantization": p.same_quantization}
                        for p in io.state_pairs],
    }
    write_json(out_dir / "golden.json", golden)
    return golden
