"""validate_clip: a faithful clip passes; the wrong photo, a black clip, a frozen clip or a wrong
frame count fail, and the score ranks them consistently with `passed`."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from app.media.ffmpeg import VideoWriter
from app.media.kenburns import frame_at, render_ken_burns
from app.media.types import MotionPlan, MotionType, Viewport
from app.media.validate import PASS_SCORE, hp_ncc, ssim, validate_clip

W, H, FPS, DUR = 480, 270, 30, 1.0
PLAN = MotionPlan(MotionType.PUSH_IN, Viewport(0.5, 0.5, 1.0), Viewport(0.6, 0.45, 1.3))


def _photo(seed: int, w: int = 960, h: int = 640) -> np.ndarray:
    """A synthetic "room": a lit gradient, random furniture-like boxes and discs, and fine grain."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = 90 + 80 * (xx / w) * (1 - yy / h) + rng.uniform(-20, 20)
    img = np.repeat(base[:, :, None], 3, axis=2).astype(np.float32)
    for _ in range(40):
        colour = [float(c) for c in rng.uniform(20, 235, 3)]
        x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
        if rng.random() < 0.6:
            size = (int(rng.integers(20, 200)), int(rng.integers(20, 160)))
            cv2.rectangle(img, (x, y), (x + size[0], y + size[1]), colour, -1)
        else:
            cv2.circle(img, (x, y), int(rng.integers(10, 80)), colour, -1)
    img += rng.normal(0, 6, img.shape).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    photo = _photo(1)
    out = tmp_path_factory.mktemp("val") / "good.mp4"
    render_ken_burns(photo, PLAN, out, width=W, height=H, fps=FPS, duration=DUR)
    return out, photo


def test_similarity_measures() -> None:
    a = _photo(3, 320, 180)[:, :, 0].astype(np.float32)
    b = _photo(4, 320, 180)[:, :, 0].astype(np.float32)
    assert ssim(a, a) == pytest.approx(1.0) and hp_ncc(a, a) == pytest.approx(1.0)
    # Plain walls of similar brightness fool SSIM; the high-passed correlation is not fooled.
    assert hp_ncc(a, b) < 0.2
    assert hp_ncc(a, a * 0.7 + 30) == pytest.approx(1.0, abs=1e-3)  # exposure change: same photo


def test_correct_clip_passes(clip: tuple[Path, np.ndarray]) -> None:
    path, photo = clip
    res = validate_clip(path, photo, PLAN, width=W, height=H, fps=FPS, duration=DUR)
    assert res.passed, res.reasons
    assert res.score > 0.9
    assert res.reasons == []
    frames = res.metrics["frames_checked"]
    assert [f["index"] for f in frames] == [0, 14, 29]
    assert all(f["ncc"] > 0.9 and f["ssim"] > 0.9 for f in frames)


def test_clip_of_another_photo_fails(clip: tuple[Path, np.ndarray]) -> None:
    path, _ = clip
    res = validate_clip(path, _photo(2), PLAN, width=W, height=H, fps=FPS, duration=DUR)
    assert not res.passed
    assert res.score < PASS_SCORE
    assert any("does not show" in r for r in res.reasons)


def test_black_clip_fails(tmp_path: Path) -> None:
    photo = _photo(1)
    out = tmp_path / "black.mp4"
    with VideoWriter(out, W, H, FPS) as w:
        for _ in range(round(DUR * FPS)):
            w.write(np.zeros((H, W, 3), np.uint8))
    res = validate_clip(out, photo, PLAN, width=W, height=H, fps=FPS, duration=DUR)
    assert not res.passed
    assert res.score < 0.1
    assert any("black" in r for r in res.reasons)


def test_frozen_clip_fails(tmp_path: Path) -> None:
    """The right photo, but the camera never moves: plausible frames, still a broken render."""
    photo = _photo(1)
    still = frame_at(photo, PLAN, 0.0, W, H)
    out = tmp_path / "frozen.mp4"
    with VideoWriter(out, W, H, FPS) as w:
        for _ in range(round(DUR * FPS)):
            w.write(still)
    res = validate_clip(out, photo, PLAN, width=W, height=H, fps=FPS, duration=DUR)
    assert not res.passed
    assert res.score < PASS_SCORE
    assert any("frozen" in r for r in res.reasons)


def test_wrong_frame_count_and_size_fail(clip: tuple[Path, np.ndarray]) -> None:
    path, photo = clip
    res = validate_clip(path, photo, PLAN, width=W, height=H, fps=FPS, duration=DUR + 0.5)
    assert not res.passed and any("frames, expected 45" in r for r in res.reasons)
    assert res.score < PASS_SCORE
    res = validate_clip(path, photo, PLAN, width=640, height=360, fps=FPS, duration=DUR)
    assert not res.passed and any("size: 480x270" in r for r in res.reasons)


def test_missing_file_scores_zero(tmp_path: Path) -> None:
    res = validate_clip(tmp_path / "nope.mp4", _photo(1), PLAN, width=W, height=H, fps=FPS, duration=DUR)
    assert not res.passed and res.score == 0.0 and res.reasons


@pytest.mark.parametrize("fill", [0, 255])
def test_a_clip_of_a_blank_photo_cannot_be_validated(tmp_path: Path, fill: int) -> None:
    """Why phase 1 rejects featureless photos (`quality.featureless_reason`): a faithful Ken Burns clip of
    a blank frame scores 0, because nothing in it identifies the photo, so every renderer would fail."""
    from app.media.quality import featureless_reason

    blank = np.full((640, 960, 3), fill, np.uint8)
    assert featureless_reason(blank) is not None
    out = tmp_path / "blank.mp4"
    render_ken_burns(blank, PLAN, out, width=W, height=H, fps=FPS, duration=DUR)
    res = validate_clip(out, blank, PLAN, width=W, height=H, fps=FPS, duration=DUR)
    assert not res.passed and res.score == 0.0
