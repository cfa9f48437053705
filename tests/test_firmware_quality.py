"""The enhancer and the quality predictor in one firmware image (issue 17): firmware_stub/se_quality.c after the
frame loop, against the golden folder of sepipe.quality_predictor.firmware_golden.write_pair_golden.

A tiny untrained int8 GRU enhancer (convert_untrained) and a tiny int8 predictor (random weights, 1 s window of
61 x 16 log-mel, calibrated on the test audio's own features) are converted by the real converter; the golden
folder holds the enhancer's golden vectors, Python's int8 predictor windows of the enhanced audio and the TFLite
interpreter's scores. `make quality-test` builds one host image with both descriptors; the C feature stage must
reproduce every window within one step per value and, on the replayed outputs, the scores bit for bit.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from sepipe.quality_predictor.config import PredictorConfig
from sepipe.quality_predictor.firmware import PredictorMeta, mel_bands, quality_descriptor_source

slow = pytest.mark.slow   # the tests of the pair convert two tiny models (about 15 s, once per module)

ROOT = Path(__file__).resolve().parents[1]
STUB = ROOT / "firmware_stub"
FRAMES, STRIDE, SECONDS = 200, 20, 1.0


def _audio(small_dataset) -> np.ndarray:
    pair = small_dataset.pairs("test", limit=1)[0]
    return np.asarray(pair.noisy[:FRAMES * 256], dtype=np.float32)


def _tiny_predictor(audio: np.ndarray, folder: Path) -> tuple[bytes, PredictorMeta]:
    """An int8 predictor of the deploy graph with random weights: 61 x 16 window, two targets."""
    from sepipe.models.keras_backend import keras
    from sepipe.quality_predictor.clips import frames_per_clip, log_mel
    from sepipe.quality_predictor.deploy import to_tflite
    from sepipe.quality_predictor.deploy_graph import build_deploy_model
    from sepipe.quality_predictor.model import build_train_model

    pcfg = PredictorConfig(targets=("pesq", "dnsmos_ovrl"), mels=16, channels=(4, 4, 4, 8), dense_units=8)
    frames = frames_per_clip(SECONDS)
    feats = log_mel(audio, pcfg.mels)
    mean, std = float(feats.mean()), float(feats.std())
    normalised = (feats - np.float32(mean)) / np.float32(std)
    windows = np.stack([normalised[s:s + frames] for s in range(0, len(feats) - frames + 1, 10)])[..., None]
    keras.utils.set_random_seed(0)
    trained = build_train_model(pcfg, frames, "float")
    model = build_deploy_model(pcfg, frames, "float", trained, (float(windows.min()), float(windows.max())))
    tflite = to_tflite(model, frames, pcfg.mels, windows)
    (folder / "predictor.tflite").write_bytes(tflite)
    return tflite, PredictorMeta("tiny_predictor", pcfg.targets, pcfg.mels, frames, mean, std, (2.0, 3.0),
                                 (0.5, 0.4))


@pytest.fixture(scope="module")
def pair(small_dataset, tmp_path_factory) -> dict:
    from sepipe.models.mask_rnn import MaskRnnConfig
    from sepipe.quantize.convert import convert_untrained
    from sepipe.quality_predictor.firmware_golden import write_pair_golden

    folder = tmp_path_factory.mktemp("quality_pair")
    audio = _audio(small_dataset)
    enhancer = convert_untrained(MaskRnnConfig(family="gru", input_units=32, rnn_units=24, dense_units=32), 257,
                                 folder / "enhancer.tflite", seed=0).read_bytes()
    predictor, meta = _tiny_predictor(audio, folder)
    golden = write_pair_golden(enhancer, predictor, meta, audio, FRAMES, folder / "pair", stride=STRIDE)
    return {"root": folder / "pair", "golden": golden, "meta": meta, "predictor": predictor}


def _make(target: str, root: Path, build: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["make", "-C", str(STUB), target, f"MODEL_IO={root / 'c'}", f"GOLDEN={root / 'enhancer'}",
                           f"QUALITY_GOLDEN={root / 'quality'}", f"BUILD={build}"],
                          capture_output=True, text=True, timeout=600)


def _results(stdout: str, what: str) -> dict[str, float]:
    line = next(line for line in stdout.splitlines() if line.startswith(f"RESULT {what} predictions="))
    return {k: float(v) for k, v in re.findall(r"(\w+)=([-\d.e+]+)", line)}


@slow
def test_enhancer_and_predictor_in_one_image_reproduce_python(pair, tmp_path):
    golden = pair["golden"]
    assert golden["windows"] == 1 + (golden["logmel_frames"] - golden["frames"]) // STRIDE == 7
    proc = _make("quality-test", pair["root"], tmp_path / "build")
    print("\n".join(line for line in proc.stdout.splitlines() if line.startswith(("RESULT", "PASS", "FAIL", "QUAL"))))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "\nPASS\n" in proc.stdout and "QUALITY PASS" in proc.stdout      # the enhancer's checks, then the chain
    for what in ("chain", "python_audio"):
        r = _results(proc.stdout, what)
        assert r["predictions"] == r["expected"] == 7 and r["score_mismatches"] == 0
        assert r["window_max_lsb"] <= 1 and r["window_over_1lsb"] == 0
        assert r["window_1lsb"] <= 0.01 * 7 * 61 * 16     # a value next to a rounding boundary, rarely
    # the scores the C image printed first are Python's first row
    first = re.search(r"RESULT chain first_scores pesq=([-\d.]+) dnsmos_ovrl=([-\d.]+)", proc.stdout)
    assert np.allclose([float(first[1]), float(first[2])], golden["scores"][0], atol=1e-4)


@slow
def test_the_same_image_passes_on_the_emulated_m55(pair, tmp_path):
    if not (shutil.which("arm-none-eabi-gcc") and shutil.which("qemu-system-arm")):
        pytest.skip("arm-none-eabi-gcc / qemu-system-arm missing (make firmware-toolchain)")
    proc = _make("qemu-quality-test", pair["root"], tmp_path / "build")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "QUALITY PASS" in proc.stdout and _results(proc.stdout, "chain")["window_max_lsb"] <= 1
    per_hop = re.search(r"RESULT chain feature_instructions_per_hop=(\d+)", proc.stdout)
    assert per_hop and int(per_hop[1]) > 0        # QEMU instructions of se_quality_push, the model call left out


@slow
def test_a_window_off_by_two_steps_fails(pair, tmp_path):
    """The check has teeth: one value of one golden window moved by 2 steps fails the chain."""
    root = tmp_path / "pair"
    shutil.copytree(pair["root"], root)
    windows = np.fromfile(root / "quality" / "in_windows.bin", dtype=np.int8)
    windows[123] = np.int8(windows[123] + (2 if windows[123] < 0 else -2))
    windows.tofile(root / "quality" / "in_windows.bin")
    proc = _make("quality-test", root, tmp_path / "build")
    assert proc.returncode != 0 and "QUALITY FAIL" in proc.stdout   # make reports the program's failure as 2
    assert "differs from Python's by more than 1 step" in proc.stdout


@slow
def test_the_descriptor_holds_python_tables_exactly(pair):
    meta = pair["meta"]
    source = quality_descriptor_source(meta, pair["predictor"], "se_qp")
    bands, weights = mel_bands(meta.mels)
    assert f"static const se_mel_band_t se_qp_bands[{meta.mels}]" in source
    assert f"static const float se_qp_mel_weights[{len(weights)}]" in source
    # every triangle is one run of bins, and the sparse form covers every non-zero weight of the matrix
    from sepipe.quality_predictor.clips import mel_filters
    assert len(weights) == int(np.count_nonzero(mel_filters(meta.mels)))
    assert [b[2] for b in bands] == list(np.cumsum([0] + [b[1] for b in bands[:-1]]))
    assert '{"pesq", "dnsmos_ovrl"}' in source and f"{meta.frames}, {meta.mels}," in source


@slow
def test_a_prefix_that_is_not_an_identifier_is_refused(pair):
    with pytest.raises(ValueError, match="not a C identifier"):
        quality_descriptor_source(pair["meta"], pair["predictor"], "9qp")


@pytest.mark.parametrize("args, fragment", [
    (["--variant", "nope"], "option 'variant' = 'nope' is not valid; expected one of the experiment's variants"),
    (["--variant", "binary", "--enhancer", "missing.tflite"], "missing.tflite: file not found"),
    (["--variant", "binary"], "convert.binary.json: not found; make it with: sepipe predictor run"),
])
def test_the_cli_refuses_bad_input_in_one_line(tmp_path, capsys, args, fragment):
    from sepipe.cli.main import main

    yaml = tmp_path / "qp.yaml"
    yaml.write_text(f"runs_dir: {tmp_path / 'runs'}\n")
    (tmp_path / "enhancer.tflite").write_bytes(b"not read before the run is found")
    base = {"--enhancer": str(tmp_path / "enhancer.tflite"), "--audio": str(tmp_path / "a.wav"),
            "--out": str(tmp_path / "out")}
    base.update(dict(zip(args[::2], args[1::2])))
    argv = ["predictor", "firmware", str(yaml)] + [x for kv in base.items() for x in kv]
    if "missing.tflite" in args:
        argv[argv.index("missing.tflite")] = str(tmp_path / "missing.tflite")
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and fragment in err
