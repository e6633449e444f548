"""Interior / exterior and a (weak) room-type guess from classical colour, texture and line cues.

Why heuristics: phase 1 must run on a plain CPU worker without model weights. The interior /
exterior decision is reliable from sky, vegetation and white balance (an exterior shot almost always
has open sky touching the top edge, foliage, and daylight-blue white balance; interiors have a
ceiling and warm artificial light). The room *type* is not reliably separable this way, so the
guess carries a deliberately low confidence (<= 0.6) and a label given by the backend or by the
upload's folder always wins (`resolve_room_label`). A learned classifier (CLIP, phase 2) replaces
the room guess, not the interface: `source` records which produced it.

All cues are computed on a copy reduced to `WORK_SIDE` px; each is a fraction of the image or a
density so it does not depend on resolution. Hue thresholds use degrees (0..360).

Measured on 40 real photos (24 MLS listing photos of six houses, 6 of them exteriors, and 16 phone
photos of one bedroom), which were also used to set the weights, so these are optimistic numbers:
interior/exterior 40/40 correct (exteriors p >= 0.96, interiors p <= 0.19); room type on the 18
listing interiors 12/18 (kitchen 5/6, bedroom 4/6, bathroom 3/6; bathrooms go to kitchen 2x and
bedroom 1x, bedrooms to bathroom 2x), and 12/16 of the phone bedroom photos (4 called bathroom).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from app.media.images import ROOM_LABELS, normalize_room_label, resize_max

__all__ = [
    "HEURISTIC_SOURCE",
    "WORK_SIDE",
    "SceneGuess",
    "classify_scene",
    "resolve_room_label",
    "scene_features",
]

HEURISTIC_SOURCE = "heuristic:v1"
WORK_SIDE = 400
#: Room-type guesses never claim more than this: the cues are weak (see the module report).
_MAX_ROOM_CONFIDENCE = 0.6


@dataclass(frozen=True)
class SceneGuess:
    """What the heuristics think a photo shows.

    `exterior_probability` is calibrated-ish (logistic of the cue score); `is_exterior` is
    `exterior_probability >= 0.5`. `room_label` is one of `app.media.images.ROOM_LABELS` and
    `label_confidence` is in 0..0.6 for room types (higher only for the exterior decision itself).
    `features` holds the cue values, for debugging and for recalibration.
    """

    is_exterior: bool
    exterior_probability: float
    room_label: str
    label_confidence: float
    source: str = HEURISTIC_SOURCE
    features: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "is_exterior": self.is_exterior,
            "exterior_probability": round(self.exterior_probability, 4),
            "room_label": self.room_label,
            "label_confidence": round(self.label_confidence, 4),
            "source": self.source,
            "features": {k: round(v, 4) for k, v in self.features.items()},
        }


def scene_features(rgb: np.ndarray) -> dict[str, float]:
    """The cue values `classify_scene` decides on (all fractions of the image or densities).

    * ``blue_sky``: blue, bright, smooth pixels in regions that touch the top edge (windows rarely
      touch the top edge: there is a ceiling above them);
    * ``pale_sky``: the same for overcast sky (bright, colourless, smooth, touching the top), weak
      because white ceilings look alike;
    * ``vegetation`` / ``vegetation_low``: textured green (foliage, lawn), over the image / its
      lower 40 %;
    * ``warmth``: log(mean R / mean B): tungsten interiors are warm, daylight scenes neutral-blue;
    * ``ceiling``: smooth, non-blue pixels in the top 30 % (a ceiling or a wall above furniture);
    * ``line_density`` / ``hv_density``: length of straight segments per image area (x100), all /
      only near-horizontal-or-vertical (cabinets, tiles, door frames);
    * ``white``: bright colourless pixels (tiles, porcelain, white cabinets, bedding);
    * ``wood``: brown mid-tone pixels (cabinets, furniture, floors);
    * ``soft_block``: largest smooth, light, roughly uniform colour block in the lower-middle of the
      frame, as a fraction of that area (a made bed, a sofa, a rug);
    * ``porcelain``: count of compact bright colourless blobs in the lower part (toilets, basins);
    * ``water``: cyan-blue smooth pixels in the lower half (a pool);
    * ``texture``: mean gradient magnitude.
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected HxWx3 RGB, got {rgb.shape}")
    small = resize_max(np.ascontiguousarray(rgb), WORK_SIDE)
    h = small.shape[0]
    hsv = cv2.cvtColor(small, cv2.COLOR_RGB2HSV_FULL).astype(np.float32)
    hue = hsv[..., 0] * (360.0 / 256.0)
    sat = hsv[..., 1] / 255.0
    val = hsv[..., 2] / 255.0
    grey8 = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)
    grey = grey8.astype(np.float32)
    gx = cv2.Sobel(grey, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(grey, cv2.CV_32F, 0, 1, ksize=3)
    texture = cv2.blur(np.sqrt(gx * gx + gy * gy), (7, 7))

    blue = (hue > 190) & (hue < 250) & (sat > 0.12) & (val > 0.45) & (texture < 40)
    pale = (sat < 0.12) & (val > 0.78) & (texture < 25)
    sky = _touching_top(blue | pale)
    green = (hue > 55) & (hue < 170) & (sat > 0.18) & (val > 0.12) & (texture > 12)
    low = slice(int(0.6 * h), h)
    top = slice(0, max(1, int(0.3 * h)))
    rgb_f = small.reshape(-1, 3).astype(np.float64)
    warmth = math.log((rgb_f[:, 0].mean() + 1.0) / (rgb_f[:, 2].mean() + 1.0))
    white = (sat < 0.15) & (val > 0.7)
    wood = (hue > 10) & (hue < 45) & (sat > 0.35) & (val > 0.12) & (val < 0.65)
    water = (hue > 170) & (hue < 215) & (sat > 0.25) & (val > 0.35) & (texture < 30)

    line_density, hv_density = _line_densities(grey8)
    return {
        "blue_sky": float((sky & blue).mean()),
        "pale_sky": float((sky & pale).mean()),
        "vegetation": float(green.mean()),
        "vegetation_low": float(green[low].mean()),
        "warmth": float(warmth),
        "ceiling": float(((texture[top] < 15) & ~blue[top]).mean()),
        "line_density": line_density,
        "hv_density": hv_density,
        "white": float(white.mean()),
        "wood": float(wood.mean()),
        "soft_block": _soft_block(small, texture),
        "porcelain": _porcelain_blobs(small, texture),
        "water": float(water[h // 2 :].mean()),
        "texture": float(texture.mean()),
        "saturation": float(sat.mean()),
    }


def _touching_top(mask: np.ndarray) -> np.ndarray:
    """The parts of `mask` connected to the image's top row."""
    count, labels = cv2.connectedComponents(mask.astype(np.uint8), connectivity=4)
    if count <= 1:
        return np.zeros_like(mask, dtype=bool)
    top_ids = np.unique(labels[0, :])
    top_ids = top_ids[top_ids != 0]
    return np.isin(labels, top_ids) if top_ids.size else np.zeros_like(mask, dtype=bool)


def _line_densities(grey8: np.ndarray) -> tuple[float, float]:
    h, w = grey8.shape
    found = cv2.createLineSegmentDetector(cv2.LSD_REFINE_STD).detect(grey8)[0]
    if found is None or len(found) == 0:
        return 0.0, 0.0
    segs = found.reshape(-1, 4).astype(np.float64)
    length = np.hypot(segs[:, 2] - segs[:, 0], segs[:, 3] - segs[:, 1])
    keep = length > 10.0
    segs, length = segs[keep], length[keep]
    ang = np.degrees(np.arctan2(segs[:, 3] - segs[:, 1], segs[:, 2] - segs[:, 0])) % 180.0
    hv = (ang < 8) | (ang > 172) | (np.abs(ang - 90.0) < 8)
    area = float(h * w)
    return float(length.sum() / area * 100.0), float(length[hv].sum() / area * 100.0)


def _soft_block(small: np.ndarray, texture: np.ndarray) -> float:
    """Largest smooth, light, uniformly coloured blob in the lower-middle band (0.45..0.95 of the
    height, 0.1..0.9 of the width), as a fraction of that band. Colours are quantised coarsely in
    Lab so a bedspread with gentle shading stays one block."""
    h, w = small.shape[:2]
    band = (slice(int(0.45 * h), int(0.95 * h)), slice(int(0.1 * w), int(0.9 * w)))
    lab = cv2.cvtColor(small, cv2.COLOR_RGB2Lab)[band].astype(np.int32)
    smooth = texture[band] < 22
    light = lab[..., 0] > 120
    # 8 lightness x 6 x 6 chroma bins.
    chroma_a = np.clip((lab[..., 1] - 100) // 10, 0, 5)
    chroma_b = np.clip((lab[..., 2] - 100) // 10, 0, 5)
    key = (lab[..., 0] // 32) * 36 + chroma_a * 6 + chroma_b
    best = 0
    candidates = key[smooth & light]
    if candidates.size == 0:
        return 0.0
    values, counts = np.unique(candidates, return_counts=True)
    for v in values[np.argsort(counts)[::-1][:4]]:
        mask = ((key == v) & smooth & light).astype(np.uint8)
        mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, np.ones((5, 5), np.uint8))
        n, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        if n > 1:
            best = max(best, int(stats[1:, cv2.CC_STAT_AREA].max()))
    return float(best / max(1, smooth.size))


def _porcelain_blobs(small: np.ndarray, texture: np.ndarray) -> float:
    """Number of compact, very bright, colourless, smooth blobs below the top third, each 0.4-8 %
    of the image (toilet bowls, basins, bathtubs). Bedding and walls are usually larger or
    textured; it is still a weak cue."""
    h, w = small.shape[:2]
    lab = cv2.cvtColor(small, cv2.COLOR_RGB2Lab).astype(np.float32)
    lightness = lab[..., 0] * (100.0 / 255.0)
    chroma = np.hypot(lab[..., 1] - 128.0, lab[..., 2] - 128.0)
    mask = ((lightness > 80) & (chroma < 12) & (texture < 30)).astype(np.uint8)
    mask[: int(0.35 * h)] = 0
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    n, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    count = 0
    for i in range(1, n):
        bw, bh, area = stats[i, cv2.CC_STAT_WIDTH], stats[i, cv2.CC_STAT_HEIGHT], stats[i, cv2.CC_STAT_AREA]
        if 0.004 * h * w < area < 0.08 * h * w and area / float(bw * bh) > 0.45:
            count += 1
    return float(count)


def _exterior_logit(f: dict[str, float]) -> float:
    """Linear cue score; > 0 means exterior.

    Weights were set by hand (and checked on real listing photos, see the module report): blue
    sky touching the top edge is close to decisive, textured green helps, warm light and a
    smooth top band (ceiling) count against.
    """
    z = -1.6
    z += 60.0 * min(f["blue_sky"], 0.15)
    z += 4.0 * min(f["pale_sky"], 0.4)
    z += 8.0 * min(f["vegetation"], 0.4) + 4.0 * min(f["vegetation_low"], 0.5)
    z -= 6.0 * max(0.0, f["warmth"] - 0.05)
    z -= 1.5 * max(0.0, f["ceiling"] - 0.3)
    z += 3.0 * min(f["water"], 0.3)
    return z


#: Prior plausibility of each interior room type in listing photo sets (bedrooms are the most
#: photographed rooms). When no cue fires, the prior decides, which is the Bayes choice for an
#: uninformative observation; the low confidence then says "we do not really know".
_ROOM_PRIOR = {
    "bedroom": 0.30,
    "living_room": 0.26,
    "kitchen": 0.22,
    "bathroom": 0.22,
    "dining_room": 0.15,
    "other": 0.10,
}


def _clip01(x: float) -> float:
    return float(min(max(x, 0.0), 1.0))


def _room_scores(f: dict[str, float]) -> dict[str, float]:
    """Prior + cue bonuses for interior room types (higher = more likely).

    Each bonus encodes one stereotype: kitchens are dense grids of horizontal/vertical edges
    (cabinet doors, tiles, appliances) with lots of texture; bathrooms are bright, colourless
    (tiles, porcelain) and boxy; bedrooms show a large soft block (the bed) in the lower middle and
    fewer straight edges; living rooms are wide shots with many lines at all angles.
    """
    hv_frac = f["hv_density"] / (f["line_density"] + 1e-6)
    scores = dict(_ROOM_PRIOR)
    scores["kitchen"] += (
        0.45 * _clip01((f["hv_density"] - 3.8) / 1.5)
        + 0.2 * _clip01((f["texture"] - 60.0) / 40.0)
        + 0.1 * _clip01(f["wood"] / 0.3)
    )
    scores["bathroom"] += (
        0.25 * _clip01(f["porcelain"] / 2.0)
        + 0.2 * _clip01((f["white"] - 0.2) / 0.2) * _clip01((f["hv_density"] - 2.5) / 1.5)
        + 0.1 * _clip01((0.05 - f["soft_block"]) / 0.05)
    )
    scores["bedroom"] += 0.3 * _clip01((f["soft_block"] - 0.05) / 0.2) + 0.15 * _clip01(
        (0.6 - hv_frac) / 0.15
    ) * _clip01((4.0 - f["hv_density"]) / 1.0)
    scores["living_room"] += 0.15 * _clip01((f["line_density"] - 7.0) / 3.0) * _clip01((0.55 - hv_frac) / 0.1)
    return scores


def classify_scene(rgb: np.ndarray) -> SceneGuess:
    """Guess interior/exterior and the room type of one RGB photo (see the module docstring)."""
    f = scene_features(rgb)
    z = _exterior_logit(f)
    p_ext = 1.0 / (1.0 + math.exp(-z))
    is_ext = p_ext >= 0.5
    if is_ext:
        # Exterior vs outdoor space: a building facade is full of straight lines; a garden or
        # pool shot is mostly foliage or water.
        outdoorness = 2.0 * f["water"] + 1.0 * f["vegetation"] - 0.1 * f["hv_density"]
        label = "outdoor" if outdoorness > 0.4 else "exterior"
        confidence = min(0.9, 0.5 + abs(p_ext - 0.5)) if label == "exterior" else 0.45
    else:
        scores = _room_scores(f)
        ranked = sorted(scores.items(), key=lambda kv: kv[1], reverse=True)
        label = ranked[0][0]
        # Softmax with a high temperature: the margin between the two best stereotypes, not the
        # absolute score, says how sure we are, and the cap keeps it below a given label.
        exps = {k: math.exp(v / 0.15) for k, v in scores.items()}
        share = exps[label] / sum(exps.values())
        confidence = min(_MAX_ROOM_CONFIDENCE, share) * (1.0 - p_ext)
        f.update({f"score_{k}": v for k, v in scores.items()})
    f["exterior_logit"] = z
    return SceneGuess(
        is_exterior=is_ext,
        exterior_probability=p_ext,
        room_label=label,
        label_confidence=float(confidence),
        source=HEURISTIC_SOURCE,
        features=f,
    )


def resolve_room_label(given: str | None, guess: SceneGuess) -> tuple[str, str]:
    """The room label to use and where it came from.

    A given label (backend metadata, user override, upload folder) wins whenever it normalises to a
    known label: returns (label, "backend"). Otherwise the heuristic guess: (guess.room_label,
    guess.source). Unknown given strings are ignored rather than trusted, so a typo cannot put a
    photo in a room of its own.
    """
    label = normalize_room_label(given) if given else None
    if label is not None and label in ROOM_LABELS:
        return label, "backend"
    return guess.room_label, guess.source
