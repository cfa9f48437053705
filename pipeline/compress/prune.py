"""Weight, block and m-by-n magnitude pruning with TFMOT's `prune_low_magnitude`.

Wrapped layers: Dense (kernel) and GRU/LSTM (kernel and recurrent kernel: TFMOT's PruneRegistry lists
exactly these two for GRUCell/LSTMCell); biases are never pruned. Schedule: `PolynomialDecay` from 0 to
the target sparsity (cubic, TFMOT's default power 3) between step 0 and `end_step` = the step nearest
70% of the pruning steps that is a multiple of the mask-update frequency (max(1, steps // 20)), so the
target is reached exactly and the rest of the steps fine-tune with the final mask fixed. With zero
fine-tuning steps it is one-shot magnitude pruning (one mask update at the target, no weight update).
Block pruning: TFMOT `block_size` (rows, cols of the 2-D kernel in Keras layout (in, out)): a block is
kept or zeroed as a whole, ranked by its mean |w|. `m_by_n` (e.g. (2, 4)): TFMOT's mask, fixed at the
first step (sparsity is then n-m of n whatever `sparsity` says).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sepipe.models.keras_backend import keras, tf


@dataclass(frozen=True)
class PruneSpec:
    sparsity: float
    block: tuple[int, int] = (1, 1)
    m_by_n: tuple[int, int] | None = None


def schedule_steps(steps: int) -> tuple[int, int]:
    """(end_step, frequency) of the polynomial schedule for `steps` pruning steps (>= 1)."""
    frequency = max(1, steps // 20)
    end_step = max(frequency, int(round(0.7 * steps / frequency)) * frequency)
    return end_step, frequency


def _schedule(spec: PruneSpec, steps: int):
    import tensorflow_model_optimization as tfmot

    if spec.m_by_n is not None:
        return tfmot.sparsity.keras.ConstantSparsity(0.5, begin_step=0, frequency=1)  # unused by the m_by_n mask
    if steps <= 0:
        return tfmot.sparsity.keras.ConstantSparsity(spec.sparsity, begin_step=0, frequency=1)
    end_step, frequency = schedule_steps(steps)
    return tfmot.sparsity.keras.PolynomialDecay(initial_sparsity=0.0, final_sparsity=spec.sparsity,
                                                begin_step=0, end_step=end_step, frequency=frequency)


def wrap_for_pruning(model, specs: dict[str, PruneSpec], steps: int):
    """A clone of `model` with the named layers wrapped in PruneLowMagnitude (all layers, so weights, shared)."""
    import tensorflow_model_optimization as tfmot

    def clone(layer):
        spec = specs.get(layer.name)
        if spec is None:
            return layer
        kwargs = {"pruning_schedule": _schedule(spec, steps), "block_size": tuple(spec.block)}
        if spec.m_by_n is not None:
            kwargs["sparsity_m_by_n"] = tuple(spec.m_by_n)
        return tfmot.sparsity.keras.prune_low_magnitude(layer, **kwargs)

    # the clone reuses `model`'s layer objects (wrapped or not), hence its trained weights
    wrapped = keras.models.clone_model(model, clone_function=clone)
    for layer in pruning_wrappers(wrapped):
        layer.pruning_step.assign(0)          # what UpdatePruningStep.on_train_begin does
    return wrapped


def pruning_wrappers(model) -> list:
    from tensorflow_model_optimization.python.core.sparsity.keras.pruning_wrapper import PruneLowMagnitude

    return [layer for layer in model.layers if isinstance(layer, PruneLowMagnitude)]


def one_shot(model, example_features) -> None:
    """Zero fine-tuning steps: one training-mode forward pass updates the masks (step 1), no weight update."""
    model(example_features, training=True)


def finalize(model):
    """Apply the final masks (the last optimizer step ran after the last masking) and strip the wrappers."""
    import tensorflow_model_optimization as tfmot

    for layer in pruning_wrappers(model):
        layer.pruning_obj.weight_mask_op()
    return tfmot.sparsity.keras.strip_pruning(model)


def prune_and_finetune(model, specs: dict[str, PruneSpec], steps: int, session, label: str,
                       one_shot_label: str) -> tuple[object, dict]:
    """Wrap the named layers, prune over `steps` steps of `session` (one-shot at 0 steps), finalize.
    Returns the stripped model and the schedule record (`label` / `one_shot_label` name it)."""
    wrapped = wrap_for_pruning(model, specs, steps)
    if steps == 0:
        one_shot(wrapped, session.feature_batches(1, seed=0)[0])
        schedule = {"kind": one_shot_label}
    else:
        session.train(wrapped, steps, phase="prune")
        end_step, frequency = schedule_steps(steps)
        schedule = {"kind": label, "begin_step": 0, "end_step": end_step, "frequency": frequency, "steps": steps}
    return finalize(wrapped), schedule


def zero_masks(model, layer_names) -> list[tuple]:
    """(variable, 0/1 mask) for the kernel and recurrent kernel of each named layer: 1 where nonzero.
    Used to keep a sparsity pattern fixed through QAT."""
    pairs = []
    for name in layer_names:
        layer = model.get_layer(name)
        owner = getattr(layer, "cell", layer)
        for attr in ("kernel", "recurrent_kernel"):
            var = getattr(owner, attr, None)
            if var is not None and isinstance(var, tf.Variable):
                value = var.numpy()
                if np.any(value == 0):
                    pairs.append((var, (value != 0).astype(np.float32)))
    return pairs
