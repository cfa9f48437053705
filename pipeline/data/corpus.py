"""User corpora: the VoiceBank-DEMAND (Valentini) layout and a DNS-Challenge-style clean/noise pair.

VoiceBank-DEMAND (`data.source: voicebank`): `<root>/{clean,noisy}_{train,test}set_wav/*.wav`
at 16 kHz (the original 48 kHz release must be resampled by the user first: the pipeline
never resamples a corpus silently). Files are paired by name (p226_001.wav); the speaker is
the part before the first '_'. Validation is a held-out pair of training speakers:
p226 and p287 when both are present (the usual choice in the literature), otherwise two
speakers drawn with the dataset seed. Nothing is copied: the dataset lists the files.

DNS (`data.source: dns`): `<root>/clean/` and `<root>/noise/` (searched recursively for .wav
and .flac, 16 kHz). Clean files are grouped by reader (`reader_<id>` in DNS names, `p<id>_`
in VCTK names, otherwise each file is its own group) and the groups, and the noise files,
are split with the dataset seed: ~10% valid, ~10% test (at least one each), the rest train.

Scoring a corpus (`sepipe evaluate --model`, sepipe.corpus_eval) pairs files with the same functions:
`pair_by_name` (two folders; what VoiceBank-DEMAND's split folders are), `voicebank_files` (a split, with
`strict`: a noisy file without its clean one is refused too) and `dns_test_files` (a DNS-Challenge test
folder, `noisy/` and `clean/` paired by `fileid_N`). They read names only; the caller checks the audio.

Listing reads each file's header (`check_audio`: readable, 16 kHz, not empty). Before the old build
is removed, every file the new dataset will read is decoded whole (`check_content`, with
`sepipe.audio.sample_problem`): finite samples within +-MAX_PEAK (the first bad sample is named),
not digitally silent (peak at most one 16-bit step), at least MIN_SECONDS long. A multi-channel file
is read as its first channel, everywhere (only that channel is checked).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from sepipe.audio import MAX_PEAK, SILENT_PEAK, sample_problem
from sepipe.errors import InputFileError

SR = 16000
VB_FOLDERS = {("clean", "train"): "clean_trainset_wav", ("noisy", "train"): "noisy_trainset_wav",
              ("clean", "test"): "clean_testset_wav", ("noisy", "test"): "noisy_testset_wav"}
VB_LAYOUT = ("expected the VoiceBank-DEMAND layout <root>/{clean,noisy}_{train,test}set_wav/*.wav "
             "with 16 kHz files paired by name")
DNS_LAYOUT = "expected the DNS layout <root>/clean/ and <root>/noise/ holding 16 kHz .wav or .flac files"
DNS_SUFFIXES = (".wav", ".flac")
DNS_TEST_LAYOUT = ("expected a DNS-Challenge test folder <root>/noisy/ and <root>/clean/ whose files are paired "
                   "by their fileid_N")
VB_VALID_SPEAKERS = ("p226", "p287")
MIN_SECONDS = 0.1              # shorter than ten 10 ms hops: no speech, and no noise worth looping
CHECK_BLOCK = 1 << 18          # frames decoded at a time by check_content (bounded memory on long files)
# What a file of each role is for: said when it is silent.
ROLES = {"speech": "a clean speech file must hold speech",
         "noise": "a silent noise file adds nothing (its mixtures would fall back to synthetic noise)",
         "noisy": "a noisy mixture must hold sound",
         "rir": "an impulse response needs a direct path"}


@dataclass(frozen=True)
class AudioFile:
    path: Path
    frames: int


@dataclass(frozen=True)
class VoiceBankPair:
    name: str
    noisy: Path
    clean: Path
    frames: int

    @property
    def speaker(self) -> str:
        return voicebank_speaker(self.name)


def voicebank_speaker(name: str) -> str:
    return name.split("_")[0]


def check_audio(path: Path) -> int:
    """Frames of a 16 kHz audio file; InputFileError naming the file when unreadable or at another rate."""
    if path.is_file() and path.stat().st_size == 0:
        raise InputFileError(path, f"empty file (0 bytes); expected {SR} Hz audio")
    try:
        info = sf.info(str(path))
    except Exception as exc:  # soundfile raises several types for corrupt input
        raise InputFileError(path, f"unreadable audio ({exc.__class__.__name__}: {exc})") from None
    if info.samplerate != SR:
        raise InputFileError(path, f"sample rate is {info.samplerate} Hz; expected {SR} Hz "
                             "(resample the corpus to 16000 Hz first)")
    if info.frames == 0:
        raise InputFileError(path, "audio file is empty (0 samples)")
    return int(info.frames)


def check_content(path: Path, role: str, expected_frames: int | None = None) -> None:
    """Decode the first channel of `path` and refuse it (InputFileError naming it) when a sample is not
    finite or beyond +-MAX_PEAK (an impulse response: finite only), when it is silent or (but an
    impulse response) shorter than MIN_SECONDS, or when it decodes to other than `expected_frames`
    (its listed length, which the pools' windows rely on). `role`: a key of ROLES."""
    frames, peak, rate = 0, 0.0, SR
    try:
        with sf.SoundFile(str(path)) as handle:
            rate = handle.samplerate
            for block in handle.blocks(blocksize=CHECK_BLOCK, dtype="float32", always_2d=True):
                x = block[:, 0]
                problem = sample_problem(x, rate, frames, max_peak=None if role == "rir" else MAX_PEAK)
                if problem:
                    raise InputFileError(path, problem)
                peak, frames = max(peak, float(np.max(np.abs(x), initial=0.0))), frames + len(x)
    except InputFileError:
        raise
    except Exception as exc:  # soundfile raises several types for corrupt input
        raise InputFileError(path, f"unreadable audio ({exc.__class__.__name__}: {exc})") from None
    if expected_frames is not None and frames != expected_frames:
        raise InputFileError(path, f"decodes to {frames} samples but its header says {expected_frames}; "
                             "the file is truncated or damaged")
    if role != "rir" and frames < MIN_SECONDS * rate:
        raise InputFileError(path, f"is {frames} samples ({frames / rate:.3f} s) long; "
                             f"at least {MIN_SECONDS} s is needed")
    if peak <= SILENT_PEAK:
        raise InputFileError(path, f"is silent (peak {peak:.3g}, at most one 16-bit step); {ROLES[role]}")


def _folder(root: Path, name: str, layout: str) -> Path:
    folder = root / name
    if not folder.is_dir():
        raise InputFileError(folder, f"folder not found; {layout}")
    return folder


def list_voicebank(root: str | Path) -> dict[str, list[VoiceBankPair]]:
    """{'train': pairs, 'test': pairs}, sorted by name, every file checked (16 kHz, equal lengths)."""
    root = Path(root)
    if not root.is_dir():
        raise InputFileError(root, f"corpus folder not found; {VB_LAYOUT}")
    for name in VB_FOLDERS.values():     # every folder first: a missing trainset is named before a test file
        _folder(root, name, VB_LAYOUT)
    out = {}
    for split in ("train", "test"):
        pairs = []
        for name, noisy, clean in voicebank_files(root, split):
            frames = check_audio(clean)
            noisy_frames = check_audio(noisy)
            if noisy_frames != frames:
                raise InputFileError(noisy, f"has {noisy_frames} samples but {clean} has {frames}; "
                                     "a noisy file and its clean reference must have the same length")
            pairs.append(VoiceBankPair(name, noisy, clean, frames))
        out[split] = pairs
    return out


def voicebank_files(root: str | Path, split: str, strict: bool = False) -> list[tuple[str, Path, Path]]:
    """(name, noisy, clean) of a VoiceBank-DEMAND split, paired by file name, sorted; nothing is read.

    A clean file without its noisy counterpart is an InputFileError; so is, with `strict` (scoring a
    corpus, `sepipe evaluate`), a noisy file without its clean reference (a build ignores those)."""
    root = Path(root)
    clean_dir = _folder(root, VB_FOLDERS[("clean", split)], VB_LAYOUT)
    noisy_dir = _folder(root, VB_FOLDERS[("noisy", split)], VB_LAYOUT)
    return pair_by_name(noisy_dir, clean_dir, VB_LAYOUT, strict=strict)


def pair_by_name(noisy_dir: Path, clean_dir: Path, layout: str, strict: bool = True,
                 suffixes: tuple[str, ...] = (".wav",)) -> list[tuple[str, Path, Path]]:
    """(name, noisy, clean) of the audio files of two folders paired by file name, sorted by name.

    InputFileError naming the first file without its counterpart (a noisy file without its clean one
    only with `strict`), or the clean folder when it has no audio file; `layout` ends each line."""
    def listing(folder: Path) -> dict[str, Path]:
        return {p.name: p for p in sorted(folder.iterdir()) if p.suffix.lower() in suffixes and p.is_file()}

    noisy, clean = listing(noisy_dir), listing(clean_dir)
    for folder, files in ((noisy_dir, noisy if strict else True), (clean_dir, clean)):
        if not files:
            raise InputFileError(folder, f"no {'/'.join(suffixes)} files; {layout}")
    for name, path in clean.items():
        if name not in noisy:
            raise InputFileError(noisy_dir / name, f"missing: {path} has no noisy counterpart; {layout}")
    if strict:
        for name, path in noisy.items():
            if name not in clean:
                raise InputFileError(clean_dir / name, f"missing: {path} has no clean reference; {layout}")
    return [(Path(name).stem, noisy[name], path) for name, path in clean.items()]


def pick_valid_speakers(speakers: list[str], seed: int, where: Path) -> list[str]:
    speakers = sorted(set(speakers))
    if len(speakers) < 3:
        raise InputFileError(where, f"has {len(speakers)} training speaker(s); at least 3 are needed "
                             "(two are held out for validation)")
    if all(s in speakers for s in VB_VALID_SPEAKERS):
        return list(VB_VALID_SPEAKERS)
    rng = np.random.default_rng([seed, 41])
    return sorted(speakers[i] for i in rng.choice(len(speakers), size=2, replace=False))


def list_dns(root: str | Path) -> tuple[list[AudioFile], list[AudioFile]]:
    """(clean files, noise files), sorted, each checked to be 16 kHz."""
    root = Path(root)
    if not root.is_dir():
        raise InputFileError(root, f"corpus folder not found; {DNS_LAYOUT}")
    out = []
    for name in ("clean", "noise"):
        folder = _folder(root, name, DNS_LAYOUT)
        paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in DNS_SUFFIXES and p.is_file())
        if len(paths) < 3:
            raise InputFileError(folder, f"holds {len(paths)} audio file(s); at least 3 are needed "
                                 f"(train, valid and test each get their own); {DNS_LAYOUT}")
        out.append([AudioFile(p, check_audio(p)) for p in paths])
    return out[0], out[1]


def dns_group(path: Path) -> str:
    """The speaker group of a clean file: DNS reader id, VCTK speaker, else the file itself."""
    match = re.search(r"reader_(\d+)", path.name) or re.match(r"(p\d+)_", path.name)
    return match.group(0) if match else path.as_posix()


def dns_test_files(root: str | Path) -> list[tuple[str, Path, Path]]:
    """(fileid_N, noisy, clean) of a DNS-Challenge test folder, `<root>/noisy/*fileid_N.wav` paired with
    `<root>/clean/*fileid_N.wav` (e.g. `clnsp1_..._snr15_tl-21_fileid_158.wav` and `clean_fileid_158.wav`),
    sorted by id; nothing is read. InputFileError naming a file without its counterpart, a file without a
    fileid or two files of one id."""
    root = Path(root)
    if not root.is_dir():
        raise InputFileError(root, f"corpus folder not found; {DNS_TEST_LAYOUT}")
    found = []
    for name in ("noisy", "clean"):
        folder = _folder(root, name, DNS_TEST_LAYOUT)
        ids: dict[str, Path] = {}
        for path in sorted(p for p in folder.iterdir() if p.suffix.lower() in DNS_SUFFIXES and p.is_file()):
            match = re.search(r"fileid_(\d+)", path.stem)
            if match is None:
                raise InputFileError(path, f"no fileid_N in the name; {DNS_TEST_LAYOUT}")
            key = f"fileid_{int(match.group(1))}"
            if key in ids:
                raise InputFileError(path, f"{ids[key]} has the same {key}; {DNS_TEST_LAYOUT}")
            ids[key] = path
        found.append(ids)
    noisy, clean = found
    if not clean:
        raise InputFileError(root / "clean", f"no audio files; {DNS_TEST_LAYOUT}")
    for mine, other, what in ((clean, noisy, "noisy counterpart"), (noisy, clean, "clean reference")):
        for key, path in mine.items():
            if key not in other:
                raise InputFileError(path, f"missing: no {what} with {key}; {DNS_TEST_LAYOUT}")
    return [(key, noisy[key], clean[key]) for key in sorted(clean, key=lambda k: int(k.split("_")[1]))]


def split_groups(keys: list[str], seed: int, salt: int, fraction: float = 0.1) -> dict[str, str]:
    """Seeded assignment of each distinct key to train/valid/test (at least one each when >= 3 keys)."""
    distinct = sorted(set(keys))
    rng = np.random.default_rng([seed, salt])
    order = [distinct[i] for i in rng.permutation(len(distinct))]
    n = len(order)
    n_valid = max(1, int(round(fraction * n))) if n >= 3 else 0
    n_test = max(1, int(round(fraction * n))) if n >= 2 else 0
    assignment = {}
    for k, key in enumerate(order):
        assignment[key] = "valid" if k < n_valid else "test" if k < n_valid + n_test else "train"
    return assignment


def split_dns(clean: list[AudioFile], noise: list[AudioFile], seed: int) -> dict[str, dict[str, list[AudioFile]]]:
    """{split: {'clean': files, 'noise': files}}: speaker groups and noise files disjoint between splits."""
    clean_split = split_groups([dns_group(f.path) for f in clean], seed, salt=51)
    noise_split = split_groups([f.path.as_posix() for f in noise], seed, salt=52)
    out = {split: {"clean": [], "noise": []} for split in ("train", "valid", "test")}
    for f in clean:
        out[clean_split[dns_group(f.path)]]["clean"].append(f)
    for f in noise:
        out[noise_split[f.path.as_posix()]]["noise"].append(f)
    return out


def listing_fingerprint(root: str | Path, suffixes: tuple[str, ...] = DNS_SUFFIXES) -> str:
    """sha256 over every audio file's relative path, size and mtime: cheap change detection."""
    root = Path(root)
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.suffix.lower() in suffixes and p.is_file()):
        stat = path.stat()
        digest.update(f"{path.relative_to(root).as_posix()}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()
