"""A plain-text summary of a country's results, read back from the warehouse.

Only the years the countries file configures for the country are shown: a year left in the
warehouse from an earlier configuration is named in one line and left out, as ``siscore export``
and ``siscore change`` leave it out.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from siscore_assets.cli import errors
from siscore_assets.cli.export import unconfigured_years
from siscore_assets.core.countries import CountryConfig
from siscore_assets.core.storage import warehouse


def here(stored: str, data_root: Path, code: str) -> str:
    """A file's stored path as it is now: the data folder may have been copied or moved since it
    was written (``raster_files`` holds absolute paths), so a path under another folder is shown
    under ``data_root`` when the same ``<code>/...`` file is there."""
    path = Path(stored)
    folders = path.parts[:-1]
    if code not in folders:
        return stored
    root = Path(data_root).expanduser()
    if path.resolve().is_relative_to(root.resolve()):
        return stored
    at = len(folders) - 1 - folders[::-1].index(code)
    moved = root.joinpath(*path.parts[at:])
    return str(moved) if moved.is_file() else stored


def summarize(
    database: str,
    data_root: Path,
    cfg: CountryConfig,
    wall_s: float | None = None,
    seconds: dict[str, float] | None = None,
) -> str:
    code = cfg.code
    lines = [f"== siScore summary for {code}"]
    with warehouse.reader(database) as conn:
        q = lambda sql: conn.execute(sql, [code]).df()  # noqa: E731
        has = lambda table: warehouse.table_exists(conn, table)  # noqa: E731  (PRK: no validation tables)
        # an analysis-only country (a score file, no imagery) has its scored tiles only
        imagery = has("patches") and has("habitation")
        imagery = imagery and bool(q("SELECT count(*) AS n FROM patches WHERE country = ?")["n"][0])
        scored = has("siscore_grid") and bool(
            q("SELECT count(*) AS n FROM siscore_grid WHERE country = ?")["n"][0]
        )
        if not (imagery or scored):  # nothing of the country: not "scores from a score file"
            errors.fail(
                f"the warehouse {database} has no siScore for {code}: "
                f"run `siscore run --country {code}` first"
            )
        tiles = q(
            "SELECT year, count(*) AS tiles, "
            "sum(CASE WHEN status = 'ok' THEN 1 ELSE 0 END) AS usable "
            "FROM patches WHERE country = ? GROUP BY year ORDER BY year"
            if imagery
            else "SELECT year, count(*) AS tiles, count(*) AS usable FROM siscore_grid "
            "WHERE country = ? GROUP BY year ORDER BY year"
        )
        hab = q(
            "SELECT year, sum(CAST(inhabited AS INT)) AS inhabited "
            f"FROM {'habitation' if imagery else 'siscore_grid'} WHERE country = ? "
            "GROUP BY year ORDER BY year"
        )
        per_year = tiles.merge(hab, on="year", how="left")
        for r in per_year[per_year["year"].isin(cfg.years)].itertuples():
            # a year whose habitation step has not run (yet) has tiles and no verdicts
            inhabited = (
                "inhabited unknown" if pd.isna(r.inhabited) else f"{int(r.inhabited)} inhabited"
            )
            lines.append(f"tiles {r.year}: {r.tiles} ({int(r.usable)} usable, {inhabited})")
        stale, note = unconfigured_years(cfg, tiles["year"])
        if stale:
            lines.append(note)
        if not imagery:
            lines.append("clusters, annotators: none (scores from a score file)")
        else:
            cl = q(
                "SELECT cluster_group, count(*) AS k FROM clusters WHERE country = ? "
                "GROUP BY ALL ORDER BY 1"
            )
            lines.append(
                "clusters: " + ", ".join(f"{r.cluster_group} {r.k}" for r in cl.itertuples())
            )
            pogs = q("SELECT count(*) AS n FROM annotator_pogs WHERE country = ?")
            ens = q(
                "SELECT cluster_id, tier FROM ensemble_pog WHERE country = ? "
                "ORDER BY tier DESC, cluster_id"
            )
            tiers = [
                "=".join(str(c) for c in g["cluster_id"])
                for _, g in ens.groupby("tier", sort=False)
            ]
            lines.append(
                f"annotators: {int(pogs['n'].iloc[0])}; "
                f"ensemble POG ({len(tiers)} tiers): {'>'.join(tiers)}"
            )
            w = q(
                "SELECT annotator, weight FROM annotator_weights WHERE country = ? "
                "ORDER BY weight DESC"
            )
            lines.append(
                "annotator weights: "
                + ", ".join(f"{r.annotator} {r.weight:.3f}" for r in w.itertuples())
            )
        val = (
            q(
                "SELECT year, subset, model, spearman_rho, n FROM validation_grid "
                "WHERE country = ? AND proxy = 'building_floor_area_m2' "
                "ORDER BY year, subset, model"
            )
            if has("validation_grid")
            else []
        )
        val = val[val["year"].isin(cfg.years)] if len(val) else val
        for year, g in val.groupby("year") if len(val) else []:
            parts = [f"{r.model}/{r.subset} {r.spearman_rho:.3f} (n={r.n})" for r in g.itertuples()]
            lines.append(f"Spearman rho vs building floor area {year}: " + "; ".join(parts))
        reg = (
            q(
                "SELECT term, coef, se, p FROM development_regression WHERE country = ? "
                "AND outcome = 'delta_log_siscore' AND term <> 'const'"
            )
            if has("development_regression")
            else []
        )
        if len(reg):
            lines.append(
                "regression Δlog siScore: "
                + ", ".join(f"{r.term} {r.coef:+.3f} (se {r.se:.3f})" for r in reg.itertuples())
            )
        files = q(
            "SELECT year, kind, path FROM raster_files WHERE country = ? AND format = 'geotiff' "
            "ORDER BY year, kind"
        )
        # a change raster is filed under its later year: its earlier one must be configured too
        named = files["kind"].str.findall(r"\d{4}").map(lambda ys: {int(y) for y in ys})
        files = files[files["year"].isin(cfg.years) & named.map(set(cfg.years).issuperset)]
        # `siscore change` between a year and the first writes the asset's own file: listed once
        shown = dict.fromkeys(here(p, data_root, code) for p in files["path"])
        lines.append("rasters: " + ", ".join(shown))
        counts = warehouse.row_counts(conn)
    lines.append(f"warehouse: {database} — " + ", ".join(f"{t} {n}" for t, n in counts.items()))
    lines.append(f"files under: {data_root / code}")
    if seconds:
        top = sorted(((k, v) for k, v in seconds.items()), key=lambda kv: -kv[1])[:10]
        lines.append("time by step: " + ", ".join(f"{k} {v:.1f}s" for k, v in top))
    if wall_s is not None:
        lines.append(f"wall time: {wall_s:.1f} s")
    return "\n".join(lines)
