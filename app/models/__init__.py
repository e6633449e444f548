"""The model layer: CLIP scene/room recognition and monocular depth, loaded offline from MODEL_CACHE_DIR.

Use
---
Build once per process and pass it in (``get_model_registry()`` caches one per settings)::

    registry = ModelRegistry.from_settings(settings)     # never raises for missing/corrupt weights
    if registry.clip is not None:
        results = registry.clip([photo.rgb, ...])       # list[ClipResult]
    if registry.depth is not None:
        depth = registry.depth(photo.rgb)               # DepthResult (map at the photo's size)
    phase_details["models"] = registry.report()         # what loaded, what fell back and why

A component is None when it is disabled (``MODELS_ENABLED=false``), not configured, has no weights on
disk, a missing/unreadable manifest, a file whose sha256 does not match, a licence not cleared for
commercial use, tiny test weights in production, or fails to load; its reason is in ``report()`` and
the caller runs the classical code (``heuristic:v2``). Every result carries ``source`` =
``"<kind>:<repo>@<revision>"`` (e.g. ``clip:laion/CLIP-ViT-B-32-laion2B-s34B-b79K@<commit>``) to record
as the label source. torch/transformers are imported only when a model is actually loaded, with
``HF_HUB_OFFLINE=1`` and ``local_files_only=True``: nothing is ever downloaded at run time.

Layout
------
::

    MODEL_CACHE_DIR/
      clip/ViT-B-32/                         OPENCLIP_MODEL (catalogue folder, see catalog.py)
      depth/Depth-Anything-V2-Small-hf/      DEPTH_MODEL
      depth/DPT_Large/                       MIDAS_MODEL (used when DEPTH_MODEL's weights are unavailable)
      <kind>/<folder>/ = a transformers save_pretrained folder (config.json, model.safetensors,
                         tokenizer / preprocessor files) + picaivid-model.json:
        {"format": 1, "name", "kind", "architecture", "source_repo", "revision", "licence",
         "files": {relative path: sha256}, "tiny_random", "created"}

A name the catalogue does not know lives at ``<kind>/<name with "/" as "--">``. Folders are written
to a temp sibling and renamed into place, manifest last (`layout.py`). ``scripts/download_models.py``
fills the layout from the hub (pinned commit, licence, sha256) or, with ``--tiny-random DIR``, with tiny
random models (tests, demos).

Licences (commercial use)
-------------------------
* CLIP: ``OPENCLIP_MODEL=ViT-B-32`` is LAION's OpenCLIP ViT-B/32 (laion/CLIP-ViT-B-32-laion2B-s34B-b79K),
  **MIT**. ``openai/clip-vit-base-patch32`` is not used by default: OpenAI's model card puts deployed use
  out of scope, so it needs ``MODELS_ALLOW_NONCOMMERCIAL=true`` like any non-cleared checkpoint.
* Depth Anything V2 **Small**: **Apache-2.0** (the default ``DEPTH_MODEL``). Base and Large are
  **CC-BY-NC-4.0** (non-commercial): refused unless ``MODELS_ALLOW_NONCOMMERCIAL=true``.
* MiDaS v3 DPT (``MIDAS_MODEL=DPT_Large`` → Intel/dpt-large, ``DPT_Hybrid`` → Intel/dpt-hybrid-midas):
  the MiDaS weights are **MIT**; the transformers ports are tagged Apache-2.0 on the hub. Both allow it.
* A checkpoint not in the catalogue is accepted only when its manifest's licence is MIT, Apache-2.0 or
  BSD (`catalog.COMMERCIAL_LICENCES`).
* LTX-2 (``app/models/ltx2.py``, not this package's loader): LTX-2 community licence, see OVERVIEW §8.

Memory and speed (float32; measured on the 2-core development machine with random-init models of the
real architectures, 1620x1080 photos; GPU figures are estimates)
----------------------------------------------------------------------------------------------------
* CLIP ViT-B/32: 151 M parameters, 605 MB on disk. Building the analyzer encodes 148 prompts once
  (~2.5 s on CPU); then ~0.2 s per photo on CPU (batches of 16), a few ms on a GPU; ~1 GB of GPU memory.
  ViT-L/14 (428 M, 1.7 GB) needs ~2.5 GB and is several times slower.
* Depth Anything V2 Small: 25 M parameters, 99 MB. ~1.0 s per photo on CPU at its native 518 px input
  (0.45 s at ``DEPTH_INPUT_SIZE=392``, 0.23 s at 294), ~20 ms on a GPU; ~0.5 GB of GPU memory.
* DPT-Large: 343 M parameters, 1.37 GB; ~2 GB of RAM / GPU memory at 384 px, several s per photo on CPU.
* Peak RSS of a process with torch, transformers, CLIP ViT-B/32 and Depth Anything Small loaded and
  running: 1.6 GB. Importing torch + transformers takes 3-6 s (only when some weights are present).
Everything runs on CPU (phase 1 runs on CPU workers); ``MODELS_DEVICE=auto`` uses CUDA when present.
"""

from __future__ import annotations

from app.models.catalog import CATALOG, COMMERCIAL_LICENCES, ModelSpec, resolve
from app.models.clip import ClipAnalyzer, ClipResult
from app.models.depth import DepthEstimator, DepthResult
from app.models.layout import MANIFEST_NAME, Manifest, ManifestError, model_dir, read_manifest
from app.models.registry import (
    ComponentStatus,
    ModelRegistry,
    clear_model_registry_cache,
    get_model_registry,
)

__all__ = [
    "CATALOG",
    "COMMERCIAL_LICENCES",
    "MANIFEST_NAME",
    "ClipAnalyzer",
    "ClipResult",
    "ComponentStatus",
    "DepthEstimator",
    "DepthResult",
    "Manifest",
    "ManifestError",
    "ModelRegistry",
    "ModelSpec",
    "clear_model_registry_cache",
    "get_model_registry",
    "model_dir",
    "read_manifest",
    "resolve",
]
