"""Property-based fuzzing of experiment YAML and `--set` overrides (issue 11).

Property: whatever the text of the experiment file (random nested values under the real keys and
random keys, YAML tags, anchors and aliases, random bytes) and whatever `--set KEY=VALUE` strings
come with it, `sepipe config check` either accepts it (exit 0) or prints exactly one bounded line
`sepipe: error: ...` with exit 2; never another exception, within a memory bound (the address space
may grow by at most MEMORY_BOUND while one input is checked) and a bound on the CPU time it takes (TIME_BOUND_S; CPU, not wall-clock, time, so a busy machine does
not fail it).
The loader-level property (`load_experiment` returns a config or raises PipelineError with a
one-line message) is checked the same way.
"""

from __future__ import annotations

import contextlib
import dataclasses
import resource
import sys
import time
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

LINE_LIMIT = 2000            # sepipe.errors.LINE_LIMIT: what one error line may hold
MEMORY_BOUND = 256 << 20
TIME_BOUND_S = 30.0         # CPU seconds: a hang or unbounded work, not a slow machine (wall time is not asserted)


def _section_keys() -> dict[str, list[str]]:
    """The real keys of each section, read from the config dataclasses (so the fuzz follows the schema)."""
    from sepipe import config
    from sepipe.compress import COMPRESSORS
    from sepipe.models import FAMILIES

    def names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    keys = {section: names(cls) for section, cls in [
        ("data", config.DataConfig), ("features", config.FeatureConfig), ("train", config.TrainConfig),
        ("convert", config.ConvertConfig), ("compile", config.CompileConfig), ("evaluate", config.EvaluateConfig)]}
    keys["model"] = sorted({n for e in FAMILIES if e.config for n in names(e.config)})
    keys["variants"] = sorted({n for e in COMPRESSORS if e.config for n in names(e.config)})
    return keys


SECTION_KEYS = _section_keys()
TOP_KEYS = ["name", "seed", "runs_dir", *SECTION_KEYS]
WORDS = ["gru", "lstm", "ptq", "weight", "block", "unit", "offline", "int8", "int16", "int16x8", "debian",
         "voicebank", "dns", "small", "full", "cosine", "constant", "float", "tflite", "tflm", "noisy", "rnnoise",
         "v1", "v2", "ethos-u55-128", "sqrt_hann", "log_power", "reverberant", "sisdr", "demo", ".", "..", ""]

scalars = st.one_of(
    st.none(), st.booleans(),
    st.integers(-2**70, 2**70), st.sampled_from([0, 1, -1, 2, 16, 256, 512, 4096, 2**31, 2**32, 10**9, 10**30]),
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([0.5, 1e-3, 0.002, -5.0, 20.0]),
    st.text(max_size=12), st.sampled_from(WORDS))
random_key = st.text(max_size=8) | st.integers(-3, 3) | st.none()
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(random_key | st.sampled_from(sum(SECTION_KEYS.values(), [])), inner,
                                        max_size=4), max_leaves=12)


def _section(name: str):
    mapping = st.dictionaries(st.sampled_from(SECTION_KEYS.get(name, ["x"])) | random_key, values, max_size=5)
    if name == "variants":
        return st.lists(mapping, max_size=3) | values
    return mapping | values if name in SECTION_KEYS else values


documents = st.lists(st.sampled_from(TOP_KEYS), unique=True, max_size=6).flatmap(
    lambda keys: st.fixed_dictionaries({k: _section(k) for k in keys})) | st.dictionaries(random_key, values, max_size=3)


def _dump(doc) -> str:
    return yaml.safe_dump(doc, allow_unicode=True, default_flow_style=None, sort_keys=False)


def _bomb(key: str, depth: int, width: int) -> str:
    """`key: <value>` whose value is `width ** depth` ones once its aliases are expanded, in a few hundred bytes."""
    inner = "&a1 [" + ", ".join(["1"] * width) + "]"
    for level in range(2, depth + 1):
        inner = f"&a{level} [" + ", ".join([inner] + [f"*a{level - 1}"] * (width - 1)) + "]"
    return f"{key}: {inner}\n"


tricks = st.one_of(
    st.builds(_bomb, st.sampled_from(["data.snr_db", "name", "variants", "train", "x"]).map(
        lambda k: k.split(".")[-1]), st.integers(1, 10), st.integers(1, 10)),
    st.sampled_from(["a: &a [*a]\n", "a: &a {b: *a}\n", "<<: *x\n", "seed: !!python/object:os.system x\n",
                     "name: !!binary aGVsbG8=\n", "seed: !!timestamp 2020-13-45\n", "train: !!set {a, b}\n",
                     "seed: " + "9" * 5000 + "\n", "data: " + "[" * 300 + "]" * 300 + "\n", "--- a\n--- b\n",
                     "? [1, 2]\n: 3\n", "train: {epochs: 2, epochs: 3}\n", "\ufeffname: bom\n", "\t- x\n", ""]),
    st.integers(100, 5000).map(lambda n: "data: " + "[" * n + "]" * n + "\n"))


@st.composite
def file_bytes(draw) -> bytes:
    """An experiment file: a dumped document, a trick, or either with random bytes spliced in, or just bytes."""
    kind = draw(st.sampled_from(["doc", "doc", "doc", "trick", "spliced", "bytes"]))
    if kind == "bytes":
        return draw(st.binary(max_size=200))
    text = (draw(tricks) if kind == "trick" else _dump(draw(documents))).encode("utf-8")
    if kind == "spliced" and text:
        at = draw(st.integers(0, len(text)))
        text = text[:at] + draw(st.binary(min_size=1, max_size=8)) + text[at:]
    return text


dotted_keys = st.one_of(
    st.sampled_from([f"{s}.{k}" for s, keys in SECTION_KEYS.items() for k in keys] + TOP_KEYS
                    + ["name.x", "seed.a.b", "train.epochs.x", "variants.0", ".", "..", "a..b", ""]),
    st.lists(st.text(max_size=5), min_size=1, max_size=4).map(".".join))
set_values = st.one_of(scalars.map(lambda v: yaml.safe_dump(v, default_flow_style=True).removesuffix("\n...\n")
                                   .strip()), st.text(max_size=20), values.map(lambda v: _dump(v).strip()),
                       tricks.map(lambda t: t.partition(": ")[2].strip()))
set_options = st.lists(st.one_of(st.builds(lambda k, v: f"{k}={v}", dotted_keys, set_values), st.text(max_size=12)),
                       max_size=3)


def _vm_size() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmSize in /proc/self/status")


@contextlib.contextmanager
def memory_bound(extra: int = MEMORY_BOUND):
    """Cap this process's address space at its current size + `extra` while the block runs: an input
    that allocates without bound fails with MemoryError inside the block instead of taking the machine."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = _vm_size() + extra
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def check_loader(folder: Path, data: bytes, sets: list[str]) -> str:
    """The loader-level property: a config, or a PipelineError with a one-line bounded message.
    Returns 'ok' or 'error'; anything else raises (the fuzz counts those as crashes)."""
    from sepipe.cli.common import parse_overrides
    from sepipe.config import ExperimentConfig, load_experiment
    from sepipe.errors import PipelineError

    path = folder / "exp.yaml"
    path.write_bytes(data)
    start = time.process_time()
    try:
        with memory_bound():
            result = load_experiment(path, parse_overrides(sets))
    except PipelineError as exc:
        message = str(exc)
        assert "\n" not in message and len(message) <= LINE_LIMIT, f"not one bounded line: {message[:300]!r}"
        outcome = "error"
    else:
        assert isinstance(result, ExperimentConfig)
        outcome = "ok"
    assert time.process_time() - start < TIME_BOUND_S, "over the time bound"
    return outcome


def check_cli(folder: Path, data: bytes, sets: list[str], capsys) -> int:
    """The command-line property: `sepipe config check` exits 0, or 2 with exactly one bounded line."""
    from sepipe.cli import main

    path = folder / "exp.yaml"
    path.write_bytes(data)
    start = time.process_time()
    with memory_bound():
        code = main(["-q", "config", "check", str(path), *[f"--set={s}" for s in sets]])
    err = capsys.readouterr().err.splitlines()
    assert time.process_time() - start < TIME_BOUND_S, "over the time bound"
    if code == 0:
        assert err == []
    else:
        assert code == 2 and len(err) == 1 and err[0].startswith("sepipe: error: "), (code, err[:3])
        assert len(err[0]) <= LINE_LIMIT + len("sepipe: error: ")
    return code


pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the memory bound uses RLIMIT_AS and /proc")
FUZZ = settings(max_examples=250, deadline=None, suppress_health_check=list(HealthCheck))


@FUZZ
@given(data=file_bytes(), sets=set_options)
def test_fuzz_the_loader_gives_a_config_or_one_line(tmp_path_factory, data, sets):
    check_loader(tmp_path_factory.mktemp("fuzz"), data, sets)


@FUZZ
@given(data=file_bytes(), sets=set_options)
def test_fuzz_config_check_exits_0_or_2_with_one_line(tmp_path_factory, capsys, data, sets):
    check_cli(tmp_path_factory.mktemp("fuzz"), data, sets, capsys)


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(depth=st.integers(1, 12), width=st.integers(2, 12), key=st.sampled_from(["snr_db", "name", "train", "x"]))
def test_fuzz_alias_bombs_stay_within_the_memory_bound(tmp_path_factory, depth, width, key):
    text = ("data:\n  " if key == "snr_db" else "") + _bomb(key, depth, width)
    check_loader(tmp_path_factory.mktemp("bomb"), text.encode(), [])
