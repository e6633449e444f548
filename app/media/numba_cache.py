"""A numba cache that no process ever reads while another is half-way through writing it.

Why this exists: librosa compiles its kernels with ``@guvectorize(cache=True)``, and numba writes the
two cache files of a gufunc (the kernel and its ``guf-`` wrapper) separately. Processes that compile
into one cache directory at the same time can leave a pair that comes from two different processes;
every process that loads that pair afterwards dies with SIGSEGV (numba#10128, librosa#1998). Measured
here: four processes starting on an empty cache crash in 11 of 12 launches, and a cache poisoned like
that keeps crashing every later process until it is deleted.

So a process never compiles librosa's kernels into a shared directory on its own. The first user of
librosa in a process calls `prepare(warm)`:

1. The shared cache lives in ``<root>/<key>``. ``root`` is ``NUMBA_CACHE_DIR`` (default
   ``$XDG_CACHE_HOME/picaivid/numba``); ``key`` hashes everything numba's cache validity depends on
   (numba, llvmlite and librosa versions, Python, the CPU numba targets, and the stamps of librosa's
   source files), so an upgrade or a different host never reuses, or lazily rewrites, another
   build's entries.
2. A ``.complete`` marker in that directory means a warm-up finished there: every kernel the project
   uses is compiled, so later processes only load. Then the process uses it without any lock.
3. Otherwise the process takes an exclusive file lock (``<key>.lock``), wipes whatever a crashed
   warm-up left, and runs ``warm`` (which calls every librosa entry point the project uses) in this
   process alone, then writes the marker. Processes that arrive meanwhile wait on the lock and then
   load the finished cache. A lock that is not released within ``timeout`` seconds (a hung warm-up)
   makes the waiter fall back to a private directory rather than wait for ever.
4. A root that is not writable (a read-only volume, another user's cache) is never used in place:
   numba would silently fall back to librosa's ``__pycache__``, which is shared and unlocked. The
   process copies a complete cache from it into a private temporary directory if there is one, and
   compiles into an empty private one if not.

The effective directory is exported as ``NUMBA_CACHE_DIR`` (so numba's compiler, which re-reads the
environment, keeps using it); the root travels to child processes as ``PICAIVID_NUMBA_CACHE_ROOT``.
Run ``python -m app.media.numba_cache`` to warm a cache ahead of time (image builds, venv set-up).
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import hashlib
import logging
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

logger = logging.getLogger(__name__)

#: Environment variable that carries the shared root to child processes (NUMBA_CACHE_DIR is rewritten
#: to the keyed directory inside it).
ROOT_ENV = "PICAIVID_NUMBA_CACHE_ROOT"
MARKER = ".complete"
#: How long a process waits for another one's warm-up before compiling privately instead. A cold
#: warm-up takes about 20 s on a 2-core machine.
DEFAULT_TIMEOUT = 300.0
_POLL_SECONDS = 0.2

_lock = threading.RLock()
_state: CacheState | None = None
_preparing = False


@dataclass(frozen=True)
class CacheState:
    """Where this process's numba cache is and how it got there."""

    path: Path
    #: "shared" (a warm shared cache), "warmed" (this process warmed the shared cache), "private-copy"
    #: (read-only root: a copy of its warm cache), "private" (compiled in a private directory).
    mode: str
    reason: str = ""


def default_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "picaivid" / "numba"


def cache_root() -> Path:
    """The shared root: the one the parent process chose, else NUMBA_CACHE_DIR, else the default."""
    chosen = os.environ.get(ROOT_ENV) or os.environ.get("NUMBA_CACHE_DIR")
    return Path(chosen).expanduser() if chosen else default_root()


def cache_key() -> str:
    """Hash of everything that decides whether numba may reuse a cached librosa kernel."""
    import llvmlite.binding as llvm

    parts = [sys.version, sys.platform]
    for dist in ("numba", "llvmlite", "librosa", "numpy"):
        try:
            parts.append(f"{dist}={metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            parts.append(f"{dist}=absent")
    parts.append(os.environ.get("NUMBA_CPU_NAME") or llvm.get_host_cpu_name())
    parts.append(os.environ.get("NUMBA_CPU_FEATURES") or llvm.get_host_cpu_features().flatten())
    parts.extend(_source_stamps("librosa"))
    digest = hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]
    return f"librosa-{_version('librosa')}-{digest}"


def prepare(warm: Callable[[], None], *, timeout: float = DEFAULT_TIMEOUT) -> CacheState:
    """Point numba at a safe cache and make sure it is warm; idempotent and thread-safe.

    `warm` must call every librosa function the project uses, so that no kernel is compiled later,
    outside the lock. It runs at most once per cache directory (and not at all when the cache is warm).
    Calls made from inside `warm` (it uses librosa too) return at once.
    """
    global _state, _preparing
    with _lock:
        if _state is not None:
            return _state
        if _preparing:  # re-entrant call from `warm`
            return CacheState(Path(os.environ.get("NUMBA_CACHE_DIR", "")), "warming")
        _preparing = True
        try:
            _state = _prepare(warm, timeout)
        finally:
            _preparing = False
        logger.debug("numba cache: %s (%s) %s", _state.path, _state.mode, _state.reason)
        return _state


def _prepare(warm: Callable[[], None], timeout: float) -> CacheState:
    root = cache_root()
    os.environ[ROOT_ENV] = str(root)
    shared = root / cache_key()
    if (shared / MARKER).is_file() and _writable(shared):
        _use(root, shared)
        return CacheState(shared, "shared")
    if not _writable(root):
        return _private(root, warm, shared, f"{root} is not writable")
    with _exclusive(root / f"{shared.name}.lock", timeout) as locked:
        if not locked:
            return _private(root, warm, None, f"another process held {shared.name}.lock for {timeout:.0f} s")
        if (shared / MARKER).is_file():
            _use(root, shared)
            return CacheState(shared, "shared")
        # Whatever is here is a crashed warm-up's, possibly a poisoned pair: start clean.
        shutil.rmtree(shared, ignore_errors=True)
        shared.mkdir(parents=True, exist_ok=True)
        _use(root, shared)
        started = time.monotonic()
        warm()
        _write_marker(shared)
        logger.info("numba cache warmed in %.1f s at %s", time.monotonic() - started, shared)
        return CacheState(shared, "warmed")


def _private(root: Path, warm: Callable[[], None], warm_source: Path | None, reason: str) -> CacheState:
    """A directory only this process uses: a copy of a complete shared cache, or an empty one."""
    private = Path(tempfile.mkdtemp(prefix="picaivid-numba-"))
    atexit.register(shutil.rmtree, private, True)
    if warm_source is not None and (warm_source / MARKER).is_file():
        shutil.copytree(warm_source, private, dirs_exist_ok=True)
        _use(root, private)
        return CacheState(private, "private-copy", reason)
    logger.warning("numba cache: %s; compiling librosa's kernels privately in %s (about 20 s)", reason, private)
    _use(root, private)
    warm()
    return CacheState(private, "private", reason)


def _use(root: Path, path: Path) -> None:
    os.environ[ROOT_ENV] = str(root)
    os.environ["NUMBA_CACHE_DIR"] = str(path)
    if "numba" in sys.modules:  # numba read the old value at import; its compiler re-reads the environment
        from numba.core import config

        config.reload_config()


@contextlib.contextmanager
def _exclusive(lock_path: Path, timeout: float) -> Iterator[bool]:
    """An exclusive flock on `lock_path`, waited for at most `timeout` s; yields whether it was taken.

    The kernel releases a flock when its holder dies, so a crashed warm-up never blocks anybody.
    """
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    yield False
                    return
                time.sleep(_POLL_SECONDS)
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _writable(path: Path) -> bool:
    """Whether numba could create and write files under `path` (it checks the same way)."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            return True
    except OSError:
        return False


def _write_marker(path: Path) -> None:
    tmp = path / f"{MARKER}.{os.getpid()}"
    tmp.write_text(f"warmed by pid {os.getpid()} at {time.strftime('%Y-%m-%dT%H:%M:%S%z')}\n")
    os.replace(tmp, path / MARKER)


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "absent"


def _source_stamps(package: str) -> list[str]:
    """(path, mtime, size) of a package's sources: numba's cache index is keyed on the same stamps."""
    import importlib.util

    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return [f"{package}: not installed"]
    top = Path(next(iter(spec.submodule_search_locations)))
    stamps = []
    for source in sorted(top.rglob("*.py")):
        st = source.stat()
        stamps.append(f"{source.relative_to(top)}:{st.st_mtime_ns}:{st.st_size}")
    return [str(top), *stamps]


def main() -> int:
    """Warm the cache now: ``python -m app.media.numba_cache`` (image builds, venv set-up)."""
    from app.media.audio import warm_numba_cache

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    started = time.monotonic()
    state = warm_numba_cache()
    if state.mode != "shared" or "-v" in sys.argv[1:]:
        print(
            f"numba cache ready ({state.mode}) at {state.path} in {time.monotonic() - started:.1f} s", file=sys.stderr
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
