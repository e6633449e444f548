"""Each deliverable's compliance, checked on what was delivered rather than assumed.

MLS rules forbid agent branding in the unbranded cut and misleading alteration; California AB 723
(2026) asks for disclosure of AI-altered listing media. So, per deliverable:

* `agent_identity`: for the unbranded variant, overlay layers carrying the agent's identity (none may),
  and the identity strings OCR finds in sampled frames of the encoded file (none may);
* `text_redacted`: text regions found in the photos and blurred out (unbranded);
* `opening`: the first shot's photo, whether it is a (confident) exterior and unaltered (not generated);
* `ai_generated_clips` and whether a disclosure is shown.

`passed` is False when an unbranded cut shows agent identity or opens on a generated shot.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from app.media.deliverables import DeliverableSpec, ListingFacts

log = logging.getLogger(__name__)

#: Frames of the encoded file OCR reads for the identity check (spread over the video, plus the end).
OCR_SAMPLES = 6


def _normalise(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


def identity_hits(texts: Sequence[str], facts: ListingFacts) -> list[str]:
    """The identity strings of `facts` found in `texts` (OCR output): case, spaces and punctuation are
    ignored, and a phone number matches on its last 7 digits."""
    seen = _normalise(" ".join(texts))
    digits = re.sub(r"\D", "", " ".join(texts))
    hits = []
    for value in facts.identity_strings():
        key = _normalise(value)
        phone = re.sub(r"\D", "", value)
        if (len(phone) >= 7 and phone[-7:] in digits) or (len(key) >= 4 and key in seen):
            hits.append(value)
    return hits


def sample_frames(video: Path, duration: float, fps: float, size: tuple[int, int]) -> list[np.ndarray]:
    """`OCR_SAMPLES` frames of `video`, evenly spread, the last one near the end (end cards)."""
    from app.media.validate import decode_frame

    times = [duration * (i + 0.5) / OCR_SAMPLES for i in range(OCR_SAMPLES - 1)] + [max(0.0, duration - 0.6)]
    frames = []
    for t in times:
        frame = decode_frame(video, round(t * fps), fps, size[0], size[1])
        if frame is not None:
            frames.append(frame)
    return frames


def ocr_texts(frames: Sequence[np.ndarray], reader: Any) -> list[str]:
    from app.media.text_regions import detect_text_regions

    texts: list[str] = []
    for frame in frames:
        texts.extend(r.text for r in detect_text_regions(frame, reader) if r.text)
    return texts


def check_deliverable(
    spec: DeliverableSpec,
    *,
    facts: ListingFacts,
    layer_violations: Sequence[str],
    ocr_found: Sequence[str] | None,
    redacted: int,
    opening: dict[str, Any],
    ai_clips: Sequence[int],
    disclosure_shown: bool,
) -> dict[str, Any]:
    """The compliance record of one deliverable (see the module docstring)."""
    unbranded = spec.variant == "unbranded"
    ocr_hits = identity_hits(ocr_found, facts) if ocr_found is not None else []
    problems: list[str] = []
    if unbranded and layer_violations:
        problems.append("agent identity in overlays: " + ", ".join(layer_violations))
    if unbranded and ocr_hits:
        problems.append("agent identity visible in frames: " + ", ".join(ocr_hits))
    if unbranded and not opening.get("unaltered", True):
        problems.append("opens on a generated shot")
    if ai_clips and not disclosure_shown:
        problems.append("AI-generated clips without a disclosure")
    return {
        "variant": spec.variant,
        "agent_identity": {
            "allowed": not unbranded,
            "overlay_layers": list(layer_violations),
            "ocr_checked": ocr_found is not None,
            "ocr_found": ocr_hits,
        },
        "text_redacted": redacted if unbranded else 0,
        "opening": opening,
        "ai_generated_clips": list(ai_clips),
        "ai_disclosure": disclosure_shown,
        "problems": problems,
        "passed": not problems,
    }
