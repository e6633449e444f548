"""`picaivid`: the command line. Thin: every command calls the same services the workers use.

Errors a user can cause print one line to stderr and exit 2; progress goes to stderr so that
`--json` leaves stdout with exactly one JSON object.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from app.config import Settings, get_settings
from app.errors import PicaividError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Turn a listing's photos and a music track into a beat-synced listing video.",
)
db_app = typer.Typer(no_args_is_help=True, help="Database schema.")
app.add_typer(db_app, name="db")
queues_app = typer.Typer(no_args_is_help=True, help="SQS queues of the fleet.")
app.add_typer(queues_app, name="queues")
dlq_app = typer.Typer(no_args_is_help=True, help="Dead-letter queues.")
app.add_typer(dlq_app, name="dlq")

err_console = Console(stderr=True)
log = logging.getLogger("picaivid")


def _setup_logging(settings: Settings) -> Path:
    """Logs (JSON lines, tracebacks included) go to a file, never to the user's terminal."""
    from app.logs import configure_logging

    log_dir = Path(settings.WORK_DIR).parent / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    log_file = log_dir / "picaivid.log"
    configure_logging(settings, file=log_file)
    return log_file


_CONTROL_CHARS = {c: f"\\x{c:02x}" for c in [*range(0x20), 0x7F, *range(0x80, 0xA0)]}
_CONTROL_CHARS.update({ord("\t"): " "})


def shown(text: object) -> str:
    """User-supplied text (file names, reasons, listing ids) made safe for the terminal: control
    characters (terminal escape sequences among them) become visible ``\\xNN`` escapes, and Rich markup
    such as ``[bold]`` prints literally instead of being interpreted."""
    return escape(str(text).translate(_CONTROL_CHARS))


def _fail(message: str, code: int, as_json: bool, **extra: Any) -> NoReturn:
    if as_json:
        typer.echo(json.dumps({"status": "failed", "error": message, **extra}))
    err_console.print(f"[bold red]error:[/] {shown(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


@contextmanager
def _user_errors(as_json: bool, log_file: Path | None = None) -> Iterator[None]:
    try:
        yield
    except PicaividError as exc:
        _fail(str(exc), exc.exit_code, as_json)
    except typer.Exit:
        raise
    except KeyboardInterrupt:
        _fail("interrupted", 130, as_json)
    except Exception as exc:
        log.exception("unexpected error")
        where = f"; details in {log_file}" if log_file else ""
        _fail(f"internal error ({type(exc).__name__}){where}", 1, as_json)


def _context(progress_sink: Callable[..., None] | None = None) -> Any:
    from app.db.migrate import ensure_schema
    from app.db.session import session_factory
    from app.phases.base import PhaseContext
    from app.progress import null_sink
    from app.storage import get_storage

    settings = get_settings()
    ensure_schema(settings.DATABASE_URL)
    return PhaseContext(
        settings=settings,
        sessions=session_factory(settings.DATABASE_URL),
        storage=get_storage(settings),
        progress_sink=progress_sink or null_sink,
        worker_id=f"cli-{os.getpid()}",
        # Models and renderers are built on first use (`get_components`), once: `status` or `run --fleet`
        # never load weights they do not need.
    )


class RichProgressSink:
    """Draws one bar per phase from progress events."""

    NAMES: ClassVar[dict[int, str]] = {1: "1 analyze ", 2: "2 render  ", 3: "3 timeline", 4: "4 assemble"}

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.tasks: dict[int, TaskID] = {}

    def __call__(self, event: Any) -> None:
        if event.phase is None:
            return
        task = self.tasks.get(event.phase)
        if task is None:
            task = self.progress.add_task(self.NAMES.get(event.phase, str(event.phase)), total=1, note="")
            self.tasks[event.phase] = task
        if event.kind == "progress" and event.total:
            self.progress.update(task, total=event.total, completed=event.done, note=event.message)
        elif event.kind == "phase_completed":
            total = self.progress.tasks[task].total or 1
            self.progress.update(task, completed=total, note="done")
        elif event.kind == "phase_failed":
            self.progress.update(task, note="[red]failed[/]")


@contextmanager
def _progress(enabled: bool) -> Iterator[Callable[..., None] | None]:
    if not enabled:
        yield None
        return
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
        TextColumn("{task.fields[note]}"),
        console=err_console,
        transient=False,
    )
    with progress:
        yield RichProgressSink(progress)


def _render_report(ctx: Any, job_id: int, output: Path | None) -> dict[str, Any]:
    from app.services.reports import job_report

    return job_report(ctx, job_id, output=output)


@app.command()
def render(
    photos_dir: Path = typer.Argument(..., help="Folder of photos; sub-folder names are room labels."),
    music: Path | None = typer.Option(None, "--music", "-m", help="Music track (mp3, wav, flac, m4a)."),
    out: Path = typer.Option(Path("listing.mp4"), "--out", "-o", help="Where to write the MP4."),
    target_length: float | None = typer.Option(None, "--target-length", "-t", help="Seconds (default 30)."),
    listing_id: str | None = typer.Option(None, help="Listing id (default: the folder's name)."),
    no_beat_sync: bool = typer.Option(False, "--no-beat-sync", help="Cut on a steady DEFAULT_BPM grid."),
    formats: str | None = typer.Option(None, "--formats", help="Frame formats, e.g. 16:9,9:16,1:1,4:5."),
    variants: str | None = typer.Option(None, "--variants", help="branded, unbranded (MLS), or both."),
    listing: Path | None = typer.Option(None, "--listing", help="JSON with address, price, beds, agent_name..."),
    voiceover: Path | None = typer.Option(None, "--voiceover", help="Voice-over track: captions, ducked music."),
    template: str | None = typer.Option(None, "--template", help="Overlay style (template_type)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
) -> None:
    """Render a listing video from a folder of photos and a music track, on this machine.

    `--out FILE.mp4` writes the (first) cut there and any others beside it as FILE-<format>-<variant>.mp4;
    `--out FOLDER` writes every cut into the folder."""
    settings = get_settings()
    log_file = _setup_logging(settings)
    from app.orchestrator import run_job
    from app.services.jobs import create_job, photos_from_folder

    with _user_errors(as_json, log_file):
        if music is not None and not music.is_file():
            _fail(f"music file {music} does not exist", 2, as_json)
        specs, facts = _deliverable_options(formats, variants, listing)
        inputs = [p for p in (music, voiceover, listing) if p is not None]
        check_output_path(out, inputs=inputs, allow_folder=True)
        photos = [p for p in photos_from_folder(photos_dir) if not is_own_artifact(Path(p.path), out)]
        listing_id = listing_id or photos_dir.resolve().name
        with _progress(True) as sink:
            ctx = _context(sink)
            job_id = create_job(
                ctx,
                listing_id=listing_id,
                photos=photos,
                music=music,
                target_length=target_length,
                enable_beat_sync=False if no_beat_sync else None,
                template_type=template,
                deliverables=specs,
                listing_facts=facts,
                voiceover=voiceover,
            )
            outcome = run_job(ctx, job_id)
        if outcome.status != "completed":
            report = _render_report(ctx, job_id, None)
            _fail(
                outcome.error or "job failed",
                outcome.exit_code,
                as_json,
                job_id=job_id,
                skipped_photos=report["skipped_photos"],
            )
        output, delivered = _copy_deliverables(ctx, job_id, out, listing_id)
        report = _render_report(ctx, job_id, output)
        report["deliverables"] = delivered
        report["components"] = ctx.get_components().report()
        _emit_render_report(report, as_json)


def _deliverable_options(formats: str | None, variants: str | None, listing: Path | None) -> tuple[Any, Any]:
    from app.media.deliverables import parse_deliverables
    from app.services.jobs import load_listing_facts

    specs = None
    if formats is not None or variants is not None:
        specs = parse_deliverables(formats.split(",") if formats else None, variants.split(",") if variants else None)
    return specs, load_listing_facts(listing) if listing is not None else None


def _copy_deliverables(ctx: Any, job_id: int, out: Path, listing_id: str) -> tuple[Path, list[dict[str, Any]]]:
    """Every deliverable where --out says (see `render`); returns the main output and the list."""
    from app.phases.assemble.phase import local_deliverables

    if out.suffix.lower() == ".mp4":
        target = out.resolve()
        delivered = local_deliverables(ctx, job_id, target.parent, target.stem)
        if delivered:
            first = Path(delivered[0]["path"])
            os.replace(first, target)
            delivered[0]["path"] = str(target)
            if delivered[0].get("captions"):
                vtt = Path(delivered[0]["captions"])
                os.replace(vtt, target.with_suffix(".vtt"))
                delivered[0]["captions"] = str(target.with_suffix(".vtt"))
        return target, delivered
    folder = out.resolve()
    folder.mkdir(parents=True, exist_ok=True)
    from app.storage.keys import safe_name

    delivered = local_deliverables(ctx, job_id, folder, safe_name(listing_id))
    return Path(delivered[0]["path"]) if delivered else folder, delivered


@app.command()
def analyze(
    photos_dir: Path = typer.Argument(..., help="Folder of photos; sub-folder names are room labels."),
    ignore_folder_labels: bool = typer.Option(
        False, "--ignore-folder-labels", help="Classify every photo, even where its sub-folder names the room."
    ),
    listing_id: str | None = typer.Option(None, help="Listing id (default: the folder's name)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
) -> None:
    """Analyse photos without rendering: quality, interior/exterior, room type, rooms and heroes, text.

    The analysis is kept as a job (phase 1 done): `picaivid run JOB_ID` renders it later."""
    settings = get_settings()
    log_file = _setup_logging(settings)
    from app.orchestrator import run_job
    from app.services.analysis import job_photo_entries
    from app.services.jobs import create_job, photos_from_folder

    with _user_errors(as_json, log_file):
        photos = photos_from_folder(photos_dir)
        if ignore_folder_labels:
            photos = [replace(p, room_label=None) for p in photos]
        with _progress(not as_json) as sink:
            ctx = _context(sink)
            job_id = create_job(ctx, listing_id=listing_id or photos_dir.resolve().name, photos=photos, music=None)
            outcome = run_job(ctx, job_id, phases=(1,))
        if outcome.status == "failed":
            _fail(outcome.error or "analysis failed", outcome.exit_code, as_json, job_id=job_id)
        report = {
            "job_id": job_id,
            "photos": job_photo_entries(ctx, job_id),
            "components": ctx.get_components().report(),
        }
        if as_json:
            typer.echo(json.dumps(report))
            return
        _print_photo_table(report["photos"])
        err_console.print(f"[dim]{shown(_components_line(report['components']))}[/]", highlight=False)
        err_console.print(f"job {job_id}: render it with `picaivid run {job_id}`", highlight=False)


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.0f}%"


def _print_photo_table(photos: list[dict[str, Any]]) -> None:
    table = Table("file", "exterior", "room", "conf", "source", "room#", "hero", "sharp", "score", "text")
    for p in photos:
        if p["status"] == "rejected":
            table.add_row(shown(p["file"]), "-", f"[red]skipped[/]: {escape(shown(p['reject_reason'] or ''))}")
            continue
        q = p["quality"]
        texts = [t.get("text") or "?" for t in p["text_regions"]]
        table.add_row(
            shown(p["file"]),
            _percent(p["exterior_probability"]),
            shown(p["room_label"] or "-"),
            _percent(p["room_label_confidence"]),
            shown(p["room_label_source"] or "-"),
            "-" if p["cluster"] is None else str(p["cluster"]),
            "*" if p["hero"] else "",
            "-" if q["sharpness"] is None else f"{q['sharpness']:.2f}",
            "-" if q["final_score"] is None else f"{q['final_score']:.2f}",
            escape(shown(", ".join(texts)[:40])),
        )
    Console().print(table)


@app.command()
def beats(
    music: Path = typer.Argument(..., help="Music track (mp3, wav, flac, m4a)."),
    plot: Path | None = typer.Option(None, "--plot", help="Also draw the beat grid into this PNG."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
) -> None:
    """Beats, tempo, meter and downbeats of a music track (what phase 3 cuts on)."""
    settings = get_settings()
    log_file = _setup_logging(settings)
    from app.errors import InvalidInputError
    from app.services.analysis import analyze_beats, beats_report

    with _user_errors(as_json, log_file):
        if not music.is_file():
            raise InvalidInputError(f"music file {music} does not exist")
        if plot is not None and (plot.suffix.lower() != ".png" or not plot.resolve().parent.is_dir()):
            raise InvalidInputError(f"--plot must name a .png file in an existing folder (got {plot})")
        from app.models.registry import get_model_registry

        grid = analyze_beats(music, get_model_registry(settings))
        report = beats_report(grid)
        if plot is not None:
            from app.media.storyboard import draw_beat_grid

            report["plot"] = str(draw_beat_grid(grid, plot, title=music.name))
        if as_json:
            typer.echo(json.dumps(report))
            return
        _print_beats(report)


def _print_beats(report: dict[str, Any]) -> None:
    console = Console()
    console.print(
        f"[bold]{report['tempo']:.1f} BPM[/], meter {report['meter']}, {report['beat_count']} beats in "
        f"{report['bar_count']} bars, confidence {report['confidence']:.2f} ({shown(report['source'])})",
        highlight=False,
    )
    for warning in report.get("warnings") or []:
        err_console.print(f"[yellow]note:[/] {shown(warning)}", highlight=False)
    downbeats = {round(d, 3) for d in report["downbeats"]}
    bars: list[list[float]] = []
    for b in report["beats"]:
        if round(b, 3) in downbeats or not bars:
            bars.append([])
        bars[-1].append(b)
    table = Table("bar", "downbeat (s)", "beats (s)")
    for i, bar in enumerate(bars[:64], start=1):
        table.add_row(str(i), f"{bar[0]:.3f}", " ".join(f"{b:.2f}" for b in bar[1:]))
    console.print(table)
    if len(bars) > 64:
        console.print(f"... {len(bars) - 64} more bars (--json lists every beat)")
    if report.get("plot"):
        console.print(f"beat grid: {shown(report['plot'])}", highlight=False)


#: Job ids are PostgreSQL integers.
MAX_JOB_ID = 2**31 - 1
#: Commands that take a job id: "-1" is then a (bad) job id, not an unknown option.
JOB_ID_COMMAND = {"ignore_unknown_options": True}


def _check_job_id(job_id: int) -> None:
    from app.errors import InvalidInputError

    if not 1 <= job_id <= MAX_JOB_ID:
        raise InvalidInputError(f"job id must be a whole number from 1 to {MAX_JOB_ID} (got {job_id})")


ARTIFACT_SUFFIXES = (".poster.jpg", ".storyboard.png")


def check_output_path(out: Path, *, inputs: list[Path], allow_folder: bool = False) -> None:
    """Refuse an --out that cannot work, before any rendering: not .mp4 (or, with `allow_folder`, a folder
    for several cuts), an input file, or in a folder that is missing or not writable. Its poster and
    storyboard must not overwrite inputs either."""
    from app.errors import InvalidInputError

    if allow_folder and (out.is_dir() or out.suffix == ""):
        _check_writable_folder(out if out.is_dir() else out.resolve().parent, out)
        return
    if out.suffix.lower() != ".mp4":
        raise InvalidInputError(f"--out must end in .mp4 or name a folder (got {out.name})")
    if out.is_dir():
        raise InvalidInputError(f"--out {out} is a folder; name the video file, e.g. {out / 'listing.mp4'}")
    target = out.resolve()
    written = [target, *(target.with_name(target.stem + suffix) for suffix in ARTIFACT_SUFFIXES)]
    for source in inputs:
        if source.resolve() in written:
            raise InvalidInputError(f"--out {out} would overwrite the input {source}; choose another name")
    _check_writable_folder(target.parent, out)


def _check_writable_folder(folder: Path, out: Path) -> None:
    from app.errors import InvalidInputError

    if not folder.is_dir():
        raise InvalidInputError(f"--out {out}: folder {folder} does not exist")
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise InvalidInputError(f"--out {out}: cannot write to {folder} ({exc.strerror or exc})") from exc


def is_own_artifact(path: Path, out: Path) -> bool:
    """The video this render writes, or a poster or storyboard an earlier render wrote next to its video
    (``listing.poster.jpg`` beside ``listing.mp4``): never photos, even with --out in the photo folder."""
    if path.resolve() == out.resolve():
        return True
    name = path.name
    for suffix in ARTIFACT_SUFFIXES:
        if name.endswith(suffix) and path.with_name(name[: -len(suffix)] + ".mp4").exists():
            return True
    return False


def _components_line(components: dict[str, Any]) -> str:
    """Which renderers and models ran, and which fell back to classical code and why (one line)."""
    used = ", ".join(components.get("renderers", []))
    models = components.get("models") or {}
    parts = [f"renderers: {used}"]
    for kind in ("clip", "depth", "beats", "ocr"):
        info = models.get(kind) or {}
        parts.append(
            f"{kind}: {info['source']}"
            if info.get("loaded")
            else f"{kind}: classical ({info.get('fallback_reason', 'no model')})"
        )
    skipped = components.get("skipped") or {}
    parts.extend(f"{name} off ({why})" for name, why in skipped.items())
    return "; ".join(parts)


def _emit_render_report(report: dict[str, Any], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(report))
        return
    for skipped in report["skipped_photos"]:
        err_console.print(f"[yellow]skipped[/] {shown(skipped['file'])}: {shown(skipped['reason'])}", highlight=False)
    for warning in report["warnings"]:
        err_console.print(f"[yellow]note:[/] {shown(warning)}", highlight=False)
    if report.get("components"):
        err_console.print(f"[dim]{shown(_components_line(report['components']))}[/]", highlight=False)
    tl = report["timeline"] or {}
    err_console.print(
        f"[green]job {report['job_id']} {report['status']}[/]: {len(tl.get('clips', []))} clips, "
        f"{tl.get('total_duration', 0):.1f} s at {tl.get('tempo', 0):.1f} BPM"
    )
    for d in report.get("deliverables") or []:
        lufs = f"{d['lufs']:.1f} LUFS" if d.get("lufs") is not None else "silent"
        passed = (d.get("compliance") or {}).get("passed", True)
        flag = "" if passed else " [red]compliance problems[/]"
        err_console.print(
            f"{d['format']:>5} {d['variant']:<10} {d['width']}x{d['height']} {lufs}: {shown(d['path'])}{flag}",
            highlight=False,
        )
    if report.get("storyboard"):
        err_console.print(f"storyboard: {shown(report['storyboard'])}", highlight=False)
    if report.get("poster"):
        err_console.print(f"poster:     {shown(report['poster'])}", highlight=False)
    typer.echo(report["output"])


@app.command("run", context_settings=JOB_ID_COMMAND)
def run_cmd(
    job_id: int = typer.Argument(..., help="Job id."),
    from_phase: int | None = typer.Option(
        None, "--from-phase", min=1, max=4, help="Re-run from this phase; earlier phases are kept."
    ),
    out: Path | None = typer.Option(None, "--out", "-o", help="Also copy the video here."),
    fleet: bool | None = typer.Option(
        None,
        "--fleet/--local",
        help="Hand the run to the queue workers, or run it in this process "
        "(default: the fleet when SQS_QUEUE_URL is set).",
    ),
    wait: bool = typer.Option(True, "--wait/--no-wait", help="Fleet: wait until the job completes or fails."),
    timeout: float = typer.Option(3600.0, "--timeout", help="Fleet: give up waiting after this many seconds."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Run or resume a job; with --from-phase, re-run phase N and later only."""
    settings = get_settings()
    log_file = _setup_logging(settings)
    use_fleet = bool(settings.SQS_QUEUE_URL) if fleet is None else fleet
    from app.orchestrator import run_job
    from app.phases.assemble.phase import local_output

    with _user_errors(as_json, log_file):
        _check_job_id(job_id)
        if out is not None:
            check_output_path(out, inputs=[])
        if use_fleet:
            _run_on_fleet(job_id, from_phase, out, wait=wait, timeout=timeout, as_json=as_json)
            return
        with _progress(True) as sink:
            ctx = _context(sink)
            outcome = run_job(ctx, job_id, start_phase=from_phase)
        if outcome.status != "completed":
            _fail(outcome.error or "job failed", outcome.exit_code, as_json, job_id=job_id)
        output = local_output(ctx, job_id, out.resolve()) if out else None
        report = _render_report(ctx, job_id, output)
        report["phases_run"], report["phases_skipped"] = outcome.phases_run, outcome.phases_skipped
        if as_json:
            typer.echo(json.dumps(report))
        else:
            err_console.print(
                f"[green]job {job_id} completed[/]: ran phases {outcome.phases_run}, kept "
                f"{outcome.phases_skipped}; timeline v{report['timeline']['version']}"
            )
            typer.echo(report["output"])


def _run_on_fleet(
    job_id: int, from_phase: int | None, out: Path | None, *, wait: bool, timeout: float, as_json: bool
) -> None:
    """Apply the re-run here (so a refusal is immediate), hand it to the CPU queue, and watch the job's
    phases in Postgres until it completes or fails."""
    import time

    from app.phases.assemble.phase import local_output
    from app.services.dispatch import Dispatcher
    from app.services.runs import request_run

    ctx = _context()
    if not ctx.settings.SQS_QUEUE_URL:
        raise PicaividError("--fleet needs SQS_QUEUE_URL")
    request_run(ctx, job_id, from_phase, reason="cli run" + (f" --from-phase {from_phase}" if from_phase else ""))
    Dispatcher.for_context(ctx).flush()
    if not wait:
        if as_json:
            typer.echo(json.dumps({"job_id": job_id, "status": "queued", "start_phase": from_phase}))
        else:
            err_console.print(f"job {job_id} queued" + (f" from phase {from_phase}" if from_phase else ""))
        return
    deadline = time.monotonic() + timeout
    with _progress(not as_json) as sink:
        seen: dict[int, str] = {}
        while True:
            report = _render_report(ctx, job_id, None)
            for p in report["phases"]:
                if sink is not None and seen.get(p["phase"]) != p["status"]:
                    seen[p["phase"]] = p["status"]
                    from app.progress import EventKind, ProgressEvent

                    kinds: dict[str, EventKind] = {"completed": "phase_completed", "failed": "phase_failed"}
                    sink(
                        ProgressEvent(
                            job_id,
                            kinds.get(p["status"], "progress"),
                            p["phase"],
                            0.5 if p["status"] == "running" else 0.0,
                            1.0,
                            p["status"],
                        )
                    )
            if report["status"] in ("completed", "failed"):
                break
            if time.monotonic() > deadline:
                _fail(
                    f"job {job_id} still {report['status']} after {timeout:.0f} s (it keeps running on the fleet)",
                    1,
                    as_json,
                    job_id=job_id,
                )
            time.sleep(1.0)
    if report["status"] == "failed":
        _fail(report["error"] or "job failed", 1, as_json, job_id=job_id)
    output = local_output(ctx, job_id, out.resolve()) if out else None
    report = _render_report(ctx, job_id, output)
    if as_json:
        typer.echo(json.dumps(report))
    else:
        err_console.print(f"[green]job {job_id} completed on the fleet[/]: timeline v{report['timeline']['version']}")
        typer.echo(report["output"])


@app.command(context_settings=JOB_ID_COMMAND)
def enqueue(
    job_id: int = typer.Argument(..., help="Job id."),
    start_phase: int | None = typer.Option(
        None, "--start-phase", min=1, max=4, help="Re-run from this phase (absent: resume)."
    ),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Send the message Rails sends: {"job_id", "action": "run", "start_phase"} on SQS_QUEUE_URL."""
    settings = get_settings()
    log_file = _setup_logging(settings)
    from app.db.session import session_scope
    from app.orchestrator import get_job
    from app.queue.messages import JobMessage
    from app.queue.sqs import SqsQueue, sqs_client

    with _user_errors(as_json, log_file):
        _check_job_id(job_id)
        if not settings.SQS_QUEUE_URL:
            raise PicaividError("SQS_QUEUE_URL is not set")
        ctx = _context()
        with session_scope(ctx.sessions) as s:
            get_job(s, job_id)
        body = JobMessage(job_id=job_id, start_phase=start_phase).model_dump(
            include={"job_id", "action", "start_phase"}
        )
        message_id = SqsQueue(sqs_client(settings), settings.SQS_QUEUE_URL).send(json.dumps(body))
        if as_json:
            typer.echo(json.dumps({"message_id": message_id, "body": body}))
        else:
            err_console.print(
                f"queued job {job_id}"
                + (f" from phase {start_phase}" if start_phase else "")
                + f" (message {message_id})"
            )


@app.command()
def worker(
    worker_type: str = typer.Option(None, "--type", help="cpu (phases 1, 3, 4) or gpu (phase 2); default WORKER_TYPE."),
    max_messages: int | None = typer.Option(None, "--max-messages", help="Exit after this many messages."),
) -> None:
    """Consume the fleet's SQS queue until SIGTERM or a Spot interruption notice."""
    settings = get_settings()
    kind = (worker_type or settings.WORKER_TYPE).lower()
    if kind not in ("cpu", "gpu"):
        _fail(f"--type must be cpu or gpu (got {kind})", 2, False)
    from app.worker.main import run_worker

    with _user_errors(False):
        raise typer.Exit(run_worker(kind, max_messages=max_messages))  # type: ignore[arg-type]


@queues_app.command("create")
def queues_create(
    prefix: str = typer.Option("picaivid", help="Queue names: PREFIX-cpu, PREFIX-gpu (+ -dlq)."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Create the CPU and GPU queues with their dead-letter queues and redrive policy (idempotent).
    Prints `export` lines for SQS_QUEUE_URL and SQS_GPU_QUEUE_URL."""
    settings = get_settings()
    from app.queue.sqs import provision_queue, sqs_client

    with _user_errors(as_json):
        client = sqs_client(settings)
        urls = {}
        for kind in ("cpu", "gpu"):
            urls[kind] = provision_queue(
                client,
                f"{prefix}-{kind}",
                max_receives=settings.SQS_MAX_RECEIVES,
                visibility_timeout=settings.SQS_VISIBILITY_TIMEOUT,
            )
        if as_json:
            typer.echo(json.dumps({k: {"queue": q, "dlq": d} for k, (q, d) in urls.items()}))
        else:
            typer.echo(f"export SQS_QUEUE_URL={urls['cpu'][0]}")
            typer.echo(f"export SQS_GPU_QUEUE_URL={urls['gpu'][0]}")


@dlq_app.command("drain")
def dlq_drain(as_json: bool = typer.Option(False, "--json")) -> None:
    """Mark every job whose message is in a dead-letter queue failed (with its last error) and delete the
    message."""
    settings = get_settings()
    log_file = _setup_logging(settings)
    from app.queue.sqs import SqsQueue, sqs_client
    from app.services.dlq import drain

    with _user_errors(as_json, log_file):
        ctx = _context()
        client = sqs_client(settings)
        drained = []
        for label, url in (("cpu", settings.SQS_QUEUE_URL), ("gpu", settings.SQS_GPU_QUEUE_URL)):
            if not url:
                continue
            dlq = SqsQueue(client, url).dead_letter_queue()
            if dlq is None:
                err_console.print(f"[yellow]note:[/] the {label} queue has no redrive policy (no DLQ)")
                continue
            drained.extend(drain(ctx, dlq, queue_label=label))
        if as_json:
            typer.echo(json.dumps({"drained": [d.to_dict() for d in drained]}))
            return
        if not drained:
            err_console.print("the dead-letter queues are empty")
            return
        table = Table("queue", "job", "outcome", "reason")
        for d in drained:
            table.add_row(d.queue, str(d.job_id or "-"), d.outcome, d.reason)
        Console().print(table)


@app.command(context_settings=JOB_ID_COMMAND)
def status(job_id: int = typer.Argument(...), as_json: bool = typer.Option(False, "--json")) -> None:
    """Show a job's state: phases, timings, errors, artifacts."""
    settings = get_settings()
    log_file = _setup_logging(settings)
    with _user_errors(as_json, log_file):
        _check_job_id(job_id)
        report = _render_report(_context(), job_id, None)
        if as_json:
            typer.echo(json.dumps(report))
            return
        console = Console()
        colour = {"completed": "green", "failed": "red", "running": "yellow"}.get(report["status"], "white")
        console.print(
            f"job [bold]{job_id}[/] ({shown(report['listing_id'])}): [{colour}]{report['status']}[/]"
            + (f" - {shown(report['error'])}" if report["error"] else ""),
            highlight=False,
        )
        table = Table("phase", "status", "attempts", "seconds", "error")
        for p in report["phases"]:
            table.add_row(
                f"{p['phase']} {p['name']}",
                p["status"],
                str(p["attempts"]),
                f"{p['duration_s']:.1f}" if p["duration_s"] is not None else "-",
                shown(p["error"] or ""),
            )
        console.print(table)
        for key in ("output_uri", "poster_uri", "storyboard_uri"):
            if report.get(key):
                console.print(f"{key.removesuffix('_uri')}: {shown(report[key])}", highlight=False)


@app.command()
def api(
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on (0.0.0.0 for all)."),
    port: int = typer.Option(8000, "--port", min=1, max=65535, help="TCP port."),
) -> None:
    """Serve the control API (FastAPI on uvicorn); the same app as `uvicorn app.api.main:app`."""
    settings = get_settings()
    import uvicorn

    if not settings.API_KEY:
        err_console.print("[yellow]note:[/] API_KEY is empty: every /internal route answers 401 until it is set")
    err_console.print(f"picaivid API on http://{host}:{port} (docs at /docs)", highlight=False)
    uvicorn.run("app.api.main:app", host=host, port=port, log_level=settings.LOG_LEVEL.lower())


@db_app.command("upgrade")
def db_upgrade(revision: str = typer.Argument("head")) -> None:
    """Apply database migrations (SQLite or PostgreSQL, from DATABASE_URL)."""
    settings = get_settings()
    _setup_logging(settings)
    from app.db.migrate import upgrade

    with _user_errors(False):
        rev = upgrade(settings.DATABASE_URL, revision)
        typer.echo(f"database at revision {rev}")


def main() -> None:
    try:
        app()
    except SystemExit:
        raise
    except PicaividError as exc:  # raised before a command's own handler, e.g. a bad setting (SettingsError)
        err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except BaseException as exc:  # last line of defence: never a traceback on the terminal
        if isinstance(exc, KeyboardInterrupt):
            sys.exit(130)
        err_console.print(f"[bold red]error:[/] internal error ({type(exc).__name__})")
        sys.exit(1)


if __name__ == "__main__":
    main()
