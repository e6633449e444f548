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

* **Whole-clip checks** (`temporal_checks`, every frame decoded once at `_CMP_WIDTH` px, grey):
  - `not_rigid`: 8 evenly spaced frames are mapped back to the photo by a homography (ECC started
    from the plan's window, ORB + RANSAC when that leaves a large residual); the residual against
    the warped photo tolerates `_RIGID_SLACK` px of local displacement (depth parallax) and thin
    lines (depth edges), and the worst `_RIGID_BLOCK` px block must stay under `_RIGID_MAX_BLOCK`;
  - `frozen` / `zoom_only`: the camera's measured travel (centre shift in window widths + |log zoom|)
    against the plan's; `flash`: a frame-to-frame mean-luma jump over `_FLASH_JUMP`; `flicker`:
    temporal second difference of the luma (RMS) or of a 40 px image (median); `black`: any black frame;
  - `stretched`: in the same 8 frames, 16 px blocks where the photo seen through the fitted homography
    has texture along x (or y) and the frame kept under 0.3 of it, relative to the frame's median
    ratio (so a soft encode or a zoom does not count): pixels smeared across a depth edge. Fails when
    one connected group covers > 3 % of a frame. Calibrated: 45 parallax and 9 Ken Burns clips of the
    sample rooms and synthetic rooms (push, pull, pan) reach at most 2.3 %; a 60x47 px smear of a
    textured patch at 320 px (one column or one row pulled across it) reaches 3.6-4.6 %.
  Calibrated on the sample listing (15 rooms, 1200x800, 640x360 clips, push/pull/drift/parallax
  plans): Ken Burns worst block <= 3.8, parallax <= 25.9; a pasted person-sized blob >= 33.5.
  Every failed check adds a reason "code: detail" (machine-readable code first).

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

import itertools
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


def decode_frame(path: os.PathLike[str] | str, index: int, fps: float, width: int, height: int) -> np.ndarray | None:
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


# --- temporal checks: rigid camera motion, frozen, flash, flicker, black -------------------------------

#: Frames sampled for the rigidity check (evenly spaced, first and last included).
_RIGID_SAMPLES = 8
#: Gaussian blur (px at `_CMP_WIDTH`) before residuals: compression noise and aliasing do not count.
_RIGID_BLUR = 1.2
#: Displacement (px at `_CMP_WIDTH`) a pixel may show against the fitted homography without counting
#: as changed: depth parallax moves near things against far ones by a few pixels.
_RIGID_SLACK = 4
#: Residual block size (px at `_CMP_WIDTH`): a new object shows up as a block of large residual.
_RIGID_BLOCK = 24
#: Reject when the worst block's mean residual (0..255) exceeds this ("not_rigid").
_RIGID_MAX_BLOCK = 30.0
#: Camera travel (sum over samples of centre shift in window widths plus |log zoom|): a planned move
#: of at least `_MIN_PLANNED_TRAVEL` must show at least `_FROZEN_TRAVEL_RATIO` of it ("frozen").
_MIN_PLANNED_TRAVEL = 0.03
_FROZEN_TRAVEL_RATIO = 0.25
#: A planned pan/tilt (centre travel >= `_MIN_PLANNED_SHIFT` window widths) whose measured centre
#: travel is below `_ZOOM_ONLY_RATIO` of it while the zoom changes counts as "zoom_only".
_MIN_PLANNED_SHIFT = 0.08
_ZOOM_ONLY_RATIO = 0.3
#: Frame-to-frame mean-luma jump (0..255) that counts as a flash ("flash").
_FLASH_JUMP = 8.0
#: Flicker: RMS of the luma series' second difference (0..255), and mean temporal second difference of
#: a heavily reduced image, above which the clip flickers ("flicker").
_FLICKER_LUMA = 1.5
_FLICKER_PIXEL = 4.0
_FLICKER_WIDTH = 40
#: ORB fallback when the plan-guided fit leaves a large residual (a generative camera went elsewhere).
#: Stretched regions (pixels smeared across a depth edge, a warp that pulled a patch long): blocks of
#: `_STRETCH_BLOCK` px where the photo, seen through the fitted homography, has texture (mean |LoG|
#: >= `_STRETCH_MIN_TEXTURE`) but the frame keeps less than `_STRETCH_KEEP` of it in the direction
#: across the smear. A clip fails when one connected group of such blocks covers more than
#: `_STRETCH_MAX_AREA` of a sampled frame.
_STRETCH_BLOCK = 16
_STRETCH_MIN_TEXTURE = 2.0
_STRETCH_KEEP = 0.3
_STRETCH_MAX_AREA = 0.03
_ORB_FEATURES = 800
_ORB_MIN_INLIERS = 15


def _decode_gray_all(path: os.PathLike[str] | str, width: int, height: int, n_max: int) -> np.ndarray:
    """Every frame as grayscale uint8 reduced to `_CMP_WIDTH` px wide (ffmpeg area scaler), (N, h, w)."""
    sw = min(_CMP_WIDTH, width)
    sh = max(8, round(height * sw / width))
    proc = run_ffmpeg(
        [
            "-v",
            "error",
            "-i",
            str(path),
            "-an",
            "-frames:v",
            str(n_max),
            "-vf",
            f"scale={sw}:{sh}:flags=area,format=gray",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "gray",
            "-",
        ],
        timeout=300,
        what="decoding the clip",
    )
    n = len(proc.stdout) // (sw * sh)
    return np.frombuffer(proc.stdout[: n * sw * sh], dtype=np.uint8).reshape(n, sh, sw)


class _PhotoRef:
    """The photo, reduced so the plan's tightest window is about `_CMP_WIDTH` px wide, and the maps
    between reduced frame pixels and reduced photo pixels (the plan's, and fitted homographies)."""

    def __init__(self, camera: KenBurnsCamera, frame_w: int, frame_h: int) -> None:
        self.camera = camera
        self.frame_w, self.frame_h = frame_w, frame_h
        tightest = min(camera.r0[2], camera.r1[2])
        self.k = frame_w / tightest  # original-photo px -> reduced photo px
        pw, ph = max(8, round(camera.img_w * self.k)), max(8, round(camera.img_h * self.k))
        gray = cv2.cvtColor(camera.src, cv2.COLOR_RGB2GRAY)
        self.gray = cv2.resize(gray, (pw, ph), interpolation=cv2.INTER_AREA).astype(np.float32)
        self.blur = cv2.GaussianBlur(self.gray, (0, 0), _RIGID_BLUR)
        self._orb: tuple[Any, Any] | None = None

    def plan_h(self, t_norm: float) -> np.ndarray:
        """3x3 map from reduced-frame pixel indices to reduced-photo pixel indices on the plan's path."""
        x0, y0, w, h = self.camera.rect_at(t_norm)
        sx, sy = w / self.frame_w * self.k, h / self.frame_h * self.k
        tx = (x0 + 0.5 * w / self.frame_w) * self.k - 0.5
        ty = (y0 + 0.5 * h / self.frame_h) * self.k - 0.5
        return np.array([[sx, 0, tx], [0, sy, ty], [0, 0, 1]], dtype=np.float64)

    def orb(self) -> tuple[Any, Any]:
        if self._orb is None:
            det = cv2.ORB.create(_ORB_FEATURES)
            self._orb = det.detectAndCompute(self.gray.astype(np.uint8), None)
        return self._orb

    def sharp_view(self, hmat: np.ndarray) -> np.ndarray:
        """The photo itself (not blurred) seen through `hmat` (frame -> photo)."""
        flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
        size = (self.frame_w, self.frame_h)
        return cv2.warpPerspective(self.gray, hmat, size, flags=flags, borderMode=cv2.BORDER_REPLICATE)

    def view(self, hmat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The blurred photo seen through `hmat` (frame -> photo) and the mask of frame pixels it covers."""
        size = (self.frame_w, self.frame_h)
        flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
        warped = cv2.warpPerspective(self.blur, hmat, size, flags=flags, borderMode=cv2.BORDER_REPLICATE)
        ones = np.ones(self.gray.shape, np.uint8)
        mask = cv2.warpPerspective(ones, hmat, size, flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP)
        mask = cv2.erode(mask, np.ones((5, 5), np.uint8))
        return warped, mask.astype(bool)


def _tolerant_residual(frame: np.ndarray, photo: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """|frame - photo| after a gain/offset match, where each side may come from anywhere within
    `_RIGID_SLACK` px in the other (a grey-level min/max filter): parallax passes, new content does not."""
    if int(mask.sum()) < 64:
        return np.full(frame.shape, 255.0, np.float32)
    f, p = frame[mask], photo[mask]
    gain = float(np.clip(np.std(p) / max(float(np.std(f)), 1e-3), 0.7, 1.4))
    frame = (frame - float(np.mean(f))) * gain + float(np.mean(p))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * _RIGID_SLACK + 1,) * 2)
    lo, hi = cv2.erode(photo, kernel), cv2.dilate(photo, kernel)
    d1 = np.maximum(frame - hi, lo - frame)
    flo, fhi = cv2.erode(frame, kernel), cv2.dilate(frame, kernel)
    d2 = np.maximum(photo - fhi, flo - photo)
    res = np.maximum(np.maximum(d1, d2), 0.0)
    res[~mask] = 0.0
    # Thin residual lines (depth edges, disocclusion seams) are parallax, not content: open them away.
    return cv2.morphologyEx(res, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))


def _block_max(res: np.ndarray, mask: np.ndarray) -> tuple[float, float]:
    """(worst block mean residual over blocks at least half valid, 95th percentile of valid pixels)."""
    b = _RIGID_BLOCK
    h, w = (res.shape[0] // b) * b, (res.shape[1] // b) * b
    r = res[:h, :w].reshape(h // b, b, w // b, b).sum(axis=(1, 3))
    m = mask[:h, :w].reshape(h // b, b, w // b, b).sum(axis=(1, 3)).astype(np.float32)
    ok = m >= 0.5 * b * b
    worst = float((r[ok] / m[ok]).max()) if ok.any() else 255.0
    p95 = float(np.percentile(res[mask], 95)) if mask.any() else 255.0
    return worst, p95


def _directional_texture(gray: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per `_STRETCH_BLOCK` block, mean |d/dx| and mean |d/dy| of the lightly smoothed image."""
    g = cv2.GaussianBlur(gray, (0, 0), 1.0)
    b = _STRETCH_BLOCK
    h, w = (g.shape[0] // b) * b, (g.shape[1] // b) * b

    def blocks(d: np.ndarray) -> np.ndarray:
        return np.abs(d[:h, :w]).reshape(h // b, b, w // b, b).mean(axis=(1, 3))

    return blocks(cv2.Sobel(g, cv2.CV_32F, 1, 0, ksize=3)), blocks(cv2.Sobel(g, cv2.CV_32F, 0, 1, ksize=3))


def stretched_area(frame: np.ndarray, photo_view: np.ndarray, mask: np.ndarray) -> float:
    """Largest connected area (fraction of the frame's blocks) where the photo has texture along an
    axis and the frame lost it: a smear stretched along x keeps d/dy but loses d/dx, and vice versa.
    Blur of the whole frame (a soft encode) lowers both sides alike and is not counted, because the
    ratio is taken against the frame's own median ratio."""
    fx, fy = _directional_texture(frame)
    px, py = _directional_texture(photo_view)
    b = _STRETCH_BLOCK
    h, w = fx.shape
    valid = mask[: h * b, : w * b].reshape(h, b, w, b).mean(axis=(1, 3)) > 0.9
    textured_x, textured_y = valid & (px >= _STRETCH_MIN_TEXTURE), valid & (py >= _STRETCH_MIN_TEXTURE)
    if not (textured_x.any() or textured_y.any()):
        return 0.0
    rx, ry = fx / np.maximum(px, 1e-3), fy / np.maximum(py, 1e-3)
    # The frame's overall sharpness relative to the photo (zoom, encode): a smear is local.
    level = float(np.median(np.concatenate([rx[textured_x], ry[textured_y]])))
    lost = (textured_x & (rx < _STRETCH_KEEP * level)) | (textured_y & (ry < _STRETCH_KEEP * level))
    n, labels = cv2.connectedComponents(lost.astype(np.uint8), connectivity=4)
    if n <= 1:
        return 0.0
    largest = int(np.bincount(labels.ravel())[1:].max())
    return largest / float(h * w)


def _ecc(frame: np.ndarray, ref: _PhotoRef, h0: np.ndarray) -> np.ndarray:
    """Refine `h0` (frame -> photo) by ECC on the blurred images; `h0` itself when ECC fails."""
    warp = h0.astype(np.float32)
    crit = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 40, 1e-4)
    find_ecc: Any = cv2.findTransformECC  # the stubs do not accept a None mask
    try:
        _, warp = find_ecc(frame, ref.blur, warp, cv2.MOTION_HOMOGRAPHY, crit, None, 1)
    except cv2.error:
        return h0
    return warp.astype(np.float64)


def _orb_h(frame: np.ndarray, ref: _PhotoRef) -> np.ndarray | None:
    """Frame -> photo homography from ORB matches and RANSAC, or None without enough inliers."""
    kp_p, des_p = ref.orb()
    kp_f, des_f = cv2.ORB.create(_ORB_FEATURES).detectAndCompute(frame.astype(np.uint8), None)
    if des_p is None or des_f is None or len(kp_f) < _ORB_MIN_INLIERS:
        return None
    pairs = cv2.BFMatcher(cv2.NORM_HAMMING).knnMatch(des_f, des_p, k=2)
    good = [m[0] for m in pairs if len(m) == 2 and m[0].distance < 0.8 * m[1].distance]
    if len(good) < _ORB_MIN_INLIERS:
        return None
    src = np.array([kp_f[m.queryIdx].pt for m in good], dtype=np.float32)
    dst = np.array([kp_p[m.trainIdx].pt for m in good], dtype=np.float32)
    hmat, inl = cv2.findHomography(src, dst, cv2.RANSAC, 3.0)
    if hmat is None or int(inl.sum()) < _ORB_MIN_INLIERS:
        return None
    return hmat


def _score_h(blurred: np.ndarray, ref: _PhotoRef, hmat: np.ndarray) -> tuple[np.ndarray, float, float]:
    warped, mask = ref.view(hmat)
    worst, p95 = _block_max(_tolerant_residual(blurred, warped, mask), mask)
    return hmat, worst, p95


def _fit_frame(frame: np.ndarray, ref: _PhotoRef, t_norm: float) -> tuple[np.ndarray, float, float]:
    """Best frame -> photo homography (plan-guided ECC, else ORB + ECC) and its (worst block, p95)."""
    blurred = cv2.GaussianBlur(frame, (0, 0), _RIGID_BLUR)
    best = _score_h(blurred, ref, _ecc(blurred, ref, ref.plan_h(t_norm)))
    if best[1] > _RIGID_MAX_BLOCK:
        h_orb = _orb_h(frame, ref)
        if h_orb is not None:
            alt = _score_h(blurred, ref, _ecc(blurred, ref, h_orb))
            best = alt if alt[1] < best[1] else best
    return best


def _pose(hmat: np.ndarray, w: int, h: int) -> tuple[float, float, float]:
    """(centre x, centre y, width) of the frame's footprint in photo pixels."""
    pts = np.array([[[0, h / 2], [w, h / 2], [w / 2, h / 2]]], np.float64)
    p = cv2.perspectiveTransform(pts, hmat)[0]
    return float(p[2, 0]), float(p[2, 1]), float(np.hypot(*(p[1] - p[0])))


def _travel(poses: list[tuple[float, float, float]]) -> tuple[float, float]:
    """(centre travel in window widths, zoom travel |log|), summed over consecutive poses."""
    shift = zoom = 0.0
    for (x0, y0, w0), (x1, y1, w1) in itertools.pairwise(poses):
        shift += float(np.hypot(x1 - x0, y1 - y0)) / max(1e-6, 0.5 * (w0 + w1))
        zoom += abs(float(np.log(max(w1, 1e-6) / max(w0, 1e-6))))
    return shift, zoom


def _rigid_checks(frames: np.ndarray, ref: _PhotoRef, n_expected: int, out: _Checks) -> None:
    """Residual of sampled frames against the photo through their fitted homographies ("not_rigid"),
    and the camera's measured travel against the plan's ("frozen", "zoom_only")."""
    n = len(frames)
    idx = sorted({round(i * (n - 1) / (_RIGID_SAMPLES - 1)) for i in range(_RIGID_SAMPLES)})
    worst_block, worst_p95, worst_idx = 0.0, 0.0, idx[0]
    stretched, stretched_idx = 0.0, idx[0]
    got: list[tuple[float, float, float]] = []
    want: list[tuple[float, float, float]] = []
    for i in idx:
        t = frame_t_norm(i, n_expected)
        frame = frames[i].astype(np.float32)
        hmat, block, p95 = _fit_frame(frame, ref, t)
        area = stretched_area(frame, ref.sharp_view(hmat), ref.view(hmat)[1])
        if area > stretched:
            stretched, stretched_idx = area, i
        got.append(_pose(hmat, ref.frame_w, ref.frame_h))
        want.append(_pose(ref.plan_h(t), ref.frame_w, ref.frame_h))
        worst_p95 = max(worst_p95, p95)
        if block > worst_block:
            worst_block, worst_idx = block, i
    out.metrics.update(rigid_block=round(worst_block, 2), rigid_p95=round(worst_p95, 2), rigid_frame=worst_idx)
    if worst_block > _RIGID_MAX_BLOCK:
        out.fail("not_rigid", f"residual {worst_block:.1f} > {_RIGID_MAX_BLOCK:g} at frame {worst_idx}")
    out.metrics.update(stretched_area=round(stretched, 4), stretched_frame=stretched_idx)
    if stretched > _STRETCH_MAX_AREA:
        out.fail(
            "stretched",
            f"{100 * stretched:.1f} % of frame {stretched_idx} smeared (limit {100 * _STRETCH_MAX_AREA:g} %)",
        )
    (g_shift, g_zoom), (w_shift, w_zoom) = _travel(got), _travel(want)
    out.metrics.update(
        travel=round(g_shift + g_zoom, 4),
        planned_travel=round(w_shift + w_zoom, 4),
        shift=round(g_shift, 4),
        planned_shift=round(w_shift, 4),
    )
    planned = w_shift + w_zoom
    if planned >= _MIN_PLANNED_TRAVEL and g_shift + g_zoom < _FROZEN_TRAVEL_RATIO * planned:
        out.fail("frozen", f"camera travel {g_shift + g_zoom:.3f} < {_FROZEN_TRAVEL_RATIO:g} x planned {planned:.3f}")
    elif w_shift >= _MIN_PLANNED_SHIFT and g_shift < _ZOOM_ONLY_RATIO * w_shift and g_zoom > 0.5 * w_shift:
        out.fail("zoom_only", f"centre travel {g_shift:.3f} < {_ZOOM_ONLY_RATIO:g} x planned {w_shift:.3f}")


def _luma_checks(frames: np.ndarray, expected_luma: float, out: _Checks) -> None:
    """Black frames, luminance flashes and flicker over every frame."""
    luma = frames.reshape(len(frames), -1).mean(axis=1)
    dark = np.flatnonzero(luma < _BLACK_LUMA)
    if dark.size and expected_luma > _BLACK_EXPECTED_LUMA:
        out.fail("black", f"{dark.size} black frames from frame {int(dark[0])} (luma {float(luma[dark[0]]):.1f})")
    if len(luma) < 3:
        return
    jumps = np.abs(np.diff(luma))
    out.metrics.update(max_luma_jump=round(float(jumps.max()), 2))
    if float(jumps.max()) > _FLASH_JUMP:
        j = int(np.argmax(jumps))
        out.fail("flash", f"luma jump {float(jumps[j]):.1f} > {_FLASH_JUMP:g} at frame {j + 1}")
    second = luma[1:-1] - 0.5 * (luma[:-2] + luma[2:])
    luma_rms = float(np.sqrt(np.mean(second * second)))
    h = max(4, round(frames.shape[1] * _FLICKER_WIDTH / frames.shape[2]))
    small = np.stack([cv2.resize(f, (_FLICKER_WIDTH, h), interpolation=cv2.INTER_AREA) for f in frames]).astype(
        np.float32
    )
    pix = np.abs(small[1:-1] - 0.5 * (small[:-2] + small[2:])).mean(axis=(1, 2))
    pix_flicker = float(np.median(pix))
    out.metrics.update(flicker_luma=round(luma_rms, 3), flicker_pixel=round(pix_flicker, 3))
    if luma_rms > _FLICKER_LUMA or pix_flicker > _FLICKER_PIXEL:
        out.fail("flicker", f"temporal noise luma {luma_rms:.2f}, pixel {pix_flicker:.2f}")


@dataclass
class _Checks:
    hard: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)

    def fail(self, code: str, detail: str) -> None:
        self.hard.append(code)
        self.reasons.append(f"{code}: {detail}")


def temporal_checks(
    video_path: os.PathLike[str] | str, camera: KenBurnsCamera, n_expected: int, expected_luma: float
) -> _Checks:
    """Checks over the whole clip (see the module docstring): decodes every frame once, reduced."""
    out = _Checks()
    try:
        frames = _decode_gray_all(video_path, camera.width, camera.height, n_expected)
    except FFmpegError as exc:
        out.fail("decode", f"clip does not decode: {exc}"[:200])
        return out
    if len(frames) < 2:
        return out
    _luma_checks(frames, expected_luma, out)
    ref = _PhotoRef(camera, frames.shape[2], frames.shape[1])
    _rigid_checks(frames, ref, n_expected, out)
    return out


def _finish(score: float, hard: list[str], reasons: list[str], metrics: dict[str, Any]) -> ValidationResult:
    if hard:
        score *= _HARD_FAILURE_FACTOR
    score = float(min(1.0, max(0.0, score)))
    metrics["score"] = round(score, 4)
    metrics["pass_score"] = PASS_SCORE
    passed = not hard and score >= PASS_SCORE
    if not passed and not reasons:
        reasons.append(f"low_score: score {score:.2f} below {PASS_SCORE}")
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
    metrics: dict[str, Any] = {"expected_frames": n_expected}
    try:
        info = probe(video_path)
    except FFmpegError as exc:
        return _finish(0.0, ["unreadable"], [f"unreadable: cannot read clip: {exc}"], metrics)
    v = info.video
    if v is None:
        return _finish(0.0, ["no_video"], ["no_video: clip has no video stream"], metrics)
    metrics.update(codec=v.codec, width=v.width, height=v.height, fps=v.fps, frames=info.frame_count)
    hard, reasons = _stream_checks(v, info.frame_count, width, height, fps, n_expected)
    n_avail = min(info.frame_count, n_expected)
    if n_avail <= 0:
        return _finish(0.0, [*hard, "empty"], [*reasons, "empty: clip has no frames"], metrics)

    camera = KenBurnsCamera(source_rgb, plan, width, height)
    frames = _FrameChecks(video_path, camera, v.fps or fps, width, height, n_expected)
    for idx in sorted({0, (n_avail - 1) // 2, n_avail - 1}):
        frames.check(idx)
    hard.extend(frames.hard)
    reasons.extend(frames.reasons)
    metrics["frames_checked"] = frames.metrics
    _frozen_check(frames, metrics, hard, reasons)

    exp_lumas = [f["expected_luma"] for f in frames.metrics if "expected_luma" in f]
    extra = temporal_checks(video_path, camera, n_expected, min(exp_lumas, default=255.0))
    metrics.update(extra.metrics)
    for code, reason in zip(extra.hard, extra.reasons, strict=True):
        if code not in hard:
            hard.append(code)
            reasons.append(reason)

    sims = frames.sims
    score = 0.5 * float(np.mean(sims)) + 0.5 * float(np.min(sims))
    metrics["similarity_mean"] = round(float(np.mean(sims)), 4)
    metrics["similarity_min"] = round(float(np.min(sims)), 4)
    if score < PASS_SCORE:
        worst = frames.metrics[int(np.argmin(sims))]
        reasons.append(
            f"mismatch: clip does not show the planned view of the photo: score {score:.2f} < {PASS_SCORE} "
            f"(worst frame {worst['index']}: ncc {worst.get('ncc', 0):.2f}, "
            f"match {worst.get('match', 0):.2f})"
        )
    return _finish(score, hard, reasons, metrics)


def _stream_checks(
    v: Any, frames: int, width: int, height: int, fps: int, n_expected: int
) -> tuple[list[str], list[str]]:
    """Codec, size, rate and length: (hard failure codes, reasons)."""
    hard: list[str] = []
    reasons: list[str] = []
    if v.codec != "h264":
        hard.append("codec")
        reasons.append(f"codec: {v.codec}, expected h264")
    if (v.width, v.height) != (width, height):
        hard.append("size")
        reasons.append(f"size: {v.width}x{v.height}, expected {width}x{height}")
    if not v.fps or abs(v.fps - fps) > _FPS_TOLERANCE * fps:
        hard.append("fps")
        reasons.append(f"fps: {v.fps:g} fps, expected {fps}")
    if frames != n_expected:
        hard.append("frame_count")
        reasons.append(f"frame_count: {frames} frames, expected {n_expected}")
    return hard, reasons


class _FrameChecks:
    """First, middle and last frames against the expected view of the photo."""

    def __init__(
        self,
        video_path: os.PathLike[str] | str,
        camera: KenBurnsCamera,
        fps: float,
        width: int,
        height: int,
        n_expected: int,
    ) -> None:
        self.video_path, self.camera, self.fps = video_path, camera, fps
        self.width, self.height, self.n_expected = width, height, n_expected
        # The camera's resampled copy of the photo (about output size) is plenty for a 128 px template.
        self.photo_gray = cv2.cvtColor(camera.src, cv2.COLOR_RGB2GRAY).astype(np.float32)
        self.hard: list[str] = []
        self.reasons: list[str] = []
        self.sims: list[float] = []
        self.metrics: list[dict[str, Any]] = []
        self.got: dict[int, np.ndarray] = {}
        self.want: dict[int, np.ndarray] = {}

    def check(self, idx: int) -> None:
        t_norm = frame_t_norm(idx, self.n_expected)
        fm: dict[str, Any] = {"index": idx, "t_norm": round(t_norm, 4)}
        self.metrics.append(fm)
        try:
            decoded = decode_frame(self.video_path, idx, self.fps, self.width, self.height)
        except FFmpegError as exc:
            decoded = None
            self.reasons.append(f"decode: frame {idx} failed to decode: {exc}")
        expected = _gray_small(self.camera.render(t_norm))
        if decoded is None:
            self.hard.append("decode")
            if not any(r.startswith(f"decode: frame {idx} ") for r in self.reasons):
                self.reasons.append(f"decode: frame {idx} does not decode")
            fm.update(ncc=0.0, ssim=0.0, match=0.0, similarity=0.0)
            self.sims.append(0.0)
            return
        got_gray = _gray_small(decoded)
        self.got[idx], self.want[idx] = got_gray, expected
        c = hp_ncc(got_gray, expected)
        m = _match_photo(got_gray, self.photo_gray, self.camera)
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
            self.hard.append("black")
            self.reasons.append(f"black: frame {idx} is black (mean luma {luma:.1f}, expected {exp_luma:.0f})")
            sim = 0.0
        self.sims.append(sim)


def _frozen_check(frames: _FrameChecks, metrics: dict[str, Any], hard: list[str], reasons: list[str]) -> None:
    """First and last frames identical although the plan moves."""
    indices = [f["index"] for f in frames.metrics]
    first, last = indices[0], indices[-1]
    if first == last or first not in frames.got or last not in frames.got:
        return
    got_diff = float(np.mean(np.abs(frames.got[first] - frames.got[last])))
    want_diff = float(np.mean(np.abs(frames.want[first] - frames.want[last])))
    metrics.update(first_last_diff=round(got_diff, 3), expected_first_last_diff=round(want_diff, 3))
    if got_diff < _FROZEN_DIFF and want_diff > _MOVING_DIFF:
        hard.append("frozen")
        reasons.append(
            f"frozen: first and last frames are identical (diff {got_diff:.2f}) "
            f"but the plan moves (expected diff {want_diff:.1f})"
        )
