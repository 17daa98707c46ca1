"""A country-year's per-tile tables (`habitation`, `cluster_members`, `siscore_grid`) joined and
written without the year's index in memory.

Year-wide, a stage holds per-tile numbers only: the usable patches' image rows and 64-bit tile
keys (z, x, y packed), and the flags or scores it computed, in store order.  The joins run on
the keys in numpy; tile ids reach Python one batch of :data:`TILE_BATCH_ROWS` rows at a time,
straight into a warehouse spool.  Pandas frames of tile-id strings held ~300 bytes a tile and
grew a stage's peak with the country (issue 26: +19 % from 10,000 to 400,000 tiles).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import pandas as pd

from siscore_assets.core.imagery.patches import STATUS_OK
from siscore_assets.core.storage import warehouse as warehouse_lib

from .resources import Warehouse

#: A tile's 64-bit key, z, x and y packed (zoom <= 29).
TILE_KEY = "((z::BIGINT << 58) | (x::BIGINT << 29) | y::BIGINT)"
MAX_KEY_ZOOM = 29
USABLE = "country = $code AND year = $year AND status = $ok"
#: The usable patches of a country-year, unsorted (sorted by image row in numpy).
STORE_ORDER_SQL = f"SELECT image_row, {TILE_KEY} AS k, z FROM patches WHERE {USABLE}"
#: One batch of a per-tile table's rows: the patches' own tile ids and z / x / y, by image row.
BATCH_SQL = f"""
SELECT tile_id, z, x, y, {TILE_KEY} AS k FROM patches
WHERE {USABLE} AND image_row BETWEEN $lo AND $hi ORDER BY image_row
"""
#: A year's habitation rows by tile key (NULL verdicts kept apart), with ``{urban}``.
HABITATION_SQL = f"""
SELECT {TILE_KEY} AS k, coalesce(inhabited, FALSE) AS inhabited, inhabited IS NULL AS unknown,
       {{urban}} AS urban
FROM habitation WHERE country = $code AND year = $year
"""
TILE_BATCH_ROWS = 16_384


def store_order(conn, code: str, year: int) -> tuple[np.ndarray, np.ndarray]:
    """The usable patches' image rows and tile keys in store order (row ``r`` of the year's tile
    store is element ``r``)."""
    got = conn.execute(
        STORE_ORDER_SQL, {"code": code, "year": int(year), "ok": STATUS_OK}
    ).fetchnumpy()
    z = np.asarray(got["z"])
    if len(z) and int(z.max()) > MAX_KEY_ZOOM:
        raise ValueError(f"{code}|{year}: `patches` zoom {int(z.max())} above {MAX_KEY_ZOOM}")
    rows = np.asarray(got["image_row"], dtype=np.int64)
    order = np.argsort(rows, kind="stable")
    return rows[order], np.asarray(got["k"], dtype=np.int64)[order]


def year_order(warehouse: Warehouse, code: str, year: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`store_order` read from the warehouse: taken before a stage computes its values, so
    the rows it writes are checked against the tiles it read (``patches`` re-materialised in
    between is an error, not values on other tiles)."""
    with warehouse_lib.reader(warehouse.database, ["patches"]) as conn:
        return store_order(conn, code, year)


def matches(keys: np.ndarray, wanted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where each of ``wanted`` sits in ``keys`` (unique): (positions in ``wanted`` found,
    their rows in ``keys``); an inner join on 8-byte keys, in ``wanted``'s order."""
    order = np.argsort(keys, kind="stable")
    ordered = keys[order]
    pos = np.minimum(np.searchsorted(ordered, wanted), max(len(keys) - 1, 0))
    hit = ordered[pos] == wanted if len(keys) else np.zeros(len(wanted), bool)
    return np.flatnonzero(hit), order[pos[hit]]


def require_habitation(warehouse: Warehouse, code: str, year: int) -> None:
    """A clear error when the country-year's `habitation` rows were not materialised."""
    n = warehouse.read("habitation", {"country": code, "year": year}, columns="count(*) AS n")
    if n.empty or not int(n["n"].iloc[0]):
        raise FileNotFoundError(f"no habitation for {code}|{year}: materialise 'habitation' first")


def habitation_rows(
    conn, code: str, year: int, urban: bool = True, unique: bool = True
) -> dict[str, np.ndarray]:
    """A year's `habitation` rows as arrays: ``k`` (tile key), ``inhabited``, ``unknown`` (NULL
    verdict) and ``urban`` (all False unless asked for); with ``unique``, a tile that appears
    twice is refused."""
    sql = HABITATION_SQL.format(urban="coalesce(urban, FALSE)" if urban else "FALSE")
    got = conn.execute(sql, {"code": code, "year": int(year)}).fetchnumpy()
    out = {
        "k": np.asarray(got["k"], dtype=np.int64),
        **{c: np.asarray(got[c], dtype=bool) for c in ("inhabited", "unknown", "urban")},
    }
    if unique and len(np.unique(out["k"])) != len(out["k"]):
        raise ValueError(
            f"{code}|{year}: `habitation` holds a tile twice: re-materialise 'habitation'"
        )
    return out


def year_flags(
    conn, code: str, year: int, keys: np.ndarray, urban: bool = True, unique: bool = True
) -> dict[str, np.ndarray]:
    """Per store row (``keys``): whether the year's `habitation` has a row for the tile
    (``has_row``), and its ``inhabited`` / ``urban`` / ``unknown`` flags (False, False, True where
    it has none)."""
    got, n = habitation_rows(conn, code, year, urban, unique), len(keys)
    out = {"has_row": np.zeros(n, bool), "inhabited": np.zeros(n, bool)}
    out.update(urban=np.zeros(n, bool), unknown=np.ones(n, bool))
    found, rows = matches(keys, got["k"])
    out["has_row"][rows] = True
    for c in ("inhabited", "urban", "unknown"):
        out[c][rows] = got[c][found]
    return out


def tile_batches(
    conn, code: str, year: int, image_rows: np.ndarray, keys: np.ndarray, what: str
) -> Iterator[tuple[slice, pd.DataFrame]]:
    """(store rows, frame) per batch of :data:`TILE_BATCH_ROWS` usable tiles in store order; the
    frame holds ``country, year, tile_id, z, x, y``.  ``patches`` changing under the stage (its
    keys no longer those ``keys`` were read as) is an error naming ``what`` to re-run."""
    params = {"code": code, "year": int(year), "ok": STATUS_OK}
    for lo in range(0, max(len(keys), 1), TILE_BATCH_ROWS):
        hi = min(lo + TILE_BATCH_ROWS, len(keys))
        bounds = (int(image_rows[lo]), int(image_rows[hi - 1])) if hi > lo else (0, -1)
        batch = conn.execute(BATCH_SQL, {**params, "lo": bounds[0], "hi": bounds[1]}).df()
        if not np.array_equal(batch.pop("k").to_numpy(np.int64), keys[lo:hi]):
            raise ValueError(
                f"{code}|{year}: `patches` changed while '{what}' was written: materialise it again"
            )
        batch.insert(0, "year", np.int64(year))
        batch.insert(0, "country", code)
        yield slice(lo, hi), batch


def spool_year(
    conn,
    spool,
    code: str,
    year: int,
    image_rows: np.ndarray,
    keys: np.ndarray,
    columns: Callable[[slice], dict],
    what: str,
) -> int:
    """Append a country-year's rows to ``spool`` batch by batch: the tile columns of
    :func:`tile_batches` and, per batch, ``columns(rows)`` (column -> values of those store
    rows, in order).  Returns the rows appended."""
    n = 0
    for rows, batch in tile_batches(conn, code, year, image_rows, keys, what):
        for name, values in columns(rows).items():
            batch[name] = values
        n += spool.append(batch)
    return n


def write_year_table(
    warehouse: Warehouse,
    table: str,
    code: str,
    year: int,
    order: tuple[np.ndarray, np.ndarray],
    rows: int,
    columns: Callable[[slice], dict],
) -> int:
    """Replace a country-year's partition of the per-tile ``table``: ``rows`` computed values,
    one per usable tile in the store ``order`` (:func:`year_order`, read before they were
    computed; ``columns(rows)``: column -> values of those store rows), joined to the patches'
    tile ids and spooled batch by batch; returns the rows written.  A count that is not the
    order's, or ``patches`` changed since, is an error, and nothing is replaced."""
    image_rows, keys = order
    if len(keys) != rows:
        raise ValueError(
            f"{code}|{year}: {rows} {table} rows for {len(keys)} usable tiles in "
            f"`patches`: re-materialise '{table}'"
        )
    with warehouse.spool(table, {"country": code, "year": year}) as spool:
        with warehouse_lib.reader(warehouse.database, ["patches"]) as conn:
            spool_year(conn, spool, code, year, image_rows, keys, columns, table)
        return spool.commit()
