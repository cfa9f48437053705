"""A .deb appears in the shared cache only when its download is complete (two dataset builds side by side
once read each other's half-written .deb: 'tar: Unexpected EOF in archive'). A stand-in `apt-get` on PATH
records what the cache held while it was writing."""

import os
import stat
from pathlib import Path

import pytest

from sepipe.data import debian
from sepipe.errors import ToolError

FAKE_APT = """#!/bin/sh
[ "$1" = update ] && exit 0
printf 'half' > "$2_1.0_all.deb"
ls "$DEBS_DIR" > "$LOG_DIR/cache_while_downloading.txt"
[ "$FAIL" = 1 ] && exit 100
printf ' and the rest' >> "$2_1.0_all.deb"
"""


@pytest.fixture
def fake_apt(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "apt-get"
    script.write_text(FAKE_APT)
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    debs = tmp_path / "debs"
    debs.mkdir()
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("DEBS_DIR", str(debs))
    monkeypatch.setenv("LOG_DIR", str(tmp_path))
    return debs


def test_download_is_renamed_into_the_cache_when_complete(fake_apt, tmp_path):
    deb = debian._download("somepkg", fake_apt, {"updated": False})
    assert deb == fake_apt / "somepkg_1.0_all.deb"
    assert deb.read_text() == "half and the rest"
    assert "somepkg" not in (tmp_path / "cache_while_downloading.txt").read_text()   # not visible while written
    assert debian.find_deb(fake_apt, "somepkg") == deb
    assert [p.name for p in fake_apt.iterdir()] == [deb.name]                      # no temporary folder left


def test_failed_download_leaves_no_deb_behind(fake_apt, monkeypatch):
    monkeypatch.setenv("FAIL", "1")
    with pytest.raises(ToolError, match="could not download package 'somepkg'"):
        debian._download("somepkg", fake_apt, {"updated": False})
    assert list(Path(fake_apt).iterdir()) == []
