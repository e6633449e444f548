"""Synthetic listings: photos of a house that does not exist, and a track with a known beat grid.

The classical-CV stages of the pipeline (grouping photos into rooms by feature matching, telling
exteriors from interiors, beat tracking) need inputs whose right answers are known, and real listing
photos cannot be shipped with the code. So this module *renders* a listing instead of drawing flat
pictures: every room is a textured 3-D box with furniture, photographed from several positions with a
pinhole camera. Views of one room are therefore related by real perspective (ORB + RANSAC links them
the way it links real photos), while different rooms share only their style. The music is synthesised
on a sample-exact beat grid, so the beat times written to ``ground_truth.json`` are exact.

Everything is deterministic for a given seed and size, and a room renders identically whether or not
the other rooms are generated with it. Nothing here reads any file.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import tempfile
import zlib
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import soundfile as sf
from scipy import signal

from app.media.ffmpeg import run_ffmpeg

__all__ = [
    "DEPTH_PNG_SCALE",
    "ROOM_GROUPS",
    "ROOM_LABELS",
    "SampleListing",
    "TrueView",
    "make_sample_listing",
    "render_true_frames",
    "synthesize_music",
]

#: Room groups of the default listing, in ground-truth order. Two bedrooms share the label "bedroom".
ROOM_GROUPS: tuple[str, ...] = ("exterior", "living_room", "kitchen", "bedroom_a", "bedroom_b", "bathroom", "outdoor")
#: Room labels (folder names under ``photos/``).
ROOM_LABELS: tuple[str, ...] = ("exterior", "living_room", "kitchen", "bedroom", "bathroom", "outdoor")


@dataclass(frozen=True)
class _GroupSpec:
    group: str
    label: str
    views: int
    #: 1-based view rendered in portrait orientation (the listing has exactly one), or 0.
    portrait_view: int = 0


_GROUP_SPECS: dict[str, _GroupSpec] = {
    "exterior": _GroupSpec("exterior", "exterior", 2),
    "living_room": _GroupSpec("living_room", "living_room", 3),
    "kitchen": _GroupSpec("kitchen", "kitchen", 3),
    "bedroom_a": _GroupSpec("bedroom_a", "bedroom", 2),
    "bedroom_b": _GroupSpec("bedroom_b", "bedroom", 2),
    "bathroom": _GroupSpec("bathroom", "bathroom", 2, portrait_view=2),
    "outdoor": _GroupSpec("outdoor", "outdoor", 1),
}

_JPEG_QUALITY = 90
#: When the first beat of the synthesised track falls (a short pad swell comes before it).
_FIRST_BEAT = 0.35
#: Texture density (pixels per metre) used for a 1600-pixel-wide photo; scaled with the photo size so a
#: thumbnail-sized listing does not pay for textures it cannot show.
_BASE_PPM = 260.0

F32 = np.float32
Color = tuple[float, float, float]
#: A colour or a 3-vector: a tuple or a numpy array.
Vec = Sequence[float] | np.ndarray
#: Makes a texture of (width, height) pixels for one face; closures capture their rng and style.
Material = Callable[[int, int], np.ndarray]


# =============================================================================================
# public API
# =============================================================================================


@dataclass(frozen=True)
class SampleListing:
    """What `make_sample_listing` wrote. Paths are absolute; ``ground_truth`` is the JSON's content."""

    out_dir: Path
    photos_dir: Path
    music_path: Path
    ground_truth: dict[str, Any]
    ground_truth_path: Path

    @property
    def photo_paths(self) -> list[Path]:
        """Every photo, in ground-truth order."""
        return [self.out_dir / p["file"] for p in self.ground_truth["photos"]]


def make_sample_listing(
    out_dir: Path,
    *,
    width: int = 1600,
    height: int = 1067,
    music_seconds: float = 40.0,
    bpm: float = 112.0,
    seed: int = 7,
    rooms: Sequence[str] | None = None,
    workers: int | None = None,
    depth: bool = False,
) -> SampleListing:
    """Render a synthetic listing into `out_dir` and return where everything is.

    Writes ``photos/<room_label>/<group>_view<N>.jpg`` (landscape `width` x `height`, except the
    second bathroom view, which is portrait `height` x `width`), ``music.wav`` (stereo, 16-bit, 44.1 kHz,
    `bpm` with its first beat at 0.35 s) and ``ground_truth.json``.

    `rooms` picks a subset of `ROOM_GROUPS` (default: all of them). Each room depends only on
    (`seed`, room, size), so a subset renders exactly the photos the full listing would.
    `workers` caps the worker processes (default: CPU count, at most 4); 1 renders in this process.
    Files of the same name are overwritten; nothing else in `out_dir` is touched.

    `depth` also writes each photo's TRUE depth next to it as ``<group>_view<N>.depth.png`` (16-bit,
    millimetres along the optical axis, 0 = nothing hit; read it with `app.media.depth_io`) and adds
    ``depth_file`` and ``focal_px`` to its ground-truth entry. Off by default: the photo folder
    scanner would otherwise list the sidecars as photos. The photos are identical either way.
    """
    if width < 64 or height < 64:
        raise ValueError(f"photo size {width}x{height} is too small (minimum 64x64)")
    groups = list(ROOM_GROUPS) if rooms is None else list(dict.fromkeys(rooms))
    unknown = [g for g in groups if g not in _GROUP_SPECS]
    if unknown:
        raise ValueError(f"unknown room groups {unknown}; choose from {list(ROOM_GROUPS)}")
    if not groups:
        raise ValueError(f"no room groups chosen; choose from {list(ROOM_GROUPS)}")
    groups.sort(key=ROOM_GROUPS.index)
    _check_music_args(".wav", bpm, music_seconds, _FIRST_BEAT)  # fail before spending time on photos

    out_dir = Path(out_dir).resolve()
    photos_dir = out_dir / "photos"
    photos_dir.mkdir(parents=True, exist_ok=True)
    music_path = out_dir / "music.wav"
    jobs = [(_GROUP_SPECS[g], seed, width, height, str(photos_dir), depth) for g in groups]

    n_workers = min(workers if workers is not None else min(os.cpu_count() or 1, 4), len(jobs) + 1)
    if n_workers <= 1:
        results = [_render_group(*job) for job in jobs]
        music = synthesize_music(music_path, bpm=bpm, seconds=music_seconds, seed=seed)
    else:
        # spawn, never fork: a caller that already used OpenCV (or any threaded library) holds thread
        # pools whose locks a forked child inherits mid-use; its first cv2 call then deadlocks.
        with ProcessPoolExecutor(
            max_workers=n_workers, mp_context=multiprocessing.get_context("spawn"), initializer=_worker_init
        ) as pool:
            # The slowest jobs first, so two workers finish together.
            order = sorted(range(len(jobs)), key=lambda i: -_GROUP_COST[jobs[i][0].group])
            futures: dict[int, Future[list[dict[str, Any]]]] = {i: pool.submit(_render_group, *jobs[i]) for i in order}
            music_future = pool.submit(synthesize_music, music_path, bpm=bpm, seconds=music_seconds, seed=seed)
            results = [futures[i].result() for i in range(len(jobs))]
            music = music_future.result()

    photos = [entry for group_entries in results for entry in group_entries]
    room_groups: dict[str, list[str]] = {}
    for entry in photos:
        room_groups.setdefault(entry["room_group"], []).append(entry["file"])
    ground_truth: dict[str, Any] = {
        "generator": "app.samples",
        "seed": seed,
        "photos": photos,
        "room_groups": room_groups,
        "music": music,
    }
    gt_path = out_dir / "ground_truth.json"
    gt_path.write_text(json.dumps(ground_truth, indent=2) + "\n", encoding="utf-8")
    return SampleListing(
        out_dir=out_dir,
        photos_dir=photos_dir,
        music_path=music_path,
        ground_truth=ground_truth,
        ground_truth_path=gt_path,
    )


#: Rough relative render cost, to schedule the slow rooms first.
_GROUP_COST = {
    "exterior": 3,
    "living_room": 4,
    "kitchen": 4,
    "bedroom_a": 2,
    "bedroom_b": 2,
    "bathroom": 2,
    "outdoor": 1,
}


def _worker_init() -> None:
    # Each worker is one of several processes sharing the cores: no nested thread pools.
    cv2.setNumThreads(1)


def _rng(seed: int, *names: str) -> np.random.Generator:
    """A generator that depends only on `seed` and `names` (crc32, not the salted built-in hash)."""
    return np.random.default_rng(np.random.SeedSequence([seed & 0xFFFFFFFF, *(zlib.crc32(n.encode()) for n in names)]))


def _render_group(
    spec: _GroupSpec, seed: int, width: int, height: int, photos_dir: str, depth: bool = False
) -> list[dict[str, Any]]:
    """Build one room's scene, photograph each of its views and return the ground-truth entries."""
    faces, poses, scale = _room_scene(spec, seed, width, height)
    folder = Path(photos_dir) / spec.label
    folder.mkdir(parents=True, exist_ok=True)
    entries: list[dict[str, Any]] = []
    for i, pose in enumerate(poses[: spec.views], start=1):
        cam = _view_camera(spec, pose, i, width, height)
        w, h = cam.width, cam.height
        view_rng = _rng(seed, "view", spec.group, str(i))
        linear, inv_z = _render(faces, cam, pose.background, with_depth=True)
        img = _develop(linear, view_rng, scale, outdoor=pose.outdoor)
        name = f"{spec.group}_view{i}.jpg"
        path = folder / name
        if not cv2.imwrite(str(path), cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, _JPEG_QUALITY]):
            raise OSError(f"could not write {path}")
        entry: dict[str, Any] = {
            "file": f"photos/{spec.label}/{name}",
            "room_label": spec.label,
            "room_group": spec.group,
            "is_exterior": spec.label in ("exterior", "outdoor"),
            "view": i,
            "width": w,
            "height": h,
            "orientation": "portrait" if h > w else "landscape",
        }
        if depth:
            depth_name = f"{spec.group}_view{i}.depth.png"
            _write_depth_png(folder / depth_name, inv_z)
            entry["depth_file"] = f"photos/{spec.label}/{depth_name}"
            entry["focal_px"] = round(cam.focal(), 4)
        entries.append(entry)
    return entries


def _room_scene(spec: _GroupSpec, seed: int, width: int, height: int) -> tuple[list[_Face], list[_Pose], float]:
    """One room's faces (lit, mip-mapped) and camera poses, and the texture scale of the listing size."""
    rng = _rng(seed, "room", spec.group)
    scale = max(width, height) / 1600.0
    style = _listing_style(seed, spec.group)
    faces, poses = _SCENES[spec.group](rng, scale, style, spec.views)
    return faces, poses, scale


def _view_camera(spec: _GroupSpec, pose: _Pose, view: int, width: int, height: int) -> _Camera:
    w, h = (height, width) if view == spec.portrait_view else (width, height)
    return _Camera(pos=pose.pos, yaw=pose.yaw, pitch=pose.pitch, width=w, height=h, hfov=pose.hfov)


#: Sidecar depth: 16-bit PNG of metric depth along the optical axis (z, not range) in millimetres;
#: 0 = no depth (nothing hit: treated as infinitely far). See `app.media.depth_io`.
DEPTH_PNG_SCALE = 1000.0


def _write_depth_png(path: Path, inv_z: np.ndarray) -> None:
    with np.errstate(divide="ignore"):
        z_mm = np.where(inv_z > 0, DEPTH_PNG_SCALE / np.maximum(inv_z, 1e-9), 0.0)
    if not cv2.imwrite(str(path), np.clip(np.round(z_mm), 0, 65535).astype(np.uint16)):
        raise OSError(f"could not write {path}")


@dataclass(frozen=True)
class TrueView:
    """A sample photo's ground truth for parallax: the developed photo, its true inverse depth (1/m,
    0 = nothing hit), its focal length in pixels, and `frames` rendered by the same renderer with the
    camera moved (see `render_true_frames`)."""

    photo: np.ndarray
    inverse_depth: np.ndarray
    focal_px: float
    frames: list[np.ndarray]


def render_true_frames(
    group: str,
    moves: Sequence[tuple[np.ndarray, np.ndarray]],
    *,
    seed: int = 7,
    width: int = 1600,
    height: int = 1067,
    view: int = 1,
) -> TrueView:
    """Render view `view` of room `group` (exactly the photo `make_sample_listing` writes, with the
    same arguments) and the TRUE frames of a camera path over the same room.

    `moves`: per frame (R, C) in the photo camera's coordinates (x right, y down, z forward; C in
    metres): R rotates photo-camera coordinates into the moved camera's, C is the moved camera's
    centre. Frames are developed like the photo (same exposure, white balance, highlight roll-off,
    vignetting and softness) but without sensor noise, so they are the clean truth.
    """
    if group not in _GROUP_SPECS:
        raise ValueError(f"unknown room group {group!r}; choose from {list(ROOM_GROUPS)}")
    spec = _GROUP_SPECS[group]
    faces, poses, scale = _room_scene(spec, seed, width, height)
    if not 1 <= view <= min(spec.views, len(poses)):
        raise ValueError(f"room {group!r} has views 1..{spec.views}")
    pose = poses[view - 1]
    cam = _view_camera(spec, pose, view, width, height)
    linear, inv_z = _render(faces, cam, pose.background, with_depth=True)
    view_rng = _rng(seed, "view", spec.group, str(view))
    gain = _exposure(linear, view_rng, outdoor=pose.outdoor)
    photo = _finish(linear, gain, view_rng, scale)
    R0 = cam.rotation()
    frames = []
    for R, C in moves:
        moved = _MovedCamera(cam, R0.T @ np.asarray(C, float), np.asarray(R, float) @ R0)
        frames.append(_finish(_render(faces, moved, pose.background), gain, None, scale))
    return TrueView(photo=photo, inverse_depth=inv_z, focal_px=cam.focal(), frames=frames)


@dataclass(frozen=True)
class _MovedCamera:
    """A `_Camera` displaced by `offset` (world metres) with world-to-camera rotation `R`."""

    base: _Camera
    offset: np.ndarray
    R: np.ndarray

    @property
    def width(self) -> int:
        return self.base.width

    @property
    def height(self) -> int:
        return self.base.height

    @property
    def pos(self) -> tuple[float, float, float]:
        p = np.asarray(self.base.pos, float) + self.offset
        return float(p[0]), float(p[1]), float(p[2])

    def rotation(self) -> np.ndarray:
        return self.R

    def focal(self) -> float:
        return self.base.focal()


# =============================================================================================
# rendering: textured planar polygons, pinhole camera, z-buffer, trilinear mip-mapping
# =============================================================================================


@dataclass(frozen=True)
class _Light:
    """A point light at `pos`, or (``pos is None``) a directional light coming from `direction`."""

    power: float
    color: tuple[float, float, float] = (1.0, 1.0, 1.0)
    pos: tuple[float, float, float] | None = None
    direction: tuple[float, float, float] | None = None
    #: Distance (m) over which a point light keeps most of its power; softens the 1/d^2 falloff.
    reach: float = 2.0


@dataclass
class _Face:
    """A planar polygon carrying a texture.

    Texture pixel (x, y) of a (h, w) texture sits at ``origin + (x / w) * u + (y / h) * v`` in the world
    (metres, y up). Textures are authored upright as seen from the visible side, so ``u x v`` is the
    visible side's normal. `poly` is the outline in (u, v) units, the unit square when None; a `wrap`
    face repeats its texture, so its outline may span many tiles.
    """

    origin: np.ndarray
    u: np.ndarray
    v: np.ndarray
    texture: np.ndarray
    poly: np.ndarray | None = None
    wrap: bool = False
    two_sided: bool = False
    emissive: np.ndarray | None = None
    #: Room surfaces: darkened near their edges (a cheap ambient-occlusion look in corners).
    shell: bool = False
    #: Shown exactly as authored, untouched by the lights: the sky.
    unlit: bool = False
    mips: list[np.ndarray] = field(default_factory=list)

    def normal(self) -> np.ndarray:
        n = np.cross(self.u, self.v)
        return np.asarray(n / np.linalg.norm(n))

    def corners(self) -> np.ndarray:
        poly = self.poly if self.poly is not None else np.array([[0, 0], [1, 0], [1, 1], [0, 1]], float)
        return np.asarray(self.origin[None, :] + poly[:, :1] * self.u[None, :] + poly[:, 1:] * self.v[None, :])


def _face(origin: Vec, u: Vec, v: Vec, texture: np.ndarray, **kw: Any) -> _Face:
    return _Face(np.asarray(origin, float), np.asarray(u, float), np.asarray(v, float), texture, **kw)


@dataclass(frozen=True)
class _Camera:
    pos: tuple[float, float, float]
    yaw: float  # degrees; positive turns toward +x
    pitch: float  # degrees; positive looks up
    width: int
    height: int
    hfov: float = 74.0  # degrees across the longer image side

    def rotation(self) -> np.ndarray:
        """World-to-camera rotation; camera axes are x right, y down, z forward (OpenCV)."""
        yaw, pitch = math.radians(self.yaw), math.radians(self.pitch)
        fwd = np.array([math.sin(yaw) * math.cos(pitch), math.sin(pitch), math.cos(yaw) * math.cos(pitch)])
        right = np.cross([0.0, 1.0, 0.0], fwd)
        right /= np.linalg.norm(right)
        down = np.cross(right, fwd)
        return np.stack([right, down, fwd])

    def focal(self) -> float:
        return max(self.width, self.height) / 2.0 / math.tan(math.radians(self.hfov) / 2.0)


@dataclass(frozen=True)
class _Pose:
    pos: tuple[float, float, float]
    yaw: float
    pitch: float
    hfov: float = 74.0
    background: tuple[float, float, float] = (0.0, 0.0, 0.0)
    outdoor: bool = False


_NEAR = 0.05


def _clip(points: np.ndarray, planes: Sequence[tuple[np.ndarray, float]]) -> np.ndarray:
    """Sutherland-Hodgman clipping of a convex-or-not polygon against half-spaces ``a.x + b >= 0``."""
    for a, b in planes:
        if len(points) == 0:
            break
        d = points @ a + b
        out: list[np.ndarray] = []
        n = len(points)
        for i in range(n):
            j = (i + 1) % n
            pi, pj, di, dj = points[i], points[j], d[i], d[j]
            if di >= 0:
                out.append(pi)
            if (di >= 0) != (dj >= 0):
                out.append(pi + (pj - pi) * (di / (di - dj)))
        points = np.array(out) if out else np.zeros((0, 3))
    return points


def _render(faces: Sequence[_Face], cam: Any, background: tuple[float, float, float], with_depth: bool = False) -> Any:
    """Rasterise `faces` as seen by `cam`; returns a float32 RGB image (0..255, may exceed 255), and
    with `with_depth` also the z-buffer: inverse depth along the optical axis (1/m, 0 = nothing hit)."""
    W, H = cam.width, cam.height
    img = np.empty((H, W, 3), F32)
    img[:] = background
    zbuf = np.zeros((H, W), F32)  # inverse depth; 0 is infinitely far
    R = cam.rotation()
    C = np.asarray(cam.pos, float)
    f = cam.focal()
    cx, cy = (W - 1) / 2.0, (H - 1) / 2.0
    m = 2.0  # pixels of margin beyond the frame
    planes = [
        (np.array([0.0, 0.0, 1.0]), -_NEAR),
        (np.array([f, 0.0, cx + m]), 0.0),
        (np.array([-f, 0.0, W - 1 - cx + m]), 0.0),
        (np.array([0.0, f, cy + m]), 0.0),
        (np.array([0.0, -f, H - 1 - cy + m]), 0.0),
    ]
    K = np.array([[f, 0, cx], [0, f, cy], [0, 0, 1]])
    # Front to back, so hidden faces fail the depth test before their texture is warped.
    order = sorted(faces, key=lambda fc: float(np.min(np.linalg.norm(fc.corners() - C, axis=1))))
    for face in order:
        _draw_face(img, zbuf, face, R, C, K, planes)
    return (img, zbuf) if with_depth else img


def _draw_face(
    img: np.ndarray,
    zbuf: np.ndarray,
    face: _Face,
    R: np.ndarray,
    C: np.ndarray,
    K: np.ndarray,
    planes: Sequence[tuple[np.ndarray, float]],
) -> None:
    n_w = face.normal()
    facing = float(np.dot(C - face.origin, n_w))
    if not face.two_sided and facing <= 1e-9:
        return
    cam_pts = _clip((face.corners() - C) @ R.T, planes)
    if len(cam_pts) < 3:
        return
    f, cx, cy = K[0, 0], K[0, 2], K[1, 2]
    px = f * cam_pts[:, 0] / cam_pts[:, 2] + cx
    py = f * cam_pts[:, 1] / cam_pts[:, 2] + cy
    Hh, Ww = zbuf.shape
    x0, x1 = max(math.floor(px.min()), 0), min(math.ceil(px.max()) + 1, Ww)
    y0, y1 = max(math.floor(py.min()), 0), min(math.ceil(py.max()) + 1, Hh)
    if x1 <= x0 or y1 <= y0:
        return
    bw, bh = x1 - x0, y1 - y0
    mask = np.zeros((bh, bw), np.uint8)
    pts = np.round(np.stack([px - x0, py - y0], axis=1) * 16).astype(np.int32)
    cv2.fillPoly(mask, [pts], 1, lineType=cv2.LINE_8, shift=4)

    # Inverse depth is affine in pixel coordinates for a plane: 1/z = n.(K^-1 p) / (n.X0).
    n_c = R @ n_w
    d_plane = float(n_c @ (R @ (face.origin - C)))
    if abs(d_plane) < 1e-9:
        return
    xs = np.arange(x0, x1, dtype=np.float64)
    ys = np.arange(y0, y1, dtype=np.float64)
    a, b = n_c[0] / f / d_plane, n_c[1] / f / d_plane
    c = (n_c[2] - n_c[0] * cx / f - n_c[1] * cy / f) / d_plane
    invz = ((a * xs)[None, :] + (b * ys + c)[:, None]).astype(F32)
    zb = zbuf[y0:y1, x0:x1]
    vis = (mask > 0) & (invz > zb)
    if not vis.any():
        return

    th, tw = face.mips[0].shape[:2]
    M = np.column_stack([face.u / tw, face.v / th, face.origin - C + 0.5 * face.u / tw + 0.5 * face.v / th])
    H0 = K @ R @ M  # level-0 texel -> image pixel
    Hinv = np.linalg.inv(H0)
    # Texels per pixel from the homography's Jacobian: |det J| = |det Hinv| / w^3, w affine in the pixel.
    # Over the (convex) clipped polygon w is extremal at its vertices, so they bound the levels needed.
    log_det = 0.5 * math.log2(max(abs(float(np.linalg.det(Hinv))), 1e-300))
    top = len(face.mips) - 1

    def level_of(w: np.ndarray) -> np.ndarray:
        return np.clip(log_det - 1.5 * np.log2(np.maximum(np.abs(w), 1e-30)), 0, top)

    lv = level_of(Hinv[2, 0] * px + Hinv[2, 1] * py + Hinv[2, 2])
    lo, hi = math.floor(float(lv.min())), math.ceil(float(lv.max()))
    lev = None
    if hi > lo:
        lev = level_of((Hinv[2, 0] * xs)[None, :] + (Hinv[2, 1] * ys + Hinv[2, 2])[:, None]).astype(F32)
    T = np.array([[1, 0, -x0], [0, 1, -y0], [0, 0, 1]], float)
    border = cv2.BORDER_WRAP if face.wrap else cv2.BORDER_REPLICATE

    def warp(level: int) -> np.ndarray:
        s = float(2**level)
        S = np.array([[s, 0, (s - 1) / 2], [0, s, (s - 1) / 2], [0, 0, 1]])
        return cv2.warpPerspective(face.mips[level], T @ H0 @ S, (bw, bh), flags=cv2.INTER_LINEAR, borderMode=border)

    if lev is None:
        col = warp(lo)
    else:
        col = np.zeros((bh, bw, face.mips[0].shape[2]), F32)
        for level in range(lo, hi + 1):
            weight = np.clip(1.0 - np.abs(lev - level), 0.0, 1.0)
            col += warp(level).astype(F32) * weight[..., None]
    if col.shape[2] == 4:
        vis &= col[..., 3] > 127.5
    region = img[y0:y1, x0:x1]
    region[vis] = col[..., :3][vis]
    zb[vis] = invz[vis]


def _bake(face: _Face, lights: Sequence[_Light], ambient: float) -> None:
    """Light the face's texture once, in texture space, and build its mip pyramid.

    Diffuse light baked into the texture is view independent, as in a real room, so every photo of a
    room shows the same shading (which is what lets feature matching link them).
    """
    tex = face.texture
    th, tw = tex.shape[:2]
    n = face.normal()
    if face.unlit:
        light = np.ones((2, 2, 3), F32)
    else:
        if face.wrap:  # lighting of a repeated tile cannot vary across it: evaluate at the centre
            gh = gw = 2
            pc = face.corners().mean(axis=0)
            P = np.broadcast_to(pc, (gh, gw, 3))
        else:
            gh, gw = max(2, th // 16), max(2, tw // 16)
            uu = (np.arange(gw) + 0.5) / gw
            vv = (np.arange(gh) + 0.5) / gh
            P = face.origin + uu[None, :, None] * face.u + vv[:, None, None] * face.v
        light = np.full((gh, gw, 3), ambient, np.float64)
        for lt in lights:
            col = np.asarray(lt.color, float)
            if lt.pos is None:
                assert lt.direction is not None
                d = np.asarray(lt.direction, float)
                cos = float(np.dot(n, d / np.linalg.norm(d)))
                cos = abs(cos) if face.two_sided else max(cos, 0.0)
                light += lt.power * cos * col
            else:
                dv = np.asarray(lt.pos, float) - P
                dist2 = np.maximum((dv * dv).sum(-1), 1e-6)
                cosm = (dv @ n) / np.sqrt(dist2)
                cosm = np.abs(cosm) if face.two_sided else np.clip(cosm, 0.0, None)
                light += (lt.power * cosm / (1.0 + dist2 / lt.reach**2))[..., None] * col
        if face.shell and not face.wrap:
            lu, lvv = float(np.linalg.norm(face.u)), float(np.linalg.norm(face.v))
            uu2 = ((np.arange(gw) + 0.5) / gw)[None, :]
            vv2 = ((np.arange(gh) + 0.5) / gh)[:, None]
            edge = np.minimum(np.minimum(uu2 * lu, (1 - uu2) * lu), np.minimum(vv2 * lvv, (1 - vv2) * lvv))
            light *= (1.0 - 0.22 * np.exp(-edge / 0.3))[..., None]
    full = cv2.resize(light.astype(F32), (tw, th), interpolation=cv2.INTER_LINEAR)
    rgb = tex[..., :3].astype(F32) * full
    if face.emissive is not None:
        e = face.emissive[..., None]
        rgb = rgb * (1.0 - e) + tex[..., :3] * e * 1.08
    rgb = np.clip(rgb, 0, 255)
    if tex.shape[2] == 4:
        rgb = np.concatenate([rgb, tex[..., 3:4].astype(F32)], axis=2)
    level = rgb.astype(np.uint8)
    face.mips = [level]
    while min(level.shape[:2]) >= 16 and len(face.mips) < 7:
        level = cv2.pyrDown(level)
        face.mips.append(level)
    face.texture = face.mips[0]
    face.emissive = None


def _develop(img: np.ndarray, rng: np.random.Generator, scale: float, *, outdoor: bool) -> np.ndarray:
    """Camera look: exposure and white-balance jitter, highlight roll-off, vignetting, softness, noise."""
    return _finish(img, _exposure(img, rng, outdoor=outdoor), rng, scale)


def _exposure(img: np.ndarray, rng: np.random.Generator, *, outdoor: bool) -> np.ndarray:
    """Per-channel gain: auto-exposure on the median brightness, then a little jitter, as a camera would."""
    median = float(np.median(img[::4, ::4].mean(axis=2)))
    target = 128.0 if outdoor else 150.0
    gain = float(np.clip(target / max(median, 1.0), 0.75, 1.3)) * rng.uniform(0.95, 1.05)
    wb = 1.0 + rng.normal(0.0, 0.015, 3)
    return np.asarray((gain * wb).astype(F32))


def _finish(img: np.ndarray, gain: np.ndarray, rng: np.random.Generator | None, scale: float) -> np.ndarray:
    """Everything after the exposure: roll-off, vignetting, softness, and (given `rng`) sensor noise."""
    H, W = img.shape[:2]
    yy = ((np.arange(H, dtype=F32) - (H - 1) / 2) / (max(H, W) / 2)) ** 2
    xx = ((np.arange(W, dtype=F32) - (W - 1) / 2) / (max(H, W) / 2)) ** 2
    vignette = 1.0 - 0.28 * (yy[:, None] + xx[None, :])
    out = img * gain
    knee = 215.0  # soft shoulder: windows and sky blow out gently instead of clipping hard
    over = np.maximum(out - knee, 0.0)
    out -= over
    out += 40.0 * np.tanh(over * (1 / 40.0))
    out *= vignette[..., None]
    out = np.asarray(cv2.GaussianBlur(out, (0, 0), 0.55 * max(scale, 0.6)), F32)
    if rng is not None:
        out += _fast_noise(rng, (H, W, 1)) * 1.6
        out += _fast_noise(rng, (H, W, 3)) * 1.2
    return np.clip(out, 0, 255).astype(np.uint8)


# =============================================================================================
# texture primitives (float32 RGB, 0..255)
# =============================================================================================


def _solid(h: int, w: int, color: Vec) -> np.ndarray:
    img = np.empty((h, w, 3), F32)
    img[:] = np.asarray(color, F32)
    return img


def _jitter(rng: np.random.Generator, color: Vec, amount: float) -> np.ndarray:
    return np.clip(np.asarray(color, F32) * (1 + rng.normal(0, amount)) + rng.normal(0, amount * 60, 3), 0, 255).astype(
        F32
    )


def _noise(rng: np.random.Generator, h: int, w: int, cell_y: float, cell_x: float) -> np.ndarray:
    """Smooth random field with features about cell_y x cell_x pixels (cubic upsampled white noise)."""
    cy, cx = max(cell_y, 1.0), max(cell_x, 1.0)
    gh, gw = int(h / cy) + 4, int(w / cx) + 4
    grid = rng.standard_normal((gh, gw), dtype=F32)
    interp = cv2.INTER_CUBIC if min(cy, cx) > 1.5 else cv2.INTER_LINEAR
    up = cv2.resize(grid, (math.ceil(gw * cx), math.ceil(gh * cy)), interpolation=interp)
    return up[:h, :w]


def _fbm(rng: np.random.Generator, h: int, w: int, cell: float, octaves: int = 4, aspect: float = 1.0) -> np.ndarray:
    """Fractal noise with unit standard deviation; `aspect` > 1 stretches features along x."""
    out = np.zeros((h, w), F32)
    amp = 1.0
    for _ in range(octaves):
        out += amp * _noise(rng, h, w, cell, cell * aspect)
        amp *= 0.5
        cell /= 2.0
    out /= float(out.std()) + 1e-6
    return out


def _mottle(img: np.ndarray, rng: np.random.Generator, cell: float, amount: float, octaves: int = 4) -> None:
    img *= (1.0 + amount * _fbm(rng, img.shape[0], img.shape[1], cell, octaves))[..., None]


def _fast_noise(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Zero-mean, unit-variance triangular noise from random bytes: a few times cheaper than normals."""
    n = int(np.prod(shape))
    pair = np.frombuffer(rng.bytes(2 * n), np.uint8).reshape(2, n)
    out = pair[0].astype(F32)
    out += pair[1]
    out -= 255.0
    out *= 1.0 / 104.2
    return out.reshape(shape)


def _grain(img: np.ndarray, rng: np.random.Generator, amount: float) -> None:
    """Pixel-scale grain: the high-frequency detail corner detectors feed on."""
    img += _fast_noise(rng, (*img.shape[:2], 1)) * amount


def _rect(img: np.ndarray, x0: float, y0: float, x1: float, y1: float, color: Any) -> None:
    h, w = img.shape[:2]
    a, b = max(round(x0), 0), min(round(x1), w)
    c, d = max(round(y0), 0), min(round(y1), h)
    if b > a and d > c:
        img[c:d, a:b] = color


def _scale_rect(img: np.ndarray, x0: float, y0: float, x1: float, y1: float, factor: float) -> None:
    h, w = img.shape[:2]
    a, b = max(round(x0), 0), min(round(x1), w)
    c, d = max(round(y0), 0), min(round(y1), h)
    if b > a and d > c:
        img[c:d, a:b] *= factor


def _bevel(
    img: np.ndarray, x0: float, y0: float, x1: float, y1: float, t: float, light: float = 1.12, dark: float = 0.78
) -> None:
    """Shade a rectangle's border like a raised panel lit from the top left."""
    t = max(t, 1.0)
    _scale_rect(img, x0, y0, x1, y0 + t, light)
    _scale_rect(img, x0, y0 + t, x0 + t, y1, light * 0.98)
    _scale_rect(img, x0 + t, y1 - t, x1, y1, dark)
    _scale_rect(img, x1 - t, y0 + t, x1, y1 - t, dark * 1.04)


def _vgrad(h: int, w: int, top: Vec, bottom: Vec) -> np.ndarray:
    t = np.linspace(0.0, 1.0, h, dtype=F32)[:, None, None]
    return np.broadcast_to((1 - t) * np.asarray(top, F32) + t * np.asarray(bottom, F32), (h, w, 3)).copy()


def _resize(tex: np.ndarray, w: int, h: int) -> np.ndarray:
    if tex.shape[1] == w and tex.shape[0] == h:
        return tex
    interp = cv2.INTER_AREA if w < tex.shape[1] else cv2.INTER_LINEAR
    return cv2.resize(tex, (max(w, 1), max(h, 1)), interpolation=interp)


# ---------------------------------------------------------------------------------------------
# materials
# ---------------------------------------------------------------------------------------------


def _plain(rng: np.random.Generator, color: Vec, mottle: float = 0.04, grain: float = 2.0) -> Material:
    def make(w: int, h: int) -> np.ndarray:
        img = _solid(h, w, color)
        _mottle(img, rng, max(w, h) / 3, mottle, 3)
        _grain(img, rng, grain)
        return img

    return make


def _wood_img(rng: np.random.Generator, w: int, h: int, ppm: float, color: Vec, vertical: bool = False) -> np.ndarray:
    """Wood: streaky grain along x (or y), a few darker growth lines."""
    if vertical:
        return np.ascontiguousarray(_wood_img(rng, h, w, ppm, color).transpose(1, 0, 2))
    img = _solid(h, w, color)
    grain = _fbm(rng, h, w, max(0.012 * ppm, 1.0), 3, aspect=25.0)
    lines = np.sin(
        _fbm(rng, h, w, max(0.08 * ppm, 2.0), 2, aspect=8.0) * 6.0
        + np.arange(h, dtype=F32)[:, None] * (40.0 / max(ppm, 1.0))
    )
    img *= (1.0 + 0.07 * grain + 0.05 * lines)[..., None]
    _grain(img, rng, 2.5)
    return img


def _wood(rng: np.random.Generator, color: Vec, ppm: float, vertical: bool = False) -> Material:
    return lambda w, h: _wood_img(rng, w, h, ppm, color, vertical)


def _fabric_img(
    rng: np.random.Generator, w: int, h: int, ppm: float, color: Vec, pattern: str = "plain", accent: Vec | None = None
) -> np.ndarray:
    img = _solid(h, w, color)
    acc = np.asarray(accent if accent is not None else np.asarray(color) * 0.55, F32)
    yy, xx = np.mgrid[0:h, 0:w].astype(F32) / max(ppm, 1.0)
    if pattern == "stripes":
        period = rng.uniform(0.05, 0.12)
        band = (xx % period) < period * rng.uniform(0.25, 0.5)
        img[band] = acc
    elif pattern == "checks":
        p = rng.uniform(0.06, 0.14)
        band = ((xx % p) < p * 0.35) | ((yy % p) < p * 0.35)
        img[band] = img[band] * 0.5 + acc * 0.5
        img[((xx % p) < p * 0.35) & ((yy % p) < p * 0.35)] = acc
    elif pattern == "dots":
        p = rng.uniform(0.05, 0.09)
        cx_, cy_ = (xx % p) - p / 2, ((yy + (np.floor(xx / p) % 2) * p / 2) % p) - p / 2
        img[(cx_**2 + cy_**2) < (p * 0.22) ** 2] = acc
    elif pattern == "zigzag":
        p = rng.uniform(0.06, 0.1)
        zz = np.abs(((xx / p) % 2.0) - 1.0) * p
        img[((yy - zz) % p) < p * 0.3] = acc
    weave = ((np.arange(h)[:, None] // 2 + np.arange(w)[None, :] // 2) % 2).astype(F32)
    img *= (1.0 + 0.03 * (weave - 0.5))[..., None]
    _mottle(img, rng, max(0.15 * ppm, 2), 0.05, 3)
    _grain(img, rng, 2.5)
    return img


def _fabric(
    rng: np.random.Generator, color: Vec, ppm: float, pattern: str = "plain", accent: Vec | None = None
) -> Material:
    return lambda w, h: _fabric_img(rng, w, h, ppm, color, pattern, accent)


def _granite(rng: np.random.Generator, color: Vec, ppm: float) -> Material:
    def make(w: int, h: int) -> np.ndarray:
        img = _solid(h, w, color)
        _mottle(img, rng, max(0.06 * ppm, 2), 0.04, 3)
        r = rng.random((h, w), dtype=F32)
        base = np.asarray(color, F32)
        specks = [(0.05, base * 0.35), (0.02, np.minimum(base * 1.5, 250)), (0.012, np.array([120, 90, 70], F32))]
        acc = 0.0
        for p, col in specks:
            sel = (r >= acc) & (r < acc + p)
            img[sel] = col
            acc += p
        return cv2.GaussianBlur(img, (0, 0), 0.6)

    return make


def _steel(rng: np.random.Generator, ppm: float, tone: float = 190.0) -> Material:
    def make(w: int, h: int) -> np.ndarray:
        img = _vgrad(h, w, (tone * 1.06, tone * 1.07, tone * 1.08), (tone * 0.86, tone * 0.87, tone * 0.89))
        img *= (1.0 + 0.035 * _noise(rng, h, w, 1.0, max(0.3 * ppm, 4)))[..., None]
        _grain(img, rng, 2.0)
        return img

    return make


def _tiles_img(
    rng: np.random.Generator,
    w: int,
    h: int,
    tile_w: float,
    tile_h: float,
    color: Vec,
    grout: Vec,
    jitter: float = 0.05,
    stagger: bool = False,
    marble: bool = False,
) -> np.ndarray:
    """Tiles of tile_w x tile_h pixels with per-tile tone variation and grout lines."""
    tile_w, tile_h = max(tile_w, 3.0), max(tile_h, 3.0)
    gw = max(1.0, min(tile_w, tile_h) * 0.06)
    yy = np.arange(h, dtype=F32)[:, None]
    xx = np.arange(w, dtype=F32)[None, :]
    row = np.floor(yy / tile_h)
    xs = xx + (row % 2) * tile_w * 0.5 if stagger else np.broadcast_to(xx, (h, w))
    col = np.floor(xs / tile_w)
    n_r, n_c = int(h / tile_h) + 2, int(w / tile_w) + 3
    tone = (1.0 + rng.normal(0, jitter, (n_r, n_c))).astype(F32)
    tint = rng.normal(0, jitter * 0.12, (n_r, n_c, 3)).astype(F32)
    ri = np.clip(row.astype(int), 0, n_r - 1)
    ci = np.clip(col.astype(int), 0, n_c - 1)
    ri_b = np.broadcast_to(ri, (h, w))
    img = np.asarray(color, F32) * (tone[ri_b, ci][..., None] + tint[ri_b, ci])
    if marble:
        veins = np.abs(np.sin(xx * 0.02 + yy * 0.013 + _fbm(rng, h, w, max(tile_w / 2, 2), 4) * 2.5))
        img *= (0.93 + 0.07 * np.power(veins, 0.3))[..., None]
    else:
        _mottle(img, rng, max(tile_w / 3, 2), 0.025, 2)
    gmask = ((yy % tile_h) < gw) | ((xs % tile_w) < gw)
    img[np.broadcast_to(gmask, (h, w))] = np.asarray(grout, F32)
    # a little relief: tiles slightly lighter along their top edge, darker along the bottom
    img[np.broadcast_to(((yy % tile_h) >= gw) & ((yy % tile_h) < 2 * gw), (h, w))] *= 1.06
    img[np.broadcast_to((yy % tile_h) >= tile_h - gw, (h, w))] *= 0.9
    _grain(img, rng, 2.0)
    return img.astype(F32)


def _rug_img(rng: np.random.Generator, w: int, h: int, ppm: float) -> np.ndarray:
    """A woven rug: bordered field with a diamond lattice or kilim stripes."""
    palettes = [
        ((150, 60, 50), (230, 210, 170), (40, 50, 80)),
        ((70, 90, 120), (225, 220, 205), (170, 120, 60)),
        ((200, 190, 170), (90, 80, 70), (150, 70, 60)),
        ((60, 100, 90), (235, 225, 200), (190, 150, 90)),
    ]
    base, light, accent = (np.asarray(c, F32) for c in palettes[int(rng.integers(len(palettes)))])
    img = _solid(h, w, base)
    yy, xx = np.mgrid[0:h, 0:w].astype(F32) / max(ppm, 1.0)
    if rng.random() < 0.6:
        p = rng.uniform(0.18, 0.3)
        d = np.abs(((xx / p) % 1.0) - 0.5) + np.abs(((yy / p) % 1.0) - 0.5)
        img[(d > 0.38) & (d < 0.46)] = light
        img[d < 0.12] = accent
    else:
        bands = np.floor(yy / rng.uniform(0.08, 0.16)).astype(int) % 5
        img[bands == 1] = light
        img[bands == 3] = accent
        zz = np.abs(((xx / 0.12) % 2.0) - 1.0) * 0.06
        img[(bands == 2) & (((yy - zz) % 0.12) < 0.03)] = light
    b1, b2 = 0.12 * ppm, 0.2 * ppm
    for t, colr in ((b2, accent), (b1, light)):
        m = np.zeros((h, w), bool)
        m[: int(t)], m[h - int(t) :], m[:, : int(t)], m[:, w - int(t) :] = True, True, True, True
        img[m] = colr
    img[: int(0.05 * ppm)] = base * 0.8
    img[h - int(0.05 * ppm) :] = base * 0.8
    weave = ((np.arange(h)[:, None] + np.arange(w)[None, :]) % 3 == 0).astype(F32)
    img *= (1.0 - 0.06 * weave)[..., None]
    _mottle(img, rng, max(0.3 * ppm, 2), 0.06, 3)
    _grain(img, rng, 4.0)
    return img


def _art_img(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    """A framed picture: abstract shapes, a landscape, or a colour-block grid (unique per seed)."""
    style = int(rng.integers(3))
    frame_col = [(30, 28, 26), (180, 140, 80), (235, 232, 225), (110, 75, 50)][int(rng.integers(4))]
    img = _solid(h, w, frame_col)
    fr = max(2, int(min(w, h) * 0.05))
    mat = max(2, int(min(w, h) * 0.08)) if rng.random() < 0.6 else 0
    _rect(img, fr, fr, w - fr, h - fr, (240, 238, 232))
    ax0, ay0, ax1, ay1 = fr + mat, fr + mat, w - fr - mat, h - fr - mat
    aw, ah = max(ax1 - ax0, 4), max(ay1 - ay0, 4)
    if style == 0:
        art = _solid(ah, aw, _jitter(rng, (225, 215, 195), 0.08))
        for _ in range(int(rng.integers(7, 15))):
            col = tuple(float(c) for c in rng.uniform(20, 240, 3))
            kind = rng.random()
            x, y = rng.uniform(0, aw), rng.uniform(0, ah)
            s = rng.uniform(0.08, 0.35) * min(aw, ah)
            if kind < 0.4:
                cv2.circle(art, (int(x), int(y)), int(s), col, -1, cv2.LINE_AA)
            elif kind < 0.75:
                cv2.rectangle(art, (int(x), int(y)), (int(x + s * rng.uniform(0.5, 2)), int(y + s)), col, -1)
            else:
                cv2.line(
                    art,
                    (int(x), int(y)),
                    (int(rng.uniform(0, aw)), int(rng.uniform(0, ah))),
                    col,
                    max(1, int(s * 0.15)),
                    cv2.LINE_AA,
                )
    elif style == 1:
        art = _vgrad(ah, aw, _jitter(rng, (120, 160, 215), 0.1), _jitter(rng, (240, 200, 160), 0.1))
        cv2.circle(
            art,
            (int(rng.uniform(0.2, 0.8) * aw), int(0.25 * ah)),
            max(2, int(0.08 * min(aw, ah))),
            (250, 235, 190),
            -1,
            cv2.LINE_AA,
        )
        for k in range(4):
            base_y = ah * (0.45 + 0.14 * k)
            xs = np.linspace(0, aw, 24)
            ys = base_y + np.cumsum(rng.normal(0, ah * 0.02, 24))
            poly = np.array([[0, ah]] + [[x, y] for x, y in zip(xs, ys, strict=True)] + [[aw, ah]], np.int32)
            shade = 1.0 - 0.18 * k
            col = tuple(float(c) for c in np.asarray(_jitter(rng, (90, 130, 90), 0.15)) * shade)
            cv2.fillPoly(art, [poly], col, cv2.LINE_AA)
    else:
        art = _solid(ah, aw, (238, 234, 225))
        rects = [(0.0, 0.0, float(aw), float(ah))]
        for _ in range(6):
            i = int(rng.integers(len(rects)))
            x0, y0, x1, y1 = rects.pop(i)
            if (x1 - x0) > (y1 - y0):
                cut = rng.uniform(x0 + (x1 - x0) * 0.3, x1 - (x1 - x0) * 0.3)
                rects += [(x0, y0, cut, y1), (cut, y0, x1, y1)]
            else:
                cut = rng.uniform(y0 + (y1 - y0) * 0.3, y1 - (y1 - y0) * 0.3)
                rects += [(x0, y0, x1, cut), (x0, cut, x1, y1)]
        palette = [(200, 40, 30), (30, 60, 150), (240, 200, 40), (238, 234, 225), (238, 234, 225), (30, 30, 30)]
        lw = max(1, int(min(aw, ah) * 0.02))
        for x0, y0, x1, y1 in rects:
            _rect(art, x0, y0, x1, y1, palette[int(rng.integers(len(palette)))])
            cv2.rectangle(art, (int(x0), int(y0)), (int(x1), int(y1)), (20, 20, 20), lw)
    _grain(art, rng, 3.0)
    img[ay0 : ay0 + ah, ax0 : ax0 + aw] = art[: max(0, min(ah, h - ay0)), : max(0, min(aw, w - ax0))]
    _bevel(img, 0, 0, w, h, fr * 0.4)
    return img


def _outside_img(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    """What a window shows: bright sky with clouds over a tree line and a lawn."""
    img = _vgrad(h, w, (150, 195, 240), (232, 240, 248))
    clouds = np.clip((_fbm(rng, h, w, max(w, h) / 3, 4) - 0.4) * 0.9, 0, 1)
    img = img * (1 - clouds[..., None]) + 252.0 * clouds[..., None]
    horizon = h * rng.uniform(0.5, 0.68)
    prof = horizon - h * (0.12 + 0.1 * _fbm(rng, 1, w, max(w / 6, 2), 3)[0])
    rows = np.arange(h, dtype=F32)[:, None]
    trees = rows > prof[None, :]
    leaf = 1.0 + 0.25 * _fbm(rng, h, w, 2.0, 2)
    green = np.array([95, 135, 85], F32)
    img[trees] = (green * leaf[..., None])[trees]
    lawn = np.broadcast_to(rows > horizon + h * 0.15, (h, w))
    lawn_col = np.array([150, 185, 110], F32) * (1.0 + 0.08 * _fbm(rng, h, w, 3.0, 2))[..., None]
    img[lawn] = lawn_col[lawn]
    return img * 1.08


def _books_img(rng: np.random.Generator, w: int, h: int, ppm: float, wood: Vec) -> np.ndarray:
    """A bookcase seen from the front: boards, shelves of books of varied size, a few ornaments."""
    img = _wood_img(rng, w, h, ppm, np.asarray(wood, F32) * 0.55)
    board = max(2, int(0.025 * ppm))
    palette = [
        (150, 45, 40),
        (40, 60, 110),
        (205, 185, 145),
        (60, 95, 65),
        (232, 224, 205),
        (35, 35, 38),
        (185, 125, 60),
        (110, 70, 120),
        (200, 90, 60),
        (90, 120, 140),
        (170, 160, 60),
    ]
    n_shelves = max(2, round((h / ppm - 0.12) / 0.36))
    pitch = (h - 2 * board - int(0.08 * ppm)) / n_shelves
    for k in range(n_shelves):
        top = board + k * pitch
        bottom = board + (k + 1) * pitch
        gap = bottom - top - board
        x = float(board + 2)
        while x < w - board - 3:
            r = rng.random()
            if r < 0.07:  # ornament: a vase or a box
                ow = rng.uniform(0.08, 0.16) * ppm
                oh = rng.uniform(0.3, 0.7) * gap
                col = _jitter(rng, (200, 195, 185), 0.2)
                if rng.random() < 0.5:
                    cv2.ellipse(
                        img,
                        (int(x + ow / 2), int(bottom - oh / 2)),
                        (int(ow / 2), int(oh / 2)),
                        0,
                        0,
                        360,
                        tuple(float(c) for c in col),
                        -1,
                        cv2.LINE_AA,
                    )
                else:
                    _rect(img, x, bottom - oh, x + ow, bottom, col)
                x += ow + rng.uniform(0.02, 0.06) * ppm
                continue
            if r < 0.12:
                x += rng.uniform(0.03, 0.1) * ppm
                continue
            bw = rng.uniform(0.018, 0.05) * ppm
            bh = rng.uniform(0.6, 0.95) * gap
            col = _jitter(rng, palette[int(rng.integers(len(palette)))], 0.1)
            x1 = min(x + bw, w - board)
            _rect(img, x, bottom - bh, x1, bottom, col)
            band = rng.uniform(0.1, 0.2) * bh
            _scale_rect(img, x, bottom - bh + band, x1, bottom - bh + band * 1.5, rng.choice([0.6, 1.4]))
            _scale_rect(img, x1 - max(1, bw * 0.12), bottom - bh, x1, bottom, 0.75)
            x = x1 + (1 if rng.random() < 0.3 else 0)
        _rect(img, 0, bottom - 0, w, bottom + board, wood)
        _scale_rect(img, 0, bottom + board, w, bottom + board + max(1, board // 2), 0.7)
    wood_a = np.asarray(wood, F32)
    _rect(img, 0, 0, board, h, wood_a)
    _rect(img, w - board, 0, w, h, wood_a * 0.95)
    _rect(img, 0, 0, w, board, wood_a)
    _rect(img, 0, h - int(0.08 * ppm), w, h, wood_a * 0.9)
    _grain(img, rng, 2.0)
    return img


def _cabinet_img(
    rng: np.random.Generator,
    w: int,
    h: int,
    ppm: float,
    color: Vec,
    handle: Vec,
    drawers: bool = True,
    toe: float = 0.1,
    door_w: float = 0.5,
) -> np.ndarray:
    """Shaker cabinet fronts: a drawer row over doors, bar pulls, a dark toe kick."""
    img = _solid(h, w, color)
    _mottle(img, rng, max(0.2 * ppm, 2), 0.03, 2)
    gap = max(1.0, 0.006 * ppm)
    rail = 0.055 * ppm
    body_bottom = h - toe * ppm
    if toe > 0:
        _rect(img, 0, body_bottom, w, h, (45, 42, 40))
    n = max(1, round(w / ppm / door_w))
    cw = w / n
    drawer_h = 0.17 * ppm if drawers and h / ppm > 0.5 else 0.0
    hcol = np.asarray(handle, F32)
    for i in range(n):
        x0, x1 = i * cw + gap / 2, (i + 1) * cw - gap / 2
        rows = [(0.0, drawer_h), (drawer_h, body_bottom)] if drawer_h else [(0.0, body_bottom)]
        for j, (y0, y1) in enumerate(rows):
            y0, y1 = y0 + gap / 2, y1 - gap / 2
            _rect(img, x0 - gap, y0 - gap, x1 + gap, y0, np.asarray(color, F32) * 0.35)
            _rect(img, x1, y0, x1 + gap, y1, np.asarray(color, F32) * 0.35)
            if y1 - y0 > 2.5 * rail:
                _bevel(img, x0, y0, x1, y1, max(1.0, 0.006 * ppm))
                _bevel(img, x0 + rail, y0 + rail, x1 - rail, y1 - rail, max(1.0, 0.006 * ppm), 0.8, 1.12)
            is_drawer = drawer_h > 0 and j == 0
            if is_drawer:
                cx_, cy_ = (x0 + x1) / 2, (y0 + y1) / 2
                _rect(img, cx_ - 0.07 * ppm, cy_ - 0.007 * ppm, cx_ + 0.07 * ppm, cy_ + 0.007 * ppm, hcol)
            else:
                hx = x1 - 0.05 * ppm if i % 2 == 0 else x0 + 0.05 * ppm
                hy = y0 + 0.09 * ppm if toe > 0 else y1 - 0.09 * ppm
                _rect(img, hx - 0.007 * ppm, hy - 0.07 * ppm, hx + 0.007 * ppm, hy + 0.07 * ppm, hcol)
    _grain(img, rng, 2.0)
    return img


def _drawers_img(
    rng: np.random.Generator,
    w: int,
    h: int,
    ppm: float,
    color: Vec,
    rows: int,
    cols: int,
    knob: Vec,
    wood_grain: bool = True,
) -> np.ndarray:
    img = _wood_img(rng, w, h, ppm, color) if wood_grain else _solid(h, w, color)
    gap = max(1.0, 0.008 * ppm)
    inset = 0.03 * ppm
    dh = (h - 2 * inset) / rows
    dw = (w - 2 * inset) / cols
    for r in range(rows):
        for c in range(cols):
            x0, y0 = inset + c * dw + gap / 2, inset + r * dh + gap / 2
            x1, y1 = x0 + dw - gap, y0 + dh - gap
            _rect(img, x0 - gap, y0 - gap, x1 + gap, y0, np.asarray(color, F32) * 0.3)
            _bevel(img, x0, y0, x1, y1, max(1.0, 0.008 * ppm))
            cx_, cy_ = (x0 + x1) / 2, (y0 + y1) / 2
            for off in (-0.25, 0.25) if dw / ppm > 0.5 else (0.0,):
                cv2.circle(
                    img,
                    (int(cx_ + off * dw), int(cy_)),
                    max(1, int(0.014 * ppm)),
                    tuple(float(k) for k in knob),
                    -1,
                    cv2.LINE_AA,
                )
    return img


def _door_img(rng: np.random.Generator, w: int, h: int, ppm: float, color: Vec) -> np.ndarray:
    """A panelled interior door with its knob."""
    img = _solid(h, w, color)
    _mottle(img, rng, max(0.3 * ppm, 2), 0.03, 2)
    six = rng.random() < 0.5
    rows = [(0.08, 0.3), (0.36, 0.62), (0.68, 0.94)] if six else [(0.07, 0.45), (0.52, 0.94)]
    for y0, y1 in rows:
        for x0, x1 in ((0.14, 0.46), (0.54, 0.86)):
            _bevel(img, x0 * w, y0 * h, x1 * w, y1 * h, max(1.0, 0.012 * ppm), 0.82, 1.1)
    knob_y = h - 0.95 * ppm
    cv2.circle(img, (int(0.88 * w), int(knob_y)), max(2, int(0.028 * ppm)), (150, 125, 70), -1, cv2.LINE_AA)
    cv2.circle(img, (int(0.88 * w), int(knob_y)), max(1, int(0.012 * ppm)), (215, 190, 130), -1, cv2.LINE_AA)
    _grain(img, rng, 1.8)
    return img


def _tv_img(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    img = _vgrad(h, w, (40, 42, 48), (18, 19, 22))
    yy, xx = np.mgrid[0:h, 0:w].astype(F32)
    sheen = np.clip(1.0 - np.abs((xx / max(w, 1) + yy / max(h, 1) * 0.6) - 0.55) * 6, 0, 1)
    img += (sheen * 18)[..., None]
    b = max(1, int(min(w, h) * 0.025))
    _rect(img, 0, 0, w, b, (10, 10, 12))
    _rect(img, 0, h - b, w, h, (10, 10, 12))
    _rect(img, 0, 0, b, h, (10, 10, 12))
    _rect(img, w - b, 0, w, h, (10, 10, 12))
    _grain(img, rng, 1.5)
    return img


def _duvet_img(
    rng: np.random.Generator, w: int, h: int, ppm: float, color: Vec, pattern: str, accent: Vec, fold: float
) -> np.ndarray:
    """Bed top seen from above: pattern with soft folds and a turned-down band near the headboard."""
    img = _fabric_img(rng, w, h, ppm, color, pattern, accent)
    xx = np.arange(w, dtype=F32)[None, :] / max(ppm, 1.0)
    folds = 1.0 + 0.05 * np.sin(xx * rng.uniform(6, 11) + _fbm(rng, h, w, max(0.3 * ppm, 2), 2) * 1.5)
    img *= folds[..., None]
    y0, y1 = int(fold * h), int((fold + 0.12) * h)
    img[y0:y1] = _fabric_img(rng, w, max(y1 - y0, 1), ppm, (238, 236, 230))[: y1 - y0]
    img[y1 : y1 + max(1, int(0.01 * ppm))] *= 0.7
    return img


def _headboard_img(rng: np.random.Generator, w: int, h: int, ppm: float, color: Vec) -> np.ndarray:
    """Button-tufted upholstery: diamond creases with a button at each crossing."""
    img = _fabric_img(rng, w, h, ppm, color)
    p = 0.16 * ppm
    for i in range(-int(h / p) - 2, int(w / p) + 3):
        crease = tuple(float(c) * 0.82 for c in color)
        cv2.line(img, (int(i * p), 0), (int(i * p + h), h), crease, 1, cv2.LINE_AA)
        cv2.line(img, (int(i * p), 0), (int(i * p - h), h), crease, 1, cv2.LINE_AA)
    for yi in range(int(h / p) + 1):
        for xi in range(int(w / p) + 1):
            cx_ = xi * p + (p / 2 if yi % 2 else 0.0)
            cv2.circle(
                img,
                (int(cx_), int(yi * p + p / 2)),
                max(1, int(0.012 * ppm)),
                tuple(float(c) * 0.55 for c in color),
                -1,
                cv2.LINE_AA,
            )
    return img


def _oven_img(rng: np.random.Generator, w: int, h: int, ppm: float) -> np.ndarray:
    img = _steel(rng, ppm)(w, h)
    panel = 0.12 * ppm
    _rect(img, 0, 0, w, panel, (45, 45, 48))
    for k in range(5):
        cv2.circle(
            img, (int((k + 1) * w / 6), int(panel / 2)), max(1, int(0.022 * ppm)), (200, 200, 205), -1, cv2.LINE_AA
        )
    win = (0.12 * w, panel + 0.12 * ppm, 0.88 * w, h - 0.22 * ppm)
    _rect(img, *win, (25, 25, 28))
    _scale_rect(img, win[0], win[1], win[2], (win[1] + win[3]) / 2, 1.5)
    _rect(img, 0.1 * w, panel + 0.04 * ppm, 0.9 * w, panel + 0.065 * ppm, (215, 215, 220))
    _rect(img, 0, h - 0.16 * ppm, w, h - 0.15 * ppm, (60, 60, 62))
    return img


def _fridge_img(rng: np.random.Generator, w: int, h: int, ppm: float) -> np.ndarray:
    img = _steel(rng, ppm, 200.0)(w, h)
    split = int(h * 0.62)
    _rect(img, 0, split, w, split + max(1, int(0.008 * ppm)), (70, 70, 72))
    _rect(img, w / 2 - 0.004 * ppm, 0, w / 2 + 0.004 * ppm, split, (70, 70, 72))
    for x in (w / 2 - 0.05 * ppm, w / 2 + 0.05 * ppm):
        _rect(img, x - 0.012 * ppm, 0.2 * h, x + 0.012 * ppm, 0.55 * h, (225, 225, 230))
        _scale_rect(img, x + 0.008 * ppm, 0.2 * h, x + 0.012 * ppm, 0.55 * h, 0.6)
    _rect(img, 0.2 * w, split + 0.06 * ppm, 0.8 * w, split + 0.085 * ppm, (225, 225, 230))
    _rect(img, 0.08 * w, 0.08 * h, 0.3 * w, 0.2 * h, (60, 65, 72))  # water/ice dispenser
    return img


def _counter_top_img(
    rng: np.random.Generator, w: int, h: int, ppm: float, stone: Material, sink_x: float | None, cooktop_x: float | None
) -> np.ndarray:
    """Counter seen from above, x in metres from its left end; row 0 is the wall side."""
    img = stone(w, h)
    if sink_x is not None:
        x0, x1 = (sink_x - 0.38) * ppm, (sink_x + 0.38) * ppm
        _rect(img, x0, 0.12 * h, x1, 0.85 * h, (150, 152, 156))
        _rect(img, x0 + 0.03 * ppm, 0.12 * h + 0.03 * ppm, x1 - 0.03 * ppm, 0.85 * h - 0.03 * ppm, (95, 97, 100))
        _scale_rect(img, x0 + 0.03 * ppm, 0.12 * h + 0.03 * ppm, x1 - 0.03 * ppm, 0.3 * h, 0.7)
        cv2.circle(img, (int(sink_x * ppm), int(0.55 * h)), max(1, int(0.03 * ppm)), (40, 40, 42), -1)
    if cooktop_x is not None:
        x0, x1 = (cooktop_x - 0.37) * ppm, (cooktop_x + 0.37) * ppm
        _rect(img, x0, 0.08 * h, x1, 0.92 * h, (22, 22, 25))
        for bx, by, r in ((0.28, 0.3, 0.1), (0.72, 0.3, 0.08), (0.28, 0.72, 0.08), (0.72, 0.72, 0.1)):
            c = (int(x0 + bx * (x1 - x0)), int((0.08 + by * 0.84) * h))
            cv2.circle(img, c, max(1, int(r * ppm)), (70, 70, 74), max(1, int(0.008 * ppm)), cv2.LINE_AA)
            cv2.circle(img, c, max(1, int(r * 0.55 * ppm)), (55, 55, 58), max(1, int(0.006 * ppm)), cv2.LINE_AA)
    return img


def _basin_top_img(
    rng: np.random.Generator,
    w: int,
    h: int,
    ppm: float,
    base: np.ndarray,
    basin: tuple[float, float, float, float],
    rim: Vec = (240, 240, 238),
    oval: bool = True,
) -> np.ndarray:
    """A top with a basin (tub or sink) given as (cx, cy, half_w, half_h) in metres from the top left."""
    img = base
    cx_, cy_, hw, hh = (v * ppm for v in basin)
    if oval:
        cv2.ellipse(
            img, (int(cx_), int(cy_)), (int(hw), int(hh)), 0, 0, 360, tuple(float(c) for c in rim), -1, cv2.LINE_AA
        )
        inner = np.zeros(img.shape[:2], np.uint8)
        cv2.ellipse(inner, (int(cx_), int(cy_)), (int(hw * 0.85), int(hh * 0.8)), 0, 0, 360, 1, -1)
    else:
        _rect(img, cx_ - hw, cy_ - hh, cx_ + hw, cy_ + hh, rim)
        inner = np.zeros(img.shape[:2], np.uint8)
        m = 0.07 * ppm
        _rect(inner, cx_ - hw + m, cy_ - hh + m, cx_ + hw - m, cy_ + hh - m, 1)
    shade = _vgrad(img.shape[0], img.shape[1], (175, 185, 195), (225, 230, 235))
    img[inner > 0] = shade[inner > 0]
    cv2.circle(img, (int(cx_ + hw * 0.5), int(cy_)), max(1, int(0.02 * ppm)), (120, 120, 125), -1)
    return img


def _mirror_img(rng: np.random.Generator, w: int, h: int, frame: Vec) -> np.ndarray:
    img = _vgrad(h, w, (200, 210, 215), (150, 160, 168))
    yy, xx = np.mgrid[0:h, 0:w].astype(F32)
    band = np.clip(1.0 - np.abs(xx / max(w, 1) - yy / max(h, 1) * 0.5 - 0.35) * 7, 0, 1)
    img += (band * 30)[..., None]
    # a blurred reflection of the room behind the camera: a door and a picture
    _scale_rect(img, 0.1 * w, 0.35 * h, 0.35 * w, h, 0.85)
    _rect(img, 0.6 * w, 0.3 * h, 0.85 * w, 0.5 * h, (120, 110, 100))
    img = cv2.GaussianBlur(img, (0, 0), max(1.0, w / 60))
    fr = max(2, int(min(w, h) * 0.04))
    for sl in (
        (slice(0, fr), slice(None)),
        (slice(h - fr, h), slice(None)),
        (slice(None), slice(0, fr)),
        (slice(None), slice(w - fr, w)),
    ):
        img[sl] = np.asarray(frame, F32)
    _bevel(img, 0, 0, w, h, fr * 0.5)
    _grain(img, rng, 1.5)
    return img


# ---------------------------------------------------------------------------------------------
# outdoor materials
# ---------------------------------------------------------------------------------------------


def _grass_img(rng: np.random.Generator, w: int, h: int, ppm: float) -> np.ndarray:
    """A tileable lawn patch: blades (vertical streaks), clumps and a little dry yellow."""
    base = np.array([86, 128, 56], F32)
    img = _solid(h, w, base)
    blades = _noise(rng, h, w, max(0.02 * ppm, 1.5), 1.0)
    clumps = _fbm(rng, h, w, max(0.15 * ppm, 2), 3)
    img *= (1.0 + 0.22 * blades + 0.1 * clumps)[..., None]
    dry = np.clip(_fbm(rng, h, w, max(0.5 * ppm, 2), 2) - 0.8, 0, 1)[..., None]
    img = img * (1 - 0.3 * dry) + np.array([150, 145, 80], F32) * 0.3 * dry
    _grain(img, rng, 6.0)
    return _make_tileable(img)


def _make_tileable(img: np.ndarray) -> np.ndarray:
    """Cross-fade a texture with its half-period shift so it repeats without visible seams."""
    h, w = img.shape[:2]
    shifted = np.roll(np.roll(img, h // 2, axis=0), w // 2, axis=1)
    wy = np.abs(np.linspace(-1, 1, h, dtype=F32))[:, None]
    wx = np.abs(np.linspace(-1, 1, w, dtype=F32))[None, :]
    wgt = np.clip(np.maximum(wy, wx) * 1.6 - 0.6, 0, 1)[..., None]
    return img * (1 - wgt) + shifted * wgt


def _concrete_img(
    rng: np.random.Generator, w: int, h: int, ppm: float, tone: float = 175.0, joint: float = 0.0
) -> np.ndarray:
    img = _solid(h, w, (tone, tone * 0.98, tone * 0.95))
    _mottle(img, rng, max(0.4 * ppm, 2), 0.06, 4)
    _grain(img, rng, 7.0)
    if joint > 0:
        for y in np.arange(joint * ppm, h, joint * ppm):
            _scale_rect(img, 0, y, w, y + max(1, 0.012 * ppm), 0.55)
    return img


def _pavers_img(rng: np.random.Generator, w: int, h: int, ppm: float, color: Vec) -> np.ndarray:
    return _tiles_img(rng, w, h, 0.3 * ppm, 0.15 * ppm, color, np.asarray(color) * 0.5, 0.12, stagger=True)


def _siding_img(rng: np.random.Generator, w: int, h: int, ppm: float, color: Vec) -> np.ndarray:
    """Lap siding: horizontal boards, each with a shadow line under the one above."""
    img = _solid(h, w, color)
    board = 0.17 * ppm
    yy = np.arange(h, dtype=F32)[:, None]
    phase = (yy % board) / board
    img *= (0.86 + 0.16 * np.clip(phase * 1.4, 0, 1))[..., None]
    img[np.broadcast_to((yy % board) < max(1.0, 0.012 * ppm), (h, w))] *= 0.6
    img *= (1.0 + 0.03 * _noise(rng, h, w, 1.0, max(0.4 * ppm, 3)))[..., None]
    _grain(img, rng, 2.5)
    return img


def _shingles_img(rng: np.random.Generator, w: int, h: int, ppm: float, color: Vec) -> np.ndarray:
    """Asphalt shingle courses, staggered tabs of varied tone; row 0 is the ridge."""
    course, tab = 0.14 * ppm, 0.33 * ppm
    img = _tiles_img(rng, w, h, tab, course, color, np.asarray(color) * 0.45, 0.1, stagger=True)
    img += _fast_noise(rng, (h, w, 1)) * 9.0
    return img


def _fence_img(rng: np.random.Generator, w: int, h: int, ppm: float, color: Vec) -> np.ndarray:
    """Dog-eared cedar boards as RGBA: gaps between boards and the notched tops are transparent."""
    img = np.zeros((h, w, 4), F32)
    img[..., :3] = _wood_img(rng, w, h, ppm, color, vertical=True)
    img[..., 3] = 255
    bw = 0.14 * ppm
    gap = max(1.0, 0.012 * ppm)
    xx = np.arange(w, dtype=F32)
    local = xx % bw
    tone = 1.0 + rng.normal(0, 0.08, int(w / bw) + 2).astype(F32)
    img[..., :3] *= tone[(xx // bw).astype(int)][None, :, None]
    img[:, local < gap, 3] = 0
    ear = 0.04 * ppm
    yy = np.arange(h, dtype=F32)[:, None]
    cut = yy < ear - np.minimum(local, bw - local)[None, :]
    img[..., 3][cut] = 0
    img[..., :3] *= (0.8 + 0.2 * np.clip(local / max(bw * 0.2, 1), 0, 1))[None, :, None]
    return img


def _foliage(rng: np.random.Generator, img: np.ndarray, mask: np.ndarray, green: Vec, leaf: float) -> None:
    """Leafy canopy colours under `mask`: clumps, leaf-scale speckle, darker bottom and right."""
    h, w = mask.shape
    tone = 1.0 + 0.18 * _fbm(rng, h, w, max(leaf * 4, 2), 3) + 0.28 * _noise(rng, h, w, max(leaf, 1), max(leaf, 1))
    yy = np.linspace(1.08, 0.78, h, dtype=F32)[:, None]
    col = np.asarray(green, F32) * (tone * yy)[..., None]
    img[mask > 0, :3] = col[mask > 0]


def _blob_mask(
    rng: np.random.Generator, h: int, w: int, cx: float, cy: float, rx: float, ry: float, n: int, leaf: float
) -> np.ndarray:
    mask = np.zeros((h, w), F32)
    for _ in range(n):
        a = rng.uniform(0, 2 * math.pi)
        r = math.sqrt(rng.random())
        x, y = cx + math.cos(a) * r * rx * 0.75, cy + math.sin(a) * r * ry * 0.75
        rad = rng.uniform(0.25, 0.45) * min(rx, ry)
        cv2.circle(mask, (int(x), int(y)), max(1, int(rad)), 1.0, -1, cv2.LINE_AA)
    edge = _noise(rng, h, w, max(leaf * 2, 1), max(leaf * 2, 1))
    soft = cv2.GaussianBlur(mask, (0, 0), max(leaf, 1.0))
    return (((soft + 0.22 * edge) > 0.55) & (soft > 0.3)).astype(np.uint8)


def _tree_img(rng: np.random.Generator, w: int, h: int, green: Vec) -> np.ndarray:
    """A deciduous tree as RGBA: bark trunk under a clumpy crown."""
    img = np.zeros((h, w, 4), F32)
    tw = w * 0.07
    trunk = np.zeros((h, w), np.uint8)
    _rect(trunk, w / 2 - tw / 2, h * 0.45, w / 2 + tw / 2, h, 1)
    bark = _wood_img(rng, w, h, w / 2.0, (95, 75, 60), vertical=True)
    img[trunk > 0, :3] = bark[trunk > 0]
    crown = _blob_mask(rng, h, w, w / 2, h * 0.38, w * 0.48, h * 0.36, 40, max(w / 120, 1))
    _foliage(rng, img, crown, green, max(w / 150, 1))
    img[..., 3] = np.maximum(trunk, crown) * 255.0
    return img


def _bush_img(rng: np.random.Generator, w: int, h: int, green: Vec, flowers: bool) -> np.ndarray:
    img = np.zeros((h, w, 4), F32)
    mask = _blob_mask(rng, h, w, w / 2, h * 0.55, w * 0.5, h * 0.5, 18, max(w / 90, 1))
    _foliage(rng, img, mask, green, max(w / 120, 1))
    if flowers:
        col = np.asarray(_pick(rng, ((230, 80, 110), (250, 240, 240), (240, 200, 60), (170, 90, 200))), F32)
        dots = (rng.random((h, w)) < 0.02) & (mask > 0)
        dots = cv2.dilate(dots.astype(np.uint8), np.ones((2, 2), np.uint8)) > 0
        img[dots & (mask > 0), :3] = col
    img[..., 3] = mask * 255.0
    return img


def _plant_img(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    """A potted plant as RGBA: a tapered pot and radiating leaves."""
    img = np.zeros((h, w, 4), F32)
    pot_h = h * 0.28
    pot_col = [(200, 110, 80), (235, 232, 225), (60, 60, 62)][int(rng.integers(3))]
    pot = np.array([[w * 0.28, h - pot_h], [w * 0.72, h - pot_h], [w * 0.64, h - 1], [w * 0.36, h - 1]], np.int32)
    cv2.fillPoly(img, [pot], (*pot_col, 255.0), cv2.LINE_AA)
    base = (w / 2, h - pot_h)
    for _ in range(28):
        ang = rng.uniform(-1.3, 1.3) - math.pi / 2
        length = rng.uniform(0.35, 0.7) * (h - pot_h)
        tip = (base[0] + math.cos(ang) * length * 0.9, base[1] + math.sin(ang) * length)
        mid = ((base[0] + tip[0]) / 2, (base[1] + tip[1]) / 2)
        col = (*tuple(float(c) for c in _jitter(rng, (70, 125, 60), 0.18)), 255.0)
        cv2.ellipse(
            img,
            (int(mid[0]), int(mid[1])),
            (max(2, int(length / 2)), max(1, int(length * 0.12))),
            math.degrees(ang),
            0,
            360,
            col,
            -1,
            cv2.LINE_AA,
        )
        cv2.line(
            img,
            (int(base[0]), int(base[1])),
            (int(tip[0]), int(tip[1])),
            (float(col[0]) * 0.6, float(col[1]) * 0.6, float(col[2]) * 0.6, 255.0),
            1,
            cv2.LINE_AA,
        )
    img[..., 3] = np.where(img[..., 3] > 127, 255.0, 0.0)
    return img


def _sky_img(rng: np.random.Generator, w: int, h: int, horizon_row: float) -> np.ndarray:
    """Blue sky: deep at the top, hazy at the horizon, soft cumulus clouds in the upper part."""
    rows = np.arange(h, dtype=F32)[:, None]
    t = np.clip(rows / max(horizon_row, 1), 0, 1)
    top, haze = np.array([70, 130, 210], F32), np.array([205, 222, 238], F32)
    img = np.broadcast_to(((1 - t**1.6)[..., None] * top + (t**1.6)[..., None] * haze), (h, w, 3)).copy()
    dens = _fbm(rng, h, w, h / 5, 5, aspect=2.0)
    fade = np.clip(1.4 - t * 1.1, 0, 1)
    cover = np.clip((dens - 0.2) * 1.1, 0, 1) * fade
    shade = np.clip(1.0 - 0.25 * np.clip(_fbm(rng, h, w, h / 10, 3), 0, None), 0.7, 1.0)
    cloud = np.array([250, 250, 252], F32) * shade[..., None]
    img = img * (1 - cover[..., None]) + cloud * cover[..., None]
    return img


def _treeline_img(rng: np.random.Generator, w: int, h: int, green: Vec) -> np.ndarray:
    """A distant band of tree crowns as RGBA (transparent above their skyline)."""
    img = np.zeros((h, w, 4), F32)
    mask = np.zeros((h, w), F32)
    x = 0.0
    while x < w:
        r = rng.uniform(0.04, 0.12) * h * 2.5
        top = h * rng.uniform(0.05, 0.5)
        cv2.circle(mask, (int(x), int(top + r)), int(r), 1.0, -1, cv2.LINE_AA)
        _rect(mask, x - r * 0.8, top + r, x + r * 0.8, h, 1.0)
        x += r * rng.uniform(0.6, 1.1)
    edge = _noise(rng, h, w, 2.0, 2.0)
    soft = cv2.GaussianBlur(mask, (0, 0), 1.5)
    m = (((soft + 0.2 * edge) > 0.55) & (soft > 0.3)).astype(np.uint8)  # ragged edge, no stray specks
    _foliage(rng, img, m, green, 2.0)
    img[..., 3] = m * 255.0
    return img


def _planks_img(rng: np.random.Generator, w: int, h: int, ppm: float, color: Vec) -> np.ndarray:
    """Plank floor, boards running along y (away from the camera) with staggered butt joints and knots."""
    img = np.empty((h, w, 3), F32)
    pw = max(3.0, rng.uniform(0.12, 0.19) * ppm)
    base = np.asarray(color, F32)
    seam = max(1.0, 0.005 * ppm)
    x = 0.0
    while x < w:
        x1 = min(x + pw, float(w))
        y = -rng.uniform(0, 1.4) * ppm
        while y < h:
            length = rng.uniform(0.8, 1.8) * ppm
            _rect(img, x, y, x1, y + length, base * rng.uniform(0.84, 1.12) * (1 + rng.normal(0, 0.035, 3)))
            _scale_rect(img, x, y, x1, y + seam, 0.55)
            y += length
        _scale_rect(img, x, 0, x + seam, h, 0.55)
        x = x1
    grain = _fbm(rng, w, h, max(0.01 * ppm, 1.0), 3, aspect=30.0).T
    rings = np.sin(_fbm(rng, w, h, max(0.1 * ppm, 2.0), 2, aspect=6.0).T * 5.0)
    img *= (1.0 + 0.08 * grain + 0.05 * rings)[..., None]
    for _ in range(int(w * h / ppm**2 * 0.8)):
        c = (int(rng.uniform(0, w)), int(rng.uniform(0, h)))
        axes = (max(1, int(0.008 * ppm)), max(1, int(rng.uniform(0.015, 0.04) * ppm)))
        cv2.ellipse(img, c, axes, 0, 0, 360, tuple(float(v) for v in base * 0.55), -1, cv2.LINE_AA)
    _grain(img, rng, 3.0)
    return img


def _carpet_img(rng: np.random.Generator, w: int, h: int, ppm: float, color: Vec) -> np.ndarray:
    img = _solid(h, w, color)
    _mottle(img, rng, max(0.3 * ppm, 2), 0.05, 4)
    _grain(img, rng, 9.0)
    return cv2.GaussianBlur(img, (0, 0), 0.6)


class _Canvas:
    """A surface texture under construction, addressed in metres: `s` along it, `y` up from its bottom.

    Decorations (windows, doors, pictures, tiles) are painted into the wall's texture rather than
    modelled, which is both cheaper and exactly how they look: flat.
    """

    def __init__(self, length: float, height: float, ppm: float, img: np.ndarray) -> None:
        self.length, self.height, self.ppm = length, height, ppm
        self.img = img
        self.h, self.w = img.shape[:2]
        self.emissive = np.zeros((self.h, self.w), F32)
        self.used: list[tuple[float, float, float, float]] = []

    def box(self, s0: float, y0: float, s1: float, y1: float) -> tuple[int, int, int, int]:
        """Pixel rectangle (x0, r0, x1, r1) of a region, clipped to the canvas."""
        p = self.ppm
        x0, x1 = round(s0 * p), round(s1 * p)
        r0, r1 = round((self.height - y1) * p), round((self.height - y0) * p)
        return max(x0, 0), max(r0, 0), min(max(x1, x0 + 1), self.w), min(max(r1, r0 + 1), self.h)

    def size(self, s0: float, y0: float, s1: float, y1: float) -> tuple[int, int]:
        p = self.ppm
        return max(1, round((s1 - s0) * p)), max(1, round((y1 - y0) * p))

    def paste(self, tex: np.ndarray, s0: float, y0: float, s1: float, y1: float, emissive: float = 0.0) -> None:
        p = self.ppm
        X0, R0 = round(s0 * p), round((self.height - y1) * p)
        w, h = self.size(s0, y0, s1, y1)
        tex = _resize(tex, w, h)
        a, b = max(X0, 0), min(X0 + w, self.w)
        c, d = max(R0, 0), min(R0 + h, self.h)
        if b <= a or d <= c:
            return
        part = tex[c - R0 : d - R0, a - X0 : b - X0]
        if part.shape[2] == 4:
            alpha = part[..., 3:4] / 255.0
            self.img[c:d, a:b] = self.img[c:d, a:b] * (1 - alpha) + part[..., :3] * alpha
            self.emissive[c:d, a:b] = self.emissive[c:d, a:b] * (1 - alpha[..., 0]) + emissive * alpha[..., 0]
        else:
            self.img[c:d, a:b] = part
            self.emissive[c:d, a:b] = emissive

    def fill(self, s0: float, y0: float, s1: float, y1: float, color: Any, emissive: float = 0.0) -> None:
        x0, r0, x1, r1 = self.box(s0, y0, s1, y1)
        self.img[r0:r1, x0:x1] = color
        self.emissive[r0:r1, x0:x1] = emissive

    def shade(self, s0: float, y0: float, s1: float, y1: float, factor: float) -> None:
        x0, r0, x1, r1 = self.box(s0, y0, s1, y1)
        self.img[r0:r1, x0:x1] *= factor

    def bevel(self, s0: float, y0: float, s1: float, y1: float, t: float) -> None:
        x0, r0, x1, r1 = self.box(s0, y0, s1, y1)
        _bevel(self.img, x0, r0, x1, r1, t * self.ppm)

    def reserve(self, s0: float, s1: float, y0: float = 0.0, y1: float = 99.0) -> None:
        self.used.append((s0, s1, y0, y1))

    def is_free(self, s0: float, s1: float, y0: float, y1: float, margin: float = 0.12) -> bool:
        if s0 < 0 or s1 > self.length:
            return False
        return all(s1 + margin <= a or s0 - margin >= b or y1 <= c or y0 >= d for a, b, c, d in self.used)

    def find(
        self,
        rng: np.random.Generator,
        width: float,
        y0: float,
        y1: float,
        lo: float = 0.15,
        hi: float | None = None,
        margin: float = 0.12,
    ) -> float | None:
        """A random free start position for something `width` wide between heights y0 and y1."""
        hi = (self.length - 0.15 if hi is None else hi) - width
        if hi < lo:
            return None
        for _ in range(60):
            s = float(rng.uniform(lo, hi))
            if self.is_free(s, s + width, y0, y1, margin):
                return s
        return None


# ---------------------------------------------------------------------------------------------
# wall decorations
# ---------------------------------------------------------------------------------------------

_TRIM = (242, 240, 235)


def _window(
    c: _Canvas,
    rng: np.random.Generator,
    s0: float,
    s1: float,
    y0: float,
    y1: float,
    *,
    curtains: Vec | None = None,
    frosted: bool = False,
    grid: tuple[int, int] = (2, 2),
    trim: Vec = _TRIM,
) -> None:
    """A window: casing, sill, a bright view (emissive), sash bars, optional curtain panels and rod."""
    p = c.ppm
    cas = 0.07
    c.fill(s0 - cas, y0 - cas, s1 + cas, y1 + cas, trim)
    c.bevel(s0 - cas, y0 - cas, s1 + cas, y1 + cas, 0.012)
    c.fill(s0 - cas - 0.05, y0 - cas - 0.045, s1 + cas + 0.05, y0 - cas + 0.005, np.asarray(trim, F32) * 0.97)
    c.shade(s0 - cas - 0.05, y0 - cas - 0.075, s1 + cas + 0.05, y0 - cas - 0.045, 0.75)
    w, h = c.size(s0, y0, s1, y1)
    if frosted:
        view = cv2.GaussianBlur(_outside_img(rng, w, h), (0, 0), max(2.0, w / 12)) * 0.6 + 235 * 0.4
        _grain(view, rng, 3.0)
    else:
        view = _outside_img(rng, w, h)
    c.paste(view, s0, y0, s1, y1, emissive=1.0)
    sash = 0.035
    for k in range(grid[0] + 1):
        s = s0 + (s1 - s0) * k / grid[0]
        c.fill(s - sash / 2, y0, s + sash / 2, y1, trim)
    for k in range(grid[1] + 1):
        y = y0 + (y1 - y0) * k / grid[1]
        c.fill(s0, y - sash / 2, s1, y + sash / 2, trim)
    c.shade(s0 + sash / 2, y1 - sash / 2 - 0.02, s1 - sash / 2, y1 - sash / 2, 0.8)
    if curtains is not None:
        pw = rng.uniform(0.32, 0.45)
        top, bottom = min(y1 + cas + 0.18, c.height - 0.05), max(0.03, y0 - rng.uniform(0.2, 0.6))
        c.fill(s0 - cas - pw - 0.05, top, s1 + cas + pw + 0.05, top + 0.025, (60, 55, 50))
        for a, b in ((s0 - cas - pw, s0 - cas + 0.08), (s1 + cas - 0.08, s1 + cas + pw)):
            cw, ch = c.size(a, bottom, b, top)
            panel = _fabric_img(rng, cw, ch, p, curtains)
            folds = 0.8 + 0.2 * np.sin(np.arange(cw, dtype=F32) / max(0.09 * p, 1) * 2 * math.pi + rng.uniform(0, 6))
            panel *= folds[None, :, None]
            c.paste(panel, a, bottom, b, top)
        c.reserve(s0 - cas - pw - 0.1, s1 + cas + pw + 0.1, bottom, top + 0.1)
    c.reserve(s0 - cas - 0.1, s1 + cas + 0.1, y0 - 0.15, y1 + cas + 0.05)


def _door(
    c: _Canvas,
    rng: np.random.Generator,
    s0: float,
    color: Vec,
    width: float = 0.86,
    height: float = 2.04,
    trim: Vec = _TRIM,
) -> None:
    cas = 0.08
    c.fill(s0 - cas, 0, s0 + width + cas, height + cas, trim)
    c.bevel(s0 - cas, 0, s0 + width + cas, height + cas, 0.012)
    w, h = c.size(s0, 0, s0 + width, height)
    c.paste(_door_img(rng, w, h, c.ppm, color), s0, 0, s0 + width, height)
    c.shade(s0, height - 0.015, s0 + width, height, 0.7)
    # a light switch beside it
    sw = s0 + width + cas + 0.08
    c.fill(sw, 1.15, sw + 0.075, 1.27, (236, 236, 232))
    c.fill(sw + 0.03, 1.19, sw + 0.045, 1.23, (205, 205, 200))
    c.reserve(s0 - cas - 0.05, sw + 0.12)


def _art(c: _Canvas, rng: np.random.Generator, s_mid: float, y_mid: float, w: float, h: float) -> None:
    s0, y0 = s_mid - w / 2, y_mid - h / 2
    c.shade(s0 + 0.015, y0 - 0.02, s0 + w + 0.02, y0 + h - 0.02, 0.8)
    pw, ph = c.size(s0, y0, s0 + w, y0 + h)
    c.paste(_art_img(rng, pw, ph), s0, y0, s0 + w, y0 + h)
    c.reserve(s0, s0 + w, y0, y0 + h)


def _baseboard(c: _Canvas, color: Vec = _TRIM, height: float = 0.1) -> None:
    c.fill(0, 0, c.length, height, color)
    c.shade(0, height - 0.012, c.length, height, 1.06)
    c.shade(0, height, c.length, height + 0.006, 0.85)


def _outlet(c: _Canvas, s: float, y: float = 0.3) -> None:
    c.fill(s, y, s + 0.07, y + 0.115, (238, 238, 234))
    for dy in (0.025, 0.065):
        c.fill(s + 0.018, y + dy, s + 0.024, y + dy + 0.018, (60, 60, 60))
        c.fill(s + 0.046, y + dy, s + 0.052, y + dy + 0.018, (60, 60, 60))


def _wall_tiles(
    c: _Canvas,
    rng: np.random.Generator,
    s0: float,
    s1: float,
    y0: float,
    y1: float,
    color: Vec,
    tile: tuple[float, float] = (0.15, 0.075),
    grout: Vec = (200, 200, 200),
    cap: bool = True,
) -> None:
    w, h = c.size(s0, y0, s1, y1)
    tex = _tiles_img(rng, w, h, tile[0] * c.ppm, tile[1] * c.ppm, color, grout, 0.04, stagger=True)
    c.paste(tex, s0, y0, s1, y1)
    if cap:
        c.fill(s0, y1, s1, y1 + 0.03, np.asarray(color, F32) * 0.95)
        c.shade(s0, y1 + 0.024, s1, y1 + 0.03, 1.08)


# ---------------------------------------------------------------------------------------------
# 3-D pieces
# ---------------------------------------------------------------------------------------------


def _box_faces(
    lo: np.ndarray, hi: np.ndarray, front: Vec, mats: dict[str, Material], ppm: float, skip: Sequence[str] = ()
) -> list[_Face]:
    """The faces of an axis-aligned box. `mats` maps roles (front, back, side, top, bottom) to materials;
    ``side`` is the fallback. `front` is the outward normal of the face that gets the ``front`` role."""
    x0, y0, z0 = (float(v) for v in lo)
    x1, y1, z1 = (float(v) for v in hi)
    dx, dy, dz = x1 - x0, y1 - y0, z1 - z0
    specs = (
        ((0, 1, 0), (x0, y1, z1), (dx, 0, 0), (0, 0, -dz)),
        ((0, -1, 0), (x0, y0, z0), (dx, 0, 0), (0, 0, dz)),
        ((0, 0, -1), (x0, y1, z0), (dx, 0, 0), (0, -dy, 0)),
        ((0, 0, 1), (x1, y1, z1), (-dx, 0, 0), (0, -dy, 0)),
        ((-1, 0, 0), (x0, y1, z1), (0, 0, -dz), (0, -dy, 0)),
        ((1, 0, 0), (x1, y1, z0), (0, 0, dz), (0, -dy, 0)),
    )
    fr = tuple(round(c) for c in front)
    back = tuple(-c for c in fr)
    faces = []
    for normal, o, u, v in specs:
        role = (
            "top"
            if normal == (0, 1, 0)
            else "bottom"
            if normal == (0, -1, 0)
            else "front"
            if normal == fr
            else "back"
            if normal == back
            else "side"
        )
        if role in skip:
            continue
        mat = mats.get(role) or mats["side"]
        tw = int(np.clip(round(math.hypot(*u) * ppm), 2, 2048))
        th = int(np.clip(round(math.hypot(*v) * ppm), 2, 2048))
        faces.append(_face(o, u, v, mat(tw, th)))
    return faces


def _crossed(center: Vec, width: float, height: float, tex_a: np.ndarray, tex_b: np.ndarray) -> list[_Face]:
    """Two crossed vertical cards: a cheap plant or tree that reads from any direction."""
    x, y, z = (float(v) for v in center)
    return [
        _face((x - width / 2, y + height, z), (width, 0, 0), (0, -height, 0), tex_a, two_sided=True),
        _face((x, y + height, z + width / 2), (0, 0, -width), (0, -height, 0), tex_b, two_sided=True),
    ]


_UP = np.array([0.0, 1.0, 0.0])


class _Interior:
    """A room as a box of decorated canvases plus furniture boxes, lit by a few lights.

    World axes: x along the back wall (0..W), y up (0..H), z from the front wall (0) to the back
    wall (D); the camera stands near the front wall and looks toward +z. Along each wall, ``s`` runs
    left to right as seen from inside the room and ``d`` is the distance out from the wall.
    """

    def __init__(
        self,
        rng: np.random.Generator,
        scale: float,
        dims: tuple[float, float, float],
        wall_color: Vec,
        floor: Callable[[int, int, float], np.ndarray],
        ceiling_color: Vec = (246, 245, 241),
    ) -> None:
        self.rng = rng
        self.W, self.D, self.H = dims
        self.ppm = p = max(_BASE_PPM * scale, 40.0)
        W, D, H = dims

        def wall(length: float) -> _Canvas:
            img = _solid(round(H * p), round(length * p), wall_color)
            _mottle(img, rng, 0.5 * p, 0.02, 3)
            _grain(img, rng, 1.2)
            return _Canvas(length, H, p, img)

        self.walls = {"back": wall(W), "front": wall(W), "left": wall(D), "right": wall(D)}
        self.floor = _Canvas(W, D, p, floor(round(W * p), round(D * p), p))
        ceil = _solid(round(D * p), round(W * p), ceiling_color)
        _mottle(ceil, rng, 0.6 * p, 0.015, 2)
        self.ceiling = _Canvas(W, D, p, ceil)
        self.faces: list[_Face] = []
        self.lights: list[_Light] = []
        self.ambient = 0.55
        self.footprints: list[tuple[float, float, float, float]] = []

    # --- geometry helpers -----------------------------------------------------------------------

    def frame(self, wall: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(origin on the floor at s=0, along-wall unit vector, inward normal) of a wall."""
        W, D = self.W, self.D
        o, a, n = {
            "back": ((0, 0, D), (1, 0, 0), (0, 0, -1)),
            "front": ((W, 0, 0), (-1, 0, 0), (0, 0, 1)),
            "left": ((0, 0, 0), (0, 0, 1), (1, 0, 0)),
            "right": ((W, 0, D), (0, 0, -1), (-1, 0, 0)),
        }[wall]
        return np.asarray(o, float), np.asarray(a, float), np.asarray(n, float)

    def point(self, wall: str, s: float, y: float, d: float) -> np.ndarray:
        o, a, n = self.frame(wall)
        return np.asarray(o + s * a + d * n + y * _UP)

    def s_of_z(self, wall: str, z: float) -> float:
        """Position along a side wall of world depth z."""
        return z if wall == "left" else self.D - z

    def against(
        self,
        wall: str,
        s0: float,
        s1: float,
        y0: float,
        y1: float,
        d0: float,
        d1: float,
        mats: dict[str, Material],
        shadow: bool | None = None,
    ) -> None:
        """A box standing against `wall`; its ``front`` faces into the room."""
        p0, p1 = self.point(wall, s0, y0, d0), self.point(wall, s1, y1, d1)
        _, _, n = self.frame(wall)
        self.box(
            np.minimum(p0, p1), np.maximum(p0, p1), mats, front=n, shadow=shadow, skip=("back",) if d0 <= 0.001 else ()
        )

    def box(
        self,
        lo: np.ndarray,
        hi: np.ndarray,
        mats: dict[str, Material],
        front: Vec = (0, 0, -1),
        shadow: bool | None = None,
        skip: Sequence[str] = (),
    ) -> None:
        lo, hi = np.asarray(lo, float), np.asarray(hi, float)
        if lo[1] <= 0.001:
            skip = (*skip, "bottom")
        self.faces += _box_faces(lo, hi, front, mats, self.ppm, skip)
        if shadow if shadow is not None else lo[1] < 0.2:
            self.footprints.append((lo[0], lo[2], hi[0], hi[2]))

    def light(self, pos: Vec, power: float, color: Vec = (1.0, 0.93, 0.84), reach: float = 2.0) -> None:
        self.lights.append(
            _Light(
                power=power,
                color=(float(color[0]), float(color[1]), float(color[2])),
                pos=(float(pos[0]), float(pos[1]), float(pos[2])),
                reach=reach,
            )
        )

    def window_light(self, wall: str, s_mid: float, y_mid: float, area: float) -> None:
        # Daylight pools on the floor in front of the window; the wall around it stays darker.
        self.light(self.point(wall, s_mid, y_mid - 0.3, 1.3), 0.45 * area + 0.2, (0.96, 0.99, 1.05), reach=2.4)

    def plant(self, x: float, z: float, height: float) -> None:
        p = self.ppm
        w = height * 0.7
        tw, th = max(8, int(w * p)), max(8, int(height * p))
        self.faces += _crossed((x, 0.0, z), w, height, _plant_img(self.rng, tw, th), _plant_img(self.rng, tw, th))
        self.footprints.append((x - 0.15, z - 0.15, x + 0.15, z + 0.15))

    def ceiling_light(self, x: float, z: float, radius: float = 0.22, power: float = 0.55) -> None:
        c = self.ceiling
        p = c.ppm
        ctr = (int(x * p), int((self.D - z) * p))  # canvas y is world z once finish() flips the rows
        cv2.circle(c.img, ctr, int(radius * 1.15 * p), (205, 205, 200), -1, cv2.LINE_AA)
        cv2.circle(c.img, ctr, int(radius * p), (255, 250, 238), -1, cv2.LINE_AA)
        cv2.circle(c.emissive, ctr, int(radius * p), 1.0, -1, cv2.LINE_AA)
        self.light((x, self.H - 0.25, z), power, reach=2.6)

    # --- output ---------------------------------------------------------------------------------

    def finish(self) -> list[_Face]:
        """Bake contact shadows and lighting; return every face of the room."""
        fl = self.floor
        p = fl.ppm
        small = np.zeros((max(2, fl.h // 4), max(2, fl.w // 4)), F32)
        for x0, z0, x1, z1 in self.footprints:
            a, b = int((x0 - 0.03) * p / 4), int((x1 + 0.03) * p / 4)
            r0, r1 = int((self.D - z1 - 0.03) * p / 4), int((self.D - z0 + 0.03) * p / 4)
            small[max(r0, 0) : max(r1, 0), max(a, 0) : max(b, 0)] = 1.0
        small = cv2.GaussianBlur(small, (0, 0), max(0.07 * p / 4, 0.8))
        fl.img *= (1.0 - 0.45 * cv2.resize(small, (fl.w, fl.h)))[..., None]
        W, D, H = self.W, self.D, self.H
        wl = self.walls
        shell = [
            _face((0, 0, D), (W, 0, 0), (0, 0, -D), fl.img, shell=True),
            _face((0, H, D), (W, 0, 0), (0, -H, 0), wl["back"].img, emissive=wl["back"].emissive, shell=True),
            _face((W, H, 0), (-W, 0, 0), (0, -H, 0), wl["front"].img, emissive=wl["front"].emissive, shell=True),
            _face((0, H, 0), (0, 0, D), (0, -H, 0), wl["left"].img, emissive=wl["left"].emissive, shell=True),
            _face((W, H, D), (0, 0, -D), (0, -H, 0), wl["right"].img, emissive=wl["right"].emissive, shell=True),
            # the ceiling's texture rows run with z, so flip the canvas (whose rows run against it)
            _face(
                (0, H, 0),
                (W, 0, 0),
                (0, 0, D),
                self.ceiling.img[::-1].copy(),
                emissive=self.ceiling.emissive[::-1].copy(),
                shell=True,
            ),
        ]
        faces = shell + self.faces
        for f in faces:
            _bake(f, self.lights, self.ambient)
        return faces


def _interior_poses(
    rng: np.random.Generator,
    W: float,
    D: float,
    n: int,
    spread: float = 1.0,
    hfov: float = 74.0,
    x_shift: float = 0.0,
    yaw_bias: float = 0.0,
) -> list[_Pose]:
    """Camera positions near the front wall: the first square-on, the others stepped sideways or forward
    and turned 12-25 degrees back toward the room, the way a photographer works a room.

    `x_shift` moves the first position sideways (a fraction of the width), `yaw_bias` turns every view
    (degrees, positive toward +x): for rooms whose subject is not on the back wall."""
    hc = rng.uniform(1.3, 1.5)
    z0 = rng.uniform(0.3, 0.5)
    xb = W * (rng.uniform(0.42, 0.58) + x_shift)
    yaw0 = rng.uniform(-6, 6) + yaw_bias
    sgn = float(rng.choice([-1.0, 1.0]))
    step = min(1.0, W / 4.5) * spread
    spots = [
        (xb, z0, yaw0),
        (xb + sgn * rng.uniform(0.5, 0.9) * step, z0 + rng.uniform(0.0, 0.25), yaw0 - sgn * rng.uniform(14, 24)),
        (
            xb - sgn * rng.uniform(0.3, 0.7) * step,
            z0 + rng.uniform(0.5, 0.9) * min(1.0, D / 4.5),
            yaw0 + sgn * rng.uniform(12, 22),
        ),
        (xb, z0 + 0.3, yaw0 + sgn * rng.uniform(25, 30)),
    ]
    poses = []
    for x, z, yaw in spots[:n]:
        poses.append(
            _Pose(
                pos=(float(np.clip(x, 0.35, W - 0.35)), hc + rng.uniform(-0.05, 0.05), z),
                yaw=float(yaw),
                pitch=float(rng.uniform(-4, -1)),
                hfov=hfov,
            )
        )
    return poses


# ---------------------------------------------------------------------------------------------
# furniture
# ---------------------------------------------------------------------------------------------

_WALL_COLORS: tuple[Color, ...] = (
    (236, 232, 222),
    (214, 205, 190),
    (200, 206, 204),
    (188, 200, 180),
    (194, 208, 220),
    (228, 212, 188),
    (222, 204, 198),
    (208, 200, 214),
)
_WOODS: tuple[Color, ...] = ((178, 136, 94), (122, 86, 60), (198, 170, 132), (160, 148, 134), (150, 100, 62))
_FABRICS: tuple[Color, ...] = (
    (120, 125, 130),
    (190, 180, 165),
    (70, 85, 110),
    (150, 110, 90),
    (95, 120, 100),
    (215, 210, 200),
    (60, 60, 65),
    (170, 150, 120),
)
_ACCENTS: tuple[Color, ...] = (
    (200, 80, 60),
    (230, 190, 70),
    (60, 110, 160),
    (40, 40, 45),
    (235, 235, 230),
    (150, 60, 90),
    (70, 140, 120),
    (210, 130, 60),
)


def _pick(rng: np.random.Generator, options: Sequence[Color]) -> Color:
    return options[int(rng.integers(len(options)))]


def _legs(
    b: _Interior, wall: str, s0: float, s1: float, d0: float, d1: float, height: float, mat: Material, t: float = 0.05
) -> None:
    for s in (s0 + 0.03, s1 - 0.03 - t):
        for d in (d0 + 0.03, d1 - 0.03 - t):
            b.against(wall, s, s + t, 0.0, height, d, d + t, {"side": mat}, shadow=False)


def _sofa(
    b: _Interior,
    wall: str,
    s0: float,
    s1: float,
    color: Color,
    d0: float = 0.0,
    depth: float = 0.92,
    back_h: float = 0.86,
) -> None:
    """A sofa (or, short, an armchair): base, back, arms, seat and back cushions, throw pillows."""
    rng, p = b.rng, b.ppm
    fab = _fabric(rng, color, p)
    cush = _fabric(rng, tuple(c * 1.05 for c in color), p)
    dark = _plain(rng, (45, 38, 32))
    arm = 0.2
    _legs(b, wall, s0, s1, d0, d0 + depth, 0.12, dark, 0.04)
    b.against(wall, s0, s1, 0.12, 0.4, d0, d0 + depth, {"side": fab}, shadow=True)
    b.against(wall, s0, s1, 0.4, back_h, d0, d0 + 0.22, {"side": fab})
    for a0 in (s0, s1 - arm):
        b.against(wall, a0, a0 + arm, 0.4, 0.64, d0 + 0.22, d0 + depth, {"side": fab})
    inner0, inner1 = s0 + arm, s1 - arm
    n = max(1, round((inner1 - inner0) / 0.65))
    cw = (inner1 - inner0) / n
    for k in range(n):
        a, c = inner0 + k * cw + 0.008, inner0 + (k + 1) * cw - 0.008
        b.against(wall, a, c, 0.4, 0.52, d0 + 0.22, d0 + depth - 0.02, {"side": cush})
        b.against(wall, a, c, 0.52, back_h - 0.04, d0 + 0.22, d0 + 0.38, {"side": cush})
    patterns = ["stripes", "checks", "dots", "zigzag"]
    accent = _pick(rng, _ACCENTS)
    for k, s in enumerate((inner0 + 0.05, inner1 - 0.47) if inner1 - inner0 > 1.0 else (inner0 + 0.05,)):
        mat = _fabric(rng, _pick(rng, _ACCENTS), p, patterns[(k + int(rng.integers(4))) % 4], accent)
        b.against(wall, s, s + 0.42, 0.52, 0.92, d0 + 0.38, d0 + 0.52, {"side": mat})


def _lamp(
    b: _Interior, x: float, z: float, y_base: float, shade_col: Color = (236, 226, 205), tall: bool = False
) -> None:
    rng, p = b.rng, b.ppm
    base_mat = _plain(rng, _pick(rng, ((40, 40, 42), (190, 160, 100), (220, 215, 205), (70, 100, 110))))
    pole_h = 1.45 if tall else 0.28
    t = 0.03 if tall else 0.09
    b.box(
        np.array([x - t / 2, y_base, z - t / 2]),
        np.array([x + t / 2, y_base + pole_h, z + t / 2]),
        {"side": base_mat},
        shadow=tall,
    )
    sw = 0.42 if tall else 0.34
    sh = 0.32 if tall else 0.26
    y0 = y_base + pole_h
    b.box(
        np.array([x - sw / 2, y0, z - sw / 2]),
        np.array([x + sw / 2, y0 + sh, z + sw / 2]),
        {"side": _fabric(rng, shade_col, p), "top": _plain(rng, (250, 244, 225))},
    )
    b.light((x, y0 + sh * 0.4, z - 0.05), 0.3 if tall else 0.22, (1.0, 0.88, 0.7), reach=1.5)


def _coffee_table(b: _Interior, x0: float, z0: float, x1: float, z1: float, height: float, wood: Color) -> None:
    rng, p = b.rng, b.ppm
    top = _wood(rng, wood, p)
    legm = _plain(rng, np.asarray(wood) * 0.6)
    b.box(np.array([x0, height - 0.045, z0]), np.array([x1, height, z1]), {"side": top}, shadow=False)
    for x in (x0 + 0.04, x1 - 0.09):
        for z in (z0 + 0.04, z1 - 0.09):
            b.box(np.array([x, 0.0, z]), np.array([x + 0.05, height - 0.045, z + 0.05]), {"side": legm}, shadow=False)
    b.footprints.append((x0 + 0.1, z0 + 0.1, x1 - 0.1, z1 - 0.1))
    # a stack of books and a bowl on top
    cx, cz = x0 + (x1 - x0) * rng.uniform(0.25, 0.45), (z0 + z1) / 2
    y = height
    for _ in range(int(rng.integers(2, 4))):
        bw, bd, bh = rng.uniform(0.2, 0.3), rng.uniform(0.14, 0.22), rng.uniform(0.025, 0.05)
        col = _pick(rng, _ACCENTS)
        b.box(
            np.array([cx - bw / 2, y, cz - bd / 2]),
            np.array([cx + bw / 2, y + bh, cz + bd / 2]),
            {"side": _plain(rng, (235, 230, 220)), "top": _fabric(rng, col, p, "stripes")},
            shadow=False,
        )
        y += bh
    bx = x0 + (x1 - x0) * 0.72
    b.box(
        np.array([bx - 0.12, height, cz - 0.12]),
        np.array([bx + 0.12, height + 0.08, cz + 0.12]),
        {"side": _plain(rng, _pick(rng, _ACCENTS)), "top": _fabric(rng, (60, 50, 40), p, "dots")},
        shadow=False,
    )


# ---------------------------------------------------------------------------------------------
# rooms
# ---------------------------------------------------------------------------------------------

Scene = tuple[list[_Face], list[_Pose]]


def _living_room(rng: np.random.Generator, scale: float, style: dict[str, Any], n_views: int) -> Scene:
    W, D, H = rng.uniform(5.6, 6.5), rng.uniform(4.7, 5.4), 2.7
    wood = style["wood"]
    b = _Interior(rng, scale, (W, D, H), style["wall"], lambda w, h, p: _planks_img(rng, w, h, p, wood))
    p = b.ppm
    for canvas in b.walls.values():
        _baseboard(canvas)
    left = rng.random() < 0.5
    sofa_wall, tv_wall = ("left", "right") if left else ("right", "left")

    def bx(s0: float, s1: float) -> tuple[float, float]:  # back-wall span measured from the sofa side
        return (s0, s1) if left else (W - s1, W - s0)

    def wx(x: float) -> float:  # world x measured from the sofa wall
        return x if left else W - x

    back = b.walls["back"]
    # armchair in the back corner on the sofa side, bookcase next to it, window in the rest
    chair_col = _pick(rng, _FABRICS)
    a0, a1 = bx(0.2, 1.05)
    _sofa(b, "back", a0, a1, chair_col, depth=0.85, back_h=0.95)
    shelf_w = rng.uniform(0.9, 1.2)
    s0, s1 = bx(1.3, 1.3 + shelf_w)
    b.against(
        "back",
        s0,
        s1,
        0.0,
        2.0,
        0.0,
        0.36,
        {"front": lambda w, h: _books_img(rng, w, h, p, wood), "side": _wood(rng, wood, p)},
    )
    back.reserve(s0, s1)
    span0, span1 = 1.3 + shelf_w + 0.45, W - 0.5
    win_w = min(rng.uniform(1.5, 2.1), span1 - span0)
    w0 = span0 + rng.uniform(0, max(span1 - span0 - win_w, 0))
    ws0, ws1 = bx(w0, w0 + win_w)
    y0 = rng.uniform(0.8, 0.9)
    _window(back, rng, ws0, ws1, y0, 2.2, curtains=_pick(rng, _FABRICS), grid=(3, 2))
    b.window_light("back", (ws0 + ws1) / 2, 1.5, win_w * 1.4)
    lamp_x = wx(1.2)
    _lamp(b, lamp_x, D - 0.45, 0.0, tall=True)
    b.plant(wx(W - 0.4), D - 0.4, rng.uniform(1.1, 1.5))

    # sofa against the sofa wall, art above, side table with a lamp at its front end
    L = rng.uniform(2.0, 2.4)
    zc = min(D * rng.uniform(0.47, 0.55), D - 1.25 - L / 2)
    sw = b.walls[sofa_wall]
    s_a, s_b = sorted((b.s_of_z(sofa_wall, zc - L / 2), b.s_of_z(sofa_wall, zc + L / 2)))
    _sofa(b, sofa_wall, s_a, s_b, _pick(rng, _FABRICS))
    if rng.random() < 0.6:
        _art(sw, rng, (s_a + s_b) / 2, 1.6, rng.uniform(1.0, 1.35), rng.uniform(0.65, 0.85))
    else:
        for off in (-0.32, 0.32):
            _art(sw, rng, (s_a + s_b) / 2 + off * L, 1.6, 0.5, 0.65)
    z_t0, z_t1 = zc - L / 2 - 0.55, zc - L / 2 - 0.08
    t0, t1 = sorted((b.s_of_z(sofa_wall, z_t0), b.s_of_z(sofa_wall, z_t1)))
    b.against(
        sofa_wall,
        t0,
        t1,
        0.0,
        0.56,
        0.02,
        0.5,
        {"side": _wood(rng, wood, p), "front": lambda w, h: _drawers_img(rng, w, h, p, wood, 1, 1, (40, 40, 40))},
    )
    lp = b.point(sofa_wall, (t0 + t1) / 2, 0.56, 0.26)
    _lamp(b, float(lp[0]), float(lp[2]), 0.56)
    _outlet(sw, b.s_of_z(sofa_wall, z_t0) - 0.3)

    # media console and TV on the opposite wall, door near the front
    tw_ = b.walls[tv_wall]
    CL = rng.uniform(1.6, 1.9)
    m0, m1 = sorted((b.s_of_z(tv_wall, zc - CL / 2), b.s_of_z(tv_wall, zc + CL / 2)))
    console_col = _pick(rng, ((40, 40, 42), (235, 232, 225), wood, (80, 95, 90)))
    b.against(
        tv_wall,
        m0,
        m1,
        0.0,
        0.52,
        0.0,
        0.42,
        {
            "front": lambda w, h: _cabinet_img(
                rng, w, h, p, console_col, (150, 150, 150), drawers=False, toe=0.04, door_w=0.45
            ),
            "side": _plain(rng, console_col),
        },
    )
    tv_w = rng.uniform(1.2, 1.45)
    tc = (m0 + m1) / 2
    b.against(
        tv_wall,
        tc - tv_w / 2,
        tc + tv_w / 2,
        0.95,
        0.95 + tv_w * 9 / 16,
        0.0,
        0.04,
        {"front": lambda w, h: _tv_img(rng, w, h), "side": _plain(rng, (20, 20, 22))},
    )
    tw_.reserve(tc - tv_w / 2, tc + tv_w / 2, 0.9, 2.0)
    # decor on the console
    b.against(tv_wall, m0 + 0.1, m0 + 0.3, 0.52, 0.8, 0.12, 0.3, {"side": _plain(rng, _pick(rng, _ACCENTS))})
    b.against(
        tv_wall,
        m1 - 0.45,
        m1 - 0.15,
        0.52,
        0.58,
        0.1,
        0.32,
        {"side": _plain(rng, (235, 230, 220)), "top": _fabric(rng, _pick(rng, _ACCENTS), p, "checks")},
    )
    d_s = b.s_of_z(tv_wall, 0.3) if tv_wall == "left" else b.s_of_z(tv_wall, 0.3) - 0.86
    _door(tw_, rng, d_s, (238, 236, 230))
    s_art = tw_.find(rng, 0.6, 1.2, 2.0, lo=0.3)
    if s_art is not None:
        _art(tw_, rng, s_art + 0.3, 1.6, 0.55, 0.7)
    _outlet(tw_, (m0 + m1) / 2 + 0.3, 0.25)

    # rug and coffee table between them
    rx0, rx1 = sorted((wx(1.15), wx(W - 0.95)))
    rug_len = min(2.6, D - 1.0)
    rz0, rz1 = zc - rug_len / 2, zc + rug_len / 2
    rw, rh = b.floor.size(rx0, rz0, rx1, rz1)
    b.floor.paste(_rug_img(rng, rw, rh, p), rx0, rz0, rx1, rz1)
    cx0, cx1 = sorted((wx(1.45), wx(2.05)))
    _coffee_table(b, cx0, zc - 0.55, cx1, zc + 0.55, 0.42, wood)
    b.ceiling_light(W / 2, D / 2)
    return b.finish(), _interior_poses(rng, W, D, n_views)


def _kitchen(rng: np.random.Generator, scale: float, style: dict[str, Any], n_views: int) -> Scene:
    W, D, H = rng.uniform(4.4, 5.0), rng.uniform(4.9, 5.4), 2.65
    tile_col = _pick(rng, ((215, 212, 205), (190, 185, 175), (150, 148, 145), (225, 220, 208)))
    marble = rng.random() < 0.5
    tile_m = rng.choice([0.45, 0.6])
    b = _Interior(
        rng,
        scale,
        (W, D, H),
        style["wall"],
        lambda w, h, p: _tiles_img(
            rng, w, h, tile_m * p, tile_m * p, tile_col, np.asarray(tile_col) * 0.7, 0.05, marble=marble
        ),
    )
    p = b.ppm
    for canvas in b.walls.values():
        _baseboard(canvas)
    cab = _pick(rng, ((244, 243, 238), (52, 70, 92), (150, 162, 150), (198, 180, 150), (75, 75, 78)))
    handle = (45, 45, 48) if sum(cab) > 500 else (205, 175, 100)
    stone = _granite(rng, _pick(rng, ((228, 226, 220), (72, 70, 68), (190, 180, 165), (150, 150, 152))), p)
    splash_col = _pick(rng, ((240, 240, 236), (170, 200, 205), (215, 205, 190), (90, 110, 130)))
    front = lambda w, h: _cabinet_img(rng, w, h, p, cab, handle)  # noqa: E731
    upper = lambda w, h: _cabinet_img(rng, w, h, p, cab, handle, drawers=False, toe=0.0)  # noqa: E731
    side = _plain(rng, cab, 0.02)
    back = b.walls["back"]

    # back wall: base run with the range, counter with sink and cooktop, splash, window, uppers, hood
    s_sink = rng.uniform(1.2, W * 0.42)
    s_rng = rng.uniform(max(s_sink + 1.35, W * 0.58), W - 0.7)
    segs = [(0.0, s_rng - 0.38), (s_rng + 0.38, W)]
    for seg0, seg1 in segs:
        if seg1 - seg0 > 0.2:
            b.against("back", seg0, seg1, 0.0, 0.88, 0.0, 0.6, {"front": front, "side": side})
    b.against(
        "back",
        s_rng - 0.38,
        s_rng + 0.38,
        0.0,
        0.88,
        0.0,
        0.62,
        {"front": lambda w, h: _oven_img(rng, w, h, p), "side": _steel(rng, p)},
    )
    b.against(
        "back",
        0.0,
        W,
        0.88,
        0.92,
        0.0,
        0.64,
        {"side": stone, "top": lambda w, h: _counter_top_img(rng, w, h, p, stone, s_sink, s_rng)},
    )
    _wall_tiles(back, rng, 0.0, W, 0.92, 1.48, splash_col, cap=False)
    _window(back, rng, s_sink - 0.6, s_sink + 0.6, 1.12, 2.05, grid=(2, 1))
    back.fill(s_sink - 0.67, 1.9, s_sink + 0.67, 2.12, np.asarray(_pick(rng, _FABRICS), F32))  # roman shade
    b.window_light("back", s_sink, 1.6, 1.1)
    # faucet
    b.against("back", s_sink - 0.02, s_sink + 0.02, 0.92, 1.22, 0.05, 0.09, {"side": _steel(rng, p, 210)})
    b.against("back", s_sink - 0.02, s_sink + 0.02, 1.18, 1.22, 0.09, 0.3, {"side": _steel(rng, p, 210)})
    for seg0, seg1 in ((0.0, s_sink - 0.75), (s_sink + 0.75, s_rng - 0.45), (s_rng + 0.45, W)):
        if seg1 - seg0 > 0.3:
            b.against("back", seg0, seg1, 1.5, 2.28, 0.0, 0.35, {"front": upper, "side": side, "bottom": side})
    b.against("back", s_rng - 0.4, s_rng + 0.4, 1.62, 1.9, 0.0, 0.5, {"side": _steel(rng, p)})
    b.against("back", s_rng - 0.16, s_rng + 0.16, 1.9, H, 0.0, 0.28, {"side": _steel(rng, p)})
    # things on the counter
    for lo_s, hi_s in ((0.15, s_sink - 0.55), (s_sink + 0.55, s_rng - 0.5)):
        s = lo_s
        while s < hi_s - 0.2:
            w_ = rng.uniform(0.12, 0.3)
            if s + w_ > hi_s:
                break
            h_ = rng.uniform(0.1, 0.38)
            col = _pick(rng, _ACCENTS)
            b.against(
                "back",
                s,
                s + w_,
                0.92,
                0.92 + h_,
                0.08,
                0.08 + rng.uniform(0.12, 0.25),
                {"side": _plain(rng, col), "front": _fabric(rng, col, p, "stripes")},
            )
            s += w_ + rng.uniform(0.15, 0.5)

    # side run with a fridge at its front end
    sw = "left" if rng.random() < 0.5 else "right"
    run = rng.uniform(1.3, 1.8)
    z0, z1 = D - 0.6 - run, D - 0.6
    r0, r1 = sorted((b.s_of_z(sw, z0), b.s_of_z(sw, z1)))
    b.against(sw, r0, r1, 0.0, 0.88, 0.0, 0.6, {"front": front, "side": side})
    b.against(sw, r0, r1, 0.88, 0.92, 0.0, 0.64, {"side": stone})
    b.against(sw, r0, r1, 1.5, 2.28, 0.0, 0.35, {"front": upper, "side": side, "bottom": side})
    _wall_tiles(b.walls[sw], rng, r0, r1, 0.92, 1.48, splash_col, cap=False)
    f0, f1 = sorted((b.s_of_z(sw, z0 - 0.92), b.s_of_z(sw, z0 - 0.02)))
    b.against(
        sw, f0, f1, 0.0, 1.82, 0.0, 0.72, {"front": lambda w, h: _fridge_img(rng, w, h, p), "side": _steel(rng, p, 185)}
    )
    b.against(sw, f0 - 0.02, f1 + 0.02, 1.85, H, 0.0, 0.62, {"front": upper, "side": side})
    other = "right" if sw == "left" else "left"
    ow = b.walls[other]
    d_s = b.s_of_z(other, 0.35) if other == "left" else b.s_of_z(other, 0.35) - 0.86
    _door(ow, rng, d_s, (238, 236, 230))
    s_art = ow.find(rng, 0.7, 1.2, 2.0, lo=0.3)
    if s_art is not None:
        _art(ow, rng, s_art + 0.35, 1.6, 0.6, 0.5)

    # island with stools and pendant lights
    ix0 = (0.6 + 1.0) if sw == "left" else 0.9
    ix1 = W - 0.9 if sw == "left" else W - 1.6
    Li = min(2.1, ix1 - ix0)
    xm = (ix0 + ix1) / 2
    iz1 = D - 0.6 - 1.05
    iz0 = iz1 - 0.9
    b.box(
        np.array([xm - Li / 2, 0, iz0 + 0.25]),
        np.array([xm + Li / 2, 0.88, iz1]),
        {
            "front": lambda w, h: _cabinet_img(rng, w, h, p, cab, handle, drawers=False, toe=0.1, door_w=0.55),
            "back": front,
            "side": side,
        },
        front=(0, 0, -1),
    )
    b.box(
        np.array([xm - Li / 2 - 0.03, 0.88, iz0]),
        np.array([xm + Li / 2 + 0.03, 0.92, iz1 + 0.03]),
        {"side": stone},
        shadow=False,
    )
    n_st = 3 if Li > 1.6 else 2
    metal = _plain(rng, (50, 50, 52))
    seat = _fabric(rng, _pick(rng, _FABRICS), p)
    for k in range(n_st):
        sx = xm - Li / 2 + Li * (k + 0.5) / n_st
        sz = iz0 - 0.12
        b.box(np.array([sx - 0.2, 0.62, sz - 0.2]), np.array([sx + 0.2, 0.68, sz + 0.2]), {"side": seat}, shadow=False)
        b.box(np.array([sx - 0.025, 0.0, sz - 0.025]), np.array([sx + 0.025, 0.62, sz + 0.025]), {"side": metal})
        b.box(
            np.array([sx - 0.16, 0.0, sz - 0.16]), np.array([sx + 0.16, 0.02, sz + 0.16]), {"side": metal}, shadow=False
        )
    shade = _plain(rng, _pick(rng, ((40, 40, 42), (200, 170, 100), (235, 235, 230))))
    for k in range(2):
        px_ = xm - Li / 4 + k * Li / 2
        pz = (iz0 + iz1) / 2
        b.box(
            np.array([px_ - 0.004, 2.17, pz - 0.004]),
            np.array([px_ + 0.004, H, pz + 0.004]),
            {"side": metal},
            shadow=False,
        )
        b.box(
            np.array([px_ - 0.13, 1.97, pz - 0.13]),
            np.array([px_ + 0.13, 2.17, pz + 0.13]),
            {"side": shade, "bottom": _plain(rng, (255, 248, 225))},
            shadow=False,
        )
        b.light((px_, 1.85, pz), 0.18, (1.0, 0.9, 0.75), reach=1.2)
    b.ceiling_light(W / 2, D * 0.35, 0.18)
    return b.finish(), _interior_poses(rng, W, D, n_views)


def _bedroom(rng: np.random.Generator, scale: float, style: dict[str, Any], n_views: int) -> Scene:
    W, D, H = rng.uniform(3.9, 4.6), rng.uniform(4.4, 5.0), 2.6
    wood = style["wood"]
    b = _bedroom_shell(rng, scale, style, (W, D, H))
    bed = _bed_layout(rng, b, W, D)
    head_h = _bed(rng, b, bed, wood)
    _nightstands(rng, b, bed, wood)
    bc = b.walls[bed.wall]
    if rng.random() < 0.6:
        _art(bc, rng, bed.s_mid, head_h + 0.5, min(bed.width * 0.75, 1.3), rng.uniform(0.5, 0.7))
    else:
        for off in (-0.25, 0.25):
            _art(bc, rng, bed.s_mid + off * bed.width, head_h + 0.5, 0.45, 0.6)
    _outlet(bc, bed.s0 - bed.nightstand_w - 0.3)
    _bedroom_window(rng, b, bed, W, D)
    _dresser(rng, b, bed.dresser_wall, D, wood)
    _bed_foot(rng, b, bed)
    b.ceiling_light(W / 2, D / 2)
    # with the bed on a side wall, stand on the other side of the room and turn toward it
    side = {"back": 0.0, "left": -1.0, "right": 1.0}[bed.wall]
    return b.finish(), _interior_poses(rng, W, D, n_views, hfov=76.0, x_shift=-0.15 * side, yaw_bias=10.0 * side)


def _bedroom_shell(
    rng: np.random.Generator, scale: float, style: dict[str, Any], dims: tuple[float, float, float]
) -> _Interior:
    """The room's walls (with baseboards) over a carpet or a plank floor."""
    wood = style["wood"]
    if rng.random() < 0.5:
        carpet = _pick(rng, ((190, 180, 165), (160, 160, 158), (205, 198, 185)))
        b = _Interior(rng, scale, dims, style["wall"], lambda w, h, p: _carpet_img(rng, w, h, p, carpet))
    else:
        b = _Interior(rng, scale, dims, style["wall"], lambda w, h, p: _planks_img(rng, w, h, p, wood))
    for canvas in b.walls.values():
        _baseboard(canvas)
    return b


@dataclass(frozen=True)
class _BedLayout:
    """Where a bedroom's furniture goes: the bed's wall, its centre `s_mid` along that wall and its
    width; the walls holding the window and the dresser; the nightstands' width."""

    wall: str
    s_mid: float
    width: float
    nightstand_w: float
    window_wall: str
    dresser_wall: str

    @property
    def s0(self) -> float:
        return self.s_mid - self.width / 2

    @property
    def s1(self) -> float:
        return self.s_mid + self.width / 2


def _bed_layout(rng: np.random.Generator, b: _Interior, W: float, D: float) -> _BedLayout:
    # The bed's headboard goes against the back wall or one side wall; the window and the dresser take
    # two of the remaining walls, so two bedrooms of one listing rarely share a layout.
    bed_wall = str(rng.choice(["back", "back", "left", "right"]))
    bw = float(rng.choice([1.55, 1.7, 1.9]))
    ns_w = rng.uniform(0.42, 0.58)
    if bed_wall == "back":
        win_wall, dresser_wall = ("left", "right") if rng.random() < 0.5 else ("right", "left")
        s_bed = W / 2 + rng.uniform(-0.25, 0.25)
    else:  # toward the back corner, clear of the camera, with a nightstand between it and the corner
        win_wall, dresser_wall = "back", ("right" if bed_wall == "left" else "left")
        s_bed = b.s_of_z(bed_wall, D - bw / 2 - ns_w - 0.15 - rng.uniform(0.0, 0.25))
    return _BedLayout(bed_wall, s_bed, bw, ns_w, win_wall, dresser_wall)


def _bed(rng: np.random.Generator, b: _Interior, bed: _BedLayout, wood: Color) -> float:
    """Headboard, frame, duvet, pillows, a cushion and maybe a throw; returns the headboard's height."""
    p = b.ppm
    bed_wall, s0, s1, bw, s_bed = bed.wall, bed.s0, bed.s1, bed.width, bed.s_mid
    frame_col = _pick(rng, (wood, (60, 58, 56), (225, 220, 210)))
    duvet_col = _pick(rng, ((238, 236, 230), (200, 205, 210), (120, 140, 160), (210, 190, 170), (90, 100, 90)))
    accent = _pick(rng, _ACCENTS)
    pattern = str(rng.choice(["plain", "stripes", "checks", "dots", "zigzag"]))
    head_col = _pick(rng, _FABRICS)
    head_h = rng.uniform(1.0, 1.4)
    if rng.random() < 0.6:
        head: dict[str, Material] = {
            "front": lambda w, h: _headboard_img(rng, w, h, p, head_col),
            "side": _fabric(rng, head_col, p),
        }
    else:
        head = {
            "front": lambda w, h: _drawers_img(
                rng, w, h, p, frame_col, 1, int(rng.integers(3, 6)), np.asarray(frame_col) * 0.5
            ),
            "side": _wood(rng, frame_col, p),
        }
    b.against(bed_wall, s0 - 0.06, s1 + 0.06, 0.0, head_h, 0.0, 0.08, head)
    b.against(bed_wall, s0, s1, 0.1, 0.32, 0.08, 2.15, {"side": _wood(rng, frame_col, p)}, shadow=True)
    _legs(b, bed_wall, s0, s1, 0.08, 2.15, 0.1, _plain(rng, np.asarray(frame_col) * 0.7))
    duvet_side = _fabric(rng, duvet_col, p, pattern, accent)
    b.against(
        bed_wall,
        s0 - 0.03,
        s1 + 0.03,
        0.3,
        0.6,
        0.1,
        2.18,
        {"side": duvet_side, "top": lambda w, h: _duvet_img(rng, w, h, p, duvet_col, pattern, accent, 0.18)},
    )
    pil = _fabric(rng, _pick(rng, ((240, 238, 233), (225, 215, 200), (200, 205, 215))), p)
    n_p = int(rng.choice([2, 3])) if bw > 1.6 else 2
    for k in range(n_p):
        a = s0 + 0.08 + k * (bw - 0.16) / n_p
        b.against(bed_wall, a, a + (bw - 0.16) / n_p - 0.05, 0.6, 0.8, 0.12, 0.45, {"side": pil})
    deco = _fabric(rng, accent, p, str(rng.choice(["stripes", "dots", "zigzag"])), (240, 238, 233))
    dw = rng.uniform(0.4, 0.7)
    b.against(bed_wall, s_bed - dw / 2, s_bed + dw / 2, 0.6, 0.82, 0.45, 0.6, {"side": deco})
    if rng.random() < 0.7:
        throw = _fabric(rng, _pick(rng, _FABRICS), p, "checks", accent)
        b.against(bed_wall, s0 - 0.05, s1 + 0.05, 0.34, 0.625, 1.55, 1.95, {"side": throw})
    return head_h


def _nightstands(rng: np.random.Generator, b: _Interior, bed: _BedLayout, wood: Color) -> None:
    """A nightstand with a lamp on each side of the bed."""
    p = b.ppm
    ns_w = bed.nightstand_w
    ns_col = _pick(rng, (wood, (240, 238, 232), (50, 50, 52)))
    for a in (bed.s0 - ns_w - 0.08, bed.s1 + 0.08):
        b.against(
            bed.wall,
            a,
            a + ns_w,
            0.0,
            0.58,
            0.0,
            0.42,
            {
                "front": lambda w, h: _drawers_img(rng, w, h, p, ns_col, int(rng.integers(1, 3)), 1, (180, 160, 110)),
                "side": _wood(rng, ns_col, p),
            },
        )
        lp = b.point(bed.wall, a + ns_w / 2, 0.58, 0.2)
        _lamp(
            b, float(lp[0]), float(lp[2]), 0.58, shade_col=_pick(rng, ((236, 226, 205), (60, 60, 62), (200, 215, 220)))
        )


def _bedroom_window(rng: np.random.Generator, b: _Interior, bed: _BedLayout, W: float, D: float) -> None:
    """The window with curtains and its daylight; a plant beside it when it is on the back wall."""
    win_wall = bed.window_wall
    wc = b.walls[win_wall]
    win_w = rng.uniform(1.1, 1.5)
    wm = W * rng.uniform(0.35, 0.65) if win_wall == "back" else b.s_of_z(win_wall, D * rng.uniform(0.45, 0.6))
    _window(wc, rng, wm - win_w / 2, wm + win_w / 2, 0.9, 2.15, curtains=_pick(rng, _FABRICS))
    b.window_light(win_wall, wm, 1.5, win_w * 1.25)
    if win_wall == "back" and rng.random() < 0.7:
        b.plant(0.4 if bed.wall == "right" else W - 0.4, D - 0.4, rng.uniform(0.9, 1.4))


def _dresser(rng: np.random.Generator, b: _Interior, dresser_wall: str, D: float, wood: Color) -> None:
    """A dresser with a mirror or art above it and a small object on top, and the room's door."""
    p = b.ppm
    oc = b.walls[dresser_wall]
    dl = rng.uniform(1.1, 1.45)
    dm = b.s_of_z(dresser_wall, D * rng.uniform(0.5, 0.62))
    d0, d1 = dm - dl / 2, dm + dl / 2
    dcol = _pick(rng, (wood, (238, 236, 230), (90, 100, 105)))
    rows, cols = (3, 2) if rng.random() < 0.6 else (4, 1)
    b.against(
        dresser_wall,
        d0,
        d1,
        0.0,
        0.82 if rows == 3 else 1.1,
        0.0,
        0.5,
        {"front": lambda w, h: _drawers_img(rng, w, h, p, dcol, rows, cols, (60, 55, 50)), "side": _wood(rng, dcol, p)},
    )
    top_y = 0.82 if rows == 3 else 1.1
    if rng.random() < 0.5:
        mw, mh = min(dl * 0.7, 0.9), 0.8
        pw_, ph_ = oc.size(dm - mw / 2, top_y + 0.2, dm + mw / 2, top_y + 0.2 + mh)
        oc.paste(
            _mirror_img(rng, pw_, ph_, _pick(rng, ((40, 40, 40), (190, 160, 100), wood))),
            dm - mw / 2,
            top_y + 0.2,
            dm + mw / 2,
            top_y + 0.2 + mh,
        )
    else:
        _art(oc, rng, dm, top_y + 0.65, min(dl * 0.6, 0.8), 0.6)
    pt = b.point(dresser_wall, d1 - 0.25, top_y, 0.25)
    b.box(
        np.array([pt[0] - 0.08, top_y, pt[2] - 0.08]),
        np.array([pt[0] + 0.08, top_y + 0.23, pt[2] + 0.08]),
        {"side": _plain(rng, _pick(rng, _ACCENTS))},
        shadow=False,
    )
    d_s = b.s_of_z(dresser_wall, 0.3) if dresser_wall == "left" else b.s_of_z(dresser_wall, 0.3) - 0.86
    _door(oc, rng, d_s, (238, 236, 230))


def _bed_foot(rng: np.random.Generator, b: _Interior, bed: _BedLayout) -> None:
    """A rug under the foot of the bed, maybe a bench at its end."""
    p = b.ppm
    c0 = b.point(bed.wall, bed.s0 - 0.55, 0, 0.9)
    c1 = b.point(bed.wall, bed.s1 + 0.55, 0, 0.9 + rng.uniform(1.6, 2.0))
    if rng.random() < 0.7:
        rx0, rx1 = sorted((float(c0[0]), float(c1[0])))
        rz0, rz1 = sorted((float(c0[2]), float(c1[2])))
        rw, rh = b.floor.size(rx0, rz0, rx1, rz1)
        b.floor.paste(_rug_img(rng, rw, rh, p), rx0, rz0, rx1, rz1)
    if bed.wall == "back" and rng.random() < 0.5:
        b.against(
            bed.wall,
            bed.s_mid - 0.55,
            bed.s_mid + 0.55,
            0.0,
            0.45,
            2.25,
            2.62,
            {"side": _fabric(rng, _pick(rng, _FABRICS), p)},
        )


def _bathroom(rng: np.random.Generator, scale: float, style: dict[str, Any], n_views: int) -> Scene:
    W, D, H = rng.uniform(2.7, 3.1), rng.uniform(2.6, 3.0), 2.5
    ftile = _pick(rng, ((225, 222, 215), (120, 125, 130), (200, 195, 185), (60, 62, 66)))
    ft = rng.choice([0.1, 0.2, 0.3])
    b = _Interior(
        rng,
        scale,
        (W, D, H),
        style["wall"],
        lambda w, h, p: _tiles_img(rng, w, h, ft * p, ft * p, ftile, (215, 212, 205), 0.06),
    )
    p = b.ppm
    wall_tile = _pick(rng, ((242, 242, 238), (200, 220, 222), (225, 215, 200), (120, 150, 160)))
    tub_len = min(1.65, W - 0.95)
    back = b.walls["back"]
    for name, c in b.walls.items():
        _wall_tiles(c, rng, 0.0, c.length, 0.0, 1.15, wall_tile)
        if name == "back":
            _wall_tiles(c, rng, 0.0, tub_len + 0.03, 1.15, 1.95, wall_tile)
        if name == "left":
            _wall_tiles(c, rng, D - 0.78, D, 1.15, 1.95, wall_tile)
    _window(back, rng, tub_len / 2 - 0.35, tub_len / 2 + 0.35, 1.4, 1.85, frosted=True, grid=(1, 1))
    b.window_light("back", tub_len / 2, 1.6, 0.6)
    white = _plain(rng, (244, 244, 242), 0.02)
    tub_base = _plain(rng, (244, 244, 242), 0.02)

    def tub_top(w: int, h: int) -> np.ndarray:
        return _basin_top_img(
            rng, w, h, p, tub_base(w, h), (w / p / 2, h / p / 2, w / p / 2 - 0.07, h / p / 2 - 0.07), oval=False
        )

    b.against("back", 0.0, tub_len, 0.0, 0.56, 0.0, 0.76, {"side": white, "top": tub_top})
    steel = _steel(rng, p, 215)
    b.against("back", 0.18, 0.22, 0.68, 0.72, 0.0, 0.14, {"side": steel})
    b.against("back", 0.0, tub_len, 1.96, 1.98, 0.74, 0.76, {"side": steel})
    curtain = _fabric(
        rng,
        _pick(rng, _ACCENTS[:4] + _ACCENTS[5:]),
        p,
        str(rng.choice(["stripes", "checks", "zigzag"])),
        (240, 240, 236),
    )
    b.against("back", 0.0, rng.uniform(0.5, 0.75), 0.5, 1.95, 0.73, 0.75, {"side": curtain})
    if W - tub_len >= 0.85:  # toilet beside the tub
        sc = (tub_len + W) / 2
        b.against("back", sc - 0.22, sc + 0.22, 0.42, 0.8, 0.0, 0.2, {"side": white})
        b.against("back", sc - 0.19, sc + 0.19, 0.0, 0.4, 0.18, 0.68, {"side": white})
        b.against(
            "back",
            sc - 0.19,
            sc + 0.19,
            0.4,
            0.44,
            0.2,
            0.7,
            {
                "side": white,
                "top": lambda w, h: _basin_top_img(
                    rng, w, h, p, _solid(h, w, (246, 246, 244)), (w / p / 2, h / p * 0.55, w / p * 0.4, h / p * 0.38)
                ),
            },
        )
    # vanity, mirror and light bar on the right wall, towel on the left
    vl = rng.uniform(0.9, min(1.2, D - 1.3))
    vm = b.s_of_z("right", D * rng.uniform(0.42, 0.5))
    v0, v1 = vm - vl / 2, vm + vl / 2
    vcol = _pick(rng, ((244, 243, 238), (60, 80, 100), (120, 90, 65), (140, 150, 140)))
    vstone = _granite(rng, _pick(rng, ((236, 234, 230), (70, 70, 72))), p)
    b.against(
        "right",
        v0,
        v1,
        0.0,
        0.84,
        0.0,
        0.55,
        {
            "front": lambda w, h: _cabinet_img(
                rng, w, h, p, vcol, (200, 200, 205), drawers=False, toe=0.08, door_w=0.45
            ),
            "side": _plain(rng, vcol),
        },
    )
    b.against(
        "right",
        v0 - 0.02,
        v1 + 0.02,
        0.84,
        0.88,
        0.0,
        0.57,
        {
            "side": vstone,
            "top": lambda w, h: _basin_top_img(rng, w, h, p, vstone(w, h), (w / p / 2, h / p * 0.55, 0.22, 0.16)),
        },
    )
    b.against("right", vm - 0.02, vm + 0.02, 0.88, 1.1, 0.04, 0.08, {"side": steel})
    b.against("right", vm - 0.02, vm + 0.02, 1.06, 1.1, 0.08, 0.2, {"side": steel})
    rc = b.walls["right"]
    mw = min(vl * 0.85, 0.9)
    pw_, ph_ = rc.size(vm - mw / 2, 1.18, vm + mw / 2, 1.98)
    rc.paste(
        _mirror_img(rng, pw_, ph_, _pick(rng, ((40, 40, 40), (190, 160, 100), (235, 235, 230)))),
        vm - mw / 2,
        1.18,
        vm + mw / 2,
        1.98,
    )
    rc.fill(vm - mw / 2, 2.05, vm + mw / 2, 2.13, (60, 60, 62))
    for k in range(3):
        cx = vm - mw / 2 + mw * (k + 0.5) / 3
        rc.fill(cx - 0.05, 2.06, cx + 0.05, 2.12, (255, 250, 235), emissive=1.0)
    vp = b.point("right", vm, 2.0, 0.3)
    b.light(vp, 0.25, (1.0, 0.93, 0.82), reach=1.5)
    lc = b.walls["left"]
    tz = rng.uniform(0.7, 1.3)
    t0 = b.s_of_z("left", tz)
    lc.fill(t0 - 0.05, 1.38, t0 + 0.6, 1.4, (180, 180, 185))
    towel = _fabric(rng, _pick(rng, _ACCENTS), p, "stripes", (240, 240, 236))
    b.against("left", t0, t0 + 0.5, 0.75, 1.4, 0.02, 0.06, {"side": towel})
    mx0, mx1 = 0.3, min(1.1, tub_len)
    mz1, mz0 = D - 0.8, D - 1.35
    mwp, mhp = b.floor.size(mx0, mz0, mx1, mz1)
    b.floor.paste(_rug_img(rng, mwp, mhp, p * 0.5), mx0, mz0, mx1, mz1)
    # art and a shelf of toiletries on the back wall: the detail both views share
    if W - tub_len >= 0.85:
        sc = (tub_len + W) / 2
        _art(back, rng, sc, 1.62, min(0.55, W - tub_len - 0.2), 0.42)
        b.against("back", sc - 0.3, sc + 0.3, 1.22, 1.25, 0.0, 0.14, {"side": _wood(rng, style["wood"], p)})
        s = sc - 0.26
        while s < sc + 0.2:
            bw_, bh_ = rng.uniform(0.04, 0.09), rng.uniform(0.06, 0.18)
            col = _pick(rng, _ACCENTS)
            b.against(
                "back",
                s,
                s + bw_,
                1.25,
                1.25 + bh_,
                0.03,
                0.03 + bw_,
                {"side": _plain(rng, col), "front": _fabric(rng, col, p, "stripes", (245, 245, 240))},
            )
            s += bw_ + rng.uniform(0.02, 0.06)
    b.ceiling_light(W / 2, D / 2, 0.15, power=0.35)
    if rng.random() < 0.4:
        b.plant(0.3, 0.3, 0.55)
    b.ambient = 0.5
    poses = _interior_poses(rng, W, D, n_views, spread=0.6, hfov=80.0)
    if n_views >= 2:  # the portrait view: a step right, turned toward the vanity on the right wall
        base = poses[0]
        poses[1] = _Pose(
            pos=(min(base.pos[0] + 0.3, W - 0.4), base.pos[1], base.pos[2] + 0.1),
            yaw=base.yaw + rng.uniform(8, 12),
            pitch=base.pitch - 2.0,
            hfov=base.hfov,
        )
    return b.finish(), poses


# ---------------------------------------------------------------------------------------------
# outdoors
# ---------------------------------------------------------------------------------------------

_SUN = _Light(power=0.6, color=(1.0, 0.97, 0.9), direction=(-0.35, 0.75, -0.55))


def _ground(tile: np.ndarray, size: float, x0: float, x1: float, z0: float, z1: float, y: float = 0.0) -> _Face:
    """A horizontal wrap face repeating `tile` (size metres square) over [x0, x1] x [z0, z1]."""
    nx, nz = (x1 - x0) / size, (z1 - z0) / size
    return _face(
        (x0, y, z1),
        (size, 0, 0),
        (0, 0, -size),
        tile,
        wrap=True,
        poly=np.array([[0, 0], [nx, 0], [nx, nz], [0, nz]], float),
    )


def _flat(tex: np.ndarray, x0: float, x1: float, z0: float, z1: float, y: float) -> _Face:
    """A horizontal face with `tex` stretched over it; texture row 0 at the far (z1) edge."""
    return _face((x0, y, z1), (x1 - x0, 0, 0), (0, 0, -(z1 - z0)), tex)


def _backdrop(rng: np.random.Generator, scale: float) -> list[_Face]:
    """Sky and two bands of distant trees: what surrounds every outdoor photo."""
    sky_w, sky_h = int(max(4000 * scale, 800)), int(max(600 * scale, 150))
    y_lo, y_hi = -70.0, 500.0
    horizon_row = (y_hi - 1.6) / (y_hi - y_lo) * sky_h
    sky = _face(
        (-2500, y_hi, 420), (5000, 0, 0), (0, -(y_hi - y_lo), 0), _sky_img(rng, sky_w, sky_h, horizon_row), unlit=True
    )
    faces = [sky]
    for z, half, top, green in ((60.0, 260.0, 24.0, (70, 95, 75)), (36.0, 160.0, 15.0, (78, 112, 68))):
        tw, th = int(max(5000 * scale, 900)), int(max(260 * scale, 60))
        faces.append(
            _face(
                (-half, top, z), (2 * half, 0, 0), (0, -top - 0.5, 0), _treeline_img(rng, tw, th, green), two_sided=True
            )
        )
    return faces


def _tree(rng: np.random.Generator, scale: float, x: float, z: float, height: float) -> list[_Face]:
    w = height * rng.uniform(0.65, 0.85)
    green = _jitter(rng, (80, 120, 60), 0.1)
    tw, th = int(max(w * 60 * scale, 48)), int(max(height * 60 * scale, 64))
    return _crossed((x, 0.0, z), w, height, _tree_img(rng, tw, th, green), _tree_img(rng, tw, th, green))


def _bush(rng: np.random.Generator, scale: float, x: float, z: float, w: float, h: float, flowers: bool) -> _Face:
    tex = _bush_img(
        rng, int(max(w * 120 * scale, 24)), int(max(h * 120 * scale, 20)), _jitter(rng, (70, 110, 55), 0.12), flowers
    )
    return _face((x - w / 2, h, z), (w, 0, 0), (0, -h, 0), tex, two_sided=True)


def _ext_window(
    c: _Canvas, rng: np.random.Generator, s0: float, s1: float, y0: float, y1: float, trim: Vec, shutter: Vec | None
) -> None:
    """A house window seen from outside: trim, reflective glass, muntins, sill, shutters."""
    cas = 0.1
    c.fill(s0 - cas, y0 - cas, s1 + cas, y1 + cas, trim)
    c.fill(s0 - cas - 0.05, y0 - cas - 0.06, s1 + cas + 0.05, y0 - cas, np.asarray(trim, F32) * 0.95)
    c.shade(s0 - cas - 0.05, y0 - cas - 0.1, s1 + cas + 0.05, y0 - cas - 0.06, 0.7)
    w, h = c.size(s0, y0, s1, y1)
    glass = _vgrad(h, w, (150, 170, 190), (45, 55, 68))
    refl = cv2.GaussianBlur(_outside_img(rng, w, h)[::-1], (0, 0), max(1.0, w / 40)) * 0.35
    glass = glass * 0.75 + refl
    for a in (0.0, 0.82):  # curtains inside, left and right
        glass[:, int(a * w) : int((a + 0.18) * w)] = glass[:, int(a * w) : int((a + 0.18) * w)] * 0.5 + 95
    _grain(glass, rng, 2.0)
    c.paste(glass, s0, y0, s1, y1)
    for k in range(4):
        s = s0 + (s1 - s0) * k / 3
        c.fill(s - 0.02, y0, s + 0.02, y1, trim)
    for y in (y0, (y0 + y1) / 2, y1):
        c.fill(s0, y - 0.025, s1, y + 0.025, trim)
    if y0 < 2.0 and rng.random() < 0.6:  # a flower box under a ground-floor window
        c.fill(s0 - 0.05, y0 - cas - 0.32, s1 + 0.05, y0 - cas - 0.1, (110, 80, 60))
        bw_, bh_ = c.size(s0 - 0.05, y0 - cas - 0.1, s1 + 0.05, y0 - cas + 0.12)
        c.paste(_bush_img(rng, bw_, bh_, (70, 115, 55), True), s0 - 0.05, y0 - cas - 0.1, s1 + 0.05, y0 - cas + 0.12)
    if shutter is not None:
        sw = min(0.45, (s1 - s0) * 0.4)
        for a in (s0 - cas - sw - 0.02, s1 + cas + 0.02):
            c.fill(a, y0 - cas, a + sw, y1 + cas, shutter)
            for y in np.arange(y0 - cas + 0.05, y1 + cas - 0.03, 0.06):
                c.shade(a + 0.04, float(y), a + sw - 0.04, float(y) + 0.015, 0.7)
            c.bevel(a, y0 - cas, a + sw, y1 + cas, 0.02)
    c.reserve(s0 - cas - 0.5, s1 + cas + 0.5, y0 - cas, y1 + cas)


def _garage_door_img(rng: np.random.Generator, w: int, h: int, ppm: float, color: Vec) -> np.ndarray:
    img = _solid(h, w, color)
    _mottle(img, rng, max(0.5 * ppm, 2), 0.03, 2)
    rows, cols = 4, max(4, round(w / ppm / 0.62))
    ph, pw = h / rows, w / cols
    for r in range(rows):
        _scale_rect(img, 0, r * ph, w, r * ph + max(1, 0.012 * ppm), 0.6)
        for k in range(cols):
            x0, y0 = k * pw + 0.06 * ppm, r * ph + 0.06 * ppm
            x1, y1 = (k + 1) * pw - 0.06 * ppm, (r + 1) * ph - 0.06 * ppm
            if r == 0:  # a row of windows
                a, c = int(y0), int(x0)
                g = _vgrad(max(int(y1 - y0), 1), max(int(x1 - x0), 1), (120, 140, 160), (40, 48, 58))
                g = g[: max(0, h - a), : max(0, w - c)]
                img[a : a + g.shape[0], c : c + g.shape[1]] = g
            _bevel(img, x0, y0, x1, y1, max(1.0, 0.015 * ppm), 0.85, 1.1)
    _grain(img, rng, 2.0)
    return img


#: How far the roofs overhang the walls (metres).
_ROOF_OVERHANG = 0.45


@dataclass(frozen=True)
class _House:
    """The main house of the exterior scene: a box `width` x `depth` with walls `wall_h` tall (one or
    two storeys) under a gable roof, centred on x = 0 with its facade at z = 0; `p` is pixels per metre."""

    p: float
    two: bool
    width: float
    depth: float
    wall_h: float
    siding: Color
    trim: Color
    roof_col: Color
    door_col: Color
    shutter: Color | None

    @property
    def xl(self) -> float:
        return -self.width / 2

    @property
    def xr(self) -> float:
        return self.width / 2

    def siding_canvas(self, rng: np.random.Generator, length: float, height: float) -> _Canvas:
        p = self.p
        w, h = round(length * p), round(height * p)
        return _Canvas(length, height, p, _siding_img(rng, w, h, p, self.siding))


def _exterior(rng: np.random.Generator, scale: float, style: dict[str, Any], n_views: int) -> Scene:
    house = _house(rng, scale)
    xl, Dh = house.xl, house.depth
    facade, xd_s = _facade(rng, house)
    faces: list[_Face] = [facade]
    side_faces, rise = _side_walls(rng, house)
    faces += side_faces
    faces += _roof(rng, house, rise)
    garage_faces, xg0, xg1, zg = _garage(rng, house)
    faces += garage_faces
    faces += _grounds(rng, scale, house, xl + xd_s, xg0, xg1, zg)
    for f in faces:
        _bake(f, [_SUN], 0.55)
    return faces, _exterior_poses(rng, (xl + xg1) / 2, xl, Dh)[:n_views]


def _house(rng: np.random.Generator, scale: float) -> _House:
    """Size, storeys and colours of the house."""
    p = max(90.0 * scale, 24.0)
    two = rng.random() < 0.65
    Wh, Dh = rng.uniform(11.0, 13.0), rng.uniform(8.5, 10.0)
    hw = 5.7 if two else 3.1
    siding = _pick(
        rng, ((215, 210, 195), (160, 175, 188), (236, 234, 226), (125, 140, 122), (196, 176, 146), (95, 105, 120))
    )
    trim = (240, 240, 236)
    roof_col = _pick(rng, ((70, 70, 72), (96, 82, 72), (112, 112, 118), (62, 68, 80)))
    door_col = _pick(rng, ((150, 35, 35), (30, 45, 80), (30, 30, 32), (60, 90, 70), (190, 150, 60)))
    shutter = _pick(rng, ((40, 45, 50), (30, 50, 80), (100, 40, 40), (236, 236, 232))) if rng.random() < 0.7 else None
    return _House(p, two, Wh, Dh, hw, siding, trim, roof_col, door_col, shutter)


def _facade(rng: np.random.Generator, house: _House) -> tuple[_Face, float]:
    """The front wall: foundation, corner trim, the entry (door, sidelights, lamp, house number,
    wreath) and windows on each storey. Returns the face and the door's position along the facade."""
    p, Wh, hw, trim, shutter = house.p, house.width, house.wall_h, house.trim, house.shutter
    fc = house.siding_canvas(rng, Wh, hw)
    fw, fh = fc.size(0, 0, Wh, 0.4)
    fc.paste(_concrete_img(rng, fw, fh, p, 160.0), 0, 0, Wh, 0.4)
    fc.fill(0, 0.4, 0.14, hw, trim)
    fc.fill(Wh - 0.14, 0.4, Wh, hw, trim)
    xd_s = Wh * rng.uniform(0.38, 0.55)
    fc.fill(xd_s - 0.85, 0.4, xd_s + 0.85, 2.75, trim)
    for a in (xd_s - 0.75, xd_s + 0.5):  # sidelights
        gw_, gh_ = fc.size(a, 0.5, a + 0.25, 2.5)
        fc.paste(_vgrad(gh_, gw_, (140, 160, 180), (50, 60, 70)), a, 0.5, a + 0.25, 2.5)
    dw_, dh_ = fc.size(xd_s - 0.45, 0.4, xd_s + 0.45, 2.55)
    fc.paste(_door_img(rng, dw_, dh_, p, house.door_col), xd_s - 0.45, 0.4, xd_s + 0.45, 2.55)
    fc.fill(xd_s - 1.15, 1.9, xd_s - 1.0, 2.2, (30, 30, 30))
    fc.fill(xd_s - 1.13, 1.95, xd_s - 1.02, 2.15, (255, 240, 200), emissive=1.0)
    # house number plaque and a wreath on the door: small, high-contrast, unique details
    fc.fill(xd_s + 0.62, 1.75, xd_s + 0.95, 1.95, (30, 30, 32))
    for k, digit_w in enumerate(rng.uniform(0.04, 0.06, 3)):
        fc.fill(xd_s + 0.66 + k * 0.095, 1.79, xd_s + 0.66 + k * 0.095 + digit_w, 1.91, (235, 225, 190))
    px = fc.box(xd_s - 0.2, 1.6, xd_s + 0.2, 2.0)
    cv2.circle(
        fc.img,
        ((px[0] + px[2]) // 2, (px[1] + px[3]) // 2),
        max(2, int(0.17 * p)),
        (50, 95, 55),
        max(1, int(0.07 * p)),
        cv2.LINE_AA,
    )
    fc.reserve(xd_s - 1.3, xd_s + 1.0)
    for _ in range(3):
        ww = rng.uniform(1.2, 1.6)
        s = fc.find(rng, ww, 1.0, 2.5, lo=0.9, hi=Wh - 0.9, margin=0.6)
        if s is not None:
            _ext_window(fc, rng, s, s + ww, 1.05, 2.5, trim, shutter)
    if house.two:
        n_up = 4 if Wh > 12 else 3
        for k in range(n_up):
            sm = Wh * (k + 0.5) / n_up
            _ext_window(fc, rng, sm - 0.55, sm + 0.55, hw - 1.95, hw - 0.6, trim, shutter)
    return _face((house.xl, hw, 0), (Wh, 0, 0), (0, -hw, 0), fc.img, emissive=fc.emissive), xd_s


def _side_walls(rng: np.random.Generator, house: _House) -> tuple[list[_Face], float]:
    """Both side walls up to their gables (windows on the left one only); returns the faces and the
    gable's rise above the walls."""
    Dh, hw, trim, two = house.depth, house.wall_h, house.trim, house.two
    faces: list[_Face] = []
    pitch = math.radians(rng.uniform(28, 36) if two else rng.uniform(24, 30))
    rise = Dh / 2 * math.tan(pitch)
    for side in (-1, 1):
        sc = house.siding_canvas(rng, Dh, hw + rise)
        sc.fill(0, 0, Dh, 0.4, (160, 158, 152))
        if side < 0:
            _ext_window(sc, rng, Dh * 0.55, Dh * 0.55 + 1.2, 1.05, 2.4, trim, None)
            if two:
                _ext_window(sc, rng, Dh * 0.3, Dh * 0.3 + 1.0, hw - 1.9, hw - 0.65, trim, None)
        vr = rise / (hw + rise)
        sc.fill(Dh / 2 - 0.3, hw + rise * 0.35, Dh / 2 + 0.3, hw + rise * 0.6, trim)  # gable vent
        for y in np.arange(hw + rise * 0.37, hw + rise * 0.58, 0.05):
            sc.shade(Dh / 2 - 0.25, float(y), Dh / 2 + 0.25, float(y) + 0.02, 0.7)
        poly = np.array([[0, vr], [0.5, 0], [1, vr], [1, 1], [0, 1]], float)
        if side < 0:
            faces.append(
                _face(
                    (house.xl, hw + rise, Dh),
                    (0, 0, -Dh),
                    (0, -(hw + rise), 0),
                    sc.img,
                    poly=poly,
                    emissive=sc.emissive,
                )
            )
        else:
            faces.append(
                _face(
                    (house.xr, hw + rise, 0), (0, 0, Dh), (0, -(hw + rise), 0), sc.img, poly=poly, emissive=sc.emissive
                )
            )
    return faces, rise


def _roof(rng: np.random.Generator, house: _House, rise: float) -> list[_Face]:
    """The front slope of the gable roof (the back one is never seen) and the fascia under its eave."""
    p, Wh, Dh, hw, xl, xr = house.p, house.width, house.depth, house.wall_h, house.xl, house.xr
    ov = _ROOF_OVERHANG
    slope = rise / (Dh / 2)
    ye = hw - ov * slope
    rl = math.hypot(Dh / 2 + ov, rise + ov * slope)
    rtex = _shingles_img(rng, int((Wh + 2 * ov) * p), int(rl * p), p, house.roof_col)
    faces = [_face((xl - ov, hw + rise, Dh / 2), (Wh + 2 * ov, 0, 0), (0, ye - hw - rise, -(Dh / 2 + ov)), rtex)]
    trim_m = _plain(rng, house.trim, 0.02)
    faces += _box_faces(
        np.array([xl - ov, ye - 0.2, -ov - 0.03]), np.array([xr + ov, ye, 0.0]), (0, 0, -1), {"side": trim_m}, p
    )
    return faces


def _garage(rng: np.random.Generator, house: _House) -> tuple[list[_Face], float, float, float]:
    """An attached garage right of the house with a front-facing gable; returns its faces, its x range
    (x0, x1) and how far its front stands back from the facade (z)."""
    p, trim, siding, xr = house.p, house.trim, house.siding, house.xr
    ov = _ROOF_OVERHANG
    faces: list[_Face] = []
    Wg, zg, Lg, hg = rng.uniform(5.8, 6.4), rng.uniform(0.4, 1.2), 7.0, 3.0
    rg = Wg / 2 * math.tan(math.radians(24))
    gc = house.siding_canvas(rng, Wg, hg + rg)
    gc.fill(0, 0, Wg, 0.3, (160, 158, 152))
    gc.fill(0.4, 0.0, Wg - 0.4, 2.4, trim)
    gdw, gdh = gc.size(0.55, 0.0, Wg - 0.55, 2.25)
    gc.paste(
        _garage_door_img(rng, gdw, gdh, p, (238, 236, 230) if sum(siding) < 560 else (120, 110, 100)),
        0.55,
        0.0,
        Wg - 0.55,
        2.25,
    )
    for a in (0.12, Wg - 0.3):
        gc.fill(a, 1.9, a + 0.16, 2.25, (30, 30, 30))
        gc.fill(a + 0.03, 1.95, a + 0.13, 2.2, (255, 240, 200), emissive=1.0)
    vr = rg / (hg + rg)
    xg0, xg1 = xr, xr + Wg
    xm = (xg0 + xg1) / 2
    faces.append(
        _face(
            (xg0, hg + rg, zg),
            (Wg, 0, 0),
            (0, -(hg + rg), 0),
            gc.img,
            emissive=gc.emissive,
            poly=np.array([[0, vr], [0.5, 0], [1, vr], [1, 1], [0, 1]], float),
        )
    )
    gs = house.siding_canvas(rng, Lg, hg)
    faces.append(_face((xg1, hg, zg), (0, 0, Lg), (0, -hg, 0), gs.img))
    sl_g = rg / (Wg / 2)
    slope_len = math.hypot(Wg / 2 + ov, rg + ov * sl_g)
    gtex = _shingles_img(rng, int((Lg + ov) * p), int(slope_len * p), p, house.roof_col)
    faces.append(_face((xm, hg + rg, zg - ov), (0, 0, Lg + ov), (Wg / 2 + ov, -(rg + ov * sl_g), 0), gtex))
    faces.append(_face((xm, hg + rg, zg + Lg), (0, 0, -(Lg + ov)), (-Wg / 2, -rg, 0), gtex.copy()))
    return faces, xg0, xg1, zg


def _grounds(
    rng: np.random.Generator, scale: float, house: _House, xd: float, xg0: float, xg1: float, zg: float
) -> list[_Face]:
    """Lawn, street, sidewalk and kerb, the driveway to the garage (x `xg0`..`xg1`, front at `zg`),
    the walk and steps to the door (at x `xd`), planted beds along the facade, trees and the backdrop."""
    p, Dh, xl, xr = house.p, house.depth, house.xl, house.xr
    faces: list[_Face] = []
    gp = max(110.0 * scale, 24.0)
    n_tile = int(4.0 * gp)
    faces.append(_ground(_grass_img(rng, n_tile, n_tile, gp), 4.0, -160, 160, -60, 200))
    a_tile = int(3.0 * gp)
    asphalt = _concrete_img(rng, a_tile, a_tile, gp, 85.0)
    faces.append(_ground(_make_tileable(asphalt), 3.0, -160, 160, -40, -13.8, 0.004))
    s_tile = int(1.5 * gp)
    walk = _concrete_img(rng, s_tile, s_tile, gp, 185.0, joint=1.5)
    faces.append(_ground(walk, 1.5, -160, 160, -13.65, -12.2, 0.006))
    faces += _box_faces(
        np.array([-160, 0, -13.8]),
        np.array([160, 0.13, -13.65]),
        (0, 0, -1),
        {"side": _plain(rng, (175, 172, 166))},
        12.0,
    )
    dx0, dx1 = xg0 + 0.4, xg1 - 0.4
    dwp, dhp = int((dx1 - dx0) * gp * 0.6), int((12.2 + zg) * gp * 0.6)
    faces.append(_flat(_concrete_img(rng, dwp, dhp, gp * 0.6, 178.0, joint=3.0), dx0, dx1, -12.2, zg, 0.008))
    wk = _pavers_img(rng, int(1.2 * gp), int(11.3 * gp), gp, (170, 120, 100))
    faces.append(_flat(wk, xd - 0.6, xd + 0.6, -12.2, -0.9, 0.008))
    step_m = {"side": _plain(rng, (180, 178, 172))}
    faces += _box_faces(np.array([xd - 1.0, 0, -0.9]), np.array([xd + 1.0, 0.17, 0.0]), (0, 0, -1), step_m, p)
    faces += _box_faces(np.array([xd - 1.0, 0.17, -0.5]), np.array([xd + 1.0, 0.36, 0.0]), (0, 0, -1), step_m, p)
    for a, c in ((xl, xd - 1.0), (xd + 1.0, xr)):
        faces += _planted_bed(rng, scale, gp, a, c)
    faces += _tree(rng, scale, xl - rng.uniform(3.0, 4.5), rng.uniform(-1.0, 4.0), rng.uniform(7.0, 9.0))
    faces += _tree(rng, scale, xg1 + rng.uniform(2.5, 4.0), rng.uniform(-7.0, -3.0), rng.uniform(5.0, 6.5))
    faces += _tree(rng, scale, rng.uniform(-4, 4), Dh + rng.uniform(3, 6), rng.uniform(9.0, 12.0))
    faces += _backdrop(rng, scale)
    return faces


def _planted_bed(rng: np.random.Generator, scale: float, gp: float, a: float, c: float) -> list[_Face]:
    """A mulch bed along the facade from x `a` to `c`, with a row of bushes."""
    faces: list[_Face] = []
    mw, mh = int((c - a) * gp * 0.5), int(1.4 * gp * 0.5)
    mulch = _solid(mh, mw, (95, 62, 42))
    _grain(mulch, rng, 22.0)
    faces.append(_flat(mulch, a, c, -1.4, 0.0, 0.006))
    x = a + 0.6
    while x < c - 0.5:
        faces.append(_bush(rng, scale, x, -0.75, rng.uniform(0.9, 1.3), rng.uniform(0.7, 1.1), rng.random() < 0.3))
        x += rng.uniform(1.2, 1.7)
    return faces


def _exterior_poses(rng: np.random.Generator, xc: float, xl: float, Dh: float) -> list[_Pose]:
    """Two street views: one from across the street facing the house, one from the left front corner."""
    poses = []
    x1_, z1_ = xc + rng.uniform(-1.0, 1.0), -rng.uniform(14.5, 15.5)
    poses.append(
        _Pose(
            pos=(x1_, 1.6, z1_),
            yaw=math.degrees(math.atan2(xc - x1_, Dh * 0.3 - z1_)),
            pitch=rng.uniform(2.5, 4.0),
            hfov=70.0,
            background=(200, 215, 235),
            outdoor=True,
        )
    )
    x2_, z2_ = xl + rng.uniform(-1.0, 0.5), -rng.uniform(12.0, 13.0)
    poses.append(
        _Pose(
            pos=(x2_, 1.6, z2_),
            yaw=math.degrees(math.atan2(xc + 1.0 - x2_, 2.0 - z2_)),
            pitch=rng.uniform(3.0, 5.0),
            hfov=70.0,
            background=(200, 215, 235),
            outdoor=True,
        )
    )
    return poses


def _canopy(center: Vec, r: float, y_edge: float, y_apex: float, tex: np.ndarray) -> list[_Face]:
    """A square umbrella canopy: four two-sided triangles rising to an apex."""
    x, z = float(center[0]), float(center[2])
    apex = np.array([x, y_apex, z])
    corners = [
        np.array(c, float)
        for c in ((x - r, y_edge, z - r), (x + r, y_edge, z - r), (x + r, y_edge, z + r), (x - r, y_edge, z + r))
    ]
    faces = []
    for i in range(4):
        a, b = corners[i], corners[(i + 1) % 4]
        u = b - a
        o = apex - u / 2
        faces.append(_Face(o, u, a - o, tex.copy(), poly=np.array([[0.5, 0], [1, 1], [0, 1]], float), two_sided=True))
    return faces


def _outdoor(rng: np.random.Generator, scale: float, style: dict[str, Any], n_views: int) -> Scene:
    p = max(110.0 * scale, 24.0)
    faces: list[_Face] = []
    Fz, Fx = rng.uniform(12.0, 15.0), rng.uniform(8.0, 10.0)
    n_tile = int(4.0 * p)
    faces.append(_ground(_grass_img(rng, n_tile, n_tile, p), 4.0, -160, 160, -30, 200))
    pav = _pick(rng, ((175, 165, 150), (150, 110, 90), (190, 185, 175)))
    pw_, ph_ = int(6.4 * p), int(6.7 * p)
    faces.append(_flat(_pavers_img(rng, pw_, ph_, p, pav), -3.2, 3.2, -5.0, 1.7, 0.01))
    fence_col = _pick(rng, ((165, 120, 85), (140, 125, 105), (200, 185, 160)))
    fp = max(80.0 * scale, 20.0)
    fence = _fence_img(rng, int(2 * Fx * fp), int(1.8 * fp), fp, fence_col)
    faces.append(_face((-Fx, 1.8, Fz), (2 * Fx, 0, 0), (0, -1.8, 0), fence, two_sided=True))
    side_len = Fz + 5.0
    for sx in (-Fx, Fx):
        tex = _fence_img(rng, int(side_len * fp), int(1.8 * fp), fp, fence_col)
        faces.append(_face((sx, 1.8, -5.0), (0, 0, side_len), (0, -1.8, 0), tex, two_sided=True))
    mw, mh = int(2 * Fx * p * 0.4), int(1.3 * p * 0.4)
    mulch = _solid(mh, mw, (90, 60, 42))
    _grain(mulch, rng, 22.0)
    faces.append(_flat(mulch, -Fx, Fx, Fz - 1.3, Fz, 0.006))
    x = -Fx + 0.7
    while x < Fx - 0.7:
        faces.append(_bush(rng, scale, x, Fz - 0.6, rng.uniform(0.8, 1.4), rng.uniform(0.6, 1.3), rng.random() < 0.5))
        x += rng.uniform(1.0, 1.8)
    # a garden shed in a back corner
    sh_side = float(rng.choice([-1.0, 1.0]))
    sx0 = Fx - 3.4 if sh_side > 0 else -Fx + 0.6
    shed_col = _pick(rng, ((150, 165, 150), (180, 60, 50), (200, 190, 170)))
    shed_p = max(90.0 * scale, 24.0)

    def shed_front(w: int, h: int) -> np.ndarray:
        img = _siding_img(rng, w, h, shed_p, shed_col)
        _rect(img, w * 0.3, h * 0.12, w * 0.7, h, (240, 240, 236))
        _rect(img, w * 0.33, h * 0.16, w * 0.67, h, np.asarray(shed_col, F32) * 0.8)
        cv2.line(
            img, (int(w * 0.33), int(h * 0.16)), (int(w * 0.67), h - 1), (240, 240, 236), max(1, int(0.04 * shed_p))
        )
        cv2.line(
            img, (int(w * 0.67), int(h * 0.16)), (int(w * 0.33), h - 1), (240, 240, 236), max(1, int(0.04 * shed_p))
        )
        return img

    faces += _box_faces(
        np.array([sx0, 0, Fz - 3.0]),
        np.array([sx0 + 2.8, 2.2, Fz - 0.5]),
        (0, 0, -1),
        {"front": shed_front, "side": lambda w, h: _siding_img(rng, w, h, shed_p, shed_col)},
        shed_p,
    )
    faces += _box_faces(
        np.array([sx0 - 0.15, 2.2, Fz - 3.2]),
        np.array([sx0 + 2.95, 2.32, Fz - 0.35]),
        (0, 0, -1),
        {"side": _plain(rng, (240, 240, 236)), "top": lambda w, h: _shingles_img(rng, w, h, shed_p, (80, 80, 82))},
        shed_p,
    )
    # patio set: table, chairs, umbrella, planters
    fp2 = max(160.0 * scale, 30.0)
    tx, tz = rng.uniform(-0.8, 0.8), rng.uniform(-0.3, 0.6)
    top_col = _pick(rng, ((120, 90, 60), (60, 60, 62), (230, 228, 222)))
    frame_m = _plain(rng, (45, 45, 48))
    faces += _box_faces(
        np.array([tx - 0.8, 0.72, tz - 0.45]),
        np.array([tx + 0.8, 0.76, tz + 0.45]),
        (0, 0, -1),
        {"side": _wood(rng, top_col, fp2)},
        fp2,
    )
    for lx in (tx - 0.75, tx + 0.7):
        for lz in (tz - 0.4, tz + 0.35):
            faces += _box_faces(
                np.array([lx, 0, lz]), np.array([lx + 0.05, 0.72, lz + 0.05]), (0, 0, -1), {"side": frame_m}, fp2
            )
    cush = _fabric(rng, _pick(rng, _ACCENTS), fp2, "stripes", (240, 240, 236))
    for cx_, cz_, bz in (
        (tx - 0.4, tz - 0.75, -1),
        (tx + 0.4, tz - 0.75, -1),
        (tx - 0.4, tz + 0.75, 1),
        (tx + 0.4, tz + 0.75, 1),
    ):
        faces += _box_faces(
            np.array([cx_ - 0.23, 0.0, cz_ - 0.23]),
            np.array([cx_ + 0.23, 0.45, cz_ + 0.23]),
            (0, 0, -1),
            {"side": frame_m, "top": cush},
            fp2,
        )
        bz0 = cz_ - 0.23 if bz < 0 else cz_ + 0.19  # the back away from the table
        faces += _box_faces(
            np.array([cx_ - 0.23, 0.45, bz0]),
            np.array([cx_ + 0.23, 0.92, bz0 + 0.04]),
            (0, 0, -1),
            {"side": frame_m, "front": cush},
            fp2,
        )
    faces += _box_faces(
        np.array([tx - 0.02, 0.0, tz - 0.02]),
        np.array([tx + 0.02, 2.4, tz + 0.02]),
        (0, 0, -1),
        {"side": _plain(rng, (220, 220, 215))},
        fp2,
    )
    ccol = _pick(rng, ((230, 225, 210), (180, 60, 50), (50, 90, 120), (90, 120, 90)))
    can = _fabric_img(rng, int(1.5 * fp2), int(1.5 * fp2), fp2, ccol, "stripes", (240, 240, 236))
    faces += _canopy((tx, 0, tz), 1.35, 2.05, 2.5, can)
    for px_ in (-3.0, 3.0):
        pz = rng.uniform(1.0, 1.5)
        faces += _box_faces(
            np.array([px_ - 0.25, 0, pz - 0.25]),
            np.array([px_ + 0.25, 0.5, pz + 0.25]),
            (0, 0, -1),
            {"side": _plain(rng, (170, 100, 70))},
            fp2,
        )
        pt = _plant_img(rng, int(0.9 * fp2), int(1.1 * fp2))
        faces += _crossed((px_, 0.35, pz), 0.9, 1.1, pt, _plant_img(rng, int(0.9 * fp2), int(1.1 * fp2)))
    for _ in range(int(rng.integers(3, 5))):
        faces += _tree(rng, scale, rng.uniform(-Fx - 2, Fx + 2), Fz + rng.uniform(2.0, 8.0), rng.uniform(6.0, 11.0))
    faces += _backdrop(rng, scale)
    for f in faces:
        _bake(f, [_SUN], 0.55)
    poses = [
        _Pose(
            pos=(rng.uniform(-0.8, 0.8), 1.6, -rng.uniform(4.2, 4.6)),
            yaw=rng.uniform(-12, 12),
            pitch=rng.uniform(-4, -1),
            hfov=74.0,
            background=(200, 215, 235),
            outdoor=True,
        )
    ]
    for k in range(1, n_views):
        b0 = poses[0]
        poses.append(
            _Pose(
                pos=(b0.pos[0] + 1.2 * k, 1.6, b0.pos[2] + 0.3),
                yaw=b0.yaw - 15 * k,
                pitch=b0.pitch,
                hfov=74.0,
                background=b0.background,
                outdoor=True,
            )
        )
    return faces, poses


def _listing_style(seed: int, group: str) -> dict[str, Any]:
    """Per-listing palette assignment, so every room gets its own wall colour and floor wood."""
    rng = _rng(seed, "style")
    walls = rng.permutation(len(_WALL_COLORS))
    woods = rng.permutation(len(_WOODS))
    i = ROOM_GROUPS.index(group)
    return {"wall": _WALL_COLORS[int(walls[i % len(walls)])], "wood": _WOODS[int(woods[i % len(woods)])]}


_SCENES: dict[str, Callable[[np.random.Generator, float, dict[str, Any], int], Scene]] = {
    "exterior": _exterior,
    "living_room": _living_room,
    "kitchen": _kitchen,
    "bedroom_a": _bedroom,
    "bedroom_b": _bedroom,
    "bathroom": _bathroom,
    "outdoor": _outdoor,
}


# =============================================================================================
# music: a four-on-the-floor groove on a sample-exact beat grid
# =============================================================================================

#: Encoders for non-WAV outputs (ffmpeg's bundled build has all of these).
_AUDIO_CODECS: dict[str, list[str]] = {
    ".mp3": ["-c:a", "libmp3lame", "-b:a", "192k"],
    ".flac": ["-c:a", "flac"],
    ".m4a": ["-c:a", "aac", "-b:a", "192k"],
    ".ogg": ["-c:a", "libvorbis", "-q:a", "6"],
    ".opus": ["-c:a", "libopus", "-b:a", "160k"],
}

#: Chord progressions as (semitones above the key's tonic, minor?) per bar.
_PROGRESSIONS: tuple[tuple[tuple[int, bool], ...], ...] = (
    ((9, True), (5, False), (0, False), (7, False)),  # vi IV I V
    ((0, False), (7, False), (9, True), (5, False)),  # I V vi IV
    ((0, False), (9, True), (5, False), (7, False)),  # I vi IV V
    ((2, True), (7, False), (0, False), (9, True)),  # ii V I vi
)


def synthesize_music(
    path: Path, *, bpm: float, seconds: float, sample_rate: int = 44100, seed: int = 0, first_beat: float = _FIRST_BEAT
) -> dict[str, Any]:
    """Write a synthesised track at exactly `bpm` and return its ground truth.

    Kick on every beat (accented downbeats, 4/4), snare and clap on 2 and 4, closed hi-hats on the
    eighths, a bass line and pad following a four-chord progression, a plucked arpeggio, a crash every
    eight bars, a pad swell before the first beat and a fade over the last seconds. Every kick starts
    on the sample ``round(beat_time * sample_rate)``; the returned beat times are those samples divided
    by the rate, so they are exact for the WAV. ``.mp3``, ``.flac``, ``.m4a``, ``.ogg`` and ``.opus``
    are encoded from the WAV with ffmpeg; ffmpeg's decoders trim the encoder delay, so decoded onsets
    stay on the same samples (decoders that ignore the delay tags would see them ~25-50 ms late).

    Returns ``{"file", "bpm", "beats", "downbeats", "duration", "first_beat", "sample_rate",
    "beats_per_bar", "fade_out"}`` with times in seconds.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    _check_music_args(suffix, bpm, seconds, first_beat)
    period = 60.0 / bpm
    sr = int(sample_rate)
    n = round(seconds * sr)
    rng = _rng(seed, "music")

    beats: list[int] = []
    while True:
        s = round((first_beat + len(beats) * period) * sr)
        if s > n - int(0.05 * sr):
            break
        beats.append(s)
    eighths = [round((first_beat + (k + 0.5) * period) * sr) for k in range(len(beats))]
    eighths = [e for e in eighths if e < n]
    mix = _arrange(rng, sr, n, beats, eighths, period)

    fade = min(2.5, seconds * 0.15)
    nf = int(fade * sr)
    mix[n - nf :] *= (0.5 + 0.5 * np.cos(np.linspace(0, math.pi, nf)))[:, None]
    peak = float(np.abs(mix).max())
    mix *= 0.89 / max(peak, 1e-9)  # -1 dBFS: loud, never clipping

    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".wav":
        sf.write(str(path), mix.astype(np.float32), sr, subtype="PCM_16")
    else:
        with tempfile.TemporaryDirectory(prefix="picaivid-music-") as tmp:
            wav = Path(tmp) / "music.wav"
            sf.write(str(wav), mix.astype(np.float32), sr, subtype="PCM_16")
            run_ffmpeg(["-y", "-v", "error", "-i", wav, *_AUDIO_CODECS[suffix], path], what=f"encoding {path.name}")
    beat_times = [round(b / sr, 6) for b in beats]
    return {
        "file": path.name,
        "bpm": float(bpm),
        "beats": beat_times,
        "downbeats": beat_times[::4],
        "duration": round(n / sr, 6),
        "first_beat": beat_times[0],
        "sample_rate": sr,
        "beats_per_bar": 4,
        "fade_out": round(fade, 3),
    }


def _check_music_args(suffix: str, bpm: float, seconds: float, first_beat: float) -> None:
    if suffix != ".wav" and suffix not in _AUDIO_CODECS:
        raise ValueError(f"cannot write {suffix or 'extensionless'} audio; use .wav or one of {sorted(_AUDIO_CODECS)}")
    if not 30.0 <= bpm <= 300.0:
        raise ValueError(f"bpm {bpm} is outside 30..300")
    if first_beat < 0 or seconds < first_beat + 4 * 60.0 / bpm:
        raise ValueError(f"{seconds} s with the first beat at {first_beat} s is shorter than one bar")


def _env(n: int, sr: float, attack: float, decay: float) -> np.ndarray:
    t = np.arange(n) / sr
    return np.minimum(t / max(attack, 1e-6), 1.0) * np.exp(-t / decay)


def _saw_table(size: int = 4096, harmonics: int = 24) -> np.ndarray:
    x = np.arange(size) / size
    return np.asarray(sum(np.sin(2 * np.pi * k * x) / k for k in range(1, harmonics + 1)) * (2 / np.pi))


def _osc(table: np.ndarray, freq: float, n: int, sr: float, phase: float = 0.0) -> np.ndarray:
    idx = ((np.arange(n) * (freq / sr) + phase) % 1.0 * len(table)).astype(np.int64)
    return np.asarray(table[idx])


def _hz(midi: float) -> float:
    return 440.0 * 2.0 ** ((midi - 69) / 12)


def _add(mix: np.ndarray, start: int, sound: np.ndarray, gain: float, pan: float = 0.0) -> None:
    """Mix a mono sound in at `start` (samples), panned -1 (left) .. 1 (right), equal power."""
    end = min(start + len(sound), len(mix))
    if end <= start:
        return
    part = sound[: end - start] * gain
    angle = (pan + 1) * math.pi / 4
    mix[start:end, 0] += part * math.cos(angle)
    mix[start:end, 1] += part * math.sin(angle)


def _arrange(
    rng: np.random.Generator, sr: int, n: int, beats: list[int], eighths: list[int], period: float
) -> np.ndarray:
    """Mix the track (float stereo, unnormalised). The kick plays from the first beat, so every beat
    is an onset; hats enter in the second bar, snare and clap on 2 and 4 from the second bar, the
    arpeggio from the third; bass and pad follow the chords throughout."""
    mix = np.zeros((n, 2))
    kit = _drum_kit(rng, sr)
    _play_drums(mix, kit, beats, eighths)
    _play_harmony(mix, rng, sr, beats, period)
    return mix


@dataclass(frozen=True)
class _DrumKit:
    """One-shot drum samples (mono, float)."""

    kick: np.ndarray
    snare: np.ndarray
    clap: np.ndarray
    hat: np.ndarray
    open_hat: np.ndarray
    crash: np.ndarray


def _drum_kit(rng: np.random.Generator, sr: int) -> _DrumKit:
    """Synthesise the drums: a pitch-swept kick, noise-based snare, clap, hats and crash."""
    noise = rng.standard_normal(sr * 3)
    t = np.arange(int(0.45 * sr)) / sr
    freq = 46 + 100 * np.exp(-t / 0.035)
    kick = np.sin(2 * np.pi * np.cumsum(freq) / sr) * np.exp(-t / 0.2)
    kick += 0.35 * np.sin(2 * np.pi * 2200 * t) * np.exp(-t / 0.0025)  # beater click
    kick *= np.minimum(1.0, (len(t) - np.arange(len(t))) / (0.02 * sr))
    bp = signal.butter(2, [900, 7000], "bandpass", fs=sr, output="sos")
    ts = np.arange(int(0.3 * sr)) / sr
    snare = 0.5 * np.sin(2 * np.pi * 185 * ts) * np.exp(-ts / 0.05) + signal.sosfilt(bp, noise[: len(ts)]) * np.exp(
        -ts / 0.1
    )
    clap_bp = signal.butter(2, [1100, 3200], "bandpass", fs=sr, output="sos")
    clap_src = signal.sosfilt(clap_bp, noise[sr : sr + len(ts)])
    clap = np.zeros(len(ts))
    for k, off in enumerate((0.0, 0.011, 0.022)):
        o = int(off * sr)
        clap[o:] += clap_src[o:] * np.exp(-(ts[: len(ts) - o]) / (0.006 if k < 2 else 0.07))
    hp = signal.butter(4, 7000, "highpass", fs=sr, output="sos")
    th = np.arange(int(0.5 * sr)) / sr
    hat_src = signal.sosfilt(hp, noise[2 * sr : 2 * sr + len(th)])
    hat = hat_src * np.exp(-th / 0.03)
    open_hat = hat_src * np.exp(-th / 0.2)
    tc = np.arange(int(2.5 * sr)) / sr
    crash = signal.sosfilt(
        signal.butter(2, 3500, "highpass", fs=sr, output="sos"), rng.standard_normal(len(tc))
    ) * np.exp(-tc / 0.8)
    return _DrumKit(kick=kick, snare=snare, clap=clap, hat=hat, open_hat=open_hat, crash=crash)


def _play_drums(mix: np.ndarray, kit: _DrumKit, beats: list[int], eighths: list[int]) -> None:
    """Kick on every beat (accented downbeats), snare and clap on 2 and 4 from bar 2, a crash every
    eight bars, hats on the beats from bar 2 and on the eighths (an open one closing each bar)."""
    for k, s in enumerate(beats):
        bar, pos = divmod(k, 4)
        _add(mix, s, kit.kick, 1.0 if pos == 0 else 0.8)
        if pos in (1, 3) and bar >= 1:
            _add(mix, s, kit.snare, 0.34)
            _add(mix, s, kit.clap, 0.22, 0.1)
        if pos == 0 and bar % 8 == 0:
            _add(mix, s, kit.crash, 0.1, -0.3)
    for k, s in enumerate(beats):
        if k >= 4:
            _add(mix, s, kit.hat, 0.055, 0.35)
    for k, s in enumerate(eighths):
        if k >= 2:
            is_open = k % 8 == 7
            _add(mix, s, kit.open_hat if is_open else kit.hat, 0.07 if is_open else 0.09, 0.35)


def _play_harmony(mix: np.ndarray, rng: np.random.Generator, sr: int, beats: list[int], period: float) -> None:
    """One chord per bar, in a random key and progression: bass line, pad, and from bar 3 an arpeggio."""
    n = len(mix)
    key = int(rng.choice([-3, -2, 0, 2, 3, 5]))
    prog = _PROGRESSIONS[int(rng.integers(len(_PROGRESSIONS)))]
    saw = _saw_table()
    bar_len = round(4 * period * sr)
    eighth_len = round(period / 2 * sr)
    bass_pat: list[tuple[int | None, int]] = [(0, 0), (None, 0), (0, 0), (0, 12), (None, 0), (0, 0), (7, 0), (0, 12)]
    if rng.random() < 0.5:
        bass_pat = [(0, 0), (0, 12), (None, 0), (0, 0), (0, 0), (0, 12), (7, 0), (None, 0)]
    lp_bass = signal.butter(2, 700, "lowpass", fs=sr, output="sos")
    lp_pad = signal.butter(2, 1600, "lowpass", fs=sr, output="sos")
    pad = np.zeros((n, 2))
    n_bars = (len(beats) + 3) // 4
    for bar in range(n_bars):
        root, minor = prog[bar % len(prog)]
        third = 3 if minor else 4
        bar_start = beats[bar * 4]
        _play_bass_bar(mix, saw, lp_bass, sr, bar_start, eighth_len, bass_pat, (root + key) % 12)
        chord = [root + key + 57 + i for i in (0, third, 7, 12)]
        _add_pad_chord(pad, saw, sr, bar, bar_start, bar_len, chord)
        if bar >= 2:
            _play_arpeggio(mix, sr, bar, bar_start, eighth_len, chord)
    mix += signal.sosfilt(lp_pad, pad, axis=0)


def _play_bass_bar(
    mix: np.ndarray,
    saw: np.ndarray,
    lp_bass: np.ndarray,
    sr: int,
    bar_start: int,
    eighth_len: int,
    bass_pat: list[tuple[int | None, int]],
    root_pc: int,
) -> None:
    """One bar of bass eighth notes on the pattern's (interval, octave) steps above `root_pc`."""
    for e, (interval, octave) in enumerate(bass_pat):
        if interval is None:
            continue
        start = bar_start + e * eighth_len
        f = _hz(36 + root_pc + interval + octave)
        ln = int(eighth_len * 0.9)
        note = _osc(saw, f, ln, sr) * 0.6 + np.sin(2 * np.pi * f * np.arange(ln) / sr) * 0.6
        note *= _env(ln, sr, 0.004, 0.25) * np.minimum(1.0, (ln - np.arange(ln)) / (0.01 * sr))
        _add(mix, start, signal.sosfilt(lp_bass, note), 0.28)


def _add_pad_chord(
    pad: np.ndarray, saw: np.ndarray, sr: int, bar: int, bar_start: int, bar_len: int, chord: list[int]
) -> None:
    """A detuned saw chord over the bar into `pad` (the first one swells in before the first beat)."""
    n = len(pad)
    start = 0 if bar == 0 else bar_start
    ln = (bar_start + bar_len - start) + int(0.4 * sr)
    voice = np.zeros((ln, 2))
    for m_i, m in enumerate(chord):
        for ch, det in ((0, -0.06), (1, 0.06)):
            voice[:, ch] += _osc(saw, _hz(m + det), ln, sr, phase=0.13 * m_i + 0.5 * ch)
    attack = max(bar_start - start, int(0.25 * sr)) if bar == 0 else int(0.25 * sr)
    env = np.minimum(np.arange(ln) / attack, 1.0) * np.minimum(1.0, (ln - np.arange(ln)) / (0.4 * sr))
    end = min(start + ln, n)
    pad[start:end] += (voice * env[:, None])[: end - start] * 0.05


def _play_arpeggio(mix: np.ndarray, sr: int, bar: int, bar_start: int, eighth_len: int, chord: list[int]) -> None:
    """A plucked arpeggio of the chord an octave up, on the bar's eighths, panned alternately."""
    arp = [chord[0] + 12, chord[1] + 12, chord[2] + 12, chord[3] + 12]
    order = [0, 1, 2, 3, 2, 1, 2, 3] if bar % 2 else [0, 2, 1, 3, 0, 2, 3, 1]
    ln_p = int(0.35 * sr)
    tp = np.arange(ln_p) / sr
    for e, idx in enumerate(order):
        f = _hz(arp[idx])
        pluck = sum(np.sin(2 * np.pi * f * h * tp) * np.exp(-tp * (5 + 4 * h)) / h for h in (1, 2, 3))
        pluck = np.asarray(pluck) * np.minimum(tp / 0.003, 1.0)
        _add(mix, bar_start + e * eighth_len, pluck, 0.06, -0.35 if e % 2 else 0.2)
