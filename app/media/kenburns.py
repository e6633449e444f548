"""Ken Burns clips: a smooth, eased virtual camera moving over one still photo.

Why not ffmpeg's `zoompan`: it crops on integer pixel positions and rounds the zoom per frame, so
slow moves judder (the window jumps a whole pixel every few frames, and the zoom steps). Here every
frame is one `cv2.warpAffine` from the *float* viewport rectangle straight to the output size, so the
camera moves by fractions of a pixel and the motion stays as smooth as the easing curve.

Camera path (shared by `render_ken_burns` and `frame_at`, so previews and validation see exactly
what the renderer draws):

* the plan's start and end viewports are turned into rectangles on the photo by `viewport_rect`
  (clamped inside the photo);
* the window size is interpolated geometrically (linear in log size), so a zoom's perceived speed
  is constant instead of slowing down as the window shrinks;
* the window centre follows the size: it moves like a zoom about the fixed point shared by both
  rectangles, so a push-in on a salient point keeps that point still on screen instead of letting it
  swing along a curve. For a pure pan (equal sizes) this is plain linear interpolation of the centre.
  A path interpolated this way never leaves the photo when both ends are inside it (every edge
  coordinate is linear in the window size), so there is no per-frame clamping, and therefore no
  velocity kink where a clamp engages;
* the progress along the path is eased (`Easing`): smootherstep by default, with zero velocity and
  acceleration at both ends.

Resampling quality: a 6000 px photo seen through a 1920 px output would alias badly under a
bilinear or bicubic warp (they only look at 2x2 / 4x4 neighbours), and a 720 px listing photo blown
up 3x by a bilinear warp looks soft and jaggy. So the photo is resampled once per clip - INTER_AREA
down, bicubic up - to the size where the clip's largest window is 1.15-1.4x the output width, and
the per-frame warp is a cheap bilinear one that only ever resamples by that small factor.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from app.errors import RenderCancelled
from app.media.ffmpeg import VideoWriter
from app.media.motion import viewport_rect
from app.media.types import Easing, MotionPlan

#: After the one-off INTER_AREA reduction the largest window of a clip is at most this many times
#: the output size: the per-frame bilinear warp then downsamples by <= 1.4x, which does not alias
#: visibly, while a push-in still has source detail for its smallest window.
_MAX_PRESCALE = 1.4
#: ... and at least this many times (when the photo is big enough), so a pure pan is not a 1:1
#: sub-pixel shift whose sharpness would pulse with the fractional offset from frame to frame.
_MIN_PRESCALE = 1.15
#: Sources already within this factor of the target size are used as they are.
_RESAMPLE_SLACK = 1.02
#: Per-frame warp: bilinear. After the one-off resample it only resamples by a small factor (and
#: small photos were already upscaled with bicubic once), and it costs ~12 ms per 1080p frame on
#: one core where a bicubic warp costs ~30 ms, which made the whole render ~25% slower on the
#: 2-core reference machine (x264 in its own process is the bottleneck and needs the cores).
_INTERP = cv2.INTER_LINEAR
#: OpenCV threads for the warp: one. The warp runs in a producer thread beside the encoder pipe,
#: and x264 (a separate process) uses the remaining CPU; more warp threads only steal from it.
_WARP_THREADS = 1
#: Frames rendered ahead of the encoder pipe (each one is width*height*3 bytes).
_QUEUE_DEPTH = 3


@dataclass(frozen=True)
class RenderStats:
    """What a render cost: `frames` written in `seconds` wall time, i.e. `encode_fps` frames/s."""

    frames: int
    seconds: float
    encode_fps: float


Rect = tuple[float, float, float, float]


def ease(easing: Easing, t: float) -> float:
    """Progress 0..1 along the camera path at normalised time `t` (clamped to 0..1).

    EASE_IN_OUT is smootherstep (6t^5 - 15t^4 + 10t^3): zero velocity *and* acceleration at both
    ends, so a clip starts and stops without a jolt even on a hard cut. EASE_OUT is a cubic ease-out
    (1 - (1 - t)^3): full speed at the cut in, settling to rest at the end.
    """
    t = min(max(t, 0.0), 1.0)
    if easing == Easing.EASE_IN_OUT:
        return t * t * t * (t * (t * 6.0 - 15.0) + 10.0)
    if easing == Easing.EASE_OUT:
        return 1.0 - (1.0 - t) ** 3
    return t


def interpolate_rect(r0: Rect, r1: Rect, p: float) -> Rect:
    """The window at path progress `p` (0..1) between rectangles `r0` and `r1`.

    Size is geometric (constant perceived zoom speed); the centre moves in proportion to the size
    change, i.e. a zoom about the fixed point of the two rectangles (see the module docstring). With
    (nearly) equal sizes this degenerates continuously to a linear pan.
    """
    x0a, y0a, wa, ha = r0
    x0b, y0b, wb, hb = r1
    w = wa * (wb / wa) ** p
    h = ha * (hb / ha) ** p
    # Fraction of the way for the centre: (w(p) - wa) / (wb - wa), which tends to p when wb -> wa.
    s = (w - wa) / (wb - wa) if abs(wb - wa) > 1e-6 * max(wa, wb) else p
    cxa, cya = x0a + wa / 2.0, y0a + ha / 2.0
    cx = cxa + (x0b + wb / 2.0 - cxa) * s
    cy = cya + (y0b + hb / 2.0 - cya) * s
    return cx - w / 2.0, cy - h / 2.0, w, h


def _as_rgb(image: np.ndarray) -> np.ndarray:
    """Accept HxW gray, HxWx3 RGB or HxWx4 RGBA uint8; return contiguous HxWx3 RGB."""
    if image.dtype != np.uint8:
        raise ValueError(f"photo must be uint8, got {image.dtype}")
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    if image.ndim == 3 and image.shape[2] == 4:
        return np.ascontiguousarray(image[:, :, :3])
    if image.ndim == 3 and image.shape[2] == 3:
        return np.ascontiguousarray(image)
    raise ValueError(f"photo must be HxW, HxWx3 or HxWx4, got shape {image.shape}")


class KenBurnsCamera:
    """The camera path of one clip over one photo, prepared once and sampled per frame.

    Holds the resampled source (`src`, see the module docstring) and the two end rectangles in
    original-photo pixels; `fx`, `fy` convert original-photo pixels to `src` pixels.
    """

    def __init__(self, rgb: np.ndarray, plan: MotionPlan, width: int, height: int) -> None:
        if width <= 0 or height <= 0:
            raise ValueError(f"output size must be positive, got {width}x{height}")
        src = _as_rgb(rgb)
        self.width, self.height = width, height
        self.plan = plan
        self.img_h, self.img_w = src.shape[:2]
        aspect = width / height
        self.r0 = viewport_rect(plan.start, self.img_w, self.img_h, aspect)
        self.r1 = viewport_rect(plan.end, self.img_w, self.img_h, aspect)
        # One-off resample (see module docstring): bring the largest window to
        # [_MIN_PRESCALE, _MAX_PRESCALE] x output, aiming for the smallest window at >= 1x output.
        w_max, w_min = max(self.r0[2], self.r1[2]), min(self.r0[2], self.r1[2])
        target = min(_MAX_PRESCALE, max(_MIN_PRESCALE, w_max / w_min)) * width
        if not target / _RESAMPLE_SLACK <= w_max <= target * _RESAMPLE_SLACK:
            f = target / w_max
            sw, sh = max(1, round(self.img_w * f)), max(1, round(self.img_h * f))
            interp = cv2.INTER_AREA if f < 1 else cv2.INTER_CUBIC
            src = cv2.resize(src, (sw, sh), interpolation=interp)
        self.src = src
        # Exact per-axis factors after rounding the resampled size.
        self.fx = src.shape[1] / self.img_w
        self.fy = src.shape[0] / self.img_h

    def rect_at(self, t_norm: float) -> Rect:
        """Window (x0, y0, w, h) in original-photo pixels at normalised clip time `t_norm`."""
        return interpolate_rect(self.r0, self.r1, ease(self.plan.easing, t_norm))

    def matrix_at(self, t_norm: float) -> np.ndarray:
        """2x3 affine map from output pixel indices to resampled-source (`src`) pixel indices.

        Pixel centres are at +0.5 in continuous coordinates, so output pixel u samples the photo at
        x0 + (u + 0.5) * w / width, converted to `src` (factor fx) and back to an index by -0.5.
        float32 is plenty (< 1e-3 px error on an 8K source); OpenCV's bilinear warp itself
        quantises sample positions to 1/32 px, far below anything visible or measurable after x264.
        """
        x0, y0, w, h = self.rect_at(t_norm)
        sx = w / self.width * self.fx
        sy = h / self.height * self.fy
        tx = (x0 + 0.5 * w / self.width) * self.fx - 0.5
        ty = (y0 + 0.5 * h / self.height) * self.fy - 0.5
        return np.array([[sx, 0.0, tx], [0.0, sy, ty]], dtype=np.float32)

    def render(self, t_norm: float, dst: np.ndarray | None = None) -> np.ndarray:
        """The output frame at `t_norm`, written into `dst` when given (avoids a 6 MB allocation)."""
        return cv2.warpAffine(
            self.src,
            self.matrix_at(t_norm),
            (self.width, self.height),
            dst=dst,
            flags=_INTERP | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_REFLECT_101,
        )


def frame_count(duration: float, fps: float) -> int:
    """Frames in a clip: round(duration * fps), at least 1."""
    if not (duration > 0 and fps > 0):
        raise ValueError(f"duration and fps must be positive, got {duration} s at {fps} fps")
    return max(1, round(duration * fps))


def frame_t_norm(index: int, n_frames: int) -> float:
    """Normalised time of frame `index`: the first frame shows the start viewport, the last the end."""
    return index / (n_frames - 1) if n_frames > 1 else 0.0


def frame_at(rgb: np.ndarray, plan: MotionPlan, t_norm: float, width: int, height: int) -> np.ndarray:
    """One frame of the clip at normalised time `t_norm` (0 = first frame, 1 = last frame).

    Bit-identical to the frame the renderer feeds to the encoder at that time (same prescale, same
    warp); frame i of an n-frame clip is at t_norm = i / (n - 1).
    """
    return KenBurnsCamera(rgb, plan, width, height).render(t_norm)


@contextmanager
def _cv_threads(n: int) -> Iterator[None]:
    """Temporarily limit OpenCV's thread pool (process-global), restoring it afterwards."""
    prev = cv2.getNumThreads()
    cv2.setNumThreads(n)
    try:
        yield
    finally:
        cv2.setNumThreads(prev)


class _Producer(threading.Thread):
    """Warps frames ahead of the encoder pipe, so warping overlaps the (blocking) pipe writes.

    Buffers circulate between a free queue and a full queue, so a buffer is never overwritten while
    the writer still reads it and nothing is allocated per frame. A failure is handed to the
    consumer through the full queue; `stop` makes the thread give up when the consumer fails.
    """

    _POLL_S = 0.1

    def __init__(self, camera: FrameSource, n_frames: int, depth: int, cancel: threading.Event | None = None) -> None:
        super().__init__(name="picaivid-warp", daemon=True)
        self.camera, self.n_frames, self.cancel = camera, n_frames, cancel
        self.free: queue.Queue[np.ndarray] = queue.Queue()
        self.full: queue.Queue[np.ndarray | BaseException | None] = queue.Queue()
        for _ in range(depth):
            self.free.put(np.empty((camera.height, camera.width, 3), dtype=np.uint8))
        self.stop = threading.Event()

    def _take_free(self) -> np.ndarray | None:
        while not self.stop.is_set():
            try:
                return self.free.get(timeout=self._POLL_S)
            except queue.Empty:
                continue
        return None

    def run(self) -> None:
        try:
            with _cv_threads(_WARP_THREADS):
                for i in range(self.n_frames):
                    check_cancelled(self.cancel)
                    buf = self._take_free()
                    if buf is None:
                        return
                    self.camera.render(frame_t_norm(i, self.n_frames), dst=buf)
                    self.full.put(buf)
            self.full.put(None)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            self.full.put(exc)

    def frames(self) -> Iterator[np.ndarray]:
        """Yield rendered frames in order; the caller must `release` each one after using it."""
        while True:
            item = self.full.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def release(self, buf: np.ndarray) -> None:
        self.free.put(buf)


def render_ken_burns(
    rgb: np.ndarray,
    plan: MotionPlan,
    out_path: Path,
    *,
    width: int = 1920,
    height: int = 1080,
    fps: int = 30,
    duration: float,
    preset: str = "veryfast",
    crf: int = 18,
    progress: Callable[[int, int], None] | None = None,
) -> RenderStats:
    """Render a Ken Burns clip of exactly round(duration * fps) frames to `out_path` (H.264 mp4).

    Frame i shows `frame_at(rgb, plan, i / (n - 1), width, height)` exactly. The file appears
    atomically (VideoWriter writes a partial file and renames it). `progress`, if given, is called as
    progress(frames_done, frames_total) after each frame is handed to the encoder. A warp thread
    renders a few frames ahead while this thread feeds the encoder, so the render runs at the
    encoder's speed (x264 is the bottleneck, not the warp).
    """
    started = time.perf_counter()
    camera = KenBurnsCamera(rgb, plan, width, height)
    return encode_camera(
        camera,
        out_path,
        n_frames=frame_count(duration, fps),
        fps=fps,
        preset=preset,
        crf=crf,
        progress=progress,
        started=started,
    )


class FrameSource(Protocol):
    """A camera that renders frame `t_norm` into a preallocated (height, width, 3) uint8 buffer."""

    width: int
    height: int

    def render(self, t_norm: float, dst: np.ndarray | None = None) -> np.ndarray: ...


def check_cancelled(cancel: threading.Event | None) -> None:
    if cancel is not None and cancel.is_set():
        raise RenderCancelled("render cancelled: the worker is shutting down")


def encode_camera(
    camera: FrameSource,
    out_path: Path,
    *,
    n_frames: int,
    fps: int,
    preset: str,
    crf: int,
    progress: Callable[[int, int], None] | None = None,
    cancel: threading.Event | None = None,
    started: float | None = None,
) -> RenderStats:
    """Encode `n_frames` of `camera` to `out_path` (H.264 mp4, atomic), a warp thread rendering ahead of
    the encoder pipe (shared by every renderer that moves a camera over a photo). `cancel`: stop before
    the next frame with `RenderCancelled`; no file is left behind."""
    started = time.perf_counter() if started is None else started
    check_cancelled(cancel)
    producer = _Producer(camera, n_frames, _QUEUE_DEPTH, cancel)
    producer.start()
    try:
        with VideoWriter(out_path, camera.width, camera.height, fps, preset=preset, crf=crf) as writer:
            for buf in producer.frames():
                check_cancelled(cancel)
                writer.write(buf)
                producer.release(buf)
                if progress is not None:
                    progress(writer.frames_written, n_frames)
    finally:
        producer.stop.set()
        producer.join()
    if writer.frames_written != n_frames:  # cannot happen unless the producer was stopped early
        raise RuntimeError(f"rendered {writer.frames_written} of {n_frames} frames")
    seconds = time.perf_counter() - started
    return RenderStats(frames=n_frames, seconds=seconds, encode_fps=n_frames / seconds if seconds > 0 else float("inf"))
