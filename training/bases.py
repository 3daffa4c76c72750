"""What a steering fitter may steer with: a :class:`Basis` of K SAE features, or K
directions standing in for them (``autosteer-train controls`` compares fits on each):

* ``policy features``: the policy's own features (the fit re-run: how much the seed matters);
* ``random SAE features``: K SAE features drawn at random (seeded), none of the policy's;
* ``random directions``: K random directions in the residual stream that are not SAE
  features, each with the norm of the decoder row of the policy feature it stands in for
  (so a coefficient pushes as hard); the largest |cosine| with any SAE decoder row is reported;
* ``shuffled labels``: the labels permuted among the labelled features, then features
  picked by label exactly as the search picks them (``vector_search.pick_features``).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, Callable, Sequence

BASES = ("policy", "features", "directions", "labels")
BASIS_NAMES = {
    "policy": "policy features",
    "features": "random SAE features",
    "directions": "random directions",
    "labels": "shuffled labels",
}


@dataclass
class Basis:
    """What a fitter may steer with: K SAE features, or K directions standing in for them."""

    name: str
    features: list[int]  # SAE feature indices (for ``directions``: the features whose norms they take)
    directions: Any = None  # [K, d_model] replacing the decoder rows; None = the SAE's own
    note: str = ""

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "features": list(self.features),
            "directions": self.directions is not None,
            "note": self.note,
        }


def random_feature_basis(sae: Any, k: int, seed: int, exclude: Sequence[int] = ()) -> Basis:
    """K SAE features drawn uniformly (seeded) among those not in ``exclude``."""
    pool = [i for i in range(sae.d_sae) if i not in set(exclude)]
    if len(pool) < k:
        raise ValueError(f"the SAE has {len(pool)} features outside the policy's, fewer than the {k} needed")
    return Basis(
        BASIS_NAMES["features"],
        random.Random(f"features-{seed}").sample(pool, k),
        note=f"{k} of {len(pool)} SAE features outside the policy's, drawn with seed {seed}",
    )


def random_direction_basis(sae: Any, features: Sequence[int], seed: int) -> Basis:
    """K random residual directions (seeded Gaussian), direction j scaled to the norm of the
    decoder row of ``features[j]``; the note gives the largest |cosine| with any decoder row."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    W = sae.W_dec.detach().float()
    rows = W.index_select(0, torch.tensor(list(features), dtype=torch.long))
    d = torch.randn(len(features), W.shape[1], generator=gen)
    d = d / d.norm(dim=-1, keepdim=True) * rows.norm(dim=-1, keepdim=True)
    cos = (torch.nn.functional.normalize(d, dim=-1) @ torch.nn.functional.normalize(W, dim=-1).T).abs().max()
    return Basis(
        BASIS_NAMES["directions"],
        list(features),
        directions=d,
        note=f"{len(features)} Gaussian directions (seed {seed}), norms of the policy features' decoder rows; "
        f"max |cos| with any of the {W.shape[0]} SAE decoder rows {float(cos):.3f}",
    )


def shuffled_label_basis(sae: Any, k: int, seed: int, picker: Callable[[Any, int], list[int]] | None = None) -> Basis:
    """Features picked by label (``picker``, default ``vector_search.pick_features``) after
    the labels were permuted (seeded) among the labelled features."""
    from training.vector_search import pick_features

    info = getattr(sae, "features", None)
    labels = dict(getattr(info, "labels", {}) or {})
    if len(labels) < 2:
        raise ValueError("the SAE has fewer than two labelled features: there are no labels to shuffle")
    keys = sorted(labels)
    moved = keys[:]
    random.Random(f"labels-{seed}").shuffle(moved)
    shuffled = {new: labels[old] for old, new in zip(keys, moved)}
    view = SimpleNamespace(
        features=SimpleNamespace(labels=shuffled, typical_activation=getattr(info, "typical_activation", None)),
        d_sae=sae.d_sae,
    )
    picked = (picker or pick_features)(view, k)
    return Basis(
        BASIS_NAMES["labels"],
        picked,
        note=f"labels of {len(keys)} labelled features permuted (seed {seed}), then {k} picked by label",
    )


def make_basis(
    kind: str, sae: Any, policy: Any, seed: int, picker: Callable[[Any, int], list[int]] | None = None
) -> Basis:
    features = list(policy.features)
    if kind == "policy":
        return Basis(BASIS_NAMES["policy"], features, note="the policy's own features")
    if kind == "features":
        return random_feature_basis(sae, len(features), seed, exclude=features)
    if kind == "directions":
        return random_direction_basis(sae, features, seed)
    if kind == "labels":
        return shuffled_label_basis(sae, len(features), seed, picker)
    raise ValueError(f"unknown basis {kind!r}; expected one of {', '.join(BASES)}")
