"""The Debian source's options of `data` (fields of `sepipe.config.DataConfig`, checked here so config.py stays
small): `noise_set` (which noise rules, `sepipe.data.noise_sets`), `speech_set` (which extra training voices,
`sepipe.data.speech_sets`) and `test_speaker` / `valid_speaker` (the speaker rotation). No import of the data
modules: loading a config stays light.

Speaker rotation. The Debian speech has four speakers (`sepipe.data.sources.SPEAKERS`; Allison's en_US and
es_MX prompts are one person). `data.test_speaker` names the speaker of the test mixtures, `data.valid_speaker`
the speaker of the validation mixtures, and the training pool is every other speaker. Why two names and not a
`fold: int`: the dataset folder, the manifest and a reader of the YAML then all say who is tested, no ordering
of speakers has to be remembered, and k-fold over speakers is "one run per speaker as test_speaker" (each run
naming a valid_speaker that is not its test speaker). One speaker per evaluation split: a fixed mixture is one
speaker's prompts, named after that speaker, and a split is "a voice never heard in training". The defaults
(test June, valid IvrvoiceRU, so train Allison + Carlo) are the split of every dataset built before the
rotation existed, and build the same bytes into the same folder.
"""

from __future__ import annotations

from typing import Any

from sepipe.errors import check

SPEAKER_NAMES = ("Allison", "Carlo", "IvrvoiceRU", "June")   # == {s.name for s in sepipe.data.sources.SPEAKERS}
DEFAULT_TEST_SPEAKER = "June"
DEFAULT_VALID_SPEAKER = "IvrvoiceRU"
NOISE_SETS = ("v1", "v2")                                     # == sepipe.data.noise_sets.NOISE_SETS
DEFAULT_NOISE_SET = "v1"
SPEECH_SETS = ("v1", "v2")                                    # == sepipe.data.speech_sets.SPEECH_SETS
DEFAULT_SPEECH_SET = "v1"


def validate(cfg: Any, src: str) -> None:
    """One-line errors for the speaker rotation and the noise and speech sets (cfg: a DataConfig)."""
    names = ", ".join(SPEAKER_NAMES)
    for key in ("test_speaker", "valid_speaker"):
        value = getattr(cfg, key)
        check(src, f"data.{key}", value, value in SPEAKER_NAMES, f"one of the Debian speakers {names}")
    check(src, "data.valid_speaker", cfg.valid_speaker, cfg.valid_speaker != cfg.test_speaker,
          f"a speaker other than data.test_speaker ({cfg.test_speaker}): one of "
          + ", ".join(n for n in SPEAKER_NAMES if n != cfg.test_speaker))
    if cfg.source != "debian":
        check(src, "data.noise_set", cfg.noise_set, cfg.noise_set == DEFAULT_NOISE_SET,
              f"'{DEFAULT_NOISE_SET}' when data.source is '{cfg.source}' (noise sets are Debian packages)")
        check(src, "data.speech_set", cfg.speech_set, cfg.speech_set == DEFAULT_SPEECH_SET,
              f"'{DEFAULT_SPEECH_SET}' when data.source is '{cfg.source}' (speech sets are Debian packages)")
        for key, default in (("test_speaker", DEFAULT_TEST_SPEAKER), ("valid_speaker", DEFAULT_VALID_SPEAKER)):
            check(src, f"data.{key}", getattr(cfg, key), getattr(cfg, key) == default,
                  f"'{default}' when data.source is '{cfg.source}' (the rotation is of the Debian speakers)")


def split_speakers(cfg: Any) -> dict[str, tuple[str, ...]]:
    """{split: speakers}: train = every speaker but the test and valid ones (in SPEAKER_NAMES order)."""
    train = tuple(n for n in SPEAKER_NAMES if n not in (cfg.test_speaker, cfg.valid_speaker))
    return {"train": train, "valid": (cfg.valid_speaker,), "test": (cfg.test_speaker,)}


def is_default_rotation(cfg: Any) -> bool:
    return (cfg.test_speaker, cfg.valid_speaker) == (DEFAULT_TEST_SPEAKER, DEFAULT_VALID_SPEAKER)
