"""Per-game seeds derived from a run's seed: a stable hash of labelled parts to 0 ≤ seed < 2**63.

A game's seed (the protocol's ``seed`` on ``challenge`` and ``arrange``, see
docs/PROTOCOL.md, "Reproducible games") must depend only on what identifies the game, not
on the order games start or finish, so runs repeat exactly at any concurrency. SHA-256 of
the parts joined with ``/`` gives that, the same on every machine and Python version
(unlike ``hash()``, which is salted per process).

>>> game_seed(0, "tournament", "minimax", "random", 3) == game_seed(0, "tournament", "minimax", "random", 3)
True
>>> 0 <= game_seed(7, "x") < 2**63
True
"""

from __future__ import annotations

import hashlib

GAME_SEED_LIMIT = 2**63  # the protocol accepts 0 ≤ seed ≤ 2**63 - 1


def game_seed(*parts: object) -> int:
    """The seed for the game named by ``parts`` (e.g. run seed, pairing, game index):
    the first 8 bytes of SHA-256 of ``"/".join(map(str, parts))``, masked to 63 bits."""
    if not parts:
        raise ValueError("game_seed needs at least one part (the run's seed)")
    key = "/".join(str(p) for p in parts).encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:8], "big") & (GAME_SEED_LIMIT - 1)
