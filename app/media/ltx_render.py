"""LTX-2 image-to-video clips: one listing photo in, one clip of exactly round(duration * fps) frames out.

Pure media code: no database, no settings. It receives a loaded `LTX2ImageToVideoPipeline` (see
`app.models.ltx2`: loading, memory needs, instance classes, licence) and an `LtxRequest`.

How a clip is made:

* **Size.** LTX-2's VAE compresses 32x in space, so the generation size is the largest one in
  multiples of 32 that has (nearly) the output's aspect and fits `LtxOptions.max_width x max_height`
  (1920x1080 -> 1248x704). The photo is cropped to the plan's *start* viewport at that aspect and
  resized to it (the conditioning image is the clip's first frame); each generated frame is then
  scaled to cover the output size and centre-cropped (1248x704 -> 1920x1080 crops 0.3% of the width).
* **Frames.** The VAE compresses 8x in time with a causal first frame, so the model makes 8k+1 frames.
  It generates at `gen_fps` (24) enough frames to span the clip, and the frames are resampled to the
  output fps by linear blending of the two nearest generated frames at each output time, which gives
  exactly round(duration * fps) frames. A clip longer than `max_frames` allows is generated at a lower
  frame rate (the model is conditioned on that rate, so the motion stays natural).
* **Prompt.** From the room type and the planned motion ("slow smooth cinematic dolly-in through a
  bright kitchen, static scene, no people, ..."), with a fixed negative prompt (people, text,
  watermarks, warping, flicker, new objects, ...).
* **Determinism.** The noise comes from a CPU `torch.Generator` seeded with a hash of the request's
  `seed_key` (the render key): the same key, photo and pipeline give the same frames on any device.
* **Cancellation.** `cancel` (SIGTERM, Spot notice) is checked before every transformer block and
  VAE decoder block and at each step's end (`callback_on_step_end`); when set, `RenderCancelled` is
  raised from inside the forward pass, so a clip stops within one block (well under a second on a GPU),
  not after the step, let alone after the VAE decode that `pipe._interrupt` would still run.
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import cv2
import numpy as np

from app.errors import RenderCancelled
from app.media.ffmpeg import VideoWriter
from app.media.images import UNKNOWN_ROOM
from app.media.motion import viewport_rect
from app.media.types import MotionPlan, MotionType

#: What the model must not do to a listing photo.
NEGATIVE_PROMPT = (
    "people, person, face, hands, pets, animals, text, letters, subtitles, watermark, logo, signature, "
    "warping, morphing, melting, bending walls, distorted geometry, wobbly lines, flicker, strobing, "
    "jitter, shaky camera, fast motion, new objects appearing, objects disappearing, furniture moving, "
    "blurry, low quality, artifacts, oversaturated, cartoon, painting"
)

_MOTION_PHRASES: dict[MotionType, str] = {
    MotionType.PUSH_IN: "slow smooth cinematic dolly-in",
    MotionType.PULL_OUT: "slow smooth cinematic dolly-out revealing the space",
    MotionType.PAN_LEFT: "slow smooth cinematic camera pan to the left",
    MotionType.PAN_RIGHT: "slow smooth cinematic camera pan to the right",
    MotionType.TILT_UP: "slow smooth cinematic camera tilt upward",
    MotionType.TILT_DOWN: "slow smooth cinematic camera tilt downward",
    MotionType.DRIFT: "very slow, subtle cinematic camera drift",
    MotionType.PARALLAX: "slow smooth lateral tracking shot with gentle parallax",
    MotionType.I2V: "slow smooth cinematic camera move",
}

_ROOM_PHRASES: dict[str, str] = {
    "exterior": "across the exterior of a house, blue sky",
    "outdoor": "across a landscaped outdoor space of a house",
    "living_room": "through a bright, modern living room",
    "kitchen": "through a bright, modern kitchen",
    "bedroom": "through a bright, calm bedroom",
    "bathroom": "through a bright, clean bathroom",
    "dining_room": "through a bright dining room",
}

_STYLE = (
    "static scene, nothing moves except the camera, no people, natural daylight, sharp straight "
    "architectural lines, photorealistic, professional real estate video"
)


def build_prompt(room_type: str | None, motion: MotionType | str) -> str:
    """The positive prompt for a photo of `room_type` (an `ROOM_LABELS` value or free text) and a motion."""
    try:
        move = _MOTION_PHRASES[MotionType(motion)]
    except ValueError:
        move = _MOTION_PHRASES[MotionType.I2V]
    room = (room_type or "").strip().lower()
    if room == UNKNOWN_ROOM:  # nobody knows which room: never guess one in the prompt
        room = ""
    place = _ROOM_PHRASES.get(room) or (f"through a bright {room.replace('_', ' ')}" if room else "through a home")
    if room == "other":
        place = "through a bright room of a home"
    return f"{move} {place}, {_STYLE}"


def seed_for(key: str) -> int:
    """A deterministic 63-bit seed from a render key (or any string)."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") >> 1


def generation_size(out_w: int, out_h: int, max_w: int, max_h: int, multiple: int = 32) -> tuple[int, int]:
    """The largest (w, h) in multiples of `multiple`, within max_w x max_h, closest to out_w:out_h.

    The height is fitted first (the largest multiple whose matching width fits), then the width is
    rounded to the nearest multiple: 1920x1080 in 1280x704 -> 1248x704; 1080x1920 in 1280x704 -> 384x704
    (portrait inside a landscape budget); 64x64 -> 64x64."""
    if min(out_w, out_h, max_w, max_h) <= 0:
        raise ValueError(f"sizes must be positive, got {out_w}x{out_h} within {max_w}x{max_h}")
    aspect = out_w / out_h
    h = min(max_h, max_w / aspect) // multiple * multiple
    h = max(multiple, int(h))
    w = round(h * aspect / multiple) * multiple
    w = max(multiple, min(int(w), max_w // multiple * multiple))
    return w, h


def generation_frames(
    n_out: int, fps: float, gen_fps: float, *, temporal: int = 8, max_frames: int = 257
) -> tuple[int, float]:
    """(frames to generate, generation fps) so that the generated clip spans n_out frames at `fps`.

    The frame count is 8k+1 (k >= 1) for a VAE of temporal compression `temporal`; when that would exceed
    `max_frames` the generation rate is lowered instead so the clip still spans the whole duration."""
    if n_out < 1 or fps <= 0 or gen_fps <= 0:
        raise ValueError(f"need n_out >= 1 and positive rates, got {n_out}, {fps}, {gen_fps}")
    cap = (max(max_frames, temporal + 1) - 1) // temporal * temporal + 1
    span = (n_out - 1) / fps  # seconds from the first to the last output frame
    needed = math.ceil(span * gen_fps - 1e-9) + 1
    n_gen = max(temporal + 1, math.ceil((needed - 1) / temporal) * temporal + 1)
    if n_gen <= cap:
        return n_gen, float(gen_fps)
    return cap, (cap - 1) / span


def source_positions(n_out: int, fps: float, gen_fps: float, n_gen: int) -> np.ndarray:
    """Fractional generated-frame index shown at each output frame (output frame i is at time i / fps)."""
    pos = np.arange(n_out, dtype=np.float64) * (gen_fps / fps)
    return np.clip(pos, 0.0, n_gen - 1)


def condition_image(rgb: np.ndarray, plan: MotionPlan, width: int, height: int) -> np.ndarray:
    """The photo cropped to the plan's start viewport at the generation aspect, resized to width x height."""
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"photo must be HxWx3 uint8 RGB, got {rgb.shape} {rgb.dtype}")
    img_h, img_w = rgb.shape[:2]
    x0, y0, w, h = viewport_rect(plan.start, img_w, img_h, width / height)
    x1, y1 = round(x0 + w), round(y0 + h)
    x0, y0 = round(x0), round(y0)
    crop = rgb[max(0, y0) : min(img_h, y1), max(0, x0) : min(img_w, x1)]
    interp = cv2.INTER_AREA if crop.shape[1] > width else cv2.INTER_CUBIC
    return np.ascontiguousarray(cv2.resize(crop, (width, height), interpolation=interp))


def fit_to_output(frame: np.ndarray, out_w: int, out_h: int) -> np.ndarray:
    """Scale `frame` to cover out_w x out_h and centre-crop it to exactly that size."""
    h, w = frame.shape[:2]
    if (w, h) == (out_w, out_h):
        return frame
    scale = max(out_w / w, out_h / h)
    sw, sh = max(out_w, round(w * scale)), max(out_h, round(h * scale))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    resized = cv2.resize(frame, (sw, sh), interpolation=interp)
    x0, y0 = (sw - out_w) // 2, (sh - out_h) // 2
    return np.ascontiguousarray(resized[y0 : y0 + out_h, x0 : x0 + out_w])


def output_frames(generated: np.ndarray, positions: np.ndarray, out_w: int, out_h: int) -> Iterator[np.ndarray]:
    """Output frames (uint8 RGB, out_h x out_w), one per position: a linear blend of the two generated
    frames around it, scaled to the output. Streams, so a 10 s 1080p clip never sits in memory at once."""
    last = len(generated) - 1
    for p in positions:
        i = min(math.floor(p), last)
        t = float(p - i)
        if t < 1e-6 or i == last:
            frame = generated[i]
        else:
            blend = generated[i].astype(np.float32) * (1.0 - t) + generated[i + 1].astype(np.float32) * t
            frame = np.clip(blend + 0.5, 0, 255).astype(np.uint8)
        yield fit_to_output(frame, out_w, out_h)


@dataclass(frozen=True)
class LtxOptions:
    """Generation parameters (the worker fills them from LTX_* settings)."""

    steps: int = 30
    guidance_scale: float = 3.0
    #: diffusers' LTX-2 defaults: spatio-temporal and modality guidance (each adds a transformer pass).
    stg_scale: float = 1.0
    modality_scale: float = 3.0
    gen_fps: float = 24.0
    max_width: int = 1280
    max_height: int = 704
    max_frames: int = 257
    #: Prompt tokens (Gemma pads to this length): LTX-2 was trained with 1024, and its connectors replace the
    #: padding with 128 learnable registers, so it must be a multiple of 128 for the real model.
    max_sequence_length: int = 1024
    #: H.264 re-compression of the conditioning image as in training (None: the pipeline's default).
    image_crf: int | None = None


@dataclass(frozen=True)
class LtxRequest:
    """One clip: the photo, its plan and room type, the output format, and the render key for the seed."""

    rgb: np.ndarray
    plan: MotionPlan
    width: int
    height: int
    fps: int
    duration: float
    seed_key: str
    room_type: str | None = None
    #: Set on SIGTERM or a Spot notice: the render raises `RenderCancelled` within one transformer block.
    cancel: threading.Event | None = None
    #: progress(steps_done, steps_total) after each denoising step.
    progress: Callable[[int, int], None] | None = None


@dataclass(frozen=True)
class LtxStats:
    frames: int
    generated_frames: int
    generation_size: tuple[int, int]
    generation_fps: float
    steps: int
    seed: int
    prompt: str
    seconds: float
    extra: dict[str, float] = field(default_factory=dict)


class CancelGuard:
    """Raises `RenderCancelled` inside the pipeline as soon as `cancel` is set: before each transformer
    block and VAE decoder block (forward pre-hooks) and at each step's end (the step callback, which also
    reports progress). On the way out the hooks are removed and, after a cancel, offload hooks reset."""

    def __init__(
        self,
        pipe: Any,
        cancel: threading.Event | None,
        steps: int,
        progress: Callable[[int, int], None] | None = None,
    ) -> None:
        self.pipe, self.cancel, self.steps, self.progress = pipe, cancel, steps, progress
        self.steps_done = 0
        self._handles: list[Any] = []

    def check(self) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise RenderCancelled("render cancelled: the worker is shutting down")

    def _pre_hook(self, module: Any, args: Any) -> None:
        self.check()

    def _blocks(self) -> list[Any]:
        blocks = list(getattr(getattr(self.pipe, "transformer", None), "transformer_blocks", None) or [])
        decoder = getattr(getattr(self.pipe, "vae", None), "decoder", None)
        blocks += list(getattr(decoder, "up_blocks", None) or [])
        return blocks

    def on_step_end(self, pipe: Any, step: int, timestep: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
        self.steps_done = step + 1
        if self.progress is not None:
            self.progress(self.steps_done, self.steps)
        self.check()
        return {}

    def __enter__(self) -> CancelGuard:
        self.check()
        if self.cancel is not None:
            self._handles = [b.register_forward_pre_hook(self._pre_hook) for b in self._blocks()]
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []
        if exc_type is not None and hasattr(self.pipe, "maybe_free_model_hooks"):
            self.pipe.maybe_free_model_hooks()


def _pipeline_ratios(pipe: Any) -> tuple[int, int]:
    """(spatial, temporal) VAE compression of `pipe`: (32, 8) for LTX-2 and for the tiny test pipeline."""
    spatial = getattr(pipe, "vae_spatial_compression_ratio", 32)
    return int(spatial), int(getattr(pipe, "vae_temporal_compression_ratio", 8))


@dataclass(frozen=True)
class _Plan:
    """What one call of the pipeline makes, derived from a request and options."""

    n_out: int
    n_gen: int
    gen_fps: float
    gen_w: int
    gen_h: int
    seed: int
    prompt: str


def plan_generation(pipe: Any, request: LtxRequest, options: LtxOptions) -> _Plan:
    if not (request.duration > 0 and request.fps > 0):
        raise ValueError(f"duration and fps must be positive, got {request.duration} s at {request.fps} fps")
    spatial, temporal = _pipeline_ratios(pipe)
    n_out = max(1, round(request.duration * request.fps))
    gen_w, gen_h = generation_size(request.width, request.height, options.max_width, options.max_height, spatial)
    n_gen, gen_fps = generation_frames(
        n_out, request.fps, options.gen_fps, temporal=temporal, max_frames=options.max_frames
    )
    prompt = build_prompt(request.room_type, request.plan.motion_type)
    return _Plan(n_out, n_gen, gen_fps, gen_w, gen_h, seed_for(request.seed_key), prompt)


def _call_pipeline(pipe: Any, request: LtxRequest, options: LtxOptions, plan: _Plan, guard: CancelGuard) -> Any:
    import torch
    from PIL import Image

    image = Image.fromarray(condition_image(request.rgb, request.plan, plan.gen_w, plan.gen_h))
    kwargs: dict[str, Any] = {}
    if options.image_crf is not None:
        kwargs["image_crf"] = options.image_crf
    with torch.inference_mode():
        out = pipe(
            image=image,
            prompt=plan.prompt,
            negative_prompt=NEGATIVE_PROMPT,
            width=plan.gen_w,
            height=plan.gen_h,
            num_frames=plan.n_gen,
            frame_rate=plan.gen_fps,
            num_inference_steps=options.steps,
            guidance_scale=options.guidance_scale,
            stg_scale=options.stg_scale,
            modality_scale=options.modality_scale,
            generator=torch.Generator(device="cpu").manual_seed(plan.seed),
            max_sequence_length=options.max_sequence_length,
            output_type="np",
            return_dict=True,
            callback_on_step_end=guard.on_step_end,
            **kwargs,
        )
    return out.frames


def _to_uint8(frames: Any) -> np.ndarray:
    """(1, F, H, W, 3) float in 0..1 (or a list of such) -> (F, H, W, 3) uint8."""
    arr = np.asarray(frames[0] if isinstance(frames, list) else frames)
    if arr.ndim == 5:
        arr = arr[0]
    return (np.clip(arr.astype(np.float32), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def generate(pipe: Any, request: LtxRequest, options: LtxOptions = LtxOptions()) -> tuple[np.ndarray, LtxStats]:
    """Run the model: (generated frames (n_gen, gen_h, gen_w, 3) uint8 at `stats.generation_fps`, stats).

    Raises `RenderCancelled` when `request.cancel` is set (before or during the run)."""
    started = time.perf_counter()
    plan = plan_generation(pipe, request, options)
    with CancelGuard(pipe, request.cancel, options.steps, request.progress) as guard:
        frames = _call_pipeline(pipe, request, options, plan, guard)
        guard.check()
    generated = _to_uint8(frames)
    if len(generated) != plan.n_gen:
        raise RuntimeError(f"LTX-2 returned {len(generated)} frames, {plan.n_gen} were asked for")
    stats = LtxStats(
        frames=plan.n_out,
        generated_frames=plan.n_gen,
        generation_size=(plan.gen_w, plan.gen_h),
        generation_fps=plan.gen_fps,
        steps=options.steps,
        seed=plan.seed,
        prompt=plan.prompt,
        seconds=time.perf_counter() - started,
    )
    return generated, stats


def clip_frames(generated: np.ndarray, stats: LtxStats, request: LtxRequest) -> Iterator[np.ndarray]:
    """The clip's output frames (exactly `stats.frames`, at request.fps and request size) from `generate`."""
    positions = source_positions(stats.frames, request.fps, stats.generation_fps, len(generated))
    return output_frames(generated, positions, request.width, request.height)


def render_ltx(
    pipe: Any,
    request: LtxRequest,
    out_path: Path,
    *,
    options: LtxOptions = LtxOptions(),
    preset: str = "veryfast",
    crf: int = 18,
) -> LtxStats:
    """Render one LTX-2 clip to `out_path` (H.264 mp4, exactly round(duration * fps) frames at the request's
    size and fps); the file appears atomically. Raises `RenderCancelled` if `request.cancel` is set before
    the file is complete (nothing is left behind)."""
    generated, stats = generate(pipe, request, options)
    t0 = time.perf_counter()
    with VideoWriter(out_path, request.width, request.height, request.fps, preset=preset, crf=crf) as writer:
        for frame in clip_frames(generated, stats, request):
            if request.cancel is not None and request.cancel.is_set():
                raise RenderCancelled("render cancelled: the worker is shutting down")
            writer.write(frame)
    if writer.frames_written != stats.frames:
        raise RuntimeError(f"wrote {writer.frames_written} of {stats.frames} frames")
    encode = time.perf_counter() - t0
    return LtxStats(**{**stats.__dict__, "seconds": stats.seconds + encode, "extra": {"encode_seconds": encode}})
