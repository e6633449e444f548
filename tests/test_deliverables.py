"""Every cut a listing needs from one timeline: formats framed from the photos, branded and MLS-unbranded
variants (checked by OCR), a voice-over with captions, loudness per deliverable, cuts on beats."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from app.media.ffmpeg import measure_loudness, probe
from tests.test_cli import picaivid

pytestmark = pytest.mark.slow

LISTING = {
    "address": "42 Maple Street, Springfield",
    "price": "$525,000",
    "beds": 3,
    "baths": 2,
    "sqft": 1850,
    "headline": "Sunny family home",
    "agent_name": "Jane Doe",
    "agent_phone": "555-201-7788",
    "agent_email": "jane@example.com",
    "brokerage": "Example Realty",
}
BANNER = "CALL 555 201 7788 EXAMPLE REALTY"
SIZES = {"16x9": (640, 360), "9x16": (360, 640)}


def _letters(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


def _frame(path: Path, t: float) -> np.ndarray:
    from app.media.ffmpeg import run_ffmpeg

    proc = run_ffmpeg(
        ["-ss", f"{t:.3f}", "-i", str(path), "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
        what="test frame",
    )
    info = probe(path)
    assert info.video is not None
    return np.frombuffer(proc.stdout, np.uint8).reshape(info.video.height, info.video.width, 3)


def _ocr(frames: list[np.ndarray]) -> str:
    from app.media.text_regions import detect_text_regions
    from app.models.ocr import load_text_reader

    reader = load_text_reader()
    return " ".join(r.text for f in frames for r in detect_text_regions(f, reader))


def _stamp(path: Path) -> None:
    rgb = np.asarray(Image.open(path).convert("RGB")).copy()
    h, w = rgb.shape[:2]
    cv2.rectangle(rgb, (0, h - 50), (w, h), (255, 255, 255), -1)
    cv2.putText(rgb, BANNER, (12, h - 16), cv2.FONT_HERSHEY_SIMPLEX, 0.85, (15, 15, 15), 2, cv2.LINE_AA)
    Image.fromarray(rgb).save(path, quality=95)


def _voiceover(path: Path) -> None:
    from tests.test_voiceover import Espeak, _join

    speech = Espeak().say(
        "Welcome to this beautiful home. The kitchen is bright and the garden is sunny.", words_per_minute=140
    )
    spoken = _join(1.0, speech, 1.0)
    sf.write(path, spoken.samples, 16000)


@pytest.fixture(scope="module")
def delivered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    pytest.importorskip("espeakng_loader")
    from app.samples import make_sample_listing

    root = tmp_path_factory.mktemp("deliverables")
    sample = make_sample_listing(
        root / "sample", width=960, height=640, music_seconds=20, bpm=120.0, seed=9,
        rooms=["exterior", "kitchen", "bedroom_a"], workers=1,
    )  # fmt: skip
    _stamp(next(sample.photos_dir.glob("exterior/*.jpg")))
    (root / "listing.json").write_text(json.dumps(LISTING))
    _voiceover(root / "vo.wav")
    out = root / "out"
    res = picaivid(
        [
            "render", str(sample.photos_dir), "--music", str(sample.music_path), "--out", str(out),
            "--formats", "16:9,9:16", "--variants", "branded,unbranded", "--listing", str(root / "listing.json"),
            "--voiceover", str(root / "vo.wav"), "--target-length", "10", "--json",
        ],
        root,
        env={
            "OUTPUT_RESOLUTION": "640x360",
            "OUTPUT_X264_PRESET": "veryfast",
            "CLIP_X264_PRESET": "ultrafast",
            "OCR_ENABLED": "true",
        },
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    report = json.loads(res.stdout)
    return {"report": report, "by_key": {d["key"]: d for d in report["deliverables"]}}


def test_every_format_and_variant_is_delivered_at_its_size(delivered: dict[str, Any]) -> None:
    by_key = delivered["by_key"]
    assert set(by_key) == {"16x9-branded", "16x9-unbranded", "9x16-branded", "9x16-unbranded"}
    total = delivered["report"]["timeline"]["total_duration"]
    for key, d in by_key.items():
        info = probe(d["path"])
        assert info.video is not None and info.audio is not None
        assert (info.video.width, info.video.height) == SIZES[key.split("-")[0]] == (d["width"], d["height"])
        assert info.video.codec == "h264" and info.audio.codec == "aac"
        assert info.duration == pytest.approx(total, abs=0.1)


def test_cuts_land_on_beats(delivered: dict[str, Any]) -> None:
    tl = delivered["report"]["timeline"]
    beats = np.array(tl["beats"])
    for clip in tl["clips"]:
        for t in (clip["start"], clip["end"]):
            assert np.min(np.abs(beats - t)) < 1e-3


def test_each_deliverable_is_at_its_loudness(delivered: dict[str, Any]) -> None:
    for d in delivered["by_key"].values():
        measured = measure_loudness(Path(d["path"]))
        assert measured.integrated_lufs == pytest.approx(-14.0, abs=1.0), d["key"]
        assert d["lufs"] == pytest.approx(measured.integrated_lufs, abs=0.3)


def test_branded_cuts_show_price_and_address_unbranded_no_agent(delivered: dict[str, Any]) -> None:
    by_key = delivered["by_key"]
    for fmt in ("16x9", "9x16"):
        branded = Path(by_key[f"{fmt}-branded"]["path"])
        dur = probe(branded).duration
        seen = _letters(_ocr([_frame(branded, 2.0), _frame(branded, dur - 1.0)]))
        assert "525000" in seen and "maple" in seen, (fmt, seen)
        assert "janedoe" in seen, "the branded end card names the agent"
        unbranded = Path(by_key[f"{fmt}-unbranded"]["path"])
        frames = [_frame(unbranded, t) for t in np.linspace(0.3, dur - 0.5, 8)]
        shown = _letters(_ocr(frames))
        assert "maple" in shown, "the address is allowed"
        assert "jane" not in shown and "2017788" not in shown and "examplerealty" not in shown, shown
        compliance = by_key[f"{fmt}-unbranded"]["compliance"]
        assert compliance["passed"] and compliance["agent_identity"]["ocr_checked"], compliance
        assert compliance["text_redacted"] >= 1, "the photo's banner was blurred out"
        assert compliance["opening"]["unaltered"] and compliance["opening"]["exterior"]


def test_captions_sidecars_and_burned_in_on_vertical(delivered: dict[str, Any]) -> None:
    by_key = delivered["by_key"]
    for d in by_key.values():
        vtt = Path(d["captions"])
        text = vtt.read_text()
        assert text.startswith("WEBVTT")
        assert re.search(r"\d\d:\d\d:\d\d\.\d\d\d --> \d\d:\d\d:\d\d\.\d\d\d", text)
        assert "kitchen" in text.lower()
    vertical = Path(by_key["9x16-branded"]["path"])
    cues = re.findall(r"(\d\d):(\d\d):(\d\d\.\d\d\d) --> ", Path(by_key["9x16-branded"]["captions"]).read_text())
    times = [int(h) * 3600 + int(m) * 60 + float(s) + 0.4 for h, m, s in cues]
    burned = _letters(_ocr([_frame(vertical, t) for t in times]))
    assert any(w in burned for w in ("welcome", "kitchen", "garden", "bright")), burned
    wide = Path(by_key["16x9-branded"]["path"])
    assert not any(w in _letters(_ocr([_frame(wide, t) for t in times])) for w in ("kitchen", "garden"))


def test_vertical_is_rendered_from_the_photo_not_cropped(delivered: dict[str, Any]) -> None:
    """A 9:16 frame is at least as sharp as a 9:16 crop of the 16:9 frame at the same time, upscaled."""
    by_key = delivered["by_key"]
    wide, tall = Path(by_key["16x9-unbranded"]["path"]), Path(by_key["9x16-unbranded"]["path"])
    ratios = []
    for t in (3.0, 5.0, 7.0):
        a, b = _frame(wide, t), _frame(tall, t)
        crop_w = round(a.shape[0] * 9 / 16)
        x0 = (a.shape[1] - crop_w) // 2
        up = cv2.resize(a[:, x0 : x0 + crop_w], (b.shape[1], b.shape[0]), interpolation=cv2.INTER_CUBIC)

        def sharpness(img: np.ndarray) -> float:
            return float(cv2.Laplacian(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY), cv2.CV_64F).var())

        ratios.append(sharpness(b) / max(sharpness(up), 1e-6))
    assert min(ratios) >= 1.0, ratios
