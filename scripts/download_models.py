#!/usr/bin/env python
"""Fill MODEL_CACHE_DIR with the checkpoints the settings name, in the layout `app/models` loads.

    python scripts/download_models.py                      # OPENCLIP_MODEL, DEPTH_MODEL, MIDAS_MODEL from the hub
    python scripts/download_models.py --only clip,depth    # a subset (clip, depth, midas, ltx2)
    python scripts/download_models.py --tiny-random DIR    # tiny random models, no network (tests, demos)

Real checkpoints need hub access (never at run time: the service loads offline only). Each is pinned to
the commit the hub resolves and recorded in its folder's picaivid-model.json with its licence and the
sha256 of every file. Checkpoints not cleared for commercial use are refused unless --allow-noncommercial.
LTX-2 weights are handled by `app.models.ltx2` (its `save_tiny_random(dir)` for --tiny-random, its
`download(dir)` for real weights, if it grows one), with dir = MODEL_CACHE_DIR/ltx2/LTX-2.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

KINDS = ("clip", "depth", "midas", "ltx2")


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache-dir", type=Path, help="default: MODEL_CACHE_DIR")
    parser.add_argument("--only", default=",".join(KINDS), help="comma list of: " + ", ".join(KINDS))
    parser.add_argument("--tiny-random", type=Path, metavar="DIR", help="write tiny random models to DIR")
    parser.add_argument("--allow-noncommercial", action="store_true", help="fetch non-commercial checkpoints too")
    args = parser.parse_args(argv)
    args.kinds = tuple(k.strip() for k in args.only.split(",") if k.strip())
    unknown = set(args.kinds) - set(KINDS)
    if unknown:
        parser.error(f"unknown kind(s) {', '.join(sorted(unknown))}; use {', '.join(KINDS)}")
    return args


def tiny_random(directory: Path, kinds: tuple[str, ...]) -> dict[str, str]:
    from app.models.tiny import save_tiny_random

    return {kind: str(path) for kind, path in save_tiny_random(directory, kinds=kinds).items()}


def _download_ltx2(cache_dir: Path) -> str:
    if importlib.util.find_spec("app.models.ltx2") is None:
        return "skipped: app.models.ltx2 is not installed"
    module = importlib.import_module("app.models.ltx2")
    if not hasattr(module, "download"):
        return "skipped: app.models.ltx2 has no download(dir)"
    subdir = Path(getattr(module, "DEFAULT_SUBDIR", Path("ltx2") / "LTX-2"))
    return str(module.download(cache_dir / subdir))


def download(cache_dir: Path, kinds: tuple[str, ...], allow_noncommercial: bool) -> tuple[dict[str, str], int]:
    """(what happened per kind, exit status): each kind is tried even when another fails."""
    from app.config import get_settings
    from app.models.fetch import DownloadError, download_model

    settings = get_settings()
    wanted = {"clip": ("clip", settings.OPENCLIP_MODEL), "depth": ("depth", settings.DEPTH_MODEL)}
    wanted["midas"] = ("depth", settings.MIDAS_MODEL)
    results: dict[str, str] = {}
    status = 0
    for kind in kinds:
        if kind == "ltx2":
            results[kind] = _download_ltx2(cache_dir)
            continue
        model_kind, name = wanted[kind]
        if not name:
            results[kind] = "skipped: not configured"
            continue
        try:
            manifest = download_model(model_kind, name, cache_dir, allow_noncommercial=allow_noncommercial)  # type: ignore[arg-type]
            results[kind] = f"ok: {manifest.source} ({manifest.licence}, {len(manifest.files)} files)"
        except DownloadError as exc:
            results[kind] = f"error: {exc}"
            status = 2
    return results, status


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    if args.tiny_random:
        print(json.dumps(tiny_random(args.tiny_random, args.kinds), indent=2))
        return 0
    from app.config import get_settings

    cache_dir = args.cache_dir or Path(get_settings().MODEL_CACHE_DIR)
    results, status = download(cache_dir, args.kinds, args.allow_noncommercial)
    print(json.dumps(results, indent=2))
    return status


if __name__ == "__main__":
    sys.exit(main())
