"""Ken Burns renderer: exact frame counts and sizes, sub-pixel smooth eased motion, and frame_at
matching what the renderer encodes."""

from __future__ import annotations

import itertools
from pathlib import Path

import cv2
import numpy as np
import pytest

from app.media.ffmpeg import probe, run_ffmpeg
from app.media.kenburns import (
    KenBurnsCamera,
    ease,
    frame_at,
    interpolate_rect,
    render_ken_burns,
)
from app.media.motion import viewport_rect
from app.media.types import Easing, MotionPlan, MotionType, Viewport


def _texture(w: int, h: int, seed: int = 0, fine: float = 40.0) -> np.ndarray:
    """Photo-like texture: band-limited noise at several scales plus a gradient, so phase
    correlation locks on with sub-pixel precision and compression leaves detail. Coarse scales are
    drawn small and upscaled (cheap); `fine` is the amplitude of the finest scale."""
    rng = np.random.default_rng(seed)
    img = np.zeros((h, w, 3), np.float32)
    for factor, amp in ((1, fine), (4, 60.0), (16, 80.0)):
        small = rng.standard_normal((max(2, h // factor), max(2, w // factor), 3)).astype(np.float32)
        noise = cv2.resize(cv2.GaussianBlur(small, (0, 0), 1.5), (w, h), interpolation=cv2.INTER_CUBIC)
        img += amp * noise / (noise.std() + 1e-6)
    img += np.linspace(0, 40, w, dtype=np.float32)[None, :, None]
    return np.clip(img + 128, 0, 255).astype(np.uint8)


def _decode_gray(path: Path, width: int, height: int) -> np.ndarray:
    proc = run_ffmpeg(["-v", "error", "-i", str(path), "-f", "rawvideo", "-pix_fmt", "gray", "-"])
    frames = np.frombuffer(proc.stdout, np.uint8)
    return frames.reshape(-1, height, width)


def _decode_first_rgb(path: Path, width: int, height: int) -> np.ndarray:
    proc = run_ffmpeg(["-v", "error", "-i", str(path), "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"])
    return np.frombuffer(proc.stdout, np.uint8).reshape(height, width, 3)


PAN = MotionPlan(MotionType.PAN_RIGHT, Viewport(0.375, 0.5, 1.0), Viewport(0.625, 0.5, 1.0))


@pytest.fixture(scope="module")
def pan_clip(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    photo = _texture(1280, 540)
    out = tmp_path_factory.mktemp("kb") / "pan.mp4"
    render_ken_burns(photo, PAN, out, width=640, height=360, fps=30, duration=2.0, crf=14)
    return out, photo


def test_viewport_rect_semantics() -> None:
    # Wider than 16:9: zoom 1 spans the full height.
    assert viewport_rect(Viewport(0.5, 0.5, 1.0), 2000, 1000, 16 / 9) == pytest.approx(
        (1000 - 1777.777 / 2, 0.0, 1777.777, 1000.0), abs=1e-2
    )
    # Taller than 16:9: full width; zoom 2 halves it; the window is clamped inside the photo.
    x0, y0, w, h = viewport_rect(Viewport(0.0, 1.0, 2.0), 1200, 1600, 16 / 9)
    assert (w, h) == pytest.approx((600.0, 337.5))
    assert (x0, y0) == pytest.approx((0.0, 1600 - 337.5))
    # Zoom below 1 would leave the photo: treated as 1.
    assert viewport_rect(Viewport(0.5, 0.5, 0.5), 1600, 900, 16 / 9) == pytest.approx((0, 0, 1600, 900))


def test_easing_curves() -> None:
    for e in Easing:
        assert ease(e, 0.0) == 0.0 and ease(e, 1.0) == pytest.approx(1.0)
    assert ease(Easing.EASE_IN_OUT, 0.5) == pytest.approx(0.5)
    # smootherstep: flat at both ends
    assert ease(Easing.EASE_IN_OUT, 0.01) < 1e-4
    assert ease(Easing.EASE_OUT, 0.5) > 0.5


def test_interpolated_path_stays_inside_and_zooms_about_fixed_point() -> None:
    w, h, aspect = 1600, 1200, 16 / 9
    r0 = viewport_rect(Viewport(0.5, 0.5, 1.0), w, h, aspect)
    r1 = viewport_rect(Viewport(0.9, 0.2, 1.6), w, h, aspect)  # clamped into the corner region
    assert interpolate_rect(r0, r1, 0.0) == pytest.approx(r0)
    assert interpolate_rect(r0, r1, 1.0) == pytest.approx(r1)
    # The point that sits at the same normalised screen position in both windows stays there.
    px = (r0[0] * r1[2] - r1[0] * r0[2]) / (r1[2] - r0[2])
    u0 = (px - r0[0]) / r0[2]
    for p in np.linspace(0, 1, 21):
        x0, y0, ww, hh = interpolate_rect(r0, r1, float(p))
        assert x0 >= -1e-9 and y0 >= -1e-9 and x0 + ww <= w + 1e-9 and y0 + hh <= h + 1e-9
        assert (px - x0) / ww == pytest.approx(u0, abs=1e-9)


def test_log_zoom_has_constant_relative_speed() -> None:
    photo = _texture(800, 450)
    plan = MotionPlan(MotionType.PUSH_IN, Viewport(0.5, 0.5, 1.0), Viewport(0.5, 0.5, 2.0), easing=Easing.LINEAR)
    cam = KenBurnsCamera(photo, plan, 320, 180)
    widths = np.array([cam.rect_at(t)[2] for t in np.linspace(0, 1, 11)])
    ratios = widths[1:] / widths[:-1]
    assert np.allclose(ratios, ratios[0], rtol=1e-9)


def test_clip_has_exact_frames_size_and_fps(tmp_path: Path) -> None:
    photo = _texture(900, 700, seed=3)
    plan = MotionPlan(MotionType.PUSH_IN, Viewport(0.5, 0.5, 1.0), Viewport(0.6, 0.4, 1.3))
    calls: list[tuple[int, int]] = []
    out = tmp_path / "clip.mp4"
    stats = render_ken_burns(
        photo,
        plan,
        out,
        width=640,
        height=360,
        fps=30,
        duration=1.53,
        progress=lambda done, total: calls.append((done, total)),
    )
    info = probe(out)
    assert info.frame_count == round(1.53 * 30) == stats.frames == 46
    assert info.video is not None
    assert (info.video.codec, info.video.width, info.video.height, info.video.fps) == ("h264", 640, 360, 30.0)
    assert calls[-1] == (46, 46) and len(calls) == 46
    assert stats.encode_fps > 0
    assert not list(tmp_path.glob(".*partial*"))


def test_full_hd_default_size(tmp_path: Path) -> None:
    photo = _texture(2000, 1300, seed=5, fine=0.0)  # smooth: cheap to encode at 1080p
    plan = MotionPlan(MotionType.PULL_OUT, Viewport(0.4, 0.6, 1.4), Viewport(0.5, 0.5, 1.0))
    out = tmp_path / "hd.mp4"
    stats = render_ken_burns(photo, plan, out, duration=0.4, preset="ultrafast")
    info = probe(out)
    assert info.video is not None
    assert (info.video.width, info.video.height, info.video.fps) == (1920, 1080, 30.0)
    assert info.frame_count == stats.frames == 12
    # Luma only: 4:2:0 chroma subsampling legitimately loses the texture's fine colour noise.
    first = cv2.cvtColor(_decode_first_rgb(out, 1920, 1080), cv2.COLOR_RGB2GRAY).astype(np.float32)
    expected = cv2.cvtColor(frame_at(photo, plan, 0.0, 1920, 1080), cv2.COLOR_RGB2GRAY).astype(np.float32)
    assert float(np.abs(first - expected).mean()) < 2.0


def test_first_frame_equals_frame_at(pan_clip: tuple[Path, np.ndarray]) -> None:
    out, photo = pan_clip
    # Luma: 4:2:0 chroma subsampling legitimately loses the texture's fine colour noise.
    first = cv2.cvtColor(_decode_first_rgb(out, 640, 360), cv2.COLOR_RGB2GRAY).astype(np.float32)
    expected = cv2.cvtColor(frame_at(photo, PAN, 0.0, 640, 360), cv2.COLOR_RGB2GRAY).astype(np.float32)
    mse = float(np.mean((first - expected) ** 2))
    psnr = 10 * np.log10(255**2 / mse)
    assert psnr > 35, psnr


def _frame_shifts(frames: np.ndarray) -> np.ndarray:
    """(dx, dy) content shift between consecutive frames, in output pixels.

    cv2.phaseCorrelate gives the shift, but its sub-pixel peak fit is biased by up to ~0.15 px; an
    ECC translation fit started from it refines that to a few hundredths, so the test can tell
    smooth motion from whole-pixel judder (which shows up as ~0.5-1 px velocity errors).
    """
    h, w = frames.shape[1:]
    window = cv2.createHanningWindow((w, h), cv2.CV_32F)
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 20, 1e-3)
    shifts = []
    for a, b in itertools.pairwise(frames):
        (px, py), _ = cv2.phaseCorrelate(a, b, window)
        init = np.array([[1, 0, px], [0, 1, py]], np.float32)
        _, warp = cv2.findTransformECC(a, b, init, cv2.MOTION_TRANSLATION, criteria, None)
        shifts.append((float(warp[0, 2]), float(warp[1, 2])))
    return np.array(shifts, dtype=np.float64)


def test_pan_is_smooth_and_follows_easing(pan_clip: tuple[Path, np.ndarray]) -> None:
    """Per-frame translation of the decoded clip tracks the smootherstep velocity profile to a small
    fraction of a pixel: no integer-pixel judder, zero speed at both ends, peak mid-clip.

    Reference (measured): this renderer, velocity error max ~0.19 px / rms ~0.09 px, acceleration
    error max ~0.16 px / rms ~0.08 px; the same path with the window snapped to whole output pixels
    (what zoompan does, at best): velocity error max ~0.86 px / rms ~0.36 px, acceleration error
    max ~1.3 px / rms ~0.6 px.
    """
    out, photo = pan_clip
    frames = _decode_gray(out, 640, 360).astype(np.float32)
    n = len(frames)
    assert n == 60
    shifts = _frame_shifts(frames)
    dx, dy = shifts[:, 0], shifts[:, 1]

    cam = KenBurnsCamera(photo, PAN, 640, 360)
    x_src = np.array([cam.rect_at(i / (n - 1))[0] for i in range(n)])
    expected = -np.diff(x_src) * 640 / cam.r0[2]  # content moves opposite to the camera, in output px

    assert np.abs(dy).max() < 0.1
    vel_err = dx - expected
    assert np.abs(vel_err).max() < 0.3 and np.sqrt(np.mean(vel_err**2)) < 0.15, vel_err
    speed = np.abs(dx)
    assert speed[0] < 0.05 * speed.max() and speed[-1] < 0.05 * speed.max()
    assert n // 3 <= int(np.argmax(speed)) <= 2 * n // 3
    # Judder shows up in the second difference (acceleration); it must follow the easing's own.
    accel_err = np.diff(dx) - np.diff(expected)
    assert np.abs(accel_err).max() < 0.45 and np.sqrt(np.mean(accel_err**2)) < 0.2, accel_err


def test_bad_arguments(tmp_path: Path) -> None:
    photo = _texture(320, 200)
    with pytest.raises(ValueError):
        render_ken_burns(photo, PAN, tmp_path / "x.mp4", width=320, height=180, fps=30, duration=0)
    with pytest.raises(ValueError):
        frame_at(photo.astype(np.float32), PAN, 0.0, 320, 180)
    bad_zoom = MotionPlan(MotionType.DRIFT, Viewport(0.5, 0.5, 0.0), Viewport(0.5, 0.5, 1.0))
    with pytest.raises(ValueError):
        frame_at(photo, bad_zoom, 0.0, 320, 180)
