"""What an evaluation result rests on: how many *distinct* games and boards lie behind a
rate, and proof that the weights evaluated are the weights shipped (hashes before and after).

Against a deterministic policy, minimax's random tie-breaks are the only variety in a game,
so 1,000 games may be a handful of distinct game records: a Wilson interval over 1,000
"independent" games then overstates the evidence. Every evaluation table reports the
distinct counts beside its rates (``docs/EVALUATION.md``).

Pure Python apart from :func:`weights_snapshot`, which hashes the loaded model, SAE and
policy file.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from server.game import Board, Seat


def llm_boards(cells: Sequence[int], llm_seat: Seat) -> list[str]:
    """The boards (codes) of one game record on which ``llm_seat`` had to move: every
    position of the record with that side to move and the game not over, including the
    last one when the game ended there (a forfeit by an illegal move is not in the record).

    >>> llm_boards([5, 1, 9], Seat.O)
    ['....X....', 'O...X...X']
    >>> len(llm_boards([1, 4, 2, 5, 3], Seat.X))  # X wins on its third move
    3
    """
    board = Board.empty()
    out = []
    for cell in cells:
        if board.turn is llm_seat and not board.is_over:
            out.append(board.code)
        board = board.play(int(cell))
    if not board.is_over and board.turn is llm_seat:
        out.append(board.code)
    return out


def distinct_counts(records: Iterable[Sequence[int]], llm_seat: Seat) -> tuple[int, int]:
    """``(distinct game records, distinct boards the LLM moved on)`` over game records
    (each the cells in play order).

    >>> distinct_counts([[5, 1, 9], [5, 1, 9], [1, 5, 9]], Seat.O)
    (2, 4)
    """
    games: set[tuple[int, ...]] = set()
    boards: set[str] = set()
    for cells in records:
        games.add(tuple(int(c) for c in cells))
        boards.update(llm_boards(cells, llm_seat))
    return len(games), len(boards)


def file_digest(path: str | Path | None) -> str | None:
    """sha256 (16 hex digits) of a file's bytes; None for no file."""
    if path is None or not Path(path).is_file():
        return None
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def weights_snapshot(lm: Any, sae: Any = None, policy: Any = None) -> dict[str, str | None]:
    """Hashes of everything that decides a move: the model's weights, the SAE's weights,
    the policy's canonical content and its file. Taken before and after an evaluation run
    and stored with the results: equal hashes show that steering changed no weight and
    that the policy evaluated is the one named."""
    return {
        "model": lm.weights_hash(),
        "sae": sae.weights_hash() if sae is not None else None,
        "policy_digest": policy.digest if policy is not None else None,
        "policy_file": file_digest(getattr(policy, "source", None)) if policy is not None else None,
    }


def snapshots_agree(before: Mapping[str, Any], after: Mapping[str, Any]) -> bool:
    """True when every hash taken after the run equals the one taken before."""
    return dict(before) == dict(after)
