"""A folder of ready-cut XYZ tiles as a country's imagery source (the shared NK sample's layout).

Layouts (auto-detected per year):

* ``<tiles>/<year>/<y>_<x>.png`` - the NK sample: file stem is the zoom-z tile *row_column*;
* ``<tiles>/<year>/<z>/<x>/<y>.png`` - the usual XYZ tile-server layout.

Every tile is georeferenced from its id alone (``core.grid``).  A file that cannot be decoded, is
not RGB-like, or carries no signal (over half of it no data: transparent, or near-black as a
JPEG tile writes it) is reported with the reason and never enters the image stack, so it is never
scored.  The same folder may hold Stage-1 inputs that a sample ships ready-made:
``clusters/<id>/*.png`` (images per cluster) and ``pretrain/images`` + ``pretrain/labels.csv``
(soft urban / rural / uninhabited labels).
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from siscore_assets.core.countries import CountryConfig, source_root
from siscore_assets.core.imagery.grid import Tile
from siscore_assets.core.imagery.patches import (
    MAX_NODATA_SHARE,
    STATUS_BLANK,
    STATUS_CORRUPT,
    STATUS_OK,
    tile_status,
    with_bounds,
)
from siscore_assets.core.imagery.tile_listing import (
    IMAGE_SUFFIXES,
    TileFile,
    TileListing,
    list_tiles,
)
from siscore_assets.core.storage.tile_store import iter_row_batches

#: A 0-byte file (an interrupted download), and a tile whose size is not the folder's (it would be
#: resampled into the store, inventing or losing detail): reported, never stored nor scored.
STATUS_EMPTY = "empty"
STATUS_WRONG_SIZE = "wrong_size"
_NUMERIC = re.compile(r"^\d+$")
#: Rows of the `granules` table written at a time (a year may list 400,000 files).
INVENTORY_BATCH = 65_536
#: A pixel whose three bands are all at or below this is no data written as black (a JPEG tile has
#: no alpha band, and compression lifts a black fill a few levels); real NK tiles have <= 0.4 %.
BLACK_LEVEL = 8


def tiles_dir(country: CountryConfig) -> Path:
    return source_root(country) / country.source.tiles


def tile_inventory(country: CountryConfig, year: int) -> tuple[TileListing, list[dict]]:
    """A tile folder's year: every tile file (a compact listing, tile order) and the misnamed
    files; no tile file at all is an error.  Its `granules` rows: :func:`inventory_batches`."""
    folder = tiles_dir(country) / str(year)
    files, problems = list_year_tiles(folder, country.zoom)
    if not len(files):
        raise FileNotFoundError(f"{country.code} {year}: no tile files in {folder}")
    return files, problems


def inventory_batches(
    files: TileListing, code: str, year: int, rows: int | None = None
) -> Iterator[pd.DataFrame]:
    """The `granules` rows of a listing (one a file, georeferenced from its id), ``rows``
    (default ``INVENTORY_BATCH``) at a time: the year's table is spooled, never one frame."""
    rows = rows or INVENTORY_BATCH
    for start in range(0, len(files), rows):
        part = files[start : start + rows]
        yield pd.DataFrame(
            {  # columns, not a dict per row
                "country": code,
                "year": year,
                "granule_id": part.stems(),
                "path": part.paths(),
                "tile_x0": part.x.astype(np.int64),
                "tile_y0": part.y.astype(np.int64),
                "tiles_x": 1,
                "tiles_y": 1,
            }
        )


def list_year_tiles(folder: Path, zoom: int) -> tuple[TileListing, list[dict]]:
    """Tile files of one year folder (a compact ``Sequence[TileFile]``, tile order), and a
    problem row for every file whose name is no tile id.

    Both layouts may be present; a tile id found twice is a problem (the second file is skipped).
    """
    return list_tiles(folder, zoom)


_MODES = ("RGB", "RGBA", "L", "P", "LA")


class _Refused(ValueError):
    """A file this module refuses, with its own message (naming the file)."""


class _OtherSide(Exception):
    """A square tile whose side (``side``) is not the one asked for: found on its header."""

    def __init__(self, side: int) -> None:
        super().__init__(side)
        self.side = side


def header_side(path: Path) -> int | None:
    """A square image file's side from its header (nothing decoded); None when the header does
    not read or the image is not square (then decoding says why)."""
    try:
        with Image.open(path) as im:
            w, h = im.size
    except Exception:  # noqa: BLE001 - any unreadable header: decoding reports it, naming it
        return None
    return int(w) if w == h and w >= 8 else None


#: Headers read (spread over the listing) to find a year's tile size.
SIZE_SAMPLE = 512


def folder_tile_px(files: Sequence[TileFile], sample: int = SIZE_SAMPLE) -> int | None:
    """The year's tile size: the most common square side among the headers of ``sample`` files
    spread over the listing (all of them when none of those reads), the smaller on a tie; None
    when no file has a square header.  One odd file (a 512 px tile, a header claiming 20,000 px)
    is then 'wrong_size', never the size the others are judged by."""
    if not len(files):
        return None
    picks = np.unique(np.linspace(0, len(files) - 1, min(sample, len(files))).astype(np.int64))
    sides = [s for s in (header_side(files[int(i)].path) for i in picks) if s is not None]
    if not sides and len(picks) < len(files):
        sides = [s for s in (header_side(f.path) for f in files) if s is not None]
    if not sides:
        return None
    values, counts = np.unique(sides, return_counts=True)
    return int(values[np.argmax(counts)])  # np.unique sorts: the smaller wins a tie


def read_tile(path: Path, side: int | None = None) -> tuple[np.ndarray, float, float]:
    """Decode an image file to (H, W, 3) uint8, with the shares of its pixels that are no data:
    transparent (alpha 0; none without alpha), and near-black (every band <= ``BLACK_LEVEL``)
    among the others; raises ValueError naming the file on failure.  With
    ``side``, a square tile of another side is found on its header, before anything is
    decoded (:class:`_OtherSide`).

    8-bit images only: a 16-bit PNG (Sentinel-2 digital numbers exported as they are) would be
    read by its high bytes, a near-black tile, so it is refused, as are modes that are not
    RGB-like.  Any decoder error (a truncated file, a header claiming 20,000 px) names the file.
    """
    try:
        with Image.open(path) as im:
            w, h = im.size
            if side is not None and w == h and w >= 8 and w != side:
                raise _OtherSide(int(w))
            if im.mode.startswith("I") or any(";16" in str(t.args) for t in im.tile):
                raise _Refused(
                    f"{path.name}: 16-bit image ({im.mode}); tiles are 8-bit RGB as rendered "
                    "(export them stretched to 0-255)"
                )
            if im.mode not in _MODES:
                raise _Refused(f"{path.name}: unsupported image mode {im.mode}")
            im.load()
            alpha = None
            if im.mode in ("RGBA", "LA") or (im.mode == "P" and "transparency" in im.info):
                alpha = np.asarray(im.convert("RGBA"))[..., 3]
            arr = np.asarray(im.convert("RGB"))
    except (_Refused, _OtherSide):
        raise
    except Exception as exc:  # noqa: BLE001 - Pillow raises many kinds; each names the file
        raise ValueError(f"{path.name}: cannot decode image ({exc})") from exc
    if arr.shape[0] != arr.shape[1] or arr.shape[0] < 8:
        raise ValueError(
            f"{path.name}: tile is {arr.shape[1]}x{arr.shape[0]} px, expected a square tile"
        )
    r, g, b = arr[..., 0], arr[..., 1], arr[..., 2]  # per band: a 3-wide reduction is slow
    black = np.maximum(np.maximum(r, g), b) <= BLACK_LEVEL
    if alpha is None:
        return arr, 0.0, float(black.mean())
    transparent = alpha == 0
    return arr, float(transparent.mean()), float((black & ~transparent).mean())


def read_rgb(path: Path) -> np.ndarray:
    """Decode an image file to (H, W, 3) uint8; raises ValueError naming the file on failure."""
    return read_tile(path)[0]


def decode_tile(
    f: TileFile,
    z: int,
    *,
    max_cloud: float,
    px: int | None = None,
    native_px: int | None = None,
) -> tuple[dict, np.ndarray | None]:
    """One tile file's index row and, when it is usable, its pixels (resampled to ``px``).

    A 0-byte file is 'empty', an unreadable one 'corrupt'; a tile whose size is not
    ``native_px`` (the folder's tile size: checked on the header, before decoding), or without
    it one smaller than ``px`` (it would be upscaled), is 'wrong_size'; a tile more than half of
    it no data (transparent or near-black), or a constant one, is 'blank', a white-out tile
    'cloudy' (checked at the file's own resolution, same rules as granule patches); only 'ok'
    tiles return pixels."""
    row = {
        "granule_id": f.stem,
        "z": z,
        "x": f.tile.x,
        "y": f.tile.y,
        "status": STATUS_OK,
        "problem": None,
        "image_row": -1,
        "source_path": f.file,
    }
    try:
        empty = os.path.getsize(f.file) == 0
    except OSError:
        empty = False  # vanished: read_rgb names the problem
    if empty:
        row.update(status=STATUS_EMPTY, problem=f"{f.path.name}: empty file (0 bytes)")
        return row, None
    try:  # one open: the side is checked on the header, before decoding
        img, transparent, black = read_tile(f.path, native_px)
        side = img.shape[0]
    except _OtherSide as other:
        side = other.side
    except ValueError as exc:
        row.update(status=STATUS_CORRUPT, problem=str(exc))
        return row, None
    wanted = native_px or (px if px and side < px else None)
    if wanted and side != wanted:
        row.update(
            status=STATUS_WRONG_SIZE,
            problem=f"{f.path.name}: tile is {side}x{side} px, the folder's tiles are "
            f"{wanted}x{wanted} px",
        )
        return row, None
    if transparent + black > MAX_NODATA_SHARE:
        shares = (("transparent", transparent), ("near-black", black))
        kinds = " and ".join(k for k, s in shares if s >= 0.005)  # those its 1 % figure shows
        row.update(
            status=STATUS_BLANK,
            problem=f"{f.path.name}: no data ({kinds}) over {transparent + black:.0%} of the tile",
        )
        return row, None
    status, problem = tile_status(img, max_cloud=max_cloud)
    row.update(status=status, problem=problem)
    if status != STATUS_OK:
        return row, None
    if px and img.shape[0] != px:
        img = np.asarray(Image.fromarray(img).resize((px, px), Image.Resampling.BOX))
    return row, img


def cut_tile_folder(
    files: Sequence[TileFile],
    z: int,
    *,
    max_cloud: float,
    tile_px: int | None = None,
    problems: list[dict] | None = None,
) -> tuple[pd.DataFrame, np.ndarray]:
    """The tile-folder equivalent of ``imagery.cut_patches``: (index frame, uint8 stack).

    Empty files are 'empty', unreadable ones 'corrupt', constant tiles and those more than half
    no data (transparent or near-black) 'blank', white-out tiles 'cloudy' (same rules as granule
    patches); only 'ok' tiles enter the stack.  A tile whose size is not the year's
    (:func:`folder_tile_px`) is 'wrong_size'; good tiles are resampled to ``tile_px`` when it is
    given, so one stack holds one size.
    ``problems`` (from :func:`list_year_tiles`) become 'corrupt' rows without a tile.
    """
    rows: list[dict] = []
    images: list[np.ndarray] = []
    native = folder_tile_px(files)
    for f in files:
        row, img = decode_tile(f, z, max_cloud=max_cloud, px=tile_px, native_px=native)
        if img is not None:
            row["image_row"] = len(images)
            images.append(img)
        rows.append(row)
    for p in problems or []:
        rows.append(
            {
                "granule_id": Path(p["path"]).stem,
                "z": z,
                "x": -1,
                "y": -1,
                "status": STATUS_CORRUPT,
                "problem": p["problem"],
                "image_row": -1,
                "source_path": p["path"],
            }
        )
    index = pd.DataFrame(
        rows, columns=["granule_id", "z", "x", "y", "status", "problem", "image_row", "source_path"]
    )
    good = index["x"] >= 0
    index["tile_id"] = None
    index.loc[good, "tile_id"] = [
        Tile(z, int(x), int(y)).tile_id for x, y in zip(index.loc[good, "x"], index.loc[good, "y"])
    ]
    index = with_bounds(index)
    stack = np.stack(images) if images else np.zeros((0, 1, 1, 3), np.uint8)
    return index, stack


def mosaic(index: pd.DataFrame, stack, px: int = 32, max_side: int = 2048) -> np.ndarray:
    """A north-up preview of a year's usable tiles (``px`` per tile, fewer when the extent would
    pass ``max_side`` pixels), grey where none; the store is read in batches."""

    ok = index[index["image_row"] >= 0]
    if ok.empty:
        return np.full((px, px, 3), 128, np.uint8)
    x0, y0 = int(ok["x"].min()), int(ok["y"].min())
    nx, ny = int(ok["x"].max()) - x0 + 1, int(ok["y"].max()) - y0 + 1
    px = max(1, min(px, max_side // max(nx, ny)))
    out = np.full((ny * px, nx * px, 3), 128, np.uint8)
    rows = ok["image_row"].to_numpy(np.int64)
    jj, ii = ok["y"].to_numpy(np.int64) - y0, ok["x"].to_numpy(np.int64) - x0
    pos = 0
    for _, batch in iter_row_batches(stack, 1024, rows):
        for img in batch:
            small = np.asarray(Image.fromarray(img).resize((px, px), Image.Resampling.BOX))
            j, i = jj[pos], ii[pos]
            out[j * px : (j + 1) * px, i * px : (i + 1) * px] = small
            pos += 1
    return out


# ---- Stage-1 inputs shipped with a sample ------------------------------------------------------


def _resize(img: np.ndarray, px: int | None) -> np.ndarray:
    if px is None or img.shape[0] == px:
        return img
    return np.asarray(Image.fromarray(img).resize((px, px), Image.Resampling.BOX))


def _natural_key(path: Path) -> tuple:
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path.stem))


def cluster_image_paths(folder: Path) -> dict[int, list[Path]]:
    """``<folder>/<cluster id>/*.png`` -> {cluster id: image paths}, ids ascending.

    Sub-folders whose name is not an integer are ignored.  Files are in natural name order
    (``2.png`` before ``10.png``), so a seeded sample or split of them is the same everywhere.
    """
    subs = sorted(
        (d for d in folder.iterdir() if d.is_dir() and _NUMERIC.match(d.name)),
        key=lambda d: int(d.name),
    )
    return {
        int(d.name): sorted(
            (p for p in d.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES), key=_natural_key
        )
        for d in subs
    }


def read_cluster_folder(
    folder: Path, *, px: int | None = None
) -> tuple[dict[int, np.ndarray], list[dict]]:
    """``<folder>/<cluster id>/*.png`` -> ({cluster id: (N, px, px, 3) uint8}, problem rows).

    Sub-folders whose name is not an integer are ignored; unreadable images are reported and
    skipped, and so, without ``px``, is an image of another size than the first one read.
    Images are read in file-name order (numeric stems numerically), so a seeded split of them is
    the same on every machine.
    """
    if not folder.is_dir():
        raise FileNotFoundError(f"cluster folder not found: {folder}")
    out: dict[int, np.ndarray] = {}
    problems: list[dict] = []
    size: tuple[int, ...] | None = None
    for cluster, files in cluster_image_paths(folder).items():
        imgs = []
        for p in files:
            try:
                img = _resize(read_rgb(p), px)
            except ValueError as exc:
                problems.append({"path": str(p), "problem": str(exc)})
                continue
            size = size or img.shape
            if img.shape != size:
                (h, w), (sh, sw) = img.shape[:2], size[:2]
                odd = f"{p.name} is {w}x{h} px, the cluster images are {sw}x{sh} px"
                problems.append({"path": str(p), "problem": odd})
                continue
            imgs.append(img)
        if imgs:
            out[cluster] = np.stack(imgs)
    if not out:
        raise FileNotFoundError(f"{folder}: no <cluster id>/*.png images")
    return out, problems


def read_pretrain_folder(
    folder: Path, *, px: int | None = None
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """``images/<id>.png`` + ``labels.csv`` -> images, (N, 3) soft labels, ids.

    ``labels.csv`` has the columns image_id,urban,rural,uninhabited.  A label row without its
    image, an unreadable image, a bad number (not finite, negative, all zero) or an image labelled
    twice is an error naming the file and line: the labels are the only supervision, so nothing is
    silently dropped.  Without ``px`` every image must have the first one's size (the first that
    differs is the error).
    """
    labels_path = folder / "labels.csv"
    if not labels_path.is_file():
        raise FileNotFoundError(f"pretraining labels not found: {labels_path}")
    images, labels, ids = [], [], []
    seen: dict[str, int] = {}
    with labels_path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        need = {"image_id", "urban", "rural", "uninhabited"}
        if not need <= set(reader.fieldnames or []):
            raise ValueError(f"{labels_path}:1: expected columns {', '.join(sorted(need))}")
        for line, row in enumerate(reader, start=2):
            try:
                lab = [float(row["urban"]), float(row["rural"]), float(row["uninhabited"])]
            except (TypeError, ValueError) as exc:
                raise ValueError(f"{labels_path}:{line}: bad label value ({exc})") from exc
            if not np.isfinite(lab).all():
                raise ValueError(f"{labels_path}:{line}: labels must be finite shares, got {lab}")
            if min(lab) < 0 or sum(lab) <= 0:
                raise ValueError(f"{labels_path}:{line}: labels must be non-negative shares")
            image_id = str(row["image_id"])
            if image_id in seen:
                raise ValueError(
                    f"{labels_path}:{line}: image {image_id} already labelled on line "
                    f"{seen[image_id]}"
                )
            seen[image_id] = line
            img_path = folder / "images" / f"{row['image_id']}.png"
            if not img_path.is_file():
                raise FileNotFoundError(f"{labels_path}:{line}: image {img_path} not found")
            try:
                img = _resize(read_rgb(img_path), px)
            except ValueError as exc:
                raise ValueError(f"{labels_path}:{line}: {exc}") from exc
            if images and img.shape != images[0].shape:
                (h, w), s = img.shape[:2], images[0].shape[0]
                raise ValueError(
                    f"{labels_path}:{line}: {img_path.name} is {w}x{h} px, earlier images are "
                    f"{s}x{s} px"
                )
            images.append(img)
            labels.append(lab)
            ids.append(image_id)
    if not images:
        raise ValueError(f"{labels_path}: no labelled images")
    lab = np.asarray(labels, dtype=np.float32)
    return np.stack(images), lab / lab.sum(axis=1, keepdims=True), ids
