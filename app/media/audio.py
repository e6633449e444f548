"""Music analysis: tempo, beats and downbeats of a track, for cutting a listing video on the beat.

Why the pipeline looks the way it does:

* librosa's tracker (onset envelope -> dynamic-programming `beat_track`) finds *where* the pulse is,
  but its beats sit on a 23 ms frame grid, come out ~20 ms late (the onset envelope's framing), skip
  or wander in breaks, may lock onto off-beats for a while, and stop short of both ends of the track.
  Video cuts are centred on beats and one frame at 30 fps is 33 ms, so tracked beats are a first guess.
* Tempo octave: trackers report 160 BPM music as 80, or 110 BPM music as 55 or 220. For cuts, the true
  tempo or half of it are both usable, as long as every beat lies on a real beat; double is not (every
  other beat falls between real beats), nor is 2/3 or 3/2. So only the tempo *family* (T * 2^k) comes
  from the tempogram, and the octave is chosen by rule: the tempo is folded into 69-138 BPM, i.e. of
  two candidates in the 70-180 BPM range the lower one (110 -> 110, 160 -> 80, 55 -> 110, 60 -> 120).
  That gives 0.43-0.87 s per beat, lengths the timeline can group into shots.
* The grid is then made regular and complete. Tracked beats are split into runs wherever the tracker
  jumps phase. A run whose beats lie on one line (steady tempo: electronic, pop, most stock music) is
  replaced by a least-squares tempo + phase fit, which fills skipped beats and averages out frame
  quantisation; a run whose tempo drifts (live playing) gets a local least-squares fit over a few
  neighbouring beats, which follows the drift. Where the tracker wandered onto another phase of
  steady music, the dominant grid is kept through that passage if the onsets support it as well,
  so a steady song gets one unbroken grid. Gaps between runs are filled evenly (across a phase jump,
  by continuing the earlier run's spacing, so no beat lands between real beats) and the grid is
  extended to where the music starts and ends. Finally every beat is snapped to the strongest onset
  within +-30 ms on a 2.9 ms-resolution onset envelope, so it marks the onset to a few milliseconds
  when there is one to hear, and stays on the fitted grid when there is none.
* With a beat network (`beat_model`, BeatNet: `app.models.beatnet`), its beat/downbeat activations
  (features: `beat_frontend`) are decoded by a bar-pointer HMM (`beat_decode`) and the beats snapped
  to onsets as above; the tempo is then the beat level the network found (160 BPM stays 160: measured
  exact on all 8 reference clips, where the classical octave rule gives 80). The classical grid is
  computed too: where the two disagree (F < 0.5 at +-70 ms) and the onsets support the classical grid
  better, it is used, with a warning and lower confidence (swing jazz: 0.65 instead of 0.17).
* Meter and downbeats (`beat_meter`): a per-beat accent of low-frequency (kick / bass) energy rise,
  harmonic (chroma) change across the beat and, with the network, its downbeat probability; the bar
  length (4 or 3 beats, or 2 or 4 for compound meters) is the period that makes the decoded downbeats
  stand out most, a small Viterbi pass per candidate places the bar phase, and onsets at thirds of
  the beat mark compound meter (6/8, 12/8).
* A track that is audible but has no pulse (a pad, a drone, noise) does not fail the job: it gets a
  steady 120 BPM grid with `source="librosa_fallback"` (`"beatnet_fallback"` on the network path), a
  warning and a confidence of at most 0.15, so the timeline can still pace the video and knows not to
  trust the grid. Undecodable, too short and silent tracks,
  and tracks with NaN/infinite samples (a broken float export), raise `AudioError`, because nothing
  sensible can be cut to them. Damage that still decodes (ffmpeg's decode errors in a corrupted mp3, long
  digital silence inside the music) is reported by `inspect_music` for the job's warnings.

Everything here is pure computation: no database, no settings. librosa is imported inside the
analysis functions because importing it is expensive: 4-12 s on a 2-core machine with a warm numba
cache, about 60 s the first time (numba compiles librosa's kernels once per NUMBA_CACHE_DIR; warm it
when building an image). Processes that only need `default_grid` / `snap_to_beat` should not pay that.
The analysis itself takes ~1 s for a 3-minute track plus decoding.
"""

from __future__ import annotations

import bisect
import hashlib
import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Protocol, runtime_checkable

import numpy as np

from app.errors import AudioError, FFmpegError, PicaividError
from app.media import beat_decode, beat_frontend, beat_meter, numba_cache
from app.media.ffmpeg import decode_pcm
from app.media.numba_cache import CacheState
from app.media.types import BeatGrid

# --- parameters (see the module docstring for the reasoning) ----------------------------------------

#: Tempo used for a steady grid when there is no music or no pulse.
DEFAULT_BPM = 120.0

#: Window and hop of the onset envelope used for tempo estimation, tracking and accents (librosa's
#: tuned defaults).
_NFFT = 2048
_HOP = 512
#: Fine onset envelope used to place beats: 2.9 ms hop, 23 ms window, 40 mel bands.
_FINE_HOP = 64
_FINE_NFFT = 512
_FINE_MELS = 40
#: Log compression log(1 + gain * magnitude) of the fine spectrogram. Unlike dB it does not turn
#: low-level noise into flux, so the flux peak lands at the same point of an onset whatever the level.
_FINE_LOG_GAIN = 100.0
#: Measured delay of a fine-envelope peak after an onset; negative because the flux peaks while the
#: onset enters the analysis window. Clicks, kicks, noise bursts and plucked tones over silent to loud
#: backgrounds peak 4-8 ms early; adding this back puts beat times on the onsets (+-2 ms).
_FINE_LATENCY = -0.005
#: Measured delay of librosa's hop-512 onset envelope (and so of `beat_track` beats) after an onset.
_COARSE_LATENCY = 0.021
#: Final snapping window around a grid beat: well inside one video frame (33 ms).
_SNAP_WINDOW = 0.030
#: Wider window used once on the raw tracked beats, which are frame-quantised.
_TRACK_SNAP_WINDOW = 0.045
#: An onset counts as one when its flux is this many times the median flux of the surrounding 0.5 s.
_ONSET_PROMINENCE = 2.0

#: Periodicities considered when looking for the tempo family: below 50 BPM the bar-level period
#: dominates, and a 3/4 bar would give the wrong family.
_SEARCH_BPM = (50.0, 320.0)
#: Tempo prior for that search: log-normal, so wide it only breaks near-ties (see `_estimate_tempo`).
_PRIOR_BPM = 105.0
_PRIOR_STD_OCTAVES = 2.0
#: The reported tempo lies in [_MIN_BPM, 2 * _MIN_BPM): one octave, so the choice is unambiguous.
_MIN_BPM = 69.0

#: Whole-track RMS below which the music counts as silent.
_SILENCE_DBFS = -60.0
#: Frame RMS relative to the loud part of the track below which there is "no music yet / any more".
_AUDIBLE_REL_DB = -35.0
#: Pulse (normalised autocorrelation of the onset envelope at the beat period) below this: no beat.
_MIN_PULSE = 0.12
#: Onset envelope variation (dB per frame) below which there are no onsets at all (sustained tones).
_MIN_ONSET_STD = 0.15
#: Confidence of a fallback grid (no detectable pulse) at most.
_FALLBACK_MAX_CONFIDENCE = 0.15

#: Consecutive tracked beats further than this fraction of a period from a whole number of periods
#: apart mark a phase jump: a new run starts.
_RUN_BREAK = 0.12
#: Runs shorter than this are treated as stray beats.
_MIN_RUN = 3
#: A tracked beat further than this from a fitted line is an outlier of the fit.
_FIT_OUTLIER = 0.035
#: A run is steady when its beats lie on one line with at most this RMS deviation ...
_STEADY_RMS = 0.015
#: ... and at least this fraction of them are inliers.
_STEADY_INLIERS = 0.85
#: The dominant grid is kept through a passage where the tracker took another phase if its onset
#: strength there is at least this fraction of the tracker's.
_DOMINANT_KEEP = 0.85
#: Neighbouring beats (each side) used by the local fit where the tempo drifts.
_LOCAL_FIT_HALF_WIDTH = 4

#: Upper edge (Hz) of the kick / bass band of the downbeat accent.
_LOW_BAND_HZ = 150.0
#: Beats each side compared for the harmonic change of the downbeat accent.
_CHORD_SPAN = 2
#: Chroma cosine distance counted as one unit of accent. Across a chord change the distance is
#: 0.05-0.15 in real music; with no harmony (drums only) it stays near 0.01 on every beat.
_CHORD_CHANGE_UNIT = 0.02
#: Cost (in standard deviations of accent) of a change of bar phase in the downbeat decoding.
_BAR_PHASE_CHANGE_COST = 8.0

#: Beats per bar of the bar-pointer HMM decodings of the network's activations; the most likely path
#: gives the beats (the meter is chosen afterwards from accents, `_meter`).
_HMM_BEATS_PER_BAR = (4, 3)
#: Mean beat+downbeat probability at the decoded beats: 0.78-0.95 on the GTZAN clips, 0.71 on swing
#: jazz; a pad without onsets scores ~0.35 (the decoder still places beats, on nothing).
_MIN_MODEL_SUPPORT = 0.5
#: Support that counts as full confidence.
_FULL_MODEL_SUPPORT = 0.8
#: Network and classical grids agreeing on fewer beats than this (F at +-70 ms) count as disagreeing.
_MIN_AGREEMENT = 0.5


# --------------------------------------------------------------------------------------------
# public API
# --------------------------------------------------------------------------------------------


@runtime_checkable
class BeatActivationModel(Protocol):
    """What the analysis needs from a beat network (`app.models.beatnet.BeatActivationModel`):
    (frames, 272) BeatNet features (`beat_frontend.beatnet_features`) -> (frames, 2) probabilities of
    [beat that is not a downbeat, downbeat] at `fps` frames per second."""

    fps: float

    @property
    def source(self) -> str: ...

    def activations(self, features: np.ndarray) -> np.ndarray: ...


def analyze_music(
    path: str | Path,
    *,
    sample_rate: int = 22050,
    min_seconds: float = 4.0,
    beat_model: BeatActivationModel | None = None,
) -> BeatGrid:
    """Tempo, beats, meter and downbeats of a music file (any format ffmpeg decodes).

    With `beat_model` (BeatNet, see `app.models.beatnet.load_beat_model`) the beats come from its
    activations (`source="beatnet+hmm"`); without it from the classical tracker (`source="librosa"`).
    Raises `AudioError` (one-line message) when the file is missing or cannot be decoded, is shorter
    than `min_seconds`, or is silent. An audible track without a pulse gets a low-confidence 120 BPM
    grid with a `*_fallback` source and a warning instead of an error (see the module docstring).
    """
    samples = load_music(path, sample_rate=sample_rate)
    return analyze_samples(samples, sample_rate, min_seconds=min_seconds, beat_model=beat_model)


def load_music(path: str | Path, *, sample_rate: int = 22050) -> np.ndarray:
    """Decode a music file to mono float32 PCM, with one-line `AudioError`s for every failure."""
    return _decode_music(Path(path), sample_rate, None)[0]


def check_music_samples(samples: np.ndarray, sample_rate: int, *, min_seconds: float = 4.0) -> np.ndarray:
    """Reject audio no video can use: empty, not numbers (NaN or infinite samples: a broken float export,
    which phase 4's loudness normalisation cannot process either), shorter than `min_seconds`, or silent.
    Returns the samples as float32 (a copy, so callers may scale it in place)."""
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    y = np.array(samples, dtype=np.float32, copy=True).reshape(-1)
    if y.size == 0:
        raise AudioError("music contains no audio")
    broken = int(y.size - np.count_nonzero(np.isfinite(y)))
    if broken:
        raise AudioError(
            f"music contains {broken} sample(s) that are not numbers (NaN or infinite): "
            "the file is broken; re-export it"
        )
    duration = y.size / float(sample_rate)
    if duration < min_seconds:
        raise AudioError(f"music is {duration:.1f} s long; at least {min_seconds:g} s is needed")
    rms = math.sqrt(float(np.mean(y * y, dtype=np.float64)))
    level = 20 * math.log10(rms) if rms > 0 else -math.inf
    if level < _SILENCE_DBFS:
        raise AudioError(f"music is silent (level {level:.0f} dBFS)")
    return y


@dataclass(frozen=True)
class MusicCheck:
    """A music file as the pipeline uses it: decoded, checked (`check_music_samples`) and inspected for
    damage that still decodes: ffmpeg's decode errors (a corrupted mp3 skips or garbles frames) and long
    stretches of digital silence inside the music (a zeroed region, a track glued from two)."""

    samples: np.ndarray  # mono float32 at `sample_rate`, at most `MAX_MUSIC_SECONDS` long
    sample_rate: int
    #: Errors ffmpeg reported while decoding (the file still decoded; the audio may be broken there).
    decode_errors: int
    #: (start, length) in seconds of each silence of at least `SILENCE_GAP_SECONDS` between audible parts.
    silence_gaps: tuple[tuple[float, float], ...]
    #: The file's full length when it is longer than what was decoded (`MAX_MUSIC_SECONDS`), else None.
    longer_than: float | None
    #: sha256 of the file: phase 4 refuses music other than what phase 3 checked.
    digest: str

    @property
    def duration(self) -> float:
        return self.samples.size / float(self.sample_rate)

    def warnings(self, start: float = 0.0, end: float = math.inf) -> list[str]:
        """Findings worth telling the user, for the part of the music played from `start` to `end`."""
        out: list[str] = []
        if self.decode_errors:
            out.append(f"music has {self.decode_errors} decode error(s); it may sound broken")
        for gap_start, length in self.silence_gaps:
            if gap_start < end and gap_start + length > start:
                out.append(f"music is silent for {length:.1f} s from {_clock(gap_start)}; the video goes quiet there")
        return out


#: Longest stretch of a track decoded and analysed: the longest target (600 s) after a long intro. A
#: one-hour mix would otherwise take gigabytes of memory for beats nobody hears.
MAX_MUSIC_SECONDS = 900.0
#: Digital silence: no sample above this (-80 dBFS) in a 10 ms frame ...
SILENCE_GAP_LEVEL = 1e-4
#: ... for this long, between audible parts, is a gap worth a warning.
SILENCE_GAP_SECONDS = 2.0


def inspect_music(
    path: str | Path, *, sample_rate: int = 22050, min_seconds: float = 4.0, max_seconds: float = MAX_MUSIC_SECONDS
) -> MusicCheck:
    """Decode, check and inspect a music file (see `MusicCheck`); `AudioError` when it is unusable."""
    path = Path(path)
    samples, stderr = _decode_music(path, sample_rate, max_seconds + 1.0)
    keep = round(max_seconds * sample_rate)
    longer = samples.size / float(sample_rate) if samples.size > keep else None
    y = check_music_samples(samples[:keep], sample_rate, min_seconds=min_seconds)
    return MusicCheck(
        samples=y,
        sample_rate=sample_rate,
        decode_errors=_count_decode_errors(stderr),
        silence_gaps=silence_gaps(y, sample_rate),
        longer_than=longer,
        digest=music_digest(path),
    )


def music_digest(path: str | Path) -> str:
    """sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def silence_gaps(
    y: np.ndarray, sample_rate: int, *, level: float = SILENCE_GAP_LEVEL, min_seconds: float = SILENCE_GAP_SECONDS
) -> tuple[tuple[float, float], ...]:
    """(start, length) of every run of silent 10 ms frames at least `min_seconds` long that lies between
    audible frames: a silent intro or ending is not a gap (the video starts at the first downbeat)."""
    frame = max(1, sample_rate // 100)
    n = y.size // frame
    if n == 0:
        return ()
    loud = np.abs(y[: n * frame]).reshape(n, frame).max(axis=1) > level
    audible = np.flatnonzero(loud)
    if audible.size < 2:
        return ()
    inner = ~loud[audible[0] : audible[-1] + 1]
    edges = np.diff(np.concatenate([[0], inner.astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    seconds = frame / float(sample_rate)
    return tuple(
        (round((audible[0] + a) * seconds, 2), round((b - a) * seconds, 2))
        for a, b in zip(starts, ends, strict=True)
        if (b - a) * seconds >= min_seconds
    )


def analyze_samples(
    samples: np.ndarray,
    sample_rate: int,
    *,
    min_seconds: float = 4.0,
    beat_model: object | None = None,
) -> BeatGrid:
    """`analyze_music` on already decoded mono PCM (float, nominally -1..1).

    `beat_model` must be a `BeatActivationModel` (typed loosely because model registries hand out
    their components untyped); anything else raises `TypeError`."""
    if beat_model is not None and not isinstance(beat_model, BeatActivationModel):
        raise TypeError(f"beat_model must be a BeatActivationModel, got {type(beat_model).__name__}")
    y = check_music_samples(samples, sample_rate, min_seconds=min_seconds)
    activations = None
    fps = beat_frontend.FPS
    if beat_model is not None:
        # before _BeatAnalysis normalises `y` in place: the network was trained on the decoded level
        activations = beat_model.activations(beat_frontend.beatnet_features(_resample(y, sample_rate)))
        fps = float(beat_model.fps)
    analysis = _BeatAnalysis(y, sample_rate, y.size / float(sample_rate))
    if activations is None:
        return analysis.run()
    return analysis.run_with_model(activations, fps, str(beat_model.source) if beat_model else "beatnet")


def _resample(y: np.ndarray, sample_rate: int) -> np.ndarray:
    """`y` at BeatNet's 22050 Hz (polyphase resampling when the track was decoded at another rate)."""
    if sample_rate == beat_frontend.SAMPLE_RATE:
        return y
    from scipy.signal import resample_poly

    g = math.gcd(sample_rate, beat_frontend.SAMPLE_RATE)
    return resample_poly(y, beat_frontend.SAMPLE_RATE // g, sample_rate // g).astype(np.float32)


def load_librosa() -> ModuleType:
    """librosa, with numba pointed at a cache no other process is writing (see `app.media.numba_cache`).

    Every use of librosa goes through here: importing it directly could compile its kernels into a
    shared cache while another process does the same, which poisons the cache (SIGSEGV).
    """
    warm_numba_cache()
    import librosa

    return librosa


def warm_numba_cache() -> CacheState:
    """Make sure every librosa kernel this project uses is compiled into a safe cache (once per host)."""
    return numba_cache.prepare(_exercise_librosa)


#: librosa's submodules with kernels compiled at import (guvectorize); importing them warms those.
_LIBROSA_KERNEL_MODULES = ("beat", "core", "effects", "feature", "filters", "onset", "sequence", "util")


def _exercise_librosa() -> None:
    """Call every librosa path the project uses, so no kernel is ever compiled outside the cache lock.

    A click track at 120 BPM takes the full beat path (tempo, tracking, snapping, downbeats); noise takes
    the no-pulse fallback; `onset_detect` is what `scripts/check_render.py` measures renders with.
    """
    import importlib

    for name in _LIBROSA_KERNEL_MODULES:
        importlib.import_module(f"librosa.{name}")
    import librosa.onset

    sr = 22050
    clicks = np.zeros(sr * 10, dtype=np.float32)
    burst = np.exp(-np.arange(400) / 60.0).astype(np.float32) * np.sin(np.arange(400) * 0.6).astype(np.float32)
    for k in range(20):
        start = int((0.25 + 0.5 * k) * sr)
        clicks[start : start + burst.size] += burst * (1.0 if k % 4 == 0 else 0.6)
    clicks += np.random.default_rng(0).normal(0.0, 0.003, clicks.size).astype(np.float32)
    analyze_samples(clicks, sr)
    analyze_samples(np.random.default_rng(1).normal(0.0, 0.1, sr * 6).astype(np.float32), sr)
    librosa.onset.onset_detect(y=clicks, sr=sr, hop_length=_HOP, units="time", backtrack=False)


def default_grid(bpm: float, duration: float, *, beat_offset: float = 0.0, beats_per_bar: int = 4) -> BeatGrid:
    """A steady synthetic grid (`source="default_bpm"`), for videos without music.

    Beat k is at `beat_offset + k * 60 / bpm` (computed, not accumulated, so spacing is exact), for
    every beat before `duration`; every `beats_per_bar`-th beat from the first is a downbeat.
    """
    if not (math.isfinite(bpm) and bpm > 0):
        raise ValueError(f"bpm must be a positive number, got {bpm}")
    if not (math.isfinite(duration) and duration > 0):
        raise ValueError(f"duration must be a positive number, got {duration}")
    if beats_per_bar < 1:
        raise ValueError(f"beats_per_bar must be at least 1, got {beats_per_bar}")
    if not 0 <= beat_offset < duration:
        raise ValueError(f"beat_offset must lie in [0, {duration}), got {beat_offset}")
    period = 60.0 / bpm
    count = math.ceil((duration - beat_offset) / period - 1e-9)
    beats = [beat_offset + k * period for k in range(count)]
    return BeatGrid(
        tempo=float(bpm),
        beats=beats,
        downbeats=beats[::beats_per_bar],
        duration=float(duration),
        beat_offset=float(beat_offset),
        source="default_bpm",
        confidence=1.0,
    )


def nearest_beat_index(t: float, beats: Sequence[float]) -> int:
    """Index of the beat closest to time `t` in ascending `beats` (a tie goes to the earlier beat)."""
    if not beats:
        raise ValueError("no beats")
    i = bisect.bisect_left(beats, t)
    if i == 0:
        return 0
    if i == len(beats):
        return len(beats) - 1
    return i - 1 if t - beats[i - 1] <= beats[i] - t else i


def snap_to_beat(t: float, beats: Sequence[float]) -> float:
    """The beat time closest to `t` (ascending `beats`); `t` itself when there are no beats."""
    if not beats:
        return t
    return float(beats[nearest_beat_index(t, beats)])


# --------------------------------------------------------------------------------------------
# implementation
# --------------------------------------------------------------------------------------------


_FFMPEG_CONTEXT = re.compile(r"\[[^\]]*@ ?0x[0-9a-f]+\]\s*")
#: ffmpeg's own line after a decoder's complaint about one packet; counted only when the decoder said nothing.
_DECODE_WRAPPER = ("Error submitting packet", "Error while decoding", "Error decoding")


def _decode_music(path: Path, sample_rate: int, max_seconds: float | None) -> tuple[np.ndarray, str]:
    """Mono float32 PCM and what ffmpeg said on stderr (`-v error`: errors only). One-line `AudioError`s
    for a missing, empty or undecodable file. (`ffmpeg.decode_audio` without discarding stderr, which
    carries the decode errors of a damaged file that still decodes.)"""
    if not path.is_file():
        raise AudioError(f"music file {path.name} does not exist")
    try:
        pcm, stderr = decode_pcm(path, sample_rate, max_seconds=max_seconds)
    except FFmpegError as exc:
        raise AudioError(f"cannot decode music {path.name}: {_decode_failure(exc, path)}") from exc
    if pcm.size == 0:
        raise AudioError(f"music {path.name} is empty: it contains no audio")
    return pcm, stderr


def _count_decode_errors(stderr: str) -> int:
    """Decode errors in ffmpeg's `-v error` output: the decoder's own lines (one per damaged packet), or
    ffmpeg's per-packet lines when the decoder printed none."""
    lines = [_FFMPEG_CONTEXT.sub("", line).strip() for line in stderr.splitlines()]
    lines = [line for line in lines if line]
    wrappers = sum(line.startswith(_DECODE_WRAPPER) for line in lines)
    return (len(lines) - wrappers) or wrappers


def _clock(seconds: float) -> str:
    return f"{int(seconds // 60)}:{seconds % 60:04.1f}"


def _decode_failure(exc: PicaividError, path: Path) -> str:
    """A short reason from ffmpeg's complaint, without its log prefixes and repetitions."""
    cause = exc.__cause__ if isinstance(exc.__cause__, FFmpegError) else exc
    text = cause.stderr_tail if isinstance(cause, FFmpegError) and cause.stderr_tail else str(exc)
    lines = [_FFMPEG_CONTEXT.sub("", line).strip() for line in text.splitlines()]
    lines = [line for line in lines if line]
    if any("does not contain any stream" in line or "no audio" in line.lower() for line in lines):
        return "the file has no audio stream"
    if any("Invalid data found" in line for line in lines):
        return "not an audio file ffmpeg can read (invalid data)"
    reason = (lines[-1] if lines else str(exc)).replace(str(path), path.name)
    return reason.removeprefix(f"cannot decode music {path.name}: ")[:200]


@dataclass
class _Run:
    """Consecutive tracked beats without a phase jump, and the beats fitted to them."""

    times: np.ndarray  # tracked (snapped) beat times
    numbers: np.ndarray  # their beat numbers, gaps counted (see `_beat_numbers`)
    line: tuple[float, float] | None = None  # (phase, period) when the run is steady
    regularity: float = 0.0

    @property
    def start(self) -> float:
        return float(self.times[0])

    @property
    def end(self) -> float:
        return float(self.times[-1])

    def beats(self) -> np.ndarray:
        """Fitted beat times from the first to the last tracked beat of the run."""
        if self.line is not None:
            a, p = self.line
            k0 = math.ceil((self.start - a) / p - 0.5)
            k1 = math.floor((self.end - a) / p + 0.5)
            return a + p * np.arange(k0, k1 + 1)
        return _local_fit(self.times, self.numbers, _LOCAL_FIT_HALF_WIDTH)


class _BeatAnalysis:
    """One track's analysis; holds the envelopes the steps share."""

    def __init__(self, y: np.ndarray, sr: int, duration: float) -> None:
        """Takes ownership of `y` (float32), which is scaled to peak 1 in place."""
        peak = float(np.max(np.abs(y)))
        if peak > 0:
            y /= peak
        self.y = y
        self.sr = sr
        self.duration = duration

    # -- orchestration ---------------------------------------------------------------------

    def run(self) -> BeatGrid:
        """The classical analysis (no beat network)."""
        tempo, pulse, has_pulse = self._prepare()
        found = self._classical(tempo, pulse) if has_pulse else None
        if found is None:
            return self._fallback(pulse, "librosa_fallback", "no steady pulse found in the music")
        beats, tempo, confidence = found
        return self._grid(beats, tempo, confidence, "librosa", None, [])

    def run_with_model(self, activations: np.ndarray, fps: float, model_source: str) -> BeatGrid:
        """Beats from the network's activations (bar-pointer HMM), checked against the classical tracker.

        The HMM grid is used unless the two trackers disagree (`_MIN_AGREEMENT`) and the onsets support
        the classical grid better; with neither a pulse (classical) nor `_MIN_MODEL_SUPPORT` activation
        at the decoded beats, the track gets the steady fallback grid.
        """
        tempo, pulse, has_pulse = self._prepare()
        classical = self._classical(tempo, pulse) if has_pulse else None
        decoded = max(
            (beat_decode.decode_bars(activations, fps, m) for m in _HMM_BEATS_PER_BAR), key=lambda d: d.log_likelihood
        )
        support = _activation_support(activations, decoded.beats)
        beats = np.array([self._snap(t, _SNAP_WINDOW) for t in decoded.beats / fps])
        beats = _dedupe(beats[(beats >= 0) & (beats < self.duration)], 0.2)
        if beats.size < 2 * _MIN_RUN or (classical is None and support < _MIN_MODEL_SUPPORT):
            return self._fallback(
                min(pulse, support), "beatnet_fallback", f"no reliable beat found (network support {support:.2f})"
            )
        warnings: list[str] = []
        confidence = math.sqrt(min(1.0, support / _FULL_MODEL_SUPPORT))
        if classical is None:
            confidence *= 0.5
            warnings.append("the onsets show no steady pulse; the beat network's grid may be unreliable")
            return self._grid(beats, _tempo_of(beats), confidence, f"{model_source}+hmm", activations, warnings, fps)
        agreement = _agreement(beats, classical[0])
        confidence *= 0.5 + 0.5 * agreement
        if agreement < _MIN_AGREEMENT and self._strength(classical[0]) > self._strength(beats):
            warnings.append(
                f"the beat network and the onset tracker disagree (agreement {agreement:.2f}); "
                "the onset tracker's grid is used"
            )
            return self._grid(classical[0], classical[1], confidence, "librosa", activations, warnings, fps)
        if agreement < _MIN_AGREEMENT:
            warnings.append(f"the beat network and the onset tracker disagree (agreement {agreement:.2f})")
        return self._grid(beats, _tempo_of(beats), confidence, f"{model_source}+hmm", activations, warnings, fps)

    def _prepare(self) -> tuple[float, float, bool]:
        """Envelopes, audible range, tempo estimate and pulse strength: (tempo, pulse, has a pulse)."""
        self._envelopes()
        self.audible = self._audible_range()
        detrended = self.oenv - _moving_average(self.oenv, round(1.5 * self.sr / _HOP))
        tempo = self._estimate_tempo()
        pulse = self._pulse_strength(detrended, tempo)
        return tempo, pulse, float(np.std(detrended)) >= _MIN_ONSET_STD and pulse >= _MIN_PULSE

    def _classical(self, tempo: float, pulse: float) -> tuple[np.ndarray, float, float] | None:
        """(beats, tempo, confidence) of the classical tracker; None when it finds too few beats."""
        librosa = load_librosa()

        period = 60.0 / tempo
        _, frames = librosa.beat.beat_track(
            onset_envelope=self.oenv, sr=self.sr, hop_length=_HOP, bpm=tempo, trim=True, units="frames"
        )
        raw = librosa.frames_to_time(np.asarray(frames), sr=self.sr, hop_length=_HOP) - _COARSE_LATENCY
        tracked = _dedupe(np.array([self._snap(t, _TRACK_SNAP_WINDOW) for t in raw]), 0.5 * period)
        if tracked.size < 2 * _MIN_RUN:
            return None
        grid, regularity, tempo = self._regularise(tracked, period)
        beats = _dedupe(np.array([self._snap(t, _SNAP_WINDOW) for t in grid]), 0.5 * period)
        beats = beats[(beats >= 0) & (beats < self.duration)]
        if beats.size < 2 * _MIN_RUN:
            return None
        support = float(np.mean([self._has_onset(t) for t in beats]))
        confidence = math.sqrt(min(1.0, pulse / 0.5)) * regularity * (0.5 + 0.5 * support)
        return beats, float(tempo), float(np.clip(confidence, 0.0, 1.0))

    def _grid(
        self,
        beats: np.ndarray,
        tempo: float,
        confidence: float,
        source: str,
        activations: np.ndarray | None,
        warnings: list[str],
        fps: float = beat_frontend.FPS,
    ) -> BeatGrid:
        evidence = _downbeat_evidence(activations, beats, fps) if activations is not None else None
        beats_per_bar, meter, downbeats = self._meter(beats, evidence)
        return BeatGrid(
            tempo=float(tempo),
            beats=[float(b) for b in beats],
            downbeats=[float(b) for b in downbeats],
            duration=self.duration,
            beat_offset=float(beats[0]),
            source=source,
            confidence=float(np.clip(confidence, 0.0, 1.0)),
            beats_per_bar=beats_per_bar,
            meter=meter,
            warnings=warnings,
        )

    def _fallback(self, pulse: float, source: str, reason: str) -> BeatGrid:
        """Steady `DEFAULT_BPM` grid from where the music starts, flagged as a fallback."""
        start = round(self.audible[0], 3)
        grid = default_grid(DEFAULT_BPM, self.duration, beat_offset=start if start < self.duration else 0.0)
        return BeatGrid(
            tempo=grid.tempo,
            beats=grid.beats,
            downbeats=grid.downbeats,
            duration=self.duration,
            beat_offset=grid.beat_offset,
            source=source,
            confidence=float(min(_FALLBACK_MAX_CONFIDENCE, max(0.0, pulse))),
            warnings=[f"{reason}: cuts follow a steady {DEFAULT_BPM:g} BPM grid, not the music"],
        )

    # -- envelopes -------------------------------------------------------------------------

    def _envelopes(self) -> None:
        """Coarse onset envelope (tracking), low band and chroma (accents), fine flux (placing), loudness.

        Spectra are computed block by block (`_spectra`) and reduced right away: a 10-minute track
        peaks at ~200 MB (a few copies of its 50 MB of samples) instead of ~700 MB with a whole
        1025-bin spectrogram and librosa's tempogram.
        """
        librosa = load_librosa()

        sr = self.sr
        mel_fb = librosa.filters.mel(sr=sr, n_fft=_NFFT)
        # tuning 0: estimating the tuning is slow and does not matter for detecting chord changes
        chroma_fb = librosa.filters.chroma(sr=sr, n_fft=_NFFT, tuning=0.0)
        mel_parts, chroma_parts, rms_parts = [], [], []
        for frames, power in _spectra(self.y, _NFFT, _HOP):
            mel_parts.append(power @ mel_fb.T)
            chroma_parts.append(power @ chroma_fb.T)
            rms_parts.append(np.sqrt(np.mean(np.square(frames), axis=1)))
        mel = np.concatenate(mel_parts).T  # (128, frames), librosa's melspectrogram
        # the envelope librosa.onset.onset_strength(y=...) computes from that same spectrogram
        self.oenv = librosa.onset.onset_strength(S=librosa.power_to_db(mel, ref=np.max), sr=sr, hop_length=_HOP)
        freqs = librosa.mel_frequencies(n_mels=mel.shape[0], fmax=sr / 2)
        self.low_energy = mel[freqs < _LOW_BAND_HZ].sum(axis=0)
        self.chroma = librosa.util.normalize(np.concatenate(chroma_parts).T, norm=np.inf, axis=0)
        self.rms_db = 20 * np.log10(np.maximum(np.concatenate(rms_parts), 1e-10))
        self.fine = _fine_flux(self.y, sr)
        self.fine_dt = _FINE_HOP / sr
        self.fine_t0 = self.fine_dt - _FINE_LATENCY  # row j of the flux compares frames j+1 and j

    def _audible_range(self) -> tuple[float, float]:
        """First and last time the track is within `_AUDIBLE_REL_DB` of its loud part."""
        loud = float(np.percentile(self.rms_db, 95))
        on = np.flatnonzero(self.rms_db > max(loud + _AUDIBLE_REL_DB, _SILENCE_DBFS))
        if on.size == 0:
            return 0.0, self.duration
        hop_s = _HOP / self.sr
        return max(0.0, on[0] * hop_s - 0.05), min(self.duration, on[-1] * hop_s + 0.05)

    def _fine_window(self, t: float, half: float) -> tuple[int, np.ndarray]:
        i0 = max(0, round((t - half - self.fine_t0) / self.fine_dt))
        i1 = min(self.fine.size, round((t + half - self.fine_t0) / self.fine_dt) + 1)
        return i0, self.fine[i0 : max(i0, i1)]

    def _onset_peak(self, t: float, half: float) -> tuple[int, int, np.ndarray] | None:
        """(window start, peak offset, window) of a prominent fine-envelope peak within t +- half."""
        i0, seg = self._fine_window(t, half)
        if seg.size < 3:
            return None
        j = int(np.argmax(seg))
        _, context = self._fine_window(t, 0.25)
        if seg[j] <= 0 or seg[j] < _ONSET_PROMINENCE * float(np.median(context)) or j in (0, seg.size - 1):
            return None  # no onset, or the peak lies outside the window (seg rises towards an edge)
        return i0, j, seg

    def _has_onset(self, t: float) -> bool:
        return self._onset_peak(t, _SNAP_WINDOW) is not None

    def _snap(self, t: float, half: float) -> float:
        """`t` moved to the prominent onset within +-half (parabolic sub-hop peak), else unchanged."""
        found = self._onset_peak(t, half)
        if found is None:
            return t
        i0, j, seg = found
        a, b, c = float(seg[j - 1]), float(seg[j]), float(seg[j + 1])
        denom = a - 2 * b + c
        frac = 0.5 * (a - c) / denom if denom < 0 else 0.0
        return self.fine_t0 + (i0 + j + frac) * self.fine_dt

    def _strength(self, times: np.ndarray) -> float:
        """Mean coarse onset strength at `times` (max within one frame, latency-corrected)."""
        if times.size == 0:
            return 0.0
        idx = np.round((times + _COARSE_LATENCY) * self.sr / _HOP).astype(int)
        vals = [self.oenv[max(0, i - 1) : i + 2].max() for i in idx if 0 <= i < self.oenv.size]
        return float(np.mean(vals)) if vals else 0.0

    # -- tempo -----------------------------------------------------------------------------

    def _estimate_tempo(self) -> float:
        """Strongest periodicity of the onset envelope, folded into the one-octave cut range, refined.

        Only the tempo *family* (T * 2^k) is taken from the tempogram, with a nearly flat prior: a
        narrow prior makes the peak pick land on 2/3 or 3/2 of the tempo when the true octave is far
        from its centre, and such a grid puts half the beats between real beats. The octave is then
        chosen by rule: the member of the family in [69, 138) BPM. Of two candidates in 70-180 BPM this
        is the lower one, because half the tempo keeps every beat on a real beat while double the
        tempo does not. 70 and 140 BPM, both common, land at 70 (exact or half).
        """
        librosa = load_librosa()

        strength = _mean_tempogram(self.oenv)
        bpms = librosa.tempo_frequencies(strength.size, hop_length=_HOP, sr=self.sr)
        log_bpm = np.log2(bpms)  # bpms[0] is inf (lag 0), outside the search range anyway
        score = np.log1p(1e6 * strength) - 0.5 * ((log_bpm - math.log2(_PRIOR_BPM)) / _PRIOR_STD_OCTAVES) ** 2
        valid = (bpms >= _SEARCH_BPM[0]) & (bpms <= _SEARCH_BPM[1])
        if not valid.any() or not np.isfinite(score[valid]).any():
            return DEFAULT_BPM
        tempo = float(bpms[valid][np.nanargmax(score[valid])])
        while tempo >= 2 * _MIN_BPM:
            tempo /= 2
        while tempo < _MIN_BPM:
            tempo *= 2
        return self._refine_tempo(tempo)

    def _refine_tempo(self, tempo: float) -> float:
        """The autocorrelation peak of the onset envelope within 6 % of `tempo`, interpolated."""
        o = self.oenv - self.oenv.mean()
        lag_rate = self.sr / _HOP * 60.0  # lag (frames) = lag_rate / bpm
        lo, hi = int(lag_rate / (tempo * 1.06)), math.ceil(lag_rate * 1.06 / tempo)
        if lo < 2 or hi + 1 >= o.size:
            return tempo
        ac = np.array([float(np.dot(o[:-lag], o[lag:])) for lag in range(lo - 1, hi + 2)])
        j = int(np.argmax(ac[1:-1])) + 1
        a, b, c = ac[j - 1], ac[j], ac[j + 1]
        denom = a - 2 * b + c
        frac = 0.5 * (a - c) / denom if denom < 0 else 0.0
        return lag_rate / (lo - 1 + j + frac)

    def _pulse_strength(self, detrended: np.ndarray, tempo: float) -> float:
        """Normalised autocorrelation of the detrended onset envelope at one or two beat periods."""
        energy = float(np.dot(detrended, detrended))
        if energy <= 0:
            return 0.0
        lag = self.sr / _HOP * 60.0 / tempo
        best = 0.0
        for mult in (1, 2):
            for k in (math.floor(lag * mult), math.ceil(lag * mult)):
                if 0 < k < detrended.size:
                    best = max(best, float(np.dot(detrended[:-k], detrended[k:])) / energy)
        return best

    # -- grid ------------------------------------------------------------------------------

    def _regularise(self, tracked: np.ndarray, period: float) -> tuple[np.ndarray, float, float]:
        """Regular, gap-free beats over the audible range: (beats, regularity 0..1, tempo)."""
        runs = [r for r in _split_runs(tracked, period) if r.times.size >= _MIN_RUN]
        if not runs:
            runs = [_Run(tracked, _beat_numbers(tracked, period))]
        for run in runs:
            _fit_run(run)
        runs = _merge_runs(runs)
        dominant = max((r for r in runs if r.line is not None), key=lambda r: r.times.size, default=None)
        if dominant is not None:
            self._extend_dominant(runs, dominant)
            runs = _merge_runs(runs)

        pieces: list[np.ndarray] = []
        for i, run in enumerate(runs):
            beats = run.beats()
            if i > 0 and pieces:
                pieces.append(_fill_gap(float(pieces[-1][-1]), float(beats[0]), period))
            pieces.append(beats)
        grid = np.concatenate(pieces)
        grid = self._extend_to_edges(grid, runs[0], runs[-1])

        counted = sum(r.times.size for r in runs)
        regularity = sum(r.regularity * r.times.size for r in runs) / max(1, counted)
        regularity *= min(1.0, counted / max(1, tracked.size))
        if dominant is not None and dominant.line is not None and dominant.times.size >= 0.5 * counted:
            tempo = 60.0 / dominant.line[1]
        else:
            tempo = 60.0 / float(np.median(np.diff(grid)))
        return grid, float(np.clip(regularity, 0.0, 1.0)), tempo

    def _extend_dominant(self, runs: list[_Run], dominant: _Run) -> None:
        """Put steady runs on another phase onto the dominant grid when the onsets there support it."""
        assert dominant.line is not None
        a, p = dominant.line
        for run in runs:
            if run is dominant or run.line is None or abs(run.line[1] - p) > 0.02 * p:
                continue
            k0, k1 = math.ceil((run.start - a) / p - 0.5), math.floor((run.end - a) / p + 0.5)
            candidate = a + p * np.arange(k0, k1 + 1)
            own = self._strength(run.beats())
            if own <= 0 or self._strength(candidate) >= _DOMINANT_KEEP * own:
                run.line = dominant.line
                run.numbers = np.round((run.times - a) / p).astype(int)
                run.regularity = dominant.regularity

    def _extend_to_edges(self, grid: np.ndarray, first: _Run, last: _Run) -> np.ndarray:
        """Continue the grid back to where the music starts and on to where it ends."""
        start, end = self.audible
        head_p = first.line[1] if first.line else float(np.median(np.diff(grid[:9])))
        tail_p = last.line[1] if last.line else float(np.median(np.diff(grid[-9:])))
        n_head = max(0, math.floor((grid[0] - start) / head_p + 0.25))
        n_tail = max(0, math.floor((end - grid[-1]) / tail_p + 0.25))
        head = grid[0] - head_p * np.arange(n_head, 0, -1)
        tail = grid[-1] + tail_p * np.arange(1, n_tail + 1)
        out = np.concatenate([head, grid, tail])
        return out[(out >= 0) & (out < self.duration)]

    # -- downbeats -------------------------------------------------------------------------

    def _accents(self, beats: np.ndarray) -> np.ndarray:
        """Per beat: low-band (kick / bass) energy rise (normalised to mean 1) plus harmonic change.

        The low band alone cannot tell beat 1 from beat 3 (kick on both); chords and bass lines change
        at the bar line, so the chroma difference between the two beats before and the two after a
        beat separates them. High bands are left out on purpose: the backbeat snare lives there.
        """
        frames = np.clip(np.round(beats * self.sr / _HOP).astype(int), 0, self.low_energy.size - 1)
        period = float(np.median(np.diff(beats)))
        w = max(2, round(min(0.12, 0.4 * period) * self.sr / _HOP))
        energy = self.low_energy
        low = np.array(
            [float(energy[f : f + w].mean() - energy[max(0, f - w) : f].mean()) if f > 0 else 0.0 for f in frames]
        ).clip(min=0.0)
        change = np.zeros(beats.size)
        for i in range(_CHORD_SPAN, beats.size - _CHORD_SPAN):
            before = self.chroma[:, frames[i - _CHORD_SPAN] : frames[i]].mean(axis=1)
            after = self.chroma[:, frames[i] : frames[i + _CHORD_SPAN]].mean(axis=1)
            norm = float(np.linalg.norm(before) * np.linalg.norm(after))
            change[i] = 1.0 - float(np.dot(before, after)) / norm if norm > 0 else 0.0
        low = low / low.mean() if low.mean() > 0 else low
        # not normalised: without harmony (drums only) chroma is noise and must not outvote the bass
        return low + change / _CHORD_CHANGE_UNIT

    def _meter(self, beats: np.ndarray, evidence: np.ndarray | None) -> tuple[int, str, np.ndarray]:
        """(beats per bar, meter, downbeats): see `app.media.beat_meter`."""
        if beats.size < beat_meter.MIN_BEATS_FOR_METER:
            return 4, "4/4", beats[::4]
        z = _zscore(self._accents(beats))
        if evidence is not None:
            z = z + _zscore(evidence)
        compound = beat_meter.subdivision_ratio(beats, self._flux_at) > beat_meter.COMPOUND_RATIO
        if compound:
            candidates, margin = beat_meter.COMPOUND_CANDIDATES, beat_meter.COMPOUND_MARGIN
        else:
            candidates, margin = beat_meter.SIMPLE_CANDIDATES, beat_meter.SIMPLE_MARGIN
        beats_per_bar, positions, _ = beat_meter.choose_bar(z, candidates, _BAR_PHASE_CHANGE_COST, margin)
        return beats_per_bar, beat_meter.meter_name(beats_per_bar, compound), beats[positions == 0]

    def _flux_at(self, t: float) -> float:
        """Strongest fine onset flux within +-15 ms of `t`."""
        _, seg = self._fine_window(t, 0.015)
        return float(seg.max()) if seg.size else 0.0


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def _spectra(y: np.ndarray, n_fft: int, hop: int, block: int = 2048) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(raw frames, power spectra) of centred, zero-padded Hann frames, `block` frames at a time.

    The frames are librosa.stft's (center=True, constant padding), so the results match librosa's
    features computed on a whole spectrogram.
    """
    librosa = load_librosa()
    import scipy.fft

    padded = np.pad(np.asarray(y, dtype=np.float32), (n_fft // 2, n_fft // 2))
    view = librosa.util.frame(padded, frame_length=n_fft, hop_length=hop)  # (n_fft, frames), no copy
    window = librosa.filters.get_window("hann", n_fft, fftbins=True).astype(np.float32)
    for k0 in range(0, view.shape[1], block):
        frames = np.ascontiguousarray(view[:, k0 : k0 + block].T)
        spec = np.abs(scipy.fft.rfft(frames * window, axis=1))  # float32 in, complex64 out
        yield frames, np.square(spec, out=spec)


def _fine_flux(y: np.ndarray, sr: int) -> np.ndarray:
    """Spectral flux of log-compressed mel magnitudes at `_FINE_HOP`, computed blockwise.

    Row j is the mean increase from frame j to frame j+1 (frames centred at multiples of the hop).
    The 512-sample window keeps the peak within a few ms of the onset.
    """
    librosa = load_librosa()

    mel_fb = librosa.filters.mel(sr=sr, n_fft=_FINE_NFFT, n_mels=_FINE_MELS).T.astype(np.float32)
    parts: list[np.ndarray] = []
    prev: np.ndarray | None = None
    for _, power in _spectra(y, _FINE_NFFT, _FINE_HOP, block=4096):
        logmel = np.log1p(_FINE_LOG_GAIN * (np.sqrt(power) @ mel_fb))
        if prev is not None:
            logmel = np.concatenate([prev, logmel])
        parts.append(np.maximum(0.0, np.diff(logmel, axis=0)).mean(axis=1))
        prev = logmel[-1:]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)


def _mean_tempogram(oenv: np.ndarray, win: int = 384, step: int = 8) -> np.ndarray:
    """Time average of librosa's autocorrelation tempogram (same windows and normalisation).

    librosa computes one 384-frame window per frame; averaging every 8th window gives the same mean
    at an eighth of the cost, and avoids its ~450 MB peak on a 10-minute track.
    """
    librosa = load_librosa()

    padded = np.pad(oenv, win // 2, mode="linear_ramp", end_values=(0, 0))
    frames = librosa.util.frame(padded, frame_length=win, hop_length=step)[:, : -(-oenv.size // step)]
    windowed = frames * librosa.filters.get_window("hann", win, fftbins=True)[:, None]
    ac = librosa.autocorrelate(windowed, axis=0)
    return np.asarray(librosa.util.normalize(ac, norm=np.inf, axis=0).mean(axis=1))


def _moving_average(x: np.ndarray, width: int) -> np.ndarray:
    width = max(1, width)
    return np.convolve(x, np.ones(width) / width, mode="same")


def _dedupe(times: np.ndarray, min_gap: float) -> np.ndarray:
    """Sorted times without any closer than `min_gap` to the previous kept one."""
    kept: list[float] = []
    for t in np.sort(times):
        if not kept or t - kept[-1] >= min_gap:
            kept.append(float(t))
    return np.array(kept)


def _beat_numbers(times: np.ndarray, period: float) -> np.ndarray:
    """Integer beat number of each beat: a gap of about k periods advances the count by k."""
    steps = np.maximum(1, np.round(np.diff(times) / period)).astype(int)
    return np.concatenate([[0], np.cumsum(steps)])


def _split_runs(times: np.ndarray, period: float) -> list[_Run]:
    """Cut the tracked beats wherever an interval is not close to a whole number of periods."""
    numbers = _beat_numbers(times, period)
    ratio = np.diff(times) / period
    breaks = np.flatnonzero(np.abs(ratio - np.maximum(1, np.round(ratio))) > _RUN_BREAK) + 1
    pieces = zip(np.split(times, breaks), np.split(numbers, breaks), strict=True)
    return [_Run(t, n - n[0]) for t, n in pieces]


def _robust_line(n: np.ndarray, t: np.ndarray) -> tuple[float, float, np.ndarray]:
    """t = a + p*n: median-based start, then least squares without beats more than 35 ms off."""
    n = n.astype(float)
    dn = np.diff(n)
    p = float(np.median(np.diff(t) / dn)) if dn.size else 1.0
    a = float(np.median(t - p * n))
    inliers = np.abs(t - (a + p * n)) <= _FIT_OUTLIER
    for _ in range(5):
        if inliers.sum() < 2:
            break
        p_fit, a_fit = np.polyfit(n[inliers], t[inliers], 1)
        p, a = float(p_fit), float(a_fit)
        new = np.abs(t - (a + p * n)) <= _FIT_OUTLIER
        if np.array_equal(new, inliers) or new.sum() < 2:
            break
        inliers = new
    return a, p, inliers


def _fit_run(run: _Run) -> None:
    """Decide whether a run is steady (one line) and how regular it is."""
    a, p, inliers = _robust_line(run.numbers, run.times)
    resid = run.times - (a + p * run.numbers)
    rms = float(np.sqrt(np.mean(resid[inliers] ** 2))) if inliers.any() else 1.0
    if inliers.mean() >= _STEADY_INLIERS and rms <= _STEADY_RMS and p > 0:
        run.line = (a, p)
        run.regularity = float(inliers.mean()) * max(0.0, 1.0 - rms / 0.03)
    else:
        run.line = None
        intervals = np.diff(run.times) / np.maximum(1, np.diff(run.numbers))
        cv = float(np.std(intervals) / np.mean(intervals)) if intervals.size > 1 else 1.0
        run.regularity = max(0.0, 1.0 - cv / 0.2)


def _merge_runs(runs: list[_Run]) -> list[_Run]:
    """Join neighbouring runs on the same grid (split only by a stray beat or a gap)."""
    merged: list[_Run] = [runs[0]]
    for run in runs[1:]:
        prev = merged[-1]
        if prev.line is not None and prev.line == run.line:  # both put on the dominant grid
            size = prev.times.size + run.times.size
            regularity = (prev.regularity * prev.times.size + run.regularity * run.times.size) / size
            merged[-1] = _Run(
                np.concatenate([prev.times, run.times]),
                np.concatenate([prev.numbers, run.numbers]),
                prev.line,
                regularity,
            )
            continue
        if prev.line is not None and run.line is not None:
            a, p = prev.line
            off = np.abs(run.times - (a + p * np.round((run.times - a) / p)))
            if abs(run.line[1] - p) <= 0.02 * p and float(np.median(off)) <= _FIT_OUTLIER:
                times = np.concatenate([prev.times, run.times])
                joined = _Run(times, np.round((times - a) / p).astype(int))
                _fit_run(joined)
                if joined.line is not None:
                    merged[-1] = joined
                    continue
        merged.append(run)
    return merged


def _local_fit(t: np.ndarray, n: np.ndarray, half_width: int) -> np.ndarray:
    """A beat for every number from first to last: a robust line through the neighbouring beats."""
    out = []
    for k in range(int(n[0]), int(n[-1]) + 1):
        near = np.flatnonzero(np.abs(n - k) <= half_width)
        if near.size < 3:  # runs have at least _MIN_RUN (3) beats
            near = np.argsort(np.abs(n - k))[:3]
        a, p, _ = _robust_line(n[near], t[near])
        out.append(a + p * k)
    return np.array(out)


def _fill_gap(after: float, before: float, period: float) -> np.ndarray:
    """Beats strictly between the end of one run and the start of the next.

    About a whole number of periods apart (beats skipped): evenly spaced. Otherwise the tracker
    jumped phase, and evenly spaced beats would fall between real beats: the earlier run's spacing is
    continued instead, stopping at least 0.6 periods before the next run.
    """
    ratio = (before - after) / period
    if abs(ratio - round(ratio)) <= _RUN_BREAK:
        count = round(ratio) - 1
        return after + (before - after) * np.arange(1, count + 1) / (count + 1) if count > 0 else np.empty(0)
    count = math.floor(ratio - 0.6)
    return after + period * np.arange(1, count + 1) if count > 0 else np.empty(0)


def _zscore(x: np.ndarray) -> np.ndarray:
    std = float(x.std())
    return (x - x.mean()) / std if std > 0 else np.zeros_like(x, dtype=float)


def _tempo_of(beats: np.ndarray) -> float:
    """BPM of the median beat interval (not folded: the network's beat level is the tempo)."""
    return 60.0 / float(np.median(np.diff(beats)))


def _peak_near(values: np.ndarray, frames: np.ndarray, half: int = 2) -> np.ndarray:
    """Maximum of `values` within +-`half` frames of each (fractional) frame index."""
    idx = np.round(frames).astype(int)
    return np.array(
        [float(values[max(0, i - half) : i + half + 1].max()) if 0 <= i < values.size else 0.0 for i in idx]
    )


def _activation_support(activations: np.ndarray, beat_frames: np.ndarray) -> float:
    """Mean beat+downbeat probability at the decoded beats (0 when there are none)."""
    if beat_frames.size == 0:
        return 0.0
    return float(_peak_near(activations.sum(axis=1), beat_frames).mean())


def _downbeat_evidence(activations: np.ndarray, beats: np.ndarray, fps: float) -> np.ndarray:
    """The network's downbeat probability near each beat."""
    return _peak_near(activations[:, 1], beats * fps)


def _agreement(a: np.ndarray, b: np.ndarray, window: float = 0.07) -> float:
    """F-measure of two beat lists at +-`window` (one-to-one matching; beats are > 2 windows apart)."""
    if a.size == 0 or b.size == 0:
        return 0.0
    j = np.clip(np.searchsorted(b, a), 1, b.size - 1)
    nearest = np.minimum(np.abs(a - b[j - 1]), np.abs(a - b[j])) if b.size > 1 else np.abs(a - b[0])
    hits = int(np.count_nonzero(nearest <= window))
    return 2.0 * hits / (a.size + b.size)
