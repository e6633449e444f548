"""Photo loading: every odd input either becomes an upright RGB uint8 array or a typed rejection."""

from __future__ import annotations

import io
import os
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
    check_photo_file,
    fingerprint_distance,
    list_photo_files,
    load_photo,
    normalize_room_label,
    photo_fingerprint,
    resize_max,
    scan_photo_folder,
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
    q = tmp_path / "ok.png"
    Image.fromarray(_marked_rgb()).save(q)
    assert _reason(q, max_pixels=100_000) == "too_large", "only JPEGs can be decoded at a reduced size"
    j = tmp_path / "ok.jpg"
    Image.fromarray(_marked_rgb()).save(j)
    assert _reason(j, max_pixels=10_000) == "too_large", "480x360 at 1/4 is still 10800 pixels"
    small = load_photo(j, max_pixels=50_000, min_side=10)
    assert (small.width, small.height, small.scale) == (240, 180, 2)


def _big_jpeg(path: Path, width: int, height: int) -> None:
    """A real JPEG of `width` x `height` (flat grey, a red block top-left), written without numpy."""
    img = Image.new("RGB", (width, height), (128, 128, 128))
    img.paste((255, 0, 0), (0, 0, width // 8, height // 8))
    img.save(path, quality=70)


def test_108_megapixel_phone_jpeg_is_decoded_at_half_size(tmp_path: Path) -> None:
    p = tmp_path / "phone.jpg"
    _big_jpeg(p, 12000, 9000)  # 108 MP: above the 80 MP default, as a 108 MP phone camera writes them
    tracemalloc.start()
    try:
        photo = load_photo(p)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (photo.width, photo.height, photo.scale, photo.format) == (6000, 4500, 2, "JPEG")
    assert photo.rgb[100, 100].tolist()[0] > 200 and photo.rgb[4000, 5000].tolist() == [128, 128, 128]
    assert peak < 200_000_000, "decoded at 27 MP (81 MB of RGB), never at 108 MP (324 MB)"


def test_jpeg_above_pillows_own_bomb_limit_is_still_scaled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A 200 MP phone JPEG is above twice Pillow's MAX_IMAGE_PIXELS, where `Image.open` itself refuses;
    shown here with Pillow's limit lowered instead of writing a 600 MB image."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1_000_000)
    p = tmp_path / "huge.jpg"
    _big_jpeg(p, 3000, 2000)  # 6 MP > 2 x 1 MP: Image.open raises DecompressionBombError
    photo = load_photo(p, max_pixels=2_000_000)
    assert (photo.width, photo.height, photo.scale) == (1500, 1000, 2)
    png = tmp_path / "huge.png"
    Image.new("RGB", (3000, 2000)).save(png)
    assert _reason(png, max_pixels=2_000_000) == "too_large", "other formats keep Pillow's refusal"


def _jpeg_claiming(width: int, height: int) -> bytes:
    """A small real JPEG whose SOF0 header is patched to claim `width` x `height`."""
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (90, 90, 90)).save(buf, "JPEG")
    data = bytearray(buf.getvalue())
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def test_jpeg_decompression_bomb_is_still_refused_without_decoding(tmp_path: Path) -> None:
    p = tmp_path / "bomb.jpg"
    p.write_bytes(_jpeg_claiming(65000, 65000))  # 4.2 gigapixels: not reducible under 80 MP at 1/4
    tracemalloc.start()
    try:
        with pytest.raises(ImageRejectedError) as info:
            load_photo(p)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert info.value.reason == "too_large" and "65000x65000" in info.value.detail
    assert peak < 20_000_000
    # Reducible by DCT scaling (40 MP at 1/4 is 2.5 MP): decoded at that size, so it costs no more
    # memory than the limit allows (libjpeg fills what the 1 KB of data does not cover); without its
    # end marker it is truncated, i.e. corrupt. 16x the limit is where scaling stops.
    q = tmp_path / "claims-40mp.jpg"
    q.write_bytes(_jpeg_claiming(8000, 5000))
    tracemalloc.start()
    try:
        photo = load_photo(q, max_pixels=5_000_000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (photo.width, photo.height, photo.scale) == (2000, 1250, 4)
    assert peak < 3 * 5_000_000 * 2
    q.write_bytes(_jpeg_claiming(8000, 5000)[:-2])
    assert _reason(q, max_pixels=5_000_000) == "corrupt"
    q.write_bytes(_jpeg_claiming(9000, 9000))  # 81 MP > 16 x 5 MP
    assert _reason(q, max_pixels=5_000_000) == "too_large"


def test_heic_from_an_iphone_decodes(tmp_path: Path) -> None:
    pillow_heif = pytest.importorskip("pillow_heif")
    assert pillow_heif.__version__ == "1.8.1", "requirements.txt pins pillow-heif"
    p = tmp_path / "IMG_0001.HEIC"
    pillow_heif.from_pillow(Image.fromarray(_marked_rgb())).save(p, quality=90)
    assert p.read_bytes()[4:12] in (b"ftypheic", b"ftypmif1"), "a real HEIF container"
    photo = load_photo(p)
    assert (photo.format, photo.width, photo.height) == ("HEIF", 480, 360)
    assert photo.rgb[20, 20, 0] > 200 and photo.rgb[20, 20, 2] < 80, "the red marker, top-left"
    assert abs(int(photo.rgb[200, 300, 1]) - 128) <= 6
    cut = tmp_path / "cut.heic"
    cut.write_bytes(p.read_bytes()[:400])
    assert _reason(cut) in ("corrupt", "not_an_image")


def test_rejections_name_the_file_never_its_folder(tmp_path: Path) -> None:
    """The folder may be the server's storage root: messages carry the file name only."""
    deep = tmp_path / "srv" / "storage root"
    deep.mkdir(parents=True)
    buf = io.BytesIO()
    Image.fromarray(np.zeros((400, 500, 3), np.uint8)).save(buf, "JPEG")
    cases = {
        "cut.jpg": buf.getvalue()[:900],
        "notes.jpg": b"not a photo" * 40,
        "empty.jpg": b"",
        "bomb.png": _png_header_only(30000, 30000),
    }
    for name, data in cases.items():
        (deep / name).write_bytes(data)
        with pytest.raises(ImageRejectedError) as info:
            load_photo(deep / name)
        assert str(info.value).startswith(f"{name}: "), str(info.value)
        assert str(tmp_path) not in str(info.value) and "storage root" not in str(info.value)
    with pytest.raises(ImageRejectedError) as info:
        load_photo(deep / "missing.jpg")
    assert info.value.reason == "unreadable" and str(tmp_path) not in str(info.value)


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


def test_symlinks_are_followed_only_inside_the_folder(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    (photos / "kitchen").mkdir(parents=True)
    secret = tmp_path / "secret.txt"
    secret.write_text("root:x:0:0")
    (photos / "kitchen" / "k.jpg").write_bytes(b"x")
    (photos / "inside.jpg").symlink_to(photos / "kitchen" / "k.jpg")
    (photos / "relative.jpg").symlink_to(Path("kitchen") / "k.jpg")
    (photos / "passwd.jpg").symlink_to(secret)
    (photos / "escape.jpg").symlink_to(Path("..") / "secret.txt")
    (photos / "chain.jpg").symlink_to(photos / "passwd.jpg")  # inside, but on to the outside
    (photos / "dangling.jpg").symlink_to(photos / "gone.jpg")
    (photos / "loop.jpg").symlink_to(photos / "loop.jpg")
    (photos / "outside_dir").symlink_to(tmp_path)  # folders are never followed
    os.mkfifo(photos / "pipe.jpg")  # not a file: never listed, never opened
    entries = {e.path.relative_to(photos).as_posix(): e for e in scan_photo_folder(photos)}
    assert set(entries) == {
        "chain.jpg",
        "dangling.jpg",
        "escape.jpg",
        "inside.jpg",
        "kitchen/k.jpg",
        "loop.jpg",
        "passwd.jpg",
        "relative.jpg",
    }
    rejected = {rel: e.rejected.split(":")[0] for rel, e in entries.items() if e.rejected}
    assert rejected == {
        "passwd.jpg": "outside_folder",
        "escape.jpg": "outside_folder",
        "chain.jpg": "outside_folder",
        "dangling.jpg": "unreadable",
        "loop.jpg": "unreadable",
    }
    assert sorted(p.relative_to(photos).as_posix() for p, _ in list_photo_files(photos)) == [
        "inside.jpg",
        "kitchen/k.jpg",
        "relative.jpg",
    ]
    # The photos folder itself may be a link: what is inside it stays inside.
    (tmp_path / "link-to-photos").symlink_to(photos)
    via_link = {e.path.name: e.rejected for e in scan_photo_folder(tmp_path / "link-to-photos")}
    assert via_link["inside.jpg"] is None and via_link["passwd.jpg"]


def test_check_photo_file_uses_stat_only(tmp_path: Path) -> None:
    big = tmp_path / "big.jpg"
    with open(big, "wb") as fh:
        fh.truncate(200_000_000)  # sparse: 200 MB by stat, nothing written
    with pytest.raises(ImageRejectedError) as info:
        check_photo_file(big, max_bytes=60_000_000)
    assert (info.value.reason, info.value.detail) == ("file_too_big", "200000000 bytes > limit 60000000")
    os.mkfifo(tmp_path / "pipe.jpg")
    with pytest.raises(ImageRejectedError) as info:
        check_photo_file(tmp_path / "pipe.jpg", max_bytes=10)  # would block for ever if opened
    assert (info.value.reason, info.value.detail) == ("unreadable", "not a regular file")
    with pytest.raises(ImageRejectedError) as info:
        check_photo_file(tmp_path, max_bytes=10)
    assert info.value.reason == "unreadable"
    ok = tmp_path / "ok.jpg"
    ok.write_bytes(b"12345")
    assert check_photo_file(ok, max_bytes=5) == 5
