"""Names that become paths: every file name built from configuration or a partition key
(country codes, years, import and annotator names, table names) goes through here, so nothing is
ever written outside the data root -- not through ``../``, an absolute path or a separator."""

from __future__ import annotations

import os
import re
from pathlib import Path

#: Letters, digits, ``_``, ``-`` and ``.``; starts with a letter or digit; at most 128 characters.
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}")


class UnsafePathError(ValueError):
    """A name or path that would leave the folder it belongs in."""


def safe_name(value: object, what: str = "name") -> str:
    """``value`` as one path component, or :class:`UnsafePathError` naming ``what`` and why."""
    text = str(value)
    if not is_safe_name(text):
        raise UnsafePathError(
            f"{what} {text!r} cannot name a file: use letters, digits, '_', '-' and '.', "
            "starting with a letter or digit (no '/', no '..', no absolute path)"
        )
    return text


def is_safe_name(value: object) -> bool:
    """Whether ``value`` can be one path component (see :func:`safe_name`)."""
    text = str(value)
    return bool(SAFE_NAME.fullmatch(text)) and ".." not in text


def safe_join(root: str | os.PathLike[str], *parts: object, what: str = "name") -> Path:
    """``root / part / ...``, every part a :func:`safe_name`; the result lies inside ``root``."""
    path = Path(root).joinpath(*(safe_name(p, what) for p in parts))
    return inside(root, path, what=what)


def inside(root: str | os.PathLike[str], path: str | os.PathLike[str], what: str = "path") -> Path:
    """``path`` if it resolves (symlinks followed) to somewhere inside ``root``, else an error."""
    base = Path(root).resolve()
    target = Path(path)
    resolved = (target if target.is_absolute() else Path.cwd() / target).resolve()
    if resolved != base and not resolved.is_relative_to(base):
        raise UnsafePathError(f"{what} {str(path)!r} lies outside {str(root)!r}")
    return target
