"""Atomic file writes: a failed run never leaves a half-written file where a good one was."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temp sibling of ``path``; on success it replaces ``path``, else it is removed."""
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.stem}.tmp{final.suffix}")
    try:
        yield tmp
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)


def write_unique(path: Path, write) -> None:
    """``write(tmp)`` to a temporary sibling unique to this writer, then rename onto ``path``
    (removed on failure): readers see the old file or the whole new one, never a part, and two
    processes writing the same file each write a whole one (``atomic_path`` shares one name).
    ``storage.tables.sweep_tmp`` removes what a killed writer left."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
