"""LTX-2 GPU check: seconds per clip, peak VRAM and cancel latency at the production size, plus the tiny
pipeline's correctness. Prints one JSON object. Runs offline.

    python scripts/gpu_check.py                     # production settings (LTX_STEPS, LTX_WIDTH/HEIGHT, ...)
    python scripts/gpu_check.py --steps 8 --seconds 3 --weights /models/ltx2/LTX-2 --offload model

On a CUDA machine: the real weights from --weights / LTX_MODEL_PATH when present, else the full-size
LTX-2 architecture with random weights built directly on the GPU in bf16 (timing and memory do not depend
on weight values; the text encoder is Gemma 3 12B, the tokenizer a local stand-in). Without CUDA the JSON
says so and only the tiny correctness check runs (on the CPU).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from app.config import Settings
from app.errors import RenderCancelled
from app.media.ffmpeg import probe
from app.media.ltx_render import LtxOptions, LtxRequest, generate, render_ltx
from app.media.types import MotionPlan, MotionType, Viewport
from app.models import ltx2

PLAN = MotionPlan(MotionType.PUSH_IN, Viewport(0.5, 0.5, 1.0), Viewport(0.52, 0.5, 1.2))


def _photo(w: int, h: int) -> np.ndarray:
    """A synthetic 'room': gradient walls, a floor, a window and a table (no file needed)."""
    yy, xx = np.mgrid[0:h, 0:w]
    rgb = np.stack([180 + xx * 60 // w, 170 + yy * 50 // h, 160 + (xx + yy) * 40 // (w + h)], axis=-1)
    rgb[int(h * 0.7) :, :] = (120, 90, 60)
    rgb[int(h * 0.15) : int(h * 0.5), int(w * 0.6) : int(w * 0.85)] = (200, 225, 250)
    rgb[int(h * 0.6) : int(h * 0.75), int(w * 0.2) : int(w * 0.5)] = (70, 50, 40)
    return np.clip(rgb, 0, 255).astype(np.uint8)


def _request(width: int, height: int, fps: int, seconds: float, **kw: Any) -> LtxRequest:
    return LtxRequest(
        rgb=_photo(1600, 1067),
        plan=PLAN,
        width=width,
        height=height,
        fps=fps,
        duration=seconds,
        seed_key="gpu-check",
        room_type="living_room",
        **kw,
    )


def cancel_latency(
    pipe: Any, request_args: dict[str, Any], options: LtxOptions, after_step: int, fraction: float = 0.5
) -> dict[str, Any]:
    """Set the cancel event `fraction` of a step into step `after_step + 1` (from another thread, as a
    SIGTERM handler would) and time how long the render takes to stop. fraction 0: at once, at step end."""
    cancel = threading.Event()
    marks: dict[str, float] = {}

    def fire() -> None:
        marks["set"] = time.perf_counter()
        cancel.set()

    def progress(done: int, total: int) -> None:
        marks[f"step{done}"] = time.perf_counter()
        if done != after_step:
            return
        if fraction <= 0:
            fire()
            return
        step = marks[f"step{done}"] - marks.get(f"step{done - 1}", marks["start"])
        timer = threading.Timer(step * fraction, fire)
        timer.daemon = True
        timer.start()

    marks["start"] = time.perf_counter()
    try:
        generate(pipe, _request(**request_args, cancel=cancel, progress=progress), options)
    except RenderCancelled:
        stopped = time.perf_counter()
        return {"cancelled": True, "latency_s": round(stopped - marks.get("set", stopped), 3)}
    return {"cancelled": False, "latency_s": None, "note": "finished before the cancel fired"}


def tiny_check(device: str) -> dict[str, Any]:
    """Build the tiny random pipeline, load it through the production loader, render, compare, cancel."""
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        folder = ltx2.save_tiny_random(Path(tmp) / "LTX-2")
        loaded = ltx2.load_pipeline(folder, device=device)
        if not loaded.ok:
            return {"ok": False, "reason": loaded.reason}
        options = LtxOptions(steps=2, max_width=64, max_height=64, max_sequence_length=32)
        args: dict[str, Any] = {"width": 64, "height": 64, "fps": 30, "seconds": 11 / 30}
        a, stats = generate(loaded.pipeline, _request(**args), options)
        b, _ = generate(loaded.pipeline, _request(**args), options)
        out = Path(tmp) / "tiny.mp4"
        render_ltx(loaded.pipeline, _request(**args), out, options=options)
        info = probe(out)
        # Tiny steps take milliseconds: cancel at the end of step 1 (mid-step is covered by tests/test_ltx2.py).
        cancel = cancel_latency(loaded.pipeline, args, LtxOptions(**{**options.__dict__, "steps": 4}), 1, 0.0)
        checks = {
            "generated_frames": int(a.shape[0]) == 9,
            "deterministic": bool(np.array_equal(a, b)),
            "clip_frames": info.frame_count == stats.frames == 11,
            "clip_size": info.video is not None and (info.video.width, info.video.height) == (64, 64),
            "cancelled": cancel["cancelled"],
        }
        return {
            "ok": all(checks.values()),
            "checks": checks,
            "device": loaded.device,
            "dtype": loaded.dtype,
            "seconds": round(time.perf_counter() - t0, 2),
            "cancel": cancel,
        }


def production_pipeline(weights: Path, offload: str) -> tuple[Any, str]:
    """(pipeline, "weights" | "random"): the real checkpoint when present, else the random full-size one."""
    import torch

    if ltx2.missing_weights_reason(weights) is None:
        loaded = ltx2.load_pipeline(weights, offload=offload, device="cuda")
        if not loaded.ok:
            raise RuntimeError(loaded.reason)
        return loaded.pipeline, "weights"
    with ltx2.build_context("cuda", torch.bfloat16):
        pipe = ltx2.build_random_pipeline(ltx2.FULL_CONFIG, tokenizer=ltx2.tiny_tokenizer())
    pipe.set_progress_bar_config(disable=True)
    return pipe, "random"


def production_check(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    import torch

    t0 = time.perf_counter()
    pipe, source = production_pipeline(Path(args.weights), args.offload)
    build_s = time.perf_counter() - t0
    options = LtxOptions(
        **{**ltx2.options_from_settings(settings).__dict__, **({"steps": args.steps} if args.steps else {})}
    )
    width, height = settings.output_size
    req: dict[str, Any] = {"width": width, "height": height, "fps": settings.OUTPUT_FPS, "seconds": args.seconds}
    step_times: list[float] = []

    def progress(done: int, total: int) -> None:
        step_times.append(time.perf_counter())

    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    with tempfile.TemporaryDirectory() as tmp:
        t1 = time.perf_counter()
        stats = render_ltx(pipe, _request(**req, progress=progress), Path(tmp) / "clip.mp4", options=options)
        clip_s = time.perf_counter() - t1
    steps = np.diff(step_times) if len(step_times) > 1 else np.array([float("nan")])
    result = {
        "source": source,
        "offload": args.offload,
        "build_or_load_s": round(build_s, 1),
        "output": f"{width}x{height}@{settings.OUTPUT_FPS}",
        "clip_seconds": args.seconds,
        "generation": f"{stats.generation_size[0]}x{stats.generation_size[1]}x{stats.generated_frames}f"
        f"@{stats.generation_fps:g}",
        "steps": options.steps,
        "seconds_per_clip": round(clip_s, 2),
        "encode_s": round(stats.extra.get("encode_seconds", 0.0), 2),
        "median_step_s": round(float(np.median(steps)), 3),
        "peak_vram_gb": round(torch.cuda.max_memory_allocated() / 2**30, 2),
        "peak_vram_reserved_gb": round(torch.cuda.max_memory_reserved() / 2**30, 2),
        "weights_gb": round(sum(p.numel() * p.element_size() for p in _parameters(pipe)) / 2**30, 2),
    }
    cancel_options = LtxOptions(**{**options.__dict__, "steps": max(3, min(6, options.steps))})
    result["cancel"] = cancel_latency(pipe, req, cancel_options, 2)
    return result


def _parameters(pipe: Any) -> list[Any]:
    params: list[Any] = []
    for name in ("transformer", "text_encoder", "vae", "audio_vae", "connectors", "vocoder"):
        module = getattr(pipe, name, None)
        if module is not None:
            params.extend(module.parameters())
    return params


def main() -> int:
    settings = Settings()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", default=str(ltx2.model_path_from_settings(settings)))
    parser.add_argument("--offload", default=settings.LTX_OFFLOAD, choices=ltx2.OFFLOAD_MODES)
    parser.add_argument("--steps", type=int, default=0, help="denoising steps (default: LTX_STEPS)")
    parser.add_argument("--seconds", type=float, default=4.0, help="clip length (default 4 s)")
    parser.add_argument("--skip-production", action="store_true", help="only the tiny correctness check")
    args = parser.parse_args()

    ltx2.go_offline()
    import diffusers
    import torch

    cuda = torch.cuda.is_available()
    report: dict[str, Any] = {
        "cuda": cuda,
        "device": torch.cuda.get_device_name(0) if cuda else "cpu",
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
    }
    report["tiny"] = tiny_check("cuda" if cuda else "cpu")
    if not cuda:
        report["production"] = {"skipped": "no CUDA device: only the tiny correctness check ran (on the CPU)"}
    elif args.skip_production:
        report["production"] = {"skipped": "--skip-production"}
    else:
        try:
            report["production"] = production_check(args, settings)
        except Exception as exc:  # out of memory, missing kernels: reported in the JSON, not a traceback
            report["production"] = {"error": f"{type(exc).__name__}: {exc}"}
    print(json.dumps(report, indent=2, default=str))
    return 0 if report["tiny"].get("ok") else 1


if __name__ == "__main__":
    raise SystemExit(main())
