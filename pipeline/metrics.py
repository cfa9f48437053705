"""Audio quality metrics: SI-SDR, wide-band PESQ, STOI and DNSMOS (P.835).

All inputs are mono float arrays at 16 kHz, reference (clean) first, estimate
(enhanced or noisy) second, of the same length. Every function returns plain
Python floats so rows can go straight into JSON / CSV.

Undefined values are NaN with a logged warning (never a crash, never a fake
number): a silent reference has no PESQ, STOI or SI-SDR. A *silent estimate*
against real speech is a failure of the system under test, not an undefined
score, so it gets the worst score each metric can give (see each function);
otherwise a model that outputs silence would drop out of a nan-aware mean.

DNSMOS: `speechmos` 0.0.1.1 bundles the ONNX models, but its `speechmos.dnsmos`
module imports librosa (not a declared dependency, not installed) for the
P.808 model's mel spectrogram. The P.835 model (`sig_bak_ovr.onnx`) takes the
raw waveform, so this module loads that bundled file with onnxruntime directly,
once per process, and reproduces the official DNSMOS P.835 scoring
(Microsoft's `dnsmos_local.py`, as copied in speechmos): tile clips shorter than
9.01 s, score 9.01 s windows every 1 s, map with the non-personalised
polynomials, average over windows. Nothing is downloaded.
"""

from __future__ import annotations

import importlib.resources
import logging
import math
import threading
import warnings

import numpy as np

from sepipe.errors import ConfigError, ToolError

log = logging.getLogger(__name__)

METRICS = ("si_sdr", "pesq", "stoi", "dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl")
DNSMOS_KEYS = ("dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl")

SAMPLE_RATE = 16000
# SI-SDR is clamped to +-SI_SDR_LIMIT_DB: identical signals would give +inf and
# a silent (or orthogonal) estimate -inf, either of which poisons a mean.
SI_SDR_LIMIT_DB = 100.0


# ----------------------------------------------------------------------------- helpers

def _mono(audio: np.ndarray, name: str) -> np.ndarray:
    """`audio` as a 1-D float64 array; ValueError naming `name` if it is not usable."""
    x = np.asarray(audio)
    if x.ndim != 1:
        raise ValueError(f"{name}: expected mono audio (1-D array), got shape {x.shape}")
    if x.size == 0:
        raise ValueError(f"{name}: audio is empty (0 samples)")
    if not np.issubdtype(x.dtype, np.floating) and not np.issubdtype(x.dtype, np.integer):
        raise ValueError(f"{name}: expected a numeric array, got dtype {x.dtype}")
    x = x.astype(np.float64, copy=False)
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name}: audio contains NaN or infinite samples")
    return x


def _pair(reference: np.ndarray, estimate: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ref, est = _mono(reference, "reference"), _mono(estimate, "estimate")
    if ref.shape != est.shape:
        raise ValueError(f"reference and estimate differ in length: {ref.size} vs {est.size} samples "
                         "(align and trim them before scoring)")
    return ref, est


def _check_rate(metric: str, sample_rate: int, why: str) -> None:
    if isinstance(sample_rate, bool) or sample_rate != SAMPLE_RATE:
        raise ConfigError(f"sepipe.metrics.{metric}", "sample_rate", sample_rate,
                          f"{SAMPLE_RATE} (Hz): {why}; resample the audio first")


# ----------------------------------------------------------------------------- SI-SDR

def si_sdr(reference: np.ndarray, estimate: np.ndarray) -> float:
    """Scale-invariant SDR in dB (Le Roux, Wisdom, Erdogan, Hershey, ICASSP 2019).

    Both signals are made zero-mean; the target is the projection of the
    estimate on the reference, alpha * reference with
    alpha = <estimate, reference> / ||reference||^2, and
    SI-SDR = 10 log10(||target||^2 / ||estimate - target||^2).
    Computed in float64. Clamped to +-SI_SDR_LIMIT_DB (identical signals give
    +100; a silent estimate, whose SI-SDR is 0/0, gives -100 with a warning).
    A silent (constant) reference gives NaN with a warning.
    """
    ref, est = _pair(reference, estimate)
    ref = ref - ref.mean()
    est = est - est.mean()
    ref_energy = float(np.dot(ref, ref))
    if ref_energy == 0.0:
        log.warning("si_sdr: reference is silent (constant); SI-SDR undefined, returning NaN")
        return math.nan
    alpha = float(np.dot(est, ref)) / ref_energy
    target = alpha * ref
    residual = est - target
    target_energy, residual_energy = float(np.dot(target, target)), float(np.dot(residual, residual))
    if target_energy == 0.0 and residual_energy == 0.0:
        log.warning("si_sdr: estimate is silent (constant); returning the floor -%g dB", SI_SDR_LIMIT_DB)
        return -SI_SDR_LIMIT_DB
    with np.errstate(divide="ignore"):
        value = 10.0 * np.log10(target_energy) - 10.0 * np.log10(residual_energy)
    return float(np.clip(value, -SI_SDR_LIMIT_DB, SI_SDR_LIMIT_DB))


# ----------------------------------------------------------------------------- PESQ

def pesq_wb(reference: np.ndarray, estimate: np.ndarray, sample_rate: int = SAMPLE_RATE) -> float:
    """Wide-band PESQ (ITU-T P.862.2, MOS-LQO, about 1.04 to 4.64) via `pesq`.

    NaN with a logged warning when PESQ finds no utterance in the reference
    (silent input). A digitally silent estimate makes the `pesq` package
    divide by zero; it is scored after adding white dither at -120 dBFS, which
    gives the near-floor score that silence deserves.
    """
    _check_rate("pesq_wb", sample_rate, "wide-band PESQ (P.862.2) is defined at 16 kHz only")
    from pesq import NoUtterancesError, pesq

    ref, est = _pair(reference, estimate)
    if not np.any(ref):
        log.warning("pesq_wb: reference is silent; PESQ undefined, returning NaN")
        return math.nan
    if not np.any(est):
        log.warning("pesq_wb: estimate is silent; scoring it with -120 dBFS dither")
        est = np.random.default_rng(0).standard_normal(est.size) * 1e-6
    try:
        return float(pesq(sample_rate, ref.astype(np.float32), est.astype(np.float32), "wb"))
    except NoUtterancesError:
        log.warning("pesq_wb: no utterances detected in the reference (silent input); returning NaN")
        return math.nan


# ----------------------------------------------------------------------------- STOI

def stoi(reference: np.ndarray, estimate: np.ndarray, sample_rate: int = SAMPLE_RATE) -> float:
    """Short-time objective intelligibility (Taal et al. 2011) via `pystoi`, 0 to 1.

    pystoi resamples to 10 kHz itself, but the pipeline runs at 16 kHz and the
    rate is checked like every other metric. When fewer than 30 frames (384 ms)
    of the reference are above its silence threshold pystoi returns 1e-5 with
    a RuntimeWarning: that is "not computable", so it is returned as NaN with a
    logged warning. A silent reference gives NaN too.
    """
    _check_rate("stoi", sample_rate, "the pipeline scores 16 kHz audio")
    from pystoi import stoi as _pystoi

    ref, est = _pair(reference, estimate)
    if not np.any(ref - ref.mean()):
        log.warning("stoi: reference is silent; STOI undefined, returning NaN")
        return math.nan
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = float(_pystoi(ref, est, sample_rate, extended=False))
    if any("Not enough STFT frames" in str(w.message) for w in caught):
        log.warning("stoi: under 30 non-silent frames in the reference (%d samples); returning NaN", ref.size)
        return math.nan
    return value


# ----------------------------------------------------------------------------- DNSMOS

_DNSMOS_WINDOW_S = 9.01          # seconds of audio per DNSMOS inference (144160 samples)
_DNSMOS_HOP_S = 1.0
# Official P.835 (non-personalised) mapping of the raw network outputs.
_DNSMOS_POLY = {
    "dnsmos_sig": np.poly1d([-0.08397278, 1.22083953, 0.0052439]),
    "dnsmos_bak": np.poly1d([-0.13166888, 1.60915514, -0.39604546]),
    "dnsmos_ovrl": np.poly1d([-0.06766283, 1.11546468, 0.04602535]),
}
_dnsmos_lock = threading.Lock()
_dnsmos_session_cache = None


def _dnsmos_session():
    """The onnxruntime session of speechmos's bundled DNSMOS P.835 model, created once."""
    global _dnsmos_session_cache
    with _dnsmos_lock:
        if _dnsmos_session_cache is None:
            import onnxruntime as ort

            try:
                model = importlib.resources.files("speechmos") / "dnsmos_models" / "sig_bak_ovr.onnx"
                model_bytes = model.read_bytes()
            except (ModuleNotFoundError, FileNotFoundError) as exc:
                raise ToolError("speechmos", f"bundled DNSMOS model not found ({exc}); "
                                "install speechmos==0.0.1.1, which ships dnsmos_models/sig_bak_ovr.onnx") from None
            _dnsmos_session_cache = ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
        return _dnsmos_session_cache


def _dnsmos_windows(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """The (N, 144160) float32 windows the official DNSMOS script scores for `audio`."""
    window = int(_DNSMOS_WINDOW_S * sample_rate)
    while audio.size < window:               # short clips are tiled, as in dnsmos_local.py
        audio = np.concatenate([audio, audio])
    hops = int(np.floor(audio.size / sample_rate) - _DNSMOS_WINDOW_S) + 1
    hop = int(_DNSMOS_HOP_S * sample_rate)
    starts = [i * hop for i in range(hops) if i * hop + window <= audio.size]
    return np.stack([audio[s:s + window] for s in starts]).astype(np.float32)


def dnsmos(estimate: np.ndarray, sample_rate: int = SAMPLE_RATE) -> dict[str, float]:
    """Non-intrusive DNSMOS P.835 scores {"dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl"} (about 1 to 5).

    The ONNX session is created on the first call and reused. All 9.01 s
    windows of one clip go through the network as one batch. Samples are
    clipped to [-1, 1] first, as they would be in the 16-bit WAV the official
    tool reads.
    """
    _check_rate("dnsmos", sample_rate, "DNSMOS is trained on 16 kHz audio")
    audio = np.clip(_mono(estimate, "estimate"), -1.0, 1.0)
    session = _dnsmos_session()
    windows = _dnsmos_windows(audio, sample_rate)
    raw = session.run(None, {session.get_inputs()[0].name: windows})[0]   # (N, 3): sig, bak, ovrl
    return {key: float(np.mean(_DNSMOS_POLY[key](raw[:, i]))) for i, key in enumerate(DNSMOS_KEYS)}


# ----------------------------------------------------------------------------- all together

def score(reference: np.ndarray, estimate: np.ndarray, sample_rate: int = SAMPLE_RATE,
          with_dnsmos: bool = True) -> dict[str, float]:
    """Every metric in METRICS for one file (DNSMOS keys NaN when `with_dnsmos` is False)."""
    _check_rate("score", sample_rate, "wide-band PESQ and DNSMOS are defined at 16 kHz")
    _pair(reference, estimate)               # fail on shape problems before any metric runs
    row = {
        "si_sdr": si_sdr(reference, estimate),
        "pesq": pesq_wb(reference, estimate, sample_rate),
        "stoi": stoi(reference, estimate, sample_rate),
    }
    row.update(dnsmos(estimate, sample_rate) if with_dnsmos else {key: math.nan for key in DNSMOS_KEYS})
    return {key: row[key] for key in METRICS}


def score_file(where: str, system: str, reference: np.ndarray, estimate: np.ndarray,
               sample_rate: int = SAMPLE_RATE, with_dnsmos: bool = True) -> dict[str, float]:
    """score() of one test file, naming it: InputFileError(where, ...) with the first sample that is not
    finite when the clean reference or `system`'s output holds one (a traceback would name neither)."""
    from sepipe.audio import sample_problem
    from sepipe.errors import InputFileError

    _check_rate("score", sample_rate, "wide-band PESQ and DNSMOS are defined at 16 kHz")
    for what, audio in (("the clean reference", reference), (f"the {system} output", estimate)):
        problem = sample_problem(np.asarray(audio), sample_rate, max_peak=None)
        if problem:
            raise InputFileError(where, f"{what}: {problem}")
    return score(reference, estimate, sample_rate, with_dnsmos)


def mean_scores(rows: list[dict[str, float]]) -> dict[str, float]:
    """NaN-aware mean of each metric over `rows` (NaN where no row has a value).

    Keys are METRICS in order, then any other key found in the rows.
    """
    keys = list(METRICS) + sorted({k for row in rows for k in row} - set(METRICS))
    means = {}
    for key in keys:
        values = np.array([row.get(key, math.nan) for row in rows], dtype=np.float64)
        values = values[~np.isnan(values)]
        means[key] = float(values.mean()) if values.size else math.nan
    return means
