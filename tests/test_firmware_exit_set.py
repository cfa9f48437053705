"""The early-exit frame loop in C (firmware_stub/se_exit_set.c, issue 16): every exit of a tiny multi-exit nsNet2
in one image, one audio stream, one state slot per GRU layer, the exit picked per hop by se_pick_exit.

A tiny joint model is trained a few steps; each exit is converted, compiled by Vela and bundled with its own C
prefix; sepipe.early_exit_golden runs the exits in TFLite Micro through the Python ExitSwitcher ("freeze") over a
budget schedule that visits every exit and the pass-through, and `make exit-set-test` must hand each model
exactly what the switcher fed it (states bit for bit, features within the host test's bounds) and resynthesise
the same audio.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from bundle_runs import TARGET, run_to_compile, tiny_config

pytestmark = pytest.mark.slow   # trains and converts a tiny model

STUB = Path(__file__).resolve().parents[1] / "firmware_stub"
FRAMES = 120
EXITS = ["exit1", "exit2", "exit3", "exit4"]
# the experiment files' layout: exit 1 after the first FC (no state), exit 2 after GRU 1, exit 3 after GRU 2
MODEL = {"family": "nsnet2_exits", "fc_units": 16, "rnn_units": 12, "dense_units": 20,
         "exits": ["input_dense", "rnn_1", "rnn_2"], "split_flow": False}


@pytest.fixture(scope="module")
def exit_set(small_data_config, tmp_path_factory) -> dict:
    from sepipe.early_exit_golden import make_exit_set

    runs, out = tmp_path_factory.mktemp("runs"), tmp_path_factory.mktemp("exit_set")
    variants = [{"name": "ptq", "kind": "ptq"}] + [{"name": v, "kind": "exit", "exit": n + 1} for n, v in enumerate(EXITS)]
    cfg = run_to_compile(tiny_config(small_data_config, runs, name="ees", model=MODEL, variants=variants), EXITS)
    return {**make_exit_set(cfg.run_dir, EXITS, TARGET, out, frames=FRAMES, seed=3), "run_dir": cfg.run_dir}


def _make(target: str, exit_set: dict, build: Path, golden: Path | None = None, *extra: str) -> subprocess.CompletedProcess:
    models = " ".join(str(b / "c") for b in exit_set["bundles"])
    return subprocess.run(["make", "-C", str(STUB), target, f"MODELS={models}", f"GOLDEN={golden or exit_set['golden']}",
                           f"BUILD={build}", *extra], capture_output=True, text=True, timeout=600)


def _results(stdout: str) -> dict[str, str]:
    return dict(item.split("=", 1) for line in stdout.splitlines() if line.startswith("RESULT ")
                for item in line.split()[1:] if "=" in item)


def test_the_golden_schedule_switches_between_every_exit_and_states_share_quantisation(exit_set):
    golden = json.loads((exit_set["golden"] / "exit_set.json").read_text())
    schedule = np.fromfile(exit_set["golden"] / "schedule.i32", dtype="<i4")
    assert set(schedule) == {0, 1, 2, 3, 4} and golden["passed_through"] == int((schedule == 0).sum())
    assert int((np.diff(schedule) != 0).sum()) >= 10
    # each exit holds only its layers' states; every holder of a state quantises it alike (a copy at a switch)
    assert {n: e["states"] for n, e in golden["exits"].items()} == {"1": [], "2": ["rnn_1_h"],
                                                                   "3": ["rnn_1_h", "rnn_2_h"], "4": ["rnn_1_h", "rnn_2_h"]}
    assert golden["states"]["rnn_1_h"]["exits"] == [2, 3, 4] and golden["states"]["rnn_2_h"]["exits"] == [3, 4]


def test_the_c_exit_set_feeds_each_exit_what_the_python_switcher_fed_it(exit_set, tmp_path):
    proc = _make("exit-set-test", exit_set, tmp_path / "build")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    float32, double = proc.stdout.split("== exit_set_test (double FFT", 1)
    r = _results(float32)
    assert "\nPASS\n" in float32 and "\nPASS\n" in double
    assert (r["exits"], r["slots"], r["pick_mismatches"], r["state_mismatches"]) == ("4", "2", "0", "0")
    assert r["replay_overruns"] == r["replay_unused"] == "0" and int(r["switches"]) >= 10
    assert float(r["audio_max_abs_err"]) <= 1e-5
    # one stream and one slot per layer instead of one frame loop per exit
    assert int(r["exit_set_bytes"]) < int(r["one_frame_per_exit_bytes"]) / 2


def test_a_state_the_switcher_did_not_feed_fails_the_c_check(exit_set, tmp_path):
    """Exit 4 resumes rnn_2_h from exit 3's last hop (frozen while exits 1-2 ran): change one value it got."""
    golden = tmp_path / "golden"
    shutil.copytree(exit_set["golden"], golden)
    states = np.fromfile(golden / "e4_in_rnn_2_h.bin", dtype=np.int8).copy()
    states[len(states) // 2] ^= 1
    states.tofile(golden / "e4_in_rnn_2_h.bin")
    proc = _make("exit-set-test", exit_set, tmp_path / "build", golden)
    assert proc.returncode != 0
    assert "FAIL a model was handed states that differ from TFLite Micro's inputs" in proc.stdout


def test_the_same_image_passes_on_the_emulated_m55(exit_set, tmp_path):
    if not (shutil.which("arm-none-eabi-gcc") and shutil.which("qemu-system-arm")):
        pytest.skip("arm-none-eabi-gcc / qemu-system-arm missing (make firmware-toolchain)")
    out = tmp_path / "counts" / "exit_set.json"
    proc = _make("qemu-exit-set-test", exit_set, tmp_path / "build", None, f"EXIT_SET_JSON={out}")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    on_m55 = proc.stdout.split("== exit_set_test on QEMU's Cortex-M55 (4 exits in one image)", 1)[1]
    assert "\nPASS\n" in on_m55 and "state_mismatches=0" in on_m55
    # instructions per hop, the model call left out: each exit held, the golden switching, each exit model alone
    for what in ["exit=0", "exit=1", "exit=4", "schedule=golden", "alone=4"]:
        assert f"RESULT exit_set_instructions {what} per_hop=" in on_m55
    counts = json.loads(out.read_text())
    per_hop = counts["exit_set_instructions_per_hop"]
    assert set(per_hop) == {"exit_0", "exit_1", "exit_2", "exit_3", "exit_4", "switching"}
    assert set(counts["single_model_frame_loop_instructions_per_hop"]) == {"exit_1", "exit_2", "exit_3", "exit_4"}
    assert all(s["hops"] == FRAMES and 0 < s["min"] <= s["per_hop"] <= s["max"] for s in per_hop.values())
    # an exit's hop quantises the features and dequantises the mask on top of the DSP that a pass-through runs alone
    assert all(per_hop[f"exit_{n}"]["min"] > per_hop["exit_0"]["max"] for n in range(1, 5))
    assert counts["switches"] >= 10 and counts["ram"]["state_slot_bytes"] == 2 * 12


def test_exits_whose_state_quantisation_differs_are_refused_by_the_golden_writer(exit_set):
    from types import SimpleNamespace

    from sepipe.early_exit_golden import state_quantization

    def io(scale):
        tensor = SimpleNamespace(dtype="int8", shape=(1, 12), scale=scale, zero_point=0)
        return SimpleNamespace(state_pairs=[SimpleNamespace(input="rnn_1_h", output="rnn_1_h_out")],
                               input=lambda name: tensor, output=lambda name: tensor)

    assert state_quantization({2: io(0.01), 3: io(0.01)})["rnn_1_h"]["exits"] == [2, 3]
    with pytest.raises(ValueError, match="state 'rnn_1_h': exit 3 has"):
        state_quantization({2: io(0.01), 3: io(0.02)})


def test_sepipe_bundle_exit_set_writes_the_bundles_golden_folder_and_the_make_line(exit_set, tmp_path, capsys):
    from sepipe.cli.main import main

    args = ["bundle", str(exit_set["run_dir"]), "--target", TARGET, "--exit-set", "exit1,exit2", "--frames", "40"]
    assert main([*args, "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "make -C firmware_stub exit-set-test" in printed and str(tmp_path / "golden") in printed
    assert json.loads((tmp_path / "golden" / "exit_set.json").read_text())["exit_2_model"].endswith("exit2")
    assert main([*args, "--variant", "exit1"]) == 2
    error = capsys.readouterr().err.strip()
    assert "--exit-set" in error and "\n" not in error
