"""Property-based fuzzing of `sepipe verify-bundle` (issue 11): a real bundle's model_manifest.json and
SHA256SUMS mutated (keys, values, types; the hashes recomputed so the edit itself reaches every check),
verified in a child process under a memory and a time bound. The property: it passes, or it fails with
one line per problem (exit 1) or one error line (exit 2); never a traceback, a signal or a timeout.

SEPIPE_FUZZ_EXAMPLES sets how many inputs are tried (default 25, about a second each);
SEPIPE_FUZZ_TALLY=<file> records every outcome there instead of failing at the first, for the note.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import uuid

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from hostile_bundle import MANIFEST, SUMS, copy_bundle, one_line_outcome, rehash, run_verify
from hostile_bundle import bundle, tiny_run  # noqa: F401  (module fixtures: a tiny run and its bundle)

pytestmark = pytest.mark.slow   # the fixture trains, converts and compiles a tiny model

EXAMPLES = int(os.environ.get("SEPIPE_FUZZ_EXAMPLES", "25"))
TALLY = os.environ.get("SEPIPE_FUZZ_TALLY")

# values an attacker (or a careless editor) would try, beside hypothesis' own
_HOSTILE = st.sampled_from([16, 0, -1, 10**13, 2**63, 1e308, float("nan"), "16", "", "../../etc/passwd",
                            "/etc/passwd", "golden", "model", "\x00", [], {}, None, True, [1, 2], {"a": 1}])
_JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
                     lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                                   max_size=4),
                     max_leaves=12)
_VALUES = _HOSTILE | _JSON


def _paths(value, prefix=()):
    """Every key path into nested dicts and lists of `value`."""
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return
    for key, child in items:
        yield prefix + (key,)
        yield from _paths(child, prefix + (key,))


def _apply(manifest, path, action, value):
    if not path:
        return value
    parent = manifest
    for key in path[:-1]:
        parent = parent[key]
    if action == "delete":
        del parent[path[-1]]
    elif action == "rename" and isinstance(parent, dict):
        parent[f"{path[-1]}_x"] = parent.pop(path[-1])
    else:
        parent[path[-1]] = value
    return manifest


@st.composite
def manifest_edits(draw, manifest):
    """1..3 edits of `manifest`: set a value (hostile or random JSON), delete or rename a key, or
    replace the whole document."""
    manifest = copy.deepcopy(manifest)
    for _ in range(draw(st.integers(1, 3))):
        paths = list(_paths(manifest))
        whole = not paths or draw(st.integers(0, 19)) == 0
        path = () if whole else draw(st.sampled_from(paths))
        action = draw(st.sampled_from(["set", "set", "delete", "rename"]))
        manifest = _apply(manifest, path, action, draw(_VALUES))
        if not isinstance(manifest, (dict, list)):
            break
    return manifest


@st.composite
def sums_edits(draw, sums: bytes):
    """SHA256SUMS as it is, or with a line dropped, duplicated, garbled, or bytes that are not UTF-8."""
    lines = sums.splitlines(keepends=True)
    kind = draw(st.sampled_from(["keep", "keep", "keep", "drop", "dup", "garble", "bytes", "traversal"]))
    index = draw(st.integers(0, len(lines) - 1))
    if kind == "drop":
        del lines[index]
    elif kind == "dup":
        lines.insert(index, lines[index])
    elif kind == "garble":
        lines[index] = draw(st.binary(max_size=80)) + b"\n"
    elif kind == "bytes":
        lines.insert(index, b"\xff\xfe\x80" + lines[index])
    elif kind == "traversal":
        lines.append(lines[index].split(b" ", 1)[0] + b"  ../../../etc/passwd\n")
    return b"".join(lines)


def _record(outcome: str) -> None:
    with open(TALLY, "a") as tally:
        tally.write(outcome.replace("\n", " | ")[:600] + "\n")


@pytest.fixture(scope="module")
def original(bundle):  # noqa: F811
    return json.loads((bundle / MANIFEST).read_text())


@settings(max_examples=EXAMPLES, deadline=None, phases=[Phase.generate] if TALLY else list(Phase),
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_verify_bundle_passes_or_fails_in_one_line_within_bounds(bundle, original, tmp_path, data):  # noqa: F811
    work = tmp_path / uuid.uuid4().hex
    work.mkdir()
    folder = copy_bundle(bundle, work)
    manifest = data.draw(manifest_edits(original), label="manifest")
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=1))
    rehash(folder)
    sums = data.draw(sums_edits((folder / SUMS).read_bytes()), label="SHA256SUMS")
    (folder / SUMS).write_bytes(sums)
    try:
        proc = run_verify(folder)
        broken = one_line_outcome(proc)
    except subprocess.TimeoutExpired:
        proc, broken = None, "timed out"
    leftovers = [p.name for p in work.iterdir() if p.name != folder.name]
    broken = broken or (f"left {leftovers} in the temp folder" if leftovers else None)
    shutil.rmtree(work, ignore_errors=True)
    if TALLY:
        _record(f"CRASH {broken}" if broken else f"ok exit {proc.returncode}")
        return
    assert broken is None, broken
