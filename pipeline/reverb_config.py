"""`data.reverb`: the reverberation settings of the data stage (a section of `sepipe.config.DataConfig`,
kept in its own module so config.py stays small; built and validated like every config section)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from sepipe.artifacts import ADDED_FIELD
from sepipe.errors import check


@dataclass(frozen=True)
class ReverbConfig:
    """Simulated room reverberation applied to the speech of a share of the mixtures (`data.reverb`).

    Rooms are shoeboxes (pyroomacoustics image sources; wall absorption from the RT60 by Sabine's
    formula, corrected until the simulated decay measures the drawn RT60); each split draws its own
    `rooms` rooms from the data seed (train, valid and test rooms differ). The noisy input always
    carries the reverberant speech and the SNR is measured against it; the clean target is chosen by
    `target`, time-aligned with the direct path:
      - 'reverberant' (default): the whole reverberant speech. The product suppresses noise and does
        not promise dereverberation; field recordings are scored against reverberant clean speech,
        and a model trained on a drier target learns to remove speech energy (the late tail), the
        failure seen on real rooms (issue 10). This keeps the model's task noise suppression only.
      - 'early': direct path + the first 50 ms of reflections (mild dereverberation; to be measured
        against 'reverberant').
      - 'dry': the dry speech, scaled by the direct path's gain (full dereverberation).
    `rir_dir`: measured impulse responses instead of simulated rooms: every WAV file in the folder
    (any rate, first channel) is one room; the files are shared out between the splits with the data
    seed (about 70 / 15 / 15 %, at least one each, none in two splits) and `rooms`/ranges are not used.
    Off by default: a config without `reverb` builds and serves exactly the dry data of before.
    """

    enabled: bool = False
    probability: float = 0.5                          # share of mixtures made reverberant (the rest stay dry)
    rt60_s: tuple[float, float] = (0.2, 0.8)          # RT60 drawn uniformly per room (s)
    room_m: tuple[float, float] = (3.0, 10.0)         # room length and width drawn uniformly (m); height 2.5-3.5 m
    distance_m: tuple[float, float] = (0.5, 2.0)      # source-microphone distance (m); at most room_m low - 1
    target: Literal["dry", "early", "reverberant"] = "reverberant"
    rooms: int = 16                                   # rooms simulated per split (train, valid, test)
    rir_dir: str | None = field(default=None, metadata=ADDED_FIELD)   # measured RIRs (WAV) instead of simulated

    def validate(self, src: str) -> None:
        key = "data.reverb."
        check(src, key + "probability", self.probability, 0.0 <= self.probability <= 1.0, "0 to 1")
        check(src, key + "rt60_s", self.rt60_s, 0.15 <= self.rt60_s[0] <= self.rt60_s[1] <= 1.5,
               "[low, high] with 0.15 <= low <= high <= 1.5 (s)")
        check(src, key + "room_m", self.room_m, 2.5 <= self.room_m[0] <= self.room_m[1] <= 30.0,
               "[low, high] with 2.5 <= low <= high <= 30 (m)")
        check(src, key + "distance_m", self.distance_m,
               0.1 <= self.distance_m[0] <= self.distance_m[1] <= self.room_m[0] - 1.0,
               f"[low, high] with 0.1 <= low <= high <= room_m low - 1 = {self.room_m[0] - 1.0:g} (m; 0.5 m "
               f"from every wall)")
        check(src, key + "rooms", self.rooms, 1 <= self.rooms <= 1000, "1 to 1000")
        if self.rir_dir is not None:
            wavs = sorted(Path(self.rir_dir).glob("*.wav")) if Path(self.rir_dir).is_dir() else []
            check(src, key + "rir_dir", self.rir_dir, len(wavs) >= 3,
                  f"a folder holding at least 3 .wav impulse responses (one per split at least; {len(wavs)} found)")
