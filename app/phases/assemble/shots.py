"""The shots of one deliverable: each timeline clip as a frame source at the deliverable's framing.

A clip a camera computes (Ken Burns, depth parallax) is re-made from its photo at the deliverable's own
resolution and framing (`clips.format_plans[format]`), so a 9:16 cut is as sharp as its photo allows,
never a crop of the 16:9 frames. A generated clip (LTX-2) is decoded from its stored file. In the
unbranded variant the photo's detected text is blurred out first, and a generated opener is replaced
by the unaltered photo (the MLS cut opens on an unaltered exterior).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from app.media.compose import CameraShot, PlannedShot, ShotSource, VideoShot, frame_grid, speed_ramp
from app.media.images import load_photo
from app.media.kenburns import KenBurnsCamera
from app.media.motion import reverse_plan, vary_motion
from app.media.parallax import ParallaxCamera
from app.media.redact import blur_regions
from app.media.types import MotionPlan
from app.phases.base import PhaseContext

log = logging.getLogger(__name__)

#: Renderers whose clips phase 4 computes from the photo (the others' clips are stored files).
COMPUTED_RENDERERS = frozenset({"ken_burns", "parallax"})


@dataclass(frozen=True)
class ShotInput:
    """What phase 4 knows about one timeline clip (read in the phase's transaction)."""

    clip_id: int
    photo_id: int
    photo_uri: str
    renderer: str
    clip_uri: str | None
    in_time: float
    start: float
    end: float
    transition: str
    transition_duration: float
    plans: dict[str, Any]
    text_boxes: tuple[tuple[float, float, float, float], ...] = ()
    depth_uri: str | None = None
    is_exterior: bool = False
    room: str | None = None


@dataclass
class ShotReport:
    """What the deliverable's compliance check needs to know about how its shots were made."""

    redacted_regions: int = 0
    replaced_generated: list[int] = field(default_factory=list)
    generated: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class ShotContext:
    ctx: PhaseContext
    workdir: Path
    width: int
    height: int
    fps: float
    format: str
    unbranded: bool
    energy: np.ndarray | None


def _plan_for(shot: ShotInput, fmt: str) -> MotionPlan:
    plan = shot.plans.get(fmt) or shot.plans.get("primary")
    if plan is None:
        raise ValueError(f"clip {shot.clip_id} has no camera plan")
    return MotionPlan.from_dict(plan)


def _photo(sc: ShotContext, shot: ShotInput, report: ShotReport) -> np.ndarray:
    local = sc.ctx.storage.local_path(sc.ctx.storage.resolve_key(shot.photo_uri), sc.workdir / "cache")
    rgb = load_photo(local).rgb
    if sc.unbranded and shot.text_boxes:
        rgb, n = blur_regions(rgb, shot.text_boxes)
        report.redacted_regions += n
    return rgb


def _depth(sc: ShotContext, shot: ShotInput) -> np.ndarray | None:
    if not shot.depth_uri:
        return None
    from app.phases.analyze.depth import load_depth

    try:
        return load_depth(sc.ctx, shot.depth_uri, sc.workdir)
    except Exception:  # a lost depth map costs the shot its parallax, never the deliverable
        log.warning("depth map %s unreadable; Ken Burns instead", shot.depth_uri, exc_info=True)
        return None


def _camera_opener(
    sc: ShotContext, shot: ShotInput, span: tuple[int, int], report: ShotReport, renderer: str, reverse: bool
) -> Callable[[], ShotSource]:
    first, frames = span

    def open_shot() -> ShotSource:
        rgb = _photo(sc, shot, report)
        plan = _plan_for(shot, sc.format)
        if reverse:
            plan = reverse_plan(plan)
        depth = _depth(sc, shot) if renderer == "parallax" else None
        camera: Any
        if depth is not None:
            camera = ParallaxCamera(rgb, depth, plan, sc.width, sc.height)
        else:
            camera = KenBurnsCamera(rgb, plan, sc.width, sc.height)
        energy = sc.energy[first : first + frames] if sc.energy is not None else None
        return CameraShot(camera, speed_ramp(energy, frames))

    return open_shot


def _video_opener(sc: ShotContext, shot: ShotInput, lead: float) -> Callable[[], ShotSource]:
    def open_shot() -> ShotSource:
        assert shot.clip_uri is not None
        local = sc.ctx.storage.local_path(sc.ctx.storage.resolve_key(shot.clip_uri), sc.workdir / "cache")
        return VideoShot(local, sc.width, sc.height, sc.fps, start=max(0.0, shot.in_time - lead))

    return open_shot


def _reversed_for_variety(inputs: list[ShotInput]) -> list[bool]:
    """Which computed shots run their camera backwards so that no two consecutive shots make the same
    move (`vary_motion`: a push-in after a push-in becomes a pull-out over the same windows). Decided
    on the clips' primary plans, in timeline order, so every format tells the same story; a stored
    (generated) clip is never reversed."""
    plans = [MotionPlan.from_dict(s.plans["primary"]) for s in inputs]
    varied = vary_motion(plans)
    return [a is not b and s.renderer in COMPUTED_RENDERERS for s, a, b in zip(inputs, varied, plans, strict=True)]


def plan_shots(sc: ShotContext, inputs: list[ShotInput]) -> tuple[list[PlannedShot], int, ShotReport]:
    """The deliverable's shots on the frame grid, its frame count, and how they were made."""
    grid, total = frame_grid(
        [i.end for i in inputs], [(i.transition, i.transition_duration) for i in inputs[:-1]], sc.fps
    )
    report = ShotReport()
    reversed_ = _reversed_for_variety(inputs)
    shots: list[PlannedShot] = []
    for index, (shot, (first, last, cut, kind, frames)) in enumerate(zip(inputs, grid, strict=True)):
        renderer = shot.renderer
        if renderer not in COMPUTED_RENDERERS:
            report.generated.append(shot.clip_id)
            if sc.unbranded and index == 0:
                # The MLS cut opens on an unaltered photo: the generated opener is shown as Ken Burns.
                renderer = "ken_burns"
                report.replaced_generated.append(shot.clip_id)
        if renderer in COMPUTED_RENDERERS or not shot.clip_uri:
            opener = _camera_opener(sc, shot, (first, last - first), report, renderer, reversed_[index])
        else:
            lead = (round(shot.start * sc.fps) - first) / sc.fps
            opener = _video_opener(sc, shot, lead)
        shots.append(
            PlannedShot(open=opener, first=first, last=last, cut=cut, transition=kind, transition_frames=frames)
        )
    return shots, total, report
