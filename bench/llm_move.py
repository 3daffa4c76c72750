"""Benchmark: latency of one LLM bot move, single game and batched, steered vs unsteered.

Measured in one run, one torch thread, on the same boards (16 distinct mid-game
positions), medians over repetitions with the configurations interleaved so CPU
contention hits all alike:

* the plain unsteered bot (``LLMBot(lm)``: no SAE, no steering) and the steered bot (a
  fixed 8-feature policy), each cold (the board is not cached yet: a full forward of the
  prompt) and warm (the board was seen before);
* the steered and a zero-steered bot (all coefficients 0) with the steered-answer memo on
  (as the bot plays) and off (every move runs the answer token from the hook layer on,
  ``bots.llm.llama_fast``: what a new steering vector costs, e.g. in RL);
* the hooked full forward with and without the steering hook (the generic path).

It then states each target and whether it is met: (a) the cost of steering itself,
steered / zero-steered on the same path; (b) the steered bot / the plain unsteered bot,
warm and cold; and the batched steered move against 40 ms.

Run: ``.venv/bin/python bench/llm_move.py [--reps 30] [--sae PATH]`` (the shipped SAE by
default; without one a random SAE at ``blocks.15.hook_resid_pre`` is used; cost depends on
the hook layer, not on the SAE's weights). ``--positions`` adds a small study of steering the last position vs all
positions with random directions.
"""

from __future__ import annotations

import argparse
import copy
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
    return LoadedSAE(
        sae=sae,
        hook_name=hook,
        d_in=lm.d_model,
        d_sae=d_sae,
        source="random (bench)",
        architecture="standard",
        features=info,
    )


def positions_study(
    lm: Any, hook: str, boards: list[Any], scales: tuple[float, ...] = (0.5, 1.0, 2.0), directions: int = 2
) -> list[dict[str, Any]]:
    """Random unit directions scaled to k × the residual norm at the answer position, added
    at the last position vs at every position: how often the argmax cell changes, mean KL."""
    import torch

    from bots.llm.readers import make_reader
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
            rows.append(
                {"scale": k, "positions": name, "argmax_changed": round(changed / n, 3), "mean_kl": round(kl / n, 3)}
            )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--reps", type=int, default=30, help="repetitions per measurement")
    parser.add_argument("--batch", type=int, default=16, help="concurrent games in the batched measurement")
    parser.add_argument("--sae", default="auto", help="SAE folder ('auto': the shipped one, else a random SAE)")
    parser.add_argument("--features", type=int, default=8, help="features the bench policy steers")
    parser.add_argument("--positions", action="store_true", help="also compare last-position vs all-position steering")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    from server.players.base import MoveRequest
    from bots.llm.bot import LLMBot
    from bots.llm.cli import find_default_sae
    from bots.llm.model import load_model
    from bots.llm.readers import SteeredLogitsMemo
    from bots.llm.policy import FixedSteeringPolicy
    from bots.llm.sae import load_sae

    lm = load_model()
    sae_path = find_default_sae() if args.sae == "auto" else Path(args.sae)
    sae = load_sae(sae_path) if sae_path else _random_sae(lm, "blocks.15.hook_resid_pre")
    print(f"model {lm.name}; SAE {sae.source} at {sae.hook_name}; torch threads {torch.get_num_threads()}")
    feats = list(range(args.features))
    steered = LLMBot(lm, sae=sae, policy=FixedSteeringPolicy(feats, [0.5 * (-1) ** i for i in feats]), mode="strict")
    zero = LLMBot(lm, sae=sae, policy=FixedSteeringPolicy(feats, [0.0] * len(feats)), mode="strict")
    zero.reader = steered.reader  # same board cache
    # the same bots with the steered-answer memo off: every move runs the answer token
    steered_nomemo = LLMBot(lm, sae=sae, policy=steered.policy, mode="strict")
    zero_nomemo = LLMBot(lm, sae=sae, policy=zero.policy, mode="strict")
    steered_nomemo.reader = copy.copy(steered.reader)  # shares the board cache and the answer path
    steered_nomemo.reader.memo = SteeredLogitsMemo(0)
    zero_nomemo.reader = steered_nomemo.reader
    plain = LLMBot(lm, mode="strict")  # the plain unsteered bot: no SAE, no steering, its own cache
    boards = _boards(args.batch)
    reqs = [MoveRequest(f"g{i}", b) for i, b in enumerate(boards)]

    def cold(bot: Any, n: int) -> Callable[[], Any]:
        def go() -> None:  # a fresh cache each time: the first move on these boards
            bot.close()
            bot.choose_batch(reqs[:n])

        return go

    # the steered bot with the prompt's shared opening run for every board again (as before
    # prefix sharing): what the sharing saves on a cold board
    unshared = LLMBot(lm, sae=sae, policy=steered.policy, mode="strict")
    unshared.reader.share_prefix = False
    cold_ms: dict[str, list[float]] = {f"{k}{n}": [] for k in ("steer", "plain", "unshared") for n in ("1", "B")}
    cold_trio = [("steer", steered), ("plain", plain), ("unshared", unshared)]
    for rep in range(max(4, args.reps // 3)):
        for key, bot in cold_trio if rep % 2 == 0 else cold_trio[::-1]:  # alternate the order
            cold_ms[key + "1"].append(_median_ms(cold(bot, 1), 1, 1))
    for rep in range(max(2, args.reps // 6)):
        for key, bot in cold_trio if rep % 2 == 0 else cold_trio[::-1]:
            cold_ms[key + "B"].append(_median_ms(cold(bot, args.batch), 1, args.batch))
    cmed = {k: statistics.median(v) for k, v in cold_ms.items()}
    unshared.close()
    for bot in (steered, zero, steered_nomemo, zero_nomemo, plain):
        bot.choose_batch(reqs)  # warm the caches
    configs = [
        ("plain", plain),
        ("steer", steered),
        ("zero", zero),
        ("steer_c", steered_nomemo),
        ("zero_c", zero_nomemo),
    ]
    results: dict[str, list[float]] = {f"{k}{n}": [] for k, _ in configs for n in ("1", "B")}
    inner = 10  # warm moves are sub-millisecond: each sample times 10 calls, so the timer and one
    # context switch do not dominate
    for rep in range(args.reps):  # interleaved (order alternating) so that contention hits all alike
        for key, bot in configs if rep % 2 == 0 else configs[::-1]:
            for suffix, n in (("1", 1), ("B", args.batch)):
                t = time.perf_counter()
                for _ in range(inner):
                    bot.choose_batch(reqs[:n])
                results[key + suffix].append((time.perf_counter() - t) * 1000 / (n * inner))
    med = {k: statistics.median(v) for k, v in results.items()}

    # generic hooked path: full forward with vs without the hook
    from bots.llm.readers import HookedAnswerReader

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

    B = args.batch
    print(f"\nmedian latency per move (ms), {args.reps} reps (warm: 10 calls per rep), batch = {B} concurrent games")
    print(f"{'':52}{'single':>10}{'batched':>10}")
    rows = [
        ("cold, plain unsteered bot (first time a board is seen)", cmed["plain1"], cmed["plainB"]),
        ("cold, steered bot", cmed["steer1"], cmed["steerB"]),
        ("cold, steered bot, prompt opening not shared", cmed["unshared1"], cmed["unsharedB"]),
        ("warm, plain unsteered bot (no SAE, no steering)", med["plain1"], med["plainB"]),
        ("warm, steered bot (as it plays: memo hit)", med["steer1"], med["steerB"]),
        ("warm, zero-steered bot (memo hit)", med["zero1"], med["zeroB"]),
        ("warm, steered, memo off (answer token computed)", med["steer_c1"], med["steer_cB"]),
        ("warm, zero-steered, memo off (same compute)", med["zero_c1"], med["zero_cB"]),
    ]
    for label, a, b in rows:
        print(f"{label:52}{a:10.2f}{b:10.2f}")
    print(f"{'hooked full forward, no hook':52}{h_plain:10.1f}")
    print(f"{'hooked full forward, steering hook':52}{h_steer:10.1f}")

    def verdict(ratio: float) -> str:
        return "meets" if ratio <= 1.10 else "misses"

    def paired(samples: dict[str, list[float]], a: str, b: str) -> float:
        """Median over repetitions of the ratio of two configurations timed side by side
        in the same repetition: drifting load on a shared machine cancels out."""
        return statistics.median(x / y for x, y in zip(samples[a], samples[b]))

    print("\nratios are medians of per-repetition paired ratios")
    print("(a) the cost of steering itself, steered / zero-steered on the same path (target <= 1.10):")
    for label, k in (("answer token computed (memo off)", "_c"), ("as the bot plays (memo on)", "")):
        r1, rb = paired(results, f"steer{k}1", f"zero{k}1"), paired(results, f"steer{k}B", f"zero{k}B")
        print(f"    {label:36} single {r1:.3f}, batched {rb:.3f} ({verdict(max(r1, rb))} it)")
    rh = statistics.median(x / y for x, y in zip(hs, hp))
    print(f"    hooked full forward, with / without hook: {rh:.3f} ({verdict(rh)} it)")
    print("(b) steered bot / plain unsteered bot (no SAE, no steering work) (target <= 1.10):")
    for label, data, a, b in (
        ("warm board (seen before)", results, "steer", "plain"),
        ("cold board (first time seen)", cold_ms, "steer", "plain"),
        ("warm, memo off (new steering vector)", results, "steer_c", "plain"),
    ):
        r1, rb = paired(data, a + "1", b + "1"), paired(data, a + "B", b + "B")
        print(f"    {label:36} single {r1:.3f}, batched {rb:.3f} ({verdict(max(r1, rb))} it)")
    r1, rb = paired(cold_ms, "unshared1", "steer1"), paired(cold_ms, "unsharedB", "steerB")
    print(f"cold steered move, prompt opening not shared / shared: single {r1:.2f}, batched {rb:.2f}")
    print("batched steered move vs the 40 ms target:")
    for label, v in (
        ("warm (memo hit)", med["steerB"]),
        ("warm, memo off", med["steer_cB"]),
        ("cold board", cmed["steerB"]),
    ):
        print(f"    {label:36} {v:8.2f} ms ({'meets' if v <= 40 else 'misses'} it)")
    print(f"cache: {steered.reader.stats()}")
    if args.positions:
        print("\nlast vs all positions, random directions at k × residual norm (8 boards, 2 directions each):")
        for row in positions_study(lm, sae.hook_name, boards[:8]):
            print(
                f"  k={row['scale']:<4} {row['positions']:>4}: argmax changed {100 * row['argmax_changed']:5.1f} %, "
                f"mean KL {row['mean_kl']:.3f}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
