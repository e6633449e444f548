"""Voice-over tracks: decoding and checking, speech detection, word-timed captions, music ducking, mixing.

Pure computation: no database, no settings. The models (a transcriber and a voice activity detector,
`app.models.speech.load_transcriber` / `load_vad`) are passed in, so tests can use fakes::

    vo = inspect_voiceover(path)                      # VoiceOverFile, or VoiceOverError (exit code 2)
    analysis = analyze_voiceover(vo.samples, vo.sample_rate, transcriber=t, vad=v)
    warnings = [*vo.warnings, *analysis.warnings]
    vtt, srt = to_webvtt(analysis.cues), to_srt(analysis.cues)
    gain = ducking_gain(analysis.speech, music_seconds, 48000)
    mixed = mix_voiceover(music48k, load_voiceover(path, sample_rate=48000), gain)

Decisions and why:

* A **video file** given as the voice-over is accepted: its first audio track is used and a warning
  says the picture is ignored. Agents record voice-overs on phones, which save them as videos; making
  them convert it first gains nothing, and nothing of the video is shown. A video (or picture) with no
  audio track is refused. Cover art in an mp3/m4a is a one-frame "video" stream and is not a video.
* **Where speech is** comes from the VAD alone (Silero: ~8 ms of CPU per second of audio), never from
  Whisper, which invents words in silence and noise. Ducking follows the VAD's segments; words Whisper
  places outside them are dropped as hallucinations, and the rest are clamped into their segment.
* **No speech** (a silent file, a tone, white noise: Silero's probability stays below 0.1 on all of
  them): a warning, no captions, no ducking; Whisper is not run at all.
* **Captions are dropped rather than wrong.** whisper tiny.en transcribes English only; it reports
  "en" with probability 1 for anything, so other languages are recognised by how unsure it is. Mean
  word probability measured on espeak-ng speech: clean US English 0.82-0.88 (no word under 0.3), British
  voice 0.72, English at 10 dB SNR in white noise 0.66 and at 220 words/min 0.63 (both with several
  wrong words: "a oven there", "two masks"), 5 dB SNR 0.58; German 0.46-0.48 (35 % of words under 0.3),
  French 0.28-0.52 (a hallucinated "I'm not going to do that." three times), Spanish 0.24-0.43,
  Italian 0.29. Captions are kept when the mean is at least 0.7, at most 30 % of words are under 0.3
  and there are at least 0.5 words per second of speech (English runs 2-3). Otherwise the warning says
  why: "too noisy" when the speech is less than 10 dB above the background between phrases (estimated
  from the VAD's windows: 10.6 dB for a 10 dB mix, 3.1 dB for 0 dB), else "does not transcribe as
  English". Real voices are easier for Whisper than eSpeak's, so this errs on the side of captions
  left out.
* **Ducking** is a gain envelope in dB with raised-cosine ramps (no corners, so no clicks) whose slope
  is bounded: a ramp is lengthened until it changes by at most 0.8 dB per 10 ms (80 dB/s), so the
  default -12 dB attack takes 0.236 s instead of 0.12 s. The attack starts early enough to reach full
  depth by the speech onset; pauses too short for the music to come back up and stay (~1 s) keep it
  down, so it does not pump between phrases.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

import numpy as np

from app.errors import FFmpegError, InvalidInputError
from app.media.ffmpeg import MediaInfo, decode_pcm, probe

__all__ = [
    "CaptionCue",
    "Transcriber",
    "Transcript",
    "TranscriptSegment",
    "VoiceActivityDetector",
    "VoiceOverAnalysis",
    "VoiceOverError",
    "VoiceOverFile",
    "Word",
    "analyze_voiceover",
    "caption_cues",
    "ducking_gain",
    "inspect_voiceover",
    "load_voiceover",
    "mix_voiceover",
    "speech_segments",
    "to_srt",
    "to_webvtt",
]

# --- parameters -------------------------------------------------------------------------------------

#: The speech models' input rate and Silero's window (512 samples = 32 ms).
VAD_SAMPLE_RATE = 16000
VAD_HOP_SECONDS = 512 / VAD_SAMPLE_RATE
#: Shortest voice-over accepted: under a second is a slip of the record button, not a voice-over.
MIN_VOICEOVER_SECONDS = 1.0
#: Longest stretch decoded: the longest video (600 s) and then some.
MAX_VOICEOVER_SECONDS = 900.0
#: Whole-file RMS below which the voice-over counts as silent.
_SILENCE_DBFS = -60.0
#: Less detected speech than this is no speech (a cough, a click).
_MIN_SPEECH_SECONDS = 0.3
#: Less than this fraction of a long (> 5 s) file being speech is worth a warning.
_LITTLE_SPEECH_FRACTION = 0.1
#: Audio kept around the detected speech when it is cropped for Whisper.
_TRANSCRIBE_MARGIN = 0.5
#: A word may stick out of its speech segment by this much before it counts as invented.
_WORD_TOLERANCE = 0.2
#: Transcript trust (see the module docstring for the measurements).
_MIN_MEAN_WORD_PROBABILITY = 0.7
_LOW_WORD_PROBABILITY = 0.3
_MAX_LOW_WORD_FRACTION = 0.3
_MIN_WORDS_PER_SPEECH_SECOND = 0.5
#: Whisper's own hallucination signs for a segment: repetitive text (gzip ratio), or "no speech" and
#: unsure at the same time.
_MAX_COMPRESSION_RATIO = 2.4
_NO_SPEECH_PROB = 0.6
_NO_SPEECH_LOGPROB = -1.0
#: A language detection (multilingual models) less sure than this leaves the captions out.
_MIN_LANGUAGE_PROBABILITY = 0.5
#: Speech less than this far above the background between phrases is "noisy".
_NOISY_SNR_DB = 10.0
#: Steepest change of the ducking envelope.
_MAX_DUCK_SLOPE_DB_PER_S = 80.0
#: Caption line breaks: sentence ends always close a cue; a cue that must be split is preferably split
#: after a clause mark or before a conjunction.
_SENTENCE_END = re.compile(r"[.!?…][\"')\]]*$")
_CLAUSE_END = re.compile(r"[,;:–—-][\"')\]]*$")
_CONJUNCTIONS = frozenset({"and", "but", "or", "so", "with", "because", "which", "while", "where", "then"})


class VoiceOverError(InvalidInputError):
    """The voice-over file cannot be used (missing, not audio, no audio track, too short, broken)."""


# --- data -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Word:
    text: str
    start: float
    end: float
    #: The transcriber's confidence in the word, 0-1.
    probability: float


@dataclass(frozen=True)
class TranscriptSegment:
    """One of Whisper's segments, with its decoding statistics (hallucination signs)."""

    start: float
    end: float
    text: str
    avg_logprob: float
    no_speech_prob: float
    compression_ratio: float
    words: tuple[Word, ...]


@dataclass(frozen=True)
class Transcript:
    words: tuple[Word, ...]
    language: str
    #: 1.0 from an English-only model, which does not detect the language.
    language_probability: float
    #: Seconds of audio transcribed (after `shifted`, still the length of that stretch).
    duration: float
    segments: tuple[TranscriptSegment, ...] = ()

    def shifted(self, offset: float) -> Transcript:
        """The same transcript with every time moved by `offset` seconds."""

        def move(w: Word) -> Word:
            return replace(w, start=w.start + offset, end=w.end + offset)

        return replace(
            self,
            words=tuple(move(w) for w in self.words),
            segments=tuple(
                replace(s, start=s.start + offset, end=s.end + offset, words=tuple(move(w) for w in s.words))
                for s in self.segments
            ),
        )


class Transcriber(Protocol):
    """16 kHz mono float32 -> words with times (`app.models.speech.WhisperTranscriber`)."""

    @property
    def source(self) -> str: ...

    def transcribe(self, samples16k: np.ndarray) -> Transcript: ...


class VoiceActivityDetector(Protocol):
    """16 kHz mono float32 -> speech probability per `hop_seconds` window (`app.models.speech.SileroVad`)."""

    @property
    def source(self) -> str: ...

    @property
    def hop_seconds(self) -> float: ...

    def probabilities(self, samples16k: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class CaptionCue:
    start: float
    end: float
    #: The cue's text, its lines joined by "\n".
    text: str
    words: tuple[Word, ...]

    @property
    def lines(self) -> list[str]:
        return self.text.split("\n")


@dataclass(frozen=True)
class VoiceOverFile:
    """A decoded, checked voice-over: mono float32 at `sample_rate`, and what is worth telling the user."""

    samples: np.ndarray
    sample_rate: int
    warnings: tuple[str, ...]
    #: The file is a video whose audio track is used.
    from_video: bool

    @property
    def duration(self) -> float:
        return self.samples.size / float(self.sample_rate)


@dataclass(frozen=True)
class VoiceOverAnalysis:
    duration: float
    #: (start, end) seconds of each speech segment (VAD): where the music is ducked.
    speech: tuple[tuple[float, float], ...]
    #: Speech probability per VAD window of `vad_hop_seconds`.
    speech_probabilities: np.ndarray = field(repr=False, compare=False)
    vad_hop_seconds: float
    #: Words shown as captions: empty when the transcript was not trusted (see `captions_skipped`).
    words: tuple[Word, ...]
    cues: tuple[CaptionCue, ...]
    #: "en" (or the detected language) when captions were made; None when there are none.
    language: str | None
    #: Why there are no captions: None, "silent", "no_speech", "noisy", "not_english", "failed".
    captions_skipped: str | None
    #: One-line findings for the job's warnings.
    warnings: tuple[str, ...]
    #: Mean word probability of the transcript (None when nothing was transcribed).
    mean_word_probability: float | None = None
    #: Speech level above the background between phrases, dB (None without enough of either).
    snr_db: float | None = None
    #: Whisper's raw transcript (times in this file's seconds), for reports; None when not run.
    transcript: Transcript | None = None
    transcriber_source: str = ""
    vad_source: str = ""

    @property
    def speech_seconds(self) -> float:
        return float(sum(e - s for s, e in self.speech))


# --- decoding ---------------------------------------------------------------------------------------


def load_voiceover(path: str | Path, *, sample_rate: int = VAD_SAMPLE_RATE) -> np.ndarray:
    """Decode a voice-over (any audio ffmpeg reads, or a video's audio track) to mono float32 PCM at
    `sample_rate`. One-line `VoiceOverError` (exit code 2) when it cannot be used; see `inspect_voiceover`."""
    return inspect_voiceover(path, sample_rate=sample_rate).samples


def inspect_voiceover(
    path: str | Path,
    *,
    sample_rate: int = VAD_SAMPLE_RATE,
    min_seconds: float = MIN_VOICEOVER_SECONDS,
    max_seconds: float = MAX_VOICEOVER_SECONDS,
) -> VoiceOverFile:
    """Decode and check a voice-over file. `VoiceOverError` for: a missing or empty file, a file ffmpeg
    cannot read (text renamed .wav), no audio track (a picture, a silent video), no decodable audio,
    samples that are not numbers, shorter than `min_seconds`. Warnings (not errors): a video (its audio
    is used), longer than `max_seconds` (the rest is cut), decode errors. A silent file decodes fine;
    `analyze_voiceover` reports it."""
    path = Path(path)
    if not path.is_file():
        raise VoiceOverError(f"voice-over file {path.name} does not exist")
    if path.stat().st_size == 0:
        raise VoiceOverError(f"voice-over {path.name} is empty (0 bytes)")
    info = _probe_voiceover(path)
    warnings: list[str] = []
    from_video = info.video is not None and info.frame_count > 1
    if from_video:
        warnings.append(f"voice-over {path.name} is a video: its audio track is used, the picture is ignored")
    samples, stderr = _decode(path, sample_rate, max_seconds + 1.0)
    keep = round(max_seconds * sample_rate)
    if samples.size > keep:
        warnings.append(f"voice-over is longer than {max_seconds:.0f} s: only the first {max_seconds:.0f} s is used")
        samples = samples[:keep]
    broken = int(samples.size - np.count_nonzero(np.isfinite(samples)))
    if broken:
        raise VoiceOverError(
            f"voice-over {path.name} has {broken} sample(s) that are not numbers (NaN or infinite): re-export it"
        )
    duration = samples.size / float(sample_rate)
    if duration < min_seconds:
        raise VoiceOverError(f"voice-over {path.name} is {duration:.2f} s long; at least {min_seconds:g} s is needed")
    errors = sum(1 for line in stderr.splitlines() if line.strip())
    if errors:
        warnings.append(f"voice-over has {errors} decode error(s); it may sound broken in places")
    return VoiceOverFile(samples=samples, sample_rate=sample_rate, warnings=tuple(warnings), from_video=from_video)


def _probe_voiceover(path: Path) -> MediaInfo:
    try:
        info = probe(path)
    except FFmpegError as exc:
        raise VoiceOverError(f"voice-over {path.name} is not an audio file ffmpeg can read") from exc
    if info.audio is not None:
        return info
    if info.video is None:
        raise VoiceOverError(f"voice-over {path.name} has no audio track")
    if info.frame_count > 1:
        raise VoiceOverError(f"voice-over {path.name} is a video without sound: it has no audio track")
    raise VoiceOverError(f"voice-over {path.name} is a picture, not audio")


def _decode(path: Path, sample_rate: int, max_seconds: float) -> tuple[np.ndarray, str]:
    """Mono float32 PCM of the first audio track, and ffmpeg's error lines (decode damage)."""
    try:
        pcm, stderr = decode_pcm(path, sample_rate, max_seconds=max_seconds, first_audio_track=True)
    except FFmpegError as exc:
        raise VoiceOverError(f"cannot decode voice-over {path.name}: {_last_line(exc, path)}") from exc
    if pcm.size == 0:
        raise VoiceOverError(f"voice-over {path.name} contains no audio")
    return pcm, stderr


def _last_line(exc: FFmpegError, path: Path) -> str:
    lines = [re.sub(r"\[[^\]]*@ ?0x[0-9a-f]+\]\s*", "", ln).strip() for ln in exc.stderr_tail.splitlines()]
    lines = [ln for ln in lines if ln]
    return (lines[-1] if lines else str(exc)).replace(str(path), path.name)[:200]


# --- speech detection -------------------------------------------------------------------------------


def speech_segments(
    probabilities: np.ndarray,
    *,
    duration: float,
    hop_seconds: float = VAD_HOP_SECONDS,
    threshold: float = 0.5,
    neg_threshold: float = 0.35,
    min_speech: float = 0.25,
    min_silence: float = 0.1,
    pad: float = 0.03,
) -> list[tuple[float, float]]:
    """(start, end) seconds of speech from per-window probabilities, the way Silero's
    `get_speech_timestamps` does it: speech starts at a window >= `threshold`, ends after at least
    `min_silence` below `neg_threshold` (hysteresis, so a dip inside a word does not split it);
    segments shorter than `min_speech` are dropped; each is widened by `pad` and overlaps are merged."""
    raw: list[tuple[float, float]] = []
    start: float | None = None
    quiet_since: float | None = None
    for i, p in enumerate(np.asarray(probabilities, dtype=np.float64)):
        t = i * hop_seconds
        if p >= threshold:
            quiet_since = None
            if start is None:
                start = t
        elif start is not None and p < neg_threshold:
            quiet_since = t if quiet_since is None else quiet_since
            if t + hop_seconds - quiet_since >= min_silence:
                raw.append((start, quiet_since))
                start, quiet_since = None, None
    if start is not None:
        raw.append((start, min(len(probabilities) * hop_seconds, duration)))
    merged: list[tuple[float, float]] = []
    for s, e in raw:
        if e - s < min_speech:
            continue
        s, e = max(0.0, s - pad), min(duration, e + pad)
        if merged and s <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], e))
        else:
            merged.append((s, e))
    return merged


# --- analysis ---------------------------------------------------------------------------------------


def analyze_voiceover(
    samples: np.ndarray,
    sample_rate: int,
    *,
    transcriber: Transcriber,
    vad: VoiceActivityDetector,
    max_chars_per_line: int = 32,
    max_lines: int = 2,
    max_seconds: float = 3.5,
) -> VoiceOverAnalysis:
    """Speech segments, trusted words, caption cues and warnings of a mono voice-over.

    Never raises for what the audio contains (silence, noise, another language: warnings, see the
    module docstring); `VoiceOverError` only for samples that are not numbers. Whisper runs on the
    detected speech (plus 0.5 s each side) only. Measured on the 2-core machine: 7 ms per audio second
    for the VAD; whisper tiny.en int8 0.10 s per audio second (idle machine; ~0.3 s with other jobs on
    it), 0.10-0.16 s for non-English speech; the whole analysis 0.07-0.16 s per audio second.
    """
    y = _to_16k(samples, sample_rate)
    duration = y.size / float(VAD_SAMPLE_RATE)
    probs = np.asarray(vad.probabilities(y), dtype=np.float32)
    hop = float(vad.hop_seconds)
    speech = tuple(speech_segments(probs, duration=duration, hop_seconds=hop))
    base = VoiceOverAnalysis(
        duration=duration,
        speech=speech,
        speech_probabilities=probs,
        vad_hop_seconds=hop,
        words=(),
        cues=(),
        language=None,
        captions_skipped=None,
        warnings=(),
        snr_db=_speech_snr_db(y, probs, hop),
        transcriber_source=transcriber.source,
        vad_source=vad.source,
    )
    speech_seconds = base.speech_seconds
    if _rms_dbfs(y) < _SILENCE_DBFS:
        return replace(
            base, speech=(), captions_skipped="silent", warnings=("voice-over is silent: no captions, no ducking",)
        )
    if speech_seconds < _MIN_SPEECH_SECONDS:
        note = "no speech found in the voice-over (only noise or other sounds): no captions, no ducking"
        return replace(base, speech=(), captions_skipped="no_speech", warnings=(note,))
    warnings: list[str] = []
    if duration > 5.0 and speech_seconds < _LITTLE_SPEECH_FRACTION * duration:
        warnings.append(f"the voice-over has only {speech_seconds:.1f} s of speech in {duration:.1f} s")
    try:
        transcript = _transcribe_speech(y, speech, transcriber)
    except RuntimeError as exc:  # the model failed on this input: keep the ducking, lose the captions
        warnings.append(f"voice-over transcription failed ({str(exc)[:120]}): no captions")
        return replace(base, captions_skipped="failed", warnings=tuple(warnings))
    words = _words_in_speech(transcript, speech)
    verdict = _distrust(words, transcript, speech_seconds, base.snr_db)
    mean_p = float(np.mean([w.probability for w in words])) if words else None
    base = replace(base, transcript=transcript, mean_word_probability=mean_p)
    if verdict is not None:
        code, note = verdict
        return replace(base, captions_skipped=code, warnings=(*warnings, note))
    cues = caption_cues(words, max_chars_per_line=max_chars_per_line, max_lines=max_lines, max_seconds=max_seconds)
    return replace(base, words=words, cues=tuple(cues), language=transcript.language, warnings=tuple(warnings))


def _to_16k(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    y = np.asarray(samples, dtype=np.float32)
    if y.ndim == 2:  # (n, channels) -> mono
        y = y.mean(axis=1, dtype=np.float32)
    y = y.reshape(-1)
    if not np.all(np.isfinite(y)):
        raise VoiceOverError("voice-over has samples that are not numbers (NaN or infinite): re-export it")
    if sample_rate == VAD_SAMPLE_RATE:
        return np.ascontiguousarray(y)
    from scipy.signal import resample_poly

    g = math.gcd(sample_rate, VAD_SAMPLE_RATE)
    return np.ascontiguousarray(resample_poly(y, VAD_SAMPLE_RATE // g, sample_rate // g).astype(np.float32))


def _rms_dbfs(y: np.ndarray) -> float:
    rms = math.sqrt(float(np.mean(np.square(y, dtype=np.float64)))) if y.size else 0.0
    return 20 * math.log10(rms) if rms > 0 else -math.inf


def _speech_snr_db(y: np.ndarray, probs: np.ndarray, hop: float) -> float | None:
    """Level of confident-speech windows (p >= 0.5) over that of clear non-speech windows (p < 0.15),
    capped at 60 dB (digital silence between phrases). None without 0.3 s of each."""
    win = max(1, round(hop * VAD_SAMPLE_RATE))
    n = min(probs.size, y.size // win)
    if n == 0:
        return None
    power = np.mean(np.square(y[: n * win].reshape(n, win), dtype=np.float64), axis=1)
    speech, background = power[probs[:n] >= 0.5], power[probs[:n] < 0.15]
    need = 0.3 / hop
    if speech.size < need or background.size < need:
        return None
    return float(min(60.0, 10 * math.log10(max(float(speech.mean()), 1e-12) / max(float(background.mean()), 1e-12))))


def _transcribe_speech(y: np.ndarray, speech: Sequence[tuple[float, float]], transcriber: Transcriber) -> Transcript:
    """Whisper on the span from the first to the last speech segment (plus a margin), in file time."""
    start = max(0.0, speech[0][0] - _TRANSCRIBE_MARGIN)
    end = min(y.size / VAD_SAMPLE_RATE, speech[-1][1] + _TRANSCRIBE_MARGIN)
    lo, hi = round(start * VAD_SAMPLE_RATE), round(end * VAD_SAMPLE_RATE)
    return transcriber.transcribe(y[lo:hi]).shifted(lo / VAD_SAMPLE_RATE)


def _hallucinated(segment: TranscriptSegment) -> bool:
    return segment.compression_ratio > _MAX_COMPRESSION_RATIO or (
        segment.no_speech_prob > _NO_SPEECH_PROB and segment.avg_logprob < _NO_SPEECH_LOGPROB
    )


def _words_in_speech(transcript: Transcript, speech: Sequence[tuple[float, float]]) -> tuple[Word, ...]:
    """Words of the non-hallucinated segments that overlap a speech segment, clamped into it."""
    if transcript.segments:
        candidates = [w for s in transcript.segments if not _hallucinated(s) for w in s.words]
    else:
        candidates = list(transcript.words)
    kept: list[Word] = []
    for w in _join_fragments(candidates):
        overlaps = [(min(w.end, e) - max(w.start, s), s, e) for s, e in speech]
        best, s, e = max(overlaps)
        if best <= -_WORD_TOLERANCE or not w.text.strip():
            continue  # outside any speech: invented
        start = min(max(w.start, s), e - 0.01)
        end = max(min(w.end, e), start + 0.01)
        if kept and start < kept[-1].end:  # keep words in order and disjoint
            start = kept[-1].end
            end = max(end, start + 0.01)
        kept.append(replace(w, text=w.text.strip(), start=start, end=end))
    return tuple(kept)


def _join_fragments(words: Sequence[Word]) -> list[Word]:
    """Whisper splits a hyphenated word into words like "bright" + "-family"; join them back."""
    out: list[Word] = []
    for w in words:
        text = w.text.strip()
        if out and text.startswith("-") and len(text) > 1:
            last = out[-1]
            out[-1] = Word(last.text + text, last.start, w.end, min(last.probability, w.probability))
        elif text:
            out.append(replace(w, text=text))
    return out


def _distrust(
    words: Sequence[Word], transcript: Transcript, speech_seconds: float, snr_db: float | None
) -> tuple[str, str] | None:
    """(code, warning) when the transcript should not be shown, else None."""
    probabilities = np.array([w.probability for w in words], dtype=np.float64)
    mean_p = float(probabilities.mean()) if probabilities.size else 0.0
    low = float(np.mean(probabilities < _LOW_WORD_PROBABILITY)) if probabilities.size else 1.0
    unsure = (
        mean_p < _MIN_MEAN_WORD_PROBABILITY
        or low > _MAX_LOW_WORD_FRACTION
        or len(words) < _MIN_WORDS_PER_SPEECH_SECOND * speech_seconds
    )
    if transcript.language_probability < _MIN_LANGUAGE_PROBABILITY:
        return "not_english", (
            f"the voice-over's language is unclear ({transcript.language} at "
            f"{transcript.language_probability:.2f}): no captions"
        )
    if not unsure:
        return None
    detail = f"{len(words)} word(s), mean confidence {mean_p:.2f}"
    if snr_db is not None and snr_db < _NOISY_SNR_DB:
        return "noisy", (
            f"the voice-over is too noisy to transcribe reliably (speech {snr_db:.0f} dB above the background, "
            f"{detail}): no captions"
        )
    return "not_english", (
        f"the voice-over's speech does not transcribe as English ({detail}; captions are English-only): no captions"
    )


# --- captions ---------------------------------------------------------------------------------------


def caption_cues(
    words: Sequence[Word],
    *,
    max_chars_per_line: int = 32,
    max_lines: int = 2,
    max_seconds: float = 3.5,
    min_gap: float = 0.08,
    pause: float = 0.6,
    min_seconds: float = 0.8,
    linger: float = 0.3,
) -> list[CaptionCue]:
    """Group words into caption cues of at most `max_lines` lines of `max_chars_per_line` characters,
    spoken within `max_seconds`. A sentence end closes a cue; so does a pause of `pause` seconds. A cue
    that runs out of room is split after its last clause mark (",;:-") or before its last conjunction
    in its second half, if there is one, else before the word that does not fit.

    Times: a cue starts with its first word and stays `linger` after its last (at least `min_seconds`
    in all), but ends `min_gap` before the next cue starts: cues never overlap.
    """
    if max_chars_per_line < 1 or max_lines < 1:
        raise ValueError("max_chars_per_line and max_lines must be positive")
    tokens = [replace(w, text=w.text.strip()) for w in words if w.text.strip()]
    groups = _group_words(tokens, max_chars_per_line, max_lines, max_seconds, pause)
    cues: list[CaptionCue] = []
    for i, group in enumerate(groups):
        start = group[0].start
        if cues:
            start = max(start, cues[-1].end + min_gap)
        end = max(group[-1].end + linger, start + min_seconds)
        if i + 1 < len(groups):
            end = min(end, groups[i + 1][0].start - min_gap)
        end = max(end, start + 0.01)
        lines = _wrap([w.text for w in group], max_chars_per_line, max_lines) or [_clip(group, max_chars_per_line)]
        cues.append(CaptionCue(start=start, end=end, text="\n".join(lines), words=tuple(group)))
    return cues


def _group_words(
    words: Sequence[Word], max_chars: int, max_lines: int, max_seconds: float, pause: float
) -> list[list[Word]]:
    groups: list[list[Word]] = []
    current: list[Word] = []
    for word in words:
        if current and word.start - current[-1].end >= pause:
            groups.append(current)
            current = []
        while current and not _fits([*current, word], max_chars, max_lines, max_seconds):
            cut = _split_point(current)
            groups.append(current[:cut])
            current = current[cut:]
        current.append(word)
        if _SENTENCE_END.search(word.text):
            groups.append(current)
            current = []
    if current:
        groups.append(current)
    return groups


def _fits(words: Sequence[Word], max_chars: int, max_lines: int, max_seconds: float) -> bool:
    if words[-1].end - words[0].start > max_seconds:
        return False
    return _wrap([w.text for w in words], max_chars, max_lines) is not None


def _split_point(words: Sequence[Word]) -> int:
    """Where to cut a full cue: after the last clause mark or before the last conjunction in the second
    half (so the carried-over part is short), else keep all the words."""
    for i in range(len(words) - 1, (len(words) + 1) // 2 - 1, -1):
        if i > 0 and (_CLAUSE_END.search(words[i - 1].text) or words[i].text.lower() in _CONJUNCTIONS):
            return i
    return len(words)


def _wrap(texts: Sequence[str], max_chars: int, max_lines: int) -> list[str] | None:
    """The words as at most `max_lines` lines of at most `max_chars`, two lines balanced; None if they do
    not fit."""
    line = " ".join(texts)
    if len(line) <= max_chars:
        return [line]
    if max_lines == 2:
        best: tuple[int, list[str]] | None = None
        for k in range(1, len(texts)):
            top, bottom = " ".join(texts[:k]), " ".join(texts[k:])
            if len(top) <= max_chars and len(bottom) <= max_chars:
                width = max(len(top), len(bottom))
                if best is None or width < best[0]:
                    best = (width, [top, bottom])
        return best[1] if best else None
    lines: list[str] = []
    for text in texts:  # greedy fill for 3+ lines
        if lines and len(lines[-1]) + 1 + len(text) <= max_chars:
            lines[-1] += " " + text
        elif len(text) <= max_chars:
            lines.append(text)
        else:
            return None
    return lines if len(lines) <= max_lines else None


def _clip(words: Sequence[Word], max_chars: int) -> str:
    """A single word too long for a line (a URL, a run-on transcription), cut to fit."""
    text = " ".join(w.text for w in words)
    return text if len(text) <= max_chars else text[: max_chars - 1] + "…"


def _clock(seconds: float, separator: str) -> str:
    ms = max(0, round(seconds * 1000))
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def _cue_text(text: str) -> str:
    return text.replace("-->", "->")


def to_webvtt(cues: Sequence[CaptionCue]) -> str:
    """A WebVTT document ("WEBVTT" header, numbered cues, `HH:MM:SS.mmm --> HH:MM:SS.mmm`, text with
    &, < and > escaped)."""
    blocks = ["WEBVTT"]
    for i, cue in enumerate(cues, start=1):
        text = _cue_text(cue.text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        blocks.append(f"{i}\n{_clock(cue.start, '.')} --> {_clock(cue.end, '.')}\n{text}")
    return "\n\n".join(blocks) + "\n"


def to_srt(cues: Sequence[CaptionCue]) -> str:
    """A SubRip document: sequence number, `HH:MM:SS,mmm --> HH:MM:SS,mmm`, text, blank line."""
    blocks = [
        f"{i}\n{_clock(cue.start, ',')} --> {_clock(cue.end, ',')}\n{_cue_text(cue.text)}"
        for i, cue in enumerate(cues, start=1)
    ]
    return "\n\n".join(blocks) + "\n" if blocks else ""


# --- ducking and mixing -----------------------------------------------------------------------------


def ducking_gain(
    speech_segments: Sequence[tuple[float, float]],
    duration: float,
    sample_rate: int,
    *,
    duck_db: float = -12.0,
    attack: float = 0.12,
    release: float = 0.6,
    lookahead: float = 0.15,
    max_slope_db_per_s: float = _MAX_DUCK_SLOPE_DB_PER_S,
) -> np.ndarray:
    """Per-sample linear gain for the music (float32, `round(duration * sample_rate)` samples): 1.0 away
    from speech, 10^(duck_db/20) under it.

    The gain moves in dB along raised-cosine ramps: down over `attack` seconds, starting `lookahead`
    before the speech (or earlier, so it is fully down when the speech starts), and back up over
    `release` seconds after it. A ramp is lengthened where it would be steeper than
    `max_slope_db_per_s` (-12 dB: attack 0.236 s, steepest step 0.79 dB per 10 ms). Segments closer
    than one release plus one attack merge, so the music does not pump between phrases.
    """
    n = max(0, round(duration * sample_rate))
    duck = np.zeros(n, np.float32)  # 0 = music at full level, 1 = fully ducked (in dB: times duck_db)
    depth = abs(float(duck_db))
    if n == 0 or depth == 0.0 or not speech_segments:
        return np.ones(n, np.float32)
    steepest = depth * math.pi / 2.0  # raised cosine: peak slope = depth * pi / (2 * ramp)
    attack_s = max(attack, steepest / max_slope_db_per_s, 1.0 / sample_rate)
    release_s = max(release, steepest / max_slope_db_per_s, 1.0 / sample_rate)
    lead = max(lookahead, attack_s)
    spans: list[list[float]] = []
    for start, end in sorted(speech_segments):
        down = start - lead
        if spans and down < spans[-1][1] + release_s:
            spans[-1][1] = max(spans[-1][1], end)
        else:
            spans.append([down, end])
    for down, end in spans:
        _ramp_into(duck, down, down + attack_s, sample_rate, into_duck=True)
        lo, hi = max(0, math.ceil((down + attack_s) * sample_rate)), min(n, math.ceil(end * sample_rate))
        if hi > lo:
            duck[lo:hi] = 1.0
        _ramp_into(duck, end, end + release_s, sample_rate, into_duck=False)
    return np.power(np.float32(10.0), duck * np.float32(-depth / 20.0)).astype(np.float32)


def _ramp_into(depth: np.ndarray, t0: float, t1: float, sample_rate: int, *, into_duck: bool) -> None:
    """Raise `depth` (0 = no duck, 1 = full duck) to a raised-cosine ramp over [t0, t1): from 0 to 1
    `into_duck`, else from 1 to 0."""
    lo, hi = max(0, math.ceil(t0 * sample_rate)), min(depth.size, math.ceil(t1 * sample_rate))
    if hi <= lo:
        return
    phase = (np.arange(lo, hi, dtype=np.float64) / sample_rate - t0) / (t1 - t0)
    shape = 0.5 - 0.5 * np.cos(np.pi * phase) if into_duck else 0.5 + 0.5 * np.cos(np.pi * phase)
    np.maximum(depth[lo:hi], shape.astype(np.float32), out=depth[lo:hi])


def mix_voiceover(music: np.ndarray, voice: np.ndarray, gain: np.ndarray, *, voice_gain_db: float = 0.0) -> np.ndarray:
    """music * gain + voice, at the music's length and channel count (float32, same sample rate).

    `music` is (n,) or (n, channels); `voice` (m,) or (m, 1) is added to every channel ((m, channels)
    channel by channel); a longer voice is cut, a shorter one padded with silence. `gain` is a
    `ducking_gain` of n samples (a shorter one is padded with 1.0). Nothing is clipped: phase 4's
    loudness normalisation follows, so write the mix as float, not 16-bit.
    """
    music = np.asarray(music, dtype=np.float32)
    voice = np.asarray(voice, dtype=np.float32)
    if music.ndim not in (1, 2) or voice.ndim not in (1, 2):
        raise ValueError(f"music and voice must be (n,) or (n, channels), got {music.shape} and {voice.shape}")
    n = music.shape[0]
    g = np.ones(n, np.float32)
    g[: min(n, gain.size)] = np.asarray(gain, dtype=np.float32).reshape(-1)[:n]
    if voice.ndim == 2 and voice.shape[1] == 1:
        voice = voice[:, 0]
    if music.ndim == 1 and voice.ndim == 2:
        voice = voice.mean(axis=1, dtype=np.float32)
    if music.ndim == 2 and voice.ndim == 2 and voice.shape[1] != music.shape[1]:
        raise ValueError(f"voice has {voice.shape[1]} channels, music {music.shape[1]}")
    v = np.zeros((n, *voice.shape[1:]), np.float32)
    m = min(n, voice.shape[0])
    v[:m] = voice[:m] * np.float32(10.0 ** (voice_gain_db / 20.0))
    if music.ndim == 2:
        mixed = music * g[:, None] + (v[:, None] if v.ndim == 1 else v)
    else:
        mixed = music * g + v
    return mixed.astype(np.float32, copy=False)
