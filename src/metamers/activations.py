"""Activations of named layers (torchvision graph nodes), flattened per image."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torchvision.models.feature_extraction import create_feature_extractor

from metamers.zoo import check_layers, layer_names

LOGITS = "__logits__"


def output_node(model: nn.Module) -> str:
    """The graph node whose value is the model's output (its logits)."""
    return layer_names(model)[-1]


def feature_extractor(model: nn.Module, layers: list[str], model_name: str = "model",
                      with_logits: bool = False) -> nn.Module:
    """A module returning ``{layer: activation}`` (plus ``LOGITS`` if asked) for ``layers``.

    Only the graph up to the deepest requested node runs, so extracting an early layer is cheap.
    """
    available = layer_names(model)
    check_layers(model_name, layers, available)
    return_nodes = {layer: layer for layer in layers}
    if with_logits:
        return_nodes[available[-1]] = LOGITS
    extractor = create_feature_extractor(model, return_nodes=return_nodes)
    return extractor.eval().requires_grad_(False)


def flat(activation: torch.Tensor) -> torch.Tensor:
    """(N, ...) -> (N, D)."""
    return activation.reshape(activation.shape[0], -1)


@torch.no_grad()
def extract(model: nn.Module, images: torch.Tensor, layers: list[str], device: torch.device,
            model_name: str = "model", batch_size: int = 256,
            projection_dim: int | None = None, seed: int = 0) -> dict[str, np.ndarray]:
    """Flattened float32 activations of ``images`` at ``layers``, plus the logits under ``LOGITS``.

    Layers wider than ``projection_dim`` are reduced by a fixed Gaussian random projection
    (Johnson-Lindenstrauss; seeded by ``seed`` and the layer's width), which keeps distances and,
    approximately, correlations.
    """
    extractor = feature_extractor(model, layers, model_name, with_logits=True).to(device)
    batches: dict[str, list[np.ndarray]] = {name: [] for name in [*layers, LOGITS]}
    for start in range(0, len(images), batch_size):
        outputs = extractor(images[start:start + batch_size].to(device))
        for name, value in outputs.items():
            batches[name].append(flat(value).float().cpu().numpy())
    activations = {name: np.concatenate(values) for name, values in batches.items()}
    if projection_dim:
        for name in layers:
            activations[name] = project(activations[name], projection_dim, seed)
    return activations


def projection_matrix(width: int, projection_dim: int, seed: int) -> np.ndarray:
    """The fixed (width, projection_dim) Gaussian projection used for layers of this width."""
    rng = np.random.default_rng([seed, width])
    return (rng.standard_normal((width, projection_dim)) / np.sqrt(projection_dim)).astype(
        np.float32)


def project(activation: np.ndarray, projection_dim: int, seed: int) -> np.ndarray:
    """Random projection of (N, D) activations to (N, projection_dim) when D is larger."""
    if activation.shape[1] <= projection_dim:
        return activation
    return activation @ projection_matrix(activation.shape[1], projection_dim, seed)
