"""The on-disk layout of `MODEL_CACHE_DIR` and the manifest that makes a model folder trustworthy.

::

    MODEL_CACHE_DIR/
      clip/<folder>/     save_pretrained folder: config.json, model.safetensors, tokenizer + preprocessor files
      depth/<folder>/    save_pretrained folder: config.json, model.safetensors, preprocessor_config.json
      <kind>/<folder>/picaivid-model.json

The manifest (``picaivid-model.json``) is written last, after every other file is in place, and a folder is
moved into place only when complete (temp folder + rename), so a folder without a valid manifest is a
partial or foreign download and is never loaded.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from app.models.catalog import Kind, folder_name

MANIFEST_NAME = "picaivid-model.json"
MANIFEST_FORMAT = 1


class ManifestError(ValueError):
    """A model folder whose manifest is missing, unreadable or does not match the files."""


@dataclass(frozen=True)
class Manifest:
    name: str
    kind: str
    architecture: str
    source_repo: str
    revision: str
    licence: str
    files: dict[str, str] = field(default_factory=dict)  # relative path -> sha256 hex
    tiny_random: bool = False
    created: str = ""
    format: int = MANIFEST_FORMAT

    @property
    def source(self) -> str:
        """ "<kind>:<repo>@<revision>", recorded with every result the model produces."""
        return f"{self.kind}:{self.source_repo}@{self.revision}"

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"


def model_dir(cache_dir: Path, kind: Kind, name: str) -> Path:
    return Path(cache_dir) / kind / folder_name(kind, name)


def sha256_file(path: Path, chunk: int = 4 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def hash_folder(folder: Path) -> dict[str, str]:
    """sha256 of every file under `folder` except the manifest, by POSIX relative path."""
    return {
        p.relative_to(folder).as_posix(): sha256_file(p)
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != MANIFEST_NAME
    }


def write_manifest(folder: Path, **fields: Any) -> Manifest:
    """Hash the folder's files and write its manifest (last)."""
    fields.setdefault("created", datetime.now(UTC).isoformat(timespec="seconds"))
    manifest = Manifest(files=hash_folder(folder), **fields)
    tmp = folder / (MANIFEST_NAME + ".tmp")
    tmp.write_text(manifest.to_json())
    os.replace(tmp, folder / MANIFEST_NAME)
    return manifest


def read_manifest(folder: Path) -> Manifest:
    path = folder / MANIFEST_NAME
    if not path.is_file():
        raise ManifestError(f"no {MANIFEST_NAME} in {folder} (partial or foreign download)")
    try:
        data = json.loads(path.read_text())
        if data.get("format") != MANIFEST_FORMAT:
            raise ManifestError(f"{path}: unsupported manifest format {data.get('format')!r}")
        return Manifest(**data)
    except (ValueError, TypeError) as exc:
        if isinstance(exc, ManifestError):
            raise
        raise ManifestError(f"{path}: unreadable manifest ({type(exc).__name__}: {exc})") from None


def verify_files(folder: Path, manifest: Manifest) -> None:
    """Raise ManifestError unless every file the manifest lists exists with its recorded sha256."""
    if not manifest.files:
        raise ManifestError(f"{folder}: the manifest lists no files")
    for rel, expected in manifest.files.items():
        path = folder / rel
        if not path.is_file():
            raise ManifestError(f"{folder}: {rel} is missing")
        if sha256_file(path) != expected:
            raise ManifestError(f"{folder}: {rel} does not match its sha256 (corrupt or partial file)")


@contextmanager
def staging_folder(final: Path) -> Iterator[Path]:
    """A temporary folder next to `final`, moved onto `final` (replacing it) when the block succeeds."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    try:
        yield tmp
        if final.exists():
            old = final.with_name(f".{final.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
