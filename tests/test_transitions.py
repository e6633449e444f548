"""The transitions library: endpoints, the geometry of each kind, the old names, and the chooser."""

from __future__ import annotations

import itertools
import time

import cv2
import numpy as np
import pytest

from app.media.transitions import (
    STRONG_TRANSITIONS,
    TRANSITIONS,
    choose_transition,
    ease_in_out,
    resolve_transition,
    slide_offset,
    transition_frame,
    zoom_scale,
)

H, W = 360, 640


def textured(seed: int, height: int = H, width: int = W) -> np.ndarray:
    """Detail in both directions (blurred noise plus fine grain), so a directional blur shows."""
    rng = np.random.default_rng(seed)
    coarse = cv2.resize(rng.integers(0, 256, (height // 8, width // 8, 3), np.uint8), (width, height))
    grain = rng.integers(-50, 50, (height, width, 3))
    return np.clip(coarse.astype(int) + grain, 0, 255).astype(np.uint8)


def striped(seed: int) -> np.ndarray:
    """Stripes both ways: rows that vary only along y plus columns that vary only along x, so a blur along
    one axis leaves the differences along the other untouched."""
    rng = np.random.default_rng(seed)
    rows, cols = rng.integers(-60, 60, (H, 1, 3)), rng.integers(-60, 60, (1, W, 3))
    return np.clip(128 + rows + cols, 0, 255).astype(np.uint8)


def sharpness(img: np.ndarray) -> tuple[float, float]:
    """Mean absolute difference between horizontal neighbours, and between vertical ones."""
    f = img.astype(np.float32)
    return float(np.abs(np.diff(f, axis=1)).mean()), float(np.abs(np.diff(f, axis=0)).mean())


def square(side: int, value: int = 255) -> np.ndarray:
    img = np.zeros((H, W, 3), np.uint8)
    y0, x0 = (H - side) // 2, (W - side) // 2
    img[y0 : y0 + side, x0 : x0 + side] = value
    return img


def extent(img: np.ndarray) -> tuple[int, int]:
    """Width and height of the bright area (above half brightness) of a dark frame."""
    mask = img[:, :, 0] > 127
    return int(mask.any(axis=0).sum()), int(mask.any(axis=1).sum())


A, B = textured(1), textured(2)


@pytest.mark.parametrize("kind", [*TRANSITIONS, "fade"])
def test_progress_zero_is_a_and_one_is_b(kind: str) -> None:
    start, end = transition_frame(A, B, 0.0, kind), transition_frame(A, B, 1.0, kind)
    assert np.array_equal(start, A) and np.array_equal(end, B)
    assert start is not A and end is not B  # a new array: overlays are drawn into it in place
    middle = transition_frame(A, B, 0.5, kind)
    assert middle.shape == A.shape and middle.dtype == np.uint8


def test_crossfade_midpoint_is_the_mean_and_fade_means_crossfade() -> None:
    middle = transition_frame(A, B, 0.5, "crossfade")
    mean = (A.astype(np.float32) + B) / 2
    assert np.abs(middle - mean).max() <= 1.0
    assert np.array_equal(transition_frame(A, B, 0.3, "fade"), transition_frame(A, B, 0.3, "crossfade"))
    assert np.array_equal(transition_frame(A, B, 0.3, "dissolve"), transition_frame(A, B, 0.3, "crossfade"))
    # eased: slow at the ends
    early = np.abs(transition_frame(A, B, 0.1, "crossfade").astype(int) - A).mean()
    assert early < 0.1 * np.abs(B.astype(int) - A).mean()


def test_cut_switches_at_the_middle() -> None:
    assert np.array_equal(transition_frame(A, B, 0.49, "cut"), A)
    assert np.array_equal(transition_frame(A, B, 0.5, "cut"), B)


def test_dip_to_white_is_white_at_the_middle() -> None:
    assert transition_frame(A, B, 0.5, "dip_to_white").min() >= 250
    quarter = transition_frame(A, B, 0.3, "dip_to_white")
    assert A.mean() < quarter.mean() < 250


@pytest.mark.parametrize("direction", ["left", "right", "up", "down"])
def test_slide_pushes_a_out_by_the_eased_offset(direction: str) -> None:
    p = 0.3
    out = transition_frame(A, B, p, "slide", direction=direction)
    if direction in ("left", "right"):
        k = slide_offset(p, W)
        assert k == round(ease_in_out(p) * W) and 0 < k < W // 2
        if direction == "left":
            assert np.array_equal(out[:, : W - k], A[:, k:]) and np.array_equal(out[:, W - k :], B[:, :k])
        else:
            assert np.array_equal(out[:, k:], A[:, : W - k]) and np.array_equal(out[:, :k], B[:, W - k :])
    else:
        k = slide_offset(p, H)
        if direction == "up":
            assert np.array_equal(out[: H - k], A[k:]) and np.array_equal(out[H - k :], B[:k])
        else:
            assert np.array_equal(out[k:], A[: H - k]) and np.array_equal(out[:k], B[H - k :])
    assert np.array_equal(
        transition_frame(A, B, p, "slideright"), transition_frame(A, B, p, "slide", direction="right")
    )
    # halfway, half of each frame
    half = transition_frame(A, B, 0.5, "slide")
    assert np.array_equal(half[:, : W // 2], A[:, W // 2 :])


def test_whip_pan_blurs_along_its_motion_at_the_middle() -> None:
    a, b = striped(5), striped(6)
    sx, sy = sharpness(a)
    out = transition_frame(a, b, 0.5, "whip_pan")
    ox, oy = sharpness(out)
    assert ox < 0.15 * sx  # streaked along x ...
    assert oy > 0.4 * sy  # ... while detail across the motion survives
    vx, vy = sharpness(transition_frame(a, b, 0.5, "whip_pan", direction="up"))
    assert vy < 0.15 * sy and vx > 0.4 * sx
    # a slide at the same point is sharp in both directions: the blur is the whip's
    px, py = sharpness(transition_frame(a, b, 0.5, "slide"))
    assert px > 0.7 * sx and py > 0.7 * sy
    # and it moves: most of a has left the frame by the middle
    assert np.abs(out[:, W // 2 :].astype(int) - a[:, W // 2 :]).mean() > 20


def test_zoom_through_scales_a_up_then_brings_b_down_from_large() -> None:
    side = 80
    a, b = square(side), square(side)
    # first half: a is magnified (the bright square grows by zoom_scale's factor)
    scale_a, _ = zoom_scale(0.4)
    assert 1.2 < scale_a < 2.0
    wa, ha = extent(transition_frame(a, np.zeros_like(b), 0.4, "zoom_through"))
    assert abs(wa - side * scale_a) <= 4 and abs(ha - side * scale_a) <= 4
    # second half: b arrives magnified and settles
    _, scale_b = zoom_scale(0.6)
    assert 1.2 < scale_b < 2.0
    wb, hb = extent(transition_frame(np.zeros_like(a), b, 0.6, "zoom_through"))
    assert abs(wb - side * scale_b) <= 4 and abs(hb - side * scale_b) <= 4
    assert zoom_scale(0.0) == (1.0, pytest.approx(2.5)) and zoom_scale(1.0)[1] == 1.0
    # it blurs through the middle
    sx, sy = sharpness(A)
    mx, my = sharpness(transition_frame(A, B, 0.5, "zoom_through"))
    assert mx < 0.3 * sx and my < 0.3 * sy


def test_names_directions_and_shapes_are_checked() -> None:
    assert resolve_transition("fade") == ("crossfade", "left")
    assert resolve_transition("fadewhite") == ("dip_to_white", "left")
    assert resolve_transition("slideup") == ("slide", "up")
    assert resolve_transition("circleopen") == ("crossfade", "left")  # an xfade name without an analogue
    with pytest.raises(ValueError, match="unknown transition 'sparkle'"):
        transition_frame(A, B, 0.5, "sparkle")
    with pytest.raises(ValueError, match="direction"):
        transition_frame(A, B, 0.5, "slide", direction="sideways")
    with pytest.raises(ValueError, match="one shape"):
        transition_frame(A, B[:100], 0.5, "crossfade")
    # progress outside 0..1 (or not a number) is clamped
    assert np.array_equal(transition_frame(A, B, -3.0, "slide"), A)
    assert np.array_equal(transition_frame(A, B, float("nan"), "crossfade"), A)


def test_transitions_are_fast_at_1080p() -> None:
    a, b = textured(3, 1080, 1920), textured(4, 1080, 1920)
    for kind in TRANSITIONS:
        times = []
        for i in range(8):
            start = time.perf_counter()
            transition_frame(a, b, 0.35 + 0.3 * i / 7, kind)
            times.append(time.perf_counter() - start)
        # measured 0.5-6 ms; the bound leaves room for a loaded CI machine
        assert float(np.median(times)) < 0.05, (kind, np.median(times))


# ---------------------------------------------------------------------------------------------
# choose_transition
# ---------------------------------------------------------------------------------------------


def test_strong_downbeats_and_section_changes_get_strong_transitions() -> None:
    assert choose_transition(0.9, downbeat=True, section_change=False, index=0, previous=None) in STRONG_TRANSITIONS
    assert choose_transition(0.6, downbeat=False, section_change=True, index=4, previous=None) in STRONG_TRANSITIONS
    assert choose_transition(0.6, downbeat=False, section_change=False, index=1, previous=None) == "crossfade"
    assert choose_transition(0.6, downbeat=True, section_change=False, index=1, previous=None) == "crossfade"
    assert choose_transition(0.2, downbeat=True, section_change=False, index=2, previous=None) == "cut"
    assert choose_transition(0.3, downbeat=False, section_change=True, index=3, previous=None) == "dip_to_white"
    assert choose_transition(float("nan"), downbeat=True, section_change=False, index=0, previous=None) == "cut"


def test_chosen_transitions_vary_and_never_repeat_a_strong_kind() -> None:
    def run() -> list[str]:
        chosen: list[str] = []
        previous = None
        for i in range(40):
            strength = (0.95, 0.8, 0.5, 0.2)[i % 4] if i % 7 else 0.9
            kind = choose_transition(
                strength, downbeat=i % 2 == 0, section_change=i % 9 == 0, index=i, previous=previous
            )
            chosen.append(kind)
            previous = kind
        return chosen

    chosen = run()
    assert chosen == run()  # deterministic
    assert set(STRONG_TRANSITIONS) <= set(chosen) and {"cut", "crossfade"} <= set(chosen)
    for before, after in itertools.pairwise(chosen):
        assert not (before == after and after in STRONG_TRANSITIONS), chosen
    # back-to-back strong beats rotate instead of repeating
    previous = None
    for _ in range(12):
        kind = choose_transition(1.0, downbeat=True, section_change=True, index=0, previous=previous)
        assert kind in STRONG_TRANSITIONS and kind != previous
        previous = kind
