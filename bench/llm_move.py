"""Benchmark: latency of one LLM bot move, single game and batched, steered vs unsteered.

Measured in one run, one torch thread, on the same boards (16 distinct mid-game
positions), medians over repetitions with the configurations interleaved so CPU
contention hits all alike:

* cold move: the board's prompt is not cached yet (a full forward of the prompt);
* warm move, unsteered: the bot's unsteered move on a cached board (the nine logits are
  cached: no model compute at all);
* warm move, steered: the policy's vector added at the hook, the answer token run from
  the hook layer to the end (``bots.llm.llama_fast``);
* warm move, zero steering: the same computation with all coefficients 0 — the cost of
  the model's own computation on that path, so steered / zero-steered is what the
  steering itself costs;
* hooked full forward with and without the steering hook (the generic path): the hook's
  own overhead.

Run: ``.venv/bin/python bench/llm_move.py [--reps 30] [--sae PATH]`` (without a shipped
SAE a random one at ``blocks.15.hook_resid_pre`` is used; cost does not depend on the
SAE's weights). ``--positions`` adds a small study of steering the last position vs all
positions with random directions.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _boards(n: int) -> list[Any]:
    from server.game import reachable_positions

    mids = sorted((b for b in reachable_positions() if not b.is_over and 2 <= b.ply <= 5), key=lambda b: b.code)
    step = max(1, len(mids) // n)
    return mids[::step][:n]


def _median_ms(fn: Callable[[], Any], reps: int, per: int) -> float:
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000 / per)
    return statistics.median(times)


def _random_sae(lm: Any, hook: str, d_sae: int = 2048) -> Any:
    import torch
    from sae_lens import StandardSAE, StandardSAEConfig
    from sae_lens.saes.sae import SAEMetadata

    from bots.llm.sae import FeatureInfo, LoadedSAE

    torch.manual_seed(0)
    sae = StandardSAE(StandardSAEConfig(d_in=lm.d_model, d_sae=d_sae, metadata=SAEMetadata(hook_name=hook)))
    info = FeatureInfo(hook_name=hook, d_sae=d_sae, typical_activation=[5.0] * d_sae)
    return LoadedSAE(sae=sae, hook_name=hook, d_in=lm.d_model, d_sae=d_sae, source="random (bench)",
                     architecture="standard", features=info)


def positions_study(lm: Any, hook: str, boards: list[Any], scales: tuple[float, ...] = (0.5, 1.0, 2.0),
                    directions: int = 2) -> list[dict[str, Any]]:
    """Random unit directions scaled to k × the residual norm at the answer position, added
    at the last position vs at every position: how often the argmax cell changes, mean KL."""
    import torch

    from bots.llm.player import make_reader
    from bots.llm.steering import kl_divergence

    last = make_reader(lm, hook, reader="cached")
    every = make_reader(lm, hook, positions="all")
    base = last.answer(boards)
    norms = base.hook_acts.norm(dim=-1, keepdim=True)
    g = torch.Generator().manual_seed(0)
    rows = []
    for k in scales:
        stats = {"last": [0, 0.0, 0], "all": [0, 0.0, 0]}
        for _ in range(directions):
            d = torch.randn(len(boards), lm.d_model, generator=g)
            added = d / d.norm(dim=-1, keepdim=True) * norms * k
            for name, reader in (("last", last), ("all", every)):
                out = reader.answer(boards, added)
                s = stats[name]
                s[0] += int((out.logits.argmax(-1) != base.base_logits.argmax(-1)).sum())
                s[1] += float(kl_divergence(out.logits, base.base_logits).sum())
                s[2] += len(boards)
        for name, (changed, kl, n) in stats.items():
            rows.append({"scale": k, "positions": name, "argmax_changed": round(changed / n, 3), "mean_kl": round(kl / n, 3)})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--reps", type=int, default=30, help="repetitions per measurement")
    parser.add_argument("--batch", type=int, default=16, help="concurrent games in the batched measurement")
    parser.add_argument("--sae", default="auto", help="SAE folder ('auto': the shipped one, else a random SAE)")
    parser.add_argument("--features", type=int, default=8, help="features the bench policy steers")
    parser.add_argument("--positions", action="store_true", help="also compare last-position vs all-position steering")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    from bots.base import MoveRequest
    from bots.llm.bot import LLMBot
    from bots.llm.cli import find_default_sae
    from bots.llm.model import load_model
    from bots.llm.policy import FixedSteeringPolicy
    from bots.llm.sae import load_sae

    lm = load_model()
    sae_path = find_default_sae() if args.sae == "auto" else Path(args.sae)
    sae = load_sae(sae_path) if sae_path else _random_sae(lm, "blocks.15.hook_resid_pre")
    print(f"model {lm.name}; SAE {sae.source} at {sae.hook_name}; torch threads {torch.get_num_threads()}")
    feats = list(range(args.features))
    steered = LLMBot(lm, sae=sae, policy=FixedSteeringPolicy(feats, [0.5 * (-1) ** i for i in feats]), mode="strict")
    zero = LLMBot(lm, sae=sae, policy=FixedSteeringPolicy(feats, [0.0] * len(feats)), mode="strict")
    zero.reader = steered.reader  # same cache
    plain = LLMBot(lm, sae=sae, mode="strict")
    plain.reader = steered.reader
    boards = _boards(args.batch)
    reqs = [MoveRequest(f"g{i}", b) for i, b in enumerate(boards)]

    # cold: a fresh cache each time (first move on a board)
    def cold(n: int) -> Callable[[], Any]:
        def go() -> None:
            steered.reader.cache._entries.clear()
            steered.choose_batch(reqs[:n])
        return go

    cold_single = _median_ms(cold(1), max(3, args.reps // 6), 1)
    cold_batch = _median_ms(cold(args.batch), max(2, args.reps // 10), args.batch)
    steered.choose_batch(reqs)  # warm the cache
    results: dict[str, list[float]] = {k: [] for k in ("plain1", "zero1", "steer1", "plainB", "zeroB", "steerB")}
    for _ in range(args.reps):  # interleaved
        for key, bot, n in (("plain1", plain, 1), ("zero1", zero, 1), ("steer1", steered, 1),
                            ("plainB", plain, args.batch), ("zeroB", zero, args.batch), ("steerB", steered, args.batch)):
            t = time.perf_counter()
            bot.choose_batch(reqs[:n])
            results[key].append((time.perf_counter() - t) * 1000 / n)
    med = {k: statistics.median(v) for k, v in results.items()}

    # generic hooked path: full forward with vs without the hook
    from bots.llm.player import HookedAnswerReader

    hooked = HookedAnswerReader(lm, sae.hook_name)
    vec = steered.steering.vectors(torch.tensor([[0.5] * len(feats)]))
    hp, hs = [], []
    for _ in range(max(3, args.reps // 6)):
        t = time.perf_counter()
        hooked._forward([hooked.prompt_ids(boards[0])], None)
        hp.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        hooked._forward([hooked.prompt_ids(boards[0])], vec)
        hs.append((time.perf_counter() - t) * 1000)
    h_plain, h_steer = statistics.median(hp), statistics.median(hs)

    print(f"\nmedian latency per move (ms), {args.reps} reps, batch = {args.batch} concurrent games")
    print(f"{'':38}{'single':>10}{'batched':>10}")
    print(f"{'cold (prompt not cached)':38}{cold_single:10.1f}{cold_batch:10.1f}")
    print(f"{'warm, unsteered (cached logits)':38}{med['plain1']:10.2f}{med['plainB']:10.2f}")
    print(f"{'warm, zero steering (same compute)':38}{med['zero1']:10.2f}{med['zeroB']:10.2f}")
    print(f"{'warm, steered':38}{med['steer1']:10.2f}{med['steerB']:10.2f}")
    print(f"{'hooked full forward, no hook':38}{h_plain:10.1f}")
    print(f"{'hooked full forward, steering hook':38}{h_steer:10.1f}")
    print(f"\nsteered / zero-steered (cost of the steering itself): single {med['steer1'] / med['zero1']:.3f}, "
          f"batched {med['steerB'] / med['zeroB']:.3f}")
    print(f"steered / unsteered bot (cached logits, no compute): single {med['steer1'] / med['plain1']:.1f}, "
          f"batched {med['steerB'] / med['plainB']:.1f}")
    print(f"hooked path, with / without steering hook: {h_steer / h_plain:.3f}")
    print(f"steered batched per move vs target 40 ms: {med['steerB']:.2f} ms "
          f"({'meets' if med['steerB'] <= 40 else 'misses'} it); cold batched: {cold_batch:.1f} ms")
    print(f"cache: {steered.reader.stats()}")
    if args.positions:
        print("\nlast vs all positions, random directions at k × residual norm (8 boards, 2 directions each):")
        for row in positions_study(lm, sae.hook_name, boards[:8]):
            print(f"  k={row['scale']:<4} {row['positions']:>4}: argmax changed {100 * row['argmax_changed']:5.1f} %, "
                  f"mean KL {row['mean_kl']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
