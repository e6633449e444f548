#!/usr/bin/env python3
"""Measure the pipeline against a bare ffmpeg encode on the same machine. Prints JSON.

    python scripts/benchmark.py [--photos 40] [--music-seconds 45] [--target-length 30]
                                [--resolution 1920x1080] [--moviepy] [--out bench.json] [--keep DIR]

On a generated listing (N photos, a music track of the given length), one job with two deliverables
(16:9 and 9:16), in one run:
* `phases_s`: wall time of each phase; `total_s`;
* per deliverable its encode time and `bare_encode_s`: ffmpeg alone re-encoding the delivered file at the
  same size, preset (OUTPUT_X264_PRESET) and CRF, the floor for that deliverable;
* `pipeline_vs_bare_encode`: every phase for one deliverable (the total minus the second deliverable's
  encode) over the first deliverable's bare encode (goal <= 1.3);
* `extra_deliverable_vs_bare_encode`: the second deliverable's encode over its own bare encode (<= 1.1);
* `peak_rss_mb`: peak resident memory of this process and all its children together, sampled from /proc;
* with `--moviepy`, `moviepy_speedup`: MoviePy 2.x making one 16:9 Ken Burns video with 0.5 s
  crossfades of the same length from the same photos, at the same preset and CRF, over our pipeline.

Numbers are for comparing commits on one machine; they are never asserted in tests.

    python scripts/benchmark.py --parallax-quality [--out q.json]

measures the depth-parallax renderer instead (`parallax_quality` in the JSON): for every sample room
(view 1, with its TRUE depth), a dolly-in with a slight truck rendered three ways - the TRUE frames
(the sample renderer, camera moved), the parallax clip from the photo + depth, and the best Ken Burns
approximation (per frame, the zoom + pan window that maximises PSNR against the true frame, found by
Nelder-Mead from the parallax window) - PSNR and SSIM of both against the truth; and the wall time of
a full 1080p30 4 s clip (encode included) by each renderer: `time_ratio_parallax_vs_ken_burns`.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.config import Settings
from app.db.migrate import upgrade
from app.db.session import session_factory
from app.media.ffmpeg import run_ffmpeg
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


class TreeRss(threading.Thread):
    """Peak resident memory of this process and all its descendants together (ffmpeg, x264, workers),
    sampled from /proc every 50 ms (Linux; elsewhere only this process's own peak is known)."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak_kb = 0
        self.stop = threading.Event()

    @staticmethod
    def _rss_kb(pid: int) -> int:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        except OSError:
            pass
        return 0

    @staticmethod
    def _children(pid: int) -> list[int]:
        found: list[int] = []
        for task in Path(f"/proc/{pid}/task").glob("*"):
            try:
                found += [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                continue
        return found

    def run(self) -> None:
        while not self.stop.wait(0.05):
            pids, total = [os.getpid()], 0
            while pids:
                pid = pids.pop()
                total += self._rss_kb(pid)
                pids += self._children(pid)
            self.peak_kb = max(self.peak_kb, total)

    def peak_mb(self) -> float:
        own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return round(max(self.peak_kb, own) / 1024, 1)


def _settings(root: Path, resolution: str) -> Settings:
    return Settings(
        _env_file=None,
        DATABASE_URL=f"sqlite:///{root / 'bench.db'}",  # type: ignore[call-arg]
        LOCAL_STORAGE_PATH=root / "storage",
        WORK_DIR=root / "work",
        OUTPUT_RESOLUTION=resolution,
        S3_BUCKET="",
    )


def _run_pipeline(
    root: Path, photos_dir: Path, music: Path, settings: Settings, target: float, specs: list[Any]
) -> tuple[PhaseContext, int, Any, float]:
    upgrade(settings.DATABASE_URL)
    ctx = PhaseContext(
        settings=settings,
        sessions=session_factory(settings.DATABASE_URL),
        storage=LocalStorage(root / "storage"),
        worker_id="benchmark",
    )
    job_id = create_job(
        ctx, listing_id="benchmark", photos=photos_from_folder(photos_dir), music=music, target_length=target,
        deliverables=specs,
    )  # fmt: skip
    t1 = time.perf_counter()
    outcome = run_job(ctx, job_id)
    return ctx, job_id, outcome, time.perf_counter() - t1


def _deliverable_rows(ctx: PhaseContext, job_id: int) -> list[Any]:
    from sqlalchemy import select

    from app.db.models import Deliverable
    from app.db.session import session_scope

    with session_scope(ctx.sessions) as s:
        rows = list(s.scalars(select(Deliverable).where(Deliverable.job_id == job_id).order_by(Deliverable.id)))
        for r in rows:
            s.expunge(r)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=40)
    parser.add_argument("--music-seconds", type=float, default=45.0)
    parser.add_argument("--target-length", type=float, default=30.0)
    parser.add_argument("--resolution", default="1920x1080")
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it")
    parser.add_argument("--moviepy", action="store_true", help="also time MoviePy 2.x on the same photos")
    parser.add_argument("--parallax-quality", action="store_true", help="measure the parallax renderer instead")
    args = parser.parse_args(argv)
    if args.parallax_quality:
        return _emit({"parallax_quality": parallax_quality()}, args.out)

    from app.media.deliverables import DeliverableSpec

    root = args.keep or Path(tempfile.mkdtemp(prefix="picaivid-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    rss = TreeRss()
    try:
        t0 = time.perf_counter()
        photos_dir, music = generate_listing(root / "input", args.photos, args.music_seconds)
        generate_s = time.perf_counter() - t0
        settings = _settings(root, args.resolution)
        specs = [DeliverableSpec(format="16:9"), DeliverableSpec(format="9:16")]
        rss.start()
        ctx, job_id, outcome, total_s = _run_pipeline(root, photos_dir, music, settings, args.target_length, specs)
        rss.stop.set()
        if outcome.status != "completed":
            print(json.dumps({"error": outcome.error}), file=sys.stderr)
            return 1
        result = _measure(ctx, job_id, outcome, total_s, settings, root, args)
        result["input"]["generate_s"] = round(generate_s, 2)
        result["peak_rss_mb"] = rss.peak_mb()
        if args.moviepy:
            result["moviepy"] = moviepy_run(photos_dir, root, settings, result)
            result["moviepy_speedup"] = result["moviepy"].get("speedup")
    finally:
        rss.stop.set()
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    return _emit(result, args.out)


def _measure(
    ctx: PhaseContext, job_id: int, outcome: Any, total_s: float, settings: Settings, root: Path, args: Any
) -> dict[str, Any]:
    """Bare encodes of the delivered frames (same preset, CRF), and the ratios the issue names."""
    rows = _deliverable_rows(ctx, job_id)
    fps = settings.OUTPUT_FPS
    bare: dict[str, float] = {}
    for row in rows:
        path = ctx.storage.local_path(ctx.storage.resolve_key(row.uri or ""), root / "cache")
        bare[row.key] = bare_encode(
            [path], row.width or 0, row.height or 0, fps, settings.OUTPUT_X264_PRESET, settings.OUTPUT_CRF,
            root / f"bare-{row.key}.mp4",
        )  # fmt: skip
    first, extra = rows[0], rows[1]
    timings = {int(k): v for k, v in outcome.timings.items()}
    # The pipeline for one deliverable: every phase, minus the extra deliverable's own encode.
    one = total_s - (extra.encode_seconds or 0.0)
    return {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "input": {
            "photos": args.photos,
            "music_seconds": args.music_seconds,
            "target_length": args.target_length,
            "resolution": args.resolution,
            "fps": fps,
            "presets": {"output": settings.OUTPUT_X264_PRESET, "crf": settings.OUTPUT_CRF},
        },
        "phases_s": {
            "analyze": timings.get(1),
            "render": timings.get(2),
            "timeline": timings.get(3),
            "assemble": timings.get(4),
        },
        "total_s": round(total_s, 2),
        "deliverables": [
            {
                "key": r.key,
                "size": [r.width, r.height],
                "duration": r.duration,
                "encode_s": r.encode_seconds,
                "bare_encode_s": round(bare[r.key], 2),
            }
            for r in rows
        ],
        "pipeline_one_deliverable_s": round(one, 2),
        "pipeline_vs_bare_encode": round(one / bare[first.key], 3),
        "extra_deliverable_vs_bare_encode": round((extra.encode_seconds or 0.0) / bare[extra.key], 3),
    }


def moviepy_run(photos_dir: Path, root: Path, settings: Settings, ours: dict[str, Any]) -> dict[str, Any]:
    """MoviePy 2.x making one 16:9 video of the same length from the same photos: Ken Burns (a zoom per
    photo) with 0.5 s crossfades, at the same x264 preset and CRF. `speedup`: its time over our whole
    pipeline for one deliverable."""
    try:
        from moviepy import CompositeVideoClip, ImageClip, vfx
    except Exception as exc:  # not installed (a runtime image): report why
        return {"error": f"moviepy unavailable: {type(exc).__name__}: {exc}"}
    width, height = settings.output_size
    clips_needed = len(ours["deliverables"]) and ours["deliverables"][0]["duration"]
    files = sorted(photos_dir.rglob("*.jpg"))
    shots = max(1, round(float(clips_needed) / 2.0))
    files = (files * (shots // max(1, len(files)) + 1))[:shots]
    t0 = time.perf_counter()
    layers = []
    start = 0.0
    for path in files:
        clip = ImageClip(str(path)).resized(height=height).with_duration(2.5)
        clip = clip.resized(lambda t: 1.0 + 0.06 * t).with_position("center").with_start(start)
        layers.append(clip.with_effects([vfx.CrossFadeIn(0.5)]))
        start += 2.0
    video = CompositeVideoClip(layers, size=(width, height)).with_duration(start + 0.5)
    out = root / "moviepy.mp4"
    video.write_videofile(
        str(out), fps=settings.OUTPUT_FPS, codec="libx264", preset=settings.OUTPUT_X264_PRESET,
        ffmpeg_params=["-crf", str(settings.OUTPUT_CRF)], audio=False, logger=None,
    )  # fmt: skip
    seconds = time.perf_counter() - t0
    return {
        "seconds": round(seconds, 2),
        "video_seconds": round(start + 0.5, 2),
        "speedup": round(seconds / ours["pipeline_one_deliverable_s"], 3),
    }


def _emit(result: dict[str, Any], out: Path | None) -> int:
    text = json.dumps(result, indent=2)
    print(text)
    if out:
        out.write_text(text + "\n")
    return 0


# --- parallax quality ------------------------------------------------------------------------------

#: The benchmark's camera path, in the renderer's units (the near scene's depth, see
#: `app.media.parallax.reference_inverse_depth`): a dolly-in with a slight truck to the right.
PARALLAX_MOVE = {"dolly": 0.15, "truck": 0.05}


def _psnr(a: Any, b: Any) -> float:
    import numpy as np

    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10.0 * math.log10(255.0**2 / max(mse, 1e-10))


def _ssim(a: Any, b: Any) -> float:
    """Mean SSIM on luma (Gaussian window, sigma 1.5; Wang et al. 2004 constants)."""
    import cv2
    import numpy as np

    x = cv2.cvtColor(a, cv2.COLOR_RGB2GRAY).astype(np.float64)
    y = cv2.cvtColor(b, cv2.COLOR_RGB2GRAY).astype(np.float64)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2

    def blur(z: Any) -> Any:
        return cv2.GaussianBlur(z, (11, 11), 1.5)

    mx, my = blur(x), blur(y)
    vx, vy, cxy = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return float(s.mean())


def _window(img: Any, rect: tuple[float, float, float, float], width: int, height: int) -> Any:
    """The window `rect` (x0, y0, w, h, continuous photo pixels) of `img`, at width x height (bilinear)."""
    import cv2
    import numpy as np

    x0, y0, w, h = rect
    m = np.array([[w / width, 0, x0 + 0.5 * w / width - 0.5], [0, h / height, y0 + 0.5 * h / height - 0.5]])
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    return cv2.warpAffine(img, m.astype(np.float32), (width, height), flags=flags, borderMode=cv2.BORDER_REFLECT_101)


def best_ken_burns_frame(photo: Any, truth: Any, rect: tuple[float, float, float, float]) -> Any:
    """The Ken Burns frame (one zoom + pan window on the photo) closest to `truth` in PSNR: Nelder-Mead
    over (x0, y0, log w) at half resolution, from `rect` and two zooms around it."""
    import cv2
    import numpy as np
    from scipy.optimize import minimize

    height, width = truth.shape[:2]
    aspect = height / width
    target = cv2.resize(truth, (width // 2, height // 2), interpolation=cv2.INTER_AREA).astype(np.float32)

    def cost(p: Any) -> float:
        w = math.exp(p[2])
        frame = _window(photo, (p[0], p[1], w, w * aspect), width // 2, height // 2).astype(np.float32)
        return float(np.mean((frame - target) ** 2))

    x0, y0, w, h = rect
    best = None
    for s in (1.0, 0.96, 1.04):
        p0 = np.array([x0 + w * (1 - s) / 2, y0 + h * (1 - s) / 2, math.log(w * s)])
        simplex = p0 + np.array([[0, 0, 0], [w * 0.02, 0, 0], [0, w * 0.02, 0], [0, 0, 0.02]])
        res = minimize(
            cost, p0, method="Nelder-Mead", options={"xatol": 0.05, "fatol": 0.01, "initial_simplex": simplex}
        )
        if best is None or res.fun < best.fun:
            best = res
    assert best is not None
    w = math.exp(best.x[2])
    return _window(photo, (best.x[0], best.x[1], w, w * aspect), width, height)


def parallax_room(group: str, *, photo_size: tuple[int, int], out_size: tuple[int, int], frames: int) -> dict[str, Any]:
    """PSNR/SSIM of the parallax and best Ken Burns frames of `group` against its true frames."""
    import numpy as np

    from app.media.kenburns import ease, frame_t_norm
    from app.media.parallax import CameraMove, ParallaxCamera, reference_inverse_depth
    from app.media.types import MotionPlan, MotionType, Viewport
    from app.samples import render_true_frames

    move = CameraMove(**PARALLAX_MOVE)
    plan = MotionPlan(MotionType.PARALLAX, Viewport(), Viewport())
    base = render_true_frames(group, [], width=photo_size[0], height=photo_size[1])
    metres = 1.0 / reference_inverse_depth(base.inverse_depth)  # renderer units -> metres
    camera = ParallaxCamera(base.photo, base.inverse_depth, plan, *out_size, move=move, focal_px=base.focal_px)
    ts = [frame_t_norm(i, frames) for i in range(frames)]
    poses = [move.pose(ease(plan.easing, t)) for t in ts]
    truth = render_true_frames(group, [(r, c * metres) for r, c in poses], width=photo_size[0], height=photo_size[1])
    scores: dict[str, list[float]] = {"pp": [], "pk": [], "sp": [], "sk": []}
    for t, true_full in zip(ts, truth.frames, strict=True):
        rect = camera.rect_at(t)
        true = _window(true_full, rect, *out_size)
        par = camera.render(t)
        kb = best_ken_burns_frame(base.photo, true, rect)
        scores["pp"].append(_psnr(par, true))
        scores["pk"].append(_psnr(kb, true))
        scores["sp"].append(_ssim(par, true))
        scores["sk"].append(_ssim(kb, true))
    m = {k: round(float(np.mean(v)), 3) for k, v in scores.items()}
    return {
        "room": group,
        "psnr_parallax": m["pp"],
        "psnr_ken_burns": m["pk"],
        "ssim_parallax": round(m["sp"], 4),
        "ssim_ken_burns": round(m["sk"], 4),
        "move_m": {k: round(v * metres, 3) for k, v in PARALLAX_MOVE.items()},
        "safe_zoom": round(camera.zoom, 4),
    }


def parallax_timing(*, seconds: float = 4.0, size: tuple[int, int] = (1920, 1080), repeats: int = 2) -> dict[str, Any]:
    """Wall time of a full clip (render + x264 encode, the phase-2 settings) by Ken Burns and by
    parallax on the same photo, plan and size; the best of `repeats` each, interleaved."""
    from app.media.kenburns import render_ken_burns
    from app.media.parallax import CameraMove, render_parallax
    from app.media.types import MotionPlan, MotionType, Viewport
    from app.samples import render_true_frames

    base = render_true_frames("kitchen", [])
    plan = MotionPlan(MotionType.PUSH_IN, Viewport(0.5, 0.5, 1.0), Viewport(0.55, 0.5, 1.15))
    move = CameraMove(**PARALLAX_MOVE)
    kb_s, px_s = [], []
    with tempfile.TemporaryDirectory(prefix="picaivid-px-") as tmp:
        for _ in range(repeats):
            t0 = time.perf_counter()
            render_ken_burns(base.photo, plan, Path(tmp) / "kb.mp4", width=size[0], height=size[1], duration=seconds)
            kb_s.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            render_parallax(
                base.photo,
                base.inverse_depth,
                plan,
                Path(tmp) / "px.mp4",
                width=size[0],
                height=size[1],
                duration=seconds,
                move=move,
                focal_px=base.focal_px,
            )
            px_s.append(time.perf_counter() - t0)
    return {
        "clip": f"{size[0]}x{size[1]} 30 fps {seconds} s, photo 1600x1067",
        "ken_burns_s": round(min(kb_s), 3),
        "parallax_s": round(min(px_s), 3),
        "time_ratio_parallax_vs_ken_burns": round(min(px_s) / min(kb_s), 3),
    }


def parallax_quality(
    *, photo_size: tuple[int, int] = (960, 640), out_size: tuple[int, int] = (768, 432), frames: int = 9
) -> dict[str, Any]:
    from app.samples import ROOM_GROUPS

    t0 = time.perf_counter()
    rooms = [parallax_room(g, photo_size=photo_size, out_size=out_size, frames=frames) for g in ROOM_GROUPS]
    gains = [r["psnr_parallax"] - r["psnr_ken_burns"] for r in rooms]
    quality_s = time.perf_counter() - t0
    timing = parallax_timing()
    return {
        "rooms": rooms,
        "mean_psnr_gain_db": round(sum(gains) / len(gains), 3),
        "min_psnr_gain_db": round(min(gains), 3),
        "time_ratio_parallax_vs_ken_burns": timing.pop("time_ratio_parallax_vs_ken_burns"),
        "timing": timing,
        "setup": {
            "move": PARALLAX_MOVE,
            "photo_size": list(photo_size),
            "out_size": list(out_size),
            "frames_per_room": frames,
            "quality_s": round(quality_s, 1),
        },
    }


if __name__ == "__main__":
    raise SystemExit(main())
