"""The labels stage resumes an interrupted scoring (sepipe.quality_predictor.label_resume).

A tiny run (2 training mixtures, 1 valid, 1 test, noisy + clean: 8 clips, real PESQ-WB and DNSMOS) is
scored once uninterrupted (over a partial file from other settings, ignored), then in a second run folder with a fault injected into the per-clip scorer after
5 clips (saves every 2): the rerun scores only the 3 clips left and writes labels byte-identical to the
uninterrupted run's; a partial file under another key is ignored and replaced. Two worker processes
(`clips.workers`) score the same bytes, and a run with another worker count reuses the labels.
"""

from __future__ import annotations

import numpy as np
import pytest

from sepipe.quality_predictor import label_resume, labels
from sepipe.quality_predictor.config import TARGETS, predictor_from_dict
from sepipe.quality_predictor.stages import run_predictor


def _cfg(small_data_config, tmp_path, name: str, workers: int = 1):
    # workers 1: the fault is injected into this process's scorer; spawned workers would score unpatched
    return predictor_from_dict({
        "name": name, "runs_dir": str(tmp_path / "runs"),
        "data": {"source": "debian", "size": "small", "cache_dir": small_data_config.cache_dir},
        "clips": {"seconds": 1.0, "per_file": 1, "train_files": 2, "eval_files": 1, "workers": workers},
    }, name)


class _Scorer:
    """The real per-clip scorer, counted; raises after `fail_after` clips (fault injection)."""

    def __init__(self, real, fail_after: int | None = None, on_fail=None):
        self.real, self.fail_after, self.on_fail, self.calls = real, fail_after, on_fail, 0

    def __call__(self, audio, clean):
        if self.fail_after is not None and self.calls == self.fail_after:
            if self.on_fail:
                self.on_fail()
            raise RuntimeError("injected fault")
        self.calls += 1
        return self.real(audio, clean)


def _saved(run_dir) -> int:
    with np.load(label_resume.partial_path(run_dir)) as saved:
        return len(saved[TARGETS[0]])


@pytest.mark.slow      # 16 clips through real PESQ-WB and DNSMOS: about 50 s on a busy core
def test_interrupted_scoring_resumes_and_matches_an_uninterrupted_run(small_dataset, small_data_config, tmp_path,
                                                                      monkeypatch):
    real = labels.score_clip
    whole = _cfg(small_data_config, tmp_path, "whole")
    foreign = {t: np.full(8, 9.0) for t in TARGETS}     # from other settings: must not be mixed in
    label_resume.save_partial(label_resume.partial_path(whole.run_dir), "other-settings", foreign, 6)
    counted = _Scorer(real)
    monkeypatch.setattr(labels, "score_clip", counted)
    run_predictor(whole, until="labels", progress=False)
    reference = {k: p.read_bytes() for k, p in labels.label_paths(whole.run_dir).items() if k != "provenance"}
    total = len(np.load(labels.label_paths(whole.run_dir)["labels"])[TARGETS[0]])
    assert total == counted.calls == 8 and not label_resume.partial_path(whole.run_dir).exists()

    cut = _cfg(small_data_config, tmp_path, "cut")
    monkeypatch.setattr(label_resume, "SAVE_EVERY", 2)
    seen = {}
    faulty = _Scorer(real, fail_after=5, on_fail=lambda: seen.update(periodic=_saved(cut.run_dir)))
    monkeypatch.setattr(labels, "score_clip", faulty)
    with pytest.raises(RuntimeError, match="injected fault"):
        run_predictor(cut, until="labels", progress=False)
    assert seen["periodic"] == 4            # saved every 2 clips while scoring
    assert _saved(cut.run_dir) == 5         # and what was done when it failed
    assert not labels.label_paths(cut.run_dir)["labels"].exists()

    resumed = _Scorer(real)
    monkeypatch.setattr(labels, "score_clip", resumed)
    runs = {s.name: s for s in run_predictor(cut, until="labels", progress=False)}
    assert runs["labels"].status == "ran" and resumed.calls == total - 5
    assert {k: p.read_bytes() for k, p in labels.label_paths(cut.run_dir).items() if k != "provenance"} == reference
    assert not label_resume.partial_path(cut.run_dir).exists()

    # Scored by two worker processes: the same bytes, and the worker count is not part of the fingerprint.
    monkeypatch.setattr(labels, "score_clip", real)
    run_predictor(_cfg(small_data_config, tmp_path, "parallel", workers=2), until="labels", progress=False)
    parallel = _cfg(small_data_config, tmp_path, "parallel", workers=1)
    assert {k: p.read_bytes() for k, p in labels.label_paths(parallel.run_dir).items() if k != "provenance"} == reference
    assert {s.name: s for s in run_predictor(parallel, until="labels", progress=False)}["labels"].status == "current"


def test_a_partial_file_under_another_key_is_ignored(tmp_path):
    path = tmp_path / "labels" / "labels.partial.npz"
    scores = {t: np.arange(4, dtype=np.float64) + 1.5 for t in TARGETS}
    label_resume.save_partial(path, "other-key", scores, 3)
    assert label_resume.load_partial(path, "this-key", 8, TARGETS) == {}
    kept = label_resume.load_partial(path, "other-key", 8, TARGETS)
    assert all(np.array_equal(kept[t], scores[t][:3]) for t in TARGETS)
    path.write_bytes(b"not a zip")          # cut short or edited: ignored, never an error
    assert label_resume.load_partial(path, "other-key", 8, TARGETS) == {}


def test_the_key_changes_with_the_clips_and_their_audio():
    meta = {"split": np.array(["train", "test"]), "window": np.array([0, 0], dtype=np.int32)}
    audio, clean = np.zeros((2, 16), np.int16), np.ones((2, 16), np.int16)
    key = label_resume.scoring_key(meta, audio, clean, TARGETS, labels.TOOLS)
    louder = audio.copy()
    louder[1, 3] = 1
    assert label_resume.scoring_key(meta, louder, clean, TARGETS, labels.TOOLS) != key
    other = {**meta, "split": np.array(["train", "valid"])}
    assert label_resume.scoring_key(other, audio, clean, TARGETS, labels.TOOLS) != key
    assert label_resume.scoring_key(meta, audio, clean, TARGETS, labels.TOOLS) == key
