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
  answer token from the hook layer on (``bots.llm.llama_fast``). The prompt's opening,
  the same for every board with the same side to move, is run once and shared.
* :class:`HookedAnswerReader` (any TransformerLens model): a full forward per move with a
  TransformerLens hook; it can also steer every position (``positions="all"``), which the
  cached reader cannot. It keeps each board's unsteered logits and hook activation, so a
  steered move on a board seen before is one forward, not two.

Both memoise steered answers per (board, added vector) (:class:`SteeredLogitsMemo`): the
steered logits are a pure function of the two, so a fixed policy on a board seen before
costs a dictionary lookup, like the unsteered bot.
"""

from __future__ import annotations

import abc
import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Sequence, cast

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
    #: [B] the nine digits' share of the whole next-token probability, with and without the
    #: steering (None where not measured: see the readers' ``digit_mass``)
    digit_mass: "torch.Tensor | None" = None
    base_digit_mass: "torch.Tensor | None" = None


class SteeredLogitsMemo:
    """A bounded LRU map from (board, exact bytes of the added vector) to the nine steered
    digit logits.

    The steered logits are a pure function of the board and the vector added, so a board
    seen again under the same steering (a fixed policy, or any state-dependent policy: its
    vector is a function of the board) is answered without running the model. Keys hash the
    vector's float32 bytes: any change of a coefficient is a different key, never a stale hit.
    """

    def __init__(self, max_entries: int = 4096) -> None:
        if max_entries < 0:
            raise ValueError(f"the steered-logits memo size must be >= 0, got {max_entries}")
        self.max_entries = max_entries
        self._entries: OrderedDict[bytes, "torch.Tensor"] = OrderedDict()
        self.hits = 0
        self.misses = 0

    @staticmethod
    def keys(boards: Sequence[Board], added: "torch.Tensor") -> list[bytes]:
        import hashlib

        import torch

        rows = added.detach().to("cpu", dtype=torch.float32).contiguous().numpy()
        return [
            hashlib.blake2b(b.code.encode() + rows[i].tobytes(), digest_size=16).digest() for i, b in enumerate(boards)
        ]

    def lookup(self, keys: Sequence[bytes]) -> list["torch.Tensor | None"]:
        out: list[torch.Tensor | None] = []
        for k in keys:
            v = self._entries.get(k)
            if v is None:
                self.misses += 1
            else:
                self.hits += 1
                self._entries.move_to_end(k)
            out.append(v)
        return out

    def put(self, key: bytes, logits: "torch.Tensor") -> None:
        if self.max_entries == 0:
            return
        self._entries[key] = logits
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()

    def stats(self) -> dict[str, Any]:
        total = self.hits + self.misses
        return {
            "steered_memo": len(self._entries),
            "steered_hits": self.hits,
            "steered_misses": self.misses,
            "steered_hit_rate": round(self.hits / total, 4) if total else math.nan,
        }


def steered_with_memo(
    memo: SteeredLogitsMemo, boards: Sequence[Board], added: "torch.Tensor", compute: Any
) -> "torch.Tensor":
    """``[B, 9]`` steered logits: memo hits as they are, the misses from one call of
    ``compute(indices, added[indices])`` (which returns their ``[n, 9]`` logits)."""
    import torch

    keys = memo.keys(boards, added)
    found = memo.lookup(keys)
    missing = [i for i, v in enumerate(found) if v is None]
    if missing:
        fresh = compute(missing, added[missing])
        for j, i in enumerate(missing):
            found[i] = row = fresh[j].clone()
            memo.put(keys[i], row)
    return torch.stack(cast(list[torch.Tensor], found))  # cast: every None was filled in above


class AnswerReader(abc.ABC):
    """Computes the nine digit logits at the answer position for a batch of boards."""

    kind: str = "?"
    positions: str = "last"

    def __init__(
        self, lm: "LanguageModel", hook_name: str | None, phrasing: str = "grid", prompt_cache: int = 8192
    ) -> None:
        from bots.llm.prompt import PHRASINGS

        if phrasing not in PHRASINGS:
            raise ValueError(f"unknown phrasing {phrasing!r}; expected one of {', '.join(PHRASINGS)}")
        if hook_name is not None and hook_name not in lm.model.hook_dict:
            raise ValueError(
                f"the model {lm.name} has no hook point {hook_name!r} (e.g. blocks.{lm.n_layers // 2}.hook_resid_pre)"
            )
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

    def clear(self) -> None:
        """Forget what is cached about boards (no effect on results)."""


class CachedAnswerReader(AnswerReader):
    """Per-board cache + last-token forward from the hook layer on (Llama-family models).

    Without a hook (no SAE, no steering) the start layer is the end of the model and a
    cache entry is only the nine unsteered logits."""

    kind = "cached"

    def __init__(
        self,
        lm: "LanguageModel",
        hook_name: str | None,
        phrasing: str = "grid",
        cache_boards: int = 256,
        steerable: bool = True,
        memo_entries: int | None = None,
        digit_mass: bool = False,
    ) -> None:
        super().__init__(lm, hook_name, phrasing)
        #: also measure the digits' share of the next-token mass under steering (a full
        #: unembedding per steered answer: about twice the cost of a steered move, so opt-in;
        #: the unsteered share is measured once per board in any case)
        self.digit_mass = digit_mass
        self.memo = SteeredLogitsMemo(4 * cache_boards if memo_entries is None else memo_entries)
        #: steered answers with their digit mass (ten numbers an entry), apart from ``memo``
        self.mass_memo = SteeredLogitsMemo(self.memo.max_entries)
        from bots.llm.llama_fast import BoardCache, LlamaAnswerPath, llama_weights, start_layer_for_hook

        weights = llama_weights(lm.model)
        start = weights.n_layers if hook_name is None else start_layer_for_hook(hook_name, weights.n_layers)
        # an unsteered bot needs only the hook activation (for traces) and the logits
        self.path = LlamaAnswerPath(weights, start, lm.cell_token_ids, keep_kv=steerable)
        self.cache = BoardCache(cache_boards)
        #: run the prompt opening shared by every board with the same side to move only once
        self.share_prefix = True
        self._shared: dict[Any, tuple[int, ...]] = {}

    def shared_prefix(self, board: Board, ids: Sequence[int]) -> int:
        """How many leading tokens of ``ids`` (the prompt of ``board``) are the same for every
        board with the same side to move (0: none known). Found once per side as the
        longest common prefix of three reference prompts, and checked token by token."""
        turn = board.turn
        known = self._shared.get(turn)
        if known is None:
            refs = [Board.from_moves(m) for m in (((), (1, 2), (9, 5)) if turn.value == "X" else ((1,), (5,), (9,)))]
            prompts = [self.prompt_ids(r) for r in refs]
            n = 0
            while all(len(p) > n for p in prompts) and len({p[n] for p in prompts}) == 1:
                n += 1
            known = tuple(prompts[0][:n])
            self._shared[turn] = known
        K = len(known)
        return K if 0 < K < len(ids) and tuple(ids[:K]) == known else 0

    def entries(self, boards: Sequence[Board], progress: Any = None) -> list[Any]:
        """The cache entries of ``boards``; the missing ones are computed in one prefix tree
        (:meth:`~bots.llm.llama_fast.LlamaAnswerPath.prefill_tree`), ``progress(n)`` told as
        they are done."""
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
            groups: dict[tuple[int, ...], list[tuple[str, list[int]]]] = {}  # by shared opening
            for code in missing:
                ids = self.prompt_ids(Board(code))
                K = self.shared_prefix(Board(code), ids) if self.share_prefix else 0
                groups.setdefault(tuple(ids[:K]), []).append((code, ids))
            fresh: dict[str, Any] = {}
            for head, group in groups.items():
                done = self.path.prefill_tree([ids for _, ids in group], shared_prefix=len(head), progress=progress)
                fresh.update((code, e) for (code, _), e in zip(group, done))
            for code, rows in missing.items():  # cached in the order the boards came
                self.cache.put(code, fresh[code])
                for i in rows:
                    out[i] = fresh[code]
        return out

    def answer(self, boards: Sequence[Board], added: "torch.Tensor | None" = None) -> AnswerBatch:
        import torch

        ents = self.entries(boards)
        base = torch.stack([e.digit_logits for e in ents])
        base_mass = (
            None if any(e.log_digit_mass is None for e in ents) else torch.stack([e.log_digit_mass for e in ents]).exp()
        )
        mass = base_mass if added is None else None
        if added is None:
            logits = base
        elif self.digit_mass and self.path.w.unembed_all is not None:

            def with_mass(idx: list[int], vec: "torch.Tensor") -> "torch.Tensor":
                lg, lm_ = self.path.answer_logits_and_mass([ents[i] for i in idx], vec)
                assert lm_ is not None  # unembed_all is set: the mass is computed
                return torch.cat([lg, lm_[:, None]], dim=1)

            both = steered_with_memo(self.mass_memo, boards, added, with_mass)
            logits, mass = both[:, :9], both[:, 9].exp()
        else:
            logits = steered_with_memo(
                self.memo, boards, added, lambda idx, vec: self.path.answer_logits([ents[i] for i in idx], vec)
            )
        acts = torch.stack([e.resid for e in ents]) if self.hook_name is not None else None
        return AnswerBatch(logits=logits, base_logits=base, hook_acts=acts, digit_mass=mass, base_digit_mass=base_mass)

    def stats(self) -> dict[str, Any]:
        memo = self.mass_memo if self.digit_mass else self.memo
        return {"reader": self.kind, "start_layer": self.path.start_layer, **self.cache.stats(), **memo.stats()}

    def clear(self) -> None:
        """Forget every cached board and memoised steered answer."""
        self.cache._entries.clear()
        self.memo.clear()
        self.mass_memo.clear()


class HookedAnswerReader(AnswerReader):
    """Full forward through the TransformerLens model, steering with a hook.

    The unsteered logits and hook activation of the last ``cache_boards`` boards are kept,
    so a steered move on a known board runs only the steered forward. Prompts are right-padded, so causal attention keeps padding out of every real
    position; each row is read at its own last token."""

    kind = "hooked"

    def __init__(
        self,
        lm: "LanguageModel",
        hook_name: str | None,
        phrasing: str = "grid",
        positions: str = "last",
        cache_boards: int = 256,
        memo_entries: int | None = None,
    ) -> None:
        super().__init__(lm, hook_name, phrasing)
        if positions not in POSITIONS:
            raise ValueError(f"unknown steering positions {positions!r}; expected one of {', '.join(POSITIONS)}")
        if cache_boards < 0:
            raise ValueError(f"cache_boards must be >= 0, got {cache_boards}")
        self.positions = positions
        # per board: the unsteered logits and hook activation (so a steered move is one
        # forward, not two), and the memo of steered answers
        self.max_boards = cache_boards
        self._base: OrderedDict[str, tuple[torch.Tensor, torch.Tensor | None]] = OrderedDict()
        self.memo = SteeredLogitsMemo(4 * cache_boards if memo_entries is None else memo_entries)
        self.base_hits = 0
        self.base_misses = 0

    def _forward(
        self, ids: list[list[int]], added: "torch.Tensor | None"
    ) -> tuple["torch.Tensor", "torch.Tensor | None"]:
        import torch

        B = len(ids)
        lengths = torch.tensor([len(x) for x in ids])
        T = int(lengths.max())
        tokens = torch.zeros(B, T, dtype=torch.long)
        for i, x in enumerate(ids):
            tokens[i, : len(x)] = torch.as_tensor(x)
        from bots.llm.hooks import steering_hooks

        last = lengths - 1
        rows = torch.arange(B)
        captured: dict[str, torch.Tensor] = {}
        with torch.no_grad():
            if self.hook_name is None:
                out = self.lm.model(tokens)
            else:
                with steering_hooks(self.lm.model, self.hook_name, added, lengths, self.positions, captured):
                    out = self.lm.model(tokens)
        full = out[rows, last].float()
        logits = full[:, self.lm.cell_token_ids]
        # the digits' share of the next-token mass rides along as a tenth column (free here)
        log_mass = torch.logsumexp(logits, -1) - torch.logsumexp(full, -1)
        return torch.cat([logits, log_mass[:, None]], dim=1), captured.get("act")

    def _base_rows(self, boards: Sequence[Board]) -> tuple["torch.Tensor", "torch.Tensor | None"]:
        """Unsteered logits (nine, then the log digit mass) and hook activations, from the
        per-board cache or one forward."""
        import torch

        found: list[tuple[torch.Tensor, torch.Tensor | None] | None] = []
        for b in boards:
            hit = self._base.get(b.code)
            if hit is not None:
                self._base.move_to_end(b.code)
                self.base_hits += 1
            found.append(hit)
        missing = list(dict.fromkeys(b.code for b, f in zip(boards, found) if f is None))
        if missing:
            self.base_misses += len(missing)
            logits, acts = self._forward([self.prompt_ids(Board(c)) for c in missing], None)
            fresh = {c: (logits[j].clone(), None if acts is None else acts[j].clone()) for j, c in enumerate(missing)}
            for c, row in fresh.items():
                if self.max_boards:
                    self._base[c] = row
            while len(self._base) > self.max_boards:
                self._base.popitem(last=False)
            found = [f if f is not None else fresh[b.code] for b, f in zip(boards, found)]
        rows = cast(list[tuple[torch.Tensor, torch.Tensor | None]], found)  # cast: every None was filled in above
        base = torch.stack([f[0] for f in rows])
        acts_rows = [f[1] for f in rows]
        acts_present = [a for a in acts_rows if a is not None]
        acts_out = torch.stack(acts_present) if len(acts_present) == len(acts_rows) else None
        return base, acts_out

    def answer(self, boards: Sequence[Board], added: "torch.Tensor | None" = None) -> AnswerBatch:
        base, acts = self._base_rows(boards)
        if added is None:
            logits = base
        else:
            logits = steered_with_memo(
                self.memo,
                boards,
                added,
                lambda idx, vec: self._forward([self.prompt_ids(boards[i]) for i in idx], vec)[0],
            )
        return AnswerBatch(
            logits=logits[:, :9],
            base_logits=base[:, :9],
            hook_acts=acts,
            digit_mass=logits[:, 9].exp(),
            base_digit_mass=base[:, 9].exp(),
        )

    def stats(self) -> dict[str, Any]:
        total = self.base_hits + self.base_misses
        return {
            "reader": self.kind,
            "positions": self.positions,
            "boards": len(self._base),
            "hits": self.base_hits,
            "misses": self.base_misses,
            "hit_rate": round(self.base_hits / total, 4) if total else math.nan,
            **self.memo.stats(),
        }

    def clear(self) -> None:
        """Forget every cached board and memoised steered answer."""
        self._base.clear()
        self.memo.clear()


def make_reader(
    lm: "LanguageModel",
    hook_name: str | None,
    *,
    reader: str = "auto",
    phrasing: str = "grid",
    cache_boards: int = 256,
    positions: str = "last",
    steerable: bool = True,
    digit_mass: bool = False,
) -> AnswerReader:
    """``auto``: the cached fast path when the model and hook allow it (Llama-family model,
    residual hook, last-position steering), else the hooked full forward."""
    from bots.llm.llama_fast import FastPathUnsupported

    if reader not in ("auto", "cached", "hooked"):
        raise ValueError(f"unknown answer reader {reader!r}; expected auto, cached or hooked")
    if reader == "hooked" or positions == "all":
        if reader == "cached":
            raise ValueError("the cached reader steers only the answer position (positions='last')")
        return HookedAnswerReader(lm, hook_name, phrasing, positions, cache_boards)
    try:
        return CachedAnswerReader(lm, hook_name, phrasing, cache_boards, steerable, digit_mass=digit_mass)
    except FastPathUnsupported as exc:
        if reader == "cached":
            raise ValueError(f"no cached fast path for {lm.name} at {hook_name}: {exc}") from None
        return HookedAnswerReader(lm, hook_name, phrasing, positions, cache_boards)
