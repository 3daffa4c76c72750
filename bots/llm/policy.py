"""Steering policies: which SAE features to steer, and with which coefficients on a board.

A policy file is JSON. The simplest kind is a fixed coefficient vector, the same on every
board::

    {"kind": "fixed", "features": [12, 40], "coefficients": [0.5, -0.25],
     "hook_name": "blocks.15.hook_resid_pre", "d_sae": 2048}

(``kind`` defaults to ``fixed``; ``hook_name``/``d_sae`` are optional and checked against
the SAE when present). Other kinds, such as a learned state-dependent policy, register a
loader with :func:`register_policy_kind`; their JSON names its kind and whatever files
it needs; ``learned`` (``bots/llm/learned.py``, trained by ``autosteer-train ppo``) is an
MLP from an observation of the position to the move's steering. Every policy has a ``digest`` (sha256 of its canonical content) that results
and traces report, so the policy evaluated is provably the one trained.

Pure Python: no torch at import time.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Callable, Sequence

from bots.llm.policy_base import PolicyError, SteeringPolicy, common_fields, feature_list
from server.game import Board

__all__ = [
    "PolicyError",
    "SteeringPolicy",
    "FixedSteeringPolicy",
    "POLICY_KINDS",
    "register_policy_kind",
    "load_policy",
]


class FixedSteeringPolicy(SteeringPolicy):
    """The same coefficient vector on every board.

    >>> p = FixedSteeringPolicy([3, 7], [0.5, -1.0])
    >>> p.coefficients([Board.empty()])
    [[0.5, -1.0]]
    """

    kind = "fixed"

    def __init__(self, features: Sequence[int], coefficients: Sequence[float], **kw: Any) -> None:
        super().__init__(features, **kw)
        self.coefs = [float(c) for c in coefficients]
        if len(self.coefs) != len(self.features):
            raise PolicyError(
                f"{self.source or 'policy'}: {len(self.features)} features but {len(self.coefs)} coefficients"
            )

    def coefficients(self, boards: Sequence[Board], features: Any = None) -> list[list[float]]:
        return [list(self.coefs) for _ in boards]

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "features": list(self.features), "coefficients": self.coefs}
        return out | self.sae_fields()

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str) -> "FixedSteeringPolicy":
        features = feature_list(data.get("features"), source)
        coefs = data.get("coefficients")
        if not isinstance(coefs, list):
            raise PolicyError(f"{source}: 'coefficients' must be a list of numbers, got {type(coefs).__name__}")
        for c in coefs:
            if isinstance(c, bool) or not isinstance(c, (int, float)) or not math.isfinite(c):
                raise PolicyError(f"{source}: coefficient {c!r} is not a finite number")
        if len(coefs) != len(features):
            raise PolicyError(f"{source}: {len(features)} features but {len(coefs)} coefficients")
        return cls(features, coefs, **common_fields(data, source))


def _load_learned(data: dict[str, Any], source: str) -> SteeringPolicy:
    from bots.llm.learned import LearnedSteeringPolicy  # numpy, loaded only when a learned policy is

    return LearnedSteeringPolicy.from_dict(data, source)


PolicyLoader = Callable[[dict[str, Any], str], SteeringPolicy]
POLICY_KINDS: dict[str, PolicyLoader] = {"fixed": FixedSteeringPolicy.from_dict, "learned": _load_learned}


def register_policy_kind(kind: str, loader: PolicyLoader) -> None:
    """Let :func:`load_policy` read policy files of ``kind`` (e.g. learned policies)."""
    POLICY_KINDS[kind] = loader


def load_policy(path: str | Path, *, d_sae: int | None = None, hook_name: str | None = None) -> SteeringPolicy:
    """Read a policy file; with ``d_sae``/``hook_name`` also check it fits the SAE."""
    p = Path(path)
    source = str(p)
    try:
        data = json.loads(p.read_text())
    except FileNotFoundError:
        raise PolicyError(f"policy file {source} does not exist") from None
    except IsADirectoryError:
        raise PolicyError(f"{source} is a folder; give the policy's JSON file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise PolicyError(f"{source} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise PolicyError(f"{source} must hold a JSON object, got {type(data).__name__}")
    kind = data.get("kind", "fixed")
    loader = POLICY_KINDS.get(kind) if isinstance(kind, str) else None
    if loader is None:
        raise PolicyError(f"{source}: unknown policy kind {kind!r}; known: {', '.join(sorted(POLICY_KINDS))}")
    policy = loader(data, source)
    if d_sae is not None:
        policy.check_sae(d_sae, hook_name or policy.hook_name or "")
    return policy
