"""Our side of benchmarks/mlia_compare.py: the models, our targets matched to MLIA's profiles, our compile runs.

Where MLIA's built-in profile differs from our targets.yaml (system config, memory mode, arena
cache size), ours is also compiled with MLIA's settings through a targets file written to the work
folder ("matched" rows), so the figures compare like for like.
"""

from __future__ import annotations

import configparser
import csv
import os
import re
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")     # build_tiny imports TensorFlow
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from sepipe.deploy.compile import compile_model  # noqa: E402
from sepipe.errors import PipelineError  # noqa: E402
from sepipe.targets import Target, get_target  # noqa: E402

if TYPE_CHECKING:
    from mlia_side import Profile

ROOT = Path(__file__).resolve().parents[1]
TINY_PATH = ROOT / ".cache" / "mlia-bench" / "tiny_gru_int8.tflite"
# Vela summary CSV columns that name the configuration rather than measure the model
CONFIG_COLUMNS = ("accelerator_configuration", "system_config", "memory_mode", "core_clock", "arena_cache_size")
SKIP_COLUMNS = ("experiment", "network")


def _ini(path: Path) -> configparser.ConfigParser:
    ini = configparser.ConfigParser()
    ini.optionxform = str
    ini.read(path)
    return ini


def _resolved(ini: configparser.ConfigParser, section: str) -> dict[str, str]:
    """The keys of a Vela ini section with its `inherit=` chain applied."""
    if not ini.has_section(section):
        return {}
    values = dict(ini.items(section))
    parent = values.pop("inherit", None)
    return {**(_resolved(ini, parent) if parent else {}), **values}


def ini_differences(ours: Path, theirs: Path, system_config: str, memory_mode: str) -> list[str]:
    a, b = _ini(ours), _ini(theirs)
    diffs = []
    for section in (f"System_Config.{system_config}", f"Memory_Mode.{memory_mode}"):
        ra, rb = _resolved(a, section), _resolved(b, section)
        for key in sorted(set(ra) | set(rb)):
            if ra.get(key) != rb.get(key):
                diffs.append(f"{section}.{key}: ours {ra.get(key, '(absent)')}, MLIA {rb.get(key, '(absent)')}")
    return diffs


def effective_cache(ini_path: Path, memory_mode: str, explicit: int | None) -> int | None:
    """The arena cache size Vela will use: --arena-cache-size, else the memory mode's (inherit= applied),
    else None (Vela's own default: the whole SRAM in Shared_Sram, 1 GiB in Dedicated_Sram)."""
    if explicit is not None:
        return int(explicit)
    value = _resolved(_ini(ini_path), f"Memory_Mode.{memory_mode}").get("arena_cache_size")
    return int(float(value)) if value is not None else None


def cache_text(size: int | None, where: str) -> str:
    return f"{size} B ({where})" if size is not None else "Vela default"


def matched_target(ours: Target, profile: Profile, mlia_ini: Path, folder: Path) -> Target | None:
    """Our target rebuilt with MLIA's system config, memory mode and effective arena cache size,
    or None when targets.yaml already names the same ones.

    The targets file goes to `folder`; it points at our vela.ini when that holds MLIA's system config
    and memory mode, else at MLIA's bundled vela.ini."""
    cache = effective_cache(mlia_ini, profile.memory_mode, profile.arena_cache_size)
    if (ours.hardware.system_config, ours.hardware.memory_mode) == (profile.system_config, profile.memory_mode) \
            and effective_cache(ours.vela_config, ours.hardware.memory_mode,
                                ours.compiler.arena_cache_size) == cache \
            and ours.compiler.optimise == "Performance":
        return None
    ini = _ini(ours.vela_config)
    ini_path = ours.vela_config if (ini.has_section(f"System_Config.{profile.system_config}")
                                    and ini.has_section(f"Memory_Mode.{profile.memory_mode}")) else mlia_ini
    targets_file = folder / f"targets_matched_to_mlia_{'ours' if ini_path == ours.vela_config else 'mlia'}_ini.yaml"
    name = f"{ours.name}-mlia"
    text = targets_file.read_text() if targets_file.is_file() else f"vela_config: {ini_path}\ntargets:\n"
    text += (f"  {name}:\n    id: {ours.id}M\n"
             f"    hardware: {{accelerator: {profile.accelerator}, system_config: {profile.system_config}, "
             f"memory_mode: {profile.memory_mode}}}\n"
             f"    compiler: {{optimise: Performance, arena_cache_size: {cache if cache is not None else 'null'}}}\n")
    targets_file.write_text(text)
    return get_target(name, path=targets_file)



def build_tiny(path: Path = TINY_PATH) -> Path:
    """The tiny streaming GRU of tests/test_compile.py (random weights, random calibration), int8."""
    if path.is_file():
        return path
    from sepipe.models.mask_rnn import MaskRnnConfig
    from sepipe.quantize.convert import convert_untrained

    return convert_untrained(MaskRnnConfig(family="gru", input_units=32, rnn_units=24, dense_units=32), 257, path)


def targets_file_of(target: Target, folder: Path) -> Path:
    for path in folder.glob("targets_matched_to_mlia_*.yaml"):
        if f"  {target.name}:" in path.read_text():
            return path
    raise FileNotFoundError(target.name)


def model_name(path: Path) -> str:
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", path.stem)
    return name.removesuffix("_int8") or "model"



def read_summary(path: Path) -> dict[str, str]:
    with open(path, newline="") as fh:
        return next(csv.DictReader(fh))


def summary_differences(a: dict[str, str], b: dict[str, str]) -> list[str]:
    """Columns of two Vela summary CSVs that differ (numbers compared as numbers)."""
    diffs = []
    for key in sorted(set(a) & set(b)):
        if key in SKIP_COLUMNS:
            continue
        va, vb = a[key], b[key]
        try:
            same = float(va) == float(vb)
        except ValueError:
            same = va == vb
        if not same:
            diffs.append(f"{key} {va} vs {vb}")
    return diffs


@dataclass
class Ours:
    target: str
    ok: bool
    record: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, str] = field(default_factory=dict)
    seconds: list[float] = field(default_factory=list)     # compile_model wall time per repeat
    cli_s: float | None = None
    error: str = ""


def run_ours(tflite: Path, target: Target, out_dir: Path, name: str, repeat: int,
             targets_file: Path | None) -> Ours:
    result = Ours(target.name, ok=False)
    for i in range(repeat):
        folder = out_dir / f"ours-{target.name}-{i}"
        start = time.perf_counter()
        try:
            res = compile_model(tflite, target, folder, name)
        except PipelineError as exc:
            result.error = str(exc).splitlines()[0][:200]
            return result
        result.seconds.append(time.perf_counter() - start)
        result.record, result.summary, result.ok = res.record, read_summary(res.summary_csv), True
    command = [str(ROOT / ".venv" / "bin" / "sepipe"), "compile", str(tflite), "--target", target.name,
               "--out", str(out_dir / f"cli-{target.name}")]
    if targets_file is not None:
        command += ["--targets-file", str(targets_file)]
    start = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    if proc.returncode == 0:
        result.cli_s = time.perf_counter() - start
    return result
