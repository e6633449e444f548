"""Deterministic artifact keys: the same job, phase and artifact always map to the same key, so
re-running a phase (or a redelivered message) overwrites rather than duplicates."""

from __future__ import annotations


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


def clip(job_id: int, clip_id: int, render_key: str) -> str:
    # The render key is part of the name: a clip re-planned with a new motion gets a new object,
    # and a retry of the same plan overwrites the same one.
    return f"jobs/{job_id}/phase2/clips/{clip_id}-{render_key[:12]}.mp4"


def output_video(job_id: int, version: int) -> str:
    return f"jobs/{job_id}/phase4/v{version}/video.mp4"


def poster(job_id: int, version: int) -> str:
    return f"jobs/{job_id}/phase4/v{version}/poster.jpg"


def storyboard(job_id: int, version: int) -> str:
    return f"jobs/{job_id}/phase3/v{version}/storyboard.png"


def _safe(name: str) -> str:
    keep = "".join(c if c.isalnum() or c in "._-" else "_" for c in name)
    return keep.lstrip(".") or "file"
