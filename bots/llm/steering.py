"""Steering along SAE features: coefficients → an addition to the residual stream at the hook.

For chosen features ``i`` with decoder rows ``W_dec[i]`` and typical activations ``s_i``,
a coefficient vector ``c`` adds ``Σ_i c_i · s_i · W_dec[i]`` at the SAE's hook point. With
the scale ``s_i`` a coefficient of 1 pushes a feature by about as much as it fires when it
is active, so coefficients in [-1, 1] are comparable pushes across features.

Which positions: only the answer position (the last prompt token, where the model
produces the cell digit). Everything the model read before is left as it is, so the
steering changes the decision, not the model's reading of the board; it is also what
makes the per-board cache valid (``bots.llm.llama_fast``). :func:`steering_hooks` can
steer every position too, for comparison (``docs/LLM_BOT.md`` has the measurement).

Each batch row has its own coefficient vector. Hooks are added and removed by a context
manager; weights are never modified.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

import torch

from bots.llm.hooks import SteeringError, steering_hooks

__all__ = [
    "SteeringError",
    "FeatureScales",
    "Steering",
    "feature_scales",
    "check_feature_indices",
    "steering_hooks",
    "kl_divergence",
]

if TYPE_CHECKING:
    from bots.llm.readers import AnswerReader
    from bots.llm.sae import LoadedSAE


@dataclass
class FeatureScales:
    """Typical activation of every SAE feature, and where the numbers came from."""

    values: torch.Tensor  # [d_sae]
    source: str


def check_feature_indices(features: Sequence[int], d_sae: int, where: str = "steering") -> list[int]:
    out = []
    for f in features:
        if isinstance(f, bool) or not isinstance(f, int):
            raise SteeringError(f"{where}: feature index {f!r} is not an integer")
        if not 0 <= f < d_sae:
            raise SteeringError(f"{where}: feature index {f} is out of range; the SAE has features 0..{d_sae - 1}")
        out.append(f)
    if len(set(out)) != len(out):
        dup = sorted({f for f in out if out.count(f) > 1})
        raise SteeringError(f"{where}: feature indices repeat: {dup}")
    return out


def feature_scales(sae: "LoadedSAE", reader: "AnswerReader | None" = None, n_boards: int = 32) -> FeatureScales:
    """Each feature's typical activation: from ``features.json`` when the SAE ships one,
    else calibrated here on ``n_boards`` fixed positions (mean activation where the
    feature is active; features never active get the median of the others)."""
    info = sae.features
    if info is not None and info.typical_activation is not None:
        vals = torch.tensor(info.typical_activation, dtype=torch.float32)
        # a feature that never fired in labelling still needs a usable push
        positive = vals[vals > 0]
        fill = positive.median() if positive.numel() else torch.tensor(1.0)
        return FeatureScales(torch.where(vals > 0, vals, fill), f"typical_activation from {info.path}")
    if reader is None:
        raise SteeringError(
            f"the SAE {sae.source} ships no features.json with typical activations, and no model "
            "was given to calibrate them"
        )
    from server.game import reachable_positions

    boards = sorted((b for b in reachable_positions() if not b.is_over), key=lambda b: b.code)
    step = max(1, len(boards) // n_boards)
    sample = boards[::step][:n_boards]
    acts = []
    for i in range(0, len(sample), 8):
        batch = reader.answer(sample[i : i + 8])
        assert batch.hook_acts is not None  # the reader reads at the SAE's hook
        acts.append(sae.encode(batch.hook_acts))
    a = torch.cat(acts)
    active = a > 0
    counts = active.sum(0)
    means = torch.where(counts > 0, (a * active).sum(0) / counts.clamp(min=1), torch.zeros(()))
    positive = means[counts > 0]
    fill = positive.median() if positive.numel() else torch.tensor(1.0)
    vals = torch.where(counts > 0, means, fill)
    return FeatureScales(vals, f"calibrated on {len(sample)} game positions (no features.json found)")


class Steering:
    """Maps coefficient vectors over ``features`` to vectors added at the SAE's hook point."""

    def __init__(
        self, sae: "LoadedSAE", features: Sequence[int], scales: FeatureScales, directions: torch.Tensor | None = None
    ) -> None:
        self.sae = sae
        self.features = check_feature_indices(list(features), sae.d_sae)
        if scales.values.shape != (sae.d_sae,):
            raise SteeringError(f"feature scales have shape {tuple(scales.values.shape)}, expected ({sae.d_sae},)")
        idx = torch.tensor(self.features, dtype=torch.long)
        self.scales = scales.values.index_select(0, idx).float()  # [n]
        self.directions = sae.W_dec.index_select(0, idx).float()  # [n, d_in]
        #: True when ``directions`` replaced the decoder rows (a control: directions that are
        #: not SAE features); traces then name no feature labels
        self.replaced = directions is not None
        if directions is not None:
            directions = torch.as_tensor(directions, dtype=torch.float32)
            if directions.shape != self.directions.shape:
                raise SteeringError(
                    f"replacement directions have shape {tuple(directions.shape)}, "
                    f"expected {tuple(self.directions.shape)}"
                )
            self.directions = directions
        self.scale_source = scales.source

    @property
    def n_features(self) -> int:
        return len(self.features)

    def check_coefficients(self, coefs: torch.Tensor | Sequence[Sequence[float]]) -> torch.Tensor:
        coefs = torch.as_tensor(coefs, dtype=torch.float32)
        if coefs.ndim == 1:
            coefs = coefs[None]
        if coefs.ndim != 2 or coefs.shape[1] != self.n_features:
            raise SteeringError(f"coefficients have shape {tuple(coefs.shape)}; expected [batch, {self.n_features}]")
        if not bool(coefs.isfinite().all()):
            raise SteeringError("coefficients must be finite numbers")
        return coefs

    def vectors(self, coefs: torch.Tensor, check: bool = True) -> torch.Tensor:
        """``[B, n_features]`` coefficients → ``[B, d_in]`` additions (``check=False``: the
        caller already passed them through :meth:`check_coefficients`)."""
        if check:
            coefs = self.check_coefficients(coefs)
        return (coefs * self.scales) @ self.directions

    def describe(self, coefs: Sequence[float], digits: int = 3) -> list[dict[str, Any]]:
        """The steering of one move, for traces: feature, label (if known), coefficient."""
        out = []
        for f, c in zip(self.features, coefs):
            item: dict[str, Any] = {"index": f, "coefficient": round(float(c), digits)}
            label = None if self.replaced else self.sae.label(f)
            if self.replaced:
                item["direction"] = "random (not an SAE feature)"
            if label:
                item["label"] = label[:160]
            out.append(item)
        return out


def kl_divergence(p_logits: torch.Tensor, q_logits: torch.Tensor) -> torch.Tensor:
    """KL(p ‖ q) per row between the softmax distributions of two ``[B, 9]`` logit sets (nats)."""
    lp = torch.log_softmax(p_logits.float(), -1)
    lq = torch.log_softmax(q_logits.float(), -1)
    return (lp.exp() * (lp - lq)).sum(-1)
