#!/usr/bin/env python3
"""Measure the pipeline against a bare ffmpeg encode on the same machine. Prints JSON.

    python scripts/benchmark.py [--photos 20] [--music-seconds 60] [--target-length 30]
                                [--resolution 1920x1080] [--out bench.json] [--keep DIR]

What it measures, on a generated listing (N photos, a music track of the given length):
* wall time of each phase (orchestrator timings), and peak memory (this process and its children);
* `bare_clip_encode_s`: ffmpeg alone re-encoding the frames phase 2 rendered (its clips, back to back) at
  the same size, preset (CLIP_X264_PRESET) and CRF — the floor for phase 2;
* `bare_output_encode_s`: the same for the delivered video at OUTPUT_X264_PRESET — the floor for phase 4;
* ratios phase / bare encode. A ratio near 1 means the phase is encoder-bound.

Numbers are for comparing commits on one machine; they are never asserted in tests.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.config import Settings
from app.db.migrate import upgrade
from app.db.session import session_factory
from app.media.ffmpeg import ffmpeg_exe, run_ffmpeg
from app.orchestrator import run_job
from app.phases.base import PhaseContext
from app.samples import ROOM_GROUPS, make_sample_listing, synthesize_music
from app.services.jobs import create_job, photos_from_folder
from app.storage import LocalStorage


def generate_listing(root: Path, photos: int, music_seconds: float) -> tuple[Path, Path]:
    """`photos` synthetic photos (several houses' worth when more than one listing holds) + music."""
    photos_dir = root / "photos"
    n_house = 0
    while sum(1 for _ in photos_dir.rglob("*.jpg")) < photos:
        listing = make_sample_listing(
            root / f"house{n_house}", music_seconds=5.0, seed=11 + n_house, rooms=list(ROOM_GROUPS)
        )
        for src in sorted(listing.photos_dir.rglob("*.jpg")):
            if sum(1 for _ in photos_dir.rglob("*.jpg")) >= photos:
                break
            dest = photos_dir / src.parent.name / f"h{n_house}_{src.name}"
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dest)
        n_house += 1
    music = root / "music.wav"
    synthesize_music(music, bpm=112.0, seconds=music_seconds)
    return photos_dir, music


def bare_encode(sources: list[Path], width: int, height: int, fps: int, preset: str, crf: int, out: Path) -> float:
    """Seconds for ffmpeg alone to encode the same frames at the same settings: the rendered clips (or the
    delivered video) decoded and re-encoded back to back. Decoding H.264 costs a small fraction of
    encoding it, so this is the floor a phase that must encode these frames cannot beat."""
    inputs: list[str] = []
    for src in sources:
        inputs += ["-i", str(src)]
    graph = "".join(f"[{i}:v]" for i in range(len(sources))) + f"concat=n={len(sources)}:v=1:a=0[v]"
    t0 = time.perf_counter()
    run_ffmpeg(
        [
            "-y",
            *inputs,
            "-filter_complex",
            graph,
            "-map",
            "[v]",
            "-s",
            f"{width}x{height}",
            "-r",
            str(fps),
            "-c:v",
            "libx264",
            "-preset",
            preset,
            "-crf",
            str(crf),
            "-pix_fmt",
            "yuv420p",
            str(out),
        ],
        what="bare encode",
    )
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=20)
    parser.add_argument("--music-seconds", type=float, default=60.0)
    parser.add_argument("--target-length", type=float, default=30.0)
    parser.add_argument("--resolution", default="1920x1080")
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it")
    args = parser.parse_args(argv)

    root = args.keep or Path(tempfile.mkdtemp(prefix="picaivid-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        t0 = time.perf_counter()
        photos_dir, music = generate_listing(root / "input", args.photos, args.music_seconds)
        generate_s = time.perf_counter() - t0
        settings = Settings(
            _env_file=None,
            DATABASE_URL=f"sqlite:///{root / 'bench.db'}",  # type: ignore[call-arg]
            LOCAL_STORAGE_PATH=root / "storage",
            WORK_DIR=root / "work",
            OUTPUT_RESOLUTION=args.resolution,
            S3_BUCKET="",
        )
        upgrade(settings.DATABASE_URL)
        ctx = PhaseContext(
            settings=settings,
            sessions=session_factory(settings.DATABASE_URL),
            storage=LocalStorage(root / "storage"),
            worker_id="benchmark",
        )
        job_id = create_job(
            ctx,
            listing_id="benchmark",
            photos=photos_from_folder(photos_dir),
            music=music,
            target_length=args.target_length,
        )
        t1 = time.perf_counter()
        outcome = run_job(ctx, job_id)
        total_s = time.perf_counter() - t1
        if outcome.status != "completed":
            print(json.dumps({"error": outcome.error}), file=sys.stderr)
            return 1
        from app.services.reports import job_report

        report = job_report(ctx, job_id)
        from sqlalchemy import select

        from app.db.models import Clip
        from app.db.session import session_scope

        with session_scope(ctx.sessions) as s:
            clips = list(s.scalars(select(Clip).where(Clip.job_id == job_id).order_by(Clip.id)))
        clip_files = [ctx.storage.local_path(ctx.storage.resolve_key(c.s3_uri or ""), root / "cache") for c in clips]
        output_file = ctx.storage.local_path(ctx.storage.resolve_key(report["output_uri"]), root / "cache")
        fps = settings.OUTPUT_FPS
        width, height = settings.output_size
        clip_frames = round(sum(c.duration or 0 for c in clips) * fps)
        out_frames = round((report["timeline"] or {}).get("total_duration", 0) * fps)
        bare_clip = bare_encode(
            clip_files, width, height, fps, settings.CLIP_X264_PRESET, settings.CLIP_CRF, root / "bare_clip.mp4"
        )
        bare_out = bare_encode(
            [output_file], width, height, fps, settings.OUTPUT_X264_PRESET, settings.OUTPUT_CRF, root / "bare_out.mp4"
        )
        timings = {int(k): v for k, v in outcome.timings.items()}
        result: dict[str, Any] = {
            "machine": {
                "cpus": os.cpu_count(),
                "platform": platform.platform(),
                "python": platform.python_version(),
                "ffmpeg": ffmpeg_exe(),
            },
            "input": {
                "photos": args.photos,
                "music_seconds": args.music_seconds,
                "target_length": args.target_length,
                "resolution": args.resolution,
                "fps": fps,
                "generate_s": round(generate_s, 2),
            },
            "phases_s": {
                "analyze": timings.get(1),
                "render": timings.get(2),
                "timeline": timings.get(3),
                "assemble": timings.get(4),
            },
            "total_s": round(total_s, 2),
            "clips": len((report["timeline"] or {}).get("clips", [])),
            "rendered_frames": clip_frames,
            "output_frames": out_frames,
            "bare_clip_encode_s": round(bare_clip, 2),
            "bare_output_encode_s": round(bare_out, 2),
            "ratio_render_vs_bare": round((timings.get(2) or 0) / bare_clip, 3) if bare_clip else None,
            "ratio_assemble_vs_bare": round((timings.get(4) or 0) / bare_out, 3) if bare_out else None,
            "render_fps": round(clip_frames / timings[2], 1) if timings.get(2) else None,
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "peak_child_rss_mb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1),
            "presets": {"clip": settings.CLIP_X264_PRESET, "output": settings.OUTPUT_X264_PRESET},
        }
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
