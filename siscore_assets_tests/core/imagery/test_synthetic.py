"""The synthetic country (``world``): deterministic, plausible, and its truth tables consistent."""

from __future__ import annotations

import numpy as np
import pandas as pd
from shapely.geometry import box

from siscore_assets.core.imagery.synthetic import (
    EDZ_TYPES,
    NIGHTLIGHT_MAX,
    NIGHTLIGHT_THRESHOLD,
    SyntheticCountry,
    SyntheticSpec,
    built_fraction,
)
from siscore_assets_tests.fixtures.synthetic_small import SMALL, spearman


def test_deterministic_byte_identical(syn: SyntheticCountry) -> None:
    other = SyntheticCountry(SMALL)
    y = SMALL.years[0]
    a, b = syn.render_year(y), other.render_year(y)
    assert a.tobytes() == b.tobytes()
    pd.testing.assert_frame_equal(syn.tile_truth(y), other.tile_truth(y))
    pd.testing.assert_frame_equal(syn.tile_covariates(), other.tile_covariates())
    assert syn.districts().geometry.equals(other.districts().geometry)
    ia, la = syn.pretrain_set(8, seed=3)
    ib, lb = other.pretrain_set(8, seed=3)
    assert ia.tobytes() == ib.tobytes() and np.array_equal(la, lb)
    devs = {0: 0.1, 1: 0.5, 2: 0.9}
    assert syn.simulate_annotators(devs, seed=1) == other.simulate_annotators(devs, seed=1)
    # a different seed is a different country
    c2 = SyntheticCountry(SyntheticSpec(**{**SMALL.__dict__, "seed": 8}))
    assert not np.array_equal(c2.land_cover(), syn.land_cover())


def test_shapes_and_dtypes(syn: SyntheticCountry, last_year) -> None:
    s = SMALL
    scene = syn.render_year(s.years[0])
    assert scene.shape == (s.ny * s.tile_px, s.nx * s.tile_px, 3) and scene.dtype == np.uint8
    tiles, truth = last_year
    assert tiles.shape == (s.nx * s.ny, s.tile_px, s.tile_px, 3) and tiles.dtype == np.uint8
    # the scene is the tiles laid out row-major
    scene_last = syn.render_year(s.years[-1])
    assert np.array_equal(scene_last[: s.tile_px, s.tile_px : 2 * s.tile_px], tiles[1])
    dev = syn.development(s.years[0])
    assert dev.shape == (s.ny, s.nx) and dev.dtype == np.float64
    assert dev.min() >= 0 and dev.max() <= 1
    lc = syn.land_cover()
    assert lc.shape == (s.ny, s.nx) and np.issubdtype(lc.dtype, np.integer)
    assert set(np.unique(lc)) <= {0, 1, 2, 3}
    assert list(truth.columns) == [
        "z", "x", "y", "tile_id", "development", "building_floor_area_m2", "population",
        "nightlight", "built_up_share", "inhabited", "urban",
    ]  # fmt: skip
    assert (
        truth.built_up_share.between(0, 1).all()
        and (truth.built_up_share[~truth.inhabited] == 0).all()
    )
    assert len(truth) == s.nx * s.ny
    assert truth.tile_id.iloc[0] == f"{s.z}/{s.x0}/{s.y0}"
    assert truth.tile_id.iloc[1] == f"{s.z}/{s.x0 + 1}/{s.y0}"
    assert truth.inhabited.dtype == bool and truth.urban.dtype == bool


def test_nightlight_zero_in_poor_tiles_and_saturates(last_year) -> None:
    _, t = last_year
    poor = t.development < NIGHTLIGHT_THRESHOLD
    assert poor.sum() > 0 and (t.nightlight[poor] == 0).all()
    rich = t.development >= 0.6
    assert (t.nightlight[rich] > 0).all()
    assert t.nightlight.max() <= NIGHTLIGHT_MAX


def test_truth_follows_development(last_year) -> None:
    _, t = last_year
    assert spearman(t.development, t.building_floor_area_m2) > 0.9
    inh = t[t.inhabited]
    assert spearman(inh.development, inh.building_floor_area_m2) > 0.9
    assert spearman(inh.building_floor_area_m2, inh.population) > 0.8
    assert (t.building_floor_area_m2[~t.inhabited] == 0).all() and (t.population >= 0).all()
    # the tile's real ground area bounds the footprint: ~1.9 km side at 40N, z14
    assert (inh.building_floor_area_m2 / built_fraction(inh.development) < 3.6e6 * 14).all()


def test_districts_cover_bbox_without_overlap(syn: SyntheticCountry) -> None:
    d = syn.districts()
    assert list(d.columns) == [
        "district_id", "name", "province_id", "province", "population", "area_km2", "geometry",
    ]  # fmt: skip
    assert d.crs.to_epsg() == 3857
    assert len(d) == SMALL.n_districts and d.district_id.tolist() == list(range(SMALL.n_districts))
    frame = box(*syn.bounds_3857)
    assert abs(d.geometry.area.sum() - frame.area) / frame.area < 1e-6
    assert abs(d.geometry.union_all().area - frame.area) / frame.area < 1e-6
    assert d.geometry.within(frame.buffer(1e-6)).all()
    assert d.province_id.nunique() == SMALL.n_provinces and d.name.is_unique
    assert d.population.sum() == syn.tile_truth(SMALL.years[0]).population.sum()
    assert (d.area_km2 > 0).all()


def test_points_of_interest(syn: SyntheticCountry) -> None:
    p = syn.points_of_interest()
    counts = p.kind.value_counts()
    assert counts["capital"] == 1 and counts["provincial_hub"] == SMALL.n_provinces - 1
    assert counts["capital"] + counts["provincial_hub"] + counts["county_hub"] == SMALL.n_districts
    assert counts["mine"] >= 1 and counts["nuclear_site"] == 1
    assert sorted(p.edz_type[p.kind == "edz"]) == sorted(EDZ_TYPES)
    assert p.edz_type[p.kind != "edz"].isna().all()
    assert p.crs.to_epsg() == 3857 and (p.geometry.geom_type == "Point").all()
    assert p.geometry.within(box(*syn.bounds_3857)).all()


def test_tile_covariates(syn: SyntheticCountry) -> None:
    c = syn.tile_covariates()
    assert len(c) == SMALL.nx * SMALL.ny
    for col in ["dist_capital_km", "dist_provincial_km", "dist_county_km"]:
        assert (c[col] >= 0).all()
    assert (c.dist_provincial_km <= c.dist_capital_km + 1e-9).all()
    assert (c.dist_county_km <= c.dist_provincial_km + 1e-9).all()
    assert c.dist_capital_km.max() < 1.5 * 2.0 * SMALL.nx  # ~1.9 km tiles
    assert c.in_edz.any() and c.edz_type[c.in_edz].isin(EDZ_TYPES).all()
    assert c.edz_type[~c.in_edz].isna().all()
    assert c.near_mine.any() and c.near_mine.dtype == bool
    assert set(c.district_id) <= set(range(SMALL.n_districts))
    d = syn.districts().set_index("district_id")
    assert (c.province.to_numpy() == d.province.loc[c.district_id].to_numpy()).all()


def test_counterfactual_images_move_one_factor_at_a_time(syn: SyntheticCountry) -> None:
    """Buildings of one year in another year's scene: a year's own tiles are the diagonal; a
    place whose floor area did not move is unchanged when only the buildings move, every
    place that gained built-up area differs, and the scene alone
    changes unsettled land too (season, crop rotation, noise)."""
    first, last = SMALL.years[0], SMALL.years[-1]
    assert np.array_equal(syn.counterfactual_images(last, last), syn.tile_images(last))
    base = syn.counterfactual_images(first, first)
    built = syn.counterfactual_images(last, first)
    scene = syn.counterfactual_images(first, last)
    truth = {y: syn.tile_truth(y) for y in (first, last)}
    floor, share = "building_floor_area_m2", "built_up_share"
    still = (truth[first][floor] == truth[last][floor]).to_numpy()
    grew = (truth[last][share] > truth[first][share]).to_numpy()
    assert still.any() and grew.any()
    assert np.array_equal(built[still], base[still])
    assert all(not np.array_equal(built[i], base[i]) for i in np.flatnonzero(grew))
    assert not np.array_equal(scene[still], base[still])
