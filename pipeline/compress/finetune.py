"""The fine-tuning loop shared by every variant kind.

Same loss (`sepipe.train.enhancement_loss`) and the same kind of data
(`dataset.training_segments`, batches of `cfg.train.batch_size`) as training, in a custom
`tf.function` step that can also
  - keep weights at zero where a fixed 0/1 mask says so (re-applied after every optimizer step,
    so Adam cannot regrow a pruned weight), and
  - fake-quantise weights (straight-through estimator) for quantization-aware training.

One `FineTuneSession` spans a whole variant: its batch stream and its epoch records continue across
phases (pruning, then QAT) and across models (unit pruning swaps in a narrower model), so a variant
runs exactly `finetune_epochs * finetune_steps_per_epoch` steps in all. Each epoch draws fresh
mixtures from a seed of (experiment seed, epoch) distinct from training's, the same for every variant.
"""

from __future__ import annotations

import logging
import time
from typing import Callable, Iterator, Sequence

import numpy as np

from sepipe.models.keras_backend import keras, tf
from sepipe.config import ExperimentConfig
from sepipe.progress import bar as progress_bar
from sepipe.train import _batches, head_outputs, heads_loss, joint_head_weights, make_example

log = logging.getLogger(__name__)

FINETUNE_SEED_OFFSET = 50000   # fine-tuning data seeds are seed*100003 + 50000 + epoch (training uses + epoch)


class FineTuneSession:
    def __init__(self, cfg: ExperimentConfig, dataset, steps_per_epoch: int, epochs: int, learning_rate: float,
                 progress: bool = False):
        self.cfg, self.dataset = cfg, dataset
        self.steps_per_epoch, self.epochs, self.learning_rate = steps_per_epoch, epochs, learning_rate
        self.total_steps = steps_per_epoch * epochs
        self.progress = progress
        data_cfg = getattr(dataset, "cfg", None) or cfg.data   # the segments' length is the dataset's
        self.segment_samples = int(round(data_cfg.segment_s * data_cfg.sample_rate))
        self.step = 0                       # global step count over the whole variant
        self.history: list[dict] = []
        self._stream = self._batch_stream()
        self._epoch_losses: list[tuple[float, float]] = []
        self._epoch_started = time.time()
        self._valid = None

    # ------------------------------------------------------------------ data
    def _batch_stream(self) -> Iterator[tuple]:
        for epoch in range(1, self.epochs + 1):
            segments = self.dataset.training_segments(seed=self.cfg.seed * 100003 + FINETUNE_SEED_OFFSET + epoch)
            yield from _batches(segments, self.cfg, self.steps_per_epoch)

    def feature_batches(self, count: int, seed: int) -> list[np.ndarray]:
        """`count` batches of features from a separate seed (unit ranking), not consumed from the stream."""
        segments = self.dataset.training_segments(seed=self.cfg.seed * 100003 + FINETUNE_SEED_OFFSET + 997 + seed)
        return [batch[0] for batch in _batches(segments, self.cfg, count)]

    def valid_examples(self):
        if self._valid is None:
            self._valid = [make_example(p.noisy, p.clean, self.cfg.features) + (len(p.clean),)
                           for p in self.dataset.pairs("valid", limit=self.cfg.train.valid_files)]
        return self._valid

    # ------------------------------------------------------------------ training
    def train(self, model, steps: int, phase: str, masks: Sequence[tuple] = (), quantize: Sequence = (),
              on_step: Callable[[int], None] | None = None, after_step: Callable[[], None] | None = None) -> None:
        """Run `steps` steps on `model` (trainable variables: all of the model's).

        masks: (variable, 0/1 float array) pairs; the variable is multiplied by the mask after every step.
        quantize: variables fake-quantised in the forward pass (per output channel = last axis,
            symmetric, narrow range [-127, 127], as the converter quantises weights); the gradient
            at the quantised point updates the float weight (straight-through estimator).
        after_step: traced into the step after the masks (QAT scope 'full': the EMA update of the
            activation ranges, sepipe.compress.qat_model.commit).
        """
        if steps <= 0:
            return
        optimizer = keras.optimizers.Adam(self.learning_rate, clipnorm=3.0)
        trainable = model.trainable_variables
        mask_pairs = [(var, tf.constant(np.asarray(mask, np.float32))) for var, mask in masks]
        quantize = list(quantize)
        cfg, length = self.cfg, self.segment_samples
        primary, weights = joint_head_weights(cfg)

        def step_fn(features, noisy_re, noisy_im, clean_re, clean_im):
            floats = [tf.identity(var.read_value()) for var in quantize]
            for var in quantize:
                var.assign(fake_quantize(var))
            with tf.GradientTape() as tape:
                heads = head_outputs(model(features, training=True), primary)
                loss, sisdr = heads_loss(heads, weights, (noisy_re, noisy_im, clean_re, clean_im), cfg, length)
            grads = tape.gradient(loss, trainable)
            for var, value in zip(quantize, floats):
                var.assign(value)
            optimizer.apply_gradients(zip(grads, trainable))
            for var, keep in mask_pairs:
                var.assign(var * keep)
            if after_step is not None:
                after_step()
            return loss, sisdr

        step = tf.function(step_fn)
        bar = progress_bar(None, self.progress, total=steps, desc=phase, leave=False)
        for _ in range(steps):
            batch = next(self._stream)
            loss, sisdr = step(*batch)
            self.step += 1
            self._epoch_losses.append((float(loss), float(sisdr)))
            bar.update(1)
            if on_step is not None:
                on_step(self.step)
            if self.step % self.steps_per_epoch == 0:
                self._end_epoch(model, phase)
        bar.close()

    def _end_epoch(self, model, phase: str) -> None:
        val_loss, val_sisdr = self.validate(model)
        losses = np.array(self._epoch_losses)
        record = {"epoch": self.step // self.steps_per_epoch, "step": self.step, "phase": phase,
                  "loss": float(losses[:, 0].mean()), "train_sisdr_db": float(losses[:, 1].mean()),
                  "val_loss": val_loss, "val_sisdr_db": val_sisdr,
                  "seconds": round(time.time() - self._epoch_started, 1)}
        log.info("fine-tune epoch %(epoch)d (%(phase)s): loss %(loss).4f  val loss %(val_loss).4f  "
                 "val SI-SDR %(val_sisdr_db).2f dB", record)
        self.history.append(record)
        self._epoch_losses, self._epoch_started = [], time.time()

    def validate(self, model) -> tuple[float, float]:
        """Mean validation loss and SI-SDR (dB) of `model` over whole validation files."""
        losses, sisdrs = [], []
        for *parts, length in self.valid_examples():
            primary, weights = joint_head_weights(self.cfg)
            heads = head_outputs(model(parts[0][None], training=False), primary)
            loss, sisdr = heads_loss(heads, weights, tuple(tf.constant(p[None]) for p in parts[1:]), self.cfg, length)
            losses.append(float(loss)), sisdrs.append(float(sisdr))
        return float(np.mean(losses)), float(np.mean(sisdrs))


def fake_quantize(weight):
    """Symmetric int8 fake quantisation per output channel (last axis), narrow range, like the
    TFLite converter's FullyConnected weights (a GRU/LSTM kernel (in, gates*units) becomes an FC with
    one channel per column). Zero stays exactly zero, so a sparsity mask survives."""
    w = tf.convert_to_tensor(weight)
    axes = list(range(len(w.shape) - 1))
    max_abs = tf.reduce_max(tf.abs(w), axis=axes, keepdims=True)
    scale = tf.where(max_abs > 0, max_abs / 127.0, tf.ones_like(max_abs))
    return tf.clip_by_value(tf.round(w / scale), -127.0, 127.0) * scale
