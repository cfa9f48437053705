"""How sure is a quality figure: run one experiment under several training seeds, report mean and spread.

    .venv/bin/python benchmarks/seed_spread.py experiments/demo.yaml --seeds 0 1 2 [--set KEY=VALUE ...]

Each seed runs `sepipe run EXP --set seed=S --set name=<name>_s<S>` (an up-to-date run is reused, and seed 0
reuses the experiment's own trained model when its config matches: see README, "Experiments"). The seed
changes training and calibration draws; the dataset (data.seed) stays the same, so the spread is what
training alone moves. Prints, per system and per test condition, mean +- half the range over the seeds of
SI-SDR, PESQ-WB, STOI and DNSMOS SIG/BAK/OVRL, and writes it to benchmarks/results/<name>_seeds.md.
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
METRICS = (("si_sdr", "SI-SDR dB", 2), ("pesq", "PESQ-WB", 2), ("stoi", "STOI", 3),
           ("dnsmos_sig", "SIG", 2), ("dnsmos_bak", "BAK", 2), ("dnsmos_ovrl", "OVRL", 2))


def run_seed(experiment: Path, name: str, runs_dir: Path, seed: int, overrides: list[str]) -> Path:
    sets = [f"seed={seed}", f"name={name}_s{seed}", *overrides]
    command = [str(REPO / ".venv/bin/sepipe"), "-q", "run", str(experiment)] + [a for s in sets for a in ("--set", s)]
    print("+", " ".join(command), flush=True)
    subprocess.run(command, check=True, cwd=REPO)
    return runs_dir / f"{name}_s{seed}" / "evaluate"


def read_rows(evaluate_dir: Path, run_name: str) -> dict[tuple, dict]:
    """{(system, condition, value): row} from the run's overall and per-condition quality CSVs."""
    rows = {}
    for row in csv.DictReader(open(evaluate_dir / f"{run_name}_quality.csv")):
        rows[(row["system"], "all", "")] = row
    by_condition = evaluate_dir / f"{run_name}_quality_by_condition.csv"
    if by_condition.exists():
        for row in csv.DictReader(open(by_condition)):
            rows[(row["system"], row["condition"], row["condition_value"])] = row
    return rows


def spread_table(per_seed: list[dict[tuple, dict]], seeds: list[int]) -> str:
    header = "| system | condition | files | seeds | " + " | ".join(label for _, label, _ in METRICS) + " |"
    lines = [f"Mean +- half the range over training seeds {', '.join(map(str, seeds))} (a row scored under fewer "
             "seeds says how many).", "", header, "|" + "---|" * (4 + len(METRICS))]
    for key in per_seed[0]:
        values = [rows[key] for rows in per_seed if key in rows]
        cells = []
        for metric, _, digits in METRICS:
            numbers = [float(v[metric]) for v in values]
            mean, half = sum(numbers) / len(numbers), (max(numbers) - min(numbers)) / 2
            cells.append(f"{mean:.{digits}f} +- {half:.{digits}f}")
        condition = "all" if key[1] == "all" else f"{key[1]} {key[2]}"
        lines.append(f"| {key[0]} | {condition} | {values[0]['files']} | {len(values)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("experiment", type=Path)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    raw = yaml.safe_load(args.experiment.read_text()) or {}
    name, runs_dir = raw.get("name", args.experiment.stem), REPO / raw.get("runs_dir", "runs")
    per_seed = [read_rows(run_seed(args.experiment, name, runs_dir, s, args.overrides), f"{name}_s{s}")
                for s in args.seeds]
    table = spread_table(per_seed, args.seeds)
    out = REPO / "benchmarks" / "results" / f"{name}_seeds.md"
    out.write_text(f"# {name}: quality over training seeds\n\n{table}")
    print(table + f"\nwritten: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
