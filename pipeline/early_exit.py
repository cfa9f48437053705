"""Run-time exit policy of a multi-exit model: the deepest exit whose Vela cycles fit a budget, per hop.

    cycles = exit_cycles(run_dir, experiment, ["exit1", "exit2", "exit3", "exit4"], "ethos-u55-128")
    pick_exit(cycles, budget)          # 1-based exit; 0 when not even exit 1 fits (pass the frame through)
    ExitSwitcher(runners, "freeze").run(features, schedule)   # one exit per hop, states carried across

Switching between hops. Exit n holds the trunk up to its position, so each hop updates only the states of
the recurrent layers it runs. The skipped (deeper) layers' states are **frozen**: kept as they were when
that layer last ran, and resumed from there when a deeper exit runs again, so every layer always continues
its own history (nothing to recompute, no copy; a hop costs exactly the chosen exit's cycles). **reset**
instead sets a skipped layer's state to zero (its zero point), so a deeper exit resumes as after power-up:
a transient of a few hundred ms while the GRU's state builds again. Both are measured in
benchmarks/early_exit_switching.py. The firmware stub has the same rule (`se_pick_exit`, firmware_stub/
se_early_exit.c), tested against golden vectors made here (`golden_cases`), and the same frame loop
(firmware_stub/se_exit_set.c: one state slot per layer, "freeze"), tested against sepipe.early_exit_golden.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from sepipe.errors import ConfigError, MissingArtifactError

SKIPPED_STATES = ("freeze", "reset")


def pick_exit(cycles: Sequence[int], budget: int) -> int:
    """The deepest exit (1-based) whose cycles are within `budget`; 0 when none is. `cycles[i]` is exit
    i + 1's (per hop); the scan goes from the deepest, so cycles need not rise with depth."""
    for index in range(len(cycles) - 1, -1, -1):
        if int(cycles[index]) <= int(budget):
            return index + 1
    return 0


def budget_schedule(cycles: Sequence[int], budgets: Sequence[int]) -> np.ndarray:
    """The exit of each hop for a per-hop cycle budget (what the device has left this hop)."""
    return np.array([pick_exit(cycles, b) for b in budgets], dtype=np.int32)


def alternating_schedule(frames: int, exits: Sequence[int], every: int) -> np.ndarray:
    """`exits` in turn, each for `every` hops: the switching stress of the benchmark."""
    if every < 1:
        raise ConfigError("<schedule>", "every", every, "a number of hops >= 1")
    return np.array([exits[(t // every) % len(exits)] for t in range(frames)], dtype=np.int32)


def exit_cycles(run_dir: str | Path, experiment: str, variants: Sequence[str], target: str) -> list[int]:
    """cycles_total of each variant on `target`, from its compile stage's record (what the report reads)."""
    from sepipe.engine import records

    cycles = []
    for variant in variants:
        record = records.read_record(run_dir, f"compile:{variant}")
        if record is None:
            raise MissingArtifactError(records.record_path(run_dir, f"compile:{variant}"),
                                       f"compile the exits first: sepipe run <{experiment}.yaml>")
        rows = [r for r in record["summary"].get("records", []) if target in (r.get("target"), r.get("target_id"))]
        if not rows:
            raise ConfigError(str(records.record_path(run_dir, f"compile:{variant}")), "target", target,
                              "a target the run compiled for (compile.targets)")
        cycles.append(int(rows[0]["cycles_total"]))
    return cycles


class ExitSwitcher:
    """Runs one exit's quantised model per hop, the recurrent states shared by layer across exits.

    runners: {exit number: a QuantizedRunner (sepipe.runtime) of that exit's .tflite}. States are carried
    in float between exits (each model quantises them with its own scales: requantisation at a switch)."""

    def __init__(self, runners: dict, skipped: str = "freeze"):
        if skipped not in SKIPPED_STATES:
            raise ConfigError("<switcher>", "skipped", skipped, f"one of {list(SKIPPED_STATES)}")
        self.runners, self.skipped = runners, skipped
        self.states: dict[str, np.ndarray] = {}

    def reset(self) -> None:
        self.states = {}

    def _load(self, runner) -> None:
        from sepipe.runtime import quantize

        runner.reset()
        for k, pair in enumerate(runner.io.state_pairs):
            if pair.input in self.states:
                tensor = runner.io.input(pair.input)
                runner._states[k] = quantize(self.states[pair.input], tensor.scale, tensor.zero_point,
                                             np.dtype(tensor.dtype).type).reshape(tensor.shape)

    def _store(self, runner) -> None:
        from sepipe.runtime import dequantize

        held = set()
        for pair, state in zip(runner.io.state_pairs, runner._states):
            tensor = runner.io.input(pair.input)
            self.states[pair.input] = dequantize(state, tensor.scale, tensor.zero_point)
            held.add(pair.input)
        if self.skipped == "reset":       # the layers this exit skipped restart from zero when resumed
            for name in set(self.states) - held:
                self.states[name] = np.zeros_like(self.states[name])

    def run(self, features: np.ndarray, schedule: Sequence[int], record: list | None = None) -> np.ndarray:
        """(T, bins) features -> (T, bins) mask, hop t by exit schedule[t] (0: pass through, gain 1).
        `record`: a list that gets, per run of hops on one exit, (exit, first hop, end hop, inputs, outputs)
        with every tensor exactly as fed to and returned by each Invoke (sepipe.early_exit_golden)."""
        self.reset()
        masks = np.ones_like(features, dtype=np.float32)
        schedule = np.asarray(schedule)
        start = 0
        while start < len(features):
            end = start + 1
            while end < len(features) and schedule[end] == schedule[start]:
                end += 1
            exit_number = int(schedule[start])
            if exit_number:
                runner = self.runners[exit_number]
                self._load(runner)
                if record is None:
                    masks[start:end] = runner.run(features[start:end], reset=False)
                else:
                    masks[start:end] = self._run_recorded(runner, exit_number, features[start:end], start, record)
                self._store(runner)
            start = end
        return masks

    @staticmethod
    def _run_recorded(runner, exit_number: int, features: np.ndarray, start: int, record: list) -> np.ndarray:
        from sepipe.runtime import dequantize

        inputs, outputs = runner.run_recorded(features, reset=False)
        record.append((exit_number, start, start + len(features), inputs, outputs))
        head = runner.io.head
        return dequantize(outputs[head.name].reshape(len(features), -1), head.scale, head.zero_point)


def golden_cases(seed: int = 0, count: int = 200) -> list[tuple[list[int], int, int]]:
    """(cycles per exit, budget, expected exit) cases for the C policy's test: random exit counts and
    cycles (rising, and some not), budgets at, around and between the cycles."""
    rng = np.random.default_rng(seed)
    cases = []
    for _ in range(count):
        exits = int(rng.integers(1, 7))
        cycles = np.sort(rng.integers(1_000, 2_000_000, exits)) if rng.random() < 0.8 else rng.integers(1_000, 2_000_000, exits)
        pick = int(rng.integers(0, exits))
        budget = int(rng.choice([cycles[pick], cycles[pick] - 1, cycles[pick] + 1, rng.integers(0, 3_000_000), 0]))
        budget = max(budget, 0)
        cases.append(([int(c) for c in cycles], budget, pick_exit(cycles, budget)))
    cases.append(([4294967295], 4294967295, 1))     # the full uint32 range
    return cases


def write_golden(path: str | Path, cases) -> Path:
    """One case a line: `count c1 .. cn budget expected` (read by firmware_stub/early_exit_test.c)."""
    from sepipe.artifacts import atomic_path

    with atomic_path(Path(path)) as tmp:
        Path(tmp).write_text("".join(f"{len(c)} {' '.join(map(str, c))} {b} {e}\n" for c, b, e in cases))
    return Path(path)
