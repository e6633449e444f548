"""numba's cache is never read while another process writes it (numba#10128 / librosa#1998).

Four processes compiling librosa's kernels into one empty cache directory poison it: in 11 of 12
launches here every process died with SIGSEGV, and a poisoned cache kills every later process too.
`test_cold_cache_four_processes_at_once_never_crash` reproduces exactly that situation; without
`app.media.numba_cache` it fails. The other tests pin the locking logic with a stand-in warm-up (pure
logic, no compiling), and the last two tests check that the
suite's own configuration turns a crash or a hang into a named failure instead of a hung run.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.media import numba_cache
from app.samples import synthesize_music

REPO = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------------------------------------
# the real thing: cold caches, several processes at once
# ---------------------------------------------------------------------------------------------

_ANALYSE = textwrap.dedent(
    """
    import json, sys
    from app.media.audio import analyze_music, load_librosa, warm_numba_cache

    state = warm_numba_cache()
    grid = analyze_music(sys.argv[1])
    if len(sys.argv) > 2:  # what scripts/check_render.py measures renders with
        import numpy as np
        load_librosa().onset.onset_detect(y=np.zeros(22050 * 2, dtype=np.float32), sr=22050, hop_length=64)
    print(json.dumps({"mode": state.mode, "path": str(state.path), "tempo": grid.tempo, "source": grid.source}))
    """
)


def _launch(script: Path, root: Path, tracks: list[list[str]]) -> list[subprocess.Popen[str]]:
    env = {k: v for k, v in os.environ.items() if k != numba_cache.ROOT_ENV}
    env["NUMBA_CACHE_DIR"] = str(root)
    return [
        subprocess.Popen(
            [sys.executable, str(script), *args],
            cwd=REPO,
            env=env,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for args in tracks
    ]


def _collect(procs: list[subprocess.Popen[str]], timeout: float = 300) -> list[dict]:
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=timeout)
        assert proc.returncode == 0, f"process exited {proc.returncode} (-11 is SIGSEGV): {err[-1500:]}"
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def tracks(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("tracks")
    synthesize_music(folder / "beat.wav", bpm=112, seconds=10)
    synthesize_music(folder / "beat.mp3", bpm=96, seconds=10, seed=3)
    import numpy as np
    import soundfile as sf

    sf.write(folder / "noise.wav", np.random.default_rng(0).normal(0, 0.2, 22050 * 8).astype(np.float32), 22050)
    return {"beat": folder / "beat.wav", "mp3": folder / "beat.mp3", "noise": folder / "noise.wav"}


def test_cold_cache_four_processes_at_once_never_crash(tmp_path: Path, tracks: dict[str, Path]) -> None:
    script = tmp_path / "analyse.py"
    script.write_text(_ANALYSE)
    for round_ in range(3):
        root = tmp_path / f"cold-{round_}"  # empty: nobody has compiled anything here
        results = _collect(_launch(script, root, [[str(tracks["beat"])]] * 4))
        assert all(abs(r["tempo"] - 112) < 1 for r in results), results
        modes = sorted(r["mode"] for r in results)
        # Exactly one process compiled; the other three waited on the lock and loaded its cache.
        assert modes == ["shared", "shared", "shared", "warmed"], modes
        assert len({r["path"] for r in results}) == 1

    # Warm now: four processes on other inputs (mp3, a pulse-less track, onset detection) load the cache
    # and never write to it, so no kernel is ever compiled outside the lock.
    before = _snapshot(root)
    assert any(name.endswith(".nbc") for name in before)
    results = _collect(
        _launch(
            script,
            root,
            [[str(tracks["beat"])], [str(tracks["mp3"])], [str(tracks["noise"])], [str(tracks["beat"]), "onsets"]],
        )
    )
    assert [r["mode"] for r in results] == ["shared"] * 4
    assert abs(results[1]["tempo"] - 96) < 1 and results[2]["source"] == "librosa_fallback"
    assert _snapshot(root) == before


# ---------------------------------------------------------------------------------------------
# the locking logic, with a stand-in warm-up
# ---------------------------------------------------------------------------------------------


class _Warm:
    """Counts calls and records the cache directory numba was pointed at while warming."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def __call__(self) -> None:
        self.calls.append(os.environ["NUMBA_CACHE_DIR"])
        Path(os.environ["NUMBA_CACHE_DIR"], "kernel.nbc").write_text("compiled")


@pytest.fixture
def fresh(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """A process that has not prepared its cache yet, with NUMBA_CACHE_DIR at an empty root."""
    root = tmp_path / "numba"
    monkeypatch.setattr(numba_cache, "_state", None)
    monkeypatch.delenv(numba_cache.ROOT_ENV, raising=False)
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(root))
    yield root
    # The env is restored by monkeypatch; point numba's config back at it too.
    monkeypatch.undo()
    from numba.core import config

    config.reload_config()


def _reset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(numba_cache, "_state", None)


def test_cold_cache_is_warmed_once_then_only_loaded(fresh: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    warm = _Warm()
    state = numba_cache.prepare(warm)
    shared = fresh / numba_cache.cache_key()
    assert state.mode == "warmed" and state.path == shared
    assert warm.calls == [str(shared)] and (shared / numba_cache.MARKER).is_file()
    assert os.environ["NUMBA_CACHE_DIR"] == str(shared)
    assert numba_cache.prepare(warm) is state  # once per process

    _reset(monkeypatch)  # another process
    assert numba_cache.prepare(warm).mode == "shared"
    assert len(warm.calls) == 1
    # A child process finds the same root, not a directory nested inside the keyed one.
    assert os.environ[numba_cache.ROOT_ENV] == str(fresh) and numba_cache.cache_root() == fresh


def test_leftovers_of_a_crashed_warm_up_are_wiped_first(fresh: Path) -> None:
    shared = fresh / numba_cache.cache_key()
    shared.mkdir(parents=True)
    (shared / "guf-beat.half-written.nbc").write_text("poison")
    numba_cache.prepare(_Warm())
    assert not (shared / "guf-beat.half-written.nbc").exists()
    assert (shared / "kernel.nbc").is_file() and (shared / numba_cache.MARKER).is_file()


def _hold_lock(root: Path) -> int:
    root.mkdir(parents=True, exist_ok=True)
    fd = os.open(root / f"{numba_cache.cache_key()}.lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)  # a separate open file description: conflicts like another process
    return fd


def test_waits_for_another_warm_up_then_loads_its_cache(fresh: Path) -> None:
    fd = _hold_lock(fresh)
    shared = fresh / numba_cache.cache_key()

    def other_process_finishes() -> None:
        time.sleep(1.0)
        shared.mkdir(parents=True, exist_ok=True)
        (shared / numba_cache.MARKER).write_text("done")
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)

    threading.Thread(target=other_process_finishes).start()
    warm = _Warm()
    state = numba_cache.prepare(warm, timeout=30)
    assert state.mode == "shared" and warm.calls == []


def test_a_lock_held_too_long_means_a_private_cache_not_a_hang(fresh: Path) -> None:
    fd = _hold_lock(fresh)
    try:
        warm = _Warm()
        started = time.monotonic()
        state = numba_cache.prepare(warm, timeout=0.5)
        assert time.monotonic() - started < 10
        assert state.mode == "private" and fresh not in state.path.parents
        assert warm.calls == [str(state.path)]
    finally:
        os.close(fd)


def test_unwritable_root_compiles_privately(fresh: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(blocker / "numba"))
    warm = _Warm()
    state = numba_cache.prepare(warm)
    assert state.mode == "private" and "not writable" in state.reason
    assert warm.calls == [str(state.path)] and (state.path / "kernel.nbc").is_file()


def test_read_only_warm_cache_is_copied_not_used_in_place(fresh: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Numba silently skips a cache directory it cannot write and falls back to librosa's shared
    # __pycache__, so a read-only warm cache (an image layer) is copied into a private directory.
    numba_cache.prepare(_Warm())
    _reset(monkeypatch)
    monkeypatch.setattr(numba_cache, "_writable", lambda path: fresh not in [path, *path.parents])
    warm = _Warm()
    state = numba_cache.prepare(warm)
    assert state.mode == "private-copy" and warm.calls == []
    assert (state.path / "kernel.nbc").read_text() == "compiled"


def test_warm_up_may_use_librosa_itself(fresh: Path) -> None:
    inner: list[str] = []
    state = numba_cache.prepare(lambda: inner.append(numba_cache.prepare(_Warm()).mode))
    assert state.mode == "warmed" and inner == ["warming"]


def test_key_follows_what_numba_validates(monkeypatch: pytest.MonkeyPatch) -> None:
    key = numba_cache.cache_key()
    assert key == numba_cache.cache_key() and key.startswith("librosa-")
    monkeypatch.setenv("NUMBA_CPU_NAME", "generic")
    assert numba_cache.cache_key() != key


# ---------------------------------------------------------------------------------------------
# the suite's own safety net
# ---------------------------------------------------------------------------------------------


def _run_suite(suite: Path) -> tuple[subprocess.CompletedProcess[str], float]:
    """pytest on `suite` the way scripts/test.sh runs it, with the project's configuration."""
    started = time.monotonic()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-n",
            "2",
            "--dist",
            "loadfile",
            "-p",
            "no:cacheprovider",
            "-c",
            str(REPO / "pyproject.toml"),
            "--rootdir",
            str(suite),
            "-o",
            "timeout=5",
            str(suite),
        ],
        cwd=suite,
        capture_output=True,
        text=True,
        timeout=240,
    )
    return proc, time.monotonic() - started


def _ok_files(suite: Path, n: int) -> None:
    suite.mkdir()
    for i in range(n):
        (suite / f"test_ok_{i}.py").write_text("import time\ndef test_ok():\n    time.sleep(0.2)\n")


def test_crashing_tests_end_the_run_and_are_named(tmp_path: Path) -> None:
    """The run that hung: workers that had finished several files, then crashed three times
    (pytest-xdist#1378). With the project's configuration it ends at once, naming the test."""
    suite = tmp_path / "suite"
    _ok_files(suite, 8)
    for i in range(3):
        body = f"def test_segfault_{i}():\n    os.kill(os.getpid(), signal.SIGSEGV)\n"
        (suite / f"test_z_crash_{i}.py").write_text("import os, signal\ndef test_fine(): pass\n" + body)
    proc, seconds = _run_suite(suite)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and seconds < 200, out[-3000:]
    assert "crashed while running" in out and "::test_segfault_" in out, out[-3000:]


def test_a_hanging_test_is_stopped_and_named(tmp_path: Path) -> None:
    suite = tmp_path / "suite"
    _ok_files(suite, 3)
    (suite / "test_hang.py").write_text("import time\ndef test_hangs():\n    time.sleep(600)\n")
    proc, seconds = _run_suite(suite)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and seconds < 200, out[-3000:]
    assert "crashed while running 'test_hang.py::test_hangs'" in out, out[-3000:]
