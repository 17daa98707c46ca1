"""The one data-access module of the wiring: reads of what an upstream asset stored, with a
clear error naming the asset to materialise when it is not there.

Every read here is of an asset the caller declares as a dependency; what it returns is built by
one core call (``training_set``: ``training_data.build_training_set``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from siscore_assets.core import ranking
from siscore_assets.core.analysis.census_link import CensusLink
from siscore_assets.core.countries import CountryConfig
from siscore_assets.core.imagery import patches as patches_lib
from siscore_assets.core.imagery import tile_folder
from siscore_assets.core.models import splits, stage1, tile_labels, training_data
from siscore_assets.core.models.common import checkpoint_digest, resize_images
from siscore_assets.core.storage import tile_store
from siscore_assets.core.storage.tables import write_json_atomic

from .resources import SiscoreSettings, Warehouse


def required(
    warehouse: Warehouse,
    table: str,
    keys: dict,
    *,
    asset: str | None = None,
    order_by: str | None = None,
    columns: str = "*",
) -> pd.DataFrame:
    """One partition of ``table`` (``columns``: a select list); a clear error when it was not
    materialised."""
    frame = warehouse.read(table, keys, order_by=order_by, columns=columns)
    if frame.empty:
        where = "|".join(str(v) for v in keys.values())
        raise FileNotFoundError(f"no {table} for {where}: materialise '{asset or table}' first")
    return frame


def all_years(
    warehouse: Warehouse,
    table: str,
    country: CountryConfig,
    *,
    years: Iterable[int] | None = None,
    asset: str | None = None,
) -> pd.DataFrame:
    """Every configured year of a yearly table for the country, concatenated."""
    frames = [
        warehouse.read(table, {"country": country.code, "year": y})
        for y in (years if years is not None else country.years)
    ]
    frames = [f for f in frames if not f.empty]
    if not frames:
        raise FileNotFoundError(
            f"{country.code}: no `{table}` rows: materialise '{asset or table}' first"
        )
    return pd.concat(frames, ignore_index=True)


def read_grid(warehouse: Warehouse, code: str, year: int) -> pd.DataFrame:
    """The country-year's `siscore_grid` rows."""
    return required(warehouse, "siscore_grid", {"country": code, "year": year})


def store_root(settings: SiscoreSettings, code: str, year: int):
    """Where a country-year's tile stores live (one generation folder per set of inputs)."""
    return settings.country_dir(code) / "tiles" / str(year)


_CONSTANT_COLUMNS = ("country", "year", "stack_path")


def year_tiles(
    settings: SiscoreSettings,
    warehouse: Warehouse,
    code: str,
    year: int,
    *,
    columns: str | None = None,
) -> tuple[pd.DataFrame, tile_store.TileStore]:
    """Usable patches of a country-year (index rows in store order) and the tile store they
    index, read by rows (``store[rows]``, ``iter_row_batches``): nothing loads the whole year.
    ``columns``: a subset of `patches` columns (default every column)."""
    cols = columns or "*"
    wanted = [c.strip() for c in cols.split(",")] if columns else None
    # A partition's constant columns are read once, not as one Python string per row.
    per_row = (
        (", ".join(c for c in wanted if c not in _CONSTANT_COLUMNS) or "image_row")
        if wanted
        else "*"
    )
    where, params = (
        "WHERE country = ? AND year = ? AND status = ?",
        [code, int(year), patches_lib.STATUS_OK],
    )
    stores: list = []
    try:
        index = warehouse.query(f"SELECT {per_row} FROM patches {where} ORDER BY image_row", params)
        if wanted and len(index):
            stores = warehouse.query(f"SELECT DISTINCT stack_path FROM patches {where}", params)[
                "stack_path"
            ].tolist()
    except Exception:  # noqa: BLE001 - no `patches` table yet: the clear error below
        index = pd.DataFrame()
    if wanted and len(index):
        if len(stores) > 1:
            raise ValueError(
                f"{code}|{year}: `patches` names {len(stores)} tile stores: "
                "re-materialise 'patches'"
            )
        constant = {"country": code, "year": int(year), "stack_path": stores[0] if stores else None}
        for c in _CONSTANT_COLUMNS:
            if c in wanted:
                index[c] = constant[c]
        index = index[wanted]
    if index.empty:
        required(
            warehouse, "patches", {"country": code, "year": year}
        )  # names the asset when absent
        index = pd.DataFrame(
            columns=[c.strip() for c in cols.split(",")] if columns else ["tile_id", "image_row"]
        )
    paths = index["stack_path"].dropna().unique() if "stack_path" in index else []
    if len(paths) > 1:
        raise ValueError(
            f"{code}|{year}: `patches` names {len(paths)} tile stores: re-materialise 'patches'"
        )
    if not len(paths):
        return index.reset_index(drop=True), np.zeros((0, 1, 1, 3), np.uint8)
    stack = tile_store.open_stack(paths[0])
    if len(stack) != len(index):
        raise ValueError(
            f"{code}|{year}: tile store {paths[0]} has {len(stack)} tiles, index {len(index)}: "
            "re-materialise 'patches'"
        )
    return index.reset_index(drop=True), stack


def require_one_scorer(
    settings: SiscoreSettings, warehouse: Warehouse, code: str, years: Iterable[int]
) -> None:
    """Refuse to pair ``years`` of `siscore_grid` whose rows two scorers made (each row names
    its scorer file's digest): after a retrained scorer, a year whose new scores were rejected,
    or one materialised alone, keeps the old model's rows, and a change between them would be
    the change of model.  The error names the years to score again (those not made by today's
    scorer file).  Rows written before they named their scorer, and score files, are not
    checked."""
    wanted = sorted({int(y) for y in years})
    if len(wanted) < 2:
        return
    marks = ", ".join("?" for _ in wanted)
    try:
        got = warehouse.query(
            "SELECT year, min(scorer) AS scorer FROM siscore_grid "
            f"WHERE country = ? AND year IN ({marks}) GROUP BY year ORDER BY year",
            [code, *wanted],
        )
    except duckdb.BinderException:  # every partition read was written before the column
        return
    made = {int(y): d for y, d in zip(got["year"], got["scorer"]) if isinstance(d, str)}
    if len(set(made.values())) < 2:
        return
    path = settings.country_dir(code) / "models" / "scorer.pt"
    now = checkpoint_digest(path) if path.exists() else None
    stale = [y for y, d in made.items() if d != now]
    by = "; ".join(
        f"{', '.join(str(y) for y in made if made[y] == d)}: {d}"
        for d in dict.fromkeys(made.values())
    )
    raise ValueError(
        f"{code}: siscore_grid's years {', '.join(map(str, made))} were scored by different "
        f"scorers ({by}); materialise siscore_grid again for {', '.join(map(str, stale))}: a "
        "change between two models' scores is the change of model"
    )


def year_store(settings: SiscoreSettings, warehouse: Warehouse, code: str, year: int):
    """The country-year's tile store path (``""`` without usable tiles) and the store, read by
    rows: for the stages whose rows are joined on tile keys (``tile_rows.py``), no index."""
    index, stack = year_tiles(settings, warehouse, code, year, columns="stack_path")
    return (index["stack_path"].iloc[0] if len(index) else ""), stack


#: Tiles the mean teacher and the year-consistency term see at most (every configured year of each):
#: a seeded sample above this, so a 400,000-tile country is never read whole into memory.
MAX_UNLABELLED_TILES = 4000


def unlabelled_tile_cap(px: int) -> int:
    """How many tiles :func:`tile_year_sample` takes for images read at ``px``:
    MAX_UNLABELLED_TILES at 64 px or less, fewer above, so the sample keeps one pixel budget
    (a 256 px scorer: 1/16 of them)."""
    return max(1, int(MAX_UNLABELLED_TILES * min(1.0, (64 / max(px, 1)) ** 2)))


#: Share of a country's tiles kept out of every cross-year training term (the mean teacher's
#: other-year views, the scorer's year consistency): ``validation_internal`` reports year
#: agreement on them as held out.
YEAR_HOLDOUT_SHARE = 1 / 3


def all_tile_ids(
    settings: SiscoreSettings, warehouse: Warehouse, country: CountryConfig
) -> list[str]:
    """Every tile id of the country's configured years (indexes only)."""
    return sorted(
        {
            t
            for y in country.years
            for t in year_tiles(settings, warehouse, country.code, y, columns="tile_id")[0][
                "tile_id"
            ]
        }
    )


def year_holdout(
    settings: SiscoreSettings, warehouse: Warehouse, country: CountryConfig, seed: int = 0
) -> list[str]:
    """The tiles no cross-year training term sees (:data:`YEAR_HOLDOUT_SHARE`, seeded)."""
    return splits.holdout_ids(all_tile_ids(settings, warehouse, country), YEAR_HOLDOUT_SHARE, seed)


#: The tiles the scorer's cross-year terms left out, saved beside it when it is trained: the
#: held-out year agreement reads them, not a draw from the tiles of the day (one tile more or
#: less reshuffles :func:`year_holdout`, mostly onto places the kept scorer trained on).
YEAR_HOLDOUT_FILE = "year_holdout.json"


def save_year_holdout(
    settings: SiscoreSettings, warehouse: Warehouse, country: CountryConfig
) -> list[str]:
    """Record beside the scorer the tiles it was trained without (:func:`year_holdout` now)."""
    tiles = year_holdout(settings, warehouse, country, seed=country.models.seed)
    path = settings.country_dir(country.code) / "models" / YEAR_HOLDOUT_FILE
    write_json_atomic(path, {"seed": country.models.seed, "tiles": tiles})
    return tiles


def trained_year_holdout(
    settings: SiscoreSettings, warehouse: Warehouse, country: CountryConfig
) -> list[str]:
    """The tiles the country's scorer was trained without (its record), or, for a scorer
    trained before records were kept, :func:`year_holdout` drawn now."""
    path = settings.country_dir(country.code) / "models" / YEAR_HOLDOUT_FILE
    if path.is_file():
        return list(json.loads(path.read_text())["tiles"])
    return year_holdout(settings, warehouse, country, seed=country.models.seed)


def tile_year_rows(
    settings: SiscoreSettings, warehouse: Warehouse, country: CountryConfig, keep: set[str]
) -> Iterable[tuple[int, list[str], np.ndarray]]:
    """(year, tile ids, their images) of the tiles in ``keep``, every year each is usable, in
    stack order;
    only those rows are read from the memory-mapped stacks."""
    for year in country.years:
        index, stack = year_tiles(settings, warehouse, country.code, year)
        rows = np.flatnonzero(index["tile_id"].isin(keep).to_numpy())
        yield year, index["tile_id"].iloc[rows].tolist(), np.asarray(stack[rows])


def tile_year_sample(
    settings: SiscoreSettings,
    warehouse: Warehouse,
    country: CountryConfig,
    *,
    max_tiles: int = MAX_UNLABELLED_TILES,
    seed: int = 0,
    holdout: float = 0.0,
) -> Iterable[tuple[int, list[str], np.ndarray]]:
    """(year, tile ids, their images) for a seeded sample of at most ``max_tiles`` tile ids, each in
    every year it is usable (the same place in another year), in stack order; only the sampled rows
    are read from the memory-mapped stacks.  At or below ``max_tiles`` every tile is taken, less the
    ``holdout`` share (:func:`holdout_ids`) kept for validation."""
    ids = all_tile_ids(settings, warehouse, country)
    if holdout:
        held = set(splits.holdout_ids(ids, holdout, seed))
        ids = [t for t in ids if t not in held]
    yield from tile_year_rows(
        settings, warehouse, country, set(splits.sample_ids(ids, max_tiles, seed))
    )


def labelled_roles(
    country: CountryConfig, labels: np.ndarray, groups: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fit, selection, held) rows of the country's labelled images (``label_roles``; by place
    with ``groups``: :func:`labelled_groups`)."""
    return training_data.label_roles(country.models, labels, groups)


#: `pretrain_set`'s tile id of each labelled tile-year (labels of the country's own tiles): the
#: label split keeps a place's years together.
LABEL_GROUPS = "tile_ids"


def labelled_groups(settings: SiscoreSettings, code: str) -> np.ndarray | None:
    """Each labelled image's place (its tile id) when the labels name the country's tile-years,
    else None (images of their own: the paper's labelled folder, a synthetic set)."""
    with np.load(settings.country_dir(code) / "pretrain" / "pretrain.npz") as data:
        return data[LABEL_GROUPS].astype(str) if LABEL_GROUPS in data.files else None


def labelled_images(settings: SiscoreSettings, code: str) -> tuple[np.ndarray, np.ndarray]:
    """The pretraining set `pretrain_set` stored: (images, soft labels)."""
    path = settings.country_dir(code) / "pretrain" / "pretrain.npz"
    if not path.is_file():
        raise FileNotFoundError(f"no {path}: materialise 'pretrain_set' for {code} first")
    data = np.load(path)
    return data["images"], data["labels"]


#: `pretrain_set`'s labelled images at the tiles' stored size, kept when the network's input
#: size differs: what the descriptor filter (``stage1_features: stats``) is fitted on.
FILTER_IMAGES = "filter_images"


def labelled_filter_images(settings: SiscoreSettings, code: str, images: np.ndarray) -> np.ndarray:
    """The labelled images at the stored tiles' size: `pretrain_set`'s ``filter_images`` when it
    kept them, else ``images`` (already that size)."""
    with np.load(settings.country_dir(code) / "pretrain" / "pretrain.npz") as data:
        return data[FILTER_IMAGES] if FILTER_IMAGES in data.files else images


def cluster_images(
    settings: SiscoreSettings, warehouse: Warehouse, country: CountryConfig, px: int
) -> tuple[dict[int, np.ndarray], dict[int, np.ndarray] | None, str]:
    """The scorer's cluster images, their tile ids (None for a folder) and where they came
    from: a folder of ready-made clusters (read at ``px``), else a seeded sample of each
    cluster's member tiles from the tile stores (`cluster_members`, whatever made the
    clusters: k-means or DeepCluster)."""
    if country.clusters_from_folder:
        folder = country.resolve(country.clusters)
        return tile_folder.read_cluster_folder(folder, px=px)[0], None, str(folder)
    members = required(warehouse, "cluster_members", {"country": country.code}, asset="clusters")

    def years():
        for year in country.years:
            index, stack = year_tiles(settings, warehouse, country.code, year)
            of_tile = members[members["year"] == year].set_index("tile_id")["cluster_id"]
            yield index["tile_id"].tolist(), index["tile_id"].map(of_tile).to_numpy(), stack

    pools, tiles = training_data.pools_from_tiles(years(), seed=country.models.seed)
    add_extra_images(settings, country, pools, tiles)
    return pools, tiles, "cluster_members"


#: The labelling kit's page, its exports folder and their merged soft labels (written by
#: `habitation_labels`, read by `pretrain_set` under ``pretrain: kit``), under the country's folder.
LABEL_KIT_FILE = "label_kit.html"
LABEL_EXPORTS_FOLDER = "labels"
MERGED_LABELS_FILE = "habitation_labels.csv"


def label_exports_folder(settings: SiscoreSettings, code: str) -> Path:
    """Where annotators' ``<name>.labels.csv`` go for a country."""
    return settings.country_dir(code) / LABEL_EXPORTS_FOLDER


def merged_labels_path(settings: SiscoreSettings, code: str) -> Path:
    """The merged soft labels of a country's labelling-kit exports."""
    return settings.country_dir(code) / MERGED_LABELS_FILE


#: Where `clusters` writes the cluster id of each ``stage1_extra_images`` image.
EXTRA_MEMBERS = "extra_members.npz"


def add_extra_images(
    settings: SiscoreSettings,
    country: CountryConfig,
    pools: dict[int, np.ndarray],
    tiles: dict[int, np.ndarray],
) -> int:
    """The country's extra unlabelled images (``stage1_extra_images``) join their clusters'
    pools (at most ``MAX_IMAGES_PER_CLUSTER`` each, seeded), each its own place ``extra:<n>``;
    returns how many joined.  Nothing when the country has none.  ``pools`` hold the tiles as
    stored, and the extra images join them as they are: an image of another size than the tiles
    is an error naming it and both sizes (`clusters` took its descriptors at the tiles' size)."""
    path = settings.country_dir(country.code) / "clusters" / EXTRA_MEMBERS
    if not country.models.stage1_extra_images or not path.is_file():
        return 0
    data = np.load(path, allow_pickle=False)
    files, ids = data["paths"], data["cluster_id"]
    tile_px = next((int(v.shape[1]) for v in pools.values() if len(v)), None)
    rng = np.random.default_rng([country.models.seed, 13])
    added = 0
    for c in sorted(set(pools) | set(np.unique(ids).tolist())):
        rows = np.flatnonzero(ids == c)
        if not len(rows):
            continue
        room = training_data.MAX_IMAGES_PER_CLUSTER
        rows = np.sort(rng.choice(rows, min(room, len(rows)), replace=False))
        read = []
        for r in rows:
            read.append(stage1.read_extra_image(Path(files[r]), tile_px))
            tile_px = tile_px or read[0].shape[0]  # no pools: the first image's size for all
        images = np.stack(read)
        names = np.asarray([f"extra:{r}" for r in rows], dtype=object)
        have = pools.get(int(c))
        pools[int(c)] = images if have is None else np.concatenate([have, images])
        tiles[int(c)] = names if have is None else np.concatenate([tiles[int(c)], names])
        added += len(rows)
    return added


def training_set(
    settings: SiscoreSettings,
    warehouse: Warehouse,
    country: CountryConfig,
    *,
    with_years: bool,
) -> training_data.TrainingSet:
    """The scorer's :class:`TrainingSet`: cluster images, labelled images and (``with_years``) the
    seeded tile-year sample, less the tiles held out of every cross-year term."""
    m = country.models
    _, bottom = cluster_ids(warehouse, country.code)
    pools, tiles, origin = cluster_images(settings, warehouse, country, m.tensor_px)
    years = None
    if with_years:
        cap = unlabelled_tile_cap(m.tensor_px)
        years = tile_year_sample(
            settings, warehouse, country, seed=m.seed, max_tiles=cap, holdout=YEAR_HOLDOUT_SHARE
        )
    return training_data.build_training_set(
        m,
        pools,
        origin,
        bottom=bottom,
        pool_tiles=tiles,
        labelled=(*labelled_images(settings, country.code), labelled_groups(settings, country.code))
        if m.uses_labels
        else None,
        years=years,
        year_held=set(year_holdout(settings, warehouse, country, seed=m.seed))
        if tiles is not None
        else None,
    )


def cluster_ids(warehouse: Warehouse, code: str) -> tuple[list[int], int]:
    """Inhabited cluster ids (what annotators rank) and the uninhabited cluster's id."""
    summary = required(warehouse, "clusters", {"country": code}, order_by="cluster_id")
    is_bottom = summary["cluster_group"] == "uninhabited"
    bottom = (
        int(summary.loc[is_bottom, "cluster_id"].max())
        if is_bottom.any()
        else int(summary["cluster_id"].max()) + 1
    )
    return [int(c) for c in summary["cluster_id"] if int(c) != bottom], bottom


def ensemble_tiers(warehouse: Warehouse, code: str) -> list[list[int]]:
    """The ensembled POG's tiers, least developed first (pruned clusters left out)."""
    ens = required(warehouse, "ensemble_pog", {"country": code}, order_by="tier")
    ens = ens[ens["tier"].notna()]
    return [sorted(int(c) for c in g["cluster_id"]) for _, g in ens.groupby("tier", sort=True)]


def tier_ranks(warehouse: Warehouse, code: str) -> dict[int, float]:
    """Each ranked cluster's tier index in the ensembled POG (0 = least developed)."""
    return ranking.tier_ranks(ensemble_tiers(warehouse, code))


def district_layer(warehouse: Warehouse, code: str):
    """The `districts` table as a GeoDataFrame in EPSG:3857."""
    import geopandas as gpd

    frame = required(warehouse, "districts", {"country": code})
    geom = gpd.GeoSeries.from_wkb(frame["geometry_wkb"].map(bytes), crs="EPSG:3857")
    return gpd.GeoDataFrame(frame.drop(columns=["geometry_wkb"]), geometry=geom)


def read_census_link(warehouse: Warehouse, code: str) -> CensusLink | None:
    """The country's fitted `census_link`, or None where it has none (not configured)."""
    rows = warehouse.read("census_link", {"country": code})
    if rows.empty or rows["beta"].isna().all():
        return None
    row = rows.iloc[0]
    partial = row.get("districts_partial")  # absent from a row written before it was counted
    return CensusLink(
        year=int(row["year"]),
        beta=float(row["beta"]),
        people_per_unit=float(row["people_per_unit"]),
        districts=int(row["districts"]),
        districts_partial=int(partial) if pd.notna(partial) else 0,
        log_rmse=float(row["log_rmse"]),
        log_rmse_linear=float(row["log_rmse_linear"]),
    )


def labelled_tiles(
    settings: SiscoreSettings, warehouse: Warehouse, country, path, px: int | None
) -> tuple[np.ndarray, np.ndarray, pd.Series]:
    """Images (at ``px``; None: as stored), soft labels and tile ids of the tile-years a kit
    labels file names, read by rows from each year's store; a row naming no usable tile-year is
    an error naming its line."""
    labels = tile_labels.read_tile_labels(path)
    frames, stacks = [], {}
    for year in sorted(set(labels["year"]) & set(country.years)):
        index, stacks[year] = year_tiles(
            settings, warehouse, country.code, year, columns="tile_id, image_row, stack_path"
        )  # the store's rows are the index's, in order
        frames.append(index[["tile_id"]].assign(year=year, image_row=np.arange(len(index))))
    index = pd.concat(frames) if frames else pd.DataFrame(columns=["year", "tile_id", "image_row"])
    located = tile_labels.locate(labels, index, path)
    px = px or (next(iter(stacks.values())).shape[1] if stacks else 1)
    images = np.zeros((len(located), px, px, 3), np.uint8)
    for year, part in located.groupby("year"):
        order = np.argsort(part["image_row"].to_numpy())
        rows = part["image_row"].to_numpy()[order]
        images[part.index.to_numpy()[order]] = resize_images(np.asarray(stacks[year][rows]), px)
    return images, located[list(tile_labels.COLUMNS[2:])].to_numpy(np.float64), located["tile_id"]
