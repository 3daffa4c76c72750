"""Residual-stream activations of game and chat prompts, and last-token steering probes.

Two jobs, both on a TransformerLens-wrapped model (``bots.llm.model.LanguageModel``):

* ``collect_activations`` runs prompts up to the deepest requested hook (``stop_at_layer``)
  and keeps a subsample of positions per prompt: always the answer position (the last
  token, where the move is read and steering is applied) and the few tokens before it, plus
  a seeded random fraction of the rest. Prompts are batched by length and right-padded:
  in a causal model a real token never attends to padding that comes after it, so the
  kept positions are exact (a test checks this against one-prompt runs).
* ``LastTokenSteering`` measures what an addition at the answer position does to the move
  distribution. Steering there changes nothing before the last token, so the prompt's
  prefix is run once and only the last token is re-run, for a whole batch of steering
  vectors at once (the K/V of the prefix are shared). The result equals a full forward
  with the same hook (tested).

``make_tiny_llama`` builds a small random Llama with a character tokenizer so tests and
smoke runs need no real model.
"""

from __future__ import annotations

import copy
import pickle
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

HOOK_RE = re.compile(r"^blocks\.(\d+)\.hook_resid_post$")


class ActivationError(ValueError):
    """Bad input to activation collection (hook name, file); the message names it."""


def hook_layer(hook_name: str, n_layers: int | None = None) -> int:
    """The block index of a ``blocks.{L}.hook_resid_post`` hook name.

    >>> hook_layer("blocks.12.hook_resid_post")
    12
    """
    m = HOOK_RE.match(hook_name)
    if not m:
        raise ActivationError(f"unsupported hook {hook_name!r}: expected blocks.<layer>.hook_resid_post")
    layer = int(m.group(1))
    if n_layers is not None and not 0 <= layer < n_layers:
        raise ActivationError(f"hook {hook_name!r}: the model has layers 0..{n_layers - 1}")
    return layer


def resid_hook(layer: int) -> str:
    return f"blocks.{layer}.hook_resid_post"


@dataclass(frozen=True)
class PromptRecord:
    """One prompt of the activation data set: a game position in a phrasing, or chat text."""

    kind: str  # "game" or "chat"
    text: str
    board: str = ""  # board code for game prompts
    phrasing: str = ""  # prompt phrasing for game prompts, chat source for chat prompts


@dataclass
class ActivationSet:
    """Activations at some hooks for a subsample of token positions of many prompts."""

    hook_names: list[str]
    acts: dict[str, Any]  # hook -> float16 tensor [n_rows, d_model]
    prompt_index: np.ndarray  # int32 [n_rows]: index into records
    position: np.ndarray  # int32 [n_rows]: token position in its prompt
    is_answer: np.ndarray  # bool [n_rows]: the prompt's last token
    records: list[PromptRecord]
    n_tokens_run: int = 0
    seconds: float = 0.0
    meta: dict[str, Any] = field(default_factory=dict)
    # [n_prompts, 9] the unsteered model's logits of cells 1-9 at each prompt's answer
    # position (None unless collected with answer_logits=True)
    answer_cell_logits: Any = None

    def __len__(self) -> int:
        return int(self.prompt_index.shape[0])

    def rows_of_prompts(self, prompt_ids: Iterable[int]) -> np.ndarray:
        wanted = np.zeros(len(self.records), dtype=bool)
        wanted[list(prompt_ids)] = True
        return np.nonzero(wanted[self.prompt_index])[0]

    def save(self, path: str | Path) -> None:
        import torch

        Path(path).parent.mkdir(parents=True, exist_ok=True)
        torch.save(
            {
                "hook_names": self.hook_names,
                "acts": self.acts,
                "prompt_index": self.prompt_index,
                "position": self.position,
                "is_answer": self.is_answer,
                "records": [r.__dict__ for r in self.records],
                "n_tokens_run": self.n_tokens_run,
                "seconds": self.seconds,
                "meta": self.meta,
                "answer_cell_logits": self.answer_cell_logits,
            },
            str(path),
        )

    @classmethod
    def load(cls, path: str | Path) -> "ActivationSet":
        import torch

        p = Path(path)
        if not p.is_file():
            raise ActivationError(f"no activation file at {p}; run `autosteer-train sae` first")
        try:
            d = torch.load(str(p), weights_only=False)
            return cls(
                hook_names=d["hook_names"],
                acts=d["acts"],
                prompt_index=d["prompt_index"],
                position=d["position"],
                is_answer=d["is_answer"],
                records=[PromptRecord(**r) for r in d["records"]],
                n_tokens_run=d["n_tokens_run"],
                seconds=d["seconds"],
                meta=d.get("meta", {}),
                answer_cell_logits=d.get("answer_cell_logits"),
            )
        except (KeyError, TypeError, RuntimeError, EOFError, OSError, pickle.UnpicklingError) as exc:
            raise ActivationError(f"{p} is not an activation file written by autosteer-train sae ({exc})") from None


def choose_positions(
    n_tokens: int, rng: np.random.Generator, *, tail: int, other_fraction: float, skip_first: int = 1
) -> np.ndarray:
    """Positions kept from a prompt of ``n_tokens``: the last ``tail`` (the answer position
    is the very last) and a random ``other_fraction`` of the rest, sorted. The first
    ``skip_first`` positions are never kept: in SmolLM2 the opening ``<|im_start|>`` is an
    attention sink whose residual norm is ~25,000 against ~150 elsewhere (measured at layer
    12), which would swamp the SAE's loss and make explained variance meaningless.

    >>> choose_positions(10, np.random.default_rng(0), tail=3, other_fraction=0.0).tolist()
    [7, 8, 9]
    >>> 0 in choose_positions(10, np.random.default_rng(0), tail=3, other_fraction=1.0).tolist()
    False
    """
    tail = min(tail, max(n_tokens - skip_first, 1))
    rest = np.arange(min(skip_first, n_tokens - tail), n_tokens - tail)
    keep = rest[rng.random(rest.shape[0]) < other_fraction]
    return np.concatenate([keep, np.arange(n_tokens - tail, n_tokens)]).astype(np.int64)


def tokenize(tokenizer: Any, texts: Sequence[str]) -> list[list[int]]:
    """Token ids of rendered prompts; the chat template already holds every special token."""
    return [list(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts]


def pad_id(tokenizer: Any) -> int:
    for cand in (tokenizer.pad_token_id, tokenizer.eos_token_id, 0):
        if cand is not None:
            return int(cand)
    return 0


def length_batches(lengths: Sequence[int], max_batch_tokens: int) -> list[list[int]]:
    """Group prompt indices, longest first, into batches whose padded size stays under
    ``max_batch_tokens`` (a prompt longer than that runs alone).

    >>> length_batches([3, 5, 4, 1], 10)
    [[1, 2], [0, 3]]
    """
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    batches: list[list[int]] = []
    cur: list[int] = []
    for i in order:
        width = lengths[cur[0]] if cur else lengths[i]
        if cur and (len(cur) + 1) * width > max_batch_tokens:
            batches.append(cur)
            cur = []
        cur.append(i)
    if cur:
        batches.append(cur)
    return batches


def collect_activations(
    lm: Any,
    records: Sequence[PromptRecord],
    hook_names: Sequence[str],
    *,
    tail: int = 6,
    other_fraction: float = 0.15,
    seed: int = 0,
    skip_first: int = 1,
    max_batch_tokens: int = 2048,
    progress: bool = True,
    answer_logits: bool = False,
    desc: str = "activations",
) -> ActivationSet:
    """Run every prompt up to the deepest hook and keep the chosen positions' activations.

    With ``answer_logits`` the prompts run through every layer and the unsteered logits of
    the nine cell digits at the answer position are kept too (the unembedding is applied
    to that one position only)."""
    import time

    import torch
    from tqdm.auto import tqdm

    model, tokenizer = lm.model, lm.tokenizer
    layers = [hook_layer(h, lm.n_layers) for h in hook_names]
    stop: int | None = max(layers) + 1
    token_ids = tokenize(tokenizer, [r.text for r in records])
    lengths = [len(t) for t in token_ids]
    if not lengths or min(lengths) < 1:
        raise ActivationError("every prompt needs at least one token")
    rng = np.random.default_rng(seed)
    # positions are drawn in prompt order, so the sample does not depend on batching
    chosen = [
        choose_positions(n, rng, tail=tail, other_fraction=other_fraction, skip_first=skip_first) for n in lengths
    ]
    pid = pad_id(tokenizer)
    captured: dict[str, torch.Tensor] = {}
    hooks = _capture_hooks(lm, hook_names, captured)
    w_cells = None
    if answer_logits:
        w_cells, b_cells = _cell_unembedding(lm)
        hooks.append(("unembed.hook_in", _capture_and_stop(captured)))
        stop = None
    cell_logits = np.full((len(records), 9), np.nan, dtype=np.float32)

    kept = _KeptPositions(hook_names)
    n_run = 0
    t0 = time.perf_counter()
    batches = length_batches(lengths, max_batch_tokens)
    bar = tqdm(total=sum(lengths), desc=desc, unit="tok", disable=not progress, smoothing=0.1)
    with torch.no_grad():
        for batch in batches:
            width = lengths[batch[0]]
            toks = _padded_batch(batch, token_ids, lengths, pid)
            captured.clear()
            _run_hooked(model, toks, hooks, stop)
            if w_cells is not None:
                cell_logits[batch] = _answer_cell_logits(captured[_FINAL], batch, lengths, w_cells, b_cells)
            for h in hook_names:
                if h not in captured:
                    raise ActivationError(f"hook {h!r} did not fire on {getattr(lm, 'name', 'the model')}")
            kept.add(captured, batch, chosen, lengths)
            n_run += len(batch) * width
            bar.update(sum(lengths[i] for i in batch))
    bar.close()
    return kept.activation_set(
        records,
        n_tokens_run=n_run,
        seconds=time.perf_counter() - t0,
        meta={
            "tail": tail,
            "other_fraction": other_fraction,
            "seed": seed,
            "skip_first": skip_first,
            "n_tokens": int(sum(lengths)),
        },
        answer_cell_logits=cell_logits if answer_logits else None,
    )


def _capture_hooks(lm: Any, hook_names: Sequence[str], captured: dict[str, Any]) -> list[tuple[str, Any]]:
    """Forward hooks that store each named hook's output in ``captured``; an
    :class:`ActivationError` if the model lacks one of them."""

    def capture_as(name: str) -> Any:
        def capture(x: Any, hook: Any) -> Any:
            captured[name] = x.detach()
            return x

        return capture

    for h in hook_names:
        if h not in lm.model.hook_dict:
            raise ActivationError(f"{getattr(lm, 'name', 'the model')} has no hook {h!r}")
    return [(h, capture_as(h)) for h in hook_names]


def _run_hooked(model: Any, toks: Any, hooks: list[tuple[str, Any]], stop: int | None) -> None:
    """One forward with the capture hooks, stopped at layer ``stop`` or by the unembedding's
    input hook (:class:`_StopForward`)."""
    try:
        model.run_with_hooks(toks, fwd_hooks=hooks, stop_at_layer=stop, return_type=None)
    except _StopForward:
        pass


def _answer_cell_logits(
    final: Any, batch: Sequence[int], lengths: Sequence[int], w_cells: Any, b_cells: Any
) -> np.ndarray:
    """The nine cell digits' logits at each prompt's last (answer) position, from the final
    normed residual."""
    import torch

    last = final[torch.arange(len(batch)), torch.tensor([lengths[i] - 1 for i in batch])].float()
    return (last @ w_cells + b_cells).numpy()


def _padded_batch(batch: Sequence[int], token_ids: Sequence[Sequence[int]], lengths: Sequence[int], pid: int) -> Any:
    """The batch's prompts as one ``[len(batch), longest]`` tensor, right-padded with ``pid``."""
    import torch

    toks = torch.full((len(batch), lengths[batch[0]]), pid, dtype=torch.long)
    for row, i in enumerate(batch):
        toks[row, : lengths[i]] = torch.tensor(token_ids[i])
    return toks


class _KeptPositions:
    """The chosen positions' activations, gathered batch by batch, and where they came from."""

    def __init__(self, hook_names: Sequence[str]) -> None:
        self.hook_names = list(hook_names)
        self.acts: dict[str, list[Any]] = {h: [] for h in hook_names}
        self.prompt_index: list[np.ndarray] = []
        self.position: list[np.ndarray] = []
        self.is_answer: list[np.ndarray] = []

    def add(
        self, captured: dict[str, Any], batch: Sequence[int], chosen: Sequence[np.ndarray], lengths: Sequence[int]
    ) -> None:
        """Keep the chosen positions of one batch's captured activations (as float16)."""
        import torch

        rows = torch.cat([torch.full((len(chosen[i]),), row) for row, i in enumerate(batch)])
        cols = torch.cat([torch.from_numpy(chosen[i]) for i in batch])
        for h in self.hook_names:
            self.acts[h].append(captured[h][rows, cols].to(torch.float16))
        for i in batch:
            self.prompt_index.append(np.full(len(chosen[i]), i, dtype=np.int32))
            self.position.append(chosen[i].astype(np.int32))
            self.is_answer.append(chosen[i] == lengths[i] - 1)

    def activation_set(self, records: Sequence[PromptRecord], **kwargs: Any) -> ActivationSet:
        """The kept positions in prompt order, so the set is the same whatever the batching."""
        import torch

        pi = np.concatenate(self.prompt_index)
        pos = np.concatenate(self.position)
        order = np.lexsort((pos, pi))
        acts = {h: torch.cat(v)[torch.from_numpy(order)] for h, v in self.acts.items()}
        return ActivationSet(
            hook_names=list(self.hook_names),
            acts=acts,
            prompt_index=pi[order],
            position=pos[order],
            is_answer=np.concatenate(self.is_answer)[order],
            records=list(records),
            **kwargs,
        )


_FINAL = "__final_normed_residual__"


class _StopForward(Exception):
    """Raised from the unembedding's input hook: the cell logits are computed from it for
    the answer position only, so the full-vocabulary unembedding is skipped."""


def _capture_and_stop(captured: dict[str, Any]) -> Any:
    def hook(x: Any, hook: Any) -> Any:
        captured[_FINAL] = x.detach()
        raise _StopForward

    return hook


def _cell_unembedding(lm: Any) -> tuple[Any, Any]:
    """``[d_model, 9]`` unembedding columns of the cell digits, and their bias."""
    import torch

    ids = list(lm.cell_token_ids)
    hf = lm.model.__dict__.get("original_model")
    head = getattr(hf, "lm_head", None) if hf is not None else None
    if head is not None and hasattr(head, "weight"):
        w = head.weight.detach()[ids].float().T
        b = head.bias.detach()[ids].float() if getattr(head, "bias", None) is not None else torch.zeros(9)
        return w, b
    w = lm.model.W_U.detach()[:, ids].float()
    b_u = getattr(lm.model, "b_U", None)
    return w, (b_u.detach()[ids].float() if b_u is not None else torch.zeros(9))


def cell_log_probs(logits: Any, cell_token_ids: Sequence[int]) -> Any:
    """Log-probabilities of the nine cells: softmax over the digit tokens 1-9 only."""
    import torch

    return torch.log_softmax(logits[..., list(cell_token_ids)].float(), dim=-1)


class LastTokenSteering:
    """The move distribution of one prompt under many additions at the answer position.

    ``cell_log_probs(token_ids, deltas)`` returns ``[1 + B, 9]``: row 0 unsteered, row
    ``b + 1`` with ``deltas[b]`` added to the last token's residual at ``hook_name``.
    With a Hugging Face model under the bridge the prefix K/V are computed once and only
    the last token is re-run (about ``B`` tokens of work instead of ``B × len``);
    otherwise each steered copy runs in full with a TransformerLens hook.
    """

    def __init__(self, lm: Any, hook_name: str, *, max_batch: int = 256) -> None:
        self.lm = lm
        self.hook_name = hook_name
        self.layer = hook_layer(hook_name, lm.n_layers)
        self.max_batch = max_batch
        hf = lm.model.__dict__.get("original_model")
        layers = getattr(getattr(hf, "model", None), "layers", None)
        self._hf = hf if layers is not None and len(layers) == lm.n_layers else None

    @property
    def uses_kv_cache(self) -> bool:
        return self._hf is not None

    def cell_log_probs(self, token_ids: Sequence[int], deltas: Any) -> Any:
        import torch

        deltas = torch.as_tensor(deltas, dtype=torch.float32)
        if deltas.ndim != 2 or deltas.shape[1] != self.lm.d_model:
            raise ActivationError(f"steering deltas must be [B, {self.lm.d_model}], got {tuple(deltas.shape)}")
        with torch.no_grad():
            if self._hf is not None and len(token_ids) > 1:
                return self._cached(list(token_ids), deltas)
            return self._full(list(token_ids), deltas)

    def _full(self, token_ids: list[int], deltas: Any) -> Any:
        import torch

        zero = torch.zeros(1, deltas.shape[1])
        all_d = torch.cat([zero, deltas])
        outs = []
        for s in range(0, all_d.shape[0], max(1, self.max_batch // 8)):
            chunk = all_d[s : s + max(1, self.max_batch // 8)]
            toks = torch.tensor([token_ids] * chunk.shape[0])

            def add(x: torch.Tensor, hook: Any, chunk: torch.Tensor = chunk) -> torch.Tensor:
                x = x.clone()
                x[:, -1, :] += chunk.to(x.dtype)
                return x

            logits = self.lm.model.run_with_hooks(toks, fwd_hooks=[(self.hook_name, add)], return_type="logits")
            outs.append(cell_log_probs(logits[:, -1, :], self.lm.cell_token_ids))
        return torch.cat(outs)

    def _cached(self, token_ids: list[int], deltas: Any) -> Any:
        import torch

        hf = self._hf
        assert hf is not None  # cell_log_probs runs this path only with the HF model
        prefix = torch.tensor([token_ids[:-1]])
        last = token_ids[-1]
        out = hf(input_ids=prefix, use_cache=True)
        base_cache = out.past_key_values
        n_prefix = prefix.shape[1]
        zero = torch.zeros(1, deltas.shape[1])
        all_d = torch.cat([zero, deltas])
        current: dict[str, torch.Tensor] = {}

        def add(module: Any, args: Any, output: Any) -> Any:
            d = current["d"]
            if isinstance(output, tuple):
                return (output[0] + d[:, None, :].to(output[0].dtype),) + tuple(output[1:])
            return output + d[:, None, :].to(output.dtype)

        handle = hf.model.layers[self.layer].register_forward_hook(add)
        outs = []
        try:
            for s in range(0, all_d.shape[0], self.max_batch):
                chunk = all_d[s : s + self.max_batch]
                b = chunk.shape[0]
                cache = copy.deepcopy(base_cache)
                cache.batch_repeat_interleave(b)
                current["d"] = chunk
                res = hf(
                    input_ids=torch.full((b, 1), last, dtype=torch.long),
                    past_key_values=cache,
                    position_ids=torch.full((b, 1), n_prefix, dtype=torch.long),
                    use_cache=True,
                )
                outs.append(cell_log_probs(res.logits[:, -1, :], self.lm.cell_token_ids))
        finally:
            handle.remove()
        return torch.cat(outs)


def move_shift(log_probs: Any) -> dict[str, Any]:
    """How far each steered row moved the move distribution from row 0 (unsteered):
    ``kl`` (KL(steered || unsteered) per row, nats), ``argmax_changed`` (bool per row) and
    ``delta_prob`` ([B, 9] change of each cell's probability)."""

    base = log_probs[0:1]
    steered = log_probs[1:]
    p = steered.exp()
    kl = (p * (steered - base)).sum(-1)
    changed = steered.argmax(-1) != base.argmax(-1)
    return {"kl": kl, "argmax_changed": changed, "delta_prob": p - base.exp()}


def make_tiny_llama(folder: str | Path, *, n_layers: int = 4, d_model: int = 64, seed: int = 0) -> Path:
    """Save a small random Llama with a character-level chat tokenizer to ``folder`` (for
    tests and smoke runs: ``load_model(folder)`` wraps it like the real model)."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    folder = Path(folder)
    special = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    chars = [chr(i) for i in range(32, 127)] + ["\n"]
    vocab = {t: i for i, t in enumerate(special + chars)}
    tk = Tokenizer(models.WordLevel(vocab=vocab, unk_token="?"))
    tk.pre_tokenizer = pre_tokenizers.Split(pattern="", behavior="isolated")
    tk.decoder = decoders.Fuse()
    tok = PreTrainedTokenizerFast(
        tokenizer_object=tk, bos_token="<|im_start|>", eos_token="<|im_end|>", pad_token="<|endoftext|>", unk_token="?"
    )
    tok.add_special_tokens({"additional_special_tokens": special})
    tok.chat_template = (
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
        "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    cfg = LlamaConfig(
        vocab_size=len(vocab),
        hidden_size=d_model,
        intermediate_size=2 * d_model,
        num_hidden_layers=n_layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        rope_parameters={"rope_theta": 10000.0, "rope_type": "default"},
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(cfg)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(folder))
    tok.save_pretrained(str(folder))
    return folder
