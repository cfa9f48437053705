"""A trained quality predictor applied to an enhancement experiment's audio (`evaluate.quality_predictor`).

What is scored is the predictor variant's int8 .tflite in TFLite Micro, as firmware would run it. The .tflite
alone is not enough to score audio, so the predictor run folder supplies the rest, each part checked:
- its `convert:<variant>` record, current (sepipe.engine.currency: the .tflite and the label files hash as they
  did when it was converted), holding the feature normalisation (one mean and one std);
- the label files that record was made from: the score normalisation (per target, over the training split,
  as training computed it: train.target_normalisation);
- its manifest.json: the targets, mels and window length, checked against the convert record's fingerprint
  and the .tflite's input and output shapes (a manifest rewritten by a later command with other settings is
  refused, not trusted).

A file is cut as the predictor's clips are (clips.windows): whole non-overlapping windows of `clips.seconds`
from its start, here as many as the file holds; the audio is rounded to int16 first, as the clips it was
trained on were. A file's score is the mean over its windows; a system's, the mean over its files (a file
shorter than one window has none and is left out; `files` counts those scored).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sepipe.data.layout import SR
from sepipe.errors import InputFileError, MissingArtifactError
from sepipe.quality_predictor.reference import OPTION, PREDICTED_PREFIX, PredictorRef


def predicted_key(target: str) -> str:
    return PREDICTED_PREFIX + target


def predictor_files(ref: PredictorRef) -> dict[str, Path]:
    """The predictor's files a stage scoring with it fingerprints (its bytes and the record of its conversion,
    which holds the normalisation and the label files' hashes)."""
    return {"predictor_tflite": ref.tflite, "predictor_record": ref.record}


@dataclass
class Predictor:
    ref: PredictorRef
    tflite: bytes
    targets: tuple[str, ...]
    mels: int
    seconds: float
    feature_mean: float
    feature_std: float
    target_mean: np.ndarray
    target_std: np.ndarray
    _model: object = field(default=None, repr=False)

    @property
    def provenance(self) -> dict:
        """What a record of its scores carries: which predictor, its bytes' sha256 and its normalisation."""
        return {"run": str(self.ref.run), "variant": self.ref.variant, "runtime": "tflm",
                "tflite_sha256": hashlib.sha256(self.tflite).hexdigest(), "targets": list(self.targets),
                "seconds": self.seconds, "mels": self.mels,
                "feature_mean": self.feature_mean, "feature_std": self.feature_std,
                "target_mean": [float(v) for v in self.target_mean], "target_std": [float(v) for v in self.target_std]}

    def scores(self, audio: np.ndarray) -> tuple[int, np.ndarray | None]:
        """(windows, mean predicted score per target over them) of one file; (0, None) when it holds no window."""
        from sepipe.quality_predictor.clips import log_mel, windows
        from sepipe.quality_predictor.labels import to_int16

        audio = to_int16(audio) / 32767.0
        n = int(round(self.seconds * SR))
        starts = windows(audio, self.seconds, len(audio) // n)
        if not starts:
            return 0, None
        x = np.stack([log_mel(audio[s:s + n], self.mels) for s in starts])[..., None]
        y = self._interpreter().predict(((x - self.feature_mean) / self.feature_std).astype(np.float32))
        return len(starts), (y * self.target_std + self.target_mean).mean(axis=0)

    def _interpreter(self):
        if self._model is None:
            from sepipe.quality_predictor.evaluate import Int8Model

            self._model = Int8Model(self.tflite, "tflm")
        return self._model


def load_predictor(ref: PredictorRef) -> Predictor:
    """The predictor `ref` names, with its normalisation, checked as the module docstring says."""
    from sepipe.engine import currency, records

    run = Path(ref.run)
    record = records.read_record(run, f"convert:{ref.variant}")
    if record is None:
        raise MissingArtifactError(ref.record, f"{OPTION} names a predictor whose convert:{ref.variant} has not run")
    currency.check_record(run, record)
    config = _manifest_config(run)
    targets, mels, seconds = tuple(config["predictor"]["targets"]), int(config["predictor"]["mels"]), \
        float(config["clips"]["seconds"])
    converted = str(((record.get("fingerprint") or {}).get("config") or {}).get("predictor"))
    if f"targets={targets!r}" not in converted or f"mels={mels}," not in converted:
        raise InputFileError(run / records.MANIFEST, f"its predictor settings (targets {list(targets)}, mels {mels}) "
                                                     f"are not those convert:{ref.variant} was made with; rerun "
                                                     "`sepipe predictor run` with that run's YAML")
    tflite = ref.tflite.read_bytes()
    _check_shapes(ref, tflite, targets, mels, seconds)
    mean, std = _target_normalisation(run, record, targets)
    summary = record.get("summary") or {}
    return Predictor(ref, tflite, targets, mels, seconds, float(summary["feature_mean"]), float(summary["feature_std"]),
                     mean, std)


def _manifest_config(run: Path) -> dict:
    path = run / "manifest.json"
    try:
        config = json.loads(path.read_text())["config"]
        config["predictor"]["targets"], config["predictor"]["mels"], config["clips"]["seconds"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputFileError(path, f"not a quality-predictor run's manifest ({type(exc).__name__}: {exc}); "
                                   f"{OPTION}.run must name a folder `sepipe predictor run` wrote") from None
    return config


def _check_shapes(ref: PredictorRef, tflite: bytes, targets: tuple, mels: int, seconds: float) -> None:
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    from sepipe.quality_predictor.clips import frames_per_clip

    probe = Interpreter(model_content=tflite,   # shapes only: no XNNPACK delegate (nor its log line)
                        experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    shape_in = tuple(probe.get_input_details()[0]["shape"])
    shape_out = tuple(probe.get_output_details()[0]["shape"])
    expected_in, expected_out = (1, frames_per_clip(seconds), mels, 1), (1, len(targets))
    if shape_in != expected_in or shape_out != expected_out:
        raise InputFileError(ref.tflite, f"input {shape_in} and output {shape_out}, where the run's settings "
                                         f"give {expected_in} and {expected_out}")


def _target_normalisation(run: Path, record: dict, targets: tuple) -> tuple[np.ndarray, np.ndarray]:
    """Per target over the training split, from the label files the convert record was made from (its inputs
    'clips' and 'labels', already checked to hash as they did)."""
    from sepipe.quality_predictor.train import target_normalisation

    files = record.get("input_files") or {}
    if not {"clips", "labels"} <= set(files):
        raise InputFileError(run / "records", f"convert record without its label files ({sorted(files)})")
    clips, labels = (Path(files[k]) if Path(files[k]).is_absolute() else run / files[k] for k in ("clips", "labels"))
    with np.load(clips) as c, np.load(labels) as scores:
        train = c["split"] == "train"
        table = np.stack([scores[t] for t in targets], axis=1)
    return target_normalisation(table[train])
