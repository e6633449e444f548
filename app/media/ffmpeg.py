"""The one place that runs ffmpeg.

There may be no `ffprobe` (imageio-ffmpeg ships only `ffmpeg`), so `probe()` reads what `ffmpeg -i`
prints while stream-copying the file to the null muxer: stream layout from the header, and the exact
frame count from the final progress line.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from types import TracebackType

import numpy as np

from app.errors import AudioError, FFmpegError

_STDERR_TAIL = 1500


@lru_cache(maxsize=4)
def _resolve_ffmpeg(configured: str) -> str:
    if configured:
        if not (os.path.isfile(configured) and os.access(configured, os.X_OK)):
            raise FFmpegError(f"FFMPEG_PATH={configured} is not an executable file")
        return configured
    found = shutil.which("ffmpeg")
    if found:
        return found
    try:
        import imageio_ffmpeg

        return str(imageio_ffmpeg.get_ffmpeg_exe())
    except Exception as exc:  # pragma: no cover - depends on the machine
        raise FFmpegError("no ffmpeg found: set FFMPEG_PATH, install ffmpeg, or pip install imageio-ffmpeg") from exc


def ffmpeg_exe() -> str:
    """`FFMPEG_PATH`, else `ffmpeg` on PATH, else imageio-ffmpeg's bundled binary."""
    from app.config import get_settings

    return _resolve_ffmpeg(get_settings().FFMPEG_PATH)


def _tail(stderr: bytes | str) -> str:
    text = stderr.decode("utf-8", "replace") if isinstance(stderr, bytes) else stderr
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return "\n".join(lines[-6:])[-_STDERR_TAIL:]


def run_ffmpeg(
    args: Sequence[str | os.PathLike[str]], *, timeout: float | None = 3600, what: str = "ffmpeg"
) -> subprocess.CompletedProcess[bytes]:
    """Run ffmpeg with `args` (without the executable); raise `FFmpegError` with stderr's tail."""
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", *[str(a) for a in args]]
    try:
        proc = subprocess.run(cmd, capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise FFmpegError(f"{what} timed out after {timeout:.0f}s") from exc
    if proc.returncode != 0:
        raise FFmpegError(f"{what} failed (exit {proc.returncode})", _tail(proc.stderr))
    return proc


# --------------------------------------------------------------------------------------------
# probing
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VideoStream:
    codec: str
    pix_fmt: str
    width: int
    height: int
    fps: float


@dataclass(frozen=True)
class AudioStream:
    codec: str
    sample_rate: int
    channels: str


@dataclass(frozen=True)
class MediaInfo:
    duration: float
    format_name: str
    video: VideoStream | None
    audio: AudioStream | None
    #: Exact number of video frames (counted by demuxing), 0 without video.
    frame_count: int

    @property
    def video_duration(self) -> float:
        """Duration implied by the frame count and frame rate."""
        if not self.video or not self.video.fps:
            return 0.0
        return self.frame_count / self.video.fps


_DURATION_RE = re.compile(r"Duration:\s*(\d+):(\d+):(\d+(?:\.\d+)?)")
_INPUT_RE = re.compile(r"Input #0, ([^,]+(?:,[^,]+)*?), from")
_VIDEO_RE = re.compile(r"Stream #0:\d+.*?: Video: (\w+).*?, (\w+)(?:\([^)]*\))?, (\d+)x(\d+)")
_FPS_RE = re.compile(r"(\d+(?:\.\d+)?) fps")
_AUDIO_RE = re.compile(r"Stream #0:\d+.*?: Audio: (\w+).*?, (\d+) Hz, ([\w.()]+)")
_FRAME_RE = re.compile(r"frame=\s*(\d+)")


def probe(path: str | os.PathLike[str]) -> MediaInfo:
    """Describe a media file: duration, first video and audio stream, exact frame count."""
    path = Path(path)
    if not path.is_file():
        raise FFmpegError(f"{path} does not exist")
    cmd = [
        ffmpeg_exe(),
        "-hide_banner",
        "-nostdin",
        "-i",
        str(path),
        "-map",
        "0:v:0?",
        "-map",
        "0:a:0?",
        "-c",
        "copy",
        "-f",
        "null",
        "-",
    ]
    proc = subprocess.run(cmd, capture_output=True, timeout=600, check=False)
    err = proc.stderr.decode("utf-8", "replace")
    if "Invalid data found" in err or "Input #0" not in err:
        raise FFmpegError(f"cannot read {path.name}", _tail(err))
    m = _DURATION_RE.search(err)
    duration = int(m.group(1)) * 3600 + int(m.group(2)) * 60 + float(m.group(3)) if m else 0.0
    fm = _INPUT_RE.search(err)
    video = None
    vm = _VIDEO_RE.search(err)
    if vm:
        line = err[vm.start() : err.find("\n", vm.start())]
        fps_m = _FPS_RE.search(line)
        video = VideoStream(
            codec=vm.group(1),
            pix_fmt=vm.group(2),
            width=int(vm.group(3)),
            height=int(vm.group(4)),
            fps=float(fps_m.group(1)) if fps_m else 0.0,
        )
    audio = None
    am = _AUDIO_RE.search(err)
    if am:
        audio = AudioStream(codec=am.group(1), sample_rate=int(am.group(2)), channels=am.group(3).rstrip(","))
    frames = [int(x) for x in _FRAME_RE.findall(err)]
    return MediaInfo(
        duration=duration,
        format_name=fm.group(1) if fm else "",
        video=video,
        audio=audio,
        frame_count=frames[-1] if (frames and video) else 0,
    )


# --------------------------------------------------------------------------------------------
# audio
# --------------------------------------------------------------------------------------------


def decode_pcm(
    path: str | os.PathLike[str],
    sample_rate: int,
    *,
    mono: bool = True,
    max_seconds: float | None = None,
    first_audio_track: bool = False,
) -> tuple[np.ndarray, str]:
    """Decode any audio ffmpeg reads to float32 PCM: shape (n,) when `mono`, else (n, 2); and what ffmpeg
    said on stderr (`-v error`: the decode errors of a damaged file that still decodes). Raises
    `FFmpegError` when ffmpeg fails; the callers turn that into their own one-line error."""
    args: list[str] = ["-v", "error", "-i", str(path)]
    if first_audio_track:
        args += ["-map", "0:a:0"]
    args += ["-vn", "-sn", "-dn"]
    if max_seconds:
        args += ["-t", f"{max_seconds:.3f}"]
    args += ["-ac", "1" if mono else "2", "-ar", str(sample_rate), "-f", "f32le", "-"]
    proc = run_ffmpeg(args, what=f"decoding {Path(path).name}")
    pcm = np.frombuffer(proc.stdout, dtype="<f4").astype(np.float32)
    return (pcm if mono else pcm.reshape(-1, 2)), proc.stderr.decode("utf-8", "replace")


def decode_audio(
    path: str | os.PathLike[str], sample_rate: int = 22050, mono: bool = True, max_seconds: float | None = None
) -> np.ndarray:
    """Decode any audio ffmpeg reads (mp3, wav, flac, m4a, ...) to float32 PCM.

    Returns shape (n,) when `mono`, else (n, 2). Raises `AudioError` if nothing decodes.
    """
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"music file {path} does not exist")
    try:
        pcm, _ = decode_pcm(path, sample_rate, mono=mono, max_seconds=max_seconds)
    except FFmpegError as exc:
        raise AudioError(f"cannot decode music {path.name}: {exc.stderr_tail or exc}") from exc
    if pcm.size == 0:
        raise AudioError(f"music {path.name} contains no decodable audio")
    return pcm


@dataclass(frozen=True)
class Loudness:
    integrated_lufs: float
    true_peak_dbtp: float
    lra: float
    threshold: float
    #: Offset loudnorm suggests for its linear second pass.
    target_offset: float


def measure_loudness(
    path: str | os.PathLike[str],
    *,
    start: float | None = None,
    duration: float | None = None,
    target_i: float = -14.0,
    target_tp: float = -1.0,
    target_lra: float = 11.0,
) -> Loudness:
    """EBU R128 measurement (loudnorm's analysis pass) of a file's first audio stream."""
    args: list[str] = []
    if start is not None:
        args += ["-ss", f"{start:.3f}"]
    if duration is not None:
        args += ["-t", f"{duration:.3f}"]
    args += [
        "-i",
        str(path),
        "-vn",
        "-af",
        f"loudnorm=I={target_i}:TP={target_tp}:LRA={target_lra}:print_format=json",
        "-f",
        "null",
        "-",
    ]
    proc = run_ffmpeg(args, what="loudness analysis")
    return parse_loudnorm_json(proc.stderr.decode("utf-8", "replace"))


def parse_loudnorm_json(stderr: str, what: str = "loudness analysis") -> Loudness:
    """The measurement block `loudnorm=...:print_format=json` prints at the end of its stderr."""
    block = stderr[stderr.rfind("{") : stderr.rfind("}") + 1]
    try:
        data = json.loads(block)
        return Loudness(
            integrated_lufs=float(data["input_i"]),
            true_peak_dbtp=float(data["input_tp"]),
            lra=float(data["input_lra"]),
            threshold=float(data["input_thresh"]),
            target_offset=float(data["target_offset"]),
        )
    except (ValueError, KeyError) as exc:
        raise FFmpegError(f"could not parse the {what}", _tail(stderr)) from exc


# --------------------------------------------------------------------------------------------
# video encoding from raw frames
# --------------------------------------------------------------------------------------------


class VideoWriter:
    """Streams RGB uint8 frames into libx264 through a pipe; the file appears atomically on close.

    >>> with VideoWriter(out, 1920, 1080, 30) as w:
    ...     w.write(frame)  # (1080, 1920, 3) uint8, RGB
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        width: int,
        height: int,
        fps: float,
        *,
        preset: str = "veryfast",
        crf: int = 18,
        extra_args: Sequence[str] = (),
        audio: str | os.PathLike[str] | None = None,
    ) -> None:
        """`audio`: an already-encoded audio file (AAC) muxed in as it is (stream copy), cut to the video."""
        self.path = Path(path)
        self.width, self.height, self.fps = width, height, fps
        self._tmp = self.path.with_name(f".{self.path.stem}.partial{self.path.suffix}")
        self.frames_written = 0
        self._cmd = [
            ffmpeg_exe(),
            "-hide_banner",
            "-nostdin",
            "-y",
            "-loglevel",
            "error",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "rgb24",
            "-s",
            f"{width}x{height}",
            "-r",
            f"{fps}",
            "-i",
            "-",
            *(["-i", str(audio), "-map", "0:v:0", "-map", "1:a:0", "-c:a", "copy", "-shortest"] if audio else ["-an"]),
            "-c:v",
            "libx264",
            "-preset",
            preset,
            "-crf",
            str(crf),
            "-pix_fmt",
            "yuv420p",
            "-movflags",
            "+faststart",
            *extra_args,
            str(self._tmp),
        ]
        self._proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> VideoWriter:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._proc = subprocess.Popen(self._cmd, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
        return self

    def write(self, frame: np.ndarray) -> None:
        if frame.shape != (self.height, self.width, 3) or frame.dtype != np.uint8:
            raise ValueError(f"frame must be ({self.height}, {self.width}, 3) uint8, got {frame.shape} {frame.dtype}")
        assert self._proc is not None and self._proc.stdin is not None
        try:
            self._proc.stdin.write(np.ascontiguousarray(frame).tobytes())
        except BrokenPipeError as exc:
            stderr = self._proc.stderr.read() if self._proc.stderr else b""
            raise FFmpegError("encoder exited early", _tail(stderr)) from exc
        self.frames_written += 1

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._proc is not None
        if exc_type is not None:
            # Abandoned (a failed frame, a cancelled render): stop at once instead of letting x264
            # encode what it has buffered, and leave no partial file.
            self._proc.kill()
            self._proc.wait()
            self._tmp.unlink(missing_ok=True)
            return
        if self._proc.stdin:
            with contextlib.suppress(BrokenPipeError):
                self._proc.stdin.close()
        stderr = self._proc.stderr.read() if self._proc.stderr else b""
        rc = self._proc.wait()
        if rc != 0:
            self._tmp.unlink(missing_ok=True)
            raise FFmpegError(f"encoding {self.path.name} failed (exit {rc})", _tail(stderr))
        os.replace(self._tmp, self.path)
