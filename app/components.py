"""Components: the models and renderers a process builds once and hands to every phase.

In the style of diffusers' `register_modules`: a worker builds one `Components` from `Settings` at
start-up and puts it on its `PhaseContext`; the CLI and the API let `PhaseContext.get_components()` build
it on first use (once), so commands that render nothing load nothing. Phases use what they are given and
never load a model themselves. A test passes its own (a tiny model, a renderer that fails on
purpose).

* `renderers`: the clip renderers this process can run, best first, from ``RENDERERS`` (default
  ``ltx2,parallax,ken_burns``), limited to what is available here: LTX-2 only where its pipeline loaded
  (GPU workers with weights, ``LTX_ENABLED``), parallax wherever a clip has a depth map (it declines
  clips without one), Ken Burns always (it is the floor of the ladder).
* `models`: phase 1's analysers (CLIP, depth) when their weights are present, else None; phase 1 then
  uses its classical code and records that it did.
* `report()`: what was built and why anything was left out, for logs, `/ready` and `picaivid render --json`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from app.config import Settings

if TYPE_CHECKING:
    from app.phases.render.renderers import ClipRenderer

log = logging.getLogger(__name__)

#: Every renderer name RENDERERS may list, best first.
KNOWN_RENDERERS = ("ltx2", "parallax", "ken_burns")


@dataclass
class Components:
    renderers: list[ClipRenderer]
    models: Any = None
    #: Why a configured component is not here: {"ltx2": "LTX_ENABLED is false", ...}.
    skipped: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: Settings, *, gpu: bool = False) -> Components:
        """Build what `settings` asks for and this process can run. `gpu`: a GPU worker (the only kind
        that loads LTX-2)."""
        from app.phases.render.renderers import build_renderers

        renderers, skipped = build_renderers(settings, gpu=gpu)
        models, model_notes = _build_models(settings)
        skipped.update(model_notes)
        built = cls(renderers=renderers, models=models, skipped=skipped)
        log.info("components: %s", built.report())
        return built

    def report(self) -> dict[str, Any]:
        models = self.models.report() if self.models is not None and hasattr(self.models, "report") else {}
        return {"renderers": [r.name for r in self.renderers], "models": models, "skipped": dict(self.skipped)}


def _build_models(settings: Settings) -> tuple[Any, dict[str, str]]:
    """Phase 1's model registry, or None with the reason (weights absent, models disabled)."""
    try:
        from app.models import ModelRegistry
    except ImportError as exc:  # the model layer is optional at import time (a slim image)
        return None, {"models": f"model layer unavailable ({exc})"}
    try:
        return ModelRegistry.from_settings(settings), {}
    except Exception as exc:  # a broken cache must never stop a worker: classical code runs instead
        log.warning("model registry could not be built: %s", exc, exc_info=True)
        return None, {"models": f"{type(exc).__name__}: {exc}"}
