"""Typed report rows: one dataclass per row kind, joined on typed keys (variant name, target name,
runner kind), never on display labels. Labels are made only when a row is rendered (`to_dict`).

`to_dict` gives the flat row the CSV, Markdown and HTML tables are made of, with the columns and column
order the report has always written: every row carries its own configuration columns, so report CSVs of
different runs concatenate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence, Union

from sepipe.deploy.figures import CompileRecord, VelaFigures
from sepipe.quality_predictor.reference import PREDICTED_PREFIX

# Display label of each system (a runner kind or a reference), made when a row is rendered.
SYSTEM_LABELS = {"float": "float32 Keras", "tflite": "int8 TFLite", "tflm": "int8 TFLite Micro",
                 "noisy": "unprocessed", "rnnoise": "RNNoise (pyrnnoise)"}
_SYSTEM_OF_LABEL = {label: key for key, label in SYSTEM_LABELS.items()}
# a quantised runner's label names the model's I/O type ('int16 TFLite Micro', 'mixed TFLite'): the kind by
# the runner's system name, the label kept as written
_RUNNER_SYSTEMS = (("tflm", " TFLite Micro"), ("tflite", " TFLite"))


def _system_of_label(label: str) -> tuple[str, str | None]:
    """(runner kind or reference, the label to render when it is not the kind's usual one)."""
    if label in _SYSTEM_OF_LABEL:
        return _SYSTEM_OF_LABEL[label], None
    for kind, suffix in _RUNNER_SYSTEMS:
        if label.endswith(suffix):
            return kind, label
    return label, None
SHIPPED_RUNNER = "tflm"      # what ships: the int8 model as TensorFlow Lite Micro runs it
DENSE_STRUCTURE = "dense"    # the structure of the variant of kind 'ptq', the dense reference
NO_VARIANT = "-"             # the variant and model columns of a reference row

# The quality columns a deployment row takes from its variant's shipped quality row.
QUALITY_COLUMNS = ("si_sdr", "si_sdr_vs_float_db", "pesq", "stoi", "dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl")


@dataclass(frozen=True)
class QualityRow:
    """Mean scores of one system on the test files: a runner of a variant, or a reference (no variant).

    scores: metric -> mean over the files (si_sdr in dB, pesq, stoi, dnsmos_* in MOS), in the order
    evaluation wrote them; si_sdr_gain_db: over the unprocessed input (dB); si_sdr_vs_float_db: against
    the dense float model (dB, NaN for references); loop_rtf: x real time of the streaming loop.
    """

    experiment: str
    variant: str | None          # None: a reference
    model_label: str | None
    system: str                  # runner kind ('float', 'tflite', 'tflm') or reference ('noisy', 'rnnoise')
    files: int | None
    scores: Mapping[str, float] = field(default_factory=dict)
    loop_rtf: float | None = None
    si_sdr_gain_db: float | None = None
    si_sdr_vs_float_db: float | None = None
    label: str | None = None     # the system's label as evaluation wrote it, when not SYSTEM_LABELS' ('int16 TFLite')

    _NAMED = ("experiment", "variant", "model", "system", "files", "loop_rtf", "si_sdr_gain_db", "si_sdr_vs_float_db")

    @property
    def system_label(self) -> str:
        return self.label or SYSTEM_LABELS.get(self.system, self.system)

    def value(self, column: str) -> float:
        """A score or derived column by name; NaN when the row does not have it."""
        if column in ("si_sdr_gain_db", "si_sdr_vs_float_db", "loop_rtf"):
            value = getattr(self, column)
        else:
            value = self.scores.get(column)
        return math.nan if value is None else value

    @classmethod
    def from_dict(cls, row: Mapping[str, Any]) -> "QualityRow":
        """From an evaluation row (as manifests of existing runs hold them: `system` as its label)."""
        variant, model = row.get("variant"), row.get("model")
        system, label = _system_of_label(str(row.get("system", "")))
        return cls(experiment=str(row.get("experiment", "")),
                   variant=None if variant in (None, NO_VARIANT) else str(variant),
                   model_label=None if model in (None, NO_VARIANT) else str(model),
                   system=system, label=label, files=row.get("files"),
                   scores={k: v for k, v in row.items() if k not in cls._NAMED},
                   loop_rtf=row.get("loop_rtf"), si_sdr_gain_db=row.get("si_sdr_gain_db"),
                   si_sdr_vs_float_db=row.get("si_sdr_vs_float_db"))

    def to_dict(self) -> dict[str, Any]:
        """The rendered row: labels made here; columns as evaluation writes them."""
        row = {"experiment": self.experiment, "variant": self.variant or NO_VARIANT,
               "model": self.model_label or NO_VARIANT, "system": self.system_label, "files": self.files,
               **self.scores}
        for name in ("loop_rtf", "si_sdr_gain_db", "si_sdr_vs_float_db"):
            if getattr(self, name) is not None:
                row[name] = getattr(self, name)
        return row


@dataclass(frozen=True)
class DeploymentRow:
    """One variant compiled for one target: its size, Vela's figures and the shipped model's quality.

    params / nonzero_weights: of the variant's float model (biases included); tflite_bytes: the int8
    .tflite (bytes); compiled: the compile record (target columns and VelaFigures); hop_ms: the STFT hop
    the latency is compared with (ms); quality: the variant's shipped (TFLite Micro) quality row, if any.
    """

    experiment: str
    variant: str
    structure: str               # sparsity structure: 'dense' (the kind 'ptq' reference), 'weight', 'unit', ...
    model_label: str
    params: int
    nonzero_weights: int
    tflite_bytes: int
    compiled: CompileRecord
    hop_ms: float
    quality: QualityRow | None = None
    precision: str | None = None     # a mixed-precision variant's groups ('input 16x8, rnn int8, ...'); None: uniform

    @property
    def key(self) -> tuple[str, str]:
        """(variant name, target name): what rows are joined and grouped on."""
        return self.variant, self.target

    @property
    def target(self) -> str:
        return self.compiled.target

    @property
    def figures(self) -> VelaFigures:
        return self.compiled.figures

    @property
    def is_dense(self) -> bool:
        return self.structure == DENSE_STRUCTURE

    @property
    def tflite_kib(self) -> float:
        return self.tflite_bytes / 1024.0

    @property
    def hop_fraction(self) -> float:
        """Inference time over the hop (0..1 keeps up with real time)."""
        return self.figures.inference_time_ms / self.hop_ms

    def quality_value(self, column: str) -> float:
        """A shipped-quality column (dB for SI-SDR); NaN when the variant has no shipped quality row."""
        return self.quality.value(column) if self.quality is not None else math.nan

    def to_dict(self) -> dict[str, Any]:
        """The rendered row: configuration columns, the compile record's columns as written on disk
        (so `sepipe budget check` reads a report CSV as is), hop fraction, then the quality columns."""
        # a mixed variant's precision rides in the structure column (existing runs render as before)
        structure = f"{self.structure}; {self.precision}" if self.precision else self.structure
        return {"experiment": self.experiment, "variant": self.variant, "structure": structure,
                "model_label": self.model_label, "params": self.params, "nonzero_weights": self.nonzero_weights,
                "tflite_bytes": self.tflite_bytes, "tflite_kib": self.tflite_kib, **self.compiled.to_record(),
                "hop_fraction": self.hop_fraction, **{key: self.quality_value(key) for key in QUALITY_COLUMNS},
                **self.predicted}

    @property
    def predicted(self) -> dict[str, float]:
        """The quality predictor's scores of the shipped model (`pred_<target>`), when the experiment names one."""
        scores = self.quality.scores if self.quality is not None else {}
        return {key: value for key, value in scores.items() if key.startswith(PREDICTED_PREFIX)}


Row = Union[DeploymentRow, QualityRow, Mapping[str, Any]]


def as_dicts(rows: Iterable[Row]) -> list[dict[str, Any]]:
    """Rows to render: typed rows rendered with `to_dict`; mappings (e.g. read back from a CSV) as they are."""
    return [row.to_dict() if isinstance(row, (DeploymentRow, QualityRow)) else dict(row) for row in rows]


def quality_rows(rows: Iterable[QualityRow | Mapping[str, Any]]) -> list[QualityRow]:
    return [row if isinstance(row, QualityRow) else QualityRow.from_dict(row) for row in rows]


def shipped_quality(rows: Sequence[QualityRow], variant: str) -> QualityRow | None:
    """The quality of `variant` as it ships (runner SHIPPED_RUNNER), joined on the variant name."""
    return next((r for r in rows if r.system == SHIPPED_RUNNER and r.variant == variant), None)


def build_deployment_rows(experiment: str, variant: str, structure: str, model_label: str, params: int,
                          nonzero_weights: int, tflite_bytes: int,
                          quality: Iterable[QualityRow | Mapping[str, Any]],
                          records: Iterable[CompileRecord | Mapping[str, Any]], hop_ms: float,
                          precision: str | None = None) -> list[DeploymentRow]:
    """One row per compile record of `variant`, joined with its shipped quality row (by variant name);
    `precision`: a mixed-precision variant's label (sepipe.quantize.precision.PrecisionPlan.label)."""
    shipped = shipped_quality(quality_rows(quality), variant)
    compiled = [r if isinstance(r, CompileRecord) else CompileRecord.from_record(r, f"compile:{variant}")
                for r in records]
    return [DeploymentRow(experiment=experiment, variant=variant, structure=structure, model_label=model_label,
                          params=int(params), nonzero_weights=int(nonzero_weights), tflite_bytes=int(tflite_bytes),
                          compiled=record, hop_ms=hop_ms, quality=shipped, precision=precision)
            for record in compiled]

