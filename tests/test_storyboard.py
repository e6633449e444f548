"""Storyboard PNG: produced at the expected width, with real content (thumbnails, hero highlight,
timeline blocks), from arrays and files alike, and without music or segments."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from app.media.storyboard import (
    WIDTH,
    StoryboardPhoto,
    StoryboardRoom,
    StoryboardSegment,
    render_storyboard,
)
from app.media.types import BeatGrid, MotionPlan, MotionType, Viewport

HERO_RGB = (245, 166, 35)


def _photo(seed: int, w: int = 800, h: int = 600) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = np.full((h, w, 3), rng.integers(60, 200, 3), np.uint8)
    for _ in range(25):
        colour = tuple(int(c) for c in rng.integers(0, 255, 3))
        x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
        size = (int(rng.integers(20, 250)), int(rng.integers(20, 200)))
        cv2.rectangle(img, (x, y), (x + size[0], y + size[1]), colour, -1)
    return img


def _grid(duration: float, bpm: float = 120.0) -> BeatGrid:
    beats = list(np.arange(0.0, duration, 60.0 / bpm))
    return BeatGrid(
        tempo=bpm, beats=beats, downbeats=beats[::4], duration=duration, beat_offset=0.0, source="default_bpm"
    )


def test_storyboard_png(tmp_path: Path) -> None:
    jpg = tmp_path / "kitchen.jpg"
    Image.fromarray(_photo(7, 1200, 800)).save(jpg, quality=90)
    push = MotionPlan(MotionType.PUSH_IN, Viewport(0.5, 0.5, 1.0), Viewport(0.65, 0.4, 1.4))
    pan = MotionPlan(MotionType.PAN_LEFT, Viewport(0.8, 0.5, 1.1), Viewport(0.2, 0.5, 1.1))
    rooms = [
        StoryboardRoom(
            "living_room",
            [
                StoryboardPhoto(_photo(1), 1, is_hero=True, motion_label="push_in", score=0.91, plan=push),
                StoryboardPhoto(_photo(2, 600, 900), 2, motion_label="tilt_down", score=0.55),  # portrait
                StoryboardPhoto(_photo(3), 3, motion_label="pan_left", score=0.4, plan=pan),
            ],
        ),
        StoryboardRoom(
            "kitchen",
            [
                StoryboardPhoto(jpg, 4, is_hero=True, motion_label="pan_left", score=0.8, plan=pan),
                StoryboardPhoto(_photo(5), 5, motion_label="pull_out", score=0.3),
            ],
        ),
    ]
    segments = [
        StoryboardSegment(0.0, 4.0, "living_room", 1, "push_in", "cut"),
        StoryboardSegment(4.0, 6.0, "living_room", 3, "pan_left", "cut"),
        StoryboardSegment(6.0, 10.0, "kitchen", 4, "pan_left", "crossfade"),
        StoryboardSegment(10.0, 12.0, "kitchen", 5, "pull_out", "cut"),
    ]
    out = render_storyboard(
        tmp_path / "sb" / "storyboard.png", rooms, beat_grid=_grid(12.0), segments=segments, title="12 Test Street"
    )
    assert out == tmp_path / "sb" / "storyboard.png" and out.is_file()
    with Image.open(out) as im:
        assert im.format == "PNG"
        assert im.width == WIDTH == 1600
        assert 700 < im.height < 1400
        arr = np.asarray(im.convert("RGB"))
    assert arr.std() > 30
    assert len(np.unique(arr.reshape(-1, 3)[::7], axis=0)) > 500
    # Hero outline drawn in the highlight colour (two heroes: plenty of pixels).
    hero = np.all(np.abs(arr.astype(int) - HERO_RGB) <= 2, axis=2)
    assert hero.sum() > 2000
    # Timeline: the bottom part is not empty background.
    assert arr[-220:].std() > 20
    assert not list(out.parent.glob(".*partial*"))


def test_storyboard_without_music_or_segments(tmp_path: Path) -> None:
    rooms = [StoryboardRoom("bedroom", [StoryboardPhoto(_photo(9), "a", is_hero=True, motion_label="drift")])]
    out = render_storyboard(tmp_path / "plain.png", rooms, beat_grid=None, segments=[])
    with Image.open(out) as im:
        assert im.width == 1600 and im.height > 300
