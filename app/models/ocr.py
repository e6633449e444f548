"""Text detection and recognition (PP-OCR) with the `rapidocr_onnxruntime` package, on the CPU.

`rapidocr-onnxruntime` (Apache-2.0, https://github.com/RapidAI/RapidOCR) ships PaddleOCR's PP-OCRv4
detector (DB), the mobile angle classifier and the PP-OCRv4 recogniser as ONNX files inside its wheel
(~16 MB; Apache-2.0 like PaddleOCR), so nothing is downloaded and it runs offline with onnxruntime.
It is installed with ``--no-deps`` (its own pins would replace the project's opencv/numpy); what it
imports at run time (onnxruntime, pyclipper, shapely, PyYAML, Pillow) is in the requirements.

The pure part (what a text region is, scaling, masks) lives in `app.media.text_regions`; this
module only builds the reader, once per process::

    reader = load_text_reader()          # RapidTextReader, or TextReaderUnavailable
    regions = detect_text_regions(rgb, reader)

The angle classifier is off: MLS watermarks and agent banners are upright, and 180-degree text is
not worth its ~10 % of the time. `detect_text_regions` hands the reader a copy already scaled
to the size detection should run at, so the detector is told not to resize again (only to round
to its stride of 32).
"""

from __future__ import annotations

import importlib.util
import threading
from typing import Any

import numpy as np

from app.media.text_regions import RawText

__all__ = ["RapidTextReader", "TextReaderUnavailable", "load_text_reader", "try_load_text_reader"]

#: Recognitions below this confidence are dropped by the package (its default is 0.5). Kept lower:
#: a faint "(c) 2015 ARMLS" watermark is often read as "02015ARMLS" at 0.6-0.7, and a region that is
#: detected but garbled is still text to mask; `detect_text_regions` keeps the score.
_MIN_TEXT_SCORE = 0.3


class TextReaderUnavailable(RuntimeError):
    """The OCR package (or one of its runtime imports, or its models) is missing or does not load."""


class RapidTextReader:
    """PP-OCR detection + recognition through `rapidocr_onnxruntime.RapidOCR`.

    `read(rgb)` returns `(polygon, text, score)` per text line, polygons in pixels of `rgb`. A lock
    serialises calls (onnxruntime sessions are thread-safe, the package's post-processing state
    is not: it stores thresholds on the detector per call).
    """

    name = "rapidocr-onnxruntime:ppocrv4"

    def __init__(self, engine: Any) -> None:
        self._engine = engine
        self._lock = threading.Lock()

    def read(self, rgb: np.ndarray) -> list[RawText]:
        """Text lines in `rgb` (H x W x 3 uint8, RGB order)."""
        bgr = np.ascontiguousarray(rgb[:, :, ::-1])
        with self._lock:
            result, _elapsed = self._engine(bgr, use_cls=False, text_score=_MIN_TEXT_SCORE)
        if not result:
            return []
        out: list[RawText] = []
        for box, text, score in result:
            out.append((np.asarray(box, np.float32).reshape(-1, 2), str(text), float(score)))
        return out


_LOCK = threading.Lock()
_READER: RapidTextReader | None = None


def load_text_reader(*, threads: int | None = None) -> RapidTextReader:
    """The process's OCR reader, built on first use (~0.3 s) and shared after that.

    `threads` caps onnxruntime's intra-op threads (default: the package's, i.e. every core); it only
    applies to the first call. Raises `TextReaderUnavailable` when the package or a dependency is
    missing, or its models do not load.
    """
    global _READER
    with _LOCK:
        if _READER is None:
            _READER = RapidTextReader(_build_engine(threads))
        return _READER


def try_load_text_reader(*, threads: int | None = None) -> RapidTextReader | None:
    """`load_text_reader`, or None when OCR is unavailable (clustering then runs without text masks)."""
    try:
        return load_text_reader(threads=threads)
    except TextReaderUnavailable:
        return None


def _build_engine(threads: int | None) -> Any:
    if importlib.util.find_spec("rapidocr_onnxruntime") is None:
        raise TextReaderUnavailable("the rapidocr-onnxruntime package is not installed")
    try:
        from rapidocr_onnxruntime import RapidOCR
    except ImportError as exc:  # onnxruntime, pyclipper, shapely or PyYAML missing
        raise TextReaderUnavailable(f"cannot import rapidocr_onnxruntime: {exc}") from exc
    options: dict[str, Any] = {
        # The caller scales the photo; the detector only rounds to multiples of 32.
        "det_limit_type": "min",
        "det_limit_side_len": 32,
        "max_side_len": 4096,
        "use_cls": False,
    }
    if threads is not None and threads > 0:
        options["intra_op_num_threads"] = threads
        options["inter_op_num_threads"] = 1
    try:
        return RapidOCR(**options)
    except Exception as exc:  # onnxruntime raises its own types for a missing or corrupt model file
        raise TextReaderUnavailable(f"cannot load the PP-OCR models: {exc}") from exc
