"""`ModelRegistry`: every model component, built once per process from the settings, with the reasons for
whatever is missing. Callers use ``registry.clip`` / ``registry.depth`` / ``registry.beats`` /
``registry.ocr`` when not None and fall back to the classical code otherwise; ``registry.report()`` says
which happened and why.

CLIP and depth load from MODEL_CACHE_DIR (manifests, licences, checksums). The beat model (BeatNet's
CRNN, CC BY 4.0) and the OCR models (PP-OCR, Apache-2.0) ship inside pinned PyPI packages, so they load
from the installed package, offline, and need no download."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from app.models.catalog import Kind, licence_refusal
from app.models.layout import Manifest, ManifestError, model_dir, read_manifest, verify_files
from app.models.runtime import ModulesMixin, pick_device

log = logging.getLogger(__name__)

#: Every role of the registry, in report order.
ROLES: tuple[str, ...] = ("clip", "depth", "beats", "ocr")
#: Settings that choose depth weights, best first: the first one whose weights load is used.
DEPTH_SETTINGS: tuple[str, ...] = ("DEPTH_MODEL", "MIDAS_MODEL")


@dataclass(frozen=True)
class ComponentStatus:
    """One attempt to build a component. `loaded` False means the caller falls back; `reason` says why."""

    role: str
    setting: str
    name: str
    loaded: bool
    reason: str | None = None
    source: str | None = None
    path: str | None = None
    licence: str | None = None
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class LoadOptions:
    cache_dir: Path
    device: str = "cpu"
    allow_noncommercial: bool = False
    allow_tiny_random: bool = True
    depth_input_size: int | None = None


class _Unavailable(Exception):
    """The component cannot be built; the message is the recorded reason."""


def check_folder(kind: Kind, name: str, opts: LoadOptions) -> tuple[Path, Manifest]:
    """The verified folder and manifest of one model, or `_Unavailable` with the reason."""
    try:
        folder = model_dir(opts.cache_dir, kind, name)
    except ValueError as exc:
        raise _Unavailable(str(exc)) from None
    if not folder.is_dir():
        raise _Unavailable(f"no weights at {folder} (see scripts/download_models.py)")
    try:
        manifest = read_manifest(folder)
    except ManifestError as exc:
        raise _Unavailable(f"corrupt weights: {exc}") from None
    if manifest.kind != kind:
        raise _Unavailable(f"corrupt weights: {folder} holds a {manifest.kind!r} model, not {kind!r}")
    refusal = licence_refusal(kind, name, manifest.licence, opts.allow_noncommercial)
    if refusal:
        raise _Unavailable(refusal)
    if manifest.tiny_random and not opts.allow_tiny_random:
        raise _Unavailable(f"refused: {folder} holds tiny random test weights (not in production)")
    try:
        verify_files(folder, manifest)
    except ManifestError as exc:
        raise _Unavailable(f"corrupt weights: {exc}") from None
    return folder, manifest


def _build(kind: Kind, folder: Path, manifest: Manifest, opts: LoadOptions) -> Any:
    device = pick_device(opts.device)
    if kind == "clip":
        from app.models.clip import load_clip

        return load_clip(folder, source=manifest.source, device=device)
    from app.models.depth import load_depth

    return load_depth(
        folder,
        architecture=manifest.architecture,
        source=manifest.source,
        device=device,
        input_size=opts.depth_input_size,
    )


def load_component(role: str, kind: Kind, setting: str, name: str, opts: LoadOptions) -> tuple[Any, ComponentStatus]:
    """(component or None, status). Never raises for missing, refused, corrupt or unloadable weights."""
    started = time.perf_counter()
    base: dict[str, Any] = {"role": role, "setting": setting, "name": name}
    try:
        folder, manifest = check_folder(kind, name, opts)
    except _Unavailable as exc:
        return None, ComponentStatus(**base, loaded=False, reason=str(exc))
    try:
        component = _build(kind, folder, manifest, opts)
    except Exception as exc:  # a broken checkpoint must never take a job down: the caller falls back
        log.warning("model %s=%s failed to load: %s", setting, name, exc, exc_info=True)
        reason = f"failed to load {folder}: {type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
        return None, ComponentStatus(**base, loaded=False, reason=reason, path=str(folder))
    status = ComponentStatus(
        **base,
        loaded=True,
        source=manifest.source,
        path=str(folder),
        licence=manifest.licence,
        seconds=round(time.perf_counter() - started, 3),
    )
    return component, status


class ModelRegistry(ModulesMixin):
    """The process's model components: ``clip`` (`ClipAnalyzer` | None), ``depth`` (`DepthEstimator` | None),
    and the components whose weights ship in installed packages, loaded on first use (a GPU worker never
    needs them, an API process rarely): ``beats`` (BeatNet, phase 3), ``ocr`` (PP-OCR, phase 1) and the
    voice-over models (`speech()`, phase 4).

    Build it once (`from_settings`, or the cached `get_model_registry`) and pass it to whoever needs it."""

    clip: Any
    depth: Any

    def __init__(
        self,
        *,
        clip: Any = None,
        depth: Any = None,
        statuses: tuple[ComponentStatus, ...] = (),
        lazy: dict[str, Callable[[], tuple[Any, ComponentStatus]]] | None = None,
        **ready: Any,
    ) -> None:
        """`lazy`: role -> loader, run on the role's first use; `ready`: packaged components already built
        (``beats=``, ``ocr=``; tests)."""
        self.register_modules(clip=clip, depth=depth)
        self.statuses = statuses
        self._lazy = dict(lazy or {})
        self._loaded: dict[str, Any] = dict(ready)
        self._lazy_lock = threading.Lock()

    def packaged(self, role: str) -> Any:
        """The packaged component `role` ("beats", "ocr", "transcriber", "vad"), loaded on first use; None
        when it is not configured or does not load (the reason is in `statuses`)."""
        with self._lazy_lock:
            if role not in self._loaded:
                loader = self._lazy.get(role)
                component, status = loader() if loader else (None, None)
                self._loaded[role] = component
                if status is not None:
                    self.statuses = (*self.statuses, status)
            return self._loaded[role]

    @property
    def beats(self) -> Any:
        return self.packaged("beats")

    @property
    def ocr(self) -> Any:
        return self.packaged("ocr")

    def speech(self) -> Any:
        """The voice-over models: an object with `transcriber` (Whisper tiny.en) and `vad` (Silero), each
        None when unavailable, with the reason in `statuses`."""
        return _Speech(self.packaged("transcriber"), self.packaged("vad"))

    @classmethod
    def from_settings(cls, settings: Any, *, device: str | None = None) -> ModelRegistry:
        """Load what `settings` asks for and what is on disk; record why anything else is missing."""
        if not settings.MODELS_ENABLED:
            off = "disabled (MODELS_ENABLED=false)"
            return cls(
                statuses=(
                    ComponentStatus("clip", "OPENCLIP_MODEL", settings.OPENCLIP_MODEL, False, off),
                    ComponentStatus("depth", "DEPTH_MODEL", settings.DEPTH_MODEL, False, off),
                    ComponentStatus("beats", "BEAT_MODEL", settings.BEAT_MODEL, False, off),
                    ComponentStatus("ocr", "OCR_ENABLED", "rapidocr", False, off),
                )
            )
        opts = LoadOptions(
            cache_dir=Path(settings.MODEL_CACHE_DIR),
            device=device or settings.MODELS_DEVICE,
            allow_noncommercial=settings.MODELS_ALLOW_NONCOMMERCIAL,
            allow_tiny_random=settings.ENVIRONMENT != "production",
            depth_input_size=settings.DEPTH_INPUT_SIZE or None,
        )
        clip, clip_status = _load_named("clip", "clip", "OPENCLIP_MODEL", settings.OPENCLIP_MODEL, opts)
        depth, depth_statuses = _load_first_depth(settings, opts)
        registry = cls(
            clip=clip,
            depth=depth,
            statuses=(clip_status, *depth_statuses),
            lazy={
                "beats": lambda: _load_beat_model(settings, opts),
                "ocr": lambda: _load_text_reader(settings),
                "transcriber": lambda: _packaged("transcriber", "VOICEOVER", "whisper-tiny.en", _transcriber),
                "vad": lambda: _packaged("vad", "VOICEOVER", "silero-vad", _vad),
            },
        )
        log.info("models: %s", registry.describe())
        return registry

    def status(self, role: str) -> ComponentStatus | None:
        """The loaded attempt for `role`, else its first failed one."""
        attempts = [s for s in self.statuses if s.role == role]
        return next((s for s in attempts if s.loaded), attempts[0] if attempts else None)

    def report(self) -> dict[str, Any]:
        """JSON-ready: per role what was loaded (its `source`) or why the classical fallback runs, plus
        every attempt in order."""
        roles = {}
        for role in ROLES:
            chosen = self.status(role)
            reasons = [f"{s.setting}: {s.reason}" for s in self.statuses if s.role == role and s.reason]
            idle = chosen is None and role in self._lazy and role not in self._loaded
            why = "not used yet (loaded on first use)" if idle else ("; ".join(reasons) or "not configured")
            roles[role] = {
                "loaded": bool(chosen and chosen.loaded),
                "source": chosen.source if chosen else None,
                "fallback_reason": None if chosen and chosen.loaded else why,
            }
        return {**roles, "attempts": [s.as_dict() for s in self.statuses]}

    def describe(self) -> str:
        """One line for logs: "clip=clip:laion/...@abc; depth=fallback (DEPTH_MODEL: no weights at ...)"."""
        parts = []
        for role, info in self.report().items():
            if role != "attempts":
                parts.append(
                    f"{role}={info['source'] if info['loaded'] else 'fallback (' + info['fallback_reason'] + ')'}"
                )
        return "; ".join(parts)


def _load_named(role: str, kind: Kind, setting: str, name: str, opts: LoadOptions) -> tuple[Any, ComponentStatus]:
    if not name.strip():
        return None, ComponentStatus(role, setting, name, False, f"not configured ({setting} is empty)")
    return load_component(role, kind, setting, name.strip(), opts)


def _load_first_depth(settings: Any, opts: LoadOptions) -> tuple[Any, list[ComponentStatus]]:
    depth: Any = None
    statuses: list[ComponentStatus] = []
    for setting in DEPTH_SETTINGS:
        name = str(getattr(settings, setting, "") or "")
        if depth is not None:
            statuses.append(
                ComponentStatus("depth", setting, name, False, f"not needed ({statuses[-1].setting} loaded)")
            )
            continue
        if not name.strip():
            continue
        depth, status = _load_named("depth", "depth", setting, name, opts)
        statuses.append(status)
    if not statuses:
        statuses.append(ComponentStatus("depth", "DEPTH_MODEL", "", False, "not configured (DEPTH_MODEL is empty)"))
    return depth, statuses


def _packaged(role: str, setting: str, name: str, build: Any) -> tuple[Any, ComponentStatus]:
    """A component whose weights ship in an installed package: (component, status), never raising."""
    started = time.perf_counter()
    try:
        component = build()
    except Exception as exc:  # missing package or broken weights: the classical path runs instead
        reason = f"unavailable: {type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
        return None, ComponentStatus(role, setting, name, False, reason)
    seconds = round(time.perf_counter() - started, 3)
    source = str(getattr(component, "source", None) or getattr(component, "name", name))
    return component, ComponentStatus(role, setting, name, True, source=source, seconds=seconds)


@dataclass(frozen=True)
class _Speech:
    transcriber: Any
    vad: Any


def _transcriber() -> Any:
    from app.models.speech import load_transcriber

    return load_transcriber()


def _vad() -> Any:
    from app.models.speech import load_vad

    return load_vad()


def _load_beat_model(settings: Any, opts: LoadOptions) -> tuple[Any, ComponentStatus]:
    name = str(settings.BEAT_MODEL or "").strip()
    if not name:
        return None, ComponentStatus("beats", "BEAT_MODEL", "", False, "not configured (BEAT_MODEL is empty)")

    def build() -> Any:
        from app.models.beatnet import load_beat_model

        return load_beat_model(pick_device(opts.device))

    return _packaged("beats", "BEAT_MODEL", name, build)


def _load_text_reader(settings: Any) -> tuple[Any, ComponentStatus]:
    if not settings.OCR_ENABLED:
        return None, ComponentStatus("ocr", "OCR_ENABLED", "rapidocr", False, "disabled (OCR_ENABLED=false)")

    def build() -> Any:
        from app.models.ocr import load_text_reader

        return load_text_reader()

    return _packaged("ocr", "OCR_ENABLED", "rapidocr", build)


_CACHE: dict[tuple[Any, ...], ModelRegistry] = {}
_CACHE_LOCK = threading.Lock()


def get_model_registry(settings: Any = None) -> ModelRegistry:
    """The process-wide registry for these settings (built on first use, then shared across threads)."""
    if settings is None:
        from app.config import get_settings

        settings = get_settings()
    key = tuple(
        str(getattr(settings, n, ""))
        for n in (
            "MODELS_ENABLED",
            "MODEL_CACHE_DIR",
            "MODELS_DEVICE",
            "MODELS_ALLOW_NONCOMMERCIAL",
            "DEPTH_INPUT_SIZE",
            "ENVIRONMENT",
            "OPENCLIP_MODEL",
            *DEPTH_SETTINGS,
            "BEAT_MODEL",
            "OCR_ENABLED",
        )
    )
    with _CACHE_LOCK:
        if key not in _CACHE:
            _CACHE[key] = ModelRegistry.from_settings(settings)
        return _CACHE[key]


def clear_model_registry_cache() -> None:
    """Forget cached registries (tests; a worker that was told its weights changed)."""
    with _CACHE_LOCK:
        _CACHE.clear()
