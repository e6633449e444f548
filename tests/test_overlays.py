"""Overlay layers, templates and fonts: layout inside the safe areas, OCR-readable text (the real PP-OCR
reader), no agent identity in the unbranded cut, fades and time windows, the layer spec round trip."""

from __future__ import annotations

import json
import re
import time
from dataclasses import replace

import cv2
import numpy as np
import pytest
from PIL import Image

from app.errors import InvalidInputError
from app.media import fonts
from app.media.deliverables import FORMATS, DeliverableSpec, FrameFormat, ListingFacts
from app.media.overlays import (
    AI_DISCLOSURE,
    LAYER_TYPES,
    TEMPLATES,
    Captions,
    Cue,
    EndCard,
    Layer,
    Logo,
    LowerThird,
    OverlayCompositor,
    TitleCard,
    build_layers,
    facts_line,
    get_template,
    identity_violations,
    layer_from_dict,
    template_for_job,
)
from app.media.text_regions import TextRegion, detect_text_regions
from app.models.ocr import RapidTextReader, load_text_reader

FACTS = ListingFacts(
    address="1234 Sunnyvale Boulevard, San Francisco, CA 94110",
    price="$1,250,000",
    beds=3,
    baths=2,
    sqft=1850,
    headline="Modern hillside retreat",
    agent_name="Jane Doe",
    agent_phone="(415) 555-0134",
    agent_email="jane@doerealty.com",
    brokerage="Doe Realty Group",
)
DURATION = 30.0
CAPTION = "Welcome to this stunning hillside home with panoramic views of the bay and the city lights"


@pytest.fixture(scope="module")
def reader() -> RapidTextReader:
    return load_text_reader()


def busy(width: int, height: int, seed: int = 0) -> np.ndarray:
    """A photo-like worst case: saturated blotches, grain, hard-edged blocks and blown-out white windows."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (height // 40 + 1, width // 40 + 1, 3), np.uint8)
    img = cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC).astype(np.int16)
    img += rng.integers(-40, 40, (height, width, 3), dtype=np.int16)
    for _ in range(60):
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        cv2.rectangle(img, (x, y), (x + int(rng.integers(20, 400)), y + int(rng.integers(5, 200))), colour, -1)
    for _ in range(12):
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        cv2.rectangle(img, (x, y), (x + 300, y + 200), (250, 250, 250), -1)
    return np.clip(img, 0, 255).astype(np.uint8)


def squash(text: str) -> str:
    """Letters and digits only, lower case: PP-OCR drops spaces ("JaneDoe") and reads "·" loosely."""
    return re.sub(r"[^0-9a-z]", "", text.casefold())


def ocr(rgb: np.ndarray, reader: RapidTextReader) -> list[TextRegion]:
    return [r for r in detect_text_regions(rgb, reader) if r.score >= 0.5]


def found(regions: list[TextRegion], text: str) -> list[TextRegion]:
    return [r for r in regions if squash(text) in squash(r.text)]


def inside(box: tuple[float, float, float, float], frame: FrameFormat, tol: float = 0.005) -> bool:
    s = frame.text_safe
    return box[0] >= s.x0 - tol and box[1] >= s.y0 - tol and box[2] <= s.x1 + tol and box[3] <= s.y1 + tol


def layer(layers: list[Layer], kind: type[Layer]) -> Layer:
    return next(x for x in layers if isinstance(x, kind))


def mid(x: Layer) -> float:
    return x.start + x.duration / 2


# ---------------------------------------------------------------------------------------------
# Readability and placement, every format
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_branded_title_card_and_lower_third_are_read_back_inside_text_safe(fmt: str, reader: RapidTextReader) -> None:
    frame = FORMATS[fmt]
    layers = build_layers(FACTS, DeliverableSpec(format=fmt), duration=DURATION, template="modern")
    comp = OverlayCompositor(frame, layers)
    background = busy(frame.width, frame.height, seed=1)

    title = layer(layers, TitleCard)
    regions = ocr(comp.composite(background.copy(), mid(title)), reader)
    (title_box,) = [b for kind, b, _ in comp.boxes(mid(title)) if kind == "title_card"]
    price = found(regions, "$1,250,000")
    assert price, [r.text for r in regions]
    text = squash(" ".join(r.text for r in regions))
    assert squash("1234 Sunnyvale Boulevard") in text and squash("San Francisco, CA 94110") in text, text
    address = [r for r in regions if "sunnyvale" in squash(r.text) or "francisco" in squash(r.text)]
    for region in price + address:
        assert inside(region.box, frame), (region.text, region.box)
        x0, y0, x1, y1 = title_box
        cx, cy = (region.box[0] + region.box[2]) / 2 * frame.width, (region.box[1] + region.box[3]) / 2 * frame.height
        assert x0 <= cx <= x1 and y0 <= cy <= y1, (region.text, title_box)

    lower = layer(layers, LowerThird)
    regions = ocr(comp.composite(background.copy(), mid(lower)), reader)
    assert found(regions, "$1,250,000") and found(regions, "1,850 sqft"), [r.text for r in regions]
    assert all(inside(r.box, frame) for r in regions), [(r.text, r.box) for r in regions]


@pytest.mark.parametrize("template", ["classic", "minimal"])
def test_other_templates_read_back_over_a_white_sky(template: str, reader: RapidTextReader) -> None:
    frame = FORMATS["16:9"]
    layers = build_layers(FACTS, DeliverableSpec(format="16:9"), duration=DURATION, template=template)
    background = busy(frame.width, frame.height, seed=2)
    background[frame.height // 3 :] = 245  # the text sits on blown-out white: the worst case for white text
    comp = OverlayCompositor(frame, layers)
    regions = ocr(comp.composite(background, mid(layer(layers, TitleCard))), reader)
    assert found(regions, "$1,250,000") and found(regions, "Sunnyvale Boulevard"), [r.text for r in regions]


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_unbranded_carries_no_agent_identity(fmt: str, reader: RapidTextReader) -> None:
    frame = FORMATS[fmt]
    spec = DeliverableSpec(format=fmt, variant="unbranded")
    layers = build_layers(FACTS, spec, duration=DURATION, template="modern", disclosure=AI_DISCLOSURE)
    assert identity_violations(layers, FACTS) == []
    assert not any(isinstance(x, Logo) for x in layers)
    end = layer(layers, EndCard)
    assert isinstance(end, EndCard)
    assert (end.agent_name, end.agent_phone, end.agent_email, end.brokerage, end.logo_path) == (None,) * 5
    everything = " ".join(t for x in layers for t in x.texts())
    assert "1234 Sunnyvale" in everything and "$1,250,000" in everything  # listing facts stay

    comp = OverlayCompositor(frame, layers)
    regions = ocr(comp.composite(busy(frame.width, frame.height, seed=3), mid(end)), reader)
    text = squash(" ".join(r.text for r in regions))
    assert squash("Sunnyvale Boulevard") in text and squash("generated with") in text, text
    for identity in ("Jane Doe", "Doe", "5550134", "doerealty"):
        assert squash(identity) not in text


def test_identity_violations_finds_every_kind_of_identity(tmp_path) -> None:
    logo = tmp_path / "logo.png"
    Image.new("RGBA", (200, 100), (200, 30, 30, 255)).save(logo)
    branded = build_layers(FACTS, DeliverableSpec(), duration=DURATION, logo_path=logo)
    problems = " | ".join(identity_violations(branded, FACTS))
    for expected in ("Jane Doe", "(415) 555-0134", "jane@doerealty.com", "Doe Realty Group", "logo"):
        assert expected in problems, problems
    # a phone number is found by its digits, whatever the punctuation; case and spacing do not matter
    sneaky = [LowerThird(title="Call 415.555.0134"), TitleCard(headline="listed by  JANE   doe")]
    assert len(identity_violations(sneaky, FACTS)) == 2
    with pytest.raises(InvalidInputError, match="Jane Doe"):
        build_layers(
            FACTS,
            DeliverableSpec(format="9:16", variant="unbranded"),
            duration=DURATION,
            captions=[(1.0, 3.0, "Call Jane Doe today")],
        )


def test_missing_facts_leave_their_layers_out() -> None:
    layers = build_layers(ListingFacts(beds=2), DeliverableSpec(), duration=DURATION)
    assert [x.type for x in layers] == ["lower_third"]
    assert layers[0].texts() == ["2 bd"]
    assert facts_line(ListingFacts(beds=3, baths=2.5, sqft=1850)) == "3 bd · 2.5 ba · 1,850 sqft"
    assert build_layers(ListingFacts(), DeliverableSpec(), duration=DURATION) == []


# ---------------------------------------------------------------------------------------------
# Captions
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["9:16", "16:9"])
def test_captions_wrap_inside_the_safe_area_and_read_back(fmt: str, reader: RapidTextReader) -> None:
    frame = FORMATS[fmt]
    spec = DeliverableSpec(format=fmt, captions="burned")
    layers = build_layers(FACTS, spec, duration=DURATION, captions=[(10.0, 16.0, CAPTION)])
    comp = OverlayCompositor(frame, layers)
    safe = frame.text_safe.pixels(frame.width, frame.height)
    # on 9:16 the cue is too long for two lines and is shown as consecutive parts; read each part once
    parts: dict[tuple[int, int, int, int], float] = {}
    for t in np.arange(10.05, 16.0, 0.2):
        for kind, box, alpha in comp.boxes(float(t)):
            if kind == "captions" and alpha > 0.99:
                parts.setdefault(box, float(t))
    assert len(parts) == (2 if fmt == "9:16" else 1), parts
    read = []
    for (x0, y0, x1, y1), t in parts.items():
        assert safe[0] <= x0 and safe[1] <= y0 and x1 <= safe[2] and y1 <= safe[3], ((x0, y0, x1, y1), safe)
        assert y1 > safe[1] + 0.7 * (safe[3] - safe[1])  # in the lower part of the safe area
        regions = ocr(comp.composite(busy(frame.width, frame.height, seed=4), t), reader)
        lines = [r for r in regions if r.box[1] * frame.height >= y0 - 2 and r.box[3] * frame.height <= y1 + 2]
        assert 1 <= len(lines) <= 2, [r.text for r in lines]
        read += [r.text for r in lines]
    assert squash(" ".join(read)) == squash(CAPTION), read


def test_captions_keep_other_bottom_layers_above_their_band() -> None:
    frame = FORMATS["9:16"]
    spec = DeliverableSpec(format="9:16", captions="burned")
    layers = build_layers(FACTS, spec, duration=DURATION, captions=[(0.0, DURATION, "Open house Saturday")])
    comp = OverlayCompositor(frame, layers)
    for t in (mid(layer(layers, TitleCard)), mid(layer(layers, LowerThird))):
        boxes = dict((kind, b) for kind, b, _ in comp.boxes(t))
        assert boxes["captions"][1] > (boxes.get("title_card") or boxes["lower_third"])[3]
    # sidecar deliverables get no burned captions
    assert not any(
        isinstance(x, Captions) for x in build_layers(FACTS, DeliverableSpec(), duration=9, captions=[(0, 1, "x")])
    )


# ---------------------------------------------------------------------------------------------
# Time: fades and windows
# ---------------------------------------------------------------------------------------------


def test_fades_ramp_and_layers_outside_their_window_do_not_draw() -> None:
    frame = FORMATS["16:9"]
    title = TitleCard(address="12 Oak St", price="$900,000", start=2.0, duration=4.0, fade_in=0.5, fade_out=0.5)
    assert title.opacity(2.05) < title.opacity(2.3) < title.opacity(4.0) == 1.0
    assert title.opacity(5.95) < title.opacity(5.7) < 1.0
    comp = OverlayCompositor(frame, [title])
    background = busy(frame.width, frame.height)
    (box,) = [b for _, b, _ in comp.boxes(4.0)]

    def change(t: float) -> float:
        out = comp.composite(background.copy(), t)
        x0, y0, x1, y1 = box
        return float(np.abs(out[y0:y1, x0:x1].astype(int) - background[y0:y1, x0:x1]).mean())

    assert 0 < change(2.05) < change(2.3) < change(4.0)
    for t in (0.0, 1.99, 6.0, 20.0):
        assert np.array_equal(comp.composite(background.copy(), t), background)
    # and nothing outside the patch's box is touched, even while it is up
    out = comp.composite(background.copy(), 4.0)
    x0, y0, x1, y1 = box
    out[y0:y1, x0:x1] = background[y0:y1, x0:x1]
    assert np.array_equal(out, background)


def test_preview_is_the_overlay_alone() -> None:
    frame = FORMATS["1:1"]
    comp = OverlayCompositor(frame, [LowerThird(title="Kitchen", start=0, duration=3)])
    image = comp.preview(1.5)
    assert image.mode == "RGBA" and image.size == (frame.width, frame.height)
    alpha = np.asarray(image)[:, :, 3]
    (box,) = [b for _, b, _ in comp.boxes(1.5)]
    assert alpha[box[1] : box[3], box[0] : box[2]].max() == 255
    assert alpha.sum() == alpha[box[1] : box[3], box[0] : box[2]].sum()
    assert np.asarray(comp.preview(5.0))[:, :, 3].max() == 0


def test_logo_bug_sits_in_the_top_right_corner_of_text_safe(tmp_path) -> None:
    path = tmp_path / "logo.png"
    Image.new("RGBA", (400, 200), (20, 90, 200, 255)).save(path)
    frame = FORMATS["9:16"]
    layers = build_layers(FACTS, DeliverableSpec(format="9:16"), duration=DURATION, logo_path=path)
    bug = layer(layers, Logo)
    comp = OverlayCompositor(frame, [bug])
    ((_, (x0, y0, x1, _y1), _),) = comp.boxes(mid(bug))
    safe = frame.text_safe.pixels(frame.width, frame.height)
    assert (x1, y0) == (safe[2], safe[1]) and x0 > frame.width / 2
    with pytest.raises(InvalidInputError, match="cannot be read"):
        OverlayCompositor(frame, [Logo(path=str(tmp_path / "missing.png"))])


def test_composite_is_fast_at_1080p() -> None:
    for fmt in ("16:9", "9:16"):
        frame = FORMATS[fmt]
        spec = DeliverableSpec(format=fmt, captions="burned")
        base = build_layers(FACTS, spec, duration=DURATION, captions=[(0.0, DURATION, "Panoramic views of the bay")])
        lower = replace(layer(base, LowerThird), start=0.0, duration=10.0, anchor="top-left")
        comp = OverlayCompositor(frame, [layer(base, TitleCard), lower, layer(base, Captions)])
        assert len(comp.boxes(2.0)) == 3
        frame_rgb = busy(frame.width, frame.height)
        times = []
        for _ in range(60):
            start = time.perf_counter()
            comp.composite(frame_rgb, 2.0)
            times.append(time.perf_counter() - start)
        # measured ~0.6 ms; the bound leaves room for a loaded CI machine
        assert float(np.median(times)) < 0.008, (fmt, np.median(times))


# ---------------------------------------------------------------------------------------------
# The layer spec
# ---------------------------------------------------------------------------------------------


def test_every_layer_round_trips_through_json(tmp_path) -> None:
    layers: list[Layer] = [
        TitleCard(headline="Hillside", address="1 Main St", price="$1", start=0.5, duration=3, style="classic"),
        LowerThird(title="Kitchen", subtitle=None, anchor="bottom-right", fade_in=0.2),
        EndCard(agent_name="A", agent_phone="1", agent_email="a@b.c", brokerage="B", logo_path="x.png", disclosure="d"),
        Captions(cues=(Cue(0.0, 1.5, "Hello"), Cue(1.5, 3.0, "World")), duration=3.0, style="minimal"),
        Logo(path="logo.png", height=0.05, anchor="top-left"),
    ]
    assert {x.type for x in layers} == set(LAYER_TYPES)
    for x in layers:
        data = json.loads(json.dumps(x.to_dict()))
        assert data["type"] == x.type
        assert layer_from_dict(data) == x
    # cues may also come as (start, end, text) triples
    assert Captions(cues=[(0, 1, "Hi")]).cues == (Cue(0.0, 1.0, "Hi"),)  # type: ignore[arg-type]


def test_unknown_template_layer_type_or_field_is_a_clear_error() -> None:
    with pytest.raises(InvalidInputError, match=r"unknown overlay template 'luxury'; known: modern, classic, minimal"):
        get_template("luxury")
    with pytest.raises(InvalidInputError, match="unknown overlay template"):
        build_layers(FACTS, DeliverableSpec(), duration=DURATION, template="luxury")
    with pytest.raises(InvalidInputError, match="unknown overlay template"):
        layer_from_dict({"type": "title_card", "price": "$1", "style": "luxury"})
    with pytest.raises(InvalidInputError, match="unknown overlay layer type 'sparkles'"):
        layer_from_dict({"type": "sparkles"})
    with pytest.raises(InvalidInputError, match="unknown field"):
        layer_from_dict({"type": "lower_third", "title": "x", "colour": "red"})
    with pytest.raises(InvalidInputError, match="anchor"):
        LowerThird(title="x", anchor="middle-earth")
    with pytest.raises(InvalidInputError, match="duration > 0"):
        LowerThird(title="x", duration=0)
    with pytest.raises(InvalidInputError, match="cue"):
        Cue(2.0, 1.0, "backwards")
    with pytest.raises(InvalidInputError, match="caption cue is"):
        layer_from_dict({"type": "captions", "cues": [[0.0, "no end"]]})
    with pytest.raises(InvalidInputError, match="logo"):
        Logo(path="x.png", alpha=2.0)
    # a job's free-form template_type falls back to the default rather than failing the job
    assert template_for_job("luxury") == "modern" and template_for_job(" Classic ") == "classic"
    assert template_for_job(None) == "modern" and set(TEMPLATES) == {"modern", "classic", "minimal"}


# ---------------------------------------------------------------------------------------------
# Fonts
# ---------------------------------------------------------------------------------------------


def test_fonts_come_from_the_installed_packages(monkeypatch: pytest.MonkeyPatch) -> None:
    for family in fonts.FAMILIES:
        for weight in fonts.weights(family):
            path = fonts.font_path(family, weight)
            assert path.is_file() and path.suffix == ".ttf"
    font = fonts.load_font("roboto", "bold", 48)
    assert font is fonts.load_font("roboto", "bold", 48)  # cached
    assert font.size == 48 and "Roboto" in (font.getname()[0] or "")
    with pytest.raises(ValueError, match="no weight 'semibold'"):
        fonts.font_path("roboto", "semibold")
    with pytest.raises(ValueError, match="unknown font family"):
        fonts.font_path("comic-sans", "regular")
    # a missing package is a loud error, never PIL's bitmap font or a download
    monkeypatch.setattr(fonts.importlib.util, "find_spec", lambda name: None)
    fonts._package_dir.cache_clear()
    try:
        with pytest.raises(fonts.FontUnavailableError, match="font-roboto is not installed"):
            fonts.font_path("roboto", "regular")
    finally:
        monkeypatch.undo()
        fonts._package_dir.cache_clear()
