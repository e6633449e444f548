"""Music analysis: tempo, beats and downbeats of a track, for cutting a listing video on the beat.

Why the pipeline looks the way it does:

* librosa's tracker (onset envelope -> dynamic-programming `beat_track`) finds *where* the pulse is,
  but its beats sit on a 23 ms frame grid, come out ~20 ms late (the onset envelope's framing), drop
  beats in breaks and stop short of both ends of the track. Video cuts are centred on beats and one
  frame at 30 fps is 33 ms, so the tracked beats are only a first guess here.
* Tempo octave: trackers happily report 160 BPM music as 80, or 110 BPM music as 55 or 220. For cuts,
  the true tempo or half of it are both usable, as long as every beat lies on a real beat. A log-normal
  tempo prior centred on ~105 BPM (most editing music is 80-130 BPM) picks the octave, and the result
  is folded into 70-180 BPM, which gives cut lengths (0.33-0.86 s per beat) that the timeline can group.
* The grid is then made regular and complete: where the music is steady (electronic, pop: the bulk of
  stock music), one tempo and phase are fitted by least squares over the whole track, so gaps and
  weak beats are filled and quantisation noise averages out; where the tempo drifts (live playing), a
  local least-squares fit over neighbouring beats follows it. Each grid beat is finally snapped to the
  strongest onset within +-30 ms on a 2.9 ms-resolution onset envelope, so a beat is accurate to a few
  milliseconds when there is an onset to hear, and stays on the fitted grid when there is none.
* Downbeats assume 4/4 (nearly all music made for video): the bar phase is the beat phase (0..3) with
  the most low-frequency (kick / bass) onset energy plus harmonic change.
* A track that is audible but has no pulse (a pad, a drone, noise) does not fail the job: it gets a
  steady 120 BPM grid with `source="librosa_fallback"` and a low `confidence`, so the timeline can still
  pace the video (and may choose to ignore the grid). Undecodable, too short and silent tracks raise
  `AudioError`, because nothing sensible can be cut to them.

Everything here is pure computation on a file path: no database, no settings. librosa (and numba) are
imported lazily inside the analysis because importing them costs ~1 s that API processes which only
call `default_grid` / `snap_to_beat` should not pay.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from app.errors import AudioError, PicaividError
from app.media.ffmpeg import decode_audio
from app.media.types import BeatGrid

if TYPE_CHECKING:
    from numpy.typing import NDArray

    FloatArray = NDArray[np.float64]

# --- analysis parameters (see module docstring for the reasoning) -----------------------------------

#: Hop of the onset envelope used for tempo estimation and tracking (librosa's tuned default).
_HOP = 512
#: Hop / window of the fine onset envelope used to place beats precisely (2.9 ms at 22.05 kHz).
_FINE_HOP = 64
_FINE_NFFT = 512
_FINE_MELS = 40
#: Log compression of the fine spectrogram: log(1 + gain * magnitude). Unlike dB it does not turn
#: low-level noise into flux, so the flux peak lands at the same point of an onset whatever the
#: background level.
_FINE_LOG_GAIN = 100.0
#: Frames per block when computing the fine envelope, bounding memory on long tracks.
_FINE_BLOCK_FRAMES = 8192
#: Measured delay of a fine-envelope peak after a sharp onset (negative: the flux peaks while the onset
#: enters the analysis window). Clicks, kicks, noise bursts and plucked tones over silent to loud
#: backgrounds peak 4-8 ms early (with the mel weighting below); adding this back makes beat times mark the onset itself.
_FINE_LATENCY = -0.005
#: Measured delay of librosa's hop-512 onset envelope (and so of `beat_track` beats) after an onset.
_COARSE_LATENCY = 0.021
#: Final snapping window around a grid beat.
_SNAP_WINDOW = 0.030
#: Wider window used once on the raw tracked beats, which are frame-quantised and may lag.
_TRACK_SNAP_WINDOW = 0.045
#: Low-frequency band for the downbeat (kick / bass) accent.
_LOW_BAND_HZ = 200.0
#: Upper edge of the mid band (bass notes, chords) whose onsets mark harmonic change.
_MID_BAND_HZ = 2000.0

#: Tempo prior: log-normal centred here, one octave standard deviation.
_PRIOR_BPM = 105.0
_PRIOR_STD_OCTAVES = 1.0
#: Cut-friendly tempo range the estimate is folded into.
_MIN_BPM = 70.0
_MAX_BPM = 180.0
#: Tempo used for a steady grid when there is no music or no pulse.
DEFAULT_BPM = 120.0

#: Whole-track RMS below which the music counts as silent.
_SILENCE_DBFS = -60.0
#: Frame RMS relative to the loud part of the track below which a region counts as "no music yet".
_AUDIBLE_REL_DB = -35.0
#: Pulse below this (normalised onset autocorrelation at the beat period) means "no beat".
_MIN_PULSE = 0.12
#: Onset envelope variation (dB per frame) below which there are no onsets at all (sustained tones).
_MIN_ONSET_STD = 0.15
#: A tracked beat deviating more than this from the fitted grid is an outlier of the fit.
_FIT_OUTLIER = 0.035
#: A track is steady when this fraction of tracked beats lies on one global grid ...
_STEADY_INLIERS = 0.9
#: ... with at most this RMS deviation.
_STEADY_RMS = 0.012
#: Neighbouring beats (each side) used by the local fit where the tempo drifts.
_LOCAL_FIT_HALF_WIDTH = 4
#: Confidence given to a fallback grid (no detectable pulse) at most.
_FALLBACK_MAX_CONFIDENCE = 0.15


# --------------------------------------------------------------------------------------------
# public API
# --------------------------------------------------------------------------------------------


def analyze_music(path: str | Path, *, sample_rate: int = 22050, min_seconds: float = 4.0) -> BeatGrid:
    """Tempo, beats and downbeats of a music file (any format ffmpeg decodes).

    Raises `AudioError` (one-line message) when the file cannot be decoded, is shorter than
    `min_seconds`, or is silent. An audible track without a pulse gets a low-confidence 120 BPM grid
    with `source="librosa_fallback"` instead of an error (see the module docstring).
    """
    path = Path(path)
    try:
        samples = decode_audio(path, sample_rate=sample_rate, mono=True)
    except PicaividError as exc:  # AudioError from decoding, FFmpegError if ffmpeg itself fails
        detail = " ".join(str(exc).split())
        if isinstance(exc, AudioError) and not path.is_file():
            raise AudioError(detail) from exc
        raise AudioError(f"cannot decode music {path.name}: {_shorten(detail, path)}") from exc
    return analyze_samples(samples, sample_rate, min_seconds=min_seconds)


def analyze_samples(samples: np.ndarray, sample_rate: int, *, min_seconds: float = 4.0) -> BeatGrid:
    """`analyze_music` on already decoded mono PCM (float, -1..1)."""
    y = np.nan_to_num(np.asarray(samples, dtype=np.float32).reshape(-1))
    duration = y.size / float(sample_rate)
    if y.size == 0:
        raise AudioError("music contains no audio")
    if duration < min_seconds:
        raise AudioError(f"music is {duration:.1f} s long; at least {min_seconds:g} s is needed")
    rms = float(np.sqrt(np.mean(np.square(y, dtype=np.float64))))
    if rms <= 0 or 20 * math.log10(rms) < _SILENCE_DBFS:
        level = "-inf" if rms <= 0 else f"{20 * math.log10(rms):.0f}"
        raise AudioError(f"music is silent (level {level} dBFS)")
    return _BeatAnalysis(y, sample_rate, duration).run()


def default_grid(bpm: float, duration: float, *, beat_offset: float = 0.0, beats_per_bar: int = 4) -> BeatGrid:
    """A steady synthetic grid (`source="default_bpm"`), for videos without music.

    Beat k is at `beat_offset + k * 60 / bpm` (computed, not accumulated, so spacing is exact), for
    every beat before `duration`.
    """
    if not (bpm > 0 and math.isfinite(bpm)):
        raise ValueError(f"bpm must be a positive number, got {bpm}")
    if not (duration > 0 and math.isfinite(duration)):
        raise ValueError(f"duration must be a positive number, got {duration}")
    if beats_per_bar < 1:
        raise ValueError(f"beats_per_bar must be at least 1, got {beats_per_bar}")
    if not 0 <= beat_offset < duration:
        raise ValueError(f"beat_offset must lie in [0, {duration}), got {beat_offset}")
    period = 60.0 / bpm
    count = math.ceil((duration - beat_offset) / period - 1e-9)
    beats = [beat_offset + k * period for k in range(count)]
    return BeatGrid(tempo=float(bpm), beats=beats, downbeats=beats[::beats_per_bar], duration=float(duration),
                    beat_offset=float(beat_offset), source="default_bpm", confidence=1.0)


def nearest_beat_index(t: float, beats: Sequence[float]) -> int:
    """Index of the beat closest to time `t` in an ascending list of beat times (ties go earlier)."""
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


def _shorten(detail: str, path: Path) -> str:
    """ffmpeg's complaint without the repeated file path, capped to keep the message one short line."""
    detail = detail.replace(str(path), path.name)
    prefix = f"cannot decode music {path.name}: "
    if detail.startswith(prefix):
        detail = detail[len(prefix):]
    return detail[:300]


class _BeatAnalysis:
    """One track's analysis; holds the envelopes the steps share."""

    def __init__(self, y: np.ndarray, sr: int, duration: float) -> None:
        peak = float(np.max(np.abs(y)))
        self.y = y / peak if peak > 0 else y
        self.sr = sr
        self.duration = duration

    # -- orchestration ---------------------------------------------------------------------

    def run(self) -> BeatGrid:
        import librosa

        sr = self.sr
        self._envelopes()
        self.audible = self._audible_range()

        detrended = self.oenv - _moving_average(self.oenv, int(round(1.5 * sr / _HOP)))
        onset_std = float(np.std(detrended))
        tempo = self._estimate_tempo()
        pulse = self._pulse_strength(detrended, tempo)
        if onset_std < _MIN_ONSET_STD or pulse < _MIN_PULSE:
            return self._fallback(pulse)

        _, frames = librosa.beat.beat_track(onset_envelope=self.oenv, sr=sr, hop_length=_HOP, bpm=tempo,
                                            trim=True, units="frames")
        tracked = librosa.frames_to_time(np.asarray(frames), sr=sr, hop_length=_HOP) - _COARSE_LATENCY
        tracked = np.array([self._snap(t, _TRACK_SNAP_WINDOW) for t in tracked])
        period = 60.0 / tempo
        tracked = _dedupe(tracked, 0.5 * period)
        if tracked.size < 4:
            return self._fallback(pulse)

        index = _beat_indices(tracked, period)
        grid, regularity, steady = self._fit_grid(tracked, index, period)
        if grid.size < 4:
            return self._fallback(pulse)
        beats = np.array([self._snap(t, _SNAP_WINDOW) for t in grid])
        beats = _monotonic(beats, 0.5 * period)
        tempo = 60.0 / float(np.median(np.diff(beats))) if not steady else 60.0 / self._fitted_period
        support = self._onset_support(beats)
        confidence = float(np.clip(min(1.0, pulse / 0.5) ** 0.5 * regularity * (0.5 + 0.5 * support), 0, 1))
        downbeats = self._downbeats(beats)
        return BeatGrid(tempo=float(tempo), beats=[float(b) for b in beats],
                        downbeats=[float(b) for b in downbeats], duration=self.duration,
                        beat_offset=float(beats[0]), source="librosa", confidence=confidence)

    def _fallback(self, pulse: float) -> BeatGrid:
        start = self.audible[0]
        grid = default_grid(DEFAULT_BPM, self.duration, beat_offset=round(start, 3) if start < self.duration else 0.0)
        confidence = min(_FALLBACK_MAX_CONFIDENCE, max(0.0, pulse))
        return BeatGrid(tempo=grid.tempo, beats=grid.beats, downbeats=grid.downbeats, duration=self.duration,
                        beat_offset=grid.beat_offset, source="librosa_fallback", confidence=float(confidence))

    # -- envelopes -------------------------------------------------------------------------

    def _envelopes(self) -> None:
        """Onset envelopes: coarse (tracking, accents) and fine (placing beats), plus frame loudness."""
        import librosa

        sr = self.sr
        mel_db = librosa.power_to_db(librosa.feature.melspectrogram(y=self.y, sr=sr, n_fft=2048, hop_length=_HOP),
                                     ref=np.max, top_db=80.0)
        # identical to librosa.onset.onset_strength(y=...), which would compute the same spectrogram
        self.oenv = librosa.onset.onset_strength(S=mel_db, sr=sr, hop_length=_HOP)
        freqs = librosa.mel_frequencies(n_mels=mel_db.shape[0], fmax=sr / 2)
        low = np.flatnonzero(freqs <= _LOW_BAND_HZ)
        mid = np.flatnonzero((freqs > _LOW_BAND_HZ) & (freqs <= _MID_BAND_HZ))
        bands = librosa.onset.onset_strength_multi(
            S=mel_db, sr=sr, hop_length=_HOP,
            channels=[int(low[0]), int(low[-1]) + 1, int(mid[-1]) + 1])
        self.low_env, self.mid_env = bands[0], bands[1]
        frame_rms = librosa.feature.rms(y=self.y, frame_length=2048, hop_length=_HOP)[0]
        self.rms_db = 20 * np.log10(np.maximum(frame_rms, 1e-10))
        self.fine = _fine_flux(self.y, sr)
        self.fine_dt = _FINE_HOP / sr
        self.fine_t0 = self.fine_dt - _FINE_LATENCY  # row j compares frames j+1 and j

    def _audible_range(self) -> tuple[float, float]:
        """First and last time the track is within `_AUDIBLE_REL_DB` of its loud part."""
        loud = float(np.percentile(self.rms_db, 95))
        on = np.flatnonzero(self.rms_db > max(loud + _AUDIBLE_REL_DB, _SILENCE_DBFS))
        if on.size == 0:
            return 0.0, self.duration
        hop_s = _HOP / self.sr
        return max(0.0, on[0] * hop_s - 0.05), min(self.duration, on[-1] * hop_s + 0.05)

    def _fine_index(self, t: float) -> int:
        return int(round((t - self.fine_t0) / self.fine_dt))

    def _window(self, env: np.ndarray, t: float, half: float) -> tuple[int, np.ndarray]:
        i0 = max(0, self._fine_index(t - half))
        i1 = min(env.size, self._fine_index(t + half) + 1)
        return i0, env[i0:i1]

    def _snap(self, t: float, half: float) -> float:
        """Move `t` to the strongest fine-envelope peak within +-half when that peak is a real onset."""
        i0, seg = self._window(self.fine, t, half)
        if seg.size < 3:
            return t
        j = int(np.argmax(seg))
        _, context = self._window(self.fine, t, 0.25)
        if seg[j] <= 0 or seg[j] < 2.0 * float(np.median(context)) or j in (0, seg.size - 1):
            return t
        # parabolic interpolation for sub-hop precision
        a, b, c = float(seg[j - 1]), float(seg[j]), float(seg[j + 1])
        denom = a - 2 * b + c
        frac = 0.5 * (a - c) / denom if denom < 0 else 0.0
        return self.fine_t0 + (i0 + j + frac) * self.fine_dt

    def _accent(self, env: np.ndarray, t: float) -> float:
        """Largest value of a coarse envelope within one frame of time `t`."""
        i = int(round((t + _COARSE_LATENCY) * self.sr / _HOP))
        seg = env[max(0, i - 1): i + 2]
        return float(seg.max()) if seg.size else 0.0

    # -- tempo -----------------------------------------------------------------------------

    def _estimate_tempo(self) -> float:
        import librosa

        tg = librosa.feature.tempogram(onset_envelope=self.oenv, sr=self.sr, hop_length=_HOP)
        tempo = float(librosa.feature.tempo(tg=tg, sr=self.sr, hop_length=_HOP, start_bpm=_PRIOR_BPM,
                                            std_bpm=_PRIOR_STD_OCTAVES, max_tempo=2 * _MAX_BPM)[0])
        tempo = tempo if tempo > 0 else DEFAULT_BPM
        while tempo > _MAX_BPM:
            tempo /= 2
        while tempo < _MIN_BPM:
            tempo *= 2
        return self._refine_tempo(tempo)

    def _refine_tempo(self, tempo: float) -> float:
        """Sub-bin tempo: the autocorrelation peak of the onset envelope near `tempo`, interpolated."""
        o = self.oenv - self.oenv.mean()
        lag_rate = self.sr / _HOP * 60.0
        lo, hi = int(lag_rate / (tempo * 1.06)), int(math.ceil(lag_rate / (tempo / 1.06)))
        if lo < 2 or hi + 1 >= o.size:
            return tempo
        ac = np.array([float(np.dot(o[:-lag], o[lag:])) for lag in range(lo - 1, hi + 2)])
        j = int(np.argmax(ac[1:-1])) + 1
        a, b, c = ac[j - 1], ac[j], ac[j + 1]
        denom = a - 2 * b + c
        frac = 0.5 * (a - c) / denom if denom < 0 else 0.0
        return lag_rate / (lo - 1 + j + frac)

    def _pulse_strength(self, detrended: np.ndarray, tempo: float) -> float:
        """Normalised autocorrelation of the (detrended) onset envelope at the beat period, 0..1."""
        energy = float(np.dot(detrended, detrended))
        if energy <= 0:
            return 0.0
        lag = self.sr / _HOP * 60.0 / tempo
        best = 0.0
        for mult in (1, 2):  # a pulse shows at the beat period or, for half-time feels, the next octave
            for k in (math.floor(lag * mult), math.ceil(lag * mult)):
                if 0 < k < detrended.size:
                    best = max(best, float(np.dot(detrended[:-k], detrended[k:])) / energy)
        return max(0.0, best)

    # -- grid ------------------------------------------------------------------------------

    def _fit_grid(self, tracked: np.ndarray, index: np.ndarray, period: float) -> tuple[np.ndarray, float, bool]:
        """Regular, gap-free beat times across the audible range, plus a 0..1 regularity score."""
        start, end = self.audible
        a, p, inliers = _robust_line(index.astype(float), tracked)
        resid = tracked - (a + p * index)
        rms = float(np.sqrt(np.mean(resid[inliers] ** 2))) if inliers.any() else 1.0
        frac = float(inliers.mean())
        self._fitted_period = p
        if frac >= _STEADY_INLIERS and rms <= _STEADY_RMS:
            n0 = math.ceil((start - a) / p - 0.25)
            n1 = math.floor((end - a) / p + 0.25)
            n = np.arange(n0, n1 + 1)
            grid = a + p * n
            grid = grid[(grid >= 0) & (grid < self.duration)]
            regularity = frac * max(0.0, 1 - rms / 0.03)
            return grid, regularity, True
        grid = _local_fit(tracked, index, _LOCAL_FIT_HALF_WIDTH)
        # extend to the audible edges with the local period at each end
        head_p = float(np.median(np.diff(grid[:8]))) if grid.size > 1 else period
        tail_p = float(np.median(np.diff(grid[-8:]))) if grid.size > 1 else period
        head = [grid[0] - head_p * k for k in range(1, 1000) if grid[0] - head_p * k >= start - 0.25 * head_p]
        tail = [grid[-1] + tail_p * k for k in range(1, 1000) if grid[-1] + tail_p * k <= end + 0.25 * tail_p]
        grid = np.concatenate([np.array(head[::-1]), grid, np.array(tail)])
        grid = grid[(grid >= 0) & (grid < self.duration)]
        intervals = np.diff(tracked) / np.maximum(np.diff(index), 1)
        cv = float(np.std(intervals) / np.mean(intervals)) if intervals.size > 1 else 1.0
        regularity = max(0.0, 1 - cv / 0.15) * max(0.5, frac)
        return grid, regularity, False

    def _onset_support(self, beats: np.ndarray) -> float:
        """Fraction of beats with a clear onset within the snapping window."""
        hits = 0
        for t in beats:
            _, seg = self._window(self.fine, t, _SNAP_WINDOW)
            _, context = self._window(self.fine, t, 0.25)
            if seg.size and context.size and seg.max() >= 2.0 * float(np.median(context)) and seg.max() > 0:
                hits += 1
        return hits / max(1, beats.size)

    # -- downbeats -------------------------------------------------------------------------

    def _downbeats(self, beats: np.ndarray, beats_per_bar: int = 4) -> np.ndarray:
        """Every 4th beat, starting at the phase with the most kick/bass onset and harmonic change."""
        if beats.size < beats_per_bar:
            return beats[:1]
        low = np.array([self._accent(self.low_env, t) for t in beats])
        mid = np.array([self._accent(self.mid_env, t) for t in beats])
        score = np.zeros(beats_per_bar)
        for name, values in (("low", low), ("mid", mid)):
            scale = float(values.mean()) or 1.0
            weight = 1.0 if name == "low" else 0.5
            for phase in range(beats_per_bar):
                score[phase] += weight * float(values[phase::beats_per_bar].mean()) / scale
        phase = int(np.argmax(score))
        return beats[phase::beats_per_bar]


def _fine_flux(y: np.ndarray, sr: int) -> np.ndarray:
    """Spectral flux of log-compressed magnitudes at `_FINE_HOP`, computed blockwise.

    Row j is the summed increase from frame j to frame j+1 (frames centred at multiples of the hop).
    A 512-sample window keeps the peak within a few ms of the onset.
    """
    import librosa

    mel_fb = librosa.filters.mel(sr=sr, n_fft=_FINE_NFFT, n_mels=_FINE_MELS).T.astype(np.float32)
    padded = np.pad(y.astype(np.float32), (_FINE_NFFT // 2, _FINE_NFFT // 2))
    n_frames = 1 + (padded.size - _FINE_NFFT) // _FINE_HOP
    window = np.hanning(_FINE_NFFT + 1)[:-1].astype(np.float32)
    offsets = np.arange(_FINE_NFFT)[None, :]
    flux = np.empty(max(0, n_frames - 1), dtype=np.float32)
    prev: np.ndarray | None = None
    for k0 in range(0, n_frames, _FINE_BLOCK_FRAMES):
        k1 = min(n_frames, k0 + _FINE_BLOCK_FRAMES)
        frames = padded[np.arange(k0, k1)[:, None] * _FINE_HOP + offsets] * window
        mag = np.log1p(_FINE_LOG_GAIN * (np.abs(np.fft.rfft(frames, axis=1)).astype(np.float32) @ mel_fb))
        if prev is not None:
            mag = np.concatenate([prev, mag])
        flux[max(0, k0 - 1): k1 - 1] = np.maximum(0.0, np.diff(mag, axis=0)).mean(axis=1)
        prev = mag[-1:]
    return flux


def _moving_average(x: np.ndarray, width: int) -> np.ndarray:
    width = max(1, width)
    kernel = np.ones(width) / width
    return np.convolve(x, kernel, mode="same")


def _dedupe(times: np.ndarray, min_gap: float) -> np.ndarray:
    """Drop beats closer than `min_gap` to the previous kept beat (snapping can merge neighbours)."""
    kept: list[float] = []
    for t in np.sort(times):
        if not kept or t - kept[-1] >= min_gap:
            kept.append(float(t))
    return np.array(kept)


def _monotonic(times: np.ndarray, min_gap: float) -> np.ndarray:
    return _dedupe(times, min_gap)


def _beat_indices(times: np.ndarray, period: float) -> np.ndarray:
    """Integer beat number of each tracked beat: a gap of k periods advances the count by k."""
    steps = np.maximum(1, np.round(np.diff(times) / period)).astype(int)
    return np.concatenate([[0], np.cumsum(steps)])


def _robust_line(n: np.ndarray, t: np.ndarray) -> tuple[float, float, np.ndarray]:
    """Least-squares t = a + p*n, refitted without outliers (beats more than 35 ms off the line)."""
    inliers = np.ones(n.size, dtype=bool)
    a, p = float(t[0]), float((t[-1] - t[0]) / max(1.0, n[-1] - n[0]))
    for _ in range(4):
        if inliers.sum() < 2:
            break
        p, a = np.polyfit(n[inliers], t[inliers], 1)
        new = np.abs(t - (a + p * n)) <= _FIT_OUTLIER
        if new.sum() < 2 or np.array_equal(new, inliers):
            inliers = new if new.sum() >= 2 else inliers
            break
        inliers = new
    return float(a), float(p), inliers


def _local_fit(t: np.ndarray, n: np.ndarray, half_width: int) -> np.ndarray:
    """Beat times for every index from first to last: local robust line through nearby tracked beats."""
    out = []
    for k in range(int(n[0]), int(n[-1]) + 1):
        near = np.abs(n - k) <= half_width
        if near.sum() < 3:
            near = np.argsort(np.abs(n - k))[:3]
            nn, tt = n[near].astype(float), t[near]
        else:
            nn, tt = n[near].astype(float), t[near]
        a, p, _ = _robust_line(nn, tt)
        out.append(a + p * k)
    return np.array(out)
