"""A learned start: a decoder trained on the training split to map one layer's activations
back to the image (Mahendran and Vedaldi 2015; Dosovitskiy and Brox 2016). Its output for a
reference's activations is that reference's starting image (init kind ``decoder``).

Two architectures; either way the inputs are first divided by their standard deviation over the
training images, the output passes through a sigmoid, and Adam fits it to the pixels' mean
squared error, plus, with an ``activation_weight``, that weight times the synthesis's loss of
the decoded images at the layer (their normalised squared activation error, through
``fake_relu`` where the layer is a ReLU): a decoder that makes near-metamers, not only
near-images. The reference images are never seen: they come from the test split.

- ``mlp`` (the default): feature maps wider than ``max_inputs`` values are average-pooled over
  space to at most that many (a fixed step that bounds the cost of wide early layers), then
  ``hidden_units`` ReLU units lead to the pixels.
- ``conv``, for feature maps (C, H, W): up-convolutional, as Dosovitskiy and Brox's decoders of
  convolutional layers. A 3x3 convolution to ``channels`` maps, then per doubling of the side
  needed to reach the image's a nearest-neighbour upsampling and a 3x3 convolution, all with
  ReLUs, a bilinear resize where the sides still differ, and a 3x3 convolution to the image's
  channels. It keeps where things are, which pooling loses: at early layers its images are
  nearer the reference. Layers without feature maps get the MLP.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from torch import nn

from metamers import activations as activation_lib
from metamers import store
from metamers.fake_relu import where_relu
from metamers.runtime import get_logger

log = get_logger("metamers.decoder")


def pooled_side(shape: tuple[int, ...], max_inputs: int) -> int | None:
    """The side of the square the (C, H, W) feature maps ``shape`` are average-pooled to so
    that at most ``max_inputs`` values remain; None where they are not maps or already fit."""
    if len(shape) != 3 or math.prod(shape) <= max_inputs:
        return None
    return max(1, math.isqrt(max_inputs // shape[0]))


def upconvolution(activation_shape: tuple[int, int, int], image_shape: tuple[int, ...],
                  channels: int) -> nn.Sequential:
    """The ``conv`` decoder's layers: (N, C, H, W) feature maps -> (N, *image_shape) pixels in
    [0, 1] (see the module's docstring)."""
    (in_channels, height, width), (image_height, image_width) = (activation_shape,
                                                                 image_shape[-2:])
    doublings = max(0, math.ceil(math.log2(max(image_height / height, image_width / width))))
    layers = [nn.Conv2d(in_channels, channels, 3, padding=1), nn.ReLU()]
    for _ in range(doublings):
        layers += [nn.Upsample(scale_factor=2), nn.Conv2d(channels, channels, 3, padding=1),
                   nn.ReLU()]
    if (height << doublings, width << doublings) != (image_height, image_width):
        layers.append(nn.Upsample(size=(image_height, image_width), mode="bilinear"))
    return nn.Sequential(*layers, nn.Conv2d(channels, image_shape[0], 3, padding=1),
                         nn.Sigmoid())


class Decoder(nn.Module):
    """Activations of one layer (N, *activation_shape) -> images (N, *image_shape) in [0, 1]:
    :meth:`inputs` (fixed) then :attr:`net` (trained)."""

    def __init__(self, activation_shape: tuple[int, ...], image_shape: tuple[int, ...],
                 hidden_units: int, max_inputs: int, architecture: str = "mlp",
                 channels: int = 0):
        super().__init__()
        self.convolutional = architecture == "conv" and len(activation_shape) == 3
        side = None if self.convolutional else pooled_side(activation_shape, max_inputs)
        self.pool = nn.AdaptiveAvgPool2d(side) if side else nn.Identity()
        self.register_buffer("scale", torch.ones(()))  # the inputs' SD over the training images
        if self.convolutional:
            self.upconvolution = upconvolution(activation_shape, image_shape, channels)
        else:
            inputs = activation_shape[0] * side * side if side else math.prod(activation_shape)
            self.mlp = nn.Sequential(nn.Linear(inputs, hidden_units), nn.ReLU(),
                                     nn.Linear(hidden_units, math.prod(image_shape)),
                                     nn.Sigmoid(), nn.Unflatten(1, tuple(image_shape)))
        self.shapes = {"activation_shape": list(activation_shape),
                       "image_shape": list(image_shape), "hidden_units": hidden_units,
                       "max_inputs": max_inputs, "architecture": architecture,
                       "channels": channels}

    @property
    def net(self) -> nn.Module:
        """The trained part: the up-convolution or the MLP."""
        return self.upconvolution if self.convolutional else self.mlp

    def inputs(self, layer_activations: torch.Tensor) -> torch.Tensor:
        """The fixed part: (N, ...) activations -> the net's inputs (N, ...): feature maps as
        they are for the conv net; flattened, and pooled where too wide, for the MLP."""
        if self.convolutional:
            return layer_activations
        return self.pool(layer_activations).flatten(1)

    def forward(self, layer_activations: torch.Tensor) -> torch.Tensor:
        return self.net(self.inputs(layer_activations) / self.scale)


@torch.no_grad()
def layer_inputs(extractor: nn.Module, decoder: Decoder, images: torch.Tensor, layer: str,
                 device: torch.device, batch_size: int = 500) -> torch.Tensor:
    """The decoder's fixed inputs (N, inputs) for ``images``, on ``device``, batch by batch."""
    return torch.cat([decoder.inputs(extractor(batch.to(device))[layer])
                      for batch in images.split(batch_size)])


def train_decoder(model: nn.Module, layer: str, images: torch.Tensor, settings: dict, seed: int,
                  device: torch.device, model_name: str = "model") -> Decoder:
    """A :class:`Decoder` of ``model``'s ``layer``, fitted to ``images`` (N, C, H, W) in [0, 1]
    by Adam (``settings``: :func:`metamers.inits.decoder_settings`), each epoch in a
    ``seed``-ed order; logs each epoch's pixel (and activation) error."""
    torch.manual_seed(seed)
    extractor = activation_lib.feature_extractor(model, [layer], model_name)
    with torch.no_grad():
        shape = tuple(extractor(images[:1].to(device))[layer].shape[1:])
    decoder = Decoder(shape, tuple(images.shape[1:]), settings["hidden_units"],
                      settings["max_inputs"], settings.get("architecture", "mlp"),
                      settings.get("channels", 0)).to(device)
    inputs = layer_inputs(extractor, decoder, images, layer, device)
    decoder.scale.fill_(inputs.std())
    inputs = inputs / decoder.scale
    targets = images.to(device)
    weight = settings.get("activation_weight", 0.0)
    layer_extractor = where_relu(extractor, layer, model_name) if weight else None
    optimizer = torch.optim.Adam(decoder.net.parameters(), settings["lr"])
    generator = torch.Generator().manual_seed(seed)
    for epoch in range(settings["epochs"]):
        order = torch.randperm(len(images), generator=generator)
        pixel_total = activation_total = 0.0
        for batch in order.split(settings["batch_size"]):
            batch = batch.to(device)
            decoded = decoder.net(inputs[batch])
            loss = nn.functional.mse_loss(decoded, targets[batch])
            pixel_total += float(loss.detach()) * len(batch)
            if weight:
                error = activation_error(layer_extractor, layer, decoded, targets[batch])
                activation_total += float(error.detach()) * len(batch)
                loss = loss + weight * error
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        log.info("%s at %s: decoder epoch %d/%d, pixel MSE %.5f%s", model_name, layer, epoch + 1,
                 settings["epochs"], pixel_total / len(images),
                 f", activation error {activation_total / len(images):.5f}" if weight else "")
    return decoder.eval().requires_grad_(False)


def activation_error(extractor: nn.Module, layer: str, images: torch.Tensor,
                     originals: torch.Tensor) -> torch.Tensor:
    """The mean over images of ||a(images) - a(originals)||^2 / ||a(originals)||^2 at
    ``layer`` of ``extractor``: the synthesis's loss (:mod:`metamers.objective`, without its
    L1 term) of decoded ``images`` against the ``originals`` they decode."""
    with torch.no_grad():
        target = activation_lib.flat(extractor(originals)[layer])
    difference = activation_lib.flat(extractor(images)[layer]) - target
    return (difference.pow(2).sum(1) / target.pow(2).sum(1).clamp_min(1e-12)).mean()


def save_decoder(decoder: Decoder, path: Path, attrs: dict) -> None:
    """Write the decoder's state and shapes (and ``attrs``: its settings, model and layer)."""
    with store.atomic_path(path) as partial:
        torch.save({"state_dict": decoder.state_dict(), **decoder.shapes, "attrs": attrs},
                   partial)


def load_decoder(path: Path, device: torch.device) -> Decoder:
    """A decoder written by :func:`save_decoder` (loaded with ``weights_only``)."""
    if not Path(path).exists():
        raise FileNotFoundError(f"{path} is missing: Snakemake's rule train_decoder makes it "
                                f"(`snakemake --cores all {path}` in the run's folder).")
    try:
        saved = torch.load(path, map_location=device, weights_only=True)
        decoder = Decoder(tuple(saved["activation_shape"]), tuple(saved["image_shape"]),
                          saved["hidden_units"], saved["max_inputs"],
                          saved.get("architecture", "mlp"), saved.get("channels", 0))
        decoder.load_state_dict(saved["state_dict"])
    except (*store.CHECKPOINT_LOAD_ERRORS, TypeError) as error:
        raise ValueError(f"{path} is not a decoder file this version writes "
                         f"({type(error).__name__}): delete it and rerun; Snakemake's rule "
                         "train_decoder makes it again.") from error
    return decoder.to(device).eval().requires_grad_(False)


@torch.no_grad()
def decoded_starts(decoders: list[Decoder], models: list[nn.Module], layers: list[str],
                   model_names: list[str], reference_images: torch.Tensor,
                   device: torch.device) -> torch.Tensor:
    """Starting images (N, C, H, W) on the CPU: each model's decoder applied to its
    activations of ``reference_images`` at its layer, averaged over the models (a joint
    generator's members)."""
    decoded = []
    for decoder, model, layer, name in zip(decoders, models, layers, model_names):
        extractor = activation_lib.feature_extractor(model, [layer], name)
        decoded.append(torch.cat([decoder(extractor(batch.to(device))[layer]).cpu()
                                  for batch in reference_images.split(500)]))
    return torch.stack(decoded).mean(0)


def training_sample_indices(split_size: int, count: int, seed: int) -> np.ndarray:
    """``count`` (at most the split) indices of a split, in a seeded random order."""
    return np.random.default_rng(seed).permutation(split_size)[:count]
