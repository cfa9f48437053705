"""Simulated room reverberation: a seeded bank of shoebox room impulse responses per split, and
applying one to the speech of a mixture with the configured target policy (`data.reverb`).

Definitions (stated in the dataset manifest when reverb is on):
- RIR: pyroomacoustics image sources in a shoebox, one omni source and microphone, no air absorption;
  the wall absorption comes from `pra.inverse_sabine` and is corrected (at most CALIBRATION_TRIES
  simulations) until the RIR's measured RT60 is within RT60_TOLERANCE of the drawn one;
- measured RT60 (s): Schroeder backward integration, the -5 to -35 dB decay extrapolated to 60 dB (T30);
- direct path: the RIR's largest sample; every signal is advanced by its index, so the noisy input and
  the target stay time-aligned with the dry speech;
- targets: 'reverberant' = speech * RIR; 'early' = speech * RIR up to EARLY_S after the direct path;
  'dry' = the dry speech times the direct path's gain (RMS of the RIR within +-DIRECT_HALF of it);
- measured RIRs (`rir_dir`): each WAV's first channel, resampled to 16 kHz (soxr), cut 60 dB below its
  peak energy decay, scaled to a direct path of 1; files shared out between the splits with the seed.
"""

from __future__ import annotations

import hashlib
import io
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sepipe.artifacts import sha256_file, tool_version, write_bytes
from sepipe.errors import InputFileError, MissingExtraError
from sepipe.reverb_config import ReverbConfig

log = logging.getLogger(__name__)

SR = 16000
EARLY_S = 0.05                  # early reflections kept by the 'early' target (s after the direct path)
HEIGHT_M = (2.5, 3.5)           # room height drawn uniformly (m)
WALL_MARGIN_M = 0.5             # source and microphone stay this far from every wall
RT60_TOLERANCE = 0.05           # relative; calibration stops within it
CALIBRATION_TRIES = 3
DIRECT_HALF = 40                # samples: half the fractional-delay filter pyroomacoustics spreads a path over
SPLIT_STREAM = {"train": 0, "valid": 1, "test": 2}
BANK_FILE = "rirs/{split}.npz"


def measure_rt60(rir: np.ndarray, sr: int = SR) -> float:
    """RT60 (s) of an impulse response: Schroeder decay, -5 to -35 dB line fit, extrapolated to -60 dB."""
    energy = np.cumsum(np.square(np.asarray(rir, np.float64))[::-1])[::-1]
    decay = 10.0 * np.log10(np.maximum(energy / energy[0], 1e-300))
    start = int(np.argmax(decay <= -5.0))
    stop = int(np.argmax(decay <= -35.0))
    if stop <= start:
        raise ValueError("the impulse response does not decay by 35 dB")
    t = np.arange(start, stop) / sr
    slope = np.polyfit(t, decay[start:stop], 1)[0]          # dB per second, negative
    return float(-60.0 / slope)


@dataclass(frozen=True)
class Room:
    rt60_s: float               # drawn
    rt60_measured_s: float      # of the stored RIR (see measure_rt60)
    dims_m: tuple[float, float, float]
    distance_m: float
    rir: np.ndarray             # float32, peak 1 at `direct`
    direct: int                 # index of the direct path in `rir`
    name: str = ""              # the file of a measured RIR ('' for a simulated room)


def simulate_room(rt60_s: float, dims_m, source_m, mic_m, sr: int = SR) -> np.ndarray:
    """One RIR (float64) of a shoebox whose simulated RT60 is within RT60_TOLERANCE of `rt60_s` where the
    calibration reaches it (else the closest of CALIBRATION_TRIES)."""
    try:
        import pyroomacoustics as pra
    except ImportError:
        raise MissingExtraError("data.reverb", "data", "pyroomacoustics") from None

    asked, best = rt60_s, None
    for _ in range(CALIBRATION_TRIES):
        absorption, max_order = pra.inverse_sabine(asked, list(dims_m))
        room = pra.ShoeBox(list(dims_m), fs=sr, materials=pra.Material(absorption), max_order=max_order,
                           air_absorption=False)
        room.add_source(list(source_m))
        room.add_microphone(list(mic_m))
        room.compute_rir()
        rir = np.asarray(room.rir[0][0], np.float64)
        measured = measure_rt60(rir, sr)
        if best is None or abs(measured - rt60_s) < abs(best[1] - rt60_s):
            best = (rir, measured)
        if abs(measured - rt60_s) <= RT60_TOLERANCE * rt60_s:
            break
        # Sabine's diffuse-field formula misjudges a shoebox's image-source decay: scale the RT60 asked
        # of it by the ratio missed (absorption must stay below 1: a room too large for the RT60 stops here)
        asked *= rt60_s / measured
        try:
            pra.inverse_sabine(asked, list(dims_m))
        except ValueError:
            break
    return best[0]


def draw_room(cfg: ReverbConfig, rng: np.random.Generator, sr: int = SR) -> Room:
    """A room, its source and microphone positions and its RIR, all drawn from `rng`."""
    for _ in range(100):
        rt60 = float(rng.uniform(*cfg.rt60_s))
        dims = (float(rng.uniform(*cfg.room_m)), float(rng.uniform(*cfg.room_m)), float(rng.uniform(*HEIGHT_M)))
        volume, surface = dims[0] * dims[1] * dims[2], 2 * (dims[0] * dims[1] + dims[0] * dims[2] + dims[1] * dims[2])
        if 24 * np.log(10) * volume / (343.0 * surface * rt60) < 0.95:   # Sabine absorption < 1: reachable
            break
    else:
        raise ValueError(f"no room of {cfg.room_m} m reaches an RT60 in {cfg.rt60_s} s")
    distance = float(rng.uniform(*cfg.distance_m))
    angle = float(rng.uniform(0, 2 * np.pi))
    offset = np.array([distance * np.cos(angle), distance * np.sin(angle), 0.0])
    mic = np.array([float(rng.uniform(WALL_MARGIN_M + max(0.0, -offset[k]), dims[k] - WALL_MARGIN_M - max(0.0, offset[k])))
                    for k in range(2)] + [float(rng.uniform(1.0, 1.8))])
    rir = simulate_room(rt60, dims, mic + offset, mic, sr)
    direct = int(np.argmax(np.abs(rir)))
    rir = rir / abs(rir[direct])
    return Room(round(rt60, 4), round(measure_rt60(rir, sr), 4), tuple(round(d, 4) for d in dims),
                round(distance, 4), rir.astype(np.float32), direct)


def make_bank(cfg: ReverbConfig, seed: int, split: str, sr: int = SR) -> list[Room]:
    """`cfg.rooms` rooms of a split, from their own seed stream: no room is shared between splits."""
    rng = np.random.default_rng([seed, 41, SPLIT_STREAM[split]])
    return [draw_room(cfg, rng, sr) for _ in range(cfg.rooms)]


def measured_files(rir_dir: str | Path) -> list[Path]:
    return sorted(Path(rir_dir).glob("*.wav"))


def measured_files_sha256(rir_dir: str | Path) -> str:
    """One hash over the names and bytes of a folder's RIR files (what a dataset built from them depends on)."""
    digest = hashlib.sha256()
    for path in measured_files(rir_dir):
        digest.update(f"{path.name}:{sha256_file(path)}\n".encode())
    return digest.hexdigest()


def read_measured(path: Path, sr: int = SR) -> Room:
    """A measured RIR file as a Room: first channel at 16 kHz, direct path 1, tail cut at -60 dB decay."""
    import soundfile as sf
    import soxr

    from sepipe.data.corpus import check_content

    check_content(path, "rir")     # readable, finite, not silent: else InputFileError naming the file
    audio, rate = sf.read(str(path), dtype="float64", always_2d=True)
    rir = audio[:, 0] if rate == sr else soxr.resample(audio[:, 0], rate, sr)
    direct = int(np.argmax(np.abs(rir)))
    if not np.isfinite(rir).all() or rir[direct] == 0:      # resampling cannot make one, but say so if it did
        raise InputFileError(path, "not a usable impulse response (silent or not finite after resampling "
                             f"from {rate} Hz)")
    energy = np.cumsum(np.square(rir[::-1]))[::-1]
    end = int(np.searchsorted(-energy, -energy[0] * 1e-6)) + 1       # where 60 dB of the energy has decayed
    rir = rir[:max(end, direct + 1)] / abs(rir[direct])
    try:
        rt60 = round(measure_rt60(rir, sr), 4)
    except ValueError:
        rt60 = float("nan")           # a short or noisy measurement: used, reported without an RT60
    return Room(rt60, rt60, (0.0, 0.0, 0.0), 0.0, rir.astype(np.float32), direct, name=path.name)


def measured_banks(rir_dir: str | Path, seed: int) -> dict[str, list[Room]]:
    """The folder's RIRs shared out between the splits: ~15% valid, ~15% test (at least one each), rest train."""
    files = measured_files(rir_dir)
    order = np.random.default_rng([seed, 41, 99]).permutation(len(files))
    held_out = max(1, int(round(0.15 * len(files))))
    shares = {"valid": order[:held_out], "test": order[held_out:2 * held_out], "train": order[2 * held_out:]}
    log.info("reverb: %d measured impulse responses from %s (%s)", len(files), rir_dir,
             ", ".join(f"{split} {len(idx)}" for split, idx in shares.items()))
    return {split: [read_measured(files[i]) for i in sorted(idx)] for split, idx in shares.items()}


def save_bank(path: Path, rooms: list[Room]) -> Path:
    longest = max(len(r.rir) for r in rooms)
    buffer = io.BytesIO()
    np.savez(buffer, rirs=np.stack([np.pad(r.rir, (0, longest - len(r.rir))) for r in rooms]),
             lengths=np.array([len(r.rir) for r in rooms]), direct=np.array([r.direct for r in rooms]),
             rt60_s=np.array([r.rt60_s for r in rooms]), rt60_measured_s=np.array([r.rt60_measured_s for r in rooms]),
             dims_m=np.array([r.dims_m for r in rooms]), distance_m=np.array([r.distance_m for r in rooms]),
             names=np.array([r.name for r in rooms]))
    return write_bytes(path, buffer.getvalue())


def load_bank(path: Path) -> list[Room]:
    with np.load(path) as data:
        names = [str(n) for n in data["names"]] if "names" in data.files else [""] * len(data["lengths"])
        return [Room(float(data["rt60_s"][i]), float(data["rt60_measured_s"][i]), tuple(map(float, data["dims_m"][i])),
                     float(data["distance_m"][i]), data["rirs"][i, :int(data["lengths"][i])].copy(), int(data["direct"][i]),
                     name=names[i])
                for i in range(len(data["lengths"]))]


def apply(speech: np.ndarray, room: Room, target: str, sr: int = SR) -> tuple[np.ndarray, np.ndarray]:
    """(reverberant speech, target) of the length of `speech`, both advanced by the direct-path delay."""
    from scipy.signal import fftconvolve

    speech = np.asarray(speech, np.float64)
    n, rir, d = len(speech), room.rir.astype(np.float64), room.direct
    reverberant = fftconvolve(speech, rir)[d:d + n]
    if target == "reverberant":
        return reverberant, reverberant
    if target == "early":
        stop = d + int(round(EARLY_S * sr)) + 1
        return reverberant, fftconvolve(speech, rir[:stop])[d:d + n]
    if target == "dry":
        gain = float(np.sqrt(np.sum(np.square(rir[max(0, d - DIRECT_HALF):d + DIRECT_HALF + 1]))))
        return reverberant, speech * gain
    raise ValueError(f"unknown reverb target {target!r}")


class Reverberator:
    """A split's room bank and policy: which mixtures get reverb (drawn from the mixing rng) and how."""

    def __init__(self, cfg: ReverbConfig, rooms: list[Room]):
        self.cfg = cfg
        self.rooms = rooms

    def draw(self, rng: np.random.Generator) -> int | None:
        """A room index, or None for a dry mixture; always two draws, so the stream does not depend on the outcome."""
        wet = rng.uniform() < self.cfg.probability
        room = int(rng.integers(0, len(self.rooms)))
        return room if wet else None

    def apply(self, speech: np.ndarray, room: int) -> tuple[np.ndarray, np.ndarray]:
        return apply(speech, self.rooms[room], self.cfg.target)


def build_banks(cfg: ReverbConfig, seed: int, root: Path) -> dict[str, Reverberator]:
    """Simulate (or read from `cfg.rir_dir`) and store every split's bank under `root` (rirs/<split>.npz)."""
    out = {}
    measured = measured_banks(cfg.rir_dir, seed) if cfg.rir_dir is not None else None
    for split in SPLIT_STREAM:
        rooms = measured[split] if measured else make_bank(cfg, seed, split)
        save_bank(root / BANK_FILE.format(split=split), rooms)
        out[split] = Reverberator(cfg, rooms)
    return out


def open_bank(cfg: ReverbConfig, root: Path, split: str) -> Reverberator:
    return Reverberator(cfg, load_bank(root / BANK_FILE.format(split=split)))


def manifest_record(cfg: ReverbConfig, banks: dict[str, Reverberator]) -> dict:
    """The dataset manifest's `reverb` section: the policy, the ranges and each split's rooms."""
    def summary(rooms: list[Room]) -> dict:
        if rooms[0].name:             # measured: the files and their RT60 (null where it could not be measured)
            return {"rooms": len(rooms), "file": None,
                    "list": [{"file": r.name, "rt60_measured_s": None if np.isnan(r.rt60_measured_s) else r.rt60_measured_s,
                              "samples": len(r.rir)} for r in rooms]}
        measured = [r.rt60_measured_s for r in rooms]
        error = [abs(r.rt60_measured_s - r.rt60_s) / r.rt60_s for r in rooms]
        return {"rooms": len(rooms), "file": None, "rt60_measured_s": [min(measured), max(measured)],
                "rt60_error_max": round(max(error), 4),
                "list": [{"rt60_s": r.rt60_s, "rt60_measured_s": r.rt60_measured_s, "dims_m": list(r.dims_m),
                          "distance_m": r.distance_m} for r in rooms]}

    splits = {}
    for split, bank in banks.items():
        splits[split] = summary(bank.rooms)
        splits[split]["file"] = BANK_FILE.format(split=split)
    measured = {"rir_dir": cfg.rir_dir} if cfg.rir_dir is not None else {}
    return {**measured, "probability": cfg.probability, "target": cfg.target, "rt60_s": list(cfg.rt60_s),
            "room_m": list(cfg.room_m), "height_m": list(HEIGHT_M), "distance_m": list(cfg.distance_m),
            "rooms_per_split": cfg.rooms, "early_s": EARLY_S, "pyroomacoustics": tool_version("pyroomacoustics"),
            "definitions": __doc__.split("Definitions (stated in the dataset manifest when reverb is on):\n")[1],
            "splits": splits}


def with_record(cfg: ReverbConfig, banks: dict[str, Reverberator] | None, manifest: dict) -> dict:
    """A builder's manifest with the `reverb` section when reverb is on (unchanged when off)."""
    if banks:
        manifest["reverb"] = manifest_record(cfg, banks)
    return manifest
