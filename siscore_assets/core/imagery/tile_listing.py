"""A year folder's tile files as a compact listing: a few numpy arrays, not an object per file.

A country-year may list 400,000 files.  As Python objects (a ``Tile``, a ``TileFile`` and a path
string each, plus the walk's tuples) that was ~500 bytes a file, 200 MB at 400,000 files, held
by the `granules` and `patches` stages and copied again into every Dask task that carried its
block's files.  :class:`TileListing` keeps each file as its path relative to the folder (bytes,
parts joined by NUL) and its tile's x and y: ~40 bytes a file.  It is a ``Sequence[TileFile]``
(a ``TileFile`` is made when an item is read), a slice or :meth:`TileListing.take` of it is a
listing again, and a block's listing pickles as three small arrays.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import overload

import numpy as np

from siscore_assets.core.imagery.grid import Tile, parse_tile_id

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
_NUMERIC = re.compile(r"^\d+$")
_SEP = b"\0"  # joins a file's relative parts: the bytes then sort as the parts' tuple does
_CHUNK = 65_536  # names gathered as Python bytes before they are packed into an array


@dataclass(frozen=True, slots=True)
class TileFile:
    """A tile file and its grid tile; the path is kept as text (``Path`` costs more)."""

    tile: Tile
    file: str

    @property
    def path(self) -> Path:
        return Path(self.file)

    @property
    def stem(self) -> str:
        """The file name without its suffix (the `granule_id` a tile file is listed under)."""
        name = os.path.basename(self.file)
        return os.path.splitext(name)[0]


@dataclass(frozen=True, eq=False)
class TileListing(Sequence[TileFile]):
    """Tile files under ``folder``: relative paths (bytes, parts joined by NUL), x and y of
    each file's zoom-``z`` tile, in one order (tile order from :func:`list_tiles`)."""

    folder: str
    z: int
    rel: np.ndarray  # 'S' bytes
    x: np.ndarray  # int64
    y: np.ndarray  # int64

    def __len__(self) -> int:
        return len(self.rel)

    @overload
    def __getitem__(self, i: int) -> TileFile: ...

    @overload
    def __getitem__(self, i: slice) -> TileListing: ...

    def __getitem__(self, i):
        if isinstance(i, slice):
            return self.take(np.arange(len(self))[i])
        return TileFile(Tile(self.z, int(self.x[i]), int(self.y[i])), self.path_of(int(i)))

    def __iter__(self) -> Iterator[TileFile]:
        for i in range(len(self)):
            yield self[i]

    def path_of(self, i: int) -> str:
        """The file's path text, as ``os.scandir`` gave it."""
        parts = os.fsdecode(self.rel[i]).split("\0")
        return os.path.join(self.folder, *parts) if self.folder else os.sep.join(parts)

    def take(self, indices: np.ndarray) -> TileListing:
        """The files at ``indices``, in that order (arrays copied: a block's listing does not
        keep the year's alive)."""
        idx = np.asarray(indices, dtype=np.int64)
        return TileListing(self.folder, self.z, self.rel[idx], self.x[idx], self.y[idx])

    def stems(self) -> list[str]:
        """Every file's name without its suffix (the `granule_id`), in order."""
        return [os.path.splitext(os.fsdecode(r.rsplit(_SEP, 1)[-1]))[0] for r in self.rel.tolist()]

    def paths(self) -> list[str]:
        """Every file's path text, in order."""
        return [self.path_of(i) for i in range(len(self))]

    @classmethod
    def of(cls, files: Sequence[TileFile], folder: str = "") -> TileListing:
        """A listing of ``TileFile`` objects of one zoom (paths kept whole when ``folder`` is
        '')."""
        zs = {f.tile.z for f in files}
        if len(zs) > 1:
            raise ValueError(f"tile files of several zooms: {sorted(zs)}")
        rel = [
            os.fsencode(os.path.relpath(f.file, folder) if folder else f.file).replace(
                os.sep.encode(), _SEP
            )
            for f in files
        ]
        return cls(
            folder,
            zs.pop() if zs else 0,
            np.array(rel, dtype="S") if rel else np.zeros(0, "S1"),
            np.array([f.tile.x for f in files], dtype=np.int64),
            np.array([f.tile.y for f in files], dtype=np.int64),
        )


def list_tiles(folder: Path, zoom: int) -> tuple[TileListing, list[dict]]:
    """Tile files of one year folder (in tile order), and a problem row for every file whose
    name is no tile id, in the order of the files' sorted paths.

    Both layouts may be present; a tile id found twice is a problem (the later file in path
    order is skipped)."""
    if not folder.is_dir():
        raise FileNotFoundError(f"no tile folder for this year: {folder}")
    rel = _walk(str(folder))
    order = np.argsort(rel, kind="stable")  # bytes order = the parts' tuple order
    xs = np.full(len(rel), -1, np.int64)
    ys = np.full(len(rel), -1, np.int64)
    problems: list[tuple[int, dict]] = []
    for pos, i in enumerate(order.tolist()):
        parts = os.fsdecode(rel[i]).split("\0")
        name = parts[-1]
        suffix = os.path.splitext(name)[1]
        stem_parts = (*parts[:-1], name[: len(name) - len(suffix)] if suffix else name)
        try:
            if len(stem_parts) == 1:
                tile = parse_tile_id(stem_parts[0], zoom)
            elif len(stem_parts) == 3 and all(_NUMERIC.match(p) for p in stem_parts):
                tile = parse_tile_id("/".join(stem_parts), zoom)
            else:
                raise ValueError(
                    f"expected <y>_<x>.png or <z>/<x>/<y>.png, got {'/'.join(stem_parts)}"
                )
            if tile.z != zoom:
                raise ValueError(f"tile zoom {tile.z} but the country's grid is zoom {zoom}")
        except ValueError as exc:
            problems.append((pos, {"path": _path(folder, parts), "problem": f"{name}: {exc}"}))
            continue
        xs[i], ys[i] = tile.x, tile.y
    good = order[xs[order] >= 0]  # parsed files, in path order
    # the first file of each tile in path order is kept; later ones are duplicates
    by_tile = good[np.lexsort((np.arange(len(good)), ys[good], xs[good]))]
    first = np.ones(len(by_tile), bool)
    first[1:] = (xs[by_tile][1:] != xs[by_tile][:-1]) | (ys[by_tile][1:] != ys[by_tile][:-1])
    kept_at = np.maximum.accumulate(np.where(first, np.arange(len(by_tile)), 0))
    rank = np.empty(len(rel), np.int64)
    rank[order] = np.arange(len(order))
    for j in np.flatnonzero(~first).tolist():
        dup, kept = int(by_tile[j]), int(by_tile[kept_at[j]])
        parts = os.fsdecode(rel[dup]).split("\0")
        kept_name = os.fsdecode(rel[kept]).split("\0")[-1]
        tid = f"{zoom}/{xs[dup]}/{ys[dup]}"
        problems.append(
            (
                int(rank[dup]),
                {
                    "path": _path(folder, parts),
                    "problem": f"{parts[-1]}: tile {tid} already read from {kept_name}",
                },
            )
        )
    keep = by_tile[first]  # already in tile order: x, then y (z is the folder's zoom)
    problems.sort(key=lambda p: p[0])
    listing = TileListing(str(folder), zoom, rel[keep], xs[keep], ys[keep])
    return listing, [p for _, p in problems]


def _path(folder: Path, parts: list[str]) -> str:
    return os.path.join(str(folder), *parts)


def _walk(folder: str) -> np.ndarray:
    """Relative paths (parts joined by NUL, bytes) of the image files under ``folder`` not named
    ``.*``; os.scandir, symlinks followed as ``Path.is_file`` does; packed in chunks so a
    400,000-file year is never 400,000 Python objects at once."""
    packed: list[np.ndarray] = []
    chunk: list[bytes] = []
    todo: list[tuple[str, bytes]] = [(folder, b"")]
    while todo:
        here, prefix = todo.pop()
        with os.scandir(here) as entries:
            for e in entries:
                if e.is_dir():
                    todo.append((e.path, prefix + os.fsencode(e.name) + _SEP))
                elif (
                    e.is_file()
                    and not e.name.startswith(".")
                    and os.path.splitext(e.name)[1].lower() in IMAGE_SUFFIXES
                ):
                    chunk.append(prefix + os.fsencode(e.name))
                    if len(chunk) >= _CHUNK:
                        packed.append(np.array(chunk, dtype="S"))
                        chunk = []
    if chunk:
        packed.append(np.array(chunk, dtype="S"))
    return np.concatenate(packed) if packed else np.zeros(0, "S1")
