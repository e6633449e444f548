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
    "SalientRegion",
    "allowed_motion_types",
    "clamp_viewport",
    "max_zoom_for",
    "plan_motion",
    "salient_region",
    "saliency_map",
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
    centre = np.exp(-(((xx + 0.5) / w - 0.5) ** 2 / (2 * 0.3**2) + ((yy + 0.5) / h - 0.5) ** 2 / (2 * 0.3**2)))
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
    if image_aspect <= 0 or output_aspect <= 0 or not (math.isfinite(image_aspect) and math.isfinite(output_aspect)):
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
