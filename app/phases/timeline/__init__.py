"""Phase 3: beat grid, story order, whole beats per clip, a new timeline version."""

from app.phases.timeline.phase import run

__all__ = ["run"]
