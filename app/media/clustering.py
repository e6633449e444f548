"""Group photos that show the same room, so the video treats a room once and picks its best view.

Why geometry and not just "looks similar": two bedrooms of one house share paint, flooring and
furniture style, and every kitchen in a subdivision looks alike, so appearance alone merges rooms
that are different. Two photos of the *same* room share physical points: local features (SIFT)
match between them, and the matches agree with one two-view geometry (a fundamental matrix; a
homography when the camera only rotated or the scene is a wall). That is checked with RANSAC at a
tight threshold, with inlier counts calibrated against the chance level, and the inliers must be
spread over a real part of both images.

Overlays (issue 10). MLS exports stamp the same watermark, logo or "(c) ... MLS" banner on every
photo; two photos of different rooms then share perfect matches. Three defences, each enough on the
synthetic test (`tests/test_clustering_text.py`):
* text regions (`ClusterInput.text_regions`, from PP-OCR, `app.media.text_regions`) are masked out
  before SIFT runs, padded by `_TEXT_MASK_PAD`;
* logos without letters: `find_stamped_logos` finds marks stamped at the same place on photos of the
  job (an "anchored" one-translation group of coarse matches, seen with >= 2 partner photos) and
  their keypoints are dropped before matching;
* per pair, a group of matches sharing one translation that is anchored is a near-duplicate only if
  the two pictures agree everywhere they overlap (`_same_picture`, grid NCC); otherwise it is an
  overlay and removed. Before, a spread-out group was taken for a near-duplicate: a bottom banner
  plus a top-corner logo spans a third of the frame, and that merged different rooms.

Pipeline: per photo, once (O(n)): downscale to `WORK_SIDE`, CLAHE, SIFT keypoints outside text
regions (strongest first) with RootSIFT descriptors, an HSV histogram, a grey thumbnail. Per pair,
coarse (O(n^2) but ~0.5 ms): mutual ratio matches of the 256 strongest keypoints, which give the
candidate score and the stamped-logo boxes. Full match (~10-25 ms) only for candidate pairs: jobs of
more than 12 photos match each photo's 8 best partners by coarse score (or by embedding cosine
when every photo has one) plus every pair with >= 40 coarse matches; then mutual nearest neighbours
+ Lowe's ratio test via one matrix product, overlay removal, RANSAC verification. Then constrained
union-find over the verified pairs, strongest first (see `cluster_rooms`): a merge that would put
two different labels (or an exterior and an interior) in one cluster is refused, whatever the chain
of pairs, and weak pairs need corroboration to join two groups. Photos without a verified partner
stay singletons. The appearance histogram is reported per pair for debugging but never merges
anything on its own.

Measured on real photos (`scripts/eval_clusters.py`; 64 dev listings of four different rooms, 16
phone views of one bedroom from two corners; 2 shared, loaded cores):
* no false merge inside any listing (383 pairs of different rooms, unlabelled and with the exterior
  flag; before too), none in six 40-photo pools of 10 listings (before: 1, two rooms sharing the
  CReN logo, a 14-inlier fundamental matrix on the logo's matches); all 32,639 cross-listing pairs
  matched: 7 verified, 6 of them the same room filed in two listings, 1 a chance-level 15-inlier
  pair (before: the same 6 + the CReN pair);
* the bedroom: 8 + 6 + 2 photos, same-corner pair recall 0.79, alone and pooled with 24 MLS photos
  (unchanged); the two corners share almost no surface, so they are never linked;
* coarse scores of different rooms: median 9, 99.9th percentile 22, max 25 (32,639 pairs); views
  of one room: 10-82. A 40-photo job matches ~220 of its 780 pairs: 0.12 CPU-s per photo for
  features + clustering (before: every pair, 0.22-0.47 s per photo wall clock on the same machine);
* stamped logos found without OCR on 49 of 256 listing photos (53 regions), every one on a
  watermark the OCR reads too; none on the bedroom or on rendered rooms without stamps.

Labels: a label with `label_confidence >= min_label_confidence` (default 0.7) is a hard constraint;
weaker labels (the heuristic room guesses in `app.media.scene` are capped at 0.6) only vote for the
cluster's room type. `is_exterior` is always a hard constraint.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import cv2
import numpy as np

from app.media.images import resize_max
from app.media.text_regions import TextRegion, mask_for

__all__ = [
    "WORK_SIDE",
    "ClusterInput",
    "PairMetrics",
    "PhotoFeatures",
    "RoomCluster",
    "choose_hero",
    "cluster_rooms",
    "extract_features",
    "find_stamped_logos",
    "match_pair",
]

PhotoId = Hashable
Tier = Literal["low", "medium", "high"]

#: Long side of the copy features are extracted from. 640 px keeps SIFT at ~0.1 s per photo and
#: loses little: room-scale overlaps are matched on furniture-scale structure, not fine texture.
WORK_SIDE = 640
#: SIFT keypoints kept per photo (strongest first). 1500 verifies ~40 % more pairs of wide-baseline
#: views but costs 2.2x per pair (the descriptor product is quadratic); chains of pairs recover
#: most of what 1000 misses (see the module report).
_MAX_FEATURES = 1000
#: Lowe's ratio test on descriptor distances (with a mutual-nearest-neighbour check).
_RATIO = 0.85
#: RANSAC thresholds in working-copy pixels: fundamental matrix (point-to-epipolar-line distance)
#: and homography (reprojection error).
_F_THRESHOLD = 0.75
_H_THRESHOLD = 2.0
#: Verification. Calibrated on 660 pairs of different rooms and 56 pairs of views of one room
#: (see the module report): with 20-70 tentative matches, a RANSAC fundamental matrix on unrelated
#: photos keeps at most 12 inliers (7-point model, weak 1-D constraint), a homography at most 7.
#: So a pair is verified by a fundamental matrix with >= max(14, 8 + 0.1 * matches) inliers, or a
#: homography with >= 10; the n-dependent term keeps the chance level covered for larger match sets.
_F_MIN_INLIERS = 14
_F_INLIERS_PER_MATCH = 0.1
_H_MIN_INLIERS = 10
#: Below this many tentative matches no model can be verified.
_MIN_MATCHES = 10
#: The inliers must cover at least this fraction of *both* images (convex hull).
_MIN_COVERAGE = 0.04
#: Matches whose displacements differ by less than this many pixels share "one translation"; at
#: least `_OVERLAY_MIN` of them form a candidate overlay (watermark) or near-duplicate.
_SAME_SHIFT_PX = 2.0
_OVERLAY_MIN = 5
#: Overlay groups removed per pair at most (a banner, a corner logo, a date stamp).
_OVERLAY_PASSES = 3
#: Near-duplicate check (`_same_picture`) on thumbnails at 1/`_THUMB_DIV` of the working copy:
#: a `_DUP_GRID`^2 grid over the overlap, cells with texture (grey std >= `_DUP_MIN_STD`) agree at
#: NCC >= `_DUP_MIN_NCC`; at least `_DUP_AGREE` of them (and `_DUP_MIN_CELLS`) must agree. Measured on
#: the dev listings: the 6 near-duplicate pairs (one picture in two folders or two listings) agree in
#: 36 of 36 cells; 396 pairs of different rooms with an anchored one-translation group (watermarks)
#: in fewer than 30 % (90th percentile: 0 cells).
_THUMB_DIV = 4
_DUP_GRID = 6
_DUP_MIN_STD = 4.0
_DUP_MIN_NCC = 0.8
_DUP_AGREE = 0.7
_DUP_MIN_CELLS = 4
#: Padding of the text/logo mask, as a fraction of the working copy's long side (10 px at 640):
#: a SIFT descriptor's support reaches ~6 sigma beyond its keypoint.
_TEXT_MASK_PAD = 0.015
#: A verified pair with at least this many inliers merges two components on its own; weaker
#: verified pairs (14-19 inliers, near the chance level of ~12) need corroboration, see `cluster_rooms`.
_DECISIVE_INLIERS = 20
#: Candidate prefilter (`_candidate_pairs`): jobs of up to `_PREFILTER_MIN_PHOTOS` photos match every
#: pair; larger ones match each photo's `_PREFILTER_NEIGHBOURS` best partners and every pair at the
#: "sure" level, scored by coarse matches between the `_COARSE_KEYPOINTS` strongest keypoints (or by
#: embedding cosine).
_PREFILTER_MIN_PHOTOS = 12
_PREFILTER_NEIGHBOURS = 8
_COARSE_KEYPOINTS = 256
_SURE_COARSE_MATCHES = 40
_SURE_COSINE = 0.9
#: Stamped logos (`find_stamped_logos`): an overlay group of coarse matches confined to at most this
#: fraction of the photo, seen with at least `_LOGO_MIN_PARTNERS` other photos.
_LOGO_MAX_AREA = 0.05
_LOGO_MIN_PARTNERS = 2
_LOGO_MIN_POINTS = 3
#: Spatial clusters of an overlay group: points within this fraction of the long side are linked.
_LOGO_LINK = 0.08
#: A translation "keeps a point at the same place" of both frames within this many working pixels.
_ANCHOR_PX = 3.0
#: "Strong" overlap (for the high tier and structure-from-motion eligibility).
_STRONG_INLIERS = 30
_STRONG_RATIO = 0.3
#: Mean inlier ratio a cluster of >= 3 photos needs for the "high" tier.
_HIGH_TIER_OVERLAP = 0.3


@dataclass(frozen=True)
class ClusterInput:
    """One photo to cluster. `rgb` may be any size (it is downscaled inside); `label` is a room
    label (None = unknown) trusted as a hard constraint when `label_confidence` is high enough."""

    id: PhotoId
    rgb: np.ndarray
    label: str | None = None
    is_exterior: bool = False
    label_confidence: float = 1.0
    #: Watermarks, banners and logos (`app.media.text_regions.detect_text_regions`): no keypoint
    #: inside them (padded by `_TEXT_MASK_PAD`) takes part in matching.
    text_regions: Sequence[TextRegion] = ()
    #: A unit global image embedding (CLIP's), when the model exists: it ranks candidate pairs
    #: instead of the classical coarse matches (see `_candidate_pairs`).
    embedding: np.ndarray | None = None


@dataclass(frozen=True)
class PhotoFeatures:
    """What matching needs from one photo, computed once."""

    id: PhotoId
    points: np.ndarray  # (n, 2) float32 keypoint positions in working-copy pixels
    descriptors: np.ndarray  # (n, 128) float32 RootSIFT, unit L2 norm
    histogram: np.ndarray  # flattened, L1-normalised HSV histogram
    size: tuple[int, int]  # (width, height) of the working copy
    pixels: int  # width * height of the original photo
    #: Grey working copy at 1/`_THUMB_DIV` scale (uint8), for the near-duplicate check.
    thumbnail: np.ndarray | None = None
    #: The photo's unit embedding (copied from `ClusterInput.embedding`), or None.
    embedding: np.ndarray | None = None
    #: Fraction of the working copy masked out as text/logo (no keypoints there).
    masked_area: float = 0.0


@dataclass(frozen=True)
class PairMetrics:
    """Outcome of matching two photos (for thresholds, debugging and the storyboard)."""

    a: PhotoId
    b: PhotoId
    matches: int = 0  # tentative matches after mutual NN + ratio test
    inliers: int = 0  # RANSAC inliers of the best model
    inlier_ratio: float = 0.0  # inliers / matches
    coverage: float = 0.0  # min over the two images of the inliers' convex hull area fraction
    model: str = ""  # "fundamental" | "homography" | "translation" (near-duplicate) | ""
    appearance: float = 0.0  # HSV histogram intersection, 0..1
    verified: bool = False
    reason: str = ""  # why not verified: few_features | few_matches | no_model | few_inliers |
    #                             inliers_clustered ("" when verified)

    @property
    def strength(self) -> float:
        """Edge weight used to order merges: many inliers *and* a clean match set."""
        return self.inliers * self.inlier_ratio if self.verified else 0.0

    @property
    def strong(self) -> bool:
        return self.verified and self.inliers >= _STRONG_INLIERS and self.inlier_ratio >= _STRONG_RATIO

    def to_dict(self) -> dict[str, Any]:
        return {
            "a": self.a,
            "b": self.b,
            "matches": self.matches,
            "inliers": self.inliers,
            "inlier_ratio": round(self.inlier_ratio, 4),
            "coverage": round(self.coverage, 4),
            "model": self.model,
            "appearance": round(self.appearance, 4),
            "verified": self.verified,
            "reason": self.reason,
        }


@dataclass
class RoomCluster:
    """Photos of one room.

    `overlap_score`: mean inlier ratio of the verified pairs inside the cluster (0 for singletons).
    `confidence_tier`: "low" for a singleton, "high" for >= 3 photos with mean overlap >= 0.3,
    else "medium". `sfm_eligible`: at least 3 photos connected by strong pairs (>= 30 inliers at a
    ratio >= 0.3), i.e. worth a structure-from-motion / multi-view attempt in phase 2. `centrality`: per
    member, the share of the cluster's verified inliers it takes part in (the view that overlaps
    most with the others shows most of the room). `pair_metrics`: every matched pair inside the
    cluster, plus for singletons their best rejected candidates.
    """

    room_type: str
    member_ids: list[PhotoId]
    overlap_score: float = 0.0
    confidence_tier: Tier = "low"
    sfm_eligible: bool = False
    pair_metrics: list[dict[str, Any]] = field(default_factory=list)
    centrality: dict[PhotoId, float] = field(default_factory=dict)
    member_pixels: dict[PhotoId, int] = field(default_factory=dict)

    @property
    def image_count(self) -> int:
        return len(self.member_ids)

    def to_dict(self) -> dict[str, Any]:
        return {
            "room_type": self.room_type,
            "member_ids": list(self.member_ids),
            "overlap_score": round(self.overlap_score, 4),
            "confidence_tier": self.confidence_tier,
            "sfm_eligible": self.sfm_eligible,
            "image_count": self.image_count,
            "pair_metrics": self.pair_metrics,
            "centrality": {str(k): round(v, 4) for k, v in self.centrality.items()},
        }


# --- per-photo features ---------------------------------------------------------------------------


def extract_features(photo: ClusterInput, *, max_features: int = _MAX_FEATURES) -> PhotoFeatures:
    """SIFT keypoints (RootSIFT descriptors, strongest first) and an HSV histogram of one photo.

    SIFT rather than ORB: views of a room from different corners differ by large perspective and
    scale changes, where ORB's binary descriptors lose most matches. CLAHE first, so a dark and a
    bright exposure of the same room still produce comparable keypoints. Keypoints are detected
    outside `photo.text_regions` only (a watermark shared by two photos of different rooms matches
    perfectly; see `app.media.text_regions`), so the `max_features` budget goes to the room.
    """
    rgb = np.ascontiguousarray(photo.rgb)
    h0, w0 = rgb.shape[:2]
    small = resize_max(rgb, WORK_SIDE)
    h, w = small.shape[:2]
    grey = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)
    grey = cv2.createCLAHE(clipLimit=2.0, tileGridSize=(8, 8)).apply(grey)
    masked = mask_for(photo.text_regions, (w, h), pad=_TEXT_MASK_PAD) if photo.text_regions else None
    allowed = None if masked is None else np.where(masked, 0, 255).astype(np.uint8)
    sift = cv2.SIFT_create(nfeatures=max_features)  # type: ignore[attr-defined]  # missing from cv2 stubs
    keypoints, desc = sift.detectAndCompute(grey, allowed)
    if desc is None or len(keypoints) == 0:
        points = np.zeros((0, 2), np.float32)
        descriptors = np.zeros((0, 128), np.float32)
    else:
        order = np.argsort([-kp.response for kp in keypoints], kind="stable")
        points = np.array([keypoints[k].pt for k in order], np.float32).reshape(-1, 2)
        # RootSIFT (Arandjelovic & Zisserman 2012): Hellinger kernel, clearly better matching.
        d = desc[order].astype(np.float32)
        d /= d.sum(axis=1, keepdims=True) + 1e-7
        descriptors = np.sqrt(d).astype(np.float32)
    hsv = cv2.cvtColor(small, cv2.COLOR_RGB2HSV)
    hist = cv2.calcHist([hsv], [0, 1], None, [18, 8], [0, 180, 0, 256]).ravel()
    hist = (hist / max(float(hist.sum()), 1.0)).astype(np.float32)
    thumb = cv2.resize(grey, (max(w // _THUMB_DIV, 1), max(h // _THUMB_DIV, 1)), interpolation=cv2.INTER_AREA)
    return PhotoFeatures(
        id=photo.id,
        points=points,
        descriptors=descriptors,
        histogram=hist,
        size=(w, h),
        pixels=int(w0 * h0),
        thumbnail=thumb,
        embedding=_unit(photo.embedding),
        masked_area=float(masked.mean()) if masked is not None else 0.0,
    )


def _unit(vector: np.ndarray | None) -> np.ndarray | None:
    if vector is None:
        return None
    v = np.asarray(vector, np.float32).ravel()
    norm = float(np.linalg.norm(v))
    if not np.isfinite(norm) or norm == 0.0:
        raise ValueError("an embedding must be a finite, non-zero vector")
    return v / norm


# --- pair matching --------------------------------------------------------------------------------


def match_pair(fa: PhotoFeatures, fb: PhotoFeatures) -> PairMetrics:
    """Match two photos and verify the matches geometrically (see the module docstring)."""
    appearance = float(np.minimum(fa.histogram, fb.histogram).sum())
    base = PairMetrics(a=fa.id, b=fb.id, appearance=appearance)
    if len(fa.descriptors) < _MIN_MATCHES or len(fb.descriptors) < _MIN_MATCHES:
        return _replace(base, reason="few_features")
    ia, ib = _mutual_ratio_matches(fa.descriptors, fb.descriptors)
    pa, pb = _unique_matches(fa.points[ia], fb.points[ib])
    n = len(pa)
    if n < _MIN_MATCHES:
        return _replace(base, matches=n, reason="few_matches")
    duplicate, pa, pb = _strip_overlays(fa, fb, pa, pb)
    if duplicate is not None:
        return _replace(base, **duplicate)
    n = len(pa)
    if n < _MIN_MATCHES:
        return _replace(base, matches=n, reason="few_matches")

    scale = max(fa.size + fb.size) / WORK_SIDE
    f_in = _ransac_mask(lambda: cv2.findFundamentalMat(pa, pb, cv2.USAC_MAGSAC, _F_THRESHOLD * scale, 0.999, 2000))
    h_in = _ransac_mask(
        lambda: cv2.findHomography(pa, pb, cv2.USAC_MAGSAC, _H_THRESHOLD * scale, maxIters=2000, confidence=0.999)
    )
    f_count = int(f_in.sum()) if f_in is not None else 0
    h_count = int(h_in.sum()) if h_in is not None else 0
    f_ok = f_count >= max(_F_MIN_INLIERS, 8 + _F_INLIERS_PER_MATCH * n)
    h_ok = h_count >= _H_MIN_INLIERS
    # Candidates in order of preference: the homography first when it keeps most of the fundamental
    # matrix's inliers (rotation-only pair or a planar wall: the stricter model is more credible).
    candidates = [(f_in, f_count, f_ok, "fundamental"), (h_in, h_count, h_ok, "homography")]
    if (h_ok and h_count >= 0.8 * f_count) or (not f_ok and h_count > f_count):
        candidates.reverse()
    first: PairMetrics | None = None
    for mask, count, ok, model in candidates:
        if mask is None or count == 0:
            continue
        coverage = min(_hull_fraction(pa[mask], fa.size), _hull_fraction(pb[mask], fb.size))
        result = _replace(base, matches=n, inliers=count, inlier_ratio=count / n, coverage=coverage, model=model)
        if ok and coverage >= _MIN_COVERAGE:
            return _replace(result, verified=True, reason="")
        if first is None:
            first = _replace(result, reason="inliers_clustered" if ok else "few_inliers")
    return first if first is not None else _replace(base, matches=n, reason="no_model")


def _strip_overlays(
    fa: PhotoFeatures, fb: PhotoFeatures, pa: np.ndarray, pb: np.ndarray
) -> tuple[dict[str, Any] | None, np.ndarray, np.ndarray]:
    """Remove matches that share one translation but are not the same picture; or recognise a
    near-duplicate. Returns (the near-duplicate's metrics or None, remaining pa, remaining pb).

    Matches sharing one translation are either a near-duplicate shot (the two pictures agree
    everywhere they overlap once shifted) or an overlay: a watermark, logo, date stamp or banner
    stamped at the same place (or the same offset from a corner) on every photo of an MLS export.
    Overlays are dropped; left in, they also make the fundamental matrix degenerate (a planar set
    fits a whole family of F, which then absorbs random matches). The spread of the group is no
    test on its own: a "(c) MLS" banner along the bottom plus a logo in the top corner spans a third
    of the frame, and two different rooms sharing both were "near-duplicates" (the false merges of
    issue 10). So a group that sits at the same place of both frames (`_anchored`) is an overlay
    unless the two pictures agree everywhere (`_same_picture`); a spread-out group elsewhere is real
    shared motion (a wall under a sideways camera move) and stays for the geometric check; a group in
    a small area is an overlay either way (the rule before issue 10).
    """
    n = len(pa)
    for _ in range(_OVERLAY_PASSES):
        group = _common_translation(pa, pb)
        if group is None:
            break
        coverage = min(_hull_fraction(pa[group], fa.size), _hull_fraction(pb[group], fb.size))
        count = int(group.sum())
        shift = np.median(pb[group] - pa[group], axis=0)
        stamped = _anchored(shift, fa.size, fb.size) and not _same_picture(fa, fb, shift)
        if coverage >= _MIN_COVERAGE and not stamped:
            if count >= max(_F_MIN_INLIERS, 0.5 * n) and _same_picture(fa, fb, shift):
                metrics = {
                    "matches": n,
                    "inliers": count,
                    "inlier_ratio": count / n,
                    "coverage": coverage,
                    "model": "translation",
                    "verified": True,
                }
                return metrics, pa, pb
            break  # a real shared motion (a wall seen from a camera that slid sideways): geometry decides
        pa, pb = pa[~group], pb[~group]
    return None, pa, pb


def _same_picture(fa: PhotoFeatures, fb: PhotoFeatures, shift: np.ndarray) -> bool:
    """Do the two working copies agree, shifted by `shift` (b = a + shift), over most of their overlap?

    The overlap is cut into a `_DUP_GRID` x `_DUP_GRID` grid of cells on the thumbnails; a cell with
    texture in both (grey standard deviation >= `_DUP_MIN_STD`) agrees when its normalised cross-
    correlation is >= `_DUP_MIN_NCC`. A near-duplicate (the same shot re-encoded, re-exposed, or
    cropped) agrees in nearly every cell (NCC > 0.9); two rooms sharing a stamped banner and logo
    agree only in the cells those cover.
    """
    if fa.thumbnail is None or fb.thumbnail is None:
        return True  # features built without thumbnails (tests): the old, spread-only rule
    ta, tb = fa.thumbnail.astype(np.float32), fb.thumbnail.astype(np.float32)
    dx, dy = (round(float(v) / _THUMB_DIV) for v in shift)
    x0, y0 = max(0, -dx), max(0, -dy)
    x1, y1 = min(ta.shape[1], tb.shape[1] - dx), min(ta.shape[0], tb.shape[0] - dy)
    if x1 - x0 < 2 * _DUP_GRID or y1 - y0 < 2 * _DUP_GRID:
        return False
    ca, cb = ta[y0:y1, x0:x1], tb[y0 + dy : y1 + dy, x0 + dx : x1 + dx]
    xs = np.linspace(0, x1 - x0, _DUP_GRID + 1).astype(int)
    ys = np.linspace(0, y1 - y0, _DUP_GRID + 1).astype(int)
    textured = agree = 0
    for r in range(_DUP_GRID):
        for c in range(_DUP_GRID):
            u = ca[ys[r] : ys[r + 1], xs[c] : xs[c + 1]].ravel()
            v = cb[ys[r] : ys[r + 1], xs[c] : xs[c + 1]].ravel()
            su, sv = float(u.std()), float(v.std())
            if su < _DUP_MIN_STD or sv < _DUP_MIN_STD:
                continue
            textured += 1
            ncc = float(np.mean((u - u.mean()) * (v - v.mean()))) / (su * sv)
            agree += ncc >= _DUP_MIN_NCC
    return textured >= _DUP_MIN_CELLS and agree >= _DUP_AGREE * textured


def _unique_matches(pa: np.ndarray, pb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Drop repeated matches of one location. SIFT emits several keypoints at one position (one per
    dominant orientation); left in, one chance correspondence counts as two or three inliers."""
    if len(pa) == 0:
        return pa, pb
    keys = np.concatenate([np.round(pa), np.round(pb)], axis=1)
    _, first_a = np.unique(keys[:, :2], axis=0, return_index=True)
    keep = np.zeros(len(pa), bool)
    keep[first_a] = True
    _, first_b = np.unique(keys[:, 2:], axis=0, return_index=True)
    keep_b = np.zeros(len(pa), bool)
    keep_b[first_b] = True
    keep &= keep_b
    return pa[keep], pb[keep]


def _common_translation(pa: np.ndarray, pb: np.ndarray) -> np.ndarray | None:
    """Mask of the largest set (>= `_OVERLAY_MIN`) of matches moved by the same translation, if any."""
    if len(pa) < _OVERLAY_MIN:
        return None
    d = pb - pa
    close = np.linalg.norm(d[:, None, :] - d[None, :, :], axis=2) < _SAME_SHIFT_PX
    support = close.sum(axis=1)
    k = int(support.argmax())
    if int(support[k]) < _OVERLAY_MIN:
        return None
    return np.asarray(close[k])


def _ransac_mask(estimate: Callable[[], tuple[Any, Any]]) -> np.ndarray | None:
    """Boolean inlier mask of an OpenCV RANSAC estimate, or None when no model was found.

    USAC's MAGSAC raises (an internal assertion) on some degenerate point sets instead of returning
    no model; that is "no model" too, not a failed job.
    """
    try:
        model, mask = estimate()
    except cv2.error:
        return None
    if model is None or mask is None or model.shape[0] != 3:
        return None
    return np.asarray(mask).ravel().astype(bool)


def _replace(pm: PairMetrics, **changes: Any) -> PairMetrics:
    values = {k: getattr(pm, k) for k in PairMetrics.__dataclass_fields__}
    values.update(changes)
    return PairMetrics(**values)


def _mutual_ratio_matches(da: np.ndarray, db: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Indices (ia, ib) of matches that are mutual nearest neighbours and pass the ratio test.

    Descriptors are unit vectors, so squared distance = 2 - 2 * cosine similarity and one matrix
    product gives every distance (faster than a brute-force matcher for ~1000 x 1000).
    """
    sim = da @ db.T
    rows = np.arange(sim.shape[0])
    best_b = sim.argmax(axis=1)
    best_sim = sim[rows, best_b]
    best_a = np.ascontiguousarray(sim.T).argmax(axis=1)  # a column-wise argmax is ~5x slower
    mutual = best_a[best_b] == rows
    sim[rows, best_b] = -1.0
    second = sim.max(axis=1) if sim.shape[1] > 1 else np.full(sim.shape[0], -1.0, np.float32)
    d1 = np.sqrt(np.maximum(2.0 - 2.0 * best_sim, 0.0))
    d2 = np.sqrt(np.maximum(2.0 - 2.0 * second, 0.0))
    keep = mutual & (d1 < _RATIO * d2)
    return rows[keep], best_b[keep]


def _hull_fraction(points: np.ndarray, size: tuple[int, int]) -> float:
    if len(points) < 3:
        return 0.0
    hull = cv2.convexHull(points.astype(np.float32))
    return float(cv2.contourArea(hull)) / float(size[0] * size[1])


# --- clustering -------------------------------------------------------------------------------------


class _UnionFind:
    """Union-find whose components carry their members, hard labels and exterior flags."""

    def __init__(self, labels: Sequence[str | None], exterior: Sequence[bool]) -> None:
        self.parent = list(range(len(labels)))
        self.members: list[set[int]] = [{i} for i in range(len(labels))]
        self.labels: list[set[str]] = [{lbl} if lbl else set() for lbl in labels]
        self.exterior: list[set[bool]] = [{e} for e in exterior]

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def try_union(self, i: int, j: int) -> bool:
        ri, rj = self.find(i), self.find(j)
        if ri == rj:
            return True
        if len(self.labels[ri] | self.labels[rj]) > 1 or len(self.exterior[ri] | self.exterior[rj]) > 1:
            return False
        self.parent[rj] = ri
        self.members[ri] |= self.members[rj]
        self.labels[ri] |= self.labels[rj]
        self.exterior[ri] |= self.exterior[rj]
        return True

    def weak_merge_allowed(self, i: int, j: int, verified: Sequence[tuple[int, int]]) -> bool:
        """May a *weak* verified edge (i, j) join their components? See `cluster_rooms`."""
        a, b = self.members[self.find(i)], self.members[self.find(j)]
        if len(a) == 1 or len(b) == 1:
            return True
        la, lb = self.labels[self.find(i)], self.labels[self.find(j)]
        if la and la == lb:
            return True
        ends_a: set[int] = set()
        ends_b: set[int] = set()
        for x, y in verified:
            if x in a and y in b:
                ends_a.add(x)
                ends_b.add(y)
            elif x in b and y in a:
                ends_a.add(y)
                ends_b.add(x)
        return len(ends_a) >= 2 and len(ends_b) >= 2


def cluster_rooms(
    photos: Sequence[ClusterInput],
    *,
    min_label_confidence: float = 0.7,
    features: Sequence[PhotoFeatures] | None = None,
) -> list[RoomCluster]:
    """Group `photos` into rooms (see the module docstring). Deterministic for a given input order.

    Merging is constrained union-find over verified pairs. A *decisive* pair (>= 20 inliers, or a
    near-duplicate) merges its two components; a *weak* verified pair (just above the chance level)
    merges them only when one side is a single photo, when both sides carry the same hard label, or
    when the verified pairs between the two components involve at least two photos on each side.
    Why: the same furniture or window model in two rooms of one house can produce one barely
    verified pair, and a single weak link must not make a room vanish into another; a real wide-baseline
    pair of the same room usually has company.

    Clusters are returned in order of their first member's position in `photos`, members in
    input order. `features` may be passed when they were already extracted (same order).
    """
    if len({p.id for p in photos}) != len(photos):
        raise ValueError("photo ids must be unique")
    n = len(photos)
    if n == 0:
        return []
    feats = _features_for(photos, features)
    hard = [_norm(p.label) if p.label and p.label_confidence >= min_label_confidence else None for p in photos]
    with _single_threaded_blas():
        coarse = _coarse_all(feats)
        logos = find_stamped_logos(feats, coarse=coarse)
        feats = [_without_regions(f, logos.get(f.id, ())) for f in feats]
        pairs = _match_candidate_pairs(photos, feats, hard, coarse)
    uf = _merge_verified_pairs(pairs, _UnionFind(hard, [p.is_exterior for p in photos]))

    groups: dict[int, list[int]] = {}
    for i in range(n):
        groups.setdefault(uf.find(i), []).append(i)
    clusters = [_make_cluster(members, photos, feats, pairs, hard) for members in groups.values()]
    return sorted(clusters, key=lambda c: _index_of(photos, c.member_ids[0]))


def _single_threaded_blas() -> contextlib.AbstractContextManager[Any]:
    """One BLAS thread for the descriptor products. They are small (256^2 and 1000^2 x 128): on a
    loaded 2-core worker a multi-threaded BLAS spins for them, measured 5.9 ms instead of 0.56 ms
    (256^2) and 30 ms instead of 12 ms (1000^2). threadpoolctl comes with scikit-learn; without it
    nothing changes."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - installed with scikit-learn
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def _features_for(photos: Sequence[ClusterInput], features: Sequence[PhotoFeatures] | None) -> list[PhotoFeatures]:
    """The given features (checked against `photos`), else extracted now."""
    feats = list(features) if features is not None else [extract_features(p) for p in photos]
    if len(feats) != len(photos) or any(f.id != p.id for f, p in zip(feats, photos, strict=True)):
        raise ValueError("features must match photos one to one, in the same order")
    return feats


def _match_candidate_pairs(
    photos: Sequence[ClusterInput],
    feats: Sequence[PhotoFeatures],
    hard: Sequence[str | None],
    coarse: Mapping[tuple[int, int], _Coarse],
) -> dict[tuple[int, int], PairMetrics]:
    """Match the candidate pairs (see `_candidate_pairs`) of the pairs that could end in one cluster;
    pairs the constraints forbid (exterior with interior, two different hard labels) are never
    merged, so not worth matching."""
    n = len(photos)
    allowed = [
        (i, j)
        for i in range(n)
        for j in range(i + 1, n)
        if photos[i].is_exterior == photos[j].is_exterior and not (hard[i] and hard[j] and hard[i] != hard[j])
    ]
    return {(i, j): match_pair(feats[i], feats[j]) for i, j in _candidate_pairs(feats, allowed, coarse)}


def _candidate_pairs(
    feats: Sequence[PhotoFeatures],
    allowed: Sequence[tuple[int, int]],
    coarse: Mapping[tuple[int, int], _Coarse] | None = None,
) -> list[tuple[int, int]]:
    """The allowed pairs worth the full match: all of them for a small job, else for every photo its
    `_PREFILTER_NEIGHBOURS` best-ranked partners plus every pair at a "sure" level.

    Ranking: by the cosine of the two photos' embeddings when every photo has one (CLIP: views of
    one room are each other's nearest neighbours), else by the number of coarse matches (mutual
    ratio-test matches between the `_COARSE_KEYPOINTS` strongest keypoints, a stamped overlay's
    left out; `_coarse_match`): the same evidence as the full match at 1/16 of the cost, and like
    it blind to crops, rotations and exposure. Sure: >= `_SURE_COARSE_MATCHES` coarse matches
    (always: they are computed anyway, for the logos) or, with embeddings, a cosine >=
    `_SURE_COSINE`. Measured (module docstring): different rooms score at most 25 coarse matches,
    views of one room 10-82; 8 partners keep every verified pair the bedroom's clusters need in a
    40-photo job (6 lost one weak bed-corner link and split a cluster).
    """
    if len(feats) <= _PREFILTER_MIN_PHOTOS or not allowed:
        return list(allowed)
    with_embeddings = all(f.embedding is not None for f in feats)
    table = coarse if coarse is not None else {}
    coarse_scores = {(i, j): (table.get((i, j)) or _coarse_match(feats[i], feats[j])).score for i, j in allowed}
    keep = {pair for pair, score in coarse_scores.items() if score >= _SURE_COARSE_MATCHES}
    scores = coarse_scores
    if with_embeddings:
        scores = {(i, j): float(_embedding(feats[i]) @ _embedding(feats[j])) for i, j in allowed}
        keep |= {pair for pair, score in scores.items() if score >= _SURE_COSINE}
    partners: dict[int, list[tuple[float, int]]] = {}
    for (i, j), score in scores.items():
        partners.setdefault(i, []).append((score, j))
        partners.setdefault(j, []).append((score, i))
    for i, ranked in partners.items():
        for _, j in sorted(ranked, key=lambda t: (-t[0], t[1]))[:_PREFILTER_NEIGHBOURS]:
            keep.add((min(i, j), max(i, j)))
    return [pair for pair in allowed if pair in keep]


def _embedding(feat: PhotoFeatures) -> np.ndarray:
    if feat.embedding is None:  # pragma: no cover - callers check that every photo has one
        raise ValueError(f"photo {feat.id!r} has no embedding")
    return feat.embedding


# --- coarse matches and stamped logos ---------------------------------------------------------------

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class _Coarse:
    """Coarse match of two photos: how many matches (a stamped overlay's left out) and where the
    overlay is on each photo (normalised boxes), if there is one."""

    score: float
    boxes_a: tuple[Box, ...] = ()
    boxes_b: tuple[Box, ...] = ()


def _coarse_match(fa: PhotoFeatures, fb: PhotoFeatures) -> _Coarse:
    """Mutual ratio-test matches between the `_COARSE_KEYPOINTS` strongest keypoints of two photos.

    Groups of them sharing one translation that puts them at the same place of both frames
    (`_anchored`), when the photos are not the same picture (`_same_picture`), are stamped overlays:
    their matches do not count, and the parts of each (spatial clusters, `_components`) confined to
    at most `_LOGO_MAX_AREA` of the photo are returned as boxes for `find_stamped_logos`.
    """
    da, db = fa.descriptors[:_COARSE_KEYPOINTS], fb.descriptors[:_COARSE_KEYPOINTS]
    if len(da) < 2 or len(db) < 2:
        return _Coarse(0.0)
    ia, ib = _unique_index_matches(fa, fb, *_mutual_ratio_matches(da, db))
    pa, pb = fa.points[ia], fb.points[ib]
    boxes_a: list[Box] = []
    boxes_b: list[Box] = []
    for _ in range(_OVERLAY_PASSES):
        group = _common_translation(pa, pb)
        if group is None:
            break
        shift = np.median(pb[group] - pa[group], axis=0)
        if not _anchored(shift, fa.size, fb.size) or _same_picture(fa, fb, shift):
            break
        for part in _components(pa[group], fa.size):
            if len(part) < _LOGO_MIN_POINTS:
                continue  # a lone match is no mark; its matches still leave the score
            box_a, box_b = _box(pa[group][part], fa.size), _box(pb[group][part], fb.size)
            if max(_area(box_a), _area(box_b)) <= _LOGO_MAX_AREA:
                boxes_a.append(box_a)
                boxes_b.append(box_b)
        pa, pb = pa[~group], pb[~group]
    return _Coarse(float(len(pa)), tuple(boxes_a), tuple(boxes_b))


def _unique_index_matches(
    fa: PhotoFeatures, fb: PhotoFeatures, ia: np.ndarray, ib: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """`_unique_matches` on indices: one match per location on either side."""
    if len(ia) == 0:
        return ia, ib
    _, first_a = np.unique(np.round(fa.points[ia]), axis=0, return_index=True)
    keep = np.zeros(len(ia), bool)
    keep[first_a] = True
    _, first_b = np.unique(np.round(fb.points[ib]), axis=0, return_index=True)
    keep_b = np.zeros(len(ia), bool)
    keep_b[first_b] = True
    keep &= keep_b
    return ia[keep], ib[keep]


def _anchored(shift: np.ndarray, size_a: tuple[int, int], size_b: tuple[int, int]) -> bool:
    """Does `shift` (b = a + shift) keep a point at the same place relative to a corner, an edge
    midpoint or the centre of both frames? That is how overlays are stamped (same offset from a
    corner, or centred); real camera motion lands there only by chance (within `_ANCHOR_PX`)."""
    for u in (0.0, 0.5, 1.0):
        for v in (0.0, 0.5, 1.0):
            dx = u * (size_b[0] - size_a[0])
            dy = v * (size_b[1] - size_a[1])
            if abs(float(shift[0]) - dx) <= _ANCHOR_PX and abs(float(shift[1]) - dy) <= _ANCHOR_PX:
                return True
    return False


def _components(points: np.ndarray, size: tuple[int, int]) -> list[np.ndarray]:
    """Index arrays of the spatial clusters of `points` (single linkage at `_LOGO_LINK` x the long
    side): a corner logo and a bottom banner stamped with one offset are two overlays, not one box."""
    link = _LOGO_LINK * max(size)
    close = np.linalg.norm(points[:, None, :] - points[None, :, :], axis=2) <= link
    label = -np.ones(len(points), int)
    for start in range(len(points)):
        if label[start] >= 0:
            continue
        label[start] = start
        stack = [start]
        while stack:
            k = stack.pop()
            for nxt in np.flatnonzero(close[k] & (label < 0)):
                label[nxt] = start
                stack.append(int(nxt))
    return [np.flatnonzero(label == k) for k in np.unique(label)]


def _box(points: np.ndarray, size: tuple[int, int]) -> Box:
    w, h = size
    x0, y0 = points.min(axis=0)
    x1, y1 = points.max(axis=0)
    return (float(x0) / w, float(y0) / h, float(x1) / w, float(y1) / h)


def _area(box: Box) -> float:
    return max(box[2] - box[0], 0.0) * max(box[3] - box[1], 0.0)


def _coarse_all(feats: Sequence[PhotoFeatures]) -> dict[tuple[int, int], _Coarse]:
    n = len(feats)
    with _single_threaded_blas():
        return {(i, j): _coarse_match(feats[i], feats[j]) for i in range(n) for j in range(i + 1, n)}


def find_stamped_logos(
    features: Sequence[PhotoFeatures], *, coarse: Mapping[tuple[int, int], _Coarse] | None = None
) -> dict[PhotoId, list[TextRegion]]:
    """Marks stamped at the same place on several photos of one job (logos without letters, which
    OCR does not see), as `TextRegion(kind="logo")` per photo id (photos without one are absent).

    A photo's overlay boxes (see `_coarse_match`) found with at least `_LOGO_MIN_PARTNERS` different
    partner photos at one place (boxes that overlap) make one logo region: their union, `score` =
    the fraction of the other photos that share it. One partner is not enough: two views of one
    room from one tripod position share a few fixed points too. Cost: one 256 x 256 descriptor
    product per pair (~1 ms).
    """
    table = coarse if coarse is not None else _coarse_all(features)
    boxes: dict[int, list[tuple[Box, int]]] = {}
    for (i, j), hit in table.items():
        for box_a, box_b in zip(hit.boxes_a, hit.boxes_b, strict=True):
            boxes.setdefault(i, []).append((box_a, j))
            boxes.setdefault(j, []).append((box_b, i))
    others = max(len(features) - 1, 1)
    found: dict[PhotoId, list[TextRegion]] = {}
    for i, seen in sorted(boxes.items()):
        regions = []
        for union, partners in _overlapping_groups(seen):
            if len(partners) >= _LOGO_MIN_PARTNERS:
                regions.append(_logo_region(union, features[i].size, len(partners) / others))
        if regions:
            found[features[i].id] = regions
    return found


def _overlapping_groups(seen: Sequence[tuple[Box, int]]) -> list[tuple[Box, set[int]]]:
    """Greedy grouping of boxes that overlap: (union box, partner photos) per group."""
    groups: list[tuple[Box, set[int]]] = []
    for box, partner in seen:
        for k, (union, partners) in enumerate(groups):
            if box[0] <= union[2] and union[0] <= box[2] and box[1] <= union[3] and union[1] <= box[3]:
                grown = (min(box[0], union[0]), min(box[1], union[1]), max(box[2], union[2]), max(box[3], union[3]))
                groups[k] = (grown, partners | {partner})
                break
        else:
            groups.append((box, {partner}))
    return groups


def _logo_region(box: Box, size: tuple[int, int], share: float) -> TextRegion:
    w, h = size
    corners = ((box[0] * w, box[1] * h), (box[2] * w, box[1] * h), (box[2] * w, box[3] * h), (box[0] * w, box[3] * h))
    return TextRegion(box=box, polygon=corners, text="", score=min(share, 1.0), kind="logo")


def _without_regions(feat: PhotoFeatures, regions: Sequence[TextRegion]) -> PhotoFeatures:
    """`feat` without its keypoints inside `regions` (padded like the text mask)."""
    if not regions or len(feat.points) == 0:
        return feat
    mask = mask_for(regions, feat.size, pad=_TEXT_MASK_PAD)
    xs = np.clip(feat.points[:, 0].astype(int), 0, feat.size[0] - 1)
    ys = np.clip(feat.points[:, 1].astype(int), 0, feat.size[1] - 1)
    keep = ~mask[ys, xs]
    return replace(feat, points=feat.points[keep], descriptors=feat.descriptors[keep])


def _merge_verified_pairs(pairs: Mapping[tuple[int, int], PairMetrics], uf: _UnionFind) -> _UnionFind:
    """Union the verified pairs into `uf`, strongest first: decisive ones outright, then weak ones
    while they are corroborated (see `cluster_rooms`). Returns `uf`."""
    edges = sorted(
        ((pm.strength, i, j) for (i, j), pm in pairs.items() if pm.verified), key=lambda t: (-t[0], t[1], t[2])
    )
    verified = [(i, j) for _, i, j in edges]
    pending = [(i, j) for i, j in verified if not _decisive(pairs[(i, j)])]
    for i, j in verified:
        if _decisive(pairs[(i, j)]):
            uf.try_union(i, j)
    # Weak edges, strongest first, until nothing changes (one merge can corroborate another).
    changed = True
    while changed:
        changed = False
        for i, j in pending:
            if uf.find(i) != uf.find(j) and uf.weak_merge_allowed(i, j, verified) and uf.try_union(i, j):
                changed = True
    return uf


def _decisive(pm: PairMetrics) -> bool:
    """A verified pair strong enough to merge on its own (see `cluster_rooms`)."""
    return pm.model == "translation" or pm.inliers >= _DECISIVE_INLIERS


def _index_of(photos: Sequence[ClusterInput], pid: PhotoId) -> int:
    for k, p in enumerate(photos):
        if p.id == pid:
            return k
    return len(photos)  # pragma: no cover - ids come from photos


def _norm(label: str | None) -> str | None:
    return label.strip().lower() if label else None


def _make_cluster(
    members: list[int],
    photos: Sequence[ClusterInput],
    feats: Sequence[PhotoFeatures],
    pairs: Mapping[tuple[int, int], PairMetrics],
    hard: Sequence[str | None],
) -> RoomCluster:
    members = sorted(members)
    member_set = set(members)
    inside = [pm for (i, j), pm in pairs.items() if i in member_set and j in member_set]
    edges = [pm for pm in inside if pm.verified]
    overlap = float(np.mean([pm.inlier_ratio for pm in edges])) if edges else 0.0
    ids = [photos[i].id for i in members]

    centrality = dict.fromkeys(ids, 0.0)
    total = sum(pm.inliers for pm in edges)
    for pm in edges:
        centrality[pm.a] += pm.inliers / (2.0 * total) if total else 0.0
        centrality[pm.b] += pm.inliers / (2.0 * total) if total else 0.0
    if len(ids) == 1:
        centrality[ids[0]] = 1.0

    count = len(members)
    tier: Tier = "low" if count == 1 else "medium"
    if count >= 3 and overlap >= _HIGH_TIER_OVERLAP:
        tier = "high"
    sfm = count >= 3 and _largest_component(ids, [pm for pm in edges if pm.strong]) >= 3

    if count == 1:
        i = members[0]
        related = sorted((pm for (a, b), pm in pairs.items() if i in (a, b)), key=lambda pm: -pm.inliers)[:3]
        metrics = [pm.to_dict() for pm in related]
    else:
        metrics = [pm.to_dict() for pm in sorted(inside, key=lambda pm: (-pm.inliers, str(pm.a), str(pm.b)))]

    return RoomCluster(
        room_type=_room_type(members, photos, hard),
        member_ids=ids,
        overlap_score=overlap,
        confidence_tier=tier,
        sfm_eligible=sfm,
        pair_metrics=metrics,
        centrality=centrality,
        member_pixels={photos[i].id: feats[i].pixels for i in members},
    )


def _largest_component(ids: Sequence[PhotoId], edges: Sequence[PairMetrics]) -> int:
    """Size of the largest connected component of the graph (ids, edges)."""
    adj: dict[PhotoId, set[PhotoId]] = {i: set() for i in ids}
    for pm in edges:
        adj[pm.a].add(pm.b)
        adj[pm.b].add(pm.a)
    seen: set[PhotoId] = set()
    best = 0
    for start in ids:
        if start in seen:
            continue
        seen.add(start)
        stack, size = [start], 0
        while stack:
            node = stack.pop()
            size += 1
            for nxt in adj[node]:
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append(nxt)
        best = max(best, size)
    return best


def _room_type(members: Sequence[int], photos: Sequence[ClusterInput], hard: Sequence[str | None]) -> str:
    """Hard label if any (there is at most one per cluster), else the confidence-weighted vote of
    the soft labels, else "exterior" / "other"."""
    for i in members:
        if hard[i]:
            return str(hard[i])
    votes: dict[str, float] = {}
    for i in members:
        lbl = _norm(photos[i].label)
        if lbl:
            votes[lbl] = votes.get(lbl, 0.0) + max(photos[i].label_confidence, 1e-3)
    if votes:
        return sorted(votes.items(), key=lambda kv: (-kv[1], kv[0]))[0][0]
    return "exterior" if photos[members[0]].is_exterior else "other"


# --- hero choice ---------------------------------------------------------------------------------------


def choose_hero(cluster: RoomCluster, quality_by_id: Mapping[PhotoId, Any], *, tie_tolerance: float = 0.02) -> PhotoId:
    """The member to show as the room's main shot.

    Highest score wins. `quality_by_id` values are floats or objects with `final_score` or
    `base_score` (e.g. `QualityScores`); members without a score count as 0. Scores within
    `tie_tolerance` of the best are a tie, broken by resolution (more pixels survive a push-in),
    then centrality (the view overlapping most with the others shows most of the room), then input
    order.
    """
    if not cluster.member_ids:
        raise ValueError("empty cluster")

    def score(pid: PhotoId) -> float:
        q = quality_by_id.get(pid)
        if q is None:
            return 0.0
        if isinstance(q, int | float):
            return float(q)
        for attr in ("final_score", "base_score"):
            v = getattr(q, attr, None)
            if v is not None:
                return float(v)
        raise TypeError(f"quality for {pid!r} has no final_score/base_score")

    scores = {pid: score(pid) for pid in cluster.member_ids}
    best = max(scores.values())
    tied = [pid for pid in cluster.member_ids if scores[pid] >= best - tie_tolerance - 1e-12]
    order = {pid: k for k, pid in enumerate(cluster.member_ids)}
    return min(
        tied, key=lambda pid: (-cluster.member_pixels.get(pid, 0), -cluster.centrality.get(pid, 0.0), order[pid])
    )
