import numpy as np

from siscore_assets.core.imagery.synthetic import (
    REAL_LIKE,
    ChangeVariant,
    SyntheticCountry,
    SyntheticSpec,
    TileRenderer,
    YearNuisance,
)

SPEC = SyntheticSpec(nx=12, ny=12, tile_px=32, n_districts=4, n_provinces=2)


def test_zero_nuisance_renders_as_without_it():
    keys = np.array([[100, 200], [101, 200]])
    args = (keys, np.array([3, 1]), np.array([0.3, 0.0]), np.array([2017, 2017]))
    plain = TileRenderer(7, 32).render(*args, noise_seed=1)
    zero = TileRenderer(7, 32, nuisance=YearNuisance()).render(*args, noise_seed=1)
    assert np.array_equal(plain, zero)
    strong = TileRenderer(7, 32, nuisance=REAL_LIKE).render(*args, noise_seed=1)
    assert not np.array_equal(plain, strong)


def test_variant_has_still_declining_and_larger_changes():
    base, var = SyntheticCountry(SPEC), ChangeVariant(SPEC, frozen_share=0.4, decline_share=0.2)
    first, last = SPEC.years[0], SPEC.years[-1]
    b0, b1 = base.tile_truth(first), base.tile_truth(last)
    v0, v1 = var.tile_truth(first), var.tile_truth(last)
    inhabited = v0["inhabited"].to_numpy()
    dv = (v1["building_floor_area_m2"] - v0["building_floor_area_m2"]).to_numpy()[inhabited]
    db = (b1["building_floor_area_m2"] - b0["building_floor_area_m2"]).to_numpy()[inhabited]
    assert np.array_equal(v0["inhabited"], b0["inhabited"])  # same places
    assert (dv == 0).any() and (dv < 0).any()
    assert dv.max() > db.max()
    frozen = var.frozen.ravel()[inhabited]
    assert (dv[frozen] == 0).all()
