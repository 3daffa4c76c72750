"""The contract every steering policy kind meets (:class:`SteeringPolicy`), its error type,
and the checks of the fields all policy files share. Policy kinds (``bots/llm/policy.py``'s
fixed vector, ``bots/llm/learned.py``'s learned MLP) build on this module; the loader in
``bots/llm/policy.py`` knows them all.

Pure Python: no torch at import time.
"""

from __future__ import annotations

import abc
import hashlib
import json
from pathlib import Path
from typing import Any, Sequence

from server.game import Board


class PolicyError(ValueError):
    """A malformed or incompatible policy file; the message names the file and the value."""


class SteeringPolicy(abc.ABC):
    """Chooses steering coefficients over a fixed list of SAE features for each board."""

    kind: str = "?"

    def __init__(
        self, features: Sequence[int], *, source: str = "", hook_name: str | None = None, d_sae: int | None = None
    ) -> None:
        self.features = tuple(features)
        self.source = source
        self.hook_name = hook_name
        self.d_sae = d_sae

    @property
    def needs_features(self) -> bool:
        """True when :meth:`coefficients` reads the model's own representation: the bot then
        passes ``features``, the unsteered SAE activations ``[B, d_sae]`` of the boards."""
        return False

    @abc.abstractmethod
    def coefficients(self, boards: Sequence[Board], features: Any = None) -> list[list[float]]:
        """One coefficient vector (``len(features)`` floats) per board; ``features`` are the
        boards' unsteered SAE activations when :attr:`needs_features` (else unused)."""

    @abc.abstractmethod
    def to_dict(self) -> dict[str, Any]:
        """The JSON content of this policy."""

    @property
    def digest(self) -> str:
        canon = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canon.encode()).hexdigest()[:16]

    def check_sae(self, d_sae: int, hook_name: str) -> None:
        """Raise :class:`PolicyError` unless the policy fits an SAE with ``d_sae`` features at ``hook_name``."""
        where = self.source or "policy"
        if self.hook_name is not None and self.hook_name != hook_name:
            raise PolicyError(f"{where} was made for an SAE at {self.hook_name!r}, but the SAE is at {hook_name!r}")
        if self.d_sae is not None and self.d_sae != d_sae:
            raise PolicyError(f"{where} was made for an SAE with {self.d_sae} features, but this SAE has {d_sae}")
        for f in self.features:
            if not 0 <= f < d_sae:
                raise PolicyError(f"{where}: feature index {f} is out of range; the SAE has features 0..{d_sae - 1}")

    def sae_fields(self) -> dict[str, Any]:
        """The optional ``hook_name``/``d_sae`` of the policy's JSON (what :func:`common_fields` reads)."""
        out: dict[str, Any] = {}
        if self.hook_name is not None:
            out["hook_name"] = self.hook_name
        if self.d_sae is not None:
            out["d_sae"] = self.d_sae
        return out

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")


def feature_list(value: Any, source: str) -> list[int]:
    if not isinstance(value, list) or not value:
        raise PolicyError(f"{source}: 'features' must be a non-empty list of feature indices")
    for f in value:
        if isinstance(f, bool) or not isinstance(f, int):
            raise PolicyError(f"{source}: feature index {f!r} is not an integer")
        if f < 0:
            raise PolicyError(f"{source}: feature index {f} is negative")
    if len(set(value)) != len(value):
        raise PolicyError(f"{source}: feature indices repeat: {sorted({f for f in value if value.count(f) > 1})}")
    return list(value)


def common_fields(data: dict[str, Any], source: str) -> dict[str, Any]:
    hook = data.get("hook_name")
    d_sae = data.get("d_sae")
    if hook is not None and not isinstance(hook, str):
        raise PolicyError(f"{source}: 'hook_name' must be a string")
    if d_sae is not None and (isinstance(d_sae, bool) or not isinstance(d_sae, int) or d_sae < 1):
        raise PolicyError(f"{source}: 'd_sae' must be a positive integer")
    return {"source": source, "hook_name": hook, "d_sae": d_sae}
