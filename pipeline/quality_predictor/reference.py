"""`evaluate.quality_predictor`: a trained quality predictor named by an enhancement experiment (no TensorFlow).

```yaml
evaluate:
  quality_predictor: {run: runs/quality_predictor, variant: binary}
```
`run` is a folder `sepipe predictor run` wrote; `variant` one of its int8 variants. What is scored is that
variant's int8 .tflite (convert/<variant>.tflite), in TFLite Micro, as firmware would run it; the run folder
also holds what the .tflite alone does not: the feature and score normalisation, the targets, the window
(sepipe.quality_predictor.scoring reads them). Checked when the YAML loads: a folder without that .tflite and
its convert record is a one-line ConfigError naming this option.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from sepipe.errors import check

OPTION = "evaluate.quality_predictor"
PREDICTED_PREFIX = "pred_"    # a predicted score's column in the quality and report tables: pred_pesq, ...


@dataclass(frozen=True)
class PredictorRef:
    run: str                                                    # a predictor run folder (runs/<name>/)
    variant: Literal["float", "int8_qat", "binary"] = "binary"  # its int8 variant whose .tflite is scored

    @property
    def tflite(self) -> Path:
        return Path(self.run) / "convert" / f"{self.variant}.tflite"

    @property
    def record(self) -> Path:
        return Path(self.run) / "records" / f"convert.{self.variant}.json"    # sepipe.engine.records.record_path

    def validate(self, src: str) -> None:
        usable = "\0" not in self.run and self.tflite.is_file() and self.record.is_file()
        check(src, f"{OPTION}.run", self.run, usable,
              f"a quality-predictor run folder holding convert/{self.variant}.tflite and "
              f"records/{self.record.name} (`sepipe predictor run experiments/quality_predictor.yaml` "
              "writes runs/quality_predictor/)")
