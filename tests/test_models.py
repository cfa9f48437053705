import numpy as np
import pytest

from sepipe.models import build_sequence_model, build_streaming_model, copy_weights, state_specs
from sepipe.config import ModelConfig

TINY = {"gru": ModelConfig(family="gru", input_units=32, rnn_units=24, dense_units=32),
        "lstm": ModelConfig(family="lstm", input_units=0, rnn_units=24, dense_units=0)}


@pytest.mark.parametrize("family", ["gru", "lstm"])
def test_streaming_frame_by_frame_equals_sequence_model(family, small_dataset):
    from sepipe.features import FeatureConfig, features

    cfg = TINY[family]
    sequence, streaming = build_sequence_model(cfg, 257), build_streaming_model(cfg, 257)
    copy_weights(sequence, streaming)
    frames = features(small_dataset.pairs("test", limit=1)[0].noisy, FeatureConfig())[0][:60]
    expected = sequence(frames[None]).numpy()[0]
    states = {s.input_name: np.zeros((1, s.units), np.float32) for s in state_specs(cfg)}
    for t, frame in enumerate(frames):
        out = streaming({"features": frame[None], **states})
        np.testing.assert_allclose(out["mask"].numpy()[0], expected[t], atol=1e-5)
        states = {s.input_name: out[s.output_name].numpy() for s in state_specs(cfg)}


@pytest.mark.parametrize("family, names", [
    ("gru", ["rnn_1_h", "rnn_2_h"]),
    ("lstm", ["rnn_1_h", "rnn_1_c", "rnn_2_h", "rnn_2_c"]),
])
def test_every_recurrent_state_is_an_input_and_an_output(family, names):
    cfg = TINY[family]
    streaming = build_streaming_model(cfg, 257)
    assert [s.input_name for s in state_specs(cfg)] == names
    assert set(streaming.input_names) == {"features", *names}
    assert set(streaming.output_names) == {"mask", *(n + "_out" for n in names)}


def test_tinylstm_configuration_is_about_a_million_parameters():
    cfg = ModelConfig(family="lstm", input_units=0, rnn_units=256, rnn_layers=2, dense_units=0)
    params = build_sequence_model(cfg, 257).count_params()
    assert 0.9e6 < params < 1.2e6
