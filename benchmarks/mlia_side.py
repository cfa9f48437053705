"""MLIA's side of benchmarks/mlia_compare.py: its own venv, its target profiles, one `mlia check` run.

MLIA lives in its own virtual environment (`.cache/mlia-venv` by default), created on first use
with `python3 -m venv` from a Python >= 3.10 and `pip install mlia-ethos-u ethos-u-vela==<our Vela
version>`; see benchmarks/README.md for why these packages and versions.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sepipe.deploy.vela import vela_version
from mlia_ours import read_summary

MLIA_PACKAGES = ["mlia-ethos-u"]          # the Ethos-U plugin; pulls the mlia core it needs
STAMP = ".sepipe-bench-installed"


def _python_version(python: str) -> tuple[int, int] | None:
    try:
        out = subprocess.run([python, "-c", "import sys; print(*sys.version_info[:2])"],
                             capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    major, minor = out.stdout.split()
    return int(major), int(minor)


def find_python(explicit: str | None) -> str:
    """A Python >= 3.10 for MLIA: mlia 0.12 needs >= 3.10; mlia-ethos-u 0.2.0 (with mlia 0.12.3) needs
    >= 3.12, on 3.10 / 3.11 pip falls back to mlia-ethos-u 0.1.0, which pins mlia 0.12.2."""
    if explicit:
        version = _python_version(explicit)
        if version is None or version < (3, 10):
            sys.exit(f"--python {explicit}: not a runnable Python >= 3.10 (found {version})")
        return explicit
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    candidates = []
    for minor in ("3.12", "3.11", "3.10"):   # 3.12 first: mlia-ethos-u 0.2.0 (mlia 0.12.3) needs >= 3.12
        candidates += sorted(pyenv.glob(f"{minor}.*/bin/python3"), reverse=True)
        if shutil.which(f"python{minor}"):
            candidates.append(Path(shutil.which(f"python{minor}")))
    if shutil.which("python3"):
        candidates.append(Path(shutil.which("python3")))
    for candidate in candidates:
        version = _python_version(str(candidate))
        if version is not None and (3, 10) <= version < (3, 14):
            return str(candidate)
    sys.exit("no Python 3.10 to 3.13 found for MLIA: pass --python /path/to/python3.11")


def setup_venv(venv: Path, python: str | None, force: bool = False) -> Path:
    """Create `venv` with MLIA + its Ethos-U plugin + our Vela version; return its bin folder."""
    bin_dir = venv / "bin"
    want = {"vela": vela_version()}
    stamp = venv / STAMP
    if not force and stamp.is_file() and (bin_dir / "mlia").is_file():
        if json.loads(stamp.read_text()).get("vela") == want["vela"]:
            return bin_dir
    interpreter = find_python(python)
    print(f"[setup] creating {venv} with {interpreter}", flush=True)
    if force and venv.exists():
        shutil.rmtree(venv)
    subprocess.run([interpreter, "-m", "venv", str(venv)], check=True)
    pip = [str(bin_dir / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run(pip + ["--upgrade", "pip"], check=True)
    subprocess.run(pip + MLIA_PACKAGES + [f"ethos-u-vela=={want['vela']}"], check=True)
    # MLIA's own route to its Vela backend (a no-op now that ethos-u-vela is there); it must say "installed"
    subprocess.run([str(bin_dir / "mlia"), "backend", "install", "vela", "--noninteractive"], check=True,
                   capture_output=True, text=True)
    stamp.write_text(json.dumps(want))
    return bin_dir


def venv_versions(bin_dir: Path) -> dict[str, str]:
    code = ("import json, sys; from importlib import metadata as m\n"
            "out = {'python': sys.version.split()[0]}\n"
            "for p in ('mlia', 'mlia-ethos-u', 'ethos-u-vela'):\n"
            "    try: out[p] = m.version(p)\n"
            "    except m.PackageNotFoundError: out[p] = 'not installed'\n"
            "print(json.dumps(out))")
    out = subprocess.run([str(bin_dir / "python"), "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def mlia_resources(bin_dir: Path) -> Path:
    out = subprocess.run([str(bin_dir / "python"), "-c",
                          "import mlia.target.ethos_u as m, pathlib; "
                          "print(pathlib.Path(m.__file__).parents[2] / 'resources')"],
                         capture_output=True, text=True, check=True)
    return Path(out.stdout.strip())



@dataclass
class Profile:
    """One MLIA built-in target profile (resources/target_profiles/<name>.toml)."""

    name: str
    accelerator: str
    system_config: str
    memory_mode: str
    arena_cache_size: int | None      # MLIA passes no --arena-cache-size: the memory mode's / Vela's


def read_profile(resources: Path, name: str) -> Profile | None:
    path = resources / "target_profiles" / f"{name}.toml"
    if not path.is_file():
        return None
    raw = tomllib.loads(path.read_text())
    cfg = raw["config"]
    return Profile(name, f"{raw['target_type']}-{cfg['mac']}", cfg["system_config"], cfg["memory_mode"],
                   cfg.get("arena_cache_size"))



@dataclass
class Mlia:
    profile: str
    ok: bool
    metrics: dict[str, float] = field(default_factory=dict)
    backend_config: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, str] = field(default_factory=dict)
    seconds: list[float] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    unavailable: list[str] = field(default_factory=list)
    error: str = ""


def run_mlia(bin_dir: Path, tflite: Path, profile: str, out_dir: Path, repeat: int) -> Mlia:
    result = Mlia(profile, ok=False)
    env = {**os.environ, "NO_COLOR": "1", "MLIA_NO_COLOR": "1", "COLUMNS": "200"}
    for i in range(repeat):
        folder = out_dir / f"mlia-{profile}-{i}"
        shutil.rmtree(folder, ignore_errors=True)
        command = [str(bin_dir / "mlia"), "check", str(tflite), "--performance", "--target-profile", profile,
                   "--output-dir", str(folder), "--json", "--noninteractive"]
        start = time.perf_counter()
        proc = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900)
        seconds = time.perf_counter() - start
        try:
            doc = json.loads(proc.stdout)
        except json.JSONDecodeError:
            tail = (proc.stderr.strip() or proc.stdout.strip()).splitlines()[-1:] or ["no output"]
            result.error = f"exit {proc.returncode}: {tail[0][:200]}"
            return result
        perf = [r for r in doc.get("results", []) if r.get("kind") == "performance"]
        if proc.returncode != 0 or not perf or perf[0].get("status") != "ok":
            reason = perf[0].get("status") if perf else "no performance result"
            result.error = f"exit {proc.returncode}: {reason}: {proc.stderr.strip()[-200:]}"
            return result
        result.seconds.append(seconds)
        result.metrics = {m["name"]: m["value"] for m in perf[0]["metrics"] if "value" in m}
        result.unavailable = [f"{m['name']} ({m.get('reason', '')})" for m in perf[0]["metrics"] if "value" not in m]
        result.warnings = perf[0].get("warnings", [])
        result.backend_config = (doc.get("backends") or [{}])[0].get("configuration", {})
        summaries = sorted(folder.glob("mlia-output/*_summary_*.csv"))
        result.summary = read_summary(summaries[0]) if summaries else {}
        result.ok = True
    return result
