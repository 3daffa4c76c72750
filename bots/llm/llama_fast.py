"""Answer-position fast path for Llama-family models: per-board prompt cache, last token only.

Steering touches only the answer position (the last prompt token) from a hook layer ``L``
on. Everything before that position is then identical for every steering vector on the
same board, so per board we run the prompt once and keep

* the residual stream of the last token entering layer ``L`` (the hook activation),
* the rotated keys and the values of the prefix (all positions but the last) for layers
  ``L`` … end,
* the unsteered logits of the nine cell digits.

A steered move then runs one token through layers ``L`` … end against the cached prefix
and scores only the nine digit rows of the unembedding. The result equals a full hooked
forward (tests check 1e-4); it is ~100× cheaper because a prompt is ~125 tokens and only
half the layers run.

The weights are read (never copied or written) from either a Hugging Face
``LlamaForCausalLM`` (what ``TransformerBridge`` wraps) or a TransformerLens
``HookedTransformer`` with Llama-style settings (RMS norm, rotary, gated MLP); see
:func:`llama_weights`. Other architectures use the generic hooked path in
``bots.llm.readers``.
"""

from __future__ import annotations

import math
import re
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, Sequence, cast

import torch
import torch.nn.functional as F

Tensor = torch.Tensor


class FastPathUnsupported(ValueError):
    """The model or hook point cannot use the cached last-token path."""


@dataclass
class LayerWeights:
    """One decoder layer as ``F.linear`` weights (``[out, in]``) plus optional biases."""

    ln1: Tensor
    q: Tensor
    k: Tensor
    v: Tensor
    o: Tensor
    ln2: Tensor
    gate: Tensor
    up: Tensor
    down: Tensor
    bq: Tensor | None = None
    bk: Tensor | None = None
    bv: Tensor | None = None
    bo: Tensor | None = None
    b_up_after_product: Tensor | None = None  # TransformerLens GatedMLP adds b_in after act*lin
    b_down: Tensor | None = None


@dataclass
class LlamaWeights:
    """The parts of a Llama-style model the fast path needs, as views of its parameters."""

    layers: list[LayerWeights]
    embed: Tensor  # [vocab, d_model]
    final_norm: Tensor
    eps: float
    n_heads: int
    n_kv_heads: int
    d_head: int
    rotary_dim: int
    score_scale: float  # multiplies q·k
    rope: Callable[[Tensor], tuple[Tensor, Tensor]]  # positions [...] -> cos, sin [..., rotary_dim]
    unembed_rows: Callable[[list[int]], tuple[Tensor, Tensor | None]]  # token ids -> W [n, D], b [n]
    #: the whole unembedding (views, no copy): W [vocab, D], b [vocab]; for the digits' share of
    #: the next-token mass (None: not measured)
    unembed_all: Callable[[], tuple[Tensor, Tensor | None]] | None = None

    @property
    def n_layers(self) -> int:
        return len(self.layers)

    @property
    def d_model(self) -> int:
        return int(self.embed.shape[1])


# --------------------------------------------------------------------------- weight adapters
def _hf_weights(hf: Any) -> LlamaWeights:
    cfg = hf.config
    core = hf.model
    layers = []
    for blk in core.layers:
        a, m = blk.self_attn, blk.mlp
        layers.append(
            LayerWeights(
                ln1=blk.input_layernorm.weight,
                q=a.q_proj.weight,
                k=a.k_proj.weight,
                v=a.v_proj.weight,
                o=a.o_proj.weight,
                ln2=blk.post_attention_layernorm.weight,
                gate=m.gate_proj.weight,
                up=m.up_proj.weight,
                down=m.down_proj.weight,
                bq=a.q_proj.bias,
                bk=a.k_proj.bias,
                bv=a.v_proj.bias,
                bo=a.o_proj.bias,
                b_down=m.down_proj.bias,
            )
        )
    n_heads = int(cfg.num_attention_heads)
    d_head = int(getattr(cfg, "head_dim", None) or cfg.hidden_size // n_heads)
    rot = core.rotary_emb
    inv_freq = rot.inv_freq.detach().float()
    scaling = float(getattr(rot, "attention_scaling", 1.0))

    def rope(pos: Tensor) -> tuple[Tensor, Tensor]:
        freqs = pos.float()[..., None] * inv_freq
        emb = torch.cat([freqs, freqs], dim=-1)
        return emb.cos() * scaling, emb.sin() * scaling

    head = hf.lm_head

    def unembed_rows(ids: list[int]) -> tuple[Tensor, Tensor | None]:
        idx = torch.tensor(ids, dtype=torch.long)
        w = head.weight.index_select(0, idx)
        b = head.bias.index_select(0, idx) if head.bias is not None else None
        return w, b

    return LlamaWeights(
        layers=layers,
        embed=core.embed_tokens.weight,
        final_norm=core.norm.weight,
        eps=float(cfg.rms_norm_eps),
        n_heads=n_heads,
        n_kv_heads=int(getattr(cfg, "num_key_value_heads", n_heads)),
        d_head=d_head,
        rotary_dim=int(inv_freq.numel() * 2),
        score_scale=float(getattr(hf.model.layers[0].self_attn, "scaling", d_head**-0.5)),
        rope=rope,
        unembed_rows=unembed_rows,
        unembed_all=lambda: (head.weight, head.bias),
    )


def _tl_weights(ht: Any) -> LlamaWeights:
    cfg = ht.cfg
    if (
        cfg.normalization_type not in ("RMS", "RMSPre")
        or cfg.positional_embedding_type != "rotary"
        or not cfg.gated_mlp
        or cfg.rotary_adjacent_pairs
    ):
        raise FastPathUnsupported(
            "the fast path needs a Llama-style HookedTransformer (RMS norm, GPT-NeoX rotary, gated MLP)"
        )
    if cfg.normalization_type == "RMSPre":
        raise FastPathUnsupported("folded RMS norms (RMSPre) are not supported by the fast path")
    layers = []
    H, D, dh = cfg.n_heads, cfg.d_model, cfg.d_head
    for blk in ht.blocks:
        at, m = blk.attn, blk.mlp
        wk = getattr(at, "_W_K", at.W_K)
        wv = getattr(at, "_W_V", at.W_V)
        bk = getattr(at, "_b_K", at.b_K)
        bv = getattr(at, "_b_V", at.b_V)
        # TransformerLens keeps [heads, d_model, d_head]; F.linear wants [heads*d_head, d_model].
        layers.append(
            LayerWeights(
                ln1=blk.ln1.w,
                q=at.W_Q.permute(0, 2, 1).reshape(H * dh, D),
                k=wk.permute(0, 2, 1).reshape(-1, D),
                v=wv.permute(0, 2, 1).reshape(-1, D),
                o=at.W_O.reshape(H * dh, D).T,
                ln2=blk.ln2.w,
                gate=m.W_gate.T,
                up=m.W_in.T,
                down=m.W_out.T,
                bq=at.b_Q.reshape(-1),
                bk=bk.reshape(-1),
                bv=bv.reshape(-1),
                bo=at.b_O,
                b_up_after_product=m.b_in,
                b_down=m.b_out,
            )
        )
    at0 = ht.blocks[0].attn

    def rope(pos: Tensor) -> tuple[Tensor, Tensor]:
        return at0.rotary_cos[pos], at0.rotary_sin[pos]

    def unembed_rows(ids: list[int]) -> tuple[Tensor, Tensor | None]:
        idx = torch.tensor(ids, dtype=torch.long)
        return ht.unembed.W_U.T.index_select(0, idx), ht.unembed.b_U.index_select(0, idx)

    n_kv = int(cfg.n_key_value_heads or H)
    return LlamaWeights(
        layers=layers,
        embed=ht.embed.W_E,
        final_norm=ht.ln_final.w,
        eps=float(cfg.eps),
        n_heads=H,
        n_kv_heads=n_kv,
        d_head=dh,
        rotary_dim=int(cfg.rotary_dim or dh),
        score_scale=1.0 / float(at0.attn_scale),
        rope=rope,
        unembed_rows=unembed_rows,
        unembed_all=lambda: (ht.unembed.W_U.T, ht.unembed.b_U),
    )


def llama_weights(model: Any) -> LlamaWeights:
    """Views of a Llama-family model's weights: a ``TransformerBridge`` over an HF Llama, an
    HF ``LlamaForCausalLM``, or a Llama-style ``HookedTransformer``."""
    hf = getattr(model, "__dict__", {}).get("original_model", None)
    if hf is None and hasattr(model, "config") and hasattr(model, "model"):
        hf = model
    if hf is not None:
        model_type = getattr(getattr(hf, "config", None), "model_type", None)
        if model_type not in LLAMA_MODEL_TYPES:
            raise FastPathUnsupported(
                f"the fast path is verified for {', '.join(LLAMA_MODEL_TYPES)} models, not {model_type!r}"
            )
        layers = getattr(getattr(hf, "model", None), "layers", None)
        blk = layers[0] if layers is not None and len(layers) else None
        if (
            blk is None
            or not all(hasattr(blk, n) for n in ("self_attn", "mlp", "input_layernorm", "post_attention_layernorm"))
            or not hasattr(blk.mlp, "gate_proj")
            or not hasattr(hf.model, "rotary_emb")
        ):
            raise FastPathUnsupported(f"{type(hf).__name__} is not a Llama-style model")
        return _hf_weights(hf)
    if hasattr(model, "blocks") and hasattr(model, "cfg"):
        return _tl_weights(model)
    raise FastPathUnsupported(f"cannot read Llama weights from {type(model).__name__}")


#: HF model types whose layers are exactly what this module computes (SmolLM2 is "llama")
LLAMA_MODEL_TYPES = ("llama",)

_HOOK_RE = re.compile(r"^blocks\.(\d+)\.(hook_resid_pre|hook_in|hook_resid_post|hook_out)$")


def start_layer_for_hook(hook_name: str, n_layers: int) -> int:
    """The first layer that runs after the hook: ``blocks.L.hook_resid_pre`` → ``L``,
    ``blocks.L.hook_resid_post`` → ``L+1``. Other hook points are not residual-stream
    points between layers and have no fast path."""
    m = _HOOK_RE.match(hook_name)
    if not m:
        raise FastPathUnsupported(f"hook {hook_name!r} is not a residual-stream hook between layers")
    layer = int(m.group(1))
    if layer >= n_layers:
        raise FastPathUnsupported(f"hook {hook_name!r} names layer {layer}; the model has {n_layers}")
    return layer + (1 if m.group(2) in ("hook_resid_post", "hook_out") else 0)


# --------------------------------------------------------------------------- the computation
def _rms(x: Tensor, w: Tensor, eps: float) -> Tensor:
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def _rotate(x: Tensor, cos: Tensor, sin: Tensor, rd: int) -> Tensor:
    xr, xp = x[..., :rd], x[..., rd:]
    half = rd // 2
    flipped = torch.cat([-xr[..., half:], xr[..., :half]], dim=-1)
    out = xr * cos + flipped * sin
    return torch.cat([out, xp], dim=-1) if xp.numel() else out


def _mlp(x: Tensor, lw: LayerWeights, eps: float) -> Tensor:
    h = _rms(x, lw.ln2, eps)
    post = F.silu(F.linear(h, lw.gate)) * F.linear(h, lw.up)
    if lw.b_up_after_product is not None:
        post = post + lw.b_up_after_product
    return F.linear(post, lw.down, lw.b_down)


@dataclass
class BoardEntry:
    """What one prompt leaves in the cache (about 1.4 MB for SmolLM2 with L = 15)."""

    length: int
    resid: Tensor  # [d_model] residual of the last token entering the start layer
    kv: Tensor  # [n_cached_layers, 2, n_kv_heads, length-1, d_head] prefix keys (rotated) and values
    digit_logits: Tensor  # [9] unsteered
    #: log of the digits' share of the unsteered next-token probability (None: not measured)
    log_digit_mass: Tensor | None = None

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (self.resid, self.kv, self.digit_logits))


class LlamaAnswerPath:
    """Runs prompts once per board (:meth:`prefill`) and steered answer tokens cheaply
    (:meth:`answer_logits`). Stateless apart from the weights; caching is the caller's."""

    def __init__(
        self, weights: LlamaWeights, start_layer: int, digit_token_ids: Sequence[int], keep_kv: bool = True
    ) -> None:
        if not 0 <= start_layer <= weights.n_layers:
            raise FastPathUnsupported(f"start layer {start_layer} outside 0..{weights.n_layers}")
        self.w = weights
        self.start_layer = start_layer
        self.keep_kv = keep_kv  # False: entries hold only the residual and logits (no steering possible)
        self.digit_ids = list(digit_token_ids)
        self.digit_w, self.digit_b = weights.unembed_rows(self.digit_ids)
        self._prefixes: dict[tuple[int, ...], Tensor] = {}

    def _digits(self, x: Tensor) -> Tensor:
        h = _rms(x, self.w.final_norm, self.w.eps)
        return F.linear(h, self.digit_w, self.digit_b)

    def log_digit_mass(self, x: Tensor) -> Tensor | None:
        """``[B]``: log of the nine digits' share of the next-token probability for final
        residuals ``x`` ``[B, D]`` (a full-vocabulary unembedding; None when the weights do
        not expose it). Near 0 unsteered; strong steering moves mass to other tokens, which
        the nine digit logits alone cannot show."""
        if self.w.unembed_all is None:
            return None
        h = _rms(x, self.w.final_norm, self.w.eps)
        W, b = self.w.unembed_all()
        full = F.linear(h, W, b)
        return torch.logsumexp(full[:, self.digit_ids], -1) - torch.logsumexp(full, -1)

    def prefix_kv(self, prefix: Sequence[int]) -> Tensor:
        """Rotated keys and values of a token prefix at every layer, ``[n_layers, 2, Hk, K, dh]``,
        computed once per distinct prefix (at most a few: the prompt's fixed opening per side
        to move) and kept."""
        key = tuple(int(t) for t in prefix)
        kv = self._prefixes.get(key)
        if kv is None:
            all_kv = self._run([list(key)], None, want_all_kv=True)[0]
            assert all_kv is not None  # want_all_kv
            kv = all_kv[0].contiguous()
            self._prefixes[key] = kv
            while len(self._prefixes) > 16:
                self._prefixes.pop(next(iter(self._prefixes)))
        return kv

    @torch.no_grad()
    def prefill(self, prompts: Sequence[Sequence[int]], shared_prefix: int = 0) -> list[BoardEntry]:
        """Forward of each prompt (batched, right-padded) and the cache entries.

        With ``shared_prefix = K > 0`` every prompt starts with the same ``K`` tokens: their
        keys and values come from :meth:`prefix_kv` (computed once, then reused) and only the
        rest of each prompt is run — the same numbers, for about half the work on the game
        prompts (their first ~57 of ~125 tokens are the same for every board with the same
        side to move)."""
        lengths = [len(p) for p in prompts]
        if min(lengths) < 1:
            raise ValueError("empty prompt")
        K = int(shared_prefix)
        if K:
            if not 0 < K < min(lengths):
                raise ValueError(f"shared prefix of {K} tokens must be shorter than every prompt ({min(lengths)})")
            head = list(prompts[0][:K])
            if any(list(p[:K]) != head for p in prompts[1:]):
                raise ValueError(f"the prompts do not share their first {K} tokens")
            return self._run(prompts, self.prefix_kv(head))[1]
        return self._run(prompts, None)[1]

    @torch.no_grad()
    def prefill_tree(
        self,
        prompts: Sequence[Sequence[int]],
        shared_prefix: int = 0,
        step: int = 8,
        batch: int = 64,
        progress: Callable[[int], None] | None = None,
    ) -> list[BoardEntry]:
        """:meth:`prefill` for many prompts that also share longer openings, in prefix-tree order.

        Prompts of boards that agree on their first cells agree on more tokens than the
        common opening. The prompts are cut into a tree every ``step`` tokens after the
        first ``shared_prefix``: the keys and values of a stretch that two or more prompts
        share are computed once (siblings batched) and every prompt runs only the tokens
        after its longest shared stretch, in batches of ``batch`` rows whose prefixes have
        the same length. The entries are the same numbers as :meth:`prefill`'s (causal
        attention: a token's keys and values depend only on the tokens before it).
        ``progress(n)`` is told each time ``n`` more entries are done."""
        n = len(prompts)
        if n == 0:
            return []
        if min(len(p) for p in prompts) < 1:
            raise ValueError("empty prompt")
        K0 = int(shared_prefix)
        _check_shared_prefix(prompts, K0)
        out: list[BoardEntry | None] = [None] * n
        buckets: dict[int, list[tuple[int, Tensor | None]]] = {}  # prefix length -> (prompt, prefix kv)

        def flush(K: int) -> None:
            rows = buckets.pop(K, [])
            for i in range(0, len(rows), batch):
                chunk = rows[i : i + batch]
                # cast: a prefix of K > 0 tokens always has its keys and values
                kv = None if K == 0 else torch.stack([cast(Tensor, r[1]) for r in chunk])
                done = self._run([prompts[j] for j, _ in chunk], kv)[1]
                for (j, _), e in zip(chunk, done):
                    out[j] = e
                if progress is not None:
                    progress(len(chunk))

        stack: list[tuple[int, Tensor | None, list[int]]] = [
            (K0, self.prefix_kv(prompts[0][:K0]) if K0 else None, list(range(n)))
        ]
        while stack:
            K, kv, members = stack.pop()
            shared, alone = _split_by_stretch(prompts, members, K, step)
            for j in alone:
                buckets.setdefault(K, []).append((j, kv))
            if len(buckets.get(K, ())) >= batch:
                flush(K)
            for i in range(0, len(shared), batch):
                group = shared[i : i + batch]
                new = self._run([prompts[p[0]][: K + step] for p in group], kv, want_all_kv=True)[0]
                assert new is not None  # want_all_kv
                for p, rows in zip(group, new):  # rows: [n_layers, 2, Hk, step, dh]
                    full = rows if kv is None else torch.cat([kv, rows], dim=3)
                    stack.append((K + step, full.contiguous(), p))
        for K in sorted(buckets):
            flush(K)
        return cast(list[BoardEntry], out)  # cast: every prompt was flushed into out

    def _run(
        self, prompts: Sequence[Sequence[int]], prefix: Tensor | None, want_all_kv: bool = False
    ) -> tuple[Tensor | None, list[BoardEntry]]:
        """The batched forward: ``prefix`` holds the keys and values of the first ``K`` tokens
        of every prompt, which are then not run again: ``[n_layers, 2, Hk, K, dh]`` shared by
        every row, or ``[B, n_layers, 2, Hk, K, dh]`` one per row. ``want_all_kv``: return
        the keys/values of the rows' own tokens at every layer, ``[B, n_layers, 2, Hk, T, dh]``
        (for longer prefixes)."""
        w = self.w
        B = len(prompts)
        K = 0 if prefix is None else int(prefix.shape[-2])
        per_row = prefix is not None and prefix.dim() == 6
        lengths = [len(p) for p in prompts]
        T = max(lengths) - K  # tokens run per row
        x = w.embed[_tokens_after(prompts, K, T)]
        cos, sin = w.rope(torch.arange(K, K + T))
        H, Hk, dh = w.n_heads, w.n_kv_heads, w.d_head
        last = torch.tensor(lengths) - 1 - K
        rows = torch.arange(B)
        kept: list[Tensor] = []
        all_kv: list[Tensor] = []
        mask = _prefix_mask(T, K)
        resid_at_start = x[rows, last].clone() if self.start_layer == 0 else None
        for li, lw in enumerate(w.layers):
            h = _rms(x, lw.ln1, w.eps)
            q = F.linear(h, lw.q, lw.bq).view(B, T, H, dh).transpose(1, 2)
            k = F.linear(h, lw.k, lw.bk).view(B, T, Hk, dh).transpose(1, 2)
            v = F.linear(h, lw.v, lw.bv).view(B, T, Hk, dh).transpose(1, 2)
            q = _rotate(q, cos, sin, w.rotary_dim)
            k = _rotate(k, cos, sin, w.rotary_dim)
            if want_all_kv:
                all_kv.append(torch.stack([k, v], dim=1))  # [B, 2, Hk, T, dh]
            if prefix is not None and per_row:
                k = torch.cat([prefix[:, li, 0], k], dim=2)
                v = torch.cat([prefix[:, li, 1], v], dim=2)
            elif prefix is not None:
                k = torch.cat([prefix[li, 0].expand(B, Hk, K, dh), k], dim=2)
                v = torch.cat([prefix[li, 1].expand(B, Hk, K, dh), v], dim=2)
            if li >= self.start_layer and self.keep_kv:
                kept.append(torch.stack([k, v], dim=1))  # [B, 2, Hk, K + T, dh]
            att = F.scaled_dot_product_attention(
                q, k, v, attn_mask=mask, is_causal=mask is None, scale=w.score_scale, enable_gqa=Hk != H
            )
            x = x + F.linear(att.transpose(1, 2).reshape(B, T, H * dh), lw.o, lw.bo)
            x = x + _mlp(x, lw, w.eps)
            if li + 1 == self.start_layer:
                resid_at_start = x[rows, last].clone()
        if want_all_kv:
            return torch.stack(all_kv, dim=1), []  # [B, n_layers, 2, Hk, T, dh]
        logits = self._digits(x[rows, last])
        masses = self.log_digit_mass(x[rows, last])
        assert resid_at_start is not None  # start_layer <= n_layers: taken at or before the last layer
        return None, _board_entries(lengths, kept, resid_at_start, logits, masses, Hk, dh)

    @torch.no_grad()
    def answer_logits(self, entries: Sequence[BoardEntry], added: Tensor | None = None) -> Tensor:
        """Digit logits ``[B, 9]`` when ``added[b]`` is added to the residual of the last
        token of ``entries[b]`` entering the start layer. ``added=None`` returns the
        cached unsteered logits."""
        if added is None:
            return torch.stack([e.digit_logits for e in entries])
        return self._digits(self._final_residual(entries, added))

    @torch.no_grad()
    def answer_logits_and_mass(self, entries: Sequence[BoardEntry], added: Tensor) -> tuple[Tensor, Tensor | None]:
        """:meth:`answer_logits` with steering, and the log digit mass of each answer."""
        x = self._final_residual(entries, added)
        return self._digits(x), self.log_digit_mass(x)

    def _final_residual(self, entries: Sequence[BoardEntry], added: Tensor) -> Tensor:
        """``[B, D]``: the answer token's residual after the last layer, with ``added``."""
        if not self.keep_kv and self.start_layer < self.w.n_layers:
            raise FastPathUnsupported("this answer path was built without the prefix keys/values (keep_kv=False)")
        w = self.w
        B = len(entries)
        if added.shape != (B, w.d_model):
            raise ValueError(f"added vectors have shape {tuple(added.shape)}, expected {(B, w.d_model)}")
        x = (torch.stack([e.resid for e in entries]) + added)[:, None, :]  # [B, 1, D]
        if self.start_layer == w.n_layers:
            return x[:, 0]
        H, Hk, dh = w.n_heads, w.n_kv_heads, w.d_head
        lengths = [e.length for e in entries]
        P = max(lengths) - 1  # prefix slots
        if all(n == lengths[0] for n in lengths):
            kv = torch.stack([e.kv for e in entries])  # [B, nl, 2, Hk, P, dh]
            mask = None
        else:
            kv = torch.zeros(B, entries[0].kv.shape[0], 2, Hk, P, dh)
            mask = torch.zeros(B, 1, 1, P + 1, dtype=torch.bool)
            for i, e in enumerate(entries):
                kv[i, :, :, :, : e.length - 1] = e.kv
                mask[i, 0, 0, : e.length - 1] = True
            mask[:, 0, 0, P] = True
        pos = torch.tensor(lengths) - 1
        cos, sin = w.rope(pos)
        cos, sin = cos[:, None, None, :], sin[:, None, None, :]  # [B, 1, 1, rd]
        for j, lw in enumerate(w.layers[self.start_layer :]):
            h = _rms(x, lw.ln1, w.eps)
            q = _rotate(F.linear(h, lw.q, lw.bq).view(B, 1, H, dh).transpose(1, 2), cos, sin, w.rotary_dim)
            k = _rotate(F.linear(h, lw.k, lw.bk).view(B, 1, Hk, dh).transpose(1, 2), cos, sin, w.rotary_dim)
            v = F.linear(h, lw.v, lw.bv).view(B, 1, Hk, dh).transpose(1, 2)
            keys = torch.cat([kv[:, j, 0], k], dim=2)
            values = torch.cat([kv[:, j, 1], v], dim=2)
            att = F.scaled_dot_product_attention(
                q, keys, values, attn_mask=mask, scale=w.score_scale, enable_gqa=Hk != H
            )
            x = x + F.linear(att.transpose(1, 2).reshape(B, 1, H * dh), lw.o, lw.bo)
            x = x + _mlp(x, lw, w.eps)
        return x[:, 0]


def _check_shared_prefix(prompts: Sequence[Sequence[int]], K0: int) -> None:
    """A ``ValueError`` unless every prompt starts with the same ``K0`` tokens and is longer."""
    if K0:
        head = list(prompts[0][:K0])
        if any(list(p[:K0]) != head for p in prompts[1:]) or K0 >= min(len(p) for p in prompts):
            raise ValueError(f"the prompts do not share their first {K0} tokens (or one is no longer)")


def _split_by_stretch(
    prompts: Sequence[Sequence[int]], members: list[int], K: int, step: int
) -> tuple[list[list[int]], list[int]]:
    """One level of :meth:`LlamaAnswerPath.prefill_tree`'s tree: the groups of ``members``
    (two or more) whose prompts agree on tokens ``K .. K + step`` and go on after them, and
    the other members, sorted (they run from ``K`` on)."""
    parts: dict[tuple[int, ...], list[int]] = {}
    for j in members:
        if len(prompts[j]) > K + step:
            parts.setdefault(tuple(int(t) for t in prompts[j][K : K + step]), []).append(j)
    shared = [p for p in parts.values() if len(p) > 1]
    alone = set(members) - {j for p in shared for j in p}
    return shared, sorted(alone)


def _tokens_after(prompts: Sequence[Sequence[int]], K: int, T: int) -> Tensor:
    """``[B, T]`` token ids of each prompt after its first ``K``, right-padded with 0."""
    tokens = torch.zeros(len(prompts), T, dtype=torch.long)
    for i, p in enumerate(prompts):
        tokens[i, : len(p) - K] = torch.as_tensor(list(p[K:]), dtype=torch.long)
    return tokens


def _prefix_mask(T: int, K: int) -> Tensor | None:
    """Attention mask of ``T`` new tokens after a ``K``-token prefix: causal within the new
    tokens, everything in the prefix visible (None without a prefix: plain causal)."""
    if not K:
        return None
    mask = torch.ones(T, K + T, dtype=torch.bool)
    mask[:, K:] = torch.ones(T, T, dtype=torch.bool).tril()
    return mask


def _board_entries(
    lengths: Sequence[int],
    kept: list[Tensor],
    resid_at_start: Tensor,
    logits: Tensor,
    masses: Tensor | None,
    Hk: int,
    dh: int,
) -> list[BoardEntry]:
    """One :class:`BoardEntry` per row: its residual at the start layer, the keys and values
    kept (all but the last token's), and its digit logits and mass."""
    entries = []
    for i, n in enumerate(lengths):
        if kept:
            kv = torch.stack([t[i, :, :, : n - 1] for t in kept]).contiguous()
        else:
            kv = torch.empty(0, 2, Hk, n - 1, dh)
        entries.append(
            BoardEntry(
                length=n,
                resid=resid_at_start[i].contiguous(),
                kv=kv,
                digit_logits=logits[i].clone(),
                log_digit_mass=None if masses is None else masses[i].clone(),
            )
        )
    return entries


class BoardCache:
    """A bounded LRU map from prompt key (board code + phrasing) to :class:`BoardEntry`."""

    def __init__(self, max_boards: int = 512) -> None:
        if max_boards < 1:
            raise ValueError(f"the board cache needs room for at least one board, got {max_boards}")
        self.max_boards = max_boards
        self._entries: OrderedDict[str, BoardEntry] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, key: str) -> BoardEntry | None:
        e = self._entries.get(key)
        if e is None:
            self.misses += 1
            return None
        self.hits += 1
        self._entries.move_to_end(key)
        return e

    def put(self, key: str, entry: BoardEntry) -> None:
        self._entries[key] = entry
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_boards:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)

    def nbytes(self) -> int:
        return sum(e.nbytes for e in self._entries.values())

    def stats(self) -> dict[str, Any]:
        total = self.hits + self.misses
        return {
            "boards": len(self),
            "max_boards": self.max_boards,
            "hits": self.hits,
            "misses": self.misses,
            "hit_rate": round(self.hits / total, 4) if total else math.nan,
            "megabytes": round(self.nbytes() / 2**20, 1),
        }
