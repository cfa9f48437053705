"""Build the dataset once (or reuse it): the fingerprint, the lock, the manifest; one builder per source.

Builders: `sepipe.data.build_debian` (Debian packages; the split rules are there),
`sepipe.data.build_corpus` (DNS-style and VoiceBank-DEMAND corpora). The folder layout is in
`sepipe.data.layout`; the reader is `sepipe.data.dataset.Dataset`.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import shutil
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

from sepipe.artifacts import sha256_json, tool_versions, write_json
from sepipe.config import DataConfig
from sepipe.data import corpus, debian, reverb
from sepipe.data.build_corpus import (DnsPlan, VoiceBankPlan, build_dns, build_voicebank, check_files, plan_dns,
                                      plan_voicebank)
from sepipe.data.build_debian import build_debian, debian_packages
from sepipe.data.dataset import Dataset
from sepipe.data.layout import FORMAT_VERSION, SR, Pair, config_record, dataset_dir, read_manifest, resolved_root

__all__ = ["Dataset", "Pair", "build_dataset", "dataset_dir"]

log = logging.getLogger(__name__)


def _tool_versions(cfg: DataConfig) -> dict[str, str]:
    """The packages the dataset's bytes depend on (reverberation adds the room simulator, the mic's filters scipy)."""
    return tool_versions(("numpy", "soxr", "soundfile", "g722")
                         + (("pyroomacoustics",) if cfg.reverb.enabled else ())
                         + (("scipy",) if cfg.reverb.enabled or cfg.mic.enabled else ()))


def _is_current(manifest: dict | None, fingerprint: dict) -> bool:
    if not manifest or manifest.get("format_version") != FORMAT_VERSION:
        return False
    old = manifest.get("fingerprint", {})
    if any(old.get(key) != fingerprint[key] for key in ("format", "config", "tools")):
        return False
    old_sources = old.get("sources", {})
    # A source not in the cache any more (None) does not invalidate a finished build.
    return all(value is None or old_sources.get(key) == value for key, value in fingerprint["sources"].items()) \
        and set(old_sources) == set(fingerprint["sources"])


@contextlib.contextmanager
def _lock(root: Path) -> Iterator[None]:
    root.parent.mkdir(parents=True, exist_ok=True)
    with open(root.parent / f".{root.name}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def build_dataset(cfg: DataConfig, progress: bool = True) -> Path:
    """Build (or reuse when its manifest matches cfg + source hashes) the dataset; returns its folder."""
    root = dataset_dir(cfg)
    with _lock(root):
        if cfg.source == "debian":
            source_hashes = debian.cached_hashes(debian_packages(cfg), cfg.cache_dir)
        else:
            corpus_root = resolved_root(cfg)
            source_hashes = {"listing": corpus.listing_fingerprint(corpus_root)
                             if corpus_root and corpus_root.is_dir() else "missing"}
        fingerprint = {"format": FORMAT_VERSION, "config": config_record(cfg), "tools": _tool_versions(cfg),
                       "sources": source_hashes}
        manifest = read_manifest(root)
        if _is_current(manifest, fingerprint):
            log.info("dataset %s is up to date (manifest matches the config and sources)", root)
            return root
        start = time.monotonic()
        log.info("building dataset %s (source=%s, size=%s, seed=%d)", root, cfg.source, cfg.size, cfg.seed)
        # A user corpus is listed, planned and every file it will read decoded and checked (and so are
        # measured RIRs) before the old build is removed: a bad file raises InputFileError naming it
        # and leaves the previous dataset in place.
        plan = _plan_corpus(cfg)
        _check_rirs(cfg)
        _clear(root)
        if cfg.source == "debian":
            manifest = build_debian(cfg, root, progress)
            fingerprint["sources"] = {name: rec["sha256"] for name, rec in manifest["packages"].items()}
        elif cfg.source == "dns":
            manifest = build_dns(cfg, root, progress, plan)
        else:
            manifest = build_voicebank(cfg, plan)
        manifest.update({
            "format_version": FORMAT_VERSION, "fingerprint": fingerprint,
            "fingerprint_sha256": sha256_json(fingerprint), "source": cfg.source, "size": cfg.size,
            "seed": cfg.seed, "sample_rate": SR, "tools": _tool_versions(cfg),
            "built_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "build_seconds": round(time.monotonic() - start, 1),
        })
        write_json(root / "manifest.json", manifest)
        log.info("dataset built in %.1f s: %s", time.monotonic() - start, _summary(manifest))
        return root


def _plan_corpus(cfg: DataConfig) -> DnsPlan | VoiceBankPlan | None:
    """A user corpus's plan, its files checked (build_corpus.check_files); None for the Debian source."""
    if cfg.source == "debian":
        return None
    if cfg.source == "dns":
        log.info("listing and checking %s (DNS layout)", resolved_root(cfg))
        plan = plan_dns(cfg, *corpus.list_dns(resolved_root(cfg)))
    else:
        log.info("listing and checking %s (VoiceBank-DEMAND layout)", resolved_root(cfg))
        plan = plan_voicebank(cfg, corpus.list_voicebank(resolved_root(cfg)))
    check_files(plan)
    return plan


def _check_rirs(cfg: DataConfig) -> None:
    if cfg.reverb.enabled and cfg.reverb.rir_dir is not None:
        for path in reverb.measured_files(cfg.reverb.rir_dir):
            corpus.check_content(path, "rir")


def _clear(root: Path) -> None:
    """Remove an outdated or interrupted build (its manifest first, so it can never look complete)."""
    (root / "manifest.json").unlink(missing_ok=True)
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)


def _summary(manifest: dict) -> str:
    parts = []
    for split, info in manifest["splits"].items():
        if "speech_minutes" in info:
            parts.append(f"{split}: {info['speech_files']} speech files, {info['speech_minutes']} min")
        if "mixtures" in info:
            parts.append(f"{split}: {info['mixtures']} pairs, {info['minutes']} min")
    return "; ".join(parts)
