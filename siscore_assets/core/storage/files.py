"""Atomic file writes: a failed run never leaves a half-written file where a good one was."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temp sibling of ``path`` (hidden, unique to this writer, keeping the suffix a
    writer may choose its format by); on success it replaces ``path``, else it is removed."""
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.stem}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp{final.suffix}")
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


class StagedFiles:
    """Files written now to hidden siblings and renamed into place together later (``commit``),
    so a step that writes several files and tables can compute everything first and replace
    nothing until it all exists; staged files not committed are removed on leaving."""

    def __init__(self) -> None:
        self.staged: list[tuple[Path, Path]] = []

    def stage(self, path: str | os.PathLike[str], write: Callable[[Path], object]) -> Path:
        """``write(tmp)`` to a hidden sibling of ``path`` now; returns ``path``."""
        final = Path(path)
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.with_name(f".{final.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.staged")
        self.staged.append((tmp, final))
        write(tmp)
        return final

    def commit(self) -> None:
        """Rename every staged file onto its path, in the order staged."""
        while self.staged:
            tmp, final = self.staged[0]
            os.replace(tmp, final)
            self.staged.pop(0)

    def __enter__(self) -> StagedFiles:
        return self

    def __exit__(self, *exc: object) -> None:
        for tmp, _ in self.staged:
            tmp.unlink(missing_ok=True)
        self.staged.clear()
