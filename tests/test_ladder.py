"""The renderer ladder and the model layer inside the pipeline, on CPU with tiny random models.

* With tiny random CLIP, depth and LTX-2 weights in MODEL_CACHE_DIR (the production layout) and
  ``RENDERERS=ltx2,parallax,ken_burns``, a job completes: phase 1 labels scenes with CLIP and stores a
  depth map per clip, random-weight LTX-2 output is rejected by the validator, and every clip lands on
  the next rung, with each attempt recorded (clip rows and `--json`-style report).
* A renderer that raises (a CUDA out-of-memory, a bug) steps down instead of failing; a cancel does not.
* A clip's render key names the renderer that made it: adding a renderer keeps existing clips.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from app.components import Components
from app.db.models import AnalysisResult, Clip, ClipStatus, RoomCluster
from app.db.session import session_scope
from app.errors import RenderCancelled
from app.orchestrator import run_job, run_phase
from app.phases.base import PhaseContext
from app.phases.render import phase as render_phase
from app.phases.render.renderers import KenBurnsRenderer, RenderRequest
from app.samples import SampleListing, make_sample_listing
from app.services.jobs import create_job, photos_from_folder
from app.services.reports import job_report
from tests.conftest import make_context, make_settings


@pytest.fixture(scope="module")
def listing(tmp_path_factory: pytest.TempPathFactory) -> SampleListing:
    return make_sample_listing(
        tmp_path_factory.mktemp("ladder-listing"),
        width=480,
        height=320,
        music_seconds=12,
        bpm=120.0,
        seed=4,
        rooms=["exterior", "kitchen"],
        workers=1,
        depth=True,  # true depth sidecars beside the photos, as a 3-D tour export brings them
    )


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from app.models.tiny import save_tiny_random

    cache = tmp_path_factory.mktemp("model-cache")
    written = save_tiny_random(cache, kinds=("clip", "depth", "ltx2"))
    assert set(written) == {"clip", "depth", "ltx2"}, written
    return cache


def _job(ctx: PhaseContext, listing: SampleListing, target: float = 6.0) -> int:
    return create_job(
        ctx,
        listing_id="ladder",
        photos=photos_from_folder(listing.photos_dir),
        music=listing.music_path,
        target_length=target,
    )


@pytest.mark.slow
def test_random_ltx2_is_rejected_and_the_job_completes_on_the_next_rungs(
    tmp_path: Path, database_url: str, listing: SampleListing, tiny_models: Path
) -> None:
    settings = make_settings(
        tmp_path,
        database_url,
        MODEL_CACHE_DIR=str(tiny_models),
        LTX_ENABLED=True,
        LTX_ALLOW_CPU=True,
        LTX_STEPS=2,
        LTX_WIDTH=64,
        LTX_HEIGHT=64,
        LTX_FPS=8,
        RENDERERS="ltx2,parallax,ken_burns",
        OUTPUT_RESOLUTION="320x192",
    )
    components = Components.from_settings(settings)
    assert [r.name for r in components.renderers] == ["ltx2", "parallax", "ken_burns"], components.report()
    assert components.models is not None and components.models.clip is not None
    ctx = make_context(settings)
    ctx.components = components
    job_id = _job(ctx, listing)
    outcome = run_job(ctx, job_id)
    assert outcome.status == "completed", outcome.error

    with session_scope(ctx.sessions) as s:
        clips = list(s.scalars(select(Clip).where(Clip.job_id == job_id)))
    rendered = [c for c in clips if c.status == ClipStatus.RENDERED]
    assert rendered
    for clip in rendered:
        tried = [a["renderer"] for a in clip.render_log]
        assert tried[0] == "ltx2" and clip.render_log[0]["passed"] is False, clip.render_log
        assert clip.render_log[0]["reasons"], "a rejection names its reasons"
        assert clip.model_used in ("parallax", "ken_burns") and clip.render_log[-1]["passed"] is True

    report = job_report(ctx, job_id)
    assert report["ai_generated_clips"] == []  # nothing generated made it into the video
    first = report["timeline"]["clips"][0]
    assert first["attempts"][0]["renderer"] == "ltx2" and first["attempts"][0]["passed"] is False
    assert first["attempts"][-1] == {"renderer": first["renderer"], "passed": True, "reasons": []}
    shown = [p for p in report["photos"] if p["status"] == "ok"]
    assert shown and all((p["scene_source"] or "").startswith("clip:") for p in shown)
    with_clips = {c["photo_id"] for c in report["timeline"]["clips"]}
    depth_sources = {p["depth_source"] for p in report["photos"] if p["photo_id"] in with_clips}
    assert None not in depth_sources, report["photos"]  # every clip's photo has depth (sidecar or model)
    assert any(c.model_used == "parallax" for c in rendered), [c.render_log for c in rendered]
    with session_scope(ctx.sessions) as s:
        results = list(s.scalars(select(AnalysisResult).where(AnalysisResult.job_id == job_id)))
        clusters = list(s.scalars(select(RoomCluster).where(RoomCluster.job_id == job_id)))
    # The sample rooms have real depth: every room is recommended depth-aware motion.
    assert results and {(r.tier, r.model_recommendation) for r in results} == {("3d", "ltx2,parallax")}
    assert all(c.depth_variance and c.depth_variance > 0.005 for c in clusters)


def test_motion_tier_follows_the_depth_of_the_room() -> None:
    from app.phases.analyze.depth import DepthRecord
    from app.phases.analyze.phase import motion_tier

    assert motion_tier(None) == ("2d", "ken_burns")
    assert motion_tier(DepthRecord("u", "model", False, 0.0001)) == ("2d", "ken_burns")  # a wall close-up
    assert motion_tier(DepthRecord("u", "sidecar_png16", True, 0.03)) == ("3d", "ltx2,parallax")


class _Raises:
    name, version, is_3d, generative = "flaky", "1", True, True

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc

    def render(self, request: RenderRequest) -> None:
        raise self.exc


def _through_phase_2(ctx: PhaseContext, listing: SampleListing) -> int:
    job_id = _job(ctx, listing, target=5.0)
    assert run_phase(ctx, job_id, 1)[0]
    return job_id


def test_a_crashing_renderer_steps_down_and_a_cancel_does_not(
    tmp_path: Path, sqlite_url: str, listing: SampleListing
) -> None:
    import torch

    ctx = make_context(make_settings(tmp_path, sqlite_url, OUTPUT_RESOLUTION="320x192"))
    oom = torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
    ctx.components = Components(renderers=[_Raises(oom), KenBurnsRenderer()])
    job_id = _through_phase_2(ctx, listing)
    with session_scope(ctx.sessions) as s:
        clip_id = s.scalars(select(Clip.id).where(Clip.job_id == job_id)).first()
    assert clip_id is not None
    outcome = render_phase.render_clip(ctx, clip_id)
    assert outcome.renderer == "ken_burns"
    with session_scope(ctx.sessions) as s:
        log = s.get(Clip, clip_id).render_log  # type: ignore[union-attr]
    assert log[0]["renderer"] == "flaky" and "OutOfMemoryError" in log[0]["reasons"][0]

    ctx.components = Components(renderers=[_Raises(RenderCancelled("stop")), KenBurnsRenderer()])
    with session_scope(ctx.sessions) as s:
        s.get(Clip, clip_id).status = ClipStatus.PENDING  # type: ignore[union-attr]
    with pytest.raises(RenderCancelled):
        render_phase.render_clip(ctx, clip_id, cancel=threading.Event())


def test_adding_a_renderer_keeps_clips_other_renderers_made(
    tmp_path: Path, sqlite_url: str, listing: SampleListing
) -> None:
    ctx = make_context(make_settings(tmp_path, sqlite_url, OUTPUT_RESOLUTION="320x192"))
    ctx.components = Components(renderers=[KenBurnsRenderer()])
    job_id = _through_phase_2(ctx, listing)
    assert run_phase(ctx, job_id, 2)[0]
    with session_scope(ctx.sessions) as s:
        before: dict[int, Any] = {c.id: (c.render_key, c.rendered_at) for c in s.scalars(select(Clip))}

    class BetterButNew(_Raises):
        name = "better"

    ctx.components = Components(renderers=[BetterButNew(RuntimeError("never called")), KenBurnsRenderer()])
    for clip_id in before:
        assert render_phase.render_clip(ctx, clip_id).rendered is False  # reused, not re-rendered
    with session_scope(ctx.sessions) as s:
        assert {c.id: (c.render_key, c.rendered_at) for c in s.scalars(select(Clip))} == before


def test_storyboard_cards_name_the_renderer_and_the_rungs_stepped_down_from() -> None:
    from types import SimpleNamespace

    from app.phases.timeline.storyboard import clip_label

    log = [{"renderer": "ltx2", "passed": False}, {"renderer": "parallax", "passed": True}]
    assert clip_label(SimpleNamespace(motion_type="push_in", model_used="parallax", render_log=log)) == (
        "push_in / parallax (after ltx2)"
    )
    assert clip_label(SimpleNamespace(motion_type="pan_left", model_used="ken_burns", render_log=[])) == (
        "pan_left / ken_burns"
    )
    assert clip_label(None) == "not shown"
