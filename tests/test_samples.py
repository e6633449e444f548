"""The synthetic listing generator: layout, determinism, and the properties the pipeline relies on.

The listing is only useful as a test input if its ground truth is *true* of the files: beats must be
audible where the JSON says, and photos of one room must be linkable by feature matching while photos
of different rooms are not. These tests check exactly that, on the shared `small_listing`
(640x427, 24 s at 112 BPM, seed 3).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import runpy
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import soundfile as sf
from scipy import signal

from app.media.ffmpeg import decode_audio, probe
from app.samples import ROOM_GROUPS, ROOM_LABELS, SampleListing, make_sample_listing, synthesize_music

REPO = Path(__file__).resolve().parents[1]


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def test_layout_sizes_and_ground_truth(small_listing: SampleListing) -> None:
    gt = small_listing.ground_truth
    assert json.loads(small_listing.ground_truth_path.read_text()) == gt
    photos = gt["photos"]
    assert len(photos) == 15
    assert list(gt["room_groups"]) == list(ROOM_GROUPS)
    grouped = sorted(f for files in gt["room_groups"].values() for f in files)
    assert grouped == sorted(p["file"] for p in photos)
    portraits = []
    for p in photos:
        path = small_listing.out_dir / p["file"]
        assert p["room_label"] in ROOM_LABELS
        assert path.parent == small_listing.photos_dir / p["room_label"]
        assert path.name == f"{p['room_group']}_view{p['view']}.jpg"
        assert p["is_exterior"] == (p["room_label"] in ("exterior", "outdoor"))
        img = cv2.imread(str(path))
        assert img is not None and img.shape == (p["height"], p["width"], 3)
        if p["height"] > p["width"]:
            portraits.append(p)
        else:
            assert (p["width"], p["height"]) == (640, 427)
    assert [(p["file"], p["width"], p["height"]) for p in portraits] == [
        ("photos/bathroom/bathroom_view2.jpg", 427, 640)
    ]
    # both bedrooms share a folder and are told apart only by the ground truth
    assert {p["room_group"] for p in photos if p["room_label"] == "bedroom"} == {"bedroom_a", "bedroom_b"}
    # every photo is a real picture, not a flat fill
    for p in photos:
        gray = cv2.imread(str(small_listing.out_dir / p["file"]), cv2.IMREAD_GRAYSCALE)
        assert gray is not None and float(gray.std()) > 20.0, p["file"]


def test_music_format_and_beat_grid(small_listing: SampleListing) -> None:
    music = small_listing.ground_truth["music"]
    info = sf.info(str(small_listing.music_path))
    assert (info.samplerate, info.channels, info.subtype) == (44100, 2, "PCM_16")
    assert info.frames == round(24.0 * 44100) and music["duration"] == 24.0
    data, _ = sf.read(str(small_listing.music_path))
    assert 0.5 < float(np.abs(data).max()) < 0.99  # loud, below clipping

    beats = np.array(music["beats"])
    assert music["bpm"] == 112.0 and music["file"] == "music.wav"
    assert 0.25 <= music["first_beat"] == beats[0] <= 0.5
    np.testing.assert_allclose(np.diff(beats), 60.0 / 112.0, atol=1.0 / 44100 + 1e-6)
    assert music["duration"] - 60.0 / 112.0 - 0.05 < beats[-1] < music["duration"]
    assert music["downbeats"] == music["beats"][::4]
    # sample-exact: every beat time is a whole number of samples
    np.testing.assert_allclose(beats * 44100, np.round(beats * 44100), atol=0.05)


def _onset_envelope(x: np.ndarray, sr: int) -> tuple[np.ndarray, np.ndarray]:
    """Spectral flux: summed positive change of log magnitude between 5.8 ms frames."""
    _f, t, Z = signal.stft(x, sr, nperseg=1024, noverlap=1024 - 128, boundary=None, padded=False)
    S = np.log1p(100 * np.abs(Z))
    return t[1:], np.maximum(np.diff(S, axis=1), 0).sum(axis=0)


def test_onsets_are_at_the_ground_truth_beats(small_listing: SampleListing) -> None:
    music = small_listing.ground_truth["music"]
    sr = 22050
    t, flux = _onset_envelope(decode_audio(small_listing.music_path, sample_rate=sr), sr)
    period = 60.0 / music["bpm"]
    beats = np.array([b for b in music["beats"] if b < music["duration"] - music["fade_out"]])

    def window(q: float, half: float) -> np.ndarray:
        return (t > q - half) & (t < q + half)

    # the strongest onset near each beat is at the beat (the STFT window lets it show a little early)
    offsets = np.array([t[window(b, 0.06)][np.argmax(flux[window(b, 0.06)])] - b for b in beats])
    assert np.all(np.abs(offsets) < 0.03), offsets
    # and every beat is a stronger onset than any sixteenth-note position, where nothing starts
    on_beat = np.array([flux[window(b, 0.035)].max() for b in beats])
    off_grid = np.array([flux[window(b + k * period / 4, 0.02)].max() for b in beats for k in (1, 3)])
    assert on_beat.min() > off_grid.max()
    assert np.median(on_beat) > 2.5 * np.median(off_grid)


def _inliers(a: tuple[Any, np.ndarray], b: tuple[Any, np.ndarray], matcher: cv2.BFMatcher) -> int:
    """ORB matches (ratio test, one-to-one) that agree with a RANSAC homography."""
    (ka, da), (kb, db) = a, b
    best: dict[int, Any] = {}
    for pair in matcher.knnMatch(da, db, k=2):
        if len(pair) == 2 and pair[0].distance < 0.8 * pair[1].distance:
            m = pair[0]
            if m.trainIdx not in best or m.distance < best[m.trainIdx].distance:
                best[m.trainIdx] = m
    if len(best) < 8:
        return 0
    pa = np.array([ka[m.queryIdx].pt for m in best.values()], np.float32)
    pb = np.array([kb[m.trainIdx].pt for m in best.values()], np.float32)
    H, mask = cv2.findHomography(pa, pb, cv2.RANSAC, 5.0)
    if H is None or np.linalg.det(H[:2, :2]) <= 0:  # a mirrored "homography" is a degenerate fit
        return 0
    return int(mask.sum())


def test_views_of_a_room_match_and_other_rooms_do_not(small_listing: SampleListing) -> None:
    """What room clustering needs: same-room pairs verify geometrically, cross-room pairs barely do."""
    photos = small_listing.ground_truth["photos"]
    orb = cv2.ORB.create(nfeatures=600)
    feats = {}
    for p in photos:
        gray = cv2.imread(str(small_listing.out_dir / p["file"]), cv2.IMREAD_GRAYSCALE)
        assert gray is not None
        feats[p["file"]] = orb.detectAndCompute(gray, None)
    group = {p["file"]: p["room_group"] for p in photos}
    matcher = cv2.BFMatcher(cv2.NORM_HAMMING)
    same: dict[tuple[str, str], int] = {}
    cross: dict[tuple[str, str], int] = {}
    for fa, fb in itertools.combinations(feats, 2):
        (same if group[fa] == group[fb] else cross)[(fa, fb)] = _inliers(feats[fa], feats[fb], matcher)
    assert len(same) == 1 + 3 + 3 + 1 + 1 + 1 and len(cross) == 105 - len(same)
    weakest, strongest = min(same.values()), max(cross.values())
    assert weakest >= 25, same
    assert weakest > 2 * strongest, (min(same, key=same.__getitem__), max(cross, key=cross.__getitem__))


def test_deterministic_and_rooms_render_the_same_alone(small_listing: SampleListing, tmp_path: Path) -> None:
    alone = make_sample_listing(
        tmp_path / "a",
        width=640,
        height=427,
        music_seconds=6.0,
        seed=3,
        rooms=["kitchen", "bathroom"],
        workers=1,
    )
    assert [p["room_group"] for p in alone.ground_truth["photos"]] == ["kitchen"] * 3 + ["bathroom"] * 2
    for p in alone.ground_truth["photos"]:
        assert _md5(alone.out_dir / p["file"]) == _md5(small_listing.out_dir / p["file"]), p["file"]
    other = make_sample_listing(
        tmp_path / "b", width=640, height=427, music_seconds=6.0, seed=4, rooms=["kitchen"], workers=1
    )
    assert _md5(other.out_dir / "photos/kitchen/kitchen_view1.jpg") != _md5(
        small_listing.out_dir / "photos/kitchen/kitchen_view1.jpg"
    )
    assert alone.ground_truth["music"]["beats"][:4] == small_listing.ground_truth["music"]["beats"][:4]


def test_synthesize_music_encodes_other_formats(tmp_path: Path) -> None:
    gt = synthesize_music(tmp_path / "track.mp3", bpm=120.0, seconds=4.0, seed=1, first_beat=0.5)
    assert gt["file"] == "track.mp3" and gt["beats"][:3] == [0.5, 1.0, 1.5] and gt["downbeats"] == [0.5, 2.5]
    info = probe(tmp_path / "track.mp3")
    assert info.audio is not None and info.audio.codec == "mp3"
    assert abs(info.duration - 4.0) < 0.1
    # ffmpeg trims the encoder delay, so the decoded track lines up with the WAV sample for sample
    synthesize_music(tmp_path / "track.wav", bpm=120.0, seconds=4.0, seed=1, first_beat=0.5)
    mp3, wav = decode_audio(tmp_path / "track.mp3"), decode_audio(tmp_path / "track.wav")
    n = min(len(mp3), len(wav))
    corr = np.correlate(mp3[2000 : n - 2000], wav[2000 - 50 : n - 2000 + 50], "valid")
    assert int(np.argmax(corr)) == 50


@pytest.mark.parametrize(
    "kwargs",
    [
        {"rooms": ["attic"]},
        {"rooms": []},
        {"width": 32},
    ],
)
def test_make_sample_listing_rejects_bad_arguments(tmp_path: Path, kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        make_sample_listing(tmp_path, **kwargs)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"bpm": 10.0, "seconds": 10.0},
        {"bpm": 120.0, "seconds": 1.0},
        {"bpm": 120.0, "seconds": 10.0, "suffix": ".xyz"},
    ],
)
def test_synthesize_music_rejects_bad_arguments(tmp_path: Path, kwargs: dict[str, Any]) -> None:
    suffix = kwargs.pop("suffix", ".wav")
    with pytest.raises(ValueError):
        synthesize_music(tmp_path / f"m{suffix}", **kwargs)


def test_cli_writes_a_listing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main = runpy.run_path(str(REPO / "scripts" / "make_sample_listing.py"))["main"]
    out = tmp_path / "cli"
    assert (
        main(
            [
                str(out),
                "--width",
                "192",
                "--height",
                "128",
                "--music-seconds",
                "3",
                "--bpm",
                "100",
                "--rooms",
                "exterior",
                "bathroom",
                "--workers",
                "1",
            ]
        )
        == 0
    )
    gt = json.loads((out / "ground_truth.json").read_text())
    assert [p["file"] for p in gt["photos"]] == [
        "photos/exterior/exterior_view1.jpg",
        "photos/exterior/exterior_view2.jpg",
        "photos/bathroom/bathroom_view1.jpg",
        "photos/bathroom/bathroom_view2.jpg",
    ]
    portrait = cv2.imread(str(out / "photos/bathroom/bathroom_view2.jpg"))
    assert portrait is not None and portrait.shape == (192, 128, 3)
    assert gt["music"]["bpm"] == 100.0 and (out / "music.wav").is_file()
    assert "wrote 4 photos of 2 rooms" in capsys.readouterr().out


def test_depth_sidecars_leave_the_photos_unchanged_and_true_frames_match(
    small_listing: SampleListing, tmp_path: Path
) -> None:
    from app.samples import render_true_frames

    with_depth = make_sample_listing(
        tmp_path, width=640, height=427, music_seconds=6.0, seed=3, rooms=["bedroom_b"], workers=1, depth=True
    )
    for p in with_depth.ground_truth["photos"]:
        assert _md5(with_depth.out_dir / p["file"]) == _md5(small_listing.out_dir / p["file"]), p["file"]
        depth = cv2.imread(str(with_depth.out_dir / p["depth_file"]), cv2.IMREAD_UNCHANGED)
        assert depth is not None and depth.dtype == np.uint16 and depth.shape == (p["height"], p["width"])
        assert 300 < int(np.median(depth)) < 15000  # millimetres: a room a few metres deep
    # the true frames of an unmoved camera are the photo without its sensor noise
    identity = (np.eye(3), np.zeros(3))
    truth = render_true_frames("bedroom_b", [identity], seed=3, width=640, height=427)
    assert cv2.PSNR(truth.frames[0], truth.photo) > 38
