"""fake_relu: ReLU's values forward, the identity backward, swapped in at one layer only."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from metamers.activations import feature_extractor
from metamers.fake_relu import fake_relu, with_fake_relu
from metamers.zoo import SmallCNN


def test_fake_relu_is_relu_forward_and_identity_backward():
    values = torch.linspace(-2, 2, 9, dtype=torch.float64, requires_grad=True)
    outputs = fake_relu(values)
    torch.testing.assert_close(outputs, torch.relu(values))
    incoming = torch.arange(1.0, 10.0, dtype=torch.float64)
    outputs.backward(incoming)
    torch.testing.assert_close(values.grad, incoming)  # negatives too, where ReLU gives 0
    assert (values[values.grad != 0] < 0).any()


@pytest.fixture
def small_cnn() -> SmallCNN:
    torch.manual_seed(0)
    return SmallCNN(in_channels=1, num_classes=10, image_size=28, mean=[0.3], std=[0.3],
                    width=4).eval()


def image_gradient(extractor: nn.Module, node: str, images: torch.Tensor) -> torch.Tensor:
    images = images.clone().requires_grad_(True)
    extractor(images)[node].sum().backward()
    return images.grad


def test_swapping_the_generating_relu_keeps_values_and_passes_gradient_through(small_cnn):
    images = torch.rand(3, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    extractor = feature_extractor(small_cnn, ["relu2"])
    swapped = with_fake_relu(extractor, "relu2")
    torch.testing.assert_close(swapped(images)["relu2"], extractor(images)["relu2"], rtol=0,
                               atol=0)
    assert (extractor(images)["relu2"] == 0).float().mean() > 0.2  # many units at zero
    # identity backward at relu2: the gradient of relu2's sum is that of its input's sum
    before_relu = image_gradient(feature_extractor(small_cnn, ["conv2"]), "conv2", images)
    torch.testing.assert_close(image_gradient(swapped, "relu2", images), before_relu)
    assert not torch.allclose(image_gradient(extractor, "relu2", images), before_relu)
    # the other ReLUs and the model stay as they were
    assert isinstance(small_cnn.relu2, nn.ReLU)
    torch.testing.assert_close(image_gradient(feature_extractor(small_cnn, ["relu2"]), "relu2",
                                              images), image_gradient(extractor, "relu2", images))


class FunctionalReLU(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(6, 5)
        self.pool = nn.Identity()

    def forward(self, values: torch.Tensor) -> torch.Tensor:
        return self.pool(torch.relu(self.linear(values)))


def test_a_functional_relu_is_swapped_and_other_layers_are_refused():
    model = FunctionalReLU()
    extractor = feature_extractor(model, ["relu", "pool"])
    values = torch.randn(4, 6, generator=torch.Generator().manual_seed(2), requires_grad=True)
    swapped = with_fake_relu(extractor, "relu")
    torch.testing.assert_close(swapped(values)["relu"], extractor(values)["relu"])
    (gradient,) = torch.autograd.grad(swapped(values)["relu"].sum(), values)
    torch.testing.assert_close(gradient, model.linear.weight.sum(0).expand(4, 6))
    with pytest.raises(ValueError, match="not a ReLU"):
        with_fake_relu(extractor, "pool")
    with pytest.raises(ValueError, match="not an output"):
        with_fake_relu(extractor, "linear")
