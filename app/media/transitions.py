"""Transitions between two shots, drawn frame by frame in numpy / OpenCV for the streaming compositor.

`transition_frame(a, b, progress, kind)` is one output frame of a transition from the outgoing frame `a`
to the incoming frame `b` (both H x W x 3 uint8, the same size) at `progress` 0..1 of the transition's
length. Progress is eased inside (cubic in-out; symmetric, so a crossfade's midpoint is the exact mean).
The result is always a new array: the compositor then draws overlays into it in place, and must never
draw into a source frame that the next output frame reads again.

Kinds (`TRANSITIONS`):

* ``cut``: `a` until the middle, then `b` (a transition of one frame is a plain cut);
* ``crossfade``: linear mix;
* ``dip_to_white``: `a` fades to white by the middle, `b` fades in from white;
* ``slide``: `b` pushes `a` out of the frame towards `direction` (both move, no gap: `slide_offset`);
* ``whip_pan``: a slide concentrated around the middle (quintic easing) with motion blur along the
  motion whose length peaks at the middle (`WHIP_MAX_BLUR` of the frame's width): a fast camera whip;
* ``zoom_through``: `a` zooms in towards its centre while blurring, `b` arrives zoomed in (as large as `a`
  left off, as blurred) and settles to its own framing; the two mix over the middle fifth (`zoom_scale`).

Names the planner and `app.media.assemble` use today are accepted too: ``"fade"`` (and ``"dissolve"``)
mean crossfade; the ffmpeg xfade names with an analogue here map to it (``fadewhite`` -> dip_to_white,
``slideleft`` -> slide to the left, ``hblur`` -> whip_pan, ``zoomin`` -> zoom_through, ...); the other xfade
names (wipes, shapes, pixelize) are drawn as a crossfade (`resolve_transition`).

Measured, ms per 1920 x 1080 frame at the middle of the transition (2 cores shared with other jobs,
OpenCV 5.0 on its 2 threads, median of 40 frames; 1080 x 1920 is the same within noise): cut 0.4,
crossfade 1.3, dip_to_white 0.9, slide 0.5, whip_pan 5.4 (up to 9.6 under load: the 346-px box filter
is all of it), zoom_through 2.5 (2.9 median over progress 0.2-0.8). For scale, a bare libx264
``veryfast`` encode of the same frames costs ~40 ms per frame on these cores, and a transition covers
only the 6-15 frames around its cut.

`choose_transition` picks a kind for a cut point from its beat strength and position in the music.
"""

from __future__ import annotations

import math
from typing import Literal

import cv2
import numpy as np

__all__ = [
    "STRONG_TRANSITIONS",
    "TRANSITIONS",
    "WHIP_MAX_BLUR",
    "ZOOM_MAX",
    "Direction",
    "choose_transition",
    "ease_in_out",
    "resolve_transition",
    "slide_offset",
    "transition_frame",
    "zoom_scale",
]

TRANSITIONS: tuple[str, ...] = ("cut", "crossfade", "dip_to_white", "whip_pan", "slide", "zoom_through")
#: The kinds `choose_transition` keeps for strong downbeats and section changes (rotated, never repeated).
STRONG_TRANSITIONS: tuple[str, ...] = ("whip_pan", "zoom_through", "slide")
Direction = Literal["left", "right", "up", "down"]
DIRECTIONS: tuple[str, ...] = ("left", "right", "up", "down")

#: Longest motion-blur streak of a whip pan, as a fraction of the frame's extent along the motion: at
#: 1920 px, 346 px at the middle. A real whip at 1/50 s shutter smears about a fifth of the frame.
WHIP_MAX_BLUR = 0.18
#: How far zoom-through zooms `a` in (and `b` starts from) at the middle of the transition.
ZOOM_MAX = 2.5
#: Zoom-through's blur at the middle, as a box-filter side in fractions of the frame's short side
#: (1080 px -> 32 px): enough to hide the switch from `a` to `b` without turning into a flat wash.
_ZOOM_MAX_BLUR = 0.03
#: Half-width of the progress window around the middle in which zoom-through mixes `a` into `b`.
_ZOOM_MIX = 0.1

#: xfade names (see `app.media.assemble.XFADE_TRANSITIONS`) with an analogue here, and their direction.
_ALIASES: dict[str, tuple[str, Direction | None]] = {
    "fade": ("crossfade", None),
    "dissolve": ("crossfade", None),
    "fadewhite": ("dip_to_white", None),
    "slideleft": ("slide", "left"),
    "slideright": ("slide", "right"),
    "slideup": ("slide", "up"),
    "slidedown": ("slide", "down"),
    "smoothleft": ("slide", "left"),
    "smoothright": ("slide", "right"),
    "smoothup": ("slide", "up"),
    "smoothdown": ("slide", "down"),
    "hblur": ("whip_pan", None),
    "zoomin": ("zoom_through", None),
}


def ease_in_out(progress: float) -> float:
    """Cubic ease-in-out of `progress` (clamped to 0..1): 0 -> 0, 0.5 -> 0.5, 1 -> 1, flat at both ends."""
    p = min(max(float(progress), 0.0), 1.0)
    return 4.0 * p**3 if p < 0.5 else 1.0 - (-2.0 * p + 2.0) ** 3 / 2.0


def _ease_quint(progress: float) -> float:
    p = min(max(float(progress), 0.0), 1.0)
    return 16.0 * p**5 if p < 0.5 else 1.0 - (-2.0 * p + 2.0) ** 5 / 2.0


def resolve_transition(name: str, direction: str = "left") -> tuple[str, Direction]:
    """(kind, direction) that `name` is drawn as: one of `TRANSITIONS`, or an alias (module docstring).

    An xfade name without an analogue here resolves to crossfade; a name that is neither raises
    ValueError, as does a direction other than left / right / up / down."""
    if direction not in DIRECTIONS:
        raise ValueError(f"unknown transition direction {direction!r}; known: {', '.join(DIRECTIONS)}")
    if name in TRANSITIONS:
        return name, direction  # type: ignore[return-value]
    if name in _ALIASES:
        kind, own = _ALIASES[name]
        return kind, own or direction  # type: ignore[return-value]
    from app.media.assemble import XFADE_TRANSITIONS  # only for the names: assemble is the list's owner

    if name in XFADE_TRANSITIONS:
        return "crossfade", direction  # type: ignore[return-value]
    raise ValueError(f"unknown transition {name!r}; known: {', '.join(TRANSITIONS)} (or an ffmpeg xfade name)")


def slide_offset(progress: float, length: int, *, eased: bool = True) -> int:
    """How many pixels a slide has moved both frames at `progress`, of `length` (width or height)."""
    return round((ease_in_out(progress) if eased else progress) * length)


def zoom_scale(progress: float) -> tuple[float, float]:
    """Zoom-through's magnification of `a` and of `b` at `progress`: `a` goes 1 -> `ZOOM_MAX` over the first
    half (eased in: it accelerates into the cut), `b` comes back `ZOOM_MAX` -> 1 over the second half."""
    e = ease_in_out(progress)
    u = min(e / 0.5, 1.0)
    v = max((e - 0.5) / 0.5, 0.0)
    return 1.0 + (ZOOM_MAX - 1.0) * u * u, 1.0 + (ZOOM_MAX - 1.0) * (1.0 - v) ** 2


def transition_frame(
    a: np.ndarray, b: np.ndarray, progress: float, kind: str, *, direction: str = "left"
) -> np.ndarray:
    """The frame at `progress` (0..1) of a `kind` transition from `a` (outgoing) to `b` (incoming).

    `a` and `b`: H x W x 3 uint8 of the same shape. `direction`: where slide and whip pan move the
    picture ("left": `a` leaves through the left edge, `b` enters from the right). Returns a new array.
    """
    name, way = resolve_transition(kind, direction)
    if a.shape != b.shape or a.ndim != 3 or a.dtype != np.uint8 or b.dtype != np.uint8:
        raise ValueError(
            f"transition frames must be two H x W x 3 uint8 arrays of one shape (got {a.shape}, {b.shape})"
        )
    p = min(max(float(progress), 0.0), 1.0) if math.isfinite(progress) else 0.0
    if name == "cut":
        return (a if p < 0.5 else b).copy()
    if name == "crossfade":
        return _mix(a, b, ease_in_out(p))
    if name == "dip_to_white":
        return _dip_to_white(a, b, ease_in_out(p))
    if name == "slide":
        return _push(a, b, ease_in_out(p), way)
    if name == "whip_pan":
        return _whip(a, b, p, way)
    return _zoom_through(a, b, p)


def _mix(a: np.ndarray, b: np.ndarray, w: float) -> np.ndarray:
    if w <= 0.0:
        return a.copy()
    if w >= 1.0:
        return b.copy()
    return cv2.addWeighted(a, 1.0 - w, b, w, 0.0)


def _dip_to_white(a: np.ndarray, b: np.ndarray, e: float) -> np.ndarray:
    # towards white: x * (1 - w) + 255 * w, in one saturating pass (convertScaleAbs of a non-negative value)
    src, w = (a, e / 0.5) if e < 0.5 else (b, (1.0 - e) / 0.5)
    w = min(max(w, 0.0), 1.0)
    return cv2.convertScaleAbs(src, alpha=1.0 - w, beta=255.0 * w)


def _push(a: np.ndarray, b: np.ndarray, e: float, direction: Direction) -> np.ndarray:
    """`b` pushes `a` out towards `direction` by `e` of the frame (pure copies: ~1 ms at 1080p)."""
    h, w = a.shape[:2]
    out = np.empty_like(a)
    horizontal = direction in ("left", "right")
    n = w if horizontal else h
    k = min(max(round(e * n), 0), n)
    # Written for "left"/"up" (a leaves towards index 0); "right"/"down" mirror it.
    first, second = (a, b) if direction in ("left", "up") else (b, a)
    split = n - k if direction in ("left", "up") else k
    if horizontal:
        out[:, :split] = first[:, n - split :]
        out[:, split:] = second[:, : n - split]
    else:
        out[:split] = first[n - split :]
        out[split:] = second[: n - split]
    return out


def _whip(a: np.ndarray, b: np.ndarray, p: float, direction: Direction) -> np.ndarray:
    out = _push(a, b, _ease_quint(p), direction)
    horizontal = direction in ("left", "right")
    extent = a.shape[1] if horizontal else a.shape[0]
    # streak length follows the speed of the quintic move (its derivative, 80 p^4, over its peak of 5):
    # a fifth of the peak at p = 0.33, so the frames around the middle streak and the ends stay sharp
    speed = 16.0 * min(p, 1.0 - p) ** 4
    length = round(WHIP_MAX_BLUR * extent * speed)
    if length < 3:
        return out
    # a box filter costs the same at any length (running sums); BORDER_REFLECT keeps the edges bright
    ksize = (length, 1) if horizontal else (1, length)
    return cv2.blur(out, ksize, borderType=cv2.BORDER_REFLECT)


def _zoomed_small(frame: np.ndarray, scale: float, blur: float, factor: int) -> np.ndarray:
    """`frame` magnified `scale` times about its centre, `factor` times smaller, box-blurred over `blur`
    output pixels (`blur` / `factor` there)."""
    h, w = frame.shape[:2]
    cw, ch = max(round(w / scale), 2), max(round(h / scale), 2)
    x0, y0 = (w - cw) // 2, (h - ch) // 2
    crop = frame[y0 : y0 + ch, x0 : x0 + cw]
    small_w, small_h = max(w // factor, 2), max(h // factor, 2)
    # halve while the crop is over twice the small size: bilinear alone would alias (sample, not average)
    while crop.shape[1] >= 2 * small_w and crop.shape[0] >= 2 * small_h:
        crop = cv2.pyrDown(crop)
    small = cv2.resize(crop, (small_w, small_h), interpolation=cv2.INTER_LINEAR)
    k = round(blur / factor)
    return cv2.blur(small, (k, k), borderType=cv2.BORDER_REFLECT) if k >= 2 else small


def _blur_factor(blur: float) -> int:
    """How much smaller the blurred copy is: at most 4x (smaller is cheaper but shows the bilinear grid)."""
    return 4 if blur >= 8 else 2


def _zoomed(frame: np.ndarray, scale: float, blur: float) -> np.ndarray:
    """`frame` magnified `scale` times about its centre and blurred over about `blur` output pixels.

    The blur runs on a copy 2-4x smaller (`_zoomed_small`) and comes back up bilinearly: ~2 ms where a
    full-size box filter costs ~7 ms at 1080p."""
    h, w = frame.shape[:2]
    if blur < 1.5:
        if scale <= 1.0005:
            return frame.copy()
        cw, ch = max(round(w / scale), 2), max(round(h / scale), 2)
        x0, y0 = (w - cw) // 2, (h - ch) // 2
        return cv2.resize(frame[y0 : y0 + ch, x0 : x0 + cw], (w, h), interpolation=cv2.INTER_LINEAR)
    small = _zoomed_small(frame, scale, blur, _blur_factor(blur))
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def _zoom_through(a: np.ndarray, b: np.ndarray, p: float) -> np.ndarray:
    scale_a, scale_b = zoom_scale(p)
    e = ease_in_out(p)
    short = min(a.shape[:2])
    # blur grows with the magnification, so the most blurred frames are the ones where a turns into b
    blur_a = _ZOOM_MAX_BLUR * short * (scale_a - 1.0) / (ZOOM_MAX - 1.0)
    blur_b = _ZOOM_MAX_BLUR * short * (scale_b - 1.0) / (ZOOM_MAX - 1.0)
    mix = min(max((e - (0.5 - _ZOOM_MIX)) / (2 * _ZOOM_MIX), 0.0), 1.0)
    if mix <= 0.0:
        return _zoomed(a, scale_a, blur_a)
    if mix >= 1.0:
        return _zoomed(b, scale_b, blur_b)
    # both are blurred here: mix the small copies and bring one image back up (~40 % less work)
    factor = _blur_factor(min(blur_a, blur_b))
    small = cv2.addWeighted(
        _zoomed_small(a, scale_a, blur_a, factor), 1.0 - mix, _zoomed_small(b, scale_b, blur_b, factor), mix, 0.0
    )
    return cv2.resize(small, (a.shape[1], a.shape[0]), interpolation=cv2.INTER_LINEAR)


def choose_transition(
    strength: float, *, downbeat: bool, section_change: bool, index: int, previous: str | None
) -> str:
    """The transition for cut number `index`, from the beat it falls on.

    `strength`: the beat's strength 0..1 (onset strength normalised over the track). A section change
    with strength >= 0.55, or a downbeat with strength >= 0.7, gets a strong kind (whip pan, zoom-through,
    slide), rotated by `index` and never the kind of `previous`; a weaker section change dips to white;
    an ordinary beat crossfades, a weak one (< 0.35) cuts. Deterministic: the same inputs give the same
    kind.
    """
    s = float(strength) if math.isfinite(strength) else 0.0
    s = min(max(s, 0.0), 1.0)
    strong = (section_change and s >= 0.55) or (downbeat and s >= 0.7)
    if strong:
        n = len(STRONG_TRANSITIONS)
        for step in range(n):
            kind = STRONG_TRANSITIONS[(index + step) % n]
            if kind != previous:
                return kind
    if section_change:
        return "dip_to_white" if previous != "dip_to_white" else "crossfade"
    return "cut" if s < 0.35 else "crossfade"
