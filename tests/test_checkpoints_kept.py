"""Checkpoints of another config or kernel setting are moved aside, never deleted, and come back.

A session lost a finished 40-epoch training because a rerun set SEPIPE_INTRA_OP_THREADS=1 (the
fingerprint names the kernel settings) and the train stage deleted the old checkpoints.
"""

from __future__ import annotations

from sepipe import artifacts
from sepipe.stages.training import SUPERSEDED_DIR, _set_aside_stale_checkpoints

TWO_THREADS = {"config": {"kernels": {"TF_NUM_INTRAOP_THREADS": "2"}}}
ONE_THREAD = {"config": {"kernels": {"TF_NUM_INTRAOP_THREADS": "1"}}}


def test_changed_settings_set_checkpoints_aside_and_the_old_settings_take_them_back(tmp_path, caplog):
    train_dir = tmp_path / "run" / "train"
    _set_aside_stale_checkpoints(train_dir, TWO_THREADS)
    (train_dir / "ckpt-40.weights.h5").write_bytes(b"forty epochs")

    with caplog.at_level("WARNING"):
        _set_aside_stale_checkpoints(train_dir, ONE_THREAD)
    kept = tmp_path / "run" / SUPERSEDED_DIR / artifacts.sha256_json(TWO_THREADS)[:16]
    assert (kept / "ckpt-40.weights.h5").read_bytes() == b"forty epochs"
    assert not (train_dir / "ckpt-40.weights.h5").exists()
    assert any("TF_NUM_INTRAOP_THREADS=1" in m and str(kept) in m for m in caplog.messages)

    (train_dir / "ckpt-1.weights.h5").write_bytes(b"one epoch, one thread")
    _set_aside_stale_checkpoints(train_dir, TWO_THREADS)
    assert (train_dir / "ckpt-40.weights.h5").read_bytes() == b"forty epochs"
    assert (train_dir / "fingerprint.json").read_text().strip() == artifacts.sha256_json(TWO_THREADS)
    one_thread = tmp_path / "run" / SUPERSEDED_DIR / artifacts.sha256_json(ONE_THREAD)[:16]
    assert (one_thread / "ckpt-1.weights.h5").exists()


def test_same_settings_leave_the_checkpoints_in_place(tmp_path):
    train_dir = tmp_path / "train"
    _set_aside_stale_checkpoints(train_dir, TWO_THREADS)
    (train_dir / "ckpt-3.weights.h5").write_bytes(b"3")
    _set_aside_stale_checkpoints(train_dir, TWO_THREADS)
    assert (train_dir / "ckpt-3.weights.h5").read_bytes() == b"3"
    assert not (tmp_path / SUPERSEDED_DIR).exists()
