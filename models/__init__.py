"""Keras architectures of the speech-enhancement mask estimators."""

from sepipe.models.mask_rnn import (  # noqa: F401
    StateSpec, build_sequence_model, build_streaming_model, copy_weights, state_specs,
)
