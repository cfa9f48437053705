"""What the Debian packages contain: speech prompts by speaker, noise files by category.

Speech: Asterisk's wideband (G.722, 16 kHz, 64 kbit/s) voice prompts, one speaker per
language; en_US_f_Allison and es_MX_f_Allison are the same person, so they are one
speaker, "Allison". Files whose path says tone / beep / silence are not speech and are
dropped; every prompt is trimmed of leading and trailing silence and dropped when
shorter than 0.6 s after trimming. These are the voices of speech set "v1" (`data.speech_set`, the default); "v2"
adds training-only voices from more packages behind a quality gate (`sepipe.data.speech_sets`).

Noise (categories):
- ambient: megaglest tilesets/*/sounds (day, night, rain, wind, birds, animals);
- effects: megaglest techs/megapack/commondata/sounds without the unit voice lines
  (`*_ack*`, `*_select*`, `*_die*`, `*_summon*`, `*_heal*` are spoken or vocal); the faction
  unit folders are not used at all (voices);
- city: lincity-ng (traffic, crowds, industry; mostly 11 kHz, resampled);
- music: asterisk-moh-opsound (G.722) and searchandrescue music/ (one MIDI file there is
  unreadable and skipped with a warning, as any unreadable file is);
- vehicle: searchandrescue sounds (jet and helicopter engines, gear, thunder, crashes);
- typing: bucklespring key press/release clips.
These are the rules of noise set "v1" (`data.noise_set`, the default); "v2" adds recorded domestic, machine,
street and crowd noise from more packages (`sepipe.data.noise_sets`), some of it read from inside zip
archives (`NoiseRule.archive`).
Identical files (Debian ships many as symlinks or copies) are one file, under its first id,
so a noise cannot be in two splits under two names. Everything is decoded to mono
float32 at 16 kHz (channels averaged, `soxr` resampling).
"""

from __future__ import annotations

import fnmatch
import hashlib
import io
import logging
import re
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np
import soundfile as sf
import soxr

from sepipe.data import mixing

log = logging.getLogger(__name__)

SR = 16000
MIN_SPEECH_S = 0.6
SPLITS = ("train", "valid", "test")


@dataclass(frozen=True)
class Speaker:
    name: str
    language: str
    gender: str
    package: str
    folder: str


SPEAKERS = (
    Speaker("Allison", "en", "f", "asterisk-core-sounds-en-g722", "en_US_f_Allison"),
    Speaker("Allison", "es", "f", "asterisk-core-sounds-es-g722", "es_MX_f_Allison"),
    Speaker("Carlo", "it", "m", "asterisk-core-sounds-it-g722", "it_IT_m_Carlo"),
    Speaker("IvrvoiceRU", "ru", "f", "asterisk-core-sounds-ru-g722", "ru_RU_f_IvrvoiceRU"),
    Speaker("June", "fr", "f", "asterisk-core-sounds-fr-g722", "fr_CA_f_June"),
)
SPLIT_SPEAKERS = {"train": ("Allison", "Carlo"), "valid": ("IvrvoiceRU",), "test": ("June",)}
SPEECH_PACKAGES = tuple(sorted({s.package for s in SPEAKERS}))
NON_SPEECH = re.compile(r"tone|beep|silence", re.IGNORECASE)


@dataclass(frozen=True)
class NoiseRule:
    category: str
    package: str
    pattern: str                      # glob under the unpacked package root (or inside `archive`)
    exclude: str | None = None        # regex on the file name
    archive: str | None = None        # glob of zip archives (.pk3, .zip) under the root; `pattern` globs their members


NOISE_RULES = (
    NoiseRule("ambient", "megaglest-data", "usr/share/games/megaglest/tilesets/*/sounds/*"),
    NoiseRule("effects", "megaglest-data", "usr/share/games/megaglest/techs/megapack/commondata/sounds/*",
              exclude=r"_(ack|select|die|summon|heal)\d*\."),
    NoiseRule("city", "lincity-ng-data", "usr/share/games/lincity-ng/sounds/*.wav"),
    NoiseRule("music", "asterisk-moh-opsound-g722", "usr/share/asterisk/moh/*.g722"),
    NoiseRule("music", "searchandrescue-data", "usr/share/games/searchandrescue/music/*.wav"),
    NoiseRule("vehicle", "searchandrescue-data", "usr/share/games/searchandrescue/sounds/**/*.wav"),
    NoiseRule("typing", "bucklespring-data", "usr/share/buckle/wav/*.wav"),
)
NOISE_PACKAGES = tuple(sorted({r.package for r in NOISE_RULES}))
FILE_CATEGORIES = tuple(dict.fromkeys(r.category for r in NOISE_RULES))
# Short clips of these categories are assembled into tracks; (min gap, max gap) in seconds.
CLIP_GAPS_S = {"typing": (0.03, 0.25), "effects": (0.2, 1.5), "vehicle": (0.2, 1.0), "city": (0.1, 0.8),
               "ambient": (0.2, 1.0), "music": (0.2, 1.0), "domestic": (0.1, 1.0), "machine": (0.1, 0.5),
               "street": (0.2, 1.0), "crowd": (0.0, 0.3)}
SHORT_CLIP_S = 3.0
TRACK_S = 15.0
AUDIO_SUFFIXES = {".wav", ".ogg", ".flac", ".g722"}


@dataclass(frozen=True)
class SpeechFile:
    id: str               # "<folder>/<relative path without suffix>", e.g. "en_US_f_Allison/digits/1"
    path: Path
    speaker: str
    language: str
    raw_s: float          # duration before trimming (G.722 at 64 kbit/s: 8000 bytes per second)


@dataclass(frozen=True)
class NoiseFile:
    id: str               # "<package>:<path under the package's data folder>[/<member of a zip archive>]"
    path: Path
    category: str
    package: str
    sha256: str
    aliases: tuple[str, ...] = field(default=())   # other ids with identical bytes
    member: str | None = None                      # the file inside the zip archive `path`, if any


@dataclass
class NoiseItem:
    """One noise recording of a pool: a file (cropped) or a track assembled from short clips."""
    name: str
    category: str
    parts: list[str]
    audio: np.ndarray


# --- speech -----------------------------------------------------------------------------------

def list_speech(package_roots: dict[str, Path]) -> list[SpeechFile]:
    """Every speech prompt of every speaker, sorted by id (non-speech names excluded)."""
    files = []
    for speaker in SPEAKERS:
        base = Path(package_roots[speaker.package]) / "usr/share/asterisk/sounds" / speaker.folder
        for path in sorted(base.rglob("*.g722")):
            rel = path.relative_to(base).with_suffix("").as_posix()
            if NON_SPEECH.search(rel):
                continue
            files.append(SpeechFile(f"{speaker.folder}/{rel}", path, speaker.name, speaker.language,
                                    path.stat().st_size / 8000.0))
    return sorted(files, key=lambda f: f.id)


def decode_g722(path: Path) -> np.ndarray:
    """Raw G.722 (16 kHz, 64 kbit/s) to float32 in [-1, 1)."""
    import G722  # the PyPI package `g722`

    samples = G722.G722(SR, 64000).decode(Path(path).read_bytes())
    return np.asarray(samples, dtype=np.int16).astype(np.float32) / 32768.0


def load_speech(speech: SpeechFile) -> np.ndarray | None:
    """Decoded, trimmed prompt; None when shorter than MIN_SPEECH_S after trimming."""
    audio = mixing.trim_silence(decode_g722(speech.path))
    return audio if len(audio) >= MIN_SPEECH_S * SR else None


# --- noise ------------------------------------------------------------------------------------

def list_noise(package_roots: dict[str, Path], rules: tuple[NoiseRule, ...] = NOISE_RULES,
               ) -> tuple[list[NoiseFile], list[tuple[str, str]]]:
    """Noise files by rule (default: set v1), identical files merged; (files, [(id, reason skipped)]), sorted by id."""
    by_hash: dict[str, NoiseFile] = {}
    skipped: list[tuple[str, str]] = []
    for rule in rules:
        root = Path(package_roots[rule.package])
        for path, member in _rule_files(root, rule):
            name = PurePosixPath(member).name if member else path.name
            if Path(name).suffix.lower() not in AUDIO_SUFFIXES:
                continue
            if rule.exclude and re.search(rule.exclude, name):
                continue
            rel = path.relative_to(root).as_posix()
            for prefix in ("usr/share/games/", "usr/share/asterisk/", "usr/share/"):
                if rel.startswith(prefix):
                    rel = rel[len(prefix):]
                    break
            file_id = f"{rule.package}:{rel}" + (f"/{member}" if member else "")
            data = _read_bytes(path, member)
            problem = _unreadable(path, data)
            if problem:
                log.warning("skipping noise file %s (%s)", file_id, problem)
                skipped.append((file_id, problem))
                continue
            digest = hashlib.sha256(data).hexdigest()
            if digest in by_hash:
                first = by_hash[digest]
                by_hash[digest] = NoiseFile(first.id, first.path, first.category, first.package, digest,
                                            first.aliases + (file_id,), first.member)
                continue
            by_hash[digest] = NoiseFile(file_id, path.resolve(), rule.category, rule.package, digest, member=member)
    return sorted(by_hash.values(), key=lambda f: f.id), skipped


def _rule_files(root: Path, rule: NoiseRule) -> list[tuple[Path, str | None]]:
    """(file, None) for each plain file the rule's glob finds; (archive, member) for each archive member."""
    if rule.archive is None:
        return [(path, None) for path in sorted(root.glob(rule.pattern)) if path.is_file()]
    out = []
    for archive in sorted(root.glob(rule.archive)):
        with zipfile.ZipFile(archive) as handle:
            out += [(archive, name) for name in sorted(handle.namelist())
                    if not name.endswith("/") and fnmatch.fnmatchcase(name, rule.pattern)]
    return out


def _read_bytes(path: Path, member: str | None) -> bytes:
    if member is None:
        return path.read_bytes()
    with zipfile.ZipFile(path) as handle:
        return handle.read(member)


def _unreadable(path: Path, data: bytes) -> str | None:
    if path.suffix.lower() == ".g722":
        return None if len(data) >= 800 else "shorter than 0.1 s"
    try:
        info = sf.info(io.BytesIO(data))
    except Exception as exc:  # soundfile raises several types for corrupt input
        return f"{exc.__class__.__name__}: {str(exc).split(': ')[-1]}"
    if info.frames < 0.05 * info.samplerate:
        return "shorter than 0.05 s"
    return None


def load_noise(noise: NoiseFile) -> np.ndarray:
    """Mono float32 at 16 kHz (channels averaged, resampled with soxr)."""
    if noise.path.suffix.lower() == ".g722":
        return decode_g722(noise.path)
    source = io.BytesIO(_read_bytes(noise.path, noise.member)) if noise.member else noise.path
    return at_16k(*decode_mono(source))


def decode_mono(source) -> tuple[np.ndarray, int]:
    """(mono float32 at the file's own rate, channels averaged; that rate) of a path or file object."""
    audio, rate = sf.read(source if hasattr(source, "read") else str(source), dtype="float32", always_2d=True)
    return np.ascontiguousarray(audio.mean(axis=1), dtype=np.float32), rate


def at_16k(mono: np.ndarray, rate: int) -> np.ndarray:
    """`mono` resampled to 16 kHz with soxr (unchanged at 16 kHz), float32."""
    return np.ascontiguousarray(soxr.resample(mono, rate, SR) if rate != SR else mono, dtype=np.float32)


def stable_id(text: str) -> int:
    return zlib.crc32(text.encode())


def assign_noise_splits(files: list[NoiseFile], seed: int,
                        fractions: tuple[float, float] = (0.15, 0.15)) -> dict[str, list[NoiseFile]]:
    """Seeded, per-category split of noise files: ~15% valid, ~15% test, the rest train.

    Each category with at least 3 files has at least one file in every split.
    """
    out: dict[str, list[NoiseFile]] = {split: [] for split in SPLITS}
    categories = sorted({f.category for f in files})
    for category in categories:
        members = sorted((f for f in files if f.category == category), key=lambda f: f.id)
        rng = np.random.default_rng([seed, 11, stable_id(category)])
        order = [members[i] for i in rng.permutation(len(members))]
        n = len(order)
        n_valid = max(1, int(round(fractions[0] * n))) if n >= 3 else 0
        n_test = max(1, int(round(fractions[1] * n))) if n >= 2 else 0
        out["valid"] += order[:n_valid]
        out["test"] += order[n_valid:n_valid + n_test]
        out["train"] += order[n_valid + n_test:]
    return {split: sorted(members, key=lambda f: f.id) for split, members in out.items()}


def make_noise_items(files: list[NoiseFile], rng: np.random.Generator, budget_s: float | None,
                     crop_s: float | None, prefix: str = "") -> list[NoiseItem]:
    """Decode a split's noise files into pool items, per category.

    Files are taken in seeded order until `budget_s` seconds per category (None: all);
    longer files are cropped to a random `crop_s` seconds (None: whole). Clips shorter
    than 3 s are assembled, in random order with random gaps, into ~15 s tracks.
    Items are normalised to -25 dBFS RMS (mixing rescales them anyway).
    """
    items: list[NoiseItem] = []
    for category in sorted({f.category for f in files}):
        members = [f for f in files if f.category == category]
        order = [members[i] for i in rng.permutation(len(members))]
        long_items: list[tuple[str, np.ndarray]] = []
        clips: list[tuple[str, np.ndarray]] = []
        total = 0.0
        for noise in order:
            if budget_s is not None and total >= budget_s:
                break
            try:
                audio = load_noise(noise)
            except Exception as exc:  # a file that passed sf.info may still fail to decode
                log.warning("skipping unreadable noise file %s (%s)", noise.path, exc)
                continue
            if crop_s is not None and len(audio) > crop_s * SR:
                audio, _ = mixing.fit_length(audio, int(crop_s * SR), rng)
            if np.mean(np.square(audio, dtype=np.float64)) <= mixing.SILENT_POWER:
                continue
            total += len(audio) / SR
            (clips if len(audio) < SHORT_CLIP_S * SR else long_items).append((noise.id, audio))
        for noise_id, audio in long_items:
            items.append(NoiseItem("", category, [noise_id], audio))
        group: list[tuple[str, np.ndarray]] = []
        for k, clip in enumerate(clips):
            group.append(clip)
            if sum(len(a) for _, a in group) >= TRACK_S * SR or k == len(clips) - 1:
                track = mixing.compose_clips([a for _, a in group], rng, CLIP_GAPS_S.get(category, (0.1, 1.0)))
                items.append(NoiseItem("", category, [i for i, _ in group], track))
                group = []
    counters: dict[str, int] = {}
    for item in items:
        counters[item.category] = counters.get(item.category, 0) + 1
        item.name = f"{prefix}{item.category}_{counters[item.category]:03d}"
        item.audio = mixing.normalise_rms(item.audio)
    return items
