"""The HTTP API as Rails meets it: real databases (SQLite, PostgreSQL), real storage (a folder, S3 on
moto_server), real SQS (moto_server), and in embedded mode a real render in the API's own process."""

from __future__ import annotations

import base64
import json
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select, update

from app.api.main import create_app
from app.config import Settings
from app.db.models import Job, JobPhase, OutboxMessage, Photo, Worker, utcnow
from app.db.session import session_factory, session_scope
from app.samples import SampleListing, make_sample_listing
from tests.conftest import _truncate, make_settings

API_KEY = "k"
#: Bounded wait for an in-process render (5 small photos, 15 s of video at 640x360).
RENDER_TIMEOUT = 120.0


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------


@contextmanager
def api(settings: Settings, *, key: str | None = API_KEY, raise_server_exceptions: bool = True) -> Iterator[TestClient]:
    """A client for an app built from `settings`, lifespan included (context, dispatcher, startup flush)."""
    with TestClient(create_app(settings), raise_server_exceptions=raise_server_exceptions) as client:
        if key is not None:
            client.headers["X-API-Key"] = key
        yield client


def _settings(tmp_path: Path, url: str, **overrides: object) -> Settings:
    return make_settings(tmp_path, url, **{"API_KEY": API_KEY, **overrides})


@pytest.fixture(scope="module")
def listing(tmp_path_factory: pytest.TempPathFactory) -> SampleListing:
    """Five small photos (exterior x2, kitchen x3) and 24 s of music at 112 BPM."""
    return make_sample_listing(
        tmp_path_factory.mktemp("api-listing"),
        width=640,
        height=427,
        music_seconds=24.0,
        bpm=112.0,
        seed=3,
        rooms=["exterior", "kitchen"],
        workers=1,
    )


def _stage_local(settings: Settings, listing: SampleListing, prefix: str = "uploads") -> dict[str, Any]:
    """Put the listing under LOCAL_STORAGE_PATH, as Rails' uploader would, and name the files in each
    accepted form: file:// URI, absolute path, path relative to the root."""
    root = Path(settings.LOCAL_STORAGE_PATH).resolve()
    (root / prefix).mkdir(parents=True, exist_ok=True)
    uris: list[str] = []
    for i, src in enumerate(listing.photo_paths):
        dest = root / prefix / f"{i:02d}_{src.name}"
        shutil.copyfile(src, dest)
        uris.append([dest.as_uri(), str(dest), f"{prefix}/{dest.name}"][i % 3])
    music = root / prefix / "music.wav"
    shutil.copyfile(listing.music_path, music)
    return {"photos": uris, "music": music.as_uri(), "root": root}


def _body(photos: list[str], music: str | None, **extra: Any) -> dict[str, Any]:
    return {
        "listing_id": "listing-1",
        "photos": [{"uri": u} for u in photos],
        "music_uri": music,
        "target_length": 15,
        "enqueue": False,
        **extra,
    }


def _error(code: str, message: str) -> dict[str, Any]:
    """The one error body every route answers with."""
    return {"error": {"code": code, "message": message, "details": []}}


def _families(text: str) -> dict[str, Any]:
    return {f.name: f for f in text_string_to_metric_families(text)}


def _sample(families: dict[str, Any], family: str, sample: str, **labels: str) -> float | None:
    for s in families[family].samples:
        if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items()):
            return float(s.value)
    return None


# ---------------------------------------------------------------------------------------------
# authentication: every /internal route, from the app's own route table
# ---------------------------------------------------------------------------------------------


def _route_table() -> FastAPI:
    # Building an app reads nothing and connects to nothing (the lifespan does that), so the route
    # table is known at collection time: a route added later is covered without touching this file.
    return create_app(make_settings(Path(tempfile.gettempdir()), "sqlite://", API_KEY=API_KEY))


def _internal_routes(app: FastAPI) -> list[tuple[str, str]]:
    # Included routers are resolved lazily in this FastAPI (app.routes holds them unexpanded);
    # iter_route_contexts walks the effective table, hidden (include_in_schema=False) routes too.
    return sorted(
        {
            (method, ctx.path)
            for ctx in iter_route_contexts(app.routes)
            if ctx.path.startswith("/internal")
            for method in (ctx.methods or ())
            if method != "HEAD"
        }
    )


INTERNAL_ROUTES = _internal_routes(_route_table())


def test_route_table_is_what_the_auth_tests_cover() -> None:
    expected = {
        ("POST", "/internal/jobs"),
        ("GET", "/internal/jobs"),
        ("GET", "/internal/jobs/{job_id}"),
        ("GET", "/internal/jobs/{job_id}/timeline"),
        ("POST", "/internal/jobs/{job_id}/run"),
        ("POST", "/internal/jobs/{job_id}/edits"),
        ("GET", "/internal/metrics"),
    }
    assert expected <= set(INTERNAL_ROUTES)
    # Cross-check with the documented surface: nothing in the schema escapes the parametrisation.
    spec = _route_table().openapi()
    documented = {(m.upper(), path) for path, ops in spec["paths"].items() if path.startswith("/internal") for m in ops}
    assert documented <= set(INTERNAL_ROUTES)


@pytest.fixture(scope="module")
def auth_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    from app.db.migrate import upgrade

    tmp = tmp_path_factory.mktemp("api-auth")
    url = f"sqlite:///{tmp / 'auth.db'}"
    upgrade(url)
    with api(_settings(tmp, url), key=None) as client:
        yield client


@pytest.mark.parametrize(("method", "path"), INTERNAL_ROUTES, ids=[f"{m} {p}" for m, p in INTERNAL_ROUTES])
@pytest.mark.parametrize("key", [None, "wrong", "", "kk"], ids=["missing", "wrong", "empty", "prefixed"])
def test_internal_routes_need_the_api_key(auth_client: TestClient, method: str, path: str, key: str | None) -> None:
    headers = {} if key is None else {"X-API-Key": key}
    response = auth_client.request(
        method, path.replace("{job_id}", "1"), headers=headers, json={} if method == "POST" else None
    )
    assert response.status_code == 401
    assert response.json() == _error("Unauthorized", "missing or invalid X-API-Key")
    assert response.headers["WWW-Authenticate"] == "APIKey"


def test_open_routes_and_empty_key_locks_internal(tmp_path: Path, sqlite_url: str) -> None:
    with api(_settings(tmp_path, sqlite_url, API_KEY=""), key=None) as client:
        assert client.get("/health").json() == {"status": "ok"}
        assert client.get("/ready").status_code == 200
        assert client.get("/openapi.json").json()["info"]["title"] == "Picaivid media service"
        assert "swagger" in client.get("/docs").text.lower()
        # An unset API_KEY locks /internal rather than opening it, whatever the client sends.
        for key in ("", "k", "anything"):
            assert client.get("/internal/jobs", headers={"X-API-Key": key}).status_code == 401
    with api(_settings(tmp_path, sqlite_url)) as client:
        assert client.get("/internal/jobs").status_code == 200


def test_openapi_documents_the_contract(auth_client: TestClient) -> None:
    spec = auth_client.get("/openapi.json").json()
    assert "APIKey" in spec["components"]["securitySchemes"]
    post = spec["paths"]["/internal/jobs"]["post"]
    assert post["tags"] == ["jobs"]
    assert {"201", "401", "422"} <= set(post["responses"])
    assert "JobCreate" in spec["components"]["schemas"]
    assert spec["components"]["schemas"]["JobCreate"].get("examples")
    edit = spec["paths"]["/internal/jobs/{job_id}/edits"]["post"]
    assert "requestBody" in edit and "202" in edit["responses"]


# ---------------------------------------------------------------------------------------------
# creating jobs from URIs
# ---------------------------------------------------------------------------------------------


def test_create_from_local_uris(tmp_path: Path, sqlite_url: str, listing: SampleListing) -> None:
    # The callback host is allow-listed: job creation checks callback_url against the network policy.
    settings = _settings(tmp_path, sqlite_url, CALLBACK_ALLOWED_HOSTS="rails.example")
    staged = _stage_local(settings, listing)
    root: Path = staged["root"]
    body = _body(
        staged["photos"],
        staged["music"],
        callback_url="https://rails.example/events",
        metadata={"agent": "x"},
        template_type="luxury",
        enable_beat_sync=False,
    )
    body["photos"][0].update(room_label="exterior", exclude=False, metadata={"caption": "front"})
    body["photos"][1]["exclude"] = True
    with api(settings) as client:
        response = client.post("/internal/jobs", json=body)
        assert response.status_code == 201, response.text
        created = response.json()
        assert created == {"job_id": created["job_id"], "status": "pending", "enqueued": False}
        job_id = created["job_id"]

        detail = client.get(f"/internal/jobs/{job_id}").json()
        assert [p["uri"] for p in detail["photos"]][:3] == [
            (root / "uploads" / f"{i:02d}_{src.name}").as_uri() for i, src in enumerate(listing.photo_paths[:3])
        ]
        assert [ph["status"] for ph in detail["phases"]] == ["pending"] * 4
        assert detail["artifacts"] == {"video": None, "poster": None, "storyboard": None}

    with session_scope(session_factory(sqlite_url)) as s:
        job = s.get(Job, job_id)
        assert job is not None
        assert (job.listing_id, job.target_length, job.enable_beat_sync, job.template_type) == (
            "listing-1",
            15.0,
            False,
            "luxury",
        )
        assert job.callback_url == "https://rails.example/events" and job.job_metadata == {"agent": "x"}
        assert job.music_uri == (root / "uploads" / "music.wav").as_uri()
        photos = list(s.scalars(select(Photo).where(Photo.job_id == job_id).order_by(Photo.position)))
        # Referenced in place: canonical URIs of the uploaded files, nothing copied under jobs/.
        assert [p.s3_uri for p in photos] == [
            (root / "uploads" / f"{i:02d}_{src.name}").as_uri() for i, src in enumerate(listing.photo_paths)
        ]
        assert not (root / "jobs").exists()
        assert (photos[0].room_label, photos[0].manual_metadata, photos[1].exclude) == (
            "exterior",
            {"caption": "front"},
            True,
        )
        assert s.scalar(select(func.count()).select_from(JobPhase).where(JobPhase.job_id == job_id)) == 4
        assert s.scalar(select(func.count()).select_from(OutboxMessage)) == 0, "enqueue=false stages nothing"


def test_create_rejects_unusable_local_inputs(tmp_path: Path, sqlite_url: str, listing: SampleListing) -> None:
    settings = _settings(tmp_path, sqlite_url)
    staged = _stage_local(settings, listing)
    root: Path = staged["root"]
    outside = tmp_path / "secret.jpg"
    shutil.copyfile(listing.photo_paths[0], outside)
    broken = root / "uploads" / "broken.mp3"
    broken.write_bytes(b"ID3" + b"\x00garbage" * 200)
    good = staged["photos"]
    cases = {
        "http": (_body(["http://169.254.169.254/latest/meta-data"], None), "http://169.254.169.254"),
        "traversal": (_body([*good[:1], f"{root}/../{outside.name}"], None), outside.name),
        "relative traversal": (_body(["uploads/../../secret.jpg"], None), "secret.jpg"),
        "missing": (_body([*good[:1], "uploads/nope.jpg"], None), "uploads/nope.jpg"),
        "s3 on local storage": (_body(["s3://bucket/a.jpg"], None), "s3://bucket/a.jpg"),
        "broken music": (_body(good, broken.as_uri()), "broken.mp3"),
        "missing music": (_body(good, "uploads/none.wav"), "uploads/none.wav"),
    }
    with api(settings) as client:
        for name, (body, named) in cases.items():
            response = client.post("/internal/jobs", json=body)
            assert response.status_code == 422, (name, response.text)
            detail = response.json()["error"]["message"]
            assert isinstance(detail, str) and named in detail, (name, detail)
            assert "\n" not in detail
        assert client.post("/internal/jobs", json=_body(good, broken.as_uri())).json()["error"]["code"] == "AudioError"
        # Schema-level problems keep FastAPI's validation 422.
        for body in (
            _body([], None),
            _body(good, None, target_length=2),
            _body(good, None, callback_url="ftp://x/y"),
            _body(good, None, surprise=1),
        ):
            response = client.post("/internal/jobs", json=body)
            assert response.status_code == 422, response.text
            error = response.json()["error"]
            assert error["code"] == "ValidationError" and error["details"][0]["loc"][0] == "body", response.text
    with session_scope(session_factory(sqlite_url)) as s:
        assert s.scalar(select(func.count()).select_from(Job)) == 0, "a rejected request writes nothing"


def test_create_from_s3_on_postgres(
    tmp_path: Path, postgres_url: str, aws_endpoint: str, s3_bucket: str, listing: SampleListing
) -> None:
    _truncate(postgres_url)
    s3 = boto3.client("s3", endpoint_url=aws_endpoint, region_name="us-east-1")
    keys = [f"listings/1/{src.name}" for src in listing.photo_paths]
    for key, src in zip(keys, listing.photo_paths, strict=True):
        s3.upload_file(str(src), s3_bucket, key)
    s3.upload_file(str(listing.music_path), s3_bucket, "music/track.wav")
    s3.put_object(Bucket=s3_bucket, Key="music/broken.mp3", Body=b"not audio at all" * 100)
    uris = [f"s3://{s3_bucket}/{k}" for k in keys]
    settings = _settings(tmp_path, postgres_url, S3_BUCKET=s3_bucket, AWS_ENDPOINT_URL=aws_endpoint)
    with api(settings) as client:
        response = client.post("/internal/jobs", json=_body(uris, f"s3://{s3_bucket}/music/track.wav", listing_id=77))
        assert response.status_code == 201, response.text
        job_id = response.json()["job_id"]
        rejected = {
            "foreign bucket": _body([f"s3://someone-elses-bucket/{keys[0]}"], None),
            "http": _body([f"http://{s3_bucket}.s3.amazonaws.com/{keys[0]}"], None),
            "traversal": _body([f"s3://{s3_bucket}/listings/../{keys[0]}"], None),
            "missing": _body([*uris[:2], f"s3://{s3_bucket}/listings/1/nope.jpg"], None),
            "broken music": _body(uris, f"s3://{s3_bucket}/music/broken.mp3"),
        }
        for name, body in rejected.items():
            response = client.post("/internal/jobs", json=body)
            assert response.status_code == 422, (name, response.text)
            assert response.json()["error"]["code"] in ("InvalidInputError", "AudioError"), (name, response.text)
        assert client.get("/ready").json() == {"status": "ok", "checks": {"database": "ok", "s3": "ok"}, "failed": []}
    with session_scope(session_factory(postgres_url)) as s:
        assert s.scalar(select(func.count()).select_from(Job)) == 1
        job = s.get(Job, job_id)
        assert job is not None and job.listing_id == "77"
        assert job.music_uri == f"s3://{s3_bucket}/music/track.wav"
        photos = list(s.scalars(select(Photo).where(Photo.job_id == job_id).order_by(Photo.position)))
        assert [p.s3_uri for p in photos] == uris
    listed = s3.list_objects_v2(Bucket=s3_bucket, Prefix="jobs/")
    assert listed.get("KeyCount", 0) == 0, "inputs are referenced in place, not copied"


# ---------------------------------------------------------------------------------------------
# listing, lookups, errors
# ---------------------------------------------------------------------------------------------


def test_list_pagination_filters_and_errors(
    tmp_path: Path, sqlite_url: str, listing: SampleListing, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = _settings(tmp_path, sqlite_url)
    staged = _stage_local(settings, listing)
    with api(settings, raise_server_exceptions=False) as client:
        ids = [client.post("/internal/jobs", json=_body(staged["photos"][:1], None)).json()["job_id"] for _ in range(5)]
        with session_scope(session_factory(sqlite_url)) as s:
            s.execute(update(Job).where(Job.id.in_(ids[1:3])).values(status="failed"))

        pages: list[list[int]] = []
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
            page = client.get("/internal/jobs", params=params).json()
            pages.append([item["job_id"] for item in page["items"]])
            cursor = page["next_cursor"]
            if cursor is None:
                break
            assert len(pages) < 10
        assert [len(p) for p in pages] == [2, 2, 1]
        seen = [i for page in pages for i in page]
        assert seen == sorted(ids, reverse=True), "newest first, no duplicates, nothing missed"

        failed = client.get("/internal/jobs", params={"status": "failed"}).json()
        assert [i["job_id"] for i in failed["items"]] == sorted(ids[1:3], reverse=True)
        assert failed["next_cursor"] is None
        assert client.get("/internal/jobs", params={"status": "completed"}).json()["items"] == []
        assert client.get("/internal/jobs", params={"status": "bogus"}).status_code == 422

        for bad in ("!!!", base64.urlsafe_b64encode(b"abc").decode(), base64.urlsafe_b64encode(b"-5").decode()):
            response = client.get("/internal/jobs", params={"cursor": bad})
            assert response.status_code == 422, bad
            assert response.json()["error"]["details"][0]["loc"] == ["query", "cursor"], bad
        for limit in (0, 101):
            assert client.get("/internal/jobs", params={"limit": limit}).status_code == 422

        unknown = 999_999
        for method, path, payload in (
            ("GET", f"/internal/jobs/{unknown}", None),
            ("GET", f"/internal/jobs/{unknown}/timeline", None),
            ("POST", f"/internal/jobs/{unknown}/run", {"start_phase": 1}),
            ("POST", f"/internal/jobs/{unknown}/edits", {"type": "set_target_length", "target_length": 20}),
        ):
            response = client.request(method, path, json=payload)
            assert response.status_code == 404, (path, response.text)
            assert response.json() == _error("JobNotFoundError", f"job {unknown} does not exist")

        response = client.get(f"/internal/jobs/{ids[0]}/timeline")
        assert response.status_code == 404
        assert response.json() == _error("NotFound", f"job {ids[0]} has no timeline yet")

        # A bug answers a bare 500: no traceback, no exception text.
        def explode(*_args: object, **_kwargs: object) -> None:
            raise RuntimeError("secret internals")

        monkeypatch.setattr("app.api.routes.jobs.job_summary", explode)
        response = client.get(f"/internal/jobs/{ids[0]}")
        assert response.status_code == 500
        assert response.json() == _error("InternalError", "internal error")


def test_ready_and_internal_routes_with_the_database_down(tmp_path: Path) -> None:
    settings = _settings(tmp_path, "postgresql+psycopg://postgres@127.0.0.1:9/nowhere")
    with api(settings) as client:
        assert client.get("/health").status_code == 200, "liveness does no I/O"
        response = client.get("/ready")
        assert response.status_code == 503
        body = response.json()
        assert body["status"] == "unavailable" and body["failed"] == ["database"]
        assert body["checks"]["database"].startswith("failed: ")
        # The readiness report carries the common error too, so a client reading `error` sees why.
        assert body["error"]["code"] == "NotReady" and body["error"]["details"][0]["loc"] == ["database"]
        assert "database" in body["error"]["message"]
        response = client.get("/internal/jobs")
        assert response.status_code == 503
        assert response.json() == _error("DatabaseUnavailable", "database unavailable")


# ---------------------------------------------------------------------------------------------
# fleet mode: PostgreSQL + SQS on moto_server
# ---------------------------------------------------------------------------------------------


def _drain(sqs: Any, url: str) -> list[dict[str, Any]]:
    bodies: list[dict[str, Any]] = []
    while True:
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
        if not got:
            return bodies
        for m in got:
            bodies.append(json.loads(m["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])


def test_fleet_mode_enqueues_on_sqs_and_guards_reruns(
    tmp_path: Path, postgres_url: str, aws_endpoint: str, listing: SampleListing
) -> None:
    _truncate(postgres_url)
    sqs = boto3.client("sqs", endpoint_url=aws_endpoint, region_name="us-east-1")
    cpu_url = sqs.create_queue(QueueName=f"picaivid-cpu-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    # A GPU queue that does not exist: metrics must report it down, not fail.
    gpu_url = cpu_url.rsplit("/", 1)[0] + f"/missing-{uuid.uuid4().hex[:8]}"
    settings = _settings(
        tmp_path, postgres_url, SQS_QUEUE_URL=cpu_url, SQS_GPU_QUEUE_URL=gpu_url, AWS_ENDPOINT_URL=aws_endpoint
    )
    staged = _stage_local(settings, listing)
    sessions = session_factory(postgres_url)
    with api(settings) as client:
        response = client.post("/internal/jobs", json=_body(staged["photos"], staged["music"], enqueue=True))
        assert response.status_code == 201, response.text
        assert response.json()["enqueued"] is True
        job_id = response.json()["job_id"]
        assert _drain(sqs, cpu_url) == [{"job_id": job_id, "action": "run", "reason": "created"}]
        with session_scope(sessions) as s:
            assert s.scalar(select(func.count()).select_from(OutboxMessage).where(OutboxMessage.sent_at.is_(None))) == 0

        # Phases 1-2 have not completed: a re-run from 3 is refused and changes nothing.
        response = client.post(f"/internal/jobs/{job_id}/run", json={"start_phase": 3})
        assert response.status_code == 409 and response.json()["error"]["code"] == "PhaseOrderError"
        assert "phase 1" in response.json()["error"]["message"]
        assert client.post(f"/internal/jobs/{job_id}/run", json={"start_phase": 5}).status_code == 422

        # A worker holds a live lease: busy.
        with session_scope(sessions) as s:
            s.execute(
                update(Job)
                .where(Job.id == job_id)
                .values(lease_owner="worker-a", lease_expires_at=utcnow() + timedelta(seconds=60))
            )
        response = client.post(f"/internal/jobs/{job_id}/run", json={"start_phase": 1})
        assert response.status_code == 409 and response.json()["error"]["code"] == "JobBusyError"
        # Running without a lease (embedded, or between leases): busy too.
        with session_scope(sessions) as s:
            s.execute(
                update(Job)
                .where(Job.id == job_id)
                .values(lease_owner="worker-a", lease_expires_at=utcnow() - timedelta(seconds=1), status="running")
            )
        assert client.post(f"/internal/jobs/{job_id}/run", json={}).status_code == 409
        assert _drain(sqs, cpu_url) == [], "refused re-runs send nothing"

        # An expired lease on a stopped job does not block; the re-run bumps the generation.
        with session_scope(sessions) as s:
            s.execute(update(Job).where(Job.id == job_id).values(status="failed"))
        response = client.post(f"/internal/jobs/{job_id}/run", json={"start_phase": 1})
        assert response.status_code == 202, response.text
        assert (response.json()["status"], response.json()["generation"]) == ("pending", 2)
        assert _drain(sqs, cpu_url) == [{"job_id": job_id, "action": "run", "reason": "api: run from phase 1"}]

        # Metrics: queue depth per state, workers, backlog per worker, worker counters.
        sqs.send_message(QueueUrl=cpu_url, MessageBody=json.dumps({"job_id": job_id, "action": "run"}))
        sqs.send_message(QueueUrl=cpu_url, MessageBody=json.dumps({"job_id": job_id, "action": "run"}))
        with session_scope(sessions) as s:
            s.add_all(
                [
                    Worker(id="cpu-1", worker_type="cpu", state="idle", counts={"done": 3, "failed": 1}),
                    Worker(id="cpu-2", worker_type="cpu", state="busy", counts={"done": 2, "retried": 1}),
                    Worker(
                        id="cpu-old",
                        worker_type="cpu",
                        state="idle",
                        counts={"done": 5},
                        last_seen_at=utcnow() - timedelta(minutes=10),
                    ),
                    Worker(id="gpu-1", worker_type="gpu", state="idle", counts={"rejected": 1}),
                ]
            )
        response = client.get("/internal/metrics")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        fam = _families(response.text)
        assert _sample(fam, "picaivid_queue_up", "picaivid_queue_up", queue="cpu") == 1.0
        assert _sample(fam, "picaivid_queue_up", "picaivid_queue_up", queue="gpu") == 0.0
        assert _sample(fam, "picaivid_queue_messages", "picaivid_queue_messages", queue="cpu", state="visible") == 2
        for state in ("in_flight", "delayed"):
            assert _sample(fam, "picaivid_queue_messages", "picaivid_queue_messages", queue="cpu", state=state) == 0
        assert _sample(fam, "picaivid_queue_messages", "picaivid_queue_messages", queue="gpu") is None
        assert _sample(fam, "picaivid_workers", "picaivid_workers", type="cpu", state="idle") == 1, (
            "a worker not seen for 10 minutes is not counted"
        )
        assert _sample(fam, "picaivid_workers", "picaivid_workers", type="cpu", state="busy") == 1
        assert (
            _sample(fam, "picaivid_queue_backlog_per_worker", "picaivid_queue_backlog_per_worker", queue="cpu") == 1.0
        ), "2 visible / 2 live CPU workers"
        assert (
            _sample(fam, "picaivid_worker_messages", "picaivid_worker_messages_total", type="cpu", outcome="done") == 10
        )
        assert (
            _sample(fam, "picaivid_worker_messages", "picaivid_worker_messages_total", type="gpu", outcome="rejected")
            == 1
        )
        assert _sample(fam, "picaivid_jobs", "picaivid_jobs", status="pending") == 1
        assert _sample(fam, "picaivid_outbox_unsent", "picaivid_outbox_unsent") == 0

        ready = client.get("/ready")
        assert ready.status_code == 503 and ready.json()["failed"] == ["sqs:gpu"]
        assert ready.json()["checks"]["sqs:cpu"] == "ok"

        # No live worker: the backlog itself (scale up from zero); an empty queue reports 0.
        with session_scope(sessions) as s:
            s.execute(update(Worker).values(last_seen_at=utcnow() - timedelta(minutes=10)))
        fam = _families(client.get("/internal/metrics").text)
        assert (
            _sample(fam, "picaivid_queue_backlog_per_worker", "picaivid_queue_backlog_per_worker", queue="cpu") == 2.0
        )
        _drain(sqs, cpu_url)


def test_startup_sends_what_an_earlier_process_staged(
    tmp_path: Path, postgres_url: str, aws_endpoint: str, listing: SampleListing
) -> None:
    _truncate(postgres_url)
    sqs = boto3.client("sqs", endpoint_url=aws_endpoint, region_name="us-east-1")
    cpu_url = sqs.create_queue(QueueName=f"picaivid-cpu-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    settings = _settings(tmp_path, postgres_url, SQS_QUEUE_URL=cpu_url, AWS_ENDPOINT_URL=aws_endpoint)
    from app.services.jobs import PhotoRef, create_job_from_uris
    from tests.conftest import make_context

    staged = _stage_local(settings, listing)
    # Committed and staged, but the process "died" before sending.
    job_id = create_job_from_uris(
        make_context(settings), listing_id="x", photos=[PhotoRef(staged["photos"][0])], enqueue=True
    )
    assert _drain(sqs, cpu_url) == []
    with api(settings):
        pass
    assert _drain(sqs, cpu_url) == [{"job_id": job_id, "action": "run", "reason": "created"}]


# ---------------------------------------------------------------------------------------------
# embedded mode end to end: the API renders in-process, then an edit re-runs phase 4 only
# ---------------------------------------------------------------------------------------------


def _wait(client: TestClient) -> None:
    inline = client.app.state.api.dispatcher.inline  # type: ignore[attr-defined]
    assert inline is not None, "embedded mode runs jobs in-process"
    inline.wait(timeout=RENDER_TIMEOUT)


@pytest.mark.slow
def test_embedded_render_then_reorder_edit(tmp_path: Path, sqlite_url: str, listing: SampleListing) -> None:
    settings = _settings(tmp_path, sqlite_url)
    staged = _stage_local(settings, listing)
    with api(settings) as client:
        response = client.post("/internal/jobs", json=_body(staged["photos"], staged["music"], enqueue=True))
        assert response.status_code == 201, response.text
        job_id = response.json()["job_id"]
        _wait(client)

        job = client.get(f"/internal/jobs/{job_id}").json()
        assert job["status"] == "completed", job["error"]
        for name in ("video", "poster", "storyboard"):
            url = job["artifacts"][name]
            assert url and url.startswith("file://") and Path(url[len("file://") :]).is_file(), name
        assert len(job["photos"]) == 5 and all(p["status"] == "ok" for p in job["photos"])
        assert job["clips"] and all(c["status"] == "rendered" and c["renderer"] for c in job["clips"])
        attempts = {p["phase"]: p["attempts"] for p in job["phases"]}

        tl = client.get(f"/internal/jobs/{job_id}/timeline").json()
        assert tl["version"] == 1 and [v["version"] for v in tl["versions"]] == [1]
        assert tl["versions"][0]["output_url"] == job["artifacts"]["video"]
        grid = tl["beat_grid"]
        assert abs(grid["tempo"] - 112.0) < 1.0 and grid["beats_count"] == len(grid["beats"]) > 10
        assert all(0 <= b <= tl["total_duration"] + 1e-6 for b in grid["beats"])
        order = [c["clip_id"] for c in tl["clips"]]
        assert len(order) >= 2 and [c["order_index"] for c in tl["clips"]] == sorted(
            c["order_index"] for c in tl["clips"]
        )

        # An edit the service cannot apply: 422 with the reason, nothing queued.
        response = client.post(
            f"/internal/jobs/{job_id}/edits", json={"type": "reorder", "clip_ids": [*order[:-1], 987654]}
        )
        assert response.status_code == 422, response.text
        assert response.json()["error"]["code"] == "EditRejectedError" and response.json()["error"]["message"]
        assert client.post(f"/internal/jobs/{job_id}/edits", json={"type": "no_such_edit"}).status_code == 422

        response = client.post(
            f"/internal/jobs/{job_id}/edits",
            json={"type": "reorder", "clip_ids": order[::-1]},
            headers={"X-User-Id": "user-9"},
        )
        assert response.status_code == 202, response.text
        edit = response.json()
        assert (edit["edit_type"], edit["rerun_from"], edit["timeline_version"]) == ("reorder", 4, 2)
        assert edit["job"]["job_id"] == job_id and edit["rerender_clip_ids"] == []
        _wait(client)

        job = client.get(f"/internal/jobs/{job_id}").json()
        assert job["status"] == "completed", job["error"]
        after = {p["phase"]: p["attempts"] for p in job["phases"]}
        assert [after[p] for p in (1, 2, 3)] == [attempts[p] for p in (1, 2, 3)], "phases 1-3 were not re-run"
        assert after[4] == attempts[4] + 1
        tl2 = client.get(f"/internal/jobs/{job_id}/timeline").json()
        assert tl2["version"] == 2 and [v["version"] for v in tl2["versions"]] == [1, 2]
        assert [c["clip_id"] for c in tl2["clips"]] == order[::-1]
        assert tl2["versions"][1]["output_url"] == job["artifacts"]["video"] != tl["versions"][0]["output_url"]

        # Metrics after real work: phase histograms and render times are populated.
        fam = _families(client.get("/internal/metrics").text)
        for phase in ("1", "2", "3", "4"):
            count = _sample(
                fam, "picaivid_phase_duration_seconds", "picaivid_phase_duration_seconds_count", phase=phase
            )
            assert count is not None and count >= 1, phase
        assert (
            _sample(
                fam,
                "picaivid_phase_duration_seconds",
                "picaivid_phase_duration_seconds_bucket",
                phase="4",
                name="assemble",
                le="+Inf",
            )
            >= 1
        )  # type: ignore[operator]
        assert sum(
            s.value
            for s in fam["picaivid_clip_render_seconds"].samples
            if s.name == "picaivid_clip_render_seconds_count"
        ) == len(job["clips"])
        assert _sample(fam, "picaivid_jobs", "picaivid_jobs", status="completed") == 1
        assert {
            "picaivid_queue_messages",
            "picaivid_queue_up",
            "picaivid_workers",
            "picaivid_queue_backlog_per_worker",
            "picaivid_outbox_unsent",
            "picaivid_worker_messages",
        } <= set(fam)


# ---------------------------------------------------------------------------------------------
# the renderer ladder: attempts, AI disclosure, renderer metrics, worker capabilities
# ---------------------------------------------------------------------------------------------


def _ladder_job(settings: Settings) -> dict[str, int]:
    """A job whose clips went down the ladder in different ways (rows written directly: no render)."""
    from app.db.models import Clip

    leaked = f"{Path(settings.WORK_DIR).resolve()}/job-1/clips/x.mp4"
    with session_scope(session_factory(settings.DATABASE_URL)) as s:
        job = Job(listing_id="ladder", status="completed", current_phase=4)
        s.add(job)
        s.flush()
        made_by_ltx = Clip(
            job_id=job.id,
            status="rendered",
            model_used="ltx2",
            render_attempts=1,
            render_log=[{"renderer": "ltx2", "passed": True, "reasons": [], "score": 0.97, "seconds": 40.0}],
        )
        stepped_down = Clip(
            job_id=job.id,
            status="rendered",
            model_used="ken_burns",
            render_attempts=1,
            render_log=[
                {"renderer": "ltx2", "passed": False, "reasons": ["OutOfMemoryError: CUDA out of memory"]},
                {"renderer": "parallax", "passed": False, "declined": True, "reasons": ["no depth map for this photo"]},
                {"renderer": "ken_burns", "passed": True, "reasons": [], "score": 0.99},
            ],
        )
        failed = Clip(
            job_id=job.id,
            status="failed",
            model_used="ltx2",  # left from an earlier render: not what the video shows
            render_attempts=2,
            error="every renderer failed",
            render_log=[
                {"renderer": "ltx2", "passed": False, "reasons": [f"RuntimeError: cannot write {leaked}"]},
                {"renderer": "ken_burns", "ok": False, "reason": "clip is frozen: first and last frames are identical"},
            ],
        )
        pending = Clip(job_id=job.id, status="pending")
        s.add_all([made_by_ltx, stepped_down, failed, pending])
        s.flush()
        s.add(
            Worker(
                id="gpu-test-1",
                worker_type="gpu",
                state="idle",
                counts={
                    "done": 3,
                    "capabilities": {"renderers": ["ltx2", "parallax", "ken_burns"], "skipped": {}},
                },
            )
        )
        s.add(
            Worker(
                id="cpu-test-1",
                worker_type="cpu",
                state="idle",
                counts={
                    "done": 1,
                    "capabilities": {"renderers": ["parallax", "ken_burns"], "skipped": {"ltx2": "GPU only"}},
                },
            )
        )
        return {
            "job": job.id,
            "ltx": made_by_ltx.id,
            "stepped": stepped_down.id,
            "failed": failed.id,
            "pending": pending.id,
        }


def test_job_detail_shows_ladder_attempts_and_ai_generated_clips(tmp_path: Path, database_url: str) -> None:
    settings = _settings(tmp_path, database_url)
    ids = _ladder_job(settings)
    with api(settings) as client:
        body = client.get(f"/internal/jobs/{ids['job']}").json()
        fam = _families(client.get("/internal/metrics").text)
    clips = {c["id"]: c for c in body["clips"]}
    assert body["ai_generated_clips"] == [ids["ltx"]]
    assert [clips[i]["generative"] for i in (ids["ltx"], ids["stepped"], ids["failed"], ids["pending"])] == [
        True,
        False,
        False,  # failed: not in the video, whatever model_used still says
        False,
    ]
    assert clips[ids["ltx"]]["attempts"] == [{"renderer": "ltx2", "passed": True, "reasons": []}]
    assert clips[ids["stepped"]]["attempts"] == [
        {"renderer": "ltx2", "passed": False, "reasons": ["OutOfMemoryError: CUDA out of memory"]},
        {"renderer": "parallax", "passed": False, "reasons": ["no depth map for this photo"]},
        {"renderer": "ken_burns", "passed": True, "reasons": []},
    ]
    failed = clips[ids["failed"]]["attempts"]
    assert failed[0]["reasons"] == ["RuntimeError: cannot write <work>/job-1/clips/x.mp4"]  # no server path
    assert failed[1] == {
        "renderer": "ken_burns",
        "passed": False,
        "reasons": ["clip is frozen: first and last frames are identical"],
    }  # an older log entry ({"ok", "reason"}) reads the same
    assert clips[ids["pending"]]["attempts"] == []

    # Renders by renderer and status; downgrades by renderer and reason code.
    assert _sample(fam, "picaivid_clips", "picaivid_clips", renderer="ltx2", status="rendered") == 1
    assert _sample(fam, "picaivid_clips", "picaivid_clips", renderer="ken_burns", status="rendered") == 1
    assert _sample(fam, "picaivid_clips", "picaivid_clips", renderer="ltx2", status="failed") == 1
    assert _sample(fam, "picaivid_clips", "picaivid_clips", renderer="none", status="pending") == 1
    downgrades = {
        (s.labels["renderer"], s.labels["reason"]): s.value for s in fam["picaivid_render_downgrades"].samples
    }
    assert downgrades == {
        ("ltx2", "out_of_memory"): 1,
        ("parallax", "no_depth"): 1,
        ("ltx2", "RuntimeError"): 1,
        ("ken_burns", "frozen"): 1,
    }
    # What live workers can render; their capabilities never count as messages.
    renderers = {(s.labels["type"], s.labels["renderer"]): s.value for s in fam["picaivid_worker_renderers"].samples}
    assert renderers == {
        ("gpu", "ltx2"): 1,
        ("gpu", "parallax"): 1,
        ("gpu", "ken_burns"): 1,
        ("cpu", "parallax"): 1,
        ("cpu", "ken_burns"): 1,
    }
    skipped = fam["picaivid_worker_components_skipped"].samples
    assert [(s.labels["type"], s.labels["component"], s.value) for s in skipped] == [("cpu", "ltx2", 1.0)]
    messages = {(s.labels["type"], s.labels["outcome"]): s.value for s in fam["picaivid_worker_messages"].samples}
    assert messages == {("cpu", "done"): 1, ("gpu", "done"): 3}


def test_openapi_documents_attempts_and_disclosure(auth_client: TestClient) -> None:
    schemas = auth_client.get("/openapi.json").json()["components"]["schemas"]
    clip = schemas["ClipOut"]["properties"]
    assert "AB 723" in clip["generative"]["description"]
    assert clip["attempts"]["items"]["$ref"].endswith("/RenderAttemptOut")
    assert set(schemas["RenderAttemptOut"]["properties"]) == {"renderer", "passed", "reasons"}
    assert all(p.get("description") for p in schemas["RenderAttemptOut"]["properties"].values())
    detail = schemas["JobDetail"]["properties"]["ai_generated_clips"]
    assert detail["items"]["type"] == "integer" and "disclosure" in detail["description"]


def test_deliverables_through_the_api_and_edits_rerender_only_what_they_affect(
    tmp_path: Path, sqlite_url: str, listing: SampleListing
) -> None:
    """POST a job with two cuts and the listing's facts; GET lists each cut with its URL, loudness and
    compliance; a new agent phone re-renders the branded cut only; adding 9:16 renders just that one."""
    settings = _settings(tmp_path, sqlite_url, OCR_ENABLED=True)
    staged = _stage_local(settings, listing)
    facts = {
        "address": "7 Elm Road",
        "price": "$410,000",
        "beds": 2,
        "agent_name": "Ann Lee",
        "agent_phone": "555-0100",
    }
    body = _body(
        staged["photos"],
        staged["music"],
        enqueue=True,
        target_length=8,
        deliverables=[
            {"format": "16:9", "variant": "branded"},
            {"format": "16:9", "variant": "unbranded", "lufs": -16},
        ],
        listing=facts,
    )
    with api(settings) as client:
        bad = client.post("/internal/jobs", json={**body, "deliverables": [{"format": "3:2"}]})
        assert bad.status_code == 422 and "format" in bad.text
        response = client.post("/internal/jobs", json=body)
        assert response.status_code == 201, response.text
        job_id = response.json()["job_id"]
        _wait(client)
        job = client.get(f"/internal/jobs/{job_id}").json()
        assert job["status"] == "completed", job["error"]
        cuts = {d["key"]: d for d in job["deliverables"]}
        assert set(cuts) == {"16x9-branded", "16x9-unbranded"}
        for key, target in (("16x9-branded", -14.0), ("16x9-unbranded", -16.0)):
            d = cuts[key]
            assert d["url"] and Path(d["url"][len("file://") :]).is_file()
            assert (d["width"], d["height"]) == (640, 360)
            assert d["target_lufs"] == target and abs(d["integrated_lufs"] - target) <= 1.0
            assert d["compliance"]["passed"], d["compliance"]
        assert not cuts["16x9-branded"]["compliance"]["agent_identity"]["ocr_checked"]
        assert cuts["16x9-unbranded"]["compliance"]["agent_identity"]["ocr_checked"]

        edit = client.post(
            f"/internal/jobs/{job_id}/edits",
            json={"type": "set_listing_facts", "listing": {**facts, "agent_phone": "555-0199"}},
        )
        assert edit.status_code == 202, edit.text
        assert edit.json()["rerun_from"] == 4
        _wait(client)
        details = client.get(f"/internal/jobs/{job_id}").json()
        phase4 = _phase_details(settings, job_id, 4)
        assert (phase4["made"], phase4["reused"]) == (1, 1), phase4
        assert [d["key"] for d in phase4["deliverables"] if not d.get("reused")] == ["16x9-branded"]
        assert details["status"] == "completed"

        more = [*body["deliverables"], {"format": "9:16", "variant": "branded"}]
        edit = client.post(f"/internal/jobs/{job_id}/edits", json={"type": "set_deliverables", "deliverables": more})
        assert edit.status_code == 202, edit.text
        assert edit.json()["rerun_from"] == 1, "a new format needs its camera plans"
        _wait(client)
        job = client.get(f"/internal/jobs/{job_id}").json()
        assert {d["key"] for d in job["deliverables"]} == {"16x9-branded", "16x9-unbranded", "9x16-branded"}
        assert (job["deliverables"][-1]["width"], job["deliverables"][-1]["height"]) == (360, 640)
        assert _phase_details(settings, job_id, 2)["rendered"] == 0, "clips keep their renders"
        phase4 = _phase_details(settings, job_id, 4)
        assert [d["key"] for d in phase4["deliverables"] if not d.get("reused")] == ["9x16-branded"]


def _phase_details(settings: Settings, job_id: int, phase: int) -> dict[str, Any]:
    from sqlalchemy import select

    from app.db.models import JobPhase
    from app.db.session import session_factory, session_scope

    with session_scope(session_factory(settings.DATABASE_URL)) as s:
        details = s.scalars(select(JobPhase.details).where(JobPhase.job_id == job_id, JobPhase.phase == phase)).one()
    return dict(details or {})
