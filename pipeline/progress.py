"""Progress bars for long steps."""

from __future__ import annotations

from typing import Iterable


def bar(iterable: Iterable, progress: bool, **options):
    """A tqdm bar, or none when `progress` is off; on a non-terminal (CI logs) tqdm switches itself off."""
    from tqdm import tqdm

    return tqdm(iterable, disable=None if progress else True, **options)
