"""Helpers of the hostile-bundle tests (a helper module, not a test module): edit a copy of a real
bundle as an attacker would (the hashes recomputed so only the edit is left to catch), and run
`sepipe verify-bundle` in a child process under a memory and time bound, as the firmware team's CI would."""

from __future__ import annotations

import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

MANIFEST, SUMS = "model_manifest.json", "SHA256SUMS"
MEMORY_BOUND = 3 << 30      # address space of the verifying process (and its TFLite Micro child)
TIME_BOUND = 120            # seconds


TARGET = "ethos-u55-128"
FRAMES = 20                 # golden frames: enough to re-run, few enough for a fast fuzz


def tiny_config(small_data_config, runs_dir, name="tinyh"):
    from sepipe.config import experiment_from_dict

    return experiment_from_dict({
        "name": name, "seed": 5, "runs_dir": str(runs_dir), "data": {"cache_dir": small_data_config.cache_dir},
        "model": {"family": "gru", "input_units": 16, "rnn_units": 16, "rnn_layers": 1, "dense_units": 16},
        "train": {"epochs": 1, "steps_per_epoch": 2, "batch_size": 4, "valid_files": 1},
        "convert": {"calibration_files": 1, "calibration_frames": 32},
        "compile": {"targets": [TARGET]},
    })


@pytest.fixture(scope="module")
def tiny_run(small_dataset, small_data_config, tmp_path_factory):
    """A tiny run trained (two steps), converted and compiled for TARGET: what `sepipe bundle` reads."""
    from sepipe import experiment as exp

    cfg = tiny_config(small_data_config, tmp_path_factory.mktemp("runs"))
    dataset = exp.stage_data(cfg, build=False)
    exp.stage_train(cfg, dataset, progress=False)
    exp.stage_convert(cfg, dataset, cfg.variants[0], progress=False)
    exp.stage_compile(cfg, cfg.variants[0])
    return cfg


@pytest.fixture(scope="module")
def bundle(tiny_run, tmp_path_factory):
    """The bundle folder of the tiny run (its zip beside it), never written by a test: copy it first."""
    from sepipe.bundle import make_bundle

    return make_bundle(tiny_run.run_dir, "ptq", TARGET, out_dir=tmp_path_factory.mktemp("bundles"), frames=FRAMES)


def copy_bundle(folder: Path, into: Path) -> Path:
    return Path(shutil.copytree(folder, into / folder.name))


def _files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def rehash(root: Path) -> None:
    """Recompute the manifest's `files` (where it is an object with a `files` object) and SHA256SUMS over
    the folder as it is now, as an attacker who edits a bundle would."""
    try:
        manifest = json.loads((root / MANIFEST).read_text())
    except (ValueError, UnicodeDecodeError, FileNotFoundError, RecursionError):
        manifest = None
    if isinstance(manifest, dict) and isinstance(manifest.get("files"), dict):
        manifest["files"] = {rel: _sha(root / rel) for rel in _files(root) if rel not in (MANIFEST, SUMS)}
        (root / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    (root / SUMS).write_text("".join(f"{_sha(root / rel)}  {rel}\n" for rel in _files(root) if rel != SUMS))


def edit_manifest(root: Path, edit) -> Path:
    """Apply `edit(manifest) -> new manifest (any JSON value)` and recompute every hash."""
    manifest = json.loads((root / MANIFEST).read_text())
    (root / MANIFEST).write_text(json.dumps(edit(manifest), indent=2, sort_keys=True) + "\n")
    rehash(root)
    return root


def zip_folder(folder: Path, zip_path: Path, extra: dict[str, bytes] | None = None) -> Path:
    """`folder` as a bundle zip (`<name>/...` entries), plus `extra` entries {name in the folder: bytes}."""
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as archive:
        for rel in _files(folder):
            if rel not in (extra or {}):
                archive.write(folder / rel, f"{folder.name}/{rel}")
        for rel, data in (extra or {}).items():
            archive.writestr(f"{folder.name}/{rel}", data, compresslevel=9)
    return zip_path


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_BOUND, MEMORY_BOUND))


def run_verify(path: Path, *options: str, env: dict[str, str] | None = None,
               timeout: float = TIME_BOUND) -> subprocess.CompletedProcess:
    """`sepipe -q verify-bundle PATH` in a child process with at most MEMORY_BOUND of address space."""
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", "TMPDIR": str(path.parent), **(env or {})}
    return subprocess.run([sys.executable, "-m", "sepipe.cli", "-q", "verify-bundle", *options, str(path)],
                          capture_output=True, text=True, errors="replace", timeout=timeout,
                          preexec_fn=_limit_memory, env=full_env)


def one_line_outcome(proc: subprocess.CompletedProcess) -> str | None:
    """None when `proc` kept the promise (exit 0; exit 1 with one line per problem and a summary; exit 2
    with exactly one `sepipe: error:` line), else what broke it."""
    err = [line for line in proc.stderr.splitlines() if line.strip()]
    if "Traceback" in proc.stderr or proc.returncode not in (0, 1, 2):
        return f"exit {proc.returncode}: {(err or ['no stderr'])[-1][:300]} (stderr: {proc.stderr[-1000:]})"
    if proc.returncode == 2 and (len(err) != 1 or not err[0].startswith("sepipe: error: ")):
        return f"exit 2 without one error line: {err[-5:]}"
    if proc.returncode == 1 and (len(err) != 1 or "problem(s)" not in err[0] or not proc.stdout.strip()):
        return f"exit 1 without problems and a summary: {err[-5:]} {proc.stdout[-500:]}"
    if any(len(line) > 2000 for line in proc.stdout.splitlines() + err):
        return "a line over 2000 characters"
    return None
