"""Clip renderers, best first. Phase 2 tries them in order and the validator downgrades a clip to the
next one when its output does not match its photo.

Today's chain on CPU is Ken Burns (eased, sub-pixel camera moves over the photo). Depth parallax and
LTX-2 image-to-video slot in ahead of it behind the same interface.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from app.config import Settings
from app.errors import RenderCancelled
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
    #: Set by the worker on SIGTERM or a Spot notice: a renderer stops at its next frame (or diffusion
    #: step) and raises `RenderCancelled`.
    cancel: threading.Event | None = None

    def check_cancelled(self) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise RenderCancelled("render cancelled: the worker is shutting down")

    def frame_done(self, done: int, total: int) -> None:
        """Per-frame hook for renderers: honours cancellation, then reports progress."""
        self.check_cancelled()
        if self.progress is not None:
            self.progress(done, total)


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
        request.check_cancelled()
        render_ken_burns(
            request.rgb,
            request.plan,
            request.out_path,
            width=request.width,
            height=request.height,
            fps=request.fps,
            duration=request.duration,
            preset=request.preset,
            crf=request.crf,
            progress=request.frame_done,
        )


def renderer_chain(settings: Settings) -> list[ClipRenderer]:
    """Renderers available on this worker, best first."""
    return [KenBurnsRenderer()]
