"""Packaging: one import root, package data, extras, and the light install of a user's CI.

The fast tests read pyproject.toml and constraints.txt; the slow one builds the wheel, installs
it without any extra into a fresh venv (no TensorFlow there) and runs `sepipe compile` and
`sepipe budget check` from another folder.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from importlib import resources
from pathlib import Path

import pytest

from sepipe.extras import COMMAND_EXTRAS, EXTRA_INCLUDES, MODULE_EXTRAS, extra_modules

tomllib = pytest.importorskip("tomllib")

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
EXACT_PINS = ("tensorflow", "tf-keras", "tensorflow-model-optimization", "ethos-u-vela", "tflite-micro",
              "ai-edge-litert")
HEAVY = ("tensorflow", "tf_keras", "keras", "tensorflow_model_optimization", "ai_edge_litert", "tflite_micro",
         "soundfile", "soxr", "g722", "scipy", "pesq", "pystoi", "speechmos", "onnxruntime", "pyrnnoise",
         "matplotlib", "tqdm", "ray")


def _name(requirement: str) -> str:
    """The normalised distribution name of a requirement string ('tf_keras==2' -> 'tf-keras')."""
    return re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def _extras() -> dict[str, list[str]]:
    return PYPROJECT["project"]["optional-dependencies"]


def test_every_package_folder_is_listed_under_the_one_import_root():
    tool = PYPROJECT["tool"]["setuptools"]
    found = set()
    for package, folder in tool["package-dir"].items():
        for init in (REPO / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(REPO / folder)
            found.add(".".join([package, *rel.parts]))
    assert found == set(tool["packages"])
    assert all(p == "sepipe" or p.startswith("sepipe.") for p in found)


def test_vela_configs_are_package_data_read_with_importlib_resources():
    from sepipe.budgets import DEFAULT_BUDGETS_FILE
    from sepipe.targets import DEFAULT_TARGETS_FILE

    shipped = resources.files("sepipe.vela_configs")
    for name in ("targets.yaml", "vela.ini", "budgets.yaml", "README.md"):
        assert (shipped / name).is_file()
    assert DEFAULT_TARGETS_FILE.read_bytes() == (shipped / "targets.yaml").read_bytes()
    assert DEFAULT_BUDGETS_FILE.read_bytes() == (shipped / "budgets.yaml").read_bytes()
    patterns = PYPROJECT["tool"]["setuptools"]["package-data"]["sepipe.vela_configs"]
    assert {"*.yaml", "*.ini", "*.md"} <= set(patterns)


def test_base_install_is_vela_numpy_and_yaml_only():
    assert {_name(r) for r in PYPROJECT["project"]["dependencies"]} == {"ethos-u-vela", "numpy", "pyyaml"}


def test_format_critical_tools_are_pinned_exactly():
    pins = {_name(r): r for reqs in [PYPROJECT["project"]["dependencies"], *_extras().values()] for r in reqs}
    for tool in EXACT_PINS:
        assert re.search(r"==[0-9]", pins[tool]), pins[tool]


def test_extras_table_matches_pyproject():
    extras = _extras()
    for module, (extra, distribution) in MODULE_EXTRAS.items():
        assert _name(distribution) in {_name(r) for r in extras[extra]}, (module, extra)
    for extra, reqs in extras.items():
        included = [r for r in reqs if _name(r) == "sepipe"]
        listed = set(EXTRA_INCLUDES.get(extra, ()))
        assert {x for r in included for x in re.findall(r"\[(.*)\]", r)[0].split(",")} == listed, extra
        if extra != "test":   # every other extra's own distributions are in the module table
            own = {_name(r) for r in reqs} - {"sepipe"}
            assert own == {_name(d) for e, d in MODULE_EXTRAS.values() if e == extra}, extra
    assert {x for needed in COMMAND_EXTRAS.values() for x in needed} <= set(extras)
    assert extra_modules("train")[0] == "tensorflow" and "soundfile" in extra_modules("train")


def test_every_optional_module_is_the_import_name_of_its_distribution():
    """A module name in the table that its installed distribution does not provide (G722, not g722)."""
    from importlib import metadata
    from importlib.util import find_spec

    for module, (_, distribution) in MODULE_EXTRAS.items():
        try:
            metadata.distribution(distribution)
        except metadata.PackageNotFoundError:
            continue   # not in this venv (ray): nothing to compare
        assert find_spec(module) is not None, f"{distribution} is installed but provides no module {module}"


def test_constraints_pin_everything_else_and_nothing_pyproject_pins():
    lines = [line.strip() for line in (REPO / "constraints.txt").read_text().splitlines()]
    entries = [line for line in lines if line and not line.startswith("#")]
    assert entries and all(re.fullmatch(r"[A-Za-z0-9_.\-]+==[A-Za-z0-9_.+\-]+", e) for e in entries)
    names = {_name(e) for e in entries}
    exact = {_name(r) for reqs in [PYPROJECT["project"]["dependencies"], *_extras().values()]
             for r in reqs if "==" in r}
    assert not names & (exact | {"sepipe"})
    ranged = {_name(r) for reqs in [PYPROJECT["project"]["dependencies"], *_extras().values()]
              for r in reqs if "==" not in r} - {"sepipe"}
    assert ranged <= names


def _subprocess_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def test_light_commands_import_neither_tensorflow_nor_the_audio_stack(tmp_path):
    """--help, compile (up to Vela) and budget check: nothing of the extras is imported.

    The compile runs the whole import chain of `sepipe compile X.tflite` on a file that only looks
    like a model, so it stops with an InputFileError before Vela (the slow test compiles a real one).
    """
    fake = tmp_path / "fake.tflite"
    fake.write_bytes(b"\0\0\0\0TFL3" + bytes(64))
    record = tmp_path / "demo_ptq_vela_H128_record.json"
    record.write_text(json.dumps({"model": "demo_ptq", "target": "ethos-u55-128", "sram_memory_used_kib": 1.0,
                                  "flash_kib": 40.0, "dram_memory_used_kib": 0.0, "inference_time_ms": 0.1,
                                  "npu_op_share": 1.0}))
    script = f"""
import sys
from sepipe.cli import main
for argv in (["--help"], ["compile", "--help"], ["budget", "check", "--help"]):
    try:
        main(argv)
    except SystemExit:
        pass
assert main(["-q", "budget", "check", {str(record)!r}]) == 0
assert main(["-q", "compile", {str(fake)!r}, "--target", "ethos-u55-128", "--out", "vela"]) == 2
heavy = {HEAVY!r}
print(sorted(m for m in sys.modules if m.split(".")[0] in heavy))
"""
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=_subprocess_env(),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"


@pytest.mark.slow
def test_wheel_installs_without_tensorflow_and_compiles_and_checks_budgets(tmp_path):
    """pip wheel, a fresh venv with the base install only, then compile and budget check elsewhere."""
    from sepipe.models.mask_rnn import MaskRnnConfig
    from sepipe.quantize.convert import convert_untrained

    started = time.monotonic()
    env = _subprocess_env()

    def run(cmd, cwd=tmp_path, timeout=600):
        return subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True,
                              timeout=timeout)

    built = run([sys.executable, "-m", "pip", "wheel", REPO, "--no-deps", "-q", "-w", tmp_path / "wheels"])
    assert built.returncode == 0, built.stderr
    (wheel,) = (tmp_path / "wheels").glob("sepipe-*.whl")
    venv = tmp_path / "light"
    made = run([sys.executable, "-m", "venv", venv])
    assert made.returncode == 0, made.stderr
    python, sepipe = venv / "bin" / "python", venv / "bin" / "sepipe"
    installed = run([python, "-m", "pip", "install", "-q", "-c", REPO / "constraints.txt", wheel])
    assert installed.returncode == 0, installed.stderr
    install_s = time.monotonic() - started

    no_tf = run([python, "-c", "import tensorflow"])
    assert no_tf.returncode != 0 and "ModuleNotFoundError" in no_tf.stderr
    where = run([python, "-c", "import sepipe.targets as t; print(t.CONFIG_DIR)"])
    assert where.returncode == 0 and where.stdout.strip().startswith(str(venv)), where.stdout + where.stderr

    # the model comes from this (full) venv's converter; the light venv only compiles it
    model = convert_untrained(MaskRnnConfig(family="gru", input_units=32, rnn_units=24, dense_units=32), 257,
                              tmp_path / "models" / "tiny_int8.tflite", seed=0)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    compiled = run([sepipe, "-q", "compile", model, "--target", "ethos-u55-128", "--out", "vela"], cwd=elsewhere)
    assert compiled.returncode == 0, compiled.stderr
    assert "tiny_int8 on ethos-u55-128 (H128)" in compiled.stdout and "NPU ops 100%" in compiled.stdout
    assert list((elsewhere / "vela").glob("tiny_int8_vela_H128_record.json"))

    holds = run([sepipe, "-q", "budget", "check", "vela"], cwd=elsewhere)
    assert holds.returncode == 0, holds.stdout + holds.stderr
    assert "sepipe/vela_configs/budgets.yaml" in holds.stdout

    tight = elsewhere / "tight.yaml"
    tight.write_text("budgets:\n  ethos-u55-128:\n    max_sram_kib: 0.25\n    max_flash_kib: 1\n")
    broken = run([sepipe, "-q", "budget", "check", "vela", "--budgets", tight], cwd=elsewhere)
    assert broken.returncode == 1, broken.stdout + broken.stderr
    lines = broken.stdout.strip().splitlines()
    assert lines[0] == "model, target, metric, value, limit"
    assert [line.split(", ")[2] for line in lines[1:]] == ["sram_memory_used_kib", "flash_kib"]

    train = run([sepipe, "train", "experiment.yaml"], cwd=elsewhere)
    assert train.returncode == 2
    assert train.stderr.strip() == ("sepipe: error: 'sepipe train' needs the 'train' extra (tensorflow is not "
                                    "installed): pip install 'sepipe[train]'")
    print(f"wheel build + venv + base install: {install_s:.1f} s; whole test {time.monotonic() - started:.1f} s")
