"""Starting images: noise spectra, near-reference starts, other images of the pool."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from metamers import inits


def radial_power_slope(images: torch.Tensor) -> float:
    """Slope of log mean power against log spatial frequency (excluding the mean)."""
    centred = images - images.mean(dim=(-2, -1), keepdim=True)
    power = torch.fft.rfft2(centred).abs().pow(2).mean(dim=(0, 1)).numpy()
    height, width = images.shape[-2:]
    radius = np.sqrt(np.fft.fftfreq(height)[:, None] ** 2 + np.fft.rfftfreq(width)[None, :] ** 2)
    bins = np.linspace(1 / height, 0.5, 12)
    centres, means = [], []
    for low, high in itertools.pairwise(bins):
        ring = (radius >= low) & (radius < high)
        centres.append(radius[ring].mean())
        means.append(power[ring].mean())
    return float(np.polyfit(np.log(centres), np.log(means), 1)[0])


def test_pink_noise_power_falls_with_frequency():
    generator = torch.Generator().manual_seed(0)
    pink = inits.pink_noise((64, 1, 32, 32), generator)
    assert pink.shape == (64, 1, 32, 32)
    assert pink.amin(dim=(1, 2, 3)).eq(0).all() and pink.amax(dim=(1, 2, 3)).eq(1).all()
    # Amplitude ~ 1/f, so power ~ 1/f^2; white noise is flat.
    assert -2.5 < radial_power_slope(pink) < -1.5
    white = inits.noise("uniform", (64, 1, 32, 32), torch.Generator().manual_seed(0))
    assert abs(radial_power_slope(white)) < 0.3


@pytest.fixture
def pool() -> tuple[torch.Tensor, torch.Tensor]:
    """Nine images of three classes; each image is constant with its own index as value."""
    labels = torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 2])
    images = (torch.arange(9.0) / 10).view(9, 1, 1, 1).expand(9, 1, 6, 6).clone()
    return images, labels


def image_index(images: torch.Tensor) -> np.ndarray:
    return np.rint(images[:, 0, 0, 0].numpy() * 10).astype(int)


@pytest.mark.parametrize("kind", inits.NOISE_KINDS + inits.NEAR_KINDS)  # decoder: test_decoder
def test_every_kind_is_seeded_and_in_the_unit_box(kind, pool):
    images, labels = pool
    first = inits.initial_images(kind, images, seed=5, reference_labels=labels)
    again = inits.initial_images(kind, images, seed=5, reference_labels=labels)
    assert first.shape == images.shape
    assert torch.isfinite(first).all() and first.min() >= 0 and first.max() <= 1
    torch.testing.assert_close(first, again, rtol=0, atol=0)


@pytest.mark.parametrize("kind", ["uniform", "gaussian", "pink", "reference_noise", "blend"])
def test_random_kinds_depend_on_the_seed(kind, pool):
    images, _ = pool
    assert not torch.equal(inits.initial_images(kind, images, seed=1),
                           inits.initial_images(kind, images, seed=2))


def test_blend_strength_one_is_the_reference_and_zero_is_noise(pool):
    images, _ = pool
    torch.testing.assert_close(inits.initial_images("blend", images, seed=0, strength=1.0),
                               images, rtol=0, atol=0)
    noise = inits.initial_images("blend", images, seed=0, strength=0.0)
    torch.testing.assert_close(noise, inits.initial_images("uniform", images, seed=0))


def test_reference_noise_strength_zero_is_the_reference(pool):
    images, _ = pool
    torch.testing.assert_close(inits.initial_images("reference_noise", images, 0, 0.0), images)
    noisy = inits.initial_images("reference_noise", images, 0, 0.1)
    assert 0.02 < (noisy - images).abs().mean() < 0.15


def test_blur_smooths_an_edge():
    edge = torch.zeros(1, 1, 9, 9)
    edge[..., 4:] = 1.0
    blurred = inits.initial_images("blur", edge, seed=0, strength=1.0)
    assert 0 < blurred[0, 0, 4, 3] < 0.5 < blurred[0, 0, 4, 4] < 1
    torch.testing.assert_close(blurred.sum(), edge.sum(), rtol=0.05, atol=0)


@pytest.mark.parametrize("seed", range(5))
def test_same_class_picks_the_same_label_never_itself(seed, pool):
    images, labels = pool
    starts = inits.initial_images("same_class", images, seed=seed, reference_labels=labels)
    chosen = image_index(starts)
    np.testing.assert_array_equal(labels[chosen].numpy(), labels.numpy())
    assert (chosen != np.arange(9)).all()


@pytest.mark.parametrize("seed", range(5))
def test_other_class_picks_another_label(seed, pool):
    images, labels = pool
    starts = inits.initial_images("other_class", images, seed=seed, reference_labels=labels)
    assert (labels[image_index(starts)] != labels).all()


def test_same_class_from_an_external_pool_excludes_the_reference_itself(pool):
    pool_images, pool_labels = pool
    references = pool_images[[0, 4]]
    for seed in range(5):
        starts = inits.initial_images("same_class", references, seed, reference_labels=torch.tensor(
            [0, 1]), pool_images=pool_images, pool_labels=pool_labels,
            reference_pool_index=torch.tensor([0, 4]))
        chosen = image_index(starts)
        assert chosen[0] in (1, 2) and chosen[1] in (3, 5)


def test_same_class_with_a_single_image_per_class_raises(pool):
    images, labels = pool
    with pytest.raises(ValueError, match="two or more images per class"):
        inits.initial_images("same_class", images[[0, 3]], 0, reference_labels=labels[[0, 3]])
    with pytest.raises(ValueError, match="labels"):
        inits.initial_images("other_class", images, 0)


def test_unknown_kinds_raise(pool):
    images, _ = pool
    with pytest.raises(ValueError, match="sparkle"):
        inits.initial_images("sparkle", images, 0)
    with pytest.raises(ValueError, match="sparkle"):
        inits.noise("sparkle", (1, 1, 4, 4), torch.Generator())


def test_a_learned_kind_is_not_made_from_the_references(pool):
    images, labels = pool
    with pytest.raises(ValueError, match="decoded_starts"):
        inits.initial_images("decoder", images, seed=0, reference_labels=labels)


def test_an_mlp_decoders_settings_are_the_defaults_and_name_no_architecture():
    """So the decoder files of runs from before ``architecture`` existed stay current."""
    assert inits.decoder_settings({"kind": "decoder"}) == inits.DECODER_SETTINGS
    assert inits.decoder_settings({"kind": "decoder", "architecture": "mlp", "epochs": 2}) == {
        **inits.DECODER_SETTINGS, "epochs": 2}


def test_a_conv_decoders_settings_name_its_architecture_and_channels():
    settings = inits.decoder_settings({"kind": "decoder", "architecture": "conv"})
    assert settings == {**inits.DECODER_SETTINGS, "architecture": "conv",
                        **inits.CONV_DECODER_SETTINGS}
    assert inits.decoder_settings({"kind": "decoder", "architecture": "conv",
                                   "channels": 8})["channels"] == 8


def test_an_activation_weight_is_named_only_where_set():
    assert "activation_weight" not in inits.decoder_settings({"kind": "decoder",
                                                              "activation_weight": 0})
    assert inits.decoder_settings({"kind": "decoder", "activation_weight": 1.0}) == {
        **inits.DECODER_SETTINGS, "activation_weight": 1.0}
