"""Bad input at the command line: output paths, job ids, hostile file names. Real subprocesses.

Findings pinned here: `--out` inside the photo folder overwrote the user's own poster.jpg and
storyboard.png (and the next render used them as photos); `--out` equal to `--music` was not refused;
an unwritable `--out` failed only after rendering; `picaivid status -1` said "No such option"; Rich
markup and terminal escape codes in file names reached the terminal; there was no `picaivid api`.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from app.samples import make_sample_listing
from tests.test_cli import picaivid

SMALL = {"OUTPUT_RESOLUTION": "640x360", "OUTPUT_X264_PRESET": "veryfast", "CLIP_X264_PRESET": "ultrafast"}


@pytest.fixture(scope="module")
def small_listing(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return make_sample_listing(
        tmp_path_factory.mktemp("bad-cli-listing"),
        width=640,
        height=427,
        music_seconds=16,
        bpm=120.0,
        seed=9,
        rooms=["exterior", "kitchen"],
        workers=1,
    )


def _photos_copy(listing: Any, dest: Path) -> Path:
    shutil.copytree(listing.photos_dir, dest)
    return dest


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _jobs_in(db: Path) -> int:
    if not db.exists():
        return 0
    import sqlite3

    with sqlite3.connect(db) as conn:
        try:
            return int(conn.execute("select count(*) from jobs").fetchone()[0])
        except sqlite3.OperationalError:
            return 0


# ---------------------------------------------------------------------------------------------
# --out
# ---------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_out_inside_the_photo_folder_never_overwrites_or_reuses(tmp_path: Path, small_listing: Any) -> None:
    photos = _photos_copy(small_listing, tmp_path / "photos")
    # The user's own poster and storyboard images, photos of the listing.
    own = next(p for p in photos.rglob("*.jpg"))
    shutil.copyfile(own, photos / "poster.jpg")
    Image.open(own).save(photos / "storyboard.png")
    before = {name: _sha(photos / name) for name in ("poster.jpg", "storyboard.png")}
    out = photos / "listing.mp4"
    args = ["render", str(photos), "--music", str(small_listing.music_path), "--out", str(out), "-t", "6", "--json"]

    first = picaivid(args, tmp_path, env=SMALL)
    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout)
    assert {name: _sha(photos / name) for name in before} == before, "an input was overwritten"
    assert report["poster"] == str(photos / "listing.poster.jpg") and Path(report["poster"]).stat().st_size > 2000
    assert report["storyboard"] == str(photos / "listing.storyboard.png")
    assert Path(report["storyboard"]).stat().st_size > 5000

    # Rendering the same folder again does not take the first render's poster/storyboard as photos.
    second = picaivid(args, tmp_path, env=SMALL)
    assert second.returncode == 0, second.stderr
    again = json.loads(second.stdout)
    used = {c["photo"] for c in again["timeline"]["clips"]} | {s["file"] for s in again["skipped_photos"]}
    assert not any(name.startswith("listing.") for name in used), used


def test_out_equal_to_the_music_is_refused_before_any_work(tmp_path: Path, small_listing: Any) -> None:
    music = tmp_path / "song.mp4"  # AAC in an MP4 container: a real music upload
    subprocess.run(
        [_ffmpeg(), "-v", "error", "-i", str(small_listing.music_path), "-c:a", "aac", str(music)], check=True
    )
    digest = _sha(music)
    result = picaivid(["render", str(small_listing.photos_dir), "--music", str(music), "--out", str(music)], tmp_path)
    assert result.returncode == 2 and "would overwrite the input" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and _sha(music) == digest
    assert _jobs_in(tmp_path / "cli.db") == 0


@pytest.mark.parametrize(
    ("out", "message"),
    [
        ("missing-folder/listing.mp4", "does not exist"),
        ("/proc/listing.mp4", "cannot write to /proc"),
        ("listing.mov", "must end in .mp4 or name a folder"),
        ("missing-folder/sub/", "does not exist"),
    ],
)
def test_unusable_out_is_refused_before_rendering(tmp_path: Path, small_listing: Any, out: str, message: str) -> None:
    (tmp_path / "a-folder.mp4").mkdir()
    started = time.monotonic()
    result = picaivid(
        ["render", str(small_listing.photos_dir), "--music", str(small_listing.music_path), "--out", out], tmp_path
    )
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert _jobs_in(tmp_path / "cli.db") == 0, "a job was created for an --out that cannot work"
    assert time.monotonic() - started < 60


def _ffmpeg() -> str:
    from app.media.ffmpeg import ffmpeg_exe

    return ffmpeg_exe()


# ---------------------------------------------------------------------------------------------
# job ids
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [["status", "-1"], ["status", "0"], ["run", "-7"], ["status", str(2**31)], ["status", str(2**63)]],
)
def test_bad_job_ids_get_a_clear_error(tmp_path: Path, args: list[str]) -> None:
    result = picaivid(args, tmp_path)
    assert result.returncode == 2, result.stderr
    assert "job id must be a whole number from 1 to 2147483647" in result.stderr, result.stderr
    assert "No such option" not in result.stderr and "Traceback" not in result.stderr


def test_enqueue_rejects_a_negative_job_id(tmp_path: Path) -> None:
    result = picaivid(["enqueue", "-1"], tmp_path, env={"SQS_QUEUE_URL": "http://127.0.0.1:9/q"})
    assert result.returncode == 2 and "job id must be a whole number" in result.stderr, result.stderr


def test_a_job_id_that_is_not_a_number(tmp_path: Path) -> None:
    result = picaivid(["status", "abc"], tmp_path, env={"COLUMNS": "200"})
    assert result.returncode == 2 and "Invalid value for 'job_id'" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


# ---------------------------------------------------------------------------------------------
# hostile file names reach the terminal as text
# ---------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_markup_and_escape_codes_in_file_names_are_printed_literally(tmp_path: Path, small_listing: Any) -> None:
    photos = _photos_copy(small_listing, tmp_path / "photos")
    (photos / "[bold]kitchen[red].jpg").write_text("not a picture")
    (photos / "evil\x1b[31mred\x1b]0;title\x07.jpg").write_text("not a picture either")
    result = picaivid(
        ["render", str(photos), "--music", str(small_listing.music_path), "--out", str(tmp_path / "o.mp4"), "-t", "5"],
        tmp_path,
        env={**SMALL, "COLUMNS": "400"},
    )
    assert result.returncode == 0, result.stderr
    assert "[bold]kitchen[red].jpg" in result.stderr, result.stderr
    assert "\x1b" not in result.stderr and "\x07" not in result.stderr
    assert "evil\\x1b[31mred\\x1b]0;title\\x07.jpg" in result.stderr, result.stderr


def test_shown_escapes_control_characters_and_markup() -> None:
    from app.cli import shown

    assert shown("[bold]x[/]") == "\\[bold]x\\[/]"
    assert shown("a\x1b[2Jb\x9bc\x00d\x7f") == "a\\x1b[2Jb\\x9bc\\x00d\\x7f"  # "[2J" is no Rich tag
    assert shown("Küche 東京 🏠") == "Küche 東京 🏠"


# ---------------------------------------------------------------------------------------------
# picaivid api
# ---------------------------------------------------------------------------------------------


def test_picaivid_api_serves_the_control_api(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'api.db'}",
        "LOCAL_STORAGE_PATH": str(tmp_path / "storage"),
        "WORK_DIR": str(tmp_path / "work"),
        "API_KEY": "k",
        "S3_BUCKET": "",
        "SQS_QUEUE_URL": "",
    }
    import os

    proc = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "api", "--port", str(port)],
        cwd=tmp_path,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
                break
            except httpx.TransportError:
                assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
                time.sleep(0.3)
        else:
            raise AssertionError("picaivid api did not start")
        assert health.status_code == 200
        assert httpx.get(f"http://127.0.0.1:{port}/internal/jobs", timeout=5).status_code == 401
        assert httpx.get(f"http://127.0.0.1:{port}/internal/jobs", headers={"X-API-Key": "k"}).status_code == 200
    finally:
        proc.terminate()
        proc.wait(timeout=20)
