"""Clip renderers, best first. Phase 2 tries them in order and the validator downgrades a clip to the
next one when its output does not match its photo.

Today's chain on CPU is Ken Burns (eased, sub-pixel camera moves over the photo). Depth parallax and
LTX-2 image-to-video slot in ahead of it behind the same interface.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from app.config import Settings
from app.media.kenburns import render_ken_burns
from app.media.types import MotionPlan


@dataclass(frozen=True)
class RenderRequest:
    rgb: np.ndarray
    plan: MotionPlan
    out_path: Path
    width: int
    height: int
    fps: int
    duration: float
    preset: str
    crf: int
    progress: Callable[[int, int], None] | None = None


class ClipRenderer(Protocol):
    #: Stored in clips.model_used.
    name: str
    #: Part of the render key: a new renderer version re-renders clips.
    version: str
    is_3d: bool

    def render(self, request: RenderRequest) -> None: ...


class KenBurnsRenderer:
    name = "ken_burns"
    version = "1"
    is_3d = False

    def render(self, request: RenderRequest) -> None:
        render_ken_burns(request.rgb, request.plan, request.out_path, width=request.width,
                         height=request.height, fps=request.fps, duration=request.duration,
                         preset=request.preset, crf=request.crf, progress=request.progress)


def renderer_chain(settings: Settings) -> list[ClipRenderer]:
    """Renderers available on this worker, best first."""
    return [KenBurnsRenderer()]
