"""Timeline planning: story order, whole beats per clip, target length, trims (pure logic)."""

from __future__ import annotations

import pytest

from app.media.types import BeatGrid
from app.phases.timeline.planner import ClipCandidate, plan_timeline, story_order


def grid(bpm: float = 120.0, seconds: float = 60.0, first: float = 0.4) -> BeatGrid:
    period = 60.0 / bpm
    beats = [first + i * period for i in range(int((seconds - first) / period) + 1)]
    return BeatGrid(tempo=bpm, beats=beats, downbeats=beats[::4], duration=seconds, beat_offset=first, source="test")


def cand(
    i: int, room: str, cluster: int, *, hero: bool = False, score: float = 0.5, available: float = 6.0
) -> ClipCandidate:
    return ClipCandidate(
        clip_id=i, photo_id=i, room_type=room, cluster_index=cluster, is_hero=hero, score=score, available=available
    )


LISTING = [
    cand(1, "bathroom", 5, hero=True),
    cand(2, "kitchen", 2, hero=True, score=0.7),
    cand(3, "exterior", 0, score=0.6),
    cand(4, "exterior", 0, hero=True, score=0.9),
    cand(5, "outdoor", 6, hero=True),
    cand(6, "bedroom", 3, hero=True, score=0.8),
    cand(7, "living_room", 1, hero=True),
    cand(8, "bedroom", 4, hero=True, score=0.6),
    cand(9, "kitchen", 2, score=0.4),
]


def test_story_order_walks_the_property() -> None:
    order = [c.room_type for c in story_order(LISTING)]
    assert order[0] == "exterior" and story_order(LISTING)[0].clip_id == 4, "the best exterior opens"
    assert order == [
        "exterior",
        "exterior",
        "living_room",
        "kitchen",
        "kitchen",
        "bedroom",
        "bedroom",
        "bathroom",
        "outdoor",
    ]
    kitchen = [c.clip_id for c in story_order(LISTING) if c.room_type == "kitchen"]
    assert kitchen == [2, 9], "the hero leads its room"
    bedrooms = [c.clip_id for c in story_order(LISTING) if c.room_type == "bedroom"]
    assert bedrooms == [6, 8], "the better bedroom first"


@pytest.mark.parametrize("bpm,target", [(120, 30.0), (112, 30.0), (87.5, 20.0), (160, 45.0)])
def test_every_cut_is_on_a_beat_and_length_meets_target(bpm: float, target: float) -> None:
    g = grid(bpm, 90.0)
    plan = plan_timeline(LISTING, g, target_length=target)
    period = 60.0 / bpm
    assert abs(plan.total_duration - target) <= period / 2 + 1e-6
    video_beats = [b - plan.music_offset for b in g.beats]
    for cut in [c.start for c in plan.clips] + [plan.clips[-1].end]:
        assert min(abs(cut - b) for b in video_beats) < 1e-3
    for c in plan.clips:
        assert c.beats >= 1 and abs((c.end - c.start) - c.beats * period) < 1e-3
        assert c.out_time <= 6.0 + 1e-6 and c.in_time >= 0, "trim stays inside the rendered footage"
    assert plan.music_offset == pytest.approx(g.downbeats[0])


def test_too_many_clips_keeps_heroes_and_opener() -> None:
    plan = plan_timeline(LISTING, grid(120, 60), target_length=8.0)
    ids = [c.clip_id for c in plan.clips]
    assert ids[0] == 4
    assert 3 not in ids and 9 not in ids, "non-hero clips go first"
    assert plan.warnings and "left out" in plan.warnings[0]


def test_short_music_shortens_the_video_with_a_warning() -> None:
    plan = plan_timeline(LISTING, grid(120, 12.0), target_length=30.0)
    assert plan.total_duration <= 12.0
    assert any("music" in w for w in plan.warnings)


def test_short_footage_is_reported() -> None:
    few = [cand(1, "exterior", 0, hero=True, available=3.0), cand(2, "kitchen", 1, hero=True, available=3.0)]
    plan = plan_timeline(few, grid(120, 60), target_length=30.0)
    assert plan.total_duration < 8.0
    assert any("rendered clips cover" in w for w in plan.warnings)


def test_transitions_are_between_clips_only() -> None:
    plan = plan_timeline(LISTING, grid(), target_length=30.0)
    assert plan.clips[-1].transition == "none" and plan.clips[-1].transition_duration == 0
    assert all(c.transition == "fade" and c.transition_duration == pytest.approx(0.5) for c in plan.clips[:-1])
    assert plan.cut_times == [c.end for c in plan.clips[:-1]]


def test_only_a_confident_exterior_opens_the_video() -> None:
    """An "exterior" the classifier is unsure of is ordered as "unknown" (mid-tour), and the best
    confident exterior opens even when an unsure one scores higher."""
    from dataclasses import replace

    from app.phases.timeline.planner import opening_warning

    unsure = replace(cand(10, "exterior", 7, hero=True, score=0.99), confident_exterior=False)
    listing = [*LISTING, unsure]
    order = story_order(listing)
    assert order[0].clip_id == 4
    rooms = [c.room_type for c in order]
    assert order.index(unsure) > rooms.index("kitchen"), "unsure exterior sits mid-tour"
    assert order.index(unsure) < rooms.index("bedroom")
    assert opening_warning(order) is None


def test_no_confident_exterior_warns_and_never_opens_on_an_unsure_one() -> None:
    from dataclasses import replace

    from app.phases.timeline.planner import opening_warning

    listing = [replace(c, confident_exterior=False) if c.room_type == "exterior" else c for c in LISTING]
    order = story_order(listing)
    assert order[0].room_type != "exterior"
    assert order[0].room_type == "living_room"
    warning = opening_warning(order)
    assert warning is not None and "not confidently" in warning and "living_room" in warning
    plan = plan_timeline(listing, grid(), target_length=20.0)
    assert any("not an exterior" in w for w in plan.warnings)
    # Without any exterior at all, the reason says so.
    indoor = [c for c in LISTING if c.room_type != "exterior"]
    assert "no photo is labelled or classified exterior" in (opening_warning(story_order(indoor)) or "")


def test_unknown_rooms_sit_mid_tour() -> None:
    order = [c.room_type for c in story_order([*LISTING, cand(11, "unknown", 8, hero=True, score=0.95)])]
    assert order.index("unknown") > order.index("kitchen")
    assert order.index("unknown") < order.index("bedroom")
    assert order[-1] == "outdoor"


def test_is_confident_exterior() -> None:
    from app.phases.timeline.planner import is_confident_exterior

    assert is_confident_exterior("backend", "exterior", False, 0.0), "a person's label is trusted"
    assert not is_confident_exterior("backend", "kitchen", True, 0.99), "a person's label wins"
    assert is_confident_exterior("heuristic:v2", "exterior", True, 0.95)
    assert not is_confident_exterior("heuristic:v2", "exterior", True, 0.8)
    assert not is_confident_exterior("clip:x", "kitchen", False, 0.95)
