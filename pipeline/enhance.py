"""Enhance a recording with a streaming model, hop by hop, in bounded memory (`sepipe enhance`).

The file is read in blocks, each block's hops are framed, masked and overlap-added exactly as
`sepipe.features` does for a whole file (frame t covers samples [t*hop - hop, t*hop + hop), the
signal preceded by `hop` zeros), with the runner's states carried from block to block
(`runner.run(features, reset=False)`). So a file enhanced in blocks of any size equals the one-shot
evaluation path (features of the whole file, `runner.run`, `enhance_with_mask`) to float rounding,
while memory holds one block, one hop of input and one hop of overlap-add tail. The output is
written block by block into a temporary file beside the target and renamed into place at the end
(`sepipe.artifacts.atomic_path`): an interrupted or refused file leaves no partial output.

Models: a `.tflite` following the streaming contract (features in, mask out, states as inputs and
outputs; `sepipe.quantize.model_io.validate_quantized_model`), its features the default
log-power ones with fft_size = 2 * (bins - 1); or a run folder and variant, with the run's feature
config (the float runtime loads the variant's trained one-frame Keras weights).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from sepipe import features as feat
from sepipe.artifacts import atomic_path
from sepipe.audio import check_samples
from sepipe.config import FeatureConfig
from sepipe.errors import ConfigError, InputFileError

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000          # what a bare .tflite is assumed to be trained for (the pipeline's only rate)
BLOCK_SECONDS = 1.0          # audio read, framed and run per block: memory is a few blocks, whatever the length


# --------------------------------------------------------------------------- the model

@dataclass(frozen=True)
class EnhanceModel:
    """A runner (sepipe.runtime) with the feature config and sample rate it was trained for."""

    runner: object
    features: FeatureConfig
    sample_rate: int
    label: str                # e.g. 'runs/demo_s0 variant ptq (int8 TFLite Micro)'


def load_model(model: Path, variant: str | None, runtime: str) -> EnhanceModel:
    """The model of `--model` (a .tflite or a run folder) in `runtime`; one-line errors for the rest."""
    model = Path(model)
    if model.is_dir():
        return _run_model(model, variant, runtime)
    if not model.exists():
        raise InputFileError(model, "not found; pass a .tflite or a run folder (runs/<experiment>)")
    if variant is not None:
        raise ConfigError("--variant", "variant", variant, "no --variant with a .tflite (it names a run's variant)")
    if runtime == "float":
        raise ConfigError("--runtime", "runtime", runtime,
                          "tflm or tflite with a .tflite; the float runtime needs a run folder (its Keras weights)")
    return _tflite_model(model, runtime, None, None, str(model))


def _tflite_model(path: Path, runtime: str, contract, features: FeatureConfig | None,
                  label: str) -> EnhanceModel:
    from sepipe.quantize.model_io import validate_quantized_model
    from sepipe.runtime import make_runner

    io = validate_quantized_model(path, contract)     # InputFileError: what the file lacks of the contract
    bins, head = io.contract.feature.size, io.contract.head
    if head.size not in (bins, 2 * bins):
        raise InputFileError(path, f"not a streaming mask model: output '{head.name}' has {head.size} values; a mask "
                                   f"has one gain per feature bin ({bins}, input '{io.contract.feature.name}') or a "
                                   f"complex one ({2 * bins}: real parts, then imaginary parts)")
    features = features or _features_for_bins(path, bins)
    runner = make_runner(runtime, tflite_bytes=path.read_bytes(), contract=io.contract)
    return EnhanceModel(runner, features, SAMPLE_RATE, f"{label} ({runner.system})")


def _features_for_bins(path: Path, bins: int) -> FeatureConfig:
    """The default log-power features of a model with `bins` inputs (a .tflite carries no feature config)."""
    fft_size = 2 * (bins - 1)
    cfg = FeatureConfig(fft_size=fft_size, hop=fft_size // 2)
    try:
        cfg.validate(str(path))
    except ConfigError:
        raise InputFileError(path, f"feature input has {bins} values; a streaming mask model takes one log-power "
                                   f"value per FFT bin: 65, 129, 257 or 513 (FFT size 128 to 1024)") from None
    log.info("%s: features assumed: %d-point sqrt-Hann FFT, hop %d, log power (floor %g), %d Hz", path, fft_size,
             cfg.hop, cfg.log_floor, SAMPLE_RATE)
    return cfg


def _run_model(folder: Path, variant: str | None, runtime: str) -> EnhanceModel:
    """A run folder's variant (default: the dense 'ptq' reference) in `runtime`."""
    from sepipe.bundle.source import resolve_run
    from sepipe.engine import records
    from sepipe.stages.paths import RunPaths, find_variant, load_streaming_model, variant_model

    cfg, label = resolve_run(folder)
    chosen = find_variant(cfg, variant or cfg.dense_variant.name)
    stages = records.read_manifest(cfg.run_dir).get("stages", {})
    summaries = {name: stage.get("summary", {}) for name, stage in stages.items()}
    try:
        model = variant_model(cfg, chosen, summaries)
    except KeyError:
        raise InputFileError(folder, f"variant '{chosen.name}' was not fine-tuned yet (no variant:{chosen.name} "
                                     f"record); run: sepipe run experiments/{cfg.name}.yaml") from None
    from sepipe.models import family_of

    contract = family_of(model.model).contract(model.model, cfg.features.bins)
    label = f"{label} variant {chosen.name}"
    if runtime == "float":
        from sepipe.runtime import make_runner

        if model.streaming_weights is None:
            raise ConfigError("--runtime", "runtime", runtime, f"tflm or tflite: variant '{chosen.name}' has no float "
                                                               "model (it is derived from the dense int8 one)")
        runner = make_runner("float", streaming_model=load_streaming_model(model, cfg.features.bins),
                             contract=contract)
        return EnhanceModel(runner, cfg.features, cfg.data.sample_rate, f"{label} ({runner.system})")
    tflite = RunPaths(cfg).tflite(chosen.name)
    if not tflite.is_file():
        raise InputFileError(tflite, f"variant '{chosen.name}' is not converted yet; run: sepipe convert "
                                     f"experiments/{cfg.name}.yaml")
    found = _tflite_model(tflite, runtime, contract, cfg.features, label)
    return dataclasses.replace(found, sample_rate=cfg.data.sample_rate)


# --------------------------------------------------------------------------- block streaming

class StreamEnhancer:
    """Enhances audio pushed in blocks of any size; `finish()` flushes. The concatenated outputs equal
    `features.enhance_with_mask` of the whole signal with the same runner (one hop late while streaming,
    aligned again when finished)."""

    def __init__(self, runner, cfg: FeatureConfig):
        self.runner, self.cfg = runner, cfg
        self.window = feat.analysis_window(cfg)
        self.runner.reset()                                  # a file starts from zero states, as at power-up
        self._previous = np.zeros(cfg.hop, np.float32)      # the last full hop of input (zeros before the start)
        self._pending = np.zeros(0, np.float32)             # input not yet a full hop
        self._tail = np.zeros(cfg.hop, np.float32)          # second half of the last frame, to overlap-add
        self._skip = cfg.hop                                 # the output before sample 0 (the leading zeros)
        self.samples_in = 0
        self.samples_out = 0

    def push(self, audio: np.ndarray) -> np.ndarray:
        """Enhanced samples for every full hop received so far (one hop behind the input)."""
        audio = np.asarray(audio, np.float32)
        self.samples_in += len(audio)
        data = np.concatenate([self._pending, audio]) if len(self._pending) else audio
        whole = len(data) // self.cfg.hop * self.cfg.hop
        self._pending = data[whole:].copy()
        return self._emit(self._hops(data[:whole]))

    def finish(self) -> np.ndarray:
        """The rest: the partial hop zero-padded, then one zero hop (the last frame of `features.num_frames`)."""
        hop = self.cfg.hop
        padded = np.zeros(-(-len(self._pending) // hop) * hop + hop, np.float32)
        padded[:len(self._pending)] = self._pending
        self._pending = np.zeros(0, np.float32)
        out = self._emit(self._hops(padded))
        keep = len(out) - (self.samples_out - self.samples_in)     # the padding's output goes
        self.samples_out -= len(out) - keep
        return out[:keep]

    def _hops(self, data: np.ndarray) -> np.ndarray:
        """Overlap-added output of the frames that end with each hop of `data` (len(data) // hop hops)."""
        hop = self.cfg.hop
        count = len(data) // hop
        if count == 0:
            return np.zeros(0, np.float32)
        hops = np.concatenate([self._previous, data]).reshape(count + 1, hop)
        frames = np.concatenate([hops[:-1], hops[1:]], axis=1) * self.window          # (count, fft_size)
        self._previous = hops[-1].copy()
        spectrum = np.fft.rfft(frames, axis=-1).astype(np.complex64)
        mask = self.runner.run(feat.log_power(spectrum, self.cfg), reset=False)     # states carried on
        synth = np.fft.irfft(feat.apply_mask(spectrum, mask), n=self.cfg.fft_size, axis=-1).astype(np.float32)
        synth *= self.window
        # output hop k = second half of frame k-1 (+ the tail carried over) + first half of frame k
        seconds = np.concatenate([self._tail[None, :], synth[:-1, hop:]])
        self._tail = synth[-1, hop:].copy()
        return (seconds + synth[:, :hop]).reshape(-1)

    def _emit(self, out: np.ndarray) -> np.ndarray:
        skip = min(self._skip, len(out))
        self._skip -= skip
        out = out[skip:]
        self.samples_out += len(out)
        return out


def enhance_array(runner, cfg: FeatureConfig, audio: np.ndarray, block: int) -> np.ndarray:
    """`audio` enhanced in blocks of `block` samples (what `enhance_file` does, in memory: for tests)."""
    stream = StreamEnhancer(runner, cfg)
    parts = [stream.push(audio[start:start + block]) for start in range(0, len(audio), block)]
    return np.concatenate([*parts, stream.finish()])


# --------------------------------------------------------------------------- input files

@dataclass(frozen=True)
class InputAudio:
    """An input file as its header describes it (checked before any output is written)."""

    path: Path
    rate: int
    channels: int
    frames: int

    @property
    def seconds(self) -> float:
        return self.frames / self.rate


def probe_input(path: Path, sample_rate: int, resample: bool) -> InputAudio:
    """The header of `path`, or one line naming it: missing, empty, unreadable, or not `sample_rate` mono
    (any rate and channel count is taken with `resample`)."""
    import soundfile as sf

    path = Path(path)
    if not path.is_file():
        raise InputFileError(path, "file not found" if not path.exists() else "not a file; expected a WAV file")
    if path.stat().st_size == 0:
        raise InputFileError(path, f"empty file (0 bytes); expected {sample_rate} Hz mono audio")
    try:
        info = sf.info(str(path))
    except Exception as exc:  # soundfile raises several types for corrupt input
        raise InputFileError(path, f"unreadable audio ({exc.__class__.__name__}: {exc})") from None
    found = InputAudio(path, int(info.samplerate), int(info.channels), int(info.frames))
    if found.frames <= 0:
        raise InputFileError(path, "audio file is empty (0 samples)")
    if not resample and (found.rate != sample_rate or found.channels != 1):
        raise InputFileError(path, f"{found.rate} Hz, {found.channels} channel(s); expected {sample_rate} Hz mono "
                                   f"(or pass --resample to resample with soxr and average the channels)")
    return found


def read_blocks(src: InputAudio, sample_rate: int, block_seconds: float = BLOCK_SECONDS) -> Iterator[np.ndarray]:
    """Mono float32 blocks at `sample_rate`: every sample checked (sepipe.audio), channels averaged,
    resampled by a streaming soxr resampler when the file's rate differs."""
    import soundfile as sf

    resampler = None
    if src.rate != sample_rate:
        import soxr

        resampler = soxr.ResampleStream(src.rate, sample_rate, 1, dtype="float32", quality="HQ")
    offset = 0
    blocksize = max(1, int(src.rate * block_seconds))
    try:
        blocks = sf.blocks(str(src.path), blocksize=blocksize, dtype="float32", always_2d=True)
        for data in blocks:
            for channel in range(data.shape[1]):
                check_samples(src.path, data[:, channel], src.rate, offset)
            offset += len(data)
            mono = data[:, 0] if data.shape[1] == 1 else data.mean(axis=1, dtype=np.float32)
            yield resampler.resample_chunk(mono) if resampler else mono
    except (RuntimeError, sf.LibsndfileError) as exc:
        raise InputFileError(src.path, f"unreadable audio after {offset} samples ({last_words(exc)})") from None
    if offset == 0:
        raise InputFileError(src.path, "audio file is empty (0 samples)")
    if resampler:
        yield resampler.resample_chunk(np.zeros(0, np.float32), last=True)


def last_words(exc: Exception) -> str:
    return f"{exc.__class__.__name__}: {str(exc).strip().splitlines()[-1] if str(exc).strip() else ''}"


# --------------------------------------------------------------------------- one file

@dataclass(frozen=True)
class EnhanceResult:
    source: Path
    output: Path
    seconds: float            # audio duration (s) at the model's rate
    wall_seconds: float       # reading, enhancing and writing
    level_dbfs: float         # RMS level of the written output

    @property
    def real_time_factor(self) -> float:
        """Processing time over audio time (under 1: faster than real time)."""
        return self.wall_seconds / max(self.seconds, 1e-9)

    def line(self) -> str:
        return (f"{self.source} -> {self.output}: {self.seconds:.2f} s, real-time factor "
                f"{self.real_time_factor:.4f} ({1 / max(self.real_time_factor, 1e-12):.0f}x real time), "
                f"output level {self.level_dbfs:.1f} dBFS")


def enhance_file(model: EnhanceModel, src: InputAudio, output: Path, progress: bool = False,
                 block_seconds: float = BLOCK_SECONDS) -> EnhanceResult:
    """Stream `src` through `model` into `output` (16-bit PCM WAV, written atomically)."""
    import soundfile as sf

    from sepipe.progress import bar

    started = time.perf_counter()
    if src.rate != model.sample_rate or src.channels != 1:
        log.info("%s: %d Hz, %d channel(s) -> %d Hz mono (channels averaged, resampled with soxr)", src.path,
                 src.rate, src.channels, model.sample_rate)
    stream = StreamEnhancer(model.runner, model.features)
    energy, count = 0.0, 0
    blocks = bar(read_blocks(src, model.sample_rate, block_seconds), progress, desc=src.path.name, unit="block",
                 total=-(-src.frames // max(1, int(src.rate * block_seconds))) + (src.rate != model.sample_rate),
                 leave=False)
    with atomic_path(output) as tmp:
        with sf.SoundFile(str(tmp), "w", samplerate=model.sample_rate, channels=1, subtype="PCM_16",
                          format="WAV") as out:
            for block in blocks:
                energy, count = _write(out, stream.push(block), energy, count)
            energy, count = _write(out, stream.finish(), energy, count)
    level = float(10.0 * np.log10(energy / max(count, 1) + 1e-12))
    return EnhanceResult(src.path, output, count / model.sample_rate, time.perf_counter() - started, level)


def _write(out, audio: np.ndarray, energy: float, count: int) -> tuple[float, int]:
    """Write `audio` clipped to 16-bit full scale; the running energy and count of what was written."""
    clipped = np.clip(audio, -1.0, 1.0 - 2.0 ** -15)
    out.write(clipped)
    return energy + float(np.dot(clipped.astype(np.float64), clipped)), count + len(clipped)


def output_paths(inputs: list[Path], out_dir: Path) -> list[Path]:
    """`OUT_DIR/<input name>.wav` for each input; one line for two inputs of one name or an input overwritten."""
    outputs, seen = [], {}
    for path in inputs:
        target = out_dir / f"{Path(path).stem}.wav"
        if target in seen:
            raise ConfigError("-o", "out", str(out_dir), f"a folder where each output has its own name: {seen[target]} "
                                                         f"and {path} would both be written to {target}")
        if target.exists() and Path(path).exists() and target.resolve() == Path(path).resolve():
            raise ConfigError("-o", "out", str(out_dir), f"a folder other than the one holding {path} (it would be "
                                                         f"overwritten by its own enhanced version)")
        seen[target] = path
        outputs.append(target)
    return outputs
