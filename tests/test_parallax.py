"""Depth parallax renderer and depth sources: exact clips, eased sub-pixel motion, no border, better than
Ken Burns against the TRUE frames of a generated room, disocclusions filled without streaks, depth
sidecars and XMP-embedded depth read back, cancellation."""

from __future__ import annotations

import itertools
import runpy
import threading
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from app.errors import RenderCancelled
from app.media.depth_io import (
    embed_dynamic_depth,
    embed_gdepth,
    load_photo_depth,
    read_depth_file,
    read_embedded_depth,
    write_depth_png,
)
from app.media.ffmpeg import probe
from app.media.kenburns import ease, frame_t_norm
from app.media.parallax import _GRID, CameraMove, ParallaxCamera, render_parallax, render_parallax_frames
from app.media.types import Easing, MotionPlan, MotionType, Viewport
from app.samples import make_sample_listing, render_true_frames

REPO = Path(__file__).resolve().parents[1]
STATIC = MotionPlan(MotionType.PARALLAX, Viewport(), Viewport())


def _texture(w: int, h: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = np.zeros((h, w, 3), np.float32)
    for factor, amp in ((2, 30.0), (8, 50.0), (32, 60.0)):
        small = rng.standard_normal((max(2, h // factor), max(2, w // factor), 3)).astype(np.float32)
        noise = cv2.resize(cv2.GaussianBlur(small, (0, 0), 1.0), (w, h), interpolation=cv2.INTER_CUBIC)
        img += amp * noise / (noise.std() + 1e-6)
    return np.clip(img + 128, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def benchmark() -> dict[str, Any]:
    return runpy.run_path(str(REPO / "scripts" / "benchmark.py"))


def test_clip_has_exact_frames_size_and_progress(tmp_path: Path) -> None:
    photo = _texture(480, 320)
    depth = np.linspace(0.5, 1.0, 320, dtype=np.float32)[:, None].repeat(480, axis=1)  # a floor-like ramp
    calls: list[tuple[int, int]] = []
    out = tmp_path / "px.mp4"
    stats = render_parallax(
        photo,
        depth,
        MotionPlan(MotionType.PUSH_IN, Viewport(0.5, 0.5, 1.0), Viewport(0.55, 0.5, 1.2)),
        out,
        width=320,
        height=180,
        fps=30,
        duration=1.03,
        progress=lambda done, total: calls.append((done, total)),
    )
    info = probe(out)
    assert info.video is not None
    assert (info.video.codec, info.video.width, info.video.height, info.video.fps) == ("h264", 320, 180, 30.0)
    assert info.frame_count == stats.frames == 31 and calls[-1] == (31, 31) and len(calls) == 31
    assert not list(tmp_path.glob(".*partial*"))


def _shift(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    h, w = a.shape
    (px, py), _ = cv2.phaseCorrelate(a, b, cv2.createHanningWindow((w, h), cv2.CV_32F))
    init = np.array([[1, 0, px], [0, 1, py]], np.float32)
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 30, 1e-4)
    _, warp = cv2.findTransformECC(a, b, init, cv2.MOTION_TRANSLATION, criteria, None)
    return float(warp[0, 2]), float(warp[1, 2])


def test_truck_over_a_flat_wall_is_smooth_and_eased_like_ken_burns() -> None:
    """A flat scene (constant depth) trucked sideways moves the picture by f * truck * k (k eased):
    the per-frame shift follows smootherstep to a small fraction of a pixel, zero speed at both ends."""
    photo = _texture(640, 400, seed=2)
    move = CameraMove(truck=0.12)
    cam = ParallaxCamera(photo, np.ones((40, 64), np.float32), STATIC, 320, 180, move=move)
    n = 30
    frames = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY).astype(np.float32) for f in render_parallax_frames(cam, n)]
    dx = np.array([_shift(a, b)[0] for a, b in itertools.pairwise(frames)])
    focal = cam.geometry.K[0, 0]
    out_per_photo_px = 320 / cam.rect_at(0.0)[2]
    k = np.array([ease(Easing.EASE_IN_OUT, frame_t_norm(i, n)) for i in range(n)])
    expected = -np.diff(k) * focal * move.truck * out_per_photo_px  # content moves against the camera
    err = dx - expected
    assert np.abs(err).max() < 0.25 and np.sqrt(np.mean(err**2)) < 0.12, err
    assert abs(dx[0]) < 0.05 * np.abs(dx).max() and abs(dx[-1]) < 0.05 * np.abs(dx).max()
    assert np.abs(np.diff(dx) - np.diff(expected)).max() < 0.3


@pytest.fixture(scope="module")
def room() -> Any:
    return render_true_frames("bedroom_b", [], width=480, height=320)


def test_no_border_ever_shows(room: Any) -> None:
    """Every output pixel maps inside the photo on every frame (the safety zoom), so nothing is padded."""
    move = CameraMove(dolly=0.25, truck=-0.1, crane=0.05, arc_deg=2.0)
    cam = ParallaxCamera(room.photo, room.inverse_depth, STATIC, 384, 216, move=move, focal_px=room.focal_px)
    assert cam.zoom > 1.0
    for t in np.linspace(0.0, 1.0, 7):
        fg, _alpha, _bg = cam.maps(float(t))
        inner = fg[1:-1, 1:-1]  # the grid's nodes over the frame (the outer ring lies beyond it)
        assert inner[..., 0].min() >= 0.0 and inner[..., 0].max() <= room.photo.shape[1]
        assert inner[..., 1].min() >= 0.0 and inner[..., 1].max() <= room.photo.shape[0]
        frame = cam.render(float(t))
        for strip in (frame[:2], frame[-2:], frame[:, :2], frame[:, -2:]):
            assert float(strip.std()) > 3.0 and float(strip.max()) > 20  # real picture, not a fill


def test_parallax_beats_ken_burns_against_true_frames(benchmark: dict[str, Any]) -> None:
    result = benchmark["parallax_room"]("bedroom_b", photo_size=(480, 320), out_size=(384, 216), frames=3)
    assert result["psnr_parallax"] > result["psnr_ken_burns"] + 1.0, result
    assert result["ssim_parallax"] > result["ssim_ken_burns"], result


def test_disocclusion_is_filled_from_the_background_without_streaks() -> None:
    """A red box in front of a far textured wall, camera trucked: the strip the box uncovers shows
    background colours (no red smeared into it) and no streaks (stretched pixels are anisotropic:
    strong gradients across the stretch, none along it)."""
    h, w = 320, 480
    photo = _texture(w, h, seed=5)
    photo = (photo.astype(np.float32) * 0.5 + np.array([40, 80, 110], np.float32)).astype(np.uint8)  # blue-grey
    inv = np.full((h, w), 1 / 3.0, np.float32)
    box = (slice(100, 240), slice(170, 300))
    photo[box] = (220, 30, 30)
    inv[box] = 1.0
    cam = ParallaxCamera(photo, inv, STATIC, 384, 216, move=CameraMove(truck=0.3))
    _fg, alpha, bg = cam.maps(1.0)
    assert alpha is not None and bg is not None
    holes = alpha > 0.5
    gh, gw = holes.shape
    # the revealed strip: beside the box, about the relative shift wide (in grid nodes)
    rel_px = cam.geometry.K[0, 0] * 0.3 * 0.5 * (1 - 1 / 3) * 384 / cam.rect_at(1.0)[2] / _GRID
    widths = holes.sum(axis=1)
    typical = float(np.median(widths[widths > 0]))  # rows through the box's side (its top/bottom edges add more)
    assert 0.5 * rel_px <= typical <= 2.0 * rel_px + 3, (widths, rel_px)
    frame = cam.render(1.0).astype(np.float32)
    big = cv2.resize(holes.astype(np.uint8), (gw * _GRID, gh * _GRID), interpolation=cv2.INTER_NEAREST)
    mask = cv2.erode(big[_GRID:-_GRID, _GRID:-_GRID], np.ones((5, 5), np.uint8)) > 0
    revealed = frame[mask]
    assert revealed.size
    red = np.array([220, 30, 30], np.float32)
    assert float(np.linalg.norm(revealed - red, axis=1).min()) > 80.0
    # no red fringe: red mixed into the fill would make R - B > 40 commoner than in the background itself
    rb = photo[..., 0].astype(np.float32) - photo[..., 2]
    bg_rate = float(np.mean(rb[inv < 0.5] > 40.0))
    assert float(np.mean(revealed[:, 0] - revealed[:, 2] > 40.0)) <= 1.5 * bg_rate + 0.005
    gray = cv2.cvtColor(frame.astype(np.uint8), cv2.COLOR_RGB2GRAY).astype(np.float32)
    gx = np.abs(cv2.Sobel(gray, cv2.CV_32F, 1, 0))[mask]
    gy = np.abs(cv2.Sobel(gray, cv2.CV_32F, 0, 1))[mask]
    assert float(gy.mean()) < 2.5 * float(gx.mean()) + 2.0
    bg_energy = float(np.abs(cv2.Sobel(gray, cv2.CV_32F, 0, 1))[:, :40].mean())
    assert float(gy.mean()) <= 1.2 * bg_energy + 2.0


def test_cancel_stops_rendering(tmp_path: Path) -> None:
    photo = _texture(320, 200)
    cancel = threading.Event()
    seen: list[int] = []

    def progress(done: int, total: int) -> None:
        seen.append(done)
        if done == 3:
            cancel.set()

    out = tmp_path / "c.mp4"
    with pytest.raises(RenderCancelled):
        render_parallax(
            photo,
            np.ones((20, 32), np.float32),
            STATIC,
            out,
            width=160,
            height=90,
            duration=3.0,
            progress=progress,
            cancel=cancel,
        )
    assert max(seen) <= 4 and not out.exists() and not list(tmp_path.glob(".*partial*"))
    with pytest.raises(RenderCancelled):
        list(render_parallax_frames(ParallaxCamera(photo, np.ones((20, 32)), STATIC, 160, 90), 5, cancel=cancel))


# --- depth sources ------------------------------------------------------------------------------------


def _depth_field(h: int, w: int) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    return 1.5 + 3.0 * xx / w + 0.5 * np.sin(yy / 9.0)


def test_sidecar_png_round_trip(tmp_path: Path) -> None:
    z = _depth_field(60, 90)
    z[:5, :5] = 0.0  # unknown
    photo = tmp_path / "room.jpg"
    cv2.imwrite(str(photo), _texture(90, 60))
    write_depth_png(tmp_path / "room.depth.png", z)
    got = load_photo_depth(photo)
    assert got is not None and got.metric and got.source == "sidecar_png16"
    known = z > 0
    np.testing.assert_allclose(1.0 / got.inverse_depth[known], z[known], atol=6e-4)
    assert np.all(got.inverse_depth[~known] == 0)
    # 8-bit: relative inverse depth; float TIFF: metres
    cv2.imwrite(str(tmp_path / "rel.png"), np.full((4, 4), 255, np.uint8))
    rel = read_depth_file(tmp_path / "rel.png")
    assert rel is not None and not rel.metric and float(rel.inverse_depth.max()) == 1.0
    cv2.imwrite(str(tmp_path / "f.depth.tiff"), z.astype(np.float32))
    flt = read_depth_file(tmp_path / "f.depth.tiff")
    assert flt is not None and flt.metric
    np.testing.assert_allclose(flt.inverse_depth[known], 1.0 / z[known], rtol=1e-5)
    assert load_photo_depth(tmp_path / "none.jpg") is None


@pytest.mark.parametrize("embed", ["gdepth", "gdepth_linear", "dynamic_depth"])
def test_embedded_xmp_depth_round_trip(tmp_path: Path, embed: str) -> None:
    img = _texture(320, 240)
    ok, enc = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    jpeg = enc.tobytes()
    z = _depth_field(240, 320)  # a 16-bit PNG of this is > 64 KB: GDepth needs Extended XMP chunks
    near, far = 1.0, 6.0
    if embed == "dynamic_depth":
        data = embed_dynamic_depth(jpeg, z, near=near, far=far)
    else:
        data = embed_gdepth(
            jpeg, z, near=near, far=far, fmt="RangeLinear" if embed == "gdepth_linear" else "RangeInverse"
        )
    path = tmp_path / "cam.jpg"
    path.write_bytes(data)
    decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert decoded is not None and np.array_equal(decoded, cv2.imdecode(enc, cv2.IMREAD_COLOR))
    got = load_photo_depth(path)
    assert got is not None and got.metric and got.source == ("dynamic_depth" if embed == "dynamic_depth" else "gdepth")
    np.testing.assert_allclose(1.0 / got.inverse_depth, z, rtol=2e-3)
    assert read_embedded_depth(jpeg) is None
    assert read_embedded_depth(b"not a jpeg") is None
    assert read_embedded_depth(data[: len(data) // 3]) is None or embed != "dynamic_depth"


def test_sample_sidecars_hold_the_true_depth(tmp_path: Path) -> None:
    listing = make_sample_listing(
        tmp_path, width=192, height=128, music_seconds=3.0, seed=3, rooms=["bathroom"], workers=1, depth=True
    )
    entry = listing.ground_truth["photos"][0]
    assert entry["depth_file"] == "photos/bathroom/bathroom_view1.depth.png" and entry["focal_px"] > 0
    got = load_photo_depth(listing.out_dir / entry["file"])
    assert got is not None and got.metric
    truth = render_true_frames("bathroom", [], seed=3, width=192, height=128)
    assert got.inverse_depth.shape == truth.inverse_depth.shape == (128, 192)
    np.testing.assert_allclose(got.inverse_depth, truth.inverse_depth, rtol=2e-3, atol=1e-6)
    stored = cv2.imread(str(listing.out_dir / entry["file"]))
    assert stored is not None and cv2.PSNR(stored[..., ::-1].copy(), truth.photo) > 30  # JPEG of the same photo
