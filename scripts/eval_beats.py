#!/usr/bin/env python
"""Evaluate `app.media.audio.analyze_music` on the shared music data; prints one JSON object.

    python scripts/eval_beats.py [--data ../shared/data/music] [--classical] [--model 1]

Two kinds of reference, found anywhere under --data:

* `<stem>.beats` (beat-time annotation, "time<TAB>position-in-bar" per line, as GTZAN via mirdata):
  beat F-measure at +-70 ms after discarding the first 5 s (the MIREX / mir_eval convention), ours and
  librosa's default `librosa.beat.beat_track` (the baseline we must never fall below); the same for
  downbeats (position 1); the reference meter is the largest position in the bar; the reference tempo
  is 60 / the median annotated beat interval (and the `<stem>.bpm` value is reported beside it).
* `<stem>.documented_tempo.txt` (first non-comment line: the tempo its publisher documents): the
  detected tempo against it.

Tempo: "exact" within 4 %, "octave" when within 4 % of half or double (reported separately).
The audio is the file with the same stem and an audio extension. `evaluate(data_dir)` returns the
same dict for other scripts (`scripts/eval_analysis.py`). Exit status 0 unless a file fails to analyse.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from app.errors import PicaividError  # noqa: E402
from app.media.audio import analyze_samples, load_librosa, load_music  # noqa: E402

AUDIO_EXTENSIONS = (".wav", ".mp3", ".flac", ".m4a", ".ogg", ".aac")
WINDOW = 0.07
TRIM = 5.0
TEMPO_TOLERANCE = 0.04
SR = 22050


def f_measure(reference: np.ndarray, estimated: np.ndarray) -> float:
    """mir_eval's beat F-measure (+-70 ms, first 5 s discarded)."""
    import mir_eval

    ref = mir_eval.beat.trim_beats(np.asarray(reference, dtype=float), min_beat_time=TRIM)
    est = mir_eval.beat.trim_beats(np.asarray(estimated, dtype=float), min_beat_time=TRIM)
    if ref.size == 0 or est.size == 0:
        return 0.0
    return float(mir_eval.beat.f_measure(ref, est, f_measure_threshold=WINDOW))


def tempo_match(detected: float, reference: float) -> dict[str, bool]:
    """Exact (within 4 %) and up to an octave (x0.5, x1 or x2 within 4 %)."""
    exact = abs(detected / reference - 1) <= TEMPO_TOLERANCE
    octave = any(abs(detected / (reference * f) - 1) <= TEMPO_TOLERANCE for f in (0.5, 1.0, 2.0))
    return {"tempo_exact": exact, "tempo_octave": octave}


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


def _references(data: Path) -> list[tuple[Path, Path, str]]:
    """(audio, reference file, kind) for every annotated clip under `data`."""
    found: list[tuple[Path, Path, str]] = []
    for ann in sorted(data.rglob("*.beats")):
        audio = audio_for(ann.with_suffix(""))
        if audio is not None:
            found.append((audio, ann, "beats"))
    for doc in sorted(data.rglob("*.documented_tempo.txt")):
        audio = audio_for(doc.with_name(doc.name.removesuffix(".documented_tempo.txt")))
        if audio is not None:
            found.append((audio, doc, "documented_tempo"))
    return found


def _analyse(samples: np.ndarray, beat_model: object | None) -> tuple[dict[str, Any], Any]:
    start = time.perf_counter()
    grid = analyze_samples(samples, SR, beat_model=beat_model)
    info: dict[str, Any] = {
        "tempo": round(grid.tempo, 2),
        "meter": grid.meter,
        "beats_per_bar": grid.beats_per_bar,
        "confidence": round(grid.confidence, 3),
        "source": grid.source,
        "warnings": grid.warnings,
        "duration": round(grid.duration, 2),
        "seconds": round(time.perf_counter() - start, 2),
    }
    return info, grid


def _beat_clip(samples: np.ndarray, ann: Path, grid: Any, info: dict[str, Any]) -> None:
    librosa = load_librosa()
    table = np.loadtxt(ann, ndmin=2)
    ref_beats = table[:, 0]
    _, baseline = librosa.beat.beat_track(y=samples, sr=SR, units="time")
    info["beat_f"] = round(f_measure(ref_beats, np.asarray(grid.beats)), 4)
    info["librosa_beat_f"] = round(f_measure(ref_beats, np.asarray(baseline)), 4)
    if table.shape[1] > 1:
        info["downbeat_f"] = round(f_measure(ref_beats[table[:, 1] == 1], np.asarray(grid.downbeats)), 4)
        info["reference_beats_per_bar"] = int(table[:, 1].max())
        info["meter_right"] = grid.beats_per_bar == info["reference_beats_per_bar"]
    reference = 60.0 / float(np.median(np.diff(ref_beats)))
    info["reference_tempo"] = round(reference, 2)
    bpm_file = ann.with_suffix(".bpm")
    if bpm_file.is_file():
        info["bpm_file_tempo"] = round(float(np.loadtxt(bpm_file)), 2)
    info.update(tempo_match(grid.tempo, reference))


def _mean(results: list[dict[str, Any]], key: str) -> float | None:
    values = [float(r[key]) for r in results if key in r]
    return round(float(np.mean(values)), 4) if values else None


def _summary(results: list[dict[str, Any]], failures: int) -> dict[str, Any]:
    beats = [r for r in results if r.get("kind") == "beats"]
    tempo = [r for r in results if "tempo_exact" in r]
    return {
        "files": len(results),
        "failures": failures,
        "mean_beat_f": _mean(beats, "beat_f"),
        "mean_librosa_beat_f": _mean(beats, "librosa_beat_f"),
        "clips_below_librosa": [Path(r["file"]).name for r in beats if r["beat_f"] < r["librosa_beat_f"]],
        "mean_downbeat_f": _mean(beats, "downbeat_f"),
        "meter_right": sum(bool(r.get("meter_right")) for r in beats),
        "meter_clips": sum("meter_right" in r for r in beats),
        "tempo_exact": sum(bool(r["tempo_exact"]) for r in tempo),
        "tempo_octave": sum(bool(r["tempo_octave"]) for r in tempo),
        "tempo_clips": len(tempo),
        "seconds_per_minute_of_audio": round(
            sum(r["seconds"] for r in results) / max(1e-9, sum(r["duration"] for r in results) / 60.0), 2
        ),
    }


def evaluate(data_dir: Path, *, classical: bool = False, model: int = 1) -> dict[str, Any]:
    """Per-clip results and their means (see the module docstring); BeatNet weight set `model` unless
    `classical` (or the BeatNet package is missing)."""
    data = Path(data_dir).resolve()
    load_librosa()  # up front (and through the cache lock), so per-file timings are the analysis alone
    beat_model = None
    if not classical:
        from app.models.beatnet import try_load_beat_model

        beat_model = try_load_beat_model(which=model)
    results: list[dict[str, Any]] = []
    failures = 0
    for audio, ref, kind in _references(data):
        try:
            samples = load_music(audio, sample_rate=SR)
            info, grid = _analyse(samples, beat_model)
        except PicaividError as exc:
            results.append({"file": str(audio), "kind": kind, "error": str(exc)})
            failures += 1
            continue
        info = {"file": str(audio), "kind": kind, **info}
        if kind == "beats":
            _beat_clip(samples, ref, grid, info)
        else:
            documented = read_documented_tempo(ref)
            info["reference_tempo"] = documented
            info.update(tempo_match(grid.tempo, documented))
        results.append(info)
    return {
        "data": str(data),
        "beat_model": getattr(beat_model, "source", None),
        "summary": _summary(results, failures),
        "results": results,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument(
        "--data",
        type=Path,
        default=ROOT.parent / "shared" / "data" / "music",
        help="folder searched for *.beats and *.documented_tempo.txt (default: %(default)s)",
    )
    parser.add_argument("--classical", action="store_true", help="no beat network (the librosa path)")
    parser.add_argument("--model", type=int, default=1, help="BeatNet weight set 1-3 (1 = trained without GTZAN)")
    args = parser.parse_args()
    if not args.data.is_dir():
        print(json.dumps({"error": f"{args.data} is not a folder"}))
        return 2
    report = evaluate(args.data, classical=args.classical, model=args.model)
    print(json.dumps(report, indent=2, default=float))
    return 1 if report["summary"]["failures"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
