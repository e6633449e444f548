"""Storage: the same contract on a local folder and on S3 (moto_server over HTTP)."""

from __future__ import annotations

import unicodedata
from pathlib import Path

import pytest

from app.errors import InvalidInputError, StorageError
from app.storage import LocalStorage, MissingArtifactError, RefusedKeyError, S3Storage, Storage, keys


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


# ---------------------------------------------------------------------------------------------
# names a phone, a Mac or a Windows machine produces
# ---------------------------------------------------------------------------------------------

#: File names as they arrive from phones, macOS (NFD), Windows and zip files.
ODD_NAMES = [
    "Küche.jpg",  # NFC (Windows, Linux)
    unicodedata.normalize("NFD", "Küche.jpg"),  # NFD (macOS)
    "客厅 全景.jpg",
    "🏠 front 🌳.jpg",
    "IMG 0001 (1).jpg",
    "#1 kitchen.jpg",
    "100% view.jpg",
    "what?.jpg",
    "a&b=c;d'e\"f.jpg",
    "x" * 300 + ".jpg",
    "客" * 300 + ".heic",
]


@pytest.mark.parametrize("name", ODD_NAMES, ids=range(len(ODD_NAMES)))
def test_odd_names_round_trip(storage: Storage, tmp_path: Path, name: str) -> None:
    src = tmp_path / "src.bin"
    src.write_bytes(name.encode())
    key = keys.input_photo(5, 3, name)
    component = key.rsplit("/", 1)[-1]
    assert len(component.encode()) <= 255 and key.startswith("jobs/5/input/photos/003_")
    assert key == keys.input_photo(5, 3, unicodedata.normalize("NFC", name)), "NFC and NFD give one key"
    assert all(c.isalnum() or c in "._-~" for c in component), component
    uri = storage.put_file(key, src)
    assert storage.resolve_key(uri) == key
    assert storage.exists(key)
    assert storage.local_path(key, tmp_path / "cache").read_bytes() == name.encode()
    assert storage.get_file(key, tmp_path / "out.bin").read_bytes() == name.encode()


def test_safe_names_are_deterministic_short_and_distinct() -> None:
    long_a, long_b = "a" * 300 + "1.jpg", "a" * 300 + "2.jpg"
    ka, kb = keys.safe_name(long_a), keys.safe_name(long_b)
    assert ka != kb and ka == keys.safe_name(long_a), "truncated names keep a hash of the whole name"
    assert ka.endswith(".jpg") and len(ka.encode()) <= keys.MAX_NAME_BYTES
    cjk = keys.safe_name("客" * 100 + ".jpg")  # 300 bytes of UTF-8: cut on a character boundary
    assert len(cjk.encode()) <= keys.MAX_NAME_BYTES and cjk.startswith("客" * 10) and cjk.endswith(".jpg")
    assert keys.safe_name("Küche.jpg") == "Küche.jpg"
    assert keys.safe_name("..hidden") == "hidden" and keys.safe_name("...") == "file"
    assert keys.safe_name("K\udcfcche.jpg") == "K_che.jpg", "undecodable bytes of a Latin-1 name"
    assert keys.safe_name("C:\\Users\\me\\IMG 1.jpg") == "C__Users_me_IMG_1.jpg"


@pytest.mark.parametrize("root_name", ["my storage", "stöckli #1", "100% ?root"])
def test_local_root_with_spaces_and_accents(tmp_path: Path, root_name: str) -> None:
    store = LocalStorage(tmp_path / root_name)
    src = tmp_path / "a.bin"
    src.write_bytes(b"x")
    key = keys.input_photo(1, 0, "Küche 1.jpg")
    uri = store.put_file(key, src)
    assert uri.startswith("file:///") and " " not in uri, "an RFC 8089 URI, percent-encoded"
    assert store.resolve_key(uri) == key
    raw = "file://" + str(store.root / key)  # not encoded, as a person would write it
    assert store.resolve_key(raw) == key
    assert store.resolve_key("file://localhost" + str(store.root / key)) == key
    assert store.resolve_key(str(store.root / key)) == key and store.resolve_key(key) == key


def test_file_uri_decoding_cannot_escape_the_root(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path / "root")
    (tmp_path / "secret.txt").write_text("s")
    base = store.root.as_uri()
    for uri in (f"{base}/%2E%2E/secret.txt", f"{base}/jobs%2F..%2F..%2Fsecret.txt", "file://evil.example/etc/passwd"):
        with pytest.raises(InvalidInputError) as info:
            store.resolve_key(uri)
        assert str(tmp_path) not in str(info.value).replace(uri, ""), "the message names only the given URI"


@pytest.mark.parametrize(
    "bad", ["jobs/a\x00b.jpg", "jobs/a\nb.jpg", "jobs/\udcfc.jpg", "jobs/" + "k" * 1100 + ".jpg"], ids=range(4)
)
def test_impossible_keys_are_input_errors_on_both_backends(storage: Storage, tmp_path: Path, bad: str) -> None:
    src = tmp_path / "a.bin"
    src.write_bytes(b"x")
    for call in (
        lambda: storage.exists(bad),
        lambda: storage.put_file(bad, src),
        lambda: storage.local_path(bad, tmp_path / "c"),
        lambda: storage.resolve_key(storage.uri("jobs/x.jpg").replace("x.jpg", bad.split("/", 1)[1])),
    ):
        with pytest.raises(InvalidInputError):
            call()


def test_a_name_too_long_for_a_file_system(tmp_path: Path, aws_endpoint: str, s3_bucket: str) -> None:
    """300 bytes in one component: no local file can have it (422, never 503); S3 can, and its local
    cache copy gets a shortened name."""
    key = "uploads/" + "n" * 300 + ".jpg"
    local = LocalStorage(tmp_path / "root")
    src = tmp_path / "a.bin"
    src.write_bytes(b"photo")
    for call in (
        lambda: local.exists(key),
        lambda: local.put_file(key, src),
        lambda: local.get_file(key, tmp_path / "x"),
        lambda: local.resolve_key(str(local.root / key)),
    ):
        with pytest.raises(InvalidInputError) as info:
            call()
        assert not isinstance(info.value, StorageError) and str(local.root) not in str(info.value)
    s3 = S3Storage(s3_bucket, endpoint_url=aws_endpoint)
    s3.put_file(key, src)
    assert s3.exists(key) and s3.resolve_key(s3.uri(key)) == key
    cached = s3.local_path(key, tmp_path / "cache")
    assert cached.read_bytes() == b"photo" and len(cached.name.encode()) <= 255 and cached.suffix == ".jpg"
    assert s3.local_path(key, tmp_path / "cache") == cached, "the same cache name each time"


def test_local_errors_never_name_the_root(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path / "secret-root")
    src = tmp_path / "a.bin"
    src.write_bytes(b"x")
    store.put_file("jobs/1/a", src)
    with pytest.raises(StorageError) as info:  # "jobs/1/a" is a file, so it cannot be a folder
        store.put_file("jobs/1/a/b.jpg", src)
    assert "secret-root" not in str(info.value) and "jobs/1/a/b.jpg" in str(info.value)
    with pytest.raises(InvalidInputError) as bad:
        store.resolve_key(str(tmp_path / "elsewhere.jpg"))
    assert str(bad.value) == f"{str(tmp_path / 'elsewhere.jpg')!r} is outside the storage root"
    with pytest.raises(MissingArtifactError) as missing:
        store.local_path("jobs/1/none.jpg", tmp_path)
    assert "secret-root" not in str(missing.value)


def _stubbed_s3(code: str, status: int) -> S3Storage:
    import boto3
    from botocore.stub import Stubber

    store = S3Storage.__new__(S3Storage)
    store.bucket = "b"
    store._client = boto3.client("s3", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    stubber = Stubber(store._client)
    stubber.add_client_error("head_object", service_error_code=code, http_status_code=status)
    stubber.activate()
    return store


@pytest.mark.parametrize(
    ("code", "status", "refused"),
    [
        ("404", 404, None),
        ("403", 403, True),  # a HEAD has no body: also what a missing key gives without s3:ListBucket
        ("400", 400, True),
        ("ExpiredToken", 400, False),  # our credentials, not the key
        ("SlowDown", 503, False),
        ("InternalError", 500, False),
        ("RequestTimeout", 400, False),
    ],
)
def test_s3_answers_are_classified(code: str, status: int, refused: bool | None) -> None:
    """Missing, refused for this key (a user's URI that gets it is a 422), or S3 failing (503)."""
    store = _stubbed_s3(code, status)
    if refused is None:
        assert store.exists("jobs/1/a.jpg") is False
        return
    with pytest.raises(StorageError) as info:
        store.exists("jobs/1/a.jpg")
    assert isinstance(info.value, RefusedKeyError) is refused, info.value
    assert code in str(info.value) and "Traceback" not in str(info.value)


def test_s3_unreachable_is_a_storage_error(tmp_path: Path) -> None:
    import boto3
    from botocore.config import Config

    store = S3Storage("b", endpoint_url="http://127.0.0.1:9")
    store._client = boto3.client(
        "s3",
        region_name="us-east-1",
        endpoint_url="http://127.0.0.1:9",
        aws_access_key_id="x",
        aws_secret_access_key="x",
        config=Config(retries={"max_attempts": 1}, connect_timeout=2, read_timeout=2),
    )
    with pytest.raises(StorageError) as info:
        store.exists("jobs/1/a.jpg")
    assert not isinstance(info.value, InvalidInputError)
    with pytest.raises(StorageError):
        store.get_file("jobs/1/a.jpg", tmp_path / "a.jpg")
