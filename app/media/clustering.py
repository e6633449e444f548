"""Group photos that show the same room, so the video treats a room once and picks its best view.

Why geometry and not just "looks similar": two bedrooms of one house share paint, flooring and
furniture style, and every kitchen in a subdivision looks alike, so appearance alone merges rooms
that are different. Two photos of the *same* room share physical points: local features (SIFT)
match between them, and the matches agree with one two-view geometry (a fundamental matrix; a
homography when the camera only rotated or the scene is a wall). That is checked with RANSAC at a
tight threshold, with inlier counts calibrated against the chance level, and the inliers must be
spread over a real part of both images. Matches that all move by one translation and sit in a
small area (a watermark or logo stamped on every MLS photo) are removed before verification.

Pipeline: per photo, once (O(n)): downscale to `WORK_SIDE`, CLAHE, SIFT keypoints with RootSIFT
descriptors, an HSV colour histogram. Per pair (O(n^2), ~10-25 ms): skip pairs whose labels or
exterior flags conflict, mutual nearest neighbours + Lowe's ratio test via one matrix product,
overlay removal, RANSAC verification. Then constrained union-find over the verified pairs, strongest
first (see `cluster_rooms`): a merge that would put two different labels (or an exterior and an
interior) in one cluster is refused, whatever the chain of pairs, and weak pairs need corroboration
to join two groups. Photos without a verified partner stay singletons. The appearance histogram is
reported per pair for debugging but never merges anything on its own.

Measured on real photos (16 phone views of one bedroom from two corners + 24 MLS photos of six
houses, 1000 features): no false verified pair among 660 pairs of different rooms (chance maxima:
11 fundamental-matrix inliers); with labels the two corners form one cluster each (8 + 8); without
labels the bed corner splits into 2 + 6. The two corners share almost no surface, so they are never
linked.

Labels: a label with `label_confidence >= min_label_confidence` (default 0.7) is a hard constraint;
weaker labels (the heuristic room guesses in `app.media.scene` are capped at 0.6) only vote for the
cluster's room type. `is_exterior` is always a hard constraint.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import cv2
import numpy as np

from app.media.images import resize_max

__all__ = [
    "WORK_SIDE",
    "ClusterInput",
    "PairMetrics",
    "PhotoFeatures",
    "RoomCluster",
    "choose_hero",
    "cluster_rooms",
    "extract_features",
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
#: A verified pair with at least this many inliers merges two components on its own; weaker
#: verified pairs (14-19 inliers, near the chance level of ~12) need corroboration, see `cluster_rooms`.
_DECISIVE_INLIERS = 20
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


@dataclass(frozen=True)
class PhotoFeatures:
    """What matching needs from one photo, computed once."""

    id: PhotoId
    points: np.ndarray  # (n, 2) float32 keypoint positions in working-copy pixels
    descriptors: np.ndarray  # (n, 128) float32 RootSIFT, unit L2 norm
    histogram: np.ndarray  # flattened, L1-normalised HSV histogram
    size: tuple[int, int]  # (width, height) of the working copy
    pixels: int  # width * height of the original photo


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
    """SIFT keypoints (RootSIFT descriptors) and an HSV histogram of one photo.

    SIFT rather than ORB: views of a room from different corners differ by large perspective and
    scale changes, where ORB's binary descriptors lose most matches. CLAHE first, so a dark and a
    bright exposure of the same room still produce comparable keypoints.
    """
    rgb = np.ascontiguousarray(photo.rgb)
    h0, w0 = rgb.shape[:2]
    small = resize_max(rgb, WORK_SIDE)
    h, w = small.shape[:2]
    grey = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)
    grey = cv2.createCLAHE(clipLimit=2.0, tileGridSize=(8, 8)).apply(grey)
    sift = cv2.SIFT_create(nfeatures=max_features)  # type: ignore[attr-defined]  # missing from cv2 stubs
    keypoints, desc = sift.detectAndCompute(grey, None)
    if desc is None or len(keypoints) == 0:
        points = np.zeros((0, 2), np.float32)
        descriptors = np.zeros((0, 128), np.float32)
    else:
        points = np.array([kp.pt for kp in keypoints], np.float32)
        # RootSIFT (Arandjelovic & Zisserman 2012): Hellinger kernel, clearly better matching.
        d = desc.astype(np.float32)
        d /= d.sum(axis=1, keepdims=True) + 1e-7
        descriptors = np.sqrt(d).astype(np.float32)
    hsv = cv2.cvtColor(small, cv2.COLOR_RGB2HSV)
    hist = cv2.calcHist([hsv], [0, 1], None, [18, 8], [0, 180, 0, 256]).ravel()
    hist = (hist / max(float(hist.sum()), 1.0)).astype(np.float32)
    return PhotoFeatures(
        id=photo.id, points=points, descriptors=descriptors, histogram=hist, size=(w, h), pixels=int(w0 * h0)
    )


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
    # Matches sharing one translation are either a near-duplicate shot (most matches, spread over
    # the frame) or an overlay: a watermark, logo or date stamp stamped at the same place (or the
    # same offset from a corner) on every photo of an MLS export. Overlays are dropped; left in,
    # they also make the fundamental matrix degenerate (a planar set fits a whole family of F,
    # which then absorbs random matches).
    for _ in range(2):
        group = _common_translation(pa, pb)
        if group is None:
            break
        coverage = min(_hull_fraction(pa[group], fa.size), _hull_fraction(pb[group], fb.size))
        count = int(group.sum())
        if coverage >= _MIN_COVERAGE:
            if count >= max(_F_MIN_INLIERS, 0.5 * n):
                return _replace(
                    base,
                    matches=n,
                    inliers=count,
                    inlier_ratio=count / n,
                    coverage=coverage,
                    model="translation",
                    verified=True,
                )
            break
        pa, pb = pa[~group], pb[~group]
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
    pairs = _match_candidate_pairs(photos, feats, hard)
    uf = _merge_verified_pairs(pairs, _UnionFind(hard, [p.is_exterior for p in photos]))

    groups: dict[int, list[int]] = {}
    for i in range(n):
        groups.setdefault(uf.find(i), []).append(i)
    clusters = [_make_cluster(members, photos, feats, pairs, hard) for members in groups.values()]
    return sorted(clusters, key=lambda c: _index_of(photos, c.member_ids[0]))


def _features_for(photos: Sequence[ClusterInput], features: Sequence[PhotoFeatures] | None) -> list[PhotoFeatures]:
    """The given features (checked against `photos`), else extracted now."""
    feats = list(features) if features is not None else [extract_features(p) for p in photos]
    if len(feats) != len(photos) or any(f.id != p.id for f, p in zip(feats, photos, strict=True)):
        raise ValueError("features must match photos one to one, in the same order")
    return feats


def _match_candidate_pairs(
    photos: Sequence[ClusterInput], feats: Sequence[PhotoFeatures], hard: Sequence[str | None]
) -> dict[tuple[int, int], PairMetrics]:
    """Match every pair (i < j) that could end in one cluster; pairs the constraints forbid
    (exterior with interior, two different hard labels) are never merged, so not worth matching."""
    n = len(photos)
    pairs: dict[tuple[int, int], PairMetrics] = {}
    for i in range(n):
        for j in range(i + 1, n):
            if photos[i].is_exterior != photos[j].is_exterior:
                continue
            if hard[i] and hard[j] and hard[i] != hard[j]:
                continue
            pairs[(i, j)] = match_pair(feats[i], feats[j])
    return pairs


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
