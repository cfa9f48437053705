"""Untrusted hand-off bundles (issue 11): a bundle edited as an attacker would (hashes recomputed, so only
the edit is left to catch) gives one problem line and exit 1, or one error line and exit 2; never a
traceback, a signal, an unbounded allocation or files left in the temp folder. And an interrupted
`sepipe bundle` never leaves a folder and a zip of two builds. Verification runs in a child process
under a memory bound (hostile_bundle.run_verify), as the firmware team's CI would run it."""

from __future__ import annotations

import json
import os
import time
import zipfile
from pathlib import Path

import pytest

import sepipe.bundle as sb
from hostile_bundle import MANIFEST, SUMS, TARGET, copy_bundle, edit_manifest, one_line_outcome, rehash, run_verify
from hostile_bundle import bundle, tiny_run, zip_folder  # noqa: F401  (module fixtures: a tiny run and its bundle)
from sepipe.bundle import c_array_bytes, make_bundle, verify_bundle
from sepipe.cli import main
from sepipe.errors import InputFileError

ARENA = "tflm_arena.reference_kernels.recommended_bytes"
MAX_FRAMES = 10_000     # sepipe.bundle.MAX_FRAMES (checked below; a literal so this module loads on older code)


def _set(path: str, value):
    def edit(manifest):
        node = manifest
        *parents, last = path.split(".")
        for key in parents:
            node = node[key]
        node[last] = value
        return manifest
    return edit


def _lines(proc):
    return proc.stdout.splitlines(), [line for line in proc.stderr.splitlines() if line.strip()]


def _problem(proc, bundle_folder):
    """The one problem line of a verification that failed with exit 1 (and its summary naming the bundle)."""
    out, err = _lines(proc)
    assert one_line_outcome(proc) is None, one_line_outcome(proc)
    assert proc.returncode == 1 and len(out) == 1, (out, err)
    assert err == [f"{bundle_folder}: 1 problem(s)"]
    return out[0]


def _error(proc):
    """The one error line of a verification refused with exit 2."""
    out, err = _lines(proc)
    assert proc.returncode == 2 and len(err) == 1 and err[0].startswith("sepipe: error: "), (proc.returncode, err)
    assert "Traceback" not in proc.stderr
    return err[0]


# --------------------------------------------------------------------------- the arena

@pytest.mark.parametrize("arena", [16, -1, 0, 10**13, "16", "abc", 1.5e4, None, True, [11264]])
def test_an_arena_out_of_range_is_one_problem_line_before_anything_runs(bundle, tmp_path, arena):  # noqa: F811
    folder = edit_manifest(copy_bundle(bundle, tmp_path), _set(ARENA, arena))
    proc = run_verify(folder)
    assert _problem(proc, folder) == (f"{MANIFEST}: '{ARENA}' = {arena!r} is not valid; expected a whole number "
                                      f"of bytes from 1024 to {1 << 28}")


def test_an_arena_that_crashes_tflm_is_one_line_naming_the_bundle_and_signal(bundle, tmp_path):  # noqa: F811
    arena = json.loads((bundle / MANIFEST).read_text())["tflm_arena"]["reference_kernels"]
    crashing = (arena["probes_that_crashed"] or [arena["measured_min_bytes"] - 8])[-1]
    folder = edit_manifest(copy_bundle(bundle, tmp_path), _set(ARENA, crashing))
    line = _problem(run_verify(folder), folder)
    assert line.startswith(f"model/tinyh_ptq.tflite: the TFLite Micro re-run of bundle '{bundle.name}' with the "
                           f"manifest's arena of {crashing} bytes failed (killed by signal SIGSEGV)"), line


# --------------------------------------------------------------------------- malformed manifest, sums, model

@pytest.mark.parametrize("edit, expected", [
    (lambda m: [m], f"{MANIFEST}: is a JSON list, not an object"),
    (lambda m: {**m, "files": sorted(m["files"])}, f"{MANIFEST}: 'files' = ['README.md', "),
    (_set("model.c_array.source", "../../../../etc/passwd"),
     f"{MANIFEST}: 'model.c_array.source' = '../../../../etc/passwd' is not valid; expected the relative path of a "
     "file in the bundle"),
    (_set("model.c_array.symbol", "x[1]; int y"), f"{MANIFEST}: 'model.c_array.symbol' = 'x[1]; int y' is not valid"),
    (_set("features.fft_size", 10**9), f"{MANIFEST}: features: option 'features.fft_size' = 1000000000 is not valid"),
    (lambda m: {k: v for k, v in m.items() if k != "tflm_arena"}, f"{MANIFEST}: lacks '{ARENA}'"),
])
def test_a_malformed_manifest_is_one_problem_line(bundle, tmp_path, edit, expected):  # noqa: F811
    folder = edit_manifest(copy_bundle(bundle, tmp_path), edit)
    line = _problem(run_verify(folder), folder)
    assert line.startswith(expected) and len(line) < 300, line


def test_a_manifest_that_is_not_json_is_one_problem_line(bundle, tmp_path):  # noqa: F811
    folder = copy_bundle(bundle, tmp_path)
    (folder / MANIFEST).write_bytes(b"[" * 100_000)     # deeper than the JSON parser's recursion
    rehash(folder)
    assert _problem(run_verify(folder), folder).startswith(f"{MANIFEST}: not valid JSON (RecursionError")


def test_a_sha256sums_that_is_not_utf8_is_one_error_line(bundle, tmp_path):  # noqa: F811
    folder = copy_bundle(bundle, tmp_path)
    (folder / SUMS).write_bytes(b"\xff\xfe" + (folder / SUMS).read_bytes())
    assert _error(run_verify(folder)) == (f"sepipe: error: {folder / SUMS}: not UTF-8 text (byte 0); expected "
                                          "'<sha256>  <file>' lines")


def test_a_garbage_model_with_recomputed_hashes_is_one_problem_line(bundle, tmp_path):  # noqa: F811
    folder = copy_bundle(bundle, tmp_path)
    (folder / "model" / "tinyh_ptq.tflite").write_bytes(b"garbage " * 100)
    rehash(folder)
    line = _problem(run_verify(folder), folder)
    assert line.startswith("model/tinyh_ptq.tflite: TFLite Micro cannot run it with the manifest's arena"), line


def test_too_many_golden_frames_are_refused_before_they_are_read(bundle, tmp_path):  # noqa: F811
    folder = copy_bundle(bundle, tmp_path)
    (folder / "golden" / "features.f32").write_bytes(bytes(4 * 257 * (MAX_FRAMES + 1)))
    rehash(folder)
    assert _problem(run_verify(folder), folder) == (f"golden/features.f32: {MAX_FRAMES + 1} frames; a bundle has at "
                                                    f"most {MAX_FRAMES}")


def test_a_link_in_a_bundle_folder_is_refused(bundle, tmp_path):  # noqa: F811
    folder = copy_bundle(bundle, tmp_path)
    os.symlink("/etc/hostname", folder / "golden" / "extra.bin")
    assert _error(run_verify(folder)).endswith("golden/extra.bin is a link or a special file; a bundle holds "
                                               "regular files only")


# --------------------------------------------------------------------------- zip bombs and limits

def _bomb(bundle_folder: Path, tmp_path: Path, size: int) -> Path:
    """The bundle zipped with golden/features.f32 replaced by `size` zero bytes, every hash recomputed."""
    folder = copy_bundle(bundle_folder, tmp_path)
    (folder / "golden" / "features.f32").write_bytes(bytes(size))
    rehash(folder)
    return zip_folder(folder, tmp_path / "bomb.zip")


def test_a_zip_bomb_is_refused_from_its_directory_and_leaves_nothing(bundle, tmp_path):  # noqa: F811
    bomb = _bomb(bundle, tmp_path, 64 << 20)
    assert bomb.stat().st_size < 1 << 20
    line = _error(run_verify(bomb))                 # run_verify bounds memory and time (a hang fails it)
    assert line.startswith(f"sepipe: error: {bomb}: entry '{bundle.name}/golden/features.f32' inflates ") and \
        "a zip bomb?" in line, line
    assert not list(tmp_path.glob("sepipe-*"))      # run_verify's TMPDIR is the zip's folder


@pytest.mark.parametrize("limits, fragment", [
    ({"entries": 5}, "entries; a bundle has at most 5"),
    ({"entry_bytes": 8 << 10}, "; a bundle file is at most 8.0 KiB"),
    ({"total_bytes": 64 << 10}, " in all; a bundle is at most 64.0 KiB"),
    ({"ratio": 2.0, "ratio_from_bytes": 1 << 10}, " times is accepted (a zip bomb?)"),
])
def test_each_zip_limit_is_checked_before_extraction(bundle, tmp_path, monkeypatch, limits, fragment):  # noqa: F811
    zipped = zip_folder(copy_bundle(bundle, tmp_path), tmp_path / "b.zip")
    assert verify_bundle(zipped).ok
    with pytest.raises(InputFileError) as refused:
        verify_bundle(zipped, limits=sb.Limits(**limits))
    assert fragment in str(refused.value)


def test_a_zip_directory_that_understates_a_size_cannot_write_more(bundle, tmp_path):  # noqa: F811
    """Extraction is streamed with a cap of each entry's declared size: a directory that lies is caught."""
    zipped = zip_folder(copy_bundle(bundle, tmp_path), tmp_path / "b.zip")
    data = bytearray(zipped.read_bytes())
    name = f"{bundle.name}/golden/features.f32".encode()
    for signature, name_at, size_at in ((b"PK\x03\x04", 30, 22), (b"PK\x01\x02", 46, 24)):  # local, central
        start = data.find(signature)
        while data[start + name_at:start + name_at + len(name)] != name:
            assert start >= 0
            start = data.find(signature, start + 1)
        data[start + size_at:start + size_at + 4] = (100).to_bytes(4, "little")   # declares 100 bytes
    zipped.write_bytes(bytes(data))
    line = _error(run_verify(zipped))
    assert "golden/features.f32" in line or "not a readable zip" in line, line
    assert not list(tmp_path.glob("sepipe-*"))


def test_zip_entries_outside_the_bundle_folder_are_refused(bundle, tmp_path):  # noqa: F811
    zipped = zip_folder(copy_bundle(bundle, tmp_path), tmp_path / "b.zip")
    with zipfile.ZipFile(zipped, "a") as archive:
        archive.writestr("../evil.txt", b"x")
    assert "'../evil.txt' is not a relative path inside the bundle folder" in _error(run_verify(zipped))
    assert not (tmp_path.parent / "evil.txt").exists()


def test_reading_a_hostile_c_array_takes_linear_time():
    started = time.process_time()         # CPU time: quadratic work on these inputs takes minutes, linear ms
    assert c_array_bytes("se_model[" * 20_000, "se_model") is None
    assert c_array_bytes("se_model[] = {" + "/*" * 20_000 + "};", "se_model") == b""
    assert c_array_bytes("se_model[] = {1, 0x2, 0003};", "se_model") == b"\x01\x02\x03"
    assert c_array_bytes("se_model[] = {" + "9" * 5000 + "};", "se_model") is None
    assert c_array_bytes("se_model[] = {256};", "se_model") is None
    assert time.process_time() - started < 5


# --------------------------------------------------------------------------- `sepipe bundle`

def test_frames_out_of_range_is_one_line_with_the_valid_range(tiny_run, tmp_path, capsys):  # noqa: F811
    from sepipe.cli import bundle as bundle_cli

    for frames in ("100000000", "1", "-5"):
        code = main(["-q", "bundle", str(tiny_run.run_dir), "--target", TARGET, "--out", str(tmp_path),
                     "--frames", frames])
        err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
        assert code == 2 and err == [f"sepipe: error: option '--frames' = {frames} is not valid; expected a whole "
                                     f"number of frames from 2 (the enhanced audio lags one hop) to {MAX_FRAMES}"]
    assert (bundle_cli.MAX_FRAMES, bundle_cli.DEFAULT_FRAMES) == (sb.MAX_FRAMES, sb.DEFAULT_FRAMES) == (MAX_FRAMES, 300)
    from sepipe.bundle.layout import C_SYMBOL
    assert bundle_cli.C_SYMBOL == C_SYMBOL
    assert not list(tmp_path.iterdir())


def test_verify_bundle_help_documents_the_exit_codes(capsys):
    with pytest.raises(SystemExit):
        main(["verify-bundle", "--help"])
    text = capsys.readouterr().out
    assert "exit codes:" in text
    for code in ("  0  every hash matches", "  1  verification failed", "  2  not readable as a bundle"):
        assert code in text


def test_an_interrupted_bundle_never_leaves_a_mix_of_two_builds(tiny_run, tmp_path, monkeypatch):  # noqa: F811
    """Interrupt `sepipe bundle` (KeyboardInterrupt) at each rename it makes, over a bundle of other frames:
    what is left in the folder is the old bundle, the new one, or part of one of them, never a mix, and
    nothing of the build."""
    from sepipe.bundle import build

    arenas = {}
    measure = build.measure_tflm_arena
    monkeypatch.setattr(build, "measure_tflm_arena", lambda data: arenas.setdefault(len(data), measure(data)))
    out = tmp_path / "bundles"
    make_bundle(tiny_run.run_dir, "ptq", TARGET, out_dir=out, frames=20)
    renames, real_replace = [], os.replace

    def counting(src, dst):
        renames.append(dst)
        return real_replace(src, dst)
    monkeypatch.setattr(os, "replace", counting)
    make_bundle(tiny_run.run_dir, "ptq", TARGET, out_dir=out, frames=21)
    # every rename but the golden files' (each like the first: inside the build folder)
    stops = [i for i, dst in enumerate(renames) if i == 0 or Path(dst).parent.name != "golden"]
    assert len(stops) >= 3, renames
    failures = []
    for stop in stops:
        make_bundle(tiny_run.run_dir, "ptq", TARGET, out_dir=out, frames=20)    # the "old" bundle again
        calls = []

        def interrupted(src, dst, stop=stop):
            calls.append(dst)
            if len(calls) > stop:
                raise KeyboardInterrupt
            return real_replace(src, dst)
        monkeypatch.setattr(os, "replace", interrupted)
        with pytest.raises(KeyboardInterrupt):
            make_bundle(tiny_run.run_dir, "ptq", TARGET, out_dir=out, frames=22)
        monkeypatch.setattr(os, "replace", real_replace)
        failures += _mixed(out, f"interrupted at rename {stop} ({Path(renames[stop]).name})")
    assert not failures, failures


def _mixed(out: Path, when: str) -> list[str]:
    """What is wrong with the bundles in `out` after an interrupted build: a folder and a zip of two builds,
    a bundle that does not verify, or anything of the build left behind (hidden names)."""
    bundles = [p for p in sorted(out.iterdir()) if not p.name.startswith(".")]
    frames, wrong = {}, [f"{when}: left {p.name}" for p in sorted(out.iterdir()) if p.name.startswith(".")]
    for path in bundles:
        report = verify_bundle(path)
        if not report.ok:
            wrong.append(f"{when}: {path.name} does not verify: {report.problems[:2]}")
        frames[path.name] = report.frames
    if len(set(frames.values())) > 1:
        wrong.append(f"{when}: a folder and a zip of two builds, both verify: {frames}")
    return wrong
