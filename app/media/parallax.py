"""2.5D depth parallax: a virtual camera that really moves (dolly, truck, crane, arc) over one photo
and its depth map, so near things slide against far ones instead of the whole picture zooming as a
flat card (Ken Burns).

Model. The photo was taken by a pinhole camera K (focal `focal_px`, principal point at the image
centre; continuous pixel coordinates, pixel i covers [i, i+1)). Its depth map is given as *inverse*
depth w = 1/z, normalised so the *near* part of the scene (90th percentile of w,
`reference_inverse_depth`) is at 1: camera moves are therefore expressed in units of the near
scene's depth (0.05 = 5 % of the way to the nearest furniture), which keeps the parallax of the
nearest things - where disocclusions appear - alike in a bathroom, a great room and a backyard.
A 3-D point seen at photo pixel q with inverse depth w, viewed from a virtual camera with rotation R and centre C (photo
camera coordinates: x right, y down, z forward) lands at

    p ~ H q + w e,   H = K R K^-1,  e = -K R C          (plane-plus-parallax form)

and, solved for q, q = s a + w b with a = H^-1 p, b = K C, s = (1 - w C_z) / a_z. The output frame
is the Ken Burns window (`kenburns.KenBurnsCamera.rect_at`: same easing, same log-size interpolation,
same sub-pixel float geometry) over the *virtual* camera's image, so framing, easing and timing are
exactly those of the Ken Burns clip of the same plan, and the camera's translation adds the parallax.

Rendering (backward mapping, per frame):

* on a coarse grid (one node per `_GRID` = 8 output pixels) every output node finds its source pixel by
  fixed-point iteration q <- s(w(q)) a + w(q) b on the sharp depth, started from the *nearest* depth
  around it (a max filter). Where a foreground surface covers the node the iteration locks on to it
  (nearest wins, as a z-buffer would); where the camera has moved a foreground object off the node
  (a disocclusion) no source pixel exists and the iteration does not settle: the node is a *hole*;
* holes are filled from a background layer made once per clip: depth pushed back to the far side of
  every depth edge (a min filter of inverse depth, blurred so the iteration converges), colour filled
  into the pushed-back band from the background side only (normalised convolution over pixels that
  are background, never the foreground that hid them). So a revealed strip shows blurred background,
  and no pixel is ever stretched across a depth edge;
* the grid map is upsampled (bilinear) to the output and the photo (resampled once per clip, as for
  Ken Burns) is sampled with one `cv2.remap`; holes are blended in with a softened mask;
* a safety zoom, found per clip, shrinks both Ken Burns windows just enough that no output pixel
  ever maps outside the photo for the nearest and farthest depth on the path: no border is shown.

Cost: one full-resolution remap per frame plus a coarse-grid solve (1/64 of the pixels); like the
Ken Burns warp it runs in a producer thread ahead of the encoder pipe.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np

from app.media.kenburns import (
    KenBurnsCamera,
    RenderStats,
    _as_rgb,
    check_cancelled,
    ease,
    encode_camera,
    frame_count,
    frame_t_norm,
    interpolate_rect,
)
from app.media.motion import viewport_rect
from app.media.types import MotionPlan, MotionType, Viewport

__all__ = [
    "DEFAULT_HFOV",
    "CameraMove",
    "ParallaxCamera",
    "default_focal",
    "frame_at",
    "move_for_plan",
    "normalise_inverse_depth",
    "render_parallax",
    "render_parallax_frames",
]

#: Horizontal field of view (degrees, across the longer side) assumed when the caller does not know
#: the photo's focal length: a typical wide real-estate lens (16-18 mm full-frame equivalent is ~90,
#: 24 mm is ~74). Parallax magnitudes scale with it; nothing else does.
DEFAULT_HFOV = 74.0
#: Output pixels per grid node of the coarse backward map (8: 240x135 nodes at 1080p; 4 is no better
#: against the true frames of the sample rooms and costs ~15 ms more per 1080p frame).
_GRID = 8
#: Fixed-point iterations of the foreground and background solves.
_FG_ITERS = 5
_BG_ITERS = 3
#: A foreground node whose last iteration still moved by more than this many *output* pixels did not
#: converge: nothing in the photo lands there (a disocclusion).
_CONVERGED_PX = 0.35
#: Inverse depth above this many times the reference (`reference_inverse_depth`) is clamped (a
#: lens-touching object would otherwise swing across the frame).
_MAX_INV_DEPTH = 3.0
#: Depth edges: a pixel is in the pushed-back band when its inverse depth exceeds the far side's by
#: this fraction.
_EDGE_STEP = 0.06
#: No more than this many pixels of the source are used for the depth working copy.
_MAX_DEPTH_PIXELS = 1_200_000
#: Largest depth-edge radius (depth pixels) of the background layer: the far side of an edge and the
#: colour fill stay local (24 let a backyard's sky win the min filter behind a near umbrella, so its
#: revealed strips were filled sky-blue; 8: outdoor +1.26 dB, no room worse).
_MAX_RADIUS = 8

Rect = tuple[float, float, float, float]


@dataclass(frozen=True)
class CameraMove:
    """Where the virtual camera goes over the clip, in units of the near scene's depth
    (`reference_inverse_depth`).

    Displacements are the *total* travel over the clip: the camera moves from -`anchor` to
    (1 - `anchor`) of it, eased like the Ken Burns window. With the default anchor 0.5 the photo's own
    viewpoint is mid-clip, so neither end strays further than half the move from what the photo saw
    (half the disocclusion). `dolly` > 0 moves forward, `truck` > 0 right, `crane` > 0 up; `arc_deg`
    > 0 orbits to the right around a point `pivot` reference depths ahead, turning to keep it centred.
    """

    dolly: float = 0.0
    truck: float = 0.0
    crane: float = 0.0
    arc_deg: float = 0.0
    pivot: float = 1.0
    anchor: float = 0.5

    def pose(self, progress: float) -> tuple[np.ndarray, np.ndarray]:
        """(R, C) at path progress 0..1: world (photo camera) to virtual rotation, and camera centre."""
        k = progress - self.anchor
        theta = -math.radians(self.arc_deg) * k
        c, s = math.cos(theta), math.sin(theta)
        centre = np.array([self.truck * k, -self.crane * k, self.dolly * k], dtype=np.float64)
        centre += np.array([-self.pivot * s, 0.0, self.pivot * (1.0 - c)])
        rot_y = np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])
        return rot_y.T, centre

    @property
    def is_static(self) -> bool:
        return self.dolly == 0.0 and self.truck == 0.0 and self.crane == 0.0 and self.arc_deg == 0.0


#: Default travel per motion type (reference-depth units). Real-estate footage moves slowly: a 6 %
#: truck with the nearest furniture 2 m away is 12 cm in a few seconds.
_MOVES: dict[MotionType, CameraMove] = {
    MotionType.PUSH_IN: CameraMove(dolly=0.10),
    MotionType.PULL_OUT: CameraMove(dolly=-0.10),
    MotionType.PAN_RIGHT: CameraMove(truck=0.06),
    MotionType.PAN_LEFT: CameraMove(truck=-0.06),
    MotionType.TILT_UP: CameraMove(crane=0.05),
    MotionType.TILT_DOWN: CameraMove(crane=-0.05),
    MotionType.DRIFT: CameraMove(arc_deg=2.0),
    MotionType.PARALLAX: CameraMove(dolly=0.06, truck=0.04),
    MotionType.I2V: CameraMove(dolly=0.06, truck=0.04),
}


def move_for_plan(plan: MotionPlan) -> CameraMove:
    """The conservative camera move that goes with a Ken Burns plan: push-in dollies in, a pan trucks
    the same way, a tilt cranes, a drift orbits a little (the window path itself is the plan's)."""
    return _MOVES.get(plan.motion_type, CameraMove())


def default_focal(width: int, height: int, hfov: float = DEFAULT_HFOV) -> float:
    """Focal length in pixels for a photo of `width` x `height` with `hfov` degrees across its longer side."""
    return max(width, height) / 2.0 / math.tan(math.radians(hfov) / 2.0)


def reference_inverse_depth(inverse_depth: np.ndarray) -> float:
    """The inverse depth moves are measured against: the 90th percentile of the known (> 0) values,
    i.e. the depth of the *near* part of the scene. Measuring moves against the near content (not the
    median, which a backyard's sky and tree line push far away) keeps the parallax of the nearest
    things - where disocclusions happen - about equal in every photo."""
    inv = np.asarray(inverse_depth, np.float64)
    known = inv[np.isfinite(inv) & (inv > 0)]
    return float(np.percentile(known, 90)) if known.size else 1.0


def normalise_inverse_depth(inverse_depth: np.ndarray, width: int, height: int) -> np.ndarray:
    """Inverse depth (any positive scale; 0 or non-finite = unknown/infinitely far) resized to
    `width` x `height` and scaled so `reference_inverse_depth` is 1, clamped to [0, 3]."""
    inv = np.asarray(inverse_depth, dtype=np.float32)
    if inv.ndim != 2 or inv.size == 0:
        raise ValueError(f"depth must be a 2-D map, got shape {inv.shape}")
    inv = np.where(np.isfinite(inv) & (inv > 0), inv, 0.0).astype(np.float32)
    known = inv[inv > 0]
    if known.size == 0:
        return np.zeros((height, width), np.float32)
    inv = inv / reference_inverse_depth(known)
    if inv.shape != (height, width):
        interp = cv2.INTER_AREA if inv.shape[1] > width else cv2.INTER_LINEAR
        inv = np.asarray(cv2.resize(inv, (width, height), interpolation=interp), np.float32)
    return np.asarray(cv2.medianBlur(np.clip(inv, 0.0, _MAX_INV_DEPTH).astype(np.float32), 3), np.float32)


def _intrinsics(focal: float, img_w: int, img_h: int) -> np.ndarray:
    return np.array([[focal, 0.0, img_w / 2.0], [0.0, focal, img_h / 2.0], [0.0, 0.0, 1.0]])


def _solve_constant(a: np.ndarray, b: np.ndarray, w: float) -> np.ndarray:
    """Source points q (N x 2) of rays `a` (N x 3) for a constant inverse depth `w`."""
    s = (1.0 - w * b[2]) / a[:, 2]
    return s[:, None] * a[:, :2] + w * b[None, :2]


class _Geometry:
    """Window path + camera path: output pixel -> virtual-image point -> ray a, offset b."""

    def __init__(self, rects: tuple[Rect, Rect], plan: MotionPlan, move: CameraMove, K: np.ndarray) -> None:
        self.r0, self.r1 = rects
        self.plan, self.move = plan, move
        self.K, self.K_inv = K, np.linalg.inv(K)

    def at(self, t_norm: float, width: int, height: int) -> tuple[np.ndarray, np.ndarray, Rect]:
        """(G, b, rect): a = G @ [u, v, 1] for output continuous coordinates (u, v); b = K C."""
        e = ease(self.plan.easing, t_norm)
        rect = interpolate_rect(self.r0, self.r1, e)
        x0, y0, w, h = rect
        A = np.array([[w / width, 0.0, x0], [0.0, h / height, y0], [0.0, 0.0, 1.0]])
        R, C = self.move.pose(e)
        H_inv = self.K @ R.T @ self.K_inv
        return H_inv @ A, self.K @ C, rect


def _border_points(width: int, height: int, n: int = 17) -> np.ndarray:
    """Output continuous points along the frame's edge and a coarse interior grid (homogeneous, N x 3)."""
    us = np.linspace(0.0, width, n)
    vs = np.linspace(0.0, height, n)
    uu, vv = np.meshgrid(us, vs)
    pts = np.stack([uu.ravel(), vv.ravel(), np.ones(uu.size)], axis=1)
    return pts


def _border_range(inv: np.ndarray) -> tuple[float, float]:
    """Inverse depths that matter for the border: those near the photo's edge (a tenth of its size),
    robust percentiles (a speck of near depth does not decide the crop)."""
    h, w = inv.shape
    by, bx = max(1, h // 10), max(1, w // 10)
    band = np.concatenate([inv[:by].ravel(), inv[-by:].ravel(), inv[:, :bx].ravel(), inv[:, -bx:].ravel()])
    return float(np.percentile(band, 0.5)), float(np.percentile(band, 99.0))


def _scaled_rects(plan: MotionPlan, zoom: float, img_w: int, img_h: int, aspect: float) -> tuple[Rect, Rect]:
    def scale(v: Viewport) -> Viewport:
        return Viewport(v.cx, v.cy, max(v.zoom, 1.0) * zoom)

    return (
        viewport_rect(scale(plan.start), img_w, img_h, aspect),
        viewport_rect(scale(plan.end), img_w, img_h, aspect),
    )


def _path_extent(geo: _Geometry, width: int, height: int, w_range: tuple[float, float]) -> tuple[float, float]:
    """Over the clip: (how far outside the photo any output point maps, worst parallax spread in
    photo pixels), for constant inverse depths at both ends of `w_range`."""
    pts = _border_points(width, height)
    img_w, img_h = geo.K[0, 2] * 2.0, geo.K[1, 2] * 2.0
    outside, spread = -math.inf, 0.0
    for t in np.linspace(0.0, 1.0, 9):
        G, b, _ = geo.at(float(t), width, height)
        a = pts @ G.T
        q_near, q_far = _solve_constant(a, b, w_range[1]), _solve_constant(a, b, w_range[0])
        for q in (q_near, q_far):
            over = max(-q[:, 0].min(), -q[:, 1].min(), q[:, 0].max() - img_w, q[:, 1].max() - img_h)
            outside = max(outside, float(over))
        spread = max(spread, float(np.abs(q_near - q_far).max()))
    return outside, spread


def safe_zoom(
    plan: MotionPlan,
    move: CameraMove,
    K: np.ndarray,
    img_w: int,
    img_h: int,
    width: int,
    height: int,
    w_range: tuple[float, float],
) -> float:
    """The smallest extra zoom (>= 1) of both windows for which no output pixel leaves the photo."""
    aspect = width / height

    def fits(z: float) -> bool:
        geo = _Geometry(_scaled_rects(plan, z, img_w, img_h, aspect), plan, move, K)
        return _path_extent(geo, width, height, w_range)[0] <= -1.0  # one pixel inside

    if move.is_static or fits(1.0):
        return 1.0
    lo, hi = 1.0, 1.05
    while not fits(hi) and hi < 3.0:
        lo, hi = hi, hi * 1.1
    for _ in range(14):
        mid = 0.5 * (lo + hi)
        lo, hi = (lo, mid) if fits(mid) else (mid, hi)
    return hi


def _fill_from_background(rgb: np.ndarray, known: np.ndarray) -> np.ndarray:
    """Colour for unknown pixels from known ones only (push-pull: a weighted image pyramid down, then
    filled up from the coarsest level), so a foreground object never bleeds into the fill."""
    weight = known.astype(np.float32)
    num = rgb.astype(np.float32) * weight[..., None]
    levels: list[tuple[np.ndarray, np.ndarray]] = [(num, weight)]
    while min(levels[-1][1].shape) > 8:
        n, d = levels[-1]
        levels.append((np.asarray(cv2.pyrDown(n)), np.asarray(cv2.pyrDown(d))))
    n, d = levels[-1]
    total = float(d.sum())
    mean = n.reshape(-1, 3).sum(axis=0) / total if total > 0 else np.full(3, 128.0, np.float32)
    colour = np.where(d[..., None] > 1e-3, n / np.maximum(d, 1e-3)[..., None], mean).astype(np.float32)
    for n, d in reversed(levels[:-1]):
        up = cv2.pyrUp(colour, dstsize=(d.shape[1], d.shape[0]))
        conf = np.clip(d * 4.0, 0.0, 1.0)[..., None]
        colour = (conf * (n / np.maximum(d, 1e-3)[..., None]) + (1.0 - conf) * up).astype(np.float32)
    return np.where(known[..., None], rgb.astype(np.float32), colour).astype(np.float32)


class _DepthLayers:
    """The depth of one clip at its working resolution (`k` depth pixels per photo pixel), and the
    background layer that fills disocclusions."""

    def __init__(self, rgb: np.ndarray, inv: np.ndarray, k: float, radius: int) -> None:
        h, w = inv.shape
        self.k = k
        self.fg = inv
        r = max(1, radius)
        # Rectangular kernels: separable, so their cost does not grow with the radius.
        self.near = cv2.dilate(inv, np.ones((2 * r + 1, 2 * r + 1), np.uint8))  # nearest around: solve start
        far = cv2.erode(inv, np.ones((4 * r + 3, 4 * r + 3), np.uint8))
        band = inv > far * (1.0 + _EDGE_STEP) + 1e-3
        bg = np.where(band, far, inv).astype(np.float32)
        self.bg = cv2.GaussianBlur(bg, (0, 0), max(1.0, r / 2.0))
        small = cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA)
        self.bg_rgb = _fill_from_background(small, ~band)
        self.has_edges = bool(band.any())

    def sample(self, layer: np.ndarray, qx: np.ndarray, qy: np.ndarray) -> np.ndarray:
        mx = qx * self.k - 0.5
        my = qy * self.k - 0.5
        return cv2.remap(layer, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def _iterate(
    layers: _DepthLayers,
    layer: np.ndarray,
    start: np.ndarray,
    ax: np.ndarray,
    ay: np.ndarray,
    az: np.ndarray,
    b: np.ndarray,
    iters: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fixed-point solve q = s(w(q)) a + w(q) b from inverse depth `start`; returns (qx, qy, last step)."""
    w = start
    qx = qy = ax
    step = np.zeros_like(ax)
    bx, by, bz = float(b[0]), float(b[1]), float(b[2])  # Python floats: keep the arithmetic in float32
    inv_az = 1.0 / az
    for i in range(iters):
        s = (1.0 - w * bz) * inv_az
        nx = s * ax + w * bx
        ny = s * ay + w * by
        if i:
            step = np.maximum(np.abs(nx - qx), np.abs(ny - qy))
        qx, qy = nx, ny
        if i < iters - 1:
            w = layers.sample(layer, qx, qy)
    return qx, qy, step


class ParallaxCamera:
    """The camera path of one clip over one photo + depth, prepared once and sampled per frame
    (mirrors `KenBurnsCamera`).

    `rgb`: HxW(x3|x4) uint8 photo. `inverse_depth`: inverse depth of any resolution and scale (0 =
    unknown / far), see `normalise_inverse_depth`. `plan`: the clip's Ken Burns plan (framing, easing).
    `move`: the camera's travel (default: `move_for_plan(plan)`). `focal_px`: the photo's focal length in
    its own pixels (default: `default_focal`, 74 degrees across the long side).
    """

    def __init__(
        self,
        rgb: np.ndarray,
        inverse_depth: np.ndarray,
        plan: MotionPlan,
        width: int,
        height: int,
        *,
        move: CameraMove | None = None,
        focal_px: float | None = None,
    ) -> None:
        if width <= 0 or height <= 0:
            raise ValueError(f"output size must be positive, got {width}x{height}")
        photo = _as_rgb(rgb)
        img_h, img_w = photo.shape[:2]
        self.width, self.height = width, height
        self.move = move if move is not None else move_for_plan(plan)
        focal = focal_px if focal_px is not None else default_focal(img_w, img_h)
        K = _intrinsics(focal, img_w, img_h)
        # Depth working resolution: a little finer than the output grid over the smallest window.
        probe = _scaled_rects(plan, 1.0, img_w, img_h, width / height)
        w_min = min(probe[0][2], probe[1][2])
        k = min(1.0, 1.5 * (width / _GRID) / w_min, math.sqrt(_MAX_DEPTH_PIXELS / (img_w * img_h)))
        dw, dh = max(8, round(img_w * k)), max(8, round(img_h * k))
        inv = normalise_inverse_depth(inverse_depth, dw, dh)
        w_range = (float(np.percentile(inv, 0.5)), float(np.percentile(inv, 99.5)))
        self.zoom = safe_zoom(plan, self.move, K, img_w, img_h, width, height, _border_range(inv))
        rects = _scaled_rects(plan, self.zoom, img_w, img_h, width / height)
        self.geometry = _Geometry(rects, plan, self.move, K)
        _, spread = _path_extent(self.geometry, width, height, w_range)
        radius = min(_MAX_RADIUS, math.ceil(spread * dw / img_w) + 2)
        self.layers = _DepthLayers(photo, inv, dw / img_w, radius)
        # The photo resampled once, exactly as Ken Burns does for the same (safety-zoomed) windows.
        zoomed = replace(
            plan,
            start=Viewport(plan.start.cx, plan.start.cy, max(plan.start.zoom, 1.0) * self.zoom),
            end=Viewport(plan.end.cx, plan.end.cy, max(plan.end.zoom, 1.0) * self.zoom),
        )
        kb = KenBurnsCamera(photo, zoomed, width, height)
        self.src, self.fx, self.fy = kb.src, kb.fx, kb.fy
        self.img_w, self.img_h = img_w, img_h
        # Coarse grid: node j sits at output continuous coordinate (j + 0.5) * _GRID - 0.5 * _GRID ...
        # i.e. one node per _GRID pixels plus one beyond each edge, upsampled by one affine warp.
        gw, gh = math.ceil(width / _GRID) + 2, math.ceil(height / _GRID) + 2
        self.gu = ((np.arange(gw, dtype=np.float64) - 1.0 + 0.5) * _GRID)[None, :]
        self.gv = ((np.arange(gh, dtype=np.float64) - 1.0 + 0.5) * _GRID)[:, None]
        # Output pixel index (x, y) -> grid index: (x + 0.5) / _GRID - 0.5 + 1.
        g = 1.0 / _GRID
        self.up = np.array([[g, 0.0, 0.5 * g - 0.5 + 1.0], [0.0, g, 0.5 * g - 0.5 + 1.0]], np.float32)
        self._full: np.ndarray | None = None  # the full-resolution map buffer (one render at a time)

    def rect_at(self, t_norm: float) -> Rect:
        """The output window (x0, y0, w, h) on the virtual camera's image, in photo pixels."""
        return self.geometry.at(t_norm, self.width, self.height)[2]

    def _rays(self, t_norm: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float]:
        G, b, rect = self.geometry.at(t_norm, self.width, self.height)
        ax = (G[0, 0] * self.gu + G[0, 1] * self.gv + G[0, 2]).astype(np.float32)
        ay = (G[1, 0] * self.gu + G[1, 1] * self.gv + G[1, 2]).astype(np.float32)
        az = (G[2, 0] * self.gu + G[2, 1] * self.gv + G[2, 2]).astype(np.float32)
        return ax, ay, az, b, rect[2] / self.width

    def maps(self, t_norm: float) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        """Coarse-grid backward maps at `t_norm`: (foreground map, in photo pixels, gh x gw x 2; hole
        alpha 0..1 or None; background colour at the holes or None)."""
        ax, ay, az, b, px_per_out = self._rays(t_norm)
        L = self.layers
        qx, qy, step = _iterate(L, L.fg, L.sample(L.near, ax / az, ay / az), ax, ay, az, b, _FG_ITERS)
        hole = step > _CONVERGED_PX * px_per_out
        fg = np.dstack([qx, qy])
        if not (L.has_edges and hole.any()):
            return fg, None, None
        bx, by, _ = _iterate(L, L.bg, L.sample(L.bg, ax / az, ay / az), ax, ay, az, b, _BG_ITERS)
        alpha = cv2.GaussianBlur(cv2.dilate(hole.astype(np.float32), np.ones((3, 3), np.uint8)), (3, 3), 0)
        return fg, np.asarray(alpha), L.sample(L.bg_rgb, bx, by)

    def render(self, t_norm: float, dst: np.ndarray | None = None) -> np.ndarray:
        """The output frame at `t_norm` (0 = first frame, 1 = last)."""
        fg, alpha, bg_rgb = self.maps(t_norm)
        # photo pixels -> src pixel indices, then upsample the grid to the output.
        fg[..., 0] = fg[..., 0] * self.fx - 0.5
        fg[..., 1] = fg[..., 1] * self.fy - 0.5
        size = (self.width, self.height)
        full = self._full = _upsample(fg, self.up, size, self._full)  # reused: no 16 MB page-in per frame
        out = np.asarray(
            cv2.remap(self.src, full, None, cv2.INTER_LINEAR, dst=dst, borderMode=cv2.BORDER_REFLECT_101)  # type: ignore[call-overload]
        )
        if alpha is not None and bg_rgb is not None:
            _blend_holes(out, alpha, bg_rgb, self.up, size)
        return out


def _grid_box(grid: np.ndarray, up: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """The grid upsampled (bilinear) over the output pixels box = (x0, y0, x1, y1)."""
    x0, y0, x1, y1 = box
    M = up.copy()
    M[0, 2] += M[0, 0] * x0
    M[1, 2] += M[1, 1] * y0
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    return np.asarray(cv2.warpAffine(grid, M, (x1 - x0, y1 - y0), flags=flags, borderMode=cv2.BORDER_REPLICATE))


def _upsample(grid: np.ndarray, up: np.ndarray, size: tuple[int, int], dst: np.ndarray | None = None) -> np.ndarray:
    """The coarse map (one node beyond each edge) upsampled to the output. When the output is a whole
    number of nodes, the inner nodes sit exactly where `cv2.resize` samples (several times faster than
    an affine warp); only the outer half-node strips, where resize would clamp, are warped."""
    width, height = size
    g = round(1.0 / float(up[0, 0]))
    if width % g or height % g or (grid.shape[1] - 2) * g != width or (grid.shape[0] - 2) * g != height:
        return _grid_box(grid, up, (0, 0, width, height))
    inner = np.ascontiguousarray(grid[1:-1, 1:-1])
    full = np.asarray(cv2.resize(inner, size, dst=dst, interpolation=cv2.INTER_LINEAR))
    b = g // 2 + 1
    full[:b] = _grid_box(grid, up, (0, 0, width, b))
    full[height - b :] = _grid_box(grid, up, (0, height - b, width, height))
    full[:, :b] = _grid_box(grid, up, (0, 0, b, height))
    full[:, width - b :] = _grid_box(grid, up, (width - b, 0, width, height))
    return full


#: Hole blending works on tiles of this many grid nodes square (runs of them along a tile row merged).
_TILE = 2


def _active_runs(active: np.ndarray) -> Iterator[tuple[int, int, int]]:
    """(tile row, first tile column, end tile column) of each horizontal run of tiles holding a hole."""
    gh, gw = active.shape
    th, tw = -(-gh // _TILE), -(-gw // _TILE)
    padded = np.zeros((th * _TILE, tw * _TILE), bool)
    padded[:gh, :gw] = active
    tiles = np.any(padded.reshape(th, _TILE, tw, _TILE), axis=(1, 3))
    edges = np.diff(np.pad(tiles.astype(np.int8), ((0, 0), (1, 1))), axis=1)
    for r in np.flatnonzero(np.any(tiles, axis=1)):
        starts, ends = np.flatnonzero(edges[r] == 1), np.flatnonzero(edges[r] == -1)
        for c0, c1 in zip(starts, ends, strict=True):
            yield int(r), int(c0), int(c1)


def _blend_holes(out: np.ndarray, alpha: np.ndarray, bg_rgb: np.ndarray, up: np.ndarray, size: tuple[int, int]) -> None:
    """Blend the background colour into `out` where the (coarse) hole alpha is set, in place.

    Grid cell j (between nodes j and j + 1) owns the output pixels [(j - 0.5) g, (j + 0.5) g) along
    each axis, whose bilinear alpha depends on those two nodes only; cells touching a hole node are
    blended, in runs of `_TILE` x `_TILE` cells, each pixel exactly once."""
    g = round(1.0 / float(up[0, 0]))
    active = alpha > 1e-3
    cells = active[:-1, :-1] | active[1:, :-1] | active[:-1, 1:] | active[1:, 1:]
    colour = np.clip(bg_rgb + 0.5, 0, 255).astype(np.uint8)
    half = g // 2
    for r, c0, c1 in _active_runs(cells):
        x0, x1 = max(0, c0 * _TILE * g - half), min(size[0], c1 * _TILE * g - half)
        y0, y1 = max(0, r * _TILE * g - half), min(size[1], (r + 1) * _TILE * g - half)
        if x1 > x0 and y1 > y0:
            _blend_box(out, alpha, colour, up, (x0, y0, x1, y1))


def _blend_box(
    out: np.ndarray, alpha: np.ndarray, colour: np.ndarray, up: np.ndarray, box: tuple[int, int, int, int]
) -> None:
    x0, y0, x1, y1 = box
    a = _grid_box(alpha, up, box)
    c = _grid_box(colour, up, box)
    region = out[y0:y1, x0:x1]
    region[...] = cv2.blendLinear(region, c, 1.0 - a, a)


def frame_at(
    rgb: np.ndarray,
    inverse_depth: np.ndarray,
    plan: MotionPlan,
    t_norm: float,
    width: int,
    height: int,
    *,
    move: CameraMove | None = None,
    focal_px: float | None = None,
) -> np.ndarray:
    """One frame at normalised time `t_norm`; identical to what `render_parallax` encodes there."""
    return ParallaxCamera(rgb, inverse_depth, plan, width, height, move=move, focal_px=focal_px).render(t_norm)


def render_parallax_frames(
    camera: ParallaxCamera, n_frames: int, *, cancel: threading.Event | None = None
) -> Iterator[np.ndarray]:
    """Every frame of an `n_frames` clip, in order (new arrays), without encoding; honours `cancel`."""
    for i in range(n_frames):
        check_cancelled(cancel)
        yield camera.render(frame_t_norm(i, n_frames))


def render_parallax(
    rgb: np.ndarray,
    inverse_depth: np.ndarray,
    plan: MotionPlan,
    out_path: Path,
    *,
    width: int = 1920,
    height: int = 1080,
    fps: int = 30,
    duration: float,
    preset: str = "veryfast",
    crf: int = 18,
    move: CameraMove | None = None,
    focal_px: float | None = None,
    progress: Callable[[int, int], None] | None = None,
    cancel: threading.Event | None = None,
) -> RenderStats:
    """Render a depth-parallax clip of exactly round(duration * fps) frames to `out_path` (H.264 mp4).

    Same contract as `kenburns.render_ken_burns` (atomic file, `progress(done, total)` after every
    frame, a render thread ahead of the encoder), plus `inverse_depth` (see `ParallaxCamera`), the
    camera `move` and the photo's `focal_px`. `cancel`: when set, rendering stops before the next frame
    and `RenderCancelled` is raised; no file is left at `out_path`.
    """
    started = time.perf_counter()
    check_cancelled(cancel)
    camera = ParallaxCamera(rgb, inverse_depth, plan, width, height, move=move, focal_px=focal_px)
    return encode_camera(
        camera,
        out_path,
        n_frames=frame_count(duration, fps),
        fps=fps,
        preset=preset,
        crf=crf,
        progress=progress,
        cancel=cancel,
        started=started,
    )
