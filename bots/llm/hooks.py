"""The TransformerLens hook that adds a steering vector to the residual stream: at the
answer position (the last real token of each row) or at every real position.

The lowest layer of steering: it knows nothing of SAEs, policies or readers, so the answer
readers (``bots.llm.readers``), the steering maths (``bots.llm.steering``) and reports can all
use it. The hook is added and removed by a context manager; weights are never modified.
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator

import torch


class SteeringError(ValueError):
    """Bad features or coefficients; the message names the bad value."""


@contextlib.contextmanager
def steering_hooks(
    model: Any,
    hook_name: str,
    added: torch.Tensor | None,
    lengths: torch.Tensor,
    positions: str = "last",
    capture: dict[str, torch.Tensor] | None = None,
) -> Iterator[None]:
    """Add ``added[b]`` at ``hook_name`` for row ``b`` of a right-padded batch whose real
    lengths are ``lengths``: at the last real position (``positions="last"``) or at every
    real position (``"all"``). ``capture["act"]`` receives the unsteered activation at the
    last position. The hook is removed when the block ends, also on error."""
    if positions not in ("last", "all"):
        raise SteeringError(f"unknown steering positions {positions!r}; expected last or all")
    rows = torch.arange(len(lengths))
    last = lengths - 1

    def hook(act: torch.Tensor, hook: Any = None) -> torch.Tensor:
        if capture is not None:
            capture["act"] = act[rows, last].detach().clone()
        if added is None:
            return act
        vec = added.to(act.dtype)
        if positions == "last":
            act = act.clone()
            act[rows, last] = act[rows, last] + vec
            return act
        valid = (torch.arange(act.shape[1])[None, :] < lengths[:, None]).to(act.dtype)
        return act + vec[:, None, :] * valid[..., None]

    with model.hooks(fwd_hooks=[(hook_name, hook)]):
        yield
