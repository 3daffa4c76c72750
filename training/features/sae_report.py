"""The SAE run's markdown and plot: the run card (``RUN_CARD.md`` beside the SAE), the
page ``docs/SAE.md`` (data, the layer comparison and its reading, steering strength, the
shipped SAE) and the layer-comparison plot. Written by ``autosteer-train sae``
(:mod:`training.features.sae`) from its run card dict."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any


def write_layer_plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    layers = [r["layer"] for r in rows]
    fig, axes = plt.subplots(1, 4, figsize=(13, 3.2))
    for ax, key, title in zip(
        axes,
        ("ev", "dead", "concept_mcc", "steer_kl"),
        (
            "held-out explained variance",
            "dead fraction",
            "concept detection (mean best MCC)",
            "steering: mean KL, unit push",
        ),
    ):
        ax.plot(layers, [r[key] for r in rows], marker="o")
        ax.set_xticks(layers)
        ax.set_xlabel("layer (resid_post)")
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def fmt(x: Any, nd: int = 3) -> str:
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
        f"# SAE run card: {card['model']} `{card['hook_name']}`",
        "",
        f"TopK SAE (sae_lens {card['sae_lens_version']}), d_in {card['d_in']}, d_sae {card['d_sae']}, k {card['k']}; "
        f"weights stored as float16 ({card['weights_bytes'] / 1e6:.1f} MB), loaded as float32.",
        "",
        "## Retrain",
        "",
        "```",
        card["command"],
        "```",
        "",
        "## Data",
        "",
        f"- game prompts: {_counts(d['game_prompts'])} (positions drawn from the {d['reachable_nonterminal_positions']} reachable "
        "non-terminal positions; the side to move is implied by the board)",
        f"- chat prompts: {_counts(d['chat_prompts'])} — {d['chat_source']}",
        f"- prompts held out for evaluation: {d['heldout_prompts']} of {d['prompts']}",
        f"- tokens run: {d['tokens']}; activations kept: {d['activations']} (answer position + last {d['tail']} "
        f"tokens of every prompt + {d['other_fraction']:.0%} of the other positions), {d['train_activations']} for training",
        "",
        "## Training",
        "",
        f"- seed {card['seed']}, {card['steps']} steps × batch {card['batch_size']} "
        f"({card['steps'] * card['batch_size']} samples), lr {card['lr']}, Adam",
        f"- time: activations {card['seconds']['activations']:.0f} s, layer comparison "
        f"{card['seconds']['comparison']:.0f} s, final training {card['seconds']['training']:.0f} s, "
        f"total {card['seconds']['total']:.0f} s ({card['threads']} torch thread(s), {card['machine']})",
        "",
        "## Quality (held-out)",
        "",
        "| metric | value |",
        "|---|---|",
        f"| explained variance | {fmt(q['explained_variance'])} |",
        f"| L0 (active features per token) | {fmt(q['l0'], 1)} |",
        f"| dead fraction (never fire on all collected activations) | {fmt(q['dead_fraction'])} |",
        f"| CE loss clean / SAE spliced / zero-ablated | {fmt(ce['clean'])} / {fmt(ce['sae'])} / {fmt(ce['zero'])} |",
        f"| CE loss recovered | {fmt(ce['recovered'])} (on {ce['n_tokens']} tokens of {ce['n_prompts']} held-out prompts) |",
        f"| steering at coef 1 (answer position): mean KL / argmax changed / push ÷ residual norm | "
        f"{fmt(card['steering']['mean_kl'], 4)} / {fmt(card['steering']['argmax_changed'])} / "
        f"{fmt(card['steering']['push_ratio'])} |",
        f"| steering with a push of 1× the answer residual norm ({fmt(card['steering']['answer_resid_norm'], 1)}): "
        f"mean KL / argmax changed | {fmt(card['steering']['unit_push_mean_kl'], 4)} / "
        f"{fmt(card['steering']['unit_push_argmax_changed'])} |",
        "",
        "Unsteered model, share of game prompts where its argmax cell is occupied (strict mode would forfeit): "
        + ", ".join(f"{k} {v:.1%}" for k, v in card.get("unsteered_illegal_rate", {}).items())
        + ".",
        "",
        f"Layer chosen: {card['layer']} — {card['layer_rule']}.",
        "",
    ]
    return "\n".join(lines)


def _layer_reading(rows: list[dict[str, Any]], card: dict[str, Any]) -> str:
    f1s = [r["concept_mcc"] for r in rows]
    kls = [r["steer_kl"] for r in rows]
    evs = [r["ev"] for r in rows]
    return (
        f"Reading the table: reconstruction is good everywhere (EV {min(evs):.3f}–{max(evs):.3f}) and concept "
        f"detection varies from {min(f1s):.3f} to {max(f1s):.3f} (mean best MCC), while the same "
        f"push moves the move distribution {max(kls) / max(min(kls), 1e-9):.0f}× more at the most effective layer "
        "than at the least: later layers are closer to the output, so their features are stronger actuators. "
        "That also means a later layer makes it easier for a policy to use the model as a mere actuator; the "
        "labels (docs/FEATURES.md) say which features detect game concepts and which mainly push cells."
    )


def render_sae_doc(card: dict[str, Any], rows: list[dict[str, Any]], plot_name: str) -> str:
    """``docs/SAE.md``: the data, the layer comparison and the rule's choice, what steering
    along a feature does, and the shipped SAE."""
    return "\n".join([*_doc_data(), *_doc_layers(card, rows, plot_name), *_doc_steering(card), *_doc_shipped(card)])


def _doc_data() -> list[str]:
    return [
        "# The SmolLM2 SAE",
        "",
        "No pretrained SAE exists for SmolLM2-135M-Instruct, so `autosteer-train sae` trains one with sae_lens "
        "on the model's own activations. This page is written by that command; the run card with every figure is "
        "`bots/llm/artifacts/sae/RUN_CARD.md`.",
        "",
        "## Data",
        "",
        "- **Game prompts**: positions drawn (seeded) from the 4,520 reachable non-terminal positions, rendered with "
        "`bots.llm.prompt.render_prompt` in the three phrasings (`grid`, used in play, gets the most; `rows` and "
        "`list` make the SAE learn board concepts rather than one template's token positions).",
        "- **Chat text** (`training.features.corpus`): no data set can be downloaded here, so ordinary text is built offline: "
        "templated everyday questions (cooking, science, travel, code, ...) rendered up to the assistant's reply, and "
        "Python standard-library docstrings as question/answer dialogues. It keeps features from being only about "
        "the board.",
        "- **Positions kept per prompt**: the answer position (the last token, `I take cell ` → the move digit is "
        "read there and steering is applied there), the few tokens before it, and a random share of the rest — the "
        "long shared template prefix would otherwise dominate.",
        "- Activations of every candidate layer are collected in one pass that stops after the deepest one "
        "(`stop_at_layer`); prompts are right-padded in length-sorted batches (exact for a causal model: tested).",
        "",
    ]


def _doc_layers(card: dict[str, Any], rows: list[dict[str, Any]], plot_name: str) -> list[str]:
    table = [
        "| layer | EV (held-out) | L0 | dead | concept MCC | concept F1 | unit push: mean KL | unit push: argmax changed "
        "| coef 1: mean KL | coef 1: push ÷ resid norm | answer resid norm |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        mark = " **(chosen)**" if r["layer"] == card["layer"] else ""
        table.append(
            f"| {r['layer']}{mark} | {r['ev']:.3f} | {r['l0']:.1f} | {r['dead']:.3f} | {r['concept_mcc']:.3f} | {r['concept_f1']:.3f} | "
            f"{r['steer_kl']:.4f} | {r['steer_argmax']:.3f} | {r['coef1_kl']:.4f} | {r['push_ratio']:.3f} | "
            f"{r['answer_resid_norm']:.1f} |"
        )
    return [
        "## Choosing the layer",
        "",
        f"A small TopK SAE (d_sae {rows[0]['d_sae']}, k {card['k']}, {rows[0]['steps']} steps) was trained at each "
        "candidate `blocks.L.hook_resid_post` on the same activations and measured on held-out prompts:",
        "",
        "- **EV**: explained variance of the reconstruction; **L0**: active features per token; **dead**: share of "
        "features that never fire;",
        "- **concept MCC / F1**: for each board concept (cell k mine / opponent's / empty, can win, must block, "
        "fork, best move k, ...; see `training/features/labels.py`) the best Matthews correlation (and F1) any feature "
        "reaches as a detector at the answer position, averaged over concepts (F1 alone flatters features that "
        "fire everywhere when a concept is common);",
        f"- **steering**: the {card['steer_features']} features firing most at the answer position, each pushed "
        f"along its decoder row at the answer position only, on {card['steer_boards']} held-out boards: mean KL of "
        "the move distribution (over cells 1-9) from the unsteered one and the share of pushes that change the "
        "argmax cell. *Unit push*: a vector of norm equal to the layer's mean answer-position residual norm (the "
        "same strength at every layer, so layers compare fairly); *coef 1*: one typical activation of the feature "
        "(what steering coefficient 1 means), with its norm relative to the residual.",
        "",
        *table,
        "",
        f"![layer comparison]({plot_name})",
        "",
        f"Rule: {card['layer_rule']}. Chosen: **layer {card['layer']}** (`{card['hook_name']}`).",
        "",
        _layer_reading(rows, card),
        "",
    ]


def _doc_steering(card: dict[str, Any]) -> list[str]:
    return [
        "## Steering strength",
        "",
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
        "the push norm and KL beside every steered result).",
        "",
        "Unsteered, the model names an occupied cell on "
        + ", ".join(f"{v:.1%} of `{k}` prompts" for k, v in card.get("unsteered_illegal_rate", {}).items())
        + " (argmax over the nine cells, on the prompts of this run).",
        "",
    ]


def _doc_shipped(card: dict[str, Any]) -> list[str]:
    return [
        "## The shipped SAE",
        "",
        f"TopK, d_sae {card['d_sae']}, k {card['k']}, {card['steps']} steps; held-out EV "
        f"{card['quality']['explained_variance']:.3f}, L0 {card['quality']['l0']:.1f}, dead fraction "
        f"{card['quality']['dead_fraction']:.3f}, CE loss recovered {fmt(card['ce_loss']['recovered'])}. "
        "Folder: `bots/llm/artifacts/sae/` in sae_lens's own format (`SAE.load_from_disk`); float16 weights "
        "to keep the artifact small (the cfg says float32, so it loads as float32).",
        "",
        "`features.json` next to it holds, per feature, the *typical activation* (mean non-zero activation at the "
        "answer position on game prompts): steering coefficient c adds c × typical × decoder row, so "
        "coefficients in [-1, 1] are comparable pushes across features. Labels come from `autosteer-train label` "
        "(see `docs/FEATURES.md`).",
        "",
        "Retrain:",
        "",
        "```",
        card["command"],
        "```",
        "",
    ]
