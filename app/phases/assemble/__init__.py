"""Phase 4: one ffmpeg graph joins the timeline's clips with beat-centred transitions and music."""

from app.phases.assemble.phase import run

__all__ = ["run"]
