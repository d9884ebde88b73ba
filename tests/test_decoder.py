"""The learned start: a decoder from a layer's activations back to the image."""

from __future__ import annotations

import pytest
import torch

from metamers import activations, inits
from metamers import decoder as decoder_lib
from metamers.objective import LayerObjective

SETTINGS = {**inits.DECODER_SETTINGS, "epochs": 5, "batch_size": 32, "hidden_units": 64}
CONV_SETTINGS = {**SETTINGS, "epochs": 3, "architecture": "conv", "channels": 8}


@pytest.fixture(scope="module")
def training_images(data_spec):
    from metamers.data import load_dataset

    return load_dataset(data_spec, train=True).images[:1000]


@pytest.fixture(scope="module")
def relu2_decoder(trained_model, training_images):
    return decoder_lib.train_decoder(trained_model, "relu2", training_images, SETTINGS, 0,
                                     torch.device("cpu"), "cnn")


@pytest.fixture(scope="module")
def relu1_conv_decoder(trained_model, training_images):
    return decoder_lib.train_decoder(trained_model, "relu1", training_images, CONV_SETTINGS, 0,
                                     torch.device("cpu"), "cnn")


@pytest.mark.parametrize(("shape", "max_inputs", "side"), [
    ((32, 28, 28), 4096, 11),   # 32 * 11 * 11 = 3,872 values
    ((8, 7, 7), 4096, None),    # fits: not pooled
    ((64,), 16, None),          # not feature maps: never pooled
    ((512, 4, 4), 256, 1),      # more channels than inputs: global average
])
def test_only_feature_maps_wider_than_max_inputs_are_pooled(shape, max_inputs, side):
    assert decoder_lib.pooled_side(shape, max_inputs) == side
    if side:
        assert shape[0] * side * side <= max(max_inputs, shape[0])


def test_a_decoder_reconstructs_unseen_images_better_than_their_mean(relu2_decoder,
                                                                      trained_model, references):
    """On test images it never saw, the decoded images are nearer their originals than the
    training images' mean image is."""
    images = references[0]
    decoded = decoder_lib.decoded_starts([relu2_decoder], [trained_model], ["relu2"], ["cnn"],
                                         images, torch.device("cpu"))
    assert decoded.shape == images.shape
    assert decoded.min() >= 0 and decoded.max() <= 1
    mean_image = torch.full_like(images, float(images.mean()))
    assert (decoded - images).pow(2).mean() < 0.5 * (mean_image - images).pow(2).mean()


def test_training_a_decoder_twice_gives_identical_weights(relu2_decoder, trained_model,
                                                          training_images):
    again = decoder_lib.train_decoder(trained_model, "relu2", training_images, SETTINGS, 0,
                                      torch.device("cpu"), "cnn")
    for name, value in relu2_decoder.state_dict().items():
        assert torch.equal(value, again.state_dict()[name]), name


@pytest.mark.parametrize("settings", [{**CONV_SETTINGS, "epochs": 1},
                                      {**SETTINGS, "epochs": 1, "activation_weight": 1.0}])
def test_conv_and_activation_fitted_decoders_train_identically_twice(settings, trained_model,
                                                                     training_images):
    first, again = (decoder_lib.train_decoder(trained_model, "relu2", training_images[:300],
                                              settings, 0, torch.device("cpu"), "cnn")
                    for _ in range(2))
    for name, value in first.state_dict().items():
        assert torch.equal(value, again.state_dict()[name]), name


def test_a_saved_decoder_loads_safely_and_decodes_the_same(relu2_decoder, trained_model,
                                                           references, tmp_path):
    path = tmp_path / "relu2.pt"
    decoder_lib.save_decoder(relu2_decoder, path, {"model": "cnn", "layer": "relu2"})
    loaded = decoder_lib.load_decoder(path, torch.device("cpu"))
    args = ([trained_model], ["relu2"], ["cnn"], references[0], torch.device("cpu"))
    assert torch.equal(decoder_lib.decoded_starts([loaded], *args),
                       decoder_lib.decoded_starts([relu2_decoder], *args))
    assert torch.load(path, weights_only=True)["attrs"] == {"model": "cnn", "layer": "relu2"}


def test_a_corrupt_decoder_file_names_itself_and_the_fix(tmp_path):
    path = tmp_path / "broken.pt"
    path.write_bytes(b"not a decoder")
    with pytest.raises(ValueError, match="broken.pt.*rerun"):
        decoder_lib.load_decoder(path, torch.device("cpu"))


def test_a_missing_decoder_file_names_itself_and_the_rule_that_makes_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="absent.pt is missing.*train_decoder"):
        decoder_lib.load_decoder(tmp_path / "absent.pt", torch.device("cpu"))


def test_a_joint_start_averages_its_members_decoded_images(relu2_decoder, trained_model,
                                                           training_images, references):
    fc_decoder = decoder_lib.train_decoder(trained_model, "fc_relu", training_images[:300],
                                           {**SETTINGS, "epochs": 1}, 0, torch.device("cpu"))
    images, cpu = references[0], torch.device("cpu")
    single = [decoder_lib.decoded_starts([decoder], [trained_model], [layer], ["cnn"], images,
                                         cpu)
              for decoder, layer in ((relu2_decoder, "relu2"), (fc_decoder, "fc_relu"))]
    joint = decoder_lib.decoded_starts([relu2_decoder, fc_decoder], [trained_model] * 2,
                                       ["relu2", "fc_relu"], ["cnn", "cnn"], images, cpu)
    torch.testing.assert_close(joint, (single[0] + single[1]) / 2)


def test_the_training_sample_is_seeded_and_capped_by_the_split():
    first = decoder_lib.training_sample_indices(100, 30, seed=1)
    assert (first == decoder_lib.training_sample_indices(100, 30, seed=1)).all()
    assert len(set(first)) == 30
    assert len(decoder_lib.training_sample_indices(10, 30, seed=1)) == 10


@pytest.mark.parametrize("shape", [(32, 28, 28), (64, 14, 14), (64, 7, 7), (8, 5, 5),
                                   (4, 56, 56)])
def test_the_upconvolution_brings_any_feature_maps_to_the_image_size(shape):
    net = decoder_lib.upconvolution(shape, (1, 28, 28), channels=4)
    decoded = net(torch.randn(2, *shape))
    assert decoded.shape == (2, 1, 28, 28)
    assert decoded.min() >= 0 and decoded.max() <= 1


def test_a_conv_decoder_keeps_where_things_are_better_than_the_mlp(
        relu1_conv_decoder, trained_model, training_images, references):
    """At ``relu1`` (full-size feature maps, which the MLP pools to 11 x 11) the conv decoder's
    images of unseen references are nearer them than the MLP's, trained on the same images."""
    assert relu1_conv_decoder.convolutional
    mlp = decoder_lib.train_decoder(trained_model, "relu1", training_images, SETTINGS, 0,
                                    torch.device("cpu"), "cnn")
    images, cpu = references[0], torch.device("cpu")
    errors = [(decoder_lib.decoded_starts([decoder], [trained_model], ["relu1"], ["cnn"],
                                          images, cpu) - images).pow(2).mean()
              for decoder in (relu1_conv_decoder, mlp)]
    assert errors[0] < 0.5 * errors[1]


def test_a_saved_conv_decoder_loads_and_decodes_the_same(relu1_conv_decoder, trained_model,
                                                         references, tmp_path):
    path = tmp_path / "relu1.pt"
    decoder_lib.save_decoder(relu1_conv_decoder, path, {"model": "cnn", "layer": "relu1"})
    loaded = decoder_lib.load_decoder(path, torch.device("cpu"))
    assert loaded.convolutional
    args = ([trained_model], ["relu1"], ["cnn"], references[0], torch.device("cpu"))
    assert torch.equal(decoder_lib.decoded_starts([loaded], *args),
                       decoder_lib.decoded_starts([relu1_conv_decoder], *args))


def test_a_conv_decoder_of_a_layer_without_feature_maps_is_the_mlp(trained_model,
                                                                   training_images):
    fc_decoder = decoder_lib.train_decoder(trained_model, "fc_relu", training_images[:300],
                                           {**CONV_SETTINGS, "epochs": 1}, 0, torch.device("cpu"))
    assert not fc_decoder.convolutional and fc_decoder.net is fc_decoder.mlp


def test_fitting_the_activations_too_brings_the_decoded_images_nearer_metamers(
        trained_model, training_images, references):
    """With an ``activation_weight`` the decoder also fits the layer's activations of its
    images: their synthesis loss on unseen references falls below the pixel-only decoder's."""
    settings = {**SETTINGS, "epochs": 3}
    cpu, images = torch.device("cpu"), references[0]
    extractor = activations.feature_extractor(trained_model, ["fc_relu"], "cnn")
    errors = []
    for weight in (0.0, 1.0):
        decoder = decoder_lib.train_decoder(trained_model, "fc_relu", training_images,
                                            {**settings, "activation_weight": weight}, 0, cpu,
                                            "cnn")
        decoded = decoder_lib.decoded_starts([decoder], [trained_model], ["fc_relu"], ["cnn"],
                                             images, cpu)
        errors.append(float(decoder_lib.activation_error(extractor, "fc_relu", decoded, images)))
    assert errors[1] < 0.8 * errors[0]


def test_the_activation_error_is_the_synthesis_loss_without_its_l1_term(trained_model,
                                                                       references):
    images = references[0][:6]
    others = images.flip(0)
    extractor = activations.feature_extractor(trained_model, ["relu2"], "cnn")
    objective = LayerObjective([trained_model], ["relu2"], ["cnn"], images)
    expected = objective.loss_per_image(others, torch.arange(len(images))).mean()
    assert float(decoder_lib.activation_error(extractor, "relu2", others, images)) == \
        pytest.approx(expected, rel=1e-5)
