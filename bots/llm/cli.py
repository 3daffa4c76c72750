"""Command-line options of the LLM bot (``autosteer-bot run --kind llm``) and the bot they build.

Light at import time (no torch): ``--help`` stays fast. ``build_bot(args)`` loads the
model, the SAE and the policy and returns an :class:`bots.llm.bot.LLMBot`; a bad file or
value raises a ``ValueError`` whose message says what was wrong (the caller prints it).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from bots.llm.readers import MODES

SAE_AUTO = "auto"
SAE_NONE = "none"
POLICY_AUTO = "auto"
POLICY_NONE = "none"
#: the steering policy shipped with the SAE (``--policy auto`` plays it when present)
SHIPPED_POLICY_FILE = "policy.json"
#: ``--policy auto`` prefers the learned (PPO) policy, which beats the fixed vector in strict
#: reading (README, "Learned steering policy (RL)"), then the fixed vector
SHIPPED_POLICY_FILES = ("learned_policy.json", SHIPPED_POLICY_FILE)
#: the move reading of `autosteer-bot run --kind llm` and of the TUI's demo bot: strict (an
#: occupied cell loses), the reading of every headline figure. The shipped learned policy names
#: a legal cell on every open position in the bot's phrasing (its run card counts the illegal
#: moves: 0); ``masked`` (argmax over the legal cells) stays a named option.
DEFAULT_MODE = "strict"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser  # the caller may pass an argument group
    g.add_argument(
        "--model",
        default="smollm2",
        help="'smollm2' (offline default), a local Hugging Face folder, or a TransformerLens model name",
    )
    g.add_argument(
        "--sae",
        default=SAE_AUTO,
        help="SAE folder (sae_lens format) or sae_lens registry 'release/sae_id'; 'auto' uses the SAE "
        "shipped in bots/llm/artifacts if there is one; 'none' plays without SAE (no features, no steering)",
    )
    g.add_argument(
        "--policy",
        default=POLICY_AUTO,
        help="steering policy JSON (a learned policy or a fixed coefficient vector); 'auto' uses the policy "
        "shipped in bots/llm/artifacts (learned_policy.json, else policy.json; else no steering); "
        "'none' plays unsteered",
    )
    g.add_argument(
        "--mode",
        choices=MODES,
        default=DEFAULT_MODE,
        help="strict (the default, the reading of every headline figure and of the tournament): argmax over "
        "all nine cells, an occupied cell forfeits; masked: argmax over the legal cells",
    )
    g.add_argument("--top-k", type=int, default=8, help="SAE features reported in each move's trace")
    g.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 is fastest under contention)")
    g.add_argument(
        "--cache-boards",
        type=int,
        default=256,
        help="boards whose prompt state is cached (SmolLM2: about 0.19 MB per layer after the hook, 0.9 MB at layer 24)",
    )
    g.add_argument(
        "--reader",
        choices=("auto", "cached", "hooked"),
        default="auto",
        help="cached: per-board cache + answer token only (Llama models); hooked: full forward each move",
    )
    g.add_argument(
        "--model-cache", default=None, help="folder for converted weights (default ~/.cache/autosteer-arena)"
    )


def find_default_sae() -> Path | None:
    """The SAE shipped in ``bots/llm/artifacts`` (a folder with ``cfg.json``), if any."""
    from bots.llm.sae import ARTIFACTS_DIR, SAE_CFG_FILE

    if (ARTIFACTS_DIR / "sae" / SAE_CFG_FILE).is_file():  # where `autosteer-train sae` ships it
        return ARTIFACTS_DIR / "sae"
    if not ARTIFACTS_DIR.is_dir():
        return None
    found = sorted(p.parent for p in ARTIFACTS_DIR.rglob(SAE_CFG_FILE))
    return found[0] if found else None


def find_shipped_policy() -> Path | None:
    """The steering policy shipped in ``bots/llm/artifacts`` (``learned_policy.json``, else
    ``policy.json``), if there is one."""
    from bots.llm.sae import ARTIFACTS_DIR

    for name in SHIPPED_POLICY_FILES:
        if (ARTIFACTS_DIR / name).is_file():
            return ARTIFACTS_DIR / name
    return None


def load_policy_arg(value: str | None) -> tuple[Any, str]:
    """Resolve ``--policy`` (auto / none / a file) to a policy (or None) and a sentence
    saying which steering was chosen and why. Torch-free; a bad file raises ``PolicyError``."""
    from bots.llm.policy import load_policy

    if value in (None, "", POLICY_NONE):
        return None, "no steering (--policy none)"
    if value == POLICY_AUTO:
        path = find_shipped_policy()
        if path is None:
            return None, "no steering (--policy auto: no policy shipped in bots/llm/artifacts)"
        policy = load_policy(path)
        return policy, f"shipped {policy.kind} policy {path} (digest {policy.digest}, --policy auto)"
    policy = load_policy(value)
    return policy, f"{policy.kind} policy {value} (digest {policy.digest})"


def load_sae_arg(value: str | None, lm: Any, *, quiet: bool = False) -> Any:
    """Resolve ``--sae`` (auto / none / a folder / a registry id) and check it fits the model."""
    from bots.llm.sae import check_compatible, load_sae

    if value in (None, SAE_NONE):
        return None
    if value == SAE_AUTO:
        path = find_default_sae()
        if path is None:
            if not quiet:
                print(
                    "[llm] no SAE shipped in bots/llm/artifacts: playing without SAE features or steering", flush=True
                )
            return None
        value = str(path)
    sae = load_sae(value)
    check_compatible(sae, lm)
    if not quiet:
        print(f"[llm] SAE {sae.source}: {sae.d_sae} features at {sae.hook_name}", flush=True)
    return sae


def build_bot(args: argparse.Namespace, name: str | None = None) -> Any:
    """Load model, SAE and policy from parsed options and build the bot."""
    import torch

    from bots.llm.bot import LLMBot
    from bots.llm.model import load_model

    if args.threads < 1:
        raise ValueError(f"--threads must be at least 1, got {args.threads}")
    if not 0 <= args.top_k <= 64:
        raise ValueError(f"--top-k must be 0..64, got {args.top_k}")
    torch.set_num_threads(args.threads)
    policy, steering_note = load_policy_arg(args.policy)  # a bad policy file fails before the model loads
    lm = load_model(args.model, cache_dir=args.model_cache)
    sae = load_sae_arg(args.sae, lm)
    if policy is not None and sae is None:
        why = "--sae none was given" if args.sae == SAE_NONE else "no SAE is shipped in bots/llm/artifacts"
        if args.policy == POLICY_AUTO:
            policy, steering_note = (
                None,
                (
                    f"no steering (--policy auto: a policy is shipped at {find_shipped_policy()}, "
                    f"but {why}, and it steers that SAE's features)"
                ),
            )
        else:
            raise ValueError(f"--policy {args.policy} needs the SAE whose features it steers: pass --sae ({why})")
    print(f"[llm] steering: {steering_note}", flush=True)
    bot = LLMBot(
        lm,
        sae=sae,
        policy=policy,
        mode=args.mode,
        top_k=args.top_k,
        reader=args.reader,
        cache_boards=args.cache_boards,
        name=name or getattr(args, "name", None) or "llm",
        verbose=True,
    )
    print(f"[llm] {bot.description}; reader: {bot.reader.kind}", flush=True)
    return bot
