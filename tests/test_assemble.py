"""Phase 4's sound and checks: the loudness-calibrated music bed muxed as it is, output verification,
the poster. (Frames, transitions and the single encode are tested in test_compose.py.)

All inputs are synthesised here (solid-colour frames, a tone + kick music bed); small sizes and preset
ultrafast keep the module to a few seconds.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from app.errors import OutputVerificationError
from app.media.assemble import (
    MusicBed,
    calibrate_loudnorm,
    extract_poster,
    measure_music_bed,
    plan_audio_filter,
    verify_output,
)
from app.media.ffmpeg import Loudness, VideoWriter, measure_loudness, probe

FPS = 30
W, H = 320, 180
RED = (220, 40, 40)
YELLOW = (230, 210, 40)


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
def delivered(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Loudness]:
    """6 s of video (red, then yellow from 3 s) with the calibrated bed of a quiet track muxed in."""
    d = tmp_path_factory.mktemp("assemble")
    music = MusicBed(_music(d / "music.wav"), offset=0.5)
    measured = measure_music_bed(music, 6.0)
    targets, notes = calibrate_loudnorm(music, 6.0, measured, d / "bed.m4a")
    assert notes == [] and targets.encoded is not None
    out = d / "listing.mp4"
    with VideoWriter(out, W, H, FPS, preset="ultrafast", crf=18, audio=d / "bed.m4a") as writer:
        for i in range(6 * FPS):
            writer.write(np.full((H, W, 3), RED if i < 3 * FPS else YELLOW, np.uint8))
    return out, targets.encoded


def test_fixture_music_is_quiet(tmp_path: Path) -> None:
    assert -28.0 < measure_loudness(_music(tmp_path / "m.wav")).integrated_lufs < -22.0


def test_delivered_audio_is_the_calibrated_bed(delivered: tuple[Path, Loudness]) -> None:
    path, encoded = delivered
    info = probe(path)
    assert info.audio is not None and info.audio.codec == "aac" and info.frame_count == 180
    out = measure_loudness(path)
    assert out.integrated_lufs == pytest.approx(-14.0, abs=1.0) and out.true_peak_dbtp <= -1.0
    assert out.integrated_lufs == pytest.approx(encoded.integrated_lufs, abs=0.2), "muxed as it is"


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


def test_plan_audio_filter_variants() -> None:
    music = MusicBed(Path("m.wav"), offset=2.0)
    wide = Loudness(integrated_lufs=-20.0, true_peak_dbtp=-3.0, lra=14.3, threshold=-30.0, target_offset=0.1)
    chain = plan_audio_filter(music, 6.0, wide)
    assert "atrim=start=2:duration=6" in chain and "linear=true" in chain
    assert "LRA=14.3:" in chain, "raised to the bed's own range so loudnorm can stay linear"
    silent = Loudness(float("-inf"), float("-inf"), 0.0, -70.0, 0.0)
    assert "loudnorm" not in plan_audio_filter(music, 6.0, silent)


def test_verify_output(delivered: tuple[Path, Loudness]) -> None:
    path, _ = delivered
    info = verify_output(path, expected_duration=6.0, width=W, height=H, fps=FPS, expect_audio=True)
    assert info.frame_count == 180
    with pytest.raises(OutputVerificationError, match="frames, expected 210"):
        verify_output(path, expected_duration=7.0, width=W, height=H, fps=FPS, expect_audio=True)
    with pytest.raises(OutputVerificationError, match="unexpected audio"):
        verify_output(path, expected_duration=6.0, width=W, height=H, fps=FPS, expect_audio=False)
    with pytest.raises(OutputVerificationError, match="size 320x180, expected 640x360"):
        verify_output(path, expected_duration=6.0, width=640, height=360, fps=FPS, expect_audio=True)


def test_extract_poster(delivered: tuple[Path, Loudness], tmp_path: Path) -> None:
    path, _ = delivered
    poster = extract_poster(path, tmp_path / "poster.jpg", at=4.5)
    with Image.open(poster) as img:
        assert img.format == "JPEG" and img.size == (W, H)
        pixel = np.asarray(img.convert("RGB"), float).reshape(-1, 3).mean(axis=0)
    assert np.abs(pixel - YELLOW).max() < 20
    # past the end is clamped to the last frame instead of producing nothing
    assert extract_poster(path, tmp_path / "end.jpg", at=60.0).stat().st_size > 0
