"""torch/transformers, imported only when a model is actually loaded, always offline, always quiet."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

#: Photos are shrunk to at most this many pixels on the long side before a processor sees them: every
#: processor here works at <= 518 px, and resampling a 24 MP photo in the processor is slow.
MAX_INPUT_SIDE = 1024


def go_offline() -> None:
    """No model code ever reaches a hub: set before transformers/huggingface_hub are imported."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


def import_torch() -> Any:
    go_offline()
    import torch

    return torch


def import_transformers() -> Any:
    go_offline()
    import transformers
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    return transformers


def pick_device(wanted: str) -> str:
    """ "cuda" when asked for (or "auto" and a GPU is present), else "cpu"."""
    if wanted == "cpu":
        return "cpu"
    torch = import_torch()
    if torch.cuda.is_available():
        return "cuda"
    if wanted == "cuda":
        raise RuntimeError("MODELS_DEVICE=cuda but no CUDA device is available")
    return "cpu"


def to_pil(image: Any, max_side: int = MAX_INPUT_SIDE) -> tuple[Any, tuple[int, int]]:
    """(RGB PIL image at most `max_side` on its long side, original (width, height)).

    Accepts a PIL image or a numpy array: uint8 (H, W, 3) RGB — `LoadedPhoto.rgb` — (H, W) grey,
    (H, W, 4) RGBA, or float in 0..1."""
    from PIL import Image

    if isinstance(image, np.ndarray):
        arr = image
        if arr.dtype != np.uint8:
            arr = (np.clip(arr.astype(np.float32), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
        if arr.ndim == 3 and arr.shape[2] == 1:
            arr = arr[:, :, 0]
        if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)):
            raise ValueError(f"expected an (H, W), (H, W, 3) or (H, W, 4) image, got shape {image.shape}")
        image = Image.fromarray(np.ascontiguousarray(arr))
    if not isinstance(image, Image.Image):
        raise TypeError(f"expected a PIL image or a numpy array, got {type(image).__name__}")
    size = image.size
    pil = image.convert("RGB") if image.mode != "RGB" else image
    if max(size) > max_side:
        pil = pil.copy()
        pil.thumbnail((max_side, max_side), Image.Resampling.BILINEAR, reducing_gap=2.0)
    return pil, size


class ModulesMixin:
    """diffusers-style `register_modules`: the parts a component is built from, by name."""

    _module_names: tuple[str, ...] = ()

    def register_modules(self, **modules: Any) -> None:
        for name, module in modules.items():
            setattr(self, name, module)
        self._module_names = tuple(dict.fromkeys((*self._module_names, *modules)))

    @property
    def components(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self._module_names}
