"""Monocular relative depth (Depth Anything V2, or MiDaS v3 DPT) through transformers."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from app.models.runtime import ModulesMixin, import_torch, import_transformers, to_pil

#: architecture (manifest) -> transformers model class name
DEPTH_CLASSES: dict[str, str] = {
    "depth_anything": "DepthAnythingForDepthEstimation",
    "dpt": "DPTForDepthEstimation",
}


@dataclass(frozen=True)
class DepthResult:
    """Relative depth of one photo.

    `depth` is float32 (H, W) at the photo's own size, min-max normalised to 0..1 from the model's
    relative *inverse* depth (disparity): **larger = nearer** (1.0 = the nearest thing in the photo,
    0.0 = the farthest, e.g. sky or the far wall). Scale and shift are unknown, so values compare only
    within one photo. `depth_variance` is the variance of that map (0 for a flat map): a rough measure of
    how much depth the scene has (a wall close-up ≈ 0, a hallway or a garden view is larger)."""

    depth: np.ndarray
    depth_variance: float
    source: str

    @property
    def size(self) -> tuple[int, int]:
        """(width, height), like PIL."""
        return int(self.depth.shape[1]), int(self.depth.shape[0])


class DepthEstimator(ModulesMixin):
    """Build once per process (`ModelRegistry`), then call: ``estimator(image) -> DepthResult``.

    Modules: `model` (DepthAnythingForDepthEstimation or DPTForDepthEstimation, eval, on `device`),
    `image_processor` (DPTImageProcessorPil)."""

    model: Any
    image_processor: Any

    def __init__(
        self, model: Any, image_processor: Any, *, source: str, device: str = "cpu", input_size: int | None = None
    ) -> None:
        self.register_modules(model=model, image_processor=image_processor)
        self.source = source
        self.device = device
        #: The network's input short side (None: the checkpoint's, 518 for Depth Anything V2). Smaller is
        #: faster on CPU (measured on 2 cores, ViT-S: 518 px 1.0 s, 392 px 0.45 s, 294 px 0.23 s).
        self.input_size = input_size

    def __call__(self, image: Any, size: tuple[int, int] | None = None) -> DepthResult:
        """`image`: a PIL image or an RGB uint8 array (H, W, 3). `size` (width, height) of the map,
        default the image's own size."""
        torch = import_torch()
        pil, original = to_pil(image)
        width, height = size or original
        extra = {"size": {"height": self.input_size, "width": self.input_size}} if self.input_size else {}
        pixels = self.image_processor(images=pil, return_tensors="pt", **extra)["pixel_values"].to(self.device)
        with torch.inference_mode():
            predicted = self.model(pixel_values=pixels).predicted_depth
            resized = torch.nn.functional.interpolate(
                predicted[:, None].float(), size=(height, width), mode="bicubic", align_corners=False
            )[0, 0]
        depth = _normalise(resized.cpu().numpy())
        return DepthResult(depth=depth, depth_variance=float(depth.var()), source=self.source)


def load_depth(
    folder: Path, *, architecture: str, source: str, device: str = "cpu", input_size: int | None = None
) -> DepthEstimator:
    """A DepthEstimator from a save_pretrained folder (local files only)."""
    if architecture not in DEPTH_CLASSES:
        raise ValueError(f"unknown depth architecture {architecture!r} (known: {', '.join(DEPTH_CLASSES)})")
    tf = import_transformers()
    model_cls = getattr(tf, DEPTH_CLASSES[architecture])
    model = model_cls.from_pretrained(folder, local_files_only=True).to(device).eval()
    processor = tf.DPTImageProcessorPil.from_pretrained(folder, local_files_only=True)
    # DPT checkpoints run at their square training size (their processors do not keep the aspect ratio).
    size = input_size if architecture == "depth_anything" else None
    return DepthEstimator(model, processor, source=source, device=device, input_size=size)


def _normalise(raw: np.ndarray) -> np.ndarray:
    raw = np.nan_to_num(raw.astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    lo, hi = float(raw.min()), float(raw.max())
    if hi - lo < 1e-8:
        return np.zeros_like(raw, dtype=np.float32)
    return np.clip((raw - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)
