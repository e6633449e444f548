"""boto3 clients built from `Settings` (region, credentials, `AWS_ENDPOINT_URL` for moto_server or LocalStack)."""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config

from app.config import Settings


def aws_client(
    settings: Settings, service: str, *, max_attempts: int = 4, connect_timeout: float = 5, read_timeout: float = 30
) -> Any:
    """A client for `service`. Senders keep boto3's standard retries; probes and scrapes pass
    `max_attempts=1` and short timeouts so that they report a dependency down at once."""
    kwargs: dict[str, Any] = {
        "region_name": settings.AWS_REGION,
        "config": Config(
            retries={"max_attempts": max_attempts, "mode": "standard"},
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
        ),
    }
    if settings.AWS_ENDPOINT_URL:
        kwargs["endpoint_url"] = settings.AWS_ENDPOINT_URL
    if settings.AWS_ACCESS_KEY_ID and settings.AWS_SECRET_ACCESS_KEY:
        kwargs["aws_access_key_id"] = settings.AWS_ACCESS_KEY_ID
        kwargs["aws_secret_access_key"] = settings.AWS_SECRET_ACCESS_KEY
    return boto3.client(service, **kwargs)
