"""siScore of granule patches (the reproduction's patching, beside the grid): the country's
scorer (after the year's common radiometry, the transform `siscore_grid` applies: ``grid.py``)
and uninhabited filter over every usable patch of the year's granule-patch store."""

import time

from dagster import (
    AssetCheckResult,
    AssetCheckSpec,
    AssetExecutionContext,
    MaterializeResult,
    MetadataValue,
    asset,
)

from siscore_assets.core.models import batch_inference, siscore
from siscore_assets.core.models.habitation import UNINHABITED_AT
from siscore_assets.core.storage.tile_store import open_stack

from ..common.context import OWNERS, country_year, log_rate, not_configured
from ..common.partitions import Partitions
from ..common.resources import SiscoreSettings, Warehouse
from .assets import every_year
from .checks import unit_interval_check
from .grid import year_transform

GROUP = "scoring"
PATCH_SCORES_IN_UNIT_INTERVAL = AssetCheckSpec(
    "scores_in_unit_interval",
    asset="granule_siscore",
    blocking=True,
    description="every granule patch's siScore is finite and in [0, 1], each patch once",
)


def nothing_to_score(warehouse: Warehouse, country, keys: dict) -> MaterializeResult:
    """No usable patch this year: recorded as not configured; the check passes on nothing."""
    why = "no usable granule patches this year (granule_patches)"
    done = not_configured(warehouse, country, why, {"granule_siscore": keys})[0]
    check = AssetCheckResult(
        check_name="scores_in_unit_interval", passed=True, metadata={"status": "no patches"}
    )
    return MaterializeResult(metadata=done.metadata, check_results=[check])


def build(p: Partitions) -> list:
    @asset(
        partitions_def=p.country_year,
        group_name=GROUP,
        owners=OWNERS,
        kinds={"pytorch", "duckdb"},
        deps=[
            p.same("granule_patches"),
            every_year(p, "patches"),  # every year's tiles: the common radiometry's fit
            p.from_country("scorer"),
            p.from_country("habitation_model"),
        ],
        check_specs=[PATCH_SCORES_IN_UNIT_INTERVAL],
        description="siScore in [0, 1] of every usable granule patch (`granule_patches`), from the "
        "country's scorer, each patch first brought to the year's common radiometry as "
        "`siscore_grid` brings its tiles (`radiometry: relative`, fitted on every year's "
        "`patches`), with the uninhabited filter's verdict per patch (zeroed like "
        "`siscore_grid` unless `zero_filter: false` keeps continuous scores). Table "
        "`granule_siscore` (ids `granule/row/col`, EPSG); `siscore_mosaic` fills each granule's "
        "overlay back from it. No granule patching: not configured.",
    )
    def granule_siscore(
        context: AssetExecutionContext, settings: SiscoreSettings, warehouse: Warehouse
    ) -> MaterializeResult:
        country, year = country_year(context, settings)
        keys = {"country": country.code, "year": year}
        index = warehouse.read("granule_patches", keys, order_by="image_row")
        index = index[index["image_row"] >= 0] if len(index) else index
        if index.empty:  # nothing to score; the check has nothing to judge
            return nothing_to_score(warehouse, country, keys)
        models = settings.country_dir(country.code) / "models"
        store_path = str(index["stack_path"].iloc[0])
        stack = open_stack(store_path)
        if len(stack) != len(index):
            raise RuntimeError(
                f"{country.code}|{year}: granule_patches indexes {len(index)} patches but its "
                f"store {store_path} holds {len(stack)}: materialise 'granule_patches' again"
            )
        workers, started = settings.worker_config(), time.perf_counter()
        fix = year_transform(settings, warehouse, country, year, workers, context.log.info)
        raw, probs = batch_inference.score_and_filter(
            models / "scorer.pt",
            models / "habitation.pt",
            store_path,
            stack,
            settings.device,
            workers,
            log=context.log.info,
            transform=fix,
        )
        seconds = time.perf_counter() - started
        rate = log_rate(
            context, "granule_siscore", len(index), seconds, workers.describe(len(index))
        )
        frame = siscore.patch_siscore_table(
            index,
            raw,
            probs[:, 2],
            zero_uninhabited=country.models.zero_filter,
            uninhabited_at=UNINHABITED_AT,
        )
        check = unit_interval_check(frame)
        if not check.passed:  # nothing is written: the overlay would draw broken scores
            return MaterializeResult(
                metadata={"status": "rejected", "rows_written": 0}, check_results=[check]
            )
        n = warehouse.write("granule_siscore", frame, keys)
        return MaterializeResult(
            metadata={
                "patches": n,
                "granules": int(frame["granule_id"].nunique()),
                "inhabited_patches": int(frame["inhabited"].sum()),
                "mean_score": float(frame["score"].mean()),
                "radiometry": MetadataValue.json(fix.as_dict() if fix else "none"),
                "status": "ok",
                **rate,
            },
            check_results=[check],
        )

    return [granule_siscore]
