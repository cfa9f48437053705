"""Noise sets (`data.noise_set`): which NoiseRules a Debian build lists its noise files with.

- "v1" (default): `sepipe.data.sources.NOISE_RULES`, the rules of every dataset built before noise sets existed
  (megaglest, lincity-ng, asterisk-moh-opsound, searchandrescue, bucklespring); it builds those bytes again.
- "v2": v1 + recorded everyday noise from eleven more packages (issue 10: homes, offices, cars, streets):
  - domestic: footsteps on many floors, doors, chests, breaking glass/wood/metal, running water, fire
    crackle, a dog barking (minetest-data, ufoai-sound, lugaru-data);
  - machine: diesel engines idling, furnace, pump, wind turbine, hum, steam, saws and a jackhammer, a rolling
    cart (ufoai-sound, minetest-data, simutrans-pak64);
  - street: heavy traffic, car horns, sirens, buses, trucks, a level crossing, a boat horn (micropolis-data,
    simutrans-pak64, trophy-data);
  - crowd: stadium crowds and cheering, no intelligible speech (etw-data, dustracing2d-data);
  - ambient (added to v1's): wind, rain, thunder, birds, frogs, gulls, sea waves, crickets (scorched3d-data,
    7kaa-data, lugaru-data, ufoai-sound, simutrans-pak64);
  - vehicle (added to v1's): car engines and skids, jets, a helicopter, aircraft fly-bys (dustracing2d-data,
    trophy-data, stormbaancoureur-data, micropolis-data, scorched3d-data, simutrans-pak64, ufoai-sound).
  Left out on purpose: speech and vocal files (unit voices, screams, co-driver calls, TV news, radio
  messages), UI blips, weapons, music, alien or science-fiction sounds, and files whose name does not say
  what they are, and near-copies of a file taken (the same recording re-encoded or re-levelled under another
  name: ufoai's sand1/sand2/tile1/firesoft, micropolis' honkhonk-high, minetest's hard_footstep.2/.3), which
  identical-bytes merging cannot catch and which could otherwise land in two splits. The packages considered
  and rejected, and why, are in docs/architecture.md.
Every package's licence comes from its copyright file into the manifest (`packages.<name>.licence`).
"""

from __future__ import annotations

import hashlib
import json

from sepipe.data.sources import NoiseRule, NOISE_RULES

MT = "usr/share/games/minetest/games/minetest_game/mods/"
UFO = "usr/share/games/ufoai/base/0snd.pk3"              # a zip archive: the rules glob its members
LUGARU = "usr/share/games/lugaru/Sounds/"
SIMUTRANS = "usr/share/games/simutrans/pak/sound/"
SCORCHED = "usr/share/games/scorched3d/data/globalmods/none/data/wav/misc/"
MICROPOLIS = "usr/share/games/micropolis/res/sounds/"
TROPHY = "usr/share/games/trophy/sounds/"
DUST = "usr/share/games/dustracing2d/sounds/"


def _ufo(category: str, pattern: str, exclude: str | None = None) -> NoiseRule:
    return NoiseRule(category, "ufoai-sound", pattern, exclude=exclude, archive=UFO)


V2_RULES = (
    # domestic
    NoiseRule("domestic", "minetest-data", MT + "default/sounds/default_*_footstep*.ogg",
              exclude=r"hard_footstep\.[23]"),
    NoiseRule("domestic", "minetest-data", MT + "default/sounds/default_chest_*.ogg"),
    NoiseRule("domestic", "minetest-data", MT + "default/sounds/default_break_glass*.ogg"),
    NoiseRule("domestic", "minetest-data", MT + "doors/sounds/*.ogg"),
    NoiseRule("domestic", "minetest-data", MT + "xpanes/sounds/*.ogg"),
    NoiseRule("domestic", "minetest-data", MT + "env_sounds/sounds/env_sounds_water*.ogg"),
    NoiseRule("domestic", "minetest-data", MT + "fire/sounds/*.ogg", exclude=r"flint|extinguish"),
    _ufo("domestic", "sound/footsteps/*.ogg", exclude=r"^(crouch|stand|hitground\d|sand[12]|tile1)\."),
    _ufo("domestic", "sound/doors/*.ogg"),
    _ufo("domestic", "sound/misc/break*.ogg", exclude=r"electric"),
    _ufo("domestic", "sound/ambience/water*.ogg"),
    _ufo("domestic", "sound/ambience/*fire*.ogg", exclude=r"firesoft"),
    NoiseRule("domestic", "lugaru-data", LUGARU + "FootStep*.ogg"),
    NoiseRule("domestic", "lugaru-data", LUGARU + "Fire.ogg"),
    NoiseRule("domestic", "lugaru-data", LUGARU + "Bark*.ogg", exclude=r"Growl"),
    # machine
    NoiseRule("machine", "minetest-data", MT + "default/sounds/default_furnace_active.ogg"),
    NoiseRule("machine", "minetest-data", MT + "carts/sounds/*.ogg"),
    _ufo("machine", "sound/ugv/diesel-*.ogg"),
    _ufo("machine", "sound/ambience/machine1.ogg"),
    _ufo("machine", "sound/ambience/hum*.ogg"),
    _ufo("machine", "sound/ambience/minepump03.ogg"),
    _ufo("machine", "sound/ambience/wind_turbine.ogg"),
    _ufo("machine", "sound/ambience/steam.ogg"),
    NoiseRule("machine", "simutrans-pak64", SIMUTRANS + "buzzsaw.wav"),
    NoiseRule("machine", "simutrans-pak64", SIMUTRANS + "jackhammer.wav"),
    NoiseRule("machine", "simutrans-pak64", SIMUTRANS + "tree-cutting.wav"),
    NoiseRule("machine", "simutrans-pak64", SIMUTRANS + "steam.wav"),
    NoiseRule("machine", "simutrans-pak64", SIMUTRANS + "diesel.wav"),
    # street
    NoiseRule("street", "micropolis-data", MICROPOLIS + "heavytraffic.wav"),
    NoiseRule("street", "micropolis-data", MICROPOLIS + "honkhonk-*.wav", exclude=r"high"),
    NoiseRule("street", "micropolis-data", MICROPOLIS + "siren.wav"),
    NoiseRule("street", "simutrans-pak64", SIMUTRANS + "bus.wav"),
    NoiseRule("street", "simutrans-pak64", SIMUTRANS + "truck.wav"),
    NoiseRule("street", "simutrans-pak64", SIMUTRANS + "crossing.wav"),
    NoiseRule("street", "simutrans-pak64", SIMUTRANS + "boat-horn.wav"),
    NoiseRule("street", "trophy-data", TROPHY + "carhorn.wav"),
    # crowd
    NoiseRule("crowd", "etw-data", "usr/share/games/etw/crowd/*.wav"),
    NoiseRule("crowd", "etw-data", "usr/share/games/etw/snd/crowd.wav"),
    NoiseRule("crowd", "etw-data", "usr/share/games/etw/snd/fondo.wav"),
    NoiseRule("crowd", "etw-data", "usr/share/games/etw/snd/boou.wav"),
    NoiseRule("crowd", "dustracing2d-data", DUST + "cheering.ogg"),
    # ambient (v1's category, more of it)
    NoiseRule("ambient", "scorched3d-data", SCORCHED + "bird*.wav"),
    NoiseRule("ambient", "scorched3d-data", SCORCHED + "frogs.wav"),
    NoiseRule("ambient", "scorched3d-data", SCORCHED + "gull*.wav"),
    NoiseRule("ambient", "scorched3d-data", SCORCHED + "oceanwaves.wav"),
    NoiseRule("ambient", "scorched3d-data", SCORCHED + "rain.wav"),
    NoiseRule("ambient", "scorched3d-data", SCORCHED + "thunder*.wav"),
    NoiseRule("ambient", "7kaa-data", "usr/share/games/7kaa/SOUND/*.WAV", exclude=r"QUAKE"),
    NoiseRule("ambient", "lugaru-data", LUGARU + "Wind.ogg"),
    NoiseRule("ambient", "lugaru-data", LUGARU + "DesertAmbient.ogg"),
    _ufo("ambient", "sound/ambience/arcticwind.ogg"),
    _ufo("ambient", "sound/ambience/thunder*.ogg"),
    _ufo("ambient", "sound/ambience/cricket_loop.ogg"),
    NoiseRule("ambient", "simutrans-pak64", SIMUTRANS + "Water.wav"),
    NoiseRule("ambient", "simutrans-pak64", SIMUTRANS + "forest.wav"),
    NoiseRule("ambient", "simutrans-pak64", SIMUTRANS + "seagulls.wav"),
    # vehicle (v1's category, more of it)
    NoiseRule("vehicle", "dustracing2d-data", DUST + "carEngine.ogg"),
    NoiseRule("vehicle", "dustracing2d-data", DUST + "skid.ogg"),
    NoiseRule("vehicle", "trophy-data", TROPHY + "engine.wav"),
    NoiseRule("vehicle", "trophy-data", TROPHY + "slide.wav"),
    NoiseRule("vehicle", "stormbaancoureur-data", "usr/share/games/stormbaancoureur/sounds/camaro*.wav"),
    NoiseRule("vehicle", "micropolis-data", MICROPOLIS + "ignition.wav"),
    NoiseRule("vehicle", "micropolis-data", MICROPOLIS + "skid.wav"),
    NoiseRule("vehicle", "scorched3d-data", SCORCHED + "jet.wav"),
    NoiseRule("vehicle", "scorched3d-data", SCORCHED + "f1[68]_*.wav"),
    NoiseRule("vehicle", "scorched3d-data", SCORCHED + "apache_1.wav"),
    NoiseRule("vehicle", "scorched3d-data", SCORCHED + "t38.wav"),
    NoiseRule("vehicle", "simutrans-pak64", SIMUTRANS + "planelow.wav"),
    NoiseRule("vehicle", "simutrans-pak64", SIMUTRANS + "comet-jet.wav"),
    _ufo("vehicle", "sound/seq/humanflyby.ogg"),
)

NOISE_SETS: dict[str, tuple[NoiseRule, ...]] = {"v1": NOISE_RULES, "v2": NOISE_RULES + V2_RULES}


def rules(noise_set: str) -> tuple[NoiseRule, ...]:
    return NOISE_SETS[noise_set]


def packages(noise_set: str) -> tuple[str, ...]:
    """The noise packages of a set, sorted (v1: sepipe.data.sources.NOISE_PACKAGES)."""
    return tuple(sorted({r.package for r in rules(noise_set)}))


def categories(noise_set: str) -> tuple[str, ...]:
    """The file categories of a set, in rule order (v1: sepipe.data.sources.FILE_CATEGORIES)."""
    return tuple(dict.fromkeys(r.category for r in rules(noise_set)))


def rule_record(rule: NoiseRule) -> dict:
    """A rule as the manifest records it (no `archive` key for a plain-file rule: v1's record is unchanged)."""
    return {key: value for key, value in vars(rule).items() if key != "archive" or value is not None}


def rules_sha256(noise_set: str) -> str:
    """A hash of a set's rules, in the config record of a non-default set (`sepipe.data.layout.config_record`):
    a v2 dataset built before its rules changed is rebuilt, not reused."""
    return hashlib.sha256(json.dumps([rule_record(r) for r in rules(noise_set)]).encode()).hexdigest()[:16]
