"""Synthesis on every device present (the CPU, and CUDA where there is one) and its speed
options: fused optimiser steps in both memory layouts, torch.compile.
(The success check's Spearman correlation on the device: ``test_stats.py``.)

Small random models, no data set: these tests also run on a GPU machine without the project's
data (``pytest tests/test_generate_devices.py``).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torchvision.models.feature_extraction import create_feature_extractor

from metamers.generate import Member, MetamerSynthesis
from metamers.optimizers import OptimizerSettings

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(autouse=True)
def _float32_matrix_units():
    """Exact float32 on a GPU: these tests compare formulas, not TF32's rounding (cuDNN's
    default for convolutions, which differs between memory layouts)."""
    convolutions = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32 = convolutions


def colour_model(device: str, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(), torch.nn.Conv2d(8, 8, 3), torch.nn.ReLU(),
        torch.nn.Flatten(), torch.nn.Linear(8 * 8 * 8, 4)).eval().requires_grad_(False).to(device)


def colour_images(device: str, count: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """References and starts, (count, 3, 12, 12) each."""
    generator = torch.Generator().manual_seed(1)
    references, starts = torch.rand(2, count, 3, 12, 12, generator=generator).to(device)
    return references, starts


def normalised_error(model: torch.nn.Module, layer: str, images: torch.Tensor,
                     references: torch.Tensor, l1_weight: float = 0.0) -> torch.Tensor:
    """The loss per image through autograd: ||a(x) - a(ref)||^2 / ||a(ref)||^2 at ``layer``,
    plus l1_weight ||a(x) - a(ref)||_1 / ||a(ref)||_1."""
    extractor = create_feature_extractor(model, {layer: "layer"})
    activation = extractor(images)["layer"].flatten(1)
    target = extractor(references)["layer"].flatten(1).detach()
    return ((activation - target).pow(2).sum(1) / target.pow(2).sum(1)
            + l1_weight * (activation - target).abs().sum(1) / target.abs().sum(1))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("channels_last, l1_weight", [(False, 0.0), (True, 0.0), (True, 0.3)])
def test_the_images_gradient_is_that_of_the_loss(channels_last, l1_weight, device):
    """The gradient started at the layer in closed form and scaled per image at the pixels is
    autograd's through the mean loss over members (with its L1 term, if weighted), also for a
    subset of the metamers, pixels outside [0, 1] under a range penalty, and a channels-last
    copy of the models."""
    references, starts = colour_images(device, count=4)
    members = [Member("a", colour_model(device, seed=0), "1", 0.5),
               Member("b", colour_model(device, seed=1), "3", 0.5)]
    synthesis = MetamerSynthesis(members, references, torch.device(device), channels_last,
                                 l1_weight=l1_weight)
    indices = torch.tensor([0, 2, 3], device=device)
    starts = starts[indices] * 1.4 - 0.2
    pixels = starts.clone().requires_grad_(True)
    per_image, penalty, _ = synthesis.objective.backward(pixels, indices,
                                                           range_penalty=0.5)

    expected_pixels = starts.clone().requires_grad_(True)
    expected_per_image = torch.stack([
        normalised_error(member.model, member.layer, expected_pixels, references[indices],
                         l1_weight)
        for member in members]).mean(0)
    expected_penalty = 0.5 * (expected_pixels - expected_pixels.clamp(0, 1)).pow(2).sum()
    (expected_per_image.sum() + expected_penalty).backward()

    assert expected_penalty > 0
    np.testing.assert_allclose(per_image, expected_per_image.detach().cpu().numpy(), rtol=1e-5)
    assert penalty == pytest.approx(expected_penalty.item(), rel=1e-6)
    torch.testing.assert_close(pixels.grad, expected_pixels.grad, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("name", ["SGD", "Adam"])
def test_a_step_on_colour_images_follows_the_loss_gradient(name, channels_last, device):
    """One step of a (fused) optimiser on 3-channel images moves them as the same optimiser
    does on autograd's gradient. A channels-last model returns the images' gradient in its own
    layout; a fused optimiser that read it as laid out like the images would scramble it."""
    model = colour_model(device)
    references, starts = colour_images(device)
    synthesis = MetamerSynthesis([Member("rgb", model, "3", 0.5)], references,
                                 torch.device(device), channels_last)
    settings = OptimizerSettings(name, {"lr": 0.01})
    synthesis.setup(starts, settings)
    result = synthesis.synthesize(1, check_every=1000, stop_on_success=False)

    expected = starts.clone().requires_grad_(True)
    normalised_error(model, "3", expected, references).sum().backward()
    getattr(torch.optim, name)([expected], lr=0.01, foreach=False).step()
    np.testing.assert_allclose(result.metamers, expected.detach().clamp(0, 1).cpu().numpy(),
                               atol=1e-5)


@pytest.mark.parametrize("device", DEVICES)
def test_normalised_steps_follow_the_unit_gradient(device):
    """Steps of the default optimiser (normalised-gradient SGD with Nesterov momentum, fused)
    on one member's gradient, where the per-image factor is left out, move images as
    torch.optim does on autograd's gradient divided by its norm per image."""
    model = colour_model(device)
    references, starts = colour_images(device)
    synthesis = MetamerSynthesis([Member("rgb", model, "3", 0.5)], references,
                                 torch.device(device))
    kwargs = {"lr": 0.05, "momentum": 0.9, "nesterov": True}
    settings = OptimizerSettings("SGD", kwargs, gradient_normalization=True)
    synthesis.setup(starts, settings)
    result = synthesis.synthesize(4, check_every=1000, stop_on_success=False)

    expected = starts.clone().requires_grad_(True)
    optimizer = torch.optim.SGD([expected], **kwargs, foreach=False)
    for _ in range(4):
        expected.grad = None
        normalised_error(model, "3", expected, references).sum().backward()
        expected.grad /= expected.grad.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
        optimizer.step()
        with torch.no_grad():
            expected.clamp_(0, 1)
    np.testing.assert_allclose(result.metamers, expected.detach().cpu().numpy(), atol=1e-5)


@pytest.mark.parametrize("device", DEVICES)
def test_compiled_steps_give_the_eager_metamers(device):
    """torch.compile of the steps' forward passes computes the same metamers."""
    model = colour_model(device)
    references, starts = colour_images(device)
    settings = OptimizerSettings("SGD", {"lr": 0.05, "momentum": 0.9})
    results = []
    for mode in (None, "default"):
        synthesis = MetamerSynthesis([Member("rgb", model, "3", 0.5)], references,
                                     torch.device(device), compile_mode=mode)
        synthesis.setup(starts, settings)
        results.append(synthesis.synthesize(5, check_every=5, stop_on_success=False))
    eager, compiled = results
    np.testing.assert_allclose(compiled.metamers, eager.metamers, atol=1e-5)
    np.testing.assert_allclose(compiled.loss, eager.loss, rtol=1e-4)

