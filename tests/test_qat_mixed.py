"""QAT scope 'full' with a mixed precision plan: each tensor fake-quantised at the width its group declares
(sepipe.compress.qat.plan_precision), the trained ranges set on the spliced graph (sepipe.quantize.worker), so
every tensor of the .tflite has the declared type AND the trained scale.

Tiny LSTM and GRU of tests/test_qat.py's size, 1-second segments, 4 base + 4 QAT steps.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from sepipe.models.keras_backend import tf  # noqa: F401  (TF_USE_LEGACY_KERAS first)
from sepipe.compress import finetune_variant
from sepipe.compress.finetune import FineTuneSession
from sepipe.compress.qat import plan_precision
from sepipe.config import experiment_from_dict
from sepipe.features import features as compute_features
from sepipe.models import family_of
from sepipe.quantize.calibration import collect_calibration, save_calibration
from sepipe.quantize.convert import convert_quantized
from sepipe.quantize.qat_ranges import quant_params
from sepipe.train import set_determinism

pytestmark = pytest.mark.slow           # trains (a few steps) and converts

REPO = Path(__file__).resolve().parents[1]
PLANS = {"lstm": {"default": "int8", "cell_state": "int16x8"},
         "gru": {"input": "int16x8", "rnn": "float"}}


def experiment(family: str):
    return experiment_from_dict({
        "name": "qatmix", "seed": 0,
        "data": {"cache_dir": str(REPO / ".cache"), "segment_s": 1.0},
        "model": {"family": family, "input_units": 32, "rnn_units": 24, "dense_units": 32},
        "train": {"batch_size": 4, "valid_files": 1},
        "convert": {"calibration_files": 2, "calibration_frames": 64},
        "variants": [{"name": "ptq", "kind": "ptq"},
                     {"name": "q", "kind": "weight", "sparsity": 0.0, "qat": True, "qat_scope": "full",
                      "finetune_epochs": 1, "finetune_steps_per_epoch": 4, "precision": PLANS[family]}],
    })


class Env:
    """A full-QAT variant with a precision plan, converted as a mix with and without its trained ranges."""

    def __init__(self, family, small_dataset, root: Path):
        from sepipe.data import Dataset

        self.cfg, self.root, self.plan = experiment(family), root, PLANS[family]
        set_determinism(self.cfg.seed)
        dataset = Dataset.open(dataclasses.replace(small_dataset.cfg, segment_s=1.0))
        self.bins = self.cfg.features.bins
        fam = family_of(self.cfg.model)
        model = fam.build_sequence(self.cfg.model, self.bins)
        FineTuneSession(self.cfg, dataset, 4, 1, 3e-3).train(model, 4, phase="base")
        base = root / "base" / "sequence.weights.h5"
        base.parent.mkdir(parents=True)
        model.save_weights(str(base))
        variant = self.cfg.variants[1]
        self.result = finetune_variant(variant, self.cfg, dataset, base, root / "q", progress=False)
        self.ranges = json.loads((root / "q" / "qat_ranges.json").read_text())["ranges"]
        streaming = fam.build_streaming(self.cfg.model, self.bins)
        streaming.load_weights(str(self.result.streaming_weights))
        feats = [compute_features(p.noisy[:16000 * 2], self.cfg.features)[0] for p in small_dataset.pairs("test", limit=2)]
        self.cal = save_calibration(collect_calibration(streaming, feats, frames=64, seed=0), root / "cal.npz")
        self.qat = convert_quantized(self.cfg.model, self.bins, self.result.streaming_weights, self.cal,
                                     root / "qat.tflite", scheme="mixed", precision=self.plan).read_bytes()
        ptq_dir = root / "ptq"                      # the same weights without the ranges file beside them
        ptq_dir.mkdir()
        shutil.copy(self.result.streaming_weights, ptq_dir / "streaming.weights.h5")
        self.ptq = convert_quantized(self.cfg.model, self.bins, ptq_dir / "streaming.weights.h5", self.cal,
                                     root / "ptq.tflite", scheme="mixed", precision=self.plan).read_bytes()

    def record(self) -> dict:
        """The worker's summary of the QAT conversion (in-process, same files: same bytes)."""
        from sepipe.quantize import worker

        summary = worker.convert(json.dumps(dataclasses.asdict(self.cfg.model)), self.bins,
                                 self.result.streaming_weights, self.cal, self.root / "again.tflite", "mixed",
                                 json.dumps(self.plan), self.root / "q" / "qat_ranges.json")
        assert (self.root / "again.tflite").read_bytes() == self.qat
        return summary["qat_ranges"]


@pytest.fixture(scope="module")
def lstm(small_dataset, tmp_path_factory):
    return Env("lstm", small_dataset, tmp_path_factory.mktemp("qatmix_lstm"))


@pytest.fixture(scope="module")
def gru(small_dataset, tmp_path_factory):
    return Env("gru", small_dataset, tmp_path_factory.mktemp("qatmix_gru"))


def io_quant(tflite: bytes) -> dict[str, tuple[float, int, str]]:
    """{signature name: (scale, zero point, dtype)} of every input and output."""
    from ai_edge_litert.interpreter import Interpreter

    runner = Interpreter(model_content=tflite).get_signature_runner()
    return {name: (float(d["quantization"][0]), int(d["quantization"][1]), np.dtype(d["dtype"]).name)
            for details in (runner.get_input_details(), runner.get_output_details()) for name, d in details.items()}


def test_plan_becomes_qat_bits_per_tensor():
    cfg = experiment("lstm")
    bits = plan_precision(PLANS["lstm"], cfg.model, cfg.features.bins).bits
    assert [bits(k) for k in ("rnn_1/c", "rnn_2/f_c", "rnn_1/i_g", "rnn_1/f", "rnn_2/tanh_c")] == [16] * 5
    assert [bits(k) for k in ("rnn_1/h", "rnn_1/x_mm", "rnn_2/o", "features", "mask/pre")] == [8] * 5
    cfg = experiment("gru")
    bits = plan_precision(PLANS["gru"], cfg.model, cfg.features.bins).bits
    assert [bits("features"), bits("input_dense/out"), bits("rnn_2/h"), bits("dense_1/out")] == [16, 16, 0, 8]
    # a layer key beats its group, a group beats default
    bits = plan_precision({"default": "int16x8", "rnn": "int8", "rnn_2": "float"}, cfg.model, cfg.features.bins).bits
    assert [bits("rnn_1/h"), bits("rnn_2/h"), bits("mask/out"), bits("features")] == [8, 0, 16, 16]


def test_lstm_cell_state_mix_has_declared_types_and_trained_scales(lstm):
    ranges = lstm.ranges
    assert ranges["rnn_1/c"]["bits"] == 16 and ranges["rnn_1/f_c"]["bits"] == 16 and ranges["rnn_1/h"]["bits"] == 8
    qat, ptq = io_quant(lstm.qat), io_quant(lstm.ptq)
    for name, key, dtype in [("rnn_1_c", "rnn_1/c", "int16"), ("rnn_2_c_out", "rnn_2/c", "int16"),
                             ("rnn_1_h", "rnn_1/h", "int8"), ("rnn_2_h_out", "rnn_2/h", "int8"),
                             ("features", "features", "int8")]:
        assert qat[name][2] == dtype, name                               # the type the plan declares
        scale, zp = quant_params(ranges[key]["min"], ranges[key]["max"], dtype)
        assert qat[name][0] == pytest.approx(scale, rel=1e-6) and qat[name][1] == zp, name   # the trained range
    assert abs(qat["rnn_1_c"][0] - ptq["rnn_1_c"][0]) > 1e-3 * ptq["rnn_1_c"][0]   # calibration gave another
    record = lstm.record()              # matched on the spliced graph: every tensor at its own width
    assert record["bits_differ"] == [] and record["from_calibration"] == []
    assert {"rnn_1/c", "rnn_1/f_c", "rnn_1/i_g", "rnn_1/h", "features"} <= {v["key"] for v in record["from_qat"].values()}


def test_qat_mix_follows_the_float_model_as_closely_as_the_ptq_mix(lstm):
    """Trained ranges matched to the wrong tensors (a wide c range taken for an h) would move the mask far
    from the float model; the right ones keep it about as close as calibration's."""
    from sepipe.quantize.calibration import load_calibration
    from sepipe.runtime import make_runner

    fam = family_of(lstm.cfg.model)
    contract = fam.contract(lstm.cfg.model, lstm.bins)
    streaming = fam.build_streaming(lstm.cfg.model, lstm.bins)
    streaming.load_weights(str(lstm.result.streaming_weights))
    feats = load_calibration(lstm.cal).inputs["features"]
    runner = make_runner("float", streaming_model=streaming, contract=contract)
    runner.reset()
    ref = runner.run(feats)
    diff = {}
    for name, tflite in (("qat", lstm.qat), ("ptq", lstm.ptq)):
        runner = make_runner("tflite", tflite_bytes=tflite, contract=contract)
        runner.reset()
        diff[name] = float(np.abs(runner.run(feats) - ref).mean())
    assert diff["qat"] <= 2 * diff["ptq"] + 2 / 256, diff


def test_gru_float_group_and_16bit_input(gru):
    """A float group is not fake-quantised (bits 0) and converts; the 16-bit input takes its trained range."""
    assert gru.ranges["rnn_1/h"]["bits"] == 0 and gru.ranges["features"]["bits"] == 16
    qat = io_quant(gru.qat)
    r = gru.ranges["features"]
    assert qat["features"][2] == "int16"
    assert qat["features"][0] == pytest.approx(quant_params(r["min"], r["max"], "int16")[0], rel=1e-6)
    record = gru.record()
    assert record["bits_differ"] == [] and "features" in {v["key"] for v in record["from_qat"].values()}
