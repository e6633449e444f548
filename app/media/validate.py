"""Check that a rendered clip is what its plan asked for, before it goes into a timeline.

Phase 2 renders a clip with the best renderer available (LTX-2 image-to-video, depth parallax, Ken
Burns) and uses this score to downgrade: a generative clip that drifted away from the photo, a black
or frozen clip, or a file with the wrong frame count or size is replaced by a safer renderer.

What is checked:

* **Container** (`probe`): H.264, `width` x `height`, `fps`, exactly round(duration * fps) frames.
* **Content** at the first, middle and last frame: each decoded frame is compared with
  `kenburns.frame_at` at the same normalised time, on grayscale images reduced to `_CMP_WIDTH` px
  (compression noise and fine detail do not matter, framing does):
  - `ncc`: plan-exact similarity, the normalised cross-correlation of the two images after a
    high-pass filter (`hp_ncc`): edges and texture, not brightness, identify a photo;
  - `ssim`: standard SSIM (Gaussian window sigma 1.5), reported for people, not used to decide:
    two different rooms with large plain walls of similar brightness can reach SSIM 0.7;
  - `match`: motion-tolerant similarity, the best normalised cross-correlation of the high-passed
    frame against the high-passed photo over positions and a range of zooms (`cv2.matchTemplate`).
    A generative renderer does not follow the plan's camera exactly; this still recognises "the
    photo, framed differently" while a drifted or hallucinated frame scores low on both.
  A frame's similarity is max(ncc, match).
* **Black frames**: mean luma below `_BLACK_LUMA` where the expected frame is clearly not dark.
* **Frozen clip**: first and last frames (nearly) identical although the plan's first and last
  frames differ.

Score: 0.5 * mean + 0.5 * min of the per-frame similarities (one bad frame matters), halved when any
hard check (container, black, frozen) fails. `passed` is true when no hard check failed and the score
is at least `PASS_SCORE`; since the halved score is below 0.5 < PASS_SCORE, passed == (score >=
PASS_SCORE) always holds, so callers may rank renderers by score alone.

Thresholds were set on real listing photos (interiors and exteriors, 640-1600 px; 16 clips, 240
wrong-photo pairings) rendered at 640x360, CRF 18: correct Ken Burns clips scored >= 0.99 (ncc
>= 0.99, match >= 0.87); clips checked against a different photo scored <= 0.32 (ncc <= 0.19,
match <= 0.35, while their SSIM reached 0.46, and 0.72 on synthetic rooms with plain walls); a
re-framed, slightly blurred view of the right photo matched >= 0.8. PASS_SCORE sits in that gap.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from app.errors import FFmpegError
from app.media.ffmpeg import probe, run_ffmpeg
from app.media.kenburns import KenBurnsCamera, frame_count, frame_t_norm
from app.media.types import MotionPlan

#: A clip passes at or above this score.
PASS_SCORE = 0.6
#: Width of the grayscale images compared (height follows the output aspect).
_CMP_WIDTH = 320
#: Motion-tolerant match: template width (px), high-pass sigma (px at that width), zoom steps.
_MATCH_WIDTH = 128
_MATCH_HIGHPASS_SIGMA = 6.0
_MATCH_SCALES = 21
#: Mean luma (0..255) under which a frame counts as black, if the expected frame's luma is above
#: `_BLACK_EXPECTED_LUMA` (a night exterior may legitimately be dark).
_BLACK_LUMA = 12.0
_BLACK_EXPECTED_LUMA = 40.0
#: Mean absolute difference (0..255, on the reduced grayscale) below which two frames are "the
#: same", and above which the plan's first and last frames count as "moving".
_FROZEN_DIFF = 1.0
_MOVING_DIFF = 4.0
#: Allowed relative fps error (probe prints rounded rates such as 29.97).
_FPS_TOLERANCE = 0.01
#: Hard failures multiply the score by this (keeps it below PASS_SCORE, keeps the ranking).
_HARD_FAILURE_FACTOR = 0.5


@dataclass
class ValidationResult:
    """Outcome of `validate_clip`. `reasons` lists every failed check, human-readable."""

    score: float
    passed: bool
    reasons: list[str] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)


def _gray_small(rgb: np.ndarray, width: int = _CMP_WIDTH) -> np.ndarray:
    """Grayscale float32, reduced (INTER_AREA) to `width` px wide."""
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    h, w = gray.shape
    if w > width:
        gray = cv2.resize(gray, (width, max(1, round(h * width / w))), interpolation=cv2.INTER_AREA)
    return gray.astype(np.float32)


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean SSIM of two same-size grayscale images (0..255), Gaussian window sigma 1.5.

    Wang et al. 2004 with the usual constants K1 = 0.01, K2 = 0.03; 1.0 means identical.
    """
    if a.shape != b.shape:
        raise ValueError(f"ssim needs equal shapes, got {a.shape} and {b.shape}")
    a = a.astype(np.float32)
    b = b.astype(np.float32)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2

    def blur(x: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(x, (11, 11), 1.5, borderType=cv2.BORDER_REFLECT)

    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a * mu_a
    var_b = blur(b * b) - mu_b * mu_b
    cov = blur(a * b) - mu_a * mu_b
    num = (2 * mu_a * mu_b + c1) * (2 * cov + c2)
    den = (mu_a * mu_a + mu_b * mu_b + c1) * (var_a + var_b + c2)
    return float(np.mean(num / den))


def _highpass(gray: np.ndarray, sigma: float = _MATCH_HIGHPASS_SIGMA) -> np.ndarray:
    """Remove the low frequencies (subtract a Gaussian blur of `sigma` px).

    Plain NCC of two unrelated interiors is often 0.6-0.7 (bright window on one side, dark floor at
    the bottom), and SSIM of two photos with large plain walls of similar brightness can reach 0.7;
    edges and texture are what identify a photo. Measured on real listing photos: a different
    framing of the right photo matches >= 0.8 after this filter, an unrelated photo <= 0.3.
    """
    return gray - cv2.GaussianBlur(gray, (0, 0), sigma)


def hp_ncc(a: np.ndarray, b: np.ndarray) -> float:
    """Normalised cross-correlation of two same-size grayscale images after `_highpass` (scaled to
    their width), -1..1: the plan-exact similarity used for the decision."""
    if a.shape != b.shape:
        raise ValueError(f"hp_ncc needs equal shapes, got {a.shape} and {b.shape}")
    sigma = _MATCH_HIGHPASS_SIGMA * a.shape[1] / _MATCH_WIDTH
    ha = _highpass(a.astype(np.float32), sigma)
    hb = _highpass(b.astype(np.float32), sigma)
    ha -= ha.mean()
    hb -= hb.mean()
    den = float(np.sqrt(np.sum(ha * ha) * np.sum(hb * hb)))
    return float(np.sum(ha * hb)) / den if den > 1e-6 else 0.0


def _match_photo(frame_gray: np.ndarray, photo_gray: np.ndarray, camera: KenBurnsCamera) -> float:
    """Best normalised cross-correlation of a frame against the photo over positions and zooms.

    The frame is reduced to `_MATCH_WIDTH` px and searched for in the photo reduced so that a window
    of width ww maps to that template width, for `_MATCH_SCALES` window widths from a third tighter
    than the plan's tightest window up to the widest window the photo holds (zoom 1.0); both are
    high-passed first. `photo_gray` is the camera's resampled source (about output size); sizes
    are reckoned in original-photo pixels.
    """
    fh, fw = frame_gray.shape
    tw = _MATCH_WIDTH
    th = max(8, round(fh * tw / fw))
    template = _highpass(cv2.resize(frame_gray, (tw, th), interpolation=cv2.INTER_AREA))
    if float(template.std()) < 0.5:  # flat frame: correlation undefined, nothing recognisable
        return 0.0
    img_h, img_w = camera.img_h, camera.img_w
    aspect = camera.width / camera.height
    widest = img_h * aspect if img_w / img_h > aspect else float(img_w)
    tightest = min(camera.r0[2], camera.r1[2]) / 1.3
    best = 0.0
    for ww in np.geomspace(tightest, widest, _MATCH_SCALES):
        k = tw / ww
        sw, sh = round(img_w * k), round(img_h * k)
        if sw < tw or sh < th:
            continue
        scaled = _highpass(cv2.resize(photo_gray, (sw, sh), interpolation=cv2.INTER_AREA))
        res = cv2.matchTemplate(scaled, template, cv2.TM_CCOEFF_NORMED)
        best = max(best, float(res.max()))
    return best


def _decode_frame(path: os.PathLike[str] | str, index: int, fps: float, width: int, height: int) -> np.ndarray | None:
    """Frame `index` as RGB, or None when nothing decodes there.

    Seeks to half a frame before the frame's timestamp: ffmpeg's accurate seek returns the first
    frame whose pts is >= the seek time, so the half-frame margin absorbs timestamp rounding.
    """
    t = max(0.0, (index - 0.5) / fps)
    proc = run_ffmpeg(
        [
            "-v",
            "error",
            "-ss",
            f"{t:.6f}",
            "-i",
            str(path),
            "-frames:v",
            "1",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "rgb24",
            "-s",
            f"{width}x{height}",
            "-",
        ],
        timeout=120,
        what=f"decoding frame {index}",
    )
    expected = width * height * 3
    if len(proc.stdout) < expected:
        return None
    return np.frombuffer(proc.stdout[:expected], dtype=np.uint8).reshape(height, width, 3)


def _finish(score: float, hard: list[str], reasons: list[str], metrics: dict[str, Any]) -> ValidationResult:
    if hard:
        score *= _HARD_FAILURE_FACTOR
    score = float(min(1.0, max(0.0, score)))
    metrics["score"] = round(score, 4)
    metrics["pass_score"] = PASS_SCORE
    passed = not hard and score >= PASS_SCORE
    if not passed and not reasons:
        reasons.append(f"score {score:.2f} below {PASS_SCORE}")
    return ValidationResult(score=score, passed=passed, reasons=reasons, metrics=metrics)


def validate_clip(
    video_path: os.PathLike[str] | str,
    source_rgb: np.ndarray,
    plan: MotionPlan,
    *,
    width: int,
    height: int,
    fps: int,
    duration: float,
) -> ValidationResult:
    """Score a rendered clip against the photo and plan it was rendered from (see module docstring).

    Never raises for a bad clip (an unreadable file scores 0 with a reason); raises ValueError only
    for bad arguments.
    """
    n_expected = frame_count(duration, fps)
    reasons: list[str] = []
    hard: list[str] = []
    metrics: dict[str, Any] = {"expected_frames": n_expected}

    try:
        info = probe(video_path)
    except FFmpegError as exc:
        return _finish(0.0, ["unreadable"], [f"cannot read clip: {exc}"], metrics)
    v = info.video
    if v is None:
        return _finish(0.0, ["no_video"], ["clip has no video stream"], metrics)
    metrics.update(codec=v.codec, width=v.width, height=v.height, fps=v.fps, frames=info.frame_count)
    if v.codec != "h264":
        hard.append("codec")
        reasons.append(f"codec {v.codec}, expected h264")
    if (v.width, v.height) != (width, height):
        hard.append("size")
        reasons.append(f"size {v.width}x{v.height}, expected {width}x{height}")
    if not v.fps or abs(v.fps - fps) > _FPS_TOLERANCE * fps:
        hard.append("fps")
        reasons.append(f"{v.fps:g} fps, expected {fps}")
    if info.frame_count != n_expected:
        hard.append("frame_count")
        reasons.append(f"{info.frame_count} frames, expected {n_expected}")
    n_avail = min(info.frame_count, n_expected)
    if n_avail <= 0:
        return _finish(0.0, [*hard, "empty"], [*reasons, "clip has no frames"], metrics)

    camera = KenBurnsCamera(source_rgb, plan, width, height)
    # The camera's resampled copy of the photo (about output size) is plenty for a 128 px template.
    photo_gray = cv2.cvtColor(camera.src, cv2.COLOR_RGB2GRAY).astype(np.float32)
    indices = sorted({0, (n_avail - 1) // 2, n_avail - 1})
    sims: list[float] = []
    frames_metrics: list[dict[str, Any]] = []
    got: dict[int, np.ndarray] = {}
    want: dict[int, np.ndarray] = {}
    for idx in indices:
        t_norm = frame_t_norm(idx, n_expected)
        try:
            decoded = _decode_frame(video_path, idx, v.fps or fps, width, height)
        except FFmpegError as exc:
            decoded = None
            reasons.append(f"frame {idx} failed to decode: {exc}")
        expected = _gray_small(camera.render(t_norm))
        fm: dict[str, Any] = {"index": idx, "t_norm": round(t_norm, 4)}
        if decoded is None:
            hard.append("decode")
            if not any(r.startswith(f"frame {idx} ") for r in reasons):
                reasons.append(f"frame {idx} does not decode")
            fm.update(ncc=0.0, ssim=0.0, match=0.0, similarity=0.0)
            sims.append(0.0)
            frames_metrics.append(fm)
            continue
        got_gray = _gray_small(decoded)
        got[idx], want[idx] = got_gray, expected
        c = hp_ncc(got_gray, expected)
        m = _match_photo(got_gray, photo_gray, camera)
        sim = max(0.0, c, m)
        luma, exp_luma = float(got_gray.mean()), float(expected.mean())
        fm.update(
            ncc=round(c, 4),
            ssim=round(ssim(got_gray, expected), 4),
            match=round(m, 4),
            similarity=round(sim, 4),
            luma=round(luma, 1),
            expected_luma=round(exp_luma, 1),
        )
        if luma < _BLACK_LUMA and exp_luma > _BLACK_EXPECTED_LUMA:
            hard.append("black")
            reasons.append(f"frame {idx} is black (mean luma {luma:.1f}, expected {exp_luma:.0f})")
            sim = 0.0
        sims.append(sim)
        frames_metrics.append(fm)
    metrics["frames_checked"] = frames_metrics

    first, last = indices[0], indices[-1]
    if first != last and first in got and last in got:
        got_diff = float(np.mean(np.abs(got[first] - got[last])))
        want_diff = float(np.mean(np.abs(want[first] - want[last])))
        metrics.update(first_last_diff=round(got_diff, 3), expected_first_last_diff=round(want_diff, 3))
        if got_diff < _FROZEN_DIFF and want_diff > _MOVING_DIFF:
            hard.append("frozen")
            reasons.append(
                f"clip is frozen: first and last frames are identical (diff {got_diff:.2f}) "
                f"but the plan moves (expected diff {want_diff:.1f})"
            )

    score = 0.5 * float(np.mean(sims)) + 0.5 * float(np.min(sims))
    metrics["similarity_mean"] = round(float(np.mean(sims)), 4)
    metrics["similarity_min"] = round(float(np.min(sims)), 4)
    if score < PASS_SCORE:
        worst = frames_metrics[int(np.argmin(sims))]
        reasons.append(
            f"clip does not show the planned view of the photo: score {score:.2f} < {PASS_SCORE} "
            f"(worst frame {worst['index']}: ncc {worst.get('ncc', 0):.2f}, "
            f"match {worst.get('match', 0):.2f})"
        )
    return _finish(score, hard, reasons, metrics)
