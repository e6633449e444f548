"""The temporal quality gate of validate_clip: a faithful Ken Burns or parallax clip passes; a pasted
object ("not_rigid"), a frozen camera, a flash frame, flicker and black frames fail with their codes."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

from app.media.ffmpeg import VideoWriter
from app.media.kenburns import frame_at, render_ken_burns
from app.media.parallax import render_parallax
from app.media.types import MotionPlan, MotionType, Viewport
from app.media.validate import validate_clip

W, H, FPS, DUR = 480, 270, 30, 1.5
N = round(DUR * FPS)
PLAN = MotionPlan(MotionType.PUSH_IN, Viewport(0.5, 0.5, 1.0), Viewport(0.55, 0.48, 1.25))


def _room(seed: int = 1, w: int = 960, h: int = 640) -> tuple[np.ndarray, np.ndarray]:
    """A synthetic room (lit gradient, boxes and discs, grain) and its inverse depth: the wall at 1,
    each box a little nearer, as a depth sensor would see furniture in front of a wall."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.repeat((90 + 80 * (xx / w) * (1 - yy / h))[:, :, None], 3, axis=2)
    inv = np.full((h, w), 0.6, np.float32)
    for _ in range(40):
        colour = [float(c) for c in rng.uniform(20, 235, 3)]
        x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
        near = float(rng.uniform(0.6, 1.0))
        if rng.random() < 0.6:
            p2 = (x + int(rng.integers(20, 200)), y + int(rng.integers(20, 160)))
            cv2.rectangle(img, (x, y), p2, colour, -1)
            cv2.rectangle(inv, (x, y), p2, near, -1)
        else:
            r = int(rng.integers(10, 80))
            cv2.circle(img, (x, y), r, colour, -1)
            cv2.circle(inv, (x, y), r, near, -1)
    img += rng.normal(0, 6, img.shape).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8), inv


def _kb_frames(photo: np.ndarray) -> list[np.ndarray]:
    return [frame_at(photo, PLAN, i / (N - 1), W, H) for i in range(N)]


def _write(frames: list[np.ndarray], out: Path) -> Path:
    with VideoWriter(out, W, H, FPS) as w:
        for f in frames:
            w.write(np.ascontiguousarray(f))
    return out


def _check(path: Path, photo: np.ndarray) -> tuple[bool, list[str], dict[str, object]]:
    res = validate_clip(path, photo, PLAN, width=W, height=H, fps=FPS, duration=DUR)
    return res.passed, [r.split(":")[0] for r in res.reasons], res.metrics


@pytest.fixture(scope="module")
def room() -> tuple[np.ndarray, np.ndarray]:
    return _room()


def test_ken_burns_clip_passes(room: tuple[np.ndarray, np.ndarray], tmp_path: Path) -> None:
    photo, _ = room
    out = tmp_path / "kb.mp4"
    render_ken_burns(photo, PLAN, out, width=W, height=H, fps=FPS, duration=DUR)
    t0 = time.perf_counter()
    passed, codes, m = _check(out, photo)
    assert passed, codes
    assert time.perf_counter() - t0 < 5.0
    assert float(m["rigid_block"]) < 10  # type: ignore[arg-type]
    assert float(m["travel"]) == pytest.approx(float(m["planned_travel"]), rel=0.1)  # type: ignore[arg-type]


def test_parallax_clip_passes(room: tuple[np.ndarray, np.ndarray], tmp_path: Path) -> None:
    photo, inv = room
    out = tmp_path / "px.mp4"
    render_parallax(photo, inv, PLAN, out, width=W, height=H, fps=FPS, duration=DUR)
    passed, codes, m = _check(out, photo)
    assert passed, (codes, m)


def _person(frames: list[np.ndarray]) -> list[np.ndarray]:
    """A person-like blob (body and head) walks in from mid-clip."""
    out = [f.copy() for f in frames]
    for i in range(N // 2, N):
        cx = 240 + (i - N // 2)
        cv2.ellipse(out[i], (cx, 160), (20, 48), 0, 0, 360, (60, 60, 70), -1)
        cv2.circle(out[i], (cx, 98), 15, (205, 160, 130), -1)
    return out


def _flash(frames: list[np.ndarray]) -> list[np.ndarray]:
    out = list(frames)
    out[N // 2] = cv2.add(frames[N // 2], np.full_like(frames[0], 60))
    return out


def _flicker(frames: list[np.ndarray]) -> list[np.ndarray]:
    """Alternate frames 4 levels darker: below the flash threshold, but a visible flicker."""
    return [cv2.subtract(f, np.full_like(f, 4)) if i % 2 else f for i, f in enumerate(frames)]


def _black(frames: list[np.ndarray]) -> list[np.ndarray]:
    out = list(frames)
    for i in (N // 3, N // 3 + 1):
        out[i] = np.zeros_like(frames[0])
    return out


def _frozen(frames: list[np.ndarray]) -> list[np.ndarray]:
    return [frames[0]] * N


@pytest.mark.parametrize(
    ("fake", "code"),
    [(_person, "not_rigid"), (_flash, "flash"), (_flicker, "flicker"), (_black, "black"), (_frozen, "frozen")],
)
def test_broken_clips_fail(
    room: tuple[np.ndarray, np.ndarray],
    tmp_path: Path,
    fake: Callable[[list[np.ndarray]], list[np.ndarray]],
    code: str,
) -> None:
    photo, _ = room
    out = _write(fake(_kb_frames(photo)), tmp_path / f"{code}.mp4")
    passed, codes, m = _check(out, photo)
    assert not passed
    assert code in codes, (codes, m)


def _smear(frames: list[np.ndarray], axis: int) -> list[np.ndarray]:
    """From a third of the way in, a 90x70 px patch is one column (axis 1) or one row (axis 0) of
    pixels pulled across it: what a warp does when it stretches pixels over a depth edge."""
    out = [f.copy() for f in frames]
    x0, y0, w, h = 200, 100, 90, 70
    for f in out[N // 3 :]:
        edge = f[y0 : y0 + h, x0 : x0 + 1] if axis == 1 else f[y0 : y0 + 1, x0 : x0 + w]
        f[y0 : y0 + h, x0 : x0 + w] = np.repeat(edge, w if axis == 1 else h, axis=axis)
    return out


@pytest.mark.parametrize("axis", [0, 1])
def test_stretched_region_fails(tmp_path: Path, axis: int) -> None:
    photo, _ = _room(seed=2)  # textured where the patch is smeared
    good = _write(_kb_frames(photo), tmp_path / "good.mp4")
    passed, codes, m = _check(good, photo)
    assert passed and float(m["stretched_area"]) < 0.01, (codes, m)  # type: ignore[arg-type]
    out = _write(_smear(_kb_frames(photo), axis), tmp_path / "smear.mp4")
    passed, codes, m = _check(out, photo)
    assert not passed
    assert "stretched" in codes, (codes, m)
