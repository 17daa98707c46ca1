import numpy as np
import pandas as pd
import pytest

from siscore_assets.core.imagery import radiometry


def _means(rng: np.random.Generator, n: int = 400) -> pd.DataFrame:
    return pd.DataFrame(rng.uniform(20, 200, (n, 3)), index=[f"t{i}" for i in range(n)])


def test_fit_recovers_a_gain_and_offset_despite_changed_tiles():
    rng = np.random.default_rng(0)
    ref = _means(rng)
    cur = ref * np.array([0.8, 0.9, 1.1]) + np.array([20.0, 10.0, -5.0])
    cur.iloc[:60] += 60.0  # 15 % of the places changed (new roofs): not invariant
    fit = radiometry.fit_relative(ref, cur)
    back = np.asarray(fit.gain) * cur.iloc[60:].to_numpy() + np.asarray(fit.offset)
    assert np.abs(back - ref.iloc[60:].to_numpy()).max() < 1.0
    assert fit.pifs == 200


def test_too_few_common_tiles_gives_the_identity():
    rng = np.random.default_rng(1)
    fit = radiometry.fit_relative(_means(rng, 5), _means(rng, 5))
    assert fit.is_identity and fit.pifs == 0


def test_canonical_maps_a_hazy_year_onto_the_others():
    rng = np.random.default_rng(2)
    clear = _means(rng)
    years = {2016: clear * 0.6 + 70.0, 2017: clear, 2018: clear + 0.5, 2019: clear - 0.5}
    fits = radiometry.canonical_transforms(years)
    hazy = np.asarray(fits[2016].gain) * years[2016].to_numpy() + np.asarray(fits[2016].offset)
    assert np.abs(hazy - clear.to_numpy()).mean() < 1.0
    assert fits[2017].gain == pytest.approx((1.0, 1.0, 1.0), abs=0.01)


def test_apply_rounds_clips_and_keeps_uint8():
    images = np.full((2, 4, 4, 3), 200, np.uint8)
    out = radiometry.BandTransform((1.5, 1.0, 0.5), (0.0, 0.4, 0.0), 10).apply(images)
    assert out.dtype == np.uint8
    assert out[0, 0, 0].tolist() == [255, 200, 100]
    assert radiometry.BandTransform().apply(images) is images
    t = radiometry.BandTransform((2.0, 1.0, 1.0), (10.0, 0.0, 0.0), 5)
    assert t.then(t.inverse()).gain == pytest.approx((1.0, 1.0, 1.0))
    with pytest.raises(ValueError, match="N, H, W, 3"):
        radiometry.band_means(np.zeros((4, 4, 3), np.uint8))


def test_the_fit_on_aligned_rows_is_the_fit_on_tile_ids():
    """Stored means paired by row (no tile ids in memory) give the same transforms, to the bit."""
    rng = np.random.default_rng(3)
    base = _means(rng, 300)
    years = {
        2016: base.sample(frac=0.9, random_state=1) * 0.7 + 40.0,
        2017: base.sample(frac=1.0, random_state=2),
        2018: base.sample(frac=0.8, random_state=3) + rng.normal(0, 3, (240, 3)),
    }
    want = radiometry.canonical_transforms(years)
    first = years[2016]
    fits = {}
    for y in (2017, 2018):
        pos = pd.Series(np.arange(len(years[y])), index=years[y].index)
        common = [t for t in first.index if t in pos.index]  # the first year's order
        ref_rows = [first.index.get_loc(t) for t in common]
        fits[y] = radiometry.fit_aligned(
            first.to_numpy()[ref_rows], years[y].to_numpy()[pos[common].to_numpy()]
        )
    assert radiometry.canonical_from_fits(2016, len(first), fits) == want
    assert radiometry.fit_aligned(np.zeros((5, 3)), np.zeros((5, 3))).is_identity
    with pytest.raises(ValueError, match="differ in length"):
        radiometry.fit_aligned(np.zeros((9, 3)), np.zeros((8, 3)))
