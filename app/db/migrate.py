"""Alembic, driven from code so that `picaivid db upgrade` and tests share one path."""

from __future__ import annotations

from pathlib import Path

from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from alembic import command
from app.db.session import get_engine, normalize_url

REPO_ROOT = Path(__file__).resolve().parents[2]


def alembic_config(database_url: str) -> Config:
    cfg = Config(str(REPO_ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(REPO_ROOT / "alembic"))
    cfg.set_main_option("sqlalchemy.url", normalize_url(database_url).replace("%", "%%"))
    # The process has its own logging (app/logs.py); alembic.ini's would replace the root handlers.
    cfg.attributes["skip_logging"] = True
    return cfg


def current_revision(database_url: str) -> str | None:
    with get_engine(database_url).connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision(database_url: str) -> str | None:
    return ScriptDirectory.from_config(alembic_config(database_url)).get_current_head()


def upgrade(database_url: str, revision: str = "head") -> str | None:
    """Apply migrations up to `revision`; returns the revision the database is at."""
    command.upgrade(alembic_config(database_url), revision)
    return current_revision(database_url)


def ensure_schema(database_url: str) -> None:
    """Upgrade when the database is behind head (cheap check first: no Alembic logging when current)."""
    if current_revision(database_url) != head_revision(database_url):
        upgrade(database_url)
