"""Meter, downbeats and the BeatNet path on synthetic music with known bars, and the no-pulse fallback.

Every track is made here with numpy: a kick on the downbeat, snare / hi-hats on the other pulses and a
chord that changes at every bar line. BeatNet's real shipped weights (~1.6 MB) are loaded through
`app.models.beatnet.load_beat_model`, the code the model registry uses.
"""

from __future__ import annotations

import numpy as np
import pytest

from app.media.audio import analyze_samples
from app.media.beat_decode import decode_bars
from app.media.beat_frontend import FPS, HOP, beatnet_features, log_filterbank
from app.media.types import BeatGrid
from app.models.beatnet import BeatActivationModel, BeatModelUnavailable, beatnet_weights, load_beat_model

SR = 22050
CHORDS = ((261.6, 329.6, 392.0), (220.0, 261.6, 329.6), (174.6, 220.0, 261.6), (196.0, 246.9, 293.7))


def f_measure(truth: np.ndarray, found: list[float] | np.ndarray, window: float = 0.07) -> float:
    """Beat F-measure at +-70 ms (one-to-one: beats are further apart than two windows)."""
    est = np.asarray(found, dtype=float)
    if truth.size == 0 or est.size == 0:
        return 0.0
    hits = sum(bool(np.min(np.abs(est - t)) <= window) for t in truth)
    return 2.0 * hits / (truth.size + est.size)


def song(bpm: float, pattern: list[str], pulses_per_beat: int, bars: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(samples, beat times, downbeat times). `pattern` has one entry per pulse of a bar: K kick,
    S snare, H hi-hat; `bpm` counts beats of `pulses_per_beat` pulses. A chord sounds for each bar."""
    rng = np.random.default_rng(0)
    pulse = 60.0 / bpm / pulses_per_beat
    y = np.zeros(int((bars * len(pattern) * pulse + 1.5) * SR))
    t = np.arange(int(0.25 * SR)) / SR
    sounds = {
        "K": 0.9 * np.sin(2 * np.pi * (50 + 80 * np.exp(-t * 30)) * t) * np.exp(-t * 12),
        "S": 0.35 * rng.standard_normal(int(0.2 * SR)) * np.exp(-np.arange(int(0.2 * SR)) / SR * 25),
        "H": 0.12 * rng.standard_normal(int(0.05 * SR)) * np.exp(-np.arange(int(0.05 * SR)) / SR * 80),
    }

    def add(at: float, sound: np.ndarray) -> None:
        i = int(at * SR)
        y[i : i + sound.size] += sound[: y.size - i]

    beats, downbeats = [], []
    bar_len = len(pattern) * pulse
    for bar in range(bars):
        start = 0.5 + bar * bar_len
        tt = np.arange(int(bar_len * SR)) / SR
        env = np.minimum(1.0, tt / 0.01) * np.exp(-tt * 1.5)
        add(start, 0.3 * env * sum(np.sin(2 * np.pi * f * tt) for f in CHORDS[bar % 4]) / 3)
        downbeats.append(start)
        for i, hits in enumerate(pattern):
            at = start + i * pulse
            if i % pulses_per_beat == 0:
                beats.append(at)
            for name in hits:
                add(at, sounds[name])
    return (0.8 * y / np.abs(y).max()).astype(np.float32), np.array(beats), np.array(downbeats)


def pad(seconds: float = 16.0) -> np.ndarray:
    """Slowly evolving chords, each fading in and out over seconds: no onsets, no pulse."""
    t = np.arange(int(seconds * SR)) / SR
    y = np.zeros_like(t)
    for i, chord in enumerate(CHORDS * 2):
        weight = np.exp(-(((t - (i * 4 + 2)) / 3.0) ** 2))
        y += weight * sum(np.sin(2 * np.pi * f * t) for f in chord)
    return (0.5 * y / np.abs(y).max()).astype(np.float32)


WALTZ = dict(bpm=120.0, pattern=["KH", "SH", "SH"], pulses_per_beat=1, bars=16)
SIX_EIGHT = dict(bpm=70.0, pattern=["KH", "H", "H", "KSH", "H", "H"], pulses_per_beat=3, bars=12)
FOUR_FOUR = dict(bpm=110.0, pattern=["KH", "H", "SH", "H", "KH", "H", "SH", "H"], pulses_per_beat=2, bars=10)


@pytest.fixture(scope="module")
def model() -> BeatActivationModel:
    return load_beat_model()


@pytest.fixture(scope="module")
def pad_samples() -> np.ndarray:
    return pad()


def test_frontend_matches_beatnet_configuration() -> None:
    assert HOP == 441 and FPS == 50.0
    assert log_filterbank().shape == (705, 136)
    np.testing.assert_allclose(log_filterbank().sum(axis=0), 1.0, rtol=1e-5)  # area-normalised filters
    feats = beatnet_features(np.zeros(SR, dtype=np.float32))
    assert feats.shape == (50, 272) and feats.dtype == np.float32
    assert not feats.any()  # silence: log10(1 + 0) = 0, no differences


def test_real_weights_load_and_mark_clicks(model: BeatActivationModel) -> None:
    assert beatnet_weights(1).stat().st_size > 1_000_000
    y, beats, _ = song(**FOUR_FOUR)  # type: ignore[arg-type]
    act = model.activations(beatnet_features(y))
    assert act.shape == (-(-y.size // HOP), 2)
    total = act.sum(axis=1)
    on_beats = np.array([total[round(b * FPS) - 2 : round(b * FPS) + 3].max() for b in beats[2:]])
    assert np.median(on_beats) > 0.5 > np.median(total)  # peaks at the beats, low in between
    # independent calls: no LSTM state carried from one track to the next
    np.testing.assert_allclose(model.activations(beatnet_features(y)), act, atol=1e-5)


def test_missing_weights_raise_a_typed_error() -> None:
    with pytest.raises(BeatModelUnavailable):
        load_beat_model(which=9)


def test_hmm_decodes_beats_and_bars_from_activations() -> None:
    act = np.full((1000, 2), 0.01)
    frames = np.arange(20, 980, 25)  # 120 BPM at 50 fps
    act[frames, 0] = 0.9
    act[frames[::3], 0], act[frames[::3], 1] = 0.05, 0.9  # every third beat a downbeat
    three, four = decode_bars(act, 50.0, 3), decode_bars(act, 50.0, 4)
    np.testing.assert_array_equal(three.beats, frames)
    np.testing.assert_array_equal(three.beats[three.positions == 1], frames[::3])
    assert three.log_likelihood > four.log_likelihood


@pytest.mark.parametrize(
    ("song_args", "meter", "beats_per_bar"),
    [(WALTZ, "3/4", 3), (SIX_EIGHT, "6/8", 2), (FOUR_FOUR, "4/4", 4)],
    ids=["3/4", "6/8", "4/4"],
)
def test_meter_downbeats_and_tempo(
    model: BeatActivationModel, song_args: dict[str, object], meter: str, beats_per_bar: int
) -> None:
    y, beats, downbeats = song(**song_args)  # type: ignore[arg-type]
    grid = analyze_samples(y, SR, beat_model=model)
    assert (grid.meter, grid.beats_per_bar) == (meter, beats_per_bar)
    assert abs(grid.tempo / float(song_args["bpm"]) - 1) <= 0.04  # type: ignore[arg-type]
    assert f_measure(beats, grid.beats) >= 0.9
    assert f_measure(downbeats, grid.downbeats) >= 0.9
    assert grid.confidence > 0.3


def test_classical_path_without_a_model() -> None:
    y, beats, downbeats = song(**WALTZ)  # type: ignore[arg-type]
    grid = analyze_samples(y, SR, beat_model=None)
    assert grid.source == "librosa"
    assert grid.meter == "3/4"
    assert f_measure(beats, grid.beats) >= 0.9
    assert f_measure(downbeats, grid.downbeats) >= 0.9


@pytest.mark.parametrize("use_model", [True, False], ids=["beatnet", "classical"])
def test_pad_without_pulse_is_detected(model: BeatActivationModel, pad_samples: np.ndarray, use_model: bool) -> None:
    grid = analyze_samples(pad_samples, SR, beat_model=model if use_model else None)
    assert grid.confidence <= 0.15
    assert grid.source.endswith("_fallback")
    assert grid.warnings and "steady" in grid.warnings[0]
    np.testing.assert_allclose(np.diff(grid.beats), 0.5)  # the documented steady 120 BPM grid


def test_wrong_model_object_is_rejected() -> None:
    with pytest.raises(TypeError):
        analyze_samples(pad(6.0), SR, beat_model=object())


def test_beat_grid_dicts_without_meter_still_load() -> None:
    old = {"tempo": 120, "beats": [0.5, 1.0], "downbeats": [0.5], "duration": 2, "beat_offset": 0.5, "source": "x"}
    grid = BeatGrid.from_dict(old)
    assert (grid.beats_per_bar, grid.meter, grid.warnings) == (4, "4/4", [])
    new = BeatGrid.from_dict({**old, "beats_per_bar": 3, "meter": "3/4", "warnings": ["w"]})
    assert BeatGrid.from_dict(new.to_dict()) == new
