"""Bad input against the control API, grouped by kind: ids, query parameters and cursors, text, numbers,
edit payloads, sizes, the error shape of every route, the documentation in production, settings, and
what an error body must never carry (tracebacks, internal paths, the API key).

Every case runs on SQLite and PostgreSQL where a database is involved (`database_url`): the two reject
different things (PostgreSQL's `integer` ids end at 2^31-1 and its text cannot hold NUL; SQLite's
integers end at 2^63-1), and the API must answer both with the same 4xx, never a 500.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import func, select
from sqlalchemy.exc import DataError

from app.api.deps import get_state
from app.api.main import create_app
from app.api.schemas import DB_INT_MAX, MAX_METADATA_BYTES, ErrorOut
from app.config import Settings, get_settings, settings_error
from app.db.models import Edit, Job, JobPhase, Photo
from app.db.session import session_factory, session_scope
from app.errors import InvalidInputError, SettingsError
from tests.conftest import make_settings

#: Distinctive, so that a leak is found by a plain substring search.
API_KEY = "key-5e3cbb1f-never-echoed"
#: Bounded error bodies: the largest valid one is 20 details of shortened values.
MAX_ERROR_BYTES = 8192
INTERNAL_ID_ROUTES = [
    ("GET", "/internal/jobs/{id}", None),
    ("GET", "/internal/jobs/{id}/timeline", None),
    ("POST", "/internal/jobs/{id}/run", {}),
    ("POST", "/internal/jobs/{id}/edits", {"type": "set_target_length", "target_length": 20}),
]


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------


@dataclass
class Api:
    client: TestClient
    settings: Settings
    url: str
    job_id: int
    photo_id: int
    tmp: Path

    def jobs(self) -> int:
        with session_scope(session_factory(self.url)) as s:
            return int(s.scalar(select(func.count()).select_from(Job)) or 0)

    def edits(self) -> int:
        with session_scope(session_factory(self.url)) as s:
            return int(s.scalar(select(func.count()).select_from(Edit)) or 0)


def _no_constants(name: str) -> Any:
    raise AssertionError(f"error body contains the non-JSON constant {name}")


def strict_json(response: Response) -> Any:
    """The body as strict JSON: NaN / Infinity are not JSON and fail here (Python's json accepts them)."""
    return json.loads(response.content.decode("utf-8"), parse_constant=_no_constants)


def assert_error(response: Response, status: int, code: str | None = None, *, secrets: tuple[str, ...] = ()) -> Any:
    """`response` is an error in the one shape, bounded, with nothing internal in it. Returns `error`."""
    assert response.status_code == status, response.text[:2000]
    assert len(response.content) <= MAX_ERROR_BYTES, f"{len(response.content)} bytes of error body"
    body = strict_json(response)
    ErrorOut.model_validate(body)
    error = body["error"]
    if code is not None:
        assert error["code"] == code, error
    assert "\n" not in error["message"] and len(error["message"]) <= 500
    assert_nothing_internal(response.text, secrets)
    return error


def assert_nothing_internal(text: str, secrets: tuple[str, ...] = ()) -> None:
    for marker in ("Traceback", 'File "', API_KEY, str(Path(__file__).resolve().parent.parent), *secrets):
        assert marker not in text, f"{marker!r} in {text[:500]}"


def _settings(tmp: Path, url: str, **overrides: object) -> Settings:
    return make_settings(tmp, url, **{"API_KEY": API_KEY, **overrides})


@contextmanager
def _client(settings: Settings, *, key: str | None = API_KEY) -> Iterator[TestClient]:
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        if key is not None:
            client.headers["X-API-Key"] = key
        yield client


def _stage(settings: Settings, name: str = "a.jpg") -> str:
    """A photo under the storage root (creating a job only checks that it exists)."""
    path = Path(settings.LOCAL_STORAGE_PATH) / "uploads" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\xff\xd8 not decoded at creation")
    return f"uploads/{name}"


def _job(uri: str = "uploads/a.jpg", **extra: Any) -> dict[str, Any]:
    return {"listing_id": "L-1", "photos": [{"uri": uri}], "enqueue": False, **extra}


def _post_raw(client: TestClient, path: str, content: bytes | str) -> Response:
    return client.post(path, content=content, headers={"content-type": "application/json"})


@pytest.fixture
def api(tmp_path: Path, database_url: str) -> Iterator[Api]:
    """An app on the parametrised database with one registered job (not run)."""
    settings = _settings(tmp_path, database_url)
    uri = _stage(settings)
    with _client(settings) as client:
        created = client.post("/internal/jobs", json=_job(uri))
        assert created.status_code == 201, created.text
        job_id = created.json()["job_id"]
        with session_scope(session_factory(database_url)) as s:
            photo_id = s.scalars(select(Photo.id).where(Photo.job_id == job_id)).one()
        yield Api(client, settings, database_url, job_id, photo_id, tmp_path)


# ---------------------------------------------------------------------------------------------
# ids in paths
# ---------------------------------------------------------------------------------------------

BAD_IDS = {
    "beyond SQLite's int64": str(2**63),
    "beyond PostgreSQL's int4": str(2**31),
    "int4 max + 1 (negative side)": str(-(2**31) - 1),
    "negative": "-1",
    "zero": "0",
    "float": "1.5",
    "exponent": "1e3",
    "string": "abc",
    "NUL": "1%00",
    "surrogate bytes": "%ED%A0%80",
    "huge": "9" * 400,
}


def test_bad_job_ids_in_paths_are_422_on_every_route(api: Api) -> None:
    for method, template, body in INTERNAL_ID_ROUTES:
        for name, bad in BAD_IDS.items():
            response = api.client.request(method, template.replace("{id}", bad), json=body)
            error = assert_error(response, 422, "ValidationError")
            assert error["details"][0]["loc"] == ["path", "job_id"], (method, template, name, error)


def test_the_largest_id_is_looked_up_and_not_found(api: Api) -> None:
    # 2^31-1 is a valid id on both databases: no such job, a 404 rather than an overflow.
    for method, template, body in INTERNAL_ID_ROUTES:
        response = api.client.request(method, template.replace("{id}", str(DB_INT_MAX)), json=body)
        assert_error(response, 404, "JobNotFoundError")


# ---------------------------------------------------------------------------------------------
# query parameters and pagination cursors
# ---------------------------------------------------------------------------------------------


def _cursor(raw: bytes) -> str:
    import base64

    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def test_bad_cursors_are_422_not_500(api: Api) -> None:
    bad = {
        "int64 overflow": _cursor(str(2**63).encode()),
        "int4 overflow": _cursor(str(2**31).encode()),
        "zero": _cursor(b"0"),
        "negative": _cursor(b"-5"),
        "letters": _cursor(b"abc"),
        "not base64": "!!!",
        "not ascii": _cursor(b"\xff\xfe"),
        "unicode digits": _cursor("١٢".encode()),
        "NUL": "\x00",
        "space padded": _cursor(b" 5"),
    }
    for name, cursor in bad.items():
        response = api.client.get("/internal/jobs", params={"cursor": cursor})
        error = assert_error(response, 422, "ValidationError")
        assert error["details"][0]["loc"] == ["query", "cursor"], (name, error)
    too_long = api.client.get("/internal/jobs", params={"cursor": "A" * 65})
    assert assert_error(too_long, 422)["details"][0]["loc"] == ["query", "cursor"]
    # The largest valid cursor pages from the top: every job is older.
    page = api.client.get("/internal/jobs", params={"cursor": _cursor(str(DB_INT_MAX).encode())})
    assert page.status_code == 200 and [j["job_id"] for j in page.json()["items"]] == [api.job_id]


def test_bad_limit_and_status_are_422(api: Api) -> None:
    cases = {
        "limit": [str(2**63), "1.5", "-1", "0", "101", "x", "\x00"],
        "status": ["bogus", "\x00", "pending\x00", "PENDING"],
    }
    for param, values in cases.items():
        for value in values:
            response = api.client.get("/internal/jobs", params={param: value})
            error = assert_error(response, 422, "ValidationError")
            assert error["details"][0]["loc"] == ["query", param], (param, value, error)
    for raw in ("status=%ED%A0%80", "limit=%ED%A0%80", "cursor=%ED%A0%80", "limit=1&limit=x"):
        response = api.client.get(f"/internal/jobs?{raw}")
        assert assert_error(response, 422)["details"][0]["loc"][0] == "query", raw


# ---------------------------------------------------------------------------------------------
# text: NUL, lone surrogates, lengths
# ---------------------------------------------------------------------------------------------


def _photo_field(field: str, value: Any) -> dict[str, Any]:
    body = _job()
    body["photos"][0][field] = value
    return body


#: Raw bodies with `@@` where the bad text goes (raw, so that JSON escapes such as \u0000 reach the API).
TEXT_FIELDS: dict[str, tuple[str, list[str | int]]] = {
    "listing_id": ('{"listing_id": "@@", "photos": [{"uri": "uploads/a.jpg"}]}', ["body", "listing_id"]),
    "uri": ('{"listing_id": "1", "photos": [{"uri": "uploads/@@.jpg"}]}', ["body", "photos", 0, "uri"]),
    "room_label": (
        '{"listing_id": "1", "photos": [{"uri": "uploads/a.jpg", "room_label": "k@@"}]}',
        ["body", "photos", 0, "room_label"],
    ),
    "music_uri": (
        '{"listing_id": "1", "photos": [{"uri": "uploads/a.jpg"}], "music_uri": "m@@.wav"}',
        ["body", "music_uri"],
    ),
    "template_type": (
        '{"listing_id": "1", "photos": [{"uri": "uploads/a.jpg"}], "template_type": "t@@"}',
        ["body", "template_type"],
    ),
    "callback_url": (
        '{"listing_id": "1", "photos": [{"uri": "uploads/a.jpg"}], "callback_url": "https://a.example/@@"}',
        ["body", "callback_url"],
    ),
    "metadata value": (
        '{"listing_id": "1", "photos": [{"uri": "uploads/a.jpg"}], "metadata": {"k": ["@@"]}}',
        ["body", "metadata"],
    ),
    "metadata key": (
        '{"listing_id": "1", "photos": [{"uri": "uploads/a.jpg", "metadata": {"@@": 1}}]}',
        ["body", "photos", 0, "metadata"],
    ),
}


@pytest.mark.parametrize("bad", ["a\\u0000b", "\\ud800", "x\\udfff"], ids=["NUL", "lead-surrogate", "trail-surrogate"])
def test_nul_and_surrogates_in_text_fields_are_422_and_write_nothing(api: Api, bad: str) -> None:
    before = api.jobs()
    for name, (template, loc) in TEXT_FIELDS.items():
        response = _post_raw(api.client, "/internal/jobs", template.replace("@@", bad))
        error = assert_error(response, 422, "ValidationError")
        assert error["details"][0]["loc"] == loc, (bad, name, error)
    assert api.jobs() == before, "a rejected request writes nothing"


def test_strings_longer_than_their_columns_are_422(api: Api) -> None:
    cases = {
        "listing_id": (_job(listing_id="x" * 129), ["body", "listing_id"]),
        "template_type": (_job(template_type="t" * 65), ["body", "template_type"]),
        "room_label": (_photo_field("room_label", "r" * 65), ["body", "photos", 0, "room_label"]),
        "uri": (_job(uri="uploads/" + "u" * 2048), ["body", "photos", 0, "uri"]),
        "music_uri": (_job(music_uri="m" * 2049), ["body", "music_uri"]),
        "callback_url": (_job(callback_url="https://a.example/" + "c" * 2048), ["body", "callback_url"]),
        "empty listing_id": (_job(listing_id=""), ["body", "listing_id"]),
    }
    for name, (body, loc) in cases.items():
        error = assert_error(api.client.post("/internal/jobs", json=body), 422, "ValidationError")
        assert error["details"][0]["loc"] == loc, (name, error)
        assert len(str(error["details"][0].get("input", ""))) <= 100, "inputs are shortened"
    # At the limit: stored as sent.
    ok = api.client.post("/internal/jobs", json=_job(listing_id="x" * 128, template_type="t" * 64))
    assert ok.status_code == 201, ok.text


def test_invalid_utf8_and_non_json_bodies_are_4xx_in_the_error_shape(api: Api) -> None:
    assert_error(_post_raw(api.client, "/internal/jobs", b'{"listing_id": "\xff\xfe"}'), 400, "BadRequest")
    assert_error(_post_raw(api.client, "/internal/jobs", b"{not json"), 422, "ValidationError")
    assert_error(_post_raw(api.client, "/internal/jobs", b"[1, 2]"), 422, "ValidationError")
    plain = api.client.post("/internal/jobs", content=b"listing_id=1", headers={"content-type": "text/plain"})
    assert_error(plain, 422, "ValidationError")
    assert_error(_post_raw(api.client, f"/internal/jobs/{api.job_id}/run", b'{"start_phase": 1'), 422)


def test_nul_in_the_user_id_header_is_422(api: Api) -> None:
    response = api.client.post(
        f"/internal/jobs/{api.job_id}/edits",
        json={"type": "swap_hero", "photo_id": api.photo_id},
        headers={"X-User-Id": "user\x00"},
    )
    assert assert_error(response, 422)["details"][0]["loc"] == ["header", "X-User-Id"]
    assert api.edits() == 0


# ---------------------------------------------------------------------------------------------
# numbers: NaN, Infinity, huge values
# ---------------------------------------------------------------------------------------------


TARGET_LENGTH = '{"listing_id": "1", "photos": [{"uri": "uploads/a.jpg"}], "target_length": @@}'


def test_non_finite_and_huge_numbers_are_422_with_encodable_bodies(api: Api) -> None:
    before = api.jobs()
    cases = {
        "NaN": ("NaN", "NaN"),
        "Infinity": ("Infinity", "Infinity"),
        "-Infinity": ("-Infinity", "-Infinity"),
        "1e400 (decodes to inf)": ("1e400", "Infinity"),
        "1e308": ("1e308", 1e308),
        "-1e308": ("-1e308", -1e308),
        "huge integer": ("9" * 400, None),
    }
    for name, (literal, echoed) in cases.items():
        raw = TARGET_LENGTH.replace("@@", literal)
        error = assert_error(_post_raw(api.client, "/internal/jobs", raw), 422, "ValidationError")
        detail = error["details"][0]
        assert detail["loc"] == ["body", "target_length"], (name, error)
        if echoed is not None:
            assert detail["input"] == echoed, (name, detail)
    # listing_id takes numbers (Rails sends ids) but not ones that would be stored as "nan" or "inf".
    for literal in ("NaN", "Infinity", "1e400"):
        raw = '{"listing_id": @@, "photos": [{"uri": "uploads/a.jpg"}]}'.replace("@@", literal)
        error = assert_error(_post_raw(api.client, "/internal/jobs", raw), 422, "ValidationError")
        assert error["details"][0]["loc"] == ["body", "listing_id"], (literal, error)
    # Beyond what Python's JSON decoder reads (4300 digits): the body cannot be parsed, still no 500.
    raw = TARGET_LENGTH.replace("@@", "9" * 5000)
    assert_error(_post_raw(api.client, "/internal/jobs", raw), 400, "BadRequest")
    assert api.jobs() == before


def test_non_finite_and_oversized_numbers_in_metadata_are_422(api: Api) -> None:
    templates = {
        ("body", "metadata"): '{"listing_id": "1", "photos": [{"uri": "uploads/a.jpg"}], "metadata": {"n": @@}}',
        ("body", "photos", 0, "metadata"): '{"listing_id": "1", "photos": [{"uri": "uploads/a.jpg", '
        '"metadata": {"n": [@@]}}]}',
    }
    for literal in ("NaN", "Infinity", "-Infinity", "1e999", str(2**60), str(-(2**60))):
        for loc, template in templates.items():
            response = _post_raw(api.client, "/internal/jobs", template.replace("@@", literal))
            assert assert_error(response, 422, "ValidationError")["details"][0]["loc"] == list(loc), literal
    run = _post_raw(api.client, f"/internal/jobs/{api.job_id}/run", f'{{"start_phase": {2**63}}}')
    assert assert_error(run, 422)["details"][0]["loc"] == ["body", "start_phase"]
    edit = _post_raw(
        api.client, f"/internal/jobs/{api.job_id}/edits", '{"type": "set_target_length", "target_length": NaN}'
    )
    assert_error(edit, 422)


# ---------------------------------------------------------------------------------------------
# edit payloads: ids and text the edit models accept but the database cannot hold
# ---------------------------------------------------------------------------------------------


def test_edit_ids_beyond_the_id_columns_are_422_and_record_nothing(api: Api) -> None:
    edits = {
        "exclude_photo int4": ({"type": "exclude_photo", "photo_id": 2**31}, ["body", "photo_id"]),
        "exclude_photo int64": ({"type": "exclude_photo", "photo_id": 2**63}, ["body", "photo_id"]),
        "exclude_photo -int64": ({"type": "exclude_photo", "photo_id": -(2**63)}, ["body", "photo_id"]),
        "swap_hero": ({"type": "swap_hero", "photo_id": 2**40}, ["body", "photo_id"]),
        "room_override": ({"type": "room_override", "photo_id": 2**31, "room_label": "kitchen"}, ["body", "photo_id"]),
        "trim clip": ({"type": "trim", "clip_id": 2**31, "beats": 2}, ["body", "clip_id"]),
        "trim beats": ({"type": "trim", "clip_id": 1, "beats": 2**31}, ["body", "beats"]),
        "set_transition": ({"type": "set_transition", "clip_id": 2**63, "transition": "fade"}, ["body", "clip_id"]),
        "reorder": ({"type": "reorder", "clip_ids": [1, 2**31]}, ["body", "clip_ids", 1]),
        "reorder too long": ({"type": "reorder", "clip_ids": list(range(1, 1002))}, ["body", "clip_ids"]),
    }
    for name, (edit, loc) in edits.items():
        response = api.client.post(f"/internal/jobs/{api.job_id}/edits", json=edit)
        error = assert_error(response, 422, "ValidationError")
        assert error["details"][0]["loc"] == loc, (name, error)
    # In range but unknown: the service's own answer, not an overflow.
    unknown = api.client.post(f"/internal/jobs/{api.job_id}/edits", json={"type": "swap_hero", "photo_id": DB_INT_MAX})
    assert_error(unknown, 422, "EditRejectedError")
    assert api.edits() == 0


def test_edit_text_with_nul_or_beyond_any_column_is_422(api: Api) -> None:
    for music in ("uploads/m\x00.wav", "uploads/" + "m" * 2100 + ".wav"):
        response = api.client.post(f"/internal/jobs/{api.job_id}/edits", json={"type": "set_music", "music_uri": music})
        assert assert_error(response, 422, "ValidationError")["details"][0]["loc"] == ["body", "music_uri"]
    raw = '{"type": "set_music", "music_uri": "uploads/\\ud800.wav"}'
    assert_error(_post_raw(api.client, f"/internal/jobs/{api.job_id}/edits", raw), 422)
    assert api.edits() == 0


# ---------------------------------------------------------------------------------------------
# sizes: the whole body, metadata, photo count, echoed inputs
# ---------------------------------------------------------------------------------------------


def test_a_body_over_the_limit_is_413_by_content_length_and_by_stream(tmp_path: Path, database_url: str) -> None:
    settings = _settings(tmp_path, database_url, API_MAX_BODY_BYTES=4096)
    uri = _stage(settings)
    with _client(settings) as client:
        big = json.dumps(_job(uri, metadata={"blob": "x" * 5000}))
        assert_error(_post_raw(client, "/internal/jobs", big), 413, "PayloadTooLarge")

        def chunks() -> Iterator[bytes]:  # no Content-Length: the limit counts what arrives
            for _ in range(10):
                yield b" " * 1000

        streamed = client.post("/internal/jobs", content=chunks(), headers={"content-type": "application/json"})
        assert streamed.request.headers.get("content-length") is None
        assert_error(streamed, 413, "PayloadTooLarge")
        for path in ("/internal/jobs/1/run", "/internal/jobs/1/edits"):
            assert_error(_post_raw(client, path, b" " * 5000), 413, "PayloadTooLarge")
        # Under the limit the same route works.
        small = client.post("/internal/jobs", json=_job(uri, metadata={"blob": "x" * 1000}))
        assert small.status_code == 201, small.text
        with session_scope(session_factory(database_url)) as s:
            assert s.scalar(select(func.count()).select_from(Job)) == 1


def test_the_default_limit_refuses_ten_megabytes_of_metadata(api: Api) -> None:
    assert api.settings.API_MAX_BODY_BYTES == 1_048_576
    body = json.dumps(_job(metadata={"blob": "x" * 10_000_000}))
    assert_error(_post_raw(api.client, "/internal/jobs", body), 413, "PayloadTooLarge")
    assert api.jobs() == 1


def test_metadata_is_bounded_in_size_and_depth(api: Api) -> None:
    too_big = {"blob": "x" * MAX_METADATA_BYTES}
    deep: dict[str, Any] = {}
    node = deep
    for _ in range(9):
        node["a"] = {}
        node = node["a"]
    for body, loc in (
        (_job(metadata=too_big), ["body", "metadata"]),
        (_photo_field("metadata", too_big), ["body", "photos", 0, "metadata"]),
        (_job(metadata=deep), ["body", "metadata"]),
    ):
        error = assert_error(api.client.post("/internal/jobs", json=body), 422, "ValidationError")
        assert error["details"][0]["loc"] == loc, error
    # Nesting too deep for the JSON decoder itself: unparsable, not a crash.
    raw = '{"listing_id": "1", "photos": [], "metadata": ' + "[" * 100_000 + "]" * 100_000 + "}"
    assert_error(_post_raw(api.client, "/internal/jobs", raw), 400, "BadRequest")
    ok = api.client.post("/internal/jobs", json=_job(metadata={"a": {"b": [1, 2.5, "c", None, True]}}))
    assert ok.status_code == 201, ok.text
    assert api.jobs() == 2


def test_validation_errors_never_echo_the_request_back(api: Api) -> None:
    # 10,000 photos: one problem, with the list summarised instead of repeated.
    response = api.client.post("/internal/jobs", json=_job(photos=[{"uri": "uploads/a.jpg"}] * 10_000))
    error = assert_error(response, 422, "ValidationError")
    assert error["details"] == [
        {
            "loc": ["body", "photos"],
            "message": error["details"][0]["message"],
            "type": "too_long",
            "input": "<array of 10000 items>",
        }
    ]
    # 200 broken photos: at most 20 details, the message counts the rest.
    many = api.client.post("/internal/jobs", json=_job(photos=[{"uri": "x" * 1000, "oops": "y" * 1000}] * 200))
    error = assert_error(many, 422, "ValidationError")
    assert len(error["details"]) == 20 and "(and 199 more problem(s))" in error["message"]
    assert all(len(str(d.get("input", ""))) <= 100 for d in error["details"])
    # A long bad string is cut, not repeated.
    long_label = api.client.post("/internal/jobs", json=_photo_field("room_label", "r" * 50_000))
    detail = assert_error(long_label, 422)["details"][0]
    assert len(detail["input"]) == 100 and detail["input"].endswith("…")
    # "missing" does not repeat the enclosing object.
    missing = assert_error(api.client.post("/internal/jobs", json={"photos": [{"uri": "u"}]}), 422)
    assert missing["details"][0]["loc"] == ["body", "listing_id"] and "input" not in missing["details"][0]


# ---------------------------------------------------------------------------------------------
# one error shape on every route, and in the OpenAPI document
# ---------------------------------------------------------------------------------------------


def _routes(app: FastAPI) -> list[tuple[str, str]]:
    return sorted(
        {(m, ctx.path) for ctx in iter_route_contexts(app.routes) for m in (ctx.methods or ()) if m != "HEAD"}
    )


def _battery(client: TestClient, method: str, path: str) -> list[Response]:
    """Requests that should fail on `path`: no key, bad and unknown ids, broken bodies, a wrong method."""
    concrete = path.replace("{job_id}", "999")
    responses = [
        client.request(method, concrete, headers={"X-API-Key": ""}),
        client.request("PATCH", concrete),
    ]
    if "{job_id}" in path:
        responses += [client.request(method, path.replace("{job_id}", str(2**40)), json={})]
        responses += [client.request(method, concrete, json={"type": "set_target_length", "target_length": 20})]
    if method == "POST":
        for raw in (b"{", b"\xff", b" " * 5000):
            responses.append(
                client.request(method, concrete, content=raw, headers={"content-type": "application/json"})
            )
    return responses


def _assert_error_shape(response: Response, route: tuple[str, str]) -> None:
    if response.status_code < 400:
        return
    body = strict_json(response)
    if route[1] == "/ready":  # the readiness report, with the common error inside
        ErrorOut.model_validate({"error": body["error"]})
    else:
        ErrorOut.model_validate(body)
    assert_nothing_internal(response.text)


def test_every_route_answers_every_error_in_one_shape(tmp_path: Path, database_url: str) -> None:
    settings = _settings(tmp_path, database_url, API_MAX_BODY_BYTES=4096)
    app = create_app(settings)
    seen: set[int] = set()
    with TestClient(app, raise_server_exceptions=False) as client:
        client.headers["X-API-Key"] = API_KEY
        routes = _routes(app)
        assert ("GET", "/docs") in routes and ("POST", "/internal/jobs") in routes
        for route in routes:
            for response in _battery(client, *route):
                _assert_error_shape(response, route)
                seen.add(response.status_code)
        assert_error(client.get("/no/such/route"), 404, "NotFound")

        # A bug behind every route that needs the process state: 500, nothing of the exception shown.
        def broken() -> None:
            raise RuntimeError(f"secret internals in {tmp_path}")

        app.dependency_overrides[get_state] = broken
        for route in routes:
            if route[1].startswith("/internal") or route[1] == "/ready":
                response = client.request(route[0], route[1].replace("{job_id}", "1"), json={})
                if route[0] == "POST" and response.status_code == 422:
                    continue  # the body is validated before the dependency runs
                error = assert_error(response, 500, "InternalError", secrets=(str(tmp_path), "secret internals"))
                assert error["message"] == "internal error", route
                seen.add(500)
    assert {400, 401, 404, 405, 413, 422, 500} <= seen, seen


def test_every_route_answers_503_in_the_same_shape_with_the_database_down(tmp_path: Path) -> None:
    settings = _settings(tmp_path, "postgresql+psycopg://postgres@127.0.0.1:9/nowhere")
    with _client(settings) as client:
        for method, path, body in [
            ("GET", "/internal/jobs", None),
            ("POST", "/internal/jobs", None),
            *INTERNAL_ID_ROUTES,
        ]:
            payload = _job(_stage(settings)) if body is None and method == "POST" else body
            response = client.request(method, path.replace("{id}", "1"), json=payload)
            assert_error(response, 503, "DatabaseUnavailable", secrets=("127.0.0.1:9", "nowhere", "postgres@"))
        ready = client.get("/ready")
        assert ready.status_code == 503
        ErrorOut.model_validate({"error": ready.json()["error"]})


def _schema_ref(response: dict[str, Any]) -> str:
    return str(response["content"]["application/json"]["schema"].get("$ref", ""))


def test_openapi_documents_the_one_error_shape_on_every_route(tmp_path: Path) -> None:
    spec = create_app(_settings(tmp_path, "sqlite://")).openapi()
    components = spec["components"]["schemas"]
    assert {"ErrorOut", "ErrorInfo", "ErrorDetail"} <= set(components)
    assert "HTTPValidationError" not in components, "FastAPI's own 422 body is not what the API sends"
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            codes = set(op["responses"])
            assert "500" in codes, (method, path)
            if path.startswith("/internal"):
                assert {"401", "503"} <= codes, (method, path)
            if op.get("parameters") or op.get("requestBody"):
                assert "422" in codes, (method, path)
            if op.get("requestBody"):
                assert {"400", "413"} <= codes, (method, path)
            for code, response in op["responses"].items():
                if int(code) < 400:
                    continue
                expected = "ReadyOut" if (path, code) == ("/ready", "503") else "ErrorOut"
                assert _schema_ref(response).endswith(f"/{expected}"), (method, path, code, response)
    assert "error" in components["ReadyOut"]["properties"]


# ---------------------------------------------------------------------------------------------
# documentation in production
# ---------------------------------------------------------------------------------------------

DOC_PATHS = ("/docs", "/redoc", "/openapi.json", "/docs/oauth2-redirect")


def test_docs_are_not_served_in_production(tmp_path: Path, sqlite_url: str) -> None:
    with _client(_settings(tmp_path, sqlite_url, ENVIRONMENT="production")) as client:
        for path in DOC_PATHS:
            assert_error(client.get(path), 404, "NotFound")  # with the API key too: not there at all
            assert_error(client.get(path, headers={"X-API-Key": ""}), 404, "NotFound")
        assert client.get("/health").status_code == 200
        assert client.get("/internal/jobs").status_code == 200
    with _client(_settings(tmp_path, sqlite_url, ENVIRONMENT="staging"), key=None) as client:
        for path in DOC_PATHS:
            assert client.get(path).status_code == 200, path


# ---------------------------------------------------------------------------------------------
# settings errors: one line naming the setting, in the CLI, the workers and the API
# ---------------------------------------------------------------------------------------------


def _process(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in Settings.model_fields}
    return subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        env={**base, "DATABASE_URL": f"sqlite:///{cwd / 'x.db'}", **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _one_line_naming(res: subprocess.CompletedProcess[str], *names: str) -> str:
    assert res.returncode == 2, (res.returncode, res.stdout, res.stderr)
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, res.stderr
    assert "Traceback" not in res.stderr + res.stdout
    for name in names:
        assert name in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"OUTPUT_RESOLUTION": "abc"}, ("OUTPUT_RESOLUTION", "'abc'", "WIDTHxHEIGHT")),
        ({"OUTPUT_RESOLUTION": "1921x1080"}, ("OUTPUT_RESOLUTION", "'1921x1080'")),
        ({"API_MAX_BODY_BYTES": "12"}, ("API_MAX_BODY_BYTES", "'12'", "1024")),
        ({"MAX_WORKERS": "lots", "ENVIRONMENT": "prod"}, ("MAX_WORKERS", "'lots'", "ENVIRONMENT", "'prod'")),
        ({"CORS_ORIGINS": "not-json"}, ("CORS_ORIGINS",)),
    ],
    ids=["resolution", "odd-resolution", "body-limit", "two-settings", "not-json"],
)
def test_a_bad_setting_is_one_line_in_the_cli(tmp_path: Path, env: dict[str, str], named: tuple[str, ...]) -> None:
    res = _process(["-m", "app.cli", "status", "1"], tmp_path, **env)
    _one_line_naming(res, *named)


def test_a_bad_setting_is_one_line_in_workers_and_the_api_server(tmp_path: Path) -> None:
    _one_line_naming(
        _process(["-m", "app.worker", "--type", "cpu"], tmp_path, OUTPUT_RESOLUTION="abc"), "OUTPUT_RESOLUTION"
    )
    # What `uvicorn app.api.main:app` does first: build the module's app from the environment.
    server = _process(["-c", "import app.api.main as m; m.app"], tmp_path, OUTPUT_RESOLUTION="abc")
    _one_line_naming(server, "OUTPUT_RESOLUTION", "'abc'")


def test_the_api_factory_raises_a_typed_settings_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # no .env
    monkeypatch.setenv("OUTPUT_RESOLUTION", "640x361")
    get_settings.cache_clear()
    try:
        with pytest.raises(SettingsError) as caught:
            create_app()
    finally:
        get_settings.cache_clear()
    message = str(caught.value)
    assert caught.value.exit_code == 2 and "\n" not in message
    assert message.startswith("invalid setting OUTPUT_RESOLUTION='640x361': ")


def test_settings_errors_never_repeat_a_secret() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError) as caught:
        Settings(_env_file=None, AWS_SECRET_ACCESS_KEY=["hunter2"], API_KEY={"k": "hunter3"}, OUTPUT_FPS="x")  # type: ignore[call-arg]
    message = str(settings_error(caught.value))
    assert "AWS_SECRET_ACCESS_KEY" in message and "API_KEY" in message and "OUTPUT_FPS='x'" in message
    assert "hunter2" not in message and "hunter3" not in message


# ---------------------------------------------------------------------------------------------
# nothing internal in a response: tracebacks, paths, the API key
# ---------------------------------------------------------------------------------------------


def test_errors_name_the_input_but_not_where_the_service_keeps_files(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    root = Path(api.settings.LOCAL_STORAGE_PATH).resolve()
    response = api.client.post("/internal/jobs", json=_job("uploads/../../secret.jpg"))
    error = assert_error(response, 422, "InvalidInputError", secrets=(str(root), str(api.tmp)))
    assert "secret.jpg" in error["message"]
    # An absolute path the client sent is its own input; the storage root is still not shown.
    outside = api.client.post("/internal/jobs", json=_job(str(api.tmp / "elsewhere" / "x.jpg")))
    assert "x.jpg" in assert_error(outside, 422, "InvalidInputError", secrets=(str(root),))["message"]

    # Whatever a service puts in a user-facing message, the API shows placeholders for its own folders.
    work = Path(api.settings.WORK_DIR).resolve()

    def leaky(*_args: object, **_kwargs: object) -> None:
        raise InvalidInputError(f"cannot read {root}/uploads/a.jpg via {work}/tmp/a.jpg")

    monkeypatch.setattr("app.api.routes.jobs.create_job_from_uris", leaky)
    error = assert_error(
        api.client.post("/internal/jobs", json=_job()), 422, "InvalidInputError", secrets=(str(api.tmp),)
    )
    assert error["message"] == "cannot read <storage>/uploads/a.jpg via <work>/tmp/a.jpg"


def test_recorded_errors_are_shown_without_the_services_paths(api: Api) -> None:
    # Workers record user-facing messages, but ffmpeg's and the storage's can name files in the work dir.
    work = Path(api.settings.WORK_DIR).resolve()
    root = Path(api.settings.LOCAL_STORAGE_PATH).resolve()
    with session_scope(session_factory(api.url)) as s:
        job = s.get(Job, api.job_id)
        assert job is not None
        job.status, job.error = "failed", f"phase 4 (assemble): ffmpeg failed: {work}/job-1/out.mp4: No space"
        job.warnings = [f"photo {root}/uploads/a.jpg is dark"]
        photo = s.get(Photo, api.photo_id)
        assert photo is not None
        photo.status, photo.reject_reason = "rejected", f"unreadable: {root}/uploads/a.jpg"
        phase = s.scalars(select(JobPhase).where(JobPhase.job_id == api.job_id, JobPhase.phase == 4)).one()
        phase.error = f"attempt 1: cannot write {work}/job-1/out.mp4"
    detail = api.client.get(f"/internal/jobs/{api.job_id}")
    listed = api.client.get("/internal/jobs")
    for response in (detail, listed):
        assert response.status_code == 200
        # (Local storage's photo URIs are file:// URIs under the root by design: data, not an error text.)
        assert_nothing_internal(response.text, (str(work),))
    assert listed.json()["items"][0]["error"] == "phase 4 (assemble): ffmpeg failed: <work>/job-1/out.mp4: No space"
    body = detail.json()
    assert body["error"] == "phase 4 (assemble): ffmpeg failed: <work>/job-1/out.mp4: No space"
    assert body["warnings"] == ["photo <storage>/uploads/a.jpg is dark"]
    assert body["photos"][0]["reject_reason"] == "unreadable: <storage>/uploads/a.jpg"
    assert body["phases"][3]["error"] == "attempt 1: cannot write <work>/job-1/out.mp4"


def test_a_bug_with_paths_in_its_message_shows_none_of_them(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    def explode(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError(f"failed reading {api.tmp}/x and {Path(__file__).resolve()}")

    monkeypatch.setattr("app.api.routes.jobs.job_summary", explode)
    for path in (f"/internal/jobs/{api.job_id}", "/internal/jobs"):
        error = assert_error(api.client.get(path), 500, "InternalError", secrets=(str(api.tmp), "failed reading"))
        assert error == {"code": "InternalError", "message": "internal error", "details": []}


def test_a_value_the_database_refuses_is_422_without_the_drivers_message(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The net under the request validation: a DataError (value out of a column's range, text the
    # database cannot hold) is the request's fault, and the driver's text stays in the log.
    def refuse(*_args: object, **_kwargs: object) -> None:
        raise DataError("SELECT ... WHERE jobs.id = %(id_1)s", {"id_1": 2**40}, Exception("integer out of range"))

    monkeypatch.setattr("app.api.routes.jobs.job_summary", refuse)
    error = assert_error(
        api.client.get(f"/internal/jobs/{api.job_id}"), 422, "InvalidInputError", secrets=("SELECT", "integer out")
    )
    assert error["message"] == "a value in the request is out of range or cannot be stored"


def test_the_api_key_is_never_in_a_response(api: Api) -> None:
    responses = [
        api.client.get("/internal/jobs"),
        api.client.get(f"/internal/jobs/{api.job_id}"),
        api.client.get(f"/internal/jobs/{api.job_id}/timeline"),
        api.client.post(f"/internal/jobs/{api.job_id}/run", json={"start_phase": 3}),
        api.client.post("/internal/jobs", json={"surprise": 1}),
        api.client.get("/internal/metrics"),
        api.client.get("/ready"),
        api.client.get("/openapi.json"),
        api.client.get("/internal/jobs", headers={"X-API-Key": API_KEY[:-1]}),
        api.client.get("/internal/jobs", headers={"X-API-Key": API_KEY + "x"}),
    ]
    for response in responses:
        assert API_KEY not in response.text and API_KEY[:-1] not in response.text, response.request.url
        assert all(API_KEY not in value for value in response.headers.values())
    assert {r.status_code for r in responses} >= {200, 401, 404, 409, 422}
