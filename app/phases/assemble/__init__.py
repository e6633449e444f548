"""Phase 4: one ffmpeg graph joins the timeline's clips with beat-centred transitions and music."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from app.phases.base import PhaseContext, PhaseResult


def run(job_id: int, ctx: PhaseContext) -> PhaseResult:
    """The phase's one entry point. Imported lazily so that the package's pure helpers stay light."""
    from app.phases.assemble.phase import run as _run

    return _run(job_id, ctx)


__all__ = ["run"]
