"""Shared fixtures: real databases (SQLite and PostgreSQL), real storage (folder and S3 on moto_server).

`scripts/test.sh` provisions PostgreSQL (TEST_DATABASE_URL) and moto_server (AWS_ENDPOINT_URL) and sets
PICAIVID_REQUIRE_SERVICES=1, so a missing service fails the run instead of skipping tests. Run bare
`pytest` and the service-backed tests skip with the reason.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("NUMBA_CACHE_DIR", str(Path(tempfile.gettempdir()) / "picaivid-numba-cache"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from sqlalchemy import create_engine, text

from app.config import Settings
from app.db.migrate import upgrade
from app.db.models import Base
from app.db.session import get_engine, normalize_url, session_factory
from app.phases.base import PhaseContext
from app.storage import LocalStorage, S3Storage, Storage

REQUIRE_SERVICES = os.environ.get("PICAIVID_REQUIRE_SERVICES") == "1"


def _unavailable(reason: str) -> None:
    if REQUIRE_SERVICES:
        pytest.fail(f"required service unavailable: {reason}")
    pytest.skip(reason)


# ---------------------------------------------------------------------------------------------
# PostgreSQL
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A migrated throwaway PostgreSQL database for this test session."""
    base = os.environ.get("TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    base = normalize_url(base)
    try:
        admin = create_engine(base, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text("select 1"))
    except Exception as exc:  # pragma: no cover - depends on the machine
        _unavailable(f"PostgreSQL not reachable at {base.split('@')[-1]}: {type(exc).__name__}")
    name = f"picaivid_t_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(text(f'create database "{name}"'))
    url = base.rsplit("/", 1)[0] + f"/{name}"
    upgrade(url)
    yield url
    get_engine(url).dispose()
    with admin.connect() as conn:
        conn.execute(text(f'drop database if exists "{name}" with (force)'))
    admin.dispose()


def _truncate(url: str) -> None:
    engine = get_engine(url)
    tables = [t.name for t in reversed(Base.metadata.sorted_tables)]
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("truncate " + ", ".join(f'"{t}"' for t in tables) + " restart identity cascade"))
        else:
            for t in tables:
                conn.execute(text(f'delete from "{t}"'))


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Each test using this runs twice: on a migrated SQLite file and on PostgreSQL."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'picaivid.db'}"
        upgrade(url)
        yield url
        get_engine(url).dispose()
    else:
        url = request.getfixturevalue("postgres_url")
        _truncate(url)
        yield url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> Iterator[str]:
    url = f"sqlite:///{tmp_path / 'picaivid.db'}"
    upgrade(url)
    yield url
    get_engine(url).dispose()


# ---------------------------------------------------------------------------------------------
# moto_server (SQS and S3 wire protocol)
# ---------------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def aws_endpoint() -> Iterator[str]:
    """AWS_ENDPOINT_URL if given (scripts/test.sh starts moto_server), else a moto_server of our own."""
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    given = os.environ.get("AWS_ENDPOINT_URL")
    if given:
        yield given
        return
    try:
        import moto.server  # noqa: F401
    except ImportError:
        _unavailable("moto_server is not installed (pip install 'moto[server]')")
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-c", "from moto.server import main; main()", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            break
        except OSError:
            time.sleep(0.1)
    else:  # pragma: no cover
        proc.kill()
        _unavailable("moto_server did not start")
    yield f"http://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(10)


@pytest.fixture
def s3_bucket(aws_endpoint: str) -> str:
    import boto3

    name = f"picaivid-test-{uuid.uuid4().hex[:10]}"
    boto3.client("s3", endpoint_url=aws_endpoint, region_name="us-east-1").create_bucket(Bucket=name)
    return name


# ---------------------------------------------------------------------------------------------
# Settings and contexts
# ---------------------------------------------------------------------------------------------


def make_settings(tmp_path: Path, database_url: str, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "DATABASE_URL": database_url,
        "LOCAL_STORAGE_PATH": tmp_path / "storage",
        "WORK_DIR": tmp_path / "work",
        "OUTPUT_RESOLUTION": "640x360",
        "OUTPUT_X264_PRESET": "veryfast",
        "CLIP_X264_PRESET": "ultrafast",
        "S3_BUCKET": "",
        # PP-OCR costs ~0.4 s per photo; the tests of text regions, MLS redaction and OCR'd compliance
        # turn it on (OCR_ENABLED=True).
        "OCR_ENABLED": False,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def make_context(settings: Settings, storage: Storage | None = None) -> PhaseContext:
    return PhaseContext(
        settings=settings,
        sessions=session_factory(settings.DATABASE_URL),
        storage=storage or LocalStorage(Path(settings.LOCAL_STORAGE_PATH)),
    )


@pytest.fixture
def ctx(tmp_path: Path, database_url: str) -> PhaseContext:
    """Local storage + the parametrised database (SQLite and PostgreSQL)."""
    return make_context(make_settings(tmp_path, database_url))


@pytest.fixture
def s3_ctx(tmp_path: Path, postgres_url: str, aws_endpoint: str, s3_bucket: str) -> PhaseContext:
    """Fleet-shaped: PostgreSQL + S3 on moto_server."""
    _truncate(postgres_url)
    settings = make_settings(tmp_path, postgres_url, S3_BUCKET=s3_bucket, AWS_ENDPOINT_URL=aws_endpoint)
    return make_context(settings, S3Storage(s3_bucket, endpoint_url=aws_endpoint))


# ---------------------------------------------------------------------------------------------
# Generated inputs (never ../shared)
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def small_listing(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """A synthetic listing with ground truth: small photos, 24 s of music at 112 BPM."""
    from app.samples import make_sample_listing

    out = tmp_path_factory.mktemp("listing")
    return make_sample_listing(
        out,
        width=640,
        height=427,
        music_seconds=24.0,
        bpm=112.0,
        seed=3,
        rooms=["exterior", "living_room", "kitchen", "bedroom_a", "bedroom_b", "bathroom", "outdoor"],
    )
