"""All configuration, in one place. Names follow ../shared/design/data-model.md where they exist."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    # --- deployment -------------------------------------------------------------------------
    ENVIRONMENT: Literal["local", "test", "staging", "production"] = "local"
    DEBUG: bool = False
    LOG_LEVEL: str = "INFO"
    API_KEY: str = ""
    BACKEND_URL: str = ""
    CORS_ORIGINS: list[str] = Field(default_factory=list)

    # --- state and storage ------------------------------------------------------------------
    #: Embedded default: a SQLite file under ./var/. Production: postgresql+psycopg://...
    DATABASE_URL: str = "sqlite:///./var/picaivid.db"
    #: Binaries go to S3 when S3_BUCKET is set, else under LOCAL_STORAGE_PATH.
    LOCAL_STORAGE_PATH: Path = Path("./var/storage")
    #: Scratch space for decoded inputs and renders in progress (safe to delete between jobs).
    WORK_DIR: Path = Path("./var/work")
    S3_BUCKET: str = ""
    AWS_REGION: str = "us-east-1"
    AWS_ACCESS_KEY_ID: str = ""
    AWS_SECRET_ACCESS_KEY: str = ""
    #: Honoured by boto3 for every AWS client (moto_server in tests, LocalStack, ...).
    AWS_ENDPOINT_URL: str = ""

    # --- queues (fleet mode) ------------------------------------------------------------------
    SQS_QUEUE_URL: str = ""
    SQS_GPU_QUEUE_URL: str = ""
    WORKER_TYPE: Literal["cpu", "gpu"] = "cpu"
    GPU_ENABLED: bool = False
    MAX_WORKERS: int = 1
    #: Base URL of the EC2 instance metadata service (IMDSv2). Empty turns the Spot-notice poll off.
    SPOT_TERMINATION_ENDPOINT: str = "http://169.254.169.254"
    SPOT_POLL_SECONDS: float = 5.0
    #: A received message stays hidden this long; the worker's heartbeat keeps extending it while it works.
    SQS_VISIBILITY_TIMEOUT: int = 120
    #: Long-poll wait per receive (SQS allows 0-20 s).
    SQS_WAIT_SECONDS: int = 10
    #: The queues' redrive maxReceiveCount: after this many deliveries a message moves to the DLQ.
    SQS_MAX_RECEIVES: int = 5
    #: How often a busy worker extends its message's visibility and its job/clip lease.
    WORKER_HEARTBEAT_SECONDS: float = 20.0
    #: Lease lengths in Postgres. A worker that dies stops renewing; after expiry another may take over.
    JOB_LEASE_SECONDS: int = 180
    CLIP_LEASE_SECONDS: int = 180
    #: Transient failures come back after base * 2^(attempt-1) seconds, at most max.
    RETRY_BACKOFF_BASE_SECONDS: float = 10.0
    RETRY_BACKOFF_MAX_SECONDS: float = 600.0
    #: On SIGTERM or a Spot notice the worker stops within this many seconds (ECS allows 120 s on Spot;
    #: the issue's contract is 10 s).
    SHUTDOWN_GRACE_SECONDS: float = 8.0
    #: Path appended to BACKEND_URL for progress callbacks (a job's own callback_url wins).
    CALLBACK_PATH: str = "/internal/picaivid/events"
    CALLBACK_TIMEOUT_SECONDS: float = 5.0
    CALLBACK_MAX_ATTEMPTS: int = 5

    # --- models -----------------------------------------------------------------------------
    MODEL_CACHE_DIR: Path = Path("./ml_models")
    TORCH_HOME: str = ""
    HUGGINGFACE_HUB_CACHE: str = ""
    OPENCLIP_MODEL: str = "ViT-B-32"
    MIDAS_MODEL: str = "DPT_Large"
    LTX_MODEL_PATH: str = ""
    LTX_ENABLED: bool = False

    # --- media ------------------------------------------------------------------------------
    FFMPEG_PATH: str = ""
    OUTPUT_RESOLUTION: str = "1920x1080"
    OUTPUT_FPS: int = 30
    #: libx264 preset for intermediate clips (re-encoded once more in phase 4).
    CLIP_X264_PRESET: str = "veryfast"
    CLIP_CRF: int = 16
    #: libx264 preset and quality of the delivered video.
    OUTPUT_X264_PRESET: str = "medium"
    OUTPUT_CRF: int = 20
    TARGET_LOUDNESS_LUFS: float = -14.0
    TARGET_TRUE_PEAK_DBTP: float = -1.0
    DEFAULT_BPM: float = 120.0
    ENABLE_BEAT_SYNC: bool = True
    DEFAULT_TARGET_LENGTH: float = 30.0
    #: Crossfade length between clips, in beats (clamped to [0.25 s, 1.0 s]).
    TRANSITION_BEATS: float = 1.0
    #: Decompression-bomb guard: photos above this many pixels are rejected.
    MAX_IMAGE_PIXELS: int = 80_000_000
    MAX_IMAGE_BYTES: int = 60_000_000

    @field_validator("OUTPUT_RESOLUTION")
    @classmethod
    def _check_resolution(cls, value: str) -> str:
        parts = value.lower().split("x")
        if len(parts) != 2 or not all(p.isdigit() and int(p) > 0 and int(p) % 2 == 0 for p in parts):
            raise ValueError("OUTPUT_RESOLUTION must be WIDTHxHEIGHT with even numbers, e.g. 1920x1080")
        return value.lower()

    @property
    def output_size(self) -> tuple[int, int]:
        """(width, height) of the delivered video."""
        w, h = self.OUTPUT_RESOLUTION.split("x")
        return int(w), int(h)

    @property
    def is_sqlite(self) -> bool:
        return self.DATABASE_URL.startswith("sqlite")


@lru_cache
def get_settings() -> Settings:
    return Settings()
