"""Tiny random stand-ins for the LLM stack (model, tokenizer, SAE), for fast tests and benches.

``tiny_language_model()`` is a 2-layer Llama-style ``HookedTransformer`` (RMS norm, rotary,
gated MLP, grouped-query attention) with a character-level tokenizer, so prompts, hooks,
steering and the cached fast path run exactly as with SmolLM2, in milliseconds.
``tiny_sae(lm)`` is a random sae_lens ``StandardSAE`` at a residual hook of that model.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

VOCAB = 128


class CharTokenizer:
    """One token per ASCII character (id = code point mod 128), except ``X``, which is two
    tokens, so that prompts of different boards differ in length as with real tokenizers.
    The digits 1-9 are single tokens."""

    def apply_chat_template(
        self, messages: list[dict[str, str]], tokenize: bool = False, add_generation_prompt: bool = True
    ) -> str:
        text = "".join(f"<{m['role']}>{m['content']}\n" for m in messages)
        return text + ("<assistant>" if add_generation_prompt else "")

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        out: list[int] = []
        for c in text:
            out.extend((88, 120) if c == "X" else (ord(c) % VOCAB,))
        return out

    def decode(self, ids: list[int]) -> str:
        return "".join(chr(i) for i in ids).replace("Xx", "X")


def tiny_language_model(seed: int = 0, n_layers: int = 2, d_model: int = 32) -> Any:
    """A random Llama-style ``LanguageModel`` small enough for unit tests."""
    import torch
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    from bots.llm.model import LanguageModel

    torch.manual_seed(seed)
    cfg = HookedTransformerConfig(
        n_layers=n_layers,
        d_model=d_model,
        n_ctx=512,
        d_head=8,
        n_heads=4,
        n_key_value_heads=2,
        d_mlp=64,
        d_vocab=VOCAB,
        act_fn="silu",
        normalization_type="RMS",
        positional_embedding_type="rotary",
        rotary_dim=8,
        rotary_base=10000,
        gated_mlp=True,
        final_rms=True,
        original_architecture="LlamaForCausalLM",
        default_prepend_bos=False,
        seed=seed,
        init_weights=True,
    )
    with warnings.catch_warnings():  # HookedTransformer is deprecated in TL 3.x but is the tiny test model
        warnings.simplefilter("ignore", DeprecationWarning)
        model = HookedTransformer(cfg)
    # random init leaves biases at zero; give them values so the fast path must handle them
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(("b_Q", "b_K", "b_V", "b_O", "b_in", "b_out", "b_U")):
                p.normal_(0, 0.02)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    tok = CharTokenizer()
    return LanguageModel(
        model=model, tokenizer=tok, name="tiny-llama", source="random", cell_token_ids=[ord(d) for d in "123456789"]
    )


def tiny_sae(
    lm: Any,
    hook_name: str = "blocks.1.hook_resid_pre",
    d_sae: int = 64,
    seed: int = 0,
    folder: str | Path | None = None,
    features: bool = True,
) -> Any:
    """A random sae_lens StandardSAE at ``hook_name``; saved to ``folder`` (sae_lens format,
    plus a ``features.json`` when ``features``) and loaded back with :func:`bots.llm.sae.load_sae`
    when a folder is given."""
    import json

    import torch
    from sae_lens import StandardSAE, StandardSAEConfig
    from sae_lens.saes.sae import SAEMetadata

    from bots.llm.sae import FeatureInfo, LoadedSAE, load_sae

    torch.manual_seed(seed)
    cfg = StandardSAEConfig(d_in=lm.d_model, d_sae=d_sae, metadata=SAEMetadata(hook_name=hook_name, model_name=lm.name))
    sae = StandardSAE(cfg)
    with torch.no_grad():
        sae.b_enc.uniform_(0.0, 0.5)  # so that features fire on random activations
    typical = [round(0.5 + (i % 7) * 0.25, 3) for i in range(d_sae)]
    labels = {"0": {"label": "feature zero"}, "3": {"label": "cell 5 occupied by me"}}
    if folder is None:
        info = (
            FeatureInfo(
                hook_name=hook_name,
                d_sae=d_sae,
                typical_activation=typical,
                labels={int(k): v for k, v in labels.items()},
            )
            if features
            else None
        )
        return LoadedSAE(
            sae=sae,
            hook_name=hook_name,
            d_in=lm.d_model,
            d_sae=d_sae,
            source="random",
            architecture="standard",
            features=info,
        )
    folder = Path(folder)
    sae.save_model(folder)
    if features:
        (folder / "features.json").write_text(
            json.dumps({"hook_name": hook_name, "d_sae": d_sae, "typical_activation": typical, "labels": labels})
        )
    return load_sae(folder)
