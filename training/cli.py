"""``autosteer-train``: train the SAE, label its features, evaluate bots.

Subcommands register here as ``name: (module, help)``; each module exposes
``add_arguments(parser)`` and ``run(args) -> int`` and imports torch only inside ``run``.
"""

from __future__ import annotations

import sys

from server.cli import build_parser, dispatch

SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "evaluate": (
        "training.evaluation.evaluate",
        "play the LLM bot vs minimax and random per seat and mode, with Wilson confidence intervals",
    ),
    "sae": ("training.features.sae", "collect activations, compare layers, train and ship the SAE (sae_lens)"),
    "search-vector": (
        "training.vector_search",
        "search one fixed steering vector that draws more vs minimax (exact objective)",
    ),
    "label": (
        "training.features.label_features",
        "label SAE features by board concepts (precision/recall) and steering effect",
    ),
    "ppo": (
        "training.rl.cli",
        "learn a board-dependent steering policy with PPO against the server's minimax (exact eval)",
    ),
    "ppo-summary": (
        "training.rl.summary",
        "gather the run cards of one PPO recipe, one seed each, into one summary over seeds",
    ),
    "rl-report": (
        "training.rl.policy_report",
        "what a learned steering policy pushes, where (docs/POLICY.md + heatmap)",
    ),
    "heldout": (
        "training.evaluation.heldout",
        "a policy on phrasings, opponents and positions it was not fitted to (exact)",
    ),
    "reach": (
        "training.evaluation.reach",
        "what one steered feature can do on each position, and which pick transfers to a held-out phrasing",
    ),
    "controls": (
        "training.controls",
        "equal-effort controls: the same search on random features, directions, shuffled labels",
    ),
    "report": (
        "training.evaluation.results",
        "docs/RESULTS.md, and markdown tables from evaluate/heldout/controls result JSON",
    ),
}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser("autosteer-train", SUBCOMMANDS, __doc__.splitlines()[0])
    return dispatch(parser, argv)


if __name__ == "__main__":
    sys.exit(main())
