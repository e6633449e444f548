"""Deliverables as data: which cuts of a listing video a job delivers, and the listing's facts.

A deliverable is a typed value (`DeliverableSpec`): a frame format, a variant and a loudness target. A
new cut is a new value, never a new code path. Phase 4 renders every deliverable of a job from the same
timeline, each from the source photos at its own framing and resolution (never a crop of another
format's frames), in one encode each.

Formats (`FORMATS`) carry their frame size and safe areas:

* `title_safe`: where text may go (the inner 90 %, the broadcast title-safe rule);
* `ui_safe`: where nothing important may go under a platform's own interface. Vertical video is shown
  under Reels / TikTok / Shorts buttons and captions: the top 14 % and the bottom 22 % of a 9:16 frame and
  a right-hand column of 12 % are covered on at least one of them, so 9:16 text sits inside the rest.

Variants: `branded` carries the listing's facts and the agent's identity (title card, lower thirds,
agent end card with logo); `unbranded` is the MLS cut: no agent name, phone, email, brokerage or logo
anywhere, text found in the photos blurred out, and it opens on an unaltered (not generated) exterior.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

from app.errors import InvalidInputError

__all__ = [
    "DEFAULT_LUFS",
    "FORMATS",
    "VARIANTS",
    "DeliverableSpec",
    "FrameFormat",
    "ListingFacts",
    "Rect",
    "frame_size",
    "parse_deliverables",
    "specs_or_default",
]

Variant = Literal["branded", "unbranded"]
VARIANTS: tuple[str, ...] = ("branded", "unbranded")
#: Integrated loudness every deliverable is normalised to unless its spec says otherwise (LUFS):
#: what YouTube, Instagram and TikTok normalise playback to.
DEFAULT_LUFS = -14.0
#: Loudness targets a spec may ask for (a broadcast -23 LUFS master at one end, a loud -9 at the other).
MIN_LUFS, MAX_LUFS = -31.0, -9.0


@dataclass(frozen=True)
class Rect:
    """A rectangle in fractions of the frame: left, top, right, bottom (0..1)."""

    x0: float
    y0: float
    x1: float
    y1: float

    def pixels(self, width: int, height: int) -> tuple[int, int, int, int]:
        return (round(self.x0 * width), round(self.y0 * height), round(self.x1 * width), round(self.y1 * height))

    @property
    def width(self) -> float:
        return self.x1 - self.x0

    @property
    def height(self) -> float:
        return self.y1 - self.y0


@dataclass(frozen=True)
class FrameFormat:
    """An output frame: its name ("16:9"), size and the safe areas text and subjects keep to."""

    name: str
    width: int
    height: int
    title_safe: Rect
    ui_safe: Rect

    @property
    def aspect(self) -> float:
        return self.width / self.height

    @property
    def slug(self) -> str:
        """File-name form: "16x9"."""
        return self.name.replace(":", "x")

    @property
    def text_safe(self) -> Rect:
        """Where overlay text goes: inside both the title-safe and the platform-UI-safe areas."""
        a, b = self.title_safe, self.ui_safe
        return Rect(max(a.x0, b.x0), max(a.y0, b.y0), min(a.x1, b.x1), min(a.y1, b.y1))


_TITLE_SAFE = Rect(0.05, 0.05, 0.95, 0.95)
FORMATS: dict[str, FrameFormat] = {
    "16:9": FrameFormat("16:9", 1920, 1080, _TITLE_SAFE, Rect(0.0, 0.0, 1.0, 1.0)),
    "9:16": FrameFormat("9:16", 1080, 1920, _TITLE_SAFE, Rect(0.04, 0.14, 0.88, 0.78)),
    "1:1": FrameFormat("1:1", 1080, 1080, _TITLE_SAFE, Rect(0.0, 0.0, 1.0, 1.0)),
    "4:5": FrameFormat("4:5", 1080, 1350, _TITLE_SAFE, Rect(0.0, 0.06, 1.0, 0.9)),
}


@dataclass(frozen=True)
class DeliverableSpec:
    """One file to deliver: `format` (a `FORMATS` key), `variant` and the loudness it is normalised to.

    `captions`: "auto" burns captions into 9:16 (watched muted, in feeds) and leaves the others with a
    WebVTT/SRT sidecar; "burned" / "sidecar" force one; every deliverable with a voice-over gets the
    sidecar either way."""

    format: str = "16:9"
    variant: Variant = "branded"
    lufs: float = DEFAULT_LUFS
    captions: Literal["auto", "burned", "sidecar"] = "auto"

    def __post_init__(self) -> None:
        # One canonical value (a JSON -16 and -16.0 are the same target: same digest, no re-render).
        try:
            object.__setattr__(self, "lufs", float(self.lufs))
        except (TypeError, ValueError):
            raise InvalidInputError(f"loudness target must be a number (got {self.lufs!r})") from None
        if self.format not in FORMATS:
            raise InvalidInputError(f"unknown format {self.format!r}; known: {', '.join(FORMATS)}")
        if self.variant not in VARIANTS:
            raise InvalidInputError(f"unknown variant {self.variant!r}; known: {', '.join(VARIANTS)}")
        if not MIN_LUFS <= float(self.lufs) <= MAX_LUFS:
            raise InvalidInputError(f"loudness target {self.lufs} LUFS is outside {MIN_LUFS:g}..{MAX_LUFS:g}")
        if self.captions not in ("auto", "burned", "sidecar"):
            raise InvalidInputError(f"unknown captions mode {self.captions!r}; known: auto, burned, sidecar")

    @property
    def frame(self) -> FrameFormat:
        return FORMATS[self.format]

    @property
    def key(self) -> str:
        """Stable name of the deliverable within a job: "16x9-branded" (artifact keys, file names)."""
        return f"{self.frame.slug}-{self.variant}"

    @property
    def burns_captions(self) -> bool:
        return self.captions == "burned" or (self.captions == "auto" and self.format == "9:16")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DeliverableSpec:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InvalidInputError(f"unknown deliverable field(s) {', '.join(unknown)}; known: {', '.join(known)}")
        return cls(**{k: data[k] for k in known if k in data and data[k] is not None})


def parse_deliverables(
    formats: Iterable[str] | None, variants: Iterable[str] | None, *, lufs: Mapping[str, float] | None = None
) -> list[DeliverableSpec]:
    """Every (format, variant) pair of the CLI's `--formats 16:9,9:16 --variants branded,unbranded`, in
    that order, without repeats; `lufs` may set a loudness target per format."""
    fmts = [f.strip() for f in (formats or ["16:9"]) if f.strip()] or ["16:9"]
    vars_ = [v.strip() for v in (variants or ["branded"]) if v.strip()] or ["branded"]
    specs: list[DeliverableSpec] = []
    for f in fmts:
        for v in vars_:
            spec = DeliverableSpec(format=f, variant=v, lufs=(lufs or {}).get(f, DEFAULT_LUFS))  # type: ignore[arg-type]
            if spec not in specs:
                specs.append(spec)
    return specs


@dataclass(frozen=True)
class ListingFacts:
    """What the branded cut says about the listing and its agent. Everything is optional: a layer whose
    facts are missing is left out (no "Price: None")."""

    address: str | None = None
    price: str | None = None
    beds: float | None = None
    baths: float | None = None
    sqft: int | None = None
    headline: str | None = None
    agent_name: str | None = None
    agent_phone: str | None = None
    agent_email: str | None = None
    brokerage: str | None = None
    #: Storage URI (or local path in embedded mode) of the agent's or brokerage's logo image.
    logo_uri: str | None = None
    #: Words that identify the agent (name, phone, email, brokerage); an unbranded cut shows none.
    extra_identity: Sequence[str] = field(default_factory=tuple)

    def identity_strings(self) -> list[str]:
        """The agent identity an unbranded cut must not show anywhere (for the compliance check)."""
        values = [self.agent_name, self.agent_phone, self.agent_email, self.brokerage, *self.extra_identity]
        return [v for v in values if v]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["extra_identity"] = list(self.extra_identity)
        return {k: v for k, v in d.items() if v not in (None, [], "")}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> ListingFacts:
        if not data:
            return cls()
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InvalidInputError(f"unknown listing fact(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        values = dict(data)
        for name in ("beds", "baths"):
            if values.get(name) is not None:
                values[name] = _number(name, values[name])
        if values.get("sqft") is not None:
            values["sqft"] = int(_number("sqft", values["sqft"]))
        if values.get("price") is not None:
            values["price"] = str(values["price"])
        values["extra_identity"] = tuple(str(x) for x in values.get("extra_identity") or ())
        return cls(**values)


def _number(name: str, value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InvalidInputError(f"listing fact {name} must be a number (got {value!r})") from None
    if not 0 <= number < 1e7:
        raise InvalidInputError(f"listing fact {name} is out of range (got {value!r})")
    return number


def specs_or_default(
    stored: Sequence[Mapping[str, Any]] | None, output_size: tuple[int, int], lufs: float = DEFAULT_LUFS
) -> list[DeliverableSpec]:
    """A job's deliverables; none given: one branded cut in the format nearest `output_size`'s aspect."""
    if stored:
        return [DeliverableSpec.from_dict(d) for d in stored]
    w, h = output_size
    fmt = min(FORMATS.values(), key=lambda f: abs(f.aspect - w / h))
    return [DeliverableSpec(format=fmt.name, lufs=lufs)]


def frame_size(spec: DeliverableSpec, output_size: tuple[int, int]) -> tuple[int, int]:
    """The deliverable's frame size: `output_size` itself when it has the format's aspect, else the
    format's size scaled so its short side matches `output_size`'s (1920x1080 -> the formats' own
    sizes; a smaller OUTPUT_RESOLUTION, as in tests, renders every format smaller), in even pixels."""
    w, h = output_size
    fmt = spec.frame
    if abs(fmt.aspect - w / h) < 1e-3:
        return w, h
    scale = min(w, h) / min(fmt.width, fmt.height)
    return 2 * round(fmt.width * scale / 2), 2 * round(fmt.height * scale / 2)
