"""An LLM move's trace, read tolerantly: top SAE features, steering deltas, cell probabilities.

A bot attaches a trace (any JSON object) to a move; the server relays it unchanged. Every
field is optional and a trace from another bot or a later version may carry odd values,
so :func:`parse_trace` keeps what it can read and drops the rest instead of failing.

>>> t = parse_trace({"top_features": [{"index": 7, "activation": 2.5, "label": "centre free"}],
...                  "steering": [{"index": 7, "coefficient": -0.5}],
...                  "cell_probs": {"5": 0.9, "1": 0.1}, "chosen": 5})
>>> t.top_features[0].label, t.steering[0].sign_symbol, t.cell_probs[5], t.chosen
('centre free', '▼', 0.9, 5)
>>> parse_trace("not a dict") is None
True
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class FeatureActivation:
    """One SAE feature that fired at the answer position."""

    index: int | None
    activation: float
    label: str = ""
    #: the feature's usual level at the answer position (its mean over game prompts), if the bot knows it
    usual: float | None = None
    #: (activation − usual) / typical activation: how far from its usual level it is here
    deviation: float | None = None
    #: it fires on (nearly) every game prompt, so its presence says little
    always_on: bool = False
    #: cells whose probability steering this feature up raises / lowers (its label's measured effect)
    promotes: tuple[int, ...] = ()
    suppresses: tuple[int, ...] = ()

    @property
    def name(self) -> str:
        """``#123 label`` (or just one of them when the other is missing)."""
        idx = f"#{self.index}" if self.index is not None else ""
        return " ".join(p for p in (idx, self.label) if p) or "?"

    @property
    def rank_key(self) -> float:
        """Larger first: distance from the usual level when known, else the activation."""
        return abs(self.deviation) if self.deviation is not None else abs(self.activation)


@dataclass(frozen=True, slots=True)
class SteeringDelta:
    """The coefficient the steering policy added along one controlled feature."""

    index: int | None
    coefficient: float
    label: str = ""

    @property
    def name(self) -> str:
        idx = f"#{self.index}" if self.index is not None else ""
        return " ".join(p for p in (idx, self.label) if p) or "?"

    @property
    def sign_symbol(self) -> str:
        """▲ pushes the feature up, ▼ pushes it down, ● leaves it (zero)."""
        if self.coefficient > 0:
            return "▲"
        if self.coefficient < 0:
            return "▼"
        return "●"


@dataclass(frozen=True, slots=True)
class MoveTrace:
    """What the LLM bot reported about one of its moves."""

    model: str = ""
    mode: str = ""
    hook: str = ""
    top_features: tuple[FeatureActivation, ...] = ()
    steering: tuple[SteeringDelta, ...] = ()
    cell_probs: dict[int, float] = field(default_factory=dict)
    chosen: int | None = None
    legal: bool | None = None
    #: how hard the policy steered: mean |coefficient|, added-vector norm / residual norm,
    #: and KL divergence of the move distribution from the unsteered one (any may be missing)
    strength: dict[str, float] = field(default_factory=dict)
    policy: str = ""

    @property
    def is_empty(self) -> bool:
        return not (
            self.model
            or self.mode
            or self.hook
            or self.top_features
            or self.steering
            or self.cell_probs
            or self.chosen is not None
        )

    @property
    def steering_l1(self) -> float:
        """Sum of |coefficient| over the controlled features (how hard the policy steers)."""
        return sum(abs(s.coefficient) for s in self.steering)


def _as_float(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                return None
        else:
            return None
    value = float(value)
    return value if math.isfinite(value) else None


def _as_index(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().isdecimal():
        return int(value.strip())
    return None


def _as_text(value: Any, limit: int = 120) -> str:
    """One line of text, cut at ``limit`` characters with a visible "…"."""
    if value is None:
        return ""
    text = " ".join(str(value).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _cells(value: Any) -> tuple[int, ...]:
    return tuple(c for c in (_cell(v) for v in _as_list(value)[:9]) if c is not None)


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _cell(value: Any) -> int | None:
    cell = _as_index(value)
    return cell if cell is not None and 1 <= cell <= 9 else None


def parse_trace(raw: Any) -> MoveTrace | None:
    """Read a trace object; ``None`` when there is no trace or nothing usable in it."""
    if not isinstance(raw, dict):
        return None
    features: list[FeatureActivation] = []
    for item in _as_list(raw.get("top_features")):
        if not isinstance(item, dict):
            continue
        act = _as_float(item.get("activation"))
        if act is None:
            continue
        features.append(
            FeatureActivation(
                _as_index(item.get("index")),
                act,
                _as_text(item.get("label"), 200),
                usual=_as_float(item.get("usual")),
                deviation=_as_float(item.get("deviation")),
                always_on=item.get("always_on") is True,
                promotes=_cells(item.get("promotes")),
                suppresses=_cells(item.get("suppresses")),
            )
        )
    steering: list[SteeringDelta] = []
    for item in _as_list(raw.get("steering")):
        if not isinstance(item, dict):
            continue
        coef = _as_float(item.get("coefficient"))
        if coef is None:
            continue
        steering.append(SteeringDelta(_as_index(item.get("index")), coef, _as_text(item.get("label"), 200)))
    probs: dict[int, float] = {}
    raw_probs = raw.get("cell_probs")
    if isinstance(raw_probs, dict):
        for key, value in raw_probs.items():
            cell, p = _cell(key), _as_float(value)
            if cell is not None and p is not None:
                probs[cell] = min(max(p, 0.0), 1.0)
    elif isinstance(raw_probs, list) and len(raw_probs) == 9:  # a plain list for cells 1-9
        for i, value in enumerate(raw_probs):
            p = _as_float(value)
            if p is not None:
                probs[i + 1] = min(max(p, 0.0), 1.0)
    legal = raw.get("legal")
    strength: dict[str, float] = {}
    if isinstance(raw.get("strength"), dict):
        for key in ("mean_abs_coef", "norm_ratio", "kl"):
            value = _as_float(raw["strength"].get(key))
            if value is not None:
                strength[key] = value
    trace = MoveTrace(
        model=_as_text(raw.get("model"), 60),
        mode=_as_text(raw.get("mode"), 30),
        hook=_as_text(raw.get("hook"), 60),
        top_features=tuple(sorted(features, key=lambda f: -f.rank_key)),
        steering=tuple(steering),
        cell_probs=dict(sorted(probs.items())),
        chosen=_cell(raw.get("chosen")),
        legal=legal if isinstance(legal, bool) else None,
        strength=strength,
        policy=_as_text(raw.get("policy"), 40),
    )
    return None if trace.is_empty else trace


def short_hook(hook: str) -> str:
    """``blocks.15.hook_resid_post`` → ``L15 resid_post`` (other names unchanged).

    >>> short_hook("blocks.15.hook_resid_post")
    'L15 resid_post'
    """
    parts = hook.split(".")
    if len(parts) == 3 and parts[0] == "blocks" and parts[1].isdigit() and parts[2].startswith("hook_"):
        return f"L{parts[1]} {parts[2][5:]}"
    return hook
