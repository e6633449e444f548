"""Typed edits of a job: its timeline (reorder, trim, set_transition) and its inputs (exclude_photo,
room_override, swap_hero, set_music, set_target_length).

`apply_edit` validates an edit against the database, records it in `edits`, applies it with the
smallest re-run that makes the video show it, and stages the run request, all in one transaction: a
rejected edit leaves no row and changes nothing.

Re-run rule per edit (`EditOutcome.rerun_from`):

    reorder, trim, set_transition   4  re-planned here from the timeline's stored beat grid: a new
                                       timeline version, no beat tracking, no render
    exclude_photo                   3  when the photo is no room's hero: its clip just leaves the timeline
                                    1  when it is a hero, or the better shot of a duplicate (the other
                                       shot must get a clip), or when a photo is included again
    room_override                   1  labels are phase-1 output; clips whose plan is unchanged keep
                                       their render
    swap_hero                       2  the new hero gets a hero plan and is the only clip rendered again
                                    1  when the photo has no clip (not needed for the target length)
    set_music                       3
    set_target_length               3  or 1 when the rendered footage cannot fill the new target (phase 1
                                       plans longer clips) or it needs clips for photos left out

When an earlier phase has not completed (an edit made before the run of the previous one finished), the
re-run starts at that phase instead, and a timeline edit is only recorded: phase 3 applies it.

Timeline edits are sticky: phase 3 rebuilds `TimelineDirectives` from the job's edit log on every plan,
so a reorder or a trim survives new music or a new target (see `planner.TimelineDirectives` for how).
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator, model_validator
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.db.models import (
    AnalysisResult,
    Clip,
    ClipStatus,
    Edit,
    Job,
    JobPhase,
    PhaseStatus,
    Photo,
    PhotoStatus,
    RoomCluster,
    Timeline,
)
from app.db.session import session_scope
from app.errors import EditRejectedError, ImageRejectedError, InvalidInputError, JobBusyError, StorageError
from app.media.assemble import XFADE_TRANSITIONS
from app.media.deliverables import DeliverableSpec, ListingFacts, specs_or_default
from app.media.images import ROOM_LABELS, normalize_room_label
from app.media.transitions import TRANSITIONS as TRANSITION_LIBRARY
from app.media.types import BeatGrid
from app.orchestrator import ALL_PHASES, ensure_phase_rows, get_job, invalidate_from
from app.orchestrator.leases import job_busy_reason
from app.phases.analyze.selection import NOT_NEEDED, needs_more_clips
from app.phases.base import PhaseContext
from app.phases.timeline.phase import clip_candidates, save_timeline, timeline_directives
from app.phases.timeline.planner import (
    CUT,
    TimelinePlan,
    footage_beats,
    grid_timing,
    plan_timeline,
    seconds_to_beats,
    transition_seconds,
)
from app.services.dispatch import stage_run

#: Transitions an edit may ask for: ffmpeg's xfade transitions (what the assembler renders) and a cut.
TRANSITIONS: frozenset[str] = frozenset(XFADE_TRANSITIONS | set(TRANSITION_LIBRARY) | {CUT})
#: Longest transition an edit may ask for, in beats (the planner caps it at 1 s anyway).
MAX_TRANSITION_BEATS = 4.0
MIN_TARGET_LENGTH, MAX_TARGET_LENGTH = 5.0, 600.0


# --------------------------------------------------------------------------------------------
# the edits
# --------------------------------------------------------------------------------------------


class _EditModel(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class ReorderEdit(_EditModel):
    """The timeline's clips in a new order: a permutation of the current timeline's clip ids."""

    type: Literal["reorder"] = "reorder"
    clip_ids: list[int] = Field(min_length=1)


class TrimEdit(_EditModel):
    """A clip's length on the timeline, in beats or in seconds (rounded to whole beats)."""

    type: Literal["trim"] = "trim"
    clip_id: int
    beats: int | None = Field(default=None, ge=1)
    seconds: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _one_length(self) -> TrimEdit:
        if (self.beats is None) == (self.seconds is None):
            raise ValueError("give exactly one of beats or seconds")
        return self


class SetTransitionEdit(_EditModel):
    """The transition after one clip (`clip_id`), or after every clip (None)."""

    type: Literal["set_transition"] = "set_transition"
    clip_id: int | None = None
    transition: str
    beats: float | None = Field(default=None, gt=0, le=MAX_TRANSITION_BEATS)

    @field_validator("transition")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in TRANSITIONS:
            examples = ", ".join(["cut", "fade", "dissolve", "fadeblack", "wipeleft", "slideleft"])
            raise ValueError(f"unknown transition {value!r}; use {examples} or another ffmpeg xfade transition")
        return value

    @model_validator(mode="after")
    def _cut_has_no_length(self) -> SetTransitionEdit:
        if self.transition == CUT and self.beats is not None:
            raise ValueError("a cut has no length; leave beats out")
        return self


class ExcludePhotoEdit(_EditModel):
    """Leave a photo out of the video (exclude=True) or show it again (False)."""

    type: Literal["exclude_photo"] = "exclude_photo"
    photo_id: int
    exclude: bool = True


class RoomOverrideEdit(_EditModel):
    """A user's room label for a photo; it wins over the backend's label and the inferred one."""

    type: Literal["room_override"] = "room_override"
    photo_id: int
    room_label: str

    @field_validator("room_label")
    @classmethod
    def _known(cls, value: str) -> str:
        # Stored as the canonical label phase 1 uses, so the override means what it says: "Family Room"
        # is living_room, "office" is other (a room type the story order does not model separately).
        label = normalize_room_label(value)
        if label is None or label not in ROOM_LABELS:
            raise ValueError(f"unknown room type {value!r}; use one of {', '.join(ROOM_LABELS)}")
        return label


class SwapHeroEdit(_EditModel):
    """Make a photo its room's hero (the room's main shot, shown first and longest)."""

    type: Literal["swap_hero"] = "swap_hero"
    photo_id: int


class SetMusicEdit(_EditModel):
    """New music (a URI in the job's storage), or None for a silent video."""

    type: Literal["set_music"] = "set_music"
    music_uri: str | None

    @field_validator("music_uri")
    @classmethod
    def _not_blank(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("empty music_uri; use null to remove the music")
        return value


class SetTargetLengthEdit(_EditModel):
    type: Literal["set_target_length"] = "set_target_length"
    target_length: float = Field(ge=MIN_TARGET_LENGTH, le=MAX_TARGET_LENGTH)


class SetListingFactsEdit(_EditModel):
    """New listing facts (address, price, beds/baths/sqft, headline, agent identity): re-renders only
    the deliverables that show what changed (an agent's new phone touches no unbranded cut)."""

    type: Literal["set_listing_facts"] = "set_listing_facts"
    listing: dict[str, Any]


class SetDeliverablesEdit(_EditModel):
    """The cuts to deliver (format x variant x loudness). Cuts kept unchanged are not re-rendered; a
    format the job never had gets its camera plans from phase 1 (clips keep their renders)."""

    type: Literal["set_deliverables"] = "set_deliverables"
    deliverables: list[dict[str, Any]] = Field(min_length=1, max_length=16)


EditPayload = Annotated[
    ReorderEdit
    | TrimEdit
    | SetTransitionEdit
    | ExcludePhotoEdit
    | RoomOverrideEdit
    | SwapHeroEdit
    | SetMusicEdit
    | SetTargetLengthEdit
    | SetListingFactsEdit
    | SetDeliverablesEdit,
    Field(discriminator="type"),
]
_ADAPTER: TypeAdapter[EditPayload] = TypeAdapter(EditPayload)
EDIT_TYPES: tuple[str, ...] = (
    "reorder",
    "trim",
    "set_transition",
    "exclude_photo",
    "room_override",
    "swap_hero",
    "set_music",
    "set_target_length",
    "set_listing_facts",
    "set_deliverables",
)


def _reason(exc: ValidationError) -> str:
    """One line naming the offending field and value, from pydantic's first error."""
    errors = exc.errors()
    if not errors:
        return "invalid edit"
    err = errors[0]
    loc = [str(part) for part in err.get("loc", ())]
    if loc and loc[0] in EDIT_TYPES:  # the union's tag, not a field
        loc = loc[1:]
    where = ".".join(loc) or "edit"
    message = str(err.get("msg", "invalid")).removeprefix("Value error, ")
    shown = "" if err.get("type") in ("missing", "model_type") or not loc else f" (got {err.get('input')!r})"
    more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
    return f"{where}: {message}{shown}{more}"


def parse_edit(data: Any) -> EditPayload:
    """An edit from a model or JSON-like data; anything invalid raises `EditRejectedError`."""
    if isinstance(data, BaseModel):
        data = data.model_dump()
    try:
        return _ADAPTER.validate_python(data)
    except ValidationError as exc:
        raise EditRejectedError(_reason(exc)) from None


@dataclass(frozen=True)
class EditOutcome:
    edit_id: int
    edit_type: str
    #: Earliest phase that runs again (1..4).
    rerun_from: int
    #: The timeline version the edit produced directly (reorder, trim, set_transition); None when phase 3
    #: will produce it.
    timeline_version: int | None
    #: Clips sent back to pending (swap_hero: exactly one).
    rerender_clip_ids: list[int] = field(default_factory=list)


# --------------------------------------------------------------------------------------------
# applying an edit
# --------------------------------------------------------------------------------------------


@dataclass
class _Applied:
    rerun_from: int
    timeline_version: int | None = None
    rerender_clip_ids: list[int] = field(default_factory=list)


@dataclass
class _State:
    """One edit's transaction: the locked job and what the handlers share."""

    ctx: PhaseContext
    s: Session
    job: Job
    phases: dict[int, JobPhase]
    timeline: Timeline | None
    edit: EditPayload
    user_id: str | None
    edit_id: int | None = None

    def record(self) -> int:
        """Write the Edit row (after validation, before the change: swap_hero stores its id, and a timeline
        edit must be in the log that the re-plan replays)."""
        row = Edit(
            job_id=self.job.id,
            timeline_id=self.timeline.id if self.timeline else None,
            user_id=self.user_id,
            edit_type=self.edit.type,
            payload=self.edit.model_dump(mode="json"),
        )
        self.s.add(row)
        self.s.flush()
        self.edit_id = row.id
        return row.id

    def rerun(self, phase: int) -> int:
        """Invalidate from `phase`, or from an earlier phase that has not completed (that one has to run
        anyway, and `invalidate_from` only starts after completed phases). Returns where it starts."""
        first_open = next((p for p in ALL_PHASES if self.phases[p].status != PhaseStatus.COMPLETED), phase)
        start = min(phase, first_open)
        # reset_clips=False: phase 2 renders exactly the clips an edit sent back to pending.
        invalidate_from(self.s, self.job, start, reset_clips=False)
        return start

    def photo(self, photo_id: int) -> Photo:
        photo = self.s.get(Photo, photo_id)
        if photo is None or photo.job_id != self.job.id:
            raise EditRejectedError(f"photo_id: job {self.job.id} has no photo {photo_id}")
        return photo

    def clip_of(self, photo_id: int) -> Clip | None:
        return self.s.scalars(select(Clip).where(Clip.job_id == self.job.id, Clip.photo_id == photo_id)).first()

    def require_timeline(self) -> Timeline:
        if self.timeline is None:
            raise EditRejectedError(f"job {self.job.id} has no timeline yet; {self.edit.type} edits a timeline")
        if not self.timeline.beat_grid:
            raise EditRejectedError(
                f"timeline v{self.timeline.version} of job {self.job.id} has no beat grid; re-run phase 3 first"
            )
        return self.timeline

    def timeline_clip(self, clip_id: int, field_name: str = "clip_id") -> int:
        """Index of `clip_id` on the current timeline."""
        timeline = self.require_timeline()
        clip = self.s.get(Clip, clip_id)
        if clip is None or clip.job_id != self.job.id:
            raise EditRejectedError(f"{field_name}: job {self.job.id} has no clip {clip_id}")
        ids = [tc.clip_id for tc in timeline.clips]
        if clip_id not in ids:
            raise EditRejectedError(
                f"{field_name}: clip {clip_id} is not on the current timeline (v{timeline.version})"
            )
        return ids.index(clip_id)

    @property
    def target(self) -> float:
        return self.job.target_length or self.ctx.settings.DEFAULT_TARGET_LENGTH


def apply_edit(
    ctx: PhaseContext, job_id: int, edit: EditPayload | dict[str, Any], *, user_id: str | None = None
) -> EditOutcome:
    """Validate, record and apply one edit, and stage the re-run, in one transaction. The caller flushes
    its dispatcher after this returns (the run request is in the outbox).

    Raises `JobNotFoundError`, `JobBusyError` (a worker is on the job), `EditRejectedError` (the edit
    does not fit the job; nothing is written)."""
    payload = parse_edit(edit)
    with session_scope(ctx.sessions) as s:
        job = get_job(s, job_id, lock=True)
        busy = job_busy_reason(job, fleet=ctx.settings.is_fleet)
        if busy:
            raise JobBusyError(f"{busy}; edit it when the run stops")
        timeline = s.scalars(
            select(Timeline).where(Timeline.job_id == job_id).order_by(Timeline.version.desc())
        ).first()
        st = _State(
            ctx=ctx, s=s, job=job, phases=ensure_phase_rows(s, job), timeline=timeline, edit=payload, user_id=user_id
        )
        applied = _HANDLERS[payload.type](st, payload)
        assert st.edit_id is not None, f"{payload.type} handler did not record the edit"
        stage_run(s, job_id, reason=f"edit {st.edit_id}: {payload.type}")
        return EditOutcome(
            edit_id=st.edit_id,
            edit_type=payload.type,
            rerun_from=applied.rerun_from,
            timeline_version=applied.timeline_version,
            rerender_clip_ids=applied.rerender_clip_ids,
        )


# --- timeline edits ---------------------------------------------------------------------------------


def _replan(st: _State, *, check: Callable[[TimelinePlan], None] | None = None) -> _Applied:
    """Record the edit, then re-plan the timeline from the stored beat grid with every timeline edit so
    far (this one included) and save it as a new version: only phase 4 runs again.

    When phase 3 has not completed (a previous edit's run is still to come) the edit is only recorded:
    that run's phase 3 replays it."""
    timeline = st.require_timeline()
    st.record()
    if any(st.phases[p].status != PhaseStatus.COMPLETED for p in (1, 2, 3)):
        return _Applied(rerun_from=st.rerun(4))
    grid = BeatGrid.from_dict(timeline.beat_grid or {})
    candidates = clip_candidates(st.s, st.job.id)
    if not candidates:
        raise EditRejectedError(f"job {st.job.id} has no rendered clips to place")
    plan = plan_timeline(
        candidates,
        grid,
        target_length=st.target,
        transition_beats=st.ctx.settings.TRANSITION_BEATS,
        transition=st.ctx.settings.DEFAULT_TRANSITION,
        directives=timeline_directives(st.s, st.job.id),
    )
    if check is not None:
        check(plan)
    if _same_cuts(plan, timeline):
        raise EditRejectedError(f"the {st.edit.type} edit changes nothing on timeline v{timeline.version}")
    start = st.rerun(4)
    saved = save_timeline(st.s, st.job, plan, grid, source=f"edit:{st.edit.type}")
    return _Applied(rerun_from=start, timeline_version=saved.version)


def _same_cuts(plan: TimelinePlan, timeline: Timeline) -> bool:
    now = [(tc.clip_id, tc.beats, tc.transition_type, round(tc.transition_duration or 0.0, 4)) for tc in timeline.clips]
    new = [(c.clip_id, c.beats, c.transition, round(c.transition_duration, 4)) for c in plan.clips]
    return now == new


def _reorder(st: _State, edit: ReorderEdit) -> _Applied:
    timeline = st.require_timeline()
    current = [tc.clip_id for tc in timeline.clips if tc.clip_id is not None]
    repeated = sorted({c for c in edit.clip_ids if edit.clip_ids.count(c) > 1})
    if repeated:
        raise EditRejectedError(f"clip_ids: clip(s) {repeated} appear more than once")
    missing = [c for c in current if c not in edit.clip_ids]
    unknown = [c for c in edit.clip_ids if c not in current]
    if missing or unknown:
        parts = ([f"missing {missing}"] if missing else []) + ([f"not on it {unknown}"] if unknown else [])
        raise EditRejectedError(
            f"clip_ids must be a permutation of timeline v{timeline.version}'s clips {current}: {', '.join(parts)}"
        )
    if edit.clip_ids == current:
        raise EditRejectedError(f"clip_ids: timeline v{timeline.version} is already in this order")
    return _replan(st)


def _trim(st: _State, edit: TrimEdit) -> _Applied:
    timeline = st.require_timeline()
    index = st.timeline_clip(edit.clip_id)
    timing = grid_timing(BeatGrid.from_dict(timeline.beat_grid or {}))
    period = timing.beat_period
    beats = edit.beats if edit.beats is not None else seconds_to_beats(edit.seconds or 0.0, period)
    asked = f"beats={edit.beats}" if edit.beats is not None else f"seconds={edit.seconds:g} ({beats} beats)"
    bpm = 60.0 / period
    if beats < timing.k_min:
        raise EditRejectedError(
            f"{asked}: below the minimum of {timing.k_min} beats per clip "
            f"({timing.k_min * period:.2f} s at {bpm:.0f} BPM)"
        )
    clips = timeline.clips
    clip = st.s.get(Clip, edit.clip_id)
    assert clip is not None
    d_in = (clips[index - 1].transition_duration or 0.0) if index > 0 else 0.0
    d_out = (clips[index].transition_duration or 0.0) if index < len(clips) - 1 else 0.0
    most = footage_beats(clip.duration or 0.0, period, d_in, d_out)
    if beats > most:
        raise EditRejectedError(
            f"{asked}: clip {edit.clip_id}'s rendered footage ({clip.duration or 0.0:.2f} s) "
            f"allows at most {max(most, 0)} beats at {bpm:.0f} BPM"
        )

    def check(plan: TimelinePlan) -> None:
        got = next((c.beats for c in plan.clips if c.clip_id == edit.clip_id), None)
        if got != beats:
            why = "; ".join(plan.warnings) or "the target leaves no room for it"
            raise EditRejectedError(f"{asked}: clip {edit.clip_id} cannot have {beats} beats ({why})")

    return _replan(st, check=check)


def _set_transition(st: _State, edit: SetTransitionEdit) -> _Applied:
    timeline = st.require_timeline()
    if edit.clip_id is not None:
        index = st.timeline_clip(edit.clip_id)
        if index == len(timeline.clips) - 1:
            raise EditRejectedError(
                f"clip_id: clip {edit.clip_id} is the last clip of timeline "
                f"v{timeline.version}; there is no cut after it"
            )
    return _replan(st)


# --- job edits --------------------------------------------------------------------------------------


def _hero_photo_ids(st: _State) -> set[int]:
    return {
        h
        for h in st.s.scalars(select(AnalysisResult.hero_photo_id).where(AnalysisResult.job_id == st.job.id))
        if h is not None
    }


def _exclude_photo(st: _State, edit: ExcludePhotoEdit) -> _Applied:
    photo = st.photo(edit.photo_id)
    if not edit.exclude:
        if not photo.exclude:
            raise EditRejectedError(f"photo_id: photo {photo.id} is not excluded")
        st.record()
        photo.exclude = False
        # Clusters, heroes and every clip's footage length depend on which photos are shown.
        return _Applied(rerun_from=st.rerun(1))
    if photo.exclude:
        raise EditRejectedError(f"photo_id: photo {photo.id} is already excluded")
    if photo.status == PhotoStatus.REJECTED:
        raise EditRejectedError(
            f"photo_id: photo {photo.id} is not shown anyway (analysis rejected it: {photo.reject_reason})"
        )
    others = (
        st.s.scalar(
            select(func.count())
            .select_from(Photo)
            .where(
                Photo.job_id == st.job.id,
                Photo.id != photo.id,
                Photo.exclude.is_(False),
                (Photo.status.is_(None)) | (Photo.status != PhotoStatus.REJECTED),
            )
        )
        or 0
    )
    if not others:
        raise EditRejectedError(f"photo_id: photo {photo.id} is the last photo shown; a video needs one")
    clip = st.clip_of(photo.id)
    hero = (clip is not None and clip.is_hero) or photo.id in _hero_photo_ids(st)
    # A shot phase 1 hid as a duplicate of this one must come back: only phase 1 gives it a clip.
    shadowed = any(
        (p.analysis or {}).get("duplicate_of") == photo.id
        for p in st.s.scalars(select(Photo).where(Photo.job_id == st.job.id, Photo.exclude.is_(False)))
    )
    st.record()
    photo.exclude = True
    return _Applied(rerun_from=st.rerun(1 if hero or shadowed else 3))


def _room_override(st: _State, edit: RoomOverrideEdit) -> _Applied:
    photo = st.photo(edit.photo_id)
    if photo.room_override == edit.room_label:
        raise EditRejectedError(f"room_label: photo {photo.id}'s room is already set to {edit.room_label!r}")
    st.record()
    photo.room_override = edit.room_label
    return _Applied(rerun_from=st.rerun(1))


def _swap_hero(st: _State, edit: SwapHeroEdit) -> _Applied:
    from app.media.quality import score_quality
    from app.phases.analyze.phase import clip_plan, load_analysis_copy

    s, job = st.s, st.job
    photo = st.photo(edit.photo_id)
    if photo.status == PhotoStatus.REJECTED:
        raise EditRejectedError(
            f"photo_id: photo {photo.id} was rejected by analysis ({photo.reject_reason}); it cannot be a hero"
        )
    if photo.exclude:
        raise EditRejectedError(f"photo_id: photo {photo.id} is excluded; include it before making it a hero")
    clip = st.clip_of(photo.id)
    if clip is None and photo.reject_reason == NOT_NEEDED:
        # Analysed but left without a clip (the target did not need it): phase 1 honours the choice, makes
        # it its room's hero (heroes are selected first) and plans its clip.
        edit_id = st.record()
        photo.manual_metadata = {**(photo.manual_metadata or {}), "hero": True, "hero_edit": edit_id}
        return _Applied(rerun_from=st.rerun(1))
    if clip is None:
        duplicate_of = (photo.analysis or {}).get("duplicate_of")
        why = (
            f"it duplicates photo {duplicate_of}, which is shown instead"
            if duplicate_of
            else "the job has not been analysed yet"
        )
        raise EditRejectedError(f"photo_id: photo {photo.id} has no clip ({why})")
    if clip.is_hero:
        raise EditRejectedError(f"photo_id: photo {photo.id} is already the hero of its room")
    cluster_id = clip.room_cluster_id or photo.room_cluster_id
    cluster = s.get(RoomCluster, cluster_id) if cluster_id is not None else None
    if cluster is None:
        raise EditRejectedError(f"photo_id: photo {photo.id} is in no room cluster; re-run phase 1 first")
    try:
        rgb, width, height = load_analysis_copy(st.ctx, photo.s3_uri, st.ctx.workdir(job.id))
    except (ImageRejectedError, StorageError) as exc:
        raise EditRejectedError(f"photo_id: photo {photo.id} cannot be read ({exc})") from exc
    # Planned exactly as phase 1 plans a hero (same image copy, scores, clip count and target), so a later
    # phase-1 re-run, which honours the choice, finds the same plan and keeps this render.
    shown = (
        s.scalar(
            select(func.count())
            .select_from(Clip)
            .join(Photo, Photo.id == Clip.photo_id)
            .where(Clip.job_id == job.id, Photo.exclude.is_(False))
        )
        or 1
    )
    plan, seconds = clip_plan(
        st.ctx.settings,
        rgb,
        photo_id=photo.id,
        size=(width, height),
        is_exterior=bool(photo.is_exterior),
        quality=score_quality(rgb),
        is_hero=True,
        target=st.target,
        clip_count=shown,
    )
    edit_id = st.record()
    # The old hero keeps its plan and render (its render key still matches): only the new hero renders.
    for other in s.scalars(
        select(Clip).where(
            Clip.job_id == job.id, Clip.room_cluster_id == cluster.id, Clip.id != clip.id, Clip.is_hero.is_(True)
        )
    ):
        other.is_hero = False
    clip.is_hero = True
    clip.motion_plan, clip.motion_type, clip.duration = plan, plan["motion_type"], seconds
    clip.status, clip.error = ClipStatus.PENDING, None
    clip.lease_owner = clip.lease_expires_at = None
    result = s.scalars(
        select(AnalysisResult).where(AnalysisResult.job_id == job.id, AnalysisResult.room_cluster_id == cluster.id)
    ).first()
    if result is not None:
        result.hero_photo_id = photo.id
        result.recommended_motion = plan["motion_type"]
        result.allowed_motion_types = plan.get("allowed", [])
        result.recommended_duration = seconds
        result.debug_metrics = {
            **(result.debug_metrics or {}),
            "rationale": plan.get("rationale", ""),
            "hero_chosen_by": f"edit {edit_id}",
        }
    # Persist the choice where phase 1 looks for it, so re-analysing never undoes it; the room's other
    # photos lose an older choice. (JSON columns are not mutation-tracked: assign new dicts.)
    for member in s.scalars(
        select(Photo).where(Photo.job_id == job.id, Photo.room_cluster_id == cluster.id, Photo.id != photo.id)
    ):
        if member.manual_metadata and ("hero" in member.manual_metadata or "hero_edit" in member.manual_metadata):
            member.manual_metadata = {k: v for k, v in member.manual_metadata.items() if k not in ("hero", "hero_edit")}
    photo.manual_metadata = {**(photo.manual_metadata or {}), "hero": True, "hero_edit": edit_id}
    return _Applied(rerun_from=st.rerun(2), rerender_clip_ids=[clip.id])


def _set_music(st: _State, edit: SetMusicEdit) -> _Applied:
    uri = edit.music_uri
    if uri == st.job.music_uri:
        raise EditRejectedError(
            "music_uri: the job has no music" if uri is None else f"music_uri: the job already uses {uri!r}"
        )
    if uri is not None:
        _check_music_uri(st.ctx, uri)
    st.record()
    st.job.music_uri = uri
    return _Applied(rerun_from=st.rerun(3))


def _check_music_uri(ctx: PhaseContext, uri: str) -> None:
    """The URI must be in the job's storage (no foreign schemes, no http://, no traversal), exist and
    decode: a broken track fails the request instead of phase 3 later."""
    from app.services.jobs import check_music

    try:
        key = ctx.storage.resolve_key(uri)
        found = ctx.storage.exists(key)
    except (InvalidInputError, StorageError) as exc:
        raise EditRejectedError(f"music_uri: {exc}") from exc
    if not found:
        raise EditRejectedError(f"music_uri: {uri!r} does not exist in storage")
    with tempfile.TemporaryDirectory(prefix="picaivid-edit-music-") as tmp:
        try:
            check_music(ctx.storage.local_path(key, Path(tmp)))
        except (InvalidInputError, StorageError) as exc:
            raise EditRejectedError(f"music_uri {uri!r}: {exc}") from exc


def _set_target_length(st: _State, edit: SetTargetLengthEdit) -> _Applied:
    target = edit.target_length
    if st.job.target_length is not None and math.isclose(st.job.target_length, target, abs_tol=1e-6):
        raise EditRejectedError(f"target_length: the job's target is already {target:g} s")
    # From 1 also when phase 1 would render more clips for the longer target (photos it left out as not
    # needed): phase 3 can only place clips that exist.
    rerun = 3 if _footage_fills(st, target) and not needs_more_clips(st.s, st.job.id, target) else 1
    st.record()
    st.job.target_length = target
    return _Applied(rerun_from=st.rerun(rerun))


def _footage_fills(st: _State, target: float) -> bool:
    """Whether the rendered clips can fill `target` (so phase 3 alone can meet it). If not, phase 1 must
    plan longer clips. Without a timeline there is nothing rendered to reuse: phase 3 decides."""
    if st.timeline is None or not st.timeline.beat_grid:
        return True
    timing = grid_timing(BeatGrid.from_dict(st.timeline.beat_grid))
    d = transition_seconds(timing.beat_period, st.ctx.settings.TRANSITION_BEATS)
    candidates = clip_candidates(st.s, st.job.id)
    if not candidates:
        return True
    footage = sum(c.available for c in candidates) - d * (len(candidates) - 1)
    return footage >= target


def _set_listing_facts(st: _State, edit: SetListingFactsEdit) -> _Applied:
    try:
        facts = ListingFacts.from_dict(edit.listing)
    except InvalidInputError as exc:
        raise EditRejectedError(f"listing: {exc}") from exc
    if facts.logo_uri:
        try:
            if not st.ctx.storage.exists(st.ctx.storage.resolve_key(facts.logo_uri)):
                raise EditRejectedError(f"listing.logo_uri: {facts.logo_uri!r} does not exist in storage")
        except (InvalidInputError, StorageError) as exc:
            raise EditRejectedError(f"listing.logo_uri: {exc}") from exc
    if facts.to_dict() == (st.job.listing_facts or {}):
        raise EditRejectedError("listing: the job already has these facts")
    st.record()
    st.job.listing_facts = facts.to_dict()
    # Phase 4 compares each deliverable's inputs and re-renders only those the change shows in.
    return _Applied(rerun_from=st.rerun(4))


def _set_deliverables(st: _State, edit: SetDeliverablesEdit) -> _Applied:
    try:
        specs = [DeliverableSpec.from_dict(d) for d in edit.deliverables]
    except InvalidInputError as exc:
        raise EditRejectedError(f"deliverables: {exc}") from exc
    if len({spec.key for spec in specs}) != len(specs):
        raise EditRejectedError("deliverables: a format and variant is listed twice")
    stored = [spec.to_dict() for spec in specs]
    if stored == (st.job.deliverables or []):
        raise EditRejectedError("deliverables: the job already delivers these")
    old = specs_or_default(st.job.deliverables, st.ctx.settings.output_size)
    rows = st.s.scalars(select(Clip.format_plans).where(Clip.job_id == st.job.id)).all()
    planned = {fmt for plans in rows for fmt in (plans or {})}
    # A new first format re-frames the clips phase 2 validates; a new format needs its camera plans.
    new_formats = {spec.format for spec in specs} - planned
    rerun = 1 if specs[0].format != old[0].format or new_formats else 4
    st.record()
    st.job.deliverables = stored
    return _Applied(rerun_from=st.rerun(rerun))


#: Each handler validates (raising before any change), calls `record()`, applies, and says what re-runs.
_HANDLERS: dict[str, Callable[[_State, Any], _Applied]] = {
    "reorder": _reorder,
    "trim": _trim,
    "set_transition": _set_transition,
    "exclude_photo": _exclude_photo,
    "room_override": _room_override,
    "swap_hero": _swap_hero,
    "set_music": _set_music,
    "set_target_length": _set_target_length,
    "set_listing_facts": _set_listing_facts,
    "set_deliverables": _set_deliverables,
}

__all__ = [
    "EDIT_TYPES",
    "EditOutcome",
    "EditPayload",
    "ExcludePhotoEdit",
    "ReorderEdit",
    "RoomOverrideEdit",
    "SetMusicEdit",
    "SetTargetLengthEdit",
    "SetTransitionEdit",
    "SwapHeroEdit",
    "TrimEdit",
    "apply_edit",
    "parse_edit",
]
