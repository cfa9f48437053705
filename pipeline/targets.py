"""Named Ethos-U compile targets: hardware (what the board is) kept apart from compiler options.

`vela_configs/targets.yaml` names each target; its system configs and memory modes are
sections of `vela_configs/vela.ini` (values copied from Vela's bundled Arm/vela.ini). The folder
ships inside the package as `sepipe.vela_configs` and is found with importlib.resources, so an
installed wheel reads it from any working directory.
Loading is strict: unknown keys, an unknown accelerator, a section missing from the ini,
a system config of another NPU family (Vela accepts a U85 system config for a U55 without
a word), a memory mode whose areas the system config cannot hold, and duplicate ids are
ConfigErrors naming the file, the key, the value and what is valid.
"""

from __future__ import annotations

import atexit
import configparser
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Literal

from sepipe.config import _build
from sepipe.config_loading import read_yaml_file
from sepipe.errors import ConfigError, InputFileError


def _packaged_config_dir() -> Path:
    """The shipped `sepipe.vela_configs` folder as a real directory.

    Vela reads `--config` from disk and targets.yaml names vela.ini relative to itself, so a
    zipped install gets its few small files copied out together, once per process.
    """
    folder = resources.files("sepipe.vela_configs")
    if isinstance(folder, Path):
        return folder
    out = Path(tempfile.mkdtemp(prefix="sepipe-vela-configs-"))
    atexit.register(shutil.rmtree, out, True)
    for item in folder.iterdir():
        if item.is_file():
            (out / item.name).write_bytes(item.read_bytes())
    return out


CONFIG_DIR = _packaged_config_dir()           # targets.yaml, vela.ini, budgets.yaml
DEFAULT_TARGETS_FILE = CONFIG_DIR / "targets.yaml"

# Vela 5.2.0's --accelerator-config choices (ethosu.vela.architecture_features.Accelerator).
ACCELERATORS = ("ethos-u55-32", "ethos-u55-64", "ethos-u55-128", "ethos-u55-256", "ethos-u65-256",
                "ethos-u65-512", "ethos-u85-128", "ethos-u85-256", "ethos-u85-512", "ethos-u85-1024",
                "ethos-u85-2048")
ID_LETTER = {"U55": "H", "U65": "Y", "U85": "Z"}   # ML embedded evaluation kit convention
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_ID_RE = re.compile(r"^[A-Za-z][A-Za-z0-9]*$")


@dataclass(frozen=True)
class HardwareTarget:
    """The board: NPU configuration, system config (clock, memories) and memory mode.

    accelerator: Vela --accelerator-config (e.g. 'ethos-u55-128');
    system_config / memory_mode: section names in the Vela ini;
    clock_hz: NPU core clock (Hz), read from the system config's core_clock.
    """

    accelerator: str
    system_config: str
    memory_mode: str
    clock_hz: float

    @property
    def family(self) -> str:
        """'U55', 'U65' or 'U85'."""
        return _family(self.accelerator)

    @property
    def macs_per_cycle(self) -> int:
        """Peak int8 MACs per clock cycle (the number in the accelerator name)."""
        return int(self.accelerator.rsplit("-", 1)[1])


@dataclass(frozen=True)
class CompilerOptions:
    """How Vela compiles: optimise strategy and arena cache size (bytes; None: memory mode / Vela default)."""

    optimise: Literal["Performance", "Size"] = "Performance"
    arena_cache_size: int | None = None


@dataclass(frozen=True)
class Target:
    """A named target: `<name>` in targets.yaml, `id` in artifact names (H128, Y256, Z256 ...)."""

    name: str
    id: str
    hardware: HardwareTarget
    compiler: CompilerOptions
    vela_config: Path          # the ini passed to Vela with --config

    def vela_args(self) -> list[str]:
        """Every Vela option that selects the target, always explicit (never Vela's defaults)."""
        args = ["--config", str(self.vela_config),
                "--accelerator-config", self.hardware.accelerator,
                "--system-config", self.hardware.system_config,
                "--memory-mode", self.hardware.memory_mode,
                "--optimise", self.compiler.optimise]
        if self.compiler.arena_cache_size is not None:
            args += ["--arena-cache-size", str(self.compiler.arena_cache_size)]
        return args

    def columns(self) -> dict[str, object]:
        """The target's configuration columns carried by every report row."""
        return {"target": self.name, "target_id": self.id, "accelerator": self.hardware.accelerator,
                "system_config": self.hardware.system_config, "memory_mode": self.hardware.memory_mode,
                "clock_hz": self.hardware.clock_hz, "optimise": self.compiler.optimise,
                "arena_cache_size": self.compiler.arena_cache_size}


# --------------------------------------------------------------------------- YAML shape

@dataclass(frozen=True)
class _HardwareSpec:
    accelerator: str
    system_config: str
    memory_mode: str


@dataclass(frozen=True)
class _TargetSpec:
    id: str
    hardware: _HardwareSpec
    compiler: CompilerOptions = field(default_factory=CompilerOptions)


def load_targets(path: str | Path | None = None) -> dict[str, Target]:
    """Load and validate a targets file (default `vela_configs/targets.yaml`), in file order."""
    path = Path(path) if path is not None else DEFAULT_TARGETS_FILE
    raw = _read_yaml(path, "targets file")
    src = str(path)
    unknown = sorted(set(raw) - {"vela_config", "targets"})
    if unknown:
        raise ConfigError(src, unknown[0], raw[unknown[0]], "one of the keys ['targets', 'vela_config']")
    ini_name = raw.get("vela_config", "vela.ini")
    if not isinstance(ini_name, str):
        raise ConfigError(src, "vela_config", ini_name, "a path to a Vela .ini file, relative to this file")
    ini_path = (path.parent / ini_name).resolve()
    if not ini_path.is_file():
        raise ConfigError(src, "vela_config", ini_name, f"an existing Vela .ini file ({ini_path} not found)")
    ini = _read_ini(ini_path)
    entries = raw.get("targets")
    if not isinstance(entries, dict) or not entries:
        raise ConfigError(src, "targets", entries, "a mapping of target name -> {id, hardware, compiler}")

    targets: dict[str, Target] = {}
    ids: dict[str, str] = {}
    for name, entry in entries.items():
        key = f"targets.{name}"
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise ConfigError(src, key, name, "a lower-case name of letters, digits and '-'")
        spec = _build(_TargetSpec, entry, src, prefix=key + ".")
        hardware = _check_hardware(src, key, spec.hardware, ini, ini_path)
        _check_id(src, key, spec.id, hardware, ids)
        ids[spec.id] = name
        cache = spec.compiler.arena_cache_size
        if cache is not None and not 0 < cache <= 1 << 32:
            raise ConfigError(src, f"{key}.compiler.arena_cache_size", cache, "null or 1 to 4294967296 (bytes)")
        targets[name] = Target(name=name, id=spec.id, hardware=hardware, compiler=spec.compiler,
                               vela_config=ini_path)
    return targets


def get_target(name: str, targets: dict[str, Target] | None = None, path: str | Path | None = None) -> Target:
    """The target called `name`; ConfigError listing the valid names when there is none."""
    if targets is None:
        targets = load_targets(path)
    if name not in targets:
        source = path if path is not None else DEFAULT_TARGETS_FILE
        raise ConfigError(source, "target", name, "one of " + ", ".join(targets))
    return targets[name]


# --------------------------------------------------------------------------- checks

def _family(accelerator: str) -> str:
    return accelerator.split("-")[1].upper()


def _check_hardware(src: str, key: str, spec: _HardwareSpec, ini: configparser.ConfigParser,
                    ini_path: Path) -> HardwareTarget:
    if spec.accelerator not in ACCELERATORS:
        raise ConfigError(src, f"{key}.hardware.accelerator", spec.accelerator, "one of " + ", ".join(ACCELERATORS))
    family = _family(spec.accelerator)
    systems = _sections(ini, "System_Config.")
    fitting = [s for s in systems if s.startswith(f"Ethos_{family}_")]
    if spec.system_config not in systems:
        raise ConfigError(src, f"{key}.hardware.system_config", spec.system_config,
                          f"a system config of {ini_path.name} for Ethos-{family}: one of {', '.join(fitting)}")
    if spec.system_config not in fitting:
        raise ConfigError(src, f"{key}.hardware.system_config", spec.system_config,
                          f"a system config for {spec.accelerator} (Ethos-{family}), not another NPU family: "
                          f"one of {', '.join(fitting)}")
    modes = _sections(ini, "Memory_Mode.")
    usable = [m for m in modes if _memory_problem(ini, spec.system_config, m) is None]
    if spec.memory_mode not in modes:
        raise ConfigError(src, f"{key}.hardware.memory_mode", spec.memory_mode,
                          f"a memory mode of {ini_path.name}: one of {', '.join(usable)}")
    problem = _memory_problem(ini, spec.system_config, spec.memory_mode)
    if problem:
        raise ConfigError(src, f"{key}.hardware.memory_mode", spec.memory_mode,
                          f"a memory mode {spec.system_config} can hold ({problem}): one of {', '.join(usable)}")
    clock = _get(ini, f"System_Config.{spec.system_config}", "core_clock")
    try:
        clock_hz = float(clock)
    except (TypeError, ValueError):
        raise ConfigError(str(ini_path), f"System_Config.{spec.system_config}.core_clock", clock,
                          "a clock in Hz, e.g. 500e6") from None
    return HardwareTarget(spec.accelerator, spec.system_config, spec.memory_mode, clock_hz)


def _check_id(src: str, key: str, target_id: str, hardware: HardwareTarget, ids: dict[str, str]) -> None:
    letter = ID_LETTER[hardware.family]
    if not _ID_RE.match(target_id) or not target_id.startswith(letter):
        raise ConfigError(src, f"{key}.id", target_id,
                          f"letters and digits starting with '{letter}' for Ethos-{hardware.family} "
                          f"(e.g. {letter}{hardware.macs_per_cycle})")
    if target_id in ids:
        raise ConfigError(src, f"{key}.id", target_id, f"an id not already used (target '{ids[target_id]}' has it)")


def _memory_problem(ini: configparser.ConfigParser, system: str, mode: str) -> str | None:
    """Why `mode` cannot run on `system` (Vela's own rules, checked before Vela runs), or None."""
    ports = {"Axi0": _get(ini, f"System_Config.{system}", "axi0_port"),
             "Axi1": _get(ini, f"System_Config.{system}", "axi1_port")}
    areas = {role: _get(ini, f"Memory_Mode.{mode}", f"{role}_mem_area") for role in ("const", "arena", "cache")}
    if None in areas.values():
        return f"{mode} does not set const/arena/cache_mem_area"
    mem = {role: ports.get(port) for role, port in areas.items()}
    if mem["arena"] not in ("Sram", "Dram"):
        return f"its arena goes to {areas['arena']} = {mem['arena']}, which must be Sram or Dram"
    if mem["const"] == "Sram" and len(set(areas.values())) > 1:
        return f"its weights go to {areas['const']} = Sram while the arena does not, which Vela rejects"
    if mem["cache"] != "Sram":
        return f"its cache goes to {areas['cache']} = {mem['cache']}, which must be Sram"
    return None


def _get(ini: configparser.ConfigParser, section: str, key: str, depth: int = 0) -> str | None:
    """A key of an ini section, following Vela's `inherit=` chain."""
    if not ini.has_section(section) or depth > 8:
        return None
    if ini.has_option(section, key):
        return ini.get(section, key)
    if ini.has_option(section, "inherit"):
        return _get(ini, ini.get(section, "inherit"), key, depth + 1)
    return None


def _sections(ini: configparser.ConfigParser, prefix: str) -> list[str]:
    return [s[len(prefix):] for s in ini.sections() if s.startswith(prefix)]


def _read_ini(path: Path) -> configparser.ConfigParser:
    ini = configparser.ConfigParser()
    ini.optionxform = str   # Vela's keys are case-sensitive (Sram_clock_scale)
    try:
        ini.read_string(path.read_text(), source=str(path))
    except configparser.Error as exc:
        raise InputFileError(path, f"not a valid Vela .ini file ({str(exc).splitlines()[0]})") from None
    return ini


def _read_yaml(path: Path, what: str) -> dict:
    # within limits (size, UTF-8, aliases expanded): the budget file comes from a user's CI
    raw = read_yaml_file(Path(path), what)
    if not isinstance(raw, dict):
        raise InputFileError(path, f"{what} must be a YAML mapping")
    return raw
