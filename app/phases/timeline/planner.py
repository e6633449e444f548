"""Timeline planning: pure functions, no database.

Given the rendered clips and the music's beat grid, decide
1. the story order (best exterior opens; living areas, kitchen, bedrooms, bathrooms; outdoor closes),
2. which clips fit the target length,
3. a whole number of beats per clip, so every cut lands on a beat, and
4. each clip's trim (in/out) so the footage it shows is centred in what was rendered.

Times: the grid's beats are in *music* time. The video starts at music time `music_offset` (the first
downbeat), so a cut on beat b happens at video time `beats[b] - music_offset`.

A user's timeline edits (reorder, trim, set_transition) reach the planner as `TimelineDirectives`,
rebuilt from the job's edit log on every plan, so they survive a re-plan (new music, new target).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from app.media.types import BeatGrid

#: Story order of room types. Types not listed sit before the outdoor close; "unknown" (a photo no
#: label or classifier is sure about) sits mid-tour, between the living areas and the private rooms,
#: so an unsure guess neither opens nor closes the video.
ROOM_ORDER: dict[str, int] = {
    "exterior": 0,
    "entry": 1,
    "living_room": 2,
    "family_room": 2,
    "dining_room": 3,
    "kitchen": 4,
    "office": 5,
    "unknown": 5,
    "bedroom": 6,
    "bathroom": 7,
    "laundry": 8,
    "other": 9,
    "outdoor": 10,
}
#: Never show a photo for less than this (seconds): shorter reads as a glitch, not a cut.
MIN_SHOT_SECONDS = 1.4
TRANSITION_MIN, TRANSITION_MAX = 0.25, 1.0


@dataclass(frozen=True)
class ClipCandidate:
    clip_id: int
    photo_id: int
    room_type: str
    cluster_index: int
    is_hero: bool
    score: float  # the photo's final quality score, 0..1
    available: float  # seconds of rendered footage
    motion_type: str = ""
    #: May open the video: labelled exterior by the backend or a user, or classified exterior with
    #: high confidence. An "exterior" that is only probably one is ordered as "unknown" instead, so
    #: the video never opens on an interior misread as an exterior.
    confident_exterior: bool = True


@dataclass(frozen=True)
class PlannedClip:
    clip_id: int
    photo_id: int
    order_index: int
    beats: int
    start: float  # video time of the cut in (a beat)
    end: float  # video time of the cut out (a beat)
    in_time: float  # seconds into the clip where its footage starts
    out_time: float  # seconds into the clip where its footage ends
    transition: str  # transition into the next clip ("none" for the last)
    transition_duration: float
    room_type: str
    motion_type: str


@dataclass
class TimelinePlan:
    clips: list[PlannedClip]
    music_offset: float
    total_duration: float
    beat_period: float
    cut_times: list[float]  # video times of every cut between clips
    warnings: list[str] = field(default_factory=list)


def story_order(candidates: Sequence[ClipCandidate]) -> list[ClipCandidate]:
    """Order clips as a walk through the property.

    Rooms of one type are ordered by their best photo; within a room the hero comes first. The best
    confident exterior (`ClipCandidate.confident_exterior`) opens the video, whatever its cluster; an
    unconfident one is ordered as "unknown".
    """
    if not candidates:
        return []
    by_cluster: dict[int, list[ClipCandidate]] = {}
    for c in candidates:
        by_cluster.setdefault(c.cluster_index, []).append(c)
    for members in by_cluster.values():
        members.sort(key=lambda c: (not c.is_hero, -c.score, c.photo_id))

    def cluster_key(members: list[ClipCandidate]) -> tuple[int, float, int]:
        head = members[0]
        return (
            ROOM_ORDER.get(_order_type(head), ROOM_ORDER["other"]),
            -max(m.score for m in members),
            head.cluster_index,
        )

    clusters = sorted(by_cluster.values(), key=cluster_key)
    ordered = [c for members in clusters for c in members]
    exteriors = [c for c in ordered if c.room_type == "exterior" and c.confident_exterior]
    if exteriors:
        opener = max(exteriors, key=lambda c: (c.is_hero, c.score, -c.photo_id))
        ordered.remove(opener)
        ordered.insert(0, opener)
    return ordered


#: A classified exterior may open the video only at this probability or more (see `app.media.scene`
#: for how its errors are distributed); a label a person gave is always trusted.
OPENER_MIN_EXTERIOR_PROBABILITY = 0.9
#: Label sources that are a person's word (the backend's label, the upload folder, an edit).
GIVEN_LABEL_SOURCES = frozenset({"backend", "override"})


def is_confident_exterior(label_source: str | None, label: str | None, is_exterior: bool, probability: float) -> bool:
    """Whether a photo may open the video: labelled exterior by a person, or classified exterior with
    probability >= `OPENER_MIN_EXTERIOR_PROBABILITY`."""
    if label_source in GIVEN_LABEL_SOURCES:
        return label == "exterior"
    return is_exterior and probability >= OPENER_MIN_EXTERIOR_PROBABILITY


def _order_type(c: ClipCandidate) -> str:
    """The room type a clip is ordered by: an unconfident exterior counts as "unknown"."""
    return "unknown" if c.room_type == "exterior" and not c.confident_exterior else c.room_type


def opening_warning(ordered: Sequence[ClipCandidate]) -> str | None:
    """Why the video does not open on an exterior, when it does not (for the job's warnings)."""
    if not ordered or (ordered[0].room_type == "exterior" and ordered[0].confident_exterior):
        return None
    unsure = sum(1 for c in ordered if c.room_type == "exterior")
    because = (
        f"{unsure} photo(s) look exterior but not confidently"
        if unsure
        else "no photo is labelled or classified exterior"
    )
    return f"the video opens on {ordered[0].room_type} (photo {ordered[0].photo_id}), not an exterior: {because}"


def transition_seconds(beat_period: float, transition_beats: float) -> float:
    return min(TRANSITION_MAX, max(TRANSITION_MIN, transition_beats * beat_period))


def _allocate(weights: list[float], total: int, lo: int, hi: list[int]) -> list[int]:
    """Split `total` beats in proportion to `weights`, each within [lo, hi_i] (largest remainder)."""
    n = len(weights)
    wsum = sum(weights) or 1.0
    raw = [total * w / wsum for w in weights]
    alloc = [min(hi[i], max(lo, math.floor(raw[i]))) for i in range(n)]
    # Hand out (or take back) single beats where they are most deserved and still fit.
    for _ in range(total * 2 + n):
        diff = total - sum(alloc)
        if diff == 0:
            break
        if diff > 0:
            options = [i for i in range(n) if alloc[i] < hi[i]]
            if not options:
                break
            i = max(options, key=lambda i: (raw[i] - alloc[i], weights[i], -i))
            alloc[i] += 1
        else:
            options = [i for i in range(n) if alloc[i] > lo]
            if not options:
                break
            i = max(options, key=lambda i: (alloc[i] - raw[i], -weights[i], i))
            alloc[i] -= 1
    return alloc


def choose_music_offset(grid: BeatGrid) -> int:
    """Index of the beat the video starts on: the first downbeat (skips a pickup or silent intro)."""
    if grid.downbeats:
        first = grid.downbeats[0]
        return min(range(len(grid.beats)), key=lambda i: abs(grid.beats[i] - first))
    return 0


#: Edit types that act on the timeline itself; phase 3 replays them as `TimelineDirectives`.
TIMELINE_EDIT_TYPES: tuple[str, ...] = ("reorder", "trim", "set_transition")
#: The transition name that means "no transition" (a hard cut); the assembler knows it too.
CUT = "cut"


@dataclass
class TimelineDirectives:
    """What a user's timeline edits ask of the planner. Clip ids that are not candidates any more (a
    photo excluded since, a clip re-created by phase 1) are ignored, so an old edit never breaks a plan.

    * `order`: clip ids in the order the user wants. The named clips fill, in that order, the positions
      story order gives them; clips it does not name (new since the edit) keep their story-order slot.
      So a re-included photo lands where the walk-through puts it, and the user's order of the others
      is untouched.
    * `beats` / `seconds`: a fixed length for a clip (seconds are rounded to whole beats of the grid
      being planned, so a trim in seconds keeps its length when the music changes; one in beats keeps
      its beat count). The other clips share what is left of the target.
    * `transitions`: clip id -> (transition, beats) for the cut after that clip; the key None is the
      default for every cut. Beats None means the job's default transition length; "cut" has none.
    """

    order: list[int] | None = None
    beats: dict[int, int] = field(default_factory=dict)
    seconds: dict[int, float] = field(default_factory=dict)
    transitions: dict[int | None, tuple[str, float | None]] = field(default_factory=dict)

    def is_empty(self) -> bool:
        return self.order is None and not self.beats and not self.seconds and not self.transitions


def directives_from_edits(payloads: Iterable[Mapping[str, Any]]) -> TimelineDirectives:
    """Replay timeline edit payloads, oldest first. A later edit of the same thing wins: the last reorder
    is the order, the last trim of a clip its length, and a transition set on every cut clears the
    per-clip ones set before it (the user asked for all cuts to look alike). Malformed payloads (written
    by another client, or by an older version of this code) are skipped rather than failing phase 3."""
    d = TimelineDirectives()
    for payload in payloads:
        try:
            kind = payload.get("type")
            if kind == "reorder":
                d.order = [int(c) for c in payload["clip_ids"]]
            elif kind == "trim":
                clip_id = int(payload["clip_id"])
                if payload.get("beats") is not None:
                    d.beats[clip_id] = int(payload["beats"])
                    d.seconds.pop(clip_id, None)
                elif payload.get("seconds") is not None:
                    d.seconds[clip_id] = float(payload["seconds"])
                    d.beats.pop(clip_id, None)
            elif kind == "set_transition":
                beats = payload.get("beats")
                spec = (str(payload["transition"]), None if beats is None else float(beats))
                if payload.get("clip_id") is None:
                    d.transitions.clear()
                    d.transitions[None] = spec
                else:
                    d.transitions[int(payload["clip_id"])] = spec
        except (KeyError, TypeError, ValueError, AttributeError):
            continue
    return d


@dataclass(frozen=True)
class GridTiming:
    """How the planner reads a beat grid: where the video starts and how long a beat and a shot are."""

    start_index: int  # index of the beat the video starts on
    music_offset: float  # music time of that beat
    beat_period: float  # median beat interval after the start (seconds)
    k_min: int  # fewest beats a clip may have (MIN_SHOT_SECONDS rounded up)


def grid_timing(grid: BeatGrid, min_shot_seconds: float = MIN_SHOT_SECONDS) -> GridTiming:
    if len(grid.beats) < 2:
        raise ValueError("the beat grid needs at least two beats")
    beats = grid.beats
    b0 = choose_music_offset(grid)
    intervals = [b - a for a, b in zip(beats[b0:], beats[b0 + 1 :], strict=False)]
    beat_period = float(sorted(intervals)[len(intervals) // 2]) if intervals else 60.0 / grid.tempo
    k_min = max(1, math.ceil(min_shot_seconds / beat_period - 1e-6))
    return GridTiming(start_index=b0, music_offset=beats[b0], beat_period=beat_period, k_min=k_min)


def seconds_to_beats(seconds: float, beat_period: float) -> int:
    """Whole beats closest to `seconds` (half rounds up, never below one beat)."""
    return max(1, math.floor(seconds / beat_period + 0.5))


def footage_beats(available: float, beat_period: float, d_in: float, d_out: float) -> int:
    """Most beats `available` seconds of footage can fill, with half of each neighbouring transition
    (`d_in` before, `d_out` after) also taken from it."""
    return math.floor((available - d_in / 2 - d_out / 2) / beat_period + 1e-6)


def apply_order(ordered: Sequence[ClipCandidate], order: Sequence[int]) -> list[ClipCandidate]:
    """`ordered` (story order) with the clips `order` names put, in that order, into the positions those
    clips occupy; every other clip keeps its position (see `TimelineDirectives.order`)."""
    by_id = {c.clip_id: c for c in ordered}
    named = [by_id[cid] for cid in dict.fromkeys(order) if cid in by_id]
    named_ids = {c.clip_id for c in named}
    slots = [i for i, c in enumerate(ordered) if c.clip_id in named_ids]
    result = list(ordered)
    for slot, clip in zip(slots, named, strict=True):
        result[slot] = clip
    return result


def plan_timeline(
    candidates: Sequence[ClipCandidate],
    grid: BeatGrid,
    *,
    target_length: float,
    transition_beats: float = 1.0,
    transition: str = "fade",
    min_shot_seconds: float = MIN_SHOT_SECONDS,
    directives: TimelineDirectives | None = None,
) -> TimelinePlan:
    """Fit the clips to the beat grid. The result's length is within one beat of `target_length`
    unless the music or the footage is too short (then a warning says so). `directives` (a user's
    timeline edits) change the order, fix some clips' lengths and pick transitions; without them the
    plan is the automatic one."""
    if not candidates:
        raise ValueError("no clips to place on the timeline")
    timing = grid_timing(grid, min_shot_seconds)
    directives = directives or TimelineDirectives()
    warnings: list[str] = []
    b0, beat_period, k_min = timing.start_index, timing.beat_period, timing.k_min
    last_index, end_index = _end_beats(grid, timing, target_length, warnings)
    total_beats = end_index - b0

    ordered = story_order(candidates)
    opening = opening_warning(ordered)
    if opening and directives.order is None:  # a user's reorder chose the opener
        warnings.append(opening)
    if directives.order is not None:
        ordered = apply_order(ordered, directives.order)
    fixed = _fixed_lengths(ordered, directives, timing, last_index - b0, warnings)
    costs = [fixed.get(c.clip_id, k_min) for c in ordered]
    if sum(costs) > total_beats:
        keep = _select_fitting(ordered, costs, total_beats, set(fixed))
        dropped = len(ordered) - len(keep)
        warnings.append(f"{dropped} clip(s) left out to fit {target_length:.0f} s (at least {k_min} beat(s) per clip)")
        ordered = keep
    default_spec = (transition, transition_seconds(beat_period, transition_beats))
    cut_specs = _cut_specs(ordered, directives, default_spec, transition_beats, beat_period)
    d_ins = [0.0] + [spec[1] for spec in cut_specs]
    d_outs = [spec[1] for spec in cut_specs] + [0.0]
    # Footage limits: a middle clip needs its beats plus half a transition on each side.
    his = [max(k_min, footage_beats(c.available, beat_period, d_ins[i], d_outs[i])) for i, c in enumerate(ordered)]
    _shorten_to_footage(ordered, fixed, his, warnings)
    alloc = _allocate_beats(ordered, fixed, his, total_beats, timing, warnings)
    clips, cut_times = _place_clips(ordered, alloc, grid.beats, timing, cut_specs, d_ins, d_outs)
    if transition == AUTO_TRANSITION:
        clips = _beat_transitions(clips, grid, timing.music_offset, _user_cuts(ordered, directives))
    return TimelinePlan(
        clips=clips,
        music_offset=round(timing.music_offset, 4),
        total_duration=round(clips[-1].end, 4),
        beat_period=beat_period,
        cut_times=cut_times,
        warnings=warnings,
    )


def _end_beats(grid: BeatGrid, timing: GridTiming, target_length: float, warnings: list[str]) -> tuple[int, int]:
    """(last beat the video may end on, beat it ends on: the one closest to the target)."""
    beats, b0, music_offset = grid.beats, timing.start_index, timing.music_offset
    # The last beat we may end on: the music must still be playing (leave room for the fade out).
    usable_end = grid.duration - 0.25
    last_index = max(i for i in range(len(beats)) if i == b0 or beats[i] <= usable_end)
    if beats[last_index] - music_offset < target_length - timing.beat_period:
        warnings.append(
            f"the music after its first downbeat lasts {beats[last_index] - music_offset:.1f} s, "
            f"shorter than the {target_length:.1f} s target; the video follows the music"
        )
    end_index = min(range(b0 + 1, last_index + 1), key=lambda i: (abs(beats[i] - music_offset - target_length), i))
    return last_index, end_index


def _fixed_lengths(
    ordered: Sequence[ClipCandidate],
    directives: TimelineDirectives,
    timing: GridTiming,
    max_beats: int,
    warnings: list[str],
) -> dict[int, int]:
    """Lengths the user fixed, in beats of this grid; never shorter than a shot may be, never longer
    than the music (`max_beats`)."""
    fixed: dict[int, int] = {}
    for c in ordered:
        if c.clip_id in directives.beats:
            fixed[c.clip_id] = directives.beats[c.clip_id]
        elif c.clip_id in directives.seconds:
            fixed[c.clip_id] = seconds_to_beats(directives.seconds[c.clip_id], timing.beat_period)
    for clip_id, k in fixed.items():
        bounded = min(max(k, timing.k_min), max_beats)
        if bounded != k:
            warnings.append(f"clip {clip_id}'s trim of {k} beat(s) does not fit this music; it gets {bounded}")
            fixed[clip_id] = bounded
    return fixed


def _cut_specs(
    ordered: Sequence[ClipCandidate],
    directives: TimelineDirectives,
    default_spec: tuple[str, float],
    transition_beats: float,
    beat_period: float,
) -> list[tuple[str, float]]:
    """(transition, seconds) after each clip but the last: the user's choice for that clip, else for
    every cut, else `default_spec`."""
    cut_specs: list[tuple[str, float]] = []
    for c in ordered[:-1]:
        spec = directives.transitions.get(c.clip_id) or directives.transitions.get(None)
        if spec is None:
            cut_specs.append(default_spec)
        elif spec[0] == CUT:
            cut_specs.append((CUT, 0.0))
        else:
            length = transition_beats if spec[1] is None else spec[1]
            cut_specs.append((spec[0], transition_seconds(beat_period, length)))
    return cut_specs


#: `plan_timeline(transition=AUTO_TRANSITION)`: each cut's transition follows the beat it lands on.
AUTO_TRANSITION = "auto"
#: Bars per musical phrase: a downbeat that starts one is a section change (4 bars of 4/4 = 16 beats).
PHRASE_BARS = 4
#: Beat strengths the transition choice sees: an ordinary beat, a downbeat, a phrase's first downbeat.
_BEAT_STRENGTH, _DOWNBEAT_STRENGTH, _PHRASE_STRENGTH = 0.5, 0.75, 0.85


def _user_cuts(ordered: Sequence[ClipCandidate], directives: TimelineDirectives) -> set[int]:
    """Indexes of the cuts whose transition a user chose (set_transition): never re-chosen."""
    if None in directives.transitions:
        return set(range(len(ordered)))
    return {i for i, c in enumerate(ordered[:-1]) if c.clip_id in directives.transitions}


def _beat_transitions(
    clips: list[PlannedClip], grid: BeatGrid, music_offset: float, fixed: set[int]
) -> list[PlannedClip]:
    """Pick each automatic cut's transition from its beat (`transitions.choose_transition`): stronger ones
    (whip pan, zoom-through, slide) on a phrase's first downbeat, a crossfade on ordinary beats. Lengths
    stay as planned (a cut needs no footage beyond its beat, so nothing new is asked of a clip)."""
    from app.media.transitions import choose_transition

    bars = {round(d, 3): i for i, d in enumerate(grid.downbeats)}
    out: list[PlannedClip] = []
    previous: str | None = None
    for i, clip in enumerate(clips):
        if i == len(clips) - 1 or i in fixed:
            out.append(clip)
            previous = clip.transition if i < len(clips) - 1 else previous
            continue
        beat = grid.beats[nearest_index(clip.end + music_offset, grid.beats)]
        bar = bars.get(round(beat, 3))
        section = bar is not None and bar > 0 and bar % PHRASE_BARS == 0
        strength = _PHRASE_STRENGTH if section else _DOWNBEAT_STRENGTH if bar is not None else _BEAT_STRENGTH
        kind = choose_transition(strength, downbeat=bar is not None, section_change=section, index=i, previous=previous)
        duration = 0.0 if kind == CUT else clip.transition_duration
        out.append(replace(clip, transition=kind, transition_duration=duration))
        previous = kind
    return out


def nearest_index(t: float, times: Sequence[float]) -> int:
    return min(range(len(times)), key=lambda j: abs(times[j] - t))


def _shorten_to_footage(
    ordered: Sequence[ClipCandidate], fixed: dict[int, int], his: Sequence[int], warnings: list[str]
) -> None:
    """Cap each fixed length at what the clip's footage can fill (`his`), in place."""
    for i, c in enumerate(ordered):
        if c.clip_id in fixed and fixed[c.clip_id] > his[i]:
            warnings.append(
                f"clip {c.clip_id}'s trim of {fixed[c.clip_id]} beat(s) is longer than its footage; it gets {his[i]}"
            )
            fixed[c.clip_id] = his[i]


def _allocate_beats(
    ordered: Sequence[ClipCandidate],
    fixed: Mapping[int, int],
    his: Sequence[int],
    total_beats: int,
    timing: GridTiming,
    warnings: list[str],
) -> list[int]:
    """Beats per clip: fixed clips keep theirs; the others share what is left of `total_beats`,
    weighted (opener 1.6, heroes 1.3, others 1.0) and capped by their footage."""
    k_min, beat_period = timing.k_min, timing.beat_period
    weights = [1.6 if i == 0 else (1.3 if c.is_hero else 1.0) for i, c in enumerate(ordered)]
    free = [i for i, c in enumerate(ordered) if c.clip_id not in fixed]
    fixed_total = sum(fixed.get(c.clip_id, 0) for c in ordered)
    free_total = total_beats - fixed_total
    free_cap = sum(his[i] for i in free)
    if not free and fixed_total != total_beats:
        warnings.append(
            f"every clip has a fixed length: the video is {fixed_total} beats "
            f"({fixed_total * beat_period:.1f} s), not the {total_beats} the target needs"
        )
    elif free_cap < free_total:
        new_total = fixed_total + free_cap
        warnings.append(
            f"the rendered clips cover {new_total} beats, fewer than the {total_beats} the "
            f"target needs; the video is {new_total * beat_period:.1f} s"
        )
        free_total = free_cap
    # The fixed clips may leave the others less than a shot each (the opener alone is always kept).
    free_total = max(free_total, k_min * len(free))
    free_alloc = _allocate([weights[i] for i in free], free_total, k_min, [his[i] for i in free]) if free else []
    alloc_of = dict(zip(free, free_alloc, strict=True))
    return [fixed[c.clip_id] if c.clip_id in fixed else alloc_of[i] for i, c in enumerate(ordered)]


def _place_clips(
    ordered: Sequence[ClipCandidate],
    alloc: Sequence[int],
    beats: Sequence[float],
    timing: GridTiming,
    cut_specs: Sequence[tuple[str, float]],
    d_ins: Sequence[float],
    d_outs: Sequence[float],
) -> tuple[list[PlannedClip], list[float]]:
    """Lay the clips end to end from the start beat, each trimmed to the middle of its footage;
    returns them and the video times of the cuts between them."""
    n = len(ordered)
    music_offset = timing.music_offset
    clips: list[PlannedClip] = []
    cursor = timing.start_index
    cut_times: list[float] = []
    for i, (c, k) in enumerate(zip(ordered, alloc, strict=True)):
        start = beats[cursor] - music_offset
        end = beats[cursor + k] - music_offset
        d_in, d_out = d_ins[i], d_outs[i]
        needed = (end - start) + d_in / 2 + d_out / 2
        in_time = max(0.0, (c.available - needed) / 2)
        clips.append(
            PlannedClip(
                clip_id=c.clip_id,
                photo_id=c.photo_id,
                order_index=i,
                beats=k,
                start=round(start, 4),
                end=round(end, 4),
                in_time=round(in_time, 4),
                out_time=round(in_time + needed, 4),
                transition=cut_specs[i][0] if i < n - 1 else "none",
                transition_duration=round(d_out, 4),
                room_type=c.room_type,
                motion_type=c.motion_type,
            )
        )
        if i < n - 1:
            cut_times.append(round(end, 4))
        cursor += k
    return clips, cut_times


def _select_fitting(
    ordered: list[ClipCandidate], costs: list[int], total: int, pinned: set[int]
) -> list[ClipCandidate]:
    """Keep the clips whose beats (`costs`) fit in `total`: the opener, then clips the user trimmed
    (`pinned`: they asked for them), every room's hero, then the best of the rest; story order kept.
    With equal costs this is "the first total // cost clips by priority" (and at least the opener)."""
    priority = sorted(
        range(len(ordered)),
        key=lambda i: (i != 0, ordered[i].clip_id not in pinned, not ordered[i].is_hero, -ordered[i].score, i),
    )
    chosen: set[int] = set()
    used = 0
    for i in priority:
        if not chosen or used + costs[i] <= total:
            chosen.add(i)
            used += costs[i]
    return [c for i, c in enumerate(ordered) if i in chosen]


def video_time_grid(grid: BeatGrid, music_offset: float, total: float) -> BeatGrid:
    """The beat grid shifted to video time and cut to the video's length."""

    def window(times: list[float]) -> list[float]:
        return [t - music_offset for t in times if -1e-6 <= t - music_offset <= total + 1e-6]

    # `replace` keeps every other field (meter, confidence, source, warnings).
    return replace(grid, beats=window(grid.beats), downbeats=window(grid.downbeats), duration=total, beat_offset=0.0)
