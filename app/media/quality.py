"""Technical and compositional quality of one photo, as scores in 0..1.

Why classical measures: they are cheap (tens of milliseconds per photo on a CPU), explainable in the
storyboard ("soft focus", "tilted 3°"), and good enough to choose the best of several views of the
same room and to avoid deep zooms into weak photos. All measures run on a copy reduced to
`WORK_SIDE` px so that scores do not depend on the upload's resolution (resolution is reported
separately in `raw`, and the motion planner handles it).

Calibration: the curves were set on 40 real photos (24 MLS listing photos of 640-1024 px, heavily
sharpened, and 16 phone photos of 1600 px) and on Gaussian-blurred, darkened and rotated copies.
Measured with the final curves: sharpness of the originals >= 0.62 (median 1.0) and of sigma-2 px
blurred copies <= 0.31 (median 0.07); exposure of the originals >= 0.65 (median 1.0) and of copies
darkened to 35 % <= 0.16; rotating a photo by 5° changed its measured tilt by 5 ± 1° for 35 of 40
photos (median error 0.17°; the misses are phone shots with few, strongly converging verticals,
which the tilt score then treats as weak evidence).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from app.media.images import resize_max
from app.media.motion import saliency_map, salient_region

__all__ = ["WORK_SIDE", "QualityScores", "featureless_reason", "score_quality"]

#: Long side of the working copy every measure runs on.
WORK_SIDE = 1024

#: Weights of `QualityScores.base_score` (sum to 1). Sharpness matters most: a soft photo looks
#: worse on a 1080p screen than a slightly dark one, and the camera motion makes softness obvious.
_WEIGHTS = {"sharpness": 0.35, "exposure": 0.25, "tilt": 0.15, "composition": 0.25}


@dataclass(frozen=True)
class QualityScores:
    """Per-photo quality. Every score is 0..1, higher is better.

    `tilt_degrees` is signed: positive when vertical lines lean clockwise (their tops to the right);
    rotating the photo counter-clockwise by that angle levels it. `clipped_highlights` /
    `clipped_shadows` are the fractions of pixels at the ends of the range. `raw` holds the
    uncalibrated measurements (for debugging and recalibration).
    """

    sharpness: float
    exposure: float
    tilt_score: float
    tilt_degrees: float
    composition: float
    base_score: float
    clipped_highlights: float
    clipped_shadows: float
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def exposure_score(self) -> float:
        """Alias matching the data model's column name."""
        return self.exposure

    @property
    def composition_score(self) -> float:
        return self.composition

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            k: round(float(getattr(self, k)), 4)
            for k in (
                "sharpness",
                "exposure",
                "tilt_score",
                "tilt_degrees",
                "composition",
                "base_score",
                "clipped_highlights",
                "clipped_shadows",
            )
        }
        out["raw"] = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in self.raw.items()}
        return out


def score_quality(rgb: np.ndarray) -> QualityScores:
    """Measure sharpness, exposure, tilt and composition of an RGB uint8 photo."""
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"expected uint8 HxWx3 RGB, got {rgb.dtype}{rgb.shape}")
    h0, w0 = rgb.shape[:2]
    work = resize_max(np.ascontiguousarray(rgb), WORK_SIDE)
    grey8 = cv2.cvtColor(work, cv2.COLOR_RGB2GRAY)
    grey = grey8.astype(np.float32)

    raw: dict[str, Any] = {"width": int(w0), "height": int(h0), "megapixels": round(w0 * h0 / 1e6, 3)}
    sharp = _sharpness(grey, raw)
    exposure, hi_clip, lo_clip = _exposure(resize_max(work, 512), raw)
    lines = _line_segments(grey8)
    tilt_deg, tilt_score = _tilt(lines, grey8.shape, raw)
    composition = _composition(work, grey, lines, raw)

    weighted = (
        _WEIGHTS["sharpness"] * sharp
        + _WEIGHTS["exposure"] * exposure
        + _WEIGHTS["tilt"] * tilt_score
        + _WEIGHTS["composition"] * composition
    )
    # A weakest-link term: a blurred or black photo must not be rescued by good framing.
    base = 0.8 * weighted + 0.2 * min(sharp, exposure)
    return QualityScores(
        sharpness=sharp,
        exposure=exposure,
        tilt_score=tilt_score,
        tilt_degrees=tilt_deg,
        composition=composition,
        base_score=float(np.clip(base, 0.0, 1.0)),
        clipped_highlights=hi_clip,
        clipped_shadows=lo_clip,
        raw=raw,
    )


def _logistic(x: float, mid: float, width: float) -> float:
    """Saturating 0..1 curve: 0.5 at `mid`, ~0.12 / ~0.88 at mid -/+ 2 * width."""
    return float(1.0 / (1.0 + math.exp(-(x - mid) / width)))


# --- featureless photos ----------------------------------------------------------------------------

#: Working copy of `featureless_reason`: long side, and the short side it never goes below (a panorama
#: strip still gets a few blocks across).
_FLAT_SIDE, _FLAT_MIN_SHORT = 256, 64
#: Every channel's standard deviation (0..255) below this: one colour (black, white, a colour fill).
_UNIFORM_STD = 2.0
#: At least this fraction of the frame within +-`_MODAL_LEVELS` luma levels of the most common level:
#: a flat card with a logo or a line of text. Real photos measured <= 0.12; darkened (12 %) or
#: fogged (15 % contrast) copies of them <= 0.72; "coming soon" cards >= 0.95.
_MODAL_FRACTION = 0.80
_MODAL_LEVELS = 2
#: 90th percentile of the 16 px blocks' high-pass (sigma 2 px) standard deviation below this: no detail
#: anywhere (a gradient, or a photo blurred beyond recognition). Real photos >= 14, blurred by 8 px
#: >= 1.9, darkened to 6 % >= 1.2; a smooth gradient 0.5.
_DETAIL_P90 = 0.8
_DETAIL_BLOCK = 16


def featureless_reason(rgb: np.ndarray) -> str | None:
    """Why `rgb` (uint8 RGB) shows nothing a listing video can use, or None when it shows something.

    Blank frames (black, white, a colour), "coming soon" cards (one flat colour with a little text or a
    logo) and smooth gradients pass every decoder check but give the camera nothing to move over and
    the clip validator nothing to recognise, so phase 1 rejects them instead of phase 2 failing on them.
    Dark, foggy or soft photos are not featureless: they keep their (low) quality score.
    """
    h, w = rgb.shape[:2]
    scale = min(_FLAT_SIDE / max(h, w), 1.0)
    scale = max(scale, min(_FLAT_MIN_SHORT / min(h, w), 1.0))
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    small = cv2.resize(np.ascontiguousarray(rgb), size, interpolation=cv2.INTER_AREA) if scale < 1.0 else rgb
    spread = float(small.reshape(-1, 3).std(axis=0).max())
    if spread < _UNIFORM_STD:
        r, g, b = (round(float(v)) for v in small.reshape(-1, 3).mean(axis=0))
        return f"a uniform colour (RGB {r},{g},{b}): a blank or placeholder image"
    grey = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY).astype(np.float32)
    hist = np.bincount(np.clip(np.rint(grey), 0, 255).astype(np.int64).ravel(), minlength=256)
    mode = int(hist.argmax())
    modal = float(hist[max(0, mode - _MODAL_LEVELS) : mode + _MODAL_LEVELS + 1].sum()) / grey.size
    if modal >= _MODAL_FRACTION:
        return f"{modal:.0%} of the frame is one flat colour: a blank card with a little text or a logo"
    detail = _block_detail(grey)
    if detail < _DETAIL_P90:
        return f"no visible detail ({detail:.2f} < {_DETAIL_P90}): a plain gradient or a photo blurred to nothing"
    return None


def _block_detail(grey: np.ndarray) -> float:
    """90th percentile of the high-pass standard deviation of `_DETAIL_BLOCK` px blocks."""
    hp = grey - cv2.GaussianBlur(grey, (0, 0), 2.0)
    b = _DETAIL_BLOCK
    h, w = (hp.shape[0] // b) * b, (hp.shape[1] // b) * b
    if h == 0 or w == 0:
        return float(hp.std())
    blocks = hp[:h, :w].reshape(h // b, b, w // b, b).std(axis=(1, 3))
    return float(np.quantile(blocks, 0.9))


# --- sharpness ---------------------------------------------------------------------------------------


def _sharpness(grey: np.ndarray, raw: dict[str, Any]) -> float:
    """Two complementary measures on the working copy.

    * variance of the Laplacian (the classic focus measure), on a log scale: high for crisp
      detail, but also low for a sharp photo of a blank wall;
    * the edge-acuity ratio mean|Laplacian| / mean|gradient| over the strongest 10 % of edges:
      a blurred edge has a gradient but little curvature, independent of how much the photo
      contains. This keeps sharp, sparse photos from being called blurry.
    """
    lap = cv2.Laplacian(grey, cv2.CV_32F, ksize=3)
    lap_var = float(lap.var())
    gx = cv2.Sobel(grey, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(grey, cv2.CV_32F, 0, 1, ksize=3)
    mag = np.sqrt(gx * gx + gy * gy)
    thr = float(np.quantile(mag, 0.90))
    strong = mag >= max(thr, 8.0)
    if int(strong.sum()) < 50:  # nearly featureless (or flat) image: nothing to judge, call it soft
        acuity = 0.0
    else:
        acuity = float(np.abs(lap[strong]).mean() / (mag[strong].mean() + 1e-6))
    raw["laplacian_var"] = round(lap_var, 2)
    raw["edge_acuity"] = round(acuity, 4)
    var_score = _logistic(math.log10(lap_var + 1.0), mid=2.45, width=0.22)
    acuity_score = _logistic(acuity, mid=0.36, width=0.05)
    return float(np.clip(0.6 * acuity_score + 0.4 * var_score, 0.0, 1.0))


# --- exposure ----------------------------------------------------------------------------------------


def _exposure(rgb: np.ndarray, raw: dict[str, Any]) -> tuple[float, float, float]:
    """Brightness, clipping and contrast.

    Listing photos are meant to be bright: the target mean luminance is 0.5, with a flat optimum
    from 0.42 to 0.62. Clipped highlights (a blown window) are common and tolerated up to ~5 %;
    crushed shadows are tolerated less beyond ~5 %. Very low contrast (haze, fog, a grey frame)
    is penalised too.
    """
    f = rgb.astype(np.float32) / 255.0
    luma = 0.2126 * f[..., 0] + 0.7152 * f[..., 1] + 0.0722 * f[..., 2]
    mean = float(luma.mean())
    std = float(luma.std())
    hi_clip = float((rgb.max(axis=2) >= 250).mean())
    lo_clip = float((rgb.max(axis=2) <= 8).mean())
    p05, p95 = (float(v) for v in np.quantile(luma, [0.05, 0.95]))
    raw.update(mean_luma=round(mean, 4), luma_std=round(std, 4), p05_luma=round(p05, 4), p95_luma=round(p95, 4))
    if mean < 0.42:
        mean_term = math.exp(-(((0.42 - mean) / 0.16) ** 2))
    elif mean > 0.62:
        mean_term = math.exp(-(((mean - 0.62) / 0.14) ** 2))
    else:
        mean_term = 1.0
    hi_pen = float(np.clip((hi_clip - 0.05) / 0.30, 0.0, 1.0))
    lo_pen = float(np.clip((lo_clip - 0.05) / 0.20, 0.0, 1.0))
    contrast_term = float(np.clip(std / 0.12, 0.0, 1.0)) ** 0.5
    score = mean_term * (1.0 - 0.6 * hi_pen) * (1.0 - 0.7 * lo_pen) * (0.4 + 0.6 * contrast_term)
    return float(np.clip(score, 0.0, 1.0)), hi_clip, lo_clip


# --- lines and tilt ----------------------------------------------------------------------------------


def _line_segments(grey8: np.ndarray) -> np.ndarray:
    """Straight segments (N x 4: x1, y1, x2, y2) from OpenCV's LSD line segment detector.

    LSD fits each segment to the gradient field with sub-pixel accuracy. A Canny + Hough pipeline
    was tried first: on nearly vertical edges it returns the pixel staircase's vertical runs as
    exactly vertical segments, which biases a 3° roll towards 0°.
    """
    h, w = grey8.shape
    detector = cv2.createLineSegmentDetector(cv2.LSD_REFINE_STD)
    found = detector.detect(cv2.GaussianBlur(grey8, (3, 3), 0.8))[0]
    if found is None or len(found) == 0:
        return np.zeros((0, 4), np.float32)
    segs = found.reshape(-1, 4).astype(np.float32)
    length = np.hypot(segs[:, 2] - segs[:, 0], segs[:, 3] - segs[:, 1])
    return segs[length >= max(15.0, 0.05 * min(h, w))]


def _measure_tilt(lines: np.ndarray, shape: tuple[int, int]) -> dict[str, float]:
    """Camera roll from near-vertical segments.

    Each segment within 20° of vertical gives a lean angle (positive: top to the right). Vertical
    lines in a photo taken with the camera pitched up or down converge (keystone): their lean grows
    linearly with their horizontal position, symmetric about the optical centre, while a camera roll
    adds the same lean everywhere. So when segments span both halves of the photo the roll is the
    intercept at the centre of a length-weighted linear fit lean = roll + slope * x (one pass of
    outlier rejection); otherwise it is the length-weighted median lean.
    """
    h, w = shape
    out = {
        "tilt_degrees": 0.0,
        "vertical_lines": 0.0,
        "vertical_length": 0.0,
        "keystone": 0.0,
        "median_lean": 0.0,
        "confident": 0.0,
    }
    if len(lines) == 0:
        return out
    x1, y1, x2, y2 = lines[:, 0], lines[:, 1], lines[:, 2], lines[:, 3]
    top_is_1 = y1 < y2
    xt = np.where(top_is_1, x1, x2)
    yt = np.where(top_is_1, y1, y2)
    xb = np.where(top_is_1, x2, x1)
    yb = np.where(top_is_1, y2, y1)
    lean = np.degrees(np.arctan2(xt - xb, yb - yt))
    length = np.hypot(x2 - x1, y2 - y1)
    keep = np.abs(lean) < 20.0
    if int(keep.sum()) < 3 or float(length[keep].sum()) < 0.5 * h:
        out["vertical_lines"] = float(keep.sum())
        return out
    lean, length = lean[keep], length[keep]
    out["vertical_length"] = float(length.sum())
    xm = ((xt[keep] + xb[keep]) / 2.0) / w - 0.5
    median = _weighted_median(lean, length)
    out["median_lean"] = median
    out["vertical_lines"] = float(len(lean))
    roll = median
    spread = math.sqrt(float(np.average((xm - np.average(xm, weights=length)) ** 2, weights=length)))
    if len(lean) >= 6 and spread >= 0.15 and (xm < -0.05).any() and (xm > 0.05).any():
        sel = np.ones(len(lean), bool)
        for _ in range(2):
            a = np.stack([np.ones(int(sel.sum())), xm[sel]], axis=1)
            sw = np.sqrt(length[sel])
            coef, *_ = np.linalg.lstsq(a * sw[:, None], lean[sel] * sw, rcond=None)
            resid = np.abs(lean - (coef[0] + coef[1] * xm))
            mad = float(np.median(resid[sel])) + 0.25
            sel = resid <= 3.0 * mad
            if int(sel.sum()) < 4:
                break
        else:
            roll = float(coef[0])
            out["keystone"] = float(coef[1])
    out["tilt_degrees"] = float(roll)
    out["confident"] = 1.0
    return out


def _weighted_median(values: np.ndarray, weights: np.ndarray) -> float:
    order = np.argsort(values)
    cum = np.cumsum(weights[order])
    return float(values[order][int(np.searchsorted(cum, cum[-1] / 2.0))])


def _tilt(lines: np.ndarray, shape: tuple[int, int], raw: dict[str, Any]) -> tuple[float, float]:
    """Score the roll: 1.0 when level, 0.88 at 1°, 0.6 at 2°, 0.14 at 4°.

    No vertical evidence -> 1.0 (a landscape without verticals cannot look tilted). Weak evidence
    (fewer than 8 segments or less than 1.5 photo heights of them) caps the penalty at 0.25, because
    a few strongly converging lines in a steep shot can fake a roll.
    """
    t = _measure_tilt(lines, shape)
    h = shape[0]
    confident = bool(t["confident"]) and t["vertical_lines"] >= 8 and t["vertical_length"] >= 1.5 * h
    raw.update(
        tilt_vertical_lines=int(t["vertical_lines"]),
        tilt_keystone=round(t["keystone"], 3),
        tilt_median_lean=round(t["median_lean"], 3),
        tilt_confident=confident,
    )
    deg = t["tilt_degrees"]
    score = float(math.exp(-0.5 * (deg / 2.0) ** 2))
    if not confident:
        score = max(score, 0.75)
    return round(deg, 3), score


# --- composition -------------------------------------------------------------------------------------


def _composition(rgb: np.ndarray, grey: np.ndarray, lines: np.ndarray, raw: dict[str, Any]) -> float:
    """Framing, as far as cheap cues can tell.

    * placement: the saliency centroid near the centre or a rule-of-thirds point;
    * balance: salient mass not piled into one side;
    * emptiness: a large featureless area (bare wall, ceiling, sky) wastes the frame;
    * horizon: long near-horizontal lines are level on average.
    """
    smap = saliency_map(rgb)
    region = salient_region(smap)
    points = [(0.5, 0.5), (1 / 3, 1 / 3), (2 / 3, 1 / 3), (1 / 3, 2 / 3), (2 / 3, 2 / 3)]
    d = min(math.hypot(region.x - px, region.y - py) for px, py in points)
    placement = math.exp(-((d / 0.17) ** 2))

    half = smap.shape[1] // 2
    left, right = float(smap[:, :half].sum()), float(smap[:, half:].sum())
    balance = 1.0 - abs(left - right) / (left + right + 1e-6)

    thumb_size = (128, max(8, round(128 * grey.shape[0] / grey.shape[1])))
    small = cv2.resize(grey, thumb_size, interpolation=cv2.INTER_AREA)
    gx = cv2.Sobel(small, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(small, cv2.CV_32F, 0, 1, ksize=3)
    energy = cv2.blur(np.sqrt(gx * gx + gy * gy), (5, 5))
    empty = float((energy < 12.0).mean())
    empty_term = 1.0 - float(np.clip((empty - 0.45) / 0.45, 0.0, 1.0))

    horizon = _horizon_angle(lines, grey.shape)
    horizon_term = 1.0 if horizon is None else math.exp(-0.5 * (horizon / 3.0) ** 2)

    raw.update(
        salient_x=round(region.x, 4),
        salient_y=round(region.y, 4),
        salient_concentration=round(region.concentration, 4),
        balance=round(balance, 4),
        empty_fraction=round(empty, 4),
        horizon_degrees=None if horizon is None else round(horizon, 3),
    )
    score = 0.35 * placement + 0.2 * balance + 0.25 * empty_term + 0.2 * horizon_term
    return float(np.clip(score, 0.0, 1.0))


def _horizon_angle(lines: np.ndarray, shape: tuple[int, int]) -> float | None:
    """Length-weighted median angle of long (>= 25 % of the width) near-horizontal lines, or None.

    Perspective tilts horizontal lines above the eye level one way and below it the other, so the
    median of many is near zero for a level camera; a rolled camera shifts all of them.
    """
    if len(lines) == 0:
        return None
    w = shape[1]
    dx = lines[:, 2] - lines[:, 0]
    dy = lines[:, 3] - lines[:, 1]
    length = np.hypot(dx, dy)
    ang = np.degrees(np.arctan2(dy, dx))
    ang = np.where(ang > 90, ang - 180, np.where(ang < -90, ang + 180, ang))
    keep = (np.abs(ang) < 10.0) & (length >= 0.25 * w)
    if int(keep.sum()) < 2:
        return None
    return _weighted_median(ang[keep], length[keep])
