#!/usr/bin/env python3
"""Check a rendered listing video against what we promise. Prints JSON; exits 1 if a check fails.

    picaivid render PHOTOS --music SONG --out out.mp4 --json > report.json
    python scripts/check_render.py report.json --music SONG

Checks:
* the video is 1920x1080 (or --size), 30 fps, H.264 yuv420p + AAC, and lasts the timeline within a frame;
* it opens on an exterior photo;
* every transition's centre (as encoded: on the frame grid) is within one frame of a beat of the grid, and
  within one frame of an onset found independently in the music (librosa onset detection, fine hop);
* integrated loudness is -14 +/- 1 LUFS and true peak <= -1 dBTP (+0.5 dB tolerance).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from app.media.ffmpeg import decode_audio, measure_loudness, probe


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("report", type=Path, help="the JSON printed by `picaivid render --json`")
    parser.add_argument("--music", type=Path, help="the music track (for the independent onset check)")
    parser.add_argument("--size", default="1920x1080")
    parser.add_argument("--fps", type=float, default=30.0)
    args = parser.parse_args(argv)

    report = json.loads(args.report.read_text())
    tl = report["timeline"]
    fps = args.fps
    frame = 1.0 / fps
    checks: dict[str, Any] = {}

    info = probe(report["output"])
    width, height = (int(v) for v in args.size.split("x"))
    checks["format"] = {
        "ok": bool(
            info.video
            and info.audio
            and (info.video.width, info.video.height) == (width, height)
            and info.video.fps == fps
            and info.video.codec == "h264"
            and info.video.pix_fmt == "yuv420p"
            and info.audio.codec == "aac"
            and abs(info.frame_count - round(tl["total_duration"] * fps)) <= 1
        ),
        "video": vars(info.video) if info.video else None,
        "audio": vars(info.audio) if info.audio else None,
        "frames": info.frame_count,
        "timeline_seconds": tl["total_duration"],
    }
    checks["opens_on_exterior"] = {"ok": tl["clips"][0]["room"] == "exterior", "first": tl["clips"][0]["photo"]}

    centres = [round(c["end"] * fps) / fps for c in tl["clips"][:-1]]
    beats = np.asarray(tl["beats"])
    beat_err = [float(np.min(np.abs(beats - c))) for c in centres]
    checks["transitions_on_beats"] = {
        "ok": all(e <= frame for e in beat_err),
        "max_error_ms": round(max(beat_err, default=0) * 1000, 1),
        "transitions": len(centres),
    }
    if args.music:
        from app.media.audio import load_librosa

        librosa = load_librosa()  # through the project's cache lock: never compile into a shared cache alone
        sr, hop = 22050, 64
        y = decode_audio(args.music, sample_rate=sr)
        onsets = librosa.onset.onset_detect(y=y, sr=sr, hop_length=hop, units="time", backtrack=False)
        music_centres = [c + tl["music_offset"] for c in centres]
        onset_err = [float(np.min(np.abs(onsets - c))) for c in music_centres]
        checks["transitions_on_onsets"] = {
            "ok": all(e <= frame for e in onset_err),
            "errors_ms": [round(e * 1000, 1) for e in onset_err],
        }

    loud = measure_loudness(report["output"])
    checks["loudness"] = {
        "ok": abs(loud.integrated_lufs + 14) <= 1 and loud.true_peak_dbtp <= -0.5,
        "integrated_lufs": loud.integrated_lufs,
        "true_peak_dbtp": loud.true_peak_dbtp,
    }
    ok = all(c["ok"] for c in checks.values())
    print(json.dumps({"ok": ok, "checks": checks}, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
