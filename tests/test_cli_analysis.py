"""`picaivid analyze` and `picaivid beats`: the analysis on its own, as a person and a machine meet it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from PIL import Image

from tests.test_cli import picaivid

pytestmark = pytest.mark.slow

PHOTO_KEYS = {
    "file",
    "is_exterior",
    "exterior_probability",
    "room_label",
    "room_label_confidence",
    "room_label_source",
    "cluster",
    "hero",
    "quality",
    "text_regions",
}


@pytest.fixture(scope="module")
def listing(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from app.samples import make_sample_listing

    return make_sample_listing(
        tmp_path_factory.mktemp("analyze-listing"),
        width=800,
        height=533,
        music_seconds=16,
        bpm=120.0,
        seed=11,
        rooms=["exterior", "kitchen", "bedroom_a"],
        workers=1,
    )


def _stamp_banner(path: Path, text: str) -> None:
    """Burn a watermark banner into a photo, as MLS exports do."""
    rgb = np.asarray(Image.open(path).convert("RGB")).copy()
    h, w = rgb.shape[:2]
    cv2.rectangle(rgb, (0, h - 46), (w, h), (255, 255, 255), -1)
    cv2.putText(rgb, text, (14, h - 14), cv2.FONT_HERSHEY_SIMPLEX, 0.9, (20, 20, 20), 2, cv2.LINE_AA)
    Image.fromarray(rgb).save(path, quality=95)


def test_analyze_json_lists_every_photo_with_its_findings(tmp_path: Path, listing: Any) -> None:
    photos = sorted(listing.photos_dir.rglob("*.jpg"))
    _stamp_banner(photos[0], "CALL 555 0123 EXAMPLE REALTY")
    res = picaivid(["analyze", str(listing.photos_dir), "--json"], tmp_path, env={"OCR_ENABLED": "true"})
    assert res.returncode == 0, res.stderr[-2000:]
    report = json.loads(res.stdout)
    found = report["photos"]
    assert len(found) == len(photos)
    for p in found:
        assert set(p) >= PHOTO_KEYS, set(PHOTO_KEYS) - set(p)
        assert p["room_label_source"] == "backend", "the folder's label wins"
        assert p["room_label_confidence"] == 1.0
        assert 0.0 <= p["exterior_probability"] <= 1.0
        assert p["cluster"] is not None
    exteriors = [p for p in found if p["room_label"] == "exterior"]
    assert exteriors and all(p["is_exterior"] for p in exteriors)
    # One hero per room cluster.
    clusters = {p["cluster"] for p in found}
    assert sum(p["hero"] for p in found) == len(clusters)
    stamped = next(p for p in found if p["file"].endswith(photos[0].name))
    texts = " ".join(r["text"] for r in stamped["text_regions"]).upper()
    assert "555" in texts and "REALTY" in texts, stamped["text_regions"]
    box = stamped["text_regions"][0]["box"]
    assert box[1] > 0.8, "the banner is at the bottom of the photo"
    assert report["components"]["models"]["ocr"]["loaded"]


def test_analyze_table_and_ignore_folder_labels(tmp_path: Path, listing: Any) -> None:
    res = picaivid(["analyze", str(listing.photos_dir), "--ignore-folder-labels"], tmp_path, env={"COLUMNS": "160"})
    assert res.returncode == 0, res.stderr[-2000:]
    assert "exterior" in res.stdout and "hero" in res.stdout
    assert "picaivid run" in res.stderr
    as_json = picaivid(["analyze", str(listing.photos_dir), "--ignore-folder-labels", "--json"], tmp_path)
    sources = {p["room_label_source"] for p in json.loads(as_json.stdout)["photos"]}
    assert "backend" not in sources and sources, sources


def test_analyze_bad_folder_is_one_line(tmp_path: Path) -> None:
    res = picaivid(["analyze", str(tmp_path / "nope"), "--json"], tmp_path)
    assert res.returncode == 2
    assert "Traceback" not in res.stderr
    assert "is not a folder" in json.loads(res.stdout)["error"]


def test_beats_json_and_plot(tmp_path: Path, listing: Any) -> None:
    plot = tmp_path / "grid.png"
    res = picaivid(["beats", str(listing.music_path), "--json", "--plot", str(plot)], tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    report = json.loads(res.stdout)
    assert {"tempo", "meter", "beats", "downbeats", "confidence", "source"} <= set(report)
    assert report["tempo"] == pytest.approx(120.0, rel=0.04)
    assert report["meter"] == "4/4"
    beats = np.array(report["beats"])
    assert np.allclose(np.diff(beats), 0.5, atol=0.03), "a beat every 0.5 s"
    assert set(report["downbeats"]) <= set(report["beats"])
    assert report["confidence"] > 0.5
    with Image.open(plot) as img:
        assert img.size[0] == 1600 and img.size[1] > 100
    table = picaivid(["beats", str(listing.music_path)], tmp_path)
    assert table.returncode == 0 and "BPM" in table.stdout and "downbeat" in table.stdout


@pytest.mark.parametrize("bad", ["missing", "not_audio", "plot_txt"])
def test_beats_bad_input_is_one_line(tmp_path: Path, listing: Any, bad: str) -> None:
    if bad == "missing":
        args = ["beats", str(tmp_path / "none.wav")]
    elif bad == "not_audio":
        junk = tmp_path / "junk.mp3"
        junk.write_bytes(b"not audio at all" * 100)
        args = ["beats", str(junk)]
    else:
        args = ["beats", str(listing.music_path), "--plot", str(tmp_path / "grid.txt")]
    res = picaivid([*args, "--json"], tmp_path)
    assert res.returncode == 2, (res.stdout, res.stderr[-1000:])
    assert "Traceback" not in res.stderr
    assert json.loads(res.stdout)["error"]
