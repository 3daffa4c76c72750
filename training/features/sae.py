"""Train the SmolLM2 SAE (``autosteer-train sae``): collect activations, compare layers, train, ship.

One run does, with progress bars:

1. builds the data: game prompts of reachable non-terminal positions in the three
   phrasings, plus offline chat text (``training.features.corpus``); a seeded share of prompts is
   held out for evaluation;
2. collects residual activations at every candidate hook in a single pass
   (``training.features.activations``), keeping the answer position, the last few tokens and a
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

This module is the command and the run in those steps; training and measuring an SAE is
:mod:`training.features.sae_training`, the run card's markdown, ``docs/SAE.md`` and the layer plot
are :mod:`training.features.sae_report`.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from training.features.sae_report import fmt, render_run_card, render_sae_doc, write_layer_plot
from training.features.sae_training import (
    SAEQuality,
    SAETrainingError,
    ce_loss_recovered,
    choose_layer,
    evaluate_sae,
    load_shipped_sae,
    measure_steering,
    save_sae_fp16,
    train_topk_sae,
    unsteered_illegal_rate,
)
from training.outputs import REPO, SHIPPED_DOCS

DEFAULT_OUT = REPO / "bots" / "llm" / "artifacts" / "sae"
DEFAULT_DOCS = SHIPPED_DOCS


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
    parser.add_argument(
        "--model", default=d.model, help="model: 'smollm2', a local HF folder or a TransformerLens name"
    )
    parser.add_argument(
        "--out",
        default=d.out,
        help="folder for the SAE (cfg.json, weights, features.json, run card); "
        f"default a new runs/<time>-sae/sae folder; the shipped SAE is {DEFAULT_OUT.relative_to(DEFAULT_OUT.parents[3])}",
    )
    parser.add_argument(
        "--docs",
        default=d.docs,
        help="folder for SAE.md and its plot (default: beside --out; docs/ when --out is the shipped SAE)",
    )
    parser.add_argument(
        "--cache-dir",
        default=d.cache_dir,
        help="where activations are cached for `label` (default: <out>/../.cache or the user cache)",
    )
    parser.add_argument("--layers", default=d.layers, help="candidate layers (resid_post) to compare, comma-separated")
    parser.add_argument(
        "--layer", type=int, default=d.layer, help="skip the choice rule and train at this layer (must be a candidate)"
    )
    parser.add_argument(
        "--grid-positions",
        type=int,
        default=d.grid_positions,
        help="positions rendered in the 'grid' phrasing (the one play uses)",
    )
    parser.add_argument(
        "--other-positions", type=int, default=d.other_positions, help="positions rendered in each of 'rows' and 'list'"
    )
    parser.add_argument(
        "--chat-prompts", type=int, default=d.chat_prompts, help="ordinary chat texts (training.features.corpus)"
    )
    parser.add_argument(
        "--heldout-fraction", type=float, default=d.heldout_fraction, help="share of prompts held out for evaluation"
    )
    parser.add_argument(
        "--tail",
        type=int,
        default=d.tail,
        help="last tokens of every prompt always kept (the answer position is the last)",
    )
    parser.add_argument(
        "--other-fraction", type=float, default=d.other_fraction, help="share of the other token positions kept"
    )
    parser.add_argument(
        "--compare-d-sae", type=int, default=d.compare_d_sae, help="width of the per-layer comparison SAEs"
    )
    parser.add_argument(
        "--compare-steps", type=int, default=d.compare_steps, help="training steps of each comparison SAE"
    )
    parser.add_argument("--d-sae", type=int, default=d.d_sae, help="width of the shipped SAE")
    parser.add_argument("--k", type=int, default=d.k, help="TopK: active features per token")
    parser.add_argument("--steps", type=int, default=d.steps, help="training steps of the shipped SAE")
    parser.add_argument("--batch-size", type=int, default=d.batch_size, help="activations per training step")
    parser.add_argument("--lr", type=float, default=d.lr, help="Adam learning rate")
    parser.add_argument(
        "--steer-boards", type=int, default=d.steer_boards, help="boards used to measure steering effects per layer"
    )
    parser.add_argument(
        "--steer-features",
        type=int,
        default=d.steer_features,
        help="features pushed per layer when measuring steering effects",
    )
    parser.add_argument("--ce-prompts", type=int, default=d.ce_prompts, help="held-out prompts for CE loss recovered")
    parser.add_argument(
        "--max-batch-tokens", type=int, default=d.max_batch_tokens, help="padded tokens per forward batch"
    )
    parser.add_argument("--seed", type=int, default=d.seed, help="seed of every random choice")
    parser.add_argument(
        "--threads", type=int, default=d.threads, help="torch threads (1 is fastest on a shared 2-core machine)"
    )
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
    from training.features.activations import PromptRecord
    from training.features.corpus import chat_texts

    positions = [b for b in reachable_positions() if not b.is_over]
    rng = random.Random(cfg.seed)
    counts = {"grid": cfg.grid_positions, "rows": cfg.other_positions, "list": cfg.other_positions}
    records = []
    for phrasing, n in counts.items():
        if n > len(positions):
            raise SAETrainingError(
                f"{n} {phrasing} positions asked for; only {len(positions)} are reachable and non-terminal"
            )
        for b in rng.sample(positions, n):
            records.append(PromptRecord("game", render_prompt(tokenizer, b, phrasing), b.code, phrasing))
    chats = chat_texts(tokenizer, cfg.chat_prompts, seed=cfg.seed)
    for source, text in chats:
        records.append(PromptRecord("chat", text, "", source))
    desc = {
        "reachable_nonterminal_positions": len(positions),
        "game_prompts": {k: v for k, v in counts.items()},
        "chat_prompts": {s: sum(1 for c in chats if c[0] == s) for s in ("questions", "docstrings")},
        "chat_source": "training.features.corpus: templated everyday questions + Python stdlib docstring dialogues "
        f"(Python {platform.python_version()}), rendered with the model's chat template",
    }
    return records, desc


def split_heldout(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed + 1)
    mask = rng.random(n) < fraction
    return np.nonzero(~mask)[0], np.nonzero(mask)[0]


def default_cache_dir(cfg: SAERunConfig) -> Path:
    if cfg.cache_dir:
        return Path(cfg.cache_dir)
    from bots.llm.model import default_cache_dir as model_cache

    return model_cache() / "sae-activations"


def activation_cache_path(cache_dir: Path, model_name: str, hook_name: str, seed: int, quick: bool) -> Path:
    safe = model_name.replace("/", "_")
    return cache_dir / f"{safe}-{hook_name}-seed{seed}{'-quick' if quick else ''}.pt"


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

    from training.features.activations import resid_hook

    console = Console(stderr=True)
    torch.set_num_threads(cfg.threads)
    t_start = time.perf_counter()
    lm, layers = _load_model(cfg)
    hooks = [resid_hook(L) for L in layers]
    data = _collect(lm, cfg, layers, hooks, console)

    t0 = time.perf_counter()
    rows = [_compare_layer(lm, cfg, L, h, data, console) for L, h in zip(layers, hooks)]
    t_compare = time.perf_counter() - t0
    if cfg.layer is not None:
        layer, rule = cfg.layer, "set by --layer"
    else:
        layer, rule = choose_layer(rows)
    hook = resid_hook(layer)
    console.print(f"[bold green]layer {layer}[/] ({rule})")

    final = _train_final(lm, cfg, hook, data, console)
    cache_path = _save_answer_activations(cfg, lm.name, hook, data)
    seconds = {
        "activations": data.acts.seconds,
        "comparison": t_compare,
        "training": final.seconds,
        "total": time.perf_counter() - t_start,
    }
    card = _card(cfg, lm, hook, layer, rule, data, rows, final, cache_path, seconds)
    _write_outputs(cfg, lm.name, hook, card, rows, final.typical)
    qual, ce = final.quality, final.ce
    console.print(
        f"[bold green]done[/]: {cfg.out} (EV {qual.explained_variance:.3f}, L0 {qual.l0:.1f}, dead "
        f"{qual.dead_fraction:.3f}, CE recovered {fmt(ce['recovered'])}) in {card['seconds']['total']:.0f} s; "
        f"next: autosteer-train label"
    )
    return 0


def _load_model(cfg: SAERunConfig) -> tuple[Any, list[int]]:
    """The model and the candidate layers, checked against its depth and ``--layer``."""
    from bots.llm.model import ModelLoadError, load_model

    try:
        lm = load_model(cfg.model)
    except ModelLoadError as exc:
        raise SAETrainingError(str(exc)) from None
    layers = parse_layers(cfg.layers, lm.n_layers)
    if cfg.layer is not None and cfg.layer not in layers:
        raise SAETrainingError(f"--layer {cfg.layer} is not among --layers {layers}")
    return lm, layers


@dataclass
class _Data:
    """The run's prompts and their activations at every candidate hook, with the rows
    each measurement uses: training, held-out and answer positions of game prompts (and
    their boards' concepts), and the held-out game prompts steering is measured on."""

    records: list[Any]
    desc: dict[str, Any]
    held_p: np.ndarray
    acts: Any  # training.features.activations.ActivationSet
    train_rows: Any
    held_rows: Any
    ans_rows: Any
    concepts: Any
    steer_prompts: list[int]
    steer_ids: list[Any]


def _collect(lm: Any, cfg: SAERunConfig, layers: list[int], hooks: list[str], console: Any) -> _Data:
    """Build the prompts, hold a share out, and collect the activations at every hook in
    one pass."""
    import torch

    from server.game import Board
    from training.features.activations import ActivationError, collect_activations, tokenize
    from training.features.labels import concept_matrix

    records, data_desc = build_records(lm.tokenizer, cfg)
    train_p, held_p = split_heldout(len(records), cfg.heldout_fraction, cfg.seed)
    console.print(f"[bold]data[/]: {len(records)} prompts ({len(held_p)} held out), layers {layers}")
    try:
        acts = collect_activations(
            lm,
            records,
            hooks,
            tail=cfg.tail,
            other_fraction=cfg.other_fraction,
            skip_first=1,
            seed=cfg.seed,
            max_batch_tokens=cfg.max_batch_tokens,
            answer_logits=True,
        )
    except ActivationError as exc:
        raise SAETrainingError(str(exc)) from None
    console.print(f"collected {len(acts)} activations from {acts.meta['n_tokens']} tokens in {acts.seconds:.0f} s")

    train_rows = torch.from_numpy(acts.rows_of_prompts(train_p))
    held_rows = torch.from_numpy(acts.rows_of_prompts(held_p))
    if held_rows.numel() == 0:
        raise SAETrainingError("no held-out activations; raise --heldout-fraction")
    is_game = np.array([r.kind == "game" for r in records])
    ans_mask = acts.is_answer & is_game[acts.prompt_index]
    ans_rows = torch.from_numpy(np.nonzero(ans_mask)[0])
    ans_boards = [Board(records[i].board) for i in acts.prompt_index[ans_mask]]
    steer_prompts = _steer_prompts(records, held_p, cfg)
    return _Data(
        records,
        data_desc,
        held_p,
        acts,
        train_rows,
        held_rows,
        ans_rows,
        concept_matrix(ans_boards),
        steer_prompts,
        tokenize(lm.tokenizer, [records[i].text for i in steer_prompts]),
    )


def _steer_prompts(records: list[Any], held_p: np.ndarray, cfg: SAERunConfig) -> list[int]:
    """``--steer-boards`` held-out game prompts (seeded), topped up from the training ones
    when too few are held out."""
    held_set = set(int(i) for i in held_p)
    steer_prompts = [i for i in held_p if records[i].kind == "game"]
    rng = np.random.default_rng(cfg.seed + 2)
    steer_prompts = [int(i) for i in rng.permutation(steer_prompts)[: cfg.steer_boards]]
    if len(steer_prompts) < cfg.steer_boards:  # too few held-out boards: top up from training prompts
        extra = [i for i in range(len(records)) if records[i].kind == "game" and i not in held_set]
        steer_prompts += extra[: cfg.steer_boards - len(steer_prompts)]
    return steer_prompts


def _compare_layer(lm: Any, cfg: SAERunConfig, layer: int, hook: str, data: _Data, console: Any) -> dict[str, Any]:
    """A small comparison SAE at one candidate layer and its row of the comparison:
    reconstruction, concept detection and steering effect."""
    import torch

    from training.features.labels import detector_scores, mean_best_f1, mean_best_mcc

    console.print(f"[bold]layer {layer}[/]: comparison SAE d_sae {cfg.compare_d_sae}, {cfg.compare_steps} steps")
    x = data.acts.acts[hook]
    sae, _ = train_topk_sae(
        x[data.train_rows],
        d_sae=cfg.compare_d_sae,
        k=cfg.k,
        steps=cfg.compare_steps,
        batch_size=cfg.batch_size,
        lr=cfg.lr,
        seed=cfg.seed,
        hook_name=hook,
        model_name=lm.name,
        progress=False,
    )
    sae.eval()
    qual = evaluate_sae(sae, x[data.held_rows], dead_acts=x)
    with torch.no_grad():
        fires = (sae.encode(x[data.ans_rows].float()) > 0).numpy()
    det = detector_scores(fires, data.concepts)
    cf1, cmcc = mean_best_f1(det), mean_best_mcc(det)
    steer = measure_steering(lm, sae, hook, data.steer_ids, x[data.ans_rows], x, cfg.steer_features)
    eff, unit, resid_norm = steer.coef1, steer.unit, steer.resid_norm
    row = {
        "layer": layer,
        "hook_name": hook,
        "d_sae": cfg.compare_d_sae,
        "steps": cfg.compare_steps,
        "ev": qual.explained_variance,
        "l0": qual.l0,
        "dead": qual.dead_fraction,
        "concept_f1": cf1,
        "concept_mcc": cmcc,
        "steer_kl": unit["mean_kl"],
        "steer_argmax": unit["argmax_changed"],
        "coef1_kl": eff["mean_kl"],
        "coef1_argmax": eff["argmax_changed"],
        "push_ratio": eff["push_norm"] / max(resid_norm, 1e-9),
        "answer_resid_norm": resid_norm,
    }
    console.print(
        f"  EV {row['ev']:.3f}  L0 {row['l0']:.1f}  dead {row['dead']:.3f}  concept F1 {cf1:.3f} MCC {cmcc:.3f}  "
        f"unit push: KL {row['steer_kl']:.4f}, argmax changed {row['steer_argmax']:.2f}; coef 1: KL "
        f"{row['coef1_kl']:.4f}, push/resid {row['push_ratio']:.3f}"
    )
    return row


@dataclass
class _Final:
    """The shipped SAE's measurements (on its float16-rounded weights as saved)."""

    quality: SAEQuality
    typical: list[float]
    features: list[int]
    steering: dict[str, float]
    ce: dict[str, float]
    seconds: float


def _train_final(lm: Any, cfg: SAERunConfig, hook: str, data: _Data, console: Any) -> _Final:
    """Train the shipped SAE at ``hook``, save it to ``--out`` and measure what was saved:
    held-out quality, steering, CE loss recovered."""
    from training.features.activations import tokenize

    x = data.acts.acts[hook]
    console.print(f"training the shipped SAE: d_sae {cfg.d_sae}, k {cfg.k}, {cfg.steps} steps × {cfg.batch_size}")
    sae, t_train = train_topk_sae(
        x[data.train_rows],
        d_sae=cfg.d_sae,
        k=cfg.k,
        steps=cfg.steps,
        batch_size=cfg.batch_size,
        lr=cfg.lr,
        seed=cfg.seed,
        hook_name=hook,
        model_name=lm.name,
        progress=True,
    )
    out = Path(cfg.out)
    save_sae_fp16(sae, out)
    shipped = load_shipped_sae(out)  # measure what is shipped (float16-rounded weights)
    qual = evaluate_sae(shipped, x[data.held_rows], dead_acts=x)
    steer = measure_steering(lm, shipped, hook, data.steer_ids, x[data.ans_rows], x, cfg.steer_features)
    resid_norm = steer.resid_norm
    eff = {
        **steer.coef1,
        "push_ratio": steer.coef1["push_norm"] / max(resid_norm, 1e-9),
        "answer_resid_norm": resid_norm,
        "unit_push_mean_kl": steer.unit["mean_kl"],
        "unit_push_argmax_changed": steer.unit["argmax_changed"],
    }
    records, held_p = data.records, data.held_p
    ce_ids_src = [i for i in held_p if records[i].kind == "game"][: cfg.ce_prompts // 2]
    ce_ids_src += [i for i in held_p if records[i].kind == "chat"][: cfg.ce_prompts - len(ce_ids_src)]
    console.print(f"CE loss recovered on {len(ce_ids_src)} held-out prompts")
    ce = ce_loss_recovered(lm, shipped, hook, tokenize(lm.tokenizer, [records[i].text for i in ce_ids_src]))
    ce["n_prompts"] = len(ce_ids_src)
    return _Final(qual, steer.typical, steer.features, eff, ce, t_train)


def _save_answer_activations(cfg: SAERunConfig, model_name: str, hook: str, data: _Data) -> Path:
    """The answer-position activations at ``hook``, cached for ``autosteer-train label``."""
    import torch

    from training.features.activations import ActivationSet

    acts = data.acts
    cache_path = activation_cache_path(default_cache_dir(cfg), model_name, hook, cfg.seed, cfg.quick)
    keep = torch.from_numpy(np.nonzero(acts.is_answer)[0])
    answer_set = ActivationSet(
        hook_names=[hook],
        acts={hook: acts.acts[hook][keep].clone()},
        prompt_index=acts.prompt_index[keep.numpy()],
        position=acts.position[keep.numpy()],
        is_answer=acts.is_answer[keep.numpy()],
        records=data.records,
        n_tokens_run=acts.n_tokens_run,
        seconds=acts.seconds,
        meta={**acts.meta, "heldout_prompts": [int(i) for i in data.held_p]},
        answer_cell_logits=acts.answer_cell_logits,
    )
    answer_set.save(cache_path)
    return cache_path


def _card(
    cfg: SAERunConfig,
    lm: Any,
    hook: str,
    layer: int,
    rule: str,
    data: _Data,
    rows: list[dict[str, Any]],
    final: _Final,
    cache_path: Path,
    seconds: dict[str, float],
) -> dict[str, Any]:
    """The run card (``RUN_CARD.json``)."""
    import sae_lens
    import torch

    command = "autosteer-train sae" + ("" if cfg == SAERunConfig() else " " + " ".join(_nondefault_flags(cfg)))
    acts = data.acts
    return {
        "model": lm.name,
        "hook_name": hook,
        "layer": layer,
        "layer_rule": rule,
        "architecture": "topk",
        "d_in": lm.d_model,
        "d_sae": cfg.d_sae,
        "k": cfg.k,
        "steps": cfg.steps,
        "batch_size": cfg.batch_size,
        "lr": cfg.lr,
        "seed": cfg.seed,
        "threads": cfg.threads,
        "sae_lens_version": sae_lens.__version__,
        "machine": f"{platform.machine()} {platform.system()}, torch {torch.__version__}",
        "weights_bytes": (Path(cfg.out) / "sae_weights.safetensors").stat().st_size,
        "command": command,
        "config": asdict(cfg),
        "data": {
            **data.desc,
            "prompts": len(data.records),
            "heldout_prompts": len(data.held_p),
            "tokens": acts.meta["n_tokens"],
            "activations": len(acts),
            "train_activations": int(data.train_rows.numel()),
            "tail": cfg.tail,
            "other_fraction": cfg.other_fraction,
        },
        "quality": asdict(final.quality),
        "ce_loss": final.ce,
        "steering": final.steering,
        "steer_boards": len(data.steer_prompts),
        "steer_features": len(final.features),
        "seconds": seconds,
        "layer_comparison": rows,
        "activation_cache": str(cache_path),
        "unsteered_illegal_rate": unsteered_illegal_rate(data.records, acts.answer_cell_logits),
    }


def _write_outputs(
    cfg: SAERunConfig,
    model_name: str,
    hook: str,
    card: dict[str, Any],
    rows: list[dict[str, Any]],
    typical: list[float],
) -> None:
    """``RUN_CARD.json``/``.md`` and ``features.json`` beside the SAE; ``SAE.md`` and the
    layer plot in ``--docs``."""
    out = Path(cfg.out)
    (out / "RUN_CARD.json").write_text(json.dumps(card, indent=2) + "\n")
    (out / "RUN_CARD.md").write_text(render_run_card(card))
    features = {
        "hook_name": hook,
        "d_sae": cfg.d_sae,
        "model": model_name,
        "typical_activation": typical,
        "typical_activation_note": "mean non-zero activation at the answer position on game prompts; "
        "steering coefficient c adds c * typical * W_dec[f]",
        "labels": {},
    }
    (out / "features.json").write_text(json.dumps(features) + "\n")
    docs = Path(cfg.docs)
    docs.mkdir(parents=True, exist_ok=True)
    plot = docs / "sae_layers.png"
    write_layer_plot(rows, plot)
    (docs / "SAE.md").write_text(render_sae_doc(card, rows, plot.name))


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
