"""Speech sets (`data.speech_set`): which recorded voices a Debian build trains on.

- "v1" (default): the Asterisk prompts only (`sepipe.data.sources.SPEAKERS`, split by the speaker rotation); it
  builds the bytes of before.
- "v2": v1 + volunteer and actor voices from five more packages, as TRAINING speech only (valid and test stay the
  Asterisk rotation, so test sets stay comparable and no extra voice can meet a test speaker):
  - tuxpaint-stamps-default: spoken stamp descriptions, one volunteer voice per language (`*_desc_<ll>.ogg`;
    a plain `*_desc.ogg` is English);
  - klettres-data: letters and syllables, one voice per language folder;
  - ktuberling-data: object names, one voice per language folder (ogg, wav, opus);
  - fillets-ng-data-cs / -nl: acted dialogue of the two fish, small (`m`) and big (`v`), per language; the other
    characters' lines (some sung, some robot or parrot voices) are left out by name, and the 74 stereo 44.1 kHz
    Czech files (levels hanoi, hole, nowall, rush: sung, music-like) by format.
  A speaker id is "<rule name>:<language folder>" or "<rule name>:<voice>": "tuxpaint:fr", "klettres:en_GB",
  "fillets-cs:m". Files with identical bytes are one file (tuxpaint ships ~13% copies,
  ktuberling's four Serbian folders are one voice), under the first id. Every file then passes the clean-target
  gate (`sepipe.data.speech_quality`); what each speaker kept and lost, and why, is in the manifest
  (`extra_speech`), with each package's licence (`packages`).
Considered and left out (docs/architecture.md): kajongg (its eight voices fail the gate: median SNR 15-26 dB, the
one clean voice has 24 s), and packages of game voices, synthetic or band-limited speech.

How training draws speech in v2 (`speaker_weights` in the manifest; `MixtureMaker.draw_speech`): a speaker is
drawn with a weight of its seconds of training speech capped at WEIGHT_CAP_S, then one of its prompts uniformly.
Above the cap every speaker is drawn equally often, so neither Allison's hour nor one large volunteer set
dominates; below it a voice is drawn in proportion to what it has, so a 40 s voice is not replayed ten times
more often per second than a large one (plain per-speaker balancing would). v1 datasets have no weights and
keep drawing prompts uniformly (the stream of before).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

SPEECH_SUFFIXES = {".ogg", ".opus", ".wav", ".flac"}
EXTRA_PER_SPEAKER_S = {"small": 60.0, "full": None}   # seconds taken per extra speaker (seeded order; None: all)
MIN_SPEAKER_S = 30.0          # a voice with less speech kept than this is not a training speaker
WEIGHT_CAP_S = 300.0          # speaker weight = min(its training seconds, this)
FILLETS = "usr/share/games/fillets-ng/sound"


@dataclass(frozen=True)
class SpeechRule:
    name: str                     # speaker-id prefix ("tuxpaint", "fillets-cs")
    package: str
    base: str                     # folder under the unpacked package; `pattern` and `voice` are relative to it
    pattern: str                  # glob of candidate files
    voice: str                    # regex on the path: groups "lang" and/or "voice" name the speaker; no match: left out
    language: str = ""            # the language when `voice` has no "lang" group or it did not take part
    exclude_format: tuple[int, int] | None = None     # (sample rate, channels) of files left out (songs)


@dataclass(frozen=True)
class ExtraFile:
    id: str                       # "<rule name>:<path under base, no suffix>", e.g. "klettres:de/alpha/a"
    path: Path
    speaker: str
    language: str
    package: str
    sha256: str
    exclude_format: tuple[int, int] | None = None
    aliases: tuple[str, ...] = field(default=())      # other ids with identical bytes


V2_RULES = (
    SpeechRule("tuxpaint", "tuxpaint-stamps-default", "usr/share/tuxpaint/stamps", "**/*_desc*.ogg",
               r"_desc(?:_(?P<lang>[a-z]{2}))?\.ogg$", language="en"),
    SpeechRule("klettres", "klettres-data", "usr/share/klettres", "*/*/*.ogg",
               r"^(?P<lang>[a-z]{2,3}(?:_[A-Z]{2})?)/(?:alpha|syllab)/[^/]+\.ogg$"),
    SpeechRule("ktuberling", "ktuberling-data", "usr/share/ktuberling/sounds", "*/*",
               r"^(?P<lang>[a-z]{2,3}(?:@[a-z]+)?)/[^/]+\.(?:ogg|wav|opus)$"),
    SpeechRule("fillets-cs", "fillets-ng-data-cs", FILLETS, "**/cs/*.ogg",
               r"(?:^|/)cs/(?:[a-z0-9]+-)?(?P<voice>[mv])-[^/]+\.ogg$", language="cs", exclude_format=(44100, 2)),
    SpeechRule("fillets-nl", "fillets-ng-data-nl", FILLETS, "**/nl/*.ogg",
               r"(?:^|/)nl/(?:[a-z0-9]+-)?(?P<voice>[mv])-[^/]+\.ogg$", language="nl"),
)

SPEECH_SETS: dict[str, tuple[SpeechRule, ...]] = {"v1": (), "v2": V2_RULES}


def rules(speech_set: str) -> tuple[SpeechRule, ...]:
    """The extra-speech rules of a set (v1: none)."""
    return SPEECH_SETS[speech_set]


def packages(speech_set: str) -> tuple[str, ...]:
    """The extra speech packages of a set, sorted (v1: none; the Asterisk packages are sources.SPEECH_PACKAGES)."""
    return tuple(sorted({r.package for r in rules(speech_set)}))


def speaker_of(rule: SpeechRule, rel: str) -> tuple[str, str] | None:
    """(speaker id, language) of a file at `rel` under the rule's base; None when the name names no voice."""
    match = re.search(rule.voice, rel)
    if match is None:
        return None
    groups = re.compile(rule.voice).groupindex
    language = (match["lang"] if "lang" in groups else None) or rule.language
    parts = ([language] if "lang" in groups else []) + ([match["voice"]] if "voice" in groups else [])
    return f"{rule.name}:{'/'.join(parts)}", language


def list_extra(package_roots: dict[str, Path], rules_: tuple[SpeechRule, ...],
               ) -> tuple[list[ExtraFile], list[dict]]:
    """Candidate files of every rule, identical bytes merged (first id kept), sorted by id; and what was left out by
    name, per rule: [{"rule", "reason", "files", "examples"}]."""
    by_hash: dict[str, ExtraFile] = {}
    left_out = []
    for rule in rules_:
        base = Path(package_roots[rule.package]) / rule.base
        unnamed = []
        for path in sorted(base.glob(rule.pattern)):
            if not path.is_file() or path.suffix.lower() not in SPEECH_SUFFIXES:
                continue
            rel = path.relative_to(base).as_posix()
            voice = speaker_of(rule, rel)
            if voice is None:
                unnamed.append(rel)
                continue
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            file_id = f"{rule.name}:{rel.rsplit('.', 1)[0]}"
            if digest in by_hash:
                first = by_hash[digest]
                by_hash[digest] = ExtraFile(first.id, first.path, first.speaker, first.language, first.package,
                                            digest, first.exclude_format, first.aliases + (file_id,))
                continue
            by_hash[digest] = ExtraFile(file_id, path.resolve(), voice[0], voice[1], rule.package, digest,
                                        rule.exclude_format)
        if unnamed:
            left_out.append({"rule": rule.name, "reason": "the name is not one of the rule's voices "
                             "(other characters, misnamed copies)", "files": len(unnamed), "examples": unnamed[:5]})
    return sorted(by_hash.values(), key=lambda f: f.id), left_out


def selection_record() -> dict:
    """The gate and selection settings a v2 build depends on (hashed with the rules)."""
    from sepipe.data import speech_quality as q

    return {"snr_min_db": q.SNR_MIN_DB, "bandwidth_min_hz": q.BANDWIDTH_MIN_HZ, "floor_share": q.FLOOR_SHARE,
            "band_range_db": q.BAND_RANGE_DB, "reference_hz": list(q.REFERENCE_HZ), "smooth_hz": q.SMOOTH_HZ,
            "min_rate_hz": q.MIN_RATE_HZ, "min_speaker_s": MIN_SPEAKER_S, "weight_cap_s": WEIGHT_CAP_S,
            "extra_per_speaker_s": EXTRA_PER_SPEAKER_S, "level_dbfs": q.LEVEL_DBFS}


def rule_record(rule: SpeechRule) -> dict:
    return {key: list(value) if isinstance(value, tuple) else value for key, value in vars(rule).items()}


def rules_sha256(speech_set: str) -> str:
    """A hash of a set's rules and gate settings, in the config record of a non-default set
    (`sepipe.data.layout.config_record`): a v2 dataset built before they changed is rebuilt, not reused."""
    record = {"rules": [rule_record(r) for r in rules(speech_set)], "selection": selection_record()}
    return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()[:16]


def speaker_weights(seconds: dict[str, float]) -> dict[str, float]:
    """{speaker: draw probability}: min(seconds, WEIGHT_CAP_S), normalised (rounded to 6 digits)."""
    capped = {name: min(s, WEIGHT_CAP_S) for name, s in seconds.items() if s > 0}
    total = sum(capped.values())
    return {name: round(value / total, 6) for name, value in sorted(capped.items())}
