"""Room clustering groups overlapping views and nothing else; motion plans stay inside the photo."""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np
import pytest

from app.media.clustering import (
    ClusterInput,
    PhotoFeatures,
    RoomCluster,
    choose_hero,
    cluster_rooms,
    extract_features,
    match_pair,
)
from app.media.motion import (
    clamp_viewport,
    max_zoom_for,
    plan_motion,
    saliency_map,
    salient_region,
    viewport_rect,
)
from app.media.quality import QualityScores
from app.media.types import Easing, MotionPlan, MotionType, Viewport

# --- synthetic scenes ---------------------------------------------------------------------------------


def _scene(seed: int, w: int = 1600, h: int = 1200) -> np.ndarray:
    """A 'room wall' full of distinct structure: random shapes over a smooth colour field."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(60, 200, (6, 8, 3)).astype(np.uint8)
    img = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)
    for _ in range(260):
        colour = tuple(int(c) for c in rng.integers(0, 255, 3))
        x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
        kind = rng.integers(0, 3)
        if kind == 0:
            cv2.circle(img, (x, y), int(rng.integers(5, 40)), colour, -1)
        elif kind == 1:
            corner = (x + int(rng.integers(10, 90)), y + int(rng.integers(10, 90)))
            cv2.rectangle(img, (x, y), corner, colour, -1)
        else:
            pts = rng.integers(-50, 50, (5, 2)) + np.array([x, y])
            cv2.fillPoly(img, [pts.astype(np.int32)], colour)
    return cv2.GaussianBlur(img, (3, 3), 0.8)


def _view(scene: np.ndarray, seed: int, out: tuple[int, int] = (640, 480)) -> np.ndarray:
    """A perspective 'photo' of the central part of `scene` from a slightly different position."""
    rng = np.random.default_rng(seed)
    h, w = scene.shape[:2]
    cx, cy = w * (0.5 + rng.uniform(-0.08, 0.08)), h * (0.5 + rng.uniform(-0.08, 0.08))
    hw, hh = w * 0.3, h * 0.3
    quad = np.array([[cx - hw, cy - hh], [cx + hw, cy - hh], [cx + hw, cy + hh], [cx - hw, cy + hh]], np.float32)
    quad += rng.uniform(-0.05, 0.05, (4, 2)).astype(np.float32) * np.array([w, h], np.float32)
    dst = np.array([[0, 0], [out[0], 0], [out[0], out[1]], [0, out[1]]], np.float32)
    m = cv2.getPerspectiveTransform(quad, dst)
    return cv2.warpPerspective(scene, m, out, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def _watermark(rgb: np.ndarray) -> np.ndarray:
    out = rgb.copy()
    cv2.putText(
        out,
        "MLS Listing",
        (out.shape[1] - 230, out.shape[0] - 20),
        cv2.FONT_HERSHEY_SIMPLEX,
        1.0,
        (255, 255, 255),
        2,
        cv2.LINE_AA,
    )
    return out


@pytest.fixture(scope="module")
def views() -> dict[str, np.ndarray]:
    a, b, c = _scene(1), _scene(2), _scene(3)
    return {
        "a1": _view(a, 11),
        "a2": _view(a, 12),
        "a3": _view(a, 13),
        "b1": _view(b, 21),
        "b2": _view(b, 22),
        "c1": _view(c, 31),
    }


@pytest.fixture(scope="module")
def feats(views: dict[str, np.ndarray]) -> dict[str, PhotoFeatures]:
    return {k: extract_features(ClusterInput(k, v)) for k, v in views.items()}


def _cluster(
    views: dict[str, np.ndarray], feats: dict[str, PhotoFeatures], spec: Sequence[tuple[str, str | None, bool, float]]
) -> list[RoomCluster]:
    photos = [ClusterInput(k, views[k], label, ext, conf) for k, label, ext, conf in spec]
    return cluster_rooms(photos, features=[feats[k] for k, *_ in spec])


def _groups(clusters: Sequence[RoomCluster]) -> set[frozenset[str]]:
    return {frozenset(str(m) for m in c.member_ids) for c in clusters}


# --- clustering -----------------------------------------------------------------------------------------


def test_views_of_one_scene_match_and_others_do_not(feats: dict[str, PhotoFeatures]) -> None:
    same = match_pair(feats["a1"], feats["a2"])
    assert same.verified and same.inliers >= 30 and same.coverage > 0.1
    other = match_pair(feats["a1"], feats["b1"])
    assert not other.verified and other.reason


def test_unlabelled_views_group_by_scene(views: dict[str, np.ndarray], feats: dict[str, PhotoFeatures]) -> None:
    spec = [(k, None, False, 1.0) for k in ("a1", "b1", "a2", "c1", "b2", "a3")]
    clusters = _cluster(views, feats, spec)
    assert _groups(clusters) == {frozenset({"a1", "a2", "a3"}), frozenset({"b1", "b2"}), frozenset({"c1"})}
    by_first = {str(c.member_ids[0]): c for c in clusters}
    assert [str(c.member_ids[0]) for c in clusters] == ["a1", "b1", "c1"]  # input order
    a, b, c = by_first["a1"], by_first["b1"], by_first["c1"]
    assert a.confidence_tier == "high" and a.sfm_eligible and a.overlap_score > 0.3
    assert b.confidence_tier == "medium" and not b.sfm_eligible
    assert c.confidence_tier == "low" and c.overlap_score == 0.0 and c.room_type == "other"
    assert abs(sum(a.centrality.values()) - 1.0) < 1e-6
    assert all(pm["verified"] for pm in a.pair_metrics) and len(a.pair_metrics) == 3


def test_same_label_different_rooms_stay_apart(views: dict[str, np.ndarray], feats: dict[str, PhotoFeatures]) -> None:
    spec = [(k, "bedroom", False, 1.0) for k in ("a1", "a2", "b1", "b2")]
    clusters = _cluster(views, feats, spec)
    assert _groups(clusters) == {frozenset({"a1", "a2"}), frozenset({"b1", "b2"})}
    assert all(c.room_type == "bedroom" for c in clusters)


def test_different_labels_never_merge_even_through_a_chain(
    views: dict[str, np.ndarray], feats: dict[str, PhotoFeatures]
) -> None:
    spec = [("a1", "kitchen", False, 1.0), ("a2", "Bedroom", False, 1.0), ("a3", None, False, 1.0)]
    clusters = _cluster(views, feats, spec)
    groups = _groups(clusters)
    assert len(groups) == 2
    assert not any({"a1", "a2"} <= g for g in groups)
    # An exterior flag is a hard constraint too.
    spec = [("a1", None, True, 1.0), ("a2", None, False, 1.0)]
    assert len(_cluster(views, feats, spec)) == 2


def test_weak_labels_only_vote(views: dict[str, np.ndarray], feats: dict[str, PhotoFeatures]) -> None:
    spec = [("a1", "kitchen", False, 0.4), ("a2", "bedroom", False, 0.3), ("a3", "kitchen", False, 0.5)]
    clusters = _cluster(views, feats, spec)
    assert len(clusters) == 1 and clusters[0].room_type == "kitchen"


def test_shared_watermark_does_not_merge_different_rooms(views: dict[str, np.ndarray]) -> None:
    photos = [
        ClusterInput("b1", _watermark(views["b1"])),
        ClusterInput("c1", _watermark(views["c1"])),
        ClusterInput("a1", _watermark(views["a1"])),
        ClusterInput("a2", _watermark(views["a2"])),
    ]
    clusters = cluster_rooms(photos)
    assert _groups(clusters) == {frozenset({"a1", "a2"}), frozenset({"b1"}), frozenset({"c1"})}


def test_choose_hero() -> None:
    cluster = RoomCluster(
        room_type="kitchen",
        member_ids=["x", "y", "z"],
        centrality={"x": 0.2, "y": 0.5, "z": 0.3},
        member_pixels={"x": 2_000_000, "y": 2_000_000, "z": 12_000_000},
    )
    assert choose_hero(cluster, {"x": 0.9, "y": 0.5, "z": 0.6}) == "x"
    # Within the tie tolerance: more pixels first, then centrality.
    assert choose_hero(cluster, {"x": 0.7, "y": 0.7, "z": 0.69}) == "z"
    assert choose_hero(cluster, {"x": 0.7, "y": 0.7, "z": 0.1}) == "y"
    q = QualityScores(
        sharpness=1,
        exposure=1,
        tilt_score=1,
        tilt_degrees=0,
        composition=1,
        base_score=0.95,
        clipped_highlights=0,
        clipped_shadows=0,
    )
    assert choose_hero(cluster, {"y": q}) == "y"
    assert choose_hero(RoomCluster("other", ["only"]), {}) == "only"


# --- viewport geometry ------------------------------------------------------------------------------------


def test_viewport_rect_stays_inside_and_keeps_aspect() -> None:
    rng = np.random.default_rng(0)
    for _ in range(500):
        w, h = int(rng.integers(50, 5000)), int(rng.integers(50, 5000))
        aspect = float(rng.choice([16 / 9, 9 / 16, 1.0, 4 / 5, 2.35]))
        cx, cy = (float(v) for v in rng.uniform(-0.5, 1.5, 2))
        vp = Viewport(cx, cy, float(rng.uniform(0.3, 4.0)))
        x0, y0, rw, rh = viewport_rect(vp, w, h, aspect)
        assert x0 >= 0 and y0 >= 0 and x0 + rw <= w * (1 + 1e-9) and y0 + rh <= h * (1 + 1e-9)
        assert rw / rh == pytest.approx(aspect, rel=1e-9)
        # The zoom-1 window touches two opposite edges of the photo.
        z = max(1.0, vp.zoom)
        assert max(rw / w, rh / h) == pytest.approx(1.0 / z, rel=1e-9)
        clamped = clamp_viewport(vp, w / h, aspect)
        assert viewport_rect(clamped, w, h, aspect) == pytest.approx((x0, y0, rw, rh), rel=1e-9, abs=1e-6)
        assert viewport_rect(clamped, w, h, aspect)[0] == pytest.approx(clamped.cx * w - rw / 2, abs=1e-6)


def test_viewport_rect_exact_values() -> None:
    # 4:3 photo in a 16:9 output: full width, 1000 x 562.5 window at zoom 1, centred.
    assert viewport_rect(Viewport(0.5, 0.5, 1.0), 1000, 750, 16 / 9) == pytest.approx((0, 93.75, 1000, 562.5))
    # Zoom 2 on the top-left corner clamps to the corner.
    assert viewport_rect(Viewport(0.0, 0.0, 2.0), 1000, 750, 16 / 9) == pytest.approx((0, 0, 500, 281.25))


# --- motion planning ----------------------------------------------------------------------------------------


def _photo_with_subject(w: int, h: int, at: tuple[float, float], seed: int = 0) -> np.ndarray:
    """A soft textured background with one bright, busy object at normalised position `at`."""
    rng = np.random.default_rng(seed)
    img = cv2.resize(rng.integers(90, 140, (4, 4, 3)).astype(np.uint8), (w, h), interpolation=cv2.INTER_CUBIC)
    cx, cy, r = int(at[0] * w), int(at[1] * h), int(0.08 * min(w, h))
    cv2.circle(img, (cx, cy), r, (230, 40, 30), -1)
    for k in range(6):
        cv2.circle(img, (cx, cy), max(2, r - k * r // 6), (255, 255, 255) if k % 2 else (20, 20, 120), 2)
    return img


def _inside(plan: MotionPlan, w: int, h: int, aspect: float = 16 / 9) -> bool:
    for vp in (plan.start, plan.end):
        if clamp_viewport(vp, w / h, aspect) != vp:
            return False
        x0, y0, rw, rh = viewport_rect(vp, w, h, aspect)
        if x0 < 0 or y0 < 0 or x0 + rw > w + 1e-6 or y0 + rh > h + 1e-6:
            return False
    return True


def test_saliency_finds_the_subject() -> None:
    img = _photo_with_subject(900, 600, (0.75, 0.35))
    smap = saliency_map(img)
    assert smap.dtype == np.float32 and smap.max() <= 1.0 and smap.min() >= 0.0
    assert smap.shape[1] == 256 and abs(smap.shape[0] - 171) <= 1
    region = salient_region(smap)
    assert abs(region.x - 0.75) < 0.12 and abs(region.y - 0.35) < 0.12


def test_portrait_photo_tilts() -> None:
    img = _photo_with_subject(1200, 1800, (0.5, 0.2))
    plan = plan_motion(img, is_exterior=False, quality=None)
    assert plan.motion_type == MotionType.TILT_UP
    assert plan.end.cy < plan.start.cy and plan.start.zoom == plan.end.zoom == 1.0
    assert _inside(plan, 1200, 1800)


def test_wide_panorama_pans_toward_subject() -> None:
    img = _photo_with_subject(4000, 1000, (0.85, 0.5))
    plan = plan_motion(img, is_exterior=True, quality=None)
    assert plan.motion_type == MotionType.PAN_RIGHT and plan.end.cx > plan.start.cx
    assert plan.recommended_duration > 4.0 and _inside(plan, 4000, 1000)
    left = plan_motion(_photo_with_subject(4000, 1000, (0.1, 0.5)), is_exterior=False, quality=None)
    assert left.motion_type == MotionType.PAN_LEFT and left.end.cx < left.start.cx


def test_large_interior_pushes_in_toward_subject() -> None:
    img = _photo_with_subject(4000, 2250, (0.7, 0.4))
    plan = plan_motion(img, is_exterior=False, quality=None)
    assert plan.motion_type == MotionType.PUSH_IN
    assert plan.start.zoom == 1.0 and 1.15 <= plan.end.zoom <= 1.6
    assert plan.end.cx > 0.55 and plan.end.cy < 0.5
    assert MotionType.PUSH_IN in plan.allowed and MotionType.DRIFT in plan.allowed
    assert _inside(plan, 4000, 2250)


def test_low_resolution_limits_zoom() -> None:
    assert max_zoom_for(640, 480) == pytest.approx(1.05)
    assert max_zoom_for(6000, 4000) == pytest.approx(1.6)
    assert 1.05 < max_zoom_for(1800, 1200) < 1.6
    img = _photo_with_subject(640, 480, (0.6, 0.5))
    plan = plan_motion(img, is_exterior=False, quality=None)
    assert plan.motion_type == MotionType.DRIFT and plan.end.zoom <= 1.05 + 1e-9
    assert MotionType.PUSH_IN not in plan.allowed and _inside(plan, 640, 480)
    # Planned on a thumbnail of a large photo: the zoom limit follows the real size.
    thumb = plan_motion(img, is_exterior=False, quality=None, source_size=(4000, 3000))
    assert thumb.motion_type == MotionType.PUSH_IN and thumb.end.zoom > 1.15
    with pytest.raises(ValueError):
        plan_motion(img, is_exterior=False, quality=None, source_size=(4000, 1000))


def test_weak_photo_drifts_and_exterior_pushes_or_pulls() -> None:
    img = _photo_with_subject(4000, 2250, (0.5, 0.5))
    weak = QualityScores(
        sharpness=0.2,
        exposure=0.8,
        tilt_score=1,
        tilt_degrees=0,
        composition=0.7,
        base_score=0.5,
        clipped_highlights=0,
        clipped_shadows=0,
    )
    plan = plan_motion(img, is_exterior=False, quality=weak)
    assert plan.motion_type == MotionType.DRIFT and plan.easing == Easing.LINEAR
    kinds = {plan_motion(img, is_exterior=True, quality=None, seed=s).motion_type for s in range(12)}
    assert kinds == {MotionType.PUSH_IN, MotionType.PULL_OUT}


def test_plans_are_deterministic_and_serialisable() -> None:
    img = _photo_with_subject(3000, 2000, (0.3, 0.6))
    a = plan_motion(img, is_exterior=False, quality=None, seed=7)
    b = plan_motion(img, is_exterior=False, quality=None, seed=7)
    assert a == b and a.rationale
    again = MotionPlan.from_dict(a.to_dict())
    assert again.motion_type == a.motion_type and math.isclose(again.end.zoom, a.end.zoom, abs_tol=1e-4)
    hero = plan_motion(img, is_exterior=False, quality=None, seed=7, is_hero=True)
    assert hero.recommended_duration == pytest.approx(a.recommended_duration + 1.0)


def test_vertical_output_pans_across_landscape_photo() -> None:
    img = _photo_with_subject(1600, 1200, (0.8, 0.5))
    plan = plan_motion(img, output_aspect=9 / 16, is_exterior=False, quality=None)
    assert plan.motion_type == MotionType.PAN_RIGHT and _inside(plan, 1600, 1200, 9 / 16)


def test_weak_pairs_need_corroboration_between_groups(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two multi-photo groups joined by one barely verified pair stay apart, unless the labels agree
    or the link is corroborated by pairs involving two photos on each side."""
    import app.media.clustering as clustering

    def edges(weak: dict[frozenset[str], int]) -> dict[frozenset[str], int]:
        strong = {frozenset({"a1", "a2"}): 200, frozenset({"l1", "l2"}): 150, frozenset({"l2", "l3"}): 120}
        return {**strong, **weak}

    def install(table: dict[frozenset[str], int]) -> None:
        def fake_match(fa: PhotoFeatures, fb: PhotoFeatures) -> clustering.PairMetrics:
            inliers = table.get(frozenset({str(fa.id), str(fb.id)}), 0)
            return clustering.PairMetrics(
                a=fa.id,
                b=fb.id,
                matches=max(inliers, 1) * 2,
                inliers=inliers,
                inlier_ratio=0.5,
                coverage=0.3,
                model="fundamental",
                verified=inliers >= 14,
            )

        monkeypatch.setattr(clustering, "match_pair", fake_match)

    ids = ["a1", "a2", "l1", "l2", "l3", "s"]
    dummy = np.zeros((8, 8, 3), np.uint8)

    def run(labels: dict[str, str] | None = None) -> set[frozenset[str]]:
        photos = [ClusterInput(i, dummy, (labels or {}).get(i)) for i in ids]
        feats = [
            PhotoFeatures(
                i, np.zeros((0, 2), np.float32), np.zeros((0, 128), np.float32), np.zeros(144, np.float32), (8, 8), 64
            )
            for i in ids
        ]
        return _groups(cluster_rooms(photos, features=feats))

    install(edges({frozenset({"a1", "l2"}): 15, frozenset({"a2", "l2"}): 14, frozenset({"s", "a1"}): 15}))
    assert run() == {frozenset({"a1", "a2", "s"}), frozenset({"l1", "l2", "l3"})}
    assert run(dict.fromkeys(ids, "bedroom")) == {frozenset(ids)}
    install(edges({frozenset({"a1", "l2"}): 15, frozenset({"a2", "l3"}): 14}))
    assert run() == {frozenset({"a1", "a2", "l1", "l2", "l3"}), frozenset({"s"})}
    install(edges({frozenset({"a1", "l2"}): 25}))  # one decisive pair is enough
    assert run() == {frozenset({"a1", "a2", "l1", "l2", "l3"}), frozenset({"s"})}
