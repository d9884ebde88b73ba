"""The model after a generating layer (its head), cut from the model's graph for synthesis."""

from __future__ import annotations

import pytest
import torch

from metamers import zoo
from metamers.activations import LOGITS, feature_extractor
from metamers.heads import head_agrees, layer_to_logits


@pytest.mark.parametrize("architecture, layers", [
    ("small_cnn", ["relu1", "relu2", "fc_relu"]),
    ("small_resnet", ["layer1", "layer2", "layer3"]),
    ("small_vgg", ["block1", "fc_relu"]),
    ("mlp", ["hidden1", "hidden2"]),
    ("small_vit", ["encoder.layers.encoder_layer_0", "encoder.layers.encoder_layer_3"]),
])
def test_the_rest_of_the_model_from_a_layer_gives_the_models_logits(architecture, layers):
    """From the generating layers of every local family (and its output layer, where nothing
    is left), the model after the layer turns the layer's activations into exactly the logits of
    the whole model."""
    torch.manual_seed(0)
    info = {"channels": 1, "image_size": 28, "class_names": [str(i) for i in range(5)],
            "mean": [0.5], "std": [0.25]}
    model = zoo.build_local({"architecture": architecture}, info).eval()
    images = torch.rand(6, 1, 28, 28)
    for layer in [*layers, zoo.layer_names(model)[-1]]:
        extractor = feature_extractor(model, [layer], with_logits=True)
        head = layer_to_logits(extractor, layer)
        assert head is not None, layer
        with torch.no_grad():
            whole = extractor(images)
            logits = head(whole[layer].clone())[LOGITS]
        torch.testing.assert_close(logits, whole[LOGITS], rtol=0, atol=0)


def test_no_rest_of_the_model_where_a_skip_connection_crosses_the_layer():
    """Inside a residual block the block's input is added after the layer: no head."""
    info = {"channels": 1, "image_size": 28, "class_names": ["a", "b"], "mean": [0.5],
            "std": [0.25]}
    model = zoo.build_local({"architecture": "small_resnet"}, info).eval()
    inside = next(name for name in zoo.layer_names(model) if name.startswith("layer2.0.conv1"))
    assert layer_to_logits(feature_extractor(model, [inside], with_logits=True),
                           inside) is None


class ConvThenLinear(torch.nn.Module):
    """A convolution, its ReLU (the layer ``relu``) and a linear read-out; subclasses read sizes
    around the layer in their ``forward``."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 2, 3)
        self.fc = torch.nn.Linear(2 * 26 * 26, 3)


class BatchSizeFromInput(ConvThenLinear):
    """Reads the batch size from its input and uses it after the layer (as EfficientNet does)."""

    def forward(self, images):
        batch = images.size(0)
        return self.fc(torch.relu(self.conv(images)).view(batch, -1))


class SizeAfterTheLayer(ConvThenLinear):
    """Reads ``size(0)`` of a value after the layer that is not the batch size."""

    def forward(self, images):
        columns = torch.relu(self.conv(images)).flatten(1).t()  # (features, batch)
        return self.fc(columns.reshape(columns.size(0), -1).t())


def cut_at_relu(model: ConvThenLinear) -> tuple[torch.nn.Module | None, dict]:
    """``model`` cut at ``relu``, and the whole model's outputs on 4 random images."""
    torch.manual_seed(0)
    images = torch.rand(4, 1, 28, 28)
    extractor = feature_extractor(model.eval(), ["relu"], with_logits=True)
    with torch.no_grad():
        return layer_to_logits(extractor, "relu"), extractor(images)


def test_the_batch_size_read_before_the_layer_is_read_from_the_activations():
    head, whole = cut_at_relu(BatchSizeFromInput())
    assert head is not None
    assert head_agrees(head, whole["relu"], whole[LOGITS])
    assert not head_agrees(head, whole["relu"], whole[LOGITS] + 1e-3)
    assert not head_agrees(head, whole["relu"][:, :1], whole[LOGITS])  # the head raises


def test_a_size_read_after_the_layer_is_left_alone():
    head, whole = cut_at_relu(SizeAfterTheLayer())
    assert head_agrees(head, whole["relu"], whole[LOGITS])
