"""Training stage: the sequence model on noisy/clean mixtures, float32, on CPU or GPU.

Features come from `sepipe.features` (numpy, the reference the firmware follows).
Some loss terms need audio, so the one piece mirrored in TensorFlow is the resynthesis
(`tf_istft`), tested equal to `features.istft`. The loss is the weighted sum of the terms
`train.loss` names (`sepipe.loss`; without it compressed-magnitude MSE - sisdr_weight x SI-SDR).
Each epoch draws fresh mixtures from a seed derived from (seed, epoch), so a
resumed run sees the same data as an uninterrupted one. Checkpoints hold the
model and the optimizer; the best weights (by validation loss) are kept.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from sepipe.models import family_of
from sepipe.models.keras_backend import keras, numeric_settings, tf
from sepipe import feature_norm, gain
from sepipe import features as feat
from sepipe.artifacts import atomic_path, write_json
from sepipe.config import ExperimentConfig, FeatureConfig
from sepipe.errors import InputFileError
from sepipe.loss import LOSS_TERMS
from sepipe.loss import terms
from sepipe.progress import bar

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainResult:
    sequence_weights: Path      # best sequence model weights (.weights.h5)
    streaming_weights: Path     # the same weights in the one-frame model, what conversion loads
    history: list[dict]         # one record per epoch: loss, val_loss, val_sisdr_db, seconds
    best_epoch: int


def set_determinism(seed: int) -> None:
    """Seed every generator and make TF ops deterministic: same config and seed, same weights.

    Across machines this also needs the kernel settings `sepipe.models.keras_backend` pins before
    TensorFlow loads (docs/determinism.md); they are logged here so two runs can be compared.
    """
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
    log.info("float kernels: %s", ", ".join(f"{k}={v}" for k, v in numeric_settings().items()))


# ---------------------------------------------------------------- TensorFlow side of the loss
def tf_istft(real: tf.Tensor, imag: tf.Tensor, cfg: FeatureConfig, length: int) -> tf.Tensor:
    """TensorFlow mirror of `features.istft` for (batch, frames, bins) spectra."""
    frames = tf.signal.irfft(tf.complex(real, imag), fft_length=[cfg.fft_size])
    frames = frames * tf.constant(feat.analysis_window(cfg))
    audio = tf.signal.overlap_and_add(frames, cfg.hop)
    return audio[:, cfg.hop:cfg.hop + length]


tf_si_sdr = terms.si_sdr


@tf.autograph.experimental.do_not_convert   # plain Python: a registry lookup may import a module
def _weighted_terms(loss_terms) -> list:
    return [(term, LOSS_TERMS.get(term.term)) for term in loss_terms if term.weight]


def enhancement_loss(mask, noisy_re, noisy_im, clean_re, clean_im, cfg: ExperimentConfig, length: int):
    """(total loss, mean SI-SDR dB) for a batch: the weighted terms of `cfg.train.loss_terms`;
    the SI-SDR is returned for the logs whatever the objective."""
    enhanced_re, enhanced_im = gain.apply_tf(mask, noisy_re, noisy_im)
    inputs = terms.LossInputs(enhanced_re, enhanced_im, clean_re, clean_im,
                              resynthesise=lambda re, im: tf_istft(re, im, cfg.features, length),
                              mask=mask, noisy_re=noisy_re, noisy_im=noisy_im)
    total = 0.0
    for term, function in _weighted_terms(cfg.train.loss_terms):
        total += term.weight * function(term, inputs)
    enhanced, clean = inputs.audio()
    return total, tf.reduce_mean(tf_si_sdr(clean, enhanced))


def head_outputs(outputs, primary: str) -> dict:
    """A model's outputs as {head name: mask}: a one-head model returns the tensor itself."""
    return outputs if isinstance(outputs, dict) else {primary: outputs}


def joint_head_weights(cfg: ExperimentConfig) -> tuple[str, dict]:
    """(primary head, {head: weight} over every training phase): what fine-tuning a variant optimises, so a
    multi-exit model keeps every exit trained; a one-head family: ({head: 1.0}), its objective of before."""
    family = family_of(cfg.model)
    weights = {name: w for phase in family.training_phases(cfg.model, cfg.features.bins)
               for name, w in phase.head_weights.items()}
    return family.contract(cfg.model, cfg.features.bins).head.name, weights


def heads_loss(heads: dict, weights: dict, batch: tuple, cfg: ExperimentConfig, length: int):
    """(weighted sum of each weighted head's enhancement loss, SI-SDR dB of the last weighted head): a
    multi-exit model trains every exit as a full enhancer on the same objective."""
    if len(weights) == 1 and next(iter(weights.values())) == 1.0:      # one head: the graph of before
        return enhancement_loss(heads[next(iter(weights))], *batch, cfg, length)
    total = 0.0
    for name, weight in weights.items():
        loss, sisdr = enhancement_loss(heads[name], *batch, cfg, length)
        total += weight * loss
    return total, sisdr


# ---------------------------------------------------------------- numpy side: examples
def make_example(noisy: np.ndarray, clean: np.ndarray, cfg: FeatureConfig) -> tuple[np.ndarray, ...]:
    """(features, noisy re, noisy im, clean re, clean im) for one mixture, all (frames, bins) float32."""
    noisy_features, noisy_spec = feat.features(noisy, cfg)
    clean_spec = feat.stft(clean, cfg)
    return (noisy_features, noisy_spec.real.copy(), noisy_spec.imag.copy(),
            clean_spec.real.copy(), clean_spec.imag.copy())


def _batches(segments: Iterator[tuple[np.ndarray, np.ndarray]], cfg: ExperimentConfig, count: int):
    for _ in range(count):
        examples = [make_example(*next(segments), cfg.features) for _ in range(cfg.train.batch_size)]
        yield tuple(np.stack(parts) for parts in zip(*examples))


def prefetched(batches: Iterator, depth: int = 2) -> Iterator:
    """`batches` produced by a background thread `depth` ahead of the consumer, in the same order.

    Mixing and STFTs are numpy (they release the GIL) and the optimizer step is TensorFlow, so the
    next batch is built while the current one trains: about a fifth more steps per minute on 2 cores.
    One producer thread keeps the order, and with it the run's determinism."""
    import queue
    import threading

    slots: queue.Queue = queue.Queue(maxsize=depth)
    done = object()

    def produce() -> None:
        try:
            for batch in batches:
                slots.put(batch)
        except BaseException as exc:          # re-raised in the consumer, not lost in the thread
            slots.put(exc)
        slots.put(done)

    threading.Thread(target=produce, daemon=True, name="batch-prefetch").start()
    while (item := slots.get()) is not done:
        if isinstance(item, BaseException):
            raise item
        yield item


def learning_rate(cfg: ExperimentConfig):
    """`train.learning_rate`, constant or decayed along a half cosine to a tenth of it by the last step."""
    if cfg.train.lr_schedule == "constant":
        return cfg.train.learning_rate
    return keras.optimizers.schedules.CosineDecay(cfg.train.learning_rate, cfg.train.epochs * cfg.train.steps_per_epoch,
                                                  alpha=0.1)


# ---------------------------------------------------------------- the stage
class TrainingDiverged(InputFileError):
    """A loss went NaN or infinite: a user's data or settings, reported as one line (exit 2)."""


class Trainer:
    """Owns the model, optimizer, checkpoints and logs of one training run."""

    def __init__(self, cfg: ExperimentConfig, dataset, out_dir: Path):
        self.cfg, self.dataset, self.out_dir = cfg, dataset, Path(out_dir)
        set_determinism(cfg.seed)
        self.model = family_of(cfg.model).build_sequence(cfg.model, cfg.features.bins)
        self.norm = feature_norm.feature_statistics(dataset, cfg) if cfg.train.feature_norm else None
        self.trained = feature_norm.normalised(self.model, *self.norm) if self.norm else self.model
        self.optimizer = keras.optimizers.Adam(learning_rate(cfg), clipnorm=3.0)
        self.segment_samples = int(round(cfg.data.segment_s * cfg.data.sample_rate))
        self.checkpoint = tf.train.Checkpoint(model=self.model, optimizer=self.optimizer)
        self.manager = tf.train.CheckpointManager(self.checkpoint, str(self.out_dir / "checkpoints"), max_to_keep=2)
        self.state_path = self.out_dir / "train_state.json"
        self.best_path = self.out_dir / "sequence.weights.h5"
        self.writer = tf.summary.create_file_writer(str(self.out_dir / "tensorboard"))
        self.valid = [make_example(p.noisy, p.clean, cfg.features) + (len(p.clean),)
                      for p in dataset.pairs("valid", limit=cfg.train.valid_files)]
        family = family_of(cfg.model)
        self.primary = family.contract(cfg.model, cfg.features.bins).head.name
        self.phases = family.training_phases(cfg.model, cfg.features.bins)
        if len(self.phases) > 1:     # slots for every variable now: later phases train layers the first froze
            self.optimizer.build(self.trained.trainable_variables)
        self.set_phase(self.phase_of(1))

    def phase_of(self, epoch: int) -> int:
        """The training phase of `epoch` (1-based): `train.epochs` split evenly over the family's phases."""
        return min((epoch - 1) * len(self.phases) // max(self.cfg.train.epochs, 1), len(self.phases) - 1)

    def set_phase(self, index: int) -> None:
        """Trace the steps of phase `index`: its head weights, and only its layers' variables trained."""
        self.phase = index
        layers = self.phases[index].layers
        self.variables = (self.trained.trainable_variables if layers is None else
                          [v for name in layers for v in self.model.get_layer(name).trainable_variables])
        self._train_step = tf.function(self._train_step_eager)
        self._valid_step = tf.function(self._valid_step_eager, reduce_retracing=True)

    def _train_step_eager(self, features, noisy_re, noisy_im, clean_re, clean_im):
        with tf.GradientTape() as tape:
            heads = head_outputs(self.trained(features, training=True), self.primary)
            loss, sisdr = heads_loss(heads, self.phases[self.phase].head_weights,
                                     (noisy_re, noisy_im, clean_re, clean_im), self.cfg, self.segment_samples)
        grads = tape.gradient(loss, self.variables)
        self.optimizer.apply_gradients(zip(grads, self.variables))
        return loss, sisdr

    def batches(self, epoch: int, count: int) -> Iterator[tuple[np.ndarray, ...]]:
        """The first `count` training batches of `epoch` (1-based): fresh mixtures seeded by (seed, epoch)."""
        segments = self.dataset.training_segments(seed=self.cfg.seed * 100003 + epoch)
        return _batches(segments, self.cfg, count)

    def step(self, batch: tuple[np.ndarray, ...]) -> tuple[tf.Tensor, tf.Tensor]:
        """One optimizer step on a batch from `_batches`: (loss, mean SI-SDR dB)."""
        return self._train_step(*batch)

    def _valid_step_eager(self, features, noisy_re, noisy_im, clean_re, clean_im, length):
        heads = head_outputs(self.trained(features, training=False), self.primary)
        return heads_loss(heads, self.phases[self.phase].head_weights, (noisy_re, noisy_im, clean_re, clean_im),
                          self.cfg, length)

    def validate(self) -> tuple[float, float]:
        """Mean validation loss and SI-SDR (dB) over the validation mixtures (whole files)."""
        losses, sisdrs = [], []
        for *parts, length in self.valid:
            loss, sisdr = self._valid_step(*[p[None] for p in parts], tf.constant(length))
            losses.append(float(loss)), sisdrs.append(float(sisdr))
        return float(np.mean(losses)), float(np.mean(sisdrs))

    def _load_state(self) -> dict:
        if self.state_path.exists() and self.manager.latest_checkpoint:
            self.checkpoint.restore(self.manager.latest_checkpoint).expect_partial()
            state = json.loads(self.state_path.read_text())
            log.info("resuming training after epoch %d (best val loss %.4f)", state["epoch"], state["best_val_loss"])
            return state
        return {"epoch": 0, "best_val_loss": float("inf"), "best_epoch": 0, "stale_epochs": 0, "history": []}

    def run(self, progress: bool = True) -> TrainResult:
        cfg = self.cfg.train
        state = self._load_state()
        self.set_phase(self.phase_of(max(state["epoch"], 1)))      # a resumed run goes on in its phase
        while state["epoch"] < cfg.epochs and state["stale_epochs"] < cfg.patience:
            epoch = state["epoch"] + 1
            if self.phase_of(epoch) != self.phase:     # layer-wise: the next exit; its loss starts a new best
                self.set_phase(self.phase_of(epoch))
                state.update(best_val_loss=float("inf"), stale_epochs=0)
            started = time.time()
            steps = bar(prefetched(self.batches(epoch, cfg.steps_per_epoch)), progress, total=cfg.steps_per_epoch,
                        desc=f"epoch {epoch}/{cfg.epochs}", leave=False)
            train_loss, train_sisdr = [], []
            for batch in steps:
                loss, sisdr = self.step(batch)
                train_loss.append(float(loss)), train_sisdr.append(float(sisdr))
                steps.set_postfix(loss=f"{np.mean(train_loss):.4f}", sisdr=f"{np.mean(train_sisdr):.2f}dB")
            val_loss, val_sisdr = self.validate()
            self._check_finite(epoch, np.mean(train_loss), val_loss)
            record = {"epoch": epoch, "loss": float(np.mean(train_loss)), "train_sisdr_db": float(np.mean(train_sisdr)),
                      "val_loss": val_loss, "val_sisdr_db": val_sisdr, "seconds": round(time.time() - started, 1)}
            self._log_epoch(record)
            state["history"].append(record)
            if val_loss < state["best_val_loss"]:
                state.update(best_val_loss=val_loss, best_epoch=epoch, stale_epochs=0)
                self._save_best()
            else:
                state["stale_epochs"] += 1
            state["epoch"] = epoch
            self.manager.save(checkpoint_number=epoch)
            write_json(self.state_path, state)
        if state["stale_epochs"] >= cfg.patience:
            log.info("early stop: validation loss has not improved for %d epochs", cfg.patience)
        return TrainResult(self.best_path, self._export_streaming(), state["history"], state["best_epoch"])

    def _check_finite(self, epoch: int, train_loss: float, val_loss: float) -> None:
        """Stop a diverged run with one line, before a NaN reaches the state file (NaN is not JSON) or
        leaves a run that never saved a best model and fails the same way on every rerun."""
        if not (np.isfinite(train_loss) and np.isfinite(val_loss)):
            raise TrainingDiverged(
                str(self.out_dir), f"training diverged at epoch {epoch} (training loss {train_loss}, validation loss "
                f"{val_loss}); checkpoints up to epoch {epoch - 1} are kept. Lower train.learning_rate, or check the "
                "data for non-finite or extreme samples")

    def _save_best(self) -> None:
        """The best weights as the plain sequence model (the feature normalisation folded in, if any)."""
        best = feature_norm.folded_copy(self.cfg, self.model, *self.norm) if self.norm else self.model
        with atomic_path(self.best_path) as tmp:
            best.save_weights(str(tmp))

    def _log_epoch(self, record: dict) -> None:
        log.info("epoch %(epoch)d: loss %(loss).4f  train SI-SDR %(train_sisdr_db).2f dB  "
                 "val loss %(val_loss).4f  val SI-SDR %(val_sisdr_db).2f dB  (%(seconds).0f s)", record)
        with self.writer.as_default(step=record["epoch"]):
            for key, value in record.items():
                if key != "epoch":
                    tf.summary.scalar(key, value)
        self.writer.flush()

    def _export_streaming(self) -> Path:
        """Load the best weights into the one-frame model and save them: what conversion reads."""
        family = family_of(self.cfg.model)
        best = family.build_sequence(self.cfg.model, self.cfg.features.bins)
        best.load_weights(str(self.best_path))
        streaming = family.build_streaming(self.cfg.model, self.cfg.features.bins)
        family.copy_weights(best, streaming)
        path = self.out_dir / "streaming.weights.h5"
        with atomic_path(path) as tmp:
            streaming.save_weights(str(tmp))
        return path


def train(cfg: ExperimentConfig, dataset, out_dir: Path, progress: bool = True) -> TrainResult:
    """Train the sequence model of `cfg`; resumes from `out_dir/checkpoints` when present."""
    return Trainer(cfg, dataset, out_dir).run(progress=progress)
