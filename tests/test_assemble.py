"""Phase 4 assembly: frame-accurate transitions, loudness, stream layout, atomic output.

All inputs are synthesised here (solid-colour clips, a tone + kick music bed) so the mix at every
output frame can be predicted. Small sizes and preset ultrafast keep the whole module to a few seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from app.errors import FFmpegError, OutputVerificationError
from app.media.assemble import (
    AssemblyResult,
    AssemblySegment,
    MusicBed,
    assemble_video,
    calibrate_loudnorm,
    extract_poster,
    measure_music_bed,
    plan_filter_graph,
    verify_output,
)
from app.media.ffmpeg import Loudness, VideoWriter, measure_loudness, probe, run_ffmpeg

FPS = 30
W, H = 320, 180
RED = (220, 40, 40)
GREEN = (40, 200, 60)
BLUE = (40, 60, 220)
YELLOW = (230, 210, 40)
#: Shown in the first second of the green clip only; a segment with clip_in=1.0 must never show it.
DECOY = (230, 0, 230)
PALETTE = {"red": RED, "green": GREEN, "blue": BLUE, "yellow": YELLOW, "decoy": DECOY, "black": (0, 0, 0)}


@dataclass(frozen=True)
class Media:
    red: Path  # 2 s, 320x180
    green: Path  # 3.5 s, 320x180: 1 s DECOY, then 2.5 s GREEN
    blue: Path  # 3 s, 240x180 (4:3): must come out pillarboxed
    yellow: Path  # 3 s, 320x180
    music: Path  # 8 s, 44.1 kHz mono, about -25 LUFS


def _solid_clip(path: Path, colours: list[tuple[tuple[int, int, int], int]], size: tuple[int, int]) -> Path:
    w, h = size
    with VideoWriter(path, w, h, FPS, preset="ultrafast", crf=10) as writer:
        for colour, frames in colours:
            frame = np.full((h, w, 3), colour, np.uint8)
            for _ in range(frames):
                writer.write(frame)
    return path


def _music(path: Path, seconds: float = 8.0, sr: int = 44100) -> Path:
    """A 220 Hz tone with slow tremolo (so the loudness range is not zero) plus a kick every 0.5 s."""
    t = np.arange(int(sr * seconds)) / sr
    x = 0.08 * np.sin(2 * np.pi * 220 * t) * (1 + 0.5 * np.sin(2 * np.pi * 0.25 * t))
    n = np.arange(2000)
    kick = 0.3 * np.exp(-n / 300) * np.sin(2 * np.pi * 60 * n / sr)
    for beat in np.arange(0, seconds, 0.5):
        i = int(beat * sr)
        m = min(len(kick), len(x) - i)
        x[i : i + m] += kick[:m]
    sf.write(path, x.astype(np.float32), sr)
    return path


def _loud_music(path: Path, seconds: float = 4.0, sr: int = 44100) -> Path:
    """A loud, soft-clipped drum-machine loop (peak-to-loudness ratio ~13 dB, like a pop master).

    Normalised to -14 LUFS its peaks sit near -1 dBTP, and ffmpeg's AAC encoder adds ~0.5 dB of
    inter-sample peaks on top: the case `calibrate_loudnorm` exists for.
    """
    rng = np.random.default_rng(1)
    t = np.arange(int(sr * seconds)) / sr
    sig = np.zeros((len(t), 2))
    n = np.arange(int(0.12 * sr))
    for beat in np.arange(0, seconds, 0.5):
        i = int(beat * sr)
        m = min(len(n), len(t) - i)
        kick = np.sin(2 * np.pi * (50 + 80 * np.exp(-n[:m] / 800)) * n[:m] / sr) * np.exp(-n[:m] / 3000)
        sig[i : i + m] += kick[:, None]
        j = int((beat + 0.25) * sr)
        m = max(0, min(len(n), len(t) - j))
        sig[j : j + m] += 0.5 * rng.standard_normal((m, 2)) * np.exp(-n[:m] / 400)[:, None]
    sig += 0.25 * np.sin(2 * np.pi * 110 * t)[:, None] + 0.15 * np.sign(np.sin(2 * np.pi * 330 * t))[:, None]
    x = 0.89 * np.tanh(0.6 * sig) / np.tanh(0.6 * np.abs(sig).max())
    sf.write(path, x.astype(np.float32), sr)
    return path


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Media:
    d = tmp_path_factory.mktemp("assemble_inputs")
    return Media(
        red=_solid_clip(d / "red.mp4", [(RED, 60)], (W, H)),
        green=_solid_clip(d / "green.mp4", [(DECOY, 30), (GREEN, 75)], (W, H)),
        blue=_solid_clip(d / "blue.mp4", [(BLUE, 90)], (240, 180)),
        yellow=_solid_clip(d / "yellow.mp4", [(YELLOW, 90)], (W, H)),
        music=_music(d / "music.wav"),
    )


def _decode(path: Path) -> np.ndarray:
    out = run_ffmpeg(["-v", "error", "-i", str(path), "-f", "rawvideo", "-pix_fmt", "rgb24", "-"]).stdout
    return np.frombuffer(out, np.uint8).reshape(-1, H, W, 3)


def _centre(frames: np.ndarray) -> np.ndarray:
    """Mean colour of a central patch per frame (inside the pillarbox of the 4:3 clip)."""
    return frames[:, 60:120, 130:190].reshape(len(frames), -1, 3).mean(axis=1)


def _mix(centre: np.ndarray, a: tuple[int, int, int], b: tuple[int, int, int]) -> np.ndarray:
    """Fraction of colour b in a mix of a and b, per frame (projection onto the a->b segment)."""
    va, vb = np.asarray(a, float), np.asarray(b, float)
    return (centre - va) @ (vb - va) / float((vb - va) @ (vb - va))


def _crossing(mix: np.ndarray, lo: int, hi: int) -> float:
    """Fractional frame where `mix` first rises through 0.5 within [lo, hi)."""
    for i in range(max(lo, 1), hi):
        if mix[i - 1] < 0.5 <= mix[i]:
            return i - 1 + (0.5 - mix[i - 1]) / (mix[i] - mix[i - 1])
    raise AssertionError(f"no 50% crossing between frames {lo} and {hi}: {np.round(mix[lo:hi], 2)}")


def _nearest(colour: np.ndarray) -> str:
    return min(PALETTE, key=lambda k: float(np.sum((colour - np.asarray(PALETTE[k], float)) ** 2)))


# --------------------------------------------------------------------------------------------
# with music, on a 0.5 s beat grid
# --------------------------------------------------------------------------------------------

SEGMENT_ENDS = [1.5, 3.0, 4.0, 6.0]


def _music_segments(m: Media) -> list[AssemblySegment]:
    return [
        AssemblySegment(m.red, 0.0, 0.0, 1.5, "fade", 0.5),
        AssemblySegment(m.green, 1.0, 1.5, 3.0, "fade", 0.4),
        AssemblySegment(m.blue, 0.0, 3.0, 4.0, "cut"),
        AssemblySegment(m.yellow, 0.0, 4.0, 6.0),
    ]


@pytest.fixture(scope="module")
def with_music(media: Media, tmp_path_factory: pytest.TempPathFactory) -> tuple[AssemblyResult, list[float]]:
    calls: list[float] = []
    out = tmp_path_factory.mktemp("assemble_out") / "listing.mp4"
    result = assemble_video(
        _music_segments(media),
        out,
        width=W,
        height=H,
        fps=FPS,
        music=MusicBed(media.music, offset=0.5),
        preset="ultrafast",
        crf=18,
        progress=calls.append,
    )
    return result, calls


def test_fixture_music_is_quiet(media: Media) -> None:
    assert -28.0 < measure_loudness(media.music).integrated_lufs < -22.0


def test_output_streams_and_frame_count(with_music: tuple[AssemblyResult, list[float]]) -> None:
    result, _ = with_music
    info = probe(result.path)
    assert info.video is not None and info.video.codec == "h264"
    assert (info.video.width, info.video.height) == (W, H)
    assert info.video.fps == pytest.approx(FPS)
    assert abs(info.frame_count - round(6.0 * FPS)) <= 1
    assert result.frame_count == info.frame_count
    assert info.audio is not None and info.audio.codec == "aac"
    assert info.audio.sample_rate == 48000 and info.audio.channels == "stereo"
    assert info.duration == pytest.approx(6.0, abs=0.1)
    assert not list(result.path.parent.glob(".*partial*")), "temporary file left behind"


def test_loudness_normalised(with_music: tuple[AssemblyResult, list[float]]) -> None:
    result, _ = with_music
    assert result.music_measured is not None and result.music_measured.integrated_lufs < -20
    assert result.loudnorm_targets is not None and result.loudnorm_targets.encoded is not None
    # the delivered audio is exactly the calibrated encode
    assert result.loudness is not None
    assert result.loudness.true_peak_dbtp == pytest.approx(result.loudnorm_targets.encoded.true_peak_dbtp, abs=0.05)
    assert result.loudness is not None
    assert result.loudness.integrated_lufs == pytest.approx(-14.0, abs=1.0)
    assert result.loudness.true_peak_dbtp <= -0.5
    # independent re-measurement of the delivered file
    assert measure_loudness(result.path).integrated_lufs == pytest.approx(-14.0, abs=1.0)


def test_transitions_centred_on_cuts(with_music: tuple[AssemblyResult, list[float]]) -> None:
    result, _ = with_music
    assert result.transitions == [(1.5, 37, 16), (3.0, 84, 12), (4.0, 120, 0)]
    centre = _centre(_decode(result.path))
    assert len(centre) == 180
    for (a, b), (cut_time, start, frames) in zip([(RED, GREEN), (GREEN, BLUE)], result.transitions[:2], strict=True):
        mix = _mix(centre, a, b)
        crossing = _crossing(mix, start - 2, start + frames + 2)
        assert abs(crossing - cut_time * FPS) <= 1.0, (cut_time, crossing)
        # pure a up to the transition's first frame, pure b from its last: the length is right too
        assert mix[start] < 0.05 and mix[start - 1] < 0.05
        assert mix[start + frames] > 0.95
        assert 0.05 < mix[start + 1] < 0.95 and 0.05 < mix[start + frames - 1] < 0.95
    # the hard cut: last blue frame at 119, first yellow at 120, nothing in between
    mix = _mix(centre, BLUE, YELLOW)
    assert mix[119] < 0.05 and mix[120] > 0.95


def test_segment_order_clip_in_and_pillarbox(with_music: tuple[AssemblyResult, list[float]]) -> None:
    result, _ = with_music
    frames = _decode(result.path)
    centre = _centre(frames)
    # mid-segment frames, away from transitions and the fades from/to black
    expected = {25: "red", 65: "green", 108: "blue", 135: "yellow"}
    assert {i: _nearest(centre[i]) for i in expected} == expected
    # clip_in=1.0 skips the decoy second of the green clip entirely
    assert all(_nearest(c) != "decoy" for c in centre)
    # the 4:3 blue clip is pillarboxed, not stretched: black bars left and right, blue in the middle
    blue_frame = frames[108].astype(float)
    assert blue_frame[:, :30].mean() < 8 and blue_frame[:, -30:].mean() < 8
    assert _nearest(blue_frame[:, 60:260].reshape(-1, 3).mean(axis=0)) == "blue"
    # fade from black and to black
    assert frames[0].mean() < 4 and frames[-1].mean() < 4
    assert _nearest(centre[15]) == "red"


def test_progress_reported(with_music: tuple[AssemblyResult, list[float]]) -> None:
    _, calls = with_music
    assert calls and calls[-1] == 1.0
    assert all(0.0 <= c <= 1.0 for c in calls)
    assert calls == sorted(calls)


def test_verify_output(with_music: tuple[AssemblyResult, list[float]]) -> None:
    result, _ = with_music
    info = verify_output(result.path, expected_duration=6.0, width=W, height=H, fps=FPS, expect_audio=True)
    assert info.frame_count == 180
    with pytest.raises(OutputVerificationError, match="frames, expected 210"):
        verify_output(result.path, expected_duration=7.0, width=W, height=H, fps=FPS, expect_audio=True)
    with pytest.raises(OutputVerificationError, match="unexpected audio"):
        verify_output(result.path, expected_duration=6.0, width=W, height=H, fps=FPS, expect_audio=False)
    with pytest.raises(OutputVerificationError, match="size 320x180, expected 640x360"):
        verify_output(result.path, expected_duration=6.0, width=640, height=360, fps=FPS, expect_audio=True)


def test_extract_poster(with_music: tuple[AssemblyResult, list[float]], tmp_path: Path) -> None:
    result, _ = with_music
    poster = extract_poster(result.path, tmp_path / "poster.jpg", at=4.5)
    with Image.open(poster) as img:
        assert img.format == "JPEG" and img.size == (W, H)
        pixel = np.asarray(img.convert("RGB"), float)[60:120, 130:190].reshape(-1, 3).mean(axis=0)
    assert _nearest(pixel) == "yellow"
    # past the end is clamped to the last frame instead of producing nothing
    assert extract_poster(result.path, tmp_path / "end.jpg", at=60.0).stat().st_size > 0


# --------------------------------------------------------------------------------------------
# without music, off-grid beats (138 BPM), a clip that is too short
# --------------------------------------------------------------------------------------------


def test_no_music_off_grid_beats(media: Media, tmp_path: Path) -> None:
    beat = 60.0 / 138.0
    ends = [4 * beat, 8 * beat, 12 * beat, 16 * beat]
    segments = [
        AssemblySegment(media.yellow, 0.0, 0.0, ends[0], "fade", 0.5),
        AssemblySegment(media.green, 1.0, ends[0], ends[1], "fade", 0.3),
        AssemblySegment(media.blue, 0.0, ends[1], ends[2], "fade", 0.6),
        # needs ~1.9 s from a 2 s clip starting at 0.5 s: its last frame is held, with a warning
        AssemblySegment(media.red, 0.5, ends[2], ends[3]),
    ]
    result = assemble_video(
        segments, tmp_path / "silent.mp4", width=W, height=H, fps=FPS, music=None, preset="ultrafast"
    )
    info = probe(result.path)
    assert info.audio is None and result.loudness is None and result.music_measured is None
    assert result.loudnorm_targets is None
    expected_frames = round(ends[-1] * FPS)
    assert abs(info.frame_count - expected_frames) <= 1
    assert [w.split(":")[0] for w in result.warnings] == ["segment 3"]
    centre = _centre(_decode(result.path))
    pairs = [(YELLOW, GREEN), (GREEN, BLUE), (BLUE, RED)]
    for (a, b), end, (cut_time, start, frames) in zip(pairs, ends[:3], result.transitions, strict=True):
        assert abs(cut_time - end) <= 0.5 / FPS + 1e-9
        crossing = _crossing(_mix(centre, a, b), start - 2, start + frames + 2)
        assert abs(crossing - end * FPS) <= 1.0, (end, crossing)
    assert [t[2] for t in result.transitions] == [16, 10, 18]
    assert _nearest(centre[expected_frames - 35]) == "red"


def test_calibration_keeps_encoded_true_peak_under_target(tmp_path: Path) -> None:
    music = MusicBed(_loud_music(tmp_path / "loud.wav"), offset=0.5)
    measured = measure_music_bed(music, 3.0)
    assert measured.true_peak_dbtp - measured.integrated_lufs > 12  # peaky: loudnorm alone is not enough
    targets, notes = calibrate_loudnorm(music, 3.0, measured, tmp_path / "scratch.m4a")
    assert notes == []
    assert targets.encoded is not None
    assert targets.encoded.true_peak_dbtp <= -1.0
    assert targets.encoded.integrated_lufs == pytest.approx(-14.0, abs=1.0)
    assert targets.true_peak_dbtp <= -1.0 and -17.0 <= targets.integrated_lufs <= -11.0


# --------------------------------------------------------------------------------------------
# failures
# --------------------------------------------------------------------------------------------


def test_ffmpeg_failure_leaves_nothing(media: Media, tmp_path: Path) -> None:
    out = tmp_path / "broken.mp4"
    segments = [AssemblySegment(media.red, 0.0, 0.0, 1.0, "fade", 0.2), AssemblySegment(media.yellow, 0.0, 1.0, 2.0)]
    with pytest.raises(FFmpegError, match=r"assembling broken\.mp4 failed"):
        assemble_video(segments, out, width=W, height=H, fps=FPS, music=None, preset="no-such-preset")
    assert list(tmp_path.iterdir()) == []


def test_cancel_from_progress_callback(media: Media, tmp_path: Path) -> None:
    def cancel(fraction: float) -> None:
        raise RuntimeError("job cancelled")

    segments = [AssemblySegment(media.red, 0.0, 0.0, 1.0, "fade", 0.2), AssemblySegment(media.yellow, 0.0, 1.0, 2.0)]
    with pytest.raises(RuntimeError, match="job cancelled"):
        assemble_video(
            segments,
            tmp_path / "cancelled.mp4",
            width=W,
            height=H,
            fps=FPS,
            music=None,
            preset="ultrafast",
            progress=cancel,
        )
    assert list(tmp_path.iterdir()) == []


def test_missing_clip(tmp_path: Path) -> None:
    segments = [AssemblySegment(tmp_path / "nope.mp4", 0.0, 0.0, 1.0)]
    with pytest.raises(FFmpegError, match="does not exist"):
        assemble_video(segments, tmp_path / "out.mp4", width=W, height=H, fps=FPS, music=None)


# --------------------------------------------------------------------------------------------
# planning (pure: the clip paths need not exist)
# --------------------------------------------------------------------------------------------


def _plan_segments() -> list[AssemblySegment]:
    p = Path("/nonexistent")
    return [
        AssemblySegment(p / "a.mp4", 0.25, 0.0, 1.5, "fade", 0.5),
        AssemblySegment(p / "b.mp4", 0.0, 1.5, 3.0, "wipeleft", 0.4),
        AssemblySegment(p / "c.mp4", 0.0, 3.0, 4.0, "cut"),
        AssemblySegment(p / "d.mp4", 0.0, 4.0, 6.0),
    ]


MEASURED = Loudness(integrated_lufs=-25.0, true_peak_dbtp=-12.0, lra=4.0, threshold=-35.0, target_offset=0.3)


def test_plan_is_pure_and_deterministic() -> None:
    kwargs = dict(
        width=1920,
        height=1080,
        fps=30,
        total_duration=6.0,
        loudnorm_measured=MEASURED,
        music=MusicBed(Path("/nonexistent/m.mp3"), offset=2.0),
    )
    a = plan_filter_graph(_plan_segments(), **kwargs)  # type: ignore[arg-type]
    b = plan_filter_graph(_plan_segments(), **kwargs)  # type: ignore[arg-type]
    assert a == b
    assert a.frame_count == 180 and a.duration == 6.0 and a.has_audio
    assert a.input_args == tuple(
        arg for name in ["a.mp4", "b.mp4", "c.mp4", "d.mp4", "m.mp3"] for arg in ("-i", f"/nonexistent/{name}")
    )
    assert a.output_maps == ("-map", "[vout]", "-map", "[aout]")
    # (first output frame, footage frames): xfade inputs carry 2 invisible tail frames, the frames
    # before a hard cut do not
    assert a.segment_frames == ((0, 55), (37, 61), (84, 36), (120, 60))
    assert [(t.kind, t.cut_frame, t.start_frame, t.frames) for t in a.transitions] == [
        ("fade", 45, 37, 16),
        ("wipeleft", 90, 84, 12),
        ("cut", 120, 120, 0),
    ]
    g = a.filter_complex
    assert "[0:v]trim=start=0.25,setpts=PTS-STARTPTS," in g
    assert "[v0][v1]xfade=transition=fade:duration=0.533333:offset=1.233333[x1]" in g
    assert "[x1][v2]xfade=transition=wipeleft:duration=0.400000:offset=2.800000[x2]" in g
    assert "[x2][v3]concat=n=2:v=1:a=0,settb=1/30[x3]" in g
    assert "fade=t=in:s=0:n=15,fade=t=out:s=150:n=29" in g
    assert g.count("settb=1/30") == 5
    assert "atrim=start=2:duration=6" in g and "afade=t=out:st=4:d=2" in g
    assert "measured_I=-25.00:measured_TP=-12.00:measured_LRA=4.00:measured_thresh=-35.00" in g
    assert "linear=true" in g and "aresample=48000" in g


def test_plan_without_music_has_no_audio() -> None:
    g = plan_filter_graph(
        _plan_segments(), width=640, height=360, fps=30, music=None, total_duration=6.0, loudnorm_measured=None
    )
    assert not g.has_audio and g.output_maps == ("-map", "[vout]")
    assert "[aout]" not in g.filter_complex and len(g.input_args) == 8


def test_plan_loudnorm_variants() -> None:
    music = MusicBed(Path("m.wav"), offset=0.0)
    wide = Loudness(integrated_lufs=-20.0, true_peak_dbtp=-3.0, lra=14.3, threshold=-30.0, target_offset=0.1)
    g = plan_filter_graph(
        _plan_segments(), width=640, height=360, fps=30, music=music, total_duration=6.0, loudnorm_measured=wide
    ).filter_complex
    assert "LRA=14.3:" in g  # raised to the bed's own range so loudnorm can stay linear
    silent = Loudness(
        integrated_lufs=float("-inf"), true_peak_dbtp=float("-inf"), lra=0.0, threshold=-70.0, target_offset=0.0
    )
    plan = plan_filter_graph(
        _plan_segments(), width=640, height=360, fps=30, music=music, total_duration=6.0, loudnorm_measured=silent
    )
    assert "loudnorm" not in plan.filter_complex and plan.notes


def test_plan_shortens_transitions_that_do_not_fit() -> None:
    p = Path("x.mp4")
    segments = [
        AssemblySegment(p, 0.0, 0.0, 2.0, "fade", 1.0),
        AssemblySegment(p, 0.0, 2.0, 2.2, "fade", 1.0),  # 6 frames long
        AssemblySegment(p, 0.0, 2.2, 2.23, "fade", 0.5),  # 1 frame: no room for any transition
        AssemblySegment(p, 0.0, 2.23, 4.0),
    ]
    g = plan_filter_graph(
        segments, width=640, height=360, fps=30, music=None, total_duration=4.0, loudnorm_measured=None
    )
    assert [(t.kind, t.frames) for t in g.transitions] == [("fade", 6), ("cut", 0), ("cut", 0)]
    assert len(g.notes) == 3
    for prev, nxt in zip(g.transitions, g.transitions[1:], strict=False):
        assert prev.cut_frame + prev.frames // 2 <= nxt.start_frame


def test_plan_ntsc_rate() -> None:
    g = plan_filter_graph(
        _plan_segments(),
        width=640,
        height=360,
        fps=30000 / 1001,
        music=None,
        total_duration=6.0,
        loudnorm_measured=None,
    )
    assert "fps=30000/1001," in g.filter_complex and "settb=1001/30000" in g.filter_complex
    assert g.frame_count == 180  # 6 s * 29.97 = 179.82


@pytest.mark.parametrize(
    ("segments", "message"),
    [
        ([], "no segments"),
        ([AssemblySegment(Path("a"), 0.0, 0.0, 1.0), AssemblySegment(Path("b"), 0.0, 1.2, 2.0)], "contiguous"),
        (
            [AssemblySegment(Path("a"), 0.0, 0.0, 1.0, "sparkle"), AssemblySegment(Path("b"), 0.0, 1.0, 2.0)],
            "unknown transition",
        ),
        (
            [AssemblySegment(Path("a"), 0.0, 0.0, 1.0), AssemblySegment(Path("b"), 0.0, 1.0, 1.01)],
            "shorter than one frame",
        ),
        ([AssemblySegment(Path("a"), -1.0, 0.0, 1.0)], "clip_in"),
        ([AssemblySegment(Path("a"), 0.0, 0.5, 1.0)], "must start at 0"),
    ],
)
def test_plan_rejects_bad_timelines(segments: list[AssemblySegment], message: str) -> None:
    total = segments[-1].end if segments else 1.0
    with pytest.raises(ValueError, match=message):
        plan_filter_graph(
            segments, width=640, height=360, fps=30, music=None, total_duration=total, loudnorm_measured=None
        )


def test_plan_rejects_odd_size() -> None:
    with pytest.raises(ValueError, match="even"):
        plan_filter_graph(
            _plan_segments(), width=641, height=360, fps=30, music=None, total_duration=6.0, loudnorm_measured=None
        )
