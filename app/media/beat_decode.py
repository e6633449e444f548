"""Beats, downbeats and meter from frame-wise beat/downbeat activations: a bar-pointer HMM (Viterbi).

The model is the one of Krebs, Böck & Widmer ("An efficient state-space model for joint tempo and
meter tracking", ISMIR 2015) as madmom's `DBNDownBeatTrackingProcessor` configures it for a
beat/downbeat network, reimplemented in numpy:

* a state is (beat interval L in frames, position 0 .. bpb*L-1 in the bar); L takes `num_tempi`
  log-spaced values between the intervals of `max_bpm` and `min_bpm` (duplicates dropped);
* the position advances by one frame per frame; the tempo may change only from the last frame of a
  beat to the first of the next, with probability proportional to exp(-lambda * |L'/L - 1|)
  (`transition_lambda` 100: tempo is nearly constant);
* the first L/16 frames of the first beat of a bar emit the downbeat activation, those of the other
  beats the beat activation, all other frames (1 - beat - downbeat) / 15 (`observation_lambda` 16);
* one decoding per candidate beats-per-bar; the meter is the one whose best path is the most likely
  (the joint model of madmom, whose meters share no states, picks the same path);
* a beat is put at the activation peak inside each decoded beat region (madmom's `correct=True`).

Activations at the ends below `threshold` (0.05) are cut off before decoding, as madmom does, so
silence before and after the music does not get beats.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: madmom's DBNDownBeatTrackingProcessor defaults (the values BeatNet's offline mode uses).
MIN_BPM = 55.0
MAX_BPM = 215.0
NUM_TEMPI = 60
TRANSITION_LAMBDA = 100.0
OBSERVATION_LAMBDA = 16
THRESHOLD = 0.05
_EPS = 1e-12


@dataclass(frozen=True)
class BarDecoding:
    """The best path for one beats-per-bar."""

    beats_per_bar: int
    beats: np.ndarray  # frame indices (float: peak frames) of every beat
    positions: np.ndarray  # 1-based position of each beat in its bar (1 = downbeat)
    log_likelihood: float  # of the best path (comparable between beats_per_bar)
    frames: int  # frames decoded (after cutting the ends)


class _BarStates:
    """State layout of one bar-pointer model: tempo blocks one after another, positions in order."""

    def __init__(self, beats_per_bar: int, intervals: np.ndarray) -> None:
        self.bpb = beats_per_bar
        self.intervals = intervals
        sizes = beats_per_bar * intervals
        self.offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        self.size = int(sizes.sum())
        beat_idx = np.arange(beats_per_bar)
        self.starts = self.offsets[:, None] + beat_idx[None, :] * intervals[:, None]  # (K, bpb)
        self.ends = self.starts + intervals[:, None] - 1
        # observation class of each state: 0 no beat, 1 beat, 2 downbeat
        self.kind = np.zeros(self.size, dtype=np.int8)
        for k, length in enumerate(intervals):
            width = max(1, math.ceil(length / OBSERVATION_LAMBDA))
            for b in range(beats_per_bar):
                s = int(self.starts[k, b])
                self.kind[s : s + width] = 2 if b == 0 else 1
        self.start_of = np.full(self.size, -1, dtype=np.int32)  # flat (k * bpb + b) of a beat start
        self.start_of[self.starts.reshape(-1)] = np.arange(self.starts.size)


def tempo_intervals(fps: float, min_bpm: float = MIN_BPM, max_bpm: float = MAX_BPM) -> np.ndarray:
    """Beat intervals (frames) of the tempo states: log-spaced, rounded, unique."""
    lo, hi = 60.0 * fps / max_bpm, 60.0 * fps / min_bpm
    return np.unique(np.round(np.exp2(np.linspace(math.log2(lo), math.log2(hi), NUM_TEMPI))).astype(int))


def _log_transitions(intervals: np.ndarray) -> np.ndarray:
    """(from K, to K) log probabilities of a tempo change at a beat boundary."""
    ratio = intervals[None, :] / intervals[:, None]
    prob = np.exp(-TRANSITION_LAMBDA * np.abs(ratio - 1.0))
    prob[prob <= np.spacing(1)] = 0.0
    prob /= prob.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore"):
        return np.log(prob)


def _log_observations(act: np.ndarray) -> np.ndarray:
    """(frames, 3) log densities of the three state classes (no beat, beat, downbeat)."""
    beat, down = act[:, 0].astype(np.float64), act[:, 1].astype(np.float64)
    none = np.clip(1.0 - beat - down, _EPS, 1.0) / (OBSERVATION_LAMBDA - 1)
    return np.log(np.stack([none, np.clip(beat, _EPS, 1.0), np.clip(down, _EPS, 1.0)], axis=1))


def _viterbi(states: _BarStates, log_obs: np.ndarray, log_trans: np.ndarray) -> tuple[np.ndarray, float]:
    """Best state path and its log likelihood (uniform start)."""
    n, k = log_obs.shape[0], states.intervals.size
    bpb = states.bpb
    delta = log_obs[0, states.kind] - math.log(states.size)
    back = np.zeros((n, k, bpb), dtype=np.int16)
    starts_flat = states.starts.reshape(-1)
    total = 0.0
    for t in range(1, n):
        prev_ends = np.roll(delta[states.ends], 1, axis=1)  # [k, b]: end of beat b-1 in tempo k
        cand = prev_ends[:, None, :] + log_trans[:, :, None]  # (from k, to j, beat b)
        best = np.argmax(cand, axis=0)
        new = np.empty_like(delta)
        new[1:] = delta[:-1]
        new[starts_flat] = np.take_along_axis(cand, best[None], axis=0)[0].reshape(-1)
        back[t] = best
        new += log_obs[t, states.kind]
        peak = float(new.max())
        total += peak
        delta = new - peak  # keep numbers small; the offsets add up to the path likelihood
    path = np.empty(n, dtype=np.int64)
    path[-1] = int(np.argmax(delta))
    total += float(delta[path[-1]])
    for t in range(n - 1, 0, -1):
        s = path[t]
        flat = states.start_of[s]
        if flat >= 0:
            j, b = divmod(int(flat), bpb)
            path[t - 1] = states.ends[back[t, j, b], (b - 1) % bpb]
        else:
            path[t - 1] = s - 1
    return path, total + float(log_obs[0, states.kind[path[0]]]) * 0.0


def _beats_from_path(states: _BarStates, path: np.ndarray, act: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(peak frame, 1-based bar position) of each decoded beat region."""
    kind = states.kind[path]
    in_beat = kind > 0
    edges = np.diff(np.concatenate([[0], in_beat.astype(np.int8), [0]]))
    lefts, rights = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    strength = act.sum(axis=1)
    frames, positions = [], []
    for left, right in zip(lefts, rights, strict=True):
        frames.append(left + int(np.argmax(strength[left:right])))
        block = int(np.searchsorted(states.offsets, path[left], side="right") - 1)
        positions.append(int((path[left] - states.offsets[block]) // states.intervals[block]) + 1)
    return np.asarray(frames, dtype=float), np.asarray(positions, dtype=int)


def decode_bars(
    activations: np.ndarray, fps: float, beats_per_bar: int, *, min_bpm: float = MIN_BPM, max_bpm: float = MAX_BPM
) -> BarDecoding:
    """Decode (frames, 2) [beat, downbeat] activations for one beats-per-bar (see the module docstring)."""
    act = np.asarray(activations, dtype=np.float64)
    active = np.flatnonzero(act.max(axis=1) >= THRESHOLD) if act.size else np.zeros(0, dtype=int)
    if active.size < 2:
        return BarDecoding(beats_per_bar, np.zeros(0), np.zeros(0, dtype=int), -math.inf, 0)
    first, last = int(active[0]), int(active[-1]) + 1
    part = act[first:last]
    intervals = tempo_intervals(fps, min_bpm, max_bpm)
    states = _BarStates(beats_per_bar, intervals)
    path, loglik = _viterbi(states, _log_observations(part), _log_transitions(intervals))
    frames, positions = _beats_from_path(states, path, part)
    return BarDecoding(beats_per_bar, frames + first, positions, loglik, last - first)
