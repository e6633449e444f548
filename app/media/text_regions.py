"""Text and logo regions of a photo: MLS watermarks, "(c) ... MLS" banners, agent names and phones.

Why: a watermark or banner stamped at the same place on every photo of a listing gives two photos
of different rooms a set of perfect feature matches, and clustering would merge them
(`app.media.clustering` masks these regions out of its keypoints); the same regions are what must
be blurred before an MLS-unbranded video is published, so they keep their text and exact polygon.

The reader (PP-OCR, `app.models.ocr.load_text_reader`) is passed in: this module loads nothing.

Scale. MLS photos are small (most of the dev set is 640-1024 px wide) and their watermarks tiny:
"(c) 2015 ARMLS" is 10-14 px tall in a 720 x 480 photo. Detection therefore runs on a copy whose
*short* side is `OCR_SHORT_SIDE` (an upscale for small photos, a downscale for phone photos) with
the long side capped at `OCR_MAX_SIDE`. Measured on the 272 dev photos (64 listings + 16 phone photos):
short side 736 finds text in 182 photos, watermark text in 136, at 0.29 s per photo (2 cores);
detection at the photo's own size (long side <= 960) finds watermark text in only 109 photos
(0.20 s), on a 640-px copy in 88 (0.13 s): the small watermarks are lost first.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import cv2
import numpy as np

__all__ = [
    "OCR_MAX_SIDE",
    "OCR_SHORT_SIDE",
    "RawText",
    "TextReader",
    "TextRegion",
    "detect_text_regions",
    "mask_for",
    "ocr_scale",
]

#: One text line from a reader: polygon (k, 2) in pixels of the image it was given, text, confidence.
RawText = tuple[np.ndarray, str, float]
RegionKind = Literal["text", "logo"]

#: Short side of the copy text is detected on, and the cap on its long side (see the module docstring).
OCR_SHORT_SIDE = 736
OCR_MAX_SIDE = 1600
#: Text lines whose box covers more than this fraction of the photo are not a watermark or a banner
#: but a sign or a poster in the room (a real feature of the room, kept for matching).
_MAX_AREA_FRACTION = 0.25
#: Default padding of `mask_for`, as a fraction of the photo's long side: SIFT keypoints just
#: outside a text box still describe its strokes (their support is ~6 sigma, 10-20 px at 640 px).
MASK_PAD = 0.015


class TextReader(Protocol):
    """Anything that finds text lines in an RGB image (`app.models.ocr.RapidTextReader`)."""

    def read(self, rgb: np.ndarray) -> Sequence[RawText]: ...


@dataclass(frozen=True)
class TextRegion:
    """One text line or logo.

    `box`: normalised (x0, y0, x1, y1) in [0, 1] of the photo's width and height (resolution
    independent: the same region on the photo, its thumbnail and a rendered frame). `polygon`:
    corner points in pixels of the photo `detect_text_regions` was given. `kind`: "text" for a
    recognised line, "logo" for a mark found without letters. `score`: the recogniser's confidence.
    """

    box: tuple[float, float, float, float]
    polygon: tuple[tuple[float, float], ...]
    text: str
    score: float
    kind: RegionKind = "text"

    @property
    def area(self) -> float:
        """Normalised area of `box`."""
        return max(self.box[2] - self.box[0], 0.0) * max(self.box[3] - self.box[1], 0.0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "box": [round(v, 5) for v in self.box],
            "polygon": [[round(x, 1), round(y, 1)] for x, y in self.polygon],
            "text": self.text,
            "score": round(self.score, 4),
            "kind": self.kind,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TextRegion:
        box = tuple(float(v) for v in data["box"])
        if len(box) != 4:
            raise ValueError(f"a text region box has 4 numbers, got {data['box']!r}")
        kind = str(data.get("kind", "text"))
        if kind not in ("text", "logo"):
            raise ValueError(f"unknown text region kind {kind!r}")
        return cls(
            box=(box[0], box[1], box[2], box[3]),
            polygon=tuple((float(x), float(y)) for x, y in data.get("polygon", ())),
            text=str(data.get("text", "")),
            score=float(data.get("score", 0.0)),
            kind="logo" if kind == "logo" else "text",
        )


def ocr_scale(width: int, height: int, *, short_side: int = OCR_SHORT_SIDE, max_side: int = OCR_MAX_SIDE) -> float:
    """Factor from the photo to the copy text is detected on (see the module docstring)."""
    if width <= 0 or height <= 0:
        raise ValueError(f"bad photo size {width}x{height}")
    return min(short_side / min(width, height), max_side / max(width, height))


def detect_text_regions(
    rgb: np.ndarray,
    reader: TextReader,
    *,
    short_side: int = OCR_SHORT_SIDE,
    max_side: int = OCR_MAX_SIDE,
) -> list[TextRegion]:
    """Text lines of `rgb` (H x W x 3 uint8, RGB) as regions, in reading order (top to bottom).

    Lines that cover more than a quarter of the photo are dropped (see `_MAX_AREA_FRACTION`), and so
    are empty recognitions of a single character that is not a letter or a digit (the detector's
    response to a window grid or a tile edge).
    """
    h, w = rgb.shape[:2]
    if h == 0 or w == 0:
        return []
    scale = ocr_scale(w, h, short_side=short_side, max_side=max_side)
    if abs(scale - 1.0) > 0.02:
        interp = cv2.INTER_AREA if scale < 1.0 else cv2.INTER_CUBIC
        work = cv2.resize(rgb, (max(round(w * scale), 1), max(round(h * scale), 1)), interpolation=interp)
    else:
        scale, work = 1.0, rgb
    regions = []
    for polygon, text, score in reader.read(np.ascontiguousarray(work)):
        region = _region(np.asarray(polygon, np.float64) / scale, text, score, w, h)
        if region is not None:
            regions.append(region)
    return sorted(regions, key=lambda r: (r.box[1], r.box[0]))


def _region(points: np.ndarray, text: str, score: float, width: int, height: int) -> TextRegion | None:
    if points.ndim != 2 or points.shape[0] < 3:
        return None
    xs = np.clip(points[:, 0], 0, width)
    ys = np.clip(points[:, 1], 0, height)
    box = (float(xs.min() / width), float(ys.min() / height), float(xs.max() / width), float(ys.max() / height))
    clean = text.strip()
    if len(clean) <= 1 and not re.fullmatch(r"[A-Za-z0-9]?", clean):
        return None
    region = TextRegion(
        box=box,
        polygon=tuple((float(x), float(y)) for x, y in zip(xs, ys, strict=True)),
        text=clean,
        score=float(score),
    )
    return region if region.area <= _MAX_AREA_FRACTION else None


def mask_for(regions: Sequence[TextRegion], size: tuple[int, int], *, pad: float = MASK_PAD) -> np.ndarray:
    """Boolean (height, width) mask, True inside any region's box grown by `pad` x the long side.

    `size` is (width, height) of the image the mask is for (any scale of the photo: boxes are
    normalised). Boxes rather than polygons: the mask is for dropping keypoints and blurring, where
    a few pixels more are harmless and a slanted polygon's corners are not.
    """
    width, height = size
    mask = np.zeros((height, width), bool)
    grow = pad * max(width, height)
    for r in regions:
        x0 = int(np.floor(r.box[0] * width - grow))
        y0 = int(np.floor(r.box[1] * height - grow))
        x1 = int(np.ceil(r.box[2] * width + grow))
        y1 = int(np.ceil(r.box[3] * height + grow))
        mask[max(y0, 0) : max(y1, 0), max(x0, 0) : max(x1, 0)] = True
    return mask
