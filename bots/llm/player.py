"""Reading the LLM's move: one forward pass, the next-token distribution over the digits 1-9.

Two modes, always reported by name:

* ``strict``: the move is the argmax over all nine cells. If that cell is occupied the
  move is illegal and the game is lost (the bot sends it with ``on_illegal="forfeit"``).
* ``masked``: the move is the argmax over the legal (empty) cells.

There are no retries and no random fallbacks.

Two *answer readers* compute the digit logits, optionally with a steering vector added
at the hook point at the answer position:

* :class:`CachedAnswerReader` (Llama-family models, the default for SmolLM2): runs each
  board's prompt once and keeps it in a bounded LRU cache; a move then runs only the
  answer token from the hook layer on (``bots.llm.llama_fast``).
* :class:`HookedAnswerReader` (any TransformerLens model): a full forward per move with a
  TransformerLens hook; it can also steer every position (``positions="all"``), which the
  cached reader cannot.
"""

from __future__ import annotations

import abc
import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Sequence

from server.game import Board

if TYPE_CHECKING:  # torch stays out of import time for the CLI
    import torch

    from bots.llm.model import LanguageModel

MODES: tuple[str, ...] = ("strict", "masked")
Mode = Literal["strict", "masked"]
POSITIONS: tuple[str, ...] = ("last", "all")


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise ValueError(f"unknown move-reading mode {mode!r}; expected one of {', '.join(MODES)}")
    return mode


@dataclass(frozen=True, slots=True)
class MoveReading:
    """The move read from one distribution over the nine cells."""

    mode: str
    probs: tuple[float, ...]  # nine probabilities, index 0 is cell 1 (softmax over the digits)
    cell: int
    legal: bool

    def probs_dict(self, digits: int = 4) -> dict[str, float]:
        return {str(i + 1): round(p, digits) for i, p in enumerate(self.probs)}


def read_move(board: Board, digit_logits: Sequence[float], mode: str) -> MoveReading:
    """Pick the cell from the nine digit logits.

    >>> b = Board.from_moves([5])
    >>> read_move(b, [0, 0, 0, 0, 9, 1, 0, 0, 0], "strict").cell, read_move(b, [0, 0, 0, 0, 9, 1, 0, 0, 0], "strict").legal
    (5, False)
    >>> read_move(b, [0, 0, 0, 0, 9, 1, 0, 0, 0], "masked").cell
    6
    """
    check_mode(mode)
    logits = [float(x) for x in digit_logits]
    if len(logits) != 9:
        raise ValueError(f"expected nine digit logits, got {len(logits)}")
    top = max(logits)
    exps = [math.exp(x - top) for x in logits]
    z = sum(exps)
    probs = tuple(e / z for e in exps)
    legal_cells = board.legal_cells()
    if not legal_cells:
        raise ValueError(f"no move to read: the game on {board.code!r} is over")
    if mode == "strict":
        cell = max(range(1, 10), key=lambda c: (logits[c - 1], -c))
    else:
        cell = max(legal_cells, key=lambda c: (logits[c - 1], -c))
    return MoveReading(mode=mode, probs=probs, cell=cell, legal=cell in legal_cells)


@dataclass
class AnswerBatch:
    """Digit logits for a batch of boards, steered and unsteered, and the (unsteered) hook
    activation at the answer position, which the SAE encodes for traces."""

    logits: "torch.Tensor"  # [B, 9] with steering
    base_logits: "torch.Tensor"  # [B, 9] without steering
    hook_acts: "torch.Tensor | None"  # [B, d_model] at the hook, before steering


class AnswerReader(abc.ABC):
    """Computes the nine digit logits at the answer position for a batch of boards."""

    kind: str = "?"
    positions: str = "last"

    def __init__(self, lm: "LanguageModel", hook_name: str | None, phrasing: str = "grid",
                 prompt_cache: int = 8192) -> None:
        from bots.llm.prompt import PHRASINGS

        if phrasing not in PHRASINGS:
            raise ValueError(f"unknown phrasing {phrasing!r}; expected one of {', '.join(PHRASINGS)}")
        if hook_name is not None and hook_name not in lm.model.hook_dict:
            raise ValueError(f"the model {lm.name} has no hook point {hook_name!r} "
                             f"(e.g. blocks.{lm.n_layers // 2}.hook_resid_pre)")
        self.lm = lm
        self.hook_name = hook_name
        self.phrasing = phrasing
        self._prompts: OrderedDict[str, list[int]] = OrderedDict()
        self._prompt_cache = prompt_cache

    def prompt_ids(self, board: Board) -> list[int]:
        ids = self._prompts.get(board.code)
        if ids is None:
            ids = self.lm.prompt_ids(board, self.phrasing)
            self._prompts[board.code] = ids
            if len(self._prompts) > self._prompt_cache:
                self._prompts.popitem(last=False)
        return ids

    @abc.abstractmethod
    def answer(self, boards: Sequence[Board], added: "torch.Tensor | None" = None) -> AnswerBatch:
        """Digit logits with ``added[b]`` added at the hook for board ``b`` (``None``: no steering)."""

    def stats(self) -> dict[str, Any]:
        return {"reader": self.kind}


class CachedAnswerReader(AnswerReader):
    """Per-board cache + last-token forward from the hook layer on (Llama-family models).

    Without a hook (no SAE, no steering) the start layer is the end of the model and a
    cache entry is only the nine unsteered logits."""

    kind = "cached"

    def __init__(self, lm: "LanguageModel", hook_name: str | None, phrasing: str = "grid",
                 cache_boards: int = 256, steerable: bool = True) -> None:
        super().__init__(lm, hook_name, phrasing)
        from bots.llm.llama_fast import BoardCache, LlamaAnswerPath, llama_weights, start_layer_for_hook

        weights = llama_weights(lm.model)
        start = weights.n_layers if hook_name is None else start_layer_for_hook(hook_name, weights.n_layers)
        # an unsteered bot needs only the hook activation (for traces) and the logits
        self.path = LlamaAnswerPath(weights, start, lm.cell_token_ids, keep_kv=steerable)
        self.cache = BoardCache(cache_boards)

    def entries(self, boards: Sequence[Board]) -> list[Any]:
        out: list[Any] = [None] * len(boards)
        missing: dict[str, list[int]] = {}
        for i, b in enumerate(boards):
            if b.code in missing:  # the same board twice in one batch: computed once
                missing[b.code].append(i)
                continue
            e = self.cache.get(b.code)
            if e is None:
                missing[b.code] = [i]
            else:
                out[i] = e
        if missing:
            codes = list(missing)
            fresh = self.path.prefill([self.prompt_ids(Board(c)) for c in codes])
            for code, e in zip(codes, fresh):
                self.cache.put(code, e)
                for i in missing[code]:
                    out[i] = e
        return out

    def answer(self, boards: Sequence[Board], added: "torch.Tensor | None" = None) -> AnswerBatch:
        import torch

        ents = self.entries(boards)
        base = torch.stack([e.digit_logits for e in ents])
        logits = base if added is None else self.path.answer_logits(ents, added)
        acts = torch.stack([e.resid for e in ents]) if self.hook_name is not None else None
        return AnswerBatch(logits=logits, base_logits=base, hook_acts=acts)

    def stats(self) -> dict[str, Any]:
        return {"reader": self.kind, "start_layer": self.path.start_layer, **self.cache.stats()}


class HookedAnswerReader(AnswerReader):
    """Full forward through the TransformerLens model, steering with a hook.

    Prompts are right-padded, so causal attention keeps padding out of every real
    position; each row is read at its own last token."""

    kind = "hooked"

    def __init__(self, lm: "LanguageModel", hook_name: str | None, phrasing: str = "grid",
                 positions: str = "last") -> None:
        super().__init__(lm, hook_name, phrasing)
        if positions not in POSITIONS:
            raise ValueError(f"unknown steering positions {positions!r}; expected one of {', '.join(POSITIONS)}")
        self.positions = positions

    def _forward(self, ids: list[list[int]], added: "torch.Tensor | None") -> tuple["torch.Tensor", "torch.Tensor | None"]:
        import torch

        B = len(ids)
        lengths = torch.tensor([len(x) for x in ids])
        T = int(lengths.max())
        tokens = torch.zeros(B, T, dtype=torch.long)
        for i, x in enumerate(ids):
            tokens[i, : len(x)] = torch.as_tensor(x)
        from bots.llm.steering import steering_hooks

        last = lengths - 1
        rows = torch.arange(B)
        captured: dict[str, torch.Tensor] = {}
        with torch.no_grad():
            if self.hook_name is None:
                out = self.lm.model(tokens)
            else:
                with steering_hooks(self.lm.model, self.hook_name, added, lengths, self.positions, captured):
                    out = self.lm.model(tokens)
        logits = out[rows, last][:, self.lm.cell_token_ids].float()
        return logits, captured.get("act")

    def answer(self, boards: Sequence[Board], added: "torch.Tensor | None" = None) -> AnswerBatch:
        ids = [self.prompt_ids(b) for b in boards]
        base, acts = self._forward(ids, None)
        logits = base if added is None else self._forward(ids, added)[0]
        return AnswerBatch(logits=logits, base_logits=base, hook_acts=acts)


def make_reader(lm: "LanguageModel", hook_name: str | None, *, reader: str = "auto", phrasing: str = "grid",
                cache_boards: int = 256, positions: str = "last", steerable: bool = True) -> AnswerReader:
    """``auto``: the cached fast path when the model and hook allow it (Llama-family model,
    residual hook, last-position steering), else the hooked full forward."""
    from bots.llm.llama_fast import FastPathUnsupported

    if reader not in ("auto", "cached", "hooked"):
        raise ValueError(f"unknown answer reader {reader!r}; expected auto, cached or hooked")
    if reader == "hooked" or positions == "all":
        if reader == "cached":
            raise ValueError("the cached reader steers only the answer position (positions='last')")
        return HookedAnswerReader(lm, hook_name, phrasing, positions)
    try:
        return CachedAnswerReader(lm, hook_name, phrasing, cache_boards, steerable)
    except FastPathUnsupported as exc:
        if reader == "cached":
            raise ValueError(f"no cached fast path for {lm.name} at {hook_name}: {exc}") from None
        return HookedAnswerReader(lm, hook_name, phrasing, positions)
