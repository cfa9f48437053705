"""Golden vectors of an early-exit set: what firmware_stub's se_exit_set (one stream, the exit picked per hop,
one state slot per layer) must reproduce, hop by hop, for one cycle-budget schedule over real audio.

    make_exit_set("runs/early_exit_demo_plain", ["exit1", "exit2", "exit3", "exit4"], "ethos-u55-128", "out")
    # out/<bundle of each exit, C prefix se_<variant>>/ and out/golden/; then
    make -C firmware_stub exit-set-test MODELS="out/<exit1 bundle>/c ... out/<exit4 bundle>/c" GOLDEN=out/golden

The exits run in TFLite Micro (what firmware ships) through sepipe.early_exit.ExitSwitcher ("freeze": a skipped
layer's state is kept and resumed), each hop's exit picked by pick_exit from the exits' Vela cycles and that
hop's budget. The folder (raw little-endian arrays, C order; every file atomic, exit_set.json last):

    exit_set.json      settings, exit_count, exit_<n>_model (the model name its C descriptor carries), the
                       exits' tensors and state quantisation, skipped policy, files
    audio_in.f32       frames*hop samples;  features.f32: (frames, bins) Python features
    budgets.u32        (frames,) the cycle budget of each hop;  cycles.u32: (exits,) each exit's Vela cycles
    schedule.i32       (frames,) the exit pick_exit chose (0: passed through, gain 1, no state changed)
    e<n>_in_<t>.bin    exit n's input t at each hop exit n ran, in hop order: exactly what TFLite Micro got
    e<n>_out_<t>.bin   exit n's output t at those hops: exactly what it returned
    audio_out.f32      (frames-1)*hop samples: one resynthesis with each hop's dequantised mask
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from sepipe.artifacts import write_bytes, write_json
from sepipe.config import FeatureConfig
from sepipe.golden import FORMAT, WINDOW, _le

SKIPPED = "freeze"     # what se_exit_set.c does with a skipped layer's state


def state_quantization(ios: dict[int, object]) -> dict[str, dict]:
    """Each state's (input name) type, size and quantisation, checked equal in every exit that holds it: the
    firmware's shared slot is then a plain copy at a switch. ValueError naming the state and exits otherwise."""
    seen: dict[str, dict] = {}
    for n, io in ios.items():
        for pair in io.state_pairs:
            inp, out = io.input(pair.input), io.output(pair.output)
            here = {"dtype": inp.dtype, "size": int(np.prod(inp.shape)), "scale": float(inp.scale),
                    "zero_point": int(inp.zero_point), "output_scale": float(out.scale),
                    "output_zero_point": int(out.zero_point)}
            first = seen.setdefault(pair.input, {**here, "exits": []})
            if {k: first[k] for k in here} != here:
                raise ValueError(f"state '{pair.input}': exit {n} has {here}, exit {first['exits'][0]} has "
                                 f"{ {k: first[k] for k in here} }; the exits of one joint model share the state "
                                 "quantisation (convert them from the same calibration)")
            first["exits"].append(n)
    return seen


def hop_budgets(cycles: Sequence[int], frames: int, seed: int = 0) -> np.ndarray:
    """Per-hop cycle budgets that visit every exit and the pass-through (a budget under exit 1's cycles), each
    held 1 to 8 hops, in a seeded random order: switches up, down and across several exits."""
    rng = np.random.default_rng(seed)
    choices = [int(cycles[0]) - 1] + [int(c) for c in cycles]     # pass-through, then exit 1..n's exact cycles
    budgets, order = [], list(range(len(choices)))
    while len(budgets) < frames:
        rng.shuffle(order)
        for index in order:
            budgets += [choices[index]] * int(rng.integers(1, 9))
    return np.array(budgets[:frames], dtype=np.uint32)


def write_exit_set_golden(models: Sequence[bytes], audio: np.ndarray, feature_cfg: FeatureConfig,
                          cycles: Sequence[int], budgets: Sequence[int], out_dir: str | Path,
                          names: Sequence[str] | None = None, source: dict | str = "") -> dict:
    """Write the golden folder of the exit models `models` (int8 .tflite bytes, exit 1 first) over
    len(budgets) hops of `audio`; `names` are the models' descriptor names (<experiment>_<variant>).
    Returns exit_set.json's dict. ValueError on short audio or exits whose state quantisation differs."""
    from sepipe.early_exit import ExitSwitcher, budget_schedule
    from sepipe.features import enhance_with_mask, features
    from sepipe.runtime.quantized import TFLMStreamingRunner

    frames, hop = len(budgets), feature_cfg.hop
    if frames < 2 or len(cycles) != len(models):
        raise ValueError(f"{frames} hops and {len(cycles)} cycle figures for {len(models)} exits: need 2 or more "
                         "hops and one figure per exit")
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 1 or len(audio) < frames * hop:
        raise ValueError(f"audio of shape {audio.shape}: need mono audio of at least {frames * hop} samples")
    audio = audio[:frames * hop]
    runners = {n + 1: TFLMStreamingRunner(model) for n, model in enumerate(models)}
    states = state_quantization({n: r.io for n, r in runners.items()})
    feats, spectrum = features(audio, feature_cfg)
    feats = feats[:frames]
    schedule = budget_schedule(cycles, budgets)
    record: list = []
    masks = ExitSwitcher(runners, SKIPPED).run(feats, schedule, record=record)
    enhanced = enhance_with_mask(spectrum[:frames], masks, feature_cfg, (frames - 1) * hop)

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files: dict[str, dict] = {}

    def put(name: str, array, dtype: str, what: str) -> None:
        array = np.asarray(array)
        write_bytes(out_dir / name, _le(array, dtype))
        files[name] = {"dtype": dtype, "shape": [int(d) for d in array.shape], "what": what}

    put("audio_in.f32", audio, "float32", f"input audio, {frames}*{hop} samples")
    put("features.f32", feats, "float32", "Python features per hop (sepipe.features)")
    put("budgets.u32", np.asarray(budgets), "uint32", "the cycle budget of each hop")
    put("cycles.u32", np.asarray(cycles), "uint32", "each exit's Vela cycles, exit 1 first")
    put("schedule.i32", schedule, "int32", "the exit pick_exit chose per hop (0: passed through)")
    exits = {}
    for n, runner in runners.items():
        rows = [r for r in record if r[0] == n]
        for side, tensors in (("in", runner.io.inputs), ("out", runner.io.outputs)):
            for tensor in tensors:
                parts = [r[3 if side == "in" else 4][tensor.name] for r in rows]
                stacked = (np.concatenate(parts) if parts else np.zeros((0,) + tuple(tensor.shape), tensor.dtype))
                put(f"e{n}_{side}_{tensor.name}.bin", stacked.reshape(len(stacked), -1), tensor.dtype,
                    f"exit {n}'s {side}put '{tensor.name}' at each hop it ran, in hop order")
        exits[n] = {"hops": int((schedule == n).sum()), "activation_dtype": runner.io.io_type or "mixed",
                    "states": [p.input for p in runner.io.state_pairs]}
    put("audio_out.f32", enhanced, "float32", f"enhanced audio, ({frames}-1)*{hop} samples aligned with audio_in")

    golden = {"format": FORMAT, "frames": frames, "fft_size": feature_cfg.fft_size, "hop": hop,
              "bins": feature_cfg.bins, "log_floor": feature_cfg.log_floor, "window": WINDOW, "source": source,
              "skipped": SKIPPED, "exit_count": len(models), "passed_through": int((schedule == 0).sum()),
              **{f"exit_{n}_model": (names[n - 1] if names else f"exit{n}") for n in runners},
              "exits": {str(n): v for n, v in exits.items()}, "states": states, "files": files}
    write_json(out_dir / "exit_set.json", golden)
    return golden


def make_exit_set(run_dir: str | Path, variants: Sequence[str], target: str, out_dir: str | Path,
                  frames: int = 200, seed: int = 0) -> dict:
    """Bundle each exit variant of a run (C prefix se_<variant>, for one image) and write the golden folder of
    `frames` hops of the run's test audio with hop_budgets(seed) over the exits' cycles on `target`. Returns
    {"bundles": [folder per exit], "golden": folder, "command": the make line that checks them}."""
    from sepipe.bundle import make_bundle
    from sepipe.bundle.source import find_source, pick_test_audio
    from sepipe.deploy.tflite_info import read_tflite_bytes
    from sepipe.early_exit import exit_cycles

    out_dir = Path(out_dir)
    bundles = [make_bundle(run_dir, v, target, out_dir=out_dir, frames=min(frames, 20), c_prefix=f"se_{v}")
               for v in variants]
    sources = [find_source(run_dir, v, target) for v in variants]
    cfg = sources[0].cfg
    cycles = exit_cycles(cfg.run_dir, cfg.name, variants, target)
    audio, record = pick_test_audio(cfg, frames)
    write_exit_set_golden([read_tflite_bytes(s.tflite) for s in sources], audio, cfg.features, cycles,
                          hop_budgets(cycles, frames, seed), out_dir / "golden",
                          names=[f"{cfg.name}_{v}" for v in variants], source=record)
    models = " ".join(str(b / "c") for b in bundles)
    return {"bundles": bundles, "golden": out_dir / "golden",
            "command": f'make -C firmware_stub exit-set-test MODELS="{models}" GOLDEN={out_dir / "golden"}'}
