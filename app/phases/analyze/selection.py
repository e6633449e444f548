"""Which analysed photos get a clip: only as many as the target length can show, plus a margin.

Phase 3 shows at most one clip per `MIN_SHOT_SECONDS` of video, so rendering a clip for every photo of
a 200-photo folder for an 8 s video wastes minutes of phase 2. Phase 1 therefore picks, in the order the
planner itself keeps clips when they do not all fit (`planner._select_fitting`): the opener (the best
exterior), then every room's hero (one room type after another, so a short video still walks through
the property), then the best of the rest. The others stay analysed (`photos.status = 'ok'`,
`reject_reason = NOT_NEEDED`, `analysis.selected = false`) and get a clip when a longer target, an
exclusion or a swapped hero needs them (phase 1 re-runs and selects again).
"""

from __future__ import annotations

import math
from collections.abc import Sequence, Set

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.db.models import Clip, Photo, PhotoStatus
from app.phases.timeline.planner import MIN_SHOT_SECONDS, ClipCandidate, story_order

#: `photos.reject_reason` of an analysed photo that gets no clip because the target does not need it.
NOT_NEEDED = "not needed for target length"
#: Clips rendered beyond the most the target can show: at least this many ...
MARGIN_MIN = 2
#: ... or this fraction of that most, whichever is larger. The planner then still has choices when a clip
#: fails to render, a photo is excluded or the music's tempo changes the beats per shot.
MARGIN_FRACTION = 0.25


def clip_budget(target_length: float, min_shot_seconds: float = MIN_SHOT_SECONDS) -> int:
    """Clips worth rendering for a `target_length` video: ceil(target / min shot) + margin."""
    most = max(1, math.ceil(target_length / min_shot_seconds - 1e-9))
    return most + max(MARGIN_MIN, math.ceil(MARGIN_FRACTION * most))


def selection_order(candidates: Sequence[ClipCandidate], pinned: Set[int] = frozenset()) -> list[ClipCandidate]:
    """Candidates by how much the video needs them: the opener first (story order's first clip), then the
    `pinned` ones (heroes a user chose), heroes before other shots, the first of each room type before a
    second one, better scores first."""
    ordered = story_order(candidates)
    if not ordered:
        return []
    repeat: dict[int, int] = {}
    seen: dict[tuple[bool, str], int] = {}
    for c in sorted(ordered[1:], key=lambda c: (not c.is_hero, -c.score, c.photo_id)):
        key = (c.is_hero, c.room_type)
        repeat[c.clip_id] = seen.get(key, 0)
        seen[key] = repeat[c.clip_id] + 1
    position = {c.clip_id: i for i, c in enumerate(ordered)}
    rest = sorted(
        ordered[1:],
        key=lambda c: (c.clip_id not in pinned, not c.is_hero, repeat[c.clip_id], -c.score, position[c.clip_id]),
    )
    return [ordered[0], *rest]


def select_for_target(
    candidates: Sequence[ClipCandidate],
    target_length: float,
    *,
    pinned: Set[int] = frozenset(),
    min_shot_seconds: float = MIN_SHOT_SECONDS,
) -> set[int]:
    """Ids (`clip_id`) of the candidates to render for `target_length`: all of them when they fit the
    budget, else the first `clip_budget` of `selection_order`."""
    budget = clip_budget(target_length, min_shot_seconds)
    if len(candidates) <= budget:
        return {c.clip_id for c in candidates}
    return {c.clip_id for c in selection_order(candidates, pinned)[:budget]}


def needs_more_clips(s: Session, job_id: int, target_length: float) -> bool:
    """Whether phase 1 would render more clips for `target_length` than the job has: some analysed photo
    waits as NOT_NEEDED and the target's budget exceeds today's clips. (`set_target_length` then re-runs
    from phase 1 instead of 3.)"""
    spare = (
        s.scalar(
            select(func.count())
            .select_from(Photo)
            .where(
                Photo.job_id == job_id,
                Photo.exclude.is_(False),
                Photo.status == PhotoStatus.OK,
                Photo.reject_reason == NOT_NEEDED,
            )
        )
        or 0
    )
    if not spare:
        return False
    clips = s.scalar(select(func.count()).select_from(Clip).where(Clip.job_id == job_id)) or 0
    return clip_budget(target_length) > clips
