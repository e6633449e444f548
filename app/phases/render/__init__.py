"""Phase 2: render every planned clip with the best renderer available, one clip at a time."""

from app.phases.render.phase import render_clip, run

__all__ = ["render_clip", "run"]
