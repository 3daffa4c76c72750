"""The LLM as the environment's actuator: an action (the steering of one move) on a board
→ the move the steered model reads, and what the steering cost.

One batched :meth:`LLMBot.play` call per environment step answers every board that is new
for its action; the result of (board, action) is a pure function of the two (argmax move
reading), so it is memoised and a repeated pair costs a dictionary lookup. Observations
come from :mod:`bots.llm.learned` (the same code the shipped policy runs).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from bots.llm.learned import ActionCodec, BOARD_OBS_SIZE, board_observation, feature_observation
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


class LLMActuator:
    """Maps (boards, actions) to the LLM's moves under the action's steering.

    ``bot`` must steer exactly the codec's features (an ``LLMBot`` built with a policy over
    them, e.g. a zero ``FixedSteeringPolicy``); ``obs_features`` are the SAE features the
    ``features`` observation reads."""

    def __init__(self, bot: "LLMBot", codec: ActionCodec, obs: str = "board", obs_features: Sequence[int] = (),
                 memo_entries: int = 500_000) -> None:
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
        return BOARD_OBS_SIZE if self.obs == "board" else len(self.obs_features) + 1

    def warm(self, boards: Sequence[Board], batch: int = 32, progress: Any = None) -> None:
        """Run the prompts of ``boards`` once (the per-board cache) and keep their
        observations, in batches; ``progress(n)`` is told how many were done."""
        for i in range(0, len(boards), batch):
            chunk = list(boards[i:i + batch])
            if self.obs == "features":
                self.observe(chunk)
            else:
                self.bot.reader.entries(chunk) if hasattr(self.bot.reader, "entries") else self.bot.reader.answer(chunk)
            if progress is not None:
                progress(len(chunk))

    def observe(self, boards: Sequence[Board]) -> np.ndarray:
        """``[B, obs_size]`` float32 observations of boards (the LLM to move)."""
        if self.obs == "board":
            return np.stack([board_observation(b) for b in boards]) if boards else np.zeros((0, self.obs_size), np.float32)
        missing = list(dict.fromkeys(b.code for b in boards if b.code not in self._feature_obs))
        if missing:
            batch = self.bot.reader.answer([Board(c) for c in missing])
            acts = self.bot.sae.encode(batch.hook_acts)[:, self.obs_features].numpy()  # type: ignore[union-attr]
            for j, code in enumerate(missing):
                self._feature_obs[code] = feature_observation(Board(code), acts[j])
        return np.stack([self._feature_obs[b.code] for b in boards]) if boards else np.zeros((0, self.obs_size), np.float32)

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
                o = MoveOutcome(cell=m.reading.cell, legal=m.reading.legal, norm_ratio=float(m.norm_ratio),
                                kl=float(m.kl), n_steered=int(np.count_nonzero(row)), abs_coef=float(np.abs(row).sum()),
                                changed=bool(m.changed))
                self.memo[keys[i]] = o
                out[i] = o
        return out  # type: ignore[return-value]

    def stats(self) -> dict[str, Any]:
        return {"llm_calls": self.llm_calls, "llm_boards": self.llm_boards, "lookups": self.lookups,
                "memo": len(self.memo), **self.bot.stats()}
