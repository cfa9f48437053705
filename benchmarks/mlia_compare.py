#!/usr/bin/env python3
"""Benchmark: our Vela compile (sepipe.deploy.compile) against Arm MLIA's `mlia check --performance`.

Not part of CI. Run with the project venv (it imports `sepipe`):

    TF_USE_LEGACY_KERAS=1 .venv/bin/python benchmarks/mlia_compare.py            # runs/*/*.tflite
    .venv/bin/python benchmarks/mlia_compare.py --tiny runs/demo/demo_ptq.tflite
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

This script is the driver; its parts are siblings: `mlia_side.py` (MLIA's venv, profiles, `mlia check`
runs), `mlia_ours.py` (models, targets matched to MLIA's profiles, our compile runs) and
`mlia_report.py` (the Markdown table and findings).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from sepipe.deploy.vela import vela_version  # noqa: E402
from sepipe.targets import DEFAULT_TARGETS_FILE, load_targets  # noqa: E402

# the three parts, siblings of this script (its folder is on sys.path when it runs)
from mlia_ours import (CONFIG_COLUMNS, build_tiny, cache_text, effective_cache, ini_differences,  # noqa: E402
                       matched_target, model_name, run_ours, summary_differences, targets_file_of)
from mlia_report import build_report, row  # noqa: E402
from mlia_side import Mlia, mlia_resources, read_profile, run_mlia, setup_venv, venv_versions  # noqa: E402

DEFAULT_VENV = ROOT / ".cache" / "mlia-venv"
DEFAULT_TARGETS = ["ethos-u55-128", "ethos-u55-256", "ethos-u65-256", "ethos-u85-256"]
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "mlia_compare.md"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("models", nargs="*", type=Path, help="int8 .tflite files (default: runs/*/*.tflite)")
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

    models = [m.resolve() for m in args.models] or sorted(ROOT.glob("runs/*/*.tflite"))
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
            f"| {name} | {t.hardware.system_config} / {t.hardware.memory_mode} / {cache_text(ours_cache, where)} | "
            + (f"{p.system_config} / {p.memory_mode} / "
               f"{cache_text(effective_cache(mlia_ini, p.memory_mode, p.arena_cache_size), p.memory_mode + ' in MLIA ini')} | "
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
                                                              targets_file_of(matched, work))))
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


if __name__ == "__main__":
    sys.exit(main())
