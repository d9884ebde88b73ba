"""benchmarks/learned_start.py: the decoder that makes the learned start."""

from __future__ import annotations

import torch
from benchmark_module import benchmark_module


def test_the_decoder_inverts_activations_better_than_the_mean_image():
    with benchmark_module("learned_start") as learned_start:
        generator = torch.Generator().manual_seed(0)
        images = torch.rand(512, 1, 6, 6, generator=generator).round()  # binary patterns
        projection = torch.randn(36, 50, generator=generator)
        activations = torch.relu(images.flatten(1) @ projection) * 7.0  # any scale
        decoder = learned_start.train_decoder(activations, images, epochs=30, batch_size=64)
        with torch.no_grad():
            decoded = decoder(activations)
    assert decoded.shape == images.shape
    assert decoded.min() >= 0 and decoded.max() <= 1
    mean_image_error = ((images - images.mean(0)) ** 2).mean()
    assert ((decoded - images) ** 2).mean() < 0.25 * mean_image_error
