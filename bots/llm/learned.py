"""A learned, board-dependent steering policy: a small MLP that reads an observation of the
position and picks the steering of this move (policy kind ``learned``).

Trained by ``autosteer-train ppo`` (``training/rl``) with stable-baselines3 PPO, shipped as
JSON (the MLP's weights), and run here with numpy only, so the bot needs neither SB3 nor
torch to pick its coefficients. The same module defines what the policy sees and how its
action becomes coefficients, so training and play cannot drift apart:

* **Observations** (``obs``):
  ``board``: 27 numbers, for each cell one-hot (mine, theirs, empty) from the side to move,
  then 1.0 if the side to move is X else 0.0 (28 in all).
  ``features``: ``log1p`` of the unsteered SAE activations of the labelled features at the
  answer position (the policy reads the model's own representation), then the side bit.
  ``board+model``: the board's 28, then the model's own unsteered move distribution over
  the nine cells (softmax of the cell digits' logits): what the model would play if left
  alone, in whatever phrasing it was asked (37 in all).
* **Actions** (``action``):
  ``sparse``: ``slots`` choices, each one categorical over "no steering" (0) and every
  (feature, strength) pair: choice ``1 + k·S + s`` steers ``features[k]`` with coefficient
  ``strengths[s]`` (``S`` strengths). At most ``slots`` distinct features per move: a later
  slot that names a feature an earlier slot already steers is dropped, so every
  coefficient applied is one of ``strengths``. One joint choice
  per slot, not a feature head and a strength head: independent heads' argmaxes can pair a
  feature with a strength that was only ever good for another feature.
  ``dense``: one number in [-1, 1] per feature, times ``bound``.

The action played is the deterministic one: the argmax of each categorical head (sparse)
or the clipped mean (dense), exactly what SB3's ``predict(deterministic=True)`` returns.

>>> import numpy as np
>>> codec = ActionCodec("sparse", n_features=3, strengths=(-2.0, 2.0), slots=1)
>>> codec.nvec, codec.coefficients(np.array([[0], [4], [5]])).tolist()
([7], [[0.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, -2.0]])
>>> two = ActionCodec("sparse", n_features=3, strengths=(-2.0, 2.0), slots=2)
>>> two.coefficients(np.array([[4, 3], [4, 1]])).tolist()  # the same feature twice: the second slot is dropped
[[0.0, 2.0, 0.0], [-2.0, 2.0, 0.0]]
>>> board_observation(Board.from_moves([5])).reshape(-1)[12:15].tolist()  # cell 5: theirs (O to move)
[0.0, 1.0, 0.0]
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import numpy as np

from bots.llm.policy_base import PolicyError, SteeringPolicy, common_fields, feature_list
from server.game import Board, Seat

OBSERVATIONS: tuple[str, ...] = ("board", "features", "board+model")
ACTIONS: tuple[str, ...] = ("sparse", "dense")
BOARD_OBS_SIZE = 28
MODEL_OBS_SIZE = BOARD_OBS_SIZE + 9
ACTIVATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {"tanh": np.tanh, "relu": lambda x: np.maximum(x, 0.0)}


def board_observation(board: Board) -> np.ndarray:
    """``[28]`` float32: (mine, theirs, empty) per cell from the side to move, then the side bit."""
    me = board.turn
    out = np.zeros(BOARD_OBS_SIZE, dtype=np.float32)
    for cell in range(1, 10):
        piece = board[cell]
        out[3 * (cell - 1) + (2 if piece is None else 0 if piece is me else 1)] = 1.0
    out[27] = 1.0 if me is Seat.X else 0.0
    return out


def board_model_observation(board: Board, cell_logits: Sequence[float]) -> np.ndarray:
    """``[37]`` float32: :func:`board_observation`, then the softmax of the nine cell logits.

    >>> obs = board_model_observation(Board.empty(), [0.0] * 8 + [np.log(2.0)])
    >>> obs.shape, round(float(obs[28:].sum()), 6), round(float(obs[-1]), 3)
    ((37,), 1.0, 0.2)
    """
    z = np.asarray(cell_logits, dtype=np.float64).reshape(-1)
    if z.shape != (9,):
        raise PolicyError(f"the model observation needs the nine cell logits, got {z.shape[0]} numbers")
    p = np.exp(z - z.max())
    return np.concatenate([board_observation(board), (p / p.sum()).astype(np.float32)]).astype(np.float32)


def feature_observation(board: Board, activations: np.ndarray) -> np.ndarray:
    """``[n + 1]`` float32: ``log1p`` of the (selected) SAE activations, then the side bit."""
    acts = np.asarray(activations, dtype=np.float32).reshape(-1)
    return np.concatenate([np.log1p(np.maximum(acts, 0.0)), [1.0 if board.turn is Seat.X else 0.0]]).astype(np.float32)


class ActionCodec:
    """Turns a policy action into one coefficient vector over ``n_features`` features."""

    def __init__(
        self,
        kind: str,
        n_features: int,
        *,
        strengths: Sequence[float] = (-8, -4, -2, -1, 1, 2, 4, 8),
        slots: int = 1,
        bound: float = 4.0,
    ) -> None:
        if kind not in ACTIONS:
            raise PolicyError(f"unknown action kind {kind!r}; expected one of {', '.join(ACTIONS)}")
        if n_features < 1:
            raise PolicyError("an action needs at least one feature to steer")
        self.kind = kind
        self.n_features = n_features
        self.strengths = tuple(float(s) for s in strengths)
        self.slots = int(slots)
        self.bound = float(bound)
        if kind == "sparse" and (not self.strengths or self.slots < 1):
            raise PolicyError("a sparse action needs at least one strength and one slot")
        if kind == "dense" and not (self.bound > 0 and math.isfinite(self.bound)):
            raise PolicyError(f"a dense action needs a positive bound, got {bound}")

    @property
    def nvec(self) -> list[int]:
        """Sizes of the categorical heads (sparse)."""
        return [1 + self.n_features * len(self.strengths)] * self.slots

    def coefficients(self, actions: np.ndarray) -> np.ndarray:
        """``[B, action]`` → ``[B, n_features]`` float32 coefficients."""
        a = np.asarray(actions)
        if a.ndim == 1:
            a = a[None]
        out = np.zeros((a.shape[0], self.n_features), dtype=np.float32)
        if self.kind == "dense":
            return (np.clip(a.astype(np.float32), -1.0, 1.0) * self.bound).astype(np.float32)
        strengths = np.asarray(self.strengths, dtype=np.float32)
        S = len(self.strengths)
        for slot in range(self.slots):
            choice = a[:, slot].astype(np.int64)
            rows = np.nonzero(choice > 0)[0]
            feats = (choice[rows] - 1) // S
            free = out[rows, feats] == 0.0  # distinct features: a repeated one is dropped
            out[rows[free], feats[free]] = strengths[(choice[rows[free]] - 1) % S]
        return out

    def to_dict(self) -> dict[str, Any]:
        if self.kind == "dense":
            return {"kind": "dense", "bound": self.bound}
        return {"kind": "sparse", "strengths": list(self.strengths), "slots": self.slots}

    @classmethod
    def from_dict(cls, data: Any, n_features: int, source: str) -> "ActionCodec":
        if not isinstance(data, dict) or data.get("kind") not in ACTIONS:
            raise PolicyError(f"{source}: 'action' must be an object with kind sparse or dense")
        try:
            if data["kind"] == "dense":
                return cls("dense", n_features, bound=float(data["bound"]))
            return cls("sparse", n_features, strengths=[float(s) for s in data["strengths"]], slots=int(data["slots"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise PolicyError(f"{source}: bad 'action': {exc}") from None


class MLP:
    """A feed-forward net as numpy arrays: hidden layers with ``activation``, a linear head."""

    def __init__(self, layers: Sequence[tuple[np.ndarray, np.ndarray]], activation: str = "tanh") -> None:
        if activation not in ACTIVATIONS:
            raise PolicyError(f"unknown activation {activation!r}; expected one of {', '.join(ACTIVATIONS)}")
        self.layers = [(np.asarray(w, dtype=np.float32), np.asarray(b, dtype=np.float32)) for w, b in layers]
        self.activation = activation
        for (w, b), nxt in zip(self.layers, self.layers[1:] + [None]):
            if w.ndim != 2 or b.shape != (w.shape[0],):
                raise PolicyError(f"layer weight {w.shape} and bias {b.shape} do not fit")
            if nxt is not None and nxt[0].shape[1] != w.shape[0]:
                raise PolicyError(f"layer of {w.shape[0]} outputs feeds a layer of {nxt[0].shape[1]} inputs")

    @property
    def n_inputs(self) -> int:
        return int(self.layers[0][0].shape[1])

    @property
    def n_outputs(self) -> int:
        return int(self.layers[-1][0].shape[0])

    def __call__(self, x: np.ndarray) -> np.ndarray:
        act = ACTIVATIONS[self.activation]
        h = np.asarray(x, dtype=np.float32)
        for i, (w, b) in enumerate(self.layers):
            h = h @ w.T + b
            if i < len(self.layers) - 1:
                h = act(h)
        return h

    def to_list(self) -> list[dict[str, Any]]:
        """The layers for JSON: float32 bytes in base64 (exact and compact: a few hundred KB)."""
        return [{"shape": list(w.shape), "weight_f32": _b64(w), "bias_f32": _b64(b)} for w, b in self.layers]


def _b64(a: np.ndarray) -> str:
    import base64

    return base64.b64encode(np.ascontiguousarray(a, dtype="<f4").tobytes()).decode("ascii")


def _layer_arrays(layer: Any) -> tuple[np.ndarray, np.ndarray]:
    """One layer from JSON: ``{shape, weight_f32, bias_f32}`` (base64 float32) or
    ``{weight, bias}`` (nested lists)."""
    import base64

    if "weight_f32" in layer:
        shape = [int(n) for n in layer["shape"]]
        w = np.frombuffer(base64.b64decode(layer["weight_f32"], validate=True), dtype="<f4").astype(np.float32)
        b = np.frombuffer(base64.b64decode(layer["bias_f32"], validate=True), dtype="<f4").astype(np.float32)
        return w.reshape(shape), b
    return np.asarray(layer["weight"], dtype=np.float32), np.asarray(layer["bias"], dtype=np.float32)


class LearnedSteeringPolicy(SteeringPolicy):
    """An MLP from an observation of the position to the steering of the move.

    ``needs_features`` is true for the ``features`` observation: the bot then passes the
    unsteered SAE activations (``[B, d_sae]``) to :meth:`coefficients`."""

    kind = "learned"

    def __init__(
        self,
        features: Sequence[int],
        *,
        obs: str,
        codec: ActionCodec,
        net: MLP,
        obs_features: Sequence[int] = (),
        **kw: Any,
    ) -> None:
        super().__init__(features, **kw)
        if obs not in OBSERVATIONS:
            raise PolicyError(
                f"{self.source or 'policy'}: unknown observation {obs!r}; expected one of {', '.join(OBSERVATIONS)}"
            )
        self.obs = obs
        self.codec = codec
        self.net = net
        self.obs_features = tuple(int(f) for f in obs_features)
        n_in = {"board": BOARD_OBS_SIZE, "board+model": MODEL_OBS_SIZE}.get(obs, len(self.obs_features) + 1)
        if obs == "features" and not self.obs_features:
            raise PolicyError(f"{self.source or 'policy'}: a features observation needs 'obs_features'")
        if net.n_inputs != n_in:
            raise PolicyError(
                f"{self.source or 'policy'}: the net reads {net.n_inputs} inputs, the {obs} observation has {n_in}"
            )
        n_out = sum(codec.nvec) if codec.kind == "sparse" else codec.n_features
        if net.n_outputs != n_out:
            raise PolicyError(
                f"{self.source or 'policy'}: the net gives {net.n_outputs} outputs, the action needs {n_out}"
            )
        if codec.n_features != len(self.features):
            raise PolicyError(
                f"{self.source or 'policy'}: the action steers {codec.n_features} features, the policy names {len(self.features)}"
            )

    @property
    def needs_features(self) -> bool:
        return self.obs == "features"

    @property
    def needs_model(self) -> bool:
        """True for the ``board+model`` observation: the bot then passes the boards' unsteered
        cell logits to :meth:`coefficients` (``cell_logits``)."""
        return self.obs == "board+model"

    def check_sae(self, d_sae: int, hook_name: str) -> None:
        super().check_sae(d_sae, hook_name)
        for f in self.obs_features:
            if not 0 <= f < d_sae:
                raise PolicyError(f"{self.source or 'policy'}: observed feature {f} is out of range 0..{d_sae - 1}")

    def observations(self, boards: Sequence[Board], activations: Any = None, cell_logits: Any = None) -> np.ndarray:
        """``[B, n_in]``: what the net reads for each board (``activations``: ``[B, d_sae]``
        unsteered SAE activations, needed by the ``features`` observation; ``cell_logits``:
        ``[B, 9]`` unsteered cell logits, needed by ``board+model``)."""
        if self.obs == "board":
            return np.stack([board_observation(b) for b in boards])
        if self.obs == "board+model":
            if cell_logits is None:
                raise PolicyError(
                    f"{self.source or 'policy'} observes the model's move: pass the unsteered cell logits"
                )
            z = np.asarray(
                cell_logits.detach().cpu() if hasattr(cell_logits, "detach") else cell_logits, dtype=np.float32
            )
            return np.stack([board_model_observation(b, z[i]) for i, b in enumerate(boards)])
        if activations is None:
            raise PolicyError(f"{self.source or 'policy'} observes SAE features: pass the unsteered activations")
        acts = np.asarray(
            activations.detach().cpu() if hasattr(activations, "detach") else activations, dtype=np.float32
        )
        sel = acts[:, list(self.obs_features)]
        return np.stack([feature_observation(b, sel[i]) for i, b in enumerate(boards)])

    def actions(self, obs: np.ndarray) -> np.ndarray:
        """The deterministic action for each observation row."""
        out = self.net(obs)
        if self.codec.kind == "dense":
            return np.clip(out, -1.0, 1.0)
        heads, start = [], 0
        for n in self.codec.nvec:
            heads.append(out[:, start : start + n].argmax(axis=1))
            start += n
        return np.stack(heads, axis=1)

    def coefficients(self, boards: Sequence[Board], features: Any = None, cell_logits: Any = None) -> list[list[float]]:
        if not boards:
            return []
        return self.codec.coefficients(self.actions(self.observations(boards, features, cell_logits))).tolist()

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": self.kind,
            "features": list(self.features),
            "obs": self.obs,
            "action": self.codec.to_dict(),
            "activation": self.net.activation,
            "layers": self.net.to_list(),
        }
        if self.obs_features:
            out["obs_features"] = list(self.obs_features)
        return out | self.sae_fields()

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str) -> "LearnedSteeringPolicy":
        features = feature_list(data.get("features"), source)
        codec = ActionCodec.from_dict(data.get("action"), len(features), source)
        layers = data.get("layers")
        if not isinstance(layers, list) or not layers:
            raise PolicyError(f"{source}: 'layers' must be a non-empty list of {{weight, bias}} objects")
        try:
            arrays = [_layer_arrays(layer) for layer in layers]
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise PolicyError(f"{source}: bad layer in 'layers': {exc}") from None
        for w, b in arrays:
            if not (np.isfinite(w).all() and np.isfinite(b).all()):
                raise PolicyError(f"{source}: the weights hold a non-finite number")
        obs_features = data.get("obs_features") or []
        if obs_features:
            obs_features = feature_list(obs_features, source)
        return cls(
            features,
            obs=str(data.get("obs")),
            codec=codec,
            net=MLP(arrays, str(data.get("activation", "tanh"))),
            obs_features=obs_features,
            **common_fields(data, source),
        )
