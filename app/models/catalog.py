"""Which checkpoints the project knows, where each comes from, and whether its licence allows commercial use.

A setting names a model by a short name ("ViT-B-32", "DPT_Large"), by its Hugging Face repo id, or by an
alias. `resolve` maps any of them to one `ModelSpec`. A name the catalogue does not know is still usable when
its folder's manifest records a licence from `COMMERCIAL_LICENCES` (or non-commercial use is opted in);
for a known name the catalogue's licence wins over the manifest's, so a manifest cannot launder a licence.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Kind = Literal["clip", "depth"]
Architecture = Literal["clip", "depth_anything", "dpt"]

#: Licences (SPDX ids, lower case) that allow commercial use without further checks.
COMMERCIAL_LICENCES: frozenset[str] = frozenset({"mit", "apache-2.0", "bsd-2-clause", "bsd-3-clause"})

_SAFE_FOLDER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


@dataclass(frozen=True)
class ModelSpec:
    """One checkpoint: `folder` is its directory under ``MODEL_CACHE_DIR/<kind>/``."""

    kind: Kind
    folder: str
    repo: str
    architecture: Architecture
    licence: str
    commercial: bool
    aliases: tuple[str, ...] = ()
    note: str = ""

    def names(self) -> tuple[str, ...]:
        return (self.folder, self.repo, *self.aliases)


CATALOG: tuple[ModelSpec, ...] = (
    # CLIP: the LAION OpenCLIP checkpoints ship transformers weights too and are MIT licensed.
    ModelSpec(
        "clip",
        "ViT-B-32",
        "laion/CLIP-ViT-B-32-laion2B-s34B-b79K",
        "clip",
        "mit",
        True,
        aliases=("ViT-B-32-laion2b_s34b_b79k",),
        note="OpenCLIP ViT-B/32 trained on LAION-2B (MIT)",
    ),
    ModelSpec("clip", "ViT-B-16", "laion/CLIP-ViT-B-16-laion2B-s34B-b88K", "clip", "mit", True),
    ModelSpec("clip", "ViT-L-14", "laion/CLIP-ViT-L-14-laion2B-s32B-b82K", "clip", "mit", True),
    ModelSpec(
        "clip",
        "openai-clip-vit-base-patch32",
        "openai/clip-vit-base-patch32",
        "clip",
        "other",
        False,
        note="OpenAI's model card puts any deployed use out of scope; opt in explicitly",
    ),
    # Depth Anything V2: only Small is Apache-2.0; Base and Large are CC-BY-NC-4.0.
    ModelSpec(
        "depth",
        "Depth-Anything-V2-Small-hf",
        "depth-anything/Depth-Anything-V2-Small-hf",
        "depth_anything",
        "apache-2.0",
        True,
        aliases=("Depth-Anything-V2-Small", "depth_anything_v2_small"),
    ),
    ModelSpec(
        "depth",
        "Depth-Anything-V2-Base-hf",
        "depth-anything/Depth-Anything-V2-Base-hf",
        "depth_anything",
        "cc-by-nc-4.0",
        False,
        aliases=("Depth-Anything-V2-Base",),
    ),
    ModelSpec(
        "depth",
        "Depth-Anything-V2-Large-hf",
        "depth-anything/Depth-Anything-V2-Large-hf",
        "depth_anything",
        "cc-by-nc-4.0",
        False,
        aliases=("Depth-Anything-V2-Large",),
    ),
    # MiDaS v3 DPT (torch.hub names). The original MiDaS weights are MIT; the transformers ports on the hub
    # are tagged Apache-2.0. Both allow commercial use.
    ModelSpec("depth", "DPT_Large", "Intel/dpt-large", "dpt", "apache-2.0", True, note="MiDaS v3 DPT-Large (MIT)"),
    ModelSpec("depth", "DPT_Hybrid", "Intel/dpt-hybrid-midas", "dpt", "apache-2.0", True),
)


def resolve(kind: Kind, name: str) -> ModelSpec | None:
    """The catalogue entry a setting value names (short name, repo id or alias; case-insensitive)."""
    wanted = name.strip().lower()
    for spec in CATALOG:
        if spec.kind == kind and wanted in (n.lower() for n in spec.names()):
            return spec
    return None


def folder_name(kind: Kind, name: str) -> str:
    """The directory a model lives in under ``MODEL_CACHE_DIR/<kind>/``: the catalogue's folder, else the
    name with "/" written as "--" (Hugging Face's convention). Raises ValueError for names that could
    escape the cache directory."""
    spec = resolve(kind, name)
    folder = spec.folder if spec else name.strip().replace("/", "--")
    if not _SAFE_FOLDER.match(folder) or ".." in folder:
        raise ValueError(f"model name {name!r} is not a safe folder name")
    return folder


def licence_refusal(kind: Kind, name: str, manifest_licence: str | None, allow_noncommercial: bool) -> str | None:
    """Why this checkpoint may not be used commercially (None: it may)."""
    spec = resolve(kind, name)
    licence = (spec.licence if spec else (manifest_licence or "unknown")).lower()
    commercial = spec.commercial if spec else licence in COMMERCIAL_LICENCES
    if commercial or allow_noncommercial:
        return None
    why = f"; {spec.note}" if spec and spec.note else ""
    return (
        f"refused: {name} is licensed {licence} (not cleared for commercial use{why}); "
        "set MODELS_ALLOW_NONCOMMERCIAL=true to use it anyway"
    )
