"""PURE: derived seeds, one per consumer (a loader's shuffle in one pass, its workers, ...).

A derived seed depends only on the run's seed and the consumer's name, so every rank and every
rerun draws the same random stream, and a resumed run draws what the uninterrupted one would.
"""

from __future__ import annotations

import hashlib

__all__ = ["derive_seed"]

_SEED_BITS = 63


def derive_seed(base_seed: int, *keys: int | str) -> int:
    """Derive a stable 63-bit seed from ``base_seed`` and ``keys`` (same inputs, same seed).

    Stable across processes, machines and Python versions (unlike ``hash()``), so every rank
    and every rerun derives the same generator for, e.g., one loader's shuffle in one pass.

    Args:
        base_seed: The run's seed.
        *keys: Ints or strings that name the consumer, e.g. ``("shuffle", loader_idx, pass_idx)``.

    Returns:
        An int in ``[0, 2**63)``.

    Raises:
        TypeError: A key is neither int nor str.

    Example:
        >>> derive_seed(0, "shuffle", 1, 2) == derive_seed(0, "shuffle", 1, 2)
        True
    """
    parts = []
    for key in (base_seed, *keys):
        if isinstance(key, bool) or not isinstance(key, (int, str)):
            raise TypeError(
                f"derive_seed keys must be int or str, got {type(key).__name__} {key!r}"
            )
        parts.append(f"{type(key).__name__}:{key}")
    digest = hashlib.blake2b("\x1f".join(parts).encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> (64 - _SEED_BITS)
