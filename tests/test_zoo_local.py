"""Local architectures: every family builds for grey and colour inputs, names its documented
layers, and round-trips through the pipeline's loader."""

from __future__ import annotations

import pytest
import torch

from metamers import zoo

DOCUMENTED_LAYERS = {
    "small_cnn": ["relu1", "relu2", "fc_relu"],
    "small_resnet": ["layer1", "layer2", "layer3"],
    "small_vgg": ["block1", "block2", "fc_relu"],
    "mlp": ["hidden1", "hidden2"],
    "small_vit": ["encoder.layers.encoder_layer_0", "encoder.layers.encoder_layer_3",
                  "encoder.ln"],
}


def data_info(channels: int, size: int) -> dict:
    return {"channels": channels, "image_size": size, "class_names": [str(i) for i in range(7)],
            "mean": [0.5] * channels, "std": [0.25] * channels}


def test_every_local_architecture_is_documented():
    assert set(zoo.LOCAL_ARCHITECTURES) == set(DOCUMENTED_LAYERS)


@pytest.mark.parametrize("architecture", sorted(DOCUMENTED_LAYERS))
@pytest.mark.parametrize("channels, size", [(1, 28), (3, 32)])
def test_architecture_builds_and_names_its_layers(architecture, channels, size):
    torch.manual_seed(0)
    model = zoo.build_local({"architecture": architecture}, data_info(channels, size)).eval()
    images = torch.rand(3, channels, size, size)
    assert model(images).shape == (3, 7)
    names = zoo.layer_names(model)
    assert set(DOCUMENTED_LAYERS[architecture]) <= set(names)


def test_saved_local_model_loads_back_identically(tmp_path):
    spec = {"source": "local", "architecture": "small_vit"}
    info = {"data": data_info(1, 28)}
    torch.manual_seed(0)
    model = zoo.build_local(spec, info["data"]).eval()
    torch.save(model.state_dict(), tmp_path / "vit.pt")
    loaded = zoo.load_model(tmp_path / "vit.pt", info, spec)
    images = torch.rand(2, 1, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(loaded(images), model(images))


def test_unknown_architecture_names_the_choices():
    with pytest.raises(ValueError, match="small_vit"):
        zoo.build_local({"architecture": "lenet"}, data_info(1, 28))
