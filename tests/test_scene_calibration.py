"""The v2 scene classifier on generated photos: hard exteriors, windows, watermarks, honest room labels.

Photos come from the project's synthetic renderer (`app.samples.render_true_frames`, small size, no
files written) and from edits of them, so the test needs no real data and runs in a few seconds.
"""

from __future__ import annotations

import itertools

import cv2
import numpy as np
import pytest

from app.media.images import ROOM_LABELS, UNKNOWN_ROOM
from app.media.scene import (
    _EXTERIOR_MODEL,
    _ROOM_CONFIDENCE_KNOTS,
    _ROOM_MODEL,
    ROOM_CLASSES,
    SceneGuess,
    classify_scene,
    room_confidence,
    room_decision,
    scene_features,
)
from app.samples import render_true_frames

W, H = 480, 320


@pytest.fixture(scope="module")
def rendered() -> dict[str, np.ndarray]:
    views = {
        "exterior": ("exterior", 1),
        "exterior_2": ("exterior", 2),
        "outdoor": ("outdoor", 1),
        "living_room": ("living_room", 1),
        "kitchen": ("kitchen", 1),
        "bedroom": ("bedroom_a", 1),
        "bathroom": ("bathroom", 1),
    }
    return {k: render_true_frames(g, [], width=W, height=H, view=v).photo for k, (g, v) in views.items()}


def _banner(rgb: np.ndarray) -> np.ndarray:
    """An MLS-style overlay: a white text banner along the bottom and a blue logo in a top corner."""
    out = rgb.copy()
    h, w = out.shape[:2]
    out[int(0.88 * h) :] = (0.25 * out[int(0.88 * h) :] + 0.75 * 255).astype(np.uint8)
    cv2.putText(out, "CALL 555-0100  REALTY", (10, h - 10), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (30, 30, 30), 2)
    cv2.rectangle(out, (w - 90, 4), (w - 6, 34), (30, 90, 210), -1)
    cv2.putText(out, "MLS", (w - 80, 28), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (255, 255, 255), 2)
    return out


def _with_sky_window(rgb: np.ndarray) -> np.ndarray:
    """A big bright window with blue sky and a tree line in the wall (not touching the top edge)."""
    out = rgb.copy()
    h, w = out.shape[:2]
    y0, y1, x0, x1 = int(0.18 * h), int(0.62 * h), int(0.3 * w), int(0.75 * w)
    t = np.linspace(0.0, 1.0, y1 - y0)[:, None, None]
    out[y0:y1, x0:x1] = ((1 - t) * np.array([95, 150, 235]) + t * np.array([185, 215, 245])).astype(np.uint8)
    out[int(y1 - 0.12 * h) : y1, x0:x1] = (55, 110, 50)
    cv2.rectangle(out, (x0, y0), (x1, y1), (245, 245, 240), 6)
    cv2.line(out, ((x0 + x1) // 2, y0), ((x0 + x1) // 2, y1), (245, 245, 240), 5)
    return out


def test_rendered_exteriors_and_interiors(rendered: dict[str, np.ndarray]) -> None:
    for name, rgb in rendered.items():
        guess = classify_scene(rgb)
        exterior = name.startswith(("exterior", "outdoor"))
        assert guess.is_exterior == exterior, (name, guess.exterior_probability)
        assert guess.exterior_probability > 0.9 if exterior else guess.exterior_probability < 0.3, name
    assert classify_scene(rendered["exterior"]).room_label == "exterior"
    assert classify_scene(rendered["outdoor"]).room_label == "outdoor"


@pytest.mark.parametrize("top", [0.3, 0.38, 0.5])
def test_exterior_with_little_or_no_sky_is_exterior(rendered: dict[str, np.ndarray], top: float) -> None:
    """The house fills the frame under a thin strip of sky (0.3), no sky at all (0.38: the roof
    and trees at the top edge), or a garden-level shot of lawn and the house's base (0.5)."""
    rgb = rendered["exterior"]
    crop = np.ascontiguousarray(rgb[int(top * rgb.shape[0]) :])
    full = scene_features(rgb)
    guess = classify_scene(crop)
    assert guess.features["sky_blue"] < 0.1 * full["sky_blue"]  # the sky cue really is (nearly) gone
    assert guess.is_exterior and guess.exterior_probability > 0.8, guess.exterior_probability


def test_zoomed_facade_is_exterior(rendered: dict[str, np.ndarray]) -> None:
    rgb = rendered["exterior"]
    h, w = rgb.shape[:2]
    facade = cv2.resize(rgb[int(0.3 * h) : int(0.85 * h), int(0.2 * w) : int(0.8 * w)], (W, H))
    assert classify_scene(facade).is_exterior


@pytest.mark.parametrize("room", ["living_room", "kitchen", "bedroom", "bathroom"])
def test_interior_with_a_sky_window_stays_interior(rendered: dict[str, np.ndarray], room: str) -> None:
    windowed = _with_sky_window(rendered[room])
    guess = classify_scene(windowed)
    assert not guess.is_exterior and guess.exterior_probability < 0.5, guess.exterior_probability
    # The window does show sky; it just does not touch the top edge (the ceiling is above it).
    assert guess.features["sky_span"] < 0.2


@pytest.mark.parametrize("name", ["exterior", "exterior_2", "living_room", "kitchen", "bedroom", "bathroom"])
def test_watermark_banner_does_not_flip_the_decision(rendered: dict[str, np.ndarray], name: str) -> None:
    plain = classify_scene(rendered[name])
    marked = classify_scene(_banner(rendered[name]))
    assert marked.is_exterior == plain.is_exterior
    assert abs(marked.exterior_probability - plain.exterior_probability) < 0.25
    # A confident room label survives the overlay (a near-tie between two weak guesses may not).
    if plain.label_confidence >= 0.6:
        assert marked.room_label == plain.room_label
        assert abs(marked.label_confidence - plain.label_confidence) < 0.2


def test_letterbox_bar_is_not_sky(rendered: dict[str, np.ndarray]) -> None:
    """A white bar above an interior (pasted on a white page) is cut off, not read as overcast sky."""
    rgb = rendered["kitchen"]
    boxed = np.concatenate([np.full((40, W, 3), 255, np.uint8), rgb, np.full((40, W, 3), 255, np.uint8)])
    assert scene_features(boxed)["sky_pale"] == pytest.approx(scene_features(rgb)["sky_pale"], abs=0.02)
    assert not classify_scene(boxed).is_exterior


def test_low_confidence_room_is_unknown_with_its_guess() -> None:
    label, confidence, guess = room_decision({"kitchen": 0.4, "bedroom": 0.35, "bathroom": 0.25}, 0.05)
    assert label == UNKNOWN_ROOM and guess == "kitchen" and 0.0 <= confidence < 0.5
    label, confidence, guess = room_decision({"kitchen": 0.02, "bedroom": 0.96, "bathroom": 0.02}, 0.05)
    assert label == guess == "bedroom" and confidence > 0.8
    # The same probabilities on a barely-interior photo are not trusted.
    label, confidence, _ = room_decision({"kitchen": 0.02, "bedroom": 0.8, "bathroom": 0.18}, 0.45)
    assert label == UNKNOWN_ROOM and confidence < 0.5


def test_room_the_model_does_not_know_is_not_labelled(rendered: dict[str, np.ndarray]) -> None:
    """The synthetic living room is none of kitchen/bedroom/bathroom: reported as unknown."""
    guess = classify_scene(rendered["living_room"])
    assert guess.room_label == UNKNOWN_ROOM and guess.label_confidence < 0.5
    assert guess.room_guess in ROOM_CLASSES
    assert guess.to_dict()["room_guess"] == guess.room_guess


def test_confidences_are_probabilities(rendered: dict[str, np.ndarray]) -> None:
    rng = np.random.default_rng(3)
    images = [*rendered.values(), rng.integers(0, 256, (240, 360, 3), dtype=np.uint8)]
    images += [np.full((200, 300, 3), v, np.uint8) for v in (0, 128, 255)]
    for rgb in images:
        g = classify_scene(rgb)
        assert isinstance(g, SceneGuess)
        assert 0.0 <= g.exterior_probability <= 1.0 and 0.0 <= g.label_confidence <= 1.0
        assert g.room_label in (*ROOM_LABELS, UNKNOWN_ROOM)
        assert (g.room_label == UNKNOWN_ROOM) == (not g.is_exterior and g.label_confidence < 0.5)
        assert all(np.isfinite(v) for v in g.features.values())


def test_confidence_map_is_monotone_and_pins_the_threshold() -> None:
    top = np.linspace(1 / 3, 1.0, 50)
    mapped = [room_confidence(float(t)) for t in top]
    assert all(b >= a for a, b in itertools.pairwise(mapped))
    assert mapped[0] == pytest.approx(0.0, abs=1e-3) and mapped[-1] == pytest.approx(1.0)
    threshold = _ROOM_CONFIDENCE_KNOTS[1][0]
    assert 0.5 < threshold < 0.95 and room_confidence(threshold) == pytest.approx(0.5)


def test_model_constants_match_the_features() -> None:
    names = set(scene_features(np.full((120, 160, 3), 90, np.uint8)))
    for model, classes in ((_EXTERIOR_MODEL, 1), (_ROOM_MODEL, len(ROOM_CLASSES))):
        assert set(model.names) <= names
        n = len(model.names)
        assert len(model.mean) == len(model.scale) == len(model.lo) == len(model.hi) == n
        assert len(model.coef) == len(model.intercept) == classes and all(len(r) == n for r in model.coef)
        assert all(s > 0 for s in model.scale) and all(a <= b for a, b in zip(model.lo, model.hi, strict=True))
