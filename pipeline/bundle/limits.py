"""Reading an untrusted bundle within bounds: the zip's directory and a folder's files are checked against
fixed limits before a byte is extracted or hashed, and extraction is streamed with a byte cap.

A bundle crosses a team boundary, so `verify-bundle` treats it as hostile: a zip bomb (a small entry that
inflates to gigabytes), a million entries, names that climb out of the folder, or links to files elsewhere
are refused in one line (InputFileError, exit 2) instead of filling memory or the disk. The limits are far
above what `sepipe bundle` writes (a real bundle of a 1 MB model is under 10 MB and about 20 files).
"""

from __future__ import annotations

import lzma
import stat
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from sepipe.errors import InputFileError

_MIB = 1 << 20


@dataclass(frozen=True)
class Limits:
    entries: int = 256                  # files (and folders) in a bundle
    entry_bytes: int = 64 * _MIB        # one file, uncompressed (the C array of a ~10 MB model)
    total_bytes: int = 256 * _MIB       # all files, uncompressed
    ratio: float = 100.0                # uncompressed / compressed size of one zip entry ...
    ratio_from_bytes: int = _MIB        # ... checked for entries larger than this (small files compress well)


LIMITS = Limits()
_CHUNK = _MIB


def _mib(size: int) -> str:
    return f"{size / _MIB:.1f} MiB" if size >= _MIB else f"{size / 1024:.1f} KiB"


def check_zip_directory(zip_path: Path, archive: zipfile.ZipFile, limits: Limits) -> str:
    """The one top folder of a bundle zip, after checking its directory (names, counts, declared sizes,
    compression ratios) against `limits`; InputFileError naming the zip and the entry otherwise."""
    infos = archive.infolist()
    if len(infos) > limits.entries:
        raise InputFileError(zip_path, f"has {len(infos)} entries; a bundle has at most {limits.entries}")
    tops, total = set(), 0
    for info in infos:
        parts = PurePosixPath(info.filename).parts
        if (not parts or info.filename.startswith("/") or "\\" in info.filename or ".." in parts
                or ":" in parts[0] or "\x00" in info.filename):
            raise InputFileError(zip_path, f"entry {info.filename[:200]!r} is not a relative path inside the "
                                           "bundle folder")
        tops.add(parts[0])
        if info.file_size > limits.entry_bytes:
            raise InputFileError(zip_path, f"entry {info.filename[:200]!r} inflates to {_mib(info.file_size)}; "
                                           f"a bundle file is at most {_mib(limits.entry_bytes)}")
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size > limits.ratio_from_bytes and ratio > limits.ratio:
            raise InputFileError(zip_path, f"entry {info.filename[:200]!r} inflates {ratio:.0f} times "
                                           f"({_mib(info.compress_size)} to {_mib(info.file_size)}); at most "
                                           f"{limits.ratio:g} times is accepted (a zip bomb?)")
        total += info.file_size
    if total > limits.total_bytes:
        raise InputFileError(zip_path, f"inflates to {_mib(total)} in all; a bundle is at most "
                                       f"{_mib(limits.total_bytes)}")
    if len(tops) != 1 or any(len(PurePosixPath(i.filename).parts) == 1 and not i.is_dir() for i in infos):
        raise InputFileError(zip_path, "not a bundle zip (expected one top folder holding the bundle's files)")
    return tops.pop()


def extract(zip_path: Path, into: Path, limits: Limits = LIMITS) -> Path:
    """Extract a bundle zip into `into` (an empty folder the caller removes), streaming each entry with
    a cap of its declared size and of the limits: a directory that lies about sizes cannot write more.
    Returns the bundle folder."""
    try:
        with zipfile.ZipFile(zip_path) as archive:
            top = check_zip_directory(zip_path, archive, limits)
            written = 0
            for info in archive.infolist():
                target = into.joinpath(*PurePosixPath(info.filename).parts)
                if info.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                written += _copy_capped(zip_path, archive, info, target,
                                        min(info.file_size, limits.total_bytes - written))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, RuntimeError, EOFError, OSError,
            zlib.error, lzma.LZMAError) as exc:   # a corrupt, encrypted or oddly compressed entry
        raise InputFileError(zip_path, f"not a readable zip ({type(exc).__name__}: {str(exc)[:200]})") from None
    return into / top


def _copy_capped(zip_path: Path, archive: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path, cap: int) -> int:
    if target.exists():
        raise InputFileError(zip_path, f"entry {info.filename[:200]!r} appears twice")
    copied = 0
    with archive.open(info) as source, open(target, "wb") as sink:
        while chunk := source.read(min(_CHUNK, cap - copied + 1)):
            copied += len(chunk)
            if copied > cap:
                raise InputFileError(zip_path, f"entry {info.filename[:200]!r} inflates to more than the "
                                               f"{_mib(cap)} its directory declares")
            sink.write(chunk)
    return copied


def check_folder(root: Path, limits: Limits = LIMITS) -> None:
    """A bundle folder's files, before any is read: no links or special files (they could point at files
    outside the bundle, or at a device that never ends), and within the count and size limits."""
    count, total = 0, 0
    for path in _walk(root):
        info = path.lstat()
        rel = path.relative_to(root).as_posix()
        count += 1
        if count > limits.entries:
            raise InputFileError(root, f"holds more than {limits.entries} files and folders; a bundle has fewer")
        if stat.S_ISDIR(info.st_mode):
            continue
        if not stat.S_ISREG(info.st_mode):
            raise InputFileError(root, f"{rel} is a link or a special file; a bundle holds regular files only")
        if info.st_size > limits.entry_bytes:
            raise InputFileError(root, f"{rel} is {_mib(info.st_size)}; a bundle file is at most "
                                       f"{_mib(limits.entry_bytes)}")
        total += info.st_size
        if total > limits.total_bytes:
            raise InputFileError(root, f"holds more than {_mib(limits.total_bytes)} of files; a bundle holds less")


def _walk(root: Path):
    """Every path under `root`, without following links (rglob would follow a linked folder)."""
    stack = [root]
    while stack:
        folder = stack.pop()
        for path in sorted(folder.iterdir()):
            yield path
            if path.is_dir() and not path.is_symlink():
                stack.append(path)

