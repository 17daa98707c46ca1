"""Stage 1's per-tile tables, `habitation` and `cluster_members`, read and written on 64-bit
tile keys (``common/tile_rows.py``): a country's tile-years are held as flags only, and tile ids
reach Python one batch at a time.  A clustering's outputs (members, summary, model files) are
all computed and staged before any is replaced (:func:`write_clustering`)."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pandas as pd
from dagster import MetadataValue

from siscore_assets.core.countries import CLUSTERS_DEEPCLUSTER, CountryConfig
from siscore_assets.core.models import habitation as habitation_lib
from siscore_assets.core.models import stage1
from siscore_assets.core.storage import tile_store
from siscore_assets.core.storage import warehouse as warehouse_lib
from siscore_assets.core.storage.files import StagedFiles

from ..common import tile_rows
from ..common.data import EXTRA_MEMBERS, year_store
from ..common.metadata import png_bytes
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
    (:func:`spool_members`), so 400,000 tiles x years never sit in memory as strings."""
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


def spool_members(
    warehouse: Warehouse,
    spool: warehouse_lib.PartitionSpool,
    code: str,
    years,
    res: stage1.CountryClusters,
    orders: list,
) -> None:
    """Every tile-year's `cluster_members` row (cluster id and flags, in :func:`country_tiles`'s
    order, ``orders`` its years' store orders) joined to the patches' tile ids on tile keys, year
    by year and batch by batch, into ``spool``, not committed: the caller commits them when
    everything else of the fit is ready too."""
    if sum(len(keys) for _, keys in orders) != len(res.labels):
        raise ValueError(
            f"{code}: {len(res.labels)} tile-years clustered, "
            f"{sum(len(k) for _, k in orders)} read: materialise 'clusters' again"
        )
    start = 0
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


def write_fit(
    warehouse: Warehouse,
    members: warehouse_lib.PartitionSpool,
    files: StagedFiles,
    code: str,
    summary: pd.DataFrame,
) -> tuple[int, int]:
    """The writes of one clustering, after everything was computed and staged: the members
    first (the large write, the one a full disk fails: then nothing of the fit is replaced),
    the summary, then the staged files renamed into place (extra members, ``clusters.pkl``,
    encoder, contact sheet).  Readers take members, summary and files together; computing
    first leaves only these last steps where a failure mixes two fits."""
    n_members = members.commit()
    n_clusters = warehouse.write("clusters", summary, {"country": code})
    files.commit()
    return n_members, n_clusters


def stage_cluster_files(
    files: StagedFiles,
    settings: SiscoreSettings,
    code: str,
    res: stage1.CountryClusters,
    deepcluster_model: bool,
) -> dict:
    """Stage (``files``: renamed into place by the caller, after the tables) the fitted clusters
    (``clusters.pkl``, to place later tiles), the contact sheet and the DeepCluster encoder (when
    trained); their paths as metadata."""
    folder = settings.country_dir(code)
    out = {}
    if deepcluster_model:
        path = folder / "models" / "deepcluster.pt"
        dc_path = files.stage(
            path, lambda tmp: habitation_lib.save_habitation(res.cluster_model, tmp, name=path.name)
        )
        out["deepcluster_encoder"] = MetadataValue.path(str(dc_path))
    fitted = pickle.dumps(res.result)
    files.stage(folder / "models" / "clusters.pkl", lambda tmp: tmp.write_bytes(fitted))
    sheet = png_bytes(res.sheet, 4096)
    sheet_path = files.stage(
        folder / "clusters" / "contact_sheet.png", lambda tmp: tmp.write_bytes(sheet)
    )
    out["contact_sheet_file"] = MetadataValue.path(str(sheet_path))
    return out


def stage_extra_members(
    files: StagedFiles, settings: SiscoreSettings, code: str, paths: list, labels
) -> dict:
    """Each extra image's cluster id (the scorer's pools read it), staged; as metadata too."""
    if labels is None:
        return {}
    names = np.asarray([str(q) for q in paths])

    def write(tmp: Path) -> None:
        with tmp.open("wb") as fh:
            np.savez(fh, paths=names, cluster_id=labels)

    path = files.stage(settings.country_dir(code) / "clusters" / EXTRA_MEMBERS, write)
    return {"extra_images": len(paths), "extra_members_file": MetadataValue.path(str(path))}


def write_clustering(
    settings: SiscoreSettings,
    warehouse: Warehouse,
    country: CountryConfig,
    res: stage1.CountryClusters,
    orders: list,
    extra_paths: list,
) -> tuple[int, int, dict]:
    """Every output of one clustering computed and staged (members spooled, files written
    aside) before :func:`write_fit` replaces any; the rows written and the files' metadata."""
    code, deep = country.code, country.clusters == CLUSTERS_DEEPCLUSTER
    with StagedFiles() as files, warehouse.spool("cluster_members", {"country": code}) as members:
        spool_members(warehouse, members, code, country.years, res, orders)
        meta = stage_extra_members(files, settings, code, extra_paths, res.extra_labels)
        meta.update(stage_cluster_files(files, settings, code, res, deep))
        n_members, n_clusters = write_fit(warehouse, members, files, code, res.summary)
    return n_members, n_clusters, meta
