"""Bad media in, a video (or one clear reason) out: photos, rendered clips and music that are broken in the
ways real uploads are, on SQLite and PostgreSQL. Grouped by kind:

* photos: featureless ones (blank, "coming soon" cards, gradients) and odd sizes are rejected by phase 1
  with a reason; the job carries on with the rest;
* clips: a clip no renderer can produce drops out of the video with a warning; no clip at all fails the job;
* selection: a short target renders only the clips it can use, and edits bring the others in;
* music: damaged files that still decode get warnings, NaN/Inf samples are refused, phase 4 plays only the
  music phase 3 checked; every common sample format, channel layout and rate works.

Every input is generated here (app.samples, PIL, numpy, ffmpeg); nothing comes from ../shared.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from PIL import Image, ImageDraw, ImageFont
from sqlalchemy import select

from app.db.models import Clip, ClipStatus, Job, JobPhase, Photo, PhotoStatus
from app.db.session import session_scope
from app.errors import AudioError, PicaividError
from app.media.audio import MAX_MUSIC_SECONDS, analyze_samples, inspect_music
from app.media.ffmpeg import ffmpeg_exe, measure_loudness, probe, run_ffmpeg
from app.orchestrator import run_job
from app.phases.analyze.selection import NOT_NEEDED, clip_budget
from app.phases.base import PhaseContext
from app.phases.render import phase as render_phase
from app.phases.render.renderers import KenBurnsRenderer, RenderRequest
from app.services.edits import apply_edit
from app.services.jobs import PhotoInput, create_job, photos_from_folder
from app.services.reports import job_report
from tests.conftest import make_context, make_settings

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
#: The sample listing's photos are 640x427; a photo resized to this width is the one a test renderer breaks on.
MARKED_WIDTH = 656


# ---------------------------------------------------------------------------------------------
# inputs
# ---------------------------------------------------------------------------------------------


def good_photos(
    listing: Any, rooms: tuple[str, ...] = ("exterior", "kitchen", "bedroom", "outdoor")
) -> list[PhotoInput]:
    """One photo per room of `rooms`, in tour order."""
    by_room: dict[str, PhotoInput] = {}
    for item in photos_from_folder(listing.photos_dir):
        by_room.setdefault(item.room_label or "", item)
    return [by_room[r] for r in rooms]


def _save(path: Path, rgb: np.ndarray) -> Path:
    Image.fromarray(rgb).save(path, quality=92)
    return path


def _card(w: int, h: int, background: tuple[int, int, int], ink: tuple[int, int, int], text: str) -> np.ndarray:
    """A "coming soon" card: one flat colour, a line of text and a small logo block."""
    im = Image.new("RGB", (w, h), background)
    draw = ImageDraw.Draw(im)
    draw.text((w // 4, h // 2 - 20), text, fill=ink, font=ImageFont.load_default(size=max(12, h // 12)))
    draw.rectangle((w // 20, h // 20, w // 20 + w // 10, h // 20 + h // 12), fill=(200, 30, 30))
    return np.asarray(im)


def featureless_images(w: int = 640, h: int = 427) -> dict[str, np.ndarray]:
    """Photos that decode fine and show nothing: what a listing feed sends for "photo coming soon"."""
    rng = np.random.default_rng(4)
    ramp = np.linspace(30, 230, w, dtype=np.float32)
    return {
        "black": np.zeros((h, w, 3), np.uint8),
        "white": np.full((h, w, 3), 255, np.uint8),
        "brand_blue": np.tile(np.array([20, 70, 160], np.uint8), (h, w, 1)),
        "grey_noise": np.clip(128 + rng.normal(0, 1.5, (h, w, 3)), 0, 255).astype(np.uint8),
        "gradient": np.repeat(np.repeat(ramp[None, :, None], h, 0), 3, 2).astype(np.uint8),
        "coming_soon_light": _card(w, h, (250, 250, 250), (30, 30, 30), "COMING SOON"),
        "coming_soon_dark": _card(w, h, (12, 12, 16), (240, 240, 240), "PHOTOS COMING SOON"),
    }


def _marked_copy(photo: Path, out: Path) -> Path:
    """`photo` resized to MARKED_WIDTH: a good photo the test renderers single out."""
    with Image.open(photo) as im:
        return _save(
            out, np.asarray(im.convert("RGB").resize((MARKED_WIDTH, round(im.height * MARKED_WIDTH / im.width))))
        )


def _photo_strip(photo: Path, w: int, h: int) -> np.ndarray:
    """A panorama-shaped strip made of copies of a real photo side by side."""
    with Image.open(photo) as im:
        tile = np.asarray(im.convert("RGB").resize((round(im.width * h / im.height), h)))
    reps = -(-w // tile.shape[1])
    return np.ascontiguousarray(np.concatenate([tile] * reps, axis=1)[:, :w])


def render(ctx: PhaseContext, photos: list[PhotoInput], music: Path | None, target: float = 8.0) -> tuple[int, Any]:
    job_id = create_job(ctx, listing_id="bad-input", photos=photos, music=music, target_length=target)
    return job_id, run_job(ctx, job_id)


def _photos_by_name(ctx: PhaseContext, job_id: int) -> dict[str, Photo]:
    with session_scope(ctx.sessions) as s:
        return {p.filename or "": p for p in s.scalars(select(Photo).where(Photo.job_id == job_id))}


def _clips(ctx: PhaseContext, job_id: int) -> list[Clip]:
    with session_scope(ctx.sessions) as s:
        return list(s.scalars(select(Clip).where(Clip.job_id == job_id).order_by(Clip.id)))


def _phase_details(ctx: PhaseContext, job_id: int, phase: int) -> dict[str, Any]:
    with session_scope(ctx.sessions) as s:
        row = s.scalars(select(JobPhase).where(JobPhase.job_id == job_id, JobPhase.phase == phase)).one()
        return dict(row.details or {})


def _video(ctx: PhaseContext, report: dict[str, Any], tmp_path: Path) -> Path:
    return ctx.storage.get_file(ctx.storage.resolve_key(report["output_uri"]), tmp_path / "delivered.mp4")


# =============================================================================================
# photos
# =============================================================================================


def test_one_blank_photo_does_not_kill_the_job(tmp_path: Path, database_url: str, small_listing: Any) -> None:
    """Finding: four good photos + an all-black and an all-white "coming soon" image failed phase 2 with
    "score 0.00 < 0.6". Phase 1 rejects them with a reason; the video shows the four."""
    ctx = make_context(make_settings(tmp_path, database_url))
    blank = [
        PhotoInput(path=_save(tmp_path / "black.jpg", np.zeros((427, 640, 3), np.uint8))),
        PhotoInput(path=_save(tmp_path / "coming_soon.jpg", np.full((427, 640, 3), 255, np.uint8))),
    ]
    photos = good_photos(small_listing)
    job_id, outcome = render(ctx, [*photos[:2], blank[0], *photos[2:], blank[1]], small_listing.music_path)
    assert outcome.status == "completed", outcome.error
    rows = _photos_by_name(ctx, job_id)
    for name in ("black.jpg", "coming_soon.jpg"):
        assert rows[name].status == PhotoStatus.REJECTED
        assert (rows[name].reject_reason or "").startswith("featureless: a uniform colour")
    report = job_report(ctx, job_id)
    assert {s["file"] for s in report["skipped_photos"]} == {"black.jpg", "coming_soon.jpg"}
    shown = {c["photo"] for c in report["timeline"]["clips"]}
    assert shown == {p.path.name for p in photos}, "the four good photos carry the video"
    assert all(c.status == ClipStatus.RENDERED for c in _clips(ctx, job_id))
    assert probe(_video(ctx, report, tmp_path)).video is not None


def test_phase_1_rejects_every_featureless_kind_and_odd_sizes(
    tmp_path: Path, database_url: str, small_listing: Any
) -> None:
    """Blank colours, near-uniform noise, a gradient, light and dark "coming soon" cards (featureless), a
    1x1 px image, a thumbnail and an 8000x300 strip (too small) are each rejected with their own reason;
    an 8000x400 panorama is a real photo: kept and panned."""
    ctx = make_context(make_settings(tmp_path, database_url))
    good = good_photos(small_listing)
    bad = {name: _save(tmp_path / f"{name}.png", rgb) for name, rgb in featureless_images().items()}
    odd = {
        "one_pixel": _save(tmp_path / "one_pixel.png", np.full((1, 1, 3), 90, np.uint8)),
        "thumbnail": _save(tmp_path / "thumbnail.jpg", _photo_strip(good[1].path, 200, 150)),
        "strip_8000x300": _save(tmp_path / "strip_8000x300.jpg", _photo_strip(good[0].path, 8000, 300)),
    }
    panorama = _save(tmp_path / "panorama_8000x400.jpg", _photo_strip(good[3].path, 8000, 400))
    photos = [*good, *(PhotoInput(path=p) for p in [*bad.values(), *odd.values()]), PhotoInput(path=panorama)]
    job_id = create_job(ctx, listing_id="kinds", photos=photos, music=None, target_length=20)
    assert run_job(ctx, job_id, phases=[1]).status != "failed"
    rows = _photos_by_name(ctx, job_id)
    reasons = {name: rows[path.name].reject_reason or "" for name, path in {**bad, **odd}.items()}
    assert all(rows[path.name].status == PhotoStatus.REJECTED for path in [*bad.values(), *odd.values()])
    for name in ("black", "white", "brand_blue", "grey_noise"):
        assert reasons[name].startswith("featureless: a uniform colour"), reasons[name]
    assert reasons["gradient"].startswith("featureless: no visible detail"), reasons["gradient"]
    for name in ("coming_soon_light", "coming_soon_dark"):
        assert reasons[name].startswith("featureless:") and "one flat colour" in reasons[name], reasons[name]
    for name in odd:
        assert reasons[name].startswith("too_small: "), reasons[name]
    assert all(rows[p.path.name].status == PhotoStatus.OK for p in good)
    pano = rows[panorama.name]
    assert pano.status == PhotoStatus.OK and pano.reject_reason is None
    clip = next(c for c in _clips(ctx, job_id) if c.photo_id == pano.id)
    assert clip.motion_type in ("pan_left", "pan_right"), "a panorama pans along its wide axis"
    details = _phase_details(ctx, job_id, 1)
    assert details["rejected"] == len(bad) + len(odd) and details["clips"] == len(good) + 1


# =============================================================================================
# clips no renderer can produce
# =============================================================================================


class BlackFramesOnMarked(KenBurnsRenderer):
    """Ken Burns, except that photos MARKED_WIDTH px wide come out black: a real file the real validator
    rejects (black frames, no match with the photo)."""

    name = "black_on_marked"

    def render(self, request: RenderRequest) -> None:
        if request.rgb.shape[1] == MARKED_WIDTH:
            request = dataclasses.replace(request, rgb=np.zeros_like(request.rgb))
        super().render(request)


class RaisesOnMarked(KenBurnsRenderer):
    """Ken Burns, except that it gives up on photos MARKED_WIDTH px wide."""

    name = "raises_on_marked"

    def render(self, request: RenderRequest) -> None:
        if request.rgb.shape[1] == MARKED_WIDTH:
            raise PicaividError(f"this renderer cannot handle {MARKED_WIDTH} px photos")
        super().render(request)


class AlwaysRaises(KenBurnsRenderer):
    name = "always_raises"

    def render(self, request: RenderRequest) -> None:
        raise PicaividError("renderer out of order")


def _with_marked(tmp_path: Path, listing: Any) -> tuple[list[PhotoInput], str]:
    photos = good_photos(listing)
    marked = _marked_copy(photos[1].path, tmp_path / "marked_kitchen.jpg")
    return [photos[0], PhotoInput(path=marked, room_label="kitchen"), *photos[2:]], marked.name


@pytest.mark.parametrize(("renderer", "why"), [(BlackFramesOnMarked, "is black"), (RaisesOnMarked, "cannot handle")])
def test_a_clip_no_renderer_can_produce_drops_out_with_a_warning(
    tmp_path: Path,
    database_url: str,
    small_listing: Any,
    monkeypatch: pytest.MonkeyPatch,
    renderer: type[KenBurnsRenderer],
    why: str,
) -> None:
    """Finding: one clip every renderer failed failed the job. Now it is marked failed with the reason,
    the job's report warns about it, phase 3 leaves it out and the video renders with the rest."""
    monkeypatch.setattr(render_phase, "renderer_chain", lambda settings: [renderer()])
    ctx = make_context(make_settings(tmp_path, database_url))
    photos, marked = _with_marked(tmp_path, small_listing)
    job_id, outcome = render(ctx, photos, small_listing.music_path)
    assert outcome.status == "completed", outcome.error
    marked_id = _photos_by_name(ctx, job_id)[marked].id
    clips = {c.photo_id: c for c in _clips(ctx, job_id)}
    dropped = clips[marked_id]
    assert dropped.status == ClipStatus.FAILED and why in (dropped.error or "")
    assert all(c.status == ClipStatus.RENDERED for pid, c in clips.items() if pid != marked_id)
    report = job_report(ctx, job_id)
    warning = next(w for w in report["warnings"] if w.startswith(f"clip {dropped.id} "))
    assert marked in warning and "left out of the video" in warning and why in warning
    on_timeline = [c["clip_id"] for c in report["timeline"]["clips"]]
    assert dropped.id not in on_timeline and len(on_timeline) == len(photos) - 1
    assert _phase_details(ctx, job_id, 2)["failed"] == [dropped.id]
    info = probe(_video(ctx, report, tmp_path))
    assert info.video is not None and abs(info.frame_count - round(report["timeline"]["total_duration"] * 30)) <= 1


def test_no_clip_left_fails_the_job_with_a_clear_reason(
    tmp_path: Path, database_url: str, small_listing: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(render_phase, "renderer_chain", lambda settings: [AlwaysRaises()])
    ctx = make_context(make_settings(tmp_path, database_url))
    job_id, outcome = render(ctx, good_photos(small_listing)[:2], None)
    assert outcome.status == "failed"
    assert outcome.error is not None and outcome.error.startswith(
        "phase 2 (render): no clip could be rendered (2 failed"
    )
    assert "renderer out of order" in outcome.error and "\n" not in outcome.error
    with session_scope(ctx.sessions) as s:
        job = s.get(Job, job_id)
        assert job is not None and job.status == "failed" and job.error == outcome.error
    assert all(c.status == ClipStatus.FAILED for c in _clips(ctx, job_id))


def test_render_json_reports_the_dropped_clip(tmp_path: Path, small_listing: Any) -> None:
    """`picaivid render --json` with a renderer that breaks on one photo (injected through phase 2's
    `renderer_chain` seam in the CLI's own process): exit 0, the video, and the warning in "warnings"."""
    photos_dir = tmp_path / "photos"
    for item in good_photos(small_listing, ("exterior", "bedroom", "outdoor")):
        (photos_dir / (item.room_label or "other")).mkdir(parents=True, exist_ok=True)
        (photos_dir / (item.room_label or "other") / item.path.name).write_bytes(item.path.read_bytes())
    kitchen = good_photos(small_listing, ("kitchen",))[0].path
    (photos_dir / "kitchen").mkdir()
    _marked_copy(kitchen, photos_dir / "kitchen" / "marked_kitchen.jpg")
    out = tmp_path / "out" / "listing.mp4"
    out.parent.mkdir()
    args = ["render", str(photos_dir), "--music", str(small_listing.music_path), "-o", str(out), "-t", "8", "--json"]
    code = "\n".join(
        [
            "import sys",
            "from app.phases.render import phase",
            "from tests.test_bad_input_media import RaisesOnMarked",
            "phase.renderer_chain = lambda settings: [RaisesOnMarked()]",
            "from app.cli import app",
            f"sys.argv = ['picaivid', *{args!r}]",
            "app()",
        ]
    )
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}",
        "LOCAL_STORAGE_PATH": str(tmp_path / "storage"),
        "WORK_DIR": str(tmp_path / "work"),
        "S3_BUCKET": "",
        "OUTPUT_RESOLUTION": "640x360",
        "OUTPUT_X264_PRESET": "veryfast",
        "CLIP_X264_PRESET": "ultrafast",
    }
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["status"] == "completed"
    dropped = [w for w in report["warnings"] if "left out of the video" in w]
    assert len(dropped) == 1 and "marked_kitchen.jpg" in dropped[0] and "cannot handle" in dropped[0]
    assert "marked_kitchen.jpg" not in {c["photo"] for c in report["timeline"]["clips"]}
    assert len(report["timeline"]["clips"]) == 3 and probe(out).video is not None


def test_gpu_worker_leaves_the_clip_out_and_hands_the_job_on(
    tmp_path: Path, database_url: str, small_listing: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fleet's GPU handler on a clip no renderer can produce: the message is acknowledged (not a job
    failure), the other clip renders, and the last one completes phase 2 and hands phase 3 to the CPU queue."""
    import threading

    from app.orchestrator import fleet
    from app.queue.messages import JobMessage
    from app.queue.outbox import OutboxRelay
    from app.queue.sqs import ReceivedMessage
    from app.worker.handlers import Action, HandlerContext, InFlight, handle_gpu

    monkeypatch.setattr(render_phase, "renderer_chain", lambda settings: [RaisesOnMarked()])
    ctx = make_context(make_settings(tmp_path, database_url))
    photos, marked = _with_marked(tmp_path, small_listing)
    job_id = create_job(ctx, listing_id="gpu", photos=photos[:2], music=None, target_length=6)
    assert run_job(ctx, job_id, phases=[1]).status != "failed"
    assert fleet.begin_render_fanout(ctx, job_id, "cpu-1", nonce="m1").staged
    sent: dict[str, list[JobMessage]] = {"cpu": [], "gpu": []}
    relay = OutboxRelay(ctx.sessions, {q: sent[q].append for q in sent})
    hctx = HandlerContext(ctx=ctx, owner="gpu-1", relay=relay, cancel=threading.Event())
    with session_scope(ctx.sessions) as s:
        generation = s.get(Job, job_id).generation  # type: ignore[union-attr]
    marked_id = _photos_by_name(ctx, job_id)[marked].id
    outcomes = {}
    for clip in _clips(ctx, job_id):
        body = JobMessage(job_id=job_id, start_phase=2, clip_id=clip.id, generation=generation).body()
        outcomes[clip.photo_id] = handle_gpu(hctx, InFlight(ReceivedMessage(f"m{clip.id}", "r", body, 1)))
    assert all(d.action == Action.ACK for d in outcomes.values())
    assert "left out" in outcomes[marked_id].reason and "cannot handle" in outcomes[marked_id].reason
    with session_scope(ctx.sessions) as s:
        job = s.get(Job, job_id)
        assert job is not None and job.status == "running" and job.error is None
        phase2 = s.scalars(select(JobPhase).where(JobPhase.job_id == job_id, JobPhase.phase == 2)).one()
        assert phase2.status == "completed"
        assert any("left out of the video" in w["message"] for w in job.warnings)
    assert [m.reason for m in sent["cpu"]] == ["phase 2 complete"], "phase 3 handed to the CPU fleet once"


def test_fleet_completes_phase_2_around_a_failed_clip(tmp_path: Path, database_url: str) -> None:
    """The GPU fleet's hand-off: the last clip to finish completes phase 2 even though another clip failed
    (with a warning on the job); when every clip failed, phase 2 and the job fail with the reason."""
    from app.db.models import PhaseStatus
    from app.orchestrator import ensure_phase_rows
    from app.orchestrator.fleet import complete_render_phase_if_done

    ctx = make_context(make_settings(tmp_path, database_url))

    def job_with(statuses: list[str]) -> int:
        with session_scope(ctx.sessions) as s:
            job = Job(listing_id="fleet", status="running", current_phase=2)
            s.add(job)
            s.flush()
            rows = ensure_phase_rows(s, job)
            rows[1].status, rows[2].status = PhaseStatus.COMPLETED, PhaseStatus.RUNNING
            for status in statuses:
                s.add(
                    Clip(
                        job_id=job.id,
                        status=status,
                        error="validator: frame 0 is black" if status == "failed" else None,
                    )
                )
            return job.id

    busy = job_with([ClipStatus.RENDERED, ClipStatus.RENDERING, ClipStatus.FAILED])
    assert not complete_render_phase_if_done(ctx, busy), "a clip is still rendering"
    mixed = job_with([ClipStatus.RENDERED, ClipStatus.FAILED])
    assert complete_render_phase_if_done(ctx, mixed)
    lost = job_with([ClipStatus.FAILED, ClipStatus.FAILED])
    assert not complete_render_phase_if_done(ctx, lost)
    with session_scope(ctx.sessions) as s:
        done, failed = s.get(Job, mixed), s.get(Job, lost)
        assert done is not None and failed is not None
        assert ensure_phase_rows(s, done)[2].status == PhaseStatus.COMPLETED
        messages = [w["message"] for w in done.warnings]
        assert len(messages) == 1 and "left out of the video" in messages[0] and "frame 0 is black" in messages[0]
        assert ensure_phase_rows(s, failed)[2].status == PhaseStatus.FAILED
        assert failed.status == "failed" and (failed.error or "").startswith(
            "phase 2 (render): no clip could be rendered"
        )
        assert ensure_phase_rows(s, s.get(Job, busy))[2].status == PhaseStatus.RUNNING  # type: ignore[arg-type]


# =============================================================================================
# only the clips the target can use
# =============================================================================================


def _candidate(pid: int, room: str, *, hero: bool = False, score: float = 0.5) -> Any:
    from app.phases.timeline.planner import ClipCandidate

    return ClipCandidate(
        clip_id=pid, photo_id=pid, room_type=room, cluster_index=pid, is_hero=hero, score=score, available=0.0
    )


def test_clip_budget_bounds_what_the_planner_can_show() -> None:
    """ceil(target / MIN_SHOT_SECONDS) clips at most fit a target; the budget adds max(2, 25 %)."""
    from app.phases.timeline.planner import MIN_SHOT_SECONDS

    assert [clip_budget(t) for t in (5, 8, 16, 30, 60)] == [6, 8, 15, 28, 54]
    assert all(clip_budget(t) >= -(-t // MIN_SHOT_SECONDS) + 2 for t in (5.0, 8.0, 13.3, 600.0))


def test_selection_order_opener_then_chosen_then_one_hero_per_room_type() -> None:
    from app.phases.analyze.selection import select_for_target, selection_order

    rooms = [
        _candidate(1, "bedroom", hero=True, score=0.9),
        _candidate(2, "bedroom", hero=True, score=0.8),
        _candidate(3, "kitchen", hero=True, score=0.5),
        _candidate(4, "exterior", hero=True, score=0.4),
        _candidate(5, "kitchen", score=0.95),
        _candidate(6, "bathroom", hero=True, score=0.3),
        _candidate(7, "exterior", score=0.2),
    ]
    order = [c.clip_id for c in selection_order(rooms)]
    assert order[0] == 4, "the opener (best exterior) first"
    assert order[1:5] == [1, 3, 6, 2], "one hero per room type before a second one, by score"
    assert order[5:] == [5, 7], "non-heroes last, by score"
    assert [c.clip_id for c in selection_order(rooms, pinned={6})][:3] == [4, 6, 1], "a user's hero comes next"
    assert select_for_target(rooms, 30.0) == {c.clip_id for c in rooms}, "all of them when they fit"
    assert clip_budget(5.0) == 6 and select_for_target(rooms, 5.0) == {4, 1, 3, 6, 2, 5}, "the worst one waits"


@pytest.fixture(scope="module")
def thirty_photos(small_listing: Any, tmp_path_factory: pytest.TempPathFactory) -> list[PhotoInput]:
    """The sample listing's 15 photos and a mirrored copy of each (a different shot to dHash): 30 photos."""
    out = tmp_path_factory.mktemp("mirrored")
    photos = photos_from_folder(small_listing.photos_dir)
    mirrored = []
    for item in photos:
        with Image.open(item.path) as im:
            flipped = np.ascontiguousarray(np.asarray(im.convert("RGB"))[:, ::-1])
        mirrored.append(PhotoInput(path=_save(out / f"mirrored_{item.path.name}", flipped), room_label=item.room_label))
    return [*photos, *mirrored]


def test_a_short_target_renders_only_what_it_can_show_and_edits_bring_in_more(
    tmp_path: Path, database_url: str, small_listing: Any, thirty_photos: list[PhotoInput]
) -> None:
    """Finding: 200 photos rendered 200 clips for an 8 s video that shows 5. Now phase 1 selects at most
    clip_budget(target) photos (the opener, heroes, the best of the rest); the others stay analysed as
    "not needed". A longer target (set_target_length) renders only the extra clips it needs; swap_hero on
    a photo left out brings it in as its room's hero."""
    ctx = make_context(make_settings(tmp_path, database_url, OUTPUT_X264_PRESET="ultrafast"))
    job_id, outcome = render(ctx, thirty_photos, small_listing.music_path, target=8.0)
    assert outcome.status == "completed", outcome.error
    clips = _clips(ctx, job_id)
    assert 5 <= len(clips) <= clip_budget(8.0) == 8
    assert all(c.status == ClipStatus.RENDERED for c in clips)
    report = job_report(ctx, job_id)
    on_timeline = {c["clip_id"] for c in report["timeline"]["clips"]}
    assert on_timeline <= {c.id for c in clips}, "every timeline clip was rendered"
    assert report["timeline"]["clips"][0]["room"] == "exterior", "the opener is among the selected"
    rows = _photos_by_name(ctx, job_id)
    spare = [p for p in rows.values() if p.reject_reason == NOT_NEEDED]
    with_clip = {c.photo_id for c in clips}
    assert spare and all(p.status == PhotoStatus.OK and p.final_score is not None for p in spare), "still analysed"
    assert not {p.id for p in spare} & with_clip
    assert any("not needed for the 8 s target" in w for w in report["warnings"])
    assert _phase_details(ctx, job_id, 1)["not_needed"] == len(spare)

    before = {c.photo_id: (c.id, c.render_key, c.render_attempts) for c in clips}
    longer = apply_edit(ctx, job_id, {"type": "set_target_length", "target_length": 14})
    assert longer.rerun_from == 1, "the longer target needs clips that do not exist yet"
    assert run_job(ctx, job_id).status == "completed"
    grown = _clips(ctx, job_id)
    assert len(clips) < len(grown) <= clip_budget(14.0)
    after = {c.photo_id: (c.id, c.render_key, c.render_attempts) for c in grown}
    assert all(after[pid] == before[pid] for pid in before if pid in after), "earlier renders are reused"
    assert _phase_details(ctx, job_id, 2)["rendered"] == len(set(after) - set(before))

    rows = _photos_by_name(ctx, job_id)
    left_out = max((p for p in rows.values() if p.reject_reason == NOT_NEEDED), key=lambda p: p.final_score or 0)
    swap = apply_edit(ctx, job_id, {"type": "swap_hero", "photo_id": left_out.id})
    assert swap.rerun_from == 1
    assert run_job(ctx, job_id).status == "completed"
    hero = next(c for c in _clips(ctx, job_id) if c.photo_id == left_out.id)
    assert hero.is_hero and hero.status == ClipStatus.RENDERED
    assert _photos_by_name(ctx, job_id)[left_out.filename or ""].reject_reason is None


# =============================================================================================
# music
# =============================================================================================


def _have_encoder(codec: str) -> bool:
    listing = subprocess.run([ffmpeg_exe(), "-hide_banner", "-encoders"], capture_output=True, text=True, check=False)
    return f" {codec} " in listing.stdout


@pytest.fixture(scope="module")
def damaged_mp3(small_listing: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The listing's track as mp3: intact, with 20 kB zeroed in the middle, and with 20 kB cut out."""
    if not _have_encoder("libmp3lame"):
        pytest.skip("this ffmpeg has no mp3 encoder")
    out = tmp_path_factory.mktemp("mp3")
    intact = out / "intact.mp3"
    run_ffmpeg(["-y", "-i", str(small_listing.music_path), "-c:a", "libmp3lame", "-b:a", "192k", str(intact)])
    data = intact.read_bytes()
    mid = len(data) // 2
    (out / "zeroed.mp3").write_bytes(data[:mid] + bytes(20_000) + data[mid + 20_000 :])
    (out / "cut.mp3").write_bytes(data[:mid] + data[mid + 20_000 :])
    return {"intact": intact, "zeroed": out / "zeroed.mp3", "cut": out / "cut.mp3"}


def test_a_corrupted_mp3_renders_with_a_decode_warning(
    tmp_path: Path, database_url: str, small_listing: Any, damaged_mp3: dict[str, Path]
) -> None:
    """Finding: an mp3 with bytes zeroed in the middle rendered with no warning at all."""
    ctx = make_context(make_settings(tmp_path, database_url))
    job_id, outcome = render(ctx, good_photos(small_listing), damaged_mp3["zeroed"], target=12.0)
    assert outcome.status == "completed", outcome.error
    report = job_report(ctx, job_id)
    broken = [w for w in report["warnings"] if "decode error" in w]
    assert len(broken) == 1 and broken[0].startswith("music has ") and broken[0].endswith("it may sound broken")
    assert _phase_details(ctx, job_id, 3)["music_decode_errors"] >= 1
    loud = measure_loudness(_video(ctx, report, tmp_path))
    assert -15.5 <= loud.integrated_lufs <= -12.5


@pytest.mark.parametrize("name", ["zeroed", "cut"])
def test_damaged_mp3_decode_errors_are_counted(damaged_mp3: dict[str, Path], name: str) -> None:
    assert inspect_music(damaged_mp3["intact"]).decode_errors == 0
    check = inspect_music(damaged_mp3[name])
    assert check.decode_errors >= 1
    assert check.warnings() == [f"music has {check.decode_errors} decode error(s); it may sound broken"]


def _nan_wav(path: Path, music: Path, value: float = float("nan")) -> Path:
    y, sr = sf.read(music, dtype="float32")
    y[sr * 5 : sr * 5 + 64] = value
    sf.write(path, y, sr, subtype="FLOAT")
    return path


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_a_float_wav_with_nan_or_inf_is_refused_before_any_work(
    tmp_path: Path, database_url: str, small_listing: Any, value: float
) -> None:
    """Finding: a float WAV containing NaN passed the music check, then failed in phase 4."""
    ctx = make_context(make_settings(tmp_path, database_url))
    with pytest.raises(AudioError, match=r"not numbers \(NaN or infinite\)"):
        create_job(
            ctx,
            listing_id="nan",
            photos=good_photos(small_listing)[:2],
            music=_nan_wav(tmp_path / "nan.wav", small_listing.music_path, value),
        )
    with session_scope(ctx.sessions) as s:
        assert s.scalars(select(Job)).first() is None, "nothing was written"


def test_phase_3_and_phase_4_agree_on_the_music(tmp_path: Path, database_url: str, small_listing: Any) -> None:
    """Music that turns into NaN after the job was accepted fails phase 3 (the same check); music replaced
    after phase 3 checked it is refused by phase 4 instead of being played unchecked."""
    ctx = make_context(make_settings(tmp_path, database_url))
    photos = good_photos(small_listing)[:2]
    nan_job = create_job(ctx, listing_id="nan-later", photos=photos, music=small_listing.music_path, target_length=8)
    swap_job = create_job(ctx, listing_id="swap", photos=photos, music=small_listing.music_path, target_length=8)

    def stored(job_id: int) -> Path:
        with session_scope(ctx.sessions) as s:
            uri = s.get(Job, job_id).music_uri  # type: ignore[union-attr]
        return Path(ctx.storage.local_path(ctx.storage.resolve_key(uri), tmp_path / f"m{job_id}"))

    _nan_wav(stored(nan_job), small_listing.music_path)
    failed = run_job(ctx, nan_job)
    assert failed.status == "failed" and failed.exit_code == 2
    assert (failed.error or "").startswith("phase 3 (timeline): music contains") and "NaN" in (failed.error or "")

    assert run_job(ctx, swap_job, phases=[1, 2, 3]).status != "failed"
    assert len(_phase_details(ctx, swap_job, 3)["music_sha256"]) == 64
    y, sr = sf.read(small_listing.music_path, dtype="float32")
    sf.write(stored(swap_job), 0.5 * y, sr, subtype="PCM_16")
    refused = run_job(ctx, swap_job)
    assert refused.status == "failed"
    assert refused.error == "phase 4 (assemble): the music file changed after phase 3 checked it; re-run from phase 3"
    assert run_job(ctx, swap_job, start_phase=3).status == "completed", "phase 3 checks the new file, then 4 plays it"


def _click_track(seconds: float, sr: int, bpm: float = 112.0, first: float = 0.5) -> np.ndarray:
    """Kicks on every beat (louder on the downbeat) over faint noise."""
    y = np.random.default_rng(5).normal(0, 0.002, int(seconds * sr)).astype(np.float32)
    t = np.arange(int(0.12 * sr)) / sr
    kick = (np.sin(2 * np.pi * 60 * t) * np.exp(-t / 0.04)).astype(np.float32)
    for k, b in enumerate(np.arange(first, seconds - 0.2, 60.0 / bpm)):
        i = round(b * sr)
        y[i : i + kick.size] += kick[: y.size - i] * (0.9 if k % 4 == 0 else 0.6)
    return y


def test_a_silence_gap_inside_the_video_is_a_warning(tmp_path: Path, database_url: str, small_listing: Any) -> None:
    """3 s of digital silence at 6 s of the track: the video (12 s from the first downbeat) goes quiet
    there, and the job says so; the same gap after the video's end says nothing."""
    y, sr = sf.read(small_listing.music_path, dtype="float32")
    inside, after = y.copy(), y.copy()
    inside[6 * sr : 9 * sr] = 0.0
    after[20 * sr : 23 * sr] = 0.0
    ctx = make_context(make_settings(tmp_path, database_url))
    warnings = {}
    for name, track in (("inside", inside), ("after", after)):
        sf.write(tmp_path / f"{name}.wav", track, sr, subtype="PCM_16")
        job_id, outcome = render(ctx, good_photos(small_listing)[:2], tmp_path / f"{name}.wav", target=12.0)
        assert outcome.status == "completed", outcome.error
        warnings[name] = [w for w in job_report(ctx, job_id)["warnings"] if w.startswith("music is silent")]
    assert len(warnings["inside"]) == 1 and warnings["inside"][0].startswith("music is silent for 3.0 s from 0:06.0")
    assert warnings["after"] == []


SR_SOURCE = 44100


@pytest.mark.parametrize(
    ("name", "subtype", "channels", "rate"),
    [
        ("pcm_u8", "PCM_U8", 2, SR_SOURCE),
        ("pcm_24", "PCM_24", 2, SR_SOURCE),
        ("float", "FLOAT", 2, SR_SOURCE),
        ("mono", "PCM_16", 1, SR_SOURCE),
        ("surround_5_1", "PCM_16", 6, SR_SOURCE),
        ("rate_8k", "PCM_16", 1, 8000),
        ("rate_192k", "PCM_24", 2, 192000),
    ],
)
def test_every_wav_flavour_decodes_cleanly_and_keeps_its_beat(
    tmp_path: Path, name: str, subtype: str, channels: int, rate: int
) -> None:
    """8/24-bit and float samples, mono/stereo/5.1, 8 kHz to 192 kHz: no warnings, the right length and
    the 112 BPM pulse found."""
    y = _click_track(12.0, rate)
    path = tmp_path / f"{name}.wav"
    sf.write(path, np.repeat(y[:, None], channels, axis=1) * (0.5 if channels == 6 else 1.0), rate, subtype=subtype)
    check = inspect_music(path)
    assert check.warnings() == [] and check.decode_errors == 0 and check.silence_gaps == ()
    assert check.duration == pytest.approx(12.0, abs=0.01) and check.longer_than is None
    grid = analyze_samples(check.samples, check.sample_rate)
    assert grid.source == "librosa" and grid.tempo == pytest.approx(112.0, rel=0.02)


@pytest.mark.parametrize("suffix", [".mp3", ".flac", ".m4a", ".ogg", ".opus"])
def test_healthy_compressed_tracks_report_no_decode_errors(tmp_path: Path, suffix: str) -> None:
    """No false alarms: what users upload most decodes without a single error line."""
    from app.samples import synthesize_music

    try:
        synthesize_music(tmp_path / f"track{suffix}", bpm=100, seconds=10, seed=2)
    except PicaividError as exc:  # an ffmpeg build without that encoder
        pytest.skip(f"cannot encode {suffix}: {exc}")
    check = inspect_music(tmp_path / f"track{suffix}")
    assert check.decode_errors == 0 and check.warnings() == []
    assert check.duration == pytest.approx(10.0, abs=0.06)


def test_a_long_silent_intro_is_skipped_not_warned_about(tmp_path: Path) -> None:
    sr = 22050
    y = np.concatenate([np.zeros(8 * sr, np.float32), _click_track(14.0, sr)])
    path = tmp_path / "late_start.wav"
    sf.write(path, y, sr, subtype="PCM_16")
    check = inspect_music(path)
    assert check.silence_gaps == () and check.warnings() == [], "a silent intro is not a gap"
    grid = analyze_samples(check.samples, sr)
    assert grid.downbeats and grid.downbeats[0] >= 8.0, "the video starts on the first downbeat, after the intro"


def test_a_very_long_track_is_analysed_up_to_the_cap(tmp_path: Path) -> None:
    """A 16-minute track: decoded and checked up to MAX_MUSIC_SECONDS (the longest target after a long
    intro), its real length recorded, instead of gigabytes of samples for beats nobody hears."""
    path = tmp_path / "long_mix.wav"
    run_ffmpeg(["-y", "-f", "lavfi", "-i", "sine=frequency=220:sample_rate=8000:duration=960", str(path)])
    check = inspect_music(path, sample_rate=8000)
    assert check.duration == pytest.approx(MAX_MUSIC_SECONDS)
    assert check.longer_than is not None and check.longer_than > MAX_MUSIC_SECONDS
    assert check.warnings() == []


def test_a_truncated_mp3_is_just_shorter(damaged_mp3: dict[str, Path], tmp_path: Path) -> None:
    """An upload cut off at the end decodes without errors (nothing is broken, the track ends early)."""
    data = damaged_mp3["intact"].read_bytes()
    path = tmp_path / "truncated.mp3"
    path.write_bytes(data[: len(data) // 2])
    check = inspect_music(path)
    assert check.decode_errors == 0 and check.duration == pytest.approx(
        inspect_music(damaged_mp3["intact"]).duration / 2, rel=0.05
    )
