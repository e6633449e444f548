"""Storage: the same contract on a local folder and on S3 (moto_server over HTTP)."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.errors import InvalidInputError, StorageError
from app.storage import LocalStorage, S3Storage, Storage, keys


@pytest.fixture(params=["local", "s3"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    if request.param == "local":
        return LocalStorage(tmp_path / "root")
    endpoint = request.getfixturevalue("aws_endpoint")
    return S3Storage(request.getfixturevalue("s3_bucket"), endpoint_url=endpoint)


def test_round_trip_and_overwrite(storage: Storage, tmp_path: Path) -> None:
    src = tmp_path / "a.bin"
    src.write_bytes(b"first")
    key = keys.clip(7, 3, "abcdef0123456789")
    uri = storage.put_file(key, src)
    assert storage.exists(key)
    assert storage.resolve_key(uri) == key
    src.write_bytes(b"second")
    assert storage.put_file(key, src) == uri, "deterministic keys: a re-run overwrites"
    assert storage.get_file(key, tmp_path / "out" / "b.bin").read_bytes() == b"second"
    assert storage.local_path(key, tmp_path / "cache").read_bytes() == b"second"


def test_missing_and_delete_prefix(storage: Storage, tmp_path: Path) -> None:
    assert not storage.exists("jobs/1/nothing.mp4")
    with pytest.raises(StorageError):
        storage.get_file("jobs/1/nothing.mp4", tmp_path / "x")
    src = tmp_path / "a.bin"
    src.write_bytes(b"x")
    for i in range(3):
        storage.put_file(f"jobs/9/phase2/clips/{i}.mp4", src)
    storage.put_file("jobs/10/phase2/clips/0.mp4", src)
    assert storage.delete_prefix("jobs/9/phase2/") == 3
    assert not storage.exists("jobs/9/phase2/clips/0.mp4")
    assert storage.exists("jobs/10/phase2/clips/0.mp4")


@pytest.mark.parametrize(
    "uri",
    [
        "http://169.254.169.254/latest/meta-data",
        "ftp://x/y",
        "s3://other-bucket/k",
        "file:///etc/passwd",
        "/etc/passwd",
        "jobs/../../etc/passwd",
    ],
)
def test_rejects_foreign_uris(storage: Storage, uri: str) -> None:
    with pytest.raises(InvalidInputError):
        storage.resolve_key(uri)


@pytest.mark.parametrize("key", ["../x", "/abs", "a//b", "a/./b", ""])
def test_rejects_bad_keys(storage: Storage, key: str, tmp_path: Path) -> None:
    src = tmp_path / "a.bin"
    src.write_bytes(b"x")
    with pytest.raises(InvalidInputError):
        storage.put_file(key, src)


def test_s3_presigned_url_points_at_the_object(aws_endpoint: str, s3_bucket: str, tmp_path: Path) -> None:
    import httpx

    store = S3Storage(s3_bucket, endpoint_url=aws_endpoint)
    src = tmp_path / "v.mp4"
    src.write_bytes(b"video-bytes")
    store.put_file("jobs/1/phase4/v1/video.mp4", src, "video/mp4")
    url = store.url_for("jobs/1/phase4/v1/video.mp4")
    assert url.startswith(aws_endpoint)
    assert httpx.get(url).content == b"video-bytes"
