"""Deterministic artifact keys: the same job, phase and artifact always map to the same key, so
re-running a phase (or a redelivered message) overwrites rather than duplicates.

User file names become one key component through `safe_name`: Unicode-normalised (NFC, so a macOS NFD
"Küche" and a Windows NFC "Küche" give one key), letters and digits of any script kept, everything else
(spaces, `#`, `%`, `?`, emoji, undecodable bytes) replaced by `_`, and at most `MAX_NAME_BYTES` bytes of
UTF-8: longer names are cut and get a short hash of the whole name, so every key component stays well
inside the 255-byte file-name limit of local file systems (and of S3Storage's download cache).
"""

from __future__ import annotations

import hashlib
import unicodedata

#: Longest key component we make from a user's name, in UTF-8 bytes. File systems allow 255 per
#: component; the rest is headroom for prefixes ("000_") and temporary names (".x.part").
MAX_NAME_BYTES = 200


def job_prefix(job_id: int) -> str:
    return f"jobs/{job_id}"


def input_photo(job_id: int, position: int, filename: str) -> str:
    return f"jobs/{job_id}/input/photos/{position:03d}_{_safe(filename)}"


def input_music(job_id: int, filename: str) -> str:
    return f"jobs/{job_id}/input/music/{_safe(filename)}"


def phase_prefix(job_id: int, phase: int) -> str:
    return f"jobs/{job_id}/phase{phase}"


def thumbnail(job_id: int, photo_id: int) -> str:
    return f"jobs/{job_id}/phase1/thumbs/{photo_id}.jpg"


def depth_map(job_id: int, photo_id: int) -> str:
    """Phase 1's inverse-depth map of a photo (float32 .npy)."""
    return f"{phase_prefix(job_id, 1)}/depth/{photo_id}.npy"


def depth_sidecar(photo_key: str, suffix: str) -> str:
    """Where the ingest stores a photo's depth sidecar: beside it, same stem (``….depth.png``)."""
    return photo_key.rsplit(".", 1)[0] + suffix


def clip(job_id: int, clip_id: int, render_key: str) -> str:
    # The render key is part of the name: a clip re-planned with a new motion gets a new object,
    # and a retry of the same plan overwrites the same one.
    return f"jobs/{job_id}/phase2/clips/{clip_id}-{render_key[:12]}.mp4"


def output_video(job_id: int, version: int) -> str:
    return f"jobs/{job_id}/phase4/v{version}/video.mp4"


def deliverable(job_id: int, version: int, key: str) -> str:
    """One delivered cut ("16x9-branded") of a timeline version."""
    return f"jobs/{job_id}/phase4/v{version}/{key}.mp4"


def captions(job_id: int, version: int, key: str, ext: str) -> str:
    """The captions sidecar ("vtt" | "srt") of a deliverable."""
    return f"jobs/{job_id}/phase4/v{version}/{key}.{ext}"


def input_logo(job_id: int, filename: str) -> str:
    return f"jobs/{job_id}/input/logo/{_safe(filename)}"


def input_voiceover(job_id: int, filename: str) -> str:
    return f"jobs/{job_id}/input/voiceover/{_safe(filename)}"


def poster(job_id: int, version: int) -> str:
    return f"jobs/{job_id}/phase4/v{version}/poster.jpg"


def storyboard(job_id: int, version: int) -> str:
    return f"jobs/{job_id}/phase3/v{version}/storyboard.png"


def _safe(name: str) -> str:
    return safe_name(name)


def safe_name(name: str, max_bytes: int = MAX_NAME_BYTES) -> str:
    """One deterministic, file-system- and URL-safe key component for a user's file name."""
    text = unicodedata.normalize("NFC", name)
    keep = "".join(c if c in "._-" or (c.isalnum() and c.isprintable()) else "_" for c in text)
    return fit_name(keep.lstrip(".") or "file", max_bytes, original=name)


def fit_name(name: str, max_bytes: int = MAX_NAME_BYTES, *, original: str | None = None) -> str:
    """`name` if it fits in `max_bytes` of UTF-8, else its start, a hash of the whole name (`original`
    when given) and its extension: deterministic, and distinct for names that share a long prefix."""
    if len(name.encode("utf-8", "surrogatepass")) <= max_bytes:
        return name
    digest = hashlib.sha256((original or name).encode("utf-8", "surrogatepass")).hexdigest()[:12]
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem or len(ext.encode("utf-8", "surrogatepass")) > 16:
        stem, ext = name, ""
    tail = f"~{digest}" + (f".{ext}" if ext else "")
    budget = max_bytes - len(tail.encode("utf-8", "surrogatepass"))
    cut = stem.encode("utf-8", "surrogatepass")[:budget].decode("utf-8", "ignore")
    return cut + tail
