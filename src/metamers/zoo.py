"""Model architectures and loaders, one per source.

Every model takes images in [0, 1]: its normalisation is its first operation. Sources:

- ``local``: architectures of this module, trained by the pipeline (``metamers.train``);
- ``torchvision``: ImageNet weights from the torch hub cache (``<hub>/checkpoints/<file>``);
- ``robustbench``: ``robustbench.utils.load_model`` reading ``model_dir/<dataset>/<threat>/<name>.pt``.

Fetching from an external source saves the normalised model's state dict as
``resources/models/{model}.pt``; from then on every source loads the same way
(:func:`load_model`), with ``torch.load(..., weights_only=True)``.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import torch
import torchvision
from torch import nn
from torchvision.models.feature_extraction import get_graph_node_names
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


class NormalizedModel(nn.Module):
    """An external model behind a :class:`Normalize`: nodes are named ``net.<node>``."""

    def __init__(self, net: nn.Module, mean: list[float], std: list[float]):
        super().__init__()
        self.normalize = Normalize(mean, std)
        self.net = net

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(self.normalize(images))


LOCAL_ARCHITECTURES = {"small_cnn": SmallCNN, "small_resnet": SmallResNet}


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


def torchvision_weights(spec: dict) -> torchvision.models.WeightsEnum:
    """The weights enum member named by ``spec`` (e.g. resnet50 / IMAGENET1K_V2)."""
    return torchvision.models.get_model_weights(spec["architecture"])[spec["weights"]]


def torchvision_checkpoint_path(spec: dict) -> Path:
    """Where torch hub keeps (or would download) the checkpoint of a torchvision weights enum."""
    url = torchvision_weights(spec).url
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(url).name


def build_torchvision(spec: dict) -> nn.Module:
    """An untrained torchvision architecture wrapped with the weights' normalisation."""
    weights = torchvision_weights(spec)
    transforms = weights.transforms()
    net = torchvision.models.get_model(spec["architecture"], weights=None,
                                       num_classes=len(weights.meta["categories"]))
    return NormalizedModel(net, list(transforms.mean), list(transforms.std))


def fetch_torchvision(spec: dict) -> tuple[nn.Module, dict]:
    """Load torchvision weights from the local hub cache; never downloads."""
    checkpoint = torchvision_checkpoint_path(spec)
    if not checkpoint.exists():
        raise FileNotFoundError(
            f"torchvision weights {spec['architecture']}/{spec['weights']} are not in the hub "
            f"cache: put {Path(torchvision_weights(spec).url).name} at {checkpoint} (set "
            "TORCH_HOME to use another cache), e.g. by running torchvision.models.get_model("
            f"'{spec['architecture']}', weights='{spec['weights']}') on a machine with internet."
        )
    model = build_torchvision(spec)
    model.net.load_state_dict(torch.load(checkpoint, map_location="cpu", weights_only=True))
    weights = torchvision_weights(spec)
    crop = weights.transforms().crop_size[0]
    info = {"class_names": list(weights.meta["categories"]), "input_shape": [3, crop, crop],
            "mean": model.normalize.mean.flatten().tolist(),
            "std": model.normalize.std.flatten().tolist()}
    return model, info


def import_robustbench():
    """Import robustbench, whose ``autoattack`` import is served by PyPI's ``pyautoattack``."""
    if "autoattack" not in sys.modules:
        try:
            importlib.import_module("autoattack")
        except ImportError:
            sys.modules["autoattack"] = importlib.import_module("pyautoattack")
    return importlib.import_module("robustbench.utils")


def robustbench_checkpoint_path(spec: dict, model_dir: Path) -> Path:
    """``model_dir/<dataset>/<threat_model>/<name>.pt``, RobustBench's cache layout."""
    return Path(model_dir) / spec["dataset"] / spec["threat_model"] / f"{spec['name']}.pt"


def fetch_robustbench(spec: dict, model_dir: Path) -> tuple[nn.Module, dict]:
    """Load a RobustBench model from its local cache; never downloads."""
    checkpoint = robustbench_checkpoint_path(spec, model_dir)
    if not checkpoint.exists():
        raise FileNotFoundError(
            f"RobustBench weights {spec['name']} ({spec['dataset']}, {spec['threat_model']}) "
            f"are not at {checkpoint}: run robustbench.utils.load_model(model_name="
            f"'{spec['name']}', dataset='{spec['dataset']}', threat_model="
            f"'{spec['threat_model']}', model_dir='{model_dir}') on a machine with internet "
            "and copy the file there."
        )
    utils = import_robustbench()
    net = utils.load_model(model_name=spec["name"], model_dir=str(model_dir),
                           dataset=spec["dataset"], threat_model=spec["threat_model"]).cpu()
    # RobustBench models normalise inside where needed; the identity keeps our node names uniform.
    channels, size = spec.get("input_shape", [3, 32, 32])[0], spec.get("input_shape", [3, 32, 32])[1]
    model = NormalizedModel(net, [0.0] * channels, [1.0] * channels)
    info = {"class_names": spec.get("class_names") or [str(i) for i in range(spec["num_classes"])],
            "input_shape": [channels, size, size], "mean": [0.0] * channels,
            "std": [1.0] * channels}
    return model, info


def build_external(spec: dict, info: dict, model_dir: Path) -> nn.Module:
    """The architecture of an external model, for loading its saved state dict."""
    if spec["source"] == "torchvision":
        return build_torchvision(spec)
    if spec["source"] == "robustbench":
        utils = import_robustbench()
        net = utils.load_model(model_name=spec["name"], model_dir=str(model_dir),
                               dataset=spec["dataset"], threat_model=spec["threat_model"])
        return NormalizedModel(net.cpu(), info["mean"], info["std"])
    raise ValueError(f"Unknown model source {spec['source']!r}: local, torchvision or robustbench.")


def layer_names(model: nn.Module) -> list[str]:
    """The model's graph node names (eval mode), usable as layers everywhere in the pipeline."""
    return get_graph_node_names(model)[1]


def load_model(weights_path: Path, info: dict, spec: dict, model_dir: Path | None = None,
               device: str | torch.device = "cpu") -> nn.Module:
    """Load a zoo model saved by the pipeline, in eval mode with frozen parameters."""
    weights_path = Path(weights_path)
    if not weights_path.exists():
        raise FileNotFoundError(f"Model weights {weights_path} are missing: build them with "
                                f"`snakemake {weights_path}`.")
    if spec["source"] == "local":
        model = build_local(spec, info["data"])
    else:
        model = build_external(spec, info, Path(model_dir or weights_path.parent))
    state = torch.load(weights_path, map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    model.eval().requires_grad_(False)
    return model.to(device)


def check_layers(model_name: str, requested: list[str], available: list[str]) -> None:
    """Raise a clear error for layers that the model does not have."""
    unknown = [layer for layer in requested if layer not in available]
    if unknown:
        raise ValueError(f"Model {model_name!r} has no layer(s) {unknown}; its layers are: "
                         f"{', '.join(available)}.")
