#!/usr/bin/env python
"""Evaluate room clustering (`app.media.clustering.cluster_rooms`) on the shared photo data; prints JSON.

    python scripts/eval_clusters.py [--data ../shared/data] [--no-text] [--ocr-cache /tmp/x.json]

Data (under `--data`/photos):

* `listings/` and `listings_more/`: one folder per listing, four photos of four *different* rooms in
  `exterior/`, `kitchen/`, `bedroom/`, `bathroom/` folders, so ANY merge inside a listing is false.
  Each listing is clustered unlabelled (`label=None`, every photo "interior") and again with the
  interior/exterior flag from its folder. Two photos that are the same file (identical bytes, a
  data error: one picture filed under two rooms) are reported as `duplicate_file_pairs`, not as
  false merges.
* Pools: the listings in order, 10 at a time (40 photos), clustered unlabelled as one job: the
  clustering time per photo (feature extraction + matching) and cross-listing false merges (the
  same MLS logo is on photos of different houses).
* `bedroom_multiview/`: 16 phone photos of one bedroom from two corners (`bed_corner__*`,
  `blackboard_corner__*`): pair recall (same-corner pairs in one cluster / all same-corner pairs)
  and the cluster count, alone and pooled with 24 listing photos (a 40-photo job: the candidate
  prefilter is active there).

Text regions come from PP-OCR (`app.models.ocr`) unless `--no-text`; results are cached per photo in
`--ocr-cache` (the time measured when a photo was read is cached with it). `evaluate()` is also
imported by `scripts/eval_analysis.py`.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from app.media import clustering  # noqa: E402
from app.media.images import load_photo  # noqa: E402
from app.media.text_regions import TextReader, TextRegion, detect_text_regions  # noqa: E402

ROOMS = ("exterior", "kitchen", "bedroom", "bathroom")
POOL_LISTINGS = 10
DEFAULT_OCR_CACHE = Path("/tmp/picaivid_eval_clusters_ocr.json")


@dataclass
class Photo:
    key: str  # "<listing>/<room>/<file>" or "bedroom_multiview/<file>"
    listing: str
    room: str
    rgb: np.ndarray
    digest: str
    regions: list[TextRegion]
    ocr_seconds: float | None


def evaluate(
    data_dir: Path,
    *,
    use_text: bool = True,
    ocr_cache: Path | None = DEFAULT_OCR_CACHE,
    reader: TextReader | None = None,
) -> dict[str, Any]:
    """Every figure of the module docstring, as one JSON-able dict."""
    photos_dir = Path(data_dir) / "photos"
    texts = _TextSource(use_text, ocr_cache, reader)
    listings = _load_listings(photos_dir, texts)
    bedroom = _load_bedroom(photos_dir / "bedroom_multiview", texts)
    texts.save()
    all_photos = [p for ps in listings.values() for p in ps] + bedroom
    result: dict[str, Any] = {
        "use_text": use_text and texts.available,
        "listings": len(listings),
        "unlabelled": _listing_merges(listings, with_exterior=False, use_text=use_text),
        "with_exterior_flag": _listing_merges(listings, with_exterior=True, use_text=use_text),
        "pools_of_40": _pools(listings, use_text=use_text),
        "bedroom_multiview": _bedroom_eval(bedroom, [], use_text=use_text),
        "bedroom_multiview_pooled_40": _bedroom_eval(bedroom, _pool_fill(listings, 24), use_text=use_text),
        "text_regions": _text_stats(all_photos),
    }
    return result


# --- inputs ---------------------------------------------------------------------------------------


class _TextSource:
    """Text regions per photo: from the cache, else read now (and cached)."""

    def __init__(self, enabled: bool, cache_path: Path | None, reader: TextReader | None) -> None:
        self.enabled = enabled
        self.cache_path = cache_path
        self.cache: dict[str, Any] = {}
        if enabled and cache_path is not None and cache_path.is_file():
            self.cache = json.loads(cache_path.read_text(encoding="utf-8"))
        self._reader = reader
        self._tried = reader is not None
        self.available = reader is not None or bool(self.cache)

    def reader(self) -> TextReader | None:
        if not self._tried:
            from app.models.ocr import try_load_text_reader

            self._reader = try_load_text_reader()
            self._tried = True
            self.available = self.available or self._reader is not None
        return self._reader

    def regions(self, digest: str, rgb: np.ndarray) -> tuple[list[TextRegion], float | None]:
        if not self.enabled:
            return [], None
        hit = self.cache.get(digest)
        if hit is None:
            reader = self.reader()
            if reader is None:
                return [], None
            start = time.perf_counter()
            found = detect_text_regions(rgb, reader)
            hit = {"seconds": time.perf_counter() - start, "regions": [r.to_dict() for r in found]}
            self.cache[digest] = hit
        return [TextRegion.from_dict(r) for r in hit["regions"]], float(hit["seconds"])

    def save(self) -> None:
        if self.enabled and self.cache_path is not None and self.cache:
            self.cache_path.write_text(json.dumps(self.cache), encoding="utf-8")


def _photo(path: Path, key: str, listing: str, room: str, texts: _TextSource) -> Photo:
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()[:20]
    # min_side=64: one dev photo is 319 px wide; the evaluation is about clustering, not rejection.
    rgb = load_photo(path, min_side=64).rgb
    regions, seconds = texts.regions(digest, rgb)
    return Photo(key, listing, room, rgb, digest, regions, seconds)


def _load_listings(photos_dir: Path, texts: _TextSource) -> dict[str, list[Photo]]:
    listings: dict[str, list[Photo]] = {}
    for group in ("listings", "listings_more"):
        base = photos_dir / group
        if not base.is_dir():
            continue
        for house in sorted(p for p in base.iterdir() if p.is_dir()):
            photos = []
            for room in ROOMS:
                for f in sorted((house / room).glob("*")):
                    if f.suffix.lower() in (".jpg", ".jpeg", ".png", ".webp"):
                        key = f"{group}/{house.name}/{room}/{f.name}"
                        photos.append(_photo(f, key, f"{group}/{house.name}", room, texts))
            if photos:
                listings[f"{group}/{house.name}"] = photos
    return listings


def _load_bedroom(folder: Path, texts: _TextSource) -> list[Photo]:
    if not folder.is_dir():
        return []
    files = sorted(f for f in folder.iterdir() if f.suffix.lower() in (".jpg", ".jpeg", ".png"))
    return [_photo(f, f"bedroom_multiview/{f.name}", "bedroom_multiview", f.name.split("__")[0], texts) for f in files]


# --- clustering runs ------------------------------------------------------------------------------


def _inputs(photos: Sequence[Photo], *, with_exterior: bool, use_text: bool) -> list[clustering.ClusterInput]:
    out = []
    for p in photos:
        extra: dict[str, Any] = {"text_regions": tuple(p.regions)} if use_text else {}
        out.append(clustering.ClusterInput(p.key, p.rgb, None, with_exterior and p.room == "exterior", **extra))
    return out


def _run(
    photos: Sequence[Photo], *, with_exterior: bool = False, use_text: bool = True
) -> tuple[list[Any], float, float]:
    """Clusters, and the wall and CPU seconds taken (feature extraction + matching). CPU seconds
    (all threads of this process) are reported too: wall time on a shared machine depends on its load."""
    inputs = _inputs(photos, with_exterior=with_exterior, use_text=use_text)
    start, cpu = time.perf_counter(), time.process_time()
    feats = [clustering.extract_features(ci) for ci in inputs]
    clusters = clustering.cluster_rooms(inputs, features=feats)
    return clusters, time.perf_counter() - start, time.process_time() - cpu


def _merged_pairs(clusters: Sequence[Any]) -> list[tuple[str, str]]:
    return [
        (str(a), str(b)) for c in clusters for a, b in itertools.combinations(c.member_ids, 2) if len(c.member_ids) > 1
    ]


def _listing_merges(listings: dict[str, list[Photo]], *, with_exterior: bool, use_text: bool) -> dict[str, Any]:
    false_pairs: list[dict[str, Any]] = []
    duplicates: list[list[str]] = []
    checked = 0
    for photos in listings.values():
        digest = {p.key: p.digest for p in photos}
        checked += sum(1 for a, b in itertools.combinations(photos, 2) if a.room != b.room and a.digest != b.digest)
        clusters, _, _ = _run(photos, with_exterior=with_exterior, use_text=use_text)
        for a, b in _merged_pairs(clusters):
            if digest[a] == digest[b]:
                duplicates.append([a, b])
            else:
                false_pairs.append({"a": a, "b": b, **_edge(clusters, a, b)})
    return {
        "false_merges": len(false_pairs),
        "listings_affected": len({pair["a"].rsplit("/", 2)[0] for pair in false_pairs}),
        "pairs_of_different_rooms_checked": checked,
        "false_merge_pairs": false_pairs,
        "duplicate_file_pairs": duplicates,
    }


def _edge(clusters: Sequence[Any], a: str, b: str) -> dict[str, Any]:
    for c in clusters:
        for pm in c.pair_metrics:
            if {str(pm["a"]), str(pm["b"])} == {a, b}:
                return {"inliers": pm["inliers"], "model": pm["model"], "verified": pm["verified"]}
    return {"inliers": None, "model": "chain", "verified": False}


def _pools(listings: dict[str, list[Photo]], *, use_text: bool) -> dict[str, Any]:
    names = list(listings)
    per_photo: list[float] = []
    cpu_per_photo: list[float] = []
    false_pairs: list[list[str]] = []
    pools = 0
    for start in range(0, len(names) - POOL_LISTINGS + 1, POOL_LISTINGS):
        photos = [p for n in names[start : start + POOL_LISTINGS] for p in listings[n]]
        clusters, seconds, cpu = _run(photos, use_text=use_text)
        cpu_per_photo.append(cpu / len(photos))
        digest = {p.key: p.digest for p in photos}
        false_pairs += [[a, b] for a, b in _merged_pairs(clusters) if digest[a] != digest[b]]
        per_photo.append(seconds / len(photos))
        pools += 1
    return {
        "pools": pools,
        "photos_per_pool": POOL_LISTINGS * len(ROOMS),
        "clustering_seconds_per_photo": round(float(np.mean(per_photo)), 4) if per_photo else None,
        "clustering_seconds_per_photo_max": round(float(np.max(per_photo)), 4) if per_photo else None,
        "clustering_cpu_seconds_per_photo": round(float(np.mean(cpu_per_photo)), 4) if per_photo else None,
        "false_merges": len(false_pairs),
        "false_merge_pairs": false_pairs,
    }


def _pool_fill(listings: dict[str, list[Photo]], count: int) -> list[Photo]:
    return [p for ps in listings.values() for p in ps][:count]


def _bedroom_eval(bedroom: Sequence[Photo], others: Sequence[Photo], *, use_text: bool) -> dict[str, Any]:
    if not bedroom:
        return {}
    clusters, seconds, cpu = _run([*bedroom, *others], use_text=use_text)
    corner = {p.key: p.room for p in bedroom}
    together = {frozenset(pair) for pair in _merged_pairs(clusters)}
    same_corner = [(a.key, b.key) for a, b in itertools.combinations(bedroom, 2) if a.room == b.room]
    all_pairs = list(itertools.combinations([p.key for p in bedroom], 2))
    bed_clusters = [c for c in clusters if any(str(m) in corner for m in c.member_ids)]
    return {
        "photos": len(bedroom) + len(others),
        "same_corner_pair_recall": round(sum(frozenset(p) in together for p in same_corner) / len(same_corner), 4),
        "same_room_pair_recall": round(sum(frozenset(p) in together for p in all_pairs) / len(all_pairs), 4),
        "clusters_of_bedroom_photos": sorted((len(c.member_ids) for c in bed_clusters), reverse=True),
        "false_merges_with_other_photos": sum(1 for c in bed_clusters for m in c.member_ids if str(m) not in corner),
        "clustering_seconds_per_photo": round(seconds / (len(bedroom) + len(others)), 4),
        "clustering_cpu_seconds_per_photo": round(cpu / (len(bedroom) + len(others)), 4),
    }


def _text_stats(photos: Sequence[Photo]) -> dict[str, Any]:
    counts = [len(p.regions) for p in photos]
    seconds = [p.ocr_seconds for p in photos if p.ocr_seconds is not None]
    return {
        "photos": len(photos),
        "mean_regions_per_photo": round(float(np.mean(counts)), 3) if counts else 0.0,
        "photos_with_any": sum(c > 0 for c in counts),
        "ocr_seconds_per_photo": round(float(np.mean(seconds)), 4) if seconds else None,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--no-text", action="store_true", help="cluster without text/logo masks")
    parser.add_argument("--ocr-cache", type=Path, default=DEFAULT_OCR_CACHE)
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    print(json.dumps(evaluate(args.data, use_text=not args.no_text, ocr_cache=args.ocr_cache), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
