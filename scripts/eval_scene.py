#!/usr/bin/env python
"""Evaluate `app.media.scene.classify_scene` on the shared listing photos; prints one JSON object.

    python scripts/eval_scene.py [--data ../shared/data] [--no-refit]

Data: `photos/listings*/house_*/<label>/<photo>` (label = exterior, kitchen, bedroom or bathroom) and
`photos/bedroom_multiview/*` (phone photos of one bedroom: each must be interior, and bedroom when
labelled). Reports, for the committed model ("in_sample": it was fitted on these listing photos):

* interior/exterior accuracy and the confident errors (exterior_probability <= 0.1 for an exterior,
  >= 0.9 for an interior), with every error listed;
* room type over the listing interiors: coverage (share with label_confidence >= 0.5, i.e. not
  "unknown"), accuracy of the labelled ones, overall accuracy of room_guess, a calibration table
  (label_confidence bins vs accuracy of room_guess) and the confusion (true -> guess);
* milliseconds per photo for `classify_scene` (decoding excluded).

"held_out" (unless --no-refit; needs scikit-learn): the same figures from an 8-fold cross-validation
grouped by listing, refitting both models (`scripts/fit_scene.py`) on the other listings and
choosing the confidence knots on an inner grouped CV of those listings only: the primary figures,
what to expect on listings never seen.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from app.media.images import UNKNOWN_ROOM, load_photo  # noqa: E402
from app.media.scene import ROOM_CLASSES, classify_scene, room_decision  # noqa: E402

PHOTO_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp")
LABELS = ("exterior", *ROOM_CLASSES)
CONFIDENT = 0.9
CALIBRATION_BINS = (0.0, 0.2, 0.35, 0.5, 0.65, 0.8, 1.0001)


def _listing_photos(data_dir: Path) -> list[tuple[Path, str, str]]:
    found = []
    for folder in sorted((data_dir / "photos").glob("listings*")):
        for path in sorted(folder.glob("house_*/*/*")):
            if path.suffix.lower() in PHOTO_EXTENSIONS and path.parent.name in LABELS:
                found.append((path, f"{folder.name}/{path.parts[-3]}", path.parent.name))
    return found


def _name(path: Path) -> str:
    return "/".join(path.parts[-4:])


def _exterior_report(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """rows: {"file", "truth_exterior", "p"}."""
    errors = [r for r in rows if (r["p"] >= 0.5) != r["truth_exterior"]]
    confident = [r for r in errors if (r["p"] >= CONFIDENT if not r["truth_exterior"] else r["p"] <= 1 - CONFIDENT)]
    return {
        "n": len(rows),
        "accuracy": round(1 - len(errors) / max(1, len(rows)), 4),
        "errors": [{"file": r["file"], "exterior_probability": round(r["p"], 4)} for r in errors],
        "confident_errors": [{"file": r["file"], "exterior_probability": round(r["p"], 4)} for r in confident],
    }


def _calibration(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    table = []
    for lo, hi in itertools.pairwise(CALIBRATION_BINS):
        inside = [r for r in rows if lo <= r["confidence"] < hi]
        right = sum(r["guess"] == r["truth"] for r in inside)
        table.append(
            {
                "bin": f"[{lo:.2f}, {min(hi, 1.0):.2f}{']' if hi > 1 else ')'}",
                "n": len(inside),
                "accuracy": round(right / len(inside), 4) if inside else None,
            }
        )
    return table


def _room_report(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """rows: {"file", "truth", "label", "guess", "confidence"} for true interiors."""
    labelled = [r for r in rows if r["label"] != UNKNOWN_ROOM]
    right = [r for r in labelled if r["label"] == r["truth"]]
    confusion = Counter(f"{r['truth']}->{r['guess']}" for r in rows)
    return {
        "n": len(rows),
        "coverage": round(len(labelled) / max(1, len(rows)), 4),
        "labelled": len(labelled),
        "accuracy_labelled": round(len(right) / len(labelled), 4) if labelled else None,
        "accuracy_overall_guess": round(sum(r["guess"] == r["truth"] for r in rows) / max(1, len(rows)), 4),
        "accuracy_overall_label": round(len(right) / max(1, len(rows)), 4),
        "calibration": _calibration(rows),
        "confusion": dict(sorted(confusion.items())),
        "labelled_errors": [
            {"file": r["file"], "truth": r["truth"], "label": r["label"], "confidence": round(r["confidence"], 4)}
            for r in labelled
            if r["label"] != r["truth"]
        ],
    }


def _room_row(file: str, truth: str, is_exterior: bool, label: str, guess: str, confidence: float) -> dict[str, Any]:
    """An interior's room outcome; one called exterior counts as an unlabelled wrong guess."""
    if is_exterior:
        return {"file": file, "truth": truth, "label": UNKNOWN_ROOM, "guess": "exterior", "confidence": 0.0}
    return {"file": file, "truth": truth, "label": label, "guess": guess, "confidence": confidence}


def _in_sample(photos: list[tuple[Path, str, str]]) -> tuple[dict[str, Any], float]:
    ext_rows, room_rows, seconds = [], [], 0.0
    for path, _listing, truth in photos:
        rgb = load_photo(path, min_side=32).rgb
        start = time.perf_counter()
        g = classify_scene(rgb)
        seconds += time.perf_counter() - start
        ext_rows.append({"file": _name(path), "truth_exterior": truth == "exterior", "p": g.exterior_probability})
        if truth != "exterior":
            room_rows.append(
                _room_row(_name(path), truth, g.is_exterior, g.room_label, g.room_guess, g.label_confidence)
            )
    report = {"interior_exterior": _exterior_report(ext_rows), "room_type": _room_report(room_rows)}
    return report, 1000.0 * seconds / max(1, len(photos))


def _multiview(data_dir: Path) -> dict[str, Any] | None:
    folder = data_dir / "photos" / "bedroom_multiview"
    files = sorted(p for p in folder.glob("*") if p.suffix.lower() in PHOTO_EXTENSIONS) if folder.is_dir() else []
    if not files:
        return None
    guesses = [(p.name, classify_scene(load_photo(p, min_side=32).rgb)) for p in files]
    return {
        "n": len(guesses),
        "interior": sum(not g.is_exterior for _, g in guesses),
        "max_exterior_probability": round(max(g.exterior_probability for _, g in guesses), 4),
        "labelled": sum(g.room_label != UNKNOWN_ROOM for _, g in guesses),
        "labelled_bedroom": sum(g.room_label == "bedroom" for _, g in guesses),
        "guess_bedroom": sum(g.room_guess == "bedroom" for _, g in guesses),
        "guesses": {n: f"{g.room_guess}:{g.label_confidence:.2f}" for n, g in guesses},
    }


def _held_out(data_dir: Path) -> dict[str, Any]:
    """Grouped 8-fold CV: both models refitted without the test listings, knots from an inner CV."""
    import fit_scene as fs
    import numpy as np
    from sklearn.model_selection import GroupKFold

    photos = fs.load_dataset(data_dir)
    groups = np.array([p.listing for p in photos])
    ext_rows: list[dict[str, Any]] = []
    room_rows: list[dict[str, Any]] = []
    for train, test in GroupKFold(n_splits=fs.FOLDS).split(groups, groups, groups):
        train_photos = [photos[i] for i in train]
        fitted = fs.fit_all(train_photos, verbose=False)
        for i in test:
            p = photos[i]
            x_ext = fs.matrix([p], fs.EXTERIOR_FEATURES)
            p_ext = float(fs.probabilities(fitted["exterior"], x_ext)[0, 1])
            ext_rows.append({"file": _name(p.path), "truth_exterior": p.label == "exterior", "p": p_ext})
            if p.label == "exterior":
                continue
            prob = fs.probabilities(fitted["room"], fs.matrix([p], fs.ROOM_FEATURES))[0]
            probs = dict(zip(ROOM_CLASSES, (float(v) for v in prob), strict=True))
            label, conf, guess = room_decision(probs, p_ext, fitted["knots"])
            room_rows.append(_room_row(_name(p.path), p.label, p_ext >= 0.5, label, guess, conf))
    return {"interior_exterior": _exterior_report(ext_rows), "room_type": _room_report(room_rows)}


def evaluate(data_dir: Path, *, refit: bool = True) -> dict[str, Any]:
    """All figures for the photos under data_dir (e.g. ../shared/data); see the module docstring."""
    photos = _listing_photos(Path(data_dir))
    in_sample, ms = _in_sample(photos)
    result: dict[str, Any] = {
        "photos": len(photos),
        "listings": len({listing for _, listing, _ in photos}),
        "in_sample": in_sample,
        "ms_per_photo": round(ms, 2),
        "bedroom_multiview": _multiview(Path(data_dir)),
    }
    if refit:
        result["held_out"] = _held_out(Path(data_dir))
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--no-refit", action="store_true", help="skip the grouped cross-validation (no sklearn)")
    args = ap.parse_args()
    if not any((args.data / "photos").glob("listings*")):
        print(f"no photos/listings* under {args.data}", file=sys.stderr)
        return 1
    print(json.dumps(evaluate(args.data, refit=not args.no_refit), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
