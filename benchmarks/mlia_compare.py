#!/usr/bin/env python3
"""Benchmark: our Vela compile (sepipe.compile) against Arm MLIA's `mlia check --performance`.

Not part of CI. Run with the project venv (it imports `pipeline`):

    TF_USE_LEGACY_KERAS=1 .venv/bin/python benchmarks/mlia_compare.py            # runs/*/*_int8.tflite
    .venv/bin/python benchmarks/mlia_compare.py --tiny runs/demo/demo_ptq_int8.tflite
    .venv/bin/python benchmarks/mlia_compare.py --setup                           # only (re)build MLIA's venv

MLIA lives in its own virtual environment, `.cache/mlia-venv` (git-ignored), created on first use
with `python3 -m venv` from a Python >= 3.10 (`--python`, else pyenv 3.12 / 3.11 / 3.10, else
python3) and `pip install mlia-ethos-u ethos-u-vela==<our Vela version>`. MLIA 0.12 is a plugin
core: `pip install mlia` alone has no target profiles; the Ethos-U target profiles and the Vela
backend are the `mlia-ethos-u` plugin: 0.2.0 (mlia 0.12.3) on Python >= 3.12, 0.1.0 (pins
mlia 0.12.2) on 3.10 / 3.11; same profiles and vela.ini in both. The Vela backend
is the `ethos-u-vela` package itself (what `mlia backend install vela` pip-installs, unpinned),
pinned here to our version so the comparison is compiler against compiler, not version against
version. After setup everything runs offline (the Corstone FVP backends would need downloads and
are not used).

For every model x target it runs
  (a) `compile_model` in process (the wall time of the call: Vela subprocess + parsing + record),
      best-of/median over --repeat runs, and once `sepipe compile MODEL --target T` (the total
      including process start);
  (b) `mlia check MODEL --performance --target-profile T --json --output-dir D` (wall time of
      the process), parsing the JSON metrics (schema 1.2.0: `results[].metrics[]` name/unit/value;
      memory in bytes, inference time in ms) and the Vela summary CSV MLIA leaves in D.
Where MLIA's built-in profile (TOML in the mlia-ethos-u package) differs from our targets.yaml
(system config, memory mode, arena cache size), ours is also compiled with MLIA's settings through
a targets file written to a temporary folder ("matched" rows), so the figures compare like for like.
Results: a Markdown report printed and written to benchmarks/results/mlia_compare.md
(plus mlia_compare.json with every raw figure).
"""

from __future__ import annotations

import argparse
import configparser
import csv
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from sepipe.compile import compile_model, vela_version  # noqa: E402
from sepipe.errors import PipelineError  # noqa: E402
from sepipe.targets import DEFAULT_TARGETS_FILE, Target, get_target, load_targets  # noqa: E402

DEFAULT_VENV = ROOT / ".cache" / "mlia-venv"
DEFAULT_TARGETS = ["ethos-u55-128", "ethos-u55-256", "ethos-u65-256", "ethos-u85-256"]
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "mlia_compare.md"
TINY_PATH = ROOT / ".cache" / "mlia-bench" / "tiny_gru_int8.tflite"
MLIA_PACKAGES = ["mlia-ethos-u"]          # the Ethos-U plugin; pulls the mlia core it needs
STAMP = ".sepipe-bench-installed"
# Vela summary CSV columns that name the configuration rather than measure the model
CONFIG_COLUMNS = ("accelerator_configuration", "system_config", "memory_mode", "core_clock", "arena_cache_size")
SKIP_COLUMNS = ("experiment", "network")


# --------------------------------------------------------------------------- MLIA's venv

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


# --------------------------------------------------------------------------- configurations

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


def _cache_text(size: int | None, where: str) -> str:
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


# --------------------------------------------------------------------------- models

def build_tiny(path: Path = TINY_PATH) -> Path:
    """The tiny streaming GRU of tests/test_compile.py (random weights, random calibration), int8."""
    if path.is_file():
        return path
    from sepipe.config import ModelConfig
    from sepipe.convert import convert_untrained

    return convert_untrained(ModelConfig(family="gru", input_units=32, rnn_units=24, dense_units=32), 257, path)


def _targets_file_of(target: Target, folder: Path) -> Path:
    for path in folder.glob("targets_matched_to_mlia_*.yaml"):
        if f"  {target.name}:" in path.read_text():
            return path
    raise FileNotFoundError(target.name)


def model_name(path: Path) -> str:
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", path.stem)
    return name.removesuffix("_int8") or "model"


# --------------------------------------------------------------------------- runs

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


# --------------------------------------------------------------------------- report

def _fmt(value: float | None, digits: int = 1) -> str:
    if value is None:
        return "–"
    if abs(value) >= 1000 and digits == 0:
        return f"{value:,.0f}"
    return f"{value:,.{digits}f}"


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _mlia_kib(m: Mlia, *names: str) -> float | None:
    if not m.ok:
        return None
    return sum(float(m.metrics.get(n, 0.0)) for n in names) / 1024


def row(model: str, label: str, ours: Ours, mlia: Mlia) -> str:
    oc = ours.record.get("cycles_total") if ours.ok else None
    mc = mlia.metrics.get("total_cycles") if mlia.ok else None
    ratio = f"{mc / oc:.4f}" if oc and mc else "–"
    o_sram = ours.record.get("sram_memory_used_kib") if ours.ok else None
    o_ext = (ours.record.get("flash_kib", 0.0) + ours.record.get("dram_memory_used_kib", 0.0)) if ours.ok else None
    m_sram = _mlia_kib(mlia, "sram_memory_used")
    m_ext = _mlia_kib(mlia, "on_chip_flash_memory_used", "off_chip_flash_memory_used", "dram_memory_used")
    o_w = ours.record.get("total_npu_encoded_weights_bytes") if ours.ok else None
    m_w = mlia.metrics.get("total_npu_encoded_weights") if mlia.ok else None
    cells = [model, label,
             _fmt(oc, 0) if ours.ok else f"failed: {ours.error}",
             _fmt(mc, 0) if mlia.ok else f"failed: {mlia.error}",
             ratio, _fmt(o_sram, 2), _fmt(m_sram, 2), _fmt(o_ext, 1), _fmt(m_ext, 1),
             _fmt(o_w, 0), _fmt(m_w, 0),
             _fmt(_median(ours.seconds), 2), _fmt(ours.cli_s, 2), _fmt(_median(mlia.seconds), 2)]
    return "| " + " | ".join(cells) + " |"


HEADER = ("| model | target (config) | our cycles | MLIA cycles | MLIA/ours | our SRAM KiB | MLIA SRAM KiB "
          "| our flash+DRAM KiB | MLIA flash+DRAM KiB | our encoded weights B | MLIA encoded weights B "
          "| our s (in process) | our s (`sepipe compile`) | MLIA s (`mlia check`) |\n"
          "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("models", nargs="*", type=Path, help="int8 .tflite files (default: runs/*/*_int8.tflite)")
    ap.add_argument("--tiny", action="store_true", help="add the tiny streaming GRU of the tests (built once)")
    ap.add_argument("--targets", nargs="+", default=DEFAULT_TARGETS, help="targets.yaml names = MLIA profiles")
    ap.add_argument("--repeat", type=int, default=3, help="runs per model x target per tool (median time)")
    ap.add_argument("--venv", type=Path, default=DEFAULT_VENV, help="MLIA's virtual environment")
    ap.add_argument("--python", help="interpreter (>= 3.10) for MLIA's venv")
    ap.add_argument("--setup", action="store_true", help="(re)create MLIA's venv and stop")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="Markdown report (a .json goes beside it)")
    ap.add_argument("--keep", action="store_true", help="keep the work folder with every artifact")
    args = ap.parse_args(argv)

    if args.setup:
        bin_dir = setup_venv(args.venv, args.python, force=True)
        print(json.dumps(venv_versions(bin_dir)))
        return 0
    bin_dir = setup_venv(args.venv, args.python)
    versions = venv_versions(bin_dir)
    resources = mlia_resources(bin_dir)
    mlia_ini = resources / "vela" / "vela.ini"

    models = [m.resolve() for m in args.models] or sorted(ROOT.glob("runs/*/*_int8.tflite"))
    if args.tiny or not models:
        models.insert(0, build_tiny())
    for m in models:
        if not m.is_file():
            sys.exit(f"{m}: no such file")

    work = Path(tempfile.mkdtemp(prefix="mlia-compare-"))
    ours_targets = load_targets()
    configs, lines, raw = [], [], []
    plan = []
    for name in args.targets:
        if name not in ours_targets:
            sys.exit(f"{name}: not in {DEFAULT_TARGETS_FILE}")
        t = ours_targets[name]
        p = read_profile(resources, name)
        matched = matched_target(t, p, mlia_ini, work) if p else None
        plan.append((t, p, matched))
        ini_diff = ini_differences(t.vela_config, mlia_ini, p.system_config, p.memory_mode) if p else []
        ours_cache = effective_cache(t.vela_config, t.hardware.memory_mode, t.compiler.arena_cache_size)
        where = "targets.yaml" if t.compiler.arena_cache_size is not None else f"{t.hardware.memory_mode} in our ini"
        configs.append(
            f"| {name} | {t.hardware.system_config} / {t.hardware.memory_mode} / {_cache_text(ours_cache, where)} | "
            + (f"{p.system_config} / {p.memory_mode} / "
               f"{_cache_text(effective_cache(mlia_ini, p.memory_mode, p.arena_cache_size), p.memory_mode + ' in MLIA ini')} | "
               f"{'same' if matched is None else 'names differ: matched row added'} | "
               f"{'; '.join(ini_diff) or 'identical'} |" if p else "no such MLIA profile | – | – |"))

    for tflite in models:
        name = model_name(tflite)
        for target, profile, matched in plan:
            print(f"[run] {name} x {target.name}", flush=True)
            ours = run_ours(tflite, target, work / name, name, args.repeat, None)
            mlia = run_mlia(bin_dir, tflite, profile.name, work / name, args.repeat) if profile else \
                Mlia(target.name, ok=False, error="no MLIA profile")
            entries = [("as configured", ours)]
            if matched is not None:
                entries.append(("matched to MLIA", run_ours(tflite, matched, work / name, name, args.repeat,
                                                              _targets_file_of(matched, work))))
            for label, o in entries:
                lines.append(row(tflite.name, f"{target.name} ({label})", o, mlia))
                same_cfg = summary_differences({k: o.summary.get(k, "") for k in CONFIG_COLUMNS},
                                               {k: mlia.summary.get(k, "") for k in CONFIG_COLUMNS}) \
                    if o.ok and mlia.ok else None
                raw.append({"model": str(tflite), "target": target.name, "config": label,
                            "ours": o.__dict__, "mlia": mlia.__dict__,
                            "config_differences": same_cfg,
                            "summary_differences": summary_differences(o.summary, mlia.summary)
                            if o.ok and mlia.ok else None})
                print("   " + lines[-1], flush=True)

    report = build_report(args, versions, mlia_ini, configs, lines, raw, models)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report)
    args.out.with_suffix(".json").write_text(json.dumps(
        {"versions": {**versions, "ours_vela": vela_version()}, "rows": raw}, indent=1, default=str))
    print(report)
    print(f"written: {args.out} and {args.out.with_suffix('.json')}")
    if args.keep:
        print(f"artifacts kept in {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if all(r["ours"]["ok"] and r["mlia"]["ok"] for r in raw) else 1


def build_report(args, versions, mlia_ini, configs, lines, raw, models) -> str:
    pairs = [r for r in raw if r["ours"]["ok"] and r["mlia"]["ok"]]
    for r in pairs:    # measured columns only: the configuration columns are compared separately
        r["measured_differences"] = [d for d in r["summary_differences"] if d.split()[0] not in CONFIG_COLUMNS]
    equal = [r for r in pairs if not r["measured_differences"]]
    unequal = [r for r in pairs if r["measured_differences"]]
    failed = [r for r in raw if not (r["ours"]["ok"] and r["mlia"]["ok"])]

    def ratio(r):
        return r["mlia"]["metrics"]["total_cycles"] / r["ours"]["record"]["cycles_total"]

    def times(key, sub):
        vals = [statistics.median(r[key][sub]) for r in raw if r[key]["ok"] and r[key][sub]]
        return statistics.median(vals) if vals else float("nan")

    cli = [r["ours"]["cli_s"] for r in raw if r["ours"]["cli_s"]]
    vela_only = [r["ours"]["record"]["compile_s"] for r in raw if r["ours"]["ok"]]
    unavailable = sorted({u for r in pairs for u in r["mlia"]["unavailable"]})
    warnings = sorted({w for r in pairs for w in r["mlia"]["warnings"]})
    out = [
        "# Our Vela compile vs Arm MLIA `check --performance`",
        "",
        f"Generated by `benchmarks/mlia_compare.py` on {time.strftime('%Y-%m-%d %H:%M')}; "
        f"{args.repeat} run(s) per tool per model x target, times are medians of wall clock.",
        "",
        f"- ours: project venv, ethos-u-vela {vela_version()} (`sepipe.compile.compile_model`, Vela in a subprocess)",
        f"- MLIA: `{args.venv.relative_to(ROOT) if args.venv.is_relative_to(ROOT) else args.venv}` "
        f"(Python {versions['python']}): mlia {versions['mlia']}, mlia-ethos-u {versions['mlia-ethos-u']}, "
        f"ethos-u-vela {versions['ethos-u-vela']} (Vela in process), its own `{mlia_ini.name}`",
        "- models: " + ", ".join(f"`{m.relative_to(ROOT) if m.is_relative_to(ROOT) else m}` "
                                 f"({m.stat().st_size / 1024:.0f} KiB)" for m in models),
        "",
        "## Configurations (system config / memory mode / arena cache size)",
        "",
        "| target | ours (targets.yaml) | MLIA built-in profile | | Vela ini keys that differ (resolved) |",
        "|---|---|---|---|---|",
        *configs,
        "",
        "## Figures",
        "",
        "Cycles: Vela's `cycles_total` (ours: record `cycles_total`; MLIA: JSON metric `total_cycles`). "
        "SRAM: `sram_memory_used`; flash+DRAM: on- and off-chip flash + DRAM used (MLIA reports bytes, "
        "shown here in KiB). Seconds: ours in process = one `compile_model` call; ours CLI = one "
        "`sepipe compile MODEL --target T` process; MLIA = one `mlia check` process.",
        "",
        HEADER,
        *lines,
        "",
        "## Findings",
        "",
    ]
    text = f"{len(pairs)} of {len(raw)} comparisons ran on both sides. "
    if equal:
        text += (f"In {len(equal)} of them every measured column of the two Vela summary CSVs is identical "
                 f"(cycles, NPU and memory-access cycles, inference time, SRAM/DRAM/flash used, original and "
                 f"encoded weights, bytes read and written per memory, MACs): MLIA's performance check is the "
                 f"same Vela {vela_version()} compile, re-labelled (memory in bytes instead of KiB, time in ms). ")
        named = sorted({f"{r['target']} ({r['config']}): {', '.join(r['config_differences'])}"
                        for r in equal if r["config_differences"]})
        if named:
            text += ("Configuration columns that differ while the figures are equal: " + "; ".join(named)
                     + " (names of memory modes that resolve to the same areas and cache size, or a default "
                       "cache the model never fills). ")
    flash_writes = [float(r["mlia"]["summary"].get("off_chip_flash_feature_map_write_bytes") or 0)
                    + float(r["mlia"]["summary"].get("off_chip_flash_weight_write_bytes") or 0) for r in pairs]
    if equal and not any(flash_writes):
        text += ("The differences of MLIA's bundled vela.ini listed above (off-chip flash write latency and "
                 "write count; an arena_cache_size in Dedicated_Sram) change nothing here: no inference writes "
                 "to flash, and on Dedicated_Sram our cache size comes from targets.yaml or the _384KB mode. ")
    if unequal:
        text += ("Figures differ in: " + "; ".join(
            f"{Path(r['model']).name} {r['target']} ({r['config']}): cycles MLIA/ours {ratio(r):.3f}, "
            f"{', '.join(r['measured_differences'][:5])}"
            + (f" [configuration: {', '.join(r['config_differences'])}]" if r["config_differences"] else "")
            for r in unequal) + ". ")
    if failed:
        text += "Failures: " + "; ".join(f"{Path(r['model']).name} {r['target']} ({r['config']}): "
                                         f"{r['ours']['error'] or r['mlia']['error']}" for r in failed) + ". "
    text += (f"Time per model x target: ours in process {times('ours', 'seconds'):.2f} s "
             f"(Vela subprocess alone {statistics.median(vela_only) if vela_only else float('nan'):.2f} s), "
             f"ours as a CLI process {statistics.median(cli) if cli else float('nan'):.2f} s, "
             f"MLIA {times('mlia', 'seconds'):.2f} s per `mlia check` process.")
    out.append(text)
    if unavailable or warnings:
        out += ["", "MLIA's JSON also says: " + "; ".join(
            [f"warning \"{w}\"" for w in warnings] + [f"unavailable metric {u}" for u in unavailable]) + "."]
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    sys.exit(main())
