"""block: block-sparse (`block`) or m-by-n (`m_by_n`) magnitude pruning (TFMOT), fine-tuned.

A block (rows, cols of the 2-D Keras kernel) is kept or zeroed as a whole; `m_by_n` (e.g. [2, 4]) zeroes
m of every n weights along the input axis, with TFMOT's mask fixed at the first step (the sparsity is
then m/n whatever `sparsity` says). Otherwise as kind 'weight' (sepipe.compress.kinds.weight).
"""

from __future__ import annotations

from dataclasses import dataclass

from sepipe.compress.base import COMPRESSORS
from sepipe.errors import check
from sepipe.compress.kinds.weight import WeightCompressor, WeightConfig


@dataclass(frozen=True)
class BlockConfig(WeightConfig):
    block: tuple[int, int] = (1, 1)  # block shape (rows, cols of the 2-D kernel)
    m_by_n: tuple[int, int] | None = None   # e.g. [2, 4]: 2 of every 4 weights zero

    def validate(self, src: str) -> None:
        super().validate(src)
        check(src, self.key("block"), list(self.block), min(self.block) >= 1, "two integers >= 1")
        check(src, self.key("m_by_n"), self.m_by_n, self.m_by_n is None or 0 < self.m_by_n[0] < self.m_by_n[1],
              "[m, n] with 0 < m < n, kind 'block' only")


@COMPRESSORS.register("block", config=BlockConfig)
class BlockCompressor(WeightCompressor):
    """Block or m-by-n magnitude pruning with fine-tuning."""

    @property
    def structure(self) -> str:
        v = self.config
        return f"block {v.m_by_n[0]}:{v.m_by_n[1]}" if v.m_by_n else f"block {v.block[0]}x{v.block[1]}"

    @property
    def schedule_label(self) -> str:
        return "m_by_n (mask fixed at step 1)" if self.config.m_by_n else "polynomial (power 3)"

    @property
    def prunes_at_zero(self) -> bool:
        return self.config.m_by_n is not None

    def prune_spec(self, sparsity: float):
        from sepipe.compress.prune import PruneSpec

        return PruneSpec(sparsity, self.config.block, self.config.m_by_n)

    def prunes(self, targets: dict[str, float]) -> bool:
        return super().prunes(targets) or self.config.m_by_n is not None
