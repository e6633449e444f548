"""Binary storage: one interface over a local folder and S3.

Postgres holds every fact about a job; storage holds only bytes, under deterministic keys
(`keys.py`), so a redelivered message that re-writes an artifact overwrites the same object.

URIs stored in the database are `s3://bucket/key` or `file:///abs/root/key`. `resolve_key()` accepts
only those two forms, and only inside the configured bucket or root: no `http://` fetches (SSRF),
no `..` escapes.

`file://` URIs are RFC 8089 URIs: `uri()` percent-encodes (`as_uri()`), `resolve_key()` decodes, so a key
with a space, `#`, `%`, `?` or any non-ASCII letter survives the round trip (a `#` or `?` left unencoded
is part of the path: there are no queries or fragments here). Bare paths, absolute or relative to the
root, are taken literally. `s3://` URIs carry the key as it is (the AWS CLI's convention), never
percent-encoded.

Errors: a key or name that cannot exist (too long, control characters, not UTF-8, a path the file
system refuses) is the caller's input: `InvalidInputError`. `StorageError` (transient, HTTP 503) is kept
for the storage itself failing: a full or read-only disk, S3 unreachable or answering 5xx. No message
names the local storage root or any other absolute server path.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote_to_bytes

from app.config import Settings
from app.errors import InvalidInputError, PicaividError, StorageError
from app.storage.keys import fit_name

__all__ = ["LocalStorage", "MissingArtifactError", "RefusedKeyError", "S3Storage", "Storage", "get_storage"]

#: S3's limit on a whole key, in UTF-8 bytes; applied to local keys too so both backends agree.
MAX_KEY_BYTES = 1024
#: Longest file name (one path component) local file systems take, in bytes.
NAME_MAX = 255
#: errno values an OS gives for a name that cannot exist, as opposed to a storage that is failing.
_NAME_ERRNOS = frozenset({errno.ENAMETOOLONG, errno.EINVAL, errno.EILSEQ, errno.ENOTDIR, errno.ELOOP, errno.ENOENT})
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class MissingArtifactError(StorageError):
    """The key names no object. Still a `StorageError` (a phase reading its own artifact retries), but
    callers checking a user's input can tell it from an outage."""


class RefusedKeyError(StorageError):
    """S3 answered 4xx for this key (403 on a HEAD is also what a missing object gives without
    s3:ListBucket). A `StorageError` for phases, as before; a user's URI that gets it is a 422."""


def _show(text: str, limit: int = 120) -> str:
    """`repr(text)`, shortened for one-line messages."""
    return repr(text) if len(text) <= limit else repr(text[: limit - 1] + "…")


def _check_text(text: str, what: str) -> str:
    """Reject what no storage can hold and what breaks OS calls (NUL, control characters, strings
    that are not UTF-8) before any lookup, so it is the input's fault and never an outage."""
    if _CONTROL.search(text):
        raise InvalidInputError(f"{what} {_show(text)} contains control characters")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInputError(f"{what} {_show(text)} is not valid UTF-8") from None
    return text


def _check_key(key: str) -> str:
    if not key or key.startswith("/") or "\\" in key:
        raise InvalidInputError(f"invalid storage key {_show(key)}")
    _check_text(key, "storage key")
    parts = key.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise InvalidInputError(f"invalid storage key {_show(key)}: empty or relative path segments")
    if len(key.encode("utf-8")) > MAX_KEY_BYTES:
        raise InvalidInputError(f"storage key {_show(key)} is longer than {MAX_KEY_BYTES} bytes")
    return key


def _os_error(exc: OSError, key: str, action: str, *, name_errors: bool = True) -> PicaividError:
    """An `OSError` on `key` as a typed error: the name's fault (input) or the storage's (503)."""
    reason = exc.strerror or type(exc).__name__  # never str(exc): it carries the absolute path
    if name_errors and exc.errno in _NAME_ERRNOS:
        return InvalidInputError(f"storage key {_show(key)}: {reason}")
    return StorageError(f"cannot {action} {key}: {reason}")


class Storage(Protocol):
    def uri(self, key: str) -> str: ...
    def resolve_key(self, uri: str) -> str: ...
    def put_file(self, key: str, path: Path, content_type: str | None = None) -> str: ...
    def get_file(self, key: str, dest: Path) -> Path: ...
    def local_path(self, key: str, cache_dir: Path) -> Path: ...
    def exists(self, key: str) -> bool: ...
    def delete_prefix(self, prefix: str) -> int: ...
    def url_for(self, key: str, expires: int = 3600) -> str: ...


class LocalStorage:
    """Keys are paths under `root`. Writes are atomic (temp file + rename)."""

    def __init__(self, root: Path) -> None:
        self.root = root.expanduser().resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    @staticmethod
    def _check_local_key(key: str) -> str:
        _check_key(key)
        if any(len(part.encode("utf-8")) > NAME_MAX for part in key.split("/")):
            raise InvalidInputError(f"storage key {_show(key)}: a file name is longer than {NAME_MAX} bytes")
        return key

    def _path(self, key: str) -> Path:
        path = (self.root / self._check_local_key(key)).resolve()
        if not path.is_relative_to(self.root):
            raise InvalidInputError(f"storage key {_show(key)} escapes the storage root")
        return path

    def _is_file(self, key: str) -> bool:
        path = self._path(key)
        try:
            return path.is_file()
        except OSError as exc:
            raise _os_error(exc, key, "check") from exc

    def uri(self, key: str) -> str:
        return self._path(key).as_uri()

    def resolve_key(self, uri: str) -> str:
        _check_text(uri, "URI")
        if uri.startswith("file://"):
            path = Path(_file_uri_path(uri))
        elif uri.startswith("/"):
            path = Path(uri)
        elif "://" in uri:
            raise InvalidInputError(
                f"unsupported URI scheme in {_show(uri)}: local storage takes file:// paths under its root"
            )
        else:
            path = self.root / uri
        path = path.resolve()
        if not path.is_relative_to(self.root):
            # The root is the server's business: the message names only what the caller sent.
            raise InvalidInputError(f"{_show(uri)} is outside the storage root")
        return self._check_local_key(path.relative_to(self.root).as_posix())

    def put_file(self, key: str, path: Path, content_type: str | None = None) -> str:
        dest = self._path(key)
        if Path(path).resolve() == dest:
            return self.uri(key)
        tmp: str | None = None
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".put-", dir=dest.parent)
            os.close(fd)
            shutil.copyfile(path, tmp)
            os.replace(tmp, dest)
        except OSError as exc:
            if tmp is not None:
                Path(tmp).unlink(missing_ok=True)
            # Our keys are checked names, so ENOENT here is the source or the disk: not a name error.
            raise _os_error(exc, key, "write", name_errors=exc.errno != errno.ENOENT) from exc
        return self.uri(key)

    def get_file(self, key: str, dest: Path) -> Path:
        src = self.local_path(key, dest.parent)
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dest)
        except OSError as exc:
            raise StorageError(f"cannot read {key}: {exc.strerror or type(exc).__name__}") from exc
        return dest

    def local_path(self, key: str, cache_dir: Path) -> Path:
        """A readable local file for `key`. Local storage needs no copy."""
        if not self._is_file(key):
            raise MissingArtifactError(f"missing artifact {key}")
        return self._path(key)

    def exists(self, key: str) -> bool:
        return self._is_file(key)

    def delete_prefix(self, prefix: str) -> int:
        target = self._path(prefix.rstrip("/"))
        if target.is_dir():
            count = sum(1 for p in target.rglob("*") if p.is_file())
            shutil.rmtree(target)
            return count
        if target.is_file():
            target.unlink()
            return 1
        return 0

    def url_for(self, key: str, expires: int = 3600) -> str:
        return self.uri(key)


def _file_uri_path(uri: str) -> str:
    """The path of a `file://` URI, percent-decoded (RFC 8089). Only this host: `file:///p` or
    `file://localhost/p`."""
    rest = uri[len("file://") :]
    if rest.startswith("localhost/"):
        rest = rest[len("localhost") :]
    if not rest.startswith("/"):
        raise InvalidInputError(f"{_show(uri)} names another host: file:// URIs must be file:///path")
    path = os.fsdecode(unquote_to_bytes(rest))
    try:
        return _check_text(path, "path")
    except InvalidInputError:  # name what the caller sent, not the decoded path
        raise InvalidInputError(f"{_show(uri)} decodes to a path that is not valid UTF-8 text") from None


class S3Storage:
    """Keys are objects in one bucket. `AWS_ENDPOINT_URL` (moto_server, LocalStack) is honoured."""

    def __init__(self, bucket: str, *, region: str = "us-east-1", endpoint_url: str | None = None) -> None:
        import boto3

        self.bucket = bucket
        self._client = boto3.client("s3", region_name=region, endpoint_url=endpoint_url or None)

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{_check_key(key)}"

    def resolve_key(self, uri: str) -> str:
        prefix = f"s3://{self.bucket}/"
        _check_text(uri, "URI")
        if not uri.startswith("s3://"):
            raise InvalidInputError(f"unsupported URI {_show(uri)}: expected s3://{self.bucket}/...")
        if not uri.startswith(prefix):
            raise InvalidInputError(f"{_show(uri)} is not in the bucket {self.bucket}")
        return _check_key(uri[len(prefix) :])

    def put_file(self, key: str, path: Path, content_type: str | None = None) -> str:
        from botocore.exceptions import BotoCoreError, ClientError

        extra = {"ContentType": content_type} if content_type else None
        try:
            self._client.upload_file(str(path), self.bucket, _check_key(key), ExtraArgs=extra)
        except ClientError as exc:
            raise StorageError(f"cannot upload {key}: S3 answered {_error_code(exc) or _http_status(exc)}") from exc
        except BotoCoreError as exc:  # the endpoint, not the key (its message names hosts: not shown)
            raise StorageError(f"cannot upload {key}: {type(exc).__name__}") from exc
        except OSError as exc:  # the local source file
            raise StorageError(f"cannot upload {key}: {exc.strerror or type(exc).__name__}") from exc
        return self.uri(key)

    def get_file(self, key: str, dest: Path) -> Path:
        from botocore.exceptions import BotoCoreError, ClientError

        _check_key(key)
        tmp = dest.with_name(f".{dest.name}.part")
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            self._client.download_file(self.bucket, key, str(tmp))
            os.replace(tmp, dest)
        except ClientError as exc:
            tmp.unlink(missing_ok=True)
            raise _client_error(exc, key, "download") from exc
        except BotoCoreError as exc:
            tmp.unlink(missing_ok=True)
            raise StorageError(f"cannot download {key}: {type(exc).__name__}") from exc
        except OSError as exc:  # the local side: a full disk, a read-only cache
            tmp.unlink(missing_ok=True)
            raise StorageError(f"cannot download {key}: {exc.strerror or type(exc).__name__}") from exc
        return dest

    def local_path(self, key: str, cache_dir: Path) -> Path:
        # S3 takes components longer than a local file name can be: those get a shortened cache name.
        dest = cache_dir.joinpath(*(fit_name(part) for part in _check_key(key).split("/")))
        if dest.is_file():
            return dest
        return self.get_file(key, dest)

    def exists(self, key: str) -> bool:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self._client.head_object(Bucket=self.bucket, Key=_check_key(key))
            return True
        except ClientError as exc:
            if _error_code(exc) in _MISSING_CODES:
                return False
            raise _client_error(exc, key, "check") from exc
        except BotoCoreError as exc:  # endpoint unreachable, timeouts: the storage, not the input
            raise StorageError(f"cannot check {key}: {type(exc).__name__}") from exc

    def delete_prefix(self, prefix: str) -> int:
        _check_key(prefix.rstrip("/"))
        count = 0
        paginator = self._client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            objs = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if objs:
                self._client.delete_objects(Bucket=self.bucket, Delete={"Objects": objs})
                count += len(objs)
        return count

    def url_for(self, key: str, expires: int = 3600) -> str:
        return str(
            self._client.generate_presigned_url(
                "get_object", Params={"Bucket": self.bucket, "Key": _check_key(key)}, ExpiresIn=expires
            )
        )


_MISSING_CODES = frozenset({"404", "NoSuchKey", "NotFound"})
_TRANSIENT_CODES = frozenset({"RequestTimeout", "SlowDown", "Throttling", "ThrottlingException"})
#: 4xx answers about our own credentials or clock, not about the key: the service is misconfigured.
_CREDENTIAL_CODES = frozenset(
    {"ExpiredToken", "InvalidAccessKeyId", "InvalidToken", "SignatureDoesNotMatch", "RequestTimeTooSkewed"}
)


def _error_code(exc: Exception) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def _http_status(exc: Exception) -> int:
    response = getattr(exc, "response", None) or {}
    return int(response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)


def _client_error(exc: Exception, key: str, action: str) -> PicaividError:
    """An S3 error answer as a typed error: missing, refused for this key (4xx: the input), or the
    service failing (5xx, throttling: transient)."""
    code, status = _error_code(exc), _http_status(exc)
    if code in _MISSING_CODES:
        return MissingArtifactError(f"missing artifact {key}")
    refused = 400 <= status < 500 and status not in (408, 429) and code not in _TRANSIENT_CODES
    if refused and code not in _CREDENTIAL_CODES:
        return RefusedKeyError(f"storage key {_show(key)}: S3 refused it ({code or status})")
    return StorageError(f"cannot {action} {key}: S3 answered {code or status}")


def get_storage(settings: Settings) -> Storage:
    if settings.S3_BUCKET:
        return S3Storage(settings.S3_BUCKET, region=settings.AWS_REGION, endpoint_url=settings.AWS_ENDPOINT_URL or None)
    return LocalStorage(settings.LOCAL_STORAGE_PATH)
