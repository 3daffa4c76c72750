"""The LLM as the environment's actuator: an action (the steering of one move) on a board
→ the move the steered model reads, and what the steering cost.

One batched :meth:`LLMBot.play` call per environment step answers every board that is new
for its action; the result of (board, action) is a pure function of the two (argmax move
reading), so it is memoised and a repeated pair costs a dictionary lookup. Observations
come from :mod:`bots.llm.learned` (the same code the shipped policy runs).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence, cast

import numpy as np

from bots.llm.learned import (
    BOARD_OBS_SIZE,
    MODEL_OBS_SIZE,
    ActionCodec,
    board_model_observation,
    board_observation,
    feature_observation,
)
from server.game import Board

if TYPE_CHECKING:
    from bots.llm.bot import LLMBot


@dataclass(frozen=True, slots=True)
class MoveOutcome:
    """The steered move on one board and its steering strength."""

    cell: int
    legal: bool
    norm_ratio: float  # ||added vector|| / ||residual at the hook||
    kl: float  # KL(steered || unsteered) of the cell distribution
    n_steered: int  # features with a non-zero coefficient
    abs_coef: float  # sum of |coefficient|
    changed: bool  # the steered move differs from the unsteered one
    margin: float = 0.0  # log-prob of the best value-keeping cell minus that of the best other digit (nats)


def keep_margin(board: Board, probs: Sequence[float]) -> float:
    """How surely the move read from ``probs`` (the nine digits' softmax) keeps the solved
    value: log p(best value-keeping cell) − log p(best other digit, illegal ones included),
    in nats. Positive exactly when the strict argmax keeps the value; a board where every
    digit keeps it gives ``inf``.

    >>> round(keep_margin(Board.from_moves([1, 5, 9]), [0.1, 0.6, 0.05, 0.05, 0.05, 0.05, 0.05, 0.0, 0.05]), 3)
    1.792
    >>> keep_margin(Board.from_moves([1, 5, 9]), [0.6, 0.1, 0.05, 0.05, 0.05, 0.05, 0.05, 0.0, 0.05]) < 0
    True
    """
    from server.solver import value_preserving_cells

    good = value_preserving_cells(board)
    logp = np.log(np.maximum(np.asarray(probs, dtype=np.float64), 1e-30))
    best_good = max(logp[c - 1] for c in good)
    others = [logp[i] for i in range(9) if i + 1 not in good]
    return float(best_good - max(others)) if others else float("inf")


class LLMActuator:
    """Maps (boards, actions) to the LLM's moves under the action's steering.

    ``bot`` must steer exactly the codec's features (an ``LLMBot`` built with a policy over
    them, e.g. a zero ``FixedSteeringPolicy``); ``obs_features`` are the SAE features the
    ``features`` observation reads."""

    def __init__(
        self,
        bot: "LLMBot",
        codec: ActionCodec,
        obs: str = "board",
        obs_features: Sequence[int] = (),
        memo_entries: int = 500_000,
    ) -> None:
        if bot.steering is None or bot.steering.n_features != codec.n_features:
            raise ValueError("the actuator's bot must steer the action's features (build it with a policy over them)")
        self.bot = bot
        self.codec = codec
        self.obs = obs
        self.obs_features = list(obs_features)
        if obs == "features" and not self.obs_features:
            raise ValueError("the features observation needs the SAE features to observe")
        self.memo: dict[tuple[str, bytes], MoveOutcome] = {}
        self.memo_entries = memo_entries
        self._feature_obs: dict[str, np.ndarray] = {}
        self.llm_calls = 0  # batched calls that reached the model
        self.llm_boards = 0  # (board, action) pairs computed by the model
        self.lookups = 0

    @property
    def obs_size(self) -> int:
        return {"board": BOARD_OBS_SIZE, "board+model": MODEL_OBS_SIZE}.get(self.obs, len(self.obs_features) + 1)

    def warm(
        self, boards: Sequence[Board], batch: int = 32, progress: Any = None, store: "Path | None" = None
    ) -> dict[str, Any]:
        """Run the prompts of ``boards`` once (the per-board cache) and keep their
        observations, in batches; ``progress(n)`` is told how many were done.

        With ``store`` (a file), entries saved there by an earlier run are loaded instead of
        computed, and the file is rewritten when boards had to be computed. An entry is a
        pure function of the model's weights, the hook layer and the prompt, which the
        file's name and content pin (see :func:`prompt_store_path`)."""
        from bots.llm.readers import CachedAnswerReader

        t = time.perf_counter()
        reader = self.bot.reader
        assert isinstance(reader, CachedAnswerReader)  # warm-up fills the per-board cache, which only it has
        held = reader.cache._entries
        if all(b.code in held for b in boards):  # a shared reader already warm: nothing to load or run
            return {
                "boards": len(boards),
                "from_store": 0,
                "computed": 0,
                "already_cached": len(boards),
                "seconds": round(time.perf_counter() - t, 1),
                "store": str(store) if store else None,
            }
        loaded = load_prompt_store(self.bot.reader, store, boards) if store is not None else 0
        if progress is not None and loaded:
            progress(loaded)
        todo = [b for b in boards if b.code not in reader.cache._entries] if loaded else list(boards)
        self._prefill(todo, batch, progress)
        if self.obs != "board":
            self.observe(list(boards))
        if store is not None and todo:
            save_prompt_store(self.bot.reader, store)
        return {
            "boards": len(boards),
            "from_store": loaded,
            "computed": len(todo),
            "seconds": round(time.perf_counter() - t, 1),
            "store": str(store) if store else None,
        }

    def _prefill(self, boards: Sequence[Board], batch: int, progress: Any) -> None:
        entries = getattr(self.bot.reader, "entries", None)
        if (
            entries is not None
        ):  # the cached reader: one prefix tree over all boards (chunks would each be a small tree)
            entries(list(boards), progress=progress)
            return
        for i in range(0, len(boards), batch):
            chunk = list(boards[i : i + batch])
            self.bot.reader.answer(chunk)
            if progress is not None:
                progress(len(chunk))

    def observe(self, boards: Sequence[Board]) -> np.ndarray:
        """``[B, obs_size]`` float32 observations of boards (the LLM to move)."""
        if self.obs == "board":
            return (
                np.stack([board_observation(b) for b in boards]) if boards else np.zeros((0, self.obs_size), np.float32)
            )
        missing = list(dict.fromkeys(b.code for b in boards if b.code not in self._feature_obs))
        if missing:
            batch = self.bot.reader.answer([Board(c) for c in missing])
            if self.obs == "board+model":
                logits = batch.base_logits.numpy()
                for j, code in enumerate(missing):
                    self._feature_obs[code] = board_model_observation(Board(code), logits[j])
            else:
                sae, hook_acts = self.bot.sae, batch.hook_acts
                assert (
                    sae is not None and hook_acts is not None
                )  # a features observation: the bot's SAE, read at its hook
                acts = sae.encode(hook_acts)[:, self.obs_features].numpy()
                for j, code in enumerate(missing):
                    self._feature_obs[code] = feature_observation(Board(code), acts[j])
        return (
            np.stack([self._feature_obs[b.code] for b in boards])
            if boards
            else np.zeros((0, self.obs_size), np.float32)
        )

    def act(self, boards: Sequence[Board], actions: np.ndarray) -> list[MoveOutcome]:
        """The steered move on each board under its action (one batched model call for the
        pairs not seen before)."""
        actions = np.asarray(actions)
        keys = [(b.code, np.ascontiguousarray(actions[i]).tobytes()) for i, b in enumerate(boards)]
        out: list[MoveOutcome | None] = [self.memo.get(k) for k in keys]
        self.lookups += len(keys)
        missing = [i for i, o in enumerate(out) if o is None]
        if missing:
            coefs = self.codec.coefficients(actions[missing])
            moves = self.bot.play([boards[i] for i in missing], coefs)
            self.llm_calls += 1
            self.llm_boards += len(missing)
            if len(self.memo) + len(missing) > self.memo_entries:
                self.memo.clear()  # bounded; results never go stale (pure function of the key)
            for j, i in enumerate(missing):
                m, row = moves[j], coefs[j]
                o = MoveOutcome(
                    cell=m.reading.cell,
                    legal=m.reading.legal,
                    norm_ratio=float(m.norm_ratio),
                    kl=float(m.kl),
                    n_steered=int(np.count_nonzero(row)),
                    abs_coef=float(np.abs(row).sum()),
                    changed=bool(m.changed),
                    margin=keep_margin(boards[i], m.reading.probs),
                )
                self.memo[keys[i]] = o
                out[i] = o
        return cast(list[MoveOutcome], out)  # cast: every None was filled in above

    def stats(self) -> dict[str, Any]:
        return {
            "llm_calls": self.llm_calls,
            "llm_boards": self.llm_boards,
            "lookups": self.lookups,
            "memo": len(self.memo),
            **self.bot.stats(),
        }


# --------------------------------------------------------------------------- prompt store
STORE_FORMAT = 1


def prompt_store_path(lm: Any, reader: Any, weights_hash: str) -> Path | None:
    """Where the per-board prompt cache of this model, hook layer and phrasing is kept on
    disk (``~/.cache/autosteer-arena/prompts/``), or None when the reader has no such cache."""
    from bots.llm.model import default_cache_dir

    if not hasattr(reader, "path") or not hasattr(reader, "cache"):
        return None
    name = f"{lm.name}-{weights_hash[:16]}-L{reader.path.start_layer}-{reader.phrasing}-v{STORE_FORMAT}.pt"
    return default_cache_dir() / "prompts" / name


def save_prompt_store(reader: Any, path: Path) -> None:
    import torch

    entries = {
        code: {
            "length": e.length,
            "resid": e.resid,
            "kv": e.kv,
            "digit_logits": e.digit_logits,
            **({"log_digit_mass": e.log_digit_mass} if e.log_digit_mass is not None else {}),
        }
        for code, e in reader.cache._entries.items()
    }
    prompts = {code: list(reader.prompt_ids(Board(code))) for code in entries}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(
        {"format": STORE_FORMAT, "start_layer": reader.path.start_layer, "prompts": prompts, "entries": entries}, tmp
    )
    tmp.replace(path)


def load_prompt_store(reader: Any, path: Path, boards: Sequence[Board]) -> int:
    """Put the stored entries of ``boards`` into the reader's cache; returns how many. An
    entry whose stored prompt differs from the reader's prompt for the board is ignored."""
    import torch

    from bots.llm.llama_fast import BoardEntry

    if not path.is_file():
        return 0
    try:
        data = torch.load(path, weights_only=True)
    except Exception:  # noqa: BLE001 - a damaged store is recomputed, never trusted
        return 0
    if data.get("format") != STORE_FORMAT or data.get("start_layer") != reader.path.start_layer:
        return 0
    n = 0
    for b in boards:
        e = data["entries"].get(b.code)
        if e is None or data["prompts"].get(b.code) != list(reader.prompt_ids(b)):
            continue
        reader.cache.put(
            b.code,
            BoardEntry(
                length=int(e["length"]),
                resid=e["resid"],
                kv=e["kv"],
                digit_logits=e["digit_logits"],
                log_digit_mass=e.get("log_digit_mass"),
            ),
        )
        n += 1
    return n
