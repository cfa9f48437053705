"""Keras architectures of the speech-enhancement mask estimators."""

from sepipe.models.mask_rnn import (  # noqa: F401
    StateSpec, build_sequence_model, build_streaming_model, copy_weights, state_specs,
)
from sepipe.models.family_shim import family_of  # noqa: F401  # shim: replaced at merge
