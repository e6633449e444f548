"""Clip renderers, best first: the ladder. Phase 2 tries them in order; a renderer that declines a clip,
fails (any exception: a CUDA out-of-memory included) or whose output the validator rejects steps the clip
down to the next one, with the reason recorded.

* ``ltx2``: LTX-2 image-to-video (diffusers) on GPU workers with weights and ``LTX_ENABLED``.
* ``parallax``: 2.5D camera moves over the photo's depth map (CPU), for clips that have one.
* ``ken_burns``: eased, sub-pixel camera moves over the flat photo: always available, the floor.

``RENDERERS`` (default ``ltx2,parallax,ken_burns``) orders them; `build_renderers` keeps what this
process can run. Each has a `name` (stored in `clips.model_used`) and a `version` that is part of the
render key of the clips it makes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

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
    #: The photo's depth map (float32, photo size, 0..1, larger = nearer) when one exists.
    depth: np.ndarray | None = None
    #: The photo's resolved room label (prompts for generative renderers).
    room_type: str | None = None
    #: Deterministic per clip (the render key): seeds generative renderers.
    seed_key: str = ""

    def check_cancelled(self) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise RenderCancelled("render cancelled: the worker is shutting down")

    def frame_done(self, done: int, total: int) -> None:
        """Per-frame hook for renderers: honours cancellation, then reports progress."""
        self.check_cancelled()
        if self.progress is not None:
            self.progress(done, total)


class RendererDeclined(Exception):
    """A renderer cannot make this clip (no depth map, say): the next renderer is tried; not a failure."""


class ClipRenderer(Protocol):
    #: Stored in clips.model_used.
    name: str
    #: Part of the render key: a new renderer version re-renders clips.
    version: str
    is_3d: bool
    #: Whether the output is AI-generated (listing disclosure, e.g. California AB 723).
    generative: bool

    def render(self, request: RenderRequest) -> None: ...


class KenBurnsRenderer:
    name = "ken_burns"
    version = "1"
    is_3d = False
    generative = False

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


class LtxRenderer:
    """LTX-2 image-to-video through a diffusers pipeline loaded once per worker process."""

    name = "ltx2"
    is_3d = True
    generative = True

    def __init__(self, pipeline: Any, options: Any, source: str) -> None:
        self.pipeline, self.options = pipeline, options
        # The checkpoint and generation settings are part of what a clip depends on.
        self.version = f"1:{source}:{options.steps}:{options.max_width}x{options.max_height}@{options.gen_fps:g}"

    def render(self, request: RenderRequest) -> None:
        from app.media.ltx_render import LtxRequest, render_ltx

        request.check_cancelled()
        render_ltx(
            self.pipeline,
            LtxRequest(
                rgb=request.rgb,
                plan=request.plan,
                width=request.width,
                height=request.height,
                fps=request.fps,
                duration=request.duration,
                seed_key=request.seed_key,
                room_type=request.room_type,
                cancel=request.cancel,
            ),
            request.out_path,
            options=self.options,
            preset=request.preset,
            crf=request.crf,
        )


def _ltx_renderer(settings: Settings, gpu: bool) -> tuple[ClipRenderer | None, str]:
    if not settings.LTX_ENABLED:
        return None, "LTX_ENABLED is false"
    if not gpu and not settings.LTX_ALLOW_CPU:
        return None, "LTX-2 runs on GPU workers only (LTX_ALLOW_CPU=true for tests with tiny weights)"
    from app.models import ltx2

    loaded = ltx2.load_from_settings(settings)
    if not loaded.ok:
        return None, loaded.reason
    return LtxRenderer(loaded.pipeline, ltx2.options_from_settings(settings), Path(loaded.path).name), ""


def _parallax_renderer(settings: Settings, gpu: bool) -> tuple[ClipRenderer | None, str]:
    from app.phases.render.parallax import ParallaxRenderer

    return ParallaxRenderer(), ""


def _ken_burns_renderer(settings: Settings, gpu: bool) -> tuple[ClipRenderer | None, str]:
    return KenBurnsRenderer(), ""


_BUILDERS: dict[str, Callable[[Settings, bool], tuple[ClipRenderer | None, str]]] = {
    "ltx2": _ltx_renderer,
    "parallax": _parallax_renderer,
    "ken_burns": _ken_burns_renderer,
}


def build_renderers(settings: Settings, *, gpu: bool = False) -> tuple[list[ClipRenderer], dict[str, str]]:
    """The RENDERERS this process can run, in order, and why the others were left out. Ken Burns is
    always last: a ladder needs a floor that works on any photo."""
    chain: list[ClipRenderer] = []
    skipped: dict[str, str] = {}
    for name in settings.renderer_names:
        try:
            renderer, why = _BUILDERS[name](settings, gpu)
        except Exception as exc:  # a broken model must not stop the worker: the ladder steps down
            renderer, why = None, f"{type(exc).__name__}: {exc}"
        if renderer is None:
            skipped[name] = why
        else:
            chain.append(renderer)
    if not chain or chain[-1].name != "ken_burns":
        chain = [r for r in chain if r.name != "ken_burns"] + [KenBurnsRenderer()]
    return chain, skipped
