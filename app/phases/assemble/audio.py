"""Phase 4's sound: one mix for every deliverable, normalised once per loudness target.

The bed is the music from the timeline's offset (faded in and out) and, when the job has one, the
voice-over with the music ducked under its speech. It is mixed once; each distinct loudness target then
gets one calibrated AAC encode (`calibrate_loudnorm`), which every deliverable with that target muxes
as it is (stream copy), so no deliverable re-encodes its audio.

The music's loudness envelope, one value per video frame, also drives the camera speed ramps.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from app.media.assemble import AUDIO_SAMPLE_RATE, MusicBed, calibrate_loudnorm, measure_music_bed
from app.media.ffmpeg import Loudness, decode_audio

log = logging.getLogger(__name__)

#: Frames of the energy envelope are smoothed over this many seconds (a beat or two), so the camera's
#: speed follows the music's sections, not every drum hit.
ENERGY_SMOOTH_SECONDS = 0.8


@dataclass
class Soundtrack:
    """The deliverables' shared audio: the bed (None: silent video) and what was found making it."""

    bed: MusicBed | None
    duration: float
    scratch: Path
    energy: np.ndarray | None = None
    captions: list[Any] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    voiceover: dict[str, Any] = field(default_factory=dict)
    _tracks: dict[float, tuple[Path, Loudness | None]] = field(default_factory=dict)
    _measured: Loudness | None = None

    def track(self, target_lufs: float, target_tp: float) -> tuple[Path | None, Loudness | None]:
        """The encoded AAC at `target_lufs` (made on first use, then shared), and its loudness."""
        if self.bed is None:
            return None, None
        if target_lufs not in self._tracks:
            if self._measured is None:
                self._measured = measure_music_bed(self.bed, self.duration, target_lufs=target_lufs)
            out = self.scratch / f"audio-{target_lufs:+.1f}.m4a"
            targets, notes = calibrate_loudnorm(
                self.bed, self.duration, self._measured, out, target_lufs=target_lufs, target_tp=target_tp
            )
            self.warnings.extend(notes)
            self._tracks[target_lufs] = (out, targets.encoded)
        return self._tracks[target_lufs]


def frame_energy(samples: np.ndarray, sample_rate: int, fps: float, n_frames: int) -> np.ndarray:
    """RMS loudness of `samples` (mono) per video frame, smoothed (see `ENERGY_SMOOTH_SECONDS`)."""
    hop = sample_rate / fps
    idx = (np.arange(n_frames) * hop).astype(np.int64)
    win = max(1, int(hop))
    padded = np.concatenate([samples.astype(np.float32), np.zeros(win, np.float32)])
    squares = np.concatenate([[0.0], np.cumsum(padded.astype(np.float64) ** 2)])
    idx = np.clip(idx, 0, len(padded) - win)
    rms = np.sqrt(np.maximum((squares[idx + win] - squares[idx]) / win, 0.0))
    k = max(1, round(ENERGY_SMOOTH_SECONDS * fps))
    kernel = np.ones(k) / k
    return np.convolve(np.pad(rms, (k // 2, k - 1 - k // 2), mode="edge"), kernel, mode="valid")[:n_frames]


def build_soundtrack(
    music: Path | None,
    offset: float,
    duration: float,
    fps: float,
    scratch: Path,
    *,
    voiceover: Path | None = None,
    speech_models: Any = None,
) -> Soundtrack:
    """The bed for a `duration` s video whose music starts at `offset` s of the track, and its energy."""
    scratch.mkdir(parents=True, exist_ok=True)
    n_frames = round(duration * fps)
    if music is None and voiceover is None:
        return Soundtrack(bed=None, duration=duration, scratch=scratch)
    track = Soundtrack(bed=MusicBed(path=music, offset=offset) if music else None, duration=duration, scratch=scratch)
    if music is not None:
        mono = decode_audio(music, sample_rate=8000, mono=True)
        start = int(offset * 8000)
        track.energy = frame_energy(mono[start : start + int(duration * 8000) + 1], 8000, fps, n_frames)
    if voiceover is not None:
        _mix_voiceover(track, music, offset, voiceover, speech_models)
    return track


def _music_pcm(music: Path | None, offset: float, duration: float) -> np.ndarray:
    """The music bed as stereo float32 at 48 kHz, `duration` long, faded like `music_bed_filter`."""
    n = round(duration * AUDIO_SAMPLE_RATE)
    if music is None:
        return np.zeros((n, 2), np.float32)
    pcm = decode_audio(music, sample_rate=AUDIO_SAMPLE_RATE, mono=False)
    start = round(offset * AUDIO_SAMPLE_RATE)
    bed = np.zeros((n, 2), np.float32)
    piece = pcm[start : start + n]
    bed[: len(piece)] = piece
    fade_in, fade_out = int(0.3 * AUDIO_SAMPLE_RATE), int(2.0 * AUDIO_SAMPLE_RATE)
    bed[: min(fade_in, n)] *= np.linspace(0.0, 1.0, min(fade_in, n), dtype=np.float32)[:, None]
    bed[max(0, n - fade_out) :] *= np.linspace(1.0, 0.0, n - max(0, n - fade_out), dtype=np.float32)[:, None]
    return bed


def _mix_voiceover(track: Soundtrack, music: Path | None, offset: float, voiceover: Path, models: Any) -> None:
    """Duck the music under the voice-over's speech, mix, and keep its captions (see `app.media.voiceover`)."""
    from app.media import voiceover as vo

    checked = vo.inspect_voiceover(voiceover, sample_rate=AUDIO_SAMPLE_RATE)
    voice = checked.samples
    track.warnings.extend(checked.warnings)
    speech = models.speech() if models is not None and hasattr(models, "speech") else None
    transcriber, vad = getattr(speech, "transcriber", None), getattr(speech, "vad", None)
    if transcriber is None or vad is None:
        # A broken install (the models ship in pinned packages): still duck the music under the whole
        # voice-over, but show no captions rather than guessed ones.
        track.warnings.append("voice-over models unavailable: music ducked under the whole voice-over, no captions")
        spans = [(0.0, min(track.duration, checked.duration))]
        _write_mix(track, music, offset, voice, spans)
        return
    analysis = vo.analyze_voiceover(voice, AUDIO_SAMPLE_RATE, transcriber=transcriber, vad=vad)
    _write_mix(track, music, offset, voice, list(analysis.speech))
    track.captions = list(analysis.cues)
    track.warnings.extend(analysis.warnings)
    track.voiceover = {
        "speech_seconds": round(sum(e - s for s, e in analysis.speech), 2),
        "words": len(analysis.words),
        "captions": len(analysis.cues),
        "language": analysis.language,
        "captions_skipped": analysis.captions_skipped,
        "transcriber": analysis.transcriber_source,
        "vad": analysis.vad_source,
    }


def _write_mix(
    track: Soundtrack, music: Path | None, offset: float, voice: np.ndarray, speech: list[tuple[float, float]]
) -> None:
    """Music ducked under `speech`, plus the voice, written as the bed (float WAV: the mix may exceed
    full scale before loudness normalisation brings it down)."""
    from app.media import voiceover as vo

    bed = _music_pcm(music, offset, track.duration)
    gain = vo.ducking_gain(speech, track.duration, AUDIO_SAMPLE_RATE)[: len(bed)]
    voice_bed = np.zeros(len(bed), np.float32)
    voice_bed[: min(len(voice), len(bed))] = voice[: len(bed)]
    mixed = vo.mix_voiceover(bed, voice_bed, gain)
    path = track.scratch / "bed-with-voiceover.wav"
    sf.write(path, mixed, AUDIO_SAMPLE_RATE, subtype="FLOAT")
    # Already trimmed and faded: the bed plays from 0 without further fades.
    track.bed = MusicBed(path=path, offset=0.0, fade_in=0.0, fade_out=0.0)
