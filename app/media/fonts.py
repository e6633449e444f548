"""Fonts for burned-in text: open-licensed TrueType files that the environment installs, never fetched.

Two families, each from a pinned PyPI package that ships its TTFs inside the wheel:

* ``"roboto"``: `font-roboto==0.0.1` (Apache-2.0), files under ``font_roboto/files/``;
* ``"source-sans-pro"``: `font-source-sans-pro==0.0.1` (SIL OFL 1.1), files under
  ``font_source_sans_pro/files/``.

The packages are located with `importlib.util.find_spec` and not imported (their ``__init__`` globs the
folder and sets module globals; only the files are needed). A missing package or file raises
`FontUnavailableError`: a deliverable never falls back to PIL's bitmap default font, whose 11-px glyphs
would ship as an unreadable smudge, and nothing is downloaded.

`load_font` caches one `FreeTypeFont` per (family, weight, size): opening Roboto-Bold costs ~0.3 ms and
the overlay renderer asks for the same few sizes again for every layer and every deliverable.
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

from PIL import ImageFont

__all__ = ["FAMILIES", "FontUnavailableError", "font_path", "load_font", "weights"]


class FontUnavailableError(RuntimeError):
    """A font package or one of its files is missing (an environment problem, not a user error)."""


#: family -> (package, {weight: file name}). Weights are the CSS names; a family offers only the weights its
#: package ships (Roboto has no semibold, Source Sans Pro no medium): asking for another one is an error
#: rather than a silent substitution, so that a template states exactly what it renders with.
_FAMILIES: dict[str, tuple[str, dict[str, str]]] = {
    "roboto": (
        "font_roboto",
        {
            "thin": "Roboto-Thin.ttf",
            "light": "Roboto-Light.ttf",
            "regular": "Roboto-Regular.ttf",
            "medium": "Roboto-Medium.ttf",
            "bold": "Roboto-Bold.ttf",
            "black": "Roboto-Black.ttf",
        },
    ),
    "source-sans-pro": (
        "font_source_sans_pro",
        {
            "extralight": "SourceSansPro-ExtraLight.ttf",
            "light": "SourceSansPro-Light.ttf",
            "regular": "SourceSansPro-Regular.ttf",
            "semibold": "SourceSansPro-Semibold.ttf",
            "bold": "SourceSansPro-Bold.ttf",
            "black": "SourceSansPro-Black.ttf",
        },
    ),
}
FAMILIES: tuple[str, ...] = tuple(_FAMILIES)


def weights(family: str) -> tuple[str, ...]:
    """The weights `family` offers, lightest first."""
    return tuple(_family(family)[1])


def _family(family: str) -> tuple[str, dict[str, str]]:
    try:
        return _FAMILIES[family]
    except KeyError:
        raise ValueError(f"unknown font family {family!r}; known: {', '.join(FAMILIES)}") from None


@lru_cache(maxsize=8)
def _package_dir(package: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise FontUnavailableError(
            f"font package {package.replace('_', '-')} is not installed (it is a pinned requirement; "
            "install the project's requirements, fonts are never downloaded at run time)"
        )
    return Path(spec.origin).parent / "files"


def font_path(family: str, weight: str = "regular") -> Path:
    """The TTF file of `family` at `weight` ("regular", "bold", ...; see `weights`).

    Raises ValueError for a family or weight that does not exist, `FontUnavailableError` when its package
    or file is not installed."""
    package, files = _family(family)
    if weight not in files:
        raise ValueError(f"font family {family!r} has no weight {weight!r}; known: {', '.join(files)}")
    path = _package_dir(package) / files[weight]
    if not path.is_file():
        raise FontUnavailableError(f"font file {path} is missing (package {package.replace('_', '-')} is broken)")
    return path


@lru_cache(maxsize=256)
def load_font(family: str, weight: str, size: int) -> ImageFont.FreeTypeFont:
    """`family` at `weight` and `size` pixels (em size), opened once per process and shared.

    FreeType fonts are read-only once loaded, so one instance serves every layer and every thread that
    only measures and draws with it."""
    if size < 1:
        raise ValueError(f"font size must be >= 1 px (got {size})")
    path = font_path(family, weight)
    try:
        return ImageFont.truetype(str(path), size=int(size))
    except OSError as exc:
        raise FontUnavailableError(f"cannot open font file {path}: {exc}") from exc
