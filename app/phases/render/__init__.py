"""Phase 2: render every planned clip with the best renderer available, one clip at a time."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from app.phases.base import PhaseContext, PhaseResult


def run(job_id: int, ctx: PhaseContext) -> PhaseResult:
    """The phase's one entry point. Imported lazily so that the package's pure helpers stay light."""
    from app.phases.render.phase import run as _run

    return _run(job_id, ctx)


__all__ = ["run"]
