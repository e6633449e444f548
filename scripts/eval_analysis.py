#!/usr/bin/env python
"""Evaluate phase 1 and the beat tracker on real data; prints one JSON object with every figure.

    python scripts/eval_analysis.py [--data ../shared/data] [--only beats,scene,clusters]

`--data` is a folder with the layout of `../shared/data` (`music/` with `.beats`/`.bpm` annotations
or `*.documented_tempo.txt`; `photos/listings*/house_*/<room>/` and `photos/bedroom_multiview/`).
Each part is its own script too (`eval_beats.py`, `eval_scene.py`, `eval_clusters.py`); this one runs
them and checks the goals of the analysis issue:

* beats: mean beat F >= 0.95, never below librosa's default on a clip, downbeat F >= 0.9, tempo
  right on every clip with a clear pulse, meter detected;
* scene (held-out figures, cross-validated by listing, when scikit-learn can refit): interior/exterior
  >= 97 % with no error at confidence >= 0.9; room types labelled at confidence >= 0.5 are >= 85 % right;
* clusters: no false merge across the dev listings (unlabelled, with the exterior flag, and pooled into
  40-photo jobs), bedroom multi-view recall kept, <= 0.3 CPU-s per photo at 40 photos.

The data is never copied anywhere; nothing is written but stdout. Exit status 0 unless a part fails
to run.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent))
sys.path.insert(0, str(ROOT))

PARTS = ("beats", "scene", "clusters")


def _part(name: str) -> Callable[[Path], dict[str, Any]]:
    if name == "beats":
        from eval_beats import evaluate as beats

        return lambda data: beats(data / "music")
    if name == "scene":
        from eval_scene import evaluate as scene

        return scene
    from eval_clusters import evaluate as clusters

    return clusters


def _get(d: dict[str, Any], *path: str) -> Any:
    for key in path:
        if not isinstance(d, dict) or key not in d:
            return None
        d = d[key]
    return d


def _at_least(value: Any, goal: float) -> bool | None:
    return None if value is None else bool(float(value) >= goal)


def _at_most(value: Any, goal: float) -> bool | None:
    return None if value is None else bool(float(value) <= goal)


def goals(results: dict[str, Any]) -> dict[str, Any]:
    """Each goal of the issue: the measured figure and whether it is met (None: not measured)."""
    b, s, c = results.get("beats") or {}, results.get("scene") or {}, results.get("clusters") or {}
    scene = s.get("held_out") or s.get("in_sample") or {}
    below = _get(b, "summary", "clips_below_librosa")
    tempo_wrong = None
    if _get(b, "summary", "tempo_clips") is not None:
        tempo_wrong = int(_get(b, "summary", "tempo_clips")) - int(_get(b, "summary", "tempo_exact"))
    meter_wrong = None
    if _get(b, "summary", "meter_clips") is not None:
        meter_wrong = int(_get(b, "summary", "meter_clips")) - int(_get(b, "summary", "meter_right"))
    listing_merges = [_get(c, "unlabelled", "false_merges"), _get(c, "with_exterior_flag", "false_merges"),
                      _get(c, "pools_of_40", "false_merges")]  # fmt: skip
    figures = {
        "beat_f_mean": (_get(b, "summary", "mean_beat_f"), 0.95, _at_least),
        "beat_clips_below_librosa": (None if below is None else len(below), 0, _at_most),
        "downbeat_f_mean": (_get(b, "summary", "mean_downbeat_f"), 0.9, _at_least),
        "tempo_wrong": (tempo_wrong, 0, _at_most),
        "meter_wrong": (meter_wrong, 0, _at_most),
        "interior_exterior_accuracy": (_get(scene, "interior_exterior", "accuracy"), 0.97, _at_least),
        "interior_exterior_confident_errors": (
            None
            if _get(scene, "interior_exterior", "confident_errors") is None
            else len(_get(scene, "interior_exterior", "confident_errors")),
            0,
            _at_most,
        ),
        "room_type_precision_at_0.5": (_get(scene, "room_type", "accuracy_labelled"), 0.85, _at_least),
        "cluster_false_merges": (None if None in listing_merges else sum(int(v) for v in listing_merges), 0, _at_most),
        "cluster_seconds_per_photo_at_40": (_get(c, "pools_of_40", "clustering_cpu_seconds_per_photo"), 0.3, _at_most),
    }
    return {
        name: {"value": value, "goal": goal, "met": check(value, goal)}
        for name, (value, goal, check) in figures.items()
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent.parent / "shared" / "data")
    parser.add_argument("--only", default=",".join(PARTS), help="comma-separated parts: " + ", ".join(PARTS))
    args = parser.parse_args(argv)
    if not args.data.is_dir():
        print(json.dumps({"error": f"no data folder at {args.data}"}))
        return 2
    wanted = [p.strip() for p in args.only.split(",") if p.strip()]
    unknown = sorted(set(wanted) - set(PARTS))
    if unknown:
        print(json.dumps({"error": f"unknown parts {unknown}; known: {list(PARTS)}"}))
        return 2
    results: dict[str, Any] = {"data": str(args.data)}
    seconds: dict[str, float] = {}
    failed = False
    for name in wanted:
        started = time.perf_counter()
        try:
            results[name] = _part(name)(args.data)
        except Exception as exc:  # report the part that broke, run the others
            failed = True
            results[name] = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()[-2000:]}
        seconds[name] = round(time.perf_counter() - started, 1)
    results["seconds"] = seconds
    results["goals"] = goals(results)
    print(json.dumps(results, indent=1, default=str))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
