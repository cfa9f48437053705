"""The quality cost of switching exits between hops (issue 16), on a run's int8 exit models.

Every test mixture of the run's dataset is enhanced hop by hop by the exit a schedule names, through
`sepipe.early_exit.ExitSwitcher` (the TFLite interpreter, each exit its own .tflite from the run's
`exit` variants, the recurrent states carried by layer across exits), and scored by SI-SDR:

  - steady exit n (n = 1 .. 4): the exit's own model all the time (what its evaluate row measures);
  - alternating exits a/b every N hops, the skipped layers' states frozen (the policy) or reset to zero;
  - a budget trace: a cycle budget that drops for a while now and then, mapped to exits by `pick_exit`.

    .venv/bin/python benchmarks/early_exit_switching.py experiments/early_exit_demo.yaml [--set name=...] \
        [--files 0] [--every 1 10 50] [--pair 1 4]

Prints a Markdown table (mean SI-SDR over the files, and the difference from the mean of the two steady
exits weighted by the hops each ran: the switching cost).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def load(experiment: Path, sets: list[str]):
    """The experiment (with `--set` overrides, as `sepipe run` took them), its dataset and a TFLite runner
    per `exit` variant's .tflite in its run folder."""
    from sepipe.config import load_experiment
    from sepipe.config_loading import parse_override_value
    from sepipe.data.dataset import Dataset
    from sepipe.runtime import make_runner

    overrides = {}
    for item in sets:
        key, _, text = item.partition("=")
        overrides[key] = parse_override_value(key, text)
    cfg = load_experiment(experiment, overrides)
    exits = sorted(v.exit for v in cfg.variants if v.kind == "exit")
    runners = {n: make_runner("tflite", tflite_bytes=(cfg.run_dir / f"{cfg.name}_exit{n}.tflite").read_bytes())
               for n in exits}
    return cfg, Dataset.open(cfg.data), runners


def score(cfg, pairs, switcher, schedule_of) -> tuple[float, float]:
    """(mean SI-SDR dB, share of hops per exit as a dict) over `pairs`."""
    from sepipe import features as feat
    from sepipe.metrics import si_sdr

    scores, hops = [], {}
    for pair in pairs:
        features, spectrum = feat.features(pair.noisy, cfg.features)
        schedule = schedule_of(len(features))
        for n in np.unique(schedule):
            hops[int(n)] = hops.get(int(n), 0) + int(np.sum(schedule == n))
        mask = switcher.run(features, schedule)
        enhanced = feat.enhance_with_mask(spectrum, mask, cfg.features, len(pair.clean))
        scores.append(si_sdr(pair.clean, enhanced))
    total = sum(hops.values())
    return float(np.mean(scores)), {n: c / total for n, c in sorted(hops.items())}


def budget_trace(frames: int, cycles: list[int], seed: int) -> np.ndarray:
    """A budget that fits the full model, except in random drops (0.2-1 s) to between exit 1's and 2's."""
    rng = np.random.default_rng(seed)
    budget = np.full(frames, cycles[-1])
    t = int(rng.integers(20, 120))
    while t < frames:
        length = int(rng.integers(12, 62))
        budget[t:t + length] = (cycles[0] + cycles[1]) // 2
        t += length + int(rng.integers(20, 120))
    return budget


def main() -> None:
    from sepipe.early_exit import ExitSwitcher, alternating_schedule, budget_schedule, exit_cycles

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("experiment", type=Path)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="as sepipe run --set")
    parser.add_argument("--files", type=int, default=0, help="test files (0: all)")
    parser.add_argument("--every", type=int, nargs="+", default=[1, 10, 50])
    parser.add_argument("--pair", type=int, nargs=2, default=[1, 4], help="the two exits alternated")
    parser.add_argument("--target", default="ethos-u55-128")
    args = parser.parse_args()

    cfg, dataset, runners = load(args.experiment, args.set)
    pairs = dataset.pairs("test", limit=args.files)
    rows = []
    steady = {}
    for n in runners:
        steady[n], _ = score(cfg, pairs, ExitSwitcher(runners), lambda frames, n=n: np.full(frames, n))
        rows.append((f"steady exit {n}", "-", steady[n], 0.0))
    a, b = args.pair
    for every in args.every:
        for skipped in ("freeze", "reset"):
            value, share = score(cfg, pairs, ExitSwitcher(runners, skipped),
                                 lambda frames: alternating_schedule(frames, [a, b], every))
            expected = sum(share[n] * steady[n] for n in share)
            rows.append((f"exits {a}/{b} every {every} hops", skipped, value, value - expected))
    cycles = exit_cycles(cfg.run_dir, cfg.name, [f"exit{n}" for n in sorted(runners)], args.target)
    for skipped in ("freeze", "reset"):
        value, share = score(cfg, pairs, ExitSwitcher(runners, skipped),
                             lambda frames: budget_schedule(cycles, budget_trace(frames, cycles, 0)))
        expected = sum(share[n] * steady[n] for n in share if n)
        rows.append((f"budget drops ({', '.join(f'exit {n}: {s:.0%}' for n, s in share.items())})", skipped, value,
                     value - expected))
    print(f"{len(pairs)} test files of {cfg.name}; exit cycles on {args.target}: {cycles}\n")
    print("| schedule | skipped layers' states | SI-SDR dB | vs steady exits, hop-weighted |")
    print("|---|---|---|---|")
    for name, skipped, value, delta in rows:
        print(f"| {name} | {skipped} | {value:.2f} | {delta:+.2f} |")


if __name__ == "__main__":
    main()
