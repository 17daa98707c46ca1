"""Stage 1's per-tile tables, `habitation` and `cluster_members`, read and written on 64-bit
tile keys (``common/tile_rows.py``): a country's tile-years are held as flags only, and tile ids
reach Python one batch at a time."""

from __future__ import annotations

import numpy as np
import pandas as pd

from siscore_assets.core.models import stage1
from siscore_assets.core.storage import tile_store
from siscore_assets.core.storage import warehouse as warehouse_lib

from ..common import tile_rows
from ..common.data import year_store
from ..common.resources import SiscoreSettings, Warehouse


def write_habitation(
    warehouse: Warehouse, code: str, year: int, columns: dict[str, np.ndarray], order
) -> int:
    """Replace the country-year's `habitation` rows: ``columns``
    (``habitation.habitation_columns`` of every usable tile, in the store ``order`` read before
    they were computed) joined to the patches' tile ids on tile keys, batch by batch."""
    return tile_rows.write_year_table(
        warehouse, "habitation", code, year, order, len(columns["p_urban"]),
        lambda rows: {name: values[rows] for name, values in columns.items()},
    )  # fmt: skip


def country_tiles(
    settings: SiscoreSettings, warehouse: Warehouse, code: str, years
) -> tuple[pd.DataFrame, tile_store.StoreRows, list]:
    """Every year's usable tiles, years one after the other in store order, as per-tile numbers:
    ``country`` (categorical), ``year`` and the year's `habitation` flags ``inhabited`` /
    ``urban`` (joined on tile keys; False where the tile has no verdict), and their images, read
    by rows from each year's store, and each year's store order (image rows, tile keys).  No
    tile ids: `cluster_members` joins them back on those keys batch by batch
    (:func:`write_members`), so 400,000 tiles x years never sit in memory as strings."""
    frames, stacks, orders = [], [], []
    for year in years:
        _, stack = year_store(settings, warehouse, code, year)
        tile_rows.require_habitation(warehouse, code, year)
        with warehouse_lib.reader(warehouse.database, ["patches", "habitation"]) as conn:
            image_rows, keys = tile_rows.store_order(conn, code, year)
            if len(np.unique(keys)) != len(keys):
                raise ValueError(
                    f"{code}|{year}: `patches` holds a usable tile twice: re-materialise 'patches'"
                )
            flags = tile_rows.year_flags(conn, code, year, keys)
        orders.append((image_rows, keys))
        frames.append(
            pd.DataFrame(
                {
                    "country": pd.Categorical.from_codes(np.zeros(len(keys), np.int8), [code]),
                    "year": np.full(len(keys), int(year), np.int16),
                    "inhabited": flags["inhabited"],
                    "urban": flags["urban"],
                }
            )
        )
        stacks.append(stack)
    return pd.concat(frames, ignore_index=True), tile_store.StoreRows(stacks), orders


def write_members(
    warehouse: Warehouse, code: str, years, res: stage1.CountryClusters, orders: list
) -> int:
    """Replace the country's `cluster_members` rows: every tile-year's cluster id and flags (in
    :func:`country_tiles`'s order, ``orders`` its years' store orders) joined to the patches'
    tile ids on tile keys, year by year and batch by batch."""
    if sum(len(keys) for _, keys in orders) != len(res.labels):
        raise ValueError(
            f"{code}: {len(res.labels)} tile-years clustered, "
            f"{sum(len(k) for _, k in orders)} read: materialise 'clusters' again"
        )
    start = 0
    with warehouse.spool("cluster_members", {"country": code}) as spool:
        with warehouse_lib.reader(warehouse.database, ["patches"]) as conn:
            for year, (image_rows, keys) in zip(years, orders, strict=True):
                first, start = start, start + len(keys)

                def columns(rows: slice, first: int = first) -> dict:
                    part = slice(first + rows.start, first + rows.stop)
                    return {
                        "cluster_id": res.labels[part],
                        "inhabited": res.inhabited[part],
                        "urban": res.urban[part],
                    }

                tile_rows.spool_year(
                    conn, spool, code, year, image_rows, keys, columns, "cluster_members"
                )
        return spool.commit()
