"""The map a person opens (`web_map`: the static site `siscore map` serves) and the outputs as a
STAC catalog (`stac_catalog`), per country, rebuilt whenever the yearly outputs change."""

from pathlib import Path

from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset

from siscore_assets.core.maps import country_page, export
from siscore_assets.core.maps import stac_catalog as stac_lib
from siscore_assets.core.maps.web import site
from siscore_assets.core.maps.web.sources import UnsupportedGrid, maybe_query

from ..common.context import NOT_CONFIGURED, OWNERS, country_only
from ..common.data import require_one_scorer
from ..common.metadata import image_md, png_bytes
from ..common.partitions import Partitions
from ..common.resources import SiscoreSettings, Warehouse

GROUP = "outputs"


def _year_thumbnail(warehouse: Warehouse, code: str):
    """The last year's siScore quicklook as a small picture, or None."""
    import numpy as np
    from PIL import Image

    rows = maybe_query(
        warehouse.database,
        "SELECT year, path FROM siscore_raster_files WHERE country = ? AND format = 'png' "
        "ORDER BY year DESC LIMIT 1",
        [code],
    )
    if rows.empty or not Path(rows.iloc[0]["path"]).exists():
        return None
    with Image.open(rows.iloc[0]["path"]) as im:
        picture = np.asarray(im.convert("RGB"))
    return image_md(png_bytes(picture, 480), f"siScore {int(rows.iloc[0]['year'])}")


def build(p: Partitions) -> list:
    yearly, country_tables = site.SITE_YEARLY_INPUTS, site.SITE_COUNTRY_INPUTS

    @asset(
        partitions_def=p.country,
        group_name=GROUP,
        owners=OWNERS,
        deps=[*(p.from_years(a) for a in yearly), *(p.same(a) for a in country_tables)],
        kinds={"html", "maplibre"},
        description="The country's interactive map as a static site under "
        "`<data root>/<C>/web/`: its own imagery per year (zoom 8-14), siScore per year and "
        "change between any two years, districts with their aggregates, a tile's record on "
        "click; and the country page (validation, district ranking, regression, internal "
        "validation). `siscore map --country C` serves it.",
    )
    def web_map(
        context: AssetExecutionContext, settings: SiscoreSettings, warehouse: Warehouse
    ) -> MaterializeResult:
        country = country_only(context, settings)
        out = settings.country_dir(country.code) / "web"
        require_one_scorer(settings, warehouse, country.code, country.years)  # change: any 2 years
        try:
            # the configured years only, as `siscore map` and `siscore export` show them
            report = site.build_site(warehouse.database, country.code, out, years=country.years)
        except UnsupportedGrid as exc:  # the COGs and the STAC catalog still follow its zoom
            context.log.warning(str(exc))
            return MaterializeResult(metadata={"status": NOT_CONFIGURED, "note": str(exc)})
        for note in report.notes:
            context.log.warning(note)
        metadata = {
            **{k: v for k, v in report.summary().items() if k != "notes"},
            "notes": "; ".join(report.notes) or "none",
            "index": MetadataValue.path(str(out / "index.html")),
        }
        thumb = _year_thumbnail(warehouse, country.code)
        if thumb is not None:
            metadata["map_thumbnail"] = thumb
        chart = country_page.validation_chart_png(
            country_page.validation_rows(warehouse.database, country.code)
        )
        if chart is not None:
            metadata["validation_chart"] = image_md(chart, "validation")
        return MaterializeResult(metadata=metadata)

    @asset(
        partitions_def=p.country,
        group_name=GROUP,
        owners=OWNERS,
        deps=[
            p.from_years(a)
            for a in ("siscore_raster", "siscore_change", "change_raster_files", "siscore_grid")
        ],
        kinds={"stac", "geoparquet"},
        description="The outputs as a STAC catalog (`<data root>/stac/catalog.json`): a "
        "collection per country, an item per year with the siScore COG, the change COGs, the "
        "quicklook and the GeoParquet export (`<C>/exports/siscore_<C>.parquet`, written here); "
        "projection, raster and file (checksum, size) extensions; relative links.",
    )
    def stac_catalog(
        context: AssetExecutionContext, settings: SiscoreSettings, warehouse: Warehouse
    ) -> MaterializeResult:
        country = country_only(context, settings)
        parquet = settings.country_dir(country.code) / "exports" / f"siscore_{country.code}.parquet"
        with warehouse.reader(["siscore_grid"]) as conn:  # streamed: the configured years
            years = sorted(set(export.stored_years(conn, country.code)) & set(country.years))
            if years:
                export.write_export(conn, country.code, years, parquet, "geoparquet")
        root = settings.root / "stac"
        try:
            report = stac_lib.build_catalog(warehouse.database, country.code, root, parquet)
        except ValueError as exc:  # no COG yet: say so, never a green catalog of nothing
            context.log.warning(str(exc))
            return MaterializeResult(metadata={"status": f"nothing published: {exc}", "items": 0})
        return MaterializeResult(
            metadata={
                "catalog": MetadataValue.path(str(root / "catalog.json")),
                "items": report.items,
                "assets": report.assets,
                "status": "ok",
            }
        )

    return [web_map, stac_catalog]
