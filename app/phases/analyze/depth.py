"""Phase 1's depth step: a depth map for every photo that gets a clip, stored as an artifact.

Sources, best first, and each result records which one produced it (`source`):

1. depth that comes with the photo: a sidecar stored next to it (``NAME.depth.png`` / ``.tiff`` /
   ``.exr``: 3-D tour exports, the sample listing) or depth the camera embedded in the JPEG (GDepth,
   Dynamic Depth XMP), read by `app.media.depth_io`;
2. the depth model (Depth Anything V2 Small, or MiDaS) when its weights are present;
3. none: the clip's ladder then skips the parallax renderer.

The map is stored as float32 inverse depth (larger = nearer; 1/m when `metric`), in a ``.npy`` artifact
with a deterministic key, so phase 2 on any worker reads exactly what phase 1 saw.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from app.media import depth_io
from app.phases.base import PhaseContext
from app.storage import keys

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DepthRecord:
    uri: str
    source: str
    metric: bool
    variance: float

    def as_dict(self) -> dict[str, Any]:
        return {"uri": self.uri, "source": self.source, "metric": self.metric, "variance": round(self.variance, 5)}


def _sidecar(ctx: PhaseContext, photo_uri: str, workdir: Path) -> depth_io.PhotoDepth | None:
    """A sidecar stored next to the photo's key (the ingest copies it there)."""
    key = ctx.storage.resolve_key(photo_uri)
    for suffix in depth_io.SIDECAR_SUFFIXES:
        candidate = keys.depth_sidecar(key, suffix)
        if ctx.storage.exists(candidate):
            local = ctx.storage.local_path(candidate, workdir / "cache")
            return depth_io.read_depth_file(local)
    return None


def _embedded(ctx: PhaseContext, photo_uri: str, workdir: Path) -> depth_io.PhotoDepth | None:
    local = ctx.storage.local_path(ctx.storage.resolve_key(photo_uri), workdir / "cache")
    if local.suffix.lower() not in (".jpg", ".jpeg"):
        return None
    return depth_io.read_embedded_depth(local)


def _modelled(ctx: PhaseContext, rgb: np.ndarray) -> depth_io.PhotoDepth | None:
    models = ctx.get_components().models
    estimator = getattr(models, "depth", None) if models is not None else None
    if estimator is None:
        return None
    result = estimator(rgb)
    return depth_io.PhotoDepth(np.asarray(result.depth, np.float32), False, result.source)


def photo_depth(ctx: PhaseContext, photo_uri: str, rgb: np.ndarray, workdir: Path) -> depth_io.PhotoDepth | None:
    """The best depth available for one photo (see the module docstring), or None. A broken sidecar or
    model is logged and skipped: depth is an improvement, never a reason to fail a job."""
    for source in (_sidecar, _embedded):
        try:
            found = source(ctx, photo_uri, workdir)
        except Exception:
            log.warning("depth from %s unreadable", source.__name__.strip("_"), exc_info=True)
            found = None
        if found is not None:
            return found
    try:
        return _modelled(ctx, rgb)
    except Exception:
        log.warning("depth model failed", exc_info=True)
        return None


def store_depth(
    ctx: PhaseContext, job_id: int, photo_id: int, depth: depth_io.PhotoDepth, workdir: Path
) -> DepthRecord:
    local = workdir / "depth" / f"{photo_id}.npy"
    local.parent.mkdir(parents=True, exist_ok=True)
    np.save(local, np.ascontiguousarray(depth.inverse_depth, dtype=np.float32))
    uri = ctx.storage.put_file(keys.depth_map(job_id, photo_id), local, "application/octet-stream")
    inv = depth.inverse_depth[depth.inverse_depth > 0]
    spread = float(np.var(inv / max(float(np.max(inv)), 1e-9))) if inv.size else 0.0
    return DepthRecord(uri=uri, source=depth.source, metric=depth.metric, variance=spread)


def load_depth(ctx: PhaseContext, uri: str, workdir: Path) -> np.ndarray:
    """The inverse depth phase 1 stored (phase 2 reads it on whichever worker renders the clip)."""
    path = ctx.storage.local_path(ctx.storage.resolve_key(uri), workdir / "cache")
    return np.asarray(np.load(path, allow_pickle=False), dtype=np.float32)
