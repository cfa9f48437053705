"""Hostile and broken experiment YAML and command lines (issue 11): one line, exit 2, bounded memory.

Each case was a traceback (exit 1), a 4 MB "line" or a MemoryError before; each is one line
`sepipe: error: ...` naming the file or option, the value and what is valid, with exit code 2.
"""

from __future__ import annotations

import resource
import subprocess
import sys
from pathlib import Path

import pytest

from sepipe.cli import main
from sepipe.config import INT_BOUNDS, experiment_from_dict, load_experiment
from sepipe.config_loading import MAX_YAML_BYTES
from sepipe.errors import LINE_LIMIT, ConfigError, InputFileError

ALIAS_BOMB = """\
name: bomb
data:
  snr_db: &a9 [&a8 [&a7 [&a6 [&a5 [&a4 [&a3 [&a2 [&a1 [1,1,1,1,1,1,1,1], *a1,*a1,*a1,*a1,*a1,*a1,*a1],
    *a2,*a2,*a2,*a2,*a2,*a2,*a2], *a3,*a3,*a3,*a3,*a3,*a3,*a3], *a4,*a4,*a4,*a4,*a4,*a4,*a4],
    *a5,*a5,*a5,*a5,*a5,*a5,*a5], *a6,*a6,*a6,*a6,*a6,*a6,*a6], *a7,*a7,*a7,*a7,*a7,*a7,*a7],
    *a8,*a8,*a8,*a8,*a8,*a8,*a8]
"""
# 8**5 = 32768 leaves: under the expansion limit, so it loads and fails the type check; its repr was 4 MB
SMALL_BOMB = """\
data:
  snr_db: [&a5 [&a4 [&a3 [&a2 [&a1 [1,1,1,1,1,1,1,1], *a1,*a1,*a1,*a1,*a1,*a1,*a1], *a2,*a2,*a2,*a2,*a2,*a2,*a2],
    *a3,*a3,*a3,*a3,*a3,*a3,*a3], *a4,*a4,*a4,*a4,*a4,*a4,*a4], 1]
"""


def _cli(capsys, *argv) -> tuple[int, list[str]]:
    code = main(["-q", *argv])
    return code, capsys.readouterr().err.strip().splitlines()


def _one_line(capsys, *argv) -> str:
    code, err = _cli(capsys, *argv)
    assert code == 2 and len(err) == 1, (code, err)
    assert err[0].startswith("sepipe: error: ") and len(err[0]) <= LINE_LIMIT + 20
    return err[0]


def _write(tmp_path: Path, text: str | bytes, name: str = "exp.yaml") -> Path:
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def _bounded_cli(argv: list[str], cwd: Path, memory: int = 512 << 20, timeout: float = 60):
    """`sepipe ARGV` in a child whose address space is capped: an unbounded allocation fails there, not here."""
    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))

    return subprocess.run([sys.executable, "-m", "sepipe.cli", "-q", *argv], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, preexec_fn=cap)


# -- 1. alias bombs, deep nesting, recursion, size ------------------------------------------------------------

@pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_AS caps the address space on Linux")
def test_an_alias_bomb_is_refused_within_512_mib(tmp_path):
    _write(tmp_path, ALIAS_BOMB)
    assert len(ALIAS_BOMB) < 1024
    done = _bounded_cli(["config", "check", "exp.yaml"], tmp_path)
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stderr.strip() == ("sepipe: error: exp.yaml: not valid YAML (112,357 values once its aliases are "
                                   "expanded; at most 100,000)")


def test_a_smaller_bomb_gives_a_short_line(tmp_path, capsys):
    line = _one_line(capsys, "config", "check", str(_write(tmp_path, SMALL_BOMB)))
    assert "option 'data.snr_db' = [[[[[...]" in line and len(line) < 600


@pytest.mark.parametrize("text, fragment", [
    ("a: &a [*a]\n", "recursive document"),
    ("data: " + "[" * 5000 + "]" * 5000 + "\n", "nested deeper than 64 levels"),
    ("data: " + "[" * 70 + "]" * 70 + "\n", "nested deeper than 64 levels"),
    ("seed: " + "9" * 5000 + "\n", "a value that cannot be read"),
    ("seed: 2020-13-45\n", "a value that cannot be read"),
    ("name: \"a\x00b\"\n", "special characters are not allowed"),
])
def test_yaml_that_the_loader_cannot_make_is_one_line(tmp_path, capsys, text, fragment):
    line = _one_line(capsys, "config", "check", str(_write(tmp_path, text)))
    assert "exp.yaml: not valid YAML (" in line and fragment in line


def test_a_file_over_the_size_limit_is_refused_unread(tmp_path, capsys):
    path = _write(tmp_path, "# padding\n" * (MAX_YAML_BYTES // 10 + 1))
    assert f"exp.yaml: is over {MAX_YAML_BYTES:,} bytes" in _one_line(capsys, "config", "check", str(path))


# -- 2. encoding, directories, missing files ----------------------------------------------------------------

def test_non_utf8_yaml_names_the_file_and_the_byte(tmp_path, capsys):
    path = _write(tmp_path, b"name: x\ntrain:\n  epochs: 2 # \xff\xfe\n")
    assert _one_line(capsys, "train", str(path)) == (
        f"sepipe: error: {path}: is not UTF-8 text (byte 0xff at offset 29); save the experiment file as UTF-8")


def test_a_directory_is_a_directory_and_a_missing_file_is_not_found(tmp_path, capsys):
    (tmp_path / "exp.yaml").mkdir()
    assert _one_line(capsys, "config", "check", str(tmp_path / "exp.yaml")).endswith(
        "exp.yaml: is a directory; expected a YAML experiment file")
    assert _one_line(capsys, "config", "check", str(tmp_path / "absent.yaml")).endswith(
        "absent.yaml: experiment file not found")


def test_a_document_that_is_no_mapping_says_what_it_holds(tmp_path, capsys):
    line = _one_line(capsys, "config", "check", str(_write(tmp_path, "- a\n- b\n")))
    assert line.endswith("exp.yaml: must be a YAML mapping of sections; it holds ['a', 'b']")


@pytest.mark.parametrize("text, key", [
    ("1: x\n", "1"), ("~: x\n", "None"), ("train: {2020-01-01: 3}\n", "train.datetime.date(2020, 1, 1)"),
])
def test_keys_that_are_not_names_are_config_errors(tmp_path, text, key):
    with pytest.raises(ConfigError) as info:
        load_experiment(_write(tmp_path, text))
    assert info.value.key == key and "keys that are names" in str(info.value)


# -- 3. --set ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("option, fragment", [
    ("train.epochs=[1", "--set: option 'train.epochs' = '[1' is not valid; expected a YAML value"),
    ("name.x=1", "--set: option 'name.x' = 1 is not valid; expected a key inside a section; 'name' is a value"),
    ("train.epochs.x=1", "'train.epochs' is a value, not a section"),
    ("variants.x=1", "option 'variants' = {'x': 1} is not valid; expected a list of VariantConfig"),
    (".=1", "--set: option '.' = 1 is not valid; expected a dotted key of names"),
    ("train..epochs=1", "--set: option 'train..epochs'"),
    ("=1", "--set: option '=1'"),
    ("train.epochs", "expected KEY=VALUE"),
    ("train.epochs=&a [*a]", "recursive document"),
    ("train.learning_rate=.inf", "option 'train.learning_rate' = inf is not valid; expected a finite number"),
])
def test_bad_set_options_are_one_line_naming_the_option(tmp_path, capsys, option, fragment):
    line = _one_line(capsys, "config", "check", str(_write(tmp_path, "train:\n  epochs: 2\n")), f"--set={option}")
    assert fragment in line


# -- 4. --out ---------------------------------------------------------------------------------------------------

def test_out_pointing_at_a_file_is_one_line(tmp_path, capsys):
    (tmp_path / "taken").write_text("x")
    line = _one_line(capsys, "compile", str(tmp_path / "m.tflite"), "--target", "ethos-u55-128",
                     "--out", str(tmp_path / "taken"))
    assert line.endswith("is not valid; expected a folder (it may not exist yet); this is a file")
    line = _one_line(capsys, "compile", str(tmp_path / "m.tflite"), "--target", "ethos-u55-128",
                     "--out", str(tmp_path / "taken" / "sub"))
    assert line.startswith("sepipe: error: --out: option 'out'") and line.endswith("taken is a file")


# -- 5. variants: [] --------------------------------------------------------------------------------------------

def test_an_empty_variant_list_is_refused_before_anything_is_written(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _write(tmp_path, "variants: []\n")
    for argv in (["config", "check", "exp.yaml"], ["report", "exp.yaml"], ["run", "exp.yaml"]):
        line = _one_line(capsys, *argv)
        assert line.startswith("sepipe: error: exp.yaml: option 'variants' = [] is not valid; expected a list of "
                               "at least one variant")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exp.yaml"]


# -- 6. seeds and integer bounds --------------------------------------------------------------------------------

@pytest.mark.parametrize("raw, key", [
    ({"seed": -1}, "seed"), ({"seed": 2**32}, "seed"), ({"data": {"seed": -1}}, "data.seed"),
    ({"train": {"batch_size": 10**9}}, "train.batch_size"),
])
def test_seeds_and_batch_size_are_bounded(raw, key):
    with pytest.raises(ConfigError) as info:
        experiment_from_dict({"name": "x", **raw}, source="exp.yaml")
    assert info.value.key == key


def test_seed_bounds_are_inclusive():
    assert experiment_from_dict({"name": "x", "seed": 2**32 - 1, "data": {"seed": 0}}).seed == 2**32 - 1


@pytest.mark.parametrize("key", sorted(INT_BOUNDS))
def test_every_integer_option_has_a_documented_range(key):
    section, field = key.split(".")
    low, high, _ = INT_BOUNDS[key]
    assert experiment_from_dict({"name": "x", section: {field: high}}) is not None
    for bad in (low - 1, high + 1):
        with pytest.raises(ConfigError) as info:
            experiment_from_dict({"name": "x", section: {field: bad}}, source="exp.yaml")
        assert info.value.key == key and f"from {low} to {high:,}" in str(info.value)


# -- 7. non-finite floats ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, key", [
    ("train:\n  learning_rate: .nan\n", "train.learning_rate"),
    ("train:\n  sisdr_weight: .inf\n", "train.sisdr_weight"),
    ("data:\n  snr_db: [-.inf, 20]\n", "data.snr_db"),
    ("data:\n  segment_s: 1.0e+400\n", "data.segment_s"),
    ("train:\n  learning_rate: 1" + "0" * 400 + "\n", "train.learning_rate"),
])
def test_non_finite_numbers_are_refused_in_yaml(tmp_path, text, key):
    with pytest.raises(ConfigError) as info:
        load_experiment(_write(tmp_path, text))
    assert info.value.key == key and "a finite number" in str(info.value)


@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "1e999", "x"])
def test_hop_ms_must_be_a_finite_number(tmp_path, capsys, value):
    line = _one_line(capsys, "budget", "check", str(tmp_path), f"--hop-ms={value}")
    assert line.startswith("sepipe: error: sepipe budget check: argument --hop-ms: ")
    assert line.endswith("(see 'sepipe budget check --help')")


def test_hop_ms_is_bounded(tmp_path, capsys):
    assert "option 'hop-ms' = 0.0 is not valid" in _one_line(capsys, "budget", "check", str(tmp_path), "--hop-ms=0")


def test_argparse_errors_are_one_line(capsys):
    assert _one_line(capsys, "run", "x.yaml", "--cpus-per-task", "0") == (
        "sepipe: error: sepipe run: argument --cpus-per-task: 0 is not an integer from 1 to 1,024 "
        "(see 'sepipe run --help')")
    assert "invalid choice: 'nonsense'" in _one_line(capsys, "nonsense")


# -- 8. the experiment name -------------------------------------------------------------------------------------

def test_a_file_name_with_a_space_names_the_experiment(tmp_path, capsys):
    path = _write(tmp_path, "train:\n  epochs: 2\n", name="my exp v1.2.yaml")
    code, err = _cli(capsys, "config", "check", str(path))
    assert code == 0 and err == []
    assert load_experiment(path).run_dir == Path("runs") / "my exp v1.2"


@pytest.mark.parametrize("name", ["my exp", "exp-1_b.2", "Größe", "a"])
def test_names_safe_as_a_folder_are_accepted(name):
    assert experiment_from_dict({"name": name}).name == name


@pytest.mark.parametrize("name", ["", ".", "..", ".hidden", " lead", "trail ", "dot.", "a/b", "a\\b", "../x",
                                  "a\nb", "a\x00b", "a:b", "x" * 101])
def test_names_that_could_escape_or_vanish_are_refused(name):
    with pytest.raises(ConfigError) as info:
        experiment_from_dict({"name": name}, source="exp.yaml")
    assert info.value.key == "name" and "\n" not in str(info.value)


def test_a_nul_in_a_path_option_is_refused():
    with pytest.raises(ConfigError) as info:
        experiment_from_dict({"name": "x", "runs_dir": "ru\x00ns"})
    assert info.value.key == "runs_dir"


# -- one line, whatever the value --------------------------------------------------------------------------------

def test_a_newline_in_a_key_or_a_huge_value_still_gives_one_bounded_line(tmp_path, capsys):
    text = 'train:\n  "ep\\nochs": 3\n'
    assert "option 'train.ep\\nochs'" in _one_line(capsys, "config", "check", str(_write(tmp_path, text)))
    text = "name: '" + "x" * 500_000 + "'\n"
    line = _one_line(capsys, "config", "check", str(_write(tmp_path, text)))
    assert len(line) < 700 and "option 'name' = 'xxx" in line


def test_an_input_file_error_with_a_newline_in_its_path_is_one_line(tmp_path, capsys):
    with pytest.raises(InputFileError):
        load_experiment(tmp_path / "a\nb.yaml")
    assert _one_line(capsys, "config", "check", str(tmp_path / "a\nb.yaml")).endswith("b.yaml: experiment file not found")
