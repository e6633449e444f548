"""What every phase receives and returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings
from app.progress import PhaseProgress, ProgressSink, null_sink
from app.storage import Storage

if TYPE_CHECKING:
    from app.components import Components

PHASE_NAMES: dict[int, str] = {1: "analyze", 2: "render", 3: "timeline", 4: "assemble"}
CPU_PHASES = (1, 3, 4)
GPU_PHASES = (2,)


@dataclass
class PhaseContext:
    settings: Settings
    sessions: sessionmaker[Session]
    storage: Storage
    progress_sink: ProgressSink = null_sink
    worker_id: str = "local"
    #: Models and renderers, built once per process by the entry point and handed in (`get_components`
    #: builds the default set from settings on first use when none was given).
    components: Components | None = None

    def get_components(self) -> Components:
        if self.components is None:
            from app.components import Components

            self.components = Components.from_settings(self.settings)
        return self.components

    def workdir(self, job_id: int) -> Path:
        path = Path(self.settings.WORK_DIR) / f"job-{job_id}"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def progress(self, job_id: int, phase: int) -> PhaseProgress:
        return PhaseProgress(self.progress_sink, job_id, phase)


@dataclass
class PhaseResult:
    phase: int
    #: Summary stored in job_phases.details (counts, models used, step timings).
    details: dict[str, Any] = field(default_factory=dict)
    #: Non-fatal findings appended to the job's warnings.
    warnings: list[str] = field(default_factory=list)


class PhaseRunner(Protocol):
    def __call__(self, job_id: int, ctx: PhaseContext) -> PhaseResult: ...
