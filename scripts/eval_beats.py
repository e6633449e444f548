#!/usr/bin/env python
"""Evaluate `app.media.audio.analyze_music` on the shared music data; prints JSON.

    python scripts/eval_beats.py [--data ../shared/data/music]

Two kinds of reference, found anywhere under --data:

* `<stem>.beats` (beat-time annotation, "time<TAB>position-in-bar" per line, as GTZAN via mirdata):
  beat F-measure at +-70 ms after discarding the first 5 s (the MIREX / mir_eval convention), with
  mir_eval when it is installed and an equivalent one-to-one matching otherwise; the same for
  downbeats (position 1); and the detected tempo against `<stem>.bpm` when present.
* `<stem>.documented_tempo.txt` (first non-comment line: the tempo its publisher documents): the
  detected tempo against it. "exact" within 3 %, "half" / "double" when off by an octave. Half is
  acceptable for video cuts (every other real beat); double and anything else is not.

The audio is the file with the same stem and an audio extension. Exit status 0 unless a file fails
to analyse.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from app.errors import PicaividError  # noqa: E402
from app.media.audio import analyze_music  # noqa: E402

AUDIO_EXTENSIONS = (".wav", ".mp3", ".flac", ".m4a", ".ogg", ".aac")
WINDOW = 0.07
TRIM = 5.0


def f_measure(reference: np.ndarray, estimated: np.ndarray) -> tuple[float, str]:
    """Beat F-measure (+-70 ms, first 5 s discarded); mir_eval's when available."""
    try:
        import mir_eval

        ref = mir_eval.beat.trim_beats(reference, min_beat_time=TRIM)
        est = mir_eval.beat.trim_beats(estimated, min_beat_time=TRIM)
        return float(mir_eval.beat.f_measure(ref, est, f_measure_threshold=WINDOW)), "mir_eval"
    except ImportError:
        pass
    ref, est = reference[reference >= TRIM], estimated[estimated >= TRIM]
    if ref.size == 0 or est.size == 0:
        return 0.0, "builtin"
    # beats are further apart than twice the window, so greedy nearest matching is one-to-one optimal
    used = np.zeros(est.size, dtype=bool)
    hits = 0
    for r in ref:
        gaps = np.where(used, np.inf, np.abs(est - r))
        j = int(np.argmin(gaps))
        if gaps[j] <= WINDOW:
            used[j] = True
            hits += 1
    precision, recall = hits / est.size, hits / ref.size
    return (0.0 if hits == 0 else 2 * precision * recall / (precision + recall)), "builtin"


def tempo_relation(detected: float, reference: float, tol: float = 0.03) -> str:
    for name, factor in (("exact", 1.0), ("half", 0.5), ("double", 2.0), ("two_thirds", 2 / 3), ("three_halves", 1.5)):
        if abs(detected / (reference * factor) - 1) <= tol:
            return name
    return "other"


def audio_for(stem_path: Path) -> Path | None:
    for ext in AUDIO_EXTENSIONS:
        candidate = stem_path.with_name(stem_path.name + ext)
        if candidate.is_file():
            return candidate
    return None


def read_documented_tempo(path: Path) -> float:
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            return float(line.split()[0])
    raise ValueError(f"{path} has no tempo line")


def analyse(audio: Path) -> tuple[dict[str, object], np.ndarray, np.ndarray, float]:
    start = time.perf_counter()
    grid = analyze_music(audio)
    elapsed = time.perf_counter() - start
    info: dict[str, object] = {
        "file": str(audio),
        "tempo": round(grid.tempo, 3),
        "beats": len(grid.beats),
        "first_beat": round(grid.beat_offset, 3),
        "confidence": round(grid.confidence, 3),
        "source": grid.source,
        "duration": round(grid.duration, 2),
        "seconds": round(elapsed, 2),
    }
    return info, np.asarray(grid.beats), np.asarray(grid.downbeats), grid.tempo


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--data",
        type=Path,
        default=ROOT.parent / "shared" / "data" / "music",
        help="folder searched for *.beats and *.documented_tempo.txt (default: %(default)s)",
    )
    args = parser.parse_args()
    data: Path = args.data.resolve()
    if not data.is_dir():
        print(json.dumps({"error": f"{data} is not a folder"}))
        return 2

    start = time.perf_counter()
    from app.media.audio import load_librosa

    load_librosa()  # up front (and through the cache lock), so per-file timings are the analysis alone

    import_seconds = round(time.perf_counter() - start, 2)
    results: list[dict[str, object]] = []
    f_values: list[float] = []
    failures = 0
    for ann in sorted(data.rglob("*.beats")):
        stem = ann.with_suffix("")
        audio = audio_for(stem)
        if audio is None:
            continue
        table = np.loadtxt(ann, ndmin=2)
        try:
            info, beats, downbeats, tempo = analyse(audio)
        except PicaividError as exc:
            results.append({"file": str(audio), "error": str(exc)})
            failures += 1
            continue
        info["kind"] = "beat_annotation"
        f_value, info["f_measure_impl"] = f_measure(table[:, 0], beats)
        info["beat_f_measure"] = round(f_value, 4)
        f_values.append(f_value)
        if table.shape[1] > 1:
            info["downbeat_f_measure"] = round(f_measure(table[table[:, 1] == 1, 0], downbeats)[0], 4)
        bpm_file = stem.with_name(stem.name + ".bpm")
        if bpm_file.is_file():
            annotated = float(np.loadtxt(bpm_file))
            info["annotated_tempo"] = round(annotated, 2)
            info["tempo_relation"] = tempo_relation(tempo, annotated, tol=0.04)
        results.append(info)

    for doc in sorted(data.rglob("*.documented_tempo.txt")):
        stem = doc.with_name(doc.name.removesuffix(".documented_tempo.txt"))
        audio = audio_for(stem)
        if audio is None:
            continue
        try:
            info, _, _, tempo = analyse(audio)
        except PicaividError as exc:
            results.append({"file": str(audio), "error": str(exc)})
            failures += 1
            continue
        documented = read_documented_tempo(doc)
        relation = tempo_relation(tempo, documented)
        info.update(
            kind="documented_tempo",
            documented_tempo=documented,
            tempo_relation=relation,
            acceptable=relation in ("exact", "half"),
        )
        results.append(info)

    summary = {
        "files": len(results),
        "failures": failures,
        "mean_beat_f_measure": round(float(np.mean(f_values)), 4) if f_values else None,
        "documented_tempo_acceptable": sum(1 for r in results if r.get("acceptable")),
        "documented_tempo_files": sum(1 for r in results if r.get("kind") == "documented_tempo"),
        "librosa_import_seconds": import_seconds,
    }
    print(json.dumps({"data": str(data), "summary": summary, "results": results}, indent=2, default=float))
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
