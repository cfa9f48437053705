"""Fetch and unpack the Debian packages the dataset is made from.

`apt-get download <pkg>` puts `<pkg>_<version>_<arch>.deb` into `<cache_dir>/debs`
(no root needed, nothing is installed; it downloads into a private temporary folder and the finished .deb
is renamed into place, so another process building a dataset beside it, or a rerun after an interrupted
download, never takes a half-written .deb for a cached one); `dpkg-deb -x` unpacks it into
`<cache_dir>/unpacked/<pkg>/` (a temporary folder renamed into place, so an
interrupted unpack is redone). A download failure runs `apt-get update` once
and retries. Every command is an argument list, never a shell string.

Each unpacked folder holds `.deb.json` (the .deb's name, size, mtime, sha256,
version), so later runs know the package's hash without rehashing the .deb.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from sepipe.artifacts import sha256_file, write_json
from sepipe.errors import ToolError

log = logging.getLogger(__name__)

MARKER = ".deb.json"


@dataclass(frozen=True)
class Package:
    name: str
    version: str
    deb: Path
    sha256: str
    root: Path           # the unpacked tree (contains usr/...)
    licence: str         # licence names from the package's copyright file

    def record(self) -> dict:
        return {"version": self.version, "deb": self.deb.name, "sha256": self.sha256, "licence": self.licence}


def fetch_packages(names: list[str] | tuple[str, ...], cache_dir: str | Path) -> dict[str, Package]:
    """Download (if needed) and unpack (if needed) each package; return them by name."""
    cache_dir = Path(cache_dir)
    debs_dir = cache_dir / "debs"
    unpacked_dir = cache_dir / "unpacked"
    debs_dir.mkdir(parents=True, exist_ok=True)
    unpacked_dir.mkdir(parents=True, exist_ok=True)
    state = {"updated": False}
    packages = {}
    for name in names:
        deb = find_deb(debs_dir, name)
        if deb is None:
            deb = _download(name, debs_dir, state)
        packages[name] = _unpack(name, deb, unpacked_dir / name)
    return packages


def find_deb(debs_dir: Path, name: str) -> Path | None:
    """The cached .deb of `name` (the most recently downloaded when several)."""
    candidates = [p for p in Path(debs_dir).glob(f"{name}_*.deb") if p.name.split("_")[0] == name]
    if not candidates:
        return None
    return max(candidates, key=lambda p: (p.stat().st_mtime_ns, p.name))


def cached_hashes(names: list[str] | tuple[str, ...], cache_dir: str | Path) -> dict[str, str | None]:
    """sha256 of each cached .deb, from its unpack marker when still valid; None when not cached.

    Cheap (no download, no unpack): used to decide whether a built dataset is current.
    """
    cache_dir = Path(cache_dir)
    out: dict[str, str | None] = {}
    for name in names:
        deb = find_deb(cache_dir / "debs", name)
        if deb is None:
            out[name] = None
            continue
        marker = _read_marker(cache_dir / "unpacked" / name)
        out[name] = marker["sha256"] if _marker_matches(marker, deb) else sha256_file(deb)
    return out


def _download(name: str, debs_dir: Path, state: dict) -> Path:
    log.info("downloading Debian package %s (apt-get download)", name)
    for attempt in range(2):
        with tempfile.TemporaryDirectory(dir=debs_dir, prefix=f".{name}.") as tmp:
            result = _run(["apt-get", "download", name], cwd=Path(tmp))
            fetched = find_deb(Path(tmp), name)
            if result.returncode == 0 and fetched is not None:
                os.replace(fetched, debs_dir / fetched.name)
                return debs_dir / fetched.name
        if attempt == 0 and not state["updated"]:
            log.warning("apt-get download %s failed; running apt-get update once and retrying", name)
            state["updated"] = True
            update = _run(["apt-get", "update"], cwd=debs_dir)
            if update.returncode != 0:
                log.warning("apt-get update failed: %s", _tail(update))
            continue
        break
    raise ToolError("apt-get", f"could not download package '{name}' into {debs_dir}: {_tail(result)}. "
                    "Check network access and the apt sources, or place the .deb there by hand.")


def _unpack(name: str, deb: Path, target: Path) -> Package:
    marker = _read_marker(target)
    if _marker_matches(marker, deb) and (target / "usr").is_dir():
        return _package(name, deb, target, marker)
    log.info("unpacking %s (dpkg-deb -x)", deb.name)
    stat = deb.stat()
    version = _deb_field(deb, "Version")
    digest = sha256_file(deb)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=target.parent))
    try:
        result = _run(["dpkg-deb", "-x", str(deb), str(tmp)])
        if result.returncode != 0:
            raise ToolError("dpkg-deb", f"could not unpack {deb}: {_tail(result)}")
        marker = {"deb": deb.name, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns,
                  "sha256": digest, "version": version}
        write_json(tmp / MARKER, marker)
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return _package(name, deb, target, marker)


def _package(name: str, deb: Path, root: Path, marker: dict) -> Package:
    return Package(name=name, version=marker["version"], deb=deb, sha256=marker["sha256"],
                   root=root, licence=read_licence(root, name))


def read_licence(root: Path, name: str) -> str:
    """Licence names from /usr/share/doc/<pkg>/copyright: DEP-5 `License:` lines, else the licences a free-text
    file names (`free_text_licences`), else its first sentence naming one."""
    path = Path(root) / "usr" / "share" / "doc" / name / "copyright"
    if not path.exists():
        return "unknown (no copyright file)"
    text = path.read_text(errors="replace")
    names = []
    for match in re.finditer(r"^License:[ \t]*(\S.*)$", text, flags=re.MULTILINE):
        value = match.group(1).strip()
        if value not in names:
            names.append(value)
    if names:
        return ", ".join(names)
    named = free_text_licences(text)
    if named:
        return ", ".join(named)
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if re.search(r"licen[cs]e|Creative Commons|GNU General Public", line, flags=re.IGNORECASE):
            sentence = " ".join(part.strip() for part in lines[max(0, i - 1):i + 2] if part.strip())
            return sentence[:300]
    return "unknown (see copyright file)"


_VERSION = r"(?:,? as published by the Free Software Foundation)?[;,]? (?:either )?(?:version|v) ?(\d(?:\.\d)?))?"
_FREE_TEXT = (   # (regex on the whitespace-normalised text, group 1 the version if any; short name without it)
    (r"Creative Commons Attribution[- ]ShareAlike[ -]?(?:license )?(\d\.\d)?", "CC-BY-SA"),
    (r"Creative Commons Attribution (?!ShareAlike)[ -]?(\d\.\d)?", "CC-BY"),
    (r"GNU (?:Lesser|Library) General Public License(?:" + _VERSION, "LGPL"),
    (r"GNU General Public License(?:" + _VERSION, "GPL"),
    (r"\bpublic domain\b()", "public-domain"),
)


def free_text_licences(text: str) -> list[str]:
    """Short names (SPDX style: GPL-2+, CC-BY-SA-3.0) of the licences a copyright file that is not DEP-5 names,
    in order of mention; an unversioned name is dropped where the same licence is also named with a version."""
    flat = " ".join(text.split())
    found: list[tuple[int, str]] = []
    for pattern, base in _FREE_TEXT:
        for match in re.finditer(pattern, flat, flags=re.IGNORECASE):
            version = match.group(1) or ""
            later = "+" if version and re.match(r"[^.]{0,60}any later version", flat[match.end():]) else ""
            found.append((match.start(), f"{base}-{version}{later}" if version else base))
    names = list(dict.fromkeys(name for _, name in sorted(found)))
    return [n for n in names if not any(other.startswith(n + "-") for other in names)]


def _deb_field(deb: Path, field: str) -> str:
    result = _run(["dpkg-deb", "-f", str(deb), field])
    if result.returncode != 0:
        raise ToolError("dpkg-deb", f"could not read the {field} of {deb}: {_tail(result)}")
    return result.stdout.strip()


def _read_marker(target: Path) -> dict:
    try:
        return json.loads((target / MARKER).read_text())
    except (OSError, ValueError):
        return {}


def _marker_matches(marker: dict, deb: Path) -> bool:
    if not marker:
        return False
    stat = deb.stat()
    return (marker.get("deb") == deb.name and marker.get("size") == stat.st_size
            and marker.get("mtime_ns") == stat.st_mtime_ns and bool(marker.get("sha256")))


def _run(args: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(args, cwd=cwd, capture_output=True, text=True, check=False,
                              env={**os.environ, "LC_ALL": "C"})
    except FileNotFoundError:
        raise ToolError(args[0], f"'{args[0]}' is not installed; the Debian data needs apt-get and dpkg-deb "
                        "(use data.source: voicebank or dns with your own corpus otherwise)") from None


def _tail(result: subprocess.CompletedProcess) -> str:
    text = (result.stderr or result.stdout or "").strip().splitlines()
    return " | ".join(text[-3:]) if text else f"exit code {result.returncode}"
