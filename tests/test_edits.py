"""Typed edits (app.services.edits): each edit's minimal re-run, proven on a real rendered job, on SQLite
and on PostgreSQL; validation that rejects bad edits without writing anything; the planner's directives.

Rendering is the slow part, so the module renders one job once (5 photos, 3 rooms, 640x360, no music: no
beat tracking or loudness passes), copies its rows into a PostgreSQL template as well, and every test
edits its own copy of the database (SQLite: a file copy; PostgreSQL: CREATE DATABASE ... TEMPLATE). The
copies share the render's storage folder, so checkpointed clips are found where their rows say they are.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import sqlite3
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Integer, create_engine, func, select, text

from app.config import Settings
from app.db.migrate import upgrade
from app.db.models import (
    AnalysisResult,
    Base,
    Clip,
    ClipStatus,
    Edit,
    Job,
    JobPhase,
    OutboxMessage,
    Photo,
    PhotoStatus,
    Timeline,
    utcnow,
)
from app.db.session import get_engine, normalize_url, session_scope
from app.errors import EditRejectedError, JobBusyError, JobNotFoundError
from app.media.types import BeatGrid
from app.orchestrator import run_job
from app.phases.base import PhaseContext
from app.phases.timeline.planner import (
    ClipCandidate,
    TimelineDirectives,
    apply_order,
    directives_from_edits,
    plan_timeline,
    story_order,
)
from app.samples import SampleListing, make_sample_listing
from app.services.edits import (
    EditOutcome,
    ReorderEdit,
    SetTargetLengthEdit,
    SetTransitionEdit,
    SwapHeroEdit,
    TrimEdit,
    apply_edit,
    parse_edit,
)
from app.services.jobs import create_job, photos_from_folder
from tests.conftest import make_context, make_settings

TARGET = 10.0
NEW_BPM = 96.0


# ---------------------------------------------------------------------------------------------
# fixtures: one rendered job per database, a private copy per test
# ---------------------------------------------------------------------------------------------


@dataclass
class Template:
    kind: str
    url: str
    storage: Path
    job_id: int
    listing: SampleListing


@dataclass
class Copy:
    ctx: PhaseContext
    job_id: int
    listing: SampleListing
    template: Template


@pytest.fixture(scope="module")
def listing(tmp_path_factory: pytest.TempPathFactory) -> SampleListing:
    """5 photos in 3 rooms (2 exteriors, 2 bedroom views, 1 outdoor) and a 96 BPM track, which the jobs
    only get through a set_music edit (they render without music, on the default 120 BPM grid)."""
    return make_sample_listing(
        tmp_path_factory.mktemp("edits-listing"),
        width=640,
        height=427,
        music_seconds=16.0,
        bpm=NEW_BPM,
        seed=5,
        rooms=["exterior", "bedroom_a", "outdoor"],
    )


def _admin_url() -> str:
    return normalize_url(os.environ.get("TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"))


def _pg(sql: str) -> None:
    admin = create_engine(_admin_url(), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(sql))
    finally:
        admin.dispose()


def _settings(tmp: Path, url: str, **overrides: object) -> Settings:
    # 640x360 and ultrafast encodes: what is under test is which work re-runs, not picture quality.
    return make_settings(tmp, url, OUTPUT_X264_PRESET="ultrafast", **overrides)


def _db_url(name: str) -> str:
    return _admin_url().rsplit("/", 1)[0] + f"/{name}"


@dataclass
class Rendered:
    url: str
    storage: Path
    job_id: int


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory, listing: SampleListing) -> Rendered:
    """The job, rendered once (SQLite): 5 clips at 640x360, a 10 s timeline on the default grid."""
    tmp = tmp_path_factory.mktemp("edits-render")
    url = f"sqlite:///{tmp / 'rendered.db'}"
    upgrade(url)
    ctx = make_context(_settings(tmp, url))
    job_id = create_job(
        ctx, listing_id="edits", photos=photos_from_folder(listing.photos_dir), music=None, target_length=TARGET
    )
    outcome = run_job(ctx, job_id)
    assert outcome.status == "completed", outcome.error
    get_engine(url).dispose()
    return Rendered(url, Path(ctx.settings.LOCAL_STORAGE_PATH), job_id)


def _copy_rows(src_url: str, dst_url: str) -> None:
    """Every row of the rendered SQLite database into a migrated PostgreSQL one, ids kept: the same job
    in the same state without rendering it twice. Sequences move past the copied ids."""
    with get_engine(src_url).connect() as src, get_engine(dst_url).begin() as dst:
        for table in Base.metadata.sorted_tables:
            rows = [dict(row) for row in src.execute(table.select()).mappings()]
            if rows:
                dst.execute(table.insert(), rows)
        for table in Base.metadata.sorted_tables:
            if "id" in table.c and isinstance(table.c.id.type, Integer):
                dst.execute(
                    text(
                        f"select setval(pg_get_serial_sequence('{table.name}', 'id'), "
                        f'coalesce(max(id), 0) + 1, false) from "{table.name}"'
                    )
                )
    get_engine(dst_url).dispose()


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def template(request: pytest.FixtureRequest, rendered: Rendered, listing: SampleListing) -> Iterator[Template]:
    """The rendered job in a database of each kind, which every test copies."""
    if request.param == "sqlite":
        yield Template("sqlite", rendered.url, rendered.storage, rendered.job_id, listing)
        return
    request.getfixturevalue("postgres_url")  # skips (or fails under scripts/test.sh) without PostgreSQL
    name = f"picaivid_t_{uuid.uuid4().hex[:10]}_tpl"
    _pg(f'create database "{name}"')
    url = _db_url(name)
    upgrade(url)
    _copy_rows(rendered.url, url)
    # CREATE DATABASE ... TEMPLATE needs the template to have no connections.
    get_engine(url).dispose()
    yield Template("postgres", url, rendered.storage, rendered.job_id, listing)
    _pg(f'drop database if exists "{name}" with (force)')


@pytest.fixture
def job(template: Template, tmp_path: Path) -> Iterator[Copy]:
    """A private copy of the rendered job's database for one test."""
    name = ""
    if template.kind == "sqlite":
        src_path = template.url.split("///", 1)[1]
        dst_path = tmp_path / "copy.db"
        with sqlite3.connect(src_path) as src, sqlite3.connect(dst_path) as dst:
            src.backup(dst)
        url = f"sqlite:///{dst_path}"
    else:
        name = f"picaivid_t_{uuid.uuid4().hex[:10]}_copy"
        _pg(f'create database "{name}" template "{template.url.rsplit("/", 1)[1]}"')
        url = _db_url(name)
    ctx = make_context(_settings(tmp_path, url, LOCAL_STORAGE_PATH=template.storage))
    yield Copy(ctx, template.job_id, template.listing, template)
    get_engine(url).dispose()
    if name:
        _pg(f'drop database if exists "{name}" with (force)')


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------


def _latest(s: Any, job_id: int) -> Timeline:
    return s.scalars(select(Timeline).where(Timeline.job_id == job_id).order_by(Timeline.version.desc())).first()


def _order(ctx: PhaseContext, job_id: int) -> list[int]:
    with session_scope(ctx.sessions) as s:
        return [tc.clip_id for tc in _latest(s, job_id).clips if tc.clip_id is not None]


def _phases(ctx: PhaseContext, job_id: int) -> dict[int, tuple[str, int]]:
    with session_scope(ctx.sessions) as s:
        return {p.phase: (p.status, p.attempts) for p in s.scalars(select(JobPhase).where(JobPhase.job_id == job_id))}


def _clips(ctx: PhaseContext, job_id: int) -> dict[int, Clip]:
    with session_scope(ctx.sessions) as s:
        return {c.id: c for c in s.scalars(select(Clip).where(Clip.job_id == job_id))}


def _pending(ctx: PhaseContext, job_id: int) -> list[int]:
    return sorted(cid for cid, c in _clips(ctx, job_id).items() if c.status != ClipStatus.RENDERED)


def _attempts(ctx: PhaseContext, job_id: int) -> dict[int, int]:
    return {cid: c.render_attempts for cid, c in _clips(ctx, job_id).items()}


def _assert_rerun(ctx: PhaseContext, job_id: int, before: dict[int, tuple[str, int]], start: int) -> None:
    """Phases before `start` stay completed with their attempts; `start` and later are pending."""
    after = _phases(ctx, job_id)
    for phase in range(1, 5):
        if phase < start:
            assert after[phase] == before[phase] == ("completed", before[phase][1]), phase
        else:
            assert after[phase][0] == "pending", phase


def _assert_recorded(
    ctx: PhaseContext,
    job_id: int,
    outcome: EditOutcome,
    payload: dict[str, Any],
    *,
    against_version: int,
    user_id: str | None = None,
) -> None:
    with session_scope(ctx.sessions) as s:
        row = s.get(Edit, outcome.edit_id)
        assert row is not None and row.job_id == job_id and row.edit_type == outcome.edit_type == payload["type"]
        assert row.user_id == user_id
        assert {k: v for k, v in (row.payload or {}).items() if k in payload} == payload
        against = s.get(Timeline, row.timeline_id)
        assert against is not None and against.version == against_version
        bodies = [m.body for m in s.scalars(select(OutboxMessage).where(OutboxMessage.job_id == job_id))]
    assert any(
        b.get("reason") == f"edit {outcome.edit_id}: {outcome.edit_type}" and b.get("start_phase") is None
        for b in bodies
    ), "the run request is staged in the same transaction"


def _on_grid(timeline: Timeline) -> None:
    grid = BeatGrid.from_dict(timeline.beat_grid or {})
    beats = [b - (timeline.music_offset or 0.0) for b in grid.beats]
    for tc in timeline.clips:
        for t in (tc.start_time or 0.0, tc.end_time or 0.0):
            assert min(abs(t - b) for b in beats) < 1e-3, f"cut at {t} is off the beat grid"
    period = 60.0 / grid.tempo
    for tc in timeline.clips:
        # Tracked beats are not exactly periodic (a few ms of drift per bar): a third of a frame.
        assert abs((tc.end_time or 0) - (tc.start_time or 0) - (tc.beats or 0) * period) < 0.011


def _video_sha(ctx: PhaseContext, job_id: int) -> str:
    with session_scope(ctx.sessions) as s:
        job = s.get(Job, job_id)
        assert job is not None and job.output_uri
        uri = job.output_uri
    path = ctx.storage.local_path(ctx.storage.resolve_key(uri), Path(ctx.settings.WORK_DIR))
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---------------------------------------------------------------------------------------------
# timeline edits: a new version straight away, only phase 4 runs again
# ---------------------------------------------------------------------------------------------


def test_reorder_trim_and_transitions_replan_directly_and_rerun_only_phase_4(job: Copy) -> None:
    ctx, job_id = job.ctx, job.job_id
    phases0, attempts0, video0 = _phases(ctx, job_id), _attempts(ctx, job_id), _video_sha(ctx, job_id)
    order0 = _order(ctx, job_id)
    assert len(order0) == 5

    new_order = [order0[-1], *order0[1:-1], order0[0]]
    reorder = apply_edit(ctx, job_id, ReorderEdit(clip_ids=new_order), user_id="agent-7")
    assert (reorder.edit_type, reorder.rerun_from, reorder.timeline_version, reorder.rerender_clip_ids) == (
        "reorder",
        4,
        2,
        [],
    )
    _assert_recorded(
        ctx, job_id, reorder, {"type": "reorder", "clip_ids": new_order}, against_version=1, user_id="agent-7"
    )
    _assert_rerun(ctx, job_id, phases0, 4)
    assert _pending(ctx, job_id) == [], "no clip goes pending"
    with session_scope(ctx.sessions) as s:
        versions = {t.version: t for t in s.scalars(select(Timeline).where(Timeline.job_id == job_id))}
        assert versions[1].status == "superseded" and versions[2].source == "edit:reorder"
        assert [tc.clip_id for tc in versions[2].clips] == new_order
        _on_grid(versions[2])
        beats_v2 = {tc.clip_id: tc.beats for tc in versions[2].clips}

    # Trim a middle clip to one beat more than it has; the others share what is left of the target.
    trimmed = new_order[2]
    want = (beats_v2[trimmed] or 0) + 1
    trim = apply_edit(ctx, job_id, {"type": "trim", "clip_id": trimmed, "beats": want})
    assert (trim.rerun_from, trim.timeline_version, trim.rerender_clip_ids) == (4, 3, [])
    _assert_recorded(ctx, job_id, trim, {"type": "trim", "clip_id": trimmed, "beats": want}, against_version=2)

    every = apply_edit(ctx, job_id, SetTransitionEdit(transition="dissolve", beats=0.5))
    first_cut = apply_edit(ctx, job_id, SetTransitionEdit(clip_id=new_order[0], transition="cut"))
    assert (every.rerun_from, every.timeline_version, first_cut.timeline_version) == (4, 4, 5)
    _assert_recorded(
        ctx,
        job_id,
        every,
        {"type": "set_transition", "clip_id": None, "transition": "dissolve", "beats": 0.5},
        against_version=3,
    )
    _assert_recorded(
        ctx,
        job_id,
        first_cut,
        {"type": "set_transition", "clip_id": new_order[0], "transition": "cut"},
        against_version=4,
    )
    _assert_rerun(ctx, job_id, phases0, 4)
    assert _pending(ctx, job_id) == []

    outcome = run_job(ctx, job_id)
    assert outcome.status == "completed" and outcome.phases_run == [4] and outcome.phases_skipped == [1, 2, 3]
    assert _attempts(ctx, job_id) == attempts0, "no clip was rendered again"
    phases1 = _phases(ctx, job_id)
    assert phases1[3] == phases0[3] and phases1[4][1] == phases0[4][1] + 1
    with session_scope(ctx.sessions) as s:
        latest = _latest(s, job_id)
        assert latest.version == 5 and latest.status == "rendered"
        assert [tc.clip_id for tc in latest.clips] == new_order, "the reorder is kept by later edits"
        clips = {tc.clip_id: tc for tc in latest.clips}
        assert clips[trimmed].beats == want
        assert abs((latest.total_duration or 0) - TARGET) <= 0.5 + 1e-6, "still within a beat of the target"
        _on_grid(latest)
        assert [tc.transition_type for tc in latest.clips] == ["cut", "dissolve", "dissolve", "dissolve", "none"]
        assert clips[new_order[0]].transition_duration == 0
        assert clips[new_order[1]].transition_duration == pytest.approx(0.25)
        job_row = s.get(Job, job_id)
        assert job_row is not None and "/v5/" in (job_row.output_uri or "")
        # The storyboard shown with the video is the edited version's, drawn by phase 4.
        assert (job_row.storyboard_uri or "").endswith("/phase3/v5/storyboard.png")
        assert ctx.storage.exists(ctx.storage.resolve_key(job_row.storyboard_uri or ""))
    assert _video_sha(ctx, job_id) != video0, "the delivered video changed"


def test_timeline_edits_stick_through_a_phase_3_rerun(job: Copy) -> None:
    """reorder + trim, then set_target_length: phase 3 re-plans and keeps both."""
    ctx, job_id = job.ctx, job.job_id
    phases0, attempts0 = _phases(ctx, job_id), _attempts(ctx, job_id)
    order0 = _order(ctx, job_id)
    new_order = list(reversed(order0))
    apply_edit(ctx, job_id, ReorderEdit(clip_ids=new_order))
    trimmed = new_order[1]
    with session_scope(ctx.sessions) as s:
        want = next(tc.beats or 0 for tc in _latest(s, job_id).clips if tc.clip_id == trimmed) + 1
    # A trim in seconds, rounded to whole beats of the grid (0.5 s at 120 BPM).
    apply_edit(ctx, job_id, TrimEdit(clip_id=trimmed, seconds=want * 0.5 + 0.1))

    longer = apply_edit(ctx, job_id, SetTargetLengthEdit(target_length=13.0))
    assert (longer.rerun_from, longer.timeline_version, longer.rerender_clip_ids) == (3, None, [])
    _assert_recorded(ctx, job_id, longer, {"type": "set_target_length", "target_length": 13.0}, against_version=3)
    _assert_rerun(ctx, job_id, phases0, 3)
    assert _pending(ctx, job_id) == []
    with session_scope(ctx.sessions) as s:
        job_row = s.get(Job, job_id)
        assert job_row is not None and job_row.target_length == 13.0

    outcome = run_job(ctx, job_id)
    assert outcome.status == "completed" and outcome.phases_run == [3, 4]
    assert _attempts(ctx, job_id) == attempts0
    with session_scope(ctx.sessions) as s:
        latest = _latest(s, job_id)
        assert latest.version == 4 and latest.source == "phase3"
        assert [tc.clip_id for tc in latest.clips] == new_order, "phase 3 replays the reorder"
        assert {tc.clip_id: tc.beats for tc in latest.clips}[trimmed] == want, "and the trim"
        period = 60.0 / BeatGrid.from_dict(latest.beat_grid or {}).tempo
        assert abs((latest.total_duration or 0) - 13.0) <= period + 1e-6
        _on_grid(latest)


# ---------------------------------------------------------------------------------------------
# job edits
# ---------------------------------------------------------------------------------------------


def test_exclude_a_non_hero_and_set_music_rerun_from_phase_3(job: Copy) -> None:
    ctx, job_id = job.ctx, job.job_id
    phases0, attempts0 = _phases(ctx, job_id), _attempts(ctx, job_id)
    clips0 = _clips(ctx, job_id)
    gone = next(c for c in clips0.values() if not c.is_hero)
    assert gone.photo_id is not None

    excluded = apply_edit(ctx, job_id, {"type": "exclude_photo", "photo_id": gone.photo_id})
    assert (excluded.rerun_from, excluded.timeline_version, excluded.rerender_clip_ids) == (3, None, [])
    _assert_recorded(
        ctx, job_id, excluded, {"type": "exclude_photo", "photo_id": gone.photo_id, "exclude": True}, against_version=1
    )
    _assert_rerun(ctx, job_id, phases0, 3)
    assert _pending(ctx, job_id) == [], "the clip stays rendered (re-including it needs no render)"

    music_uri = ctx.storage.put_file(f"jobs/{job_id}/input/music-96.wav", job.listing.music_path, "audio/wav")
    music = apply_edit(ctx, job_id, {"type": "set_music", "music_uri": music_uri})
    assert (music.rerun_from, music.timeline_version, music.rerender_clip_ids) == (3, None, [])
    _assert_recorded(ctx, job_id, music, {"type": "set_music", "music_uri": music_uri}, against_version=1)
    _assert_rerun(ctx, job_id, phases0, 3)
    assert _pending(ctx, job_id) == []

    outcome = run_job(ctx, job_id)
    assert outcome.status == "completed" and outcome.phases_run == [3, 4]
    assert _attempts(ctx, job_id) == attempts0, "no clip was rendered again"
    with session_scope(ctx.sessions) as s:
        latest = _latest(s, job_id)
        shown = [tc.clip_id for tc in latest.clips]
        assert gone.id not in shown and len(shown) == 4, "the excluded photo's clip left the timeline"
        assert {tc.audio_policy for tc in latest.clips} == {"music"}
        job_row = s.get(Job, job_id)
        assert job_row is not None and job_row.music_uri == music_uri
        assert job_row.bpm is not None and abs(job_row.bpm - NEW_BPM) < 1.5, f"new tempo, got {job_row.bpm}"
        _on_grid(latest)
        truth = job.listing.ground_truth["music"]["beats"]
        for tc in latest.clips[:-1]:
            cut = (tc.end_time or 0.0) + (latest.music_offset or 0.0)
            assert min(abs(cut - b) for b in truth) < 1 / 60, f"cut at {cut:.3f} s is not on a beat of the new track"


def test_swap_hero_rerenders_exactly_one_clip_and_phase_1_keeps_the_choice(job: Copy) -> None:
    ctx, job_id = job.ctx, job.job_id
    phases0, attempts0 = _phases(ctx, job_id), _attempts(ctx, job_id)
    clips0 = _clips(ctx, job_id)
    new = next(c for c in clips0.values() if not c.is_hero)
    old = next(c for c in clips0.values() if c.is_hero and c.room_cluster_id == new.room_cluster_id)
    assert new.photo_id is not None

    swap = apply_edit(ctx, job_id, SwapHeroEdit(photo_id=new.photo_id))
    assert (swap.rerun_from, swap.timeline_version, swap.rerender_clip_ids) == (2, None, [new.id])
    _assert_recorded(ctx, job_id, swap, {"type": "swap_hero", "photo_id": new.photo_id}, against_version=1)
    _assert_rerun(ctx, job_id, phases0, 2)
    clips1 = _clips(ctx, job_id)
    assert _pending(ctx, job_id) == [new.id], "exactly one clip goes back to pending"
    assert clips1[new.id].is_hero and not clips1[old.id].is_hero
    assert (clips1[new.id].duration or 0) > (new.duration or 0), "a hero gets more footage"
    assert clips1[old.id].motion_plan == old.motion_plan and clips1[old.id].render_key == old.render_key
    with session_scope(ctx.sessions) as s:
        heroes = set(s.scalars(select(AnalysisResult.hero_photo_id).where(AnalysisResult.job_id == job_id)))
        assert new.photo_id in heroes and old.photo_id not in heroes
        photo = s.get(Photo, new.photo_id)
        assert photo is not None and (photo.manual_metadata or {}).get("hero") is True

    # A timeline edit while phase 3 is pending is recorded, and that phase 3 applies it.
    order0 = _order(ctx, job_id)
    wanted = list(reversed(order0))
    reorder = apply_edit(ctx, job_id, ReorderEdit(clip_ids=wanted))
    assert (reorder.rerun_from, reorder.timeline_version) == (2, None)

    outcome = run_job(ctx, job_id)
    assert outcome.status == "completed" and outcome.phases_run == [2, 3, 4]
    attempts1 = _attempts(ctx, job_id)
    assert attempts1 == {**attempts0, new.id: attempts0[new.id] + 1}, "only the new hero was rendered"
    assert _order(ctx, job_id) == wanted
    with session_scope(ctx.sessions) as s:
        details = s.scalars(select(JobPhase.details).where(JobPhase.job_id == job_id, JobPhase.phase == 2)).one()
    assert (details["rendered"], details["reused"]) == (1, 4)

    # room_override re-runs phase 1, which must keep the swapped hero (and so its render).
    alone = next(
        c
        for c in clips1.values()
        if c.is_hero
        and c.room_cluster_id != new.room_cluster_id
        and c.id != old.id
        and sum(1 for o in clips1.values() if o.room_cluster_id == c.room_cluster_id) == 1
    )
    assert alone.photo_id is not None
    phases2 = _phases(ctx, job_id)
    override = {"type": "room_override", "photo_id": alone.photo_id, "room_label": "dining_room"}
    relabel = apply_edit(ctx, job_id, override)
    assert (relabel.rerun_from, relabel.timeline_version, relabel.rerender_clip_ids) == (1, None, [])
    _assert_recorded(ctx, job_id, relabel, override, against_version=2)
    _assert_rerun(ctx, job_id, phases2, 1)
    assert _pending(ctx, job_id) == [], "phase 1 decides which plans change"
    outcome = run_job(ctx, job_id)
    assert outcome.status == "completed" and outcome.phases_run == [1, 2, 3, 4]
    clips2 = _clips(ctx, job_id)
    assert clips2[new.id].is_hero and not clips2[old.id].is_hero, "phase 1 kept the user's hero"
    assert clips2[new.id].render_attempts == attempts1[new.id], "same hero plan: its render is reused"
    with session_scope(ctx.sessions) as s:
        photo = s.get(Photo, alone.photo_id)
        assert photo is not None and (photo.resolved_room_label, photo.label_source) == ("dining_room", "override")
        heroes = set(s.scalars(select(AnalysisResult.hero_photo_id).where(AnalysisResult.job_id == job_id)))
        assert new.photo_id in heroes and old.photo_id not in heroes


def test_excluding_a_hero_or_including_again_reruns_phase_1(job: Copy) -> None:
    ctx, job_id = job.ctx, job.job_id
    phases0 = _phases(ctx, job_id)
    hero = next(c for c in _clips(ctx, job_id).values() if c.is_hero)
    assert hero.photo_id is not None
    out = apply_edit(ctx, job_id, {"type": "exclude_photo", "photo_id": hero.photo_id})
    assert (out.rerun_from, out.timeline_version, out.rerender_clip_ids) == (1, None, [])
    _assert_rerun(ctx, job_id, phases0, 1)
    assert _pending(ctx, job_id) == []
    back = apply_edit(ctx, job_id, {"type": "exclude_photo", "photo_id": hero.photo_id, "exclude": False})
    assert back.rerun_from == 1 and back.edit_id > out.edit_id
    with session_scope(ctx.sessions) as s:
        photo = s.get(Photo, hero.photo_id)
        assert photo is not None and photo.exclude is False


def test_a_target_the_footage_cannot_fill_reruns_phase_1(job: Copy) -> None:
    out = apply_edit(job.ctx, job.job_id, {"type": "set_target_length", "target_length": 60})
    assert (out.rerun_from, out.timeline_version) == (1, None)


# ---------------------------------------------------------------------------------------------
# rejected edits write nothing
# ---------------------------------------------------------------------------------------------


def _snapshot(ctx: PhaseContext) -> str:
    """Everything an edit could touch, for every job."""
    with session_scope(ctx.sessions) as s:
        state = {
            "edits": s.scalar(select(func.count()).select_from(Edit)),
            "outbox": s.scalar(select(func.count()).select_from(OutboxMessage)),
            "jobs": [
                (j.id, j.status, j.generation, j.music_uri, j.target_length, j.current_phase)
                for j in s.scalars(select(Job).order_by(Job.id))
            ],
            "phases": [
                (p.job_id, p.phase, p.status, p.attempts) for p in s.scalars(select(JobPhase).order_by(JobPhase.id))
            ],
            "photos": [
                (p.id, p.exclude, p.room_override, p.manual_metadata, p.status)
                for p in s.scalars(select(Photo).order_by(Photo.id))
            ],
            "clips": [
                (c.id, c.status, c.is_hero, c.duration, c.render_key, json.dumps(c.motion_plan, sort_keys=True))
                for c in s.scalars(select(Clip).order_by(Clip.id))
            ],
            "timelines": [
                (t.id, t.version, t.status, [(tc.clip_id, tc.beats, tc.transition_type) for tc in t.clips])
                for t in s.scalars(select(Timeline).order_by(Timeline.id))
            ],
            "heroes": sorted(h or 0 for h in s.scalars(select(AnalysisResult.hero_photo_id))),
        }
    return json.dumps(state, default=str)


def test_invalid_edits_are_rejected_and_change_nothing(job: Copy) -> None:
    ctx, job_id = job.ctx, job.job_id
    inputs = photos_from_folder(job.listing.photos_dir)
    fresh = create_job(ctx, listing_id="fresh", photos=inputs[:2], music=None)
    with session_scope(ctx.sessions) as s:
        tl = _latest(s, job_id)
        order = [tc.clip_id for tc in tl.clips]
        beats = {tc.clip_id: tc.beats for tc in tl.clips}
        first_cut = (tl.clips[0].clip_id, tl.clips[0].transition_type)
        clips = list(s.scalars(select(Clip).where(Clip.job_id == job_id)))
        hero = next(c for c in clips if c.is_hero)
        non_hero = next(c for c in clips if not c.is_hero)
        foreign_photo = s.scalars(select(Photo.id).where(Photo.job_id == fresh)).first()
        photo_uri = next(p.s3_uri for p in s.scalars(select(Photo).where(Photo.id == hero.photo_id)))
    middle = order[1]
    storage_root = Path(ctx.settings.LOCAL_STORAGE_PATH)
    cases: list[tuple[dict[str, Any], str]] = [
        ({"type": "explode"}, "type"),
        ({"type": "reorder", "clip_ids": order, "force": True}, "force: Extra inputs are not permitted"),
        ({"type": "reorder", "clip_ids": order[:-1]}, f"missing [{order[-1]}]"),
        ({"type": "reorder", "clip_ids": [*order[:-1], 9999]}, "not on it [9999]"),
        ({"type": "reorder", "clip_ids": [order[0], *order[:-1]]}, "appear more than once"),
        ({"type": "reorder", "clip_ids": order}, "already in this order"),
        ({"type": "reorder", "clip_ids": []}, "clip_ids"),
        ({"type": "trim", "clip_id": middle, "beats": 1}, "below the minimum of 3 beats"),
        ({"type": "trim", "clip_id": middle, "seconds": 0.6}, "seconds=0.6 (1 beats): below the minimum"),
        ({"type": "trim", "clip_id": middle, "beats": 40}, "rendered footage"),
        ({"type": "trim", "clip_id": middle, "beats": 4, "seconds": 2.0}, "exactly one of beats or seconds"),
        ({"type": "trim", "clip_id": middle}, "exactly one of beats or seconds"),
        ({"type": "trim", "clip_id": 9999, "beats": 4}, f"clip_id: job {job_id} has no clip 9999"),
        ({"type": "trim", "clip_id": middle, "beats": beats[middle]}, "changes nothing"),
        ({"type": "set_transition", "transition": "explode"}, "unknown transition 'explode'"),
        ({"type": "set_transition", "clip_id": order[-1], "transition": "fade"}, "is the last clip"),
        ({"type": "set_transition", "transition": "cut", "beats": 1}, "a cut has no length"),
        ({"type": "set_transition", "transition": "fade", "beats": 9}, "beats"),
        # The first cut's own transition again (DEFAULT_TRANSITION=auto picks each cut's from its beat).
        ({"type": "set_transition", "clip_id": first_cut[0], "transition": first_cut[1]}, "changes nothing"),
        ({"type": "exclude_photo", "photo_id": 9999}, f"photo_id: job {job_id} has no photo 9999"),
        ({"type": "exclude_photo", "photo_id": foreign_photo}, f"has no photo {foreign_photo}"),
        ({"type": "exclude_photo", "photo_id": non_hero.photo_id, "exclude": False}, "is not excluded"),
        ({"type": "room_override", "photo_id": hero.photo_id, "room_label": "xyzzy"}, "unknown room type 'xyzzy'"),
        ({"type": "swap_hero", "photo_id": hero.photo_id}, "already the hero"),
        ({"type": "swap_hero", "photo_id": foreign_photo}, f"has no photo {foreign_photo}"),
        ({"type": "set_music", "music_uri": "http://example.com/a.mp3"}, "unsupported URI scheme"),
        ({"type": "set_music", "music_uri": "s3://other-bucket/a.mp3"}, "unsupported URI scheme"),
        ({"type": "set_music", "music_uri": "../../etc/passwd"}, "outside the storage root"),
        ({"type": "set_music", "music_uri": (storage_root / "jobs/nope.wav").as_uri()}, "does not exist"),
        ({"type": "set_music", "music_uri": photo_uri}, "music_uri"),
        ({"type": "set_music", "music_uri": None}, "the job has no music"),
        ({"type": "set_music"}, "music_uri: Field required"),
        ({"type": "set_target_length", "target_length": 3}, "target_length: Input should be greater than or equal"),
        ({"type": "set_target_length", "target_length": 601}, "less than or equal to 600"),
        ({"type": "set_target_length", "target_length": TARGET}, "already 10 s"),
    ]
    for edit, message in cases:
        before = _snapshot(ctx)
        with pytest.raises(EditRejectedError) as err:
            apply_edit(ctx, job_id, edit)
        assert message in str(err.value), f"{edit}: {err.value}"
        assert "\n" not in str(err.value)
        assert _snapshot(ctx) == before, f"{edit} changed something"

    # A job without a timeline takes no timeline edit.
    with pytest.raises(EditRejectedError, match="has no timeline yet"):
        apply_edit(ctx, fresh, {"type": "reorder", "clip_ids": [1]})
    with pytest.raises(JobNotFoundError):
        apply_edit(ctx, 4242, {"type": "set_target_length", "target_length": 20})

    # Busy: a job running on the fleet (phase 2 on GPU workers holds no job lease), or one a worker
    # holds the lease of. (In embedded mode a running job without a live lease was left by a process
    # that died, and may be edited: tests/test_bad_input_runs.py.)
    fleet_ctx = dataclasses.replace(ctx, settings=ctx.settings.model_copy(update={"SQS_QUEUE_URL": "http://q"}))
    for busy in ("running", "leased"):
        with session_scope(ctx.sessions) as s:
            row = s.get(Job, job_id)
            assert row is not None
            if busy == "running":
                row.status = "running"
            else:
                row.lease_owner, row.lease_expires_at = "w1", utcnow() + timedelta(minutes=5)
        before = _snapshot(ctx)
        with pytest.raises(JobBusyError):
            apply_edit(
                fleet_ctx if busy == "running" else ctx, job_id, {"type": "set_target_length", "target_length": 20}
            )
        assert _snapshot(ctx) == before
        with session_scope(ctx.sessions) as s:
            row = s.get(Job, job_id)
            assert row is not None
            row.status, row.lease_owner, row.lease_expires_at = "completed", None, None

    # Photos analysis rejected or the user excluded cannot be heroes; the last shown photo stays.
    with session_scope(ctx.sessions) as s:
        rejected = s.get(Photo, non_hero.photo_id)
        assert rejected is not None
        rejected.status, rejected.reject_reason = PhotoStatus.REJECTED, "too_small"
        others = [p for p in s.scalars(select(Photo).where(Photo.job_id == job_id)) if p.id != hero.photo_id]
        for p in others:
            if p.id != non_hero.photo_id:
                p.exclude = True
    excluded_id = next(p.id for p in others if p.id != non_hero.photo_id)
    late_cases: list[tuple[dict[str, Any], str]] = [
        ({"type": "swap_hero", "photo_id": non_hero.photo_id}, "rejected by analysis (too_small)"),
        ({"type": "swap_hero", "photo_id": excluded_id}, "is excluded"),
        ({"type": "exclude_photo", "photo_id": excluded_id}, "already excluded"),
        ({"type": "exclude_photo", "photo_id": non_hero.photo_id}, "not shown anyway"),
        ({"type": "exclude_photo", "photo_id": hero.photo_id}, "is the last photo shown"),
    ]
    for edit, message in late_cases:
        before = _snapshot(ctx)
        with pytest.raises(EditRejectedError) as err:
            apply_edit(ctx, job_id, edit)
        assert message in str(err.value), f"{edit}: {err.value}"
        assert _snapshot(ctx) == before, f"{edit} changed something"


def test_parse_edit_names_the_field() -> None:
    assert isinstance(parse_edit({"type": "trim", "clip_id": 3, "seconds": 2.5}), TrimEdit)
    with pytest.raises(EditRejectedError, match=r"^room_label: unknown room type 'xyzzy'.*\(got 'xyzzy'\)$"):
        parse_edit({"type": "room_override", "photo_id": 1, "room_label": "xyzzy"})
    # Aliases are stored as the canonical label phase 1 uses.
    assert parse_edit({"type": "room_override", "photo_id": 1, "room_label": "Family Room"}).room_label == "living_room"
    assert parse_edit({"type": "room_override", "photo_id": 1, "room_label": "office"}).room_label == "other"
    with pytest.raises(EditRejectedError, match="target_length"):
        parse_edit({"type": "set_target_length", "target_length": float("nan")})


# ---------------------------------------------------------------------------------------------
# the planner's directives (pure)
# ---------------------------------------------------------------------------------------------


def _grid(bpm: float = 120.0, seconds: float = 60.0) -> BeatGrid:
    period = 60.0 / bpm
    beats = [0.5 + i * period for i in range(int((seconds - 0.5) / period) + 1)]
    return BeatGrid(tempo=bpm, beats=beats, downbeats=beats[::4], duration=seconds, beat_offset=0.5, source="t")


def _cand(
    i: int, room: str, cluster: int, *, hero: bool = True, score: float = 0.5, available: float = 8.0
) -> ClipCandidate:
    return ClipCandidate(
        clip_id=i, photo_id=i, room_type=room, cluster_index=cluster, is_hero=hero, score=score, available=available
    )


TOUR = [
    _cand(1, "exterior", 0),
    _cand(2, "living_room", 1),
    _cand(3, "kitchen", 2),
    _cand(4, "bedroom", 3),
    _cand(5, "outdoor", 4),
]


def test_no_directives_is_the_automatic_plan() -> None:
    auto = plan_timeline(TOUR, _grid(), target_length=20.0)
    same = plan_timeline(TOUR, _grid(), target_length=20.0, directives=TimelineDirectives())
    assert auto == same


def test_order_directive_keeps_unnamed_clips_in_their_story_slot() -> None:
    story = [c.clip_id for c in story_order(TOUR)]
    assert story == [1, 2, 3, 4, 5]
    # The user ordered 1..4 when clip 3 did not exist yet (say it was excluded); 3 comes back in place.
    ordered = apply_order(story_order(TOUR), [4, 2, 1, 5, 99])
    assert [c.clip_id for c in ordered] == [4, 2, 3, 1, 5]
    plan = plan_timeline(TOUR, _grid(), target_length=20.0, directives=TimelineDirectives(order=[5, 4, 3, 2, 1]))
    assert [c.clip_id for c in plan.clips] == [5, 4, 3, 2, 1]


def test_fixed_beats_and_the_rest_still_meet_the_target() -> None:
    for target in (15.0, 20.0, 27.5):
        plan = plan_timeline(
            TOUR, _grid(), target_length=target, directives=TimelineDirectives(beats={3: 9}, seconds={2: 1.6})
        )
        got = {c.clip_id: c.beats for c in plan.clips}
        assert got[3] == 9 and got[2] == 3, "1.6 s at 120 BPM rounds to 3 beats"
        assert abs(plan.total_duration - target) <= 0.25 + 1e-6
        assert all(c.beats >= 3 for c in plan.clips)
    # A trim longer than the footage is capped by it, with a warning.
    plan = plan_timeline(TOUR, _grid(), target_length=20.0, directives=TimelineDirectives(beats={3: 30}))
    assert {c.clip_id: c.beats for c in plan.clips}[3] == 15 and any(
        "longer than its footage" in w for w in plan.warnings
    )


def test_transition_directives_per_cut_and_for_every_cut() -> None:
    d = TimelineDirectives(transitions={None: ("wipeleft", 2.0), 2: ("cut", None)})
    plan = plan_timeline(TOUR, _grid(), target_length=20.0, directives=d)
    assert [c.transition for c in plan.clips] == ["wipeleft", "cut", "wipeleft", "wipeleft", "none"]
    assert [c.transition_duration for c in plan.clips] == [1.0, 0.0, 1.0, 1.0, 0.0]
    # Footage is trimmed around each clip's own transitions: clip 2 gives nothing to its outgoing cut.
    second = plan.clips[1]
    assert second.out_time - second.in_time == pytest.approx(second.end - second.start + 0.5)


def test_edit_log_replay() -> None:
    d = directives_from_edits(
        [
            {"type": "set_transition", "clip_id": 4, "transition": "dissolve", "beats": None},
            {"type": "reorder", "clip_ids": [3, 2, 1]},
            {"type": "trim", "clip_id": 2, "beats": 5},
            {"type": "trim", "clip_id": 2, "seconds": 3.0, "beats": None},
            {"type": "set_transition", "clip_id": None, "transition": "fade", "beats": 2},
            {"type": "set_transition", "clip_id": 1, "transition": "cut"},
            {"type": "reorder", "clip_ids": [1, 2, 3]},
            {"type": "trim", "clip_id": "x"},  # malformed: skipped
            {"type": "set_music", "music_uri": None},  # not a timeline edit
        ]
    )
    assert d.order == [1, 2, 3]
    assert d.beats == {} and d.seconds == {2: 3.0}, "the later trim of a clip wins"
    assert d.transitions == {None: ("fade", 2.0), 1: ("cut", None)}, "a transition for every cut clears older ones"
