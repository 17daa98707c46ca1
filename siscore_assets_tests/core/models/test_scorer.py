"""The scorer network: scores in [0, 1], the seed ensemble, `score_images` (with the uninhabited
filter's zeros), the checkpoint format, the pretrained trunk, and its preprocessing."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from siscore_assets.core.model_settings import ModelSettings, recipe_settings
from siscore_assets.core.models.colour_stats import stat_names
from siscore_assets.core.models.common import images_to_tensor, save_checkpoint
from siscore_assets.core.models.habitation import HabitationConfig, HabitationModel
from siscore_assets.core.models.scorer import (
    KIND,
    ScorerConfig,
    ScorerEnsemble,
    ScorerModel,
    as_normalised,
    ensemble,
    from_pretrained,
    load_scorer,
    save_scorer,
    score_images,
)
from siscore_assets_tests.core.models.toys import PX, blue_images, toy_images

STATS = ScorerConfig(input_px=PX, colour_stats=True, texture_px=2 * PX)


def _model(config: ScorerConfig | None = None, seed: int = 0) -> ScorerModel:
    """A random-init scorer whose BatchNorm statistics moved off their defaults (so a round trip
    that forgot the buffers would show), in eval mode."""
    torch.manual_seed(seed)
    model = ScorerModel(config or ScorerConfig(input_px=PX))
    if model.stats is not None:
        k = model.stat_mean.numel()
        model.stat_mean.copy_(torch.linspace(-1, 1, k))
        model.stat_std.copy_(torch.linspace(0.5, 2, k))
    px = model.config.tensor_px
    x = images_to_tensor(toy_images(np.linspace(0, 1, 8), seed, px), px)
    model.train()
    with torch.no_grad():
        model(x)
    return model.eval()


def _u8(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()


def test_scores_in_unit_interval_at_any_tile_size_and_batch():
    model = _model()
    noise = np.random.default_rng(0).integers(0, 256, (20, 24, 24, 3), dtype=np.uint8)
    s = score_images(model, noise, batch_size=7)  # 24 px tiles are resized to the model's 16
    assert s.dtype == np.float64 and s.shape == (20,)
    assert ((s >= 0) & (s <= 1)).all()
    np.testing.assert_allclose(s, score_images(model, noise), atol=1e-6)
    assert score_images(model, noise[:0]).shape == (0,)
    with pytest.raises(ValueError):
        score_images(model, noise.astype(np.float32))


def test_uninhabited_tiles_score_exactly_zero_without_running_the_network():
    model = _model()
    imgs = toy_images(np.linspace(0, 1, 6), seed=1)
    mask = np.array([True, False, False, True, False, True])
    seen: list[int] = []
    hook = model.net.conv1.register_forward_hook(lambda _m, i, _o: seen.append(len(i[0])))
    try:
        s = score_images(model, imgs, uninhabited=mask)
    finally:
        hook.remove()
    assert seen == [3]  # only the inhabited tiles went through the network
    assert (s[mask] == 0.0).all() and (s[~mask] > 0).all()
    np.testing.assert_allclose(s[~mask], score_images(model, imgs)[~mask], atol=1e-6)
    assert (score_images(model, imgs, uninhabited=np.ones(6, bool)) == 0).all()
    with pytest.raises(ValueError, match="uninhabited must be"):
        score_images(model, imgs, uninhabited=mask[:5])


def test_the_ensemble_scores_the_mean_of_its_members():
    members = [_model(seed=s) for s in (0, 1)]
    ens = ensemble(members)
    assert isinstance(ens, ScorerEnsemble) and not ens.training and ens.config == members[0].config
    assert ens.members[1].net is members[1].net  # Grad-CAM hooks go on each member's ResNet
    imgs = toy_images(np.linspace(0, 1, 5), seed=2)
    s = score_images(ens, imgs)
    member_mean = np.mean([score_images(m, imgs) for m in members], axis=0)
    np.testing.assert_allclose(s, member_mean, atol=1e-6)
    assert ((s >= 0) & (s <= 1)).all()
    assert ensemble(members[:1]) is members[0]  # one member is itself
    with pytest.raises(ValueError, match="at least one"):
        ScorerEnsemble([])
    with pytest.raises(ValueError, match="disagree on preprocessing"):
        ScorerEnsemble([members[0], _model(ScorerConfig(input_px=PX, grayscale=True))])


def test_checkpoint_round_trip_of_a_single_scorer(tmp_path):
    model = _model(ScorerConfig(input_px=PX, normalize="per_image"))
    imgs = toy_images(np.linspace(0, 1, 10), seed=1)
    path = save_scorer(model, tmp_path / "sub" / "scorer.pt")
    again = load_scorer(path)
    assert type(again) is ScorerModel and again.config == model.config and not again.training
    # load_scorer keeps channels-last weights: the same scores up to float rounding
    np.testing.assert_allclose(score_images(again, imgs), score_images(model, imgs), atol=1e-6)


def test_checkpoint_round_trip_of_an_ensemble_with_colour_statistics(tmp_path):
    members = [_model(STATS, seed=s) for s in (0, 1)]
    ens = ensemble(members)
    imgs = blue_images(np.linspace(0, 1, 6), seed=3, px=2 * PX)
    path = save_scorer(ens, tmp_path / "scorer.pt")
    again = load_scorer(path)
    assert isinstance(again, ScorerEnsemble) and len(again.members) == 2
    assert again.config == STATS and again.members[0].stats is not None
    for name in ("stat_mean", "stat_std"):
        torch.testing.assert_close(getattr(again.members[1], name), getattr(members[1], name))
    np.testing.assert_allclose(score_images(again, imgs), score_images(ens, imgs), atol=1e-6)


def test_a_checkpoint_of_another_kind_is_refused(tmp_path):
    path = save_checkpoint(tmp_path / "old.pt", "siscore.ranker", {}, {})
    with pytest.raises(ValueError, match=f"expected '{KIND}': re-materialise 'scorer'"):
        load_scorer(path)


def test_from_pretrained_copies_the_resnet_trunk_and_drops_its_head():
    torch.manual_seed(5)
    pre = HabitationModel(HabitationConfig(input_px=PX, arch="resnet18"))
    model = from_pretrained(pre, ScorerConfig(input_px=PX))
    theirs = pre.net.state_dict()
    ours = model.net.state_dict()
    assert not any(k.startswith("fc.") for k in ours)  # the scorer's own head replaces the 3-way
    assert set(ours) == {k for k in theirs if not k.startswith("fc.")}
    for k, v in ours.items():
        assert torch.equal(v, theirs[k]), k
    fresh = from_pretrained(None, ScorerConfig(input_px=PX))
    assert not torch.equal(fresh.net.conv1.weight, pre.net.conv1.weight)
    with pytest.raises(ValueError, match="ResNet-18"):
        from_pretrained(HabitationModel(HabitationConfig(input_px=PX)), ScorerConfig(input_px=PX))


def test_a_grayscale_scorer_feeds_its_cnn_luminance():
    model = _model(ScorerConfig(input_px=PX, grayscale=True))
    seen: list[torch.Tensor] = []
    hook = model.net.conv1.register_forward_hook(lambda _m, i, _o: seen.append(i[0]))
    try:
        imgs = toy_images(np.linspace(0, 1, 3), seed=4)
        score_images(model, imgs)
    finally:
        hook.remove()
    x = seen[0]
    assert x.shape == (3, 3, PX, PX)
    assert torch.equal(x[:, 0], x[:, 1]) and torch.equal(x[:, 1], x[:, 2])
    colour = images_to_tensor(imgs, PX)
    lum = 0.299 * colour[:, 0] + 0.587 * colour[:, 1] + 0.114 * colour[:, 2]
    torch.testing.assert_close(x[:, 0], lum)


def test_uint8_and_normalised_input_score_alike_and_texture_reads_native_tiles():
    assert STATS.tensor_px == 2 * PX
    assert ScorerConfig(input_px=PX, colour_stats=False, texture_px=64).tensor_px == PX
    model = _model(STATS)
    assert model.stat_mean.shape == (len(stat_names(2 * PX)),)
    u8 = _u8(blue_images(np.linspace(0, 1, 3), 4, px=2 * PX))
    normalised = as_normalised(u8)
    assert normalised.dtype == torch.float32 and as_normalised(normalised) is normalised
    with torch.no_grad():
        torch.testing.assert_close(model(u8), model(normalised))
        torch.testing.assert_close(model.raw_stats(u8), model.raw_stats(normalised))
    # score_images reads the tiles at the tensor size: texture from native 32 px tiles
    imgs = blue_images(np.linspace(0, 1, 3), 4, px=2 * PX)
    with torch.no_grad():
        direct = model(_u8(imgs)).double().numpy()
    np.testing.assert_allclose(score_images(model, imgs), direct, atol=1e-5)


def test_the_config_follows_the_settings():
    small = ScorerConfig.of(ModelSettings(input_px=24, texture_px=64))
    assert small == ScorerConfig(input_px=24, views=8)  # no statistics: no texture size
    cpu = ScorerConfig.of(recipe_settings("cpu"))
    assert cpu.colour_stats and cpu.texture_px == 256 and cpu.tensor_px == 256
    assert cpu.tensor_px == recipe_settings("cpu").tensor_px
    paper = ScorerConfig.of(recipe_settings("paper"))
    assert paper.grayscale and not paper.colour_stats and paper.tensor_px == 256


def test_per_image_normalisation_removes_global_brightness_and_contrast():
    imgs = toy_images(np.linspace(0, 1, 4), seed=5)
    shifted = np.clip(imgs.astype(np.float64) * 0.7 + 30, 0, 255).astype(np.uint8)  # hazier year
    a = images_to_tensor(imgs, PX, normalize="per_image")
    b = images_to_tensor(shifted, PX, normalize="per_image")
    fixed_gap = (images_to_tensor(imgs, PX) - images_to_tensor(shifted, PX)).abs().mean()
    assert (a - b).abs().mean() < 0.05 < 0.2 < fixed_gap  # uint8 rounding is all that is left
    with pytest.raises(ValueError, match="normalize"):
        images_to_tensor(imgs, PX, normalize="zscore")
    model = _model(ScorerConfig(input_px=PX, normalize="per_image"))
    np.testing.assert_allclose(score_images(model, imgs), score_images(model, shifted), atol=0.05)


@pytest.mark.parametrize("normalize", ["fixed", "per_image"])
def test_training_tensors_and_scoring_preprocess_alike(normalize):
    """The trainer feeds uint8 pools; score_images feeds normalised floats: one score either way."""
    from siscore_assets.core.models.scorer_training import uint8_tensor

    torch.manual_seed(0)
    model = ScorerModel(ScorerConfig(input_px=16, normalize=normalize)).eval()
    images = toy_images(np.array([0.1, 0.4, 0.6, 0.9]), seed=3, px=16)
    with torch.no_grad():
        trained_on = model(uint8_tensor(images, 16)).double().numpy()
    np.testing.assert_allclose(trained_on, score_images(model, images), atol=1e-5)


@pytest.mark.parametrize("config", [ScorerConfig(input_px=PX), STATS], ids=["cnn", "statistics"])
def test_score_views_make_a_tile_score_the_same_however_it_is_turned(config):
    """views=8 averages the CNN over the dihedral group: a turned or mirrored tile scores the
    same (the statistics are read once, unturned, so the group acts on the CNN input)."""
    import dataclasses

    model = _model(config)
    px = config.tensor_px
    imgs = (
        blue_images(np.linspace(0, 1, 6), seed=4, px=px)
        if config.colour_stats
        else (toy_images(np.linspace(0, 1, 6), seed=4, px=px))
    )
    one = score_images(model, imgs)
    turned = np.ascontiguousarray(np.rot90(imgs, 1, axes=(1, 2))[:, :, ::-1])
    assert np.abs(score_images(model, turned) - one).max() > 1e-4  # one view is not invariant
    model.config = dataclasses.replace(config, views=8)
    eight = score_images(model, imgs)
    if not config.colour_stats:  # the statistics of a turned tile differ in the last bits
        np.testing.assert_allclose(score_images(model, turned), eight, atol=1e-6)
    model.config = dataclasses.replace(config, views=1)
    explicit = np.mean(
        [
            score_images(model, np.ascontiguousarray(np.rot90(im, k, axes=(1, 2))))
            for k in range(4)
            for im in (imgs, imgs[:, :, ::-1])
        ],
        axis=0,
    )
    if not config.colour_stats:
        np.testing.assert_allclose(eight, explicit, atol=1e-6)
    assert np.abs(eight - one).max() > 1e-4
    model.train()
    model.config = dataclasses.replace(config, views=8)
    with torch.no_grad():  # training sees one view (random turns come from augmentation)
        x = images_to_tensor(imgs, px)
        torch.testing.assert_close(model(x), torch.sigmoid(model.logits(x)))


def test_score_views_travel_with_the_checkpoint_and_old_ones_read_as_one(tmp_path):
    import dataclasses

    cfg = dataclasses.replace(STATS, views=4)
    ens = ensemble([_model(cfg, seed=s) for s in (0, 1)])
    again = load_scorer(save_scorer(ens, tmp_path / "scorer.pt"))
    assert again.config.views == 4 and again.members[1].config.views == 4
    imgs = blue_images(np.linspace(0, 1, 5), seed=6, px=2 * PX)
    np.testing.assert_allclose(score_images(again, imgs), score_images(ens, imgs), atol=1e-6)
    old = {k: v for k, v in dataclasses.asdict(_model().config).items() if k != "views"}
    path = save_checkpoint(
        tmp_path / "old.pt", KIND, {**old, "members": None}, _model().state_dict()
    )
    assert load_scorer(path).config.views == 1
    assert ScorerConfig.of(ModelSettings(score_views=2)).views == 2
    with pytest.raises(ValueError, match="score_views"):
        ModelSettings(score_views=3)


def test_the_views_a_scorer_averages():
    from siscore_assets.core.models.common import dihedral_view, view_indices

    assert (
        view_indices(1) == (0,) and view_indices(2) == (0, 2) and view_indices(8) == tuple(range(8))
    )
    with pytest.raises(ValueError, match="views must be one of"):
        view_indices(3)
    x = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).reshape(2, 3, 4, 4)
    seen = {tuple(dihedral_view(x, v).flatten().tolist()) for v in range(8)}
    assert len(seen) == 8  # the eight views of an asymmetric image all differ
    torch.testing.assert_close(dihedral_view(x, 2), torch.rot90(x, 2, dims=(-2, -1)))
    torch.testing.assert_close(dihedral_view(x, 4), x.flip(-1))
