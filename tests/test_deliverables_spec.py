"""Deliverables as data (pure): specs, sizes, listing facts, text redaction, motion variety, identity checks."""

from __future__ import annotations

import itertools

import cv2
import numpy as np
import pytest

from app.errors import InvalidInputError
from app.media.deliverables import (
    FORMATS,
    DeliverableSpec,
    ListingFacts,
    frame_size,
    parse_deliverables,
    specs_or_default,
)
from app.media.motion import reverse_plan, vary_motion
from app.media.redact import blur_regions
from app.media.types import MotionPlan, MotionType, Viewport
from app.phases.assemble.compliance import check_deliverable, identity_hits


def test_formats_and_sizes() -> None:
    assert {k: (f.width, f.height) for k, f in FORMATS.items()} == {
        "16:9": (1920, 1080),
        "9:16": (1080, 1920),
        "1:1": (1080, 1080),
        "4:5": (1080, 1350),
    }
    for f in FORMATS.values():
        safe = f.text_safe
        assert 0 <= safe.x0 < safe.x1 <= 1 and 0 <= safe.y0 < safe.y1 <= 1
    assert FORMATS["9:16"].text_safe.y1 <= 0.78, "clear of the Reels/TikTok caption and button area"
    assert frame_size(DeliverableSpec("9:16"), (1920, 1080)) == (1080, 1920)
    assert frame_size(DeliverableSpec("4:5"), (640, 360)) == (360, 450)
    assert frame_size(DeliverableSpec("16:9"), (640, 360)) == (640, 360)


def test_parse_and_keys() -> None:
    specs = parse_deliverables(["16:9", "9:16", "1:1"], ["branded", "unbranded"], lufs={"9:16": -16})
    assert [s.key for s in specs] == [
        "16x9-branded",
        "16x9-unbranded",
        "9x16-branded",
        "9x16-unbranded",
        "1x1-branded",
        "1x1-unbranded",
    ]
    assert specs[2].lufs == -16.0 and specs[0].lufs == -14.0
    assert specs[2].burns_captions and not specs[0].burns_captions
    assert DeliverableSpec.from_dict({"format": "1:1", "lufs": -16}) == DeliverableSpec("1:1", lufs=-16.0)
    assert specs_or_default(None, (1080, 1920))[0].format == "9:16"
    for bad in ({"format": "3:2"}, {"variant": "mls"}, {"lufs": -40}, {"lufs": "loud"}, {"colour": "red"}):
        with pytest.raises(InvalidInputError):
            DeliverableSpec.from_dict(bad)


def test_listing_facts() -> None:
    facts = ListingFacts.from_dict({"address": "1 A St", "beds": "3", "sqft": 1850.0, "agent_phone": "555-0100"})
    assert facts.beds == 3.0 and facts.sqft == 1850
    assert facts.identity_strings() == ["555-0100"]
    assert ListingFacts.from_dict(facts.to_dict()) == facts
    with pytest.raises(InvalidInputError, match="unknown listing fact"):
        ListingFacts.from_dict({"pool": True})
    with pytest.raises(InvalidInputError, match="must be a number"):
        ListingFacts.from_dict({"beds": "three"})


def test_blur_regions_makes_text_unreadable_and_leaves_the_rest() -> None:
    rng = np.random.default_rng(2)
    photo = (rng.random((400, 600, 3)) * 60 + 100).astype(np.uint8)
    cv2.putText(photo, "555 0123", (40, 360), cv2.FONT_HERSHEY_SIMPLEX, 1.4, (0, 0, 0), 3)
    box = (30 / 600, 320 / 400, 260 / 600, 375 / 400)
    out, n = blur_regions(photo, [box])
    assert n == 1 and out is not photo
    text_region = (slice(325, 372), slice(35, 255))
    edges = lambda img: float(cv2.Laplacian(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY), cv2.CV_64F).var())  # noqa: E731
    assert edges(out[text_region]) < 0.1 * edges(photo[text_region])
    assert np.array_equal(out[:250], photo[:250]), "nothing outside the box changes"
    assert blur_regions(photo, [(0.5, 0.5, 0.5, 0.5)])[1] == 0


def test_vary_motion_never_repeats_a_move() -> None:
    push = MotionPlan(
        MotionType.PUSH_IN,
        Viewport(0.5, 0.5, 1.0),
        Viewport(0.6, 0.4, 1.3),
        allowed=(MotionType.PUSH_IN, MotionType.PULL_OUT),
    )
    pan = MotionPlan(MotionType.PAN_LEFT, Viewport(0.7, 0.5, 1.0), Viewport(0.3, 0.5, 1.0))
    varied = vary_motion([push, push, push, pan, pan])
    kinds = [p.motion_type for p in varied]
    assert kinds == [
        MotionType.PUSH_IN,
        MotionType.PULL_OUT,
        MotionType.PUSH_IN,
        MotionType.PAN_LEFT,
        MotionType.PAN_RIGHT,
    ]
    assert all(a != b for a, b in itertools.pairwise(kinds))
    back = reverse_plan(push)
    assert (back.start, back.end) == (push.end, push.start), "same windows, opposite direction"
    only_push = MotionPlan(MotionType.PUSH_IN, Viewport(), Viewport(zoom=1.2), allowed=(MotionType.PUSH_IN,))
    assert reverse_plan(only_push) is only_push, "a photo that cannot take a pull-out keeps its move"


def test_identity_check_and_compliance_record() -> None:
    facts = ListingFacts(agent_name="Jane Doe", agent_phone="(555) 201-7788", brokerage="Example Realty")
    assert identity_hits(["CALL 555 201 7788"], facts) == ["(555) 201-7788"]
    assert identity_hits(["JaneDoe", "Maple St"], facts) == ["Jane Doe"]
    assert identity_hits(["42 Maple Street", "$525,000"], facts) == []
    spec = DeliverableSpec("16:9", "unbranded")
    ok = check_deliverable(
        spec, facts=facts, layer_violations=[], ocr_found=["42 Maple"], redacted=2,
        opening={"unaltered": True, "exterior": True}, ai_clips=[], disclosure_shown=False,
    )  # fmt: skip
    assert ok["passed"] and ok["text_redacted"] == 2
    bad = check_deliverable(
        spec, facts=facts, layer_violations=["Jane Doe"], ocr_found=["call 5552017788"], redacted=0,
        opening={"unaltered": False}, ai_clips=[3], disclosure_shown=False,
    )  # fmt: skip
    assert not bad["passed"] and len(bad["problems"]) == 4
