"""Train the SmolLM2 SAE (``autosteer-train sae``): collect activations, compare layers, train, ship.

One run does, with progress bars:

1. builds the data: game prompts of reachable non-terminal positions in the three
   phrasings, plus offline chat text (``training.corpus``); a seeded share of prompts is
   held out for evaluation;
2. collects residual activations at every candidate hook in a single pass
   (``training.activations``), keeping the answer position, the last few tokens and a
   random share of the other positions of each prompt;
3. trains a small TopK SAE per candidate layer and compares them: held-out explained
   variance, L0, dead fraction, how well features detect board concepts, and how much
   steering along features moves the move distribution at the answer position; picks a
   layer by a fixed rule (or ``--layer``);
4. trains the final SAE at that layer with sae_lens's ``SAETrainer`` on the cached
   activations, measures CE loss recovered on held-out prompts, and writes the SAE in
   sae_lens's on-disk format (``cfg.json`` + ``sae_weights.safetensors``, weights stored
   as float16, loaded as float32), ``features.json`` (typical activations; labels come
   from ``autosteer-train label``), ``RUN_CARD.md``/``.json`` and ``docs/SAE.md``.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

DEFAULT_OUT = Path(__file__).resolve().parent.parent / "bots" / "llm" / "artifacts" / "sae"
DEFAULT_DOCS = Path(__file__).resolve().parent.parent / "docs"


class SAETrainingError(RuntimeError):
    """The SAE run cannot go on; the message says why and what to do."""


@dataclass
class SAERunConfig:
    """Every setting of one ``autosteer-train sae`` run (all shown in ``--help``)."""

    model: str = "smollm2"
    out: str = ""  # "": a new runs/<time>-sae/sae folder (training.outputs); the shipped one only when named
    docs: str = ""  # "": the docs beside --out, or the repository's docs/ when --out is the shipped SAE
    cache_dir: str = ""
    layers: str = "6,12,18,24"
    layer: int | None = None
    grid_positions: int = 1000
    other_positions: int = 350
    chat_prompts: int = 200
    heldout_fraction: float = 0.06
    tail: int = 6
    other_fraction: float = 0.35
    compare_d_sae: int = 1024
    compare_steps: int = 500
    d_sae: int = 2048
    k: int = 32
    steps: int = 2000
    batch_size: int = 512
    lr: float = 4e-4
    steer_boards: int = 12
    steer_features: int = 24
    ce_prompts: int = 24
    max_batch_tokens: int = 2048
    seed: int = 0
    threads: int = 1
    quick: bool = False

    def apply_quick(self) -> None:
        """Tiny sizes for tests and smoke runs (seconds on a small model)."""
        self.grid_positions, self.other_positions, self.chat_prompts = 24, 8, 12
        self.compare_d_sae, self.compare_steps = 64, 30
        self.d_sae, self.k, self.steps, self.batch_size = 128, 8, 60, 64
        self.steer_boards, self.steer_features, self.ce_prompts = 3, 4, 4
        self.heldout_fraction = 0.15
        self.other_fraction = 0.3


def add_arguments(parser: argparse.ArgumentParser) -> None:
    d = SAERunConfig()
    parser.add_argument("--model", default=d.model, help="model: 'smollm2', a local HF folder or a TransformerLens name")
    parser.add_argument("--out", default=d.out, help="folder for the SAE (cfg.json, weights, features.json, run card); "
                        f"default a new runs/<time>-sae/sae folder; the shipped SAE is {DEFAULT_OUT.relative_to(DEFAULT_OUT.parents[3])}")
    parser.add_argument("--docs", default=d.docs, help="folder for SAE.md and its plot (default: beside --out; "
                        "docs/ when --out is the shipped SAE)")
    parser.add_argument("--cache-dir", default=d.cache_dir, help="where activations are cached for `label` (default: <out>/../.cache or the user cache)")
    parser.add_argument("--layers", default=d.layers, help="candidate layers (resid_post) to compare, comma-separated")
    parser.add_argument("--layer", type=int, default=d.layer, help="skip the choice rule and train at this layer (must be a candidate)")
    parser.add_argument("--grid-positions", type=int, default=d.grid_positions, help="positions rendered in the 'grid' phrasing (the one play uses)")
    parser.add_argument("--other-positions", type=int, default=d.other_positions, help="positions rendered in each of 'rows' and 'list'")
    parser.add_argument("--chat-prompts", type=int, default=d.chat_prompts, help="ordinary chat texts (training.corpus)")
    parser.add_argument("--heldout-fraction", type=float, default=d.heldout_fraction, help="share of prompts held out for evaluation")
    parser.add_argument("--tail", type=int, default=d.tail, help="last tokens of every prompt always kept (the answer position is the last)")
    parser.add_argument("--other-fraction", type=float, default=d.other_fraction, help="share of the other token positions kept")
    parser.add_argument("--compare-d-sae", type=int, default=d.compare_d_sae, help="width of the per-layer comparison SAEs")
    parser.add_argument("--compare-steps", type=int, default=d.compare_steps, help="training steps of each comparison SAE")
    parser.add_argument("--d-sae", type=int, default=d.d_sae, help="width of the shipped SAE")
    parser.add_argument("--k", type=int, default=d.k, help="TopK: active features per token")
    parser.add_argument("--steps", type=int, default=d.steps, help="training steps of the shipped SAE")
    parser.add_argument("--batch-size", type=int, default=d.batch_size, help="activations per training step")
    parser.add_argument("--lr", type=float, default=d.lr, help="Adam learning rate")
    parser.add_argument("--steer-boards", type=int, default=d.steer_boards, help="boards used to measure steering effects per layer")
    parser.add_argument("--steer-features", type=int, default=d.steer_features, help="features pushed per layer when measuring steering effects")
    parser.add_argument("--ce-prompts", type=int, default=d.ce_prompts, help="held-out prompts for CE loss recovered")
    parser.add_argument("--max-batch-tokens", type=int, default=d.max_batch_tokens, help="padded tokens per forward batch")
    parser.add_argument("--seed", type=int, default=d.seed, help="seed of every random choice")
    parser.add_argument("--threads", type=int, default=d.threads, help="torch threads (1 is fastest on a shared 2-core machine)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes for tests and smoke runs")


def config_from_args(args: argparse.Namespace) -> SAERunConfig:
    cfg = SAERunConfig(**{k: getattr(args, k) for k in SAERunConfig.__dataclass_fields__ if hasattr(args, k)})
    if cfg.quick:
        cfg.apply_quick()
    return cfg


def parse_layers(text: str, n_layers: int) -> list[int]:
    """``"6,12"`` -> ``[6, 12]``, checked against the model's depth.

    >>> parse_layers("12, 6,12", 30)
    [6, 12]
    """
    try:
        layers = sorted({int(x) for x in text.split(",") if x.strip()})
    except ValueError:
        raise SAETrainingError(f"--layers {text!r}: expected comma-separated integers") from None
    if not layers:
        raise SAETrainingError("--layers is empty")
    bad = [x for x in layers if not 0 <= x < n_layers]
    if bad:
        raise SAETrainingError(f"--layers {bad}: the model has layers 0..{n_layers - 1}")
    return layers


# ----------------------------------------------------------------------------- data


def build_records(tokenizer: Any, cfg: SAERunConfig) -> tuple[list[Any], dict[str, Any]]:
    """Game and chat prompts, seeded; returns the records and a description for the run card."""
    import random

    from bots.llm.prompt import render_prompt
    from server.game import reachable_positions
    from training.activations import PromptRecord
    from training.corpus import chat_texts

    positions = [b for b in reachable_positions() if not b.is_over]
    rng = random.Random(cfg.seed)
    counts = {"grid": cfg.grid_positions, "rows": cfg.other_positions, "list": cfg.other_positions}
    records = []
    for phrasing, n in counts.items():
        if n > len(positions):
            raise SAETrainingError(f"{n} {phrasing} positions asked for; only {len(positions)} are reachable and non-terminal")
        for b in rng.sample(positions, n):
            records.append(PromptRecord("game", render_prompt(tokenizer, b, phrasing), b.code, phrasing))
    chats = chat_texts(tokenizer, cfg.chat_prompts, seed=cfg.seed)
    for source, text in chats:
        records.append(PromptRecord("chat", text, "", source))
    desc = {
        "reachable_nonterminal_positions": len(positions),
        "game_prompts": {k: v for k, v in counts.items()},
        "chat_prompts": {s: sum(1 for c in chats if c[0] == s) for s in ("questions", "docstrings")},
        "chat_source": "training.corpus: templated everyday questions + Python stdlib docstring dialogues "
                       f"(Python {platform.python_version()}), rendered with the model's chat template",
    }
    return records, desc


def split_heldout(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed + 1)
    mask = rng.random(n) < fraction
    return np.nonzero(~mask)[0], np.nonzero(mask)[0]


# ------------------------------------------------------------------------- training


def train_topk_sae(acts: Any, *, d_sae: int, k: int, steps: int, batch_size: int, lr: float, seed: int,
                   hook_name: str, model_name: str, progress: bool = True, desc: str = "SAE") -> tuple[Any, float]:
    """Train a sae_lens TopK SAE on a ``[n, d_in]`` activation tensor; returns (training SAE, seconds)."""
    import torch
    from sae_lens.config import SAETrainerConfig
    from sae_lens.saes.topk_sae import TopKTrainingSAE, TopKTrainingSAEConfig
    from sae_lens.training.sae_trainer import SAETrainer

    torch.manual_seed(seed)
    data = acts.float()
    n, d_in = data.shape
    if n < batch_size:
        raise SAETrainingError(f"only {n} activations for batch size {batch_size}; collect more data or lower --batch-size")
    sae_cfg = TopKTrainingSAEConfig(d_in=d_in, d_sae=d_sae, k=k, dtype="float32", device="cpu",
                                    normalize_activations="none", apply_b_dec_to_input=True)
    sae_cfg.metadata.model_name = model_name
    sae_cfg.metadata.hook_name = hook_name
    sae = TopKTrainingSAE(sae_cfg)
    with torch.no_grad():  # start the decoder bias at the data mean (the usual geometric-median stand-in)
        sae.b_dec.copy_(data[: min(n, 20000)].mean(0))
    gen = torch.Generator().manual_seed(seed)

    def batches():
        while True:
            perm = torch.randperm(n, generator=gen)
            for s in range(0, n - batch_size + 1, batch_size):
                yield data[perm[s:s + batch_size]]

    trainer_cfg = SAETrainerConfig(total_training_samples=steps * batch_size, train_batch_size_samples=batch_size,
                                   lr=lr, lr_scheduler_name="constant", lr_warm_up_steps=min(100, steps // 10),
                                   lr_decay_steps=steps // 5, lr_end=lr / 10, device="cpu",
                                   dead_feature_window=max(50, steps // 5),
                                   feature_sampling_window=max(100, steps // 2))
    trainer = SAETrainer(cfg=trainer_cfg, sae=sae, data_provider=batches())
    t0 = time.perf_counter()
    import contextlib
    import io

    # sae_lens's own bar is replaced by ours (it would interleave with rich output)
    with contextlib.redirect_stderr(io.StringIO()) if not progress else contextlib.nullcontext():
        trainer.fit()
    return sae, time.perf_counter() - t0


@dataclass
class SAEQuality:
    explained_variance: float
    mse: float
    l0: float
    dead_fraction: float
    n_eval: int


def evaluate_sae(sae: Any, acts: Any, dead_acts: Any | None = None, chunk: int = 4096) -> SAEQuality:
    """Held-out explained variance (1 - SSE/SST), MSE, mean L0; dead = features that never
    fire on ``dead_acts`` (default: ``acts``)."""
    import torch

    x_all = acts.float()
    sse = 0.0
    l0 = 0.0
    with torch.no_grad():
        for s in range(0, x_all.shape[0], chunk):
            x = x_all[s:s + chunk]
            f = sae.encode(x)
            r = sae.decode(f)
            sse += float(((r - x) ** 2).sum())
            l0 += float((f > 0).sum())
        sst = float(((x_all - x_all.mean(0)) ** 2).sum())
        fired = torch.zeros(sae.cfg.d_sae, dtype=torch.bool)
        src = (dead_acts if dead_acts is not None else acts).float()
        for s in range(0, src.shape[0], chunk):
            fired |= (sae.encode(src[s:s + chunk]) > 0).any(0)
    n = x_all.shape[0]
    return SAEQuality(explained_variance=1 - sse / max(sst, 1e-12), mse=sse / (n * x_all.shape[1]), l0=l0 / n,
                      dead_fraction=float((~fired).float().mean()), n_eval=n)


def typical_activations(sae: Any, answer_acts: Any, all_acts: Any) -> list[float]:
    """Mean non-zero activation of each feature at the answer position of game prompts;
    where a feature never fires there, its mean non-zero activation anywhere; where it
    never fires at all, the median of the others (so every entry is positive)."""
    import torch

    def mean_nonzero(x: Any) -> tuple[Any, Any]:
        with torch.no_grad():
            tot = torch.zeros(sae.cfg.d_sae)
            cnt = torch.zeros(sae.cfg.d_sae)
            for s in range(0, x.shape[0], 4096):
                f = sae.encode(x[s:s + 4096].float())
                tot += f.clamp(min=0).sum(0)
                cnt += (f > 0).sum(0)
        return tot, cnt

    t_ans, c_ans = mean_nonzero(answer_acts)
    t_all, c_all = mean_nonzero(all_acts)
    typ = torch.where(c_ans > 0, t_ans / c_ans.clamp(min=1), t_all / c_all.clamp(min=1))
    pos = typ[typ > 0]
    fill = float(pos.median()) if pos.numel() else 1.0
    typ = torch.where(typ > 0, typ, torch.full_like(typ, fill))
    return [round(float(v), 5) for v in typ]


def answer_firing_order(sae: Any, answer_acts: Any) -> list[int]:
    """Features ordered by how often they fire at the answer position (most first)."""
    import torch

    with torch.no_grad():
        cnt = (sae.encode(answer_acts.float()) > 0).sum(0)
    return [int(i) for i in torch.argsort(cnt, descending=True, stable=True)]


def steering_effect(lm: Any, sae: Any, hook_name: str, token_ids: Sequence[Sequence[int]], features: Sequence[int],
                    typical: Sequence[float], coefficient: float = 1.0, push_norm: float | None = None) -> dict[str, float]:
    """Mean KL and argmax-change rate of the move distribution when each feature is pushed
    at the answer position, over the given prompts. The push is ``coefficient`` × the
    feature's typical activation along its decoder row, or, with ``push_norm``, a vector of
    that norm along the decoder row (the same strength for every feature and layer)."""
    import torch

    from training.activations import LastTokenSteering, move_shift

    steer = LastTokenSteering(lm, hook_name, max_batch=32)
    w = sae.W_dec.detach().float()[list(features)]
    if push_norm is not None:
        deltas = push_norm * w / w.norm(dim=-1, keepdim=True).clamp(min=1e-12)
    else:
        scale = torch.tensor([typical[f] for f in features], dtype=torch.float32)
        deltas = coefficient * scale[:, None] * w
    kls, changed = [], []
    for ids in token_ids:
        lp = steer.cell_log_probs(ids, deltas)
        shift = move_shift(lp)
        kls.append(shift["kl"])
        changed.append(shift["argmax_changed"].float())
    kl = torch.cat(kls)
    return {"mean_kl": float(kl.mean()), "median_kl": float(kl.median()),
            "argmax_changed": float(torch.cat(changed).mean()),
            "push_norm": float(deltas.norm(dim=-1).mean())}


def ce_loss_recovered(lm: Any, sae: Any, hook_name: str, token_ids: Sequence[Sequence[int]]) -> dict[str, float]:
    """Next-token loss on held-out prompts: clean, with the SAE's reconstruction spliced in
    at every position of the hook but the first, and with those positions zero-ablated;
    recovered = (zero - sae) / (zero - clean)."""
    import torch

    # position 0 (the attention sink, never in the SAE's training data) stays clean in both
    def splice_sae(x: torch.Tensor, hook: Any) -> torch.Tensor:
        x = x.clone()
        x[:, 1:] = sae.decode(sae.encode(x[:, 1:].float())).to(x.dtype)
        return x

    def zero(x: torch.Tensor, hook: Any) -> torch.Tensor:
        x = x.clone()
        x[:, 1:] = 0
        return x

    totals = {"clean": 0.0, "sae": 0.0, "zero": 0.0}
    n_tok = 0
    with torch.no_grad():
        for ids in token_ids:
            toks = torch.tensor([list(ids)])
            for name, hooks in (("clean", []), ("sae", [(hook_name, splice_sae)]), ("zero", [(hook_name, zero)])):
                logits = lm.model.run_with_hooks(toks, fwd_hooks=hooks, return_type="logits")
                lp = torch.log_softmax(logits[0, :-1].float(), -1)
                totals[name] += float(-lp.gather(-1, toks[0, 1:, None]).sum())
            n_tok += toks.shape[1] - 1
    out = {k: v / max(n_tok, 1) for k, v in totals.items()}
    gap = out["zero"] - out["clean"]
    out["recovered"] = (out["zero"] - out["sae"]) / gap if gap > 0 else float("nan")
    out["n_tokens"] = n_tok
    return out


def unsteered_illegal_rate(records: Sequence[Any], cell_logits: Any) -> dict[str, float]:
    """Share of game prompts, per phrasing, where the unsteered model's argmax cell is occupied."""
    out: dict[str, list[bool]] = {}
    for i, r in enumerate(records):
        if r.kind != "game" or cell_logits is None:
            continue
        cell = int(np.argmax(cell_logits[i])) + 1
        out.setdefault(r.phrasing, []).append(r.board[cell - 1] != ".")
    return {k: round(float(np.mean(v)), 4) for k, v in out.items()}


def choose_layer(rows: list[dict[str, Any]], *, min_ev: float = 0.7, max_dead: float = 0.5) -> tuple[int, str]:
    """The layer rule: among layers whose comparison SAE reaches ``min_ev`` held-out
    explained variance with at most ``max_dead`` dead features, the best mean rank of
    concept detection (mean best Matthews correlation) and steering effect (mean KL at coefficient 1);
    ties go to the earlier layer. If none qualifies, the highest explained variance.

    >>> choose_layer([{"layer": 6, "ev": 0.9, "dead": 0.1, "concept_mcc": 0.5, "steer_kl": 0.01},
    ...               {"layer": 12, "ev": 0.8, "dead": 0.1, "concept_mcc": 0.6, "steer_kl": 0.05}])[0]
    12
    """
    ok = [r for r in rows if r["ev"] >= min_ev and r["dead"] <= max_dead]
    if not ok:
        best = max(rows, key=lambda r: (r["ev"], -r["layer"]))
        return best["layer"], f"no layer reached EV >= {min_ev} with dead <= {max_dead}; took the highest EV"

    def rank(key: str) -> dict[int, int]:
        order = sorted(ok, key=lambda r: (-r[key], r["layer"]))
        return {r["layer"]: i for i, r in enumerate(order)}

    rf, rk = rank("concept_mcc"), rank("steer_kl")
    best = min(ok, key=lambda r: (rf[r["layer"]] + rk[r["layer"]], r["layer"]))
    return best["layer"], (f"best mean rank of concept detection (MCC) and steering KL among layers with EV >= {min_ev} "
                           f"and dead <= {max_dead}")


# ---------------------------------------------------------------------------- saving


def save_sae_fp16(sae: Any, folder: Path) -> None:
    """Save in sae_lens's format with float16 weights; cfg.json keeps dtype float32 so
    ``SAE.load_from_disk(folder)`` gives a float32 SAE."""
    import torch
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    weights_path, cfg_path = sae.save_inference_model(str(folder))
    from safetensors.torch import load_file

    state = load_file(str(weights_path))
    save_file({k: v.to(torch.float16).contiguous() for k, v in state.items()}, str(weights_path))


def load_shipped_sae(folder: str | Path) -> Any:
    from sae_lens import SAE

    p = Path(folder)
    if not (p / "cfg.json").is_file() or not (p / "sae_weights.safetensors").is_file():
        raise SAETrainingError(f"{p} is not a sae_lens SAE folder (needs cfg.json and sae_weights.safetensors)")
    sae = SAE.load_from_disk(str(p), device="cpu", dtype="float32")
    sae.eval()
    return sae


def default_cache_dir(cfg: SAERunConfig) -> Path:
    if cfg.cache_dir:
        return Path(cfg.cache_dir)
    from bots.llm.model import default_cache_dir as model_cache

    return model_cache() / "sae-activations"


def activation_cache_path(cache_dir: Path, model_name: str, hook_name: str, seed: int, quick: bool) -> Path:
    safe = model_name.replace("/", "_")
    return cache_dir / f"{safe}-{hook_name}-seed{seed}{'-quick' if quick else ''}.pt"


def write_layer_plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    layers = [r["layer"] for r in rows]
    fig, axes = plt.subplots(1, 4, figsize=(13, 3.2))
    for ax, key, title in zip(axes, ("ev", "dead", "concept_mcc", "steer_kl"),
                              ("held-out explained variance", "dead fraction", "concept detection (mean best MCC)",
                               "steering: mean KL, unit push")):
        ax.plot(layers, [r[key] for r in rows], marker="o")
        ax.set_xticks(layers)
        ax.set_xlabel("layer (resid_post)")
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _fmt(x: Any, nd: int = 3) -> str:
    if isinstance(x, float):
        return f"{x:.{nd}f}" if math.isfinite(x) else "n/a"
    return str(x)


def _counts(d: dict[str, int]) -> str:
    """``{"grid": 3, "rows": 1}`` -> ``"grid 3, rows 1"``."""
    return ", ".join(f"{k} {v}" for k, v in d.items())


def render_run_card(card: dict[str, Any]) -> str:
    q = card["quality"]
    ce = card["ce_loss"]
    d = card["data"]
    lines = [
        f"# SAE run card: {card['model']} `{card['hook_name']}`", "",
        f"TopK SAE (sae_lens {card['sae_lens_version']}), d_in {card['d_in']}, d_sae {card['d_sae']}, k {card['k']}; "
        f"weights stored as float16 ({card['weights_bytes'] / 1e6:.1f} MB), loaded as float32.", "",
        "## Retrain", "", "```", card["command"], "```", "",
        "## Data", "",
        f"- game prompts: {_counts(d['game_prompts'])} (positions drawn from the {d['reachable_nonterminal_positions']} reachable "
        "non-terminal positions; the side to move is implied by the board)",
        f"- chat prompts: {_counts(d['chat_prompts'])} — {d['chat_source']}",
        f"- prompts held out for evaluation: {d['heldout_prompts']} of {d['prompts']}",
        f"- tokens run: {d['tokens']}; activations kept: {d['activations']} (answer position + last {d['tail']} "
        f"tokens of every prompt + {d['other_fraction']:.0%} of the other positions), {d['train_activations']} for training",
        "",
        "## Training", "",
        f"- seed {card['seed']}, {card['steps']} steps × batch {card['batch_size']} "
        f"({card['steps'] * card['batch_size']} samples), lr {card['lr']}, Adam",
        f"- time: activations {card['seconds']['activations']:.0f} s, layer comparison "
        f"{card['seconds']['comparison']:.0f} s, final training {card['seconds']['training']:.0f} s, "
        f"total {card['seconds']['total']:.0f} s ({card['threads']} torch thread(s), {card['machine']})",
        "",
        "## Quality (held-out)", "",
        "| metric | value |", "|---|---|",
        f"| explained variance | {_fmt(q['explained_variance'])} |",
        f"| L0 (active features per token) | {_fmt(q['l0'], 1)} |",
        f"| dead fraction (never fire on all collected activations) | {_fmt(q['dead_fraction'])} |",
        f"| CE loss clean / SAE spliced / zero-ablated | {_fmt(ce['clean'])} / {_fmt(ce['sae'])} / {_fmt(ce['zero'])} |",
        f"| CE loss recovered | {_fmt(ce['recovered'])} (on {ce['n_tokens']} tokens of {ce['n_prompts']} held-out prompts) |",
        f"| steering at coef 1 (answer position): mean KL / argmax changed / push ÷ residual norm | "
        f"{_fmt(card['steering']['mean_kl'], 4)} / {_fmt(card['steering']['argmax_changed'])} / "
        f"{_fmt(card['steering']['push_ratio'])} |",
        f"| steering with a push of 1× the answer residual norm ({_fmt(card['steering']['answer_resid_norm'], 1)}): "
        f"mean KL / argmax changed | {_fmt(card['steering']['unit_push_mean_kl'], 4)} / "
        f"{_fmt(card['steering']['unit_push_argmax_changed'])} |",
        "", "Unsteered model, share of game prompts where its argmax cell is occupied (strict mode would forfeit): "
        + ", ".join(f"{k} {v:.1%}" for k, v in card.get("unsteered_illegal_rate", {}).items()) + ".",
        "", f"Layer chosen: {card['layer']} — {card['layer_rule']}.", "",
    ]
    return "\n".join(lines)


def _layer_reading(rows: list[dict[str, Any]], card: dict[str, Any]) -> str:
    f1s = [r["concept_mcc"] for r in rows]
    kls = [r["steer_kl"] for r in rows]
    evs = [r["ev"] for r in rows]
    return (f"Reading the table: reconstruction is good everywhere (EV {min(evs):.3f}–{max(evs):.3f}) and concept "
            f"detection varies from {min(f1s):.3f} to {max(f1s):.3f} (mean best MCC), while the same "
            f"push moves the move distribution {max(kls) / max(min(kls), 1e-9):.0f}× more at the most effective layer "
            "than at the least: later layers are closer to the output, so their features are stronger actuators. "
            "That also means a later layer makes it easier for a policy to use the model as a mere actuator; the "
            "labels (docs/FEATURES.md) say which features detect game concepts and which mainly push cells.")


def render_sae_doc(card: dict[str, Any], rows: list[dict[str, Any]], plot_name: str) -> str:
    table = ["| layer | EV (held-out) | L0 | dead | concept MCC | concept F1 | unit push: mean KL | unit push: argmax changed "
             "| coef 1: mean KL | coef 1: push ÷ resid norm | answer resid norm |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        mark = " **(chosen)**" if r["layer"] == card["layer"] else ""
        table.append(f"| {r['layer']}{mark} | {r['ev']:.3f} | {r['l0']:.1f} | {r['dead']:.3f} | {r['concept_mcc']:.3f} | {r['concept_f1']:.3f} | "
                     f"{r['steer_kl']:.4f} | {r['steer_argmax']:.3f} | {r['coef1_kl']:.4f} | {r['push_ratio']:.3f} | "
                     f"{r['answer_resid_norm']:.1f} |")
    return "\n".join([
        "# The SmolLM2 SAE", "",
        "No pretrained SAE exists for SmolLM2-135M-Instruct, so `autosteer-train sae` trains one with sae_lens "
        "on the model's own activations. This page is written by that command; the run card with every figure is "
        "`bots/llm/artifacts/sae/RUN_CARD.md`.", "",
        "## Data", "",
        "- **Game prompts**: positions drawn (seeded) from the 4,520 reachable non-terminal positions, rendered with "
        "`bots.llm.prompt.render_prompt` in the three phrasings (`grid`, used in play, gets the most; `rows` and "
        "`list` make the SAE learn board concepts rather than one template's token positions).",
        "- **Chat text** (`training.corpus`): no data set can be downloaded here, so ordinary text is built offline: "
        "templated everyday questions (cooking, science, travel, code, ...) rendered up to the assistant's reply, and "
        "Python standard-library docstrings as question/answer dialogues. It keeps features from being only about "
        "the board.",
        "- **Positions kept per prompt**: the answer position (the last token, `I take cell ` → the move digit is "
        "read there and steering is applied there), the few tokens before it, and a random share of the rest — the "
        "long shared template prefix would otherwise dominate.",
        "- Activations of every candidate layer are collected in one pass that stops after the deepest one "
        "(`stop_at_layer`); prompts are right-padded in length-sorted batches (exact for a causal model: tested).", "",
        "## Choosing the layer", "",
        f"A small TopK SAE (d_sae {rows[0]['d_sae']}, k {card['k']}, {rows[0]['steps']} steps) was trained at each "
        "candidate `blocks.L.hook_resid_post` on the same activations and measured on held-out prompts:", "",
        "- **EV**: explained variance of the reconstruction; **L0**: active features per token; **dead**: share of "
        "features that never fire;",
        "- **concept MCC / F1**: for each board concept (cell k mine / opponent's / empty, can win, must block, "
        "fork, best move k, ...; see `training/labels.py`) the best Matthews correlation (and F1) any feature "
        "reaches as a detector at the answer position, averaged over concepts (F1 alone flatters features that "
        "fire everywhere when a concept is common);",
        f"- **steering**: the {card['steer_features']} features firing most at the answer position, each pushed "
        f"along its decoder row at the answer position only, on {card['steer_boards']} held-out boards: mean KL of "
        "the move distribution (over cells 1-9) from the unsteered one and the share of pushes that change the "
        "argmax cell. *Unit push*: a vector of norm equal to the layer's mean answer-position residual norm (the "
        "same strength at every layer, so layers compare fairly); *coef 1*: one typical activation of the feature "
        "(what steering coefficient 1 means), with its norm relative to the residual.", "",
        *table, "",
        f"![layer comparison]({plot_name})", "",
        f"Rule: {card['layer_rule']}. Chosen: **layer {card['layer']}** (`{card['hook_name']}`).", "",
        _layer_reading(rows, card), "",
        "## Steering strength", "",
        f"One typical activation along a feature's decoder row (steering coefficient 1) is "
        f"{card['steering']['push_ratio']:.3f} of the answer position's residual norm "
        f"({card['steering']['answer_resid_norm']:.0f}) for the shipped SAE, and moves the move distribution "
        f"very little (mean KL {card['steering']['mean_kl']:.4f}, argmax changed on "
        f"{card['steering']['argmax_changed']:.1%} of pushes). A push as long as the residual itself (coefficient "
        f"≈ {1 / max(card['steering']['push_ratio'], 1e-9):.0f}) gives mean KL "
        f"{card['steering']['unit_push_mean_kl']:.3f} and changes the argmax on "
        f"{card['steering']['unit_push_argmax_changed']:.1%}. So coefficients in [-1, 1] × typical activation "
        "are gentle, comparable nudges; moving the model's choice needs coefficients of order ten or several "
        "features at once, and anything near one residual norm is strong enough to overwrite the model (report "
        "the push norm and KL beside every steered result).", "",
        "Unsteered, the model names an occupied cell on "
        + ", ".join(f"{v:.1%} of `{k}` prompts" for k, v in card.get("unsteered_illegal_rate", {}).items())
        + " (argmax over the nine cells, on the prompts of this run).", "",
        "## The shipped SAE", "",
        f"TopK, d_sae {card['d_sae']}, k {card['k']}, {card['steps']} steps; held-out EV "
        f"{card['quality']['explained_variance']:.3f}, L0 {card['quality']['l0']:.1f}, dead fraction "
        f"{card['quality']['dead_fraction']:.3f}, CE loss recovered {_fmt(card['ce_loss']['recovered'])}. "
        "Folder: `bots/llm/artifacts/sae/` in sae_lens's own format (`SAE.load_from_disk`); float16 weights "
        "to keep the artifact small (the cfg says float32, so it loads as float32).", "",
        "`features.json` next to it holds, per feature, the *typical activation* (mean non-zero activation at the "
        "answer position on game prompts): steering coefficient c adds c × typical × decoder row, so "
        "coefficients in [-1, 1] are comparable pushes across features. Labels come from `autosteer-train label` "
        "(see `docs/FEATURES.md`).", "",
        "Retrain:", "", "```", card["command"], "```", "",
    ])


# ------------------------------------------------------------------------------ run


def run(args: argparse.Namespace) -> int:
    from training.outputs import docs_folder, new_run_folder

    cfg = config_from_args(args)
    if not cfg.out:
        cfg.out = str(new_run_folder("sae") / "sae")
    cfg.docs = str(docs_folder(Path(cfg.out), DEFAULT_OUT, cfg.docs))
    print(f"writing the SAE to {cfg.out} and its docs to {cfg.docs}", file=sys.stderr, flush=True)
    try:
        return _run(cfg)
    except (SAETrainingError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _run(cfg: SAERunConfig) -> int:
    import torch
    from rich.console import Console

    from bots.llm.model import ModelLoadError, load_model
    from server.game import Board
    from training.activations import ActivationError, ActivationSet, collect_activations, resid_hook, tokenize
    from training.labels import concept_matrix, detector_scores, mean_best_f1, mean_best_mcc

    console = Console(stderr=True)
    torch.set_num_threads(cfg.threads)
    t_start = time.perf_counter()
    try:
        lm = load_model(cfg.model)
    except ModelLoadError as exc:
        raise SAETrainingError(str(exc)) from None
    layers = parse_layers(cfg.layers, lm.n_layers)
    if cfg.layer is not None and cfg.layer not in layers:
        raise SAETrainingError(f"--layer {cfg.layer} is not among --layers {layers}")
    hooks = [resid_hook(L) for L in layers]

    records, data_desc = build_records(lm.tokenizer, cfg)
    train_p, held_p = split_heldout(len(records), cfg.heldout_fraction, cfg.seed)
    console.print(f"[bold]data[/]: {len(records)} prompts ({len(held_p)} held out), layers {layers}")
    try:
        acts = collect_activations(lm, records, hooks, tail=cfg.tail, other_fraction=cfg.other_fraction, skip_first=1,
                                   seed=cfg.seed, max_batch_tokens=cfg.max_batch_tokens, answer_logits=True)
    except ActivationError as exc:
        raise SAETrainingError(str(exc)) from None
    console.print(f"collected {len(acts)} activations from {acts.meta['n_tokens']} tokens in {acts.seconds:.0f} s")
    t_acts = acts.seconds

    train_rows = torch.from_numpy(acts.rows_of_prompts(train_p))
    held_rows = torch.from_numpy(acts.rows_of_prompts(held_p))
    if held_rows.numel() == 0:
        raise SAETrainingError("no held-out activations; raise --heldout-fraction")
    is_game = np.array([r.kind == "game" for r in records])
    ans_mask = acts.is_answer & is_game[acts.prompt_index]
    ans_rows = torch.from_numpy(np.nonzero(ans_mask)[0])
    ans_boards = [Board(records[i].board) for i in acts.prompt_index[ans_mask]]
    concepts = concept_matrix(ans_boards)
    held_set = set(int(i) for i in held_p)
    steer_prompts = [i for i in held_p if records[i].kind == "game"]
    rng = np.random.default_rng(cfg.seed + 2)
    steer_prompts = [int(i) for i in rng.permutation(steer_prompts)[: cfg.steer_boards]]
    if len(steer_prompts) < cfg.steer_boards:  # too few held-out boards: top up from training prompts
        extra = [i for i in range(len(records)) if records[i].kind == "game" and i not in held_set]
        steer_prompts += extra[: cfg.steer_boards - len(steer_prompts)]
    steer_ids = tokenize(lm.tokenizer, [records[i].text for i in steer_prompts])

    # ---- layer comparison
    t0 = time.perf_counter()
    rows: list[dict[str, Any]] = []
    for L, h in zip(layers, hooks):
        console.print(f"[bold]layer {L}[/]: comparison SAE d_sae {cfg.compare_d_sae}, {cfg.compare_steps} steps")
        x = acts.acts[h]
        sae, _ = train_topk_sae(x[train_rows], d_sae=cfg.compare_d_sae, k=cfg.k, steps=cfg.compare_steps,
                                batch_size=cfg.batch_size, lr=cfg.lr, seed=cfg.seed, hook_name=h,
                                model_name=lm.name, progress=False)
        sae.eval()
        qual = evaluate_sae(sae, x[held_rows], dead_acts=x)
        with torch.no_grad():
            fires = (sae.encode(x[ans_rows].float()) > 0).numpy()
        det = detector_scores(fires, concepts)
        cf1, cmcc = mean_best_f1(det), mean_best_mcc(det)
        typ = typical_activations(sae, x[ans_rows], x)
        feats = answer_firing_order(sae, x[ans_rows])[: cfg.steer_features]
        eff = steering_effect(lm, sae, h, steer_ids, feats, typ)
        resid_norm = float(x[ans_rows].float().norm(dim=-1).mean())
        unit = steering_effect(lm, sae, h, steer_ids, feats, typ, push_norm=resid_norm)
        row = {"layer": L, "hook_name": h, "d_sae": cfg.compare_d_sae, "steps": cfg.compare_steps,
               "ev": qual.explained_variance, "l0": qual.l0, "dead": qual.dead_fraction, "concept_f1": cf1,
               "concept_mcc": cmcc,
               "steer_kl": unit["mean_kl"], "steer_argmax": unit["argmax_changed"],
               "coef1_kl": eff["mean_kl"], "coef1_argmax": eff["argmax_changed"],
               "push_ratio": eff["push_norm"] / max(resid_norm, 1e-9), "answer_resid_norm": resid_norm}
        rows.append(row)
        console.print(f"  EV {row['ev']:.3f}  L0 {row['l0']:.1f}  dead {row['dead']:.3f}  concept F1 {cf1:.3f} MCC {cmcc:.3f}  "
                      f"unit push: KL {row['steer_kl']:.4f}, argmax changed {row['steer_argmax']:.2f}; coef 1: KL "
                      f"{row['coef1_kl']:.4f}, push/resid {row['push_ratio']:.3f}")
    t_compare = time.perf_counter() - t0
    if cfg.layer is not None:
        layer, rule = cfg.layer, "set by --layer"
    else:
        layer, rule = choose_layer(rows)
    hook = resid_hook(layer)
    console.print(f"[bold green]layer {layer}[/] ({rule})")

    # ---- final SAE
    x = acts.acts[hook]
    console.print(f"training the shipped SAE: d_sae {cfg.d_sae}, k {cfg.k}, {cfg.steps} steps × {cfg.batch_size}")
    sae, t_train = train_topk_sae(x[train_rows], d_sae=cfg.d_sae, k=cfg.k, steps=cfg.steps,
                                  batch_size=cfg.batch_size, lr=cfg.lr, seed=cfg.seed, hook_name=hook,
                                  model_name=lm.name, progress=True)
    out = Path(cfg.out)
    save_sae_fp16(sae, out)
    shipped = load_shipped_sae(out)  # measure what is shipped (float16-rounded weights)
    qual = evaluate_sae(shipped, x[held_rows], dead_acts=x)
    typ = typical_activations(shipped, x[ans_rows], x)
    feats = answer_firing_order(shipped, x[ans_rows])[: cfg.steer_features]
    eff = steering_effect(lm, shipped, hook, steer_ids, feats, typ)
    resid_norm = float(x[ans_rows].float().norm(dim=-1).mean())
    unit = steering_effect(lm, shipped, hook, steer_ids, feats, typ, push_norm=resid_norm)
    eff = {**eff, "push_ratio": eff["push_norm"] / max(resid_norm, 1e-9), "answer_resid_norm": resid_norm,
           "unit_push_mean_kl": unit["mean_kl"], "unit_push_argmax_changed": unit["argmax_changed"]}
    ce_ids_src = [i for i in held_p if records[i].kind == "game"][: cfg.ce_prompts // 2]
    ce_ids_src += [i for i in held_p if records[i].kind == "chat"][: cfg.ce_prompts - len(ce_ids_src)]
    console.print(f"CE loss recovered on {len(ce_ids_src)} held-out prompts")
    ce = ce_loss_recovered(lm, shipped, hook, tokenize(lm.tokenizer, [records[i].text for i in ce_ids_src]))
    ce["n_prompts"] = len(ce_ids_src)

    # answer-position activations for `autosteer-train label`
    cache_dir = default_cache_dir(cfg)
    cache_path = activation_cache_path(cache_dir, lm.name, hook, cfg.seed, cfg.quick)
    keep = torch.from_numpy(np.nonzero(acts.is_answer)[0])
    answer_set = ActivationSet(hook_names=[hook], acts={hook: x[keep].clone()},
                               prompt_index=acts.prompt_index[keep.numpy()], position=acts.position[keep.numpy()],
                               is_answer=acts.is_answer[keep.numpy()], records=records,
                               n_tokens_run=acts.n_tokens_run, seconds=acts.seconds,
                               meta={**acts.meta, "heldout_prompts": [int(i) for i in held_p]},
                               answer_cell_logits=acts.answer_cell_logits)
    answer_set.save(cache_path)

    import sae_lens

    command = "autosteer-train sae" + ("" if cfg == SAERunConfig() else " " + " ".join(_nondefault_flags(cfg)))
    weights_bytes = (out / "sae_weights.safetensors").stat().st_size
    card = {
        "model": lm.name, "hook_name": hook, "layer": layer, "layer_rule": rule, "architecture": "topk",
        "d_in": lm.d_model, "d_sae": cfg.d_sae, "k": cfg.k, "steps": cfg.steps, "batch_size": cfg.batch_size,
        "lr": cfg.lr, "seed": cfg.seed, "threads": cfg.threads, "sae_lens_version": sae_lens.__version__,
        "machine": f"{platform.machine()} {platform.system()}, torch {torch.__version__}",
        "weights_bytes": weights_bytes, "command": command, "config": asdict(cfg),
        "data": {**data_desc, "prompts": len(records), "heldout_prompts": len(held_p), "tokens": acts.meta["n_tokens"],
                 "activations": len(acts), "train_activations": int(train_rows.numel()), "tail": cfg.tail,
                 "other_fraction": cfg.other_fraction},
        "quality": asdict(qual), "ce_loss": ce, "steering": eff,
        "steer_boards": len(steer_prompts), "steer_features": len(feats),
        "seconds": {"activations": t_acts, "comparison": t_compare, "training": t_train,
                    "total": time.perf_counter() - t_start},
        "layer_comparison": rows, "activation_cache": str(cache_path),
        "unsteered_illegal_rate": unsteered_illegal_rate(records, acts.answer_cell_logits),
    }
    (out / "RUN_CARD.json").write_text(json.dumps(card, indent=2) + "\n")
    (out / "RUN_CARD.md").write_text(render_run_card(card))
    features_path = out / "features.json"
    features = {"hook_name": hook, "d_sae": cfg.d_sae, "model": lm.name,
                "typical_activation": typ,
                "typical_activation_note": "mean non-zero activation at the answer position on game prompts; "
                                           "steering coefficient c adds c * typical * W_dec[f]",
                "labels": {}}
    features_path.write_text(json.dumps(features) + "\n")
    docs = Path(cfg.docs)
    docs.mkdir(parents=True, exist_ok=True)
    plot = docs / "sae_layers.png"
    write_layer_plot(rows, plot)
    (docs / "SAE.md").write_text(render_sae_doc(card, rows, plot.name))
    console.print(f"[bold green]done[/]: {out} (EV {qual.explained_variance:.3f}, L0 {qual.l0:.1f}, dead "
                  f"{qual.dead_fraction:.3f}, CE recovered {_fmt(ce['recovered'])}) in {card['seconds']['total']:.0f} s; "
                  f"next: autosteer-train label")
    return 0


def _nondefault_flags(cfg: SAERunConfig) -> list[str]:
    d = SAERunConfig()
    flags = []
    if cfg.quick:
        flags.append("--quick")
        d.apply_quick()
    for name in SAERunConfig.__dataclass_fields__:
        if name == "quick":
            continue
        v = getattr(cfg, name)
        if v != getattr(d, name):
            flags.append(f"--{name.replace('_', '-')} {v}")
    return flags
