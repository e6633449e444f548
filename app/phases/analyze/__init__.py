"""Phase 1: quality, scene, room labels and clusters, hero per room, a motion plan per clip."""

from app.phases.analyze.phase import run

__all__ = ["run"]
