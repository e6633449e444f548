"""Camera motion for one photo: where is the interesting part, and how should a virtual camera move.

Pure functions on an RGB array; the renderer (`app.media.kenburns`) turns the `MotionPlan` into
frames with `viewport_rect`, whose geometry is defined here once.

Viewport geometry (see `app.media.types.Viewport`): the photo spans the continuous rectangle
[0, W] x [0, H] in pixel units (pixel i covers [i, i+1)). Zoom 1.0 is the largest window with the
output aspect ratio that fits inside the photo (a "cover" crop); zoom z is that window scaled by
1/z about its centre. Zooms below 1.0 would need pixels outside the photo and are treated as 1.0.
The window is centred on (cx * W, cy * H) and then shifted, never resized, to lie inside the photo.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import cv2
import numpy as np

from app.media.images import resize_max
from app.media.types import Easing, MotionPlan, MotionType, Viewport

if TYPE_CHECKING:
    from app.media.quality import QualityScores

__all__ = [
    "MAX_UPSCALE",
    "MIN_MOTION_ZOOM",
    "ZOOM_CAP",
    "SalientRegion",
    "allowed_motion_types",
    "clamp_viewport",
    "max_zoom_for",
    "plan_motion",
    "saliency_map",
    "salient_region",
    "viewport_rect",
]

Rect = tuple[float, float, float, float]


# --- saliency ----------------------------------------------------------------------------------------


def saliency_map(rgb: np.ndarray, *, max_side: int = 256) -> np.ndarray:
    """Where the eye goes: float32 map in 0..1 with the photo's aspect, long side <= `max_side`.

    A blend of three cheap classical cues, because each fails alone on listing photos:

    * spectral residual (Hou & Zhang 2007) on a 64 px thumbnail: "what is unlike the rest of the
      image" (a sofa against plain walls, a house against sky), blind to colour;
    * colour distinctiveness: distance of each pixel's Lab colour from the image's mean colour
      (a red door, a lit lamp);
    * edge density: blurred gradient magnitude (furniture and fixtures are busier than walls);

    multiplied by a soft centre prior (photographers frame the subject near the middle, and the
    border is where cropping happens anyway). The map is returned at the working resolution, not
    at the photo's; callers work in normalised coordinates.
    """
    small = resize_max(np.ascontiguousarray(rgb), max_side)
    h, w = small.shape[:2]
    grey = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0

    # 1. spectral residual on a 64 px wide thumbnail (the method's native scale).
    tw = 64
    th = max(8, round(tw * h / w)) if w >= h else 64
    tw = tw if w >= h else max(8, round(th * w / h))
    thumb = cv2.resize(grey, (tw, th), interpolation=cv2.INTER_AREA)
    spectrum = np.fft.fft2(thumb)
    log_amp = np.log(np.abs(spectrum) + 1e-6).astype(np.float32)
    residual = log_amp - cv2.blur(log_amp, (3, 3), borderType=cv2.BORDER_WRAP)
    sr = np.abs(np.fft.ifft2(np.exp(residual + 1j * np.angle(spectrum)))) ** 2
    sr = cv2.GaussianBlur(sr.astype(np.float32), (0, 0), 2.0)
    sr = _unit(cv2.resize(sr, (w, h), interpolation=cv2.INTER_LINEAR))

    # 2. colour distinctiveness in Lab (perceptually uniform-ish).
    lab = cv2.cvtColor(small.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)
    dist = np.linalg.norm(lab - lab.reshape(-1, 3).mean(axis=0), axis=2).astype(np.float32)
    sigma = max(1.0, 0.02 * max(h, w))
    colour = _unit(cv2.GaussianBlur(dist, (0, 0), sigma))

    # 3. edge density.
    gx = cv2.Sobel(grey, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(grey, cv2.CV_32F, 0, 1, ksize=3)
    edges = _unit(cv2.GaussianBlur(np.sqrt(gx * gx + gy * gy), (0, 0), max(1.0, 0.04 * max(h, w))))

    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    dist2 = ((xx + 0.5) / w - 0.5) ** 2 + ((yy + 0.5) / h - 0.5) ** 2
    centre = np.exp(-dist2 / (2 * 0.3**2))
    combined = (0.4 * sr + 0.3 * colour + 0.3 * edges) * (0.35 + 0.65 * centre)
    return _unit(combined.astype(np.float32))


def _unit(a: np.ndarray) -> np.ndarray:
    """Scale to 0..1 (a constant map becomes all zeros)."""
    a = a.astype(np.float32, copy=False)
    lo, hi = float(a.min()), float(a.max())
    if not math.isfinite(lo) or not math.isfinite(hi) or hi - lo < 1e-12:
        return np.zeros_like(a, dtype=np.float32)
    return (a - lo) / (hi - lo)


@dataclass(frozen=True)
class SalientRegion:
    """The salient part of a photo, in normalised coordinates (0..1 of width / height).

    `x`, `y`: saliency-weighted centroid of the most salient 15 % of the map. `spread_x`,
    `spread_y`: weighted standard deviation of that region (small = one compact subject).
    `concentration`: 0..1, how much more salient the region is than the rest of the photo
    (near 0 for a uniformly busy or uniformly empty photo).
    """

    x: float
    y: float
    spread_x: float
    spread_y: float
    concentration: float


def salient_region(smap: np.ndarray) -> SalientRegion:
    """Summarise a `saliency_map` into one point, its extent and how pronounced it is."""
    h, w = smap.shape[:2]
    flat = smap.ravel()
    if flat.size == 0 or float(flat.max()) <= 0.0:
        return SalientRegion(0.5, 0.5, 0.5, 0.5, 0.0)
    thr = float(np.quantile(flat, 0.85))
    mask = smap >= thr
    weights = np.where(mask, smap, 0.0).astype(np.float64)
    total = float(weights.sum())
    if total <= 0.0:
        return SalientRegion(0.5, 0.5, 0.5, 0.5, 0.0)
    yy, xx = np.mgrid[0:h, 0:w]
    xs = (xx + 0.5) / w
    ys = (yy + 0.5) / h
    cx = float((weights * xs).sum() / total)
    cy = float((weights * ys).sum() / total)
    sx = float(np.sqrt((weights * (xs - cx) ** 2).sum() / total))
    sy = float(np.sqrt((weights * (ys - cy) ** 2).sum() / total))
    inside = float(smap[mask].mean())
    outside = float(smap[~mask].mean()) if (~mask).any() else inside
    contrast = (inside - outside) / (inside + 1e-6)
    # A compact region (small spread) is a clearer target than a scattered one.
    compactness = float(np.clip(1.0 - (sx + sy) / 0.5, 0.0, 1.0))
    concentration = float(np.clip(contrast * (0.5 + 0.5 * compactness), 0.0, 1.0))
    return SalientRegion(cx, cy, sx, sy, concentration)


# --- viewport geometry ---------------------------------------------------------------------------------


def _cover_fraction(image_aspect: float, output_aspect: float) -> tuple[float, float]:
    """Size of the zoom-1.0 window as a fraction of the photo's width and height."""
    finite = math.isfinite(image_aspect) and math.isfinite(output_aspect)
    if not finite or image_aspect <= 0 or output_aspect <= 0:
        raise ValueError(f"bad aspect ratios: image {image_aspect}, output {output_aspect}")
    if image_aspect > output_aspect:  # photo wider than the output: full height, partial width
        return output_aspect / image_aspect, 1.0
    return 1.0, image_aspect / output_aspect


def clamp_viewport(vp: Viewport, image_aspect: float, output_aspect: float) -> Viewport:
    """The same window as `vp`, moved (never resized) to lie inside the photo; zoom < 1 -> 1.

    `image_aspect` and `output_aspect` are width / height. The result renders identically to `vp`
    through `viewport_rect` (which clamps too); clamping in the plan keeps stored plans honest, so
    the storyboard shows where the camera really goes.
    """
    if not (math.isfinite(vp.zoom) and vp.zoom > 0):
        raise ValueError(f"viewport zoom must be positive, got {vp.zoom}")
    zoom = max(1.0, vp.zoom)
    fw, fh = _cover_fraction(image_aspect, output_aspect)
    hw, hh = fw / zoom / 2.0, fh / zoom / 2.0
    cx = min(max(vp.cx, hw), 1.0 - hw)
    cy = min(max(vp.cy, hh), 1.0 - hh)
    return Viewport(cx=cx, cy=cy, zoom=zoom)


def viewport_rect(vp: Viewport, img_w: int, img_h: int, output_aspect: float) -> Rect:
    """The camera window (x0, y0, w, h) in source pixels, as floats.

    Exactly: with A = `output_aspect` (width / height), the zoom-1.0 window is (H*A, H) when the
    photo is wider than A (W/H > A), else (W, W/A); at zoom z it is that size divided by max(z, 1).
    x0 = clamp(cx*W - w/2, 0, W - w) and y0 = clamp(cy*H - h/2, 0, H - h), so 0 <= x0,
    x0 + w <= W (same for y), and w / h == A up to float rounding. Coordinates are continuous:
    the photo spans [0, W] x [0, H] and pixel i covers [i, i+1), so a renderer mapping the
    window to an output of size (ow, oh) uses the affine map u = (x - x0) * ow / w (and likewise v).
    """
    if img_w <= 0 or img_h <= 0 or output_aspect <= 0:
        raise ValueError(f"bad geometry: image {img_w}x{img_h}, aspect {output_aspect}")
    if not (math.isfinite(vp.zoom) and vp.zoom > 0):
        raise ValueError(f"viewport zoom must be positive, got {vp.zoom}")
    if img_w / img_h > output_aspect:
        base_w, base_h = img_h * output_aspect, float(img_h)
    else:
        base_w, base_h = float(img_w), img_w / output_aspect
    zoom = max(1.0, vp.zoom)
    w, h = base_w / zoom, base_h / zoom
    x0 = min(max(vp.cx * img_w - w / 2.0, 0.0), img_w - w)
    y0 = min(max(vp.cy * img_h - h / 2.0, 0.0), img_h - h)
    return x0, y0, w, h


# --- motion planning ---------------------------------------------------------------------------------

#: Largest upsampling (output pixels per source pixel) a push-in may reach before the photo visibly
#: softens, relative to where it started; see `max_zoom_for`.
MAX_UPSCALE = 1.3
#: Deepest zoom any plan uses: beyond it a push-in feels like a crop, not a camera move.
ZOOM_CAP = 1.6
#: Every photo gets at least this much zoom room, so even a small photo can drift.
MIN_MOTION_ZOOM = 1.05
#: A pan/tilt needs the window to travel at least this fraction of the photo's width/height.
_MIN_TRAVEL = 0.1
#: A photo is "much wider/taller" than the output when the zoom-1.0 window can travel this fraction
#: of its width/height (16:9 output: wider than 2.54:1, or narrower than 1.24:1, e.g. portraits).
_MUCH_ROOM = 0.3
#: Fastest pan/tilt: at most this many window widths (heights) of travel in one clip.
_MAX_SCREENS = 1.0


def max_zoom_for(
    img_w: int,
    img_h: int,
    *,
    output_aspect: float = 16 / 9,
    output_height: int = 1080,
    max_upscale: float = MAX_UPSCALE,
) -> float:
    """Deepest zoom this photo tolerates in an output `output_height` px tall.

    At zoom 1 the window is (cover fraction x photo) pixels tall; the renderer scales it to the
    output height, i.e. upsamples by u1 = output_height / window_height. A zoom z multiplies that
    by z. We allow z up to `max_upscale` / u1, so a large photo may zoom until its pixels are
    stretched 1.3x, and a photo already upsampled at zoom 1 (a 640 px MLS photo in 1080p) keeps
    `MIN_MOTION_ZOOM` only: a gentle drift that does not make the softness worse. Capped at
    `ZOOM_CAP`.
    """
    if img_w <= 0 or img_h <= 0 or output_height <= 0:
        raise ValueError(f"bad geometry: image {img_w}x{img_h}, output height {output_height}")
    _, fh = _cover_fraction(img_w / img_h, output_aspect)
    upscale_at_1 = output_height / (fh * img_h)
    return float(min(ZOOM_CAP, max(MIN_MOTION_ZOOM, max_upscale / upscale_at_1)))


def allowed_motion_types(
    img_w: int, img_h: int, *, output_aspect: float = 16 / 9, output_height: int = 1080, max_zoom: float | None = None
) -> tuple[MotionType, ...]:
    """Motions this photo can carry without showing softness or running out of room.

    DRIFT always; PUSH_IN / PULL_OUT when the photo allows a zoom of at least 1.08; PAN_* when the
    window can travel >= 10 % of the photo's width (because the photo is wider than the output, or
    thanks to the zoom room); TILT_* likewise vertically. PARALLAX and I2V depend on depth maps and
    a GPU, which phase 2 decides; they are never listed here.
    """
    zmax = (
        max_zoom
        if max_zoom is not None
        else max_zoom_for(img_w, img_h, output_aspect=output_aspect, output_height=output_height)
    )
    fw, fh = _cover_fraction(img_w / img_h, output_aspect)
    out: list[MotionType] = []
    if zmax >= 1.08:
        out += [MotionType.PUSH_IN, MotionType.PULL_OUT]
    if 1.0 - fw / zmax >= _MIN_TRAVEL:
        out += [MotionType.PAN_LEFT, MotionType.PAN_RIGHT]
    if 1.0 - fh / zmax >= _MIN_TRAVEL:
        out += [MotionType.TILT_UP, MotionType.TILT_DOWN]
    out.append(MotionType.DRIFT)
    return tuple(out)


def plan_motion(
    rgb: np.ndarray,
    *,
    output_aspect: float = 16 / 9,
    is_exterior: bool,
    quality: QualityScores | None,
    salient_point: tuple[float, float] | None = None,
    seed: int = 0,
    output_height: int = 1080,
    is_hero: bool = False,
    source_size: tuple[int, int] | None = None,
) -> MotionPlan:
    """Choose the camera move for one photo from the photo itself.

    Decision order (first match wins), and why:

    1. Weak photo (base score < 0.45 or sharpness < 0.35): DRIFT, a near-static move that does
       not magnify flaws.
    2. Much wider than the output (the window can travel >= 30 % of the width at zoom 1): PAN
       along the wide axis, ending on the salient side (the clip ends on the interesting part).
    3. Much taller than the output (portrait photo in a landscape video): TILT, ending on the
       salient side. Pans and tilts run at zoom 1.0, so they need no resolution reserve.
    3b. No zoom room (photo already upsampled at zoom 1.0, see `max_zoom_for`): DRIFT.
    4. Exterior: slow PUSH_IN on the house (the salient region), or PULL_OUT for some seeds, so a
       set of exteriors does not all move alike.
    5. Interior with a clear salient region: PUSH_IN toward it.
    6. Interior whose interest is spread horizontally, with zoom room: a zoomed-in PAN across it.
    7. Otherwise a gentle PUSH_IN toward the centre of interest.

    `salient_point` (normalised x, y), when given (e.g. from a detector), replaces the saliency
    map's centroid. `seed` makes the choice between equivalent options deterministic per clip.
    `source_size` is the (width, height) of the photo that will be *rendered*, when `rgb` is only a
    downscaled analysis copy: the zoom limit depends on the real resolution, the rest of the plan is
    resolution-independent. `is_hero` lengthens the recommended duration by 1 s. Viewports are
    clamped inside the photo (`clamp_viewport`).
    """
    if rgb.ndim != 3 or rgb.shape[0] < 2 or rgb.shape[1] < 2:
        raise ValueError(f"expected an HxWx3 image, got shape {rgb.shape}")
    if output_aspect <= 0:
        raise ValueError(f"output_aspect must be positive, got {output_aspect}")
    h, w = rgb.shape[:2]
    aspect = w / h
    src_w, src_h = _rendered_size(source_size, w, h)
    rng = random.Random(seed)
    zmax = max_zoom_for(src_w, src_h, output_aspect=output_aspect, output_height=output_height)
    allowed = allowed_motion_types(src_w, src_h, output_aspect=output_aspect, max_zoom=zmax)
    fw, fh = _cover_fraction(aspect, output_aspect)
    region, focus = _focus_region(rgb, salient_point)
    shot = _Shot(aspect, output_aspect, zmax, tuple(allowed), is_hero, region, focus)
    # Drawn before any branch, so a seed gives the same jitter whichever move is chosen.
    jitter = rng.uniform(-0.02, 0.02)

    if _is_weak(quality):
        return shot.drift("weak photo quality")
    # Pans and tilts at zoom 1.0 magnify nothing, so they suit low-resolution photos too.
    if 1.0 - fw >= _MUCH_ROOM:
        return _pan(region, aspect, output_aspect, 1.0, allowed, is_hero, f"photo much wider than output; {focus}")
    if 1.0 - fh >= _MUCH_ROOM:
        return _tilt(region, aspect, output_aspect, 1.0, allowed, is_hero, f"photo much taller than output; {focus}")
    if zmax < 1.08:
        return shot.drift(f"low resolution (max zoom {zmax:.2f})")
    if is_exterior:
        return _exterior_move(shot, jitter, rng)
    return _interior_move(shot, jitter, fw)


def _rendered_size(source_size: tuple[int, int] | None, w: int, h: int) -> tuple[int, int]:
    """(width, height) of the photo that will be rendered: `source_size` when given (it must have
    the analysis copy's aspect), else the analysis copy's own size."""
    if source_size is None:
        return w, h
    aspect = w / h
    src_w, src_h = source_size
    if src_w <= 0 or src_h <= 0 or abs(src_w / src_h - aspect) > 0.02 * aspect:
        raise ValueError(f"source_size {source_size} does not match the image's aspect {aspect:.3f}")
    return src_w, src_h


def _focus_region(rgb: np.ndarray, salient_point: tuple[float, float] | None) -> tuple[SalientRegion, str]:
    """Where the interest is (a given point, else the saliency map's region) and how to say so in
    the plan's rationale."""
    if salient_point is not None:
        sx, sy = (float(np.clip(salient_point[0], 0.0, 1.0)), float(np.clip(salient_point[1], 0.0, 1.0)))
        region = SalientRegion(sx, sy, 0.1, 0.1, 1.0)
        source = "given salient point"
    else:
        region = salient_region(saliency_map(rgb))
        source = "saliency"
    return region, f"{source} at ({region.x:.2f}, {region.y:.2f}), concentration {region.concentration:.2f}"


def _is_weak(quality: QualityScores | None) -> bool:
    """Too soft or too poor to magnify (see `plan_motion`, rule 1)."""
    return quality is not None and (quality.base_score < 0.45 or quality.sharpness < 0.35)


@dataclass(frozen=True)
class _Shot:
    """What every candidate move of one photo shares: its geometry, zoom limit and saliency."""

    aspect: float
    output_aspect: float
    zmax: float
    allowed: tuple[MotionType, ...]
    is_hero: bool
    region: SalientRegion
    focus: str

    def viewport(self, cx: float, cy: float, zoom: float) -> Viewport:
        return clamp_viewport(Viewport(cx, cy, zoom), self.aspect, self.output_aspect)

    def plan(
        self, kind: MotionType, start: Viewport, end: Viewport, easing: Easing, duration: float, rationale: str
    ) -> MotionPlan:
        return _plan(kind, start, end, easing, self.allowed, duration, self.is_hero, rationale)

    def drift(self, why: str) -> MotionPlan:
        # Drift a little toward the interest, never more than a few percent of the frame.
        region = self.region
        end = self.viewport(0.5 + 0.25 * (region.x - 0.5), 0.5 + 0.25 * (region.y - 0.5), min(self.zmax, 1.05))
        return self.plan(
            MotionType.DRIFT, self.viewport(0.5, 0.5, 1.0), end, Easing.LINEAR, 3.0, f"drift: {why}; {self.focus}"
        )


def _exterior_move(shot: _Shot, jitter: float, rng: random.Random) -> MotionPlan:
    """Rule 4 of `plan_motion`: a slow push-in on the house, or for some seeds a pull-out from it."""
    region = shot.region
    z_end = min(shot.zmax, 1.15 + jitter)
    target = shot.viewport(0.5 + 0.6 * (region.x - 0.5), 0.5 + 0.6 * (region.y - 0.5), z_end)
    wide = shot.viewport(0.5, 0.5, 1.0)
    if rng.random() < 0.35:
        return shot.plan(
            MotionType.PULL_OUT, target, wide, Easing.EASE_IN_OUT, 4.5, f"exterior: reveal from the house; {shot.focus}"
        )
    return shot.plan(
        MotionType.PUSH_IN, wide, target, Easing.EASE_IN_OUT, 4.5, f"exterior: slow push-in on the house; {shot.focus}"
    )


def _interior_move(shot: _Shot, jitter: float, fw: float) -> MotionPlan:
    """Rules 5-7 of `plan_motion`: push in toward clear interest, pan across spread-out interest,
    else push in gently toward its centre. `fw` is the zoom-1.0 window's width fraction."""
    region, zmax, focus = shot.region, shot.zmax, shot.focus
    if region.concentration >= 0.3:
        z_end = min(zmax, 1.25 + jitter)
        return shot.plan(
            MotionType.PUSH_IN,
            shot.viewport(0.5, 0.5, 1.0),
            shot.viewport(region.x, region.y, z_end),
            Easing.EASE_IN_OUT,
            4.0,
            f"interior: push in toward the salient region; {focus}",
        )

    if region.spread_x >= 0.22 and zmax >= 1.15 and 1.0 - fw / min(zmax, 1.2) >= 0.12:
        return _pan(
            region,
            shot.aspect,
            shot.output_aspect,
            min(zmax, 1.2),
            shot.allowed,
            shot.is_hero,
            f"interest spread horizontally; {focus}",
        )

    z_end = min(zmax, 1.12 + jitter)
    end = shot.viewport(0.5 + 0.5 * (region.x - 0.5), 0.5 + 0.5 * (region.y - 0.5), z_end)
    return shot.plan(
        MotionType.PUSH_IN, shot.viewport(0.5, 0.5, 1.0), end, Easing.EASE_IN_OUT, 3.5, f"gentle push-in; {focus}"
    )


def _plan(
    kind: MotionType,
    start: Viewport,
    end: Viewport,
    easing: Easing,
    allowed: Sequence[MotionType],
    duration: float,
    is_hero: bool,
    rationale: str,
) -> MotionPlan:
    duration = duration + (1.0 if is_hero else 0.0)
    return MotionPlan(
        motion_type=kind,
        start=start,
        end=end,
        easing=easing,
        recommended_duration=round(float(np.clip(duration, 2.5, 6.5)), 2),
        allowed=tuple(allowed),
        rationale=rationale,
    )


def _pan(
    region: SalientRegion,
    aspect: float,
    output_aspect: float,
    zoom: float,
    allowed: Sequence[MotionType],
    is_hero: bool,
    why: str,
) -> MotionPlan:
    """Horizontal travel at constant zoom, ending on the salient side, at most `_MAX_SCREENS`
    window widths long (a longer pan would rush)."""
    fw, _ = _cover_fraction(aspect, output_aspect)
    half = fw / zoom / 2.0
    lo, hi = half, 1.0 - half
    travel = min(hi - lo, 2.0 * half * _MAX_SCREENS)
    cy = 0.5 + 0.5 * (region.y - 0.5)
    if region.x >= 0.5:
        end_x = float(np.clip(region.x, lo + travel, hi))
        kind, start_x = MotionType.PAN_RIGHT, end_x - travel
    else:
        end_x = float(np.clip(region.x, lo, hi - travel))
        kind, start_x = MotionType.PAN_LEFT, end_x + travel
    screens = travel / (2.0 * half)
    start = clamp_viewport(Viewport(start_x, cy, zoom), aspect, output_aspect)
    end = clamp_viewport(Viewport(end_x, cy, zoom), aspect, output_aspect)
    return _plan(
        kind,
        start,
        end,
        Easing.EASE_IN_OUT,
        allowed,
        3.5 + 2.0 * screens,
        is_hero,
        f"{kind.value}: {why}; travels {screens:.2f} screen widths",
    )


def _tilt(
    region: SalientRegion,
    aspect: float,
    output_aspect: float,
    zoom: float,
    allowed: Sequence[MotionType],
    is_hero: bool,
    why: str,
) -> MotionPlan:
    """Vertical travel at constant zoom, ending on the salient side (see `_pan`)."""
    _, fh = _cover_fraction(aspect, output_aspect)
    half = fh / zoom / 2.0
    lo, hi = half, 1.0 - half
    travel = min(hi - lo, 2.0 * half * _MAX_SCREENS)
    cx = 0.5 + 0.5 * (region.x - 0.5)
    if region.y < 0.5:
        end_y = float(np.clip(region.y, lo, hi - travel))
        kind, start_y = MotionType.TILT_UP, end_y + travel
    else:
        end_y = float(np.clip(region.y, lo + travel, hi))
        kind, start_y = MotionType.TILT_DOWN, end_y - travel
    screens = travel / (2.0 * half)
    start = clamp_viewport(Viewport(cx, start_y, zoom), aspect, output_aspect)
    end = clamp_viewport(Viewport(cx, end_y, zoom), aspect, output_aspect)
    return _plan(
        kind,
        start,
        end,
        Easing.EASE_IN_OUT,
        allowed,
        3.5 + 2.0 * screens,
        is_hero,
        f"{kind.value}: {why}; travels {screens:.2f} screen heights",
    )


# --- variety across a tour ---------------------------------------------------------------------------

#: A move and its reverse over the same two windows (same framing, opposite direction).
_REVERSE: dict[MotionType, MotionType] = {
    MotionType.PUSH_IN: MotionType.PULL_OUT,
    MotionType.PULL_OUT: MotionType.PUSH_IN,
    MotionType.PAN_LEFT: MotionType.PAN_RIGHT,
    MotionType.PAN_RIGHT: MotionType.PAN_LEFT,
    MotionType.TILT_UP: MotionType.TILT_DOWN,
    MotionType.TILT_DOWN: MotionType.TILT_UP,
}


def reverse_plan(plan: MotionPlan) -> MotionPlan:
    """The same camera path run backwards (a push-in becomes a pull-out over the same windows)."""
    reverse = _REVERSE.get(plan.motion_type)
    if reverse is None or (reverse not in plan.allowed and plan.allowed):
        return plan
    note = f"{plan.rationale}; reversed for variety" if plan.rationale else "reversed for variety"
    return MotionPlan(reverse, plan.end, plan.start, plan.easing, plan.recommended_duration, plan.allowed, note)


def vary_motion(plans: Sequence[MotionPlan]) -> list[MotionPlan]:
    """`plans` in tour order, with every second of a run of the same move reversed, so consecutive shots
    never repeat one move (a listing of all push-ins reads as a slideshow). The opener keeps its move;
    framings are unchanged (a reversed plan shows the same two windows)."""
    out: list[MotionPlan] = []
    for plan in plans:
        if out and plan.motion_type == out[-1].motion_type:
            plan = reverse_plan(plan)
        out.append(plan)
    return out
