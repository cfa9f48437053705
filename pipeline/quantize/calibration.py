"""Calibration frames for the streaming model: features plus the states the float model carried.

States are calibrated with states the float model produced on real audio (as the reference
RNNoise conversion does), not zeros or random values. Rows are kept keyed by INPUT NAME, because
the converter's representative dataset must yield dicts (a list is silently mis-ordered).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sepipe.artifacts import atomic_path
from sepipe.contract import ModelContract
from sepipe.errors import InputFileError


@dataclass(frozen=True, eq=False)
class CalibrationSet:
    """Calibration tuples for the streaming model.

    inputs: input name -> (N, dim) float32, row i of every array is one frame
            (features and the states the float model carried INTO that frame).
    selection: JSON-able record of how the rows were drawn (seed, pool size,
            [file index, frame index] of every row), for the manifest.
    """

    inputs: dict[str, np.ndarray]
    selection: dict[str, Any]

    @property
    def frames(self) -> int:
        return int(next(iter(self.inputs.values())).shape[0])


def collect_calibration(streaming_model, feature_frames: list[np.ndarray], frames: int, seed: int,
                        contract: ModelContract | None = None) -> CalibrationSet:
    """Run the FLOAT streaming model over each file's features (T, bins) from zero states,
    keep every (features, states-in) tuple, then draw `frames` of them without replacement
    with `np.random.default_rng(seed)` (all of them, in order, when fewer exist).

    Rows are kept in (file, frame) order; `selection["picks"]` lists [file, frame] of each.
    `contract` names the feature input and the states (inferred from the model's names when None).
    """
    from sepipe.runtime.float_runner import KerasStreamingRunner

    if not feature_frames:
        raise ValueError("collect_calibration needs at least one file of features")
    if frames < 1:
        raise ValueError(f"frames must be >= 1, got {frames}")
    runner = KerasStreamingRunner(streaming_model, contract=contract)
    feature_name = runner.contract.feature.name
    per_file: list[dict[str, np.ndarray]] = []
    index: list[tuple[int, int]] = []
    for file_i, feats in enumerate(feature_frames):
        feats = np.asarray(feats, np.float32)
        _, states_in = runner.run_with_states(feats)
        per_file.append({feature_name: feats, **states_in})
        index.extend((file_i, t) for t in range(feats.shape[0]))
    pool = len(index)
    rng = np.random.default_rng(seed)
    if frames >= pool:
        picks = np.arange(pool)
    else:
        picks = np.sort(rng.choice(pool, size=frames, replace=False))
    chosen = [index[p] for p in picks]
    names = list(per_file[0])
    inputs = {name: np.ascontiguousarray(np.stack([per_file[f][name][t] for f, t in chosen]).astype(np.float32))
              for name in names}
    selection = {
        "seed": int(seed),
        "requested_frames": int(frames),
        "drawn_frames": len(chosen),
        "pool_frames": pool,
        "files": len(feature_frames),
        "frames_per_file": [int(np.asarray(f).shape[0]) for f in feature_frames],
        "picks": [[int(f), int(t)] for f, t in chosen],
        "states_from": "float streaming model, zero initial state per file",
    }
    return CalibrationSet(inputs, selection)


def save_calibration(cal: CalibrationSet, path: str | Path) -> Path:
    """Write `cal` as .npz (arrays `input:<name>`, JSON string `selection`), atomically."""
    arrays = {f"input:{name}": np.asarray(value, np.float32) for name, value in cal.inputs.items()}
    arrays["selection"] = np.array(json.dumps(cal.selection, sort_keys=True))
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:   # a file handle: np.savez would append '.npz' to a path
            np.savez(handle, **arrays)
    return Path(path)


def load_calibration(path: str | Path, contract: ModelContract | None = None) -> CalibrationSet:
    """Read a calibration .npz; with `contract`, it must hold exactly the contract's inputs and sizes
    (without one: at least a 'features' array). InputFileError naming the file otherwise."""
    path = Path(path)
    if not path.is_file():
        raise InputFileError(path, "calibration file not found")
    try:
        with np.load(path, allow_pickle=False) as data:
            inputs = {key.split(":", 1)[1]: data[key].astype(np.float32) for key in data.files
                      if key.startswith("input:")}
            selection = json.loads(str(data["selection"]))
    except Exception as exc:  # zipfile / numpy / json raise several types for a corrupt file
        raise InputFileError(path, f"not a calibration .npz ({exc.__class__.__name__}: {exc})") from None
    feature_name = contract.feature.name if contract else "features"
    if feature_name not in inputs:
        raise InputFileError(path, f"calibration file has no '{feature_name}' array")
    rows = {value.shape[0] for value in inputs.values()}
    if len(rows) != 1 or any(value.ndim != 2 for value in inputs.values()):
        raise InputFileError(path, "calibration arrays must all be (N, dim) with the same N")
    if contract is not None:
        got = {name: int(value.shape[1]) for name, value in inputs.items()}
        if got != contract.input_sizes:
            raise InputFileError(path, f"calibration inputs {got} do not match the model contract's "
                                       f"{contract.input_sizes}")
    return CalibrationSet(inputs, selection)
