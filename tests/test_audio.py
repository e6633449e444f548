"""Beat analysis on synthetic tracks with known beats, in the formats users upload, and its failures.

Every track is generated here (numpy -> soundfile WAV -> ffmpeg for flac / m4a / mp3), so the test
needs no shared data. librosa's numba kernels compile once per cache directory (`app.media.numba_cache`, about 20 s
on a 2-core machine); scripts/test.sh keeps that directory across runs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from app.errors import AudioError
from app.media.audio import (
    DEFAULT_BPM,
    analyze_music,
    analyze_samples,
    check_music_samples,
    default_grid,
    inspect_music,
    nearest_beat_index,
    silence_gaps,
    snap_to_beat,
)
from app.media.ffmpeg import ffmpeg_exe, run_ffmpeg
from app.media.types import BeatGrid

SR = 22050
#: A beat counts as found when a detected beat lies this close (well under one 30 fps frame).
TOLERANCE = 0.020


def drum_track(bpm: float, seconds: float, first_beat: float, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A 4/4 drum loop: kick on every beat (louder, with a bass note, on the downbeat), snare on the
    backbeat, hi-hat on eighths. Silence before `first_beat`. Returns (samples, beat times)."""
    rng = np.random.default_rng(seed)
    y = np.zeros(int(seconds * SR), dtype=np.float64)
    period = 60.0 / bpm
    beats = np.arange(first_beat, seconds - 0.3, period)

    def add(t: float, sound: np.ndarray) -> None:
        i = round(t * SR)
        j = min(y.size, i + sound.size)
        y[i:j] += sound[: j - i]

    t = np.arange(int(0.25 * SR)) / SR
    kick = np.sin(2 * np.pi * np.cumsum(50 + 100 * np.exp(-t / 0.03)) / SR) * np.exp(-t / 0.08)
    t = np.arange(int(0.15 * SR)) / SR
    snare = rng.standard_normal(t.size) * np.exp(-t / 0.04) * 0.5
    t = np.arange(int(0.05 * SR)) / SR
    hat = np.diff(rng.standard_normal(t.size + 1)) * np.exp(-t / 0.01) * 0.15
    t = np.arange(int(period * SR)) / SR
    bass = np.sin(2 * np.pi * 55 * t) * np.exp(-t / 0.3) * 0.5
    for k, b in enumerate(beats):
        downbeat = k % 4 == 0
        add(b, kick if downbeat else 0.6 * kick)
        if downbeat:
            add(b, bass)
        if k % 2 == 1:
            add(b, snare)
        add(b, hat)
        add(b + period / 2, hat)
    return (0.9 * y / np.abs(y).max()).astype(np.float32), beats


def write_wav(path: Path, y: np.ndarray) -> Path:
    sf.write(path, y, SR, subtype="PCM_16")
    return path


def recall(truth: np.ndarray, detected: list[float], tol: float = TOLERANCE) -> float:
    """Fraction of true beats with a detected beat within `tol`."""
    det = np.asarray(detected)
    return float(np.mean([np.min(np.abs(det - t)) <= tol for t in truth])) if det.size else 0.0


def assert_grid_matches(grid: BeatGrid, bpm: float, beats: np.ndarray) -> None:
    assert grid.source == "librosa"
    # the design promises the true tempo inside 70-180 BPM (see app.media.audio)
    assert grid.tempo == pytest.approx(bpm, rel=0.02)
    assert recall(beats, grid.beats) >= 0.9
    # no invented beats between the real ones
    assert recall(np.asarray(grid.beats), list(beats)) >= 0.9
    assert grid.beat_offset == grid.beats[0]
    assert grid.beat_offset == pytest.approx(beats[0], abs=TOLERANCE)
    # downbeats on the accented beats (every 4th from the first), and a subset of the beats
    assert recall(beats[::4], grid.downbeats) >= 0.9
    assert recall(np.asarray(grid.downbeats), list(beats[::4])) >= 0.9
    assert set(grid.downbeats) <= set(grid.beats)
    assert 0.8 <= grid.confidence <= 1.0
    assert all(b2 > b1 for b1, b2 in zip(grid.beats, grid.beats[1:], strict=False))


def encoders() -> str:
    import subprocess

    return subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-encoders"], capture_output=True, text=True, check=False
    ).stdout


@pytest.fixture(scope="module")
def track_128(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    y, beats = drum_track(128, 16.0, 0.5, seed=1)
    return write_wav(tmp_path_factory.mktemp("music") / "drums128.wav", y), beats


@pytest.mark.parametrize(("bpm", "first_beat"), [(100, 0.37), (128, 0.5)])
def test_wav_tempo_beats_and_downbeats(tmp_path: Path, bpm: int, first_beat: float) -> None:
    y, beats = drum_track(bpm, 20.0, first_beat, seed=bpm)
    grid = analyze_music(write_wav(tmp_path / f"drums{bpm}.wav", y))
    assert_grid_matches(grid, bpm, beats)
    assert grid.duration == pytest.approx(20.0, abs=1e-3)
    assert BeatGrid.from_dict(grid.to_dict()).beats == pytest.approx(grid.beats, abs=1e-4)


@pytest.mark.parametrize(("suffix", "codec"), [(".flac", "flac"), (".m4a", "aac"), (".mp3", "libmp3lame")])
def test_compressed_formats(tmp_path: Path, track_128: tuple[Path, np.ndarray], suffix: str, codec: str) -> None:
    if f" {codec} " not in encoders():
        pytest.skip(f"this ffmpeg has no {codec} encoder")
    wav, beats = track_128
    out = tmp_path / f"drums128{suffix}"
    args = ["-y", "-i", str(wav), "-c:a", codec] + (["-b:a", "192k"] if codec != "flac" else []) + [str(out)]
    run_ffmpeg(args, what=f"encoding {suffix}")
    grid = analyze_music(out)
    assert_grid_matches(grid, 128, beats)
    assert grid.duration == pytest.approx(16.0, abs=0.06)  # lossy codecs pad the last frame


def test_silent_track_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(AudioError, match="silent"):
        analyze_music(write_wav(tmp_path / "silence.wav", np.zeros(6 * SR, dtype=np.float32)))


def test_short_track_is_rejected(tmp_path: Path) -> None:
    y, _ = drum_track(120, 1.2, 0.1)
    with pytest.raises(AudioError, match=r"music is 1\.2 s long; at least 4 s is needed"):
        analyze_music(write_wav(tmp_path / "short.wav", y))


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("noise.mp3", bytes(np.random.default_rng(7).integers(0, 256, 50_000, dtype=np.uint8))),
        ("notes.txt", b"these are not the droids you are looking for\n" * 100),
        ("empty.wav", b""),
    ],
)
def test_undecodable_files_are_rejected(tmp_path: Path, name: str, content: bytes) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(AudioError) as err:
        analyze_music(path)
    assert "\n" not in str(err.value)


def test_files_without_audio_are_rejected(tmp_path: Path) -> None:
    no_samples = tmp_path / "zero.wav"
    sf.write(no_samples, np.zeros(0, dtype=np.float32), SR)
    with pytest.raises(AudioError, match="empty"):
        analyze_music(no_samples)
    video = tmp_path / "video_only.mp4"
    run_ffmpeg(["-y", "-f", "lavfi", "-i", "testsrc=size=64x64:duration=1", "-an", str(video)])
    with pytest.raises(AudioError, match="no audio stream"):
        analyze_music(video)


def test_missing_file_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(AudioError, match="does not exist"):
        analyze_music(tmp_path / "nope.mp3")


@pytest.mark.parametrize("kind", ["tone", "noise"])
def test_pulseless_audio_gets_low_confidence_fallback(kind: str) -> None:
    t = np.arange(10 * SR) / SR
    if kind == "tone":
        y = 0.3 * np.sin(2 * np.pi * 440 * t)
    else:
        y = 0.1 * np.random.default_rng(3).standard_normal(t.size)
    grid = analyze_samples(y.astype(np.float32), SR)
    assert grid.source == "librosa_fallback"
    assert grid.confidence <= 0.15
    assert grid.tempo == DEFAULT_BPM
    assert np.allclose(np.diff(grid.beats), 0.5)
    assert grid.duration == pytest.approx(10.0)


def test_min_seconds_is_configurable() -> None:
    y, _ = drum_track(120, 3.0, 0.25)
    with pytest.raises(AudioError, match="at least 4 s"):
        analyze_samples(y, SR)
    grid = analyze_samples(y, SR, min_seconds=2.0)
    assert grid.tempo == pytest.approx(120, rel=0.02)


def test_default_grid_is_exact() -> None:
    grid = default_grid(100, 10.0, beat_offset=0.25)
    assert grid.source == "default_bpm"
    assert grid.tempo == 100
    assert grid.beat_offset == 0.25
    assert grid.beats[0] == 0.25
    assert len(grid.beats) == 17  # 0.25 + 16 * 0.6 = 9.85 < 10
    assert all(b == 0.25 + k * 0.6 for k, b in enumerate(grid.beats))
    assert np.allclose(np.diff(grid.beats), 0.6, rtol=0, atol=1e-12)
    assert grid.downbeats == grid.beats[::4]
    assert grid.duration == 10.0
    assert default_grid(120, 4.0).beats == [0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5]
    assert default_grid(120, 4.0, beats_per_bar=3).downbeats == [0.0, 1.5, 3.0]
    with pytest.raises(ValueError):
        default_grid(0, 10)
    with pytest.raises(ValueError):
        default_grid(120, 10, beat_offset=10)


def test_snap_helpers() -> None:
    beats = [0.5, 1.0, 1.5, 2.0]
    assert snap_to_beat(0.1, beats) == 0.5
    assert snap_to_beat(1.2, beats) == 1.0
    assert snap_to_beat(1.3, beats) == 1.5
    assert snap_to_beat(9.0, beats) == 2.0
    assert snap_to_beat(1.25, beats) == 1.0  # ties go to the earlier beat
    assert snap_to_beat(3.0, []) == 3.0
    assert nearest_beat_index(1.74, beats) == 2
    with pytest.raises(ValueError):
        nearest_beat_index(1.0, [])


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_samples_are_rejected_not_zeroed(bad: float) -> None:
    """NaN/Inf samples (a broken float export) are refused: zeroing them here would let phase 4, which
    decodes the file itself, see audio phase 3 never checked."""
    y, _ = drum_track(120, 6.0, 0.25)
    y[SR : SR + 3] = bad
    with pytest.raises(AudioError, match=r"music contains 3 sample\(s\) that are not numbers"):
        check_music_samples(y, SR)
    with pytest.raises(AudioError, match="not numbers"):
        analyze_samples(y, SR)


def test_check_music_samples_returns_a_copy() -> None:
    y, _ = drum_track(120, 6.0, 0.25)
    out = check_music_samples(y, SR)
    out *= 0.0
    assert float(np.abs(y).max()) > 0.5


def test_silence_gaps_are_inner_runs_only() -> None:
    y, _ = drum_track(120, 20.0, 3.0)  # 3 s of silence before the first beat
    y[8 * SR : int(10.5 * SR)] = 0.0
    y[14 * SR : int(15.5 * SR)] = 0.0  # too short to mention
    gaps = silence_gaps(y, SR)
    assert len(gaps) == 1 and gaps[0][0] == pytest.approx(8.0, abs=0.3) and gaps[0][1] == pytest.approx(2.5, abs=0.3)


def test_music_check_warns_only_about_the_part_played(tmp_path: Path) -> None:
    y, _ = drum_track(120, 20.0, 0.25)
    y[8 * SR : 11 * SR] = 0.0
    check = inspect_music(write_wav(tmp_path / "gap.wav", y))
    assert check.decode_errors == 0 and len(check.digest) == 64
    assert [w.split(";")[0] for w in check.warnings(0.25, 12.25)] == ["music is silent for 3.0 s from 0:08.0"]
    assert check.warnings(0.25, 7.0) == [] and check.warnings(11.5, 19.0) == []
