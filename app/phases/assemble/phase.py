"""Phase 4 entry point: the current timeline becomes every deliverable of the job, one encode each.

For each `DeliverableSpec` of the job (default: one branded cut at OUTPUT_RESOLUTION), the shots are
made at that deliverable's framing and resolution (`shots.py`), overlays for its variant are
composited on the way (`app.media.overlays`), and the frames go straight into its one x264 encode
(`app.media.compose`). The audio is mixed once and encoded once per loudness target (`audio.py`).
Each result is recorded in `deliverables` with its measurements and compliance (`compliance.py`).

A deliverable whose inputs did not change since it was last made (same timeline version, spec,
listing facts it shows, template, voice-over) is kept: an edit re-renders only what it affects.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db.models import Clip, Deliverable, Job, JobPhase, Photo, Timeline
from app.db.session import session_scope
from app.errors import AudioError, PhaseOrderError
from app.media.assemble import extract_poster, verify_output
from app.media.audio import music_digest
from app.media.compose import compose_video
from app.media.deliverables import DeliverableSpec, ListingFacts, frame_size, specs_or_default
from app.media.ffmpeg import measure_loudness
from app.orchestrator import get_job
from app.phases.assemble.audio import Soundtrack, build_soundtrack
from app.phases.assemble.compliance import check_deliverable, ocr_texts, sample_frames
from app.phases.assemble.shots import COMPUTED_RENDERERS, ShotContext, ShotInput, plan_shots
from app.phases.base import PhaseContext, PhaseResult
from app.storage import keys

PHASE = 4
log = logging.getLogger(__name__)

#: Shown on cuts with AI-generated clips (California AB 723: a notice, with the originals linked in
#: the listing's report).
AI_DISCLOSURE = "Some scenes were generated with AI from the listing photos"


def current_timeline(s: Session, job_id: int) -> Timeline:
    timeline = s.scalars(select(Timeline).where(Timeline.job_id == job_id).order_by(Timeline.version.desc())).first()
    if timeline is None:
        raise PhaseOrderError(f"job {job_id} has no timeline; run phase 3 first")
    return timeline


def job_deliverables(job: Job, settings: Any) -> list[DeliverableSpec]:
    return specs_or_default(job.deliverables, settings.output_size, settings.TARGET_LOUDNESS_LUFS)


def _frame_size(spec: DeliverableSpec, settings: Any) -> tuple[int, int]:
    return frame_size(spec, settings.output_size)


@dataclass
class _Inputs:
    job_id: int
    version: int
    music: str | None
    music_offset: float
    checked_digest: str | None
    voiceover: str | None
    specs: list[DeliverableSpec]
    facts: ListingFacts
    template: str | None
    shots: list[ShotInput]
    existing: dict[str, Deliverable] = field(default_factory=dict)
    listing_id: str = ""


def _shot_inputs(s: Session, timeline: Timeline) -> list[ShotInput]:
    shots = []
    for tc in timeline.clips:
        clip = s.get(Clip, tc.clip_id) if tc.clip_id else None
        if clip is None or clip.status != "rendered":
            raise PhaseOrderError(
                f"timeline v{timeline.version} refers to a clip that is not rendered; re-run from phase 2"
            )
        photo = s.get(Photo, clip.photo_id) if clip.photo_id else None
        if photo is None:
            raise PhaseOrderError(f"clip {clip.id} has no photo; re-run from phase 1")
        analysis = photo.analysis or {}
        boxes = tuple(tuple(r["box"]) for r in analysis.get("text_regions") or [] if r.get("box"))
        shots.append(
            ShotInput(
                clip_id=clip.id,
                photo_id=photo.id,
                photo_uri=photo.s3_uri,
                renderer=clip.model_used or "ken_burns",
                clip_uri=clip.s3_uri,
                in_time=tc.in_time or 0.0,
                start=tc.start_time or 0.0,
                end=tc.end_time or 0.0,
                transition="cut" if tc.transition_type in (None, "none") else tc.transition_type,
                transition_duration=tc.transition_duration or 0.0,
                plans={**(clip.format_plans or {}), "primary": clip.motion_plan},
                text_boxes=boxes,  # type: ignore[arg-type]
                depth_uri=((analysis.get("depth") or {}).get("uri")),
                is_exterior=bool(photo.is_exterior),
                room=photo.resolved_room_label,
            )
        )
    return shots


def _read_inputs(ctx: PhaseContext, job_id: int) -> _Inputs:
    with session_scope(ctx.sessions) as s:
        job = get_job(s, job_id)
        timeline = current_timeline(s, job_id)
        details = s.scalar(select(JobPhase.details).where(JobPhase.job_id == job_id, JobPhase.phase == 3))
        digest = details.get("music_sha256") if isinstance(details, dict) else None
        inputs = _Inputs(
            job_id=job_id,
            version=timeline.version,
            music=job.music_uri,
            music_offset=timeline.music_offset or 0.0,
            checked_digest=digest if isinstance(digest, str) else None,
            voiceover=job.voiceover_uri,
            specs=job_deliverables(job, ctx.settings),
            facts=ListingFacts.from_dict(job.listing_facts),
            template=job.template_type,
            shots=_shot_inputs(s, timeline),
            listing_id=job.listing_id,
        )
        inputs.existing = {d.key: d for d in s.scalars(select(Deliverable).where(Deliverable.job_id == job_id))}
        for d in inputs.existing.values():
            s.expunge(d)
    if not inputs.shots:
        raise PhaseOrderError(f"timeline v{inputs.version} of job {job_id} is empty")
    return inputs


def inputs_digest(inputs: _Inputs, spec: DeliverableSpec, settings: Any) -> str:
    """Everything one deliverable depends on (see the module docstring)."""
    shown = inputs.facts.to_dict()
    if spec.variant == "unbranded":
        identity = {"agent_name", "agent_phone", "agent_email", "brokerage", "logo_uri", "extra_identity"}
        shown = {k: v for k, v in shown.items() if k not in identity}
    # The timeline's content, not its version number: a re-plan that changes nothing (a phase 1 re-run
    # for a new format) must not re-render the cuts that were already right.
    material = {
        "spec": spec.to_dict(),
        "size": _frame_size(spec, settings),
        "facts": shown,
        "template": inputs.template,
        "voiceover": inputs.voiceover,
        "music": [inputs.music, inputs.music_offset],
        "x264": [settings.OUTPUT_X264_PRESET, settings.OUTPUT_CRF, settings.OUTPUT_FPS],
        "shots": [
            [
                s.clip_id,
                s.renderer,
                s.clip_uri,
                s.plans.get(spec.format) or s.plans["primary"],
                s.text_boxes,
                s.in_time,
                s.start,
                s.end,
                s.transition,
                s.transition_duration,
            ]
            for s in inputs.shots
        ],
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True, default=str).encode()).hexdigest()


def _soundtrack(ctx: PhaseContext, inputs: _Inputs, duration: float, workdir: Path) -> Soundtrack:
    cache = workdir / "cache"
    music = None
    if inputs.music:
        music = ctx.storage.local_path(ctx.storage.resolve_key(inputs.music), cache)
        if inputs.checked_digest is not None and music_digest(music) != inputs.checked_digest:
            raise AudioError("the music file changed after phase 3 checked it; re-run from phase 3")
    voiceover = ctx.storage.local_path(ctx.storage.resolve_key(inputs.voiceover), cache) if inputs.voiceover else None
    models = ctx.get_components().models if voiceover is not None else None
    return build_soundtrack(
        music,
        inputs.music_offset,
        duration,
        ctx.settings.OUTPUT_FPS,
        workdir / "audio",
        voiceover=voiceover,
        speech_models=models,
    )


def run(job_id: int, ctx: PhaseContext) -> PhaseResult:
    workdir = ctx.workdir(job_id)
    progress = ctx.progress(job_id, PHASE)
    inputs = _read_inputs(ctx, job_id)
    duration = round(inputs.shots[-1].end * ctx.settings.OUTPUT_FPS) / ctx.settings.OUTPUT_FPS
    soundtrack = _soundtrack(ctx, inputs, duration, workdir)
    results: list[dict[str, Any]] = []
    made = 0
    for index, spec in enumerate(inputs.specs):
        digest = inputs_digest(inputs, spec, ctx.settings)
        old = inputs.existing.get(spec.key)
        if (
            old is not None
            and old.inputs_digest == digest
            and old.uri
            and ctx.storage.exists(ctx.storage.resolve_key(old.uri))
        ):
            results.append({"key": spec.key, "reused": True})
            continue

        def step(done: int, total: int, i: int = index) -> None:
            progress.step(i + done / max(total, 1), len(inputs.specs), f"{inputs.specs[i].key}")

        results.append(_deliver(ctx, inputs, spec, soundtrack, duration, digest, workdir, step))
        made += 1
    first = _finish(ctx, inputs, duration, workdir)
    details = {
        "timeline_version": inputs.version,
        "output_uri": first,
        "duration": duration,
        "deliverables": results,
        "made": made,
        "reused": len(results) - made,
        **({"voiceover": soundtrack.voiceover} if soundtrack.voiceover else {}),
    }
    return PhaseResult(PHASE, details=details, warnings=list(dict.fromkeys(soundtrack.warnings)))


def _overlay_for(
    ctx: PhaseContext,
    inputs: _Inputs,
    spec: DeliverableSpec,
    size: tuple[int, int],
    duration: float,
    soundtrack: Soundtrack,
    ai: bool,
) -> tuple[Any, list[str]]:
    """The deliverable's overlay compositor (None when it has no layers) and the identity violations of
    its layers (for the unbranded variant; none by construction, checked anyway)."""
    from app.media.overlays import OverlayCompositor, build_layers, identity_violations, template_for_job

    logo = None
    if inputs.facts.logo_uri and spec.variant == "branded":
        logo = ctx.storage.local_path(
            ctx.storage.resolve_key(inputs.facts.logo_uri), ctx.workdir(inputs.job_id) / "cache"
        )
    cues = [(c.start, c.end, c.text) for c in soundtrack.captions] if spec.burns_captions else None
    layers = build_layers(
        inputs.facts,
        spec,
        duration=duration,
        template=template_for_job(inputs.template),
        captions=cues or None,
        disclosure=AI_DISCLOSURE if ai else None,
        logo_path=logo,
    )
    violations = identity_violations(layers, inputs.facts) if spec.variant == "unbranded" else []
    if not layers:
        return None, violations
    return OverlayCompositor(replace_size(spec, size), layers).composite, violations


def replace_size(spec: DeliverableSpec, size: tuple[int, int]) -> Any:
    """The spec's frame format at the size actually rendered (tests render smaller than production)."""
    from dataclasses import replace

    return replace(spec.frame, width=size[0], height=size[1])


def _deliver(
    ctx: PhaseContext,
    inputs: _Inputs,
    spec: DeliverableSpec,
    soundtrack: Soundtrack,
    duration: float,
    digest: str,
    workdir: Path,
    step: Any,
) -> dict[str, Any]:
    settings = ctx.settings
    width, height = _frame_size(spec, settings)
    fps = settings.OUTPUT_FPS
    sc = ShotContext(ctx, workdir, width, height, fps, spec.format, spec.variant == "unbranded", soundtrack.energy)
    shots, total, report = plan_shots(sc, inputs.shots)
    ai_clips = [c for c in report.generated if c not in report.replaced_generated]
    overlay, violations = _overlay_for(ctx, inputs, spec, (width, height), duration, soundtrack, bool(ai_clips))
    audio, _ = soundtrack.track(spec.lufs, settings.TARGET_TRUE_PEAK_DBTP)
    out = workdir / f"{spec.key}-v{inputs.version}.mp4"
    stats = compose_video(
        shots,
        total,
        out,
        width=width,
        height=height,
        fps=fps,
        audio=audio,
        overlay=overlay,
        preset=settings.OUTPUT_X264_PRESET,
        crf=settings.OUTPUT_CRF,
        progress=step,
    )
    verify_output(
        out, expected_duration=total / fps, width=width, height=height, fps=fps, expect_audio=audio is not None
    )
    loudness = measure_loudness(out, target_i=spec.lufs) if audio is not None else None
    compliance = _compliance(
        ctx, spec, inputs, out, total / fps, (width, height), violations, report, ai_clips, overlay
    )
    uri = ctx.storage.put_file(keys.deliverable(inputs.job_id, inputs.version, spec.key), out, "video/mp4")
    vtt_uri, srt_uri = _caption_files(ctx, inputs, spec, soundtrack, workdir)
    record = {
        "key": spec.key,
        "format": spec.format,
        "variant": spec.variant,
        "uri": uri,
        "width": width,
        "height": height,
        "duration": round(total / fps, 4),
        "target_lufs": spec.lufs,
        "integrated_lufs": loudness.integrated_lufs if loudness else None,
        "true_peak_dbtp": loudness.true_peak_dbtp if loudness else None,
        "encode_seconds": round(stats.seconds, 3),
        "compose_seconds": round(stats.compose_seconds, 3),
        "captions_vtt_uri": vtt_uri,
        "captions_srt_uri": srt_uri,
        "compliance": compliance,
    }
    _save_deliverable(ctx, inputs, spec, record, digest)
    return record


def _compliance(
    ctx: PhaseContext,
    spec: DeliverableSpec,
    inputs: _Inputs,
    out: Path,
    duration: float,
    size: tuple[int, int],
    violations: list[str],
    report: Any,
    ai_clips: list[int],
    overlay: Any,
) -> dict[str, Any]:
    opener = inputs.shots[0]
    opening = {
        "photo_id": opener.photo_id,
        "room": opener.room,
        "exterior": opener.is_exterior,
        "unaltered": opener.renderer in COMPUTED_RENDERERS or opener.clip_id in report.replaced_generated,
    }
    found = None
    reader = getattr(ctx.get_components().models, "ocr", None) if spec.variant == "unbranded" else None
    if reader is not None and inputs.facts.identity_strings():
        found = ocr_texts(sample_frames(out, duration, ctx.settings.OUTPUT_FPS, size), reader)
    return check_deliverable(
        spec,
        facts=inputs.facts,
        layer_violations=violations,
        ocr_found=found,
        redacted=report.redacted_regions,
        opening=opening,
        ai_clips=ai_clips,
        disclosure_shown=bool(ai_clips) and overlay is not None,
    )


def _caption_files(
    ctx: PhaseContext, inputs: _Inputs, spec: DeliverableSpec, soundtrack: Soundtrack, workdir: Path
) -> tuple[str | None, str | None]:
    if not soundtrack.captions:
        return None, None
    from app.media.voiceover import to_srt, to_webvtt

    uris = []
    for ext, text in (("vtt", to_webvtt(soundtrack.captions)), ("srt", to_srt(soundtrack.captions))):
        path = workdir / f"{spec.key}-v{inputs.version}.{ext}"
        path.write_text(text, encoding="utf-8")
        mime = "text/vtt" if ext == "vtt" else "application/x-subrip"
        uris.append(ctx.storage.put_file(keys.captions(inputs.job_id, inputs.version, spec.key, ext), path, mime))
    return uris[0], uris[1]


def _save_deliverable(
    ctx: PhaseContext, inputs: _Inputs, spec: DeliverableSpec, record: dict[str, Any], digest: str
) -> None:
    with session_scope(ctx.sessions) as s:
        row = s.scalars(
            select(Deliverable).where(Deliverable.job_id == inputs.job_id, Deliverable.key == spec.key)
        ).first()
        if row is None:
            row = Deliverable(job_id=inputs.job_id, key=spec.key, format=spec.format, variant=spec.variant)
            s.add(row)
        row.timeline_version = inputs.version
        row.status = "delivered"
        row.inputs_digest = digest
        for name in (
            "uri",
            "width",
            "height",
            "duration",
            "target_lufs",
            "integrated_lufs",
            "true_peak_dbtp",
            "encode_seconds",
            "captions_vtt_uri",
            "captions_srt_uri",
            "compliance",
        ):
            setattr(row, name, record[name])


def _finish(ctx: PhaseContext, inputs: _Inputs, duration: float, workdir: Path) -> str:
    """Deliverables no longer asked for are dropped; the job's `output_uri` (the first deliverable),
    poster (the middle of the opening shot of the first deliverable) and storyboard are set."""
    wanted = [s.key for s in inputs.specs]
    with session_scope(ctx.sessions) as s:
        rows = {d.key: d for d in s.scalars(select(Deliverable).where(Deliverable.job_id == inputs.job_id))}
        for key, row in rows.items():
            if key not in wanted:
                s.delete(row)
        first_uri = rows[wanted[0]].uri
    assert first_uri is not None
    local = ctx.storage.local_path(ctx.storage.resolve_key(first_uri), workdir / "cache")
    opener = inputs.shots[0]
    poster = extract_poster(local, workdir / f"poster-v{inputs.version}.jpg", at=max(0.0, opener.end / 2))
    poster_uri = ctx.storage.put_file(keys.poster(inputs.job_id, inputs.version), poster, "image/jpeg")
    storyboard_uri = _storyboard_for(ctx, inputs.job_id, inputs.version)
    with session_scope(ctx.sessions) as s:
        job = get_job(s, inputs.job_id, lock=True)
        job.output_uri, job.poster_uri, job.storyboard_uri = first_uri, poster_uri, storyboard_uri
        timeline = current_timeline(s, inputs.job_id)
        timeline.status = "rendered"
        timeline.output_uri = first_uri
    return first_uri


def _storyboard_for(ctx: PhaseContext, job_id: int, version: int) -> str:
    """The storyboard of the version being delivered. Phase 3 draws one for its versions; a version an edit
    made (reorder, trim, transitions) gets its own here, so the storyboard always shows the video's cuts."""
    key = keys.storyboard(job_id, version)
    if ctx.storage.exists(key):
        return ctx.storage.uri(key)
    from app.phases.timeline.storyboard import write_storyboard

    board = write_storyboard(ctx, job_id, version, ctx.workdir(job_id) / f"storyboard-v{version}.png")
    return ctx.storage.put_file(key, board, "image/png")


def local_output(ctx: PhaseContext, job_id: int, dest: Path) -> Path:
    """Copy the job's (first) delivered video to `dest` (the CLI's --out FILE.mp4)."""
    with session_scope(ctx.sessions) as s:
        uri = get_job(s, job_id).output_uri
    if not uri:
        raise PhaseOrderError(f"job {job_id} has no output yet")
    return ctx.storage.get_file(ctx.storage.resolve_key(uri), dest)


def local_deliverables(ctx: PhaseContext, job_id: int, folder: Path, stem: str) -> list[dict[str, Any]]:
    """Copy every deliverable (and its captions) into `folder` as ``<stem>-<key>.mp4`` (the CLI's --out DIR)."""
    with session_scope(ctx.sessions) as s:
        rows = list(s.scalars(select(Deliverable).where(Deliverable.job_id == job_id).order_by(Deliverable.id)))
        found = [
            (
                r.key,
                r.format,
                r.variant,
                r.uri,
                r.width,
                r.height,
                r.duration,
                r.integrated_lufs,
                r.captions_vtt_uri,
                r.compliance,
            )
            for r in rows
        ]
    out = []
    for key, fmt, variant, uri, width, height, dur, lufs, vtt, compliance in found:
        if not uri:
            continue
        path = ctx.storage.get_file(ctx.storage.resolve_key(uri), folder / f"{stem}-{key}.mp4")
        captions = None
        if vtt:
            captions = str(ctx.storage.get_file(ctx.storage.resolve_key(vtt), folder / f"{stem}-{key}.vtt"))
        out.append(
            {
                "key": key,
                "format": fmt,
                "variant": variant,
                "path": str(path),
                "width": width,
                "height": height,
                "duration": dur,
                "lufs": lufs,
                "captions": captions,
                "compliance": compliance,
            }
        )
    return out
