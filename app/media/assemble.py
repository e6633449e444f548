"""Phase 4 media: cut the rendered clips onto the beat grid, lay the music bed, encode the deliverable.

Everything here is pure media code: no database, no settings; the caller passes paths and numbers.

Frame grid
    Every time on the output timeline is quantised to whole frames *before* the graph is built, so a
    transition is centred on its cut within half a frame no matter how the beat times fall:

    * cut frame ``c_k = round(end_k * fps)`` (half up), total frames ``N = round(T * fps)``;
    * an xfade transition lasts an even number ``L_k >= 2`` of frames and starts at ``s_k = c_k - L_k/2``.
      ffmpeg's xfade shows the first input alone at ``s_k``, mixes ``j/L_k`` of the second input at
      ``s_k + j`` and the second input alone at ``s_k + L_k``: the 50 % frame is exactly ``c_k``;
    * ``"cut"`` (or a zero duration) is a true hard cut made with the concat filter: the last frame of
      segment k is ``c_k - 1`` and the first frame of segment k+1 is ``c_k``. A requested transition
      that does not fit the neighbouring segments (each transition may use at most the whole of the
      shorter neighbour, so two transitions never overlap) is shortened, down to a hard cut.

    Every video input is brought to the output's frame rate and to the time base ``1/fps``, so xfade
    offsets become exact integer frame positions (with ``AV_TIME_BASE`` microsecond timestamps a
    1/30 s frame would be rounded and the offset comparison could land one frame off).

Audio
    The music bed (trim at ``offset``, fade in / out) is loudness-normalised to EBU R128 with loudnorm's
    two-pass method: `measure_music_bed` runs pass 1 on the bed alone (audio only, fast) and
    `plan_filter_graph` applies the measured values with ``linear=true``. Loudnorm stays linear (a plain
    gain, no pumping) only when the gained true peak stays under the ceiling and the bed's loudness range
    does not exceed the target range; the target range is therefore raised to the bed's own range,
    and a bed that would clip falls back to loudnorm's dynamic mode (its true-peak limiter).
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

from app.errors import FFmpegError, OutputVerificationError
from app.media.ffmpeg import Loudness, MediaInfo, ffmpeg_exe, measure_loudness, probe, run_ffmpeg

logger = logging.getLogger(__name__)

#: Fade from black at the start and to black at the end of the video.
FADE_IN_SECONDS = 0.5
FADE_OUT_SECONDS = 1.0
#: Loudness range loudnorm aims for; raised to the bed's own range so music keeps its dynamics.
DEFAULT_TARGET_LRA = 11.0
AUDIO_SAMPLE_RATE = 48000
CUT = "cut"
#: xfade's transitions (ffmpeg 7-9) except "custom", which needs an expression.
XFADE_TRANSITIONS = frozenset({
    "fade", "wipeleft", "wiperight", "wipeup", "wipedown", "slideleft", "slideright", "slideup",
    "slidedown", "circlecrop", "rectcrop", "distance", "fadeblack", "fadewhite", "radial", "smoothleft",
    "smoothright", "smoothup", "smoothdown", "circleopen", "circleclose", "vertopen", "vertclose",
    "horzopen", "horzclose", "dissolve", "pixelize", "diagtl", "diagtr", "diagbl", "diagbr", "hlslice",
    "hrslice", "vuslice", "vdslice", "hblur", "fadegrays", "wipetl", "wipetr", "wipebl", "wipebr",
    "squeezeh", "squeezev", "zoomin", "fadefast", "fadeslow", "hlwind", "hrwind", "vuwind", "vdwind",
    "coverleft", "coverright", "coverup", "coverdown", "revealleft", "revealright", "revealup",
    "revealdown",
})
#: Extra frames fed to the first input of every xfade, past the end of the transition. They are never
#: shown (the second input is already at 100 %), but older xfade builds end their output when the first
#: input ends before they have seen a frame beyond ``offset + duration``.
_XFADE_TAIL_FRAMES = 2
_STDERR_TAIL = 1500
_MAX_FPS_DENOMINATOR = 1001


# --------------------------------------------------------------------------------------------
# data types
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AssemblySegment:
    """One clip's stretch of the output timeline (see the module docstring for the frame grid)."""

    #: An H.264 clip rendered by phase 2 (may be longer than needed).
    clip_path: Path
    #: Seconds into the clip where this segment's footage starts. The footage runs for
    #: ``(end - start) + d_prev/2 + d_this/2`` seconds (plus two invisible frames before an xfade).
    clip_in: float
    #: Nominal cut-in time on the output timeline (a beat); 0 for the first segment.
    start: float
    #: Nominal cut-out time on the output timeline (a beat).
    end: float
    #: Transition INTO THE NEXT segment: an xfade transition name, or "cut".
    transition: str = "fade"
    #: Seconds, centred on `end`. Ignored for the last segment.
    transition_duration: float = 0.5


@dataclass(frozen=True)
class MusicBed:
    path: Path
    #: Music time that plays at output time 0 (e.g. the first downbeat).
    offset: float
    fade_in: float = 0.3
    fade_out: float = 2.0


@dataclass(frozen=True)
class PlannedTransition:
    """A transition after quantisation to the frame grid."""

    #: Between segment `index` and segment `index + 1`.
    index: int
    #: xfade transition name, or "cut".
    kind: str
    #: Output frame shown at 50 % (xfade) or the first frame of the next segment (cut).
    cut_frame: int
    #: First frame of the transition (== cut_frame for a cut).
    start_frame: int
    #: Length in frames: even and >= 2 for xfade, 0 for a cut.
    frames: int

    def centre_time(self, fps: float) -> float:
        return self.cut_frame / fps


@dataclass(frozen=True)
class FilterGraph:
    """Everything `assemble_video` passes to ffmpeg besides the encoder settings."""

    #: ``-i`` arguments: one input per segment (in order), then the music if any.
    input_args: tuple[str, ...]
    filter_complex: str
    #: ``-map`` arguments for the labelled outputs ("[vout]", and "[aout]" with music).
    output_maps: tuple[str, ...]
    #: Exact number of output frames, ``round(T * fps)``.
    frame_count: int
    #: ``frame_count / fps``: the real output duration (T snapped to the frame grid).
    duration: float
    #: Per segment: (first output frame, number of footage frames taken from the clip).
    segment_frames: tuple[tuple[int, int], ...]
    transitions: tuple[PlannedTransition, ...]
    has_audio: bool
    #: Non-fatal adjustments made while planning (shortened transitions, silent music).
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class AssemblyResult:
    path: Path
    duration: float
    frame_count: int
    #: Measured on the output file (integrated LUFS, true peak, ...); None without music.
    loudness: Loudness | None
    #: Pass-1 measurement of the music bed alone; None without music.
    music_measured: Loudness | None
    filter_graph: str
    #: Wall time of the main encode; `elapsed_seconds` includes loudness passes and verification.
    encode_seconds: float
    elapsed_seconds: float
    #: (centre time in seconds, start frame, frames) per transition; frames == 0 is a hard cut.
    transitions: list[tuple[float, int, int]] = field(default_factory=list)
    warnings: tuple[str, ...] = ()


# --------------------------------------------------------------------------------------------
# planning (pure)
# --------------------------------------------------------------------------------------------


def _fps_fraction(fps: float) -> Fraction:
    """30 -> 30/1, 29.97 -> 30000/1001: exact arithmetic for frame positions and the time base."""
    if not (fps > 0 and math.isfinite(fps)):
        raise ValueError(f"fps must be positive, got {fps}")
    return Fraction(fps).limit_denominator(_MAX_FPS_DENOMINATOR)


def _to_frame(seconds: float, fps: Fraction) -> int:
    """Nearest frame, halves rounded up (Python's round() would round halves to even); the epsilon
    keeps 1.05 s * 30 (= 31.499999...) on the same side as the exact value."""
    return math.floor(seconds * float(fps) + 0.5 + 1e-9)


def _seconds(frames: int, fps: Fraction) -> str:
    """Frame position as a filter time string; microsecond precision is far below half a frame."""
    return f"{float(frames / fps):.6f}"


def _num(value: float) -> str:
    return f"{value:.6f}".rstrip("0").rstrip(".") if value != int(value) else str(int(value))


def _fps_str(fps: Fraction) -> str:
    return str(fps.numerator) if fps.denominator == 1 else f"{fps.numerator}/{fps.denominator}"


def _plan_transitions(segments: Sequence[AssemblySegment], cuts: list[int], bounds: list[int],
                      fps: Fraction) -> tuple[list[PlannedTransition], list[str]]:
    notes: list[str] = []
    planned: list[PlannedTransition] = []
    for k, seg in enumerate(segments[:-1]):
        kind = seg.transition
        frames = 0
        if kind != CUT and seg.transition_duration > 0:
            frames = max(2, 2 * math.floor(seg.transition_duration * float(fps) / 2 + 0.5))
            # A transition may use at most the whole of the shorter neighbour, so consecutive
            # transitions (each taking half its length from each side) never overlap.
            cap = min(bounds[k + 1] - bounds[k], bounds[k + 2] - bounds[k + 1])
            cap -= cap % 2
            if frames > cap:
                notes.append(f"transition {k} ({kind}) shortened from {frames} to {cap} frames to fit its "
                             "segments" + (" (hard cut)" if cap < 2 else ""))
                frames = cap if cap >= 2 else 0
        if frames == 0:
            kind = CUT
        planned.append(PlannedTransition(index=k, kind=kind, cut_frame=cuts[k],
                                         start_frame=cuts[k] - frames // 2, frames=frames))
    return planned, notes


def _validate(segments: Sequence[AssemblySegment], width: int, height: int, fps: Fraction,
              total_duration: float, music: MusicBed | None) -> None:
    if not segments:
        raise ValueError("no segments to assemble")
    if width <= 0 or height <= 0 or width % 2 or height % 2:
        raise ValueError(f"output size must be positive and even (yuv420p), got {width}x{height}")
    half_frame = 0.5 / float(fps) + 1e-9
    if abs(segments[0].start) > half_frame:
        raise ValueError(f"the first segment must start at 0, not {segments[0].start}")
    if abs(total_duration - segments[-1].end) > half_frame:
        raise ValueError(f"total_duration {total_duration} does not match the last segment's end "
                         f"{segments[-1].end}")
    for k, seg in enumerate(segments):
        if seg.clip_in < 0 or not math.isfinite(seg.clip_in):
            raise ValueError(f"segment {k}: clip_in must be >= 0, got {seg.clip_in}")
        if seg.transition_duration < 0 or not math.isfinite(seg.transition_duration):
            raise ValueError(f"segment {k}: transition_duration must be >= 0")
        if seg.transition != CUT and seg.transition not in XFADE_TRANSITIONS:
            raise ValueError(f"segment {k}: unknown transition {seg.transition!r}")
        if k and abs(seg.start - segments[k - 1].end) > half_frame:
            raise ValueError(f"segment {k} starts at {seg.start} but segment {k - 1} ends at "
                             f"{segments[k - 1].end}: segments must be contiguous")
    if music is not None and (music.offset < 0 or music.fade_in < 0 or music.fade_out < 0):
        raise ValueError("music offset and fades must be >= 0")


def music_bed_filter(music: MusicBed, duration: float) -> str:
    """The bed as a filter chain (no labels): trimmed at `offset`, stereo, padded, faded.

    Shared by loudness pass 1 and the final graph so both see exactly the same signal. The layout is
    forced to stereo *before* loudnorm because R128 sums channel energies: a mono track upmixed after
    measurement would come out ~3 LU off. `apad` covers music shorter than ``offset + duration``
    (the timeline is expected to avoid that; the video then ends in silence, not short).
    """
    d = _num(round(duration, 6))
    fade_in = min(music.fade_in, duration / 2)
    fade_out = min(music.fade_out, duration / 2)
    chain = [f"atrim=start={_num(round(music.offset, 6))}:duration={d}", "asetpts=PTS-STARTPTS",
             "aformat=sample_fmts=fltp:channel_layouts=stereo", f"apad=whole_dur={d}"]
    if fade_in > 0:
        chain.append(f"afade=t=in:st=0:d={_num(round(fade_in, 6))}")
    if fade_out > 0:
        chain.append(f"afade=t=out:st={_num(round(duration - fade_out, 6))}:d={_num(round(fade_out, 6))}")
    return ",".join(chain)


def _loudnorm_filter(measured: Loudness | None, target_lufs: float, target_tp: float) -> str:
    if measured is None:
        # Single pass: loudnorm's dynamic mode. Used only when the caller did not measure.
        return f"loudnorm=I={_num(target_lufs)}:TP={_num(target_tp)}:LRA={_num(DEFAULT_TARGET_LRA)}"
    lra = min(50.0, max(DEFAULT_TARGET_LRA, math.ceil(measured.lra * 10) / 10))
    return (f"loudnorm=I={_num(target_lufs)}:TP={_num(target_tp)}:LRA={_num(lra)}"
            f":measured_I={measured.integrated_lufs:.2f}:measured_TP={measured.true_peak_dbtp:.2f}"
            f":measured_LRA={measured.lra:.2f}:measured_thresh={measured.threshold:.2f}"
            f":offset={measured.target_offset:.2f}:linear=true")


def _is_silent(measured: Loudness | None) -> bool:
    return measured is not None and not (math.isfinite(measured.integrated_lufs)
                                         and measured.integrated_lufs > -70.0)


def plan_filter_graph(segments: Sequence[AssemblySegment], *, width: int, height: int, fps: float,
                      music: MusicBed | None, total_duration: float, loudnorm_measured: Loudness | None,
                      target_lufs: float = -14.0, target_tp: float = -1.0) -> FilterGraph:
    """Build the ffmpeg inputs and filter graph for `assemble_video`. Pure and deterministic.

    `loudnorm_measured` is the pass-1 measurement of the music bed (`measure_music_bed`); None plans
    a single-pass, dynamic loudnorm. A bed measured as silent is passed through without loudnorm.
    Raises ValueError for timelines that cannot be built (non-contiguous, sub-frame segments, ...).
    """
    q = _fps_fraction(fps)
    _validate(segments, width, height, q, total_duration, music)
    total_frames = _to_frame(total_duration, q)
    cuts = [_to_frame(seg.end, q) for seg in segments[:-1]]
    bounds = [0, *cuts, total_frames]
    for k in range(len(segments)):
        if bounds[k + 1] <= bounds[k]:
            raise ValueError(f"segment {k} is shorter than one frame on the {float(q):g} fps grid "
                             f"(frames {bounds[k]}..{bounds[k + 1]})")
    transitions, notes = _plan_transitions(segments, cuts, bounds, q)

    tb = f"{q.denominator}/{q.numerator}"
    input_args: list[str] = []
    parts: list[str] = []
    seg_frames: list[tuple[int, int]] = []
    last = len(segments) - 1
    for k, seg in enumerate(segments):
        first = 0 if k == 0 else transitions[k - 1].start_frame
        if k == last:
            footage = total_frames - first
        else:
            tr = transitions[k]
            footage = tr.cut_frame + tr.frames // 2 - first + (_XFADE_TAIL_FRAMES if tr.frames else 0)
        seg_frames.append((first, footage))
        input_args += ["-i", str(seg.clip_path)]
        # trim by time in the clip, then conform (size, rate, format, time base), then take exactly
        # `footage` frames; tpad freezes the last frame if a clip is too short rather than letting
        # the whole video come out short.
        parts.append(
            f"[{k}:v]trim=start={_num(round(seg.clip_in, 6))},setpts=PTS-STARTPTS,"
            f"scale=w={width}:h={height}:force_original_aspect_ratio=decrease:force_divisible_by=2,"
            f"pad=w={width}:h={height}:x=(ow-iw)/2:y=(oh-ih)/2:color=black,setsar=1,"
            f"fps={_fps_str(q)},tpad=stop_mode=clone:stop={footage},trim=end_frame={footage},"
            f"format=yuv420p,settb={tb}[v{k}]")

    acc = "v0"
    for tr in transitions:
        nxt = f"v{tr.index + 1}"
        out = f"x{tr.index + 1}"
        if tr.frames:
            parts.append(f"[{acc}][{nxt}]xfade=transition={tr.kind}:duration={_seconds(tr.frames, q)}"
                         f":offset={_seconds(tr.start_frame, q)}[{out}]")
        else:
            # concat re-times to microseconds; bring the chain back to the frame time base for xfade.
            parts.append(f"[{acc}][{nxt}]concat=n=2:v=1:a=0,settb={tb}[{out}]")
        acc = out

    fade_in = min(_to_frame(FADE_IN_SECONDS, q), total_frames // 2)
    fade_out = min(_to_frame(FADE_OUT_SECONDS, q), total_frames - fade_in)
    video_tail = []
    if fade_in:
        video_tail.append(f"fade=t=in:s=0:n={fade_in}")
    if fade_out >= 2:
        # fade's level reaches 0 one frame after its last fading frame: n - 1 so the last frame is black.
        video_tail.append(f"fade=t=out:s={total_frames - fade_out}:n={fade_out - 1}")
    video_tail.append("format=yuv420p")
    parts.append(f"[{acc}]{','.join(video_tail)}[vout]")
    maps = ["-map", "[vout]"]

    duration = float(total_frames / q)
    if music is not None:
        idx = len(segments)
        input_args += ["-i", str(music.path)]
        chain = [music_bed_filter(music, duration)]
        if _is_silent(loudnorm_measured):
            notes.append("music bed is silent: not loudness-normalised")
        else:
            chain.append(_loudnorm_filter(loudnorm_measured, target_lufs, target_tp))
        d = _num(round(duration, 6))
        # loudnorm works at 192 kHz; pad/trim again so the audio ends exactly with the video.
        chain += [f"aresample={AUDIO_SAMPLE_RATE}", f"apad=whole_dur={d}", f"atrim=duration={d}",
                  "asetpts=PTS-STARTPTS"]
        parts.append(f"[{idx}:a]{','.join(chain)}[aout]")
        maps += ["-map", "[aout]"]

    return FilterGraph(input_args=tuple(input_args), filter_complex=";".join(parts), output_maps=tuple(maps),
                       frame_count=total_frames, duration=duration, segment_frames=tuple(seg_frames),
                       transitions=tuple(transitions), has_audio=music is not None, notes=tuple(notes))


# --------------------------------------------------------------------------------------------
# running
# --------------------------------------------------------------------------------------------


def _tail(text: str) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return "\n".join(lines[-6:])[-_STDERR_TAIL:]


def _parse_loudnorm_json(stderr: str) -> Loudness:
    block = stderr[stderr.rfind("{"): stderr.rfind("}") + 1]
    try:
        data = json.loads(block)
        return Loudness(integrated_lufs=float(data["input_i"]), true_peak_dbtp=float(data["input_tp"]),
                        lra=float(data["input_lra"]), threshold=float(data["input_thresh"]),
                        target_offset=float(data["target_offset"]))
    except (ValueError, KeyError) as exc:
        raise FFmpegError("could not parse the music bed's loudness analysis", _tail(stderr)) from exc


def measure_music_bed(music: MusicBed, duration: float, *, target_lufs: float = -14.0,
                      target_tp: float = -1.0) -> Loudness:
    """Loudnorm pass 1 on the trimmed, faded music bed alone (audio only, no video decode)."""
    af = (f"{music_bed_filter(music, duration)},"
          f"loudnorm=I={_num(target_lufs)}:TP={_num(target_tp)}:LRA={_num(DEFAULT_TARGET_LRA)}"
          ":print_format=json")
    proc = run_ffmpeg(["-i", str(music.path), "-vn", "-sn", "-dn", "-af", af, "-f", "null", "-"],
                      what="music loudness analysis")
    return _parse_loudnorm_json(proc.stderr.decode("utf-8", "replace"))


_OUT_TIME_RE = re.compile(r"^out_time_us=(\d+)\s*$")


def _run_with_progress(args: Sequence[str], *, duration: float, progress: Callable[[float], None] | None,
                       timeout: float | None, what: str) -> None:
    """Run ffmpeg with ``-progress pipe:1``, reporting the fraction of `duration` encoded.

    stderr goes to a temporary file (never a second pipe, which could fill up and deadlock while we
    block on stdout); a timer kills ffmpeg at `timeout`. If the callback raises (e.g. a cancelled job),
    ffmpeg is killed and the exception propagates.
    """
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-nostats", "-loglevel", "error",
           "-progress", "pipe:1", *args]
    last = -1.0
    with tempfile.TemporaryFile() as err_file:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err_file)
        timed_out = threading.Event()

        def _kill() -> None:
            timed_out.set()
            proc.kill()

        timer = threading.Timer(timeout, _kill) if timeout else None
        if timer:
            timer.daemon = True
            timer.start()
        try:
            assert proc.stdout is not None
            for raw in proc.stdout:
                line = raw.decode("ascii", "replace")
                m = _OUT_TIME_RE.match(line)
                if m and progress is not None and duration > 0:
                    frac = min(1.0, max(0.0, int(m.group(1)) / 1e6 / duration))
                    if frac > last:
                        last = frac
                        progress(frac)
            rc = proc.wait()
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        finally:
            if timer:
                timer.cancel()
        if timed_out.is_set():
            raise FFmpegError(f"{what} timed out after {timeout:.0f}s")
        if rc != 0:
            err_file.seek(0)
            raise FFmpegError(f"{what} failed (exit {rc})", _tail(err_file.read().decode("utf-8", "replace")))
    if progress is not None and last < 1.0:
        progress(1.0)


def _check_footage(segments: Sequence[AssemblySegment], graph: FilterGraph, fps: float) -> list[str]:
    """Warn about clips shorter than the footage they must supply (tpad would freeze their last frame)."""
    warnings: list[str] = []
    for k, (seg, (_, footage)) in enumerate(zip(segments, graph.segment_frames, strict=True)):
        visible = footage - (_XFADE_TAIL_FRAMES if k < len(graph.transitions) and
                             graph.transitions[k].frames else 0)
        info = probe(seg.clip_path)
        if info.video is None:
            raise FFmpegError(f"clip {seg.clip_path.name} has no video stream")
        have = info.video_duration - seg.clip_in
        need = visible / fps
        if have + 0.5 / fps < need:
            warnings.append(f"segment {k}: {seg.clip_path.name} has {max(have, 0):.3f}s of footage after "
                            f"clip_in={seg.clip_in:g}, {need:.3f}s needed; its last frame is held")
    return warnings


def assemble_video(segments: Sequence[AssemblySegment], out_path: Path, *, width: int = 1920,
                   height: int = 1080, fps: float = 30, music: MusicBed | None, preset: str = "medium",
                   crf: int = 20, target_lufs: float = -14.0, target_tp: float = -1.0,
                   audio_bitrate: str = "192k", progress: Callable[[float], None] | None = None,
                   timeout: float | None = 3600.0) -> AssemblyResult:
    """Cut, cross-fade, lay the music bed and encode the deliverable MP4 at `out_path`.

    The file is encoded under a temporary name beside `out_path`, verified (`verify_output`) and then
    moved into place with os.replace, so `out_path` only ever holds a complete, verified video and a
    re-run simply replaces it. Raises ValueError for impossible timelines, FFmpegError when ffmpeg
    fails, OutputVerificationError when the result does not match the timeline.
    """
    t0 = time.monotonic()
    out_path = Path(out_path)
    total = segments[-1].end if segments else 0.0
    graph_probe = plan_filter_graph(segments, width=width, height=height, fps=fps, music=None,
                                    total_duration=total, loudnorm_measured=None)
    warnings = _check_footage(segments, graph_probe, fps)
    measured: Loudness | None = None
    if music is not None:
        measured = measure_music_bed(music, graph_probe.duration, target_lufs=target_lufs,
                                     target_tp=target_tp)
    graph = plan_filter_graph(segments, width=width, height=height, fps=fps, music=music,
                              total_duration=total, loudnorm_measured=measured, target_lufs=target_lufs,
                              target_tp=target_tp)
    warnings += graph.notes
    for w in warnings:
        logger.warning("assembling %s: %s", out_path.name, w)

    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(f".{out_path.stem}.partial.mp4")
    q = _fps_fraction(fps)
    args: list[str] = [*graph.input_args, "-filter_complex", graph.filter_complex, *graph.output_maps,
                       "-c:v", "libx264", "-preset", preset, "-crf", str(crf), "-pix_fmt", "yuv420p",
                       "-profile:v", "high", "-r", _fps_str(q)]
    if graph.has_audio:
        args += ["-c:a", "aac", "-b:a", audio_bitrate, "-ac", "2", "-ar", str(AUDIO_SAMPLE_RATE)]
    else:
        args += ["-an"]
    args += ["-movflags", "+faststart", "-f", "mp4", "-y", str(tmp)]

    try:
        t_enc = time.monotonic()
        _run_with_progress(args, duration=graph.duration, progress=progress, timeout=timeout,
                           what=f"assembling {out_path.name}")
        encode_seconds = time.monotonic() - t_enc
        info = verify_output(tmp, expected_duration=graph.duration, width=width, height=height, fps=fps,
                             expect_audio=graph.has_audio)
        loudness = (measure_loudness(tmp, target_i=target_lufs, target_tp=target_tp)
                    if graph.has_audio else None)
        os.replace(tmp, out_path)
    finally:
        tmp.unlink(missing_ok=True)

    return AssemblyResult(
        path=out_path, duration=info.video_duration, frame_count=info.frame_count, loudness=loudness,
        music_measured=measured, filter_graph=graph.filter_complex, encode_seconds=encode_seconds,
        elapsed_seconds=time.monotonic() - t0,
        transitions=[(tr.centre_time(float(q)), tr.start_frame, tr.frames) for tr in graph.transitions],
        warnings=tuple(warnings))


def extract_poster(video_path: Path, out_jpg: Path, at: float) -> Path:
    """Write a high-quality JPEG of the frame shown at `at` seconds (clamped into the video).

    ``-ss`` before ``-i`` seeks to the keyframe before `at` and decodes forward (fast and still frame
    accurate). Written under a temporary name and moved into place.
    """
    video_path, out_jpg = Path(video_path), Path(out_jpg)
    info = probe(video_path)
    if info.video is None:
        raise FFmpegError(f"{video_path.name} has no video stream")
    last = info.video_duration - 1.0 / info.video.fps if info.video.fps else info.duration
    at = min(max(0.0, at), max(0.0, last))
    out_jpg.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_jpg.with_name(f".{out_jpg.stem}.partial.jpg")
    try:
        run_ffmpeg(["-v", "error", "-ss", f"{at:.3f}", "-i", str(video_path), "-frames:v", "1", "-q:v", "2",
                    "-f", "image2", "-update", "1", "-y", str(tmp)], what=f"poster of {video_path.name}")
        if not tmp.is_file() or tmp.stat().st_size == 0:
            raise FFmpegError(f"no poster frame at {at:.3f}s of {video_path.name}")
        os.replace(tmp, out_jpg)
    finally:
        tmp.unlink(missing_ok=True)
    return out_jpg


def verify_output(path: Path, *, expected_duration: float, width: int, height: int, fps: float,
                  expect_audio: bool) -> MediaInfo:
    """Check an assembled file against its timeline; raise OutputVerificationError listing every problem.

    Checks: H.264 video of WxH at `fps`, frame count within 1 of ``round(expected_duration * fps)``,
    container duration within ~2 frames, and an AAC audio stream present exactly when `expect_audio`.
    """
    path = Path(path)
    try:
        info = probe(path)
    except FFmpegError as exc:
        raise OutputVerificationError(f"{path.name}: unreadable output ({exc})") from exc
    problems: list[str] = []
    expected_frames = _to_frame(expected_duration, _fps_fraction(fps))
    if info.video is None:
        problems.append("no video stream")
    else:
        v = info.video
        if v.codec != "h264":
            problems.append(f"video codec {v.codec}, expected h264")
        if (v.width, v.height) != (width, height):
            problems.append(f"size {v.width}x{v.height}, expected {width}x{height}")
        if abs(v.fps - fps) > 0.01:
            problems.append(f"{v.fps:g} fps, expected {fps:g}")
        if abs(info.frame_count - expected_frames) > 1:
            problems.append(f"{info.frame_count} frames, expected {expected_frames} "
                            f"({expected_duration:.3f}s at {fps:g} fps)")
    if abs(info.duration - expected_duration) > max(0.1, 2.0 / fps):
        problems.append(f"duration {info.duration:.3f}s, expected {expected_duration:.3f}s")
    if expect_audio:
        if info.audio is None:
            problems.append("no audio stream, expected AAC")
        elif info.audio.codec != "aac":
            problems.append(f"audio codec {info.audio.codec}, expected aac")
    elif info.audio is not None:
        problems.append(f"unexpected audio stream ({info.audio.codec})")
    if problems:
        raise OutputVerificationError(f"{path.name}: " + "; ".join(problems))
    return info
