"""Depth that comes with a photo: a sidecar file next to it, or a depth map the camera embedded.

Everything returns `PhotoDepth` (inverse depth, the form the parallax renderer works in) or None when
the photo has no depth. Nothing here estimates depth; a model (Depth Anything V2 Small) would be
another source of the same type.

Sidecars, looked up next to ``NAME.jpg`` in this order (`sidecar_path`):

* ``NAME.depth.png``, 16-bit: **metric depth along the optical axis (z, not range) in millimetres**,
  0 = no depth (sky, a window, a sensor hole: treated as infinitely far). Range 1 mm - 65.5 m. This is
  what `app.samples` writes and what RealSense/Kinect-style tools export.
* ``NAME.depth.png``, 8-bit: **relative inverse depth** (disparity), 255 = nearest, 0 = farthest or
  unknown: the usual visualisation of monocular models (Depth Anything, MiDaS). Not metric.
* ``NAME.depth.tiff`` / ``.tif`` / ``.exr``: float32 metric depth z in metres (0, negative or non-finite
  = unknown). EXR only where the OpenCV build can read it (`cv2.haveImageReader`), else ignored.

The depth map may have any resolution: the renderer resamples it to the photo. EXIF orientation is
not applied to sidecars: they must be stored in the photo's displayed orientation.

Embedded (JPEG, APP1 XMP), `read_embedded_depth`:

* **GDepth** (Google Camera "Lens Blur", namespace ``http://ns.google.com/photos/1.0/depthmap/``):
  ``GDepth:Format`` RangeInverse | RangeLinear, ``GDepth:Near``/``Far`` (metres), ``GDepth:Mime`` and the
  base64 ``GDepth:Data``, usually in Extended XMP (APP1 ``http://ns.adobe.com/xmp/extension/`` chunks
  with the GUID of ``xmpNote:HasExtendedXMP``, reassembled by offset);
* **Dynamic Depth 1.0** (``http://ns.google.com/photos/dd/1.0/``): a ``Depth:DepthMap`` whose
  ``Depth:ItemURI`` names an item of the ``Container:Directory``; items are stored one after another
  after the primary JPEG's end, each ``Item:Length`` (+ ``Item:Padding``) bytes.

Normalised depth value dn in 0..1 (8- or 16-bit image): RangeLinear z = near + dn (far - near);
RangeInverse z = far near / (far - dn (far - near)).
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import struct
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

__all__ = [
    "DEPTH_MM_PER_UNIT",
    "PhotoDepth",
    "embed_dynamic_depth",
    "embed_gdepth",
    "load_photo_depth",
    "read_depth_file",
    "read_embedded_depth",
    "sidecar_path",
    "write_depth_png",
]

#: 16-bit sidecar PNG unit: millimetres.
DEPTH_MM_PER_UNIT = 1.0
_SIDECAR_SUFFIXES = (".depth.png", ".depth.tiff", ".depth.tif", ".depth.exr")
_XMP_STD = b"http://ns.adobe.com/xap/1.0/\x00"
_XMP_EXT = b"http://ns.adobe.com/xmp/extension/\x00"
_NS_GDEPTH = "http://ns.google.com/photos/1.0/depthmap/"
_NS_DD_DEPTH = "http://ns.google.com/photos/dd/1.0/depthmap/"
_NS_DD_ITEM = "http://ns.google.com/photos/dd/1.0/item/"
_NS_XMPNOTE = "http://ns.adobe.com/xmp/note/"
#: Refuse depth images bigger than this (a depth map is never a bomb's worth of pixels).
_MAX_DEPTH_PIXELS = 50_000_000


@dataclass(frozen=True)
class PhotoDepth:
    """A photo's depth as inverse depth: float32 HxW, 1/metres when `metric`, else relative (larger =
    nearer); 0 = unknown or infinitely far. `source`: sidecar_png16 | sidecar_png8 | sidecar_float |
    gdepth | dynamic_depth."""

    inverse_depth: np.ndarray
    metric: bool
    source: str


def sidecar_path(photo: str | os.PathLike[str]) -> Path | None:
    """The first existing ``NAME.depth.*`` sidecar of `photo` (see the module docstring), or None."""
    p = Path(photo)
    stem = p.with_suffix("")
    for suffix in _SIDECAR_SUFFIXES:
        candidate = stem.with_name(stem.name + suffix)
        try:
            if candidate.is_file():
                return candidate
        except OSError:  # the photo's name plus the suffix is longer than the file system allows
            continue
    return None


def _inverse_of_metric(z: np.ndarray) -> np.ndarray:
    z = z.astype(np.float32)
    ok = np.isfinite(z) & (z > 0)
    inv = np.zeros(z.shape, np.float32)
    inv[ok] = 1.0 / z[ok]
    return inv


def read_depth_file(path: str | os.PathLike[str]) -> PhotoDepth | None:
    """Read one sidecar (PNG 16/8-bit, float TIFF/EXR); None when it cannot be read as a depth map."""
    p = Path(path)
    if p.suffix.lower() == ".exr" and not cv2.haveImageReader(str(p)):
        return None
    img = cv2.imread(str(p), cv2.IMREAD_UNCHANGED | cv2.IMREAD_ANYDEPTH)
    if img is None or img.size == 0:
        return None
    if img.ndim == 3:
        img = img[:, :, 0]
    if img.dtype == np.uint16:
        return PhotoDepth(
            _inverse_of_metric(img.astype(np.float32) * (DEPTH_MM_PER_UNIT / 1000.0)), True, "sidecar_png16"
        )
    if img.dtype == np.uint8:
        return PhotoDepth(img.astype(np.float32) / 255.0, False, "sidecar_png8")
    if img.dtype in (np.float32, np.float64):
        return PhotoDepth(_inverse_of_metric(img), True, "sidecar_float")
    return None


def write_depth_png(path: str | os.PathLike[str], depth_m: np.ndarray) -> None:
    """Write metric depth (metres; 0/non-finite = unknown) as a 16-bit millimetre sidecar PNG."""
    z = np.asarray(depth_m, np.float64)
    mm = np.where(np.isfinite(z) & (z > 0), z * 1000.0 / DEPTH_MM_PER_UNIT, 0.0)
    if not cv2.imwrite(str(path), np.clip(np.round(mm), 0, 65535).astype(np.uint16)):
        raise OSError(f"could not write {path}")


# --- JPEG segments and XMP ----------------------------------------------------------------------------


def _app1_segments(data: bytes) -> tuple[list[bytes], int]:
    """Payloads of the APP1 segments before the scan, and the offset just past the primary image's EOI
    (0 when the JPEG is malformed)."""
    if data[:2] != b"\xff\xd8":
        return [], 0
    out: list[bytes] = []
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            return out, 0
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        (length,) = struct.unpack(">H", data[i + 2 : i + 4])
        if marker == 0xE1:
            out.append(data[i + 4 : i + 2 + length])
        if marker == 0xDA:  # start of scan: entropy data up to the first EOI (0xFF is stuffed with 0x00)
            end = data.find(b"\xff\xd9", i + 2 + length)
            return out, (end + 2 if end >= 0 else 0)
        i += 2 + length
    return out, 0


def _xmp_packets(segments: list[bytes]) -> tuple[list[str], dict[str, str]]:
    """Standard XMP packets, and Extended XMP reassembled per GUID."""
    standard: list[str] = []
    chunks: dict[str, dict[int, bytes]] = {}
    for seg in segments:
        if seg.startswith(_XMP_STD):
            standard.append(seg[len(_XMP_STD) :].decode("utf-8", "replace"))
        elif seg.startswith(_XMP_EXT) and len(seg) >= len(_XMP_EXT) + 40:
            body = seg[len(_XMP_EXT) :]
            guid = body[:32].decode("ascii", "replace")
            (offset,) = struct.unpack(">I", body[36:40])
            chunks.setdefault(guid, {})[offset] = body[40:]
    extended = {g: b"".join(parts[k] for k in sorted(parts)).decode("utf-8", "replace") for g, parts in chunks.items()}
    return standard, extended


def _xmp_properties(packet: str) -> list[dict[tuple[str, str], str]]:
    """Every rdf:Description / element of an XMP packet as {(namespace, name): value}, attributes and
    simple child elements alike. Packets with a DTD are refused (no entity expansion)."""
    if "<!DOCTYPE" in packet or "<!ENTITY" in packet:
        return []
    start = packet.find("<x:xmpmeta")
    if start < 0:
        start = packet.find("<")
    end = packet.rfind(">")
    try:
        root = ET.fromstring(packet[start : end + 1])
    except ET.ParseError:
        return []
    found: list[dict[tuple[str, str], str]] = []
    for el in root.iter():
        props: dict[tuple[str, str], str] = {}
        for key, value in el.attrib.items():
            props[_qname(key)] = value
        for child in el:
            if len(child) == 0 and child.text and child.text.strip():
                props[_qname(child.tag)] = child.text.strip()
        if props:
            found.append(props)
    return found


def _qname(tag: str) -> tuple[str, str]:
    if tag.startswith("{"):
        ns, _, name = tag[1:].partition("}")
        return ns, name
    return "", tag


def _decode_depth_image(blob: bytes, fmt: str, near: float, far: float) -> np.ndarray | None:
    """Depth image bytes (PNG/JPEG, 8 or 16 bit) -> inverse metric depth."""
    img = cv2.imdecode(np.frombuffer(blob, np.uint8), cv2.IMREAD_UNCHANGED | cv2.IMREAD_ANYDEPTH)
    if img is None or img.size == 0 or img.size > _MAX_DEPTH_PIXELS:
        return None
    if img.ndim == 3:
        img = img[:, :, 0]
    dn = img.astype(np.float64) / (65535.0 if img.dtype == np.uint16 else 255.0)
    if not (0 < near < far and np.isfinite(far)):
        return None
    if fmt.lower() == "rangelinear":
        z = near + dn * (far - near)
    else:  # RangeInverse (the default in both specs)
        z = far * near / (far - dn * (far - near))
    return (1.0 / z).astype(np.float32)


def _float(props: dict[tuple[str, str], str], ns: str, name: str) -> float:
    try:
        return float(props.get((ns, name), "nan"))
    except ValueError:
        return float("nan")


def _gdepth(packets: list[str], extended: dict[str, str]) -> PhotoDepth | None:
    props: dict[tuple[str, str], str] = {}
    for packet in packets + list(extended.values()):
        for entry in _xmp_properties(packet):
            props.update({k: v for k, v in entry.items() if k[0] in (_NS_GDEPTH, _NS_XMPNOTE)})
    data = props.get((_NS_GDEPTH, "Data"))
    if not data:
        return None
    try:
        blob = base64.b64decode(re.sub(r"\s+", "", data), validate=True)
    except (binascii.Error, ValueError):
        return None
    near, far = _float(props, _NS_GDEPTH, "Near"), _float(props, _NS_GDEPTH, "Far")
    inv = _decode_depth_image(blob, props.get((_NS_GDEPTH, "Format"), "RangeInverse"), near, far)
    return PhotoDepth(inv, True, "gdepth") if inv is not None else None


def _dynamic_depth(packets: list[str], data: bytes, primary_end: int) -> PhotoDepth | None:
    entries = [e for p in packets for e in _xmp_properties(p)]
    depth = next((e for e in entries if (_NS_DD_DEPTH, "ItemURI") in e), None)
    items = [e for e in entries if (_NS_DD_ITEM, "Mime") in e]
    if depth is None or not items or primary_end <= 0:
        return None
    uri = depth[(_NS_DD_DEPTH, "ItemURI")]
    offset = primary_end
    for i, item in enumerate(items):
        try:
            length = int(item.get((_NS_DD_ITEM, "Length"), "0"))
            padding = int(item.get((_NS_DD_ITEM, "Padding"), "0"))
        except ValueError:
            return None
        if i == 0:  # the primary image: its bytes are the JPEG itself
            continue
        if item.get((_NS_DD_ITEM, "DataURI")) == uri:
            blob = data[offset : offset + length]
            near, far = _float(depth, _NS_DD_DEPTH, "Near"), _float(depth, _NS_DD_DEPTH, "Far")
            inv = _decode_depth_image(blob, depth.get((_NS_DD_DEPTH, "Format"), "RangeInverse"), near, far)
            return PhotoDepth(inv, True, "dynamic_depth") if inv is not None else None
        offset += length + padding
    return None


def read_embedded_depth(jpeg: bytes | str | os.PathLike[str]) -> PhotoDepth | None:
    """Depth embedded in a JPEG (GDepth or Dynamic Depth XMP), or None when there is none (or it is
    unreadable: a broken depth map never fails the photo)."""
    data = jpeg if isinstance(jpeg, bytes) else Path(jpeg).read_bytes()
    segments, primary_end = _app1_segments(data)
    if not segments:
        return None
    packets, extended = _xmp_packets(segments)
    return _gdepth(packets, extended) or _dynamic_depth(packets, data, primary_end)


def load_photo_depth(photo: str | os.PathLike[str]) -> PhotoDepth | None:
    """A photo's depth: its sidecar if there is one, else depth embedded in the JPEG, else None."""
    side = sidecar_path(photo)
    if side is not None:
        found = read_depth_file(side)
        if found is not None:
            return found
    p = Path(photo)
    if p.suffix.lower() in (".jpg", ".jpeg") and p.is_file():
        return read_embedded_depth(p)
    return None


# --- writers (tests, sample listings) -----------------------------------------------------------------


def _encode_range(depth_m: np.ndarray, near: float, far: float, fmt: str) -> bytes:
    z = np.clip(np.asarray(depth_m, np.float64), near, far)
    dn = (z - near) / (far - near) if fmt == "RangeLinear" else far * (z - near) / (z * (far - near))
    ok, png = cv2.imencode(".png", np.round(dn * 65535).astype(np.uint16))
    if not ok:
        raise OSError("could not encode the depth image")
    return png.tobytes()


def _app1(payload: bytes) -> bytes:
    if len(payload) + 2 > 0xFFFF:
        raise ValueError("APP1 payload too large")
    return b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload


def _xmp_packet(description: str) -> str:
    return (
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        f"{description}</rdf:RDF></x:xmpmeta>"
    )


def embed_gdepth(jpeg: bytes, depth_m: np.ndarray, *, near: float, far: float, fmt: str = "RangeInverse") -> bytes:
    """`jpeg` with `depth_m` (metres) embedded as GDepth XMP, its data in Extended XMP chunks."""
    data = base64.b64encode(_encode_range(depth_m, near, far, fmt)).decode("ascii")
    ext = _xmp_packet(f'<rdf:Description rdf:about="" xmlns:GDepth="{_NS_GDEPTH}" GDepth:Data="{data}"/>').encode()
    guid = uuid.uuid4().hex.upper()
    std = _xmp_packet(
        f'<rdf:Description rdf:about="" xmlns:GDepth="{_NS_GDEPTH}" xmlns:xmpNote="{_NS_XMPNOTE}" '
        f'GDepth:Format="{fmt}" GDepth:Near="{near}" GDepth:Far="{far}" GDepth:Mime="image/png" '
        f'xmpNote:HasExtendedXMP="{guid}"/>'
    ).encode()
    segments = [_app1(_XMP_STD + std)]
    step = 65000
    for off in range(0, len(ext), step):
        header = _XMP_EXT + guid.encode() + struct.pack(">II", len(ext), off)
        segments.append(_app1(header + ext[off : off + step]))
    return jpeg[:2] + b"".join(segments) + jpeg[2:]


def embed_dynamic_depth(jpeg: bytes, depth_m: np.ndarray, *, near: float, far: float) -> bytes:
    """`jpeg` as a Dynamic Depth 1.0 file: container directory in XMP, the depth PNG appended."""
    png = _encode_range(depth_m, near, far, "RangeInverse")
    dd = "http://ns.google.com/photos/dd/1.0/"
    desc = (
        f'<rdf:Description rdf:about="" xmlns:Device="{dd}device/" xmlns:Container="{dd}container/" '
        f'xmlns:Item="{_NS_DD_ITEM}" xmlns:Depth="{_NS_DD_DEPTH}">'
        "<Device:Container><Container:Directory><rdf:Seq>"
        '<rdf:li rdf:parseType="Resource"><Container:Item Item:Mime="image/jpeg" Item:Semantic="Primary" '
        'Item:Length="0"/></rdf:li>'
        '<rdf:li rdf:parseType="Resource"><Container:Item Item:Mime="image/png" Item:Semantic="Depth" '
        f'Item:Length="{len(png)}" Item:Padding="0" Item:DataURI="android/depthmap"/></rdf:li>'
        "</rdf:Seq></Container:Directory></Device:Container>"
        f'<Depth:DepthMap Depth:Format="RangeInverse" Depth:Near="{near}" Depth:Far="{far}" '
        'Depth:Units="Meters" Depth:ItemSemantic="Depth" Depth:ItemURI="android/depthmap"/>'
        "</rdf:Description>"
    )
    packet = _app1(_XMP_STD + _xmp_packet(desc).encode())
    return jpeg[:2] + packet + jpeg[2:] + png


#: Public: the sidecar suffixes, best first (the ingest and phase 1 look for these).
SIDECAR_SUFFIXES = _SIDECAR_SUFFIXES


def is_depth_sidecar(name: str) -> bool:
    """Whether a file name is a depth sidecar (``NAME.depth.png`` …), not a photo of the listing."""
    return name.lower().endswith(SIDECAR_SUFFIXES)
