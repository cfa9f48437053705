"""Scored candidates, one JSON file each (`<search dir>/candidates/<id>.json`, written atomically).

A search that is interrupted keeps every candidate it finished; the rerun replays the same generations
(same seed, same recorded figures) and scores only what is missing. A record is trusted only when it was
scored for the same base model and the same scoring settings (`context`): otherwise it is scored again.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from sepipe import artifacts

log = logging.getLogger(__name__)


class CandidateStore:
    def __init__(self, folder: Path, context: dict):
        self.folder = Path(folder)
        self.context = context
        self.context_sha = artifacts.sha256_json(context)

    def path(self, candidate_id: str) -> Path:
        return self.folder / f"{candidate_id}.json"

    def get(self, candidate_id: str) -> dict | None:
        path = self.path(candidate_id)
        if not path.is_file():
            return None
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            log.warning("search: unreadable candidate record %s; scoring it again", path)
            return None
        return record if record.get("context_sha256") == self.context_sha else None

    def put(self, record: dict) -> dict:
        record = {**record, "context_sha256": self.context_sha}
        artifacts.write_json(self.path(record["id"]), record)
        return record
