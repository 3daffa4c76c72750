"""``autosteer-train reach``: what the steering actuator can do on each position, whatever
the policy, and which steering a policy trained on some phrasings should pick to keep the
value on a phrasing it never saw.

For a seeded sample of the open positions (``--boards``; 0: all 4,520), every single action
of the policy's action space (no steering, or one of its features at one of its strengths:
``1 + features × strengths`` actions) is played in each training phrasing and in the
held-out one, strict reading. Per position and action it records whether the move keeps
the solved value and its *keep margin* (:func:`training.rl.actuator.keep_margin`). From
that, exact over the sample (no policy is trained here):

* **reach**: the share of positions where some single action keeps the value, per
  phrasing and side to move, beside the unsteered model's share;
* **together**: where one action keeps it in every training phrasing, and where one keeps
  it in the training phrasings and the held-out one at once (the best any board policy
  with one feature per move can do on the held-out phrasing);
* **transfer of a pick**: among the actions that keep the value in every training
  phrasing, the held-out share of (a) a uniformly random one (its exact expectation), (b)
  the one with the largest keep margin (the smallest over the training phrasings), (c) the
  one with the smallest push;
* **margin buckets**: for every (position, action) pair that keeps the value in the
  training phrasings, the held-out share by its keep margin there;
* **pairs** (``--pair-strengths``; a two-slot policy): on the positions no single action
  serves, every pair of distinct features with both strengths among ``--pair-strengths``,
  first in the held-out phrasing, then, for the pairs that keep the value there, in each
  training phrasing; and on the positions where no single action serves every training
  phrasing, every such pair in the training phrasings. ``reach`` and ``together`` then count
  a position as served by one action or by a pair (a lower bound on what two slots can do
  when ``--pair-strengths`` is a subset of the strengths).

This is what the margin reward of ``autosteer-train ppo`` (``--margin-reward``) rests on.
Weights are hashed before and after; the JSON names the command that wrote it.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from server.game import Board, Seat

ROOT = Path(__file__).resolve().parent.parent.parent
#: keep-margin bucket edges (nats) of the transfer table
MARGIN_EDGES: tuple[float, ...] = (0.0, 0.5, 1.0, 2.0, 4.0, float("inf"))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument
    g(
        "--policy",
        default=str(ROOT / "bots" / "llm" / "artifacts" / "learned_policy.json"),
        help="learned policy whose features, strengths and observation define the actions",
    )
    g("--model", default="smollm2", help="model (see autosteer-bot run --help)")
    g("--sae", default="auto", help="SAE folder, registry id, or 'auto' (the shipped one)")
    g("--phrasings", default="grid,rows", help="training phrasings (comma list)")
    g("--heldout", default="list", help="the held-out phrasing")
    g("--boards", type=int, default=600, help="open positions sampled (0: all 4,520)")
    g("--seed", type=int, default=3, help="seed of the sample")
    g(
        "--pair-strengths",
        default="-8,8",
        help="strengths of both features of the pairs tried where no single action serves (empty: no pairs)",
    )
    g("--chunk", type=int, default=300, help="boards per batched model call")
    g("--threads", type=int, default=2, help="torch threads")
    g("--out", type=Path, default=ROOT / "docs" / "results" / "actuator_reach.json", help="result JSON")


def sample_positions(n: int, seed: int) -> list[Board]:
    """``n`` open positions drawn without replacement (all of them for ``n`` ≤ 0)."""
    from training.evaluation.heldout import open_positions

    boards = open_positions()
    return boards if n <= 0 or n >= len(boards) else random.Random(seed).sample(boards, n)


def action_table(
    actuator: Any, boards: Sequence[Board], chunk: int = 300, progress: Any = None
) -> dict[str, np.ndarray]:
    """For every board and every single action: ``ok`` (keeps the value), ``margin`` (keep
    margin, nats) and ``push`` (‖added‖/‖residual‖), each ``[boards, actions]``, from the
    actuator's moves (:meth:`training.rl.actuator.LLMActuator.act`)."""
    from server.solver import value_preserving_cells

    codec = actuator.codec
    n_actions = codec.nvec[0]
    ok = np.zeros((len(boards), n_actions), dtype=bool)
    margin = np.zeros((len(boards), n_actions))
    push = np.zeros((len(boards), n_actions))
    good = [value_preserving_cells(b) for b in boards]
    rows = np.arange(len(boards))
    for k in range(n_actions):
        action = np.zeros((len(boards), codec.slots), dtype=np.int64)
        action[:, 0] = k
        for i, o in enumerate(_outcomes(actuator, boards, rows, action, chunk)):
            ok[i, k] = o.legal and o.cell in good[i]
            margin[i, k] = o.margin
            push[i, k] = o.norm_ratio
        if progress is not None:
            progress(1)
    return {"ok": ok, "margin": margin, "push": push}


def _outcomes(
    actuator: Any, boards: Sequence[Board], rows: np.ndarray, actions: np.ndarray, chunk: int, progress: Any = None
) -> list[Any]:
    """The actuator's move on ``boards[rows[j]]`` under ``actions[j]`` for every ``j``, in
    batched calls of ``chunk``; ``progress(n)`` is told each call's size."""
    out: list[Any] = []
    for lo in range(0, len(rows), chunk):
        part = rows[lo : lo + chunk]
        out += actuator.act([boards[i] for i in part], actions[lo : lo + chunk])
        if progress is not None:
            progress(len(part))
    return out


def pair_actions(codec: Any, strengths: Sequence[float]) -> np.ndarray:
    """``[P, 2]`` action indices: every pair of distinct features, each at one of ``strengths``
    (which must be among the codec's).

    >>> from bots.llm.learned import ActionCodec
    >>> c = ActionCodec("sparse", n_features=3, strengths=(-2.0, 2.0), slots=2)
    >>> pairs = pair_actions(c, [2.0])
    >>> pairs.tolist(), [sorted(np.nonzero(r)[0].tolist()) for r in c.coefficients(pairs)]
    ([[2, 4], [2, 6], [4, 6]], [[0, 1], [0, 2], [1, 2]])
    """
    if codec.kind != "sparse" or codec.slots < 2:
        raise ValueError("pairs need a sparse action space with two slots")
    S = len(codec.strengths)
    try:
        idx = [codec.strengths.index(float(s)) for s in strengths]
    except ValueError:
        raise ValueError(f"pair strengths {list(strengths)} are not all among {list(codec.strengths)}") from None
    rows = [
        (1 + f1 * S + i1, 1 + f2 * S + i2)
        for f1 in range(codec.n_features)
        for f2 in range(f1 + 1, codec.n_features)
        for i1 in idx
        for i2 in idx
    ]
    return np.asarray(rows, dtype=np.int64).reshape(-1, 2)


def pairs_ok(
    actuator: Any,
    boards: Sequence[Board],
    items: np.ndarray,
    pairs: np.ndarray,
    chunk: int = 300,
    progress: Any = None,
) -> np.ndarray:
    """Whether each ``(board index, pair index)`` item of ``items`` (``[N, 2]``) keeps the
    solved value, strict reading: ``[N]`` bool."""
    from server.solver import value_preserving_cells

    good = {i: value_preserving_cells(boards[i]) for i in set(items[:, 0].tolist())}
    action = np.zeros((len(items), actuator.codec.slots), dtype=np.int64)
    action[:, :2] = pairs[items[:, 1]]
    moves = _outcomes(actuator, boards, items[:, 0], action, chunk, progress)
    return np.array([o.legal and o.cell in good[i] for o, i in zip(moves, items[:, 0])], dtype=bool)


def pair_reach(
    make_actuator: Any,
    boards: Sequence[Board],
    tables: dict[str, dict[str, np.ndarray]],
    training: Sequence[str],
    heldout: str,
    pairs: np.ndarray,
    chunk: int = 300,
    progress: Any = None,
) -> dict[str, np.ndarray]:
    """Which positions one action *or a pair* of ``pairs`` serves: ``heldout_alone``,
    ``every_training_phrasing`` and ``training_and_heldout``, each ``[boards]`` bool.
    ``make_actuator(phrasing)`` builds the actuator of a phrasing; pairs are tried only where
    no single action (``tables``, :func:`action_table`) serves, held-out phrasing first."""
    ok_train = np.logical_and.reduce([tables[p]["ok"] for p in training])
    ok_held = tables[heldout]["ok"]
    need_all = np.nonzero(~(ok_train & ok_held).any(axis=1))[0]
    need_train = np.nonzero(~ok_train.any(axis=1))[0]
    P = len(pairs)

    def grid(idx: np.ndarray) -> np.ndarray:
        return np.stack([np.repeat(idx, P), np.tile(np.arange(P), len(idx))], axis=1).astype(np.int64)

    held_items = grid(need_all)
    act = make_actuator(heldout)
    held = pairs_ok(act, boards, held_items, pairs, chunk, progress)
    del act
    heldout_alone = np.asarray(ok_held.any(axis=1), dtype=bool)
    heldout_alone[np.unique(held_items[held, 0])] = True
    both = held_items[held]  # pairs that keep the value in the held-out phrasing
    train = grid(need_train)
    for p in training:
        act = make_actuator(p)
        both = both[pairs_ok(act, boards, both, pairs, chunk, progress)] if len(both) else both
        train = train[pairs_ok(act, boards, train, pairs, chunk, progress)] if len(train) else train
        del act
    every_training = np.asarray(ok_train.any(axis=1), dtype=bool)
    every_training[np.unique(train[:, 0])] = True
    together = np.asarray((ok_train & ok_held).any(axis=1), dtype=bool)
    together[np.unique(both[:, 0])] = True
    return {
        "heldout_alone": heldout_alone,
        "every_training_phrasing": every_training,
        "training_and_heldout": together,
    }


def summarize(
    boards: Sequence[Board],
    tables: dict[str, dict[str, np.ndarray]],
    training: Sequence[str],
    heldout: str,
    pair_served: dict[str, np.ndarray] | None = None,
) -> dict[str, Any]:
    """The shares described in the module docstring, per side to move and over both
    (``with_pairs`` from :func:`pair_reach`'s masks when given)."""
    sides = {
        "X": np.array([b.turn is Seat.X for b in boards]),
        "O": np.array([b.turn is Seat.O for b in boards]),
        "all": np.ones(len(boards), dtype=bool),
    }
    ok_train = np.logical_and.reduce([tables[p]["ok"] for p in training])
    margin_train = np.minimum.reduce([tables[p]["margin"] for p in training])
    push_train = np.maximum.reduce([tables[p]["push"] for p in training])
    ok_held = tables[heldout]["ok"]
    has = ok_train.any(axis=1)
    rows = np.arange(len(boards))
    by_margin = np.where(ok_train, margin_train, -np.inf).argmax(axis=1)
    by_push = np.where(ok_train, push_train, np.inf).argmin(axis=1)
    random_pick = np.where(has, (ok_train & ok_held).sum(axis=1) / np.maximum(1, ok_train.sum(axis=1)), 0.0)

    def share(mask: np.ndarray, values: Any) -> float:
        return round(float(np.asarray(values)[mask].mean()), 4) if mask.any() else float("nan")

    out: dict[str, Any] = {"per_phrasing": {}, "together": {}, "transfer_of_a_pick": {}}
    for p, t in tables.items():
        out["per_phrasing"][p] = {
            s: {
                "positions": int(m.sum()),
                "unsteered_kept": share(m, t["ok"][:, 0]),
                "reachable": share(m, t["ok"].any(axis=1)),
            }
            for s, m in sides.items()
        }
    for s, m in sides.items():
        out["together"][s] = {
            "every_training_phrasing": share(m, has),
            "training_and_heldout": share(m, (ok_train & ok_held).any(axis=1)),
            "heldout_alone": share(m, ok_held.any(axis=1)),
        }
        out["transfer_of_a_pick"][s] = {
            "positions_with_a_training_action": int((m & has).sum()),
            "random_training_action": share(m & has, random_pick),
            "largest_margin": share(m & has, ok_held[rows, by_margin]),
            "smallest_push": share(m & has, ok_held[rows, by_push]),
        }
    buckets = []
    for lo, hi in zip(MARGIN_EDGES[:-1], MARGIN_EDGES[1:]):
        sel = ok_train & (margin_train >= lo) & (margin_train < hi)
        buckets.append(
            {
                "margin_from": lo,
                "margin_to": hi if hi != float("inf") else None,
                "pairs": int(sel.sum()),
                "heldout_kept": round(float(ok_held[sel].mean()), 4) if sel.any() else None,
            }
        )
    out["margin_buckets"] = buckets
    if pair_served is not None:
        out["with_pairs"] = {
            s: {k: share(m, v) for k, v in pair_served.items()} | {"positions": int(m.sum())} for s, m in sides.items()
        }
    return out


def run(args: argparse.Namespace) -> int:
    import torch
    from tqdm import tqdm

    from training.rl.policy_report import load_learned, policy_actuator

    torch.set_num_threads(max(1, args.threads))
    training = [p.strip() for p in args.phrasings.split(",") if p.strip()]
    if not training or args.heldout in training:
        print("error: name at least one training phrasing and a held-out one not among them", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    try:
        policy, lm, sae = load_learned(args.policy, args.model, args.sae, "reach")
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if policy.codec.kind != "sparse":
        print("error: reach reads the sparse action space of a learned policy", file=sys.stderr)
        return 2
    before = {"model": lm.weights_hash(), "sae": sae.weights_hash()}
    c = policy.codec
    boards = sample_positions(args.boards, args.seed)
    tables = {}
    n_actions = c.nvec[0]

    def make(p: str) -> Any:
        return policy_actuator(lm, sae, policy, phrasing=p, boards=boards, weights_hash=before["model"])

    for p in [*training, args.heldout]:
        act = make(p)
        with tqdm(total=n_actions, desc=f"every single action on {len(boards)} positions ({p})", unit="action") as bar:
            tables[p] = action_table(act, boards, args.chunk, bar.update)
        del act
    pair_strengths = [float(x) for x in args.pair_strengths.split(",") if x.strip()]
    served = None
    if pair_strengths:
        try:
            pairs = pair_actions(c, pair_strengths)
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        with tqdm(
            desc=f"pairs of distinct features at {pair_strengths} where no single action serves", unit="move"
        ) as bar:
            served = pair_reach(make, boards, tables, training, args.heldout, pairs, args.chunk, bar.update)
    after = {"model": lm.weights_hash(), "sae": sae.weights_hash()}
    result = {
        "command": "autosteer-train reach " + " ".join(sys.argv[2:]) if len(sys.argv) > 2 else "autosteer-train reach",
        "date": time.strftime("%Y-%m-%d"),
        "policy": policy.digest,
        "features": list(policy.features),
        "strengths": list(c.strengths),
        "actions": n_actions,
        "reading": "strict",
        "boards": len(boards),
        "sample_seed": args.seed if 0 < args.boards < 4520 else None,
        "training_phrasings": training,
        "heldout_phrasing": args.heldout,
        "pair_strengths": pair_strengths,
        **summarize(boards, tables, training, args.heldout, served),
        "weights_before": before,
        "weights_after": after,
        "weights_unchanged": before == after,
        "seconds": round(time.perf_counter() - t0, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    t = result["transfer_of_a_pick"]["all"]
    print(
        f"done: {args.out} ({len(boards)} positions, {n_actions} actions, {result['seconds']:.0f} s): held-out "
        f"{args.heldout} kept by a random training action {100 * t['random_training_action']:.1f} %, by the "
        f"largest-margin one {100 * t['largest_margin']:.1f} %, best possible "
        f"{100 * result['together']['all']['training_and_heldout']:.1f} % with one feature"
        + (
            f", {100 * result['with_pairs']['all']['training_and_heldout']:.1f} % with one or two"
            if served is not None
            else ""
        )
    )
    return 0
