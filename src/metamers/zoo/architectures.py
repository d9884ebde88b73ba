"""The architectures of the local zoo, trained by the pipeline (``metamers.train``), and the
:class:`Normalize` wrapper that every model starts with, so that every model takes images in
[0, 1]."""

from __future__ import annotations

import torch
import torchvision
from torch import nn
from torchvision.models.resnet import BasicBlock


class Normalize(nn.Module):
    """Per-channel ``(x - mean) / std`` on images in [0, 1]."""

    def __init__(self, mean: list[float], std: list[float]):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return (images - self.mean) / self.std


class SmallCNN(nn.Module):
    """Two conv blocks and a hidden fully connected layer; nodes relu1, relu2, fc_relu, logits."""

    def __init__(self, in_channels: int, num_classes: int, image_size: int,
                 mean: list[float], std: list[float], width: int = 32):
        super().__init__()
        self.normalize = Normalize(mean, std)
        self.conv1 = nn.Conv2d(in_channels, width, 3, padding=1)
        self.relu1 = nn.ReLU()
        self.pool1 = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(width, 2 * width, 3, padding=1)
        self.relu2 = nn.ReLU()
        self.pool2 = nn.MaxPool2d(2)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(2 * width * (image_size // 4) ** 2, 128)
        self.fc_relu = nn.ReLU()
        self.logits = nn.Linear(128, num_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        hidden = self.pool1(self.relu1(self.conv1(self.normalize(images))))
        hidden = self.pool2(self.relu2(self.conv2(hidden)))
        return self.logits(self.fc_relu(self.fc(self.flatten(hidden))))


class SmallResNet(nn.Module):
    """A CIFAR-style ResNet of torchvision ``BasicBlock`` stages; nodes layer1..3, pool, logits."""

    def __init__(self, in_channels: int, num_classes: int, image_size: int,
                 mean: list[float], std: list[float], width: int = 16):
        super().__init__()
        self.normalize = Normalize(mean, std)
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1, bias=False),
            nn.BatchNorm2d(width), nn.ReLU(),
        )
        self.layer1 = self._stage(width, width, stride=1)
        self.layer2 = self._stage(width, 2 * width, stride=2)
        self.layer3 = self._stage(2 * width, 4 * width, stride=2)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.logits = nn.Linear(4 * width, num_classes)

    @staticmethod
    def _stage(in_width: int, out_width: int, stride: int) -> nn.Sequential:
        downsample = None
        if stride != 1 or in_width != out_width:
            downsample = nn.Sequential(
                nn.Conv2d(in_width, out_width, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_width),
            )
        return nn.Sequential(BasicBlock(in_width, out_width, stride, downsample),
                             BasicBlock(out_width, out_width))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        hidden = self.stem(self.normalize(images))
        hidden = self.layer3(self.layer2(self.layer1(hidden)))
        return self.logits(self.pool(hidden))


class SmallVGG(nn.Module):
    """Two VGG blocks (two 3x3 convs, then a pool) and a hidden fully connected layer; nodes
    block1, block2, fc_relu, logits."""

    def __init__(self, in_channels: int, num_classes: int, image_size: int,
                 mean: list[float], std: list[float], width: int = 16):
        super().__init__()
        self.normalize = Normalize(mean, std)
        self.block1 = self._block(in_channels, width)
        self.block2 = self._block(width, 2 * width)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(2 * width * (image_size // 4) ** 2, 128)
        self.fc_relu = nn.ReLU()
        self.logits = nn.Linear(128, num_classes)

    @staticmethod
    def _block(in_width: int, out_width: int) -> nn.Sequential:
        return nn.Sequential(nn.Conv2d(in_width, out_width, 3, padding=1), nn.ReLU(),
                             nn.Conv2d(out_width, out_width, 3, padding=1), nn.ReLU(),
                             nn.MaxPool2d(2))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        hidden = self.block2(self.block1(self.normalize(images)))
        return self.logits(self.fc_relu(self.fc(self.flatten(hidden))))


class MLP(nn.Module):
    """Fully connected: no spatial prior at all; nodes hidden1, hidden2, logits."""

    def __init__(self, in_channels: int, num_classes: int, image_size: int,
                 mean: list[float], std: list[float], width: int = 256):
        super().__init__()
        self.normalize = Normalize(mean, std)
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(in_channels * image_size ** 2, width)
        self.hidden1 = nn.ReLU()
        self.fc2 = nn.Linear(width, width // 2)
        self.hidden2 = nn.ReLU()
        self.logits = nn.Linear(width // 2, num_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        hidden = self.hidden1(self.fc1(self.flatten(self.normalize(images))))
        return self.logits(self.hidden2(self.fc2(hidden)))


class SmallViT(torchvision.models.VisionTransformer):
    """A small torchvision ``VisionTransformer`` (any channel count; patches of ``patch_size``
    pixels, by default a 4 x 4 grid of them); nodes encoder.layers.encoder_layer_<i>, encoder.ln,
    heads."""

    def __init__(self, in_channels: int, num_classes: int, image_size: int,
                 mean: list[float], std: list[float], patch_size: int | None = None,
                 num_layers: int = 4, num_heads: int = 4, hidden_dim: int = 64,
                 mlp_dim: int = 128):
        patch_size = patch_size or image_size // 4
        if image_size % patch_size:
            raise ValueError(f"small_vit: image size {image_size} is not a multiple of the "
                             f"patch size {patch_size}; set kwargs: {{patch_size: ...}}.")
        super().__init__(image_size=image_size, patch_size=patch_size, num_layers=num_layers,
                         num_heads=num_heads, hidden_dim=hidden_dim, mlp_dim=mlp_dim,
                         num_classes=num_classes)
        self.conv_proj = nn.Conv2d(in_channels, hidden_dim, patch_size, stride=patch_size)
        self.normalize = Normalize(mean, std)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return super().forward(self.normalize(images))


class NormalizedModel(nn.Module):
    """An external model behind a :class:`Normalize`: nodes are named ``net.<node>``.

    With ``input_size``, images of any size are first resized (bilinear) to the model's own
    input size, so models of different sizes share one set of reference images.
    """

    def __init__(self, net: nn.Module, mean: list[float], std: list[float],
                 input_size: int | None = None):
        super().__init__()
        self.normalize = Normalize(mean, std)
        self.net = net
        self.input_size = input_size

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if self.input_size is not None:
            images = nn.functional.interpolate(images, size=(self.input_size, self.input_size),
                                               mode="bilinear", align_corners=False)
        return self.net(self.normalize(images))


LOCAL_ARCHITECTURES = {"small_cnn": SmallCNN, "small_resnet": SmallResNet, "small_vgg": SmallVGG,
                       "mlp": MLP, "small_vit": SmallViT}


def build_local(spec: dict, data_info: dict) -> nn.Module:
    """An untrained local architecture for ``data_info`` (channels, image size, classes, stats)."""
    architecture = spec["architecture"]
    if architecture not in LOCAL_ARCHITECTURES:
        raise ValueError(f"Unknown local architecture {architecture!r}: choose one of "
                         f"{sorted(LOCAL_ARCHITECTURES)}.")
    return LOCAL_ARCHITECTURES[architecture](
        in_channels=data_info["channels"], num_classes=len(data_info["class_names"]),
        image_size=data_info["image_size"], mean=data_info["mean"], std=data_info["std"],
        **spec.get("kwargs", {}),
    )


def build(spec: dict, data_info: dict | None = None) -> nn.Module:
    return build_local(spec, data_info)
