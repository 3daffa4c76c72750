"""How informative the trace's feature list is: ranked by activation, or by
distance from each feature's usual level (``bots.llm.bot.usual_levels``, what the trace uses).

On random reachable boards (not over, fixed seed), the real SmolLM2 bot with the shipped SAE
and ``features.json`` reports its top-k features twice per board, once with each ranking.
For each it prints: the share of rows that are always-on features (fire rate ≥ 95 %), the
share of rows labelled "no clear board concept", how many distinct features come first, and
the most frequent first feature with its share of boards. Unsteered (``--policy none``): the
features are read before steering, so the policy does not change them.

Run: ``.venv/bin/python bench/feature_ranking.py [--boards 200] [--top-k 8] [--seed 13]``
"""

from __future__ import annotations

import argparse
import collections
import random
import sys
import time


def reachable_boards() -> list:
    from server.solver import solve
    from server.game import Board

    return sorted((Board(code) for code in solve()), key=lambda b: b.code)


def summarise(name: str, traces: list[list[dict]], info) -> str:
    rows = [f for t in traces for f in t]
    always = sum(1 for f in rows if (info.labels.get(f["index"]) or {}).get("fire_rate", 0) >= 0.95)
    unclear = sum(1 for f in rows if str(f.get("label", "")).startswith("no clear board concept"))
    firsts = collections.Counter(t[0]["index"] for t in traces if t)
    top, count = firsts.most_common(1)[0]
    return (
        f"{name:<22} rows {len(rows):>5}  always-on {100 * always / len(rows):5.1f} %  "
        f"'no clear board concept' {100 * unclear / len(rows):5.1f} %  distinct first features {len(firsts):>3}  "
        f"most frequent first #{top} on {100 * count / len(traces):5.1f} % of boards"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--boards", type=int, default=200, help="random reachable boards (not over)")
    parser.add_argument("--top-k", type=int, default=8, help="features per trace (the bot's default)")
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args(argv)

    import torch

    from server.players.base import MoveRequest
    from bots.llm.bot import LLMBot
    from bots.llm.cli import load_sae_arg
    from bots.llm.model import load_model

    torch.set_num_threads(1)
    boards = [b for b in reachable_boards() if not b.is_over]
    boards = random.Random(args.seed).sample(boards, min(args.boards, len(boards)))
    print(f"loading SmolLM2 and the shipped SAE; {len(boards)} boards, top {args.top_k}…", flush=True)
    lm = load_model("smollm2")
    sae = load_sae_arg("auto", lm)
    if sae is None or sae.features is None:
        print("error: no shipped SAE with features.json (bots/llm/artifacts/sae); nothing to compare", file=sys.stderr)
        return 1
    bot = LLMBot(lm, sae=sae, mode="masked", top_k=args.top_k)
    requests = [MoveRequest(f"b{i}", b) for i, b in enumerate(boards)]
    start = time.perf_counter()
    ranked = [d.trace["top_features"] for d in bot.choose_batch(requests)]
    bot._top_cache.clear()
    bot._levels = lambda: None  # type: ignore[method-assign]  # the ranking before: strongest first
    strongest = [d.trace["top_features"] for d in bot.choose_batch(requests)]
    print(f"{2 * len(boards)} traces in {time.perf_counter() - start:.1f} s")
    print(summarise("by activation (before)", strongest, sae.features))
    print(summarise("by Δ from usual (now)", ranked, sae.features))
    return 0


if __name__ == "__main__":
    sys.exit(main())
