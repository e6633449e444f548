"""Overlays as typed layers (title card, lower third, end card, burned-in captions, logo bug), drawn per frame.

In the spirit of editly's layer spec, an overlay is a value: a frozen dataclass with a ``type`` discriminator,
its time window in seconds of video time (`start`, `duration`, `fade_in`, `fade_out`), an `anchor` inside
the frame's `text_safe` area (`app.media.deliverables.FrameFormat`) and the name of its `Template` (`style`).
`to_dict` / `layer_from_dict` round-trip it through JSON. `build_layers` makes the standard set for a
deliverable; `identity_violations` checks an unbranded set carries no agent identity.

Drawing. `OverlayCompositor(frame, layers)` renders every layer once, at construction, to RGBA patches
(PIL with FreeType: antialiased text on a panel, or with an outline and a soft drop shadow, so it reads
over any photo), cropped to their opaque bounding box and stored premultiplied. `composite(frame_rgb, t)`
then blends only the patches active at `t` into the frame, in place, with two saturating uint8 OpenCV
passes per patch (``frame * (255 - alpha) / 255 + premultiplied``); a fading patch first scales its two
planes (two more passes over the patch only). Nothing outside a patch's box is read or written.

Sizes are fractions of the frame's short side ("unit": 1080 px for all four formats), so text is as large
on a 9:16 phone frame as on 16:9. Blocks are capped to the `text_safe` width and wrap (price on one line,
address on up to two, captions on up to two) and shrink to fit before anything is cut; a caption cue too
long for two lines is split into consecutive cues sharing its time by length. When a deliverable burns
captions, bottom-anchored layers sit above the captions band so the two never overlap.

Measured, ms per frame (2 cores shared with other jobs, median of 200 frames over a busy 1080p
background, ``modern`` template; "fading" = the title card mid-fade, the others fully up):

================  =========================================  ====  ======  ============
format            layers up at once                          full  fading  construction
================  =========================================  ====  ======  ============
16:9 1920 x 1080  title card + lower third + 2-line caption  0.58  0.98    84 ms
9:16 1080 x 1920  title card + lower third + 2-line caption  0.47  0.75    46 ms
16:9 1920 x 1080  end card + disclosure line                 0.26  0.49
9:16 1080 x 1920  end card + disclosure line                 0.23  0.46
================  =========================================  ====  ======  ============

A bare libx264 ``veryfast`` encode of the same 1080p frames costs ~42 ms per frame on these cores
(``medium``: ~63 ms), so three layers at once add 1.4-2.3 % and frames without overlays nothing.
Construction (text layout, shadows, premultiplying) is once per deliverable; the first one also opens
the fonts.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar, Literal

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from app.errors import InvalidInputError
from app.media.deliverables import DeliverableSpec, FrameFormat, ListingFacts
from app.media.fonts import load_font

__all__ = [
    "AI_DISCLOSURE",
    "ANCHORS",
    "DEFAULT_TEMPLATE",
    "LAYER_TYPES",
    "TEMPLATES",
    "Captions",
    "Cue",
    "EndCard",
    "Layer",
    "Logo",
    "LowerThird",
    "OverlayCompositor",
    "Template",
    "TitleCard",
    "build_layers",
    "facts_line",
    "get_template",
    "identity_violations",
    "layer_from_dict",
    "template_for_job",
]

RGB = tuple[int, int, int]
Anchor = Literal["top-left", "top", "top-right", "left", "center", "right", "bottom-left", "bottom", "bottom-right"]
ANCHORS: tuple[str, ...] = (
    "top-left",
    "top",
    "top-right",
    "left",
    "center",
    "right",
    "bottom-left",
    "bottom",
    "bottom-right",
)
#: The California AB 723 disclosure for a video with scenes generated from the listing photos.
AI_DISCLOSURE = "Some scenes were generated with AI from the listing photos"


# ---------------------------------------------------------------------------------------------
# Templates
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Template:
    """How a job's overlays look: font, colours and what sits behind the text.

    `panel`: "solid" draws each text block on a rounded panel of `panel_color` at `panel_opacity`;
    "shadow" draws no panel but outlines the text in `shadow_color` and lays a soft drop shadow under
    it (lighter on the photo; the outline keeps white text readable over a white sky).
    """

    name: str
    font_family: str
    title_weight: str
    body_weight: str
    price_weight: str
    text_color: RGB
    muted_color: RGB
    accent_color: RGB
    panel: Literal["solid", "shadow"]
    panel_color: RGB = (0, 0, 0)
    panel_opacity: float = 0.7
    #: Corner radius of panels, in units (fractions of the frame's short side).
    radius: float = 0.0
    #: A vertical bar of `accent_color` down the left edge of left-aligned panels.
    accent_bar: bool = False
    uppercase_titles: bool = False
    shadow_color: RGB = (0, 0, 0)


TEMPLATES: dict[str, Template] = {
    "modern": Template(
        name="modern",
        font_family="roboto",
        title_weight="bold",
        body_weight="regular",
        price_weight="black",
        text_color=(255, 255, 255),
        muted_color=(222, 226, 232),
        accent_color=(240, 186, 80),
        panel="solid",
        panel_color=(18, 22, 28),
        panel_opacity=0.8,
        radius=0.012,
        accent_bar=True,
        uppercase_titles=True,
    ),
    "classic": Template(
        name="classic",
        font_family="source-sans-pro",
        title_weight="semibold",
        body_weight="regular",
        price_weight="bold",
        text_color=(28, 38, 64),
        muted_color=(70, 78, 96),
        accent_color=(128, 28, 40),
        panel="solid",
        panel_color=(248, 244, 234),
        panel_opacity=0.92,
        radius=0.0,
    ),
    "minimal": Template(
        name="minimal",
        font_family="source-sans-pro",
        title_weight="semibold",
        body_weight="regular",
        price_weight="bold",
        text_color=(255, 255, 255),
        muted_color=(240, 240, 240),
        accent_color=(255, 255, 255),
        panel="shadow",
        shadow_color=(0, 0, 0),
    ),
}
DEFAULT_TEMPLATE = "modern"


def get_template(name: str) -> Template:
    """The template called `name`; an unknown name raises InvalidInputError listing the known ones."""
    try:
        return TEMPLATES[name]
    except (KeyError, TypeError):
        raise InvalidInputError(f"unknown overlay template {name!r}; known: {', '.join(TEMPLATES)}") from None


def template_for_job(template_type: str | None) -> str:
    """The template name a job's free-form `template_type` renders with: itself when it names one of
    `TEMPLATES` (case-insensitive), else `DEFAULT_TEMPLATE`. The API accepts any short string ("luxury"),
    so a job must not fail late over one; `get_template` and `build_layers` are strict."""
    key = (template_type or "").strip().lower()
    return key if key in TEMPLATES else DEFAULT_TEMPLATE


# ---------------------------------------------------------------------------------------------
# Layers
# ---------------------------------------------------------------------------------------------


def _smoothstep(x: float) -> float:
    x = min(max(x, 0.0), 1.0)
    return x * x * (3.0 - 2.0 * x)


def _window_opacity(t: float, start: float, end: float, fade_in: float, fade_out: float) -> float:
    """0 outside [start, end); eased ramps of `fade_in` / `fade_out` seconds inside it."""
    if not (start <= t < end):
        return 0.0
    a = _smoothstep((t - start) / fade_in) if fade_in > 0 else 1.0
    b = _smoothstep((end - t) / fade_out) if fade_out > 0 else 1.0
    return min(a, b)


@dataclass(frozen=True, kw_only=True)
class Layer:
    """Base of the overlay layers: time window, fades, anchor in `text_safe` and template name."""

    type: ClassVar[str] = ""
    start: float = 0.0
    duration: float = 4.0
    fade_in: float = 0.4
    fade_out: float = 0.4
    anchor: str = "center"
    style: str = DEFAULT_TEMPLATE

    def __post_init__(self) -> None:
        name = type(self).__name__
        values = (self.start, self.duration, self.fade_in, self.fade_out)
        if not all(isinstance(v, int | float) and math.isfinite(v) for v in values):
            raise InvalidInputError(f"{name}: start, duration and fades must be finite numbers")
        if self.start < 0 or self.duration <= 0 or self.fade_in < 0 or self.fade_out < 0:
            raise InvalidInputError(
                f"{name}: needs start >= 0, duration > 0 and fades >= 0 "
                f"(got start={self.start}, duration={self.duration}, fades={self.fade_in}/{self.fade_out})"
            )
        if self.anchor not in ANCHORS:
            raise InvalidInputError(f"{name}: unknown anchor {self.anchor!r}; known: {', '.join(ANCHORS)}")
        get_template(self.style)

    @property
    def end(self) -> float:
        return self.start + self.duration

    def opacity(self, t: float) -> float:
        """How opaque the layer is at video time `t` (0..1): 0 outside its window, eased fades."""
        return _window_opacity(t, self.start, self.end, self.fade_in, self.fade_out)

    def texts(self) -> list[str]:
        """Every string the layer shows (for the identity check)."""
        return []

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type}
        for f in fields(self):
            value = getattr(self, f.name)
            out[f.name] = [c.to_dict() for c in value] if f.name == "cues" else value
        return out


@dataclass(frozen=True, kw_only=True)
class TitleCard(Layer):
    """Headline, address and price over the opening shot."""

    type: ClassVar[str] = "title_card"
    headline: str | None = None
    address: str | None = None
    price: str | None = None
    anchor: str = "bottom-left"

    def texts(self) -> list[str]:
        return [s for s in (self.headline, self.address, self.price) if s]


@dataclass(frozen=True, kw_only=True)
class LowerThird(Layer):
    """A title line and an optional smaller line: price and "3 bd · 2 ba · 1,850 sqft", or a room name."""

    type: ClassVar[str] = "lower_third"
    title: str = ""
    subtitle: str | None = None
    anchor: str = "bottom-left"

    def texts(self) -> list[str]:
        return [s for s in (self.title, self.subtitle) if s]


@dataclass(frozen=True, kw_only=True)
class EndCard(Layer):
    """The closing card: agent, brokerage, contact and logo (branded), `tagline` (an address, say) and the
    `disclosure` line, which sits at the foot of the safe area on its own."""

    type: ClassVar[str] = "end_card"
    agent_name: str | None = None
    agent_phone: str | None = None
    agent_email: str | None = None
    brokerage: str | None = None
    #: Local path of the logo image (PNG with alpha, or any image PIL reads).
    logo_path: str | None = None
    tagline: str | None = None
    disclosure: str | None = None
    fade_out: float = 0.0

    def texts(self) -> list[str]:
        values = (self.agent_name, self.brokerage, self.agent_phone, self.agent_email, self.tagline, self.disclosure)
        return [s for s in values if s]


@dataclass(frozen=True)
class Cue:
    """One caption: shown from `start` to `end` seconds of video time."""

    start: float
    end: float
    text: str

    def __post_init__(self) -> None:
        if not (math.isfinite(self.start) and math.isfinite(self.end)) or self.start < 0 or self.end <= self.start:
            raise InvalidInputError(f"caption cue needs 0 <= start < end (got {self.start}..{self.end})")

    def to_dict(self) -> dict[str, Any]:
        return {"start": self.start, "end": self.end, "text": self.text}

    @classmethod
    def coerce(cls, value: Cue | Mapping[str, Any] | Sequence[Any]) -> Cue:
        """A cue from itself, a `to_dict` mapping or a `(start, end, text)` triple."""
        if isinstance(value, Cue):
            return value
        try:
            if isinstance(value, Mapping):
                return cls(float(value["start"]), float(value["end"]), str(value["text"]))
            start, end, text = value
            return cls(float(start), float(end), str(text))
        except (KeyError, TypeError, ValueError):
            raise InvalidInputError(
                f"a caption cue is (start, end, text) or a mapping of them (got {value!r})"
            ) from None


@dataclass(frozen=True, kw_only=True)
class Captions(Layer):
    """Burned-in captions: large white text on dark line boxes, bottom of `text_safe`, at most 2 lines.

    `cues` are in video time; each pops on and off with `cue_fade` seconds of fade. The layer's own window
    (`start`, `duration`) clips them."""

    type: ClassVar[str] = "captions"
    cues: tuple[Cue, ...] = ()
    cue_fade: float = 0.08
    fade_in: float = 0.0
    fade_out: float = 0.0
    anchor: str = "bottom"

    def __post_init__(self) -> None:
        object.__setattr__(self, "cues", tuple(Cue.coerce(c) for c in self.cues))
        super().__post_init__()
        if not (math.isfinite(self.cue_fade) and self.cue_fade >= 0):
            raise InvalidInputError(f"captions: cue_fade must be >= 0 s (got {self.cue_fade})")

    def texts(self) -> list[str]:
        return [c.text for c in self.cues if c.text]


@dataclass(frozen=True, kw_only=True)
class Logo(Layer):
    """A corner bug: the image at `path` (a local file), `height` units tall, drawn at `alpha` (0..1)."""

    type: ClassVar[str] = "logo"
    path: str = ""
    height: float = 0.075
    alpha: float = 0.85
    anchor: str = "top-right"

    def __post_init__(self) -> None:
        super().__post_init__()
        if not (0.0 < self.height <= 0.5 and 0.0 < self.alpha <= 1.0):
            raise InvalidInputError(
                f"logo: needs 0 < height <= 0.5 and 0 < alpha <= 1 (got {self.height}, {self.alpha})"
            )


LAYER_TYPES: dict[str, type[Layer]] = {cls.type: cls for cls in (TitleCard, LowerThird, EndCard, Captions, Logo)}


def layer_from_dict(data: Mapping[str, Any]) -> Layer:
    """The layer `Layer.to_dict` wrote. An unknown ``type`` or field raises InvalidInputError."""
    kind = data.get("type")
    cls = LAYER_TYPES.get(str(kind))
    if cls is None:
        raise InvalidInputError(f"unknown overlay layer type {kind!r}; known: {', '.join(LAYER_TYPES)}")
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known - {"type"})
    if unknown:
        raise InvalidInputError(f"unknown field(s) {', '.join(unknown)} for layer {kind}; known: {', '.join(known)}")
    values = {k: v for k, v in data.items() if k != "type"}
    if "cues" in values:
        values["cues"] = tuple(Cue.coerce(c) for c in values["cues"])
    return cls(**values)


# ---------------------------------------------------------------------------------------------
# The standard set for a deliverable, and the unbranded check
# ---------------------------------------------------------------------------------------------


def _number(value: float) -> str:
    return f"{value:g}" if value != int(value) else str(int(value))


def facts_line(facts: ListingFacts) -> str | None:
    """ "3 bd · 2 ba · 1,850 sqft" from whichever of beds, baths and sqft are known."""
    parts = []
    if facts.beds is not None:
        parts.append(f"{_number(facts.beds)} bd")
    if facts.baths is not None:
        parts.append(f"{_number(facts.baths)} ba")
    if facts.sqft is not None:
        parts.append(f"{facts.sqft:,} sqft")
    return " · ".join(parts) or None


def build_layers(
    facts: ListingFacts,
    spec: DeliverableSpec,
    *,
    duration: float,
    template: str = DEFAULT_TEMPLATE,
    captions: Sequence[Cue | Sequence[Any]] | None = None,
    disclosure: str | None = None,
    logo_path: str | Path | None = None,
) -> list[Layer]:
    """The standard overlays of `spec`'s variant for a video of `duration` seconds.

    Title card (headline, address, price) over the opening ~4 s; a lower third (price and beds / baths /
    sqft) around 40 % in; an end card over the last ~4 s; a logo bug between title and end card. Branded:
    the end card carries the agent, brokerage, phone, email and logo. Unbranded: no agent identity, no
    logo; its end card shows the address and the disclosure only. `captions` are burned in only when
    `spec.burns_captions` (otherwise they go to a sidecar, not here). `disclosure` (e.g. `AI_DISCLOSURE`)
    is shown on the end card of both variants. `logo_path`: the logo as a local file (the phase fetches
    `facts.logo_uri`); without it an existing local `facts.logo_uri` is used, else there is no logo.
    Layers whose facts are missing are left out. An unknown `template` raises InvalidInputError, and so
    does an unbranded set that would still show agent identity (captions that name the agent).
    """
    get_template(template)
    if not (math.isfinite(duration) and duration > 0):
        raise InvalidInputError(f"video duration must be > 0 s (got {duration})")
    branded = spec.variant == "branded"
    title_start, title_end = min(0.3, 0.05 * duration), min(4.5, 0.3 * duration)
    end_len = min(4.0, 0.25 * duration)
    end_start = duration - end_len
    layers: list[Layer] = []
    if facts.address or facts.price or facts.headline:
        title = TitleCard(headline=facts.headline, address=facts.address, price=facts.price, style=template,
                          start=title_start, duration=title_end - title_start, fade_in=0.5, fade_out=0.5)  # fmt: skip
        layers.append(title)
    specs_line = facts_line(facts)
    lower_start, lower_len = max(title_end + 0.5, 0.4 * duration), min(4.0, 0.2 * duration)
    if (facts.price or specs_line) and lower_start + lower_len <= end_start:
        top, bottom = (facts.price, specs_line) if facts.price else (specs_line, None)
        layers.append(
            LowerThird(title=top or "", subtitle=bottom, start=lower_start, duration=lower_len, style=template)
        )
    logo = _local_logo(logo_path, facts.logo_uri) if branded else None
    if logo and end_start - title_end > 1.0:
        bug = Logo(
            path=logo, start=title_end, duration=end_start - title_end, fade_in=0.5, fade_out=0.5, style=template
        )
        layers.append(bug)
    layers.extend(_end_card(facts, branded, logo, disclosure, end_start, end_len, template))
    if captions and spec.burns_captions:
        cues = tuple(Cue.coerce(c) for c in captions)
        layers.append(Captions(cues=cues, start=0.0, duration=duration, style=template))
    if not branded:
        problems = identity_violations(layers, facts)
        if problems:
            raise InvalidInputError(f"the unbranded cut would show agent identity: {'; '.join(problems)}")
    return layers


def _end_card(
    facts: ListingFacts,
    branded: bool,
    logo: str | None,
    disclosure: str | None,
    start: float,
    length: float,
    style: str,
) -> list[Layer]:
    timing: dict[str, Any] = {"start": start, "duration": length, "fade_in": 0.6, "style": style}
    if branded and (facts.agent_name or facts.agent_phone or facts.agent_email or facts.brokerage or logo):
        card = EndCard(agent_name=facts.agent_name, agent_phone=facts.agent_phone, agent_email=facts.agent_email,
                       brokerage=facts.brokerage, logo_path=logo, disclosure=disclosure, **timing)  # fmt: skip
        return [card]
    if facts.address or disclosure:
        return [EndCard(tagline=facts.address, disclosure=disclosure, **timing)]
    return []


def _local_logo(logo_path: str | Path | None, logo_uri: str | None) -> str | None:
    if logo_path is not None:
        return str(logo_path)
    if logo_uri and "://" not in logo_uri and Path(logo_uri).is_file():
        return logo_uri
    return None


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().casefold()


def identity_violations(layers: Sequence[Layer], facts: ListingFacts) -> list[str]:
    """What in `layers` identifies the agent: each is one line ("end_card shows 'Jane Doe'").

    Every layer's text is searched, case- and whitespace-insensitively, for each of
    `facts.identity_strings()` (name, phone, email, brokerage, extra words); a phone number is also found
    by its digits alone ("(415) 555-0134" in "415.555.0134"). Any logo (a `Logo` layer or an end card's
    logo) counts: a logo is the agent's or the brokerage's by definition. Empty for a clean set."""
    needles = [(s, _norm(s)) for s in facts.identity_strings() if _norm(s)]
    digit_needles = [(s, d) for s in facts.identity_strings() if len(d := re.sub(r"\D", "", s)) >= 7]
    problems: list[str] = []
    for layer in layers:
        if isinstance(layer, Logo) or (isinstance(layer, EndCard) and layer.logo_path):
            problems.append(f"{layer.type} shows a logo")
        for text in layer.texts():
            norm, digits = _norm(text), re.sub(r"\D", "", text)
            found = {s for s, n in needles if n in norm} | {s for s, d in digit_needles if d in digits}
            problems.extend(f"{layer.type} shows {s!r}" for s in sorted(found))
    return list(dict.fromkeys(problems))


# ---------------------------------------------------------------------------------------------
# Rendering: text blocks to RGBA patches
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Line:
    text: str
    font: ImageFont.FreeTypeFont
    color: RGB
    #: Extra space above the line, in pixels.
    gap: int = 0


@dataclass
class _Sprite:
    """One pre-rendered patch: where it goes, when, and its planes for the two-pass blend."""

    x: int
    y: int
    rgba: np.ndarray
    start: float
    end: float
    fade_in: float
    fade_out: float
    kind: str
    premul: np.ndarray = field(init=False, repr=False)
    alpha3: np.ndarray = field(init=False, repr=False)
    inverse: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        alpha = self.rgba[:, :, 3:4].astype(np.uint16)
        self.premul = ((self.rgba[:, :, :3].astype(np.uint16) * alpha + 127) // 255).astype(np.uint8)
        self.alpha3 = np.ascontiguousarray(np.repeat(self.rgba[:, :, 3:4], 3, axis=2))
        self.inverse = 255 - self.alpha3

    @property
    def box(self) -> tuple[int, int, int, int]:
        h, w = self.rgba.shape[:2]
        return self.x, self.y, self.x + w, self.y + h

    def opacity(self, t: float) -> float:
        return _window_opacity(t, self.start, self.end, self.fade_in, self.fade_out)


def _wrap(text: str, font: ImageFont.FreeTypeFont, max_width: float) -> list[str]:
    lines: list[str] = []
    current = ""
    for word in text.split():
        candidate = f"{current} {word}" if current else word
        if not current or font.getlength(candidate) <= max_width:
            current = candidate
        else:
            lines.append(current)
            current = word
    if current:
        lines.append(current)
    return lines


def _balanced(text: str, font: ImageFont.FreeTypeFont, lines: list[str], max_width: float) -> list[str]:
    """`lines` rewrapped to the narrowest width that keeps their count: no lone last word ("photos")."""
    if len(lines) < 2:
        return lines
    lo, hi = max(font.getlength(w) for w in text.split()), max_width
    best = lines
    while hi - lo > 4:
        mid = (lo + hi) / 2
        trial = _wrap(text, font, mid)
        if len(trial) <= len(lines) and all(font.getlength(line) <= mid for line in trial):
            best, hi = trial, mid
        else:
            lo = mid
    return best


def _ellipsize(line: str, font: ImageFont.FreeTypeFont, max_width: float) -> str:
    while line and font.getlength(line + "…") > max_width:
        line = line[:-1]
    return line.rstrip() + "…"


def _fit(
    text: str, family: str, weight: str, size: int, max_width: float, max_lines: int, *, min_size: int
) -> tuple[ImageFont.FreeTypeFont, list[str]]:
    """`text` wrapped to `max_width` in at most `max_lines` lines at the largest size from `size` down to
    `min_size` where it fits; cut with an ellipsis only when it does not fit even at `min_size`."""
    s = max(size, min_size)
    while True:
        font = load_font(family, weight, s)
        lines = _wrap(text, font, max_width)
        if len(lines) <= max_lines and all(font.getlength(line) <= max_width for line in lines):
            return font, _balanced(text, font, lines, max_width)
        if s <= min_size:
            break
        s = max(min_size, int(s * 0.92))
    kept = lines[:max_lines]
    if len(lines) > max_lines or font.getlength(kept[-1]) > max_width:
        kept[-1] = _ellipsize(kept[-1], font, max_width)
    return font, kept


def _line_height(font: ImageFont.FreeTypeFont) -> int:
    ascent, descent = font.getmetrics()
    return ascent + descent


def _draw_lines(lines: Sequence[_Line], size: tuple[int, int], origin: tuple[int, int], align: str) -> Image.Image:
    """The lines as white-on-transparent glyph art in their colours, `origin` = top-left of the first."""
    art = Image.new("RGBA", size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(art)
    x0, y = origin
    width = max(int(line.font.getlength(line.text)) for line in lines)
    for line in lines:
        y += line.gap
        w = line.font.getlength(line.text)
        x = x0 + {"left": 0.0, "center": (width - w) / 2, "right": width - w}[align]
        draw.text((x, y), line.text, font=line.font, fill=(*line.color, 255))
        y += _line_height(line.font)
    return art


def _outline_and_shadow(art: Image.Image, tpl: Template, unit: int) -> Image.Image:
    """Glyph art with a dark outline (dilated alpha) and a soft offset drop shadow underneath."""
    alpha = art.getchannel("A")
    grow = max(1, round(0.0028 * unit)) * 2 + 1
    outline = alpha.filter(ImageFilter.MaxFilter(grow))
    shadow = alpha.filter(ImageFilter.MaxFilter(grow)).filter(ImageFilter.GaussianBlur(0.008 * unit))
    dx, dy = round(0.002 * unit), round(0.003 * unit)
    out = Image.new("RGBA", art.size, (0, 0, 0, 0))
    shadow_layer = Image.new("RGBA", art.size, (*tpl.shadow_color, 0))
    shadow_layer.putalpha(shadow.point(lambda v: int(v * 0.8)))
    out.alpha_composite(shadow_layer, (dx, dy))
    outline_layer = Image.new("RGBA", art.size, (*tpl.shadow_color, 0))
    outline_layer.putalpha(outline.point(lambda v: int(v * 0.85)))
    out.alpha_composite(outline_layer)
    out.alpha_composite(art)
    return out


def _block(lines: Sequence[_Line], tpl: Template, unit: int, *, align: str = "left", bar: bool = True) -> Image.Image:
    """A text block on the template's panel (or with outline and shadow), tight to its content."""
    text_w = max(math.ceil(line.font.getlength(line.text)) for line in lines)
    text_h = sum(_line_height(line.font) + line.gap for line in lines)
    pad_x, pad_y = round(0.03 * unit), round(0.022 * unit)
    bar_w = round(0.008 * unit) if tpl.panel == "solid" and tpl.accent_bar and bar and align == "left" else 0
    size = (text_w + 2 * pad_x + bar_w, text_h + 2 * pad_y)
    art = _draw_lines(lines, size, (pad_x + bar_w, pad_y), align)
    if tpl.panel == "shadow":
        return _outline_and_shadow(art, tpl, unit)
    panel = Image.new("RGBA", size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(panel)
    fill = (*tpl.panel_color, round(255 * tpl.panel_opacity))
    draw.rounded_rectangle((0, 0, size[0] - 1, size[1] - 1), radius=round(tpl.radius * unit), fill=fill)
    if bar_w:
        draw.rectangle((0, 0, bar_w - 1, size[1] - 1), fill=(*tpl.accent_color, 255))
    panel.alpha_composite(art)
    return panel


def _place(size: tuple[int, int], area: tuple[int, int, int, int], anchor: str) -> tuple[int, int]:
    """Top-left corner of a `size` box at `anchor` inside the pixel rect `area`."""
    x0, y0, x1, y1 = area
    w, h = size
    horizontal = "left" if "left" in anchor else "right" if "right" in anchor else "center"
    vertical = "top" if anchor.startswith("top") else "bottom" if anchor.startswith("bottom") else "middle"
    x = {"left": x0, "right": x1 - w, "center": (x0 + x1 - w) // 2}[horizontal]
    y = {"top": y0, "bottom": y1 - h, "middle": (y0 + y1 - h) // 2}[vertical]
    return max(x, 0), max(y, 0)


@dataclass(frozen=True)
class _Frame:
    """What a renderer needs to know of the output frame: unit, safe rect, where bottom layers stop."""

    fmt: FrameFormat
    unit: int
    safe: tuple[int, int, int, int]
    #: `safe` with its bottom raised above the captions band (equal to `safe` without captions).
    above_captions: tuple[int, int, int, int]

    @property
    def max_width(self) -> int:
        x0, _, x1, _ = self.safe
        return min(x1 - x0, round(1.15 * self.unit))

    def area(self, anchor: str) -> tuple[int, int, int, int]:
        return self.above_captions if anchor.startswith("bottom") else self.safe


def _sprite(
    image: Image.Image, frame: _Frame, anchor: str, layer: Layer, *, area: tuple[int, int, int, int] | None = None
) -> _Sprite:
    rgba = np.asarray(image, dtype=np.uint8)
    ys, xs = np.nonzero(rgba[:, :, 3])
    if len(xs):  # crop to the drawn pixels: blending cost is proportional to the box
        rgba = rgba[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    x, y = _place((rgba.shape[1], rgba.shape[0]), area or frame.area(anchor), anchor)
    return _Sprite(x, y, np.ascontiguousarray(rgba), layer.start, layer.end, layer.fade_in, layer.fade_out, layer.type)


def _text_align(anchor: str) -> str:
    return "left" if "left" in anchor else "right" if "right" in anchor else "center"


def _render_title(layer: Layer, frame: _Frame) -> list[_Sprite]:
    assert isinstance(layer, TitleCard)
    tpl, u = get_template(layer.style), frame.unit
    fam, width = tpl.font_family, frame.max_width - round(0.06 * u) - round(0.008 * u)
    lines: list[_Line] = []
    if layer.headline:
        text = layer.headline.upper() if tpl.uppercase_titles else layer.headline
        font, rows = _fit(text, fam, tpl.title_weight, round(0.05 * u), width, 2, min_size=round(0.034 * u))
        lines += [_Line(r, font, tpl.accent_color if tpl.panel == "solid" else tpl.text_color) for r in rows]
    if layer.price:
        font, rows = _fit(layer.price, fam, tpl.price_weight, round(0.085 * u), width, 1, min_size=round(0.05 * u))
        lines += [_Line(r, font, tpl.text_color, gap=round(0.008 * u) if lines else 0) for r in rows]
    if layer.address:
        font, rows = _fit(layer.address, fam, tpl.body_weight, round(0.046 * u), width, 2, min_size=round(0.032 * u))
        lines += [
            _Line(r, font, tpl.muted_color, gap=round(0.006 * u) if (lines and i == 0) else 0)
            for i, r in enumerate(rows)
        ]
    if not lines:
        return []
    return [_sprite(_block(lines, tpl, u, align=_text_align(layer.anchor)), frame, layer.anchor, layer)]


def _render_lower_third(layer: Layer, frame: _Frame) -> list[_Sprite]:
    assert isinstance(layer, LowerThird)
    tpl, u = get_template(layer.style), frame.unit
    fam, width = tpl.font_family, frame.max_width - round(0.068 * u)
    lines: list[_Line] = []
    if layer.title:
        font, rows = _fit(layer.title, fam, tpl.price_weight, round(0.06 * u), width, 1, min_size=round(0.04 * u))
        lines += [_Line(r, font, tpl.text_color) for r in rows]
    if layer.subtitle:
        font, rows = _fit(layer.subtitle, fam, tpl.body_weight, round(0.042 * u), width, 1, min_size=round(0.03 * u))
        lines += [_Line(r, font, tpl.muted_color, gap=round(0.004 * u) if lines else 0) for r in rows]
    if not lines:
        return []
    return [_sprite(_block(lines, tpl, u, align=_text_align(layer.anchor)), frame, layer.anchor, layer)]


def _render_end_card(layer: Layer, frame: _Frame) -> list[_Sprite]:
    assert isinstance(layer, EndCard)
    tpl, u = get_template(layer.style), frame.unit
    fam, width = tpl.font_family, frame.max_width - round(0.06 * u)
    entries: list[tuple[str | None, str, float, float, RGB]] = [
        (layer.agent_name, tpl.title_weight, 0.07, 0.045, tpl.text_color),
        (layer.brokerage, tpl.body_weight, 0.045, 0.032, tpl.muted_color),
        (
            layer.agent_phone,
            tpl.price_weight,
            0.055,
            0.036,
            tpl.accent_color if tpl.panel == "solid" else tpl.text_color,
        ),
        (layer.agent_email, tpl.body_weight, 0.042, 0.03, tpl.muted_color),
        (layer.tagline, tpl.title_weight, 0.055, 0.036, tpl.text_color),
    ]
    lines: list[_Line] = []
    for text, weight, size, smallest, color in entries:
        if text:
            font, rows = _fit(text, fam, weight, round(size * u), width, 2, min_size=round(smallest * u))
            lines += [
                _Line(r, font, color, gap=round(0.01 * u) if (lines and i == 0) else 0) for i, r in enumerate(rows)
            ]
    sprites: list[_Sprite] = []
    x0, y0, x1, y1 = frame.safe
    disclosure_top = y1
    if layer.disclosure:
        font, rows = _fit(
            layer.disclosure,
            fam,
            tpl.body_weight,
            round(0.03 * u),
            x1 - x0 - round(0.06 * u),
            2,
            min_size=round(0.024 * u),
        )
        note = _block([_Line(r, font, tpl.text_color) for r in rows], tpl, u, align="center", bar=False)
        sprites.append(_sprite(note, frame, "bottom", layer, area=frame.safe))
        disclosure_top = sprites[-1].y
    card: Image.Image | None = _block(lines, tpl, u, align="center", bar=False) if lines else None
    if layer.logo_path:
        card = _with_logo(card, layer.logo_path, tpl, u)
    if card is not None:
        sprites.append(_sprite(card, frame, layer.anchor, layer, area=(x0, y0, x1, disclosure_top)))
    return sprites


def _load_logo(path: str, height: int) -> Image.Image:
    try:
        with Image.open(path) as img:
            logo = img.convert("RGBA")
    except (OSError, ValueError) as exc:
        raise InvalidInputError(f"logo image {path} cannot be read: {exc}") from None
    scale = height / max(logo.height, 1)
    return logo.resize((max(round(logo.width * scale), 1), height), Image.Resampling.LANCZOS)


def _with_logo(card: Image.Image | None, path: str, tpl: Template, unit: int) -> Image.Image:
    """The end card's logo centred above its text block (on a panel of its own when there is no text)."""
    logo = _load_logo(path, round(0.12 * unit))
    if card is None:
        pad = round(0.03 * unit)
        card = Image.new("RGBA", (logo.width + 2 * pad, logo.height + 2 * pad), (0, 0, 0, 0))
        card.alpha_composite(logo, (pad, pad))
        return card
    gap = round(0.025 * unit)
    out = Image.new("RGBA", (max(card.width, logo.width), logo.height + gap + card.height), (0, 0, 0, 0))
    out.alpha_composite(logo, ((out.width - logo.width) // 2, 0))
    out.alpha_composite(card, ((out.width - card.width) // 2, logo.height + gap))
    return out


def _render_logo(layer: Layer, frame: _Frame) -> list[_Sprite]:
    assert isinstance(layer, Logo)
    logo = _load_logo(layer.path, max(round(layer.height * frame.unit), 8))
    if layer.alpha < 1.0:
        logo.putalpha(logo.getchannel("A").point(lambda v: int(v * layer.alpha)))
    return [_sprite(logo, frame, layer.anchor, layer, area=frame.safe)]


#: Caption text size and the line boxes behind it, in units.
_CAPTION_SIZE, _CAPTION_MIN, _CAPTION_PAD = 0.05, 0.036, 0.014


def _caption_font(tpl: Template, unit: int) -> ImageFont.FreeTypeFont:
    return load_font(tpl.font_family, tpl.title_weight, round(_CAPTION_SIZE * unit))


def _caption_band(frame_unit: int, tpl: Template) -> int:
    """Height of the captions band at the bottom of the safe area: two lines and their boxes."""
    font = _caption_font(tpl, frame_unit)
    return 2 * (_line_height(font) + 2 * round(_CAPTION_PAD * frame_unit)) + round(0.02 * frame_unit)


def _split_cue(cue: Cue, font: ImageFont.FreeTypeFont, width: float) -> list[Cue]:
    """`cue` as consecutive cues of at most two lines each, sharing its time by length."""
    rows = _wrap(cue.text, font, width)
    if len(rows) <= 2:
        return [cue]
    chunks = [" ".join(rows[i : i + 2]) for i in range(0, len(rows), 2)]
    total = sum(len(c) for c in chunks)
    out, t = [], cue.start
    for chunk in chunks:
        end = t + (cue.end - cue.start) * len(chunk) / total
        out.append(Cue(t, min(end, cue.end), chunk))
        t = end
    return out


def _caption_image(text: str, tpl: Template, unit: int, width: float) -> Image.Image:
    """White text on a dark box per line (the broadcast caption look), centred, at most two lines."""
    size, smallest = round(_CAPTION_SIZE * unit), round(_CAPTION_MIN * unit)
    font, rows = _fit(text, tpl.font_family, tpl.title_weight, size, width, 2, min_size=smallest)
    pad = round(_CAPTION_PAD * unit)
    line_h = _line_height(font) + 2 * pad
    widths = [math.ceil(font.getlength(r)) + 2 * pad for r in rows]
    image = Image.new("RGBA", (max(widths), line_h * len(rows)), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    for i, (row, w) in enumerate(zip(rows, widths, strict=True)):
        x = (image.width - w) // 2
        draw.rectangle((x, i * line_h, x + w - 1, (i + 1) * line_h - 1), fill=(0, 0, 0, 190))
        draw.text((x + pad, i * line_h + pad), row, font=font, fill=(255, 255, 255, 255))
    return image


def _render_captions(layer: Layer, frame: _Frame) -> list[_Sprite]:
    assert isinstance(layer, Captions)
    tpl, u = get_template(layer.style), frame.unit
    x0, _, x1, _ = frame.safe
    width = (x1 - x0) * 0.94 - 2 * round(_CAPTION_PAD * u)
    font = _caption_font(tpl, u)
    sprites: list[_Sprite] = []
    for cue in layer.cues:
        for part in _split_cue(cue, font, width):
            start, end = max(part.start, layer.start), min(part.end, layer.end)
            if end <= start or not part.text.strip():
                continue
            image = _caption_image(part.text, tpl, u, width)
            sprite = _sprite(image, frame, "bottom", layer, area=frame.safe)
            sprite.start, sprite.end = start, end
            sprite.fade_in = sprite.fade_out = min(layer.cue_fade, (end - start) / 3)
            sprites.append(sprite)
    return sprites


_RENDERERS: dict[str, Callable[[Layer, _Frame], list[_Sprite]]] = {
    "title_card": _render_title,
    "lower_third": _render_lower_third,
    "end_card": _render_end_card,
    "captions": _render_captions,
    "logo": _render_logo,
}


# ---------------------------------------------------------------------------------------------
# Per-frame compositing
# ---------------------------------------------------------------------------------------------


class OverlayCompositor:
    """Draws `layers` into the frames of one deliverable (`frame`), fast enough to run on every frame.

    All rendering happens here, once; `composite` only blends. `boxes(t)` says where text is at `t`
    (pixel boxes, for tests and the storyboard) and `preview(t)` gives the overlay alone as RGBA."""

    def __init__(self, frame: FrameFormat, layers: Sequence[Layer]) -> None:
        self.frame = frame
        self.layers = tuple(layers)
        unit = min(frame.width, frame.height)
        safe = frame.text_safe.pixels(frame.width, frame.height)
        captions = [layer for layer in self.layers if isinstance(layer, Captions) and layer.cues]
        band = _caption_band(unit, get_template(captions[0].style)) if captions else 0
        geometry = _Frame(frame, unit, safe, (safe[0], safe[1], safe[2], safe[3] - band))
        self._sprites: list[_Sprite] = []
        for layer in self.layers:
            renderer = _RENDERERS.get(layer.type)
            if renderer is None:
                raise InvalidInputError(f"unknown overlay layer type {layer.type!r}; known: {', '.join(_RENDERERS)}")
            self._sprites.extend(_clip(s, frame) for s in renderer(layer, geometry))
        self._sprites = [s for s in self._sprites if s.rgba.size]

    def active(self, t: float) -> list[tuple[_Sprite, float]]:
        return [(s, a) for s in self._sprites if (a := s.opacity(t)) > 0.0]

    def boxes(self, t: float) -> list[tuple[str, tuple[int, int, int, int], float]]:
        """(layer type, (x0, y0, x1, y1) in pixels, opacity) of every patch drawn at `t`."""
        return [(s.kind, s.box, a) for s, a in self.active(t)]

    def composite(self, frame_rgb: np.ndarray, t: float) -> np.ndarray:
        """Blend the layers active at video time `t` into `frame_rgb` (H x W x 3 uint8 RGB of this format)
        in place, and return it. Only the active patches' boxes are touched; a frame that is not a
        writable contiguous array is copied first."""
        h, w = self.frame.height, self.frame.width
        if frame_rgb.shape != (h, w, 3) or frame_rgb.dtype != np.uint8:
            raise ValueError(f"frame must be {h} x {w} x 3 uint8 for {self.frame.name} (got {frame_rgb.shape})")
        if not (frame_rgb.flags.writeable and frame_rgb.flags.c_contiguous):
            frame_rgb = np.ascontiguousarray(frame_rgb).copy()
        for sprite, opacity in self.active(t):
            x0, y0, x1, y1 = sprite.box
            region = frame_rgb[y0:y1, x0:x1]
            if opacity >= 0.999:
                premul, inverse = sprite.premul, sprite.inverse
            else:  # scaled planes: premul * f and 255 - alpha * f (|x| of a non-negative value)
                premul = cv2.convertScaleAbs(sprite.premul, alpha=opacity)
                inverse = cv2.convertScaleAbs(sprite.alpha3, alpha=-opacity, beta=255.0)
            cv2.multiply(region, inverse, dst=region, scale=1.0 / 255.0)
            cv2.add(region, premul, dst=region)
        return frame_rgb

    def preview(self, t: float) -> Image.Image:
        """The overlays at `t` alone: a frame-sized RGBA image, transparent where nothing is drawn."""
        canvas = Image.new("RGBA", (self.frame.width, self.frame.height), (0, 0, 0, 0))
        for sprite, opacity in self.active(t):
            rgba = sprite.rgba.copy()
            rgba[:, :, 3] = (rgba[:, :, 3].astype(np.float32) * opacity + 0.5).astype(np.uint8)
            canvas.alpha_composite(Image.fromarray(rgba, "RGBA"), (sprite.x, sprite.y))
        return canvas


def _clip(sprite: _Sprite, frame: FrameFormat) -> _Sprite:
    """`sprite` cut to the frame (a patch is never larger than the safe area, but a logo can be)."""
    x0, y0, x1, y1 = sprite.box
    cx1, cy1 = min(x1, frame.width), min(y1, frame.height)
    if (cx1, cy1) == (x1, y1):
        return sprite
    clipped = _Sprite(x0, y0, np.ascontiguousarray(sprite.rgba[: max(cy1 - y0, 0), : max(cx1 - x0, 0)]),
                      sprite.start, sprite.end, sprite.fade_in, sprite.fade_out, sprite.kind)  # fmt: skip
    return clipped
