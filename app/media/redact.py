"""Blur text out of a photo (watermarks, agent signs, phone numbers) for the MLS-unbranded cut.

The photo is redacted *before* a camera moves over it, so the blurred patch moves with the scene and
no frame ever shows the text. Each region is padded, pixelated to blocks of a third of its height
(no glyph survives: strokes are thinner than that) and then blurred so the blocks do not draw the eye,
with a feathered edge so the patch does not look cut out.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import cv2
import numpy as np

__all__ = ["blur_regions"]

#: Padding around each region, as a fraction of the photo's short side (text boxes hug the glyphs).
PAD = 0.012


def _box_pixels(box: Sequence[float], w: int, h: int, pad: float) -> tuple[int, int, int, int] | None:
    x0, y0, x1, y1 = (float(v) for v in box[:4])
    if not (x1 > x0 and y1 > y0):  # an empty or inverted box marks nothing
        return None
    margin = pad * min(w, h)
    px0, py0 = max(0, int(x0 * w - margin)), max(0, int(y0 * h - margin))
    px1, py1 = min(w, int(np.ceil(x1 * w + margin))), min(h, int(np.ceil(y1 * h + margin)))
    if px1 - px0 < 2 or py1 - py0 < 2:
        return None
    return px0, py0, px1, py1


def blur_regions(rgb: np.ndarray, boxes: Iterable[Sequence[float]], *, pad: float = PAD) -> tuple[np.ndarray, int]:
    """A copy of `rgb` with every normalised box (x0, y0, x1, y1 in 0..1) made unreadable, and how
    many boxes were redacted. `rgb` itself is never modified."""
    out = np.array(rgb, copy=True)
    h, w = out.shape[:2]
    done = 0
    for box in boxes:
        px = _box_pixels(box, w, h, pad)
        if px is None:
            continue
        x0, y0, x1, y1 = px
        patch = out[y0:y1, x0:x1]
        ph, pw = patch.shape[:2]
        block = max(2, round(min(ph, pw) / 3))
        small = cv2.resize(patch, (max(1, pw // block), max(1, ph // block)), interpolation=cv2.INTER_AREA)
        coarse = cv2.resize(small, (pw, ph), interpolation=cv2.INTER_NEAREST)
        coarse = cv2.GaussianBlur(coarse, (0, 0), block * 0.6)
        # Feathered mask: full strength inside, fading over the padding so the patch blends in.
        mask = np.zeros((ph, pw), np.float32)
        inset = max(1, block // 2)
        mask[inset : ph - inset, inset : pw - inset] = 1.0
        alpha = cv2.GaussianBlur(mask, (0, 0), max(1.0, inset / 2))[:, :, None]
        out[y0:y1, x0:x1] = (coarse * alpha + patch * (1.0 - alpha)).astype(np.uint8)
        done += 1
    return out, done
