"""What a first-seen board costs: the prompt prefill of open positions, cold, two ways.

* ``opening``: the prompts in batches, each batch sharing only the prompt's fixed opening
  (the keys and values of the first ~57 tokens, the same for every board with the same side
  to move);
* ``tree``: :meth:`bots.llm.llama_fast.LlamaAnswerPath.prefill_tree`, the prompts cut into a
  prefix tree every ``--step`` tokens, so boards that agree on their first cells share more.

Both run on the same boards (a seeded sample of the open positions, both sides to move)
in the same process, one after the other, ``--repeats`` times in alternation; the figure is
the median ms per board of each, their ratio, and the projection to all 4,520 open
positions. The two paths' entries are checked equal (max abs difference printed).

    python bench/prompt_warmup.py --boards 512 --threads 2 --phrasing grid
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--hook", default="blocks.24.hook_resid_post", help="steering hook (sets the cached layers)")
    parser.add_argument("--phrasing", default="grid")
    parser.add_argument("--boards", type=int, default=512, help="open positions sampled (seeded)")
    parser.add_argument("--batch", type=int, default=64, help="rows per forward")
    parser.add_argument("--step", type=int, default=8, help="prefix-tree cut every this many tokens")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)

    import torch

    from bots.llm.model import load_model
    from bots.llm.readers import make_reader
    from training.evaluation.heldout import open_positions

    torch.set_num_threads(args.threads)
    lm = load_model(args.model)
    every = open_positions()
    boards = random.Random(args.seed).sample(every, min(args.boards, len(every)))
    reader = make_reader(lm, args.hook, phrasing=args.phrasing, cache_boards=8)
    path = reader.path  # type: ignore[attr-defined]
    by_side: dict[str, list[list[int]]] = {}
    for b in boards:
        by_side.setdefault(b.turn.value, []).append(reader.prompt_ids(b))
    heads = {
        side: reader.shared_prefix(next(b for b in boards if b.turn.value == side), prompts[0])  # type: ignore[attr-defined]
        for side, prompts in by_side.items()
    }
    for side, prompts in by_side.items():  # the openings' keys and values, outside the timing
        path.prefill(prompts[:1], shared_prefix=heads[side])

    def opening() -> list:
        out = []
        for side, prompts in by_side.items():
            for i in range(0, len(prompts), args.batch):
                out += path.prefill(prompts[i : i + args.batch], shared_prefix=heads[side])
        return out

    def tree() -> list:
        out = []
        for side, prompts in by_side.items():
            out += path.prefill_tree(prompts, shared_prefix=heads[side], step=args.step, batch=args.batch)
        return out

    times: dict[str, list[float]] = {"opening": [], "tree": []}
    results = {}
    for r in range(args.repeats):
        for name, fn in (
            (("opening", opening), ("tree", tree)) if r % 2 == 0 else (("tree", tree), ("opening", opening))
        ):
            t = time.perf_counter()
            results[name] = fn()
            times[name].append((time.perf_counter() - t) / len(boards) * 1000)
            print(f"repeat {r + 1} {name:>7}: {times[name][-1]:.1f} ms/board", flush=True)
    diff = max(
        max(
            float((a.resid - b.resid).abs().max()),
            float((a.kv - b.kv).abs().max()),
            float((a.digit_logits - b.digit_logits).abs().max()),
        )
        for a, b in zip(results["opening"], results["tree"])
    )
    med = {k: statistics.median(v) for k, v in times.items()}
    print(
        f"{len(boards)} open positions ({args.phrasing}), {args.threads} threads, batch {args.batch}: "
        f"opening {med['opening']:.1f} ms/board, tree {med['tree']:.1f} ms/board (median of {args.repeats}); "
        f"tree/opening {med['tree'] / med['opening']:.2f}; all {len(every)} open positions: "
        f"{len(every) * med['tree'] / 60000:.1f} min (tree) vs {len(every) * med['opening'] / 60000:.1f} min; "
        f"max |difference| {diff:.2e}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
