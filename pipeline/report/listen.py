"""The report's listening section: for the first few test files, a player and a spectrogram per system.

Evaluation keeps the first `evaluate.write_audio` test files of every system as WAV under
`<run>/evaluate/audio/<system>/<file>.wav` (a model's system is `<variant>/<runner label>`), and the clean
target under `audio/clean/`. This section embeds them in the page as data: URIs, so the page stays one file:

- audio as FLAC, 16-bit, at the run's rate: lossless, so a reader hears exactly what was scored (a lossy
  codec at a page-friendly bit rate adds artefacts of its own, the very thing a listener is judging), and
  every current browser plays it. libsndfile writes the same bytes for the same samples (its Ogg writer
  does not: it draws a random stream serial, so Ogg/Opus would break "same inputs, same bytes").
- a small log-magnitude spectrogram per clip as WebP, one colour scale per file (its loudest bin down to
  DYNAMIC_RANGE_DB below it), so the systems of a file compare at a glance.

The page size is bounded by AUDIO_SECONDS_BUDGET: every clip is an excerpt from the file's start, as long as
the budget allows between MIN_SECONDS and MAX_SECONDS, and when even MIN_SECONDS per clip would overrun it,
fewer files are shown (never none: one file at MIN_SECONDS may overrun it). The caption says what was kept.
FLAC of speech at 16 kHz is about 15-20 kB/s.
"""

from __future__ import annotations

import base64
import html
import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from sepipe.audio import read_wav, to_int16

MAX_SECONDS = 8.0                # longest excerpt per clip
MIN_SECONDS = 3.0                # shortest excerpt worth listening to
AUDIO_SECONDS_BUDGET = 120.0     # seconds of audio on the whole page (speech: about 2-3 MB as base64 FLAC)
DYNAMIC_RANGE_DB = 80.0          # the colour scale: the file's loudest bin down to this far below it
SPECTROGRAM_PX = (320, 96)       # width, height of every spectrogram image
N_FFT, HOP = 512, 128
CLEAN = ("clean", "clean (target)")   # the clean target's folder and label


@dataclass(frozen=True)
class Clip:
    """One player: its label and the WAV it embeds (named in its place when it is not there)."""

    label: str
    path: Path


@dataclass(frozen=True)
class Plan:
    files: int           # test files shown
    seconds: float       # longest excerpt per clip


def kept_files(per_file: Iterable[dict], count: int) -> list[str]:
    """The first `count` test files in evaluation order (those whose audio evaluation kept)."""
    names = list(dict.fromkeys(str(row["file"]) for row in per_file))
    return names[:max(0, count)]


def systems_of(quality_rows: Iterable[dict]) -> list[tuple[str, str]]:
    """(audio folder, label) of every system of the quality table, in its order, the clean target after
    the unprocessed input. Labels are the table's: a reference's system, '<variant> · <runner>' for models."""
    systems = []
    for row in quality_rows:
        variant, system = str(row.get("variant", "-")), str(row["system"])
        if variant in ("-", "", "None"):
            systems.append((system, system))
            if system == "unprocessed":
                systems.append(CLEAN)
        else:
            systems.append((f"{variant}/{system}", f"{variant} · {system}"))
    return systems if CLEAN in systems else [CLEAN, *systems]


def plan(files: int, systems: int, budget: float = AUDIO_SECONDS_BUDGET) -> Plan:
    """How many files and how many seconds per clip fit the page's audio budget (see the module docstring)."""
    if files <= 0 or systems <= 0:
        return Plan(0, 0.0)
    shown = max(1, min(files, int(budget // (MIN_SECONDS * systems))))
    seconds = math.floor(10.0 * budget / (shown * systems)) / 10.0     # tenths: a length a caption can state
    return Plan(shown, min(MAX_SECONDS, max(MIN_SECONDS, seconds)))


def input_files(audio_dir: Path, files: Sequence[str], systems: Sequence[tuple[str, str]]) -> dict[str, Path]:
    """The WAVs the section reads, by a stable name (what the report stage declares as its inputs)."""
    shown = plan(len(files), len(systems)).files
    return {f"audio:{folder}:{name}": Path(audio_dir) / folder / f"{name}.wav"
            for name in files[:shown] for folder, _ in systems}


# --------------------------------------------------------------------------- encoding

def flac_bytes(samples: np.ndarray, sample_rate: int) -> bytes:
    """16-bit mono FLAC of int16 samples (deterministic: libsndfile's FLAC writer has no random fields)."""
    import soundfile as sf

    buffer = io.BytesIO()
    sf.write(buffer, samples, sample_rate, format="FLAC", subtype="PCM_16")
    return buffer.getvalue()


def log_spectrogram(samples: np.ndarray) -> np.ndarray:
    """Magnitude in dB, (bins, frames), low frequencies first; a clip shorter than N_FFT is zero-padded."""
    x = samples.astype(np.float64) / 32768.0
    x = np.pad(x, (0, max(0, N_FFT - len(x))))
    frames = 1 + (len(x) - N_FFT) // HOP
    index = np.arange(N_FFT)[None, :] + HOP * np.arange(frames)[:, None]
    spectrum = np.abs(np.fft.rfft(x[index] * np.hanning(N_FFT), axis=1))
    return (20.0 * np.log10(spectrum + 1e-10)).T


def spectrogram_webp(db: np.ndarray, top_db: float) -> bytes:
    """The spectrogram as a SPECTROGRAM_PX WebP, coloured from top_db - DYNAMIC_RANGE_DB to top_db."""
    from matplotlib import colormaps
    from PIL import Image

    scaled = np.clip((db - (top_db - DYNAMIC_RANGE_DB)) / DYNAMIC_RANGE_DB, 0.0, 1.0)[::-1]   # high bins on top
    rgb = (colormaps["magma"](scaled)[..., :3] * 255.0 + 0.5).astype(np.uint8)
    image = Image.fromarray(rgb).resize(SPECTROGRAM_PX, Image.Resampling.BILINEAR)
    buffer = io.BytesIO()
    image.save(buffer, format="WEBP", quality=75, method=6)
    return buffer.getvalue()


# --------------------------------------------------------------------------- HTML

def _figure(label: str, flac: bytes | None, webp: bytes | None, missing: Path | None = None) -> str:
    """A clip's caption, spectrogram and player; its missing WAV named instead when `flac` is None."""
    caption = f"<figcaption>{html.escape(label)}</figcaption>"
    if flac is None:
        return (f'<figure class="clip">{caption}<p class="caption">no audio: {html.escape(str(missing))} '
                "is not there</p></figure>\n")
    image = base64.b64encode(webp).decode("ascii")
    audio = base64.b64encode(flac).decode("ascii")
    return (f'<figure class="clip">{caption}<img src="data:image/webp;base64,{image}" '
            f'alt="spectrogram: {html.escape(label)}" width="{SPECTROGRAM_PX[0]}" height="{SPECTROGRAM_PX[1]}">'
            f'<audio controls preload="metadata"><source src="data:audio/flac;base64,{audio}" '
            'type="audio/flac"></audio></figure>\n')


def _file_block(name: str, clips: Sequence[Clip], sample_rate: int, seconds: float) -> tuple[str, int]:
    """One test file's players (HTML) and the bytes of audio they embed."""
    length = int(round(seconds * sample_rate))
    samples = [to_int16(read_wav(c.path, sample_rate)[:length]) if c.path.is_file() else None for c in clips]
    dbs = [None if s is None else log_spectrogram(s) for s in samples]
    top_db = max((float(db.max()) for db in dbs if db is not None), default=0.0)
    parts, audio_bytes = [f"<h3>{html.escape(name)}</h3>\n<div class=\"listen\">\n"], 0
    for clip, clip_samples, db in zip(clips, samples, dbs):
        if clip_samples is None:
            parts.append(_figure(clip.label, None, None, clip.path))
            continue
        flac = flac_bytes(clip_samples, sample_rate)
        audio_bytes += len(flac)
        parts.append(_figure(clip.label, flac, spectrogram_webp(db, top_db)))
    parts.append("</div>\n")
    return "".join(parts), audio_bytes


def render_listen_section(audio_dir: Path, files: Sequence[str], systems: Sequence[tuple[str, str]],
                          sample_rate: int, budget: float = AUDIO_SECONDS_BUDGET,
                          kept_by: str = "evaluate.write_audio") -> str:
    """The 'Listen' section: per kept file, a player and spectrogram per system (`systems_of`).

    audio_dir: the evaluation's audio folder; files: the kept test files (`kept_files`); a WAV that is
    not there is named in place of its player; kept_by: the setting that chose how many files were kept
    (the captions name it). Raises InputFileError for a WAV that cannot be read or is
    not at `sample_rate` (Hz). Same WAVs, same HTML bytes.
    """
    head = "<h2>Listen</h2>\n"
    shown = plan(len(files), len(systems), budget)
    if not shown.files:
        return head + f'<p class="note">No audio kept ({html.escape(kept_by)} is 0).</p>\n'
    blocks, audio_bytes = [], 0
    for name in files[:shown.files]:
        clips = [Clip(label, Path(audio_dir) / folder / f"{name}.wav") for folder, label in systems]
        block, size = _file_block(name, clips, sample_rate, shown.seconds)
        blocks.append(block)
        audio_bytes += size
    caption = (f"The first {shown.files} of the {len(files)} test files evaluation kept ({kept_by}), "
               f"at most the first {shown.seconds:g} s of each, as lossless 16-bit FLAC at {sample_rate} Hz "
               f"({audio_bytes / 1024:,.0f} KiB of audio on this page). Spectrograms: log magnitude, 0 to "
               f"{sample_rate / 2000:g} kHz from bottom to top, one colour scale per file (its loudest bin down to "
               f"{DYNAMIC_RANGE_DB:g} dB below it), so the systems of a file compare.")
    return head + f'<p class="caption">{html.escape(caption)}</p>\n' + "".join(blocks)
