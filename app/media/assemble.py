"""Phase 4's sound and checks: the music bed, its loudness, the poster, output verification.

Pure media code (no database, no settings). The frames of a deliverable are composed and encoded by
`app.media.compose`; this module provides the audio they are muxed with and checks the result.

Audio
    The music bed (trim at ``offset``, fade in / out) is loudness-normalised to EBU R128 with loudnorm's
    two-pass method: `measure_music_bed` runs pass 1 on the bed alone (audio only, fast) and
    `plan_audio_filter` applies the measured values with ``linear=true``. Loudnorm stays linear (a plain
    gain, no pumping) only when the gained true peak stays under the ceiling and the bed's loudness range
    does not exceed the target range; the target range is therefore raised to the bed's own range,
    and a bed that would clip falls back to loudnorm's dynamic mode (its true-peak limiter).

    The targets are delivery targets, measured on the encoded AAC: `calibrate_loudnorm` encodes the bed
    alone and moves loudnorm's targets until the encoded audio complies (AAC adds up to ~2 dB of
    inter-sample peaks to loud masters); that encode is the delivered audio, muxed into every
    deliverable with the same loudness target as it is.

`XFADE_TRANSITIONS` names ffmpeg's xfade transitions, which `set_transition` accepts and
`app.media.transitions` draws with its nearest kind.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from app.errors import FFmpegError, OutputVerificationError
from app.media.ffmpeg import (
    Loudness,
    MediaInfo,
    measure_loudness,
    parse_loudnorm_json,
    probe,
    run_ffmpeg,
)

logger = logging.getLogger(__name__)


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


_STDERR_TAIL = 1500


_MAX_FPS_DENOMINATOR = 1001


@dataclass(frozen=True)
class MusicBed:
    path: Path
    #: Music time that plays at output time 0 (e.g. the first downbeat).
    offset: float
    fade_in: float = 0.3
    fade_out: float = 2.0


@dataclass(frozen=True)
class LoudnormTargets:
    """What loudnorm is asked for so that the *encoded AAC* meets the delivery targets."""

    integrated_lufs: float
    true_peak_dbtp: float
    #: Loudness of the calibration encode made with these targets (== the delivered audio).
    encoded: Loudness | None = None


def _fps_fraction(fps: float) -> Fraction:
    """30 -> 30/1, 29.97 -> 30000/1001: exact arithmetic for frame positions and the time base."""
    if not (fps > 0 and math.isfinite(fps)):
        raise ValueError(f"fps must be positive, got {fps}")
    return Fraction(fps).limit_denominator(_MAX_FPS_DENOMINATOR)


def _to_frame(seconds: float, fps: Fraction) -> int:
    """Nearest frame, halves rounded up (Python's round() would round halves to even); the epsilon
    keeps 1.05 s * 30 (= 31.499999...) on the same side as the exact value."""
    return math.floor(seconds * float(fps) + 0.5 + 1e-9)


def _num(value: float) -> str:
    return f"{value:.6f}".rstrip("0").rstrip(".") if value != int(value) else str(int(value))


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
