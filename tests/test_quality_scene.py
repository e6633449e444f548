"""Quality scores and scene heuristics respond to the properties they claim to measure."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from app.media.images import UNKNOWN_ROOM
from app.media.quality import QualityScores, featureless_reason, score_quality
from app.media.scene import HEURISTIC_SOURCE, ROOM_CLASSES, SceneGuess, classify_scene, resolve_room_label


def _room_like(w: int = 960, h: int = 720, seed: int = 0) -> np.ndarray:
    """A frontal 'interior': textured wall with doors, frames and furniture (many vertical edges)."""
    rng = np.random.default_rng(seed)
    img = np.empty((h, w, 3), np.uint8)
    img[:] = (200, 190, 175)
    img[int(0.75 * h) :] = (120, 90, 60)  # floor
    noise = rng.normal(0, 6, (h, w, 1))
    for _ in range(14):
        x0 = int(rng.integers(0, w - 80))
        y0 = int(rng.integers(int(0.1 * h), int(0.6 * h)))
        bw = int(rng.integers(40, 160))
        bh = int(rng.integers(120, int(0.85 * h) - y0))
        colour = tuple(int(c) for c in rng.integers(20, 240, 3))
        cv2.rectangle(img, (x0, y0), (x0 + bw, y0 + bh), colour, -1)
        cv2.rectangle(img, (x0 + 8, y0 + 8), (x0 + bw - 8, y0 + bh // 2), tuple(255 - c for c in colour), 3)
    for _ in range(300):  # small details: fine texture for the sharpness measures
        x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
        cv2.circle(img, (x, y), int(rng.integers(2, 6)), tuple(int(c) for c in rng.integers(0, 255, 3)), -1)
    return np.clip(img + noise, 0, 255).astype(np.uint8)


def _rotate_crop(rgb: np.ndarray, degrees: float) -> np.ndarray:
    """Rotate counter-clockwise by `degrees` (OpenCV convention) and crop away the borders."""
    h, w = rgb.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    out = cv2.warpAffine(rgb, m, (w, h), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
    return np.ascontiguousarray(out[int(0.12 * h) : int(0.88 * h), int(0.12 * w) : int(0.88 * w)])


@pytest.fixture(scope="module")
def room() -> np.ndarray:
    return _room_like()


@pytest.fixture(scope="module")
def room_scores(room: np.ndarray) -> QualityScores:
    return score_quality(room)


def test_scores_are_in_range(room_scores: QualityScores) -> None:
    q = room_scores
    for v in (
        q.sharpness,
        q.exposure,
        q.tilt_score,
        q.composition,
        q.base_score,
        q.clipped_highlights,
        q.clipped_shadows,
    ):
        assert 0.0 <= v <= 1.0
    assert q.sharpness > 0.8 and q.base_score > 0.6
    d = q.to_dict()
    assert set(d) >= {"sharpness", "exposure", "tilt_degrees", "raw"} and d["raw"]["width"] == 960


def test_blur_lowers_sharpness(room: np.ndarray, room_scores: QualityScores) -> None:
    blurred = score_quality(cv2.GaussianBlur(room, (0, 0), 3.0))
    assert blurred.sharpness < room_scores.sharpness - 0.4
    assert blurred.base_score < room_scores.base_score


def test_darkening_lowers_exposure(room: np.ndarray, room_scores: QualityScores) -> None:
    dark = score_quality((room.astype(np.float32) * 0.3).astype(np.uint8))
    assert dark.exposure < room_scores.exposure - 0.4
    assert dark.raw["mean_luma"] < 0.2
    blown = score_quality(np.clip(room.astype(np.int32) + 140, 0, 255).astype(np.uint8))
    assert blown.clipped_highlights > 0.3 and blown.exposure < room_scores.exposure - 0.3


@pytest.mark.parametrize("degrees", [-5.0, -2.0, 3.0, 6.0])
def test_rotation_is_measured_as_tilt(room: np.ndarray, degrees: float) -> None:
    level = score_quality(_rotate_crop(room, 0.0))
    assert abs(level.tilt_degrees) < 0.75
    rotated = score_quality(_rotate_crop(room, degrees))
    # A counter-clockwise rotation makes verticals lean left: negative tilt by our convention.
    assert rotated.tilt_degrees == pytest.approx(-degrees, abs=1.5)
    assert rotated.tilt_score < level.tilt_score


def test_flat_image_does_not_crash() -> None:
    q = score_quality(np.full((400, 600, 3), 128, np.uint8))
    assert q.sharpness < 0.2 and q.tilt_score == 1.0


def _featureless(kind: str, w: int = 900, h: int = 600) -> np.ndarray:
    rng = np.random.default_rng(2)
    if kind == "black":
        return np.zeros((h, w, 3), np.uint8)
    if kind == "near_white_jpeg_noise":
        return np.clip(252 + rng.normal(0, 1.0, (h, w, 3)), 0, 255).astype(np.uint8)
    if kind == "colour_fill":
        return np.tile(np.array([180, 30, 40], np.uint8), (h, w, 1))
    if kind == "vertical_gradient":
        ramp = np.linspace(20, 240, h, dtype=np.float32)[:, None, None]
        return np.repeat(np.repeat(ramp, w, 1), 3, 2).astype(np.uint8)
    card = np.full((h, w, 3), 245, np.uint8)  # a "coming soon" card: text and a logo on white
    cv2.putText(card, "COMING SOON", (w // 5, h // 2), cv2.FONT_HERSHEY_SIMPLEX, 2.0, (40, 40, 40), 4)
    cv2.rectangle(card, (30, 30), (130, 90), (20, 90, 200), -1)
    return card


@pytest.mark.parametrize(
    ("kind", "why"),
    [
        ("black", "a uniform colour (RGB 0,0,0)"),
        ("near_white_jpeg_noise", "a uniform colour"),
        ("colour_fill", "a uniform colour (RGB 180,30,40)"),
        ("vertical_gradient", "no visible detail"),
        ("card", "of the frame is one flat colour"),
    ],
)
def test_featureless_photos_are_named(kind: str, why: str) -> None:
    reason = featureless_reason(_featureless(kind))
    assert reason is not None and why in reason and "\n" not in reason


@pytest.mark.parametrize(
    "variant", ["original", "dark_12pct", "fog_15pct_contrast", "soft_blur_3px", "panorama_strip", "tall_strip"]
)
def test_weak_but_real_photos_are_not_featureless(room: np.ndarray, variant: str) -> None:
    """Dark, foggy or soft photos keep their (low) quality score; only photos showing nothing are rejected."""
    f = room.astype(np.float32)
    images = {
        "original": room,
        "dark_12pct": (f * 0.12).astype(np.uint8),
        "fog_15pct_contrast": (128 + (f - 128) * 0.15).astype(np.uint8),
        "soft_blur_3px": cv2.GaussianBlur(room, (0, 0), 3.0),
        "panorama_strip": np.ascontiguousarray(np.concatenate([room] * 8, axis=1)[:90]),  # 7680x90
        "tall_strip": np.ascontiguousarray(np.concatenate([room] * 6, axis=0)[:, :120]),
    }
    assert featureless_reason(images[variant]) is None


def test_featureless_reason_handles_tiny_images() -> None:
    assert featureless_reason(np.zeros((1, 1, 3), np.uint8)) is not None
    assert featureless_reason(np.full((3, 5000, 3), 77, np.uint8)) is not None


def _outdoor_scene(w: int = 800, h: int = 600, seed: int = 0) -> np.ndarray:
    """Blue sky over a house and a lawn."""
    rng = np.random.default_rng(seed)
    img = np.empty((h, w, 3), np.float32)
    t = np.linspace(0, 1, int(0.45 * h))[:, None, None]
    img[: int(0.45 * h)] = (1 - t) * np.array([90, 140, 225]) + t * np.array([160, 195, 240])
    grass = np.array([70, 140, 50]) + rng.normal(0, 25, (h - int(0.45 * h), w, 3))
    img[int(0.45 * h) :] = grass
    img = np.clip(img, 0, 255).astype(np.uint8)
    cv2.rectangle(img, (250, 200), (560, 380), (215, 200, 170), -1)  # house
    cv2.fillPoly(img, [np.array([[230, 200], [405, 120], [580, 200]], np.int32)], (120, 60, 50))
    for x in (280, 380, 480):
        cv2.rectangle(img, (x, 240), (x + 50, 300), (60, 70, 90), -1)
    for _ in range(40):  # shrubs
        x, y = int(rng.integers(0, w)), int(rng.integers(int(0.5 * h), h))
        cv2.circle(img, (x, y), int(rng.integers(8, 25)), (40, int(rng.integers(90, 150)), 40), -1)
    return img


def _indoor_scene(w: int = 800, h: int = 600) -> np.ndarray:
    """Warm-lit room: ceiling, beige walls, wooden floor, a sofa and a window with a view."""
    img = np.empty((h, w, 3), np.uint8)
    img[: int(0.2 * h)] = (232, 224, 210)  # ceiling
    img[int(0.2 * h) : int(0.7 * h)] = (215, 185, 145)  # walls under tungsten light
    floor = np.full((h - int(0.7 * h), w, 3), (140, 95, 55), np.float32)
    floor += np.random.default_rng(1).normal(0, 10, floor.shape)
    img[int(0.7 * h) :] = np.clip(floor, 0, 255).astype(np.uint8)
    cv2.rectangle(img, (520, 180), (700, 360), (240, 240, 235), -1)  # window
    cv2.rectangle(img, (100, 330), (420, 470), (150, 60, 50), -1)  # sofa
    cv2.rectangle(img, (120, 300), (400, 340), (170, 80, 60), -1)
    cv2.line(img, (0, int(0.2 * h)), (w, int(0.2 * h)), (180, 160, 130), 3)
    return img


def test_outdoor_scene_is_exterior() -> None:
    guess = classify_scene(_outdoor_scene())
    assert guess.is_exterior and guess.exterior_probability > 0.8
    assert guess.room_label in ("exterior", "outdoor") and guess.room_guess == guess.room_label
    assert guess.features["sky_blue"] > 0.2 and guess.source == HEURISTIC_SOURCE == "heuristic:v2"


def test_indoor_scene_is_interior() -> None:
    guess = classify_scene(_indoor_scene())
    assert not guess.is_exterior and guess.exterior_probability < 0.3
    assert guess.room_label not in ("exterior", "outdoor")
    assert guess.room_guess in ROOM_CLASSES
    assert 0.0 <= guess.label_confidence <= 1.0
    # Labelled only when confident: below 0.5 the label is "unknown" and the guess stays visible.
    assert (guess.room_label == UNKNOWN_ROOM) == (guess.label_confidence < 0.5)


def test_resolve_room_label_prefers_given_label() -> None:
    guess = SceneGuess(is_exterior=False, exterior_probability=0.1, room_label="kitchen", label_confidence=0.6)
    assert guess.room_guess == ""  # the new field has a default: old constructors keep working
    assert resolve_room_label("Master Bath", guess) == ("bathroom", "backend")
    assert resolve_room_label(None, guess) == ("kitchen", HEURISTIC_SOURCE)
    assert resolve_room_label("misc", guess) == ("kitchen", HEURISTIC_SOURCE)
    assert guess.to_dict()["room_label"] == "kitchen" and guess.to_dict()["room_guess"] == "kitchen"


def test_given_unknown_label_does_not_win() -> None:
    unsure = SceneGuess(False, 0.1, UNKNOWN_ROOM, 0.3, room_guess="bedroom")
    assert resolve_room_label(UNKNOWN_ROOM, unsure) == (UNKNOWN_ROOM, HEURISTIC_SOURCE)
    sure = SceneGuess(False, 0.1, "bedroom", 0.8, room_guess="bedroom")
    assert resolve_room_label("unknown", sure) == ("bedroom", HEURISTIC_SOURCE)
    assert resolve_room_label("kitchen", unsure) == ("kitchen", "backend")
