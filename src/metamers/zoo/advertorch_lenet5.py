"""advertorch's MNIST LeNet5 pair (``weights: clntrained | advtrained``), whose checkpoints the
advertorch sdist installs."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
from torch import nn

from metamers.zoo.architectures import NormalizedModel
from metamers.zoo.checkpoints import require_files
from metamers.zoo.registry import ADVERTORCH_WEIGHTS


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
    require_files([checkpoint], "advertorch LeNet5 weights", "Reinstall advertorch 0.2.3.")
    model.net.load_state_dict(torch.load(checkpoint, map_location="cpu", weights_only=True))
    return model, _advertorch_info()


def build(spec: dict, data_info: dict | None = None) -> nn.Module:
    return build_advertorch_lenet5(spec)


def fetch(spec: dict, model_dir: Path) -> tuple[nn.Module, dict]:
    return fetch_advertorch_lenet5(spec)
