"""Fetching real checkpoints from the Hugging Face hub into the production layout (`layout.py`).

Only `scripts/download_models.py` uses this, on a machine with hub access; the service never downloads.
Each checkpoint is pinned to the commit the hub resolves, downloaded (weights + configs only), loaded
with the same transformers classes the service uses and re-saved with ``save_pretrained`` (safetensors),
then hashed into its manifest with the licence, so what the service loads is exactly what was checked.
"""

from __future__ import annotations

import fnmatch
import tempfile
from pathlib import Path
from typing import Any

from app.models.catalog import Kind, licence_refusal, resolve
from app.models.layout import Manifest, model_dir, read_manifest, staging_folder, write_manifest

_SIDE_FILES = (
    "config.json",
    "preprocessor_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.json",
    "merges.txt",
    "special_tokens_map.json",
)
_WEIGHTS_PREFERRED = ("model.safetensors", "model-*.safetensors", "model.safetensors.index.json")
_WEIGHTS_FALLBACK = ("pytorch_model.bin", "pytorch_model-*.bin", "pytorch_model.bin.index.json")
_ARCHITECTURES = {"clip": "clip", "depth_anything": "depth_anything", "dpt": "dpt"}


class DownloadError(RuntimeError):
    """A checkpoint could not be fetched (offline, unknown repo, refused licence); one line."""


def hub_info(repo: str, revision: str | None = None) -> Any:
    """The hub's ModelInfo (commit sha, files, card), or DownloadError when the hub cannot be reached."""
    try:
        from huggingface_hub import HfApi

        return HfApi().model_info(repo, revision=revision)
    except Exception as exc:
        detail = " ".join(str(exc).split())[:200]
        raise DownloadError(
            f"cannot reach the Hugging Face hub for {repo} ({type(exc).__name__}: {detail}). "
            "This machine may be offline (or HF_HUB_OFFLINE=1): fetch on a machine with hub access and copy "
            "MODEL_CACHE_DIR over, or use --tiny-random for tests."
        ) from None


def weight_patterns(filenames: list[str]) -> list[str]:
    """Configs plus one weights format: safetensors when the repo has it, else pytorch_model.bin."""
    has_safetensors = any(fnmatch.fnmatch(f, p) for f in filenames for p in _WEIGHTS_PREFERRED)
    return [*_SIDE_FILES, *(_WEIGHTS_PREFERRED if has_safetensors else _WEIGHTS_FALLBACK)]


def card_licence(info: Any) -> str:
    card = getattr(info, "card_data", None) or {}
    value = card.get("license") if hasattr(card, "get") else getattr(card, "license", None)
    return str(value or "unknown").lower()


def _architecture(kind: Kind, name: str, info: Any) -> str:
    spec = resolve(kind, name)
    if spec:
        return spec.architecture
    model_type = str((getattr(info, "config", None) or {}).get("model_type", ""))
    if model_type not in _ARCHITECTURES:
        raise DownloadError(f"{name}: unsupported model_type {model_type!r} for a {kind} model")
    return _ARCHITECTURES[model_type]


def resave(kind: Kind, architecture: str, raw: Path, out: Path) -> None:
    """Load `raw` with the service's classes (proves it loads) and save_pretrained it into `out`."""
    import transformers as tf

    if kind == "clip":
        parts: list[Any] = [tf.CLIPModel, tf.CLIPTokenizer, tf.CLIPImageProcessorPil]
    else:
        from app.models.depth import DEPTH_CLASSES

        parts = [getattr(tf, DEPTH_CLASSES[architecture]), tf.DPTImageProcessorPil]
    for cls in parts:
        cls.from_pretrained(raw, local_files_only=True).save_pretrained(out)


def download_model(
    kind: Kind, name: str, cache_dir: Path, *, revision: str | None = None, allow_noncommercial: bool = False
) -> Manifest:
    """Fetch `name` (a catalogue name or a hub repo id) into ``cache_dir/<kind>/<folder>`` with its manifest."""
    spec = resolve(kind, name)
    repo = spec.repo if spec else name
    if "/" not in repo:
        raise DownloadError(f"{name!r} is neither a known {kind} model nor a hub repo id (org/name)")
    refusal = licence_refusal(kind, name, None, allow_noncommercial) if spec else None
    if refusal:
        raise DownloadError(refusal)
    info = hub_info(repo, revision)
    licence = spec.licence if spec else card_licence(info)
    refusal = licence_refusal(kind, name, licence, allow_noncommercial)
    if refusal:
        raise DownloadError(refusal)
    architecture = _architecture(kind, name, info)
    files = [s.rfilename for s in (info.siblings or [])]
    from huggingface_hub import snapshot_download

    final = model_dir(cache_dir, kind, name)
    final.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".download.", dir=final.parent) as raw:
        snapshot_download(repo, revision=info.sha, local_dir=raw, allow_patterns=weight_patterns(files))
        with staging_folder(final) as tmp:
            resave(kind, architecture, Path(raw), tmp)
            write_manifest(
                tmp,
                name=name,
                kind=kind,
                architecture=architecture,
                source_repo=repo,
                revision=str(info.sha),
                licence=licence,
            )
    return read_manifest(final)
