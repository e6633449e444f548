"""Phase 4's streaming compositor: one pass, one encode per deliverable.

Every output frame is made once, in order, and piped straight into the one x264 encode of its
deliverable:

* a **computed** shot (Ken Burns, depth parallax) renders its frame from the photo at the
  deliverable's own framing and resolution (`CameraShot`): no clip file is decoded and no frame of it
  was ever encoded before;
* a **stored** shot (an LTX-2 clip) is decoded once, scaled to cover the frame (`VideoShot`);
* transitions blend the two shots around a cut (`app.media.transitions`), overlays are composited on
  top (`app.media.overlays`), fades from/to black at the ends;
* the delivered audio (already mixed and loudness-normalised, AAC) is muxed in without re-encoding.

Frame grid (as the ffmpeg assembly it replaces): cut k is at frame ``c_k = round(end_k * fps)``; a
transition lasts an even number ``L_k`` of frames centred on it (the 50 % frame is ``c_k``), at most
the whole of the shorter neighbour, so two transitions never overlap; a "cut" has ``L_k = 0``. Shot k
is visible from ``c_{k-1} - L_{k-1}/2`` to ``c_k + L_k/2`` (exclusive).

Memory is bounded whatever the clip count: a shot's source is opened when its first frame is needed
and closed after its last (at most two are open, during a transition), and the frame queue between
the compositing thread and the encoder holds `QUEUE_DEPTH` frames.
"""

from __future__ import annotations

import queue
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from app.errors import FFmpegError, RenderCancelled
from app.media.ffmpeg import VideoWriter, ffmpeg_exe
from app.media.transitions import transition_frame

__all__ = [
    "FADE_IN_FRAMES",
    "FADE_OUT_FRAMES",
    "CameraShot",
    "ComposeStats",
    "FrameSourceLike",
    "PlannedShot",
    "ShotSource",
    "VideoShot",
    "compose_video",
    "frame_grid",
    "speed_ramp",
]

#: Fade from black at the start and to black at the end (frames at 30 fps: 0.5 s and 1 s).
FADE_IN_FRAMES = 15
FADE_OUT_FRAMES = 30
#: Composited frames waiting for the encoder pipe (each width * height * 3 bytes: 6 MB at 1080p).
QUEUE_DEPTH = 4


class ShotSource(Protocol):
    """Frames of one shot at the output size, asked for in order: index 0 .. n-1 of its visible frames."""

    def frame(self, index: int) -> np.ndarray: ...

    def close(self) -> None: ...


class FrameSourceLike(Protocol):
    """A camera over a photo (`KenBurnsCamera`, `ParallaxCamera`)."""

    width: int
    height: int

    def render(self, t_norm: float, dst: np.ndarray | None = None) -> np.ndarray: ...


def speed_ramp(energy: np.ndarray | None, n_frames: int, *, floor: float = 0.55) -> np.ndarray:
    """Normalised camera progress (0..1) for each of `n_frames` frames.

    Without `energy` the progress is uniform (the camera's own easing shapes it). With `energy` (one
    value per frame, any scale, e.g. the music's loudness envelope) the camera moves faster where the
    music is louder: speed = floor + (1 - floor) * energy / max(energy), integrated and normalised. The
    camera's easing then still brings it to rest at both ends, i.e. it eases into the cut."""
    if n_frames <= 1:
        return np.zeros(max(n_frames, 0), np.float64)
    if energy is None or len(energy) != n_frames or not np.isfinite(energy).all() or float(np.max(energy)) <= 0:
        return np.linspace(0.0, 1.0, n_frames)
    speed = floor + (1.0 - floor) * np.clip(energy / float(np.max(energy)), 0.0, 1.0)
    travelled = np.concatenate([[0.0], np.cumsum(0.5 * (speed[1:] + speed[:-1]))])
    return travelled / travelled[-1]


class CameraShot:
    """A computed shot: `camera` renders the frame for each camera progress value of `progress`
    (`speed_ramp`), into reused buffers."""

    def __init__(self, camera: FrameSourceLike, progress: np.ndarray) -> None:
        self.camera = camera
        self.progress = progress

    def frame(self, index: int) -> np.ndarray:
        t = float(self.progress[min(max(index, 0), len(self.progress) - 1)]) if len(self.progress) else 0.0
        return self.camera.render(t)

    def close(self) -> None:
        self.camera = None  # type: ignore[assignment]  # free the resampled photo now


class VideoShot:
    """A stored clip decoded once from `start` seconds, scaled to cover `width` x `height` and centre
    cropped, at `fps`. Past its last frame the last one is held (the planner keeps footage long enough;
    this only absorbs a frame of rounding)."""

    def __init__(self, path: Path, width: int, height: int, fps: float, *, start: float = 0.0) -> None:
        self.width, self.height = width, height
        vf = (
            f"scale={width}:{height}:force_original_aspect_ratio=increase:flags=lanczos,"
            f"crop={width}:{height},fps={fps},format=rgb24"
        )
        cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-ss", f"{max(0.0, start):.4f}"]
        cmd += ["-i", str(path), "-an", "-vf", vf, "-f", "rawvideo", "-pix_fmt", "rgb24", "-"]
        self._proc: subprocess.Popen[bytes] | None = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
        )
        self._next = 0
        self._last: np.ndarray | None = None

    def frame(self, index: int) -> np.ndarray:
        size = self.width * self.height * 3
        while self._next <= index and self._proc is not None and self._proc.stdout is not None:
            data = self._proc.stdout.read(size)
            if len(data) < size:
                self.close()
                break
            self._last = np.frombuffer(data, np.uint8).reshape(self.height, self.width, 3)
            self._next += 1
        if self._last is None:
            raise FFmpegError("a stored clip has no frames", "")
        return self._last

    def close(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait()
            self._proc = None


@dataclass(frozen=True)
class PlannedShot:
    """One shot on the output timeline, in whole frames (see the module docstring).

    `open` builds the shot's source when its first frame is due; `first`/`last` are its first visible
    and one-past-last visible output frames; `transition` is the kind into the NEXT shot and
    `transition_frames` its (even) length, 0 for a cut."""

    open: Callable[[], ShotSource]
    first: int
    last: int
    cut: int
    transition: str = "cut"
    transition_frames: int = 0

    @property
    def frames(self) -> int:
        return self.last - self.first


def frame_grid(
    ends: Sequence[float], transitions: Sequence[tuple[str, float]], fps: float
) -> tuple[list[tuple[int, int, int, str, int]], int]:
    """Quantise cut times to frames: per shot (first, last, cut, transition kind, transition frames),
    and the total frame count. `ends[k]` is shot k's cut-out time (the last one is the video's end);
    `transitions[k]` the (kind, seconds) into shot k + 1. A transition is shortened to fit: at most the
    shorter neighbour's whole length, so transitions never overlap; under 2 frames it becomes a cut."""
    cuts = [round(e * fps + 1e-9) for e in ends]
    total = cuts[-1] if cuts else 0
    starts = [0, *cuts[:-1]]
    lengths: list[int] = []
    kinds: list[str] = []
    for k in range(len(cuts) - 1):
        kind, seconds = transitions[k] if k < len(transitions) else ("cut", 0.0)
        room = min(cuts[k] - starts[k], cuts[k + 1] - cuts[k])
        frames = 2 * int(min(seconds * fps, room) // 2) if kind != "cut" else 0
        if frames < 2:
            kind, frames = "cut", 0
        kinds.append(kind)
        lengths.append(frames)
    grid = []
    for k, cut in enumerate(cuts):
        first = starts[k] - (lengths[k - 1] // 2 if k > 0 else 0)
        last = cut + (lengths[k] // 2 if k < len(lengths) else 0)
        grid.append((first, last, cut, kinds[k] if k < len(kinds) else "cut", lengths[k] if k < len(lengths) else 0))
    return grid, total


@dataclass
class ComposeStats:
    frames: int
    seconds: float
    #: Seconds the compositing thread spent making frames (renders, transitions, overlays).
    compose_seconds: float = 0.0
    shots_opened: int = 0
    max_open_shots: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else float("inf")


class _Shots:
    """Opens shots on demand and closes them after their last frame (bounded memory)."""

    def __init__(self, shots: Sequence[PlannedShot], stats: ComposeStats) -> None:
        self.shots = shots
        self.open: dict[int, ShotSource] = {}
        self.stats = stats

    def frame(self, k: int, f: int) -> np.ndarray:
        source = self.open.get(k)
        if source is None:
            source = self.open[k] = self.shots[k].open()
            self.stats.shots_opened += 1
            self.stats.max_open_shots = max(self.stats.max_open_shots, len(self.open))
        return source.frame(f - self.shots[k].first)

    def release_before(self, f: int) -> None:
        for k in [k for k in self.open if self.shots[k].last <= f]:
            self.open.pop(k).close()

    def close(self) -> None:
        for source in self.open.values():
            source.close()
        self.open.clear()


def _composite(shots: _Shots, k: int, f: int) -> tuple[np.ndarray, int]:
    """Output frame `f` while shot `k` is the current one: its own frame, or the transition into k + 1.
    Returns the frame and the shot that is current for the next frame."""
    plan = shots.shots[k]
    if f >= plan.last and k + 1 < len(shots.shots):
        k += 1
        plan = shots.shots[k]
    nxt = shots.shots[k + 1] if k + 1 < len(shots.shots) else None
    if nxt is not None and f >= nxt.first:
        a, b = shots.frame(k, f), shots.frame(k + 1, f)
        # As ffmpeg xfade: the first frame of the transition is all `a`, frame cut (the middle) is 50 %.
        progress = (f - nxt.first) / max(1, plan.transition_frames)
        return transition_frame(a, b, progress, plan.transition), k
    return shots.frame(k, f), k


def _fade(frame: np.ndarray, f: int, total: int, fade_in: int, fade_out: int) -> np.ndarray:
    gain = 1.0
    if f < fade_in:
        gain = (f + 1) / (fade_in + 1)
    elif f >= total - fade_out:
        gain = (total - f) / (fade_out + 1)
    if gain >= 1.0:
        return frame
    return cv2.convertScaleAbs(frame, alpha=gain)


def compose_frames(
    shots: Sequence[PlannedShot],
    total: int,
    *,
    fps: float,
    overlay: Callable[[np.ndarray, float], np.ndarray] | None = None,
    fade_in: int = FADE_IN_FRAMES,
    fade_out: int = FADE_OUT_FRAMES,
    stats: ComposeStats | None = None,
) -> Iterator[np.ndarray]:
    """Every output frame in order (see the module docstring)."""
    stats = stats if stats is not None else ComposeStats(frames=0, seconds=0.0)
    open_shots = _Shots(shots, stats)
    k = 0
    try:
        for f in range(total):
            started = time.perf_counter()
            frame, k = _composite(open_shots, k, f)
            if overlay is not None:
                frame = overlay(np.array(frame, copy=True) if not frame.flags.writeable else frame, f / fps)
            frame = _fade(frame, f, total, fade_in, fade_out)
            open_shots.release_before(f + 1)
            stats.compose_seconds += time.perf_counter() - started
            yield frame
    finally:
        open_shots.close()


class _FrameThread(threading.Thread):
    """Composes frames ahead of the encoder (numpy/cv2 release the GIL; x264 runs in its own process)."""

    def __init__(self, frames: Iterator[np.ndarray], cancel: threading.Event | None) -> None:
        super().__init__(daemon=True, name="compose")
        self.frames = frames
        self.queue: queue.Queue[np.ndarray | BaseException | None] = queue.Queue(QUEUE_DEPTH)
        self.cancel = cancel
        self.stop = threading.Event()

    def run(self) -> None:
        try:
            for frame in self.frames:
                if self.stop.is_set() or (self.cancel is not None and self.cancel.is_set()):
                    break
                self.queue.put(np.ascontiguousarray(frame))
            self.queue.put(None)
        except BaseException as exc:  # handed to the encoding thread, which raises it
            self.queue.put(exc)


def compose_video(
    shots: Sequence[PlannedShot],
    total: int,
    out_path: Path,
    *,
    width: int,
    height: int,
    fps: float,
    audio: Path | None = None,
    overlay: Callable[[np.ndarray, float], np.ndarray] | None = None,
    preset: str = "medium",
    crf: int = 20,
    progress: Callable[[int, int], None] | None = None,
    cancel: threading.Event | None = None,
) -> ComposeStats:
    """Compose `total` frames of `shots` and encode them once (H.264 yuv420p, faststart), muxing the
    already-encoded `audio` (AAC) without re-encoding it. The file appears atomically."""
    stats = ComposeStats(frames=0, seconds=0.0)
    started = time.perf_counter()
    producer = _FrameThread(compose_frames(shots, total, fps=fps, overlay=overlay, stats=stats), cancel)
    producer.start()
    try:
        with VideoWriter(out_path, width, height, fps, preset=preset, crf=crf, audio=audio) as writer:
            while True:
                item = producer.queue.get()
                if item is None:
                    break
                if isinstance(item, BaseException):
                    raise item
                writer.write(item)
                if progress is not None:
                    progress(writer.frames_written, total)
            if cancel is not None and cancel.is_set():
                raise RenderCancelled("composition cancelled")
    finally:
        producer.stop.set()
        while producer.is_alive():  # unblock a producer waiting on a full queue
            try:
                producer.queue.get_nowait()
            except queue.Empty:
                producer.join(timeout=0.05)
    stats.frames = writer.frames_written
    stats.seconds = time.perf_counter() - started
    if stats.frames != total:
        raise RuntimeError(f"composed {stats.frames} of {total} frames")
    return stats
