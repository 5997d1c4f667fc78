"""Fixtures every room's tests share: the KITTI sample from ``../shared`` (never committed)."""

from __future__ import annotations

from pathlib import Path

import pytest

KITTI_SAMPLE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "kitti_sample"
"""One real KITTI frame (CC BY-NC-SA), beside the checkout as in CI."""


@pytest.fixture(scope="session")
def kitti_sample() -> Path:
    """Root of the shared KITTI sample; skips when it is not available."""
    if not (KITTI_SAMPLE / "raw" / "2011_09_26").is_dir():
        pytest.skip(f"KITTI sample not found at {KITTI_SAMPLE}")
    return KITTI_SAMPLE
