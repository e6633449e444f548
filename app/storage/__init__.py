"""Binary storage: one interface over a local folder and S3.

Postgres holds every fact about a job; storage holds only bytes, under deterministic keys
(`keys.py`), so a redelivered message that re-writes an artifact overwrites the same object.

URIs stored in the database are `s3://bucket/key` or `file:///abs/root/key`. `resolve_key()` accepts
only those two forms, and only inside the configured bucket or root: no `http://` fetches (SSRF),
no `..` escapes.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Protocol

from app.config import Settings
from app.errors import InvalidInputError, StorageError

__all__ = ["LocalStorage", "S3Storage", "Storage", "get_storage"]


def _check_key(key: str) -> str:
    if not key or key.startswith("/") or "\\" in key:
        raise InvalidInputError(f"invalid storage key {key!r}")
    parts = key.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise InvalidInputError(f"invalid storage key {key!r}: empty or relative path segments")
    return key


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

    def _path(self, key: str) -> Path:
        path = (self.root / _check_key(key)).resolve()
        if not path.is_relative_to(self.root):
            raise InvalidInputError(f"storage key {key!r} escapes the storage root")
        return path

    def uri(self, key: str) -> str:
        return self._path(key).as_uri()

    def resolve_key(self, uri: str) -> str:
        if uri.startswith("file://"):
            path = Path(uri[len("file://") :])
        elif uri.startswith("/"):
            path = Path(uri)
        elif "://" in uri:
            raise InvalidInputError(
                f"unsupported URI scheme in {uri!r}: local storage takes file:// paths under its root"
            )
        else:
            path = self.root / uri
        path = path.resolve()
        if not path.is_relative_to(self.root):
            raise InvalidInputError(f"{uri!r} is outside the storage root {self.root}")
        return _check_key(path.relative_to(self.root).as_posix())

    def put_file(self, key: str, path: Path, content_type: str | None = None) -> str:
        dest = self._path(key)
        if Path(path).resolve() == dest:
            return self.uri(key)
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".put-", dir=dest.parent)
        os.close(fd)
        try:
            shutil.copyfile(path, tmp)
            os.replace(tmp, dest)
        except OSError as exc:
            Path(tmp).unlink(missing_ok=True)
            raise StorageError(f"cannot write {key}: {exc}") from exc
        return self.uri(key)

    def get_file(self, key: str, dest: Path) -> Path:
        src = self._path(key)
        if not src.is_file():
            raise StorageError(f"missing artifact {key}")
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dest)
        return dest

    def local_path(self, key: str, cache_dir: Path) -> Path:
        """A readable local file for `key`. Local storage needs no copy."""
        path = self._path(key)
        if not path.is_file():
            raise StorageError(f"missing artifact {key}")
        return path

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

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
        if not uri.startswith("s3://"):
            raise InvalidInputError(f"unsupported URI {uri!r}: expected s3://{self.bucket}/...")
        if not uri.startswith(prefix):
            raise InvalidInputError(f"{uri!r} is not in the bucket {self.bucket}")
        return _check_key(uri[len(prefix) :])

    def put_file(self, key: str, path: Path, content_type: str | None = None) -> str:
        from botocore.exceptions import BotoCoreError, ClientError

        extra = {"ContentType": content_type} if content_type else None
        try:
            self._client.upload_file(str(path), self.bucket, _check_key(key), ExtraArgs=extra)
        except (BotoCoreError, ClientError) as exc:
            raise StorageError(f"cannot upload {key}: {exc}") from exc
        return self.uri(key)

    def get_file(self, key: str, dest: Path) -> Path:
        from botocore.exceptions import BotoCoreError, ClientError

        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.part")
        try:
            self._client.download_file(self.bucket, _check_key(key), str(tmp))
        except ClientError as exc:
            tmp.unlink(missing_ok=True)
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("404", "NoSuchKey", "NotFound"):
                raise StorageError(f"missing artifact {key}") from exc
            raise StorageError(f"cannot download {key}: {exc}") from exc
        except BotoCoreError as exc:
            tmp.unlink(missing_ok=True)
            raise StorageError(f"cannot download {key}: {exc}") from exc
        os.replace(tmp, dest)
        return dest

    def local_path(self, key: str, cache_dir: Path) -> Path:
        dest = cache_dir / _check_key(key)
        if dest.is_file():
            return dest
        return self.get_file(key, dest)

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self._client.head_object(Bucket=self.bucket, Key=_check_key(key))
            return True
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise StorageError(f"cannot check {key}: {exc}") from exc

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


def get_storage(settings: Settings) -> Storage:
    if settings.S3_BUCKET:
        return S3Storage(settings.S3_BUCKET, region=settings.AWS_REGION, endpoint_url=settings.AWS_ENDPOINT_URL or None)
    return LocalStorage(settings.LOCAL_STORAGE_PATH)
