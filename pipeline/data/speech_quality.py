"""The clean-target quality gate of speech set v2 (`sepipe.data.speech_sets`): is a recording clean enough to be
a training target?

Two measures per file, both stated in the dataset manifest:
- noise floor / SNR: the speech-active power (`mixing.active_power`: 20 ms frames within 40 dB of the loudest)
  over the noise floor, the median power of the quietest 10% of 20 ms frames (the median, not the mean: the
  louder end of that tenth is often a pause between words, not the floor), measured on the 16 kHz mono signal
  before silence trimming (the pauses a recording leaves around a word show its floor). A recording with digital
  silence has no floor and scores the cap. A clip trimmed tight by its author has no pause, so its quietest
  frames are speech and it scores low: the gate errs towards dropping (Asterisk's studio prompts, measured the
  same way, pass 38% (Carlo, cut tight) to 97% (Allison en) at 30 dB).
- band limit: the highest frequency whose long-term spectrum (speech-active frames, averaged in 125 Hz bands)
  is within 45 dB of the mean level over 0.3-3 kHz, measured at the file's own sample rate (a file recorded at
  22.05 kHz can reach 11 kHz; one resampled up from 8 kHz stops near 4 kHz whatever its rate says).

A file is dropped, for the first reason that applies: unreadable; a format its rule leaves out (songs); a sample
rate under 16 kHz; band limit under BANDWIDTH_MIN_HZ; SNR under SNR_MIN_DB; shorter than
`sources.MIN_SPEECH_S` after trimming. A speaker is dropped whole when its median band limit is under
BANDWIDTH_MIN_HZ (a band-limited voice, not one bad file) or when less than `speech_sets.MIN_SPEAKER_S` of its
speech passes. Kept files are decoded to mono float32 at 16 kHz (channels averaged, soxr), scaled to
LEVEL_DBFS RMS (a quiet recording keeps its resolution in 16-bit files; mixing sets the level anyway) and
trimmed of leading and trailing silence as the Asterisk prompts are.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass

import numpy as np
import soundfile as sf

from sepipe.data import mixing, sources, speech_sets
from sepipe.data.fixed import minutes, progress_bar
from sepipe.data.speech_sets import ExtraFile

log = logging.getLogger(__name__)

SNR_MIN_DB = 30.0
BANDWIDTH_MIN_HZ = 7000.0
FLOOR_SHARE = 0.10            # the quietest 10% of frames are the noise floor
FRAME_S = 0.02
SNR_CAP_DB = 100.0            # digital silence: no measurable floor
BAND_RANGE_DB = 45.0
REFERENCE_HZ = (300.0, 3000.0)
SMOOTH_HZ = 125.0
MIN_RATE_HZ = 16000
LEVEL_DBFS = -25.0
SR = sources.SR


@dataclass(frozen=True)
class Quality:
    snr_db: float
    bandwidth_hz: float

    def problem(self) -> str | None:
        """Why the file fails the gate (None: it passes)."""
        if self.bandwidth_hz < BANDWIDTH_MIN_HZ:
            return "band-limited"
        if self.snr_db < SNR_MIN_DB:
            return "noisy"
        return None


def snr_db(x: np.ndarray, sr: int) -> float:
    """Speech-active power over the noise floor (median power of the quietest FLOOR_SHARE of 20 ms frames), dB."""
    frame = max(1, int(round(FRAME_S * sr)))
    powers = mixing.frame_powers(np.asarray(x, np.float64)[: len(x) // frame * frame], frame)
    active = mixing.active_power(x, sr)
    if len(powers) == 0 or active <= 0:
        return float("-inf")
    quiet = np.sort(powers)[: max(1, int(np.ceil(FLOOR_SHARE * len(powers))))]
    floor = float(np.median(quiet))
    if floor <= active * 10.0 ** (-SNR_CAP_DB / 10.0):
        return SNR_CAP_DB
    return float(10.0 * np.log10(active / floor))


def bandwidth_hz(x: np.ndarray, sr: int) -> float:
    """Highest frequency of the speech-active long-term spectrum within BAND_RANGE_DB of its 0.3-3 kHz level."""
    x = np.asarray(x, np.float64)
    n_fft = 1 << int(np.ceil(np.log2(0.032 * sr)))
    hop = n_fft // 2
    if len(x) < n_fft:
        x = np.pad(x, (0, n_fft - len(x)))
    starts = np.arange(0, len(x) - n_fft + 1, hop)
    frames = np.stack([x[s:s + n_fft] for s in starts]) * np.hanning(n_fft)
    power = np.mean(np.square(frames), axis=1)
    if power.max() <= 0:
        return 0.0
    active = frames[power >= power.max() * 10.0 ** (-mixing.ACTIVE_RANGE_DB / 10.0)]
    spectrum = np.mean(np.square(np.abs(np.fft.rfft(active, axis=1))), axis=0)
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sr)
    width = max(1, int(round(SMOOTH_HZ / (freqs[1] - freqs[0]))))
    bands = len(spectrum) // width
    band_power = spectrum[: bands * width].reshape(bands, width).mean(axis=1)
    band_centre = freqs[: bands * width].reshape(bands, width).mean(axis=1)
    in_reference = (band_centre >= REFERENCE_HZ[0]) & (band_centre <= REFERENCE_HZ[1])
    reference = float(np.mean(band_power[in_reference]))
    if reference <= 0:
        return 0.0
    loud = np.flatnonzero(band_power >= reference * 10.0 ** (-BAND_RANGE_DB / 10.0))
    return float(band_centre[loud[-1]] + SMOOTH_HZ / 2) if len(loud) else 0.0


def measure(native: np.ndarray, native_sr: int, at_16k: np.ndarray) -> Quality:
    """The gate's measures of one recording: `native` at its own rate (band limit), `at_16k` (SNR)."""
    return Quality(round(snr_db(at_16k, mixing.SR), 2), round(bandwidth_hz(native, native_sr), 1))


# --- the gate ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Assessed:
    file: ExtraFile
    raw_s: float                   # decoded length before trimming
    quality: Quality | None        # None: not measured (dropped before decoding)
    reason: str | None             # why the file was dropped; None: it passes
    audio: np.ndarray | None       # 16 kHz, scaled, trimmed (passing files only)


def assess(extra: ExtraFile) -> Assessed:
    """One file through the gate."""
    try:
        info = sf.info(str(extra.path))
    except Exception as exc:  # soundfile raises several types for corrupt input
        log.warning("skipping unreadable speech file %s (%s)", extra.id, exc)
        return Assessed(extra, 0.0, None, "unreadable", None)
    if extra.exclude_format == (info.samplerate, info.channels):
        return Assessed(extra, info.duration, None,
                        f"format left out ({info.samplerate} Hz, {info.channels} channels: songs)", None)
    if info.samplerate < MIN_RATE_HZ:
        return Assessed(extra, info.duration, None, f"sample rate under {MIN_RATE_HZ // 1000} kHz", None)
    try:
        native, rate = sources.decode_mono(extra.path)
    except Exception as exc:  # a file that passed sf.info may still fail to decode
        log.warning("skipping unreadable speech file %s (%s)", extra.id, exc)
        return Assessed(extra, info.duration, None, "unreadable", None)
    at_16k = sources.at_16k(native, rate)
    quality = measure(native, rate, at_16k)
    problem = quality.problem()
    reason = {"band-limited": f"band limit under {BANDWIDTH_MIN_HZ / 1000:g} kHz",
              "noisy": f"SNR under {SNR_MIN_DB:g} dB"}.get(problem or "")
    audio = mixing.trim_silence(mixing.normalise_rms(at_16k, LEVEL_DBFS)) if reason is None else None
    if audio is not None and len(audio) < sources.MIN_SPEECH_S * SR:
        reason, audio = f"shorter than {sources.MIN_SPEECH_S} s after trimming", None
    return Assessed(extra, len(at_16k) / SR, quality, reason, audio)


def gate_speaker(files: list[ExtraFile]) -> tuple[list[Assessed], dict]:
    """A speaker's files through the gate: (the files it keeps, its manifest record)."""
    assessed = [assess(f) for f in files]
    passed = [a for a in assessed if a.reason is None]
    measured = [a.quality for a in assessed if a.quality is not None]
    bandwidth = float(np.median([q.bandwidth_hz for q in measured])) if measured else 0.0
    passed_s = sum(len(a.audio) for a in passed) / SR
    status = "kept"
    if measured and bandwidth < BANDWIDTH_MIN_HZ:
        status = f"dropped: a band-limited voice (median band limit {bandwidth / 1000:.1f} kHz)"
    elif passed_s < speech_sets.MIN_SPEAKER_S:
        status = f"dropped: under {speech_sets.MIN_SPEAKER_S:g} s of speech passes the gate"
    record = {
        "package": files[0].package, "language": files[0].language, "files": len(files),
        "duplicates_merged": sum(len(f.aliases) for f in files),
        "minutes_before": round(sum(a.raw_s for a in assessed) / 60.0, 2),
        "dropped": dict(sorted(Counter(a.reason for a in assessed if a.reason).items())),
        "passed_files": len(passed), "passed_minutes": minutes(int(passed_s * SR)),
        "median_snr_db": round(float(np.median([q.snr_db for q in measured])), 1) if measured else None,
        "median_bandwidth_hz": round(bandwidth), "status": status,
    }
    return (passed if status == "kept" else []), record


def extra_training_speech(package_roots: dict, speech_set: str, size: str, seed: int, progress: bool,
                          ) -> tuple[list[tuple[ExtraFile, np.ndarray]], dict]:
    """The extra training speech of a set: [(file, 16 kHz audio)] sorted by id, and the manifest's `extra_speech`.

    Every candidate file goes through the gate (the record counts all of them); a kept speaker then gives up to
    `speech_sets.EXTRA_PER_SPEAKER_S[size]` seconds, its files taken in a seeded order.
    """
    files, left_out = speech_sets.list_extra(package_roots, speech_sets.rules(speech_set))
    budget = speech_sets.EXTRA_PER_SPEAKER_S[size]
    by_speaker: dict[str, list[ExtraFile]] = {}
    for extra in files:
        by_speaker.setdefault(extra.speaker, []).append(extra)
    chosen: list[tuple[ExtraFile, np.ndarray]] = []
    speakers = {}
    for speaker in progress_bar(sorted(by_speaker), progress, "extra speech (gate)"):
        kept, record = gate_speaker(by_speaker[speaker])
        order = np.random.default_rng([seed, 5, sources.stable_id(speaker)]).permutation(len(kept))
        used, total = [], 0
        for i in order:
            if budget is not None and total >= budget * SR:
                break
            used.append(kept[i])
            total += len(kept[i].audio)
        record.update(used_files=len(used), used_minutes=minutes(total))
        speakers[speaker] = record
        chosen += [(a.file, a.audio) for a in sorted(used, key=lambda a: a.file.id)]
    return chosen, {
        "speech_set": speech_set,
        "rules": [speech_sets.rule_record(r) for r in speech_sets.rules(speech_set)],
        "gate": speech_sets.selection_record(), "left_out_by_name": left_out,
        "files": len(files), "duplicates_merged": sum(len(f.aliases) for f in files),
        "speakers_kept": sorted(name for name, r in speakers.items() if r["status"] == "kept"),
        "speakers": speakers,
    }
