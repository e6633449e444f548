"""Loading user photos safely, and the small image utilities every analysis step shares.

Everything here is pure: limits are parameters (the caller passes `Settings.MAX_IMAGE_PIXELS` etc.),
nothing reads configuration or touches a database.

Why so defensive: listing photos come from phones, MLS exports, scanners and zip files. They can be
CMYK JPEGs, 16-bit TIFFs, palette PNGs with transparency, rotated only through EXIF, truncated
uploads, renamed PDFs, or deliberately crafted decompression bombs. `load_photo` turns all of them
either into one predictable thing (an upright 8-bit sRGB-ish RGB array) or into an
`ImageRejectedError` whose `reason` code says why, so a job can list rejected photos instead of
failing.

Reason codes raised by `load_photo`:

* ``empty_file``      the file has 0 bytes
* ``file_too_big``    more bytes than ``max_bytes`` (checked with ``stat`` before reading)
* ``unreadable``      the file does not exist or cannot be opened (permissions, a directory, a FIFO, ...)
* ``not_an_image``    no allowed image format recognises the data (text, PDF, EPS, ...)
* ``too_large``       header dimensions above ``max_pixels`` (checked before any pixel is decoded), except
                      for a JPEG that decoding at 1/2 or 1/4 of its size brings under the limit
* ``corrupt``         the header parses but the pixels do not decode (truncated upload, bad data)
* ``unsupported_mode`` a pixel mode we cannot turn into RGB
* ``too_small``       the upright photo's short side is below ``min_side``
* ``animated``        only with ``reject_animated=True``: a multi-frame GIF/WebP/PNG animation

Animated files: by default the *first frame* is used and `LoadedPhoto.frames` records how many
frames there were. Rejecting them outright would also reject camera MPO files (a normal JPEG plus a
depth or preview frame, reported by Pillow as "animated"), and the first frame of a GIF/WebP
animation is a legitimate still. Callers who want to refuse animations pass ``reject_animated=True``
(MPO files are still accepted: their first frame is the photo).
"""

from __future__ import annotations

import math
import os
import re
import stat
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from app.errors import ImageRejectedError
from app.media.depth_io import is_depth_sidecar

__all__ = [
    "ALLOWED_FORMATS",
    "ROOM_LABELS",
    "UNKNOWN_ROOM",
    "FolderEntry",
    "LoadedPhoto",
    "check_photo_file",
    "fingerprint_distance",
    "list_photo_files",
    "load_photo",
    "normalize_room_label",
    "photo_fingerprint",
    "resize_max",
    "scan_photo_folder",
]

#: Pillow formats we are willing to decode. Everything else (EPS would run Ghostscript, PSD, ICO,
#: scientific formats, ...) is "not_an_image". MPO is decoded by the JPEG plugin.
ALLOWED_FORMATS: tuple[str, ...] = ("JPEG", "PNG", "WEBP", "TIFF", "BMP", "GIF", "AVIF", "HEIF", "JPEG2000")

#: The canonical room labels used across the media modules (scene guesses, clustering, timeline).
ROOM_LABELS: tuple[str, ...] = (
    "exterior",
    "living_room",
    "kitchen",
    "bedroom",
    "bathroom",
    "dining_room",
    "outdoor",
    "other",
)
#: The room label of a photo nobody labelled and no classifier is sure about (heuristic confidence
#: below its reliability threshold). Not one of `ROOM_LABELS`: it is never a hard constraint, never
#: a given label that "wins", and the tour order places it neutrally.
UNKNOWN_ROOM = "unknown"

#: Modes that carry alpha: composited on white (listing photos are shown on a white page, and a
#: transparent pixel rendered black in a video looks like a hole).
_ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "RGBa", "La"})
#: Single-channel modes with more than 8 bits (or float) per pixel: rescaled to 8 bits with numpy.
_WIDE_GREY_MODES = frozenset({"I", "F", "I;16", "I;16L", "I;16B", "I;16N", "I;16S", "I;32", "I;32S"})


@dataclass(frozen=True)
class LoadedPhoto:
    """An upright, decoded photo.

    `rgb` is a C-contiguous ``uint8`` array of shape (height, width, 3) in RGB order (not OpenCV's
    BGR). `width`/`height` are those of `rgb`, i.e. *after* EXIF rotation. `original_mode` and
    `format` are Pillow's names for what was in the file (e.g. "CMYK", "JPEG"), kept for the job's
    photo report. `frames` > 1 means only the first frame of a multi-frame file was used.
    """

    rgb: np.ndarray
    width: int
    height: int
    original_mode: str
    format: str
    exif_rotated: bool
    path: str
    frames: int = 1
    #: > 1 when a large JPEG was decoded at 1/scale of its size (see `load_photo`).
    scale: int = 1

    @property
    def aspect(self) -> float:
        """Width / height of the upright photo."""
        return self.width / self.height

    @property
    def pixels(self) -> int:
        return self.width * self.height


def load_photo(
    path: str | os.PathLike[str],
    *,
    max_pixels: int = 80_000_000,
    max_bytes: int = 60_000_000,
    min_side: int = 320,
    reject_animated: bool = False,
) -> LoadedPhoto:
    """Decode one photo into an upright RGB array, or raise `ImageRejectedError`.

    Order of checks (cheap and safe first): `check_photo_file` (a regular, non-empty file of at most
    ``max_bytes``, from ``stat``); format detection restricted to `ALLOWED_FORMATS`; header dimensions
    against ``max_pixels`` *before* decoding, so a 30000x30000 PNG of a few hundred bytes never allocates
    its gigabytes; then a full decode (``img.load()``) so truncated files fail here rather than later in
    the renderer; EXIF orientation; mode conversion; the minimum side. `ImageFile.LOAD_TRUNCATED_IMAGES`
    is never changed.

    A JPEG with more than ``max_pixels`` (a 108 MP phone photo) is decoded at 1/2 or 1/4 of its size
    (libjpeg's DCT scaling, `Image.draft`), so it never costs more than ``max_pixels`` of memory;
    `LoadedPhoto.scale` says by how much. Only a JPEG that even 1/4 cannot bring under the limit is
    ``too_large``. Errors name the file, never its directory (it may be the server's storage root).
    """
    p = str(path)
    name = os.path.basename(p) or p
    check_photo_file(p, max_bytes=max_bytes)
    if ImageFile.LOAD_TRUNCATED_IMAGES:  # pragma: no cover - a global someone else flipped
        raise RuntimeError(
            "PIL.ImageFile.LOAD_TRUNCATED_IMAGES must stay False: truncated uploads "
            "would be accepted as half-grey photos"
        )
    img = _open_image(p, name)
    with img:
        fmt = str(img.format or "")
        mode = str(img.mode)
        scale = _fit_pixels(img, name, max_pixels)
        # `is_animated` only peeks at the second frame; counting frames walks the whole file, so only
        # do that for files that are animated at all.
        animated = bool(getattr(img, "is_animated", False))
        frames = int(getattr(img, "n_frames", 1) or 1) if animated else 1
        if reject_animated and animated and fmt != "MPO":
            raise ImageRejectedError(name, "animated", f"{frames} frames")
        _decode(img, p, name)
        upright, rotated = _exif_upright(img)
        rgb = _to_rgb_array(upright, name)

    height, width = rgb.shape[:2]
    if min(width, height) < min_side:
        raise ImageRejectedError(name, "too_small", f"{width}x{height}, short side < {min_side}")
    return LoadedPhoto(
        rgb=rgb,
        width=width,
        height=height,
        original_mode=mode,
        format=fmt,
        exif_rotated=rotated,
        path=p,
        frames=frames,
        scale=scale,
    )


def check_photo_file(path: str | os.PathLike[str], *, max_bytes: int) -> int:
    """The checks that need no decoding, for ingest (before a photo is copied anywhere) and for
    `load_photo`: the path is a regular file (not a directory, FIFO or device), not empty, at most
    `max_bytes`, and readable. Returns its size; raises `ImageRejectedError` naming the file only."""
    p = os.fspath(path)
    name = os.path.basename(p) or p
    try:
        st = os.stat(p)
    except (OSError, ValueError) as exc:  # ValueError: a NUL in the name
        raise ImageRejectedError(name, "unreadable", _os_reason(exc)) from exc
    if stat.S_ISDIR(st.st_mode):
        raise ImageRejectedError(name, "unreadable", "is a directory")
    if not stat.S_ISREG(st.st_mode):
        raise ImageRejectedError(name, "unreadable", "not a regular file")
    if st.st_size == 0:
        raise ImageRejectedError(name, "empty_file")
    if st.st_size > max_bytes:
        raise ImageRejectedError(name, "file_too_big", f"{st.st_size} bytes > limit {max_bytes}")
    try:
        with open(p, "rb"):
            pass
    except OSError as exc:
        raise ImageRejectedError(name, "unreadable", _os_reason(exc)) from exc
    return int(st.st_size)


def _os_reason(exc: BaseException) -> str:
    """An OS error as a reason without the path it names."""
    if isinstance(exc, OSError):
        return exc.strerror or type(exc).__name__
    return type(exc).__name__


def _open_image(p: str, name: str) -> Image.Image:
    """`Image.open` restricted to the allowed formats, with typed rejections. Pillow refuses anything
    above twice its own pixel limit at open; a JPEG is then opened without that check, because
    `_fit_pixels` can decode it at a reduced size (and refuses it if even that is too big)."""
    try:
        with warnings.catch_warnings():
            # Pillow warns above its own global limit; we apply `max_pixels` ourselves in `_fit_pixels`.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(p, formats=_allowed_formats())
    except Image.DecompressionBombError as exc:
        if _looks_like_jpeg(p):
            return _open_big_jpeg(p, name, exc)
        raise ImageRejectedError(name, "too_large", _scrub(str(exc), p, name)) from exc
    except UnidentifiedImageError as exc:
        raise ImageRejectedError(name, "not_an_image", "unrecognised or disallowed format") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        # Some plugins raise these from the header parser for a recognised but broken header.
        raise ImageRejectedError(name, "corrupt", f"bad header: {_scrub(str(exc), p, name)}") from exc


def _looks_like_jpeg(p: str) -> bool:
    try:
        with open(p, "rb") as fh:
            return fh.read(3) == b"\xff\xd8\xff"
    except OSError:
        return False


def _open_big_jpeg(p: str, name: str, bomb: Exception) -> Image.Image:
    from PIL import JpegImagePlugin

    try:
        return JpegImagePlugin.JpegImageFile(p)
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageRejectedError(name, "too_large", _scrub(str(bomb), p, name)) from exc


def _fit_pixels(img: Image.Image, name: str, max_pixels: int) -> int:
    """Make the decode fit in `max_pixels`: a JPEG by DCT scaling (returns the scale, 1, 2 or 4), any
    other format only if it already fits. Runs on the header alone: nothing is decoded yet."""
    w, h = img.size
    if w <= 0 or h <= 0:
        raise ImageRejectedError(name, "corrupt", f"header size {w}x{h}")
    if w * h <= max_pixels:
        return 1
    too_large = ImageRejectedError(name, "too_large", f"{w}x{h} = {w * h} pixels > limit {max_pixels}")
    if img.format not in ("JPEG", "MPO"):
        raise too_large
    scale = next((s for s in (2, 4) if math.ceil(w / s) * math.ceil(h / s) <= max_pixels), None)
    if scale is None:  # beyond any phone or camera: a decompression bomb, or nothing we need at this size
        raise too_large
    img.draft(None, (w // scale, h // scale))
    if img.size[0] * img.size[1] > max_pixels:  # pragma: no cover - draft refused (several scans)
        raise too_large
    return scale


def _decode(img: Image.Image, p: str, name: str) -> None:
    """Full decode of the first frame: truncated or broken data raises here, typed."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img.load()
    except Image.DecompressionBombError as exc:
        raise ImageRejectedError(name, "too_large", _scrub(str(exc), p, name)) from exc
    except MemoryError as exc:
        raise ImageRejectedError(name, "too_large", "out of memory while decoding") from exc
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError, ZeroDivisionError) as exc:
        # Decoders signal broken data with a zoo of exception types.
        raise ImageRejectedError(name, "corrupt", f"{type(exc).__name__}: {_scrub(str(exc), p, name)}") from exc


def _scrub(text: str, p: str, name: str) -> str:
    """A decoder's message without the file's full path (it may name the server's storage root)."""
    text = text.replace(p, name)
    directory = os.path.dirname(p)
    return text.replace(directory, "…") if directory and directory != "/" else text


def _allowed_formats() -> list[str]:
    _register_heif()
    Image.init()
    return [f for f in ALLOWED_FORMATS if f in Image.OPEN]


_heif_registered = False


def _register_heif() -> None:
    """HEIC/HEIF (iPhone photos) through pillow-heif, registered once. Without the package, HEIF is
    simply not an allowed format: such files are ``not_an_image``."""
    global _heif_registered
    if _heif_registered:
        return
    _heif_registered = True
    try:
        import pillow_heif
    except ImportError:  # pragma: no cover - pillow-heif is in requirements.txt
        return
    pillow_heif.register_heif_opener()


def _exif_upright(img: Image.Image) -> tuple[Image.Image, bool]:
    """Apply the EXIF Orientation tag. A broken EXIF block must not reject a photo whose pixels are
    fine, so any EXIF error means "leave it as it is"."""
    try:
        orientation = int(img.getexif().get(0x0112, 1) or 1)
    except Exception:
        return img, False
    if orientation in (1, 0) or orientation > 8:
        return img, False
    try:
        out = ImageOps.exif_transpose(img)
    except Exception:
        return img, False
    if out is None:  # pragma: no cover - only with in_place=True
        return img, False
    return out, True


def _to_rgb_array(img: Image.Image, path: str) -> np.ndarray:
    """Any decoded Pillow image -> C-contiguous uint8 (h, w, 3) RGB."""
    mode = img.mode
    try:
        if mode == "RGB":
            out = img
        elif mode == "P":
            has_alpha = "transparency" in img.info
            out = _composite_on_white(img.convert("RGBA")) if has_alpha else img.convert("RGB")
        elif mode in _ALPHA_MODES:
            out = _composite_on_white(img.convert("RGBA"))
        elif mode in _WIDE_GREY_MODES:
            grey = _wide_to_uint8(np.asarray(img), container_bits=16 if mode.startswith("I;16") else None)
            return np.ascontiguousarray(np.repeat(grey[:, :, None], 3, axis=2))
        else:
            # "1", "L", "CMYK", "YCbCr", "RGBX", ... CMYK: Pillow's JPEG decoder already undoes Adobe's
            # inverted CMYK; the plain conversion is not colour-managed, like any viewer without a
            # CMYK profile.
            out = img.convert("RGB")
    except (ValueError, OSError) as exc:
        raise ImageRejectedError(path, "unsupported_mode", f"{mode}: {exc}") from exc
    arr = np.asarray(out)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
        raise ImageRejectedError(path, "unsupported_mode", f"{mode} converted to {arr.dtype}{arr.shape}")
    return np.ascontiguousarray(arr)


def _composite_on_white(rgba: Image.Image) -> Image.Image:
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(white, rgba).convert("RGB")


def _wide_to_uint8(a: np.ndarray, *, container_bits: int | None = None) -> np.ndarray:
    """Rescale 16/32-bit integer or float greyscale to 8 bits, preserving brightness.

    Integers are divided by the full range of their bit depth: `container_bits` when the format
    defines it (16-bit PNG/TIFF samples span 0..65535, so they are divided by 257), else the smallest
    common depth (8, 10, 12, 14, 16, 24 or 32 bits) that holds the maximum, for 32-bit "I" images that
    usually carry 8..16-bit data. Floats in 0..1 are scaled by 255; other floats and signed data
    with negative values are min-max stretched (there is no absolute scale to preserve).
    """
    a = np.asarray(a)
    if a.size == 0:
        return np.zeros(a.shape[:2], np.uint8)
    finite = np.isfinite(a) if a.dtype.kind == "f" else None
    if finite is not None and not finite.all():
        a = np.where(finite, a, 0)
    af = a.astype(np.float64)
    lo, hi = float(af.min()), float(af.max())
    if a.dtype.kind == "f":
        if lo >= 0.0 and hi <= 1.0:
            scaled = af * 255.0
        else:
            scaled = (af - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(af)
    elif lo < 0:
        scaled = (af - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(af)
    else:
        if container_bits is not None:
            bits = container_bits
        else:
            needed = math.ceil(math.log2(hi + 1.0)) if hi > 0 else 8
            bits = next(b for b in (8, 10, 12, 14, 16, 24, 32) if b >= min(needed, 32))
        scaled = af * (255.0 / (2.0**bits - 1.0))
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


# --- small shared utilities -------------------------------------------------------------------------


def resize_max(rgb: np.ndarray, max_side: int) -> np.ndarray:
    """Downscale so the longer side is at most `max_side`, keeping the aspect ratio.

    Uses INTER_AREA (averages source pixels, so no aliasing); never upscales. Returns the input
    array itself when it is already small enough, so treat the result as read-only.
    """
    if max_side <= 0:
        raise ValueError(f"max_side must be positive, got {max_side}")
    h, w = rgb.shape[:2]
    if max(h, w) <= max_side:
        return rgb
    scale = max_side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)


def photo_fingerprint(rgb: np.ndarray) -> str:
    """Perceptual difference hash (dHash) as 32 hex digits, for spotting duplicate uploads.

    128 bits: 64 from horizontal neighbour comparisons on a 9x8 greyscale thumbnail and 64 from
    vertical ones on 8x9. Survives recompression, resizing and mild colour edits; compare two with
    `fingerprint_distance` (Hamming distance; <= 10 of 128 bits is "same photo").
    """
    grey = _grey(rgb)
    horiz = cv2.resize(grey, (9, 8), interpolation=cv2.INTER_AREA)
    vert = cv2.resize(grey, (8, 9), interpolation=cv2.INTER_AREA)
    bits = np.concatenate([(horiz[:, 1:] > horiz[:, :-1]).ravel(), (vert[1:, :] > vert[:-1, :]).ravel()])
    value = 0
    for b in bits:
        value = (value << 1) | int(b)
    return f"{value:032x}"


def fingerprint_distance(a: str, b: str) -> int:
    """Hamming distance between two `photo_fingerprint` strings (0 = identical thumbnails)."""
    if len(a) != len(b):
        raise ValueError("fingerprints of different lengths")
    return (int(a, 16) ^ int(b, 16)).bit_count()


def _grey(rgb: np.ndarray) -> np.ndarray:
    if rgb.ndim == 2:
        return rgb.astype(np.float32)
    # Resize first when huge: the hash only needs a thumbnail and this keeps it O(small).
    small = resize_max(rgb, 512)
    return cv2.cvtColor(np.ascontiguousarray(small), cv2.COLOR_RGB2GRAY).astype(np.float32)


# --- folders of photos ------------------------------------------------------------------------------

#: Collapsed folder name (lower case, no separators or digits) -> canonical label.
_LABEL_ALIASES: dict[str, str] = {
    # exterior
    "exterior": "exterior",
    "exteriors": "exterior",
    "frontal": "exterior",
    "front": "exterior",
    "facade": "exterior",
    "façade": "exterior",
    "outside": "exterior",
    "street": "exterior",
    "streetview": "exterior",
    "curbside": "exterior",
    "frontexterior": "exterior",
    "aerial": "exterior",
    "drone": "exterior",
    "ext": "exterior",
    "elevation": "exterior",
    # outdoor spaces
    "outdoor": "outdoor",
    "outdoors": "outdoor",
    "backyard": "outdoor",
    "yard": "outdoor",
    "frontyard": "outdoor",
    "garden": "outdoor",
    "patio": "outdoor",
    "pool": "outdoor",
    "deck": "outdoor",
    "terrace": "outdoor",
    "balcony": "outdoor",
    "porch": "outdoor",
    "lawn": "outdoor",
    "courtyard": "outdoor",
    "view": "outdoor",
    "views": "outdoor",
    # living
    "living": "living_room",
    "livingroom": "living_room",
    "familyroom": "living_room",
    "family": "living_room",
    "lounge": "living_room",
    "greatroom": "living_room",
    "den": "living_room",
    "sittingroom": "living_room",
    "loungeroom": "living_room",
    # kitchen
    "kitchen": "kitchen",
    "kitchens": "kitchen",
    "kitchenette": "kitchen",
    # bedrooms
    "bedroom": "bedroom",
    "bedrooms": "bedroom",
    "bed": "bedroom",
    "masterbedroom": "bedroom",
    "primarybedroom": "bedroom",
    "guestroom": "bedroom",
    "nursery": "bedroom",
    "br": "bedroom",
    # bathrooms
    "bathroom": "bathroom",
    "bathrooms": "bathroom",
    "bath": "bathroom",
    "baths": "bathroom",
    "masterbath": "bathroom",
    "primarybath": "bathroom",
    "ensuite": "bathroom",
    "washroom": "bathroom",
    "restroom": "bathroom",
    "toilet": "bathroom",
    "wc": "bathroom",
    "powderroom": "bathroom",
    "shower": "bathroom",
    "ba": "bathroom",
    # dining
    "dining": "dining_room",
    "diningroom": "dining_room",
    "diningarea": "dining_room",
    "breakfastnook": "dining_room",
    "nook": "dining_room",
    # rooms we recognise but do not model separately
    "other": "other",
    "office": "other",
    "study": "other",
    "laundry": "other",
    "laundryroom": "other",
    "garage": "other",
    "hallway": "other",
    "hall": "other",
    "entry": "other",
    "entryway": "other",
    "foyer": "other",
    "closet": "other",
    "basement": "other",
    "attic": "other",
    "gym": "other",
    "stairs": "other",
    "staircase": "other",
    "utility": "other",
    "mudroom": "other",
    "loft": "other",
    "bonusroom": "other",
    "playroom": "other",
    "library": "other",
    "interior": "other",
}
#: Substrings tried in order when the whole name is not an alias ("master_bedroom_2", "guest-bath").
#: Order matters: "bedroom" before "bed", "yard" before "front".
_LABEL_KEYWORDS: tuple[tuple[str, str], ...] = (
    ("bedroom", "bedroom"),
    ("bathroom", "bathroom"),
    ("kitchen", "kitchen"),
    ("dining", "dining_room"),
    ("living", "living_room"),
    ("family", "living_room"),
    ("yard", "outdoor"),
    ("garden", "outdoor"),
    ("patio", "outdoor"),
    ("pool", "outdoor"),
    ("deck", "outdoor"),
    ("balcony", "outdoor"),
    ("exterior", "exterior"),
    ("facade", "exterior"),
    ("frontal", "exterior"),
    ("bath", "bathroom"),
    ("bed", "bedroom"),
    ("front", "exterior"),
)
_SKIP_DIRS = frozenset({"__MACOSX"})


def normalize_room_label(name: str | None) -> str | None:
    """Map a free-form room name (folder name, backend label) to one of `ROOM_LABELS`, or None.

    Case, separators and digits are ignored ("Bedroom 2", "master-bedroom", "kitchen1"); known
    synonyms map to the canonical label ("frontal" -> exterior, "family_room" -> living_room,
    "backyard" -> outdoor, "bath" -> bathroom). Names we cannot place return None, so a folder
    called "house_001" or "misc" does not invent a label.
    """
    if not name:
        return None
    lowered = name.strip().lower()
    if lowered in ROOM_LABELS:
        return lowered
    collapsed = re.sub(r"[^a-zçéè]+", "", lowered)
    if not collapsed:
        return None
    if collapsed in _LABEL_ALIASES:
        return _LABEL_ALIASES[collapsed]
    tokens = [t for t in re.split(r"[^a-zçéè]+", lowered) if t]
    for tok in tokens:  # "master_bedroom" -> "master", "bedroom": first token that is an alias wins
        if tok in _LABEL_ALIASES and tok not in ("front", "view", "views"):
            return _LABEL_ALIASES[tok]
    for key, label in _LABEL_KEYWORDS:
        if key in collapsed:
            return label
    return None


def _natural_key(rel: str) -> tuple[tuple[int, int | str], ...]:
    """Sort key that orders "img2" before "img10" and is total (ties broken by the exact text)."""
    parts = re.split(r"(\d+)", rel.lower())
    key: list[tuple[int, int | str]] = [(0, int(p)) if p.isdigit() else (1, p) for p in parts if p]
    key.append((2, rel))
    return tuple(key)


@dataclass(frozen=True)
class FolderEntry:
    """One file found by `scan_photo_folder`. `rejected` ("reason: detail") marks a file that must not
    be read at all: a symlink pointing outside the folder, or one pointing nowhere."""

    path: Path
    label: str | None
    rejected: str | None = None


def scan_photo_folder(directory: str | os.PathLike[str]) -> list[FolderEntry]:
    """Every candidate photo under `directory`, with the room label its folder implies.

    Files directly inside `directory` get label None. Files in sub-folders get the label of the
    nearest enclosing folder (below `directory`) whose name `normalize_room_label` recognises, e.g.
    ``photos/kitchen/a.jpg`` -> "kitchen", ``photos/house_1/Master Bath/b.jpg`` -> "bathroom";
    unknown folder names give None but their files are still listed.

    Non-image files are returned too, so the loader can reject them with a reason the user sees;
    hidden files and folders (name starting with ".", which includes macOS "._x.jpg" resource forks)
    and ``__MACOSX`` folders are skipped. Symlinked folders are not followed (no cycles). A symlinked
    file is followed only when its target lies inside `directory`; one pointing outside it (say at
    /etc/passwd) is listed with ``rejected="outside_folder: ..."`` and one pointing nowhere with
    ``rejected="unreadable: broken link"``, so the caller reports them without ever reading them.
    The order is deterministic: natural sort of the path relative to `directory` ("img2" before
    "img10").
    """
    root = Path(directory)
    if not root.is_dir():
        raise NotADirectoryError(str(root))
    real_root = root.resolve()
    found: list[tuple[str, FolderEntry]] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = [d for d in dirnames if not d.startswith(".") and d not in _SKIP_DIRS]
        rel_dir = Path(dirpath).relative_to(root)
        label = _label_for(rel_dir.parts)
        for name in filenames:
            if name.startswith(".") or is_depth_sidecar(name):  # a photo's depth travels with the photo
                continue
            entry = _folder_entry(Path(dirpath) / name, label, real_root)
            if entry is not None:
                found.append(((rel_dir / name).as_posix(), entry))
    found.sort(key=lambda item: _natural_key(item[0]))
    return [entry for _, entry in found]


def _folder_entry(full: Path, label: str | None, real_root: Path) -> FolderEntry | None:
    """The entry for one name in the folder, or None for what is not a file at all (FIFOs, sockets)."""
    if not full.is_symlink():
        return FolderEntry(full, label) if full.is_file() else None
    try:
        target = full.resolve(strict=True)
    except (OSError, RuntimeError):  # dangling, or a loop of links
        return FolderEntry(full, label, "unreadable: broken link")
    if not target.is_relative_to(real_root):
        return FolderEntry(full, label, "outside_folder: a link to a file outside the photos folder")
    return FolderEntry(full, label) if target.is_file() else None


def list_photo_files(directory: str | os.PathLike[str]) -> list[tuple[Path, str | None]]:
    """The readable files of `scan_photo_folder` as (path, label): what it rejects is left out."""
    return [(e.path, e.label) for e in scan_photo_folder(directory) if e.rejected is None]


def _label_for(parts: Iterable[str]) -> str | None:
    for part in reversed(tuple(parts)):
        label = normalize_room_label(part)
        if label is not None:
            return label
    return None
