"""The labels stage's partial scores, so an interrupted scoring resumes instead of starting over.

Scoring is the slow part of the labels stage (PESQ-WB and DNSMOS per clip: about 22 min for 60 training
files). While it runs, the scores of the clips done so far (always a prefix of the clip order) are saved
every SAVE_EVERY clips or SAVE_SECONDS, and when scoring fails, to `<run>/labels/labels.partial.npz`
(atomic). The file is keyed to what decides the scores: the clip list (split, mixture, window, system),
the int16 audio and clean reference of every clip, the targets and the metric tools' versions. A rerun
with the same key scores only the clips after the prefix; a file with another key (other clips, other
tools), or one that cannot be read, is ignored and replaced at the next save, never mixed in. The file is
removed once the final labels are written. float64 scores round-trip exactly through .npz, so resumed
labels are byte-identical to an uninterrupted run's.
"""

from __future__ import annotations

import hashlib
import json
import logging
import zipfile
from pathlib import Path

import numpy as np

from sepipe import artifacts

log = logging.getLogger(__name__)

SAVE_EVERY = 50          # clips between two saves (DNSMOS + PESQ: about 1 s a clip on one core)
SAVE_SECONDS = 120.0     # or this long, whichever comes first


def partial_path(run_dir: Path) -> Path:
    return Path(run_dir) / "labels" / "labels.partial.npz"


def scoring_key(meta: dict[str, np.ndarray], audio: np.ndarray, clean: np.ndarray, targets, tools) -> str:
    """sha256 of everything the scores depend on: clip identities, int16 audio bytes, targets, tool versions."""
    digest = hashlib.sha256()
    head = {"meta": {k: np.asarray(v).tolist() for k, v in sorted(meta.items())}, "targets": list(targets),
            "tools": artifacts.tool_versions(list(tools)), "audio": [str(audio.dtype), list(audio.shape)],
            "clean": [str(clean.dtype), list(clean.shape)]}
    digest.update(json.dumps(head, sort_keys=True).encode("utf-8"))
    digest.update(np.ascontiguousarray(audio).tobytes())
    digest.update(np.ascontiguousarray(clean).tobytes())
    return digest.hexdigest()


def load_partial(path: Path, key: str, total: int, targets) -> dict[str, np.ndarray]:
    """The saved prefix of scores ({target: (done,) float64}) when `path` holds one under `key`; else {}."""
    if not path.is_file():
        return {}
    try:
        with np.load(path, allow_pickle=False) as saved:
            if str(saved["key"]) != key:
                log.info("labels: ignoring %s (made for other clips or tools); it will be replaced", path)
                return {}
            scores = {t: np.asarray(saved[t], dtype=np.float64) for t in targets}
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
        log.warning("labels: ignoring unreadable %s (%s); it will be replaced", path, type(exc).__name__)
        return {}
    sizes = {len(v) for v in scores.values()}
    if len(sizes) != 1 or sizes.pop() > total:
        log.warning("labels: ignoring %s (inconsistent lengths); it will be replaced", path)
        return {}
    return scores


def save_partial(path: Path, key: str, scores: dict[str, np.ndarray], done: int) -> None:
    """The first `done` scores of each target, under `key`, written atomically."""
    with artifacts.atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, key=np.array(key), **{t: v[:done] for t, v in scores.items()})
