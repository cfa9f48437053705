"""ptq: plain post-training int8 of the dense trained model, the experiment's dense reference.

The base weights, copied into the streaming model; with `qat`, quantization-aware fine-tuning of the
dense model (every step is QAT).
"""

from __future__ import annotations

from dataclasses import dataclass

from sepipe.compress.base import COMPRESSORS, Compressor, VariantConfig
from sepipe.errors import check


@dataclass(frozen=True)
class PtqConfig(VariantConfig):
    sparsity: float = 0.0            # only 0 (kept so `sparsity: 0` in a YAML still loads)

    def validate(self, src: str) -> None:
        super().validate(src)
        check(src, self.key("sparsity"), self.sparsity, self.sparsity == 0.0,
              "0 for kind 'ptq' (plain post-training int8 of the dense model)")


@COMPRESSORS.register("ptq", config=PtqConfig)
class PtqCompressor(Compressor):
    """Post-training int8 of the dense model (the dense reference); with qat, QAT fine-tuned."""

    dense_reference = True
    noop_note = None

    @property
    def structure(self) -> str:
        return "dense"

    @property
    def trains_float_model(self) -> bool:
        return self.config.qat
