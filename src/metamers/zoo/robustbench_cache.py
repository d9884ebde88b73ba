"""RobustBench models: ``robustbench.utils.load_model`` reading
``model_dir/<dataset>/<threat>/<name>.pt`` once that file has passed ``weights_only=True``
(ImageNet ``Standard_R50``: torchvision's resnet50 V1 from the hub cache; models that RobustBench
serves through timm's Hugging Face hub are refused). Nothing is downloaded."""

from __future__ import annotations

import importlib
import re
import sys
from pathlib import Path

import torchvision
from torch import nn

from metamers.zoo.architectures import NormalizedModel
from metamers.zoo.checkpoints import hub_checkpoint, require_files, safe_checkpoint
from metamers.zoo.torchvision_hub import torchvision_checkpoint_path, torchvision_weights

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
    require_files(checkpoints, f"RobustBench weights {spec['name']} ({dataset}, {threat})", how)
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


def build(spec: dict, data_info: dict | None = None) -> nn.Module:
    return NormalizedModel(build_robustbench(spec), [0.0] * 3, [1.0] * 3)


def fetch(spec: dict, model_dir: Path) -> tuple[nn.Module, dict]:
    return fetch_robustbench(spec, model_dir)
