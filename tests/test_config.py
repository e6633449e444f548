"""Configuration: one Settings, documented in .env.example, validated."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from app.config import Settings

ROOT = Path(__file__).resolve().parents[1]


def test_env_example_lists_every_setting() -> None:
    listed = {
        line.split("=", 1)[0]
        for line in (ROOT / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    }
    assert listed == set(Settings.model_fields)


def test_backend_setting_names_exist() -> None:
    """The names the Rails deployment already uses (../shared/design/data-model.md)."""
    names = (
        "ENVIRONMENT DEBUG API_KEY BACKEND_URL CORS_ORIGINS DATABASE_URL AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY "
        "AWS_REGION S3_BUCKET LOCAL_STORAGE_PATH SQS_QUEUE_URL MODEL_CACHE_DIR TORCH_HOME HUGGINGFACE_HUB_CACHE "
        "OPENCLIP_MODEL MIDAS_MODEL LTX_MODEL_PATH LTX_ENABLED DEFAULT_BPM ENABLE_BEAT_SYNC FFMPEG_PATH "
        "OUTPUT_RESOLUTION OUTPUT_FPS WORKER_TYPE GPU_ENABLED MAX_WORKERS SPOT_TERMINATION_ENDPOINT LOG_LEVEL"
    )
    assert set(names.split()) <= set(Settings.model_fields)
    s = Settings(_env_file=None)  # type: ignore[call-arg]
    assert (s.OPENCLIP_MODEL, s.MIDAS_MODEL, s.LTX_ENABLED, s.DEFAULT_BPM, s.ENABLE_BEAT_SYNC) == (
        "ViT-B-32",
        "DPT_Large",
        False,
        120.0,
        True,
    )
    assert s.output_size == (1920, 1080) and s.OUTPUT_FPS == 30
    assert s.DATABASE_URL.startswith("sqlite:///") and s.is_sqlite


def test_environment_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OUTPUT_RESOLUTION", "1280x720")
    monkeypatch.setenv("ENABLE_BEAT_SYNC", "false")
    s = Settings(_env_file=None)  # type: ignore[call-arg]
    assert s.output_size == (1280, 720) and s.ENABLE_BEAT_SYNC is False


@pytest.mark.parametrize("bad", ["1920", "1921x1080", "axb", "0x0"])
def test_bad_resolution_is_rejected(bad: str) -> None:
    with pytest.raises(ValidationError):
        Settings(_env_file=None, OUTPUT_RESOLUTION=bad)  # type: ignore[call-arg]
