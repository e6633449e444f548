"""Plain data types shared by the media modules. No I/O, no database.

Coordinates are resolution-independent so a plan made on a thumbnail renders at any size.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any


class MotionType(StrEnum):
    PUSH_IN = "push_in"  # zoom toward the salient region
    PULL_OUT = "pull_out"  # start close on the salient region, reveal the room
    PAN_LEFT = "pan_left"  # viewport travels right-to-left along the wide axis
    PAN_RIGHT = "pan_right"
    TILT_UP = "tilt_up"  # viewport travels bottom-to-top (portrait photos)
    TILT_DOWN = "tilt_down"
    DRIFT = "drift"  # near-static, slow zoom: for small or weak photos
    PARALLAX = "parallax"  # 2.5D depth parallax (phase 2 renderer, when depth is available)
    I2V = "i2v"  # generative image-to-video (LTX-2), GPU only


class Easing(StrEnum):
    LINEAR = "linear"
    EASE_IN_OUT = "ease_in_out"  # smootherstep: zero velocity and acceleration at both ends
    EASE_OUT = "ease_out"


@dataclass(frozen=True)
class Viewport:
    """A camera window on the source photo.

    `cx`, `cy`: window centre in normalised image coordinates (0..1 of width / height).
    `zoom`: 1.0 is the largest window with the *output* aspect ratio that fits inside the photo
    (a "cover" crop); 1.25 is a window 1/1.25 that size. Renderers clamp the window inside the photo.
    """

    cx: float = 0.5
    cy: float = 0.5
    zoom: float = 1.0

    def to_dict(self) -> dict[str, float]:
        return {"cx": round(self.cx, 4), "cy": round(self.cy, 4), "zoom": round(self.zoom, 4)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Viewport:
        return cls(cx=float(d["cx"]), cy=float(d["cy"]), zoom=float(d["zoom"]))


@dataclass(frozen=True)
class MotionPlan:
    """What one clip's camera does over the photo. Duration is chosen by the timeline; the plan
    holds the analysis' recommendation."""

    motion_type: MotionType
    start: Viewport
    end: Viewport
    easing: Easing = Easing.EASE_IN_OUT
    recommended_duration: float = 4.0
    #: Motions this photo tolerates (a 640 px photo cannot take a deep push-in).
    allowed: tuple[MotionType, ...] = field(default_factory=tuple)
    #: Why this motion was chosen (salient point, wide axis, ...), for the storyboard and debugging.
    rationale: str = ""

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["motion_type"] = self.motion_type.value
        d["easing"] = self.easing.value
        d["start"] = self.start.to_dict()
        d["end"] = self.end.to_dict()
        d["allowed"] = [m.value for m in self.allowed]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MotionPlan:
        return cls(
            motion_type=MotionType(d["motion_type"]),
            start=Viewport.from_dict(d["start"]),
            end=Viewport.from_dict(d["end"]),
            easing=Easing(d.get("easing", "ease_in_out")),
            recommended_duration=float(d.get("recommended_duration", 4.0)),
            allowed=tuple(MotionType(m) for m in d.get("allowed", [])),
            rationale=str(d.get("rationale", "")),
        )


@dataclass(frozen=True)
class BeatGrid:
    """Music timing. All times in seconds from the start of the track."""

    tempo: float  # beats per minute
    beats: list[float]  # every beat
    downbeats: list[float]  # first beat of each bar (subset of beats)
    duration: float  # length of the track (or of the synthetic grid)
    beat_offset: float  # time of the first beat
    source: str  # "beatnet+hmm" | "librosa" | "beatnet_fallback" | "librosa_fallback" | "default_bpm" | ...
    confidence: float = 1.0  # 0..1, how far the grid can be trusted (low: no reliable pulse)
    beats_per_bar: int = 4  # felt beats per bar (6/8: 2)
    meter: str = "4/4"  # "4/4", "3/4", "6/8", "9/8" or "12/8"
    warnings: list[str] = field(default_factory=list)  # why the grid may not be trusted, for the job's warnings

    def to_dict(self) -> dict[str, Any]:
        return {
            "tempo": round(self.tempo, 3),
            "beats": [round(b, 4) for b in self.beats],
            "downbeats": [round(b, 4) for b in self.downbeats],
            "duration": round(self.duration, 4),
            "beat_offset": round(self.beat_offset, 4),
            "source": self.source,
            "confidence": round(self.confidence, 3),
            "beats_per_bar": self.beats_per_bar,
            "meter": self.meter,
            "warnings": list(self.warnings),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BeatGrid:
        return cls(
            tempo=float(d["tempo"]),
            beats=[float(b) for b in d["beats"]],
            downbeats=[float(b) for b in d["downbeats"]],
            duration=float(d["duration"]),
            beat_offset=float(d["beat_offset"]),
            source=str(d["source"]),
            confidence=float(d.get("confidence", 1.0)),
            beats_per_bar=int(d.get("beats_per_bar", 4)),
            meter=str(d.get("meter", "4/4")),
            warnings=[str(w) for w in d.get("warnings", [])],
        )
