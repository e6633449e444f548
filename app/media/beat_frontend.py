"""BeatNet's input features, in numpy: a log-filtered spectrogram and its positive first difference.

BeatNet (Heydari, Cwitkowitz & Duan 2021, CC BY 4.0) computes these with madmom. madmom is not a
dependency here, so this is a reimplementation of exactly the configuration BeatNet's `log_spect.py`
and `BeatNet.py` build (checked against the installed BeatNet 1.1.3 sources):

* mono PCM at 22050 Hz, frames of int(0.064 * 22050) = 1411 samples every int(0.020 * 22050) = 441
  samples (50 frames/s); frame i is centred on sample i * 441, zero padded at both ends, and there are
  ceil(n / 441) frames (madmom's `FramedSignal`, origin 0, end "normal");
* a symmetric Hann window (`np.hanning`), an FFT of the frame length (1411) keeping the first
  1411 >> 1 = 705 bins (no Nyquist bin), magnitudes; madmom labels bin k with the frequency
  k * sr / 1410 (`fft_frequencies` doubles the bin count), which places the filters below;
* a logarithmic filterbank, 24 bands per octave from 30 Hz to 17 kHz around A4 = 440 Hz: centre
  frequencies mapped to the nearest bins, duplicate bins dropped, overlapping triangular filters
  (rising edge without the centre, falling edge from the centre), each normalised to area 1 in
  float32, overlapping filters of one band combined by maximum: 136 bands;
* log10(1 + S);
* the positive difference to the previous frame (diff_ratio 0.5 with this window and hop gives one
  frame; the first frame's difference is 0), stacked after the spectrogram: 272 values per frame.

The samples are used as decoded (float, -1..1), as BeatNet does with `librosa.load`: no peak
normalisation, because the network was trained on that level.
"""

from __future__ import annotations

import functools

import numpy as np

#: BeatNet's analysis rate and framing (see the module docstring).
SAMPLE_RATE = 22050
HOP = int(0.020 * SAMPLE_RATE)  # 441 samples, 50 fps
FRAME = int(0.064 * SAMPLE_RATE)  # 1411 samples
FPS = SAMPLE_RATE / HOP
#: Logarithmic filterbank of BeatNet's `LOG_SPECT(n_bands=[24])`.
_BANDS_PER_OCTAVE = 24
_FMIN, _FMAX, _FREF = 30.0, 17000.0, 440.0
#: Frames processed per FFT block: bounds memory on long tracks (a block is ~16 MB).
_BLOCK = 2048


def log_frequencies(bands_per_octave: int, fmin: float, fmax: float, fref: float) -> np.ndarray:
    """Frequencies on a logarithmic scale through `fref`, `bands_per_octave` per octave, in [fmin, fmax]."""
    left = np.floor(np.log2(fmin / fref) * bands_per_octave)
    right = np.ceil(np.log2(fmax / fref) * bands_per_octave)
    freqs = fref * 2.0 ** (np.arange(left, right) / float(bands_per_octave))
    freqs = freqs[np.searchsorted(freqs, fmin) :]
    return freqs[: np.searchsorted(freqs, fmax, "right")]


def nearest_bins(freqs: np.ndarray, bin_freqs: np.ndarray) -> np.ndarray:
    """Unique indices of the bins closest to `freqs` (ties go to the lower bin)."""
    idx = np.clip(bin_freqs.searchsorted(freqs), 1, len(bin_freqs) - 1)
    left, right = bin_freqs[idx - 1], bin_freqs[idx]
    idx = idx - (freqs - left < right - freqs)
    return np.unique(idx)


def _triangle(start: int, center: int, stop: int) -> np.ndarray:
    """One triangular filter from `start` to `stop` (exclusive), area 1, float32."""
    rel_center, length = center - start, stop - start
    data = np.zeros(length)
    data[:rel_center] = np.linspace(0, 1, rel_center, endpoint=False)
    data[rel_center:] = np.linspace(1, 0, length - rel_center, endpoint=False)
    out = data.astype(np.float32)
    return out / np.sum(out)


@functools.cache
def log_filterbank(num_fft_bins: int = FRAME >> 1, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """(num_fft_bins, bands) float32 filterbank of BeatNet's spectrogram (136 bands at 22050 Hz)."""
    bin_freqs = np.fft.fftfreq(num_fft_bins * 2, 1.0 / sample_rate)[:num_fft_bins]
    bins = nearest_bins(log_frequencies(_BANDS_PER_OCTAVE, _FMIN, _FMAX, _FREF), bin_freqs)
    bank = np.zeros((num_fft_bins, len(bins) - 2), dtype=np.float32)
    for band in range(len(bins) - 2):
        start, center, stop = (int(b) for b in bins[band : band + 3])
        if stop - start < 2:  # too narrow: a one-bin filter
            center, stop = start, start + 1
        filt = _triangle(start, center, stop)
        stop = min(stop, num_fft_bins)
        np.maximum(bank[start:stop, band], filt[: stop - start], out=bank[start:stop, band])
    return bank


def _frames(samples: np.ndarray, first: int, count: int) -> np.ndarray:
    """Frames `first` .. `first + count - 1`, each centred on sample index * HOP, zero padded."""
    pad = FRAME // 2
    lo = first * HOP - pad
    hi = (first + count - 1) * HOP - pad + FRAME
    chunk = np.zeros(hi - lo, dtype=np.float32)
    src_lo, src_hi = max(lo, 0), min(hi, samples.size)
    if src_hi > src_lo:
        chunk[src_lo - lo : src_hi - lo] = samples[src_lo:src_hi]
    view = np.lib.stride_tricks.sliding_window_view(chunk, FRAME)[::HOP]
    return view[:count]


def beatnet_features(samples: np.ndarray) -> np.ndarray:
    """(frames, 272) float32 BeatNet input for mono float PCM at 22050 Hz (see the module docstring)."""
    import scipy.fft

    y = np.asarray(samples, dtype=np.float32).reshape(-1)
    n_frames = -(-y.size // HOP)
    window = np.hanning(FRAME).astype(np.float32)
    bank = log_filterbank()
    num_bins = bank.shape[0]
    parts = []
    for first in range(0, n_frames, _BLOCK):
        frames = _frames(y, first, min(_BLOCK, n_frames - first))
        spec = np.abs(scipy.fft.rfft(frames * window, axis=1)[:, :num_bins])
        parts.append(np.log10(spec @ bank + 1.0).astype(np.float32))
    log_spec = np.concatenate(parts) if parts else np.zeros((0, bank.shape[1]), dtype=np.float32)
    diff = np.zeros_like(log_spec)
    diff[1:] = np.maximum(log_spec[1:] - log_spec[:-1], 0.0)
    return np.hstack([log_spec, diff])
