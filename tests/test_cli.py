"""The CLI as a person meets it: real subprocesses, real files, exit codes and one-line errors."""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from app.media.ffmpeg import probe

pytestmark = pytest.mark.slow


def picaivid(
    args: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    full_env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{cwd / 'cli.db'}",
        "LOCAL_STORAGE_PATH": str(cwd / "storage"),
        "WORK_DIR": str(cwd / "work"),
        "S3_BUCKET": "",
        # See conftest.make_settings: the OCR tests turn it on.
        "OCR_ENABLED": "false",
        **(env or {}),
    }
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _png_bomb(path: Path) -> None:
    """A valid PNG header claiming 40000 x 40000 pixels (1.6 gigapixels) with a tiny body."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", 40000, 40000, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    )


@pytest.fixture(scope="module")
def cli_listing(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from app.samples import make_sample_listing

    return make_sample_listing(
        tmp_path_factory.mktemp("cli-listing"),
        width=800,
        height=533,
        music_seconds=20,
        bpm=120.0,
        seed=5,
        rooms=["exterior", "kitchen", "bedroom_a"],
    )


#: The default 1920x1080 output, with faster x264 presets (the preset is not what these tests check).
FAST_1080P = {"OUTPUT_X264_PRESET": "veryfast", "CLIP_X264_PRESET": "ultrafast"}


def test_render_json_then_rerun_from_phase_3(tmp_path: Path, cli_listing: Any) -> None:
    """The documented default output: 1920x1080, 30 fps, H.264/AAC, poster and storyboard beside it."""
    out = tmp_path / "video" / "listing.mp4"
    out.parent.mkdir()
    res = picaivid(
        [
            "render",
            str(cli_listing.photos_dir),
            "--music",
            str(cli_listing.music_path),
            "--out",
            str(out),
            "--target-length",
            "8",
            "--json",
        ],
        tmp_path,
        env=FAST_1080P,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    report = json.loads(res.stdout)
    assert report["status"] == "completed" and report["output"] == str(out)
    assert (out.parent / "listing.storyboard.png").stat().st_size > 10_000
    assert (out.parent / "listing.poster.jpg").stat().st_size > 5_000
    info = probe(out)
    assert info.video and info.audio
    assert (info.video.width, info.video.height, info.video.fps, info.video.codec) == (1920, 1080, 30.0, "h264")
    assert info.audio.codec == "aac"
    tl = report["timeline"]
    assert abs(tl["total_duration"] - 8.0) <= 0.5 + 1e-6, "within one beat (0.5 s at 120 BPM)"
    assert {"photo", "start", "end", "motion", "transition"} <= set(tl["clips"][0])
    assert tl["clips"][0]["room"] == "exterior"
    assert tl["beats"][0] == 0.0 and len(tl["beats"]) >= 16
    assert set(report["phase_timings"]) == {"1", "2", "3", "4"}
    assert "Traceback" not in res.stderr

    rerun = picaivid(["run", str(report["job_id"]), "--from-phase", "3", "--json"], tmp_path, env=FAST_1080P)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    again = json.loads(rerun.stdout)
    assert again["phases_run"] == [3, 4] and again["phases_skipped"] == [1, 2]
    assert again["timeline"]["version"] == 2 and again["timeline"]["versions"] == [1, 2]
    renders = [c["renderer"] for c in again["timeline"]["clips"]]
    assert renders == [c["renderer"] for c in tl["clips"]]

    status = picaivid(["status", str(report["job_id"]), "--json"], tmp_path)
    assert status.returncode == 0
    assert json.loads(status.stdout)["phases"][1]["attempts"] == 1, "phase 2 ran once"


def test_broken_files_are_skipped_with_reasons(tmp_path: Path, cli_listing: Any) -> None:
    photos = tmp_path / "photos"
    shutil.copytree(cli_listing.photos_dir, photos)
    good = next((photos / "kitchen").glob("*.jpg"))
    (photos / "kitchen" / "truncated.jpg").write_bytes(good.read_bytes()[:3000])
    (photos / "notes.txt").write_text("call the agent")
    (photos / "empty.jpg").write_bytes(b"")
    _png_bomb(photos / "bomb.png")
    out = tmp_path / "out.mp4"
    res = picaivid(
        [
            "render",
            str(photos),
            "--music",
            str(cli_listing.music_path),
            "--out",
            str(out),
            "--target-length",
            "6",
            "--json",
        ],
        tmp_path,
        env={"OUTPUT_RESOLUTION": "640x360"},
    )
    assert res.returncode == 0, res.stderr[-2000:]
    report = json.loads(res.stdout)
    reasons = {s["file"]: s["reason"] for s in report["skipped_photos"]}
    assert set(reasons) == {"truncated.jpg", "notes.txt", "empty.jpg", "bomb.png"}
    assert reasons["truncated.jpg"].startswith("corrupt")
    assert reasons["notes.txt"].startswith("not_an_image")
    assert reasons["bomb.png"].startswith("too_large")
    assert out.is_file()


def test_no_usable_photo_exits_2_with_one_line(tmp_path: Path, cli_listing: Any) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "a.jpg").write_text("not really a jpeg")
    (photos / "b.txt").write_text("hello")
    res = picaivid(
        ["render", str(photos), "--music", str(cli_listing.music_path), "--out", str(tmp_path / "o.mp4")], tmp_path
    )
    assert res.returncode == 2
    lines = [ln for ln in res.stderr.splitlines() if ln.strip() and "━" not in ln and "%" not in ln]
    assert lines[-1].startswith("error:") and "no usable photo" in lines[-1]
    assert "Traceback" not in res.stderr + res.stdout


@pytest.mark.parametrize("kind", ["garbage", "silent", "short", "missing"])
def test_unusable_music_exits_2_before_any_work(tmp_path: Path, cli_listing: Any, kind: str) -> None:
    music = tmp_path / "music.mp3"
    if kind == "garbage":
        music.write_bytes(os.urandom(4096))
    elif kind == "silent":
        music = tmp_path / "silent.wav"
        sf.write(music, np.zeros(44100 * 10, dtype=np.float32), 44100)
    elif kind == "short":
        music = tmp_path / "short.wav"
        t = np.arange(44100) / 44100
        sf.write(music, (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 44100)
    res = picaivid(
        ["render", str(cli_listing.photos_dir), "--music", str(music), "--out", str(tmp_path / "o.mp4"), "--json"],
        tmp_path,
    )
    assert res.returncode == 2, res.stderr
    assert json.loads(res.stdout)["status"] == "failed"
    err_lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(err_lines) == 1 and err_lines[0].startswith("error:")
    assert "Traceback" not in res.stderr
    assert not (tmp_path / "storage" / "jobs").exists(), "nothing was ingested"


def test_unknown_job_and_bad_phase(tmp_path: Path) -> None:
    res = picaivid(["status", "999"], tmp_path)
    assert res.returncode == 2 and "job 999 does not exist" in res.stderr
    res = picaivid(["run", "999", "--from-phase", "3", "--json"], tmp_path)
    assert res.returncode == 2 and json.loads(res.stdout)["error"] == "job 999 does not exist"
    res = picaivid(["run", "1", "--from-phase", "7"], tmp_path)
    assert res.returncode == 2 and "Traceback" not in res.stderr


def test_render_without_music_has_no_audio_track(tmp_path: Path, cli_listing: Any) -> None:
    out = tmp_path / "silent.mp4"
    res = picaivid(
        ["render", str(cli_listing.photos_dir), "--out", str(out), "--target-length", "6", "--json"],
        tmp_path,
        env={"OUTPUT_RESOLUTION": "640x360", "DEFAULT_BPM": "100"},
    )
    assert res.returncode == 0, res.stderr[-2000:]
    report = json.loads(res.stdout)
    assert report["timeline"]["beat_source"] == "default_bpm" and report["timeline"]["tempo"] == 100
    info = probe(out)
    assert info.audio is None and info.video is not None
    for clip in report["timeline"]["clips"]:
        assert abs(clip["start"] / 0.6 - round(clip["start"] / 0.6)) < 1e-3, "cuts on the 100 BPM grid"


def test_db_upgrade_command(tmp_path: Path) -> None:
    res = picaivid(["db", "upgrade"], tmp_path)
    assert res.returncode == 0 and "database at revision" in res.stdout


def test_no_beat_sync_cuts_on_the_default_grid_with_music(tmp_path: Path, cli_listing: Any) -> None:
    out = tmp_path / "steady.mp4"
    res = picaivid(
        [
            "render",
            str(cli_listing.photos_dir),
            "--music",
            str(cli_listing.music_path),
            "--out",
            str(out),
            "--target-length",
            "6",
            "--no-beat-sync",
            "--json",
        ],
        tmp_path,
        env={"OUTPUT_RESOLUTION": "640x360", "DEFAULT_BPM": "90"},
    )
    assert res.returncode == 0, res.stderr[-2000:]
    tl = json.loads(res.stdout)["timeline"]
    assert tl["beat_source"] == "default_bpm" and tl["tempo"] == 90
    assert all(abs(c["start"] / (60 / 90) - round(c["start"] / (60 / 90))) < 1e-3 for c in tl["clips"])
    assert probe(out).audio is not None, "the music still plays"
