"""The steered LLM bot: reads its move from the model's digit distribution, steered only
along SAE features, and reports a trace with every move.

``LLMBot.choose_batch`` answers every waiting game in one batched pass. In ``strict``
mode an occupied cell is sent as is and forfeits the game (``forfeit_on_illegal``); in
``masked`` mode the best legal cell is played. The trace (< 4 KB) carries the top SAE
features at the answer position (unsteered activation, i.e. what the model computed
before the steering was added), the steering applied, the nine cell probabilities, the
chosen cell and whether it was legal, the mode, model and hook, the steering strength, and
``policy``: the digest of the policy played, ``"explicit"`` for coefficients passed to
:meth:`LLMBot.play`, or ``"none"`` when unsteered.

:meth:`LLMBot.play` is the lower-level call the evaluation and RL use: it also takes an
explicit coefficient matrix instead of the policy's.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence, cast

from server.players.base import Bot, Decision, MoveRequest
from bots.llm.prompt import DEFAULT_PHRASING
from bots.llm.readers import MoveReading, check_mode, make_reader, read_move
from server.game import Board

if TYPE_CHECKING:
    from bots.llm.model import LanguageModel
    from bots.llm.policy import SteeringPolicy
    from bots.llm.sae import LoadedSAE
    from bots.llm.steering import Steering


#: controls that show whether steering causes a change: the policy's coefficients set to
#: zero, negated, applied to other (randomly chosen, seeded) features, or replaced by one
#: fixed random direction (drawn once per bot from ``control_seed``) scaled to the norm of
#: the policy's vector at each move. These are unoptimised; equal-effort controls (the same
#: search on other features or directions) are in ``training/controls.py``.
CONTROLS: tuple[str, ...] = ("none", "zero", "negate", "shuffle", "random")


@dataclass
class LLMMove:
    """One move of the LLM bot with what it took to make it."""

    board: Board
    reading: MoveReading
    trace: dict[str, Any]
    mean_abs_coef: float = 0.0
    norm_ratio: float = 0.0  # ||added vector|| / ||residual at the hook||
    kl: float = 0.0  # KL(steered ‖ unsteered) of the cell distribution, nats
    changed: bool = False  # the steered argmax differs from the unsteered one
    features_active: int = 0  # coefficients of this move that are not zero
    digit_mass: float | None = None  # the digits' share of the next-token probability, steered
    base_digit_mass: float | None = None  # the same, unsteered (None where not measured)


class LLMBot(Bot):
    """A language model playing through its next-token distribution over cells 1-9.

    ``sae`` gives features for traces; ``policy`` (which needs ``sae``) steers. ``reader``
    ``auto`` uses the cached answer path when the model allows it. ``positions`` ``last``
    (default) steers the answer position only; ``all`` steers every position (hooked path).
    """

    def __init__(
        self,
        lm: "LanguageModel",
        *,
        sae: "LoadedSAE | None" = None,
        policy: "SteeringPolicy | None" = None,
        mode: str = "strict",
        top_k: int = 8,
        reader: str = "auto",
        phrasing: str = DEFAULT_PHRASING,
        cache_boards: int = 256,
        positions: str = "last",
        name: str = "llm",
        max_batch: int = 64,
        control: str = "none",
        control_seed: int = 0,
        verbose: bool = False,
        digit_mass: bool = False,
        directions: Any = None,
    ) -> None:
        self.lm = lm
        self.mode = check_mode(mode)
        self.name = name
        self.max_batch = max_batch
        self.forfeit_on_illegal = mode == "strict"
        if top_k < 0 or top_k > 64:
            raise ValueError(f"top_k must be 0..64, got {top_k}")
        self.top_k = top_k if sae is not None else 0
        _check_sae_and_policy(lm, sae, policy)
        self.sae = sae
        self.policy = policy
        self._policy_digest = policy.digest if policy is not None else None  # traces carry it on every move
        self._described: dict[tuple[int, tuple[float, ...]], list[dict[str, Any]]] = {}
        self._top_cache: OrderedDict[str, list[dict[str, Any]]] = OrderedDict()
        self._usual: tuple[Any, Any] | None = None  # see _levels
        self._top_cache_size = max(1, 4 * cache_boards)
        self.reader = make_reader(
            lm,
            sae.hook_name if sae else None,
            reader=reader,
            phrasing=phrasing,
            cache_boards=cache_boards,
            positions=positions,
            steerable=policy is not None,
            digit_mass=digit_mass,
        )
        self.steering, scales = self._make_steering(directions, verbose)
        self._set_up_control(control, control_seed, scales)

    def _make_steering(self, directions: Any, verbose: bool) -> tuple[Steering | None, Any]:
        """The policy's steering (None without a policy) and the feature scales it uses."""
        from bots.llm.steering import Steering, feature_scales

        steering, scales = None, None
        if self.policy is not None:
            assert self.sae is not None  # a policy without its SAE is refused in __init__
            scales = feature_scales(self.sae, self.reader)
            if verbose and "calibrated" in scales.source:
                print(f"[llm] feature scales {scales.source}", flush=True)
            steering = Steering(self.sae, self.policy.features, scales, directions=directions)
        elif directions is not None:
            raise ValueError("replacement directions need a policy whose features they replace")
        return steering, scales

    def _set_up_control(self, control: str, control_seed: int, scales: Any) -> None:
        """The steering control: ``random`` draws one random direction, ``shuffle`` steers as
        many other SAE features, both from ``control_seed``."""
        from bots.llm.steering import Steering

        if control not in CONTROLS:
            raise ValueError(f"unknown steering control {control!r}; expected one of {', '.join(CONTROLS)}")
        if control != "none" and self.policy is None:
            raise ValueError(f"the steering control {control!r} needs a policy to control for")
        self.control = control
        self._control_rng = None
        self._shuffled = None
        self._random_direction = None
        if control != "none":
            import torch

            self._control_rng = torch.Generator().manual_seed(control_seed)
        if control == "random":
            d = torch.randn(self.lm.d_model, generator=self._control_rng)
            self._random_direction = d / d.norm()
        if control == "shuffle":
            policy, sae = self.policy, self.sae
            assert policy is not None and sae is not None  # a control needs a policy, a policy its SAE (refused above)
            others = [i for i in range(sae.d_sae) if i not in set(policy.features)]
            pick = torch.randperm(len(others), generator=self._control_rng)[: len(policy.features)].tolist()
            self._shuffled = Steering(sae, [others[i] for i in pick], scales)

    @property
    def description(self) -> str:  # type: ignore[override]  # read-only: it follows the policy and the mode
        steering = (
            f"steered by {self.policy.kind} policy {self.policy.digest}" + _card_summary(self.policy)
            if self.policy
            else "unsteered"
        )
        return f"{self.lm.name}, {self.mode} move reading, {steering}"

    def set_mode(self, mode: str) -> None:
        """Switch between strict and masked move reading (the cache is kept)."""
        self.mode = check_mode(mode)
        self.forfeit_on_illegal = mode == "strict"

    # ------------------------------------------------------------------ playing
    def choose(self, request: MoveRequest) -> Decision:
        return self.choose_batch([request])[0]

    def choose_batch(self, requests: Sequence[MoveRequest]) -> list[Decision]:
        out: list[Decision] = []
        for i in range(0, len(requests), self.max_batch):
            chunk = requests[i : i + self.max_batch]
            out.extend(Decision(m.reading.cell, m.trace) for m in self.play([r.board for r in chunk]))
        return out

    def play(self, boards: Sequence[Board], coefficients: Any = None) -> list[LLMMove]:
        """Moves for ``boards`` with the policy's coefficients, or with ``coefficients``
        (``[B, n_features]``, over the policy's features) when given. An RL loop builds the
        bot with a policy that names its features, e.g. ``FixedSteeringPolicy(features,
        [0.0] * n)``, and passes its own coefficients here."""
        for b in boards:
            if b.is_over:
                raise ValueError(f"no move to make: the game on {b.code!r} is over")
        added = None
        coefs = None
        if self.steering is not None:
            coefs = self.steering.check_coefficients(
                coefficients if coefficients is not None else self._policy_coefficients(boards)
            )
            if coefs.shape[0] != len(boards):
                raise ValueError(f"{coefs.shape[0]} coefficient vectors for {len(boards)} boards")
            added, coefs, described = self._controlled(coefs)
        elif coefficients is not None:
            raise ValueError("coefficients given but this bot has no steering policy/SAE")
        batch = self.reader.answer(boards, added)
        top = self._top_features_of(boards, batch.hook_acts)
        if added is not None:
            from bots.llm.steering import kl_divergence

            kls = kl_divergence(batch.logits, batch.base_logits).tolist()
            assert batch.hook_acts is not None  # a steered reader reads the hook it steers
            ratios = (added.norm(dim=-1) / batch.hook_acts.norm(dim=-1).clamp(min=1e-9)).tolist()
        mass = batch.digit_mass.tolist() if batch.digit_mass is not None else None
        base_mass = batch.base_digit_mass.tolist() if batch.base_digit_mass is not None else None
        moves = []
        for i, board in enumerate(boards):
            reading = read_move(board, batch.logits[i].tolist(), self.mode)
            trace: dict[str, Any] = {
                "model": self.lm.name,
                "mode": self.mode,
                "hook": self.sae.hook_name if self.sae else None,
                "chosen": reading.cell,
                "legal": reading.legal,
                "cell_probs": reading.probs_dict(),
            }
            if top is not None:
                trace["top_features"] = top[i]
            if coefs is None:
                trace["policy"] = "none"  # unsteered: no policy played
            move = LLMMove(
                board=board,
                reading=reading,
                trace=trace,
                base_digit_mass=None if base_mass is None else float(base_mass[i]),
            )
            move.digit_mass = move.base_digit_mass if added is None else (None if mass is None else float(mass[i]))
            if coefs is not None and self.steering is not None:
                row = coefs[i].tolist()
                trace["steering"] = self._describe(described, row)
                move.mean_abs_coef = sum(abs(c) for c in row) / max(1, len(row))
                move.features_active = sum(1 for c in row if c != 0.0)
                move.norm_ratio = float(ratios[i])
                move.kl = max(0.0, float(kls[i]))
                move.changed = _best_cell(board, batch.base_logits[i].tolist(), self.mode) != reading.cell
                trace["strength"] = {
                    "mean_abs_coef": round(move.mean_abs_coef, 4),
                    "norm_ratio": round(move.norm_ratio, 4),
                    "kl": round(move.kl, 4),
                }
                trace["policy"] = self._policy_digest if coefficients is None and self.policy else "explicit"
                if self.control != "none":
                    trace["control"] = self.control
            moves.append(move)
        return moves

    def _policy_coefficients(self, boards: Sequence[Board]) -> list[list[float]]:
        """The policy's coefficients; a policy that reads the model's representation
        (``needs_features``) gets the boards' unsteered SAE activations at the hook, one that
        reads the model's own move (``needs_model``) the unsteered cell logits (the reader
        caches both per board, so this costs no extra forward on a known board)."""
        assert self.policy is not None and self.sae is not None
        from bots.llm.learned import LearnedSteeringPolicy

        if (
            isinstance(self.policy, LearnedSteeringPolicy) and self.policy.needs_model
        ):  # reads the model's own unsteered move (cached per board)
            return self.policy.coefficients(boards, cell_logits=self.reader.answer(boards).base_logits)
        if not self.policy.needs_features:
            return self.policy.coefficients(boards)
        acts = self.reader.answer(boards).hook_acts
        if acts is None:
            raise ValueError("this policy observes SAE features, but the reader gives no hook activations")
        return self.policy.coefficients(boards, self.sae.encode(acts))

    def _controlled(self, coefs: Any) -> tuple[Any, Any, Any]:
        """The vectors to add, the coefficients applied and the steering they are over:
        the policy's, or a control's (see ``CONTROLS``). For ``random`` the coefficients
        reported are the policy's, whose norm the random direction takes."""

        assert self.steering is not None
        if self.control == "zero":
            coefs = coefs * 0
        elif self.control == "negate":
            coefs = -coefs
        elif self.control == "shuffle":
            assert self._shuffled is not None  # made in __init__ for this control
            return self._shuffled.vectors(coefs, check=False), coefs, self._shuffled
        vec = self.steering.vectors(coefs, check=False)  # checked in play()
        if self.control == "random":
            assert self._random_direction is not None  # made in __init__ for this control
            vec = self._random_direction[None, :] * vec.norm(dim=-1, keepdim=True)
        return vec, coefs, self.steering

    def _describe(self, steering: Any, row: list[float]) -> list[dict[str, Any]]:
        """The trace's steering list for one coefficient row (kept: a fixed policy repeats it)."""
        key = (id(steering), tuple(row))
        out = self._described.get(key)
        if out is None:
            if len(self._described) >= 1024:
                self._described.clear()
            out = self._described[key] = steering.describe(row)
        return [dict(item) for item in out]

    def _top_features_of(self, boards: Sequence[Board], hook_acts: Any) -> list[list[dict[str, Any]]] | None:
        """The trace's top SAE features of each board's unsteered answer-position activation.
        They depend only on the board, so they are kept per board (bounded like the reader's
        cache) and the SAE encodes only boards not seen before."""
        if self.sae is None or hook_acts is None or not self.top_k:
            return None
        found = [self._top_cache.get(b.code) for b in boards]
        missing = [i for i, f in enumerate(found) if f is None]
        if missing:
            feats = self.sae.encode(hook_acts[missing])
            for j, i in enumerate(missing):
                found[i] = top = self._top_features(feats[j])
                self._top_cache[boards[i].code] = top
            while len(self._top_cache) > self._top_cache_size:
                self._top_cache.popitem(last=False)
        return cast(list[list[dict[str, Any]]], found)  # cast: every None was filled in above

    def _top_features(self, acts: Any) -> list[dict[str, Any]]:
        """The trace's features of one activation row: with ``features.json``'s typical
        activations, the ``top_k`` furthest from their usual level (see :func:`usual_levels`),
        each with that level, its deviation and the cells it pushes toward; else the
        ``top_k`` strongest."""
        import torch

        k = min(self.top_k, acts.numel())
        levels = self._levels()
        if levels is None:
            vals, idx = torch.topk(acts, k)
            picked = [int(i) for v, i in zip(vals.tolist(), idx.tolist()) if v > 0]
        else:
            usual, typical = levels
            deviation = (acts - usual) / typical
            _, idx = torch.topk(deviation.abs(), k)
            picked = [int(i) for i in idx.tolist()]
        out = []
        for i in picked:
            item: dict[str, Any] = {"index": i, "activation": round(float(acts[i]), 3)}
            if levels is not None:
                item["usual"] = round(float(levels[0][i]), 3)
                item["deviation"] = round(float(deviation[i]), 3)
            entry = self.sae.features.labels.get(i) if self.sae and self.sae.features else None
            if isinstance(entry, dict):
                if entry.get("label"):
                    item["label"] = str(entry["label"])[:MAX_LABEL]
                if isinstance(entry.get("fire_rate"), (int, float)) and entry["fire_rate"] >= ALWAYS_ON_RATE:
                    item["always_on"] = True
                effect = entry.get("effect")
                if not isinstance(effect, dict):
                    effect = {}
                for key in ("promotes", "suppresses"):
                    cells = [c for c in effect.get(key) or [] if isinstance(c, int) and 1 <= c <= 9]
                    if cells:
                        item[key] = cells[:3]
            out.append(item)
        return out

    def _levels(self) -> tuple[Any, Any] | None:
        """(usual level, typical activation) of every feature as tensors, computed once."""
        if self._usual is None and self.sae is not None and self.sae.features is not None:
            import torch

            levels = usual_levels(
                self.sae.features, self.sae.d_sae, getattr(getattr(self.sae.sae, "cfg", None), "k", None)
            )
            if levels is not None:
                self._usual = (torch.tensor(levels[0]), torch.tensor(levels[1]).clamp_min(1e-6))
        return self._usual

    def stats(self) -> dict[str, Any]:
        return self.reader.stats()

    def close(self) -> None:
        self.reader.clear()
        self._top_cache.clear()


#: a labelled feature that fires on at least this share of game prompts is "always on" (traces flag it)
ALWAYS_ON_RATE = 0.95
#: feature labels in traces are cut here (with "…" added by the reader); features.json's are ≤ ~110
MAX_LABEL = 160


def usual_levels(info: Any, d_sae: int, k: int | None) -> tuple[list[float], list[float]] | None:
    """Each feature's usual level at the answer position and its typical activation.

    ``features.json`` gives the mean *non-zero* activation of every feature on game prompts
    (``typical_activation``) and, for labelled features, how often it fires (``fire_rate``).
    The usual level is their product, the mean activation over all prompts. An unlabelled
    feature's fire rate is not stored; a TopK SAE fires ``k`` of ``d_sae`` features at every
    position, so ``k / d_sae`` is its average (0 when ``k`` is unknown). A trace ranks features
    by ``(activation − usual) / typical``: how far from its usual level a feature is at this
    position, in units of its own typical activation (``None`` without typical activations).

    >>> from types import SimpleNamespace
    >>> info = SimpleNamespace(typical_activation=[10.0, 4.0], labels={0: {"fire_rate": 1.0}})
    >>> usual_levels(info, 2, 1)
    ([10.0, 2.0], [10.0, 4.0])
    """
    typical = getattr(info, "typical_activation", None)
    if not typical or len(typical) != d_sae:
        return None
    prior = k / d_sae if k else 0.0
    usual = []
    for i, t in enumerate(typical):
        entry = info.labels.get(i)
        rate = entry.get("fire_rate") if isinstance(entry, dict) else None
        rate = float(rate) if isinstance(rate, (int, float)) and 0 <= rate <= 1 else prior
        usual.append(t * rate)
    return usual, list(typical)


def _check_sae_and_policy(lm: "LanguageModel", sae: "LoadedSAE | None", policy: "SteeringPolicy | None") -> None:
    """A ``ValueError`` for a policy without its SAE, or an SAE or policy that does not fit
    the model."""
    from bots.llm.sae import check_compatible

    if policy is not None and sae is None:
        raise ValueError("a steering policy needs the SAE whose features it steers (--sae)")
    if sae is not None:
        check_compatible(sae, lm)
    if policy is not None:
        assert sae is not None  # a policy without its SAE is refused above
        policy.check_sae(sae.d_sae, sae.hook_name)


def _card_summary(policy: "SteeringPolicy") -> str:
    """``": <summary>"`` from the policy's run card (``<policy>.card.json``, key ``summary``:
    one line saying what the policy is and how far its results go), or ``""``."""
    import json
    from pathlib import Path

    source = getattr(policy, "source", "")
    card = Path(source).with_suffix(".card.json") if source else None
    try:
        summary = json.loads(card.read_text()).get("summary") if card is not None and card.is_file() else None
    except (OSError, ValueError, AttributeError):
        return ""
    return f": {summary}" if isinstance(summary, str) and summary else ""


def _best_cell(board: Board, logits: list[float], mode: str) -> int:
    """The cell :func:`read_move` picks from ``logits`` (same tie rule), without the softmax."""
    cells = range(1, 10) if mode == "strict" else board.legal_cells()
    return max(cells, key=lambda c: (logits[c - 1], -c))
