"""Load a Sparse Autoencoder for steering and traces, with clear errors.

An SAE is given as

* a folder in sae_lens's own format (``cfg.json`` + ``sae_weights.safetensors``, as
  ``SAE.save_model`` writes them), or a folder holding exactly one such folder; or
* a sae_lens pretrained-registry ``release/sae_id`` (e.g.
  ``gpt2-small-res-jb/blocks.8.hook_resid_pre``; needs hub access or a filled HF cache).

Next to the SAE (in its folder or the folder above) a ``features.json`` written by the
labelling step may give each feature's typical activation and a label::

    {"hook_name": ..., "d_sae": ..., "typical_activation": [d_sae floats],
     "labels": {"<idx>": {"label": "...", ...}}}

:func:`check_compatible` verifies that the model has the SAE's hook point and that the
SAE's input width matches the activation there.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from bots.llm.model import LanguageModel

SAE_CFG_FILE = "cfg.json"
SAE_WEIGHTS_FILE = "sae_weights.safetensors"
FEATURES_FILE = "features.json"
#: where the SAE trained for SmolLM2 is shipped (written by ``autosteer-train sae``)
ARTIFACTS_DIR = Path(__file__).resolve().parent / "artifacts"


class SAELoadError(ValueError):
    """The SAE (or its features file) could not be loaded; the message names the file."""


@dataclass
class FeatureInfo:
    """Per-feature facts from ``features.json``: typical activation and labels."""

    hook_name: str | None
    d_sae: int
    typical_activation: list[float] | None
    labels: dict[int, dict[str, Any]] = field(default_factory=dict)
    path: str | None = None


@dataclass
class LoadedSAE:
    """A sae_lens SAE with the facts steering and traces need."""

    sae: Any
    hook_name: str
    d_in: int
    d_sae: int
    source: str
    architecture: str
    features: FeatureInfo | None = None

    def label(self, idx: int) -> str | None:
        if self.features is None:
            return None
        entry = self.features.labels.get(int(idx))
        if entry is None:
            return None
        return str(entry.get("label")) if isinstance(entry, dict) and entry.get("label") else None

    @property
    def W_dec(self) -> "torch.Tensor":
        return self.sae.W_dec.detach().float()

    def encode(self, acts: "torch.Tensor") -> "torch.Tensor":
        """Feature activations ``[B, d_sae]`` of hook activations ``[B, d_in]``."""
        import torch

        with torch.no_grad():
            dtype = self.sae.W_dec.dtype
            return self.sae.encode(acts.to(dtype)).float()

    def weights_hash(self) -> str:
        from bots.llm.model import weights_hash

        return weights_hash(self.sae)


def _find_sae_folder(folder: Path) -> Path:
    if (folder / SAE_CFG_FILE).is_file() or (folder / SAE_WEIGHTS_FILE).is_file():
        return folder
    inner = sorted(p.parent for p in folder.glob(f"*/{SAE_CFG_FILE}"))
    if len(inner) == 1:
        return inner[0]
    if len(inner) > 1:
        raise SAELoadError(f"{folder} holds several SAEs ({', '.join(p.name for p in inner)}); name one of them")
    raise SAELoadError(
        f"{folder} is not an SAE folder: it has no {SAE_CFG_FILE} (sae_lens format: "
        f"{SAE_CFG_FILE} + {SAE_WEIGHTS_FILE}, as SAE.save_model writes)"
    )


def _read_cfg(folder: Path) -> dict[str, Any]:
    cfg_path = folder / SAE_CFG_FILE
    if not cfg_path.is_file():
        raise SAELoadError(f"{folder} has no {SAE_CFG_FILE}")
    if not (folder / SAE_WEIGHTS_FILE).is_file():
        raise SAELoadError(f"{folder} has no {SAE_WEIGHTS_FILE}")
    try:
        cfg = json.loads(cfg_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SAELoadError(f"{cfg_path} is not valid JSON: {exc}") from None
    if not isinstance(cfg, dict):
        raise SAELoadError(f"{cfg_path} must hold a JSON object, got {type(cfg).__name__}")
    for key in ("d_in", "d_sae"):
        if not isinstance(cfg.get(key), int) or isinstance(cfg.get(key), bool) or cfg[key] < 1:
            raise SAELoadError(f"{cfg_path}: {key!r} must be a positive integer, got {cfg.get(key)!r}")
    hook = cfg.get("hook_name") or (cfg.get("metadata") or {}).get("hook_name")
    if not isinstance(hook, str) or not hook:
        raise SAELoadError(f"{cfg_path} names no hook point (metadata.hook_name)")
    return cfg


def load_sae(spec: str | Path, *, device: str = "cpu", features: str | Path | None = None) -> LoadedSAE:
    """Load an SAE from a folder or a sae_lens registry ``release/sae_id``."""
    path = Path(spec).expanduser()
    if path.exists():
        if not path.is_dir():
            raise SAELoadError(f"{path} is a file; give the SAE's folder ({SAE_CFG_FILE} + {SAE_WEIGHTS_FILE})")
        folder = _find_sae_folder(path)
        _read_cfg(folder)
        try:
            from sae_lens import SAE

            sae = SAE.load_from_disk(str(folder), device=device)
        except SAELoadError:
            raise
        except Exception as exc:  # safetensors/sae_lens raise many types for a broken file
            raise SAELoadError(f"cannot load the SAE in {folder}: {type(exc).__name__}: {exc}") from None
        source = str(folder)
        feature_path = (
            Path(features)
            if features
            else next((p for p in (folder / FEATURES_FILE, folder.parent / FEATURES_FILE) if p.is_file()), None)
        )
    else:
        sae, source = _load_registry(str(spec), device)
        feature_path = Path(features) if features else None
    hook = sae.cfg.metadata.hook_name
    W_dec = sae.W_dec
    d_in, d_sae = int(sae.cfg.d_in), int(sae.cfg.d_sae)
    if tuple(W_dec.shape) != (d_sae, d_in):
        raise SAELoadError(f"{source}: W_dec has shape {tuple(W_dec.shape)}, the config says {(d_sae, d_in)}")
    if not bool(W_dec.isfinite().all()):
        raise SAELoadError(f"{source}: W_dec holds NaN or infinite values")
    sae.eval()
    for p in sae.parameters():
        p.requires_grad_(False)
    info = load_feature_info(feature_path, hook_name=hook, d_sae=d_sae) if feature_path else None
    return LoadedSAE(
        sae=sae,
        hook_name=hook,
        d_in=d_in,
        d_sae=d_sae,
        source=source,
        architecture=str(sae.cfg.architecture()),
        features=info,
    )


def _load_registry(spec: str, device: str) -> tuple[Any, str]:
    if "/" not in spec:
        raise SAELoadError(f"SAE {spec!r} is neither a folder nor a registry 'release/sae_id'")
    if spec.startswith(("/", ".", "~")) or "\\" in spec:
        raise SAELoadError(f"SAE folder {spec} does not exist")
    release, sae_id = spec.split("/", 1)
    from sae_lens import SAE
    from sae_lens.loading.pretrained_saes_directory import get_pretrained_saes_directory

    directory = get_pretrained_saes_directory()
    if release not in directory:
        raise SAELoadError(f"SAE {spec!r}: no folder of that name, and {release!r} is not a sae_lens registry release")
    if sae_id not in directory[release].saes_map:
        some = ", ".join(list(directory[release].saes_map)[:5])
        raise SAELoadError(f"sae_lens release {release!r} has no SAE {sae_id!r} (e.g. {some})")
    try:
        sae = SAE.from_pretrained(release, sae_id, device=device)
    except Exception as exc:
        raise SAELoadError(
            f"cannot load registry SAE {spec!r} (offline? it needs hub access or a filled "
            f"HF cache): {type(exc).__name__}: {exc}"
        ) from None
    return sae, spec


def load_feature_info(path: str | Path, *, hook_name: str | None = None, d_sae: int | None = None) -> FeatureInfo:
    """Read and check ``features.json`` against the SAE it describes."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise SAELoadError(f"features file {path} does not exist") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SAELoadError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise SAELoadError(f"{path} must hold a JSON object")
    fhook = data.get("hook_name")
    if hook_name is not None and fhook is not None and fhook != hook_name:
        raise SAELoadError(f"{path} describes an SAE at {fhook!r}, but the SAE is at {hook_name!r}")
    fd = data.get("d_sae", d_sae)
    if d_sae is not None and fd != d_sae:
        raise SAELoadError(f"{path} describes {fd} features, but the SAE has {d_sae}")
    typical = data.get("typical_activation")
    if typical is not None:
        if not isinstance(typical, list) or len(typical) != fd:
            raise SAELoadError(f"{path}: 'typical_activation' must be a list of {fd} numbers")
        try:
            typical = [float(x) for x in typical]
        except (TypeError, ValueError):
            raise SAELoadError(f"{path}: 'typical_activation' holds a non-number") from None
        if any(not math.isfinite(x) or x < 0 for x in typical):
            raise SAELoadError(f"{path}: 'typical_activation' must be finite and non-negative")
    labels_raw = data.get("labels") or {}
    if not isinstance(labels_raw, dict):
        raise SAELoadError(f"{path}: 'labels' must be an object keyed by feature index")
    labels: dict[int, dict[str, Any]] = {}
    for key, value in labels_raw.items():
        try:
            idx = int(key)
        except ValueError:
            raise SAELoadError(f"{path}: label key {key!r} is not a feature index") from None
        if fd is not None and not 0 <= idx < fd:
            raise SAELoadError(f"{path}: label for feature {idx}, outside 0..{fd - 1}")
        labels[idx] = value if isinstance(value, dict) else {"label": str(value)}
    return FeatureInfo(
        hook_name=fhook,
        d_sae=int(fd) if fd is not None else len(typical or []),
        typical_activation=typical,
        labels=labels,
        path=str(path),
    )


def check_compatible(sae: LoadedSAE, lm: "LanguageModel") -> None:
    """Raise :class:`SAELoadError` unless ``lm`` has the SAE's hook point with width ``d_in``."""
    if sae.hook_name not in lm.model.hook_dict:
        raise SAELoadError(
            f"the SAE {sae.source} reads hook {sae.hook_name!r}, which model {lm.name} does not have "
            f"(residual hooks look like blocks.0.hook_resid_pre … blocks.{lm.n_layers - 1}.hook_resid_post)"
        )
    if "resid" in sae.hook_name and sae.d_in != lm.d_model:
        raise SAELoadError(
            f"the SAE {sae.source} expects d_in={sae.d_in}, but model {lm.name} has d_model={lm.d_model} "
            f"at {sae.hook_name}"
        )


def sae_digest(sae: LoadedSAE) -> str:
    """Short identifier of the SAE's weights for results and traces."""
    return sae.weights_hash()[:12]
