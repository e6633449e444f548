#!/usr/bin/env python
"""Fit the two logistic models of `app.media.scene` on labelled listing photos; print their constants.

    python scripts/fit_scene.py [--data ../shared/data] [--cache /tmp/picaivid_scene_features.json]

Data: every `photos/listings*/house_*/<label>/<photo>` under --data (label = exterior, kitchen,
bedroom or bathroom). Prints the Python source of `_EXTERIOR_MODEL`, `_ROOM_MODEL` and
`_ROOM_CONFIDENCE_KNOTS` (paste it between the MODEL CONSTANTS markers of `app/media/scene.py`)
and, on stderr, the grouped cross-validation figures that chose the regularisation and the
confidence knots. Deterministic: same photos, same output.

Per-photo features are cached in --cache (outside the repository: they are derived from photos that
may not be redistributed). scikit-learn is used here only; `app.media.scene` runs on numpy.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.model_selection import GroupKFold  # noqa: E402

from app.media.images import load_photo  # noqa: E402
from app.media.scene import ROOM_CLASSES, scene_features  # noqa: E402

LABELS = ("exterior", *ROOM_CLASSES)
PHOTO_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp")
DEFAULT_CACHE = Path(os.environ.get("TMPDIR", "/tmp")) / "picaivid_scene_features.json"
FOLDS = 8
#: Regularisation strengths tried (inverse L2 weight); the held-out log-loss picks one. The exterior
#: model stops at 0.3: its log-loss still falls above that (0.059 -> 0.037 at C = 1) by pushing
#: probabilities towards 0 and 1, which is what makes a confident error on photos unlike these.
C_GRID = (0.03, 0.1, 0.3, 1.0)
EXTERIOR_C_GRID = (0.03, 0.1, 0.3)
#: Held-out precision the labelled room guesses must reach (label_confidence >= 0.5).
TARGET_PRECISION = 0.85
#: Safety margin over the target when choosing the threshold (the held-out curve is noisy).
PRECISION_MARGIN = 0.03

#: Features of the exterior model: sky, foliage, ceiling/light colour and edge structure.
EXTERIOR_FEATURES = (
    "sky_blue",
    "sky_pale",
    "sky_dusk",
    "sky_span",
    "top_luma_ratio",
    "green_top",
    "green_mid",
    "green_low",
    "warmth_top",
    "warmth_mid",
    "warmth_low",
    "sat_top",
    "texture_top",
    "texture_low",
    "edge_diagonal",
    "line_hv_share",
    "lamps",
)
#: Features of the room model: porcelain, orientation, materials, texture grain and lines by band.
#: (The bed block, lamps, white share, top-band wood and luma, colourfulness and mid saturation were
#: dropped: leaving each out did not worsen the grouped-CV log-loss.)
ROOM_FEATURES = (
    "porcelain",
    "portrait",
    "wood_mid",
    "wood_low",
    "texture_top",
    "texture_mid",
    "texture_low",
    "fine_top",
    "fine_mid",
    "fine_low",
    "luma_low",
    "sat_low",
    "edge_vertical",
    "edge_horizontal",
    "line_density",
    "line_hv_share",
    "line_long_share",
    "lines_top",
    "lines_mid",
    "lines_low",
)


@dataclass(frozen=True)
class Photo:
    path: Path
    listing: str
    label: str
    features: dict[str, float]


def photo_files(data_dir: Path) -> list[tuple[Path, str, str]]:
    """(path, listing, label) for every labelled listing photo under data_dir/photos/listings*."""
    found = []
    for folder in sorted((data_dir / "photos").glob("listings*")):
        for path in sorted(folder.glob("house_*/*/*")):
            label = path.parent.name
            if path.suffix.lower() in PHOTO_EXTENSIONS and label in LABELS:
                found.append((path, f"{folder.name}/{path.parts[-3]}", label))
    return found


def load_dataset(data_dir: Path, cache: Path | None = DEFAULT_CACHE) -> list[Photo]:
    """Features of every labelled photo, reusing `cache` entries whose file size and mtime match
    (the whole cache is dropped when `app/media/scene.py` changed: the features may have)."""
    code = hashlib.sha256((ROOT / "app" / "media" / "scene.py").read_bytes()).hexdigest()[:16]
    stored: dict[str, Any] = {}
    if cache is not None and cache.exists():
        stored = json.loads(cache.read_text())
        if stored.get("code") != code:
            stored = {}
    stored["code"] = code
    photos, changed = [], False
    for path, listing, label in photo_files(data_dir):
        stat = path.stat()
        stamp = f"{stat.st_size}:{stat.st_mtime_ns}"
        entry = stored.get(str(path))
        if entry is None or entry["stamp"] != stamp:
            entry = {"stamp": stamp, "features": scene_features(load_photo(path, min_side=32).rgb)}
            stored[str(path)] = entry
            changed = True
        photos.append(Photo(path, listing, label, entry["features"]))
    if cache is not None and changed:
        cache.write_text(json.dumps(stored))
    return photos


def matrix(photos: list[Photo], names: tuple[str, ...]) -> np.ndarray:
    return np.array([[p.features[n] for n in names] for p in photos], np.float64)


@dataclass(frozen=True)
class Fitted:
    """A standardised, clipped logistic model (the form `app.media.scene._Logistic` evaluates)."""

    names: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    coef: np.ndarray
    intercept: np.ndarray

    def logits(self, x: np.ndarray) -> np.ndarray:
        z = (np.clip(x, self.lo, self.hi) - self.mean) / self.scale
        return z @ self.coef.T + self.intercept


def fit(x: np.ndarray, y: np.ndarray, names: tuple[str, ...], c: float) -> Fitted:
    """L2 logistic regression on percentile-clipped, standardised features (balanced classes)."""
    lo, hi = np.percentile(x, 1, axis=0), np.percentile(x, 99, axis=0)
    xc = np.clip(x, lo, hi)
    mean, scale = xc.mean(axis=0), xc.std(axis=0) + 1e-9
    model = LogisticRegression(C=c, max_iter=5000, class_weight="balanced")
    model.fit((xc - mean) / scale, y)
    return Fitted(names, mean, scale, lo, hi, model.coef_, model.intercept_)


def probabilities(model: Fitted, x: np.ndarray) -> np.ndarray:
    z = model.logits(x)
    if z.shape[1] == 1:
        p1 = 1.0 / (1.0 + np.exp(-z[:, 0]))
        return np.stack([1.0 - p1, p1], axis=1)
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def held_out(photos: list[Photo], names: tuple[str, ...], y: np.ndarray, c: float) -> np.ndarray:
    """Probabilities of each photo from a model that never saw its listing (grouped K-fold)."""
    x = matrix(photos, names)
    groups = np.array([p.listing for p in photos])
    out = np.zeros((len(photos), len(np.unique(y))))
    for train, test in GroupKFold(n_splits=FOLDS).split(x, y, groups):
        out[test] = probabilities(fit(x[train], y[train], names, c), x[test])
    return out


def log_loss(prob: np.ndarray, y: np.ndarray) -> float:
    return float(-np.mean(np.log(np.clip(prob[np.arange(len(y)), y], 1e-9, 1.0))))


def choose_c(
    photos: list[Photo], names: tuple[str, ...], y: np.ndarray, grid: tuple[float, ...], verbose: bool = True
) -> tuple[float, np.ndarray]:
    """The C of `grid` with the best held-out log-loss, and its held-out probabilities."""
    best: tuple[float, float, np.ndarray] | None = None
    for c in grid:
        prob = held_out(photos, names, y, c)
        loss = log_loss(prob, y)
        acc = float((prob.argmax(axis=1) == y).mean())
        if verbose:
            print(f"  C={c:<5} held-out log-loss {loss:.3f} accuracy {acc:.3f}", file=sys.stderr)
        if best is None or loss < best[0]:
            best = (loss, c, prob)
    assert best is not None
    return best[1], best[2]


def confidence_knots(prob: np.ndarray, y: np.ndarray, verbose: bool = True) -> tuple[tuple[float, float], ...]:
    """Knots mapping the top room probability to label_confidence: the smallest threshold t whose
    held-out precision (guesses with top probability >= t) reaches the target plus margin maps to
    0.5; 1/3 (chance) maps to 0 and 1 to 1."""
    top = prob.max(axis=1)
    right = prob.argmax(axis=1) == y
    threshold = 0.99
    for t in np.arange(0.40, 0.99, 0.01):
        chosen = top >= t
        if chosen.sum() >= 10 and right[chosen].mean() >= TARGET_PRECISION + PRECISION_MARGIN:
            threshold = float(t)
            break
    chosen = top >= threshold
    if verbose:
        print(
            f"  room threshold {threshold:.2f}: coverage {chosen.mean():.3f}, precision {right[chosen].mean():.3f}",
            file=sys.stderr,
        )
    return ((1.0 / 3.0, 0.0), (round(threshold, 2), 0.5), (1.0, 1.0))


def _tuple(values: np.ndarray, digits: int = 5) -> str:
    return "(" + ", ".join(f"{float(v):.{digits}g}" for v in values) + ("," if len(values) == 1 else "") + ")"


def model_source(name: str, model: Fitted) -> str:
    rows = ", ".join(_tuple(r) for r in model.coef)
    return (
        f"{name} = _Logistic(\n"
        f"    names={tuple(model.names)!r},\n"
        f"    mean={_tuple(model.mean)},\n"
        f"    scale={_tuple(model.scale)},\n"
        f"    lo={_tuple(model.lo)},\n"
        f"    hi={_tuple(model.hi)},\n"
        f"    coef=({rows}{',' if len(model.coef) == 1 else ''}),\n"
        f"    intercept={_tuple(model.intercept)},\n"
        f")"
    )


def fit_all(photos: list[Photo], verbose: bool = True) -> dict[str, Any]:
    """Choose C by grouped CV for both models, fit them on all `photos`, choose the knots on the
    room model's held-out probabilities."""
    say = print if verbose else (lambda *_a, **_k: None)
    y_ext = np.array([1 if p.label == "exterior" else 0 for p in photos])
    say("exterior model:", file=sys.stderr)
    c_ext, _ = choose_c(photos, EXTERIOR_FEATURES, y_ext, EXTERIOR_C_GRID, verbose)
    exterior = fit(matrix(photos, EXTERIOR_FEATURES), y_ext, EXTERIOR_FEATURES, c_ext)
    rooms = [p for p in photos if p.label != "exterior"]
    y_room = np.array([ROOM_CLASSES.index(p.label) for p in rooms])
    say("room model:", file=sys.stderr)
    c_room, prob_room = choose_c(rooms, ROOM_FEATURES, y_room, C_GRID, verbose)
    room = fit(matrix(rooms, ROOM_FEATURES), y_room, ROOM_FEATURES, c_room)
    return {"exterior": exterior, "room": room, "knots": confidence_knots(prob_room, y_room, verbose)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    args = ap.parse_args()
    photos = load_dataset(args.data, args.cache)
    if not photos:
        print(f"no labelled photos under {args.data}/photos/listings*", file=sys.stderr)
        return 1
    fitted = fit_all(photos)
    print(model_source("_EXTERIOR_MODEL", fitted["exterior"]))
    print(model_source("_ROOM_MODEL", fitted["room"]))
    knots = ", ".join(f"({a:.4g}, {b:.4g})" for a, b in fitted["knots"])
    print(
        "#: (top room probability, label_confidence) knots: 0.5 sits at the smallest top probability whose\n"
        "#: held-out precision (guesses at or above it) is >= 88 % (85 % target + 3 % margin)."
    )
    print(f"_ROOM_CONFIDENCE_KNOTS: tuple[tuple[float, float], ...] = ({knots})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
