"""Activations of named layers (torchvision graph nodes), flattened per image: what evaluation
extracts. Synthesis cuts models at a layer in :mod:`metamers.heads`."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

LOGITS = "__logits__"


def feature_extractor(model: nn.Module, layers: list[str], model_name: str = "model",
                      with_logits: bool = False) -> nn.Module:
    """A module returning ``{layer: activation}`` (plus ``LOGITS`` if asked) for ``layers``.

    Only the graph up to the deepest requested node runs, so extracting an early layer is cheap.
    """
    # torchvision only here: scoring and plotting jobs read ``LOGITS`` and ``flat`` without it
    from torchvision.models.feature_extraction import create_feature_extractor

    from metamers.zoo import check_layers, layer_names

    available = layer_names(model)
    check_layers(model_name, layers, available)
    return_nodes = {layer: layer for layer in layers}
    if with_logits and available[-1] not in return_nodes:
        return_nodes[available[-1]] = LOGITS
    extractor = create_feature_extractor(model, return_nodes=return_nodes)
    if with_logits and available[-1] in layers:  # the output layer asked for: one node, two names
        output = next(node for node in extractor.graph.nodes if node.op == "output")
        output.args = ({**output.args[0], LOGITS: output.args[0][available[-1]]},)
        extractor.recompile()
    return extractor.eval().requires_grad_(False)


def flat(activation: torch.Tensor) -> torch.Tensor:
    """(N, ...) -> (N, D)."""
    return activation.reshape(activation.shape[0], -1)


@torch.no_grad()
def extract(model: nn.Module, images: torch.Tensor, layers: list[str], device: torch.device,
            model_name: str = "model", batch_size: int = 256,
            projection_dim: int | None = None, seed: int = 0) -> dict[str, np.ndarray]:
    """Flattened float32 activations of ``images`` at ``layers``, plus the logits under ``LOGITS``.

    Layers wider than ``projection_dim`` are reduced by :func:`project`.
    """
    return extract_sets(model, {"images": images}, layers, device, model_name, batch_size,
                        projection_dim, seed)["images"]


@torch.no_grad()
def extract_sets(model: nn.Module, image_sets: dict[str, torch.Tensor], layers: list[str],
                 device: torch.device, model_name: str = "model", batch_size: int = 256,
                 projection_dim: int | None = None,
                 seed: int = 0) -> dict[str, dict[str, np.ndarray]]:
    """:func:`extract` for several image sets at once: ``{image_set: {layer: (N, D)}}``.

    The model is traced once. Wide layers are projected batch by batch (memory bounded by the
    projected size) while their projection matrix fits in ``STREAMED_PROJECTION_BYTES``; wider
    ones are projected once at the end, block by block.
    """
    extractor = feature_extractor(model, layers, model_name, with_logits=True).to(device)
    batches: dict[str, list[np.ndarray]] = {name: [] for name in [*layers, LOGITS]}
    matrices: dict[str, np.ndarray | None] = {}
    sizes = []
    for images in image_sets.values():
        sizes.append(len(images))
        for start in range(0, len(images), batch_size):
            outputs = extractor(images[start:start + batch_size].to(device))
            for name, value in outputs.items():
                values = flat(value).float().cpu().numpy()
                if projection_dim and name in layers and values.shape[1] > projection_dim:
                    if name not in matrices:
                        matrices[name] = _streamed_matrix(values.shape[1], projection_dim,
                                                          seed)
                    if matrices[name] is not None:
                        values = project(values, projection_dim, seed, matrices[name])
                batches[name].append(values)
    stacked = {name: np.concatenate(values) for name, values in batches.items()}
    for name, matrix in matrices.items():
        if matrix is None:
            stacked[name] = project(stacked[name], projection_dim, seed)
    bounds = np.cumsum([0, *sizes])
    return {image_set: {name: values[bounds[index]:bounds[index + 1]]
                        for name, values in stacked.items()}
            for index, image_set in enumerate(image_sets)}


STREAMED_PROJECTION_BYTES = 1 << 30  # projection matrices up to 1 GiB are kept for streaming


def _streamed_matrix(width: int, projection_dim: int, seed: int) -> np.ndarray | None:
    if width * projection_dim * 4 > STREAMED_PROJECTION_BYTES:
        return None
    return projection_matrix(width, projection_dim, seed)


PROJECTION_BLOCK = 4096  # input features per generated block of the projection matrix


def _projection_blocks(width: int, projection_dim: int, seed: int):
    """Row blocks of the projection matrix, each generated from (seed, width, first row)."""
    for start in range(0, width, PROJECTION_BLOCK):
        rng = np.random.default_rng([seed, width, start])
        rows = min(PROJECTION_BLOCK, width - start)
        yield start, rng.standard_normal((rows, projection_dim), dtype=np.float32) / np.float32(
            np.sqrt(projection_dim))


def projection_matrix(width: int, projection_dim: int, seed: int) -> np.ndarray:
    """The fixed (width, projection_dim) Gaussian projection used for layers of this width."""
    return np.concatenate([block for _, block in _projection_blocks(width, projection_dim, seed)])


def project(activation: np.ndarray, projection_dim: int, seed: int,
            matrix: np.ndarray | None = None) -> np.ndarray:
    """Random projection of (N, D) activations to (N, projection_dim) when D is larger.

    A fixed Gaussian projection (Johnson-Lindenstrauss; seeded by ``seed`` and the layer's
    width) keeps distances and, approximately, correlations. It is applied block by block, so
    memory stays bounded for wide (ImageNet) layers; ``matrix`` (:func:`projection_matrix`)
    saves regenerating the blocks when many batches are projected.
    """
    width = activation.shape[1]
    if width <= projection_dim:
        return activation
    blocks = (_projection_blocks(width, projection_dim, seed) if matrix is None else
              ((start, matrix[start:start + PROJECTION_BLOCK])
               for start in range(0, width, PROJECTION_BLOCK)))
    projected = np.zeros((len(activation), projection_dim), dtype=np.float32)
    for start, block in blocks:
        projected += activation[:, start:start + len(block)] @ block
    return projected
