#!/usr/bin/env python3
"""Generate a synthetic listing: rendered room photos, a music track at a known tempo, ground truth.

    python scripts/make_sample_listing.py OUT_DIR [--width W] [--height H] [--music-seconds S]
                                          [--bpm B] [--seed N] [--rooms GROUP ...] [--workers N]

Writes OUT_DIR/photos/<room_label>/*.jpg, OUT_DIR/music.wav and OUT_DIR/ground_truth.json (see
app/samples.py). Nothing is downloaded and no real photo is used, so the output is free to ship.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

try:
    from app.samples import ROOM_GROUPS, make_sample_listing
except ModuleNotFoundError:  # a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from app.samples import ROOM_GROUPS, make_sample_listing


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Render a synthetic real-estate listing with ground truth.")
    parser.add_argument("out_dir", type=Path, help="folder to write photos/, music.wav and ground_truth.json")
    parser.add_argument("--width", type=int, default=1600, help="landscape photo width (default 1600)")
    parser.add_argument("--height", type=int, default=1067, help="landscape photo height (default 1067)")
    parser.add_argument("--music-seconds", type=float, default=40.0, help="track length (default 40)")
    parser.add_argument("--bpm", type=float, default=112.0, help="track tempo (default 112)")
    parser.add_argument("--seed", type=int, default=7, help="same seed, same listing (default 7)")
    parser.add_argument(
        "--rooms",
        nargs="+",
        choices=ROOM_GROUPS,
        metavar="GROUP",
        help=f"render only these room groups: {', '.join(ROOM_GROUPS)}",
    )
    parser.add_argument("--workers", type=int, default=None, help="worker processes (default: CPU count, at most 4)")
    parser.add_argument(
        "--depth", action="store_true", help="write each photo's true depth as NAME.depth.png (parallax clips)"
    )
    args = parser.parse_args(argv)

    started = time.monotonic()
    try:
        listing = make_sample_listing(
            args.out_dir,
            width=args.width,
            height=args.height,
            music_seconds=args.music_seconds,
            bpm=args.bpm,
            seed=args.seed,
            rooms=args.rooms,
            workers=args.workers,
            depth=args.depth,
        )
    except ValueError as exc:
        parser.error(str(exc))
    gt = listing.ground_truth
    music = gt["music"]
    print(
        f"wrote {len(gt['photos'])} photos of {len(gt['room_groups'])} rooms, {listing.music_path.name} "
        f"({music['bpm']:g} BPM, {music['duration']:g} s, first beat {music['first_beat']:g} s) and "
        f"{listing.ground_truth_path.name} to {listing.out_dir} in {time.monotonic() - started:.1f} s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
