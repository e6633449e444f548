"""Watermarks, banners and logos never merge two rooms; OCR finds text; the pair prefilter keeps true pairs.

Everything runs on rooms rendered by `app.samples` (views of one room are related by real perspective,
different rooms share only their style) and on the real PP-OCR models shipped with rapidocr.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence

import cv2
import numpy as np
import pytest

import app.media.clustering as clustering
from app.media.clustering import ClusterInput, PairMetrics, PhotoFeatures, cluster_rooms, extract_features
from app.media.images import load_photo
from app.media.text_regions import TextReader, TextRegion, detect_text_regions, mask_for, ocr_scale
from app.samples import make_sample_listing

W, H = 640, 427
BANNER_TEXT = "(c) 2026 Example MLS  555-867-5309"


@pytest.fixture(scope="module")
def rooms(tmp_path_factory: pytest.TempPathFactory) -> dict[str, np.ndarray]:
    """Every view of a small rendered listing, by file stem ("kitchen_view1", ...)."""
    listing = make_sample_listing(
        tmp_path_factory.mktemp("listing"),
        width=W,
        height=H,
        rooms=["living_room", "kitchen", "bedroom_a", "bedroom_b", "bathroom", "exterior", "outdoor"],
        workers=1,
        music_seconds=4.0,
    )
    return {p.stem: load_photo(p).rgb for p in listing.photo_paths}


@pytest.fixture(scope="module")
def reader() -> TextReader:
    pytest.importorskip("rapidocr_onnxruntime")
    from app.models.ocr import load_text_reader

    return load_text_reader(threads=2)


def _stamp(rgb: np.ndarray) -> np.ndarray:
    """The MLS treatment: a compact logo without letters in the top-right corner and a black banner
    with a copyright line and a phone number along the bottom, identical on every photo."""
    out = rgb.copy()
    h, w = out.shape[:2]
    x0, y0 = w - 110, 10
    cv2.rectangle(out, (x0, y0), (x0 + 100, y0 + 60), (20, 40, 120), -1)
    cv2.fillPoly(
        out, [np.array([[x0 + 15, y0 + 35], [x0 + 50, y0 + 8], [x0 + 85, y0 + 35]], np.int32)], (255, 255, 255)
    )
    cv2.rectangle(out, (x0 + 25, y0 + 35), (x0 + 75, y0 + 55), (255, 255, 255), -1)
    cv2.rectangle(out, (x0 + 42, y0 + 42), (x0 + 58, y0 + 55), (20, 40, 120), -1)
    cv2.rectangle(out, (0, h - 34), (w, h), (0, 0, 0), -1)
    cv2.putText(out, BANNER_TEXT, (10, h - 10), cv2.FONT_HERSHEY_SIMPLEX, 0.75, (255, 255, 255), 2, cv2.LINE_AA)
    return out


def _groups(clusters: Sequence[clustering.RoomCluster]) -> set[frozenset[str]]:
    return {frozenset(str(m) for m in c.member_ids) for c in clusters}


def _merged(clusters: Sequence[clustering.RoomCluster]) -> list[frozenset[str]]:
    return [g for g in _groups(clusters) if len(g) > 1]


DIFFERENT_ROOMS = ("living_room_view1", "kitchen_view1", "bedroom_a_view1", "bedroom_b_view1", "bathroom_view1")


@pytest.fixture(scope="module")
def stamped(rooms: dict[str, np.ndarray], reader: TextReader) -> dict[str, tuple[np.ndarray, list[TextRegion]]]:
    out = {}
    for name in DIFFERENT_ROOMS:
        rgb = _stamp(rooms[name])
        out[name] = (rgb, detect_text_regions(rgb, reader))
    return out


# --- OCR -----------------------------------------------------------------------------------------------


def test_ocr_finds_rendered_text_and_its_box(reader: TextReader) -> None:
    rng = np.random.default_rng(3)
    img = cv2.resize(rng.integers(90, 170, (6, 9, 3)).astype(np.uint8), (W, H), interpolation=cv2.INTER_CUBIC)
    cv2.putText(img, "EXAMPLE MLS 555-0123", (120, 300), cv2.FONT_HERSHEY_SIMPLEX, 1.0, (255, 255, 255), 2, cv2.LINE_AA)
    (tw, th), _ = cv2.getTextSize("EXAMPLE MLS 555-0123", cv2.FONT_HERSHEY_SIMPLEX, 1.0, 2)
    truth = (120 / W, (300 - th) / H, (120 + tw) / W, 300 / H)

    regions = detect_text_regions(img, reader)

    hits = [r for r in regions if "MLS" in re.sub(r"\s", "", r.text).upper()]
    assert len(hits) == 1, [r.text for r in regions]
    r = hits[0]
    assert "555" in r.text and r.kind == "text" and r.score > 0.8
    ix = min(r.box[2], truth[2]) - max(r.box[0], truth[0])
    iy = min(r.box[3], truth[3]) - max(r.box[1], truth[1])
    inter = max(ix, 0.0) * max(iy, 0.0)
    union = r.area + (truth[2] - truth[0]) * (truth[3] - truth[1]) - inter
    assert inter / union > 0.5, (r.box, truth)
    assert all(0 <= x <= W and 0 <= y <= H for x, y in r.polygon)
    # The mask covers the text strokes and little else.
    mask = mask_for(regions, (W, H))
    strokes = (img.min(axis=2) > 235) & (np.arange(H)[:, None] > 250)
    assert mask[strokes].all() and mask.mean() < 0.1
    assert TextRegion.from_dict(r.to_dict()).box == pytest.approx(r.box, abs=1e-4)


def test_ocr_scale_upscales_small_photos_and_caps_large_ones() -> None:
    assert ocr_scale(720, 480) == pytest.approx(736 / 480)
    assert ocr_scale(4000, 3000) == pytest.approx(736 / 3000)  # a phone photo: downscaled to 981 x 736
    assert ocr_scale(8000, 1000) == pytest.approx(1600 / 8000)  # a panorama: the long side is capped


def test_ocr_reads_the_banner_but_not_the_room(stamped: dict[str, tuple[np.ndarray, list[TextRegion]]]) -> None:
    for _rgb, regions in stamped.values():
        banner = [r for r in regions if r.box[1] > 0.85]
        assert banner and any("MLS" in r.text.upper() for r in banner), [r.text for r in regions]
        assert all(r.box[1] > 0.8 or r.box[0] > 0.75 for r in regions), [(r.text, r.box) for r in regions]


# --- logos and banners never merge rooms -------------------------------------------------------------


def test_stamped_logo_and_banner_do_not_merge_different_rooms(
    stamped: dict[str, tuple[np.ndarray, list[TextRegion]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    masked = [ClusterInput(k, rgb, text_regions=tuple(regs)) for k, (rgb, regs) in stamped.items()]
    bare = [ClusterInput(k, rgb) for k, (rgb, _) in stamped.items()]
    # Both defences on: nothing merges, with or without the OCR masks.
    assert _merged(cluster_rooms(masked)) == []
    assert _merged(cluster_rooms(bare)) == []
    # Without the appearance check (the rule before issue 10: a spread-out group of matches sharing
    # one translation was a near-duplicate) the shared overlays merge every room into one...
    monkeypatch.setattr(clustering, "_same_picture", lambda fa, fb, shift: True)
    assert _merged(cluster_rooms(bare)) == [frozenset(DIFFERENT_ROOMS)]
    # ...and the OCR masks alone are enough to keep them apart.
    assert _merged(cluster_rooms(masked)) == []


def test_masked_keypoints_are_gone(rooms: dict[str, np.ndarray]) -> None:
    rgb = rooms["kitchen_view1"]
    left = TextRegion(box=(0.0, 0.0, 0.5, 1.0), polygon=(), text="x", score=1.0)
    plain = extract_features(ClusterInput("k", rgb))
    masked = extract_features(ClusterInput("k", rgb, text_regions=(left,)))
    w = masked.size[0]
    assert (plain.points[:, 0] < 0.5 * w).sum() > 100
    assert (masked.points[:, 0] < 0.5 * w + 0.015 * w).sum() == 0
    assert len(masked.points) > 300 and masked.masked_area == pytest.approx(0.515, abs=0.01)


def test_watermarked_views_of_one_room_still_merge(rooms: dict[str, np.ndarray], reader: TextReader) -> None:
    photos = []
    for name in ("kitchen_view1", "kitchen_view2", "living_room_view1"):
        rgb = _stamp(rooms[name])
        photos.append(ClusterInput(name, rgb, text_regions=tuple(detect_text_regions(rgb, reader))))
    assert _merged(cluster_rooms(photos)) == [frozenset({"kitchen_view1", "kitchen_view2"})]


def test_stamped_logo_without_letters_is_found_as_a_logo_region(
    stamped: dict[str, tuple[np.ndarray, list[TextRegion]]], all_feats: list[PhotoFeatures]
) -> None:
    feats = [extract_features(ClusterInput(k, rgb, text_regions=tuple(regs))) for k, (rgb, regs) in stamped.items()]
    logos = clustering.find_stamped_logos(feats)
    assert set(logos) == set(DIFFERENT_ROOMS)
    for regions in logos.values():
        assert len(regions) == 1  # the banner is masked as text already; the logo is what is left
        r = regions[0]
        assert r.kind == "logo" and r.score == 1.0
        # The mark is drawn at x = W-110..W-10, y = 10..70; keypoints sit on its inner edges.
        assert (W - 115) / W <= r.box[0] < r.box[2] <= (W - 5) / W and 5 / H <= r.box[1] < r.box[3] <= 75 / H
    assert clustering.find_stamped_logos(all_feats) == {}  # views of rooms without stamps: none


# --- portrait views ----------------------------------------------------------------------------------


def test_portrait_crop_and_rotated_camera_shot_join_their_landscape_siblings(rooms: dict[str, np.ndarray]) -> None:
    land = rooms["living_room_view2"]
    crop_w = round(H * 9 / 16)
    x0 = (W - crop_w) // 2
    crop = cv2.resize(land[:, x0 : x0 + crop_w], (360, 640), interpolation=cv2.INTER_CUBIC)  # a 9:16 export
    assert rooms["bathroom_view2"].shape[0] > rooms["bathroom_view2"].shape[1]  # the renderer's portrait shot
    names = ["living_room_view2", "kitchen_view1", "bathroom_view1", "bedroom_a_view1", "bathroom_view2"]
    photos = [ClusterInput(n, rooms[n]) for n in names] + [ClusterInput("crop", crop)]
    groups = _groups(cluster_rooms(photos))
    assert frozenset({"living_room_view2", "crop"}) in groups
    assert frozenset({"bathroom_view1", "bathroom_view2"}) in groups


# --- candidate prefilter -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def all_views(rooms: dict[str, np.ndarray]) -> list[ClusterInput]:
    return [ClusterInput(name, rgb) for name, rgb in sorted(rooms.items())]


@pytest.fixture(scope="module")
def all_feats(all_views: list[ClusterInput]) -> list[PhotoFeatures]:
    return [extract_features(p) for p in all_views]


def _counting(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    seen: list[tuple[str, str]] = []
    real = clustering.match_pair

    def counted(fa: PhotoFeatures, fb: PhotoFeatures) -> PairMetrics:
        seen.append((str(fa.id), str(fb.id)))
        return real(fa, fb)

    monkeypatch.setattr(clustering, "match_pair", counted)
    return seen


def test_prefilter_keeps_every_true_pair(
    all_views: list[ClusterInput], all_feats: list[PhotoFeatures], monkeypatch: pytest.MonkeyPatch
) -> None:
    n = len(all_views)
    assert n > clustering._PREFILTER_MIN_PHOTOS
    seen = _counting(monkeypatch)
    with_prefilter = _groups(cluster_rooms(all_views, features=all_feats))
    matched = set(map(frozenset, seen))
    assert len(matched) < n * (n - 1) // 2 * 0.75  # the prefilter really cut pairs
    for a, b in itertools.combinations([p.id for p in all_views], 2):
        if str(a).split("_view")[0] == str(b).split("_view")[0]:
            assert frozenset({a, b}) in matched, (a, b)  # every pair of views of one room is matched
    # The ranking alone (no "sure" pairs) keeps them too.
    monkeypatch.setattr(clustering, "_SURE_COARSE_MATCHES", 10_000)
    seen.clear()
    assert _groups(cluster_rooms(all_views, features=all_feats)) == with_prefilter
    for a, b in itertools.combinations([p.id for p in all_views], 2):
        if str(a).split("_view")[0] == str(b).split("_view")[0]:
            assert frozenset({a, b}) in set(map(frozenset, seen)), (a, b)
    monkeypatch.setattr(clustering, "_PREFILTER_MIN_PHOTOS", 10_000)
    assert _groups(cluster_rooms(all_views, features=all_feats)) == with_prefilter
    assert frozenset({"kitchen_view1", "kitchen_view2", "kitchen_view3"}) in with_prefilter


def test_embedding_when_given_ranks_the_candidates(monkeypatch: pytest.MonkeyPatch) -> None:
    """With embeddings, a pair is matched only if the embeddings make its photos neighbours."""
    rng = np.random.default_rng(5)
    n = 16
    basis = np.linalg.qr(rng.normal(size=(n, n)))[0]
    tiny = np.zeros((64, 64, 3), np.uint8)
    # Photo 0's embedding is orthogonal to everything, photo 1's is close to photo 2's.
    embeddings = [basis[k] for k in range(n)]
    embeddings[1] = basis[2] + 0.05 * basis[1]
    photos = [ClusterInput(f"p{k}", tiny, embedding=embeddings[k] * 3.0) for k in range(n)]
    feats = [extract_features(p) for p in photos]
    assert feats[1].embedding is not None and float(np.linalg.norm(feats[1].embedding)) == pytest.approx(1.0)
    pairs = {frozenset(p) for p in clustering._candidate_pairs(feats, list(itertools.combinations(range(n), 2)))}
    assert frozenset({1, 2}) in pairs
    assert len(pairs) <= n * clustering._PREFILTER_NEIGHBOURS
    # Every photo keeps its best partners; the orthogonal ones are ranked by index, so photo 15's
    # partners are among the lowest indices and not all others.
    assert sum(1 for p in pairs if 15 in p) < n - 1
    seen = _counting(monkeypatch)
    cluster_rooms(photos, features=feats)
    assert {frozenset((int(a[1:]), int(b[1:]))) for a, b in seen} == pairs
    with pytest.raises(ValueError):
        extract_features(ClusterInput("z", tiny, embedding=np.zeros(8)))
