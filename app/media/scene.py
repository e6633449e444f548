"""Interior / exterior and an honest room-type guess from classical colour, texture and line cues.

Why classical cues: phase 1 must run on a plain CPU worker without model weights (CLIP replaces
this where its weights exist; `source` records which produced a guess). `scene_features` measures
~40 physically motivated cues on a small copy of the photo (sky and vegetation by position, the
ceiling, colour and texture per horizontal band, edge orientation, straight lines, a bed-like soft
block, porcelain blobs, lamps); two small logistic models whose coefficients were fitted by
`scripts/fit_scene.py` turn them into

* `exterior_probability` (binary logistic), and
* a room type among kitchen / bedroom / bathroom (multinomial logistic) whose top probability is
  mapped to `label_confidence` so that 0.5 is the reliability threshold: below it the room label
  is `UNKNOWN_ROOM` and only `room_guess` keeps the best raw guess.

Photos are reduced to `WORK_SIDE` px; flat letterbox bars are cut off first and colour statistics
ignore a `_MARGIN` border (MLS watermarks, corner logos and text banners live there). Hue is in
degrees (0..360), texture is the 5x5-blurred Sobel magnitude of 8-bit grey.

Measured on 64 real MLS listings (256 photos: 64 each of exterior, kitchen, bedroom, bathroom;
`scripts/eval_scene.py`), held out = nested 8-fold cross-validation grouped by listing (models, C
and the confidence knots refitted without the test listings):

* interior/exterior: 98.8 % held out (99.6 % in sample), no error with p >= 0.9 or <= 0.1 (the
  worst: a pale-blue bathroom at p = 0.73, a courtyard facade at 0.39); 16/16 phone photos of
  a bedroom interior (p <= 0.16);
* room type: 74 % of top guesses right held out (chance 33 %); 55 % of interiors get a label
  (`label_confidence >= 0.5`) and 88.6 % of those are right (in sample: 62 %, 95 %). Bins:
  confidence 0.5-0.65 -> 68 %, 0.65-0.8 -> 96 %, >= 0.8 -> 95 % right. Living rooms, dining rooms
  and bare rooms are outside the model: a bare tiled bedroom corner is called bathroom.
* about 12-28 ms per photo on a shared 2-core CPU (320 px copy; LSD is the largest cost).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from app.media.images import ROOM_LABELS, UNKNOWN_ROOM, normalize_room_label, resize_max

__all__ = [
    "HEURISTIC_SOURCE",
    "ROOM_CLASSES",
    "WORK_SIDE",
    "SceneGuess",
    "classify_scene",
    "exterior_probability",
    "resolve_room_label",
    "room_confidence",
    "room_decision",
    "room_probabilities",
    "scene_features",
]

HEURISTIC_SOURCE = "heuristic:v2"
#: Long side of the analysed copy: sky, foliage and line cues are stable from ~250 px up; 320 px
#: keeps the whole classification near 15 ms.
WORK_SIDE = 320
#: Border ignored by the colour statistics, as a fraction of each side (watermarks, logos, banners).
_MARGIN = 0.06
#: The room types the classical model tells apart (the listing data it was fitted on has these).
ROOM_CLASSES: tuple[str, ...] = ("kitchen", "bedroom", "bathroom")


@dataclass(frozen=True)
class SceneGuess:
    """What the classifier thinks a photo shows.

    `exterior_probability` is a calibrated logistic probability; `is_exterior` is
    `exterior_probability >= 0.5`. `room_label` is one of `app.media.images.ROOM_LABELS`, or
    `UNKNOWN_ROOM` when the room-type guess is below its reliability threshold
    (`label_confidence < 0.5`); `room_guess` is the best raw guess either way. `features` holds
    the cue values, for debugging and for recalibration.
    """

    is_exterior: bool
    exterior_probability: float
    room_label: str
    label_confidence: float
    source: str = HEURISTIC_SOURCE
    features: dict[str, float] = field(default_factory=dict)
    room_guess: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "is_exterior": self.is_exterior,
            "exterior_probability": round(self.exterior_probability, 4),
            "room_label": self.room_label,
            "room_guess": self.room_guess or self.room_label,
            "label_confidence": round(self.label_confidence, 4),
            "source": self.source,
            "features": {k: round(v, 4) for k, v in self.features.items()},
        }


# --- features ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Planes:
    """The per-pixel planes every cue is computed from (one small copy of the photo)."""

    rgb: np.ndarray
    hue: np.ndarray
    sat: np.ndarray
    val: np.ndarray
    grey8: np.ndarray
    gx: np.ndarray
    gy: np.ndarray
    texture: np.ndarray
    core: np.ndarray  # bool: inside the watermark margin


def _trim_flat_borders(rgb: np.ndarray) -> np.ndarray:
    """Cut letterbox / pillarbox bars: edge rows or columns that are one flat colour (at most a
    quarter of each side), so a white bar above a photo is not taken for overcast sky."""
    grey = rgb.astype(np.float32).mean(axis=2)
    h, w = grey.shape
    row_flat = grey.std(axis=1) < 4.0
    col_flat = grey.std(axis=0) < 4.0

    def run(flags: np.ndarray, limit: int) -> int:
        n = 0
        while n < limit and flags[n]:
            n += 1
        return n

    top, bottom = run(row_flat, h // 4), run(row_flat[::-1], h // 4)
    left, right = run(col_flat, w // 4), run(col_flat[::-1], w // 4)
    return rgb[top : h - bottom, left : w - right]


def _planes(rgb: np.ndarray) -> _Planes:
    small = resize_max(np.ascontiguousarray(rgb), WORK_SIDE)
    trimmed = _trim_flat_borders(small)
    if min(trimmed.shape[:2]) >= 16:
        small = np.ascontiguousarray(trimmed)
    hsv = cv2.cvtColor(small, cv2.COLOR_RGB2HSV_FULL).astype(np.float32)
    grey8 = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)
    grey = grey8.astype(np.float32)
    gx = cv2.Sobel(grey, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(grey, cv2.CV_32F, 0, 1, ksize=3)
    h, w = grey8.shape
    core = np.zeros((h, w), bool)
    my, mx = int(_MARGIN * h), int(_MARGIN * w)
    core[my : h - my, mx : w - mx] = True
    return _Planes(
        rgb=small,
        hue=hsv[..., 0] * (360.0 / 256.0),
        sat=hsv[..., 1] / 255.0,
        val=hsv[..., 2] / 255.0,
        grey8=grey8,
        gx=gx,
        gy=gy,
        texture=cv2.blur(np.sqrt(gx * gx + gy * gy), (5, 5)),
        core=core,
    )


def _bands(h: int) -> dict[str, slice]:
    """Top, middle and low thirds of the frame (sky / walls / ground or floor)."""
    return {"top": slice(0, h // 3), "mid": slice(h // 3, 2 * h // 3), "low": slice(2 * h // 3, h)}


def _touching_top(mask: np.ndarray) -> np.ndarray:
    """The parts of `mask` connected to the top 4 % of the frame, seeded away from the corners
    (a corner logo on a blue background must not become sky)."""
    h, w = mask.shape
    count, labels = cv2.connectedComponents(mask.astype(np.uint8), connectivity=4)
    if count <= 1:
        return np.zeros_like(mask, dtype=bool)
    seeds = labels[: max(1, int(0.04 * h)), int(0.1 * w) : int(0.9 * w)]
    top_ids = np.unique(seeds)
    top_ids = top_ids[top_ids != 0]
    return np.isin(labels, top_ids) if top_ids.size else np.zeros_like(mask, dtype=bool)


def _sky_features(p: _Planes) -> dict[str, float]:
    """Sky touching the top: blue day sky, overcast (pale) sky and dusk (deep blue) sky; and how
    much of the top edge it spans (a window rarely spans the top edge: a ceiling is above it)."""
    smooth = p.texture < 30
    blue = (p.hue > 190) & (p.hue < 250) & (p.sat > 0.12) & (p.val > 0.45) & smooth
    pale = (p.sat < 0.12) & (p.val > 0.75) & smooth
    dusk = (p.hue > 195) & (p.hue < 265) & (p.sat > 0.3) & (p.val > 0.1) & (p.val <= 0.45) & smooth
    sky = _touching_top(blue | pale | dusk)
    h, w = sky.shape
    top_rows = sky[: max(1, int(0.04 * h)), int(0.1 * w) : int(0.9 * w)]
    grey = p.grey8.astype(np.float32)
    top_luma = float(grey[: h // 3][p.core[: h // 3]].mean()) if p.core[: h // 3].any() else 0.0
    return {
        "sky_blue": float((sky & blue).mean()),
        "sky_pale": float((sky & pale).mean()),
        "sky_dusk": float((sky & dusk).mean()),
        "sky_span": float(top_rows.mean()),
        "top_luma_ratio": top_luma / (float(grey.mean()) + 1.0),
    }


def _band_features(p: _Planes) -> dict[str, float]:
    """Colour and texture per third: lightness, saturation, warmth (log R/B: tungsten interiors
    are warm, daylight neutral-blue), texture, green foliage, white and wood-brown pixels."""
    out: dict[str, float] = {}
    rgb = p.rgb.astype(np.float32)
    green = (p.hue > 55) & (p.hue < 170) & (p.sat > 0.15) & (p.val > 0.12) & (p.texture > 12)
    white = (p.sat < 0.15) & (p.val > 0.7)
    wood = (p.hue > 10) & (p.hue < 45) & (p.sat > 0.35) & (p.val > 0.12) & (p.val < 0.65)
    # Fine-scale (Laplacian) over coarse gradient energy: carpet, granite and foliage are fine
    # grained; painted walls, cabinets doors and bedding are not.
    fine = np.abs(cv2.Laplacian(p.grey8, cv2.CV_32F, ksize=1))
    for name, rows in _bands(p.grey8.shape[0]).items():
        core = p.core[rows]
        if not core.any():
            core = np.ones_like(core)
        pix = rgb[rows][core]
        out[f"luma_{name}"] = float(p.val[rows][core].mean())
        out[f"sat_{name}"] = float(p.sat[rows][core].mean())
        out[f"warmth_{name}"] = math.log((float(pix[:, 0].mean()) + 1.0) / (float(pix[:, 2].mean()) + 1.0))
        out[f"texture_{name}"] = float(p.texture[rows][core].mean()) / 100.0
        out[f"fine_{name}"] = float(fine[rows][core].mean()) / (100.0 * out[f"texture_{name}"] + 1.0)
        out[f"green_{name}"] = float(green[rows][core].mean())
        out[f"white_{name}"] = float(white[rows][core].mean())
        out[f"wood_{name}"] = float(wood[rows][core].mean())
    return out


def _orientation_features(p: _Planes) -> dict[str, float]:
    """Share of gradient energy in vertical edges (|gx| dominant), horizontal edges (|gy|
    dominant) and diagonals, over the core: man-made interiors are vertical/horizontal, foliage
    and gravel spread over all angles. Also the dark share (unlit corners, night)."""
    gx, gy = np.abs(p.gx[p.core]), np.abs(p.gy[p.core])
    energy = gx + gy + 1e-6
    total = float(energy.sum())
    vertical = float(energy[gx > 2.4 * gy].sum()) / total
    horizontal = float(energy[gy > 2.4 * gx].sum()) / total
    return {
        "edge_vertical": vertical,
        "edge_horizontal": horizontal,
        "edge_diagonal": 1.0 - vertical - horizontal,
        "dark": float((p.val[p.core] < 0.15).mean()),
        "colourful": float((p.sat[p.core] > 0.45).mean()),
    }


def _line_features(grey8: np.ndarray) -> dict[str, float]:
    """Straight segments (LSD): length per area (x100), and the share that is horizontal /
    vertical (cabinets, tiles, door frames) and long (>= 15 % of the width: counters, bed edges)."""
    h, w = grey8.shape
    found = cv2.createLineSegmentDetector(cv2.LSD_REFINE_STD).detect(grey8)[0]
    if found is None or len(found) == 0:
        return {"line_density": 0.0, "line_hv_share": 0.0, "line_long_share": 0.0} | {
            f"lines_{name}": 0.0 for name in ("top", "mid", "low")
        }
    segs = found.reshape(-1, 4).astype(np.float64)
    length = np.hypot(segs[:, 2] - segs[:, 0], segs[:, 3] - segs[:, 1])
    keep = length > 8.0
    segs, length = segs[keep], length[keep]
    total = float(length.sum()) + 1e-6
    ang = np.degrees(np.arctan2(segs[:, 3] - segs[:, 1], segs[:, 2] - segs[:, 0])) % 180.0
    hv = (ang < 8) | (ang > 172) | (np.abs(ang - 90.0) < 8)
    mid_y = (segs[:, 1] + segs[:, 3]) / 2.0
    out = {
        "line_density": total / float(h * w) * 100.0,
        "line_hv_share": float(length[hv].sum()) / total,
        "line_long_share": float(length[length > 0.15 * w].sum()) / total,
    }
    for name, rows in _bands(h).items():
        inside = (mid_y >= rows.start) & (mid_y < rows.stop)
        out[f"lines_{name}"] = float(length[inside].sum()) / float(max(1, rows.stop - rows.start) * w) * 100.0
    return out


def _soft_block(p: _Planes) -> float:
    """Largest smooth, light, uniformly coloured blob in the lower-middle band (0.45..0.95 of the
    height, 0.1..0.9 of the width), as a fraction of that band: a made bed, a sofa, a rug.
    Colours are quantised coarsely in Lab so a bedspread with gentle shading stays one block."""
    h, w = p.grey8.shape
    band = (slice(int(0.45 * h), int(0.95 * h)), slice(int(0.1 * w), int(0.9 * w)))
    lab = cv2.cvtColor(p.rgb, cv2.COLOR_RGB2Lab)[band].astype(np.int32)
    ok = (p.texture[band] < 18) & (lab[..., 0] > 120)
    chroma_a = np.clip((lab[..., 1] - 100) // 10, 0, 5)
    chroma_b = np.clip((lab[..., 2] - 100) // 10, 0, 5)
    key = (lab[..., 0] // 32) * 36 + chroma_a * 6 + chroma_b
    candidates = key[ok]
    if candidates.size == 0:
        return 0.0
    values, counts = np.unique(candidates, return_counts=True)
    best = 0
    for v in values[np.argsort(counts)[::-1][:3]]:
        mask = cv2.morphologyEx(((key == v) & ok).astype(np.uint8), cv2.MORPH_CLOSE, np.ones((5, 5), np.uint8))
        n, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        if n > 1:
            best = max(best, int(stats[1:, cv2.CC_STAT_AREA].max()))
    return float(best / max(1, ok.size))


def _compact_blobs(mask: np.ndarray, min_area: float, max_area: float) -> float:
    """Number of connected blobs of `mask` with area in (min_area, max_area) x image area that
    fill at least 45 % of their bounding box."""
    h, w = mask.shape
    n, _, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    area = stats[1:, cv2.CC_STAT_AREA].astype(np.float64)
    box = (stats[1:, cv2.CC_STAT_WIDTH] * stats[1:, cv2.CC_STAT_HEIGHT]).astype(np.float64)
    ok = (area > min_area * h * w) & (area < max_area * h * w) & (area > 0.45 * box)
    return float(ok.sum()) if n > 1 else 0.0


def _fixture_features(p: _Planes) -> dict[str, float]:
    """Porcelain (compact bright colourless smooth blobs below the top third: toilets, basins,
    tubs) and lamps (small blown-out blobs in the upper half: pendants, vanity bars, fans)."""
    h = p.grey8.shape[0]
    lab = cv2.cvtColor(p.rgb, cv2.COLOR_RGB2Lab).astype(np.float32)
    lightness = lab[..., 0] * (100.0 / 255.0)
    chroma = np.hypot(lab[..., 1] - 128.0, lab[..., 2] - 128.0)
    porcelain = (lightness > 80) & (chroma < 12) & (p.texture < 30) & p.core
    porcelain[: int(0.35 * h)] = False
    porcelain = cv2.morphologyEx(porcelain.astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8)) > 0
    lamps = (p.val > 0.97) & (p.sat < 0.25) & p.core
    lamps[h // 2 :] = False
    return {
        "porcelain": _compact_blobs(porcelain, 0.004, 0.08),
        "lamps": _compact_blobs(lamps, 0.0003, 0.01),
        "soft_block": _soft_block(p),
    }


def scene_features(rgb: np.ndarray) -> dict[str, float]:
    """The cue values `classify_scene` decides on (fractions of the image, ratios or densities).

    * ``sky_blue`` / ``sky_pale`` / ``sky_dusk``: smooth day-blue, overcast and deep dusk-blue
      pixels in regions touching the top edge; ``sky_span``: share of the top edge that is sky;
      ``top_luma_ratio``: top third's brightness over the image's (sky is the brightest thing
      outside; a ceiling is not);
    * per third (``top``, ``mid``, ``low``): ``luma_*``, ``sat_*``, ``warmth_*`` (log R/B),
      ``texture_*`` (mean gradient / 100), ``green_*`` (textured foliage), ``white_*``, ``wood_*``;
    * ``edge_vertical`` / ``edge_horizontal`` / ``edge_diagonal``: shares of gradient energy;
      ``dark``, ``colourful``: very dark and strongly saturated shares;
    * ``line_density`` (x100 per area), ``line_hv_share``, ``line_long_share``: straight segments;
    * ``soft_block`` (bed-like block), ``porcelain`` and ``lamps`` (blob counts);
    * ``portrait``: 1 for a portrait photo (bathrooms are often shot portrait).
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected HxWx3 RGB, got {rgb.shape}")
    p = _planes(rgb)
    h, w = p.grey8.shape
    return {
        **_sky_features(p),
        **_band_features(p),
        **_orientation_features(p),
        **_line_features(p.grey8),
        **_fixture_features(p),
        "portrait": 1.0 if h > 1.05 * w else 0.0,
    }


# --- models --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Logistic:
    """A standardised logistic model: z = intercept + sum coef * (x - mean) / scale, one row of
    coefficients per class (one row for a binary model). Values are clipped to `lo`..`hi` (the
    1st..99th percentile of the training data) so one extreme cue cannot dominate."""

    names: tuple[str, ...]
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    lo: tuple[float, ...]
    hi: tuple[float, ...]
    coef: tuple[tuple[float, ...], ...]
    intercept: tuple[float, ...]

    def logits(self, f: dict[str, float]) -> np.ndarray:
        x = np.array([f[n] for n in self.names], np.float64)
        x = (np.clip(x, self.lo, self.hi) - np.asarray(self.mean)) / np.asarray(self.scale)
        return np.asarray(self.intercept) + np.asarray(self.coef) @ x


# MODEL CONSTANTS (printed by scripts/fit_scene.py)
_EXTERIOR_MODEL = _Logistic(
    names=(
        "sky_blue",
        "sky_pale",
        "sky_dusk",
        "sky_span",
        "top_luma_ratio",
        "green_top",
        "green_mid",
        "green_low",
        "warmth_top",
        "warmth_mid",
        "warmth_low",
        "sat_top",
        "texture_top",
        "texture_low",
        "edge_diagonal",
        "line_hv_share",
        "lamps",
    ),
    mean=(
        0.038959,
        0.014458,
        6.224e-05,
        0.26487,
        1.102,
        0.030232,
        0.055041,
        0.05234,
        0.18902,
        0.31496,
        0.40208,
        0.34412,
        0.50367,
        0.67063,
        0.3368,
        0.58617,
        1.8908,
    ),
    scale=(
        0.086442,
        0.036323,
        0.00056835,
        0.36257,
        0.15383,
        0.075043,
        0.10469,
        0.15926,
        0.48783,
        0.24236,
        0.31892,
        0.17819,
        0.24545,
        0.2219,
        0.06249,
        0.11284,
        2.6096,
    ),
    lo=(0, 0, 0, 0, 0.66114, 0, 0, 0, -1.7502, -0.11867, -0.34974, 0.046708, 0.087049, 0.29644, 0.20731, 0.32719, 0),
    hi=(
        0.32559,
        0.19991,
        0.0052815,
        1,
        1.6052,
        0.42584,
        0.55231,
        0.96837,
        1.3096,
        0.95626,
        1.5105,
        0.85484,
        1.3462,
        1.2568,
        0.48568,
        0.85512,
        13.35,
    ),
    coef=(
        (
            1.1805,
            0.010547,
            0.21655,
            0.79083,
            -0.01082,
            0.25194,
            0.8493,
            0.69207,
            -1.006,
            0.1557,
            -0.31927,
            0.13862,
            0.93556,
            0.0096662,
            0.81917,
            0.28749,
            -0.37566,
        ),
    ),
    intercept=(-1.7792,),
)
_ROOM_MODEL = _Logistic(
    names=(
        "porcelain",
        "portrait",
        "wood_mid",
        "wood_low",
        "texture_top",
        "texture_mid",
        "texture_low",
        "fine_top",
        "fine_mid",
        "fine_low",
        "luma_low",
        "sat_low",
        "edge_vertical",
        "edge_horizontal",
        "line_density",
        "line_hv_share",
        "line_long_share",
        "lines_top",
        "lines_mid",
        "lines_low",
    ),
    mean=(
        0.55729,
        0.0625,
        0.25435,
        0.32488,
        0.47564,
        0.80064,
        0.65958,
        0.22114,
        0.244,
        0.26575,
        0.54928,
        0.40358,
        0.31729,
        0.36192,
        6.9119,
        0.5827,
        0.25773,
        5.3429,
        8.5705,
        6.804,
    ),
    scale=(
        1.0139,
        0.24206,
        0.19623,
        0.22326,
        0.18826,
        0.23973,
        0.21162,
        0.034552,
        0.029702,
        0.042912,
        0.11739,
        0.16287,
        0.059533,
        0.067741,
        1.5223,
        0.11041,
        0.12314,
        2.141,
        2.2052,
        2.1238,
    ),
    lo=(
        0,
        0,
        0,
        0.00058341,
        0.14969,
        0.33563,
        0.30614,
        0.14154,
        0.1834,
        0.17107,
        0.23062,
        0.07063,
        0.20115,
        0.21867,
        3.8142,
        0.33021,
        0.075177,
        1.5316,
        3.8869,
        2.6699,
    ),
    hi=(
        5,
        1,
        0.71331,
        0.85651,
        1.0541,
        1.3473,
        1.2207,
        0.31937,
        0.35572,
        0.38259,
        0.76625,
        0.78851,
        0.48947,
        0.51742,
        10.267,
        0.85645,
        0.59463,
        11.049,
        14.06,
        12.133,
    ),
    coef=(
        (
            0.19529,
            0.57907,
            0.16552,
            -0.24615,
            -0.1771,
            0.45972,
            -0.22339,
            0.097784,
            -0.025905,
            0.18691,
            0.032862,
            0.22031,
            -0.16107,
            0.38768,
            0.35811,
            0.6887,
            -0.43863,
            0.28465,
            0.27225,
            0.30979,
        ),
        (
            -0.30436,
            -0.68553,
            -0.16496,
            -0.16039,
            -0.35958,
            -0.19028,
            0.36954,
            -0.010491,
            -0.23228,
            0.22206,
            -0.25441,
            0.17298,
            -0.15124,
            0.097595,
            -0.39646,
            -0.48238,
            -0.38819,
            -0.18349,
            0.17416,
            -0.831,
        ),
        (
            0.10907,
            0.10645,
            -0.00056194,
            0.40654,
            0.53668,
            -0.26945,
            -0.14616,
            -0.087293,
            0.25819,
            -0.40898,
            0.22155,
            -0.39329,
            0.31232,
            -0.48527,
            0.038344,
            -0.20632,
            0.82682,
            -0.10116,
            -0.44641,
            0.52122,
        ),
    ),
    intercept=(-0.019967, -0.11295, 0.13292),
)
#: (top room probability, label_confidence) knots: 0.5 sits at the smallest top probability whose
#: held-out precision (guesses at or above it) is >= 88 % (85 % target + 3 % margin).
_ROOM_CONFIDENCE_KNOTS: tuple[tuple[float, float], ...] = ((0.3333, 0), (0.74, 0.5), (1, 1))
# END MODEL CONSTANTS


def exterior_probability(f: dict[str, float]) -> float:
    """P(exterior) from the features (the fitted binary logistic model)."""
    z = float(_EXTERIOR_MODEL.logits(f)[0])
    return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, z))))


def room_probabilities(f: dict[str, float]) -> dict[str, float]:
    """P(kitchen / bedroom / bathroom | interior) from the features (multinomial logistic)."""
    z = _ROOM_MODEL.logits(f)
    e = np.exp(z - z.max())
    probs = e / e.sum()
    return {name: float(pr) for name, pr in zip(ROOM_CLASSES, probs, strict=True)}


def room_confidence(top_probability: float, knots: tuple[tuple[float, float], ...] = _ROOM_CONFIDENCE_KNOTS) -> float:
    """Map the top room probability to `label_confidence` (piecewise linear through the knots)."""
    xs = [k[0] for k in knots]
    ys = [k[1] for k in knots]
    return float(np.interp(top_probability, xs, ys))


def _exterior_kind(f: dict[str, float]) -> str:
    """Exterior (a building) vs outdoor space (garden, yard): outdoor when foliage fills the middle
    band (> 45 %; the real facades' 90th percentile is 38 %) and that band holds few straight lines
    (< 7 per 100 px^2; facades' median 7.6: roof edges, windows, doors)."""
    return "outdoor" if f["green_mid"] > 0.45 and f["lines_mid"] < 7.0 else "exterior"


def room_decision(
    probs: dict[str, float],
    p_exterior: float,
    knots: tuple[tuple[float, float], ...] = _ROOM_CONFIDENCE_KNOTS,
) -> tuple[str, float, str]:
    """(room_label, label_confidence, room_guess) for an interior from its room probabilities.

    The confidence is the mapped top probability, shrunk when the photo is only barely interior
    (p_exterior above 0.2: its room cues were measured on something that may not be a room);
    below 0.5 the label is `UNKNOWN_ROOM`.
    """
    guess = max(probs, key=lambda k: probs[k])
    confidence = room_confidence(probs[guess], knots) * min(1.0, (1.0 - p_exterior) / 0.8)
    return (guess if confidence >= 0.5 else UNKNOWN_ROOM), confidence, guess


def classify_scene(rgb: np.ndarray) -> SceneGuess:
    """Guess interior/exterior and the room type of one RGB photo (see the module docstring)."""
    f = scene_features(rgb)
    p_ext = exterior_probability(f)
    f["exterior_probability"] = p_ext
    if p_ext >= 0.5:
        kind = _exterior_kind(f)
        return SceneGuess(True, p_ext, kind, p_ext, HEURISTIC_SOURCE, f, room_guess=kind)
    probs = room_probabilities(f)
    f.update({f"p_{k}": v for k, v in probs.items()})
    label, confidence, guess = room_decision(probs, p_ext)
    return SceneGuess(False, p_ext, label, confidence, HEURISTIC_SOURCE, f, room_guess=guess)


def resolve_room_label(given: str | None, guess: SceneGuess) -> tuple[str, str]:
    """The room label to use and where it came from.

    A given label (backend metadata, user override, upload folder) wins whenever it normalises to a
    known label: returns (label, "backend"). Otherwise the guess: (guess.room_label, guess.source),
    which may be `UNKNOWN_ROOM`. Unknown given strings (and a given "unknown") are ignored rather
    than trusted, so a typo cannot put a photo in a room of its own.
    """
    label = normalize_room_label(given) if given else None
    if label is not None and label in ROOM_LABELS:
        return label, "backend"
    return guess.room_label, guess.source
