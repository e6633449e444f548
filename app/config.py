"""All configuration, in one place. Names follow ../shared/design/data-model.md where they exist."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from pydantic_settings import SettingsError as SourceError

from app.errors import SettingsError


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    # --- deployment -------------------------------------------------------------------------
    ENVIRONMENT: Literal["local", "test", "staging", "production"] = "local"
    DEBUG: bool = False
    LOG_LEVEL: str = "INFO"
    #: "json": one JSON object per line with job_id/phase/clip_id (services); "text": classic lines.
    LOG_FORMAT: Literal["json", "text"] = "json"
    API_KEY: str = ""
    BACKEND_URL: str = ""
    CORS_ORIGINS: list[str] = Field(default_factory=list)
    #: Largest request body the API reads (bytes); a larger one gets 413 before it is parsed.
    API_MAX_BODY_BYTES: int = Field(default=1_048_576, ge=1024)

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
    #: HMAC-SHA256 key for X-Picaivid-Signature on callbacks (never the API key). Empty: callbacks are
    #: not sent in production, and go out unsigned (with a warning) elsewhere.
    CALLBACK_SECRET: str = ""
    #: Let a job's callback_url reach loopback, private (10/8, 172.16/12, 192.168/16, fc00::/7) and CGNAT
    #: addresses. Development and tests only; link-local and metadata addresses stay refused.
    CALLBACK_ALLOW_PRIVATE_NETWORKS: bool = False
    #: Comma list of host names (".example.com" for subdomains) and CIDRs. When set, a job's callback_url
    #: must name a listed host or resolve into a listed CIDR, and nothing else is allowed.
    CALLBACK_ALLOWED_HOSTS: str = ""

    # --- models -----------------------------------------------------------------------------
    MODEL_CACHE_DIR: Path = Path("./ml_models")
    TORCH_HOME: str = ""
    HUGGINGFACE_HUB_CACHE: str = ""
    #: CLIP for scene/room recognition: "ViT-B-32" = laion/CLIP-ViT-B-32-laion2B-s34B-b79K (MIT).
    OPENCLIP_MODEL: str = "ViT-B-32"
    #: Depth used first when its weights are present (Base/Large Depth Anything V2 are non-commercial).
    DEPTH_MODEL: str = "depth-anything/Depth-Anything-V2-Small-hf"
    #: MiDaS DPT ("DPT_Large" = Intel/dpt-large), used when DEPTH_MODEL's weights are unavailable; empty: never.
    MIDAS_MODEL: str = "DPT_Large"
    #: Beat/downbeat activations for phase 3: "beatnet" (BeatNet's CRNN, CC BY 4.0, shipped in its
    #: PyPI wheel) decoded by our own bar-pointer model; empty: the classical onset/tempogram tracker.
    BEAT_MODEL: Literal["beatnet", ""] = "beatnet"
    #: Find text and logos in photos (PP-OCR via rapidocr-onnxruntime, Apache-2.0): masked out of room
    #: matching, listed per photo, and blurred out of MLS-unbranded cuts.
    OCR_ENABLED: bool = True
    #: Use model weights found under MODEL_CACHE_DIR (false: classical code only).
    MODELS_ENABLED: bool = True
    #: Let checkpoints whose licence is not cleared for commercial use load (research only).
    MODELS_ALLOW_NONCOMMERCIAL: bool = False
    #: Where CLIP/depth run: auto (CUDA when present), cpu or cuda.
    MODELS_DEVICE: Literal["auto", "cpu", "cuda"] = "auto"
    #: Depth network input short side in pixels (0: the checkpoint's own, 518 for Depth Anything V2).
    #: Smaller is faster on CPU: 392 halves the time, 294 quarters it.
    DEPTH_INPUT_SIZE: int = Field(default=0, ge=0, le=2048)
    #: LTX-2 diffusers folder (model_index.json + components); empty: MODEL_CACHE_DIR/ltx2/LTX-2. Offline only.
    LTX_MODEL_PATH: str = ""
    #: LTX-2 community licence: commercial use is free only below its annual-revenue threshold.
    LTX_ENABLED: bool = False
    #: Let a CPU process run LTX-2 (tiny test weights, the CPU ladder test); production runs it on GPUs.
    LTX_ALLOW_CPU: bool = False
    #: The renderer ladder, best first (ltx2, parallax, ken_burns); each worker keeps what it can run and
    #: Ken Burns is always the last step.
    RENDERERS: str = "ltx2,parallax,ken_burns"
    #: Denoising steps per LTX-2 clip.
    LTX_STEPS: int = Field(default=30, ge=1, le=200)
    #: none: whole pipeline on the GPU (80 GB class); model: enable_model_cpu_offload (~48 GB);
    #: sequential: enable_sequential_cpu_offload (24 GB, much slower). Offload needs `accelerate`.
    LTX_OFFLOAD: Literal["none", "model", "sequential"] = "none"
    #: Largest LTX-2 generation size (multiples of 32); frames are then scaled to OUTPUT_RESOLUTION.
    LTX_WIDTH: int = Field(default=1280, ge=32, multiple_of=32)
    LTX_HEIGHT: int = Field(default=704, ge=32, multiple_of=32)
    #: Frame rate LTX-2 generates at; clips are resampled to OUTPUT_FPS.
    LTX_FPS: int = Field(default=24, ge=1, le=60)

    # --- media ------------------------------------------------------------------------------
    FFMPEG_PATH: str = ""
    OUTPUT_RESOLUTION: str = "1920x1080"
    OUTPUT_FPS: int = 30
    #: libx264 preset for intermediate clips (re-encoded once more in phase 4).
    #: Long side (px) of the preview phase 2 renders to validate a computed clip (Ken Burns, parallax);
    #: phase 4 re-makes those clips at each deliverable's resolution in its single encode.
    PREVIEW_LONG_SIDE: int = 640
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
    #: Transition at every cut a user did not choose: "auto" picks it from the beat the cut lands on
    #: (whip pan / zoom-through / slide on a phrase's first downbeat, crossfade otherwise); or one kind
    #: for every cut (crossfade, dip_to_white, whip_pan, slide, zoom_through, cut, or an xfade name).
    DEFAULT_TRANSITION: str = "auto"
    #: Decompression-bomb guard: photos above this many pixels are rejected.
    MAX_IMAGE_PIXELS: int = 80_000_000
    MAX_IMAGE_BYTES: int = 60_000_000

    @field_validator("OUTPUT_RESOLUTION")
    @classmethod
    def _check_resolution(cls, value: str) -> str:
        parts = value.lower().split("x")
        if len(parts) != 2 or not all(p.isdigit() and int(p) > 0 and int(p) % 2 == 0 for p in parts):
            raise ValueError("must be WIDTHxHEIGHT with even numbers, e.g. 1920x1080")
        return value.lower()

    @property
    def output_size(self) -> tuple[int, int]:
        """(width, height) of the delivered video."""
        w, h = self.OUTPUT_RESOLUTION.split("x")
        return int(w), int(h)

    @property
    def is_sqlite(self) -> bool:
        return self.DATABASE_URL.startswith("sqlite")

    @field_validator("RENDERERS")
    @classmethod
    def _known_renderers(cls, value: str) -> str:
        names = [n.strip() for n in value.split(",") if n.strip()]
        unknown = [n for n in names if n not in ("ltx2", "parallax", "ken_burns")]
        if unknown or not names:
            raise ValueError(f"unknown renderer(s) {', '.join(unknown) or '(none)'}; use ltx2, parallax, ken_burns")
        return ",".join(names)

    @property
    def renderer_names(self) -> list[str]:
        return self.RENDERERS.split(",")

    @property
    def is_fleet(self) -> bool:
        """Fleet mode: runs go to the SQS workers (else the embedded default runs them in-process)."""
        return bool(self.SQS_QUEUE_URL)


#: Settings whose values are never repeated in an error message (keys, secrets, URLs with credentials).
_SECRET_WORDS = ("KEY", "SECRET", "PASSWORD", "TOKEN", "DATABASE_URL")


def settings_error(exc: ValidationError) -> SettingsError:
    """pydantic's multi-line report as one line per bad setting, joined: `OUTPUT_RESOLUTION='abc': must
    be WIDTHxHEIGHT ...`. The value of a secret is not shown."""
    parts = []
    for err in exc.errors():
        name = ".".join(str(p) for p in err.get("loc", ())) or "settings"
        message = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        if any(word in name.upper() for word in _SECRET_WORDS) or "input" not in err:
            shown = name
        else:
            value = repr(err["input"])
            shown = f"{name}={value if len(value) <= 80 else value[:79] + '…'}"
        parts.append(f"{shown}: {message}")
    return SettingsError("invalid setting " + "; ".join(" ".join(p.split()) for p in parts))


@lru_cache
def get_settings() -> Settings:
    """The process's settings, from the environment and .env. A bad value raises `SettingsError` naming
    the setting (the CLI, the workers and the API print that one line and exit 2)."""
    try:
        return Settings()
    except ValidationError as exc:
        raise settings_error(exc) from None
    except SourceError as exc:  # a list or dict setting that is not JSON: "error parsing value for field ..."
        why = f" ({type(exc.__cause__).__name__}: {exc.__cause__})" if exc.__cause__ else ""
        raise SettingsError(" ".join(f"invalid setting: {exc}{why}".split())) from None
