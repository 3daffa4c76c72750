"""Training and measuring a TopK SAE on cached residual activations (sae_lens), the
pieces ``autosteer-train sae`` (:mod:`training.features.sae`) runs at each candidate layer and for
the shipped SAE:

- :func:`train_topk_sae`: sae_lens's ``SAETrainer`` on a ``[n, d_in]`` activation tensor;
- :func:`evaluate_sae`: held-out explained variance, MSE, L0 and the dead fraction;
- :func:`typical_activations`, :func:`answer_firing_order`, :func:`steering_effect`,
  :func:`measure_steering`: what one typical activation along a feature's decoder row
  (steering coefficient 1) and a push of one residual norm do to the move distribution
  at the answer position;
- :func:`ce_loss_recovered`: next-token loss with the SAE spliced in, against clean and
  zero-ablated;
- :func:`choose_layer`: the fixed rule that picks the layer from the comparison;
- :func:`save_sae_fp16` / :func:`load_shipped_sae`: sae_lens's on-disk format, float16
  weights loaded as float32.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np


class SAETrainingError(RuntimeError):
    """The SAE run cannot go on; the message says why and what to do."""


def train_topk_sae(
    acts: Any,
    *,
    d_sae: int,
    k: int,
    steps: int,
    batch_size: int,
    lr: float,
    seed: int,
    hook_name: str,
    model_name: str,
    progress: bool = True,
    desc: str = "SAE",
) -> tuple[Any, float]:
    """Train a sae_lens TopK SAE on a ``[n, d_in]`` activation tensor; returns (training SAE, seconds)."""
    import torch
    from sae_lens.config import SAETrainerConfig
    from sae_lens.saes.topk_sae import TopKTrainingSAE, TopKTrainingSAEConfig
    from sae_lens.training.sae_trainer import SAETrainer

    torch.manual_seed(seed)
    data = acts.float()
    n, d_in = data.shape
    if n < batch_size:
        raise SAETrainingError(
            f"only {n} activations for batch size {batch_size}; collect more data or lower --batch-size"
        )
    sae_cfg = TopKTrainingSAEConfig(
        d_in=d_in,
        d_sae=d_sae,
        k=k,
        dtype="float32",
        device="cpu",
        normalize_activations="none",
        apply_b_dec_to_input=True,
    )
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
                yield data[perm[s : s + batch_size]]

    trainer_cfg = SAETrainerConfig(
        total_training_samples=steps * batch_size,
        train_batch_size_samples=batch_size,
        lr=lr,
        lr_scheduler_name="constant",
        lr_warm_up_steps=min(100, steps // 10),
        lr_decay_steps=steps // 5,
        lr_end=lr / 10,
        device="cpu",
        dead_feature_window=max(50, steps // 5),
        feature_sampling_window=max(100, steps // 2),
    )
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
            x = x_all[s : s + chunk]
            f = sae.encode(x)
            r = sae.decode(f)
            sse += float(((r - x) ** 2).sum())
            l0 += float((f > 0).sum())
        sst = float(((x_all - x_all.mean(0)) ** 2).sum())
        fired = torch.zeros(sae.cfg.d_sae, dtype=torch.bool)
        src = (dead_acts if dead_acts is not None else acts).float()
        for s in range(0, src.shape[0], chunk):
            fired |= (sae.encode(src[s : s + chunk]) > 0).any(0)
    n = x_all.shape[0]
    return SAEQuality(
        explained_variance=1 - sse / max(sst, 1e-12),
        mse=sse / (n * x_all.shape[1]),
        l0=l0 / n,
        dead_fraction=float((~fired).float().mean()),
        n_eval=n,
    )


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
                f = sae.encode(x[s : s + 4096].float())
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


def steering_effect(
    lm: Any,
    sae: Any,
    hook_name: str,
    token_ids: Sequence[Sequence[int]],
    features: Sequence[int],
    typical: Sequence[float],
    coefficient: float = 1.0,
    push_norm: float | None = None,
) -> dict[str, float]:
    """Mean KL and argmax-change rate of the move distribution when each feature is pushed
    at the answer position, over the given prompts. The push is ``coefficient`` × the
    feature's typical activation along its decoder row, or, with ``push_norm``, a vector of
    that norm along the decoder row (the same strength for every feature and layer)."""
    import torch

    from training.features.activations import LastTokenSteering, move_shift

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
    return {
        "mean_kl": float(kl.mean()),
        "median_kl": float(kl.median()),
        "argmax_changed": float(torch.cat(changed).mean()),
        "push_norm": float(deltas.norm(dim=-1).mean()),
    }


@dataclass
class SteeringMeasure:
    """What steering along the features firing most at the answer position does: the
    typical activations, the features pushed, the effect at coefficient 1 and with a push
    of one mean answer-position residual norm (``resid_norm``)."""

    typical: list[float]
    features: list[int]
    coef1: dict[str, float]
    unit: dict[str, float]
    resid_norm: float


def measure_steering(
    lm: Any,
    sae: Any,
    hook_name: str,
    token_ids: Sequence[Sequence[int]],
    answer_acts: Any,
    all_acts: Any,
    n_features: int,
) -> SteeringMeasure:
    """:func:`steering_effect` of the ``n_features`` features that fire most often at the
    answer position (``answer_acts``), at coefficient 1 and with a unit push."""
    typ = typical_activations(sae, answer_acts, all_acts)
    feats = answer_firing_order(sae, answer_acts)[:n_features]
    eff = steering_effect(lm, sae, hook_name, token_ids, feats, typ)
    resid_norm = float(answer_acts.float().norm(dim=-1).mean())
    unit = steering_effect(lm, sae, hook_name, token_ids, feats, typ, push_norm=resid_norm)
    return SteeringMeasure(typ, feats, eff, unit, resid_norm)


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
    return best["layer"], (
        f"best mean rank of concept detection (MCC) and steering KL among layers with EV >= {min_ev} "
        f"and dead <= {max_dead}"
    )


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
