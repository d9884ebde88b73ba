"""The loss of a synthesis and its gradient at the pixels, in closed form from the layer on.

Loss per member: ||a(x) - a(ref)||^2 / ||a(ref)||^2 at its generating layer (so layers and
models are comparable), plus, with an ``l1_weight``, l1_weight ||a(x) - a(ref)||_1 /
||a(ref)||_1; for a set of members, the mean over them. Losses are summed over the
batch so each metamer's gradient is its own.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch import nn

from metamers.activations import feature_extractor, flat
from metamers.fake_relu import where_relu


def reference_rows(indices: torch.Tensor, count: int) -> slice | np.ndarray:
    """Rows of per-reference arrays for metamers ``indices`` (sorted, unique) of ``count``
    references: a view when they are all of them."""
    return slice(None) if indices.shape[0] == count else indices.cpu().numpy()


class LayerObjective:
    """The loss of images against their references at each member's generating layer.

    ``models``, ``layers`` and ``names`` are the members', ``reference_images`` (N, C, H, W) on
    the device the models are on. ``compile_mode`` runs the steps' forward passes through
    ``torch.compile`` in that mode. With ``fake_relu``, a generating layer that is a ReLU
    passes its gradient on unchanged (:mod:`metamers.fake_relu`; same values and loss). An
    ``l1_weight`` adds the L1 term, whose gradient does not vanish as a unit's difference
    does: it drives units that the reference holds at zero to exactly zero, where the squared
    term leaves them slightly positive and Spearman's tied zeros fail (docs/generation.md).
    """

    def __init__(self, models: list[nn.Module], layers: list[str], names: list[str],
                 reference_images: torch.Tensor, compile_mode: str | None = None,
                 fake_relu: bool = False, l1_weight: float = 0.0):
        device = reference_images.device
        self.l1_weight = l1_weight
        self.layers = layers
        self.count = len(reference_images)
        self.extractors = [feature_extractor(model, [layer], name).to(device)
                           for model, layer, name in zip(models, layers, names)]
        if fake_relu:
            self.extractors = [where_relu(extractor, layer, name) for extractor, layer, name
                               in zip(self.extractors, layers, names)]
        with torch.no_grad():  # each in the layer's own shape and memory layout
            self.reference_targets = [extractor(reference_images)[layer]
                                      for extractor, layer in zip(self.extractors, layers)]
        reference_norms = [flat(target).pow(2).sum(1).clamp_min(1e-12)
                           for target in self.reference_targets]
        # ||a_ref||^2 per member and reference, where losses are formed (on the host)
        self.squared_reference_norms = torch.stack(reference_norms).cpu().numpy()
        # d loss / d a = 2 (a - a_ref) / (||a_ref||^2 members): the factor per image, shaped
        # to scale the images' gradient
        image_rows = (-1,) + (1,) * (reference_images.ndim - 1)
        self.gradient_scales = [(2 / len(models) / norm).view(image_rows)
                                for norm in reference_norms]
        # ||a_ref||_1, and the L1 term's gradient l1_weight sign(a - a_ref) / ||a_ref||_1 in
        # units of that factor: sign_weight sign(a - a_ref) beside a - a_ref
        l1_norms = [flat(target).abs().sum(1).clamp_min(1e-12) for target in self.reference_targets]
        self.l1_reference_norms = torch.stack(l1_norms).cpu().numpy()
        self.sign_weights = [(l1_weight * squared / (2 * l1)).view((-1,) + (1,) * (target.ndim - 1))
                             for squared, l1, target in zip(reference_norms, l1_norms,
                                                            self.reference_targets)]
        self.compiled_extractors = [torch.compile(extractor, mode=compile_mode)
                                    for extractor in self.extractors] if compile_mode else None

    @property
    def step_extractors(self) -> list[nn.Module]:
        """The extractors of the steps' forward passes (compiled, if asked)."""
        return self.compiled_extractors or self.extractors

    def member_distances(self, extractors: list[nn.Module], images: torch.Tensor,
                         indices: torch.Tensor) -> Iterator[tuple[torch.Tensor, ...]]:
        """Per member, from its ``extractors`` entry, for ``images`` (n, C, H, W) of the
        references ``indices`` (n,): the distances ||a - a_ref|| and ||a - a_ref||_1 (n,) at
        the generating layer (the second None without an L1 term), the loss's gradient at the
        layer up to a factor per image, a - a_ref (+ sign_weight sign(a - a_ref) with an L1
        term; n, ...), that factor (n, 1, 1, 1), 2 / (||a_ref||^2 members), and the
        activations a (n, ...). Activations keep the layer's shape and memory layout:
        flattening a channels-last one would copy it."""
        all_rows = indices.shape[0] == self.count
        for extractor, layer, target, scale, sign_weight in zip(
                extractors, self.layers, self.reference_targets, self.gradient_scales,
                self.sign_weights):
            if not all_rows:  # a copy of the targets costs as much as an activation pass
                target, scale, sign_weight = target[indices], scale[indices], sign_weight[indices]
            activation = extractor(images)[layer]
            difference = activation.detach() - target  # outside autograd's graph
            dimensions = tuple(range(1, difference.ndim))
            distance = torch.linalg.vector_norm(difference, dim=dimensions)
            l1_distance = None
            if self.l1_weight:
                l1_distance = torch.linalg.vector_norm(difference, ord=1, dim=dimensions)
                difference.add_(difference.sign().mul_(sign_weight))
            yield distance, l1_distance, difference, scale, activation

    def losses(self, distances: list[torch.Tensor], l1_distances: list[torch.Tensor | None],
               indices: torch.Tensor) -> np.ndarray:
        """(n,) per image, the mean over members of ||a - a_ref||^2 / ||a_ref||^2 (+ the L1
        term), from each member's (n,) ``distances`` and ``l1_distances`` of the metamers
        ``indices``. Squared and divided on the host, where the trace needs them anyway (one
        transfer from a GPU), not as device operations: each costs a step some microseconds."""
        rows = reference_rows(indices, self.count)
        if len(distances) == 1:
            losses = np.square(distances[0].cpu().numpy()) / self.squared_reference_norms[0, rows]
        else:
            losses = (np.square(torch.stack(distances).cpu().numpy())
                      / self.squared_reference_norms[:, rows]).mean(0)
        if self.l1_weight:
            losses += self.l1_weight * (torch.stack(l1_distances).cpu().numpy()
                                        / self.l1_reference_norms[:, rows]).mean(0)
        return losses

    @torch.no_grad()
    def loss_per_image(self, images: torch.Tensor, indices: torch.Tensor) -> np.ndarray:
        """(n,) the loss of ``images`` (n, C, H, W) against references ``indices``."""
        distances, l1_distances, *_ = zip(*self.member_distances(self.extractors, images,
                                                                  indices))
        return self.losses(list(distances), list(l1_distances), indices)

    def backward(self, images: torch.Tensor, indices: torch.Tensor, range_penalty: float,
                 keep_activations: bool = False, scale_gradient: bool = True
                 ) -> tuple[np.ndarray, float, list[torch.Tensor]]:
        """Backpropagate the loss of ``images`` (n, C, H, W; of references ``indices``) into
        their graph, one member at a time.

        The loss's gradient at the layer is written down, not derived by autograd through
        the loss, which would add four passes over the activations, as costly as the model at
        a wide, cheap layer (``relu1``). The layer's backward starts from the difference
        a - a_ref and each image's factor scales its (far smaller) gradient at the pixels:
        images do not interact in a model in eval mode, so row i of the pixels' gradient
        depends on row i of the layer's only. Without ``scale_gradient`` the factor is left
        out of the first member's gradient, for a caller that divides each image's gradient by
        its norm anyway (one member, no range penalty). Each member's graph is freed before
        the next member runs, so memory is bounded by the largest member, not their sum.
        Returns the (n,) loss per image (on the host), the range penalty (summed over images;
        0 without one) and, if ``keep_activations``, each member's detached activations.
        """
        pixels = images.detach().requires_grad_(True)
        distances, l1_distances, activations, pixel_gradient = [], [], [], None
        for distance, l1_distance, difference, scale, activation in self.member_distances(
                self.step_extractors, pixels, indices):
            (gradient,) = torch.autograd.grad(activation, pixels, difference)
            if pixel_gradient is None:
                pixel_gradient = gradient.mul_(scale) if scale_gradient else gradient
            else:
                pixel_gradient.addcmul_(gradient, scale)
            distances.append(distance)
            l1_distances.append(l1_distance)
            if keep_activations:
                activations.append(activation.detach())
        penalty = 0.0
        if range_penalty:
            with torch.no_grad():
                outside = pixels - pixels.clamp(0, 1)
                penalty = range_penalty * float(outside.pow(2).sum())
                pixel_gradient.add_(outside, alpha=2 * range_penalty)
        _accumulate(images, pixel_gradient)
        return self.losses(distances, l1_distances, indices), penalty, activations


def _accumulate(images: torch.Tensor, gradient: torch.Tensor) -> None:
    """Give ``images``' graph its ``gradient``: as the gradient itself of a leaf without one
    (the parameter, nothing between), else through the graph to the leaf."""
    if not (images.is_leaf and images.grad is None):
        images.backward(gradient)
        return
    if not (gradient.stride() == images.stride()  # from a channels-last model:
            or images.is_contiguous() and gradient.is_contiguous()):
        # fused optimisers read the gradient's memory as laid out like the parameter's
        gradient = torch.empty_like(images).copy_(gradient)
    images.grad = gradient
