"""torchvision models: ImageNet weights from the torch hub cache (``<hub>/checkpoints/<file>``),
never downloaded, each file checked against the SHA-256 prefix in its name."""

from __future__ import annotations

import re
from pathlib import Path

import torch
import torchvision
from torch import nn

from metamers.zoo.architectures import NormalizedModel
from metamers.zoo.checkpoints import hub_checkpoint, require_files

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


def build_torchvision(spec: dict) -> nn.Module:
    """An untrained torchvision architecture wrapped with the weights' normalisation."""
    info = _torchvision_info(spec)
    net = torchvision.models.get_model(
        spec["architecture"], weights=None, num_classes=len(info["class_names"]),
        **TORCHVISION_PRETRAINED_KWARGS.get(spec["architecture"], {}),
    )
    return NormalizedModel(net, info["mean"], info["std"])


# densenet checkpoints predate torchvision's module names; torchvision renames the keys on
# load outside the modules (torchvision.models.densenet), so a bare load must do the same.
DENSENET_OLD_KEY = re.compile(r"^(.*denselayer\d+\.(?:norm|relu|conv))\."
                              r"((?:[12])\.(?:weight|bias|running_mean|running_var))$")


def fetch_torchvision(spec: dict) -> tuple[nn.Module, dict]:
    """Load torchvision weights from the local hub cache; never downloads."""
    checkpoint = torchvision_checkpoint_path(spec)
    url = torchvision_weights(spec).url
    require_files(
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


def build(spec: dict, data_info: dict | None = None) -> nn.Module:
    return build_torchvision(spec)


def fetch(spec: dict, model_dir: Path) -> tuple[nn.Module, dict]:
    return fetch_torchvision(spec)
