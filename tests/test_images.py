"""Photo loading: every odd input either becomes an upright RGB uint8 array or a typed rejection."""

from __future__ import annotations

import io
import struct
import tracemalloc
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from app.errors import ImageRejectedError
from app.media.images import (
    fingerprint_distance,
    list_photo_files,
    load_photo,
    normalize_room_label,
    photo_fingerprint,
    resize_max,
)


def _marked_rgb(w: int = 480, h: int = 360) -> np.ndarray:
    """Grey image with a red block in the top-left corner, to track orientation."""
    a = np.full((h, w, 3), 128, np.uint8)
    a[:60, :80] = (255, 0, 0)
    return a


def _reason(path: Path, **kw: Any) -> str:
    with pytest.raises(ImageRejectedError) as info:
        load_photo(path, **kw)
    return info.value.reason


def test_plain_jpeg_loads_as_rgb(tmp_path: Path) -> None:
    p = tmp_path / "a.jpg"
    Image.fromarray(_marked_rgb()).save(p, quality=95)
    photo = load_photo(p)
    assert photo.rgb.dtype == np.uint8 and photo.rgb.shape == (360, 480, 3)
    assert (photo.width, photo.height, photo.format, photo.original_mode) == (480, 360, "JPEG", "RGB")
    assert not photo.exif_rotated and photo.rgb.flags["C_CONTIGUOUS"]
    assert photo.rgb[20, 20, 0] > 200 and photo.rgb[20, 20, 2] < 60


def test_exif_orientation_6_is_applied(tmp_path: Path) -> None:
    p = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    Image.fromarray(_marked_rgb()).save(p, quality=95, exif=exif.tobytes())
    photo = load_photo(p)
    assert photo.exif_rotated
    assert (photo.width, photo.height) == (360, 480)
    # Rotating clockwise moves the top-left marker to the top-right corner.
    assert photo.rgb[20, 360 - 20, 0] > 200 and photo.rgb[20, 360 - 20, 1] < 60
    assert photo.rgb[20, 20, 0] < 160


@pytest.mark.parametrize("mode", ["CMYK", "P", "LA", "RGBA", "I;16", "I", "F", "1", "L"])
def test_odd_modes_load_as_rgb(tmp_path: Path, mode: str) -> None:
    base = Image.fromarray(_marked_rgb())
    if mode in ("I;16", "I", "F"):
        grey = np.asarray(base.convert("L"), np.float64)
        if mode == "I;16":
            img = Image.fromarray((grey * 257).astype(np.uint16))
            assert img.mode.startswith("I;16")
        elif mode == "I":
            img = Image.fromarray((grey * 257).astype(np.int32))
        else:
            img = Image.fromarray((grey / 255.0).astype(np.float32))
        suffix = ".png" if mode == "I;16" else ".tif"
    else:
        img = base.convert(mode)
        suffix = ".jpg" if mode == "CMYK" else ".png"
    p = tmp_path / f"img{suffix}"
    img.save(p)
    photo = load_photo(p)
    assert photo.rgb.dtype == np.uint8 and photo.rgb.shape == (360, 480, 3)
    if mode in ("I;16", "I", "F"):
        # Brightness survives the 16-bit / float -> 8-bit scaling (grey 128 stays ~128).
        assert abs(int(photo.rgb[200, 300, 0]) - 128) <= 2
        assert abs(int(photo.rgb[20, 20, 0]) - 76) <= 2  # the red marker's luma (0.299 * 255)


def test_transparency_is_composited_on_white(tmp_path: Path) -> None:
    rgba = np.zeros((360, 480, 4), np.uint8)
    rgba[..., :3] = 10
    rgba[:, 240:, 3] = 255  # left half fully transparent
    p = tmp_path / "t.png"
    Image.fromarray(rgba, "RGBA").save(p)
    rgb = load_photo(p).rgb
    assert rgb[100, 10].tolist() == [255, 255, 255]
    assert rgb[100, 400].tolist() == [10, 10, 10]

    la = Image.fromarray(rgba).convert("LA")
    la.save(tmp_path / "la.png")
    assert load_photo(tmp_path / "la.png").rgb[100, 10].tolist() == [255, 255, 255]

    pal = Image.fromarray(rgba).convert("RGB").convert("P", palette=Image.Palette.ADAPTIVE, colors=4)
    pal.info["transparency"] = int(np.asarray(pal)[100, 400])
    pal.save(tmp_path / "p.png", transparency=pal.info["transparency"])
    assert load_photo(tmp_path / "p.png").rgb[100, 400].tolist() == [255, 255, 255]


def test_truncated_jpeg_is_corrupt(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (400, 500, 3), dtype=np.uint8)).save(buf, "JPEG")
    p = tmp_path / "cut.jpg"
    p.write_bytes(buf.getvalue()[: len(buf.getvalue()) * 2 // 3])
    assert _reason(p) == "corrupt"


def test_text_file_is_not_an_image(tmp_path: Path) -> None:
    p = tmp_path / "notes.jpg"
    p.write_text("this is a listing description, not a photo\n" * 20)
    assert _reason(p) == "not_an_image"


def test_disallowed_format_is_not_an_image(tmp_path: Path) -> None:
    p = tmp_path / "x.ico"
    Image.fromarray(_marked_rgb(64, 64)).save(p)
    assert _reason(p) == "not_an_image"


def _png_header_only(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        return struct.pack(">I", len(data)) + kind + data + crc

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    body = chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + body


def test_decompression_bomb_rejected_from_header_without_allocating(tmp_path: Path) -> None:
    p = tmp_path / "bomb.png"
    p.write_bytes(_png_header_only(30000, 30000))
    tracemalloc.start()
    try:
        assert _reason(p) == "too_large"
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 20_000_000  # 30000 x 30000 x 3 would be 2.7 GB


def test_pixel_limit_is_a_parameter(tmp_path: Path) -> None:
    p = tmp_path / "big.png"
    p.write_bytes(_png_header_only(12000, 8000))  # 96 MP: under Pillow's own error limit
    assert _reason(p) == "too_large"
    q = tmp_path / "ok.jpg"
    Image.fromarray(_marked_rgb()).save(q)
    assert _reason(q, max_pixels=100_000) == "too_large"


def test_size_limits(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    assert _reason(empty) == "empty_file"
    p = tmp_path / "a.jpg"
    Image.fromarray(_marked_rgb()).save(p)
    assert _reason(p, max_bytes=100) == "file_too_big"
    small = tmp_path / "small.png"
    Image.fromarray(_marked_rgb(300, 200)).save(small)
    assert _reason(small) == "too_small"
    assert load_photo(small, min_side=100).height == 200
    assert _reason(tmp_path / "missing.jpg") == "unreadable"


def test_animated_gif_uses_first_frame_or_rejects(tmp_path: Path) -> None:
    frames = [Image.fromarray(np.full((340, 400, 3), v, np.uint8)) for v in (30, 220)]
    p = tmp_path / "anim.gif"
    frames[0].save(p, save_all=True, append_images=frames[1:], duration=100, loop=0)
    photo = load_photo(p)
    assert photo.frames == 2
    assert abs(int(photo.rgb[10, 10, 0]) - 30) <= 3
    assert _reason(p, reject_animated=True) == "animated"


def test_fingerprint_matches_recompressed_copy_not_other_photo() -> None:
    rng = np.random.default_rng(1)
    base = (np.kron(rng.random((12, 16, 3)), np.ones((40, 40, 1))) * 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(base).resize((320, 240)).save(buf, "JPEG", quality=60)
    copy = np.asarray(Image.open(buf).convert("RGB"))
    other = (np.kron(rng.random((12, 16, 3)), np.ones((40, 40, 1))) * 255).astype(np.uint8)
    fp = photo_fingerprint(base)
    assert len(fp) == 32
    assert fingerprint_distance(fp, photo_fingerprint(copy)) <= 10
    assert fingerprint_distance(fp, photo_fingerprint(other)) > 30


def test_resize_max() -> None:
    a = np.zeros((1000, 3000, 3), np.uint8)
    assert resize_max(a, 600).shape == (200, 600, 3)
    assert resize_max(a, 5000) is a


def test_room_label_normalisation() -> None:
    cases = {
        "frontal": "exterior",
        "Front": "exterior",
        "facade": "exterior",
        "living": "living_room",
        "LivingRoom": "living_room",
        "family_room": "living_room",
        "bath": "bathroom",
        "Master Bath": "bathroom",
        "backyard": "outdoor",
        "yard": "outdoor",
        "garden": "outdoor",
        "patio": "outdoor",
        "pool": "outdoor",
        "dining": "dining_room",
        "Bedroom 2": "bedroom",
        "kitchen1": "kitchen",
        "office": "other",
        "house_001": None,
        "misc": None,
        None: None,
    }
    for name, label in cases.items():
        assert normalize_room_label(name) == label, name


def test_list_photo_files_labels_hidden_and_order(tmp_path: Path) -> None:
    for rel in [
        "b.jpg",
        "a10.jpg",
        "a2.jpg",
        ".hidden.jpg",
        "kitchen/k.jpg",
        "Frontal/f.jpg",
        "Living Room/l.png",
        "misc/m.jpg",
        "house_1/bath/x.jpg",
        ".git/c.jpg",
        "__MACOSX/kitchen/._k.jpg",
        "kitchen/readme.txt",
        "kitchen/._k.jpg",
    ]:
        f = tmp_path / rel
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(b"x")
    found = [(p.relative_to(tmp_path).as_posix(), label) for p, label in list_photo_files(tmp_path)]
    assert found == [
        ("a2.jpg", None),
        ("a10.jpg", None),
        ("b.jpg", None),
        ("Frontal/f.jpg", "exterior"),
        ("house_1/bath/x.jpg", "bathroom"),
        ("kitchen/k.jpg", "kitchen"),
        ("kitchen/readme.txt", "kitchen"),
        ("Living Room/l.png", "living_room"),
        ("misc/m.jpg", None),
    ]
