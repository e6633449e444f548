"""The streaming compositor: frame grid, transitions centred on cuts, bounded open shots, one encode with
the audio muxed as it is, speed ramps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from app.media.compose import CameraShot, PlannedShot, VideoShot, compose_frames, compose_video, frame_grid, speed_ramp
from app.media.ffmpeg import VideoWriter, probe, run_ffmpeg
from app.media.kenburns import KenBurnsCamera
from app.media.types import MotionPlan, MotionType, Viewport

W, H, FPS = 160, 90, 30


class Solid:
    """A shot of one flat colour that counts how often it is opened and closed."""

    opened = 0
    open_now = 0
    peak = 0

    def __init__(self, value: int) -> None:
        self.value = value
        Solid.opened += 1
        Solid.open_now += 1
        Solid.peak = max(Solid.peak, Solid.open_now)

    def frame(self, index: int) -> np.ndarray:
        return np.full((H, W, 3), self.value, np.uint8)

    def close(self) -> None:
        Solid.open_now -= 1


def _shots(
    values: list[int], ends: list[float], kind: str = "crossfade", seconds: float = 0.4
) -> tuple[list[PlannedShot], int]:
    grid, total = frame_grid(ends, [(kind, seconds)] * (len(ends) - 1), FPS)
    shots = [
        PlannedShot(open=lambda v=v: Solid(v), first=f, last=e, cut=c, transition=k, transition_frames=n)
        for v, (f, e, c, k, n) in zip(values, grid, strict=True)
    ]
    return shots, total


def test_frame_grid_centres_transitions_on_cuts_and_never_overlaps() -> None:
    grid, total = frame_grid([1.0, 2.0, 2.2, 4.0], [("crossfade", 0.5), ("crossfade", 0.5), ("cut", 0.5)], FPS)
    assert total == 120
    (f0, l0, c0, _, n0), (f1, _l1, c1, _, n1), (_f2, l2, c2, k2, n2), (f3, l3, c3, _, _) = grid
    assert (c0, c1, c2, c3) == (30, 60, 66, 120)
    assert n0 == 14 and f1 == c0 - 7 and l0 == c0 + 7, "15 frames asked, even and centred"
    assert n1 == 6, "shortened to the 6-frame third shot"
    assert (k2, n2) == ("cut", 0) and l2 == c2 == f3
    assert f0 == 0 and l3 == total


def test_crossfade_midpoint_and_bounded_open_shots() -> None:
    values = [0, 200, 100, 50, 250, 10, 180, 90]
    ends = [0.5 * (i + 1) for i in range(len(values))]
    shots, total = _shots(values, ends)
    Solid.opened = Solid.open_now = Solid.peak = 0
    frames = list(compose_frames(shots, total, fps=FPS, fade_in=0, fade_out=0))
    assert len(frames) == total == 120
    assert Solid.opened == len(values) and Solid.open_now == 0
    assert Solid.peak <= 2, "at most the two shots of a transition are open"
    cut = 15  # first cut: 0 -> 200, crossfade of 12 frames centred on frame 15
    assert abs(float(frames[cut].mean()) - 100) < 15
    assert float(frames[cut - 7].mean()) == 0 and float(frames[cut + 6].mean()) == 200
    assert float(frames[40].mean()) == 100


def test_hard_cut_lands_on_the_cut_frame() -> None:
    shots, total = _shots([0, 255], [1.0, 2.0], kind="cut")
    frames = list(compose_frames(shots, total, fps=FPS, fade_in=0, fade_out=0))
    assert float(frames[29].mean()) == 0 and float(frames[30].mean()) == 255


def test_fades_and_overlay_are_applied() -> None:
    shots, total = _shots([200], [1.0])
    seen: list[float] = []

    def overlay(frame: np.ndarray, t: float) -> np.ndarray:
        seen.append(t)
        frame[:10, :10] = 0
        return frame

    frames = list(compose_frames(shots, total, fps=FPS, overlay=overlay, fade_in=5, fade_out=5))
    assert seen[:2] == [0.0, 1 / FPS]
    assert float(frames[0][20:, 20:].mean()) < 50 and float(frames[15][20:, 20:].mean()) == 200
    assert float(frames[15][:10, :10].max()) == 0
    assert float(frames[-1].mean()) < 50


def test_speed_ramp_follows_energy() -> None:
    flat = speed_ramp(None, 31)
    assert np.allclose(flat, np.linspace(0, 1, 31))
    energy = np.concatenate([np.full(15, 0.1), np.full(16, 1.0)])
    ramp = speed_ramp(energy, 31)
    assert ramp[0] == 0 and ramp[-1] == pytest.approx(1.0) and np.all(np.diff(ramp) > 0)
    assert np.diff(ramp)[-1] > 1.5 * np.diff(ramp)[0], "faster where the music is louder"


def test_one_encode_with_audio_muxed_and_video_shots(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    photo = (rng.random((360, 640, 3)) * 255).astype(np.uint8)
    plan = MotionPlan(MotionType.PUSH_IN, Viewport(0.5, 0.5, 1.0), Viewport(0.5, 0.5, 1.3))
    stored = tmp_path / "stored.mp4"
    with VideoWriter(stored, 320, 180, FPS) as writer:
        for i in range(45):
            writer.write(np.full((180, 320, 3), 4 * i, np.uint8))
    tone = 0.2 * np.sin(2 * np.pi * 440 * np.arange(48000 * 3) / 48000).astype(np.float32)
    sf.write(tmp_path / "a.wav", np.stack([tone, tone], axis=1), 48000)
    audio = tmp_path / "a.m4a"
    run_ffmpeg(["-i", str(tmp_path / "a.wav"), "-c:a", "aac", "-b:a", "128k", "-y", str(audio)], what="test aac")
    grid, total = frame_grid([1.0, 2.0], [("crossfade", 0.3)], FPS)
    (f0, l0, c0, k0, n0), (f1, l1, c1, _k1, _n1) = grid
    shots = [
        PlannedShot(
            open=lambda: CameraShot(KenBurnsCamera(photo, plan, W, H), speed_ramp(None, l0 - f0)),
            first=f0,
            last=l0,
            cut=c0,
            transition=k0,
            transition_frames=n0,
        ),
        PlannedShot(open=lambda: VideoShot(stored, W, H, FPS), first=f1, last=l1, cut=c1),
    ]
    out = tmp_path / "out.mp4"
    stats = compose_video(shots, total, out, width=W, height=H, fps=FPS, audio=audio, preset="ultrafast", crf=23)
    info = probe(out)
    assert stats.frames == total == info.frame_count == 60
    assert info.video is not None and (info.video.width, info.video.height) == (W, H)
    assert info.audio is not None and info.audio.codec == "aac"
    assert info.duration == pytest.approx(2.0, abs=0.1), "audio cut to the video"
    assert stats.max_open_shots <= 2
