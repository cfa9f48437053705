"""offline: magnitude pruning of the dense reference's int8 model, no retraining (the reference baseline).

Nothing is trained: `apply_to_quantized` prunes the converted dense model's FullyConnected weights
(sepipe.compress.offline.offline_prune_tflite), leaving the family's output layers dense.
"""

from __future__ import annotations

from dataclasses import dataclass

from sepipe.compress.base import COMPRESSORS, Compressor, VariantConfig
from sepipe.errors import check


@dataclass(frozen=True)
class OfflineConfig(VariantConfig):
    sparsity: float = 0.0            # fraction of each int8 FullyConnected weight tensor set to zero

    def validate(self, src: str) -> None:
        super().validate(src)
        check(src, self.key("sparsity"), self.sparsity, 0.0 <= self.sparsity < 1.0, "0 <= sparsity < 1")
        check(src, self.key("qat"), self.qat, not self.qat, "false for kind 'offline' (it is not trained)")


@COMPRESSORS.register("offline", config=OfflineConfig)
class OfflineCompressor(Compressor):
    """Magnitude pruning of the dense int8 model, no retraining."""

    derives_from_dense_model = True
    noop_note = None
    untrained_note = "no fine-tuning: apply_to_quantized prunes the dense reference's int8 model"

    def apply_to_quantized(self, tflite_bytes: bytes, model_cfg) -> bytes:
        from sepipe.compress.offline import offline_prune_tflite
        from sepipe.models import family_of

        return offline_prune_tflite(tflite_bytes, self.config.sparsity,
                                    exclude_layers=tuple(family_of(model_cfg).output_layers(model_cfg)))
