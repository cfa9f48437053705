"""Model families: the registry `FAMILIES` and `family_of(cfg)`; no TensorFlow at import.

Adding a family: a module under models/ with a `ModelFamily` subclass (builders import Keras when
called) and its config dataclass (a `ModelConfig` subclass), plus one `FAMILIES.add(...)` line here.
A user's own architecture needs no edit here: `model.family: "package.module:build"` names a builder
function (or a ModelFamily subclass) in their code, registered on first use (`sepipe.models.custom`).
"""

from sepipe.registry import Registry

FAMILIES = Registry("model family", key="model.family",
                    open_form="'package.module:function' (your own builder, see docs/model-contract.md)")

from sepipe.models.mask_rnn import GRU, LSTM, MaskRnnConfig  # noqa: E402
from sepipe.models.nsnet2_exits import NSNET2_EXITS, Nsnet2ExitsConfig  # noqa: E402
from sepipe.models.custom import prepare_family  # noqa: E402,F401  (re-exported: sepipe.config calls it)

FAMILIES.add("gru", GRU, config=MaskRnnConfig, help="nsNet2-like mask estimator: Dense, GRU layers, Dense, mask")
FAMILIES.add("lstm", LSTM, config=MaskRnnConfig, help="TinyLSTM-like mask estimator: Dense, LSTM layers, Dense, mask")

FAMILIES.add("nsnet2_exits", NSNET2_EXITS, config=Nsnet2ExitsConfig,
             help="nsNet2 with early exits: a mask head after each GRU and the first FC-600; each exit deployable")


def family_of(cfg):
    """The registered ModelFamily of a model config (`cfg.family`)."""
    return FAMILIES.get(cfg.family)


def model_config_from_dict(data: dict, source: str = "<config>"):
    """A model config from its dict form (as `dataclasses.asdict` wrote it): the registered class, validated."""
    from sepipe.config import ModelConfig, _build

    prepare_family(data.get("family"), source)
    cfg = _build(ModelConfig, dict(data), source, prefix="model.")
    cfg.validate(source)
    return cfg
