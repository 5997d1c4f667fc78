"""Deterministic random streams: each random choice derives from (seed, sample key, purpose)."""

from __future__ import annotations

import hashlib

import numpy as np

Seed = int | np.random.Generator


def _words(text: str) -> list[int]:
    """Stable 32-bit words of a string (blake2b), independent of PYTHONHASHSEED."""
    digest = hashlib.blake2b(text.encode(), digest_size=16).digest()
    return [int.from_bytes(digest[i : i + 4], "little") for i in range(0, 16, 4)]


def stream(seed: Seed, purpose: str, key: str = "") -> np.random.Generator:
    """Independent generator for ``purpose`` (e.g. "intrinsics", "returns") of sample ``key``.

    An int seed gives the same stream whatever else was drawn; a Generator seed is consumed
    (one draw), so call order matters then.
    """
    if isinstance(seed, np.random.Generator):
        base = int(seed.integers(0, 2**63))
    elif isinstance(seed, int | np.integer) and seed >= 0:
        base = int(seed)
    else:
        raise ValueError(f"seed must be a non-negative int or a numpy Generator, got {seed!r}")
    return np.random.default_rng(np.random.SeedSequence([base, *_words(f"{key}\x00{purpose}")]))
