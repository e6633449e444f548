"""Timeline planning: pure functions, no database.

Given the rendered clips and the music's beat grid, decide
1. the story order (best exterior opens; living areas, kitchen, bedrooms, bathrooms; outdoor closes),
2. which clips fit the target length,
3. a whole number of beats per clip, so every cut lands on a beat, and
4. each clip's trim (in/out) so the footage it shows is centred in what was rendered.

Times: the grid's beats are in *music* time. The video starts at music time `music_offset` (the first
downbeat), so a cut on beat b happens at video time `beats[b] - music_offset`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from app.media.types import BeatGrid

#: Story order of room types. Unknown types sit before the outdoor close.
ROOM_ORDER: dict[str, int] = {
    "exterior": 0,
    "entry": 1,
    "living_room": 2,
    "family_room": 2,
    "dining_room": 3,
    "kitchen": 4,
    "office": 5,
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
    score: float                 # the photo's final quality score, 0..1
    available: float             # seconds of rendered footage
    motion_type: str = ""


@dataclass(frozen=True)
class PlannedClip:
    clip_id: int
    photo_id: int
    order_index: int
    beats: int
    start: float                 # video time of the cut in (a beat)
    end: float                   # video time of the cut out (a beat)
    in_time: float               # seconds into the clip where its footage starts
    out_time: float              # seconds into the clip where its footage ends
    transition: str              # transition into the next clip ("none" for the last)
    transition_duration: float
    room_type: str
    motion_type: str


@dataclass
class TimelinePlan:
    clips: list[PlannedClip]
    music_offset: float
    total_duration: float
    beat_period: float
    cut_times: list[float]       # video times of every cut between clips
    warnings: list[str] = field(default_factory=list)


def story_order(candidates: Sequence[ClipCandidate]) -> list[ClipCandidate]:
    """Order clips as a walk through the property.

    Rooms of one type are ordered by their best photo; within a room the hero comes first. The best
    exterior opens the video, whatever its cluster.
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
        return (ROOM_ORDER.get(head.room_type, ROOM_ORDER["other"]), -max(m.score for m in members),
                head.cluster_index)

    clusters = sorted(by_cluster.values(), key=cluster_key)
    ordered = [c for members in clusters for c in members]
    exteriors = [c for c in ordered if c.room_type == "exterior"]
    if exteriors:
        opener = max(exteriors, key=lambda c: (c.is_hero, c.score, -c.photo_id))
        ordered.remove(opener)
        ordered.insert(0, opener)
    return ordered


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


def plan_timeline(candidates: Sequence[ClipCandidate], grid: BeatGrid, *, target_length: float,
                  transition_beats: float = 1.0, transition: str = "fade",
                  min_shot_seconds: float = MIN_SHOT_SECONDS) -> TimelinePlan:
    """Fit the clips to the beat grid. The result's length is within one beat of `target_length`
    unless the music or the footage is too short (then a warning says so)."""
    if not candidates:
        raise ValueError("no clips to place on the timeline")
    if len(grid.beats) < 2:
        raise ValueError("the beat grid needs at least two beats")
    warnings: list[str] = []
    beats = grid.beats
    b0 = choose_music_offset(grid)
    music_offset = beats[b0]
    intervals = [b - a for a, b in zip(beats[b0:], beats[b0 + 1:], strict=False)]
    beat_period = float(sorted(intervals)[len(intervals) // 2]) if intervals else 60.0 / grid.tempo
    d = transition_seconds(beat_period, transition_beats)

    # The last beat we may end on: the music must still be playing (leave room for the fade out).
    usable_end = grid.duration - 0.25
    last_index = max(i for i in range(len(beats)) if i == b0 or beats[i] <= usable_end)
    if beats[last_index] - music_offset < target_length - beat_period:
        warnings.append(f"the music after its first downbeat lasts {beats[last_index] - music_offset:.1f} s, "
                        f"shorter than the {target_length:.1f} s target; the video follows the music")
    # End beat closest to the target.
    end_index = min(range(b0 + 1, last_index + 1),
                    key=lambda i: (abs(beats[i] - music_offset - target_length), i))
    total_beats = end_index - b0

    k_min = max(1, math.ceil(min_shot_seconds / beat_period - 1e-6))
    ordered = story_order(candidates)
    max_clips = max(1, total_beats // k_min)
    if len(ordered) > max_clips:
        keep = _select(ordered, max_clips)
        dropped = len(ordered) - len(keep)
        warnings.append(f"{dropped} clip(s) left out to fit {target_length:.0f} s "
                        f"(at least {k_min} beat(s) per clip)")
        ordered = keep
    n = len(ordered)
    # Footage limits: a middle clip needs its beats plus half a transition on each side.
    his: list[int] = []
    for i, c in enumerate(ordered):
        margin = (d / 2 if i > 0 else 0.0) + (d / 2 if i < n - 1 else 0.0)
        his.append(max(k_min, math.floor((c.available - margin) / beat_period + 1e-6)))
    if sum(his) < total_beats:
        new_total = sum(his)
        warnings.append(f"the rendered clips cover {new_total} beats, fewer than the {total_beats} the "
                        f"target needs; the video is {new_total * beat_period:.1f} s")
        total_beats = new_total
        end_index = b0 + total_beats
    weights = [1.6 if i == 0 else (1.3 if c.is_hero else 1.0) for i, c in enumerate(ordered)]
    alloc = _allocate(weights, total_beats, k_min, his)

    clips: list[PlannedClip] = []
    cursor = b0
    cut_times: list[float] = []
    for i, (c, k) in enumerate(zip(ordered, alloc, strict=True)):
        start = beats[cursor] - music_offset
        end = beats[cursor + k] - music_offset
        d_in = d if i > 0 else 0.0
        d_out = d if i < n - 1 else 0.0
        needed = (end - start) + d_in / 2 + d_out / 2
        in_time = max(0.0, (c.available - needed) / 2)
        clips.append(PlannedClip(
            clip_id=c.clip_id, photo_id=c.photo_id, order_index=i, beats=k, start=round(start, 4),
            end=round(end, 4), in_time=round(in_time, 4), out_time=round(in_time + needed, 4),
            transition=transition if i < n - 1 else "none", transition_duration=round(d_out, 4),
            room_type=c.room_type, motion_type=c.motion_type))
        if i < n - 1:
            cut_times.append(round(end, 4))
        cursor += k
    return TimelinePlan(clips=clips, music_offset=round(music_offset, 4),
                        total_duration=round(clips[-1].end, 4), beat_period=beat_period,
                        cut_times=cut_times, warnings=warnings)


def _select(ordered: list[ClipCandidate], count: int) -> list[ClipCandidate]:
    """Keep `count` clips: the opener, every room's hero, then the best of the rest; story order kept."""
    priority = sorted(range(len(ordered)),
                      key=lambda i: (i != 0, not ordered[i].is_hero, -ordered[i].score, i))
    chosen = set(priority[:count])
    return [c for i, c in enumerate(ordered) if i in chosen]


def video_time_grid(grid: BeatGrid, music_offset: float, total: float) -> BeatGrid:
    """The beat grid shifted to video time and cut to the video's length."""
    def window(times: list[float]) -> list[float]:
        return [t - music_offset for t in times if -1e-6 <= t - music_offset <= total + 1e-6]

    return BeatGrid(tempo=grid.tempo, beats=window(grid.beats), downbeats=window(grid.downbeats),
                    duration=total, beat_offset=0.0, source=grid.source, confidence=grid.confidence)
