"""exit: the streaming model of one exit of a multi-exit model (nsnet2_exits), cut from the joint weights.

    variants:
      - {name: exit1, kind: exit, exit: 1}      # trunk up to exit 1 and its head; rnn_1's state only

No retraining (`finetune_epochs` is 0, `qat` false): the family's `truncate` gives the config of exit n's
streaming model (its head renamed `mask`, only the states of the layers it holds) and the shared loop
copies the joint weights into it by layer name. Everything after (convert, Vela for every target,
evaluate, the report's tables) treats it as any other variant, so each exit gets its own quality and
cycles rows. Fine-tuning or QAT of an exit alone would let it drift from the joint model the others share,
so both are refused (one line) when the YAML loads.
"""

from __future__ import annotations

from dataclasses import dataclass

from sepipe.compress.base import COMPRESSORS, Compressed, Compressor, VariantConfig
from sepipe.errors import check


@dataclass(frozen=True)
class ExitConfig(VariantConfig):
    exit: int = 0                    # 1 .. len(model.exits) + 1 (the last is the final head)
    finetune_epochs: int = 0         # the joint weights as they are

    def validate(self, src: str) -> None:
        super().validate(src)
        check(src, self.key("exit"), self.exit,
              isinstance(self.exit, int) and not isinstance(self.exit, bool) and self.exit >= 1,
              "an exit number from 1 (the earliest) to the final head's")
        check(src, self.key("finetune_epochs"), self.finetune_epochs, self.finetune_epochs == 0,
              "0 for kind 'exit' (the exit is cut from the joint weights as they are)")
        check(src, self.key("qat"), self.qat, not self.qat,
              "false for kind 'exit' (an exit is cut from the joint weights; it shares them with the other exits)")


@COMPRESSORS.register("exit", config=ExitConfig)
class ExitCompressor(Compressor):
    """One exit of a multi-exit model as a deployable streaming model of its own."""

    noop_note = None

    @property
    def structure(self) -> str:
        return f"exit {self.config.exit}"

    def layer_targets(self, model_cfg) -> dict[str, float]:
        self.truncated(model_cfg)        # a bad exit, or a family without exits, fails when the YAML loads
        return {}

    def prunes(self, targets: dict[str, float]) -> bool:
        return True                      # the cut is this kind's own phase, even with no steps

    def truncated(self, model_cfg):
        from sepipe.models import family_of

        return family_of(model_cfg).truncate(model_cfg, self.config.exit, self.config.key("exit"))

    def compress(self, model, model_cfg, targets, steps, session) -> Compressed:
        return Compressed(model, self.truncated(model_cfg), [], {"exit": self.config.exit})
