"""QAT scope 'full' (sepipe.compress.qat_graph, qat_model, sepipe.quantize.qat_ranges): activations and
recurrent states fake-quantised during fine-tuning, the trained ranges carried into the .tflite.

Tiny GRU (int8) and LSTM (16x8) of tests/test_compress.py's size, 1-second segments, 3-4 steps.
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
from sepipe.compress.qat_graph import Precision
from sepipe.compress.qat_model import build_qat_sequence, load_ranges
from sepipe.config import VariantConfig, experiment_from_dict
from sepipe.errors import ConfigError
from sepipe.features import features as compute_features
from sepipe.models import family_of
from sepipe.quantize.calibration import collect_calibration, save_calibration
from sepipe.quantize.convert import convert_quantized
from sepipe.quantize.qat_ranges import quant_params
from sepipe.train import set_determinism

REPO = Path(__file__).resolve().parents[1]
SCHEME = {"gru": "int8", "lstm": "int16x8"}


def experiment(family: str):
    return experiment_from_dict({
        "name": "qat", "seed": 0,
        "data": {"cache_dir": str(REPO / ".cache"), "segment_s": 1.0},
        "model": {"family": family, "input_units": 32, "rnn_units": 24, "dense_units": 32},
        "train": {"batch_size": 4, "valid_files": 1},
        "convert": {"scheme": SCHEME[family], "calibration_files": 2, "calibration_frames": 64},
    })


class Env:
    """Base weights (a few steps), a block-pruned + full-QAT variant, its QAT and PTQ .tflite files."""

    def __init__(self, family, small_dataset, root: Path):
        from sepipe.data import Dataset

        self.cfg, self.root = experiment(family), root
        set_determinism(self.cfg.seed)
        self.dataset = Dataset.open(dataclasses.replace(small_dataset.cfg, segment_s=1.0))
        self.bins = self.cfg.features.bins
        self.family = family_of(self.cfg.model)
        model = self.family.build_sequence(self.cfg.model, self.bins)
        FineTuneSession(self.cfg, self.dataset, 4, 1, 3e-3).train(model, 4, phase="base")
        self.base = root / "base" / "sequence.weights.h5"
        self.base.parent.mkdir(parents=True)
        model.save_weights(str(self.base))
        self.features = [compute_features(p.noisy[:16000 * 2], self.cfg.features)[0]
                         for p in small_dataset.pairs("test", limit=2)]
        v = VariantConfig.create(name="bq", kind="block", sparsity=0.5, block=(1, 8), qat=True, qat_scope="full",
                                 finetune_epochs=1, finetune_steps_per_epoch=4)
        self.result = finetune_variant(v, self.cfg, self.dataset, self.base, root / "bq", progress=False)
        self.ranges = json.loads((root / "bq" / "qat_ranges.json").read_text())["ranges"]
        self.streaming = self.family.build_streaming(self.cfg.model, self.bins)
        self.streaming.load_weights(str(self.result.streaming_weights))
        cal = collect_calibration(self.streaming, self.features, frames=64, seed=0)
        self.cal = save_calibration(cal, root / "cal.npz")
        scheme = self.cfg.convert.scheme_name
        self.qat = convert_quantized(self.cfg.model, self.bins, self.result.streaming_weights, self.cal,
                                     root / "qat.tflite", scheme=scheme).read_bytes()
        ptq_dir = root / "ptq"                      # the same weights without the ranges file beside them
        ptq_dir.mkdir()
        shutil.copy(self.result.streaming_weights, ptq_dir / "streaming.weights.h5")
        self.ptq = convert_quantized(self.cfg.model, self.bins, ptq_dir / "streaming.weights.h5", self.cal,
                                     root / "ptq.tflite", scheme=scheme).read_bytes()


@pytest.fixture(scope="module")
def gru(small_dataset, tmp_path_factory):
    return Env("gru", small_dataset, tmp_path_factory.mktemp("qat_gru"))


@pytest.fixture(scope="module")
def lstm(small_dataset, tmp_path_factory):
    return Env("lstm", small_dataset, tmp_path_factory.mktemp("qat_lstm"))


def io_quant(tflite: bytes) -> dict[str, tuple[float, int, str]]:
    """{signature name: (scale, zero point, dtype)} of every input and output."""
    from ai_edge_litert.interpreter import Interpreter

    runner = Interpreter(model_content=tflite).get_signature_runner()
    found = {}
    for details in (runner.get_input_details(), runner.get_output_details()):
        for name, d in details.items():
            found[name] = (float(d["quantization"][0]), int(d["quantization"][1]), np.dtype(d["dtype"]).name)
    return found


@pytest.mark.parametrize("family, state", [("gru", "rnn_2_h"), ("lstm", "rnn_1_c")])
def test_state_scale_is_the_trained_range_not_calibration(request, family, state):
    env = request.getfixturevalue(family)
    r = env.ranges[f"{state[:5]}/{state[-1]}"]
    qat, ptq = io_quant(env.qat), io_quant(env.ptq)
    dtype = qat[state][2]
    assert dtype == {"gru": "int8", "lstm": "int16"}[family]
    want = quant_params(r["min"], r["max"], dtype)
    for name in (state, f"{state}_out"):        # input and output: one range, no requantisation needed
        assert qat[name][0] == pytest.approx(want[0], rel=1e-6) and qat[name][1] == want[1], name
    assert abs(qat[state][0] - ptq[state][0]) > 1e-3 * ptq[state][0]    # calibration gave another scale


def test_every_activation_takes_a_trained_or_fixed_range(gru, lstm):
    from sepipe.quantize.qat_ranges import apply_trained_ranges  # noqa: F401  (what the record comes from)

    for env in (gru, lstm):
        record = json.loads(_convert_summary(env))
        assert record["from_calibration"] == [] and record["bits_differ"] == []
        assert {"rnn_1/h", "rnn_2/h", "features", "mask/pre"} <= {v["key"] for v in record["from_qat"].values()}
        assert record["biases_rederived"] >= 1


def _convert_summary(env) -> str:
    """The worker's qat_ranges record for env's QAT conversion (run in-process on the same files)."""
    from sepipe.quantize import worker

    summary = worker.convert(json.dumps(dataclasses.asdict(env.cfg.model)), env.bins, env.result.streaming_weights,
                             env.cal, env.root / "again.tflite", env.cfg.convert.scheme_name,
                             qat_ranges_path=env.root / "bq" / "qat_ranges.json")
    assert (env.root / "again.tflite").read_bytes() == env.qat          # same inputs, same bytes
    return json.dumps(summary["qat_ranges"])


def test_qat_keeps_the_block_pattern(gru):
    assert gru.result.stats["qat"]["masked_weights"] > 0
    for layer in ("input_dense", "rnn_1", "dense_1"):
        owner = getattr(gru.streaming.get_layer(layer), "cell", gru.streaming.get_layer(layer))
        kernel = owner.kernel.numpy()
        zeros = (kernel == 0).reshape(kernel.shape[0], -1, 8).sum(axis=-1)
        assert set(np.unique(zeros)) <= {0, 8} and (kernel == 0).mean() == pytest.approx(0.5, abs=0.05), layer


MASK_LSB_MEAN, MASK_LSB_MAX = 1.0, 12     # int8 mask steps of 1/256 over 40 frames of real speech


def test_converted_model_follows_the_fake_quantised_keras_model(gru):
    """The int8 .tflite and the fake-quantised Keras model (same ranges) agree within a few LSB of the mask:
    the QAT model is what ships, not a float model calibrated afterwards."""
    from sepipe.runtime import make_runner

    seq = gru.family.build_sequence(gru.cfg.model, gru.bins)
    seq.load_weights(str(gru.root / "bq" / "sequence.weights.h5"))
    qmodel = build_qat_sequence(seq, Precision(8), gru.family.feature_layer(gru.cfg.model))
    load_ranges(qmodel, gru.ranges)
    feats = gru.features[0][:40]
    fake = qmodel(feats[None], training=False).numpy()[0]
    contract = gru.family.contract(gru.cfg.model, gru.bins)
    runner = make_runner("tflite", tflite_bytes=gru.qat, contract=contract)
    runner.reset()
    lsb = np.abs(runner.run(feats) - fake) * 256
    ptq_runner = make_runner("tflite", tflite_bytes=gru.ptq, contract=contract)
    ptq_runner.reset()
    assert lsb.mean() <= MASK_LSB_MEAN and lsb.max() <= MASK_LSB_MAX, (lsb.mean(), lsb.max())
    assert lsb.mean() < (np.abs(ptq_runner.run(feats) - fake) * 256).mean()   # closer than PTQ's ranges


@pytest.mark.parametrize("fields, option", [({"qat_scope": "full"}, "qat_scope"),
                                            ({"qat": True, "qat_scope": "activations"}, "qat_scope")])
def test_qat_scope_errors_are_one_line(fields, option):
    from sepipe.config import experiment_from_dict

    with pytest.raises(ConfigError) as err:
        experiment_from_dict({"name": "x", "model": {"family": "gru"},
                              "variants": [{"name": "q", "kind": "weight", "sparsity": 0.5, **fields},
                                           {"name": "dense", "kind": "ptq"}]})
    assert f"variants[q].{option}" in str(err.value) and "\n" not in str(err.value)
