"""A tiny CRN-style mask estimator: sepipe's bring-your-own-architecture example (`model.family: tiny_crn:build`).

    features (bins) -> causal convolution over the last `frames` frames (`channels` outputs, relu)
                    -> GRU (`gru_units`) -> Dense (bins), sigmoid -> mask

Nothing in sepipe knows this file. The experiment names the function (`examples/tiny_crn.yaml`):
sepipe imports it (the experiment file's folder is on sys.path), turns the keyword parameters into
the model's config keys, builds both models, reads the streaming contract off the one-frame model
and trains, prunes, converts, compiles, evaluates and bundles it like the built-in families.

The convolution is written as one Dense over the stacked window of `frames` frames (the same
arithmetic as a Conv1D with kernel `frames`, padding 'causal'), so its kernel is 2-D: weight and
block pruning apply to it, and the one-frame model is CONCATENATION + FULLY_CONNECTED, which int8
TFLite, TFLite Micro and Vela (Ethos-U55/U65/U85) all run. The one-frame model keeps the previous
`frames - 1` frames as a state (`window` in, `window_out` out, flat); the GRU's state is `gru_h`.
"""

from __future__ import annotations


def build(bins, frames: int = 3, channels: int = 32, gru_units: int = 32):
    """(sequence model, one-frame streaming model) sharing their layers (the GRU by name: its cell)."""
    from sepipe.models.keras_backend import keras

    if not 1 <= frames <= 8 or not 1 <= channels <= 512 or not 1 <= gru_units <= 512:
        raise ValueError(f"frames 1 to 8, channels and gru_units 1 to 512; got {frames}, {channels}, {gru_units}")
    layers = keras.layers
    conv = layers.Dense(channels, activation="relu", name="conv")
    mask = layers.Dense(bins, activation="sigmoid", name="mask")

    # sequence: the window of each frame is the frame and the `frames - 1` before it (zeros before the start)
    features = keras.Input(shape=(None, bins), name="features")
    x = features
    if frames > 1:
        padded = layers.ZeroPadding1D((frames - 1, 0), name="past")(features)
        x = layers.Concatenate(axis=-1, name="stack")(
            [layers.Cropping1D((k, frames - 1 - k), name=f"frame_{k}")(padded) for k in range(frames)])
    x = layers.GRU(gru_units, return_sequences=True, name="gru")(conv(x))
    sequence = keras.Model(features, mask(x), name="tiny_crn_sequence")

    # streaming: one frame, the window of past frames and the GRU state as inputs, their updates as outputs
    frame = keras.Input(shape=(bins,), batch_size=1, name="features")
    h = keras.Input(shape=(gru_units,), batch_size=1, name="gru_h")
    inputs, outputs = {"features": frame, "gru_h": h}, {}
    x = frame
    if frames > 1:
        window = keras.Input(shape=((frames - 1) * bins,), batch_size=1, name="window")
        inputs["window"] = window
        x = layers.Concatenate(axis=-1, name="stack")([window, frame])      # oldest frame first
        outputs["window_out"] = layers.Cropping1D((1, 0), name="drop_oldest")(
            layers.Reshape((frames, bins), name="frames")(x))
        outputs["window_out"] = layers.Reshape(((frames - 1) * bins,), name="window_out")(outputs["window_out"])
    x, (h_new,) = layers.GRUCell(gru_units, name="gru")(conv(x), [h])
    outputs["gru_h_out"] = layers.Identity(name="gru_h_out")(h_new)
    outputs["mask"] = mask(x)
    streaming = keras.Model(inputs, outputs, name="tiny_crn_streaming")
    return sequence, streaming
