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

    The targets are delivery targets, measured on the encoded AAC: `calibrate_loudnorm` encodes the bed
    alone and moves loudnorm's targets until the encoded audio complies (AAC adds up to ~2 dB of
    inter-sample peaks to loud masters), then the single video encode uses those targets.
"""

from __future__ import annotations

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
from app.media.ffmpeg import (
    Loudness,
    MediaInfo,
    ffmpeg_exe,
    measure_loudness,
    parse_loudnorm_json,
    probe,
    run_ffmpeg,
)

logger = logging.getLogger(__name__)

#: Fade from black at the start and to black at the end of the video.
FADE_IN_SECONDS = 0.5
FADE_OUT_SECONDS = 1.0
#: Loudness range loudnorm aims for; raised to the bed's own range so music keeps its dynamics.
DEFAULT_TARGET_LRA = 11.0
AUDIO_SAMPLE_RATE = 48000
#: Lowest true-peak ceiling loudnorm accepts.
MIN_LOUDNORM_TP = -9.0
#: Highest integrated target loudnorm accepts.
MAX_LOUDNORM_I = -5.0
#: Audio-only encodes `calibrate_loudnorm` may spend finding loudnorm's targets.
TRUE_PEAK_ATTEMPTS = 4
#: Calibration stops once the encoded integrated loudness is this close to the target (LU).
LOUDNESS_TOLERANCE = 0.5
CUT = "cut"
#: xfade's transitions (ffmpeg 7-9) except "custom", which needs an expression.
XFADE_TRANSITIONS = frozenset(
    {
        "fade",
        "wipeleft",
        "wiperight",
        "wipeup",
        "wipedown",
        "slideleft",
        "slideright",
        "slideup",
        "slidedown",
        "circlecrop",
        "rectcrop",
        "distance",
        "fadeblack",
        "fadewhite",
        "radial",
        "smoothleft",
        "smoothright",
        "smoothup",
        "smoothdown",
        "circleopen",
        "circleclose",
        "vertopen",
        "vertclose",
        "horzopen",
        "horzclose",
        "dissolve",
        "pixelize",
        "diagtl",
        "diagtr",
        "diagbl",
        "diagbr",
        "hlslice",
        "hrslice",
        "vuslice",
        "vdslice",
        "hblur",
        "fadegrays",
        "wipetl",
        "wipetr",
        "wipebl",
        "wipebr",
        "squeezeh",
        "squeezev",
        "zoomin",
        "fadefast",
        "fadeslow",
        "hlwind",
        "hrwind",
        "vuwind",
        "vdwind",
        "coverleft",
        "coverright",
        "coverup",
        "coverdown",
        "revealleft",
        "revealright",
        "revealup",
        "revealdown",
    }
)
#: Extra frames fed to the first input of every xfade, past the end of the transition. They are never
#: shown (the second input is already at 100 %; verified with the bundled ffmpeg 9, where exact lengths
#: also work). Defensive: xfade's end-of-input handling has changed between ffmpeg releases, and a
#: build that stops when its first input ends before ``offset + duration`` is passed would silently
#: drop the rest of the video (verify_output would then fail the job).
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
    #: Seconds into the clip where this segment's footage starts. That first frame is shown when the
    #: incoming transition begins (output time ``start - d_prev/2``, or 0 for the first segment), and
    #: the footage runs for ``(end - start) + d_prev/2 + d_this/2`` seconds, plus two invisible frames
    #: before an xfade. `FilterGraph.segment_frames` has the exact frame numbers.
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
class LoudnormTargets:
    """What loudnorm is asked for so that the *encoded AAC* meets the delivery targets."""

    integrated_lufs: float
    true_peak_dbtp: float
    #: Loudness of the calibration encode made with these targets (== the delivered audio).
    encoded: Loudness | None = None


@dataclass(frozen=True)
class AssemblyResult:
    path: Path
    duration: float
    frame_count: int
    #: Measured on the output file (integrated LUFS, true peak, ...); None without music.
    loudness: Loudness | None
    #: Pass-1 measurement of the music bed alone; None without music.
    music_measured: Loudness | None
    #: Targets handed to loudnorm (moved from the delivery targets to absorb AAC overshoot); None
    #: without music or for a silent bed.
    loudnorm_targets: LoudnormTargets | None
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


def _plan_transitions(
    segments: Sequence[AssemblySegment], cuts: list[int], bounds: list[int], fps: Fraction
) -> tuple[list[PlannedTransition], list[str]]:
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
                notes.append(
                    f"transition {k} ({kind}) shortened from {frames} to {cap} frames to fit its "
                    "segments" + (" (hard cut)" if cap < 2 else "")
                )
                frames = cap if cap >= 2 else 0
        if frames == 0:
            kind = CUT
        planned.append(
            PlannedTransition(index=k, kind=kind, cut_frame=cuts[k], start_frame=cuts[k] - frames // 2, frames=frames)
        )
    return planned, notes


def _validate(
    segments: Sequence[AssemblySegment],
    width: int,
    height: int,
    fps: Fraction,
    total_duration: float,
    music: MusicBed | None,
) -> None:
    if not segments:
        raise ValueError("no segments to assemble")
    if width <= 0 or height <= 0 or width % 2 or height % 2:
        raise ValueError(f"output size must be positive and even (yuv420p), got {width}x{height}")
    half_frame = 0.5 / float(fps) + 1e-9
    if abs(segments[0].start) > half_frame:
        raise ValueError(f"the first segment must start at 0, not {segments[0].start}")
    if abs(total_duration - segments[-1].end) > half_frame:
        raise ValueError(f"total_duration {total_duration} does not match the last segment's end {segments[-1].end}")
    for k, seg in enumerate(segments):
        if seg.clip_in < 0 or not math.isfinite(seg.clip_in):
            raise ValueError(f"segment {k}: clip_in must be >= 0, got {seg.clip_in}")
        if seg.transition_duration < 0 or not math.isfinite(seg.transition_duration):
            raise ValueError(f"segment {k}: transition_duration must be >= 0")
        if seg.transition != CUT and seg.transition not in XFADE_TRANSITIONS:
            raise ValueError(f"segment {k}: unknown transition {seg.transition!r}")
        if k and abs(seg.start - segments[k - 1].end) > half_frame:
            raise ValueError(
                f"segment {k} starts at {seg.start} but segment {k - 1} ends at "
                f"{segments[k - 1].end}: segments must be contiguous"
            )
    if music is not None and (music.offset < 0 or music.fade_in < 0 or music.fade_out < 0):
        raise ValueError("music offset and fades must be >= 0")


def _validate_targets(target_lufs: float, target_tp: float) -> None:
    # loudnorm's accepted ranges; outside them ffmpeg fails only once the encode has started
    if not -70.0 <= target_lufs <= -5.0:
        raise ValueError(f"target_lufs must be within [-70, -5], got {target_lufs}")
    if not MIN_LOUDNORM_TP <= target_tp <= 0.0:
        raise ValueError(f"target_tp must be within [{MIN_LOUDNORM_TP:g}, 0], got {target_tp}")


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
    chain = [
        f"atrim=start={_num(round(music.offset, 6))}:duration={d}",
        "asetpts=PTS-STARTPTS",
        "aformat=sample_fmts=fltp:channel_layouts=stereo",
        f"apad=whole_dur={d}",
    ]
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

    def clamp(value: float, lo: float, hi: float) -> float:
        # loudnorm rejects out-of-range measurements (an absurdly loud bed can measure above 0 LUFS)
        return min(hi, max(lo, value))

    return (
        f"loudnorm=I={_num(target_lufs)}:TP={_num(target_tp)}:LRA={_num(lra)}"
        f":measured_I={clamp(measured.integrated_lufs, -99, 0):.2f}"
        f":measured_TP={clamp(measured.true_peak_dbtp, -99, 99):.2f}"
        f":measured_LRA={clamp(measured.lra, 0, 99):.2f}"
        f":measured_thresh={clamp(measured.threshold, -99, 0):.2f}"
        f":offset={clamp(measured.target_offset, -99, 99):.2f}:linear=true"
    )


def _is_silent(measured: Loudness | None) -> bool:
    return measured is not None and not (math.isfinite(measured.integrated_lufs) and measured.integrated_lufs > -70.0)


def plan_audio_filter(
    music: MusicBed,
    duration: float,
    loudnorm_measured: Loudness | None,
    *,
    target_lufs: float = -14.0,
    target_tp: float = -1.0,
) -> str:
    """The complete music chain (no labels): bed, loudnorm pass 2, 48 kHz, exactly `duration` long.

    Pure. `target_tp` is the ceiling handed to loudnorm; `assemble_video` lowers it below the delivery
    target when the AAC encoder would otherwise overshoot (see `calibrate_loudnorm`).
    """
    chain = [music_bed_filter(music, duration)]
    if not _is_silent(loudnorm_measured):
        chain.append(_loudnorm_filter(loudnorm_measured, target_lufs, target_tp))
    d = _num(round(duration, 6))
    # loudnorm works at 192 kHz; pad/trim again so the audio ends exactly with the video.
    chain += [f"aresample={AUDIO_SAMPLE_RATE}", f"apad=whole_dur={d}", f"atrim=duration={d}", "asetpts=PTS-STARTPTS"]
    return ",".join(chain)


def plan_filter_graph(
    segments: Sequence[AssemblySegment],
    *,
    width: int,
    height: int,
    fps: float,
    music: MusicBed | None,
    total_duration: float,
    loudnorm_measured: Loudness | None,
    target_lufs: float = -14.0,
    target_tp: float = -1.0,
) -> FilterGraph:
    """Build the ffmpeg inputs and filter graph for `assemble_video`. Pure and deterministic.

    `loudnorm_measured` is the pass-1 measurement of the music bed (`measure_music_bed`); None plans
    a single-pass, dynamic loudnorm. A bed measured as silent is passed through without loudnorm.
    Raises ValueError for timelines that cannot be built (non-contiguous, sub-frame segments, ...).
    """
    q = _fps_fraction(fps)
    _validate(segments, width, height, q, total_duration, music)
    _validate_targets(target_lufs, target_tp)
    total_frames = _to_frame(total_duration, q)
    cuts = [_to_frame(seg.end, q) for seg in segments[:-1]]
    bounds = [0, *cuts, total_frames]
    for k in range(len(segments)):
        if bounds[k + 1] <= bounds[k]:
            raise ValueError(
                f"segment {k} is shorter than one frame on the {float(q):g} fps grid "
                f"(frames {bounds[k]}..{bounds[k + 1]})"
            )
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
            f"format=yuv420p,settb={tb}[v{k}]"
        )

    acc = "v0"
    for tr in transitions:
        nxt = f"v{tr.index + 1}"
        out = f"x{tr.index + 1}"
        if tr.frames:
            parts.append(
                f"[{acc}][{nxt}]xfade=transition={tr.kind}:duration={_seconds(tr.frames, q)}"
                f":offset={_seconds(tr.start_frame, q)}[{out}]"
            )
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
        input_args += ["-i", str(music.path)]
        if _is_silent(loudnorm_measured):
            notes.append("music bed is silent: not loudness-normalised")
        chain = plan_audio_filter(music, duration, loudnorm_measured, target_lufs=target_lufs, target_tp=target_tp)
        parts.append(f"[{len(segments)}:a]{chain}[aout]")
        maps += ["-map", "[aout]"]

    return FilterGraph(
        input_args=tuple(input_args),
        filter_complex=";".join(parts),
        output_maps=tuple(maps),
        frame_count=total_frames,
        duration=duration,
        segment_frames=tuple(seg_frames),
        transitions=tuple(transitions),
        has_audio=music is not None,
        notes=tuple(notes),
    )


# --------------------------------------------------------------------------------------------
# running
# --------------------------------------------------------------------------------------------


def _tail(text: str) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return "\n".join(lines[-6:])[-_STDERR_TAIL:]


def measure_music_bed(
    music: MusicBed, duration: float, *, target_lufs: float = -14.0, target_tp: float = -1.0
) -> Loudness:
    """Loudnorm pass 1 on the trimmed, faded music bed alone (audio only, no video decode)."""
    af = (
        f"{music_bed_filter(music, duration)},"
        f"loudnorm=I={_num(target_lufs)}:TP={_num(target_tp)}:LRA={_num(DEFAULT_TARGET_LRA)}"
        ":print_format=json"
    )
    proc = run_ffmpeg(
        ["-i", str(music.path), "-vn", "-sn", "-dn", "-af", af, "-f", "null", "-"], what="music loudness analysis"
    )
    return parse_loudnorm_json(proc.stderr.decode("utf-8", "replace"), "music bed's loudness analysis")


def _audio_codec_args(audio_bitrate: str) -> list[str]:
    """ffmpeg's native AAC encoder without perceptual noise substitution and temporal noise shaping.

    Both are low-bitrate tools that cost little to drop at 160+ kb/s, and both put isolated spikes
    into the decoded waveform: on a loud pop master normalised to -2 dBTP, PNS alone produced a
    +2.4 dBTP peak, and TNS ~1 dB more overshoot than without it (measured on 6 excerpts of two
    tracks); the delivered true peak is what the loudness targets are judged on.
    """
    return [
        "-c:a",
        "aac",
        "-b:a",
        audio_bitrate,
        "-aac_pns",
        "0",
        "-aac_tns",
        "0",
        "-ac",
        "2",
        "-ar",
        str(AUDIO_SAMPLE_RATE),
    ]


def calibrate_loudnorm(
    music: MusicBed,
    duration: float,
    measured: Loudness,
    scratch: Path,
    *,
    target_lufs: float = -14.0,
    target_tp: float = -1.0,
    audio_bitrate: str = "192k",
) -> tuple[LoudnormTargets, list[str]]:
    """Find loudnorm targets that keep the encoded AAC's true peak <= `target_tp` at `target_lufs`.

    Why: loudnorm limits the PCM it outputs, but AAC quantisation noise adds inter-sample peaks:
    ffmpeg's native encoder at 192 kb/s turned a loud, limited pop master normalised to -1 dBTP into
    +0.5 dBTP. So encode the bed alone to `scratch` (cheap next to the video), measure it, lower the
    ceiling by the overshoot and retry. A lower ceiling makes loudnorm's dynamic mode limit harder and
    land under its integrated target, so once the peaks comply the integrated target is raised by the
    shortfall (at most by the peak margin left). The overshoot is erratic (on one real track a lower
    ceiling gave a higher encoded peak), so the best attempt is kept: target peak met first, then
    closest loudness. At most TRUE_PEAK_ATTEMPTS audio encodes; one for beds that comply
    straight away (quiet or dynamic music stays in loudnorm's linear mode).

    The final encode runs the identical chain into the same (deterministic) encoder, so the delivered
    audio is the calibrated one. Returns the targets and notes when the delivery targets were missed.
    """
    aim, ceiling = target_lufs, target_tp
    best: LoudnormTargets | None = None

    def score(t: LoudnormTargets) -> tuple[float, float]:
        assert t.encoded is not None
        return (max(0.0, t.encoded.true_peak_dbtp - target_tp), abs(t.encoded.integrated_lufs - target_lufs))

    attempts = 0
    while attempts < TRUE_PEAK_ATTEMPTS:
        attempts += 1
        chain = plan_audio_filter(music, duration, measured, target_lufs=aim, target_tp=ceiling)
        run_ffmpeg(
            [
                "-i",
                str(music.path),
                "-vn",
                "-sn",
                "-dn",
                "-af",
                chain,
                *_audio_codec_args(audio_bitrate),
                "-f",
                "mp4",
                "-y",
                str(scratch),
            ],
            what="music bed encode",
        )
        got = measure_loudness(scratch, target_i=target_lufs, target_tp=target_tp)
        attempt = LoudnormTargets(aim, ceiling, got)
        if best is None or score(attempt) < score(best):
            best = attempt
        over = got.true_peak_dbtp - target_tp
        short = target_lufs - got.integrated_lufs
        if over <= 0 and abs(short) <= LOUDNESS_TOLERANCE:
            break
        new_aim, new_ceiling = aim, ceiling
        if over > 0:
            # peaks first: raising the loudness target at the same time would push them up again
            new_ceiling = max(MIN_LOUDNORM_TP, round(ceiling - (over + 0.3), 2))
        elif short > 0:
            # too quiet: raise the target, by no more than the peak margin left (the limiter holds the
            # PCM peaks, but the AAC overshoot tends to grow with the level)
            new_aim = round(min(MAX_LOUDNORM_I, target_lufs + 3.0, aim + min(short, -over)), 2)
        else:
            new_aim = round(max(target_lufs - 3.0, aim + short), 2)
        if abs(new_aim - aim) < 0.1 and abs(new_ceiling - ceiling) < 0.1:
            break
        logger.info(
            "encoded music %.2f LUFS / %.2f dBTP: loudnorm I %.2f -> %.2f, TP %.2f -> %.2f",
            got.integrated_lufs,
            got.true_peak_dbtp,
            aim,
            new_aim,
            ceiling,
            new_ceiling,
        )
        aim, ceiling = new_aim, new_ceiling

    assert best is not None and best.encoded is not None
    notes: list[str] = []
    enc = best.encoded
    if enc.true_peak_dbtp > target_tp or abs(enc.integrated_lufs - target_lufs) > 1.0:
        notes.append(
            f"music encodes at {enc.integrated_lufs:.2f} LUFS / {enc.true_peak_dbtp:.2f} dBTP "
            f"(targets {target_lufs:g} LUFS / {target_tp:g} dBTP) after {attempts} tries"
        )
    return best, notes


_OUT_TIME_RE = re.compile(r"^out_time_us=(\d+)\s*$")


def _run_with_progress(
    args: Sequence[str], *, duration: float, progress: Callable[[float], None] | None, timeout: float | None, what: str
) -> None:
    """Run ffmpeg with ``-progress pipe:1``, reporting the fraction of `duration` encoded.

    stderr goes to a temporary file (never a second pipe, which could fill up and deadlock while we
    block on stdout); a timer kills ffmpeg at `timeout`. If the callback raises (e.g. a cancelled job),
    ffmpeg is killed and the exception propagates.
    """
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-nostats", "-loglevel", "error", "-progress", "pipe:1", *args]
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
        visible = footage - (_XFADE_TAIL_FRAMES if k < len(graph.transitions) and graph.transitions[k].frames else 0)
        info = probe(seg.clip_path)
        if info.video is None:
            raise FFmpegError(f"clip {seg.clip_path.name} has no video stream")
        have = info.video_duration - seg.clip_in
        need = visible / fps
        if have + 0.5 / fps < need:
            warnings.append(
                f"segment {k}: {seg.clip_path.name} has {max(have, 0):.3f}s of footage after "
                f"clip_in={seg.clip_in:g}, {need:.3f}s needed; its last frame is held"
            )
    return warnings


def assemble_video(
    segments: Sequence[AssemblySegment],
    out_path: Path,
    *,
    width: int = 1920,
    height: int = 1080,
    fps: float = 30,
    music: MusicBed | None,
    preset: str = "medium",
    crf: int = 20,
    target_lufs: float = -14.0,
    target_tp: float = -1.0,
    audio_bitrate: str = "192k",
    progress: Callable[[float], None] | None = None,
    timeout: float | None = 3600.0,
) -> AssemblyResult:
    """Cut, cross-fade, lay the music bed and encode the deliverable MP4 at `out_path`.

    Steps: plan (pure) -> check each clip has the footage it must supply -> loudnorm pass 1 on the bed
    -> find the loudnorm ceiling that keeps the *AAC* true peak under `target_tp` (audio-only encodes)
    -> one encode with ``-progress`` -> `verify_output` -> loudness of the delivered file -> os.replace.

    The file is encoded under a temporary name beside `out_path` and only moved into place once
    verified, so `out_path` only ever holds a complete video and a re-run simply replaces it. Raises
    ValueError for impossible timelines, FFmpegError when ffmpeg fails, OutputVerificationError when
    the result does not match the timeline.
    """
    t0 = time.monotonic()
    out_path = Path(out_path)
    total = segments[-1].end if segments else 0.0
    _validate_targets(target_lufs, target_tp)
    video_only = plan_filter_graph(
        segments, width=width, height=height, fps=fps, music=None, total_duration=total, loudnorm_measured=None
    )
    warnings = _check_footage(segments, video_only, fps)

    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(f".{out_path.stem}.partial.mp4")
    scratch = out_path.with_name(f".{out_path.stem}.partial-audio.m4a")
    try:
        measured: Loudness | None = None
        targets: LoudnormTargets | None = None
        if music is not None:
            measured = measure_music_bed(music, video_only.duration, target_lufs=target_lufs, target_tp=target_tp)
            if not _is_silent(measured):
                targets, calibration_notes = calibrate_loudnorm(
                    music,
                    video_only.duration,
                    measured,
                    scratch,
                    target_lufs=target_lufs,
                    target_tp=target_tp,
                    audio_bitrate=audio_bitrate,
                )
                warnings += calibration_notes
        graph = plan_filter_graph(
            segments,
            width=width,
            height=height,
            fps=fps,
            music=music,
            total_duration=total,
            loudnorm_measured=measured,
            target_lufs=targets.integrated_lufs if targets else target_lufs,
            target_tp=targets.true_peak_dbtp if targets else target_tp,
        )
        warnings += graph.notes
        for w in warnings:
            logger.warning("assembling %s: %s", out_path.name, w)

        q = _fps_fraction(fps)
        args: list[str] = [
            *graph.input_args,
            "-filter_complex",
            graph.filter_complex,
            *graph.output_maps,
            "-c:v",
            "libx264",
            "-preset",
            preset,
            "-crf",
            str(crf),
            "-pix_fmt",
            "yuv420p",
            "-profile:v",
            "high",
            "-r",
            _fps_str(q),
        ]
        args += _audio_codec_args(audio_bitrate) if graph.has_audio else ["-an"]
        args += ["-movflags", "+faststart", "-f", "mp4", "-y", str(tmp)]
        t_enc = time.monotonic()
        _run_with_progress(
            args, duration=graph.duration, progress=progress, timeout=timeout, what=f"assembling {out_path.name}"
        )
        encode_seconds = time.monotonic() - t_enc
        info = verify_output(
            tmp, expected_duration=graph.duration, width=width, height=height, fps=fps, expect_audio=graph.has_audio
        )
        loudness = measure_loudness(tmp, target_i=target_lufs, target_tp=target_tp) if graph.has_audio else None
        if (
            loudness is not None
            and targets is not None
            and targets.encoded is not None
            and abs(loudness.true_peak_dbtp - targets.encoded.true_peak_dbtp) > 0.1
        ):
            # the final encode did not reproduce the calibration encode (non-deterministic encoder?)
            warnings.append(
                f"delivered audio {loudness.integrated_lufs:.2f} LUFS / "
                f"{loudness.true_peak_dbtp:.2f} dBTP differs from its calibration "
                f"({targets.encoded.integrated_lufs:.2f} / {targets.encoded.true_peak_dbtp:.2f})"
            )
            logger.warning("assembling %s: %s", out_path.name, warnings[-1])
        os.replace(tmp, out_path)
    finally:
        tmp.unlink(missing_ok=True)
        scratch.unlink(missing_ok=True)

    return AssemblyResult(
        path=out_path,
        duration=info.video_duration,
        frame_count=info.frame_count,
        loudness=loudness,
        music_measured=measured,
        loudnorm_targets=targets,
        filter_graph=graph.filter_complex,
        encode_seconds=encode_seconds,
        elapsed_seconds=time.monotonic() - t0,
        transitions=[(tr.centre_time(float(q)), tr.start_frame, tr.frames) for tr in graph.transitions],
        warnings=tuple(warnings),
    )


def extract_poster(video_path: Path, out_jpg: Path, at: float) -> Path:
    """Write a high-quality JPEG of the frame shown at `at` seconds (clamped to the first/last frame).

    ``-ss`` before ``-i`` seeks to the keyframe before `at` and decodes forward (fast, and still frame
    accurate). It keeps the first frame whose timestamp is >= the seek point, so we seek a quarter frame
    before the wanted frame: seeking to exactly a frame's time can round past it, and a seek beyond the
    last frame yields nothing. Written under a temporary name and moved into place.
    """
    video_path, out_jpg = Path(video_path), Path(out_jpg)
    info = probe(video_path)
    if info.video is None or not info.video.fps:
        raise FFmpegError(f"{video_path.name} has no usable video stream")
    fps = info.video.fps
    index = min(max(0, math.floor(at * fps + 1e-6)), max(0, info.frame_count - 1))
    seek = max(0.0, (index - 0.25) / fps)
    out_jpg.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_jpg.with_name(f".{out_jpg.stem}.partial.jpg")
    try:
        run_ffmpeg(
            [
                "-v",
                "error",
                "-ss",
                f"{seek:.6f}",
                "-i",
                str(video_path),
                "-frames:v",
                "1",
                "-q:v",
                "2",
                "-f",
                "image2",
                "-update",
                "1",
                "-y",
                str(tmp),
            ],
            what=f"poster of {video_path.name}",
        )
        if not tmp.is_file() or tmp.stat().st_size == 0:
            raise FFmpegError(f"no poster frame at {at:.3f}s of {video_path.name}")
        os.replace(tmp, out_jpg)
    finally:
        tmp.unlink(missing_ok=True)
    return out_jpg


def verify_output(
    path: Path, *, expected_duration: float, width: int, height: int, fps: float, expect_audio: bool
) -> MediaInfo:
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
            problems.append(
                f"{info.frame_count} frames, expected {expected_frames} ({expected_duration:.3f}s at {fps:g} fps)"
            )
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
